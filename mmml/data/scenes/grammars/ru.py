"""Russian captions with adjective-noun agreement in gender and case.

Nominative in lists ("большой красный круг", "маленькая синяя звезда"); genitive after
"слева от"/"справа от"; instrumental after "над"/"под". Russian has no articles.

Clips: present-tense imperfective verbs, "Маленький красный круг движется влево, затем появляется
большой синий квадрат": "появляться"-type verbs put their subject after the verb, a continuing
subject is "он" / "она" / "оно" by gender, or left out after "а потом".
"""

from __future__ import annotations

from typing import Sequence

from mmml.data.scenes.grammars.base import grid_table, join_list
from mmml.data.scenes.grammars.copular import CopularGrammar
from mmml.data.scenes.grammars.motion import MotionGrammar, style_table
from mmml.data.scenes.motion import action_direction
from mmml.data.scenes.spec import SceneObject

# gender, then the noun in nominative, genitive and instrumental singular
SHAPE_NOUNS = {
    "circle": ("m", {"nom": "круг", "gen": "круга", "ins": "кругом"}),
    "square": ("m", {"nom": "квадрат", "gen": "квадрата", "ins": "квадратом"}),
    "triangle": ("m", {"nom": "треугольник", "gen": "треугольника", "ins": "треугольником"}),
    "star": ("f", {"nom": "звезда", "gen": "звезды", "ins": "звездой"}),
    "diamond": ("m", {"nom": "ромб", "gen": "ромба", "ins": "ромбом"}),
    "hexagon": ("m", {"nom": "шестиугольник", "gen": "шестиугольника", "ins": "шестиугольником"}),
    "cross": ("m", {"nom": "крест", "gen": "креста", "ins": "крестом"}),
    "heart": ("n", {"nom": "сердце", "gen": "сердца", "ins": "сердцем"}),
}

# adjective endings by declension type, case and gender
ADJECTIVE_ENDINGS = {
    # hard stem: красный
    "hard": {
        "nom": {"m": "ый", "f": "ая", "n": "ое"},
        "gen": {"m": "ого", "f": "ой", "n": "ого"},
        "ins": {"m": "ым", "f": "ой", "n": "ым"},
    },
    # soft stem: синий
    "soft": {
        "nom": {"m": "ий", "f": "яя", "n": "ее"},
        "gen": {"m": "его", "f": "ей", "n": "его"},
        "ins": {"m": "им", "f": "ей", "n": "им"},
    },
    # stem ending in к/г/х, unstressed ending: маленький
    "velar": {
        "nom": {"m": "ий", "f": "ая", "n": "ое"},
        "gen": {"m": "ого", "f": "ой", "n": "ого"},
        "ins": {"m": "им", "f": "ой", "n": "им"},
    },
    # stressed ending after a sibilant: большой
    "stressed_sibilant": {
        "nom": {"m": "ой", "f": "ая", "n": "ое"},
        "gen": {"m": "ого", "f": "ой", "n": "ого"},
        "ins": {"m": "им", "f": "ой", "n": "им"},
    },
}
CASES = ("nom", "gen", "ins")
# stem, declension type
COLOR_ADJECTIVES = {
    "red": ("красн", "hard"), "orange": ("оранжев", "hard"), "yellow": ("жёлт", "hard"),
    "green": ("зелён", "hard"), "blue": ("син", "soft"), "purple": ("фиолетов", "hard"),
    "brown": ("коричнев", "hard"), "black": ("чёрн", "hard"),
}
SIZE_ADJECTIVES = {"small": ("маленьк", "velar"), "large": ("больш", "stressed_sibilant")}

POSITIONS = grid_table(
    "вверху слева", "вверху по центру", "вверху справа",
    "слева по центру", "в центре", "справа по центру",
    "внизу слева", "внизу по центру", "внизу справа",
)
# preposition and the case it governs
RELATION_PHRASES = {
    "left_of": ("слева от", "gen"), "right_of": ("справа от", "gen"),
    "above": ("над", "ins"), "below": ("под", "ins"),
}
# "фигура" after a numeral: nominative singular after 1, genitive singular after 2-4, genitive plural after 5+
FIGURE_COUNT = {
    1: "одна фигура", 2: "две фигуры", 3: "три фигуры", 4: "четыре фигуры", 5: "пять фигур", 6: "шесть фигур",
}

# clips: one present-tense verb phrase per lexical style; "{}" takes the direction
MOTION_VERBS = {
    "move": ("движется {}", "смещается {}", "перемещается {}"),
    "appear": ("появляется", "возникает", "показывается"),
    "disappear": ("исчезает", "пропадает", "скрывается из виду"),
}
DIRECTIONS = {"left": "влево", "right": "вправо", "up": "вверх", "down": "вниз"}
PRONOUNS = {"m": "он", "f": "она", "n": "оно"}
MOTION_LEADS = {"then": "", "and_then": "", "first_then": "сначала ", "after_that": ""}
MOTION_JOINERS = {
    "then": ", затем ", "and_then": ", а потом ", "first_then": ", потом ", "after_that": ". После этого ",
}


def _adjective(stem_and_type: tuple[str, str], case: str, gender: str) -> str:
    stem, declension = stem_and_type
    return stem + ADJECTIVE_ENDINGS[declension][case][gender]


class RussianGrammar(CopularGrammar, MotionGrammar):
    code = "ru"
    last_joiner = " и "
    positions = POSITIONS
    existential_lead = "на картинке есть "
    # the copula is omitted in the present tense and written as a dash
    position_first_link = " — "
    copula = "находится"
    # independent clauses: "A, B, а C" (a comma always precedes "а")
    clause_last_joiner = ", а "
    motion_leads = MOTION_LEADS
    motion_joiners = MOTION_JOINERS
    # "..., а потом движется вверх"
    motion_ellipsis = frozenset({"and_then"})
    motion_verb_first = frozenset({"appear"})

    def noun_phrase(self, obj: SceneObject, case: str = "nom") -> str:
        gender, forms = SHAPE_NOUNS[obj.shape]
        size = _adjective(SIZE_ADJECTIVES[obj.size], case, gender)
        color = _adjective(COLOR_ADJECTIVES[obj.color], case, gender)
        return f"{size} {color} {forms[case]}"

    def noun_phrase_forms(self, obj: SceneObject) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.noun_phrase(obj, case) for case in CASES))

    def join_clauses(self, clauses: Sequence[str]) -> str:
        return join_list(clauses, ", ", self.clause_last_joiner)

    def count_head(self, count: int) -> str:
        return FIGURE_COUNT[count]

    def relative_position(self, relation: str, reference: SceneObject) -> str:
        preposition, case = RELATION_PHRASES[relation]
        return f"{preposition} {self.noun_phrase(reference, case)}"

    def motion_verb(self, obj: SceneObject, action: str, style: int) -> str:
        direction = action_direction(action)
        phrase = style_table(MOTION_VERBS, action, style)
        return phrase.format(DIRECTIONS[direction]) if direction else phrase

    def motion_pronoun(self, obj: SceneObject) -> str:
        return PRONOUNS[SHAPE_NOUNS[obj.shape][0]]
