"""French captions with gender agreement and adjective order.

Size adjectives go before the noun, colours after it: "un grand cercle rouge",
"une petite étoile verte"; "de un" elides to "d'un".

Clips: "Un petit cercle rouge se déplace vers la gauche, puis un grand carré bleu apparaît"; a
continuing subject is "il" / "elle" by the noun's gender ("..., puis elle s'efface").
"""

from __future__ import annotations

from mmml.data.scenes.grammars.base import grid_table
from mmml.data.scenes.grammars.copular import CopularGrammar
from mmml.data.scenes.grammars.motion import MotionGrammar, style_table
from mmml.data.scenes.motion import action_direction
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

# clips: one present-tense verb phrase per lexical style; "{}" takes the direction
MOTION_VERBS = {
    "move": ("se déplace {}", "glisse {}", "se dirige {}"),
    "appear": ("apparaît", "surgit", "fait son apparition"),
    "disappear": ("disparaît", "s'efface", "s'évanouit"),
}
DIRECTIONS = {"left": "vers la gauche", "right": "vers la droite", "up": "vers le haut", "down": "vers le bas"}
PRONOUNS = {"m": "il", "f": "elle"}
MOTION_LEADS = {"then": "", "and_then": "", "first_then": "d'abord, ", "after_that": ""}
MOTION_JOINERS = {"then": ", puis ", "and_then": " et ensuite ", "first_then": ", puis ", "after_that": ". Ensuite, "}


def _gender_index(gender: str) -> int:
    return 0 if gender == "m" else 1


class FrenchGrammar(CopularGrammar, MotionGrammar):
    code = "fr"
    last_joiner = " et "
    positions = POSITIONS
    existential_lead = "il y a "
    position_first_link = " se trouve "
    copula = "est"
    # French typography puts a space before the colon
    count_colon = " : "
    number_words = FORM_COUNT
    shape_nouns = ("forme", "formes")
    motion_leads = MOTION_LEADS
    motion_joiners = MOTION_JOINERS

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

    def relative_position(self, relation: str, reference: SceneObject) -> str:
        return f"{RELATION_PHRASES[relation]} {self.of_noun_phrase(reference)}"

    def motion_verb(self, obj: SceneObject, action: str, style: int) -> str:
        direction = action_direction(action)
        phrase = style_table(MOTION_VERBS, action, style)
        return phrase.format(DIRECTIONS[direction]) if direction else phrase

    def motion_pronoun(self, obj: SceneObject) -> str:
        return PRONOUNS[SHAPE_NOUNS[obj.shape][1]]
