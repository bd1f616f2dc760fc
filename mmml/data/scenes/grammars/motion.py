"""Captions of clips: the events of a :class:`~mmml.data.scenes.motion.Clip` in time order.

A clip caption is one clause per event, joined by the plan's template ("A, then B" / "A and then
B" / "First, A, then B" / "A. After that, B"). A clause is subject + verb phrase; when the previous
clause named the same object, the subject is a pronoun or (where the language and template allow it)
left out. The mixin below implements that for subject-verb languages through a few hooks
(:meth:`MotionGrammar.motion_verb`, :meth:`MotionGrammar.motion_pronoun` and the class attributes);
German (verb-second order) and Chinese override :meth:`MotionGrammar.motion_clause`.
"""

from __future__ import annotations

from typing import ClassVar, Mapping, Sequence

from mmml.data.scenes.motion import ClipCaptionPlan, MotionStep
from mmml.data.scenes.spec import SceneObject


class MotionGrammar:
    """Mixin for a :class:`~mmml.data.scenes.grammars.base.Grammar`: ``clip_caption(plan, steps)``."""

    #: text before the first clause, per template ("first, " for ``first_then``)
    motion_leads: ClassVar[Mapping[str, str]]
    #: text before every later clause, per template (", then ")
    motion_joiners: ClassVar[Mapping[str, str]]
    #: templates whose later clause drops a subject that continues the previous one ("... and then moves up")
    motion_ellipsis: ClassVar[frozenset[str]] = frozenset()
    #: actions said verb-first when the subject is a full noun phrase ("aparece un círculo ...")
    motion_verb_first: ClassVar[frozenset[str]] = frozenset()

    def clip_caption(self, plan: ClipCaptionPlan, steps: Sequence[MotionStep]) -> str:
        """Realise the events ``steps`` (in time order) as one caption."""
        if not steps:
            raise ValueError("a clip caption needs at least one event")
        # a single event is one plain clause whatever the template
        template = plan.template if len(steps) > 1 else "then"
        text = "".join(self.motion_clause(step, plan.style, template, index) for index, step in enumerate(steps))
        return self.sentence(text)  # type: ignore[attr-defined]

    def motion_connector(self, template: str, index: int) -> str:
        return self.motion_leads[template] if index == 0 else self.motion_joiners[template]

    def motion_clause(self, step: MotionStep, style: int, template: str, index: int) -> str:
        """The clause of event ``index``, with its connector in front."""
        verb = self.motion_verb(step.obj, step.action, style)
        if step.continues:
            pronoun = self.motion_pronoun(step.obj)
            clause = verb if template in self.motion_ellipsis or not pronoun else f"{pronoun} {verb}"
        elif step.action in self.motion_verb_first:
            clause = f"{verb} {self.noun_phrase(step.obj)}"  # type: ignore[attr-defined]
        else:
            clause = f"{self.noun_phrase(step.obj)} {verb}"  # type: ignore[attr-defined]
        return self.motion_connector(template, index) + clause

    def motion_verb(self, obj: SceneObject, action: str, style: int) -> str:
        """Third-person present verb phrase of ``action`` in lexical ``style`` ("moves to the left")."""
        raise NotImplementedError

    def motion_pronoun(self, obj: SceneObject) -> str:
        """Subject pronoun for ``obj`` ("it", "elle"); "" where the language drops it."""
        raise NotImplementedError


def style_table(variants: Mapping[str, Sequence[str]], action: str, style: int) -> str:
    """``variants[verb][style]`` where ``verb`` is "move", "appear" or "disappear" (helper for lexicons)."""
    verb = "move" if action.startswith("move_") else action
    return variants[verb][style]
