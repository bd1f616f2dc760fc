"""Per-language caption grammars, keyed by ISO 639-1 code."""

from __future__ import annotations

from mmml.data.scenes.grammars.base import Grammar
from mmml.data.scenes.grammars.de import GermanGrammar
from mmml.data.scenes.grammars.en import EnglishGrammar
from mmml.data.scenes.grammars.es import SpanishGrammar
from mmml.data.scenes.grammars.fr import FrenchGrammar
from mmml.data.scenes.grammars.ru import RussianGrammar
from mmml.data.scenes.grammars.zh import ChineseGrammar

GRAMMARS: dict[str, Grammar] = {
    grammar.code: grammar
    for grammar in (
        EnglishGrammar(), GermanGrammar(), FrenchGrammar(), SpanishGrammar(), RussianGrammar(), ChineseGrammar()
    )
}

#: Caption languages the scene generator supports (ISO 639-1 codes).
SCENE_LANGUAGES: tuple[str, ...] = tuple(GRAMMARS)


def get_grammar(language: str) -> Grammar:
    """The grammar for ``language``; ValueError listing the supported codes otherwise."""
    try:
        return GRAMMARS[language]
    except KeyError:
        raise ValueError(f"no scene grammar for language {language!r}; supported: {list(SCENE_LANGUAGES)}") from None


__all__ = ["GRAMMARS", "SCENE_LANGUAGES", "Grammar", "get_grammar"]
