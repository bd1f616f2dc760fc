"""Word-level parallel text from the FreeDict bilingual dictionaries that Debian packages.

    apt-get install dict-freedict-deu-eng dict-freedict-eng-deu dict-freedict-fra-eng \
        dict-freedict-eng-fra dict-freedict-ces-eng dict-freedict-eng-ces
    python benchmarks/dictionary_pairs.py de        # prints how many pairs and a sample

Multi30K teaches an acquirer the words of image captions only; a dictionary adds the rest of a
language's everyday vocabulary. `dictionary_pairs(language, english_vocabulary)` returns
(foreign word, English word) pairs from both directions of the dictionary, keeping single
foreign words whose translation is one common English word (one that is a whole word piece of
the English teacher's tokenizer, so its teacher embedding is meaningful on its own).
"""

from __future__ import annotations

import gzip
import re
import sys
from collections.abc import Iterator
from pathlib import Path

DICTD = Path("/usr/share/dictd")
ISO3 = {"de": "deu", "fr": "fra", "cs": "ces"}
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_MARKUP = re.compile(r"/[^/]*/|<[^>]*>|\[[^\]]*\]|\([^)]*\)|\{[^}]*\}")
_WORD = re.compile(r"^[^\W\d_]+$")


def _decode_number(text: str) -> int:
    value = 0
    for char in text:
        value = value * 64 + _BASE64.index(char)
    return value


def dictd_entries(name: str) -> Iterator[tuple[str, str]]:
    """(headword line, first definition line) of every entry of `/usr/share/dictd/freedict-<name>`."""
    index = DICTD / f"freedict-{name}.index"
    if not index.exists():
        raise FileNotFoundError(f"{index} is missing: apt-get install dict-freedict-{name}")
    data = gzip.open(DICTD / f"freedict-{name}.dict.dz").read()
    for line in index.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0].startswith("00database"):
            continue
        start, length = _decode_number(parts[1]), _decode_number(parts[2])
        lines = [x for x in data[start : start + length].decode("utf-8", "replace").splitlines() if x.strip()]
        if len(lines) >= 2:
            yield lines[0], lines[1]


def _terms(text: str) -> list[str]:
    """The comma / semicolon separated terms of a line, without pronunciations, tags and notes."""
    return [term.strip() for term in re.split(r"[,;]", _MARKUP.sub(" ", text)) if term.strip()]


def dictionary_pairs(language: str, english_vocabulary: set[str]) -> list[tuple[str, str]]:
    """(foreign word, English word) pairs, one per foreign word, first translation kept."""
    iso = ISO3[language]
    pairs: dict[str, str] = {}

    def keep(foreign: str, english: str) -> None:
        if _WORD.match(foreign) and english.lower() in english_vocabulary and foreign not in pairs:
            pairs[foreign] = english.lower()

    for head, definition in dictd_entries(f"{iso}-eng"):
        foreign = _terms(head)[:1]
        for english in _terms(definition)[:1]:
            if foreign:
                keep(foreign[0], english)
    for head, definition in dictd_entries(f"eng-{iso}"):
        english = _terms(head)[:1]
        for foreign in _terms(definition)[:2]:
            if english:
                keep(foreign, english[0])
    return sorted(pairs.items())


def english_word_pieces(tokenizer) -> set[str]:
    """Whole-word, purely alphabetic entries of a word-piece vocabulary (no `##` continuations)."""
    return {piece for piece in tokenizer.get_vocab() if _WORD.match(piece) and len(piece) > 1}


if __name__ == "__main__":
    from transformers import AutoTokenizer

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from multilingual_acquirers import minilm_path

    found = dictionary_pairs(sys.argv[1], english_word_pieces(AutoTokenizer.from_pretrained(minilm_path())))
    print(len(found), "pairs; e.g.", found[:: max(1, len(found) // 15)])
