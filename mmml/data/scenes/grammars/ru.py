"""Russian captions with adjective-noun agreement in gender and case.

Nominative in lists ("большой красный круг", "маленькая синяя звезда"); genitive after
"слева от"/"справа от"; instrumental after "над"/"под". Russian has no articles.
"""

from __future__ import annotations

from typing import Sequence

from mmml.data.scenes.captions import Clause, Relation
from mmml.data.scenes.grammars.base import Grammar, grid_table
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


def _adjective(stem_and_type: tuple[str, str], case: str, gender: str) -> str:
    stem, declension = stem_and_type
    return stem + ADJECTIVE_ENDINGS[declension][case][gender]


class RussianGrammar(Grammar):
    code = "ru"
    last_joiner = " и "
    # independent clauses: "A, B, а C" (a comma always precedes "а")
    clause_last_joiner = ", а "

    def noun_phrase(self, obj: SceneObject, case: str = "nom") -> str:
        gender, forms = SHAPE_NOUNS[obj.shape]
        size = _adjective(SIZE_ADJECTIVES[obj.size], case, gender)
        color = _adjective(COLOR_ADJECTIVES[obj.color], case, gender)
        return f"{size} {color} {forms[case]}"

    def noun_phrase_forms(self, obj: SceneObject) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.noun_phrase(obj, case) for case in CASES))

    def position(self, obj: SceneObject) -> str:
        return POSITIONS[obj.cell]

    def join_clauses(self, clauses: Sequence[str]) -> str:
        if len(clauses) == 1:
            return clauses[0]
        return ", ".join(clauses[:-1]) + self.clause_last_joiner + clauses[-1]

    def _located(self, obj: SceneObject) -> str:
        return f"{self.noun_phrase(obj)} {self.position(obj)}"

    def listing(self, objects: Sequence[SceneObject]) -> str:
        return self.join([self._located(obj) for obj in objects])

    def existential(self, objects: Sequence[SceneObject]) -> str:
        return "на картинке есть " + self.join([self._located(obj) for obj in objects])

    def count_first(self, objects: Sequence[SceneObject]) -> str:
        return f"{FIGURE_COUNT[len(objects)]}: " + self.join([self._located(obj) for obj in objects])

    def position_first(self, objects: Sequence[SceneObject]) -> str:
        return self.join_clauses([f"{self.position(obj)} — {self.noun_phrase(obj)}" for obj in objects])

    def relational(self, clauses: Sequence[Clause]) -> str:
        parts = []
        for clause in clauses:
            if isinstance(clause, Relation):
                preposition, case = RELATION_PHRASES[clause.relation]
                parts.append(
                    f"{self.noun_phrase(clause.subject)} находится {preposition} "
                    f"{self.noun_phrase(clause.reference, case)}"
                )
            else:
                parts.append(f"{self.noun_phrase(clause.obj)} находится {self.position(clause.obj)}")
        return self.join_clauses(parts)
