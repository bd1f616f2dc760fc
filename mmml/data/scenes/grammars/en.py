"""English captions: "a large red circle in the top left corner"."""

from __future__ import annotations

from mmml.data.scenes.grammars.base import grid_table
from mmml.data.scenes.grammars.copular import CopularGrammar
from mmml.data.scenes.spec import SceneObject

SHAPE_WORDS = {
    "circle": "circle", "square": "square", "triangle": "triangle", "star": "star",
    "diamond": "diamond", "hexagon": "hexagon", "cross": "cross", "heart": "heart",
}
COLOR_WORDS = {
    "red": "red", "orange": "orange", "yellow": "yellow", "green": "green",
    "blue": "blue", "purple": "purple", "brown": "brown", "black": "black",
}
SIZE_WORDS = {"small": "small", "large": "large"}
POSITIONS = grid_table(
    "in the top left corner", "at the top in the middle", "in the top right corner",
    "on the left in the middle", "in the center", "on the right in the middle",
    "in the bottom left corner", "at the bottom in the middle", "in the bottom right corner",
)
RELATION_PHRASES = {"left_of": "to the left of", "right_of": "to the right of", "above": "above", "below": "below"}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def indefinite_article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


class EnglishGrammar(CopularGrammar):
    code = "en"
    last_joiner = " and "
    positions = POSITIONS
    existential_lead = "there is "
    position_first_link = " there is "
    copula = "is"
    relation_phrases = RELATION_PHRASES
    number_words = NUMBER_WORDS
    shape_nouns = ("shape", "shapes")

    def bare_noun_phrase(self, obj: SceneObject) -> str:
        return f"{SIZE_WORDS[obj.size]} {COLOR_WORDS[obj.color]} {SHAPE_WORDS[obj.shape]}"

    def noun_phrase(self, obj: SceneObject) -> str:
        bare = self.bare_noun_phrase(obj)
        return f"{indefinite_article(bare)} {bare}"

    def noun_phrase_forms(self, obj: SceneObject) -> tuple[str, ...]:
        return (self.bare_noun_phrase(obj),)
