"""Chinese captions with measure words: "一个红色的大圆形", "一颗蓝色的小星星".

Stars and hearts take 颗, the other shapes 个; two is 两 before a measure word.

Clips: "一个红色的小圆形向左移动，然后出现了一个蓝色的大正方形": appearing is said verb first
("出现了一个……", the existential order for a new, indefinite object), "先" marks the first event, a
continuing subject is 它, or left out after 接着.
"""

from __future__ import annotations

from typing import Sequence

from mmml.data.scenes.captions import Relation
from mmml.data.scenes.grammars.base import Grammar, grid_table
from mmml.data.scenes.grammars.motion import MotionGrammar, style_table
from mmml.data.scenes.motion import MotionStep, action_direction
from mmml.data.scenes.spec import SceneObject

# noun, measure word
SHAPE_NOUNS = {
    "circle": ("圆形", "个"), "square": ("正方形", "个"), "triangle": ("三角形", "个"),
    "star": ("星星", "颗"), "diamond": ("菱形", "个"), "hexagon": ("六边形", "个"),
    "cross": ("十字形", "个"), "heart": ("爱心", "颗"),
}
COLOR_WORDS = {
    "red": "红色", "orange": "橙色", "yellow": "黄色", "green": "绿色",
    "blue": "蓝色", "purple": "紫色", "brown": "棕色", "black": "黑色",
}
SIZE_WORDS = {"small": "小", "large": "大"}

POSITIONS = grid_table(
    "左上角", "顶部中间", "右上角",
    "左侧中间", "正中间", "右侧中间",
    "左下角", "底部中间", "右下角",
)
# "<reference>的<side>有<subject>": the subject lies on that side of the reference
RELATION_SIDES = {"left_of": "左边", "right_of": "右边", "above": "上方", "below": "下方"}
NUMERALS = {1: "一", 2: "两", 3: "三", 4: "四", 5: "五", 6: "六"}

# clips: per lexical style, the verb phrase after its subject ("{}" takes the direction)
MOTION_VERBS = {
    "move": ("向{}移动", "朝{}移动", "向{}滑动"),
    "appear": ("出现了", "冒了出来", "显现出来"),
    "disappear": ("消失了", "不见了", "从画面中消失了"),
}
# styles in which a new object's appearing is said verb first: "出现了一个红色的小圆形"
APPEAR_VERB_FIRST = {0: "出现了", 1: "冒出了"}
DIRECTIONS = {"left": "左", "right": "右", "up": "上", "down": "下"}
MOTION_JOINERS = {"then": "，然后", "and_then": "，接着", "first_then": "，然后", "after_that": "。之后，"}


class ChineseGrammar(Grammar, MotionGrammar):
    code = "zh"
    last_joiner = "和"
    item_separator = "、"
    full_stop = "。"
    clause_separator = "，"
    positions = POSITIONS

    def _descriptor(self, obj: SceneObject, with_de: bool) -> str:
        noun = SHAPE_NOUNS[obj.shape][0]
        linker = "的" if with_de else ""
        return f"{COLOR_WORDS[obj.color]}{linker}{SIZE_WORDS[obj.size]}{noun}"

    def noun_phrase(self, obj: SceneObject) -> str:
        """"一个红色的大圆形"."""
        return f"一{SHAPE_NOUNS[obj.shape][1]}{self._descriptor(obj, with_de=True)}"

    def noun_phrase_forms(self, obj: SceneObject) -> tuple[str, ...]:
        return (self._descriptor(obj, with_de=True), self._descriptor(obj, with_de=False))

    def join_clauses(self, clauses: Sequence[str]) -> str:
        # clauses are only separated by commas, with no conjunction before the last
        return self.clause_separator.join(clauses)

    def _located_attributive(self, obj: SceneObject) -> str:
        """"一个位于左上角的红色大圆形"."""
        measure = SHAPE_NOUNS[obj.shape][1]
        return f"一{measure}位于{self.position(obj)}的{self._descriptor(obj, with_de=False)}"

    def listing(self, objects: Sequence[SceneObject]) -> str:
        return self.join([self._located_attributive(obj) for obj in objects])

    def existential(self, objects: Sequence[SceneObject]) -> str:
        return "图中有" + self.join([self._located_attributive(obj) for obj in objects])

    def count_first(self, objects: Sequence[SceneObject]) -> str:
        located = [f"{self.position(obj)}是{self.noun_phrase(obj)}" for obj in objects]
        head = "图中只有一个图形" if len(objects) == 1 else f"图中共有{NUMERALS[len(objects)]}个图形"
        return f"{head}：" + self.join_clauses(located)

    def position_first(self, objects: Sequence[SceneObject]) -> str:
        return self.join_clauses([self.placement_clause(obj) for obj in objects])

    def relation_clause(self, relation: Relation) -> str:
        reference = self._descriptor(relation.reference, with_de=False)
        side = RELATION_SIDES[relation.relation]
        return f"{reference}的{side}有{self.noun_phrase(relation.subject)}"

    def placement_clause(self, obj: SceneObject) -> str:
        return f"{self.position(obj)}有{self.noun_phrase(obj)}"

    def motion_verb(self, obj: SceneObject, action: str, style: int) -> str:
        direction = action_direction(action)
        phrase = style_table(MOTION_VERBS, action, style)
        return phrase.format(DIRECTIONS[direction]) if direction else phrase

    def motion_pronoun(self, obj: SceneObject) -> str:
        return "它"

    def motion_clause(self, step: MotionStep, style: int, template: str, index: int) -> str:
        connector = "" if index == 0 else MOTION_JOINERS[template]
        first = "先" if index == 0 and template == "first_then" else ""
        verb = self.motion_verb(step.obj, step.action, style)
        if step.continues:
            subject = "" if template == "and_then" else self.motion_pronoun(step.obj)
            return f"{connector}{subject}{first}{verb}"
        if step.action == "appear" and style in APPEAR_VERB_FIRST:
            return f"{connector}{first}{APPEAR_VERB_FIRST[style]}{self.noun_phrase(step.obj)}"
        return f"{connector}{self.noun_phrase(step.obj)}{first}{verb}"
