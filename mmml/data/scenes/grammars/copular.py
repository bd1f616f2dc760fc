"""Phrasing templates shared by languages that locate objects with a copula.

These languages (en, de, fr, es, ru) describe an object as "noun phrase + position adverbial"
and a relation as "subject + copula + relative position", so the template skeletons are the same
and only the words (and a few case-governed hooks) differ.
"""

from __future__ import annotations

from typing import ClassVar, Mapping, Sequence

from mmml.data.scenes.captions import Relation
from mmml.data.scenes.grammars.base import Grammar
from mmml.data.scenes.spec import SceneObject


class CopularGrammar(Grammar):
    """Templates built from noun phrases, position adverbials and a locative copula."""

    #: opens the existential template ("there is ", "il y a ")
    existential_lead: ClassVar[str]
    #: between the position and the noun phrase in the position-first template (" there is ")
    position_first_link: ClassVar[str]
    #: locative copula of the relational template ("is", "befindet sich")
    copula: ClassVar[str]
    #: between the count head and the object list
    count_colon: ClassVar[str] = ": "
    #: preposition phrase per relation; used by the default :meth:`relative_position`
    relation_phrases: ClassVar[Mapping[str, str]]
    #: number words and the singular / plural noun for "shape"; used by the default :meth:`count_head`
    number_words: ClassVar[Mapping[int, str]]
    shape_nouns: ClassVar[tuple[str, str]]

    def _located(self, obj: SceneObject) -> str:
        return f"{self.noun_phrase(obj)} {self.position(obj)}"

    def count_head(self, count: int) -> str:
        """"three shapes": number word and a noun inflected for singular or plural."""
        singular, plural = self.shape_nouns
        return f"{self.number_words[count]} {singular if count == 1 else plural}"

    def relative_position(self, relation: str, reference: SceneObject) -> str:
        """"to the left of a small blue star"."""
        return f"{self.relation_phrases[relation]} {self.noun_phrase(reference)}"

    def listing(self, objects: Sequence[SceneObject]) -> str:
        return self.join([self._located(obj) for obj in objects])

    def existential(self, objects: Sequence[SceneObject]) -> str:
        return self.existential_lead + self.join([self._located(obj) for obj in objects])

    def count_first(self, objects: Sequence[SceneObject]) -> str:
        located = self.join([self._located(obj) for obj in objects])
        return self.count_head(len(objects)) + self.count_colon + located

    def position_first(self, objects: Sequence[SceneObject]) -> str:
        return self.join_clauses(
            [f"{self.position(obj)}{self.position_first_link}{self.noun_phrase(obj)}" for obj in objects]
        )

    def relation_clause(self, relation: Relation) -> str:
        where = self.relative_position(relation.relation, relation.reference)
        return f"{self.noun_phrase(relation.subject)} {self.copula} {where}"

    def placement_clause(self, obj: SceneObject) -> str:
        return f"{self.noun_phrase(obj)} {self.copula} {self.position(obj)}"
