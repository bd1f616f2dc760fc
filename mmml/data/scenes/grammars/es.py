"""Spanish captions with gender agreement: "un círculo rojo grande", "una estrella roja pequeña".

Both adjectives follow the noun (a prenominal "grande" would shorten to "gran" and mean "great").
"""

from __future__ import annotations

from typing import Sequence

from mmml.data.scenes.grammars.base import grid_table
from mmml.data.scenes.grammars.copular import CopularGrammar
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


class SpanishGrammar(CopularGrammar):
    code = "es"
    last_joiner = " y "
    positions = POSITIONS
    existential_lead = "hay "
    position_first_link = " hay "
    copula = "está"
    relation_phrases = RELATION_PHRASES
    number_words = FIGURE_COUNT
    shape_nouns = ("figura", "figuras")

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
