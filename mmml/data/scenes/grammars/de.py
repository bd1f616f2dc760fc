"""German captions with article and adjective declension by gender and case.

"ein großer roter Kreis" (nominative), "es gibt einen großen roten Kreis" (accusative),
"links von einem großen roten Kreis" (dative after von/über/unter).

Clips keep the finite verb second: "Ein kleiner roter Kreis bewegt sich nach links, dann taucht ein
großes blaues Quadrat auf"; separable prefixes ("taucht ... auf") and the predicate go to the end, a
continuing subject is "er" / "sie" / "es" by gender and stands before the reflexive "sich", a noun
phrase after it ("dann bewegt er sich" / "dann bewegt sich ein Quadrat").
"""

from __future__ import annotations

from typing import Sequence

from mmml.data.scenes.grammars.base import grid_table
from mmml.data.scenes.grammars.copular import CopularGrammar
from mmml.data.scenes.grammars.motion import MotionGrammar, style_table
from mmml.data.scenes.motion import MotionStep, action_direction
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

# clips: finite verb, reflexive "sich", rest of the predicate (separable prefix or direction "{}"), per style
MOTION_VERBS = {
    "move": (("bewegt", True, "{}"), ("gleitet", False, "{}"), ("wandert", False, "{}")),
    "appear": (("erscheint", False, ""), ("taucht", False, "auf"), ("kommt", False, "zum Vorschein")),
    "disappear": (("verschwindet", False, ""), ("löst", True, "auf"), ("wird", False, "unsichtbar")),
}
DIRECTIONS = {"left": "nach links", "right": "nach rechts", "up": "nach oben", "down": "nach unten"}
PRONOUNS = {"m": "er", "f": "sie", "n": "es"}
# the adverb that opens a clause, putting the verb before the subject; None: the subject opens the clause
MOTION_FIRST_OPENERS = {"then": None, "and_then": None, "first_then": "zuerst", "after_that": None}
MOTION_LATER_OPENERS = {"then": ", dann", "and_then": " und dann", "first_then": ", dann", "after_that": ". Danach"}


class GermanGrammar(CopularGrammar, MotionGrammar):
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

    def motion_verb(self, obj: SceneObject, action: str, style: int) -> str:
        finite, reflexive, rest = self._motion_parts(action, style)
        return " ".join(part for part in (finite, "sich" if reflexive else "", rest) if part)

    def motion_pronoun(self, obj: SceneObject) -> str:
        return PRONOUNS[SHAPE_NOUNS[obj.shape][1]]

    def _motion_parts(self, action: str, style: int) -> tuple[str, bool, str]:
        finite, reflexive, rest = style_table(MOTION_VERBS, action, style)
        direction = action_direction(action)
        return finite, reflexive, rest.format(DIRECTIONS[direction]) if direction else rest

    def motion_clause(self, step: MotionStep, style: int, template: str, index: int) -> str:
        finite, reflexive, rest = self._motion_parts(step.action, style)
        sich = " sich" if reflexive else ""
        tail = f" {rest}" if rest else ""
        if index > 0 and template == "and_then" and step.continues:
            # the second verb shares the subject: "... erscheint und bewegt sich dann nach links"
            return f" und {finite}{sich} dann{tail}"
        opener = MOTION_FIRST_OPENERS[template] if index == 0 else MOTION_LATER_OPENERS[template]
        subject = self.motion_pronoun(step.obj) if step.continues else self.noun_phrase(step.obj)
        if opener is None:
            return f"{subject} {finite}{sich}{tail}"
        if step.continues:  # a pronoun goes before "sich": "dann bewegt er sich"
            return f"{opener} {finite} {subject}{sich}{tail}"
        return f"{opener} {finite}{sich} {subject}{tail}"
