"""German captions with article and adjective declension by gender and case.

"ein großer roter Kreis" (nominative), "es gibt einen großen roten Kreis" (accusative),
"links von einem großen roten Kreis" (dative after von/über/unter).
"""

from __future__ import annotations

from typing import Sequence

from mmml.data.scenes.grammars.base import grid_table
from mmml.data.scenes.grammars.copular import CopularGrammar
from mmml.data.scenes.spec import SceneObject

# noun, grammatical gender (m/f/n), dative singular
SHAPE_NOUNS = {
    "circle": ("Kreis", "m", "Kreis"),
    "square": ("Quadrat", "n", "Quadrat"),
    "triangle": ("Dreieck", "n", "Dreieck"),
    "star": ("Stern", "m", "Stern"),
    "diamond": ("Raute", "f", "Raute"),
    "hexagon": ("Sechseck", "n", "Sechseck"),
    "cross": ("Kreuz", "n", "Kreuz"),
    "heart": ("Herz", "n", "Herzen"),
}
# adjective stems; "lila"/"orange" are avoided because they do not decline in standard German
COLOR_STEMS = {
    "red": "rot", "orange": "orangefarben", "yellow": "gelb", "green": "grün",
    "blue": "blau", "purple": "violett", "brown": "braun", "black": "schwarz",
}
SIZE_STEMS = {"small": "klein", "large": "groß"}

# indefinite article and the (mixed declension) adjective ending, by case and gender
ARTICLES = {
    "nom": {"m": "ein", "f": "eine", "n": "ein"},
    "acc": {"m": "einen", "f": "eine", "n": "ein"},
    "dat": {"m": "einem", "f": "einer", "n": "einem"},
}
ADJECTIVE_ENDINGS = {
    "nom": {"m": "er", "f": "e", "n": "es"},
    "acc": {"m": "en", "f": "e", "n": "es"},
    "dat": {"m": "en", "f": "en", "n": "en"},
}
CASES = tuple(ARTICLES)

POSITIONS = grid_table(
    "oben links", "oben in der Mitte", "oben rechts",
    "links in der Mitte", "in der Mitte", "rechts in der Mitte",
    "unten links", "unten in der Mitte", "unten rechts",
)
# all four prepositions govern the dative here
RELATION_PHRASES = {"left_of": "links von", "right_of": "rechts von", "above": "über", "below": "unter"}
FORM_COUNT = {1: "eine", 2: "zwei", 3: "drei", 4: "vier", 5: "fünf", 6: "sechs"}


class GermanGrammar(CopularGrammar):
    code = "de"
    last_joiner = " und "
    positions = POSITIONS
    existential_lead = "es gibt "
    position_first_link = " ist "
    copula = "befindet sich"

    def bare_noun_phrase(self, obj: SceneObject, case: str) -> str:
        noun, gender, dative = SHAPE_NOUNS[obj.shape]
        ending = ADJECTIVE_ENDINGS[case][gender]
        noun_form = dative if case == "dat" else noun
        return f"{SIZE_STEMS[obj.size]}{ending} {COLOR_STEMS[obj.color]}{ending} {noun_form}"

    def noun_phrase(self, obj: SceneObject, case: str = "nom") -> str:
        gender = SHAPE_NOUNS[obj.shape][1]
        return f"{ARTICLES[case][gender]} {self.bare_noun_phrase(obj, case)}"

    def noun_phrase_forms(self, obj: SceneObject) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.bare_noun_phrase(obj, case) for case in CASES))

    def _located(self, obj: SceneObject, case: str = "nom") -> str:
        return f"{self.noun_phrase(obj, case)} {self.position(obj)}"

    def existential(self, objects: Sequence[SceneObject]) -> str:
        # "es gibt" takes an accusative object
        return self.existential_lead + self.join([self._located(obj, "acc") for obj in objects])

    def count_head(self, count: int) -> str:
        return "zu sehen ist eine Form" if count == 1 else f"zu sehen sind {FORM_COUNT[count]} Formen"

    def relative_position(self, relation: str, reference: SceneObject) -> str:
        return f"{RELATION_PHRASES[relation]} {self.noun_phrase(reference, 'dat')}"
