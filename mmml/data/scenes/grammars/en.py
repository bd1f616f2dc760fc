"""English captions: "a large red circle in the top left corner".

Clips: "A small red circle moves to the left, then a large blue square appears."
"""

from __future__ import annotations

from mmml.data.scenes.grammars.base import grid_table
from mmml.data.scenes.grammars.copular import CopularGrammar
from mmml.data.scenes.grammars.motion import MotionGrammar, style_table
from mmml.data.scenes.motion import action_direction
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

# clips: one verb phrase per lexical style; moves take a direction ("{to}": "to the left", "{bare}": "left")
MOTION_VERBS = {
    "move": ("moves {to}", "slides {to}", "goes {bare}"),
    "appear": ("appears", "shows up", "comes into view"),
    "disappear": ("disappears", "vanishes", "goes out of view"),
}
DIRECTIONS = {
    "left": {"to": "to the left", "bare": "left"}, "right": {"to": "to the right", "bare": "right"},
    "up": {"to": "up", "bare": "up"}, "down": {"to": "down", "bare": "down"},
}
MOTION_LEADS = {"then": "", "and_then": "", "first_then": "first, ", "after_that": ""}
MOTION_JOINERS = {"then": ", then ", "and_then": " and then ", "first_then": ", then ", "after_that": ". After that, "}


def indefinite_article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


class EnglishGrammar(CopularGrammar, MotionGrammar):
    code = "en"
    last_joiner = " and "
    positions = POSITIONS
    existential_lead = "there is "
    position_first_link = " there is "
    copula = "is"
    relation_phrases = RELATION_PHRASES
    number_words = NUMBER_WORDS
    shape_nouns = ("shape", "shapes")
    motion_leads = MOTION_LEADS
    motion_joiners = MOTION_JOINERS
    # "A small red circle appears and then moves to the left."
    motion_ellipsis = frozenset({"and_then"})

    def bare_noun_phrase(self, obj: SceneObject) -> str:
        return f"{SIZE_WORDS[obj.size]} {COLOR_WORDS[obj.color]} {SHAPE_WORDS[obj.shape]}"

    def noun_phrase(self, obj: SceneObject) -> str:
        bare = self.bare_noun_phrase(obj)
        return f"{indefinite_article(bare)} {bare}"

    def noun_phrase_forms(self, obj: SceneObject) -> tuple[str, ...]:
        return (self.bare_noun_phrase(obj),)

    def motion_verb(self, obj: SceneObject, action: str, style: int) -> str:
        direction = action_direction(action)
        phrase = style_table(MOTION_VERBS, action, style)
        return phrase.format(**DIRECTIONS[direction]) if direction else phrase

    def motion_pronoun(self, obj: SceneObject) -> str:
        return "it"
