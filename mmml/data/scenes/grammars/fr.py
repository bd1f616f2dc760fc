"""French captions with gender agreement and adjective order.

Size adjectives go before the noun, colours after it: "un grand cercle rouge",
"une petite étoile verte"; "de un" elides to "d'un".
"""

from __future__ import annotations

from typing import Sequence

from mmml.data.scenes.captions import Clause, Relation
from mmml.data.scenes.grammars.base import Grammar, grid_table
from mmml.data.scenes.spec import SceneObject

SHAPE_NOUNS = {
    "circle": ("cercle", "m"), "square": ("carré", "m"), "triangle": ("triangle", "m"),
    "star": ("étoile", "f"), "diamond": ("losange", "m"), "hexagon": ("hexagone", "m"),
    "cross": ("croix", "f"), "heart": ("cœur", "m"),
}
# masculine, feminine ("orange" and "marron" are invariable colour nouns)
COLOR_ADJECTIVES = {
    "red": ("rouge", "rouge"), "orange": ("orange", "orange"), "yellow": ("jaune", "jaune"),
    "green": ("vert", "verte"), "blue": ("bleu", "bleue"), "purple": ("violet", "violette"),
    "brown": ("marron", "marron"), "black": ("noir", "noire"),
}
SIZE_ADJECTIVES = {"small": ("petit", "petite"), "large": ("grand", "grande")}
ARTICLES = {"m": "un", "f": "une"}

POSITIONS = grid_table(
    "en haut à gauche", "en haut au milieu", "en haut à droite",
    "au milieu à gauche", "au centre", "au milieu à droite",
    "en bas à gauche", "en bas au milieu", "en bas à droite",
)
# each is followed by "de" + the reference noun phrase
RELATION_PHRASES = {"left_of": "à gauche", "right_of": "à droite", "above": "au-dessus", "below": "en dessous"}
FORM_COUNT = {1: "une", 2: "deux", 3: "trois", 4: "quatre", 5: "cinq", 6: "six"}


def _gender_index(gender: str) -> int:
    return 0 if gender == "m" else 1


class FrenchGrammar(Grammar):
    code = "fr"
    last_joiner = " et "

    def bare_noun_phrase(self, obj: SceneObject) -> str:
        noun, gender = SHAPE_NOUNS[obj.shape]
        g = _gender_index(gender)
        return f"{SIZE_ADJECTIVES[obj.size][g]} {noun} {COLOR_ADJECTIVES[obj.color][g]}"

    def noun_phrase(self, obj: SceneObject) -> str:
        return f"{ARTICLES[SHAPE_NOUNS[obj.shape][1]]} {self.bare_noun_phrase(obj)}"

    def of_noun_phrase(self, obj: SceneObject) -> str:
        """``de`` + indefinite noun phrase, elided: "d'un grand cercle rouge"."""
        return "d'" + self.noun_phrase(obj)

    def noun_phrase_forms(self, obj: SceneObject) -> tuple[str, ...]:
        return (self.bare_noun_phrase(obj),)

    def position(self, obj: SceneObject) -> str:
        return POSITIONS[obj.cell]

    def _located(self, obj: SceneObject) -> str:
        return f"{self.noun_phrase(obj)} {self.position(obj)}"

    def listing(self, objects: Sequence[SceneObject]) -> str:
        return self.join([self._located(obj) for obj in objects])

    def existential(self, objects: Sequence[SceneObject]) -> str:
        return "il y a " + self.join([self._located(obj) for obj in objects])

    def count_first(self, objects: Sequence[SceneObject]) -> str:
        n = len(objects)
        noun = "forme" if n == 1 else "formes"
        # French typography puts a space before the colon
        return f"{FORM_COUNT[n]} {noun} : " + self.join([self._located(obj) for obj in objects])

    def position_first(self, objects: Sequence[SceneObject]) -> str:
        return self.join([f"{self.position(obj)} se trouve {self.noun_phrase(obj)}" for obj in objects])

    def relational(self, clauses: Sequence[Clause]) -> str:
        parts = []
        for clause in clauses:
            if isinstance(clause, Relation):
                relation = RELATION_PHRASES[clause.relation]
                parts.append(
                    f"{self.noun_phrase(clause.subject)} est {relation} {self.of_noun_phrase(clause.reference)}"
                )
            else:
                parts.append(f"{self.noun_phrase(clause.obj)} est {self.position(clause.obj)}")
        return self.join(parts)
