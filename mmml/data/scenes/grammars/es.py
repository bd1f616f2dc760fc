"""Spanish captions with gender agreement: "un círculo rojo grande", "una estrella roja pequeña".

Both adjectives follow the noun (a prenominal "grande" would shorten to "gran" and mean "great").

Clips: "Un círculo rojo pequeño se mueve hacia la izquierda, luego aparece un cuadrado azul grande":
"aparecer"-type verbs put their subject after the verb, and a continuing subject is left out
(Spanish is a null-subject language): "Aparece un círculo rojo pequeño y después se mueve hacia arriba".
"""

from __future__ import annotations

from typing import Sequence

from mmml.data.scenes.grammars.base import grid_table
from mmml.data.scenes.grammars.copular import CopularGrammar
from mmml.data.scenes.grammars.motion import MotionGrammar, style_table
from mmml.data.scenes.motion import CLIP_CAPTION_TEMPLATES, action_direction
from mmml.data.scenes.spec import SceneObject

SHAPE_NOUNS = {
    "circle": ("círculo", "m"), "square": ("cuadrado", "m"), "triangle": ("triángulo", "m"),
    "star": ("estrella", "f"), "diamond": ("rombo", "m"), "hexagon": ("hexágono", "m"),
    "cross": ("cruz", "f"), "heart": ("corazón", "m"),
}
# masculine, feminine
COLOR_ADJECTIVES = {
    "red": ("rojo", "roja"), "orange": ("naranja", "naranja"), "yellow": ("amarillo", "amarilla"),
    "green": ("verde", "verde"), "blue": ("azul", "azul"), "purple": ("morado", "morada"),
    "brown": ("marrón", "marrón"), "black": ("negro", "negra"),
}
SIZE_ADJECTIVES = {"small": ("pequeño", "pequeña"), "large": ("grande", "grande")}
ARTICLES = {"m": "un", "f": "una"}

POSITIONS = grid_table(
    "arriba a la izquierda", "arriba en el centro", "arriba a la derecha",
    "en el centro a la izquierda", "en el centro", "en el centro a la derecha",
    "abajo a la izquierda", "abajo en el centro", "abajo a la derecha",
)
RELATION_PHRASES = {
    "left_of": "a la izquierda de", "right_of": "a la derecha de", "above": "encima de", "below": "debajo de",
}
FIGURE_COUNT = {1: "una", 2: "dos", 3: "tres", 4: "cuatro", 5: "cinco", 6: "seis"}

# clips: one present-tense verb phrase per lexical style; "{}" takes the direction
MOTION_VERBS = {
    "move": ("se mueve {}", "se desliza {}", "avanza {}"),
    "appear": ("aparece", "surge", "se hace visible"),
    "disappear": ("desaparece", "se desvanece", "se esfuma"),
}
DIRECTIONS = {"left": "hacia la izquierda", "right": "hacia la derecha", "up": "hacia arriba", "down": "hacia abajo"}
MOTION_LEADS = {"then": "", "and_then": "", "first_then": "primero ", "after_that": ""}
MOTION_JOINERS = {
    "then": ", luego ", "and_then": " y después ", "first_then": ", luego ", "after_that": ". A continuación, ",
}


class SpanishGrammar(CopularGrammar, MotionGrammar):
    code = "es"
    last_joiner = " y "
    positions = POSITIONS
    existential_lead = "hay "
    position_first_link = " hay "
    copula = "está"
    relation_phrases = RELATION_PHRASES
    number_words = FIGURE_COUNT
    shape_nouns = ("figura", "figuras")
    motion_leads = MOTION_LEADS
    motion_joiners = MOTION_JOINERS
    motion_ellipsis = frozenset(CLIP_CAPTION_TEMPLATES)
    motion_verb_first = frozenset({"appear"})

    def join(self, items: Sequence[str]) -> str:
        # "y" becomes "e" before an /i/ sound ("i-", "hi-" but not "hie-")
        text = super().join(items)
        last = items[-1].lower() if len(items) > 1 else ""
        if last.startswith(("i", "í", "hi", "hí")) and not last.startswith("hie"):
            text = text[: -len(items[-1]) - len(self.last_joiner)] + " e " + items[-1]
        return text

    def bare_noun_phrase(self, obj: SceneObject) -> str:
        noun, gender = SHAPE_NOUNS[obj.shape]
        g = 0 if gender == "m" else 1
        return f"{noun} {COLOR_ADJECTIVES[obj.color][g]} {SIZE_ADJECTIVES[obj.size][g]}"

    def noun_phrase(self, obj: SceneObject) -> str:
        return f"{ARTICLES[SHAPE_NOUNS[obj.shape][1]]} {self.bare_noun_phrase(obj)}"

    def noun_phrase_forms(self, obj: SceneObject) -> tuple[str, ...]:
        return (self.bare_noun_phrase(obj),)

    def motion_verb(self, obj: SceneObject, action: str, style: int) -> str:
        direction = action_direction(action)
        phrase = style_table(MOTION_VERBS, action, style)
        return phrase.format(DIRECTIONS[direction]) if direction else phrase

    def motion_pronoun(self, obj: SceneObject) -> str:
        return ""
