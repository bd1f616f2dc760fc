"""Shared machinery of the per-language caption grammars."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Mapping, Sequence

from mmml.data.scenes.captions import CaptionPlan, Clause, Relation, relational_clauses
from mmml.data.scenes.spec import SceneObject

#: absolute phrase per (row, col) grid cell
PositionTable = Mapping[tuple[int, int], str]


def join_list(items: Sequence[str], separator: str, last_joiner: str) -> str:
    """``A<separator>B<last_joiner>C``; a single item is returned unchanged."""
    if len(items) == 1:
        return items[0]
    return separator.join(items[:-1]) + last_joiner + items[-1]


class Grammar(ABC):
    """Turns a :class:`CaptionPlan` into one sentence of one language.

    Subclasses supply the lexicon (inflected noun phrases, position phrases, number words) and one
    method per phrasing template; every method must mention each given object exactly once.
    """

    code: ClassVar[str]
    #: list joiner placed before the last item ("and", "und", ...), with its surrounding spacing
    last_joiner: ClassVar[str]
    item_separator: ClassVar[str] = ", "
    full_stop: ClassVar[str] = "."
    #: phrase for each absolute grid cell ("in the top left corner")
    positions: ClassVar[PositionTable]

    def caption(self, plan: CaptionPlan) -> str:
        """Realise ``plan`` as one sentence."""
        objects = plan.objects
        if plan.template == "listing":
            text = self.listing(objects)
        elif plan.template == "existential":
            text = self.existential(objects)
        elif plan.template == "count_first":
            text = self.count_first(objects)
        elif plan.template == "position_first":
            text = self.position_first(objects)
        else:
            text = self.relational(relational_clauses(objects))
        return self.sentence(text)

    def sentence(self, text: str) -> str:
        return text[:1].upper() + text[1:] + self.full_stop

    def join(self, items: Sequence[str]) -> str:
        """``A, B and C`` in this language."""
        return join_list(items, self.item_separator, self.last_joiner)

    def join_clauses(self, clauses: Sequence[str]) -> str:
        """Coordinate independent clauses; the same as :meth:`join` unless a language overrides it."""
        return self.join(clauses)

    def position(self, obj: SceneObject) -> str:
        """Adverbial phrase for the object's absolute grid cell ("in the top left corner")."""
        return self.positions[obj.cell]

    def relational(self, clauses: Sequence[Clause]) -> str:
        parts = [
            self.relation_clause(clause) if isinstance(clause, Relation) else self.placement_clause(clause.obj)
            for clause in clauses
        ]
        return self.join_clauses(parts)

    @abstractmethod
    def noun_phrase(self, obj: SceneObject) -> str:
        """Indefinite noun phrase in its citation (subject) form ("a large red circle")."""

    @abstractmethod
    def noun_phrase_forms(self, obj: SceneObject) -> tuple[str, ...]:
        """Every form in which this grammar writes the object's size, colour and kind (no article).

        Lets tests and tools check which objects a caption mentions.
        """

    @abstractmethod
    def listing(self, objects: Sequence[SceneObject]) -> str: ...

    @abstractmethod
    def existential(self, objects: Sequence[SceneObject]) -> str: ...

    @abstractmethod
    def count_first(self, objects: Sequence[SceneObject]) -> str: ...

    @abstractmethod
    def position_first(self, objects: Sequence[SceneObject]) -> str: ...

    @abstractmethod
    def relation_clause(self, relation: Relation) -> str:
        """Clause placing ``relation.subject`` relative to ``relation.reference``."""

    @abstractmethod
    def placement_clause(self, obj: SceneObject) -> str:
        """Clause placing ``obj`` in its absolute grid cell."""


def grid_table(*phrases: str) -> dict[tuple[int, int], str]:
    """Map the nine (row, col) cells, in reading order, to ``phrases``."""
    if len(phrases) != 9:
        raise ValueError("need one phrase per cell of the 3x3 grid")
    return {(index // 3, index % 3): phrase for index, phrase in enumerate(phrases)}
