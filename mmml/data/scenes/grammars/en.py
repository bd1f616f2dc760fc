"""English captions: "a large red circle in the top left corner"."""

from __future__ import annotations

from typing import Sequence

from mmml.data.scenes.captions import Clause, Relation
from mmml.data.scenes.grammars.base import Grammar, grid_table
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


class EnglishGrammar(Grammar):
    code = "en"
    last_joiner = " and "

    def bare_noun_phrase(self, obj: SceneObject) -> str:
        return f"{SIZE_WORDS[obj.size]} {COLOR_WORDS[obj.color]} {SHAPE_WORDS[obj.shape]}"

    def noun_phrase(self, obj: SceneObject) -> str:
        bare = self.bare_noun_phrase(obj)
        return f"{indefinite_article(bare)} {bare}"

    def noun_phrase_forms(self, obj: SceneObject) -> tuple[str, ...]:
        return (self.bare_noun_phrase(obj),)

    def position(self, obj: SceneObject) -> str:
        return POSITIONS[obj.cell]

    def _located(self, obj: SceneObject) -> str:
        return f"{self.noun_phrase(obj)} {self.position(obj)}"

    def listing(self, objects: Sequence[SceneObject]) -> str:
        return self.join([self._located(obj) for obj in objects])

    def existential(self, objects: Sequence[SceneObject]) -> str:
        return "there is " + self.join([self._located(obj) for obj in objects])

    def count_first(self, objects: Sequence[SceneObject]) -> str:
        noun = "shape" if len(objects) == 1 else "shapes"
        return f"{NUMBER_WORDS[len(objects)]} {noun}: " + self.join([self._located(obj) for obj in objects])

    def position_first(self, objects: Sequence[SceneObject]) -> str:
        return self.join([f"{self.position(obj)} there is {self.noun_phrase(obj)}" for obj in objects])

    def relational(self, clauses: Sequence[Clause]) -> str:
        parts = []
        for clause in clauses:
            if isinstance(clause, Relation):
                relation = RELATION_PHRASES[clause.relation]
                parts.append(f"{self.noun_phrase(clause.subject)} is {relation} {self.noun_phrase(clause.reference)}")
            else:
                parts.append(f"{self.noun_phrase(clause.obj)} is {self.position(clause.obj)}")
        return self.join(parts)
