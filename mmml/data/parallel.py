"""Parallel text (the same sentences in several languages): line-aligned files or a JSONL manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path


class ParallelDataError(ValueError):
    """Parallel data that cannot be aligned: unequal files, missing languages, empty lines."""


def _read_lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.rstrip("\n").rstrip("\r") for line in handle]
    except FileNotFoundError as error:
        raise ParallelDataError(f"parallel text file {path} does not exist") from error
    except UnicodeDecodeError as error:
        raise ParallelDataError(f"parallel text file {path} is not UTF-8 ({error})") from error


def load_parallel_files(files: Mapping[str, str | os.PathLike]) -> dict[str, list[str]]:
    """Read line-aligned files `{language: path}` into `{language: [sentence, ...]}`.

    Every file must have the same number of lines and no empty line: line i of each file is the
    same sentence. A mismatch names both files and their line counts instead of silently zipping
    to the shorter one.
    """
    if len(files) < 2:
        raise ParallelDataError(f"parallel data needs at least two languages, got {sorted(files)}")
    texts = {language: _read_lines(Path(path)) for language, path in files.items()}
    (first_lang, first_lines), *rest = texts.items()
    for language, lines in rest:
        if len(lines) != len(first_lines):
            raise ParallelDataError(
                f"parallel files differ in length: {files[first_lang]} ({first_lang}) has {len(first_lines)} "
                f"lines, {files[language]} ({language}) has {len(lines)}; line i of each file must be the same sentence"
            )
    for language, lines in texts.items():
        empty = [i + 1 for i, line in enumerate(lines) if not line.strip()]
        if empty:
            raise ParallelDataError(f"{files[language]} ({language}) has empty lines: {empty[:5]} (1-based)")
    return texts


def load_parallel_manifest(path: str | os.PathLike, languages: list[str]) -> dict[str, list[str]]:
    """Read a JSON-lines file of `{"en": "...", "de": "...", ...}` rows, keeping `languages`.

    Every row must have a non-empty string for each requested language; the error names the
    file, the 1-based line and the missing language.
    """
    path = Path(path)
    texts: dict[str, list[str]] = {language: [] for language in languages}
    try:
        handle = open(path, encoding="utf-8")
    except FileNotFoundError as error:
        raise ParallelDataError(f"parallel manifest {path} does not exist") from error
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ParallelDataError(f"{path}:{number} is not valid JSON ({error.msg})") from error
            for language in languages:
                value = row.get(language) if isinstance(row, dict) else None
                if not isinstance(value, str) or not value.strip():
                    found = sorted(row) if isinstance(row, dict) else type(row).__name__
                    raise ParallelDataError(
                        f"{path}:{number} has no {language!r} sentence (row keys: {found}); "
                        f"every row needs all of {languages}"
                    )
                texts[language].append(value)
    if not texts[languages[0]]:
        raise ParallelDataError(f"parallel manifest {path} has no rows")
    return texts


def parallel_files_in(directory: str | os.PathLike, split: str, languages: list[str]) -> dict[str, Path]:
    """`{language: directory/split.language}` for Multi30K-style folders (`train.en`, `train.de`, ...)."""
    directory = Path(directory)
    files = {language: directory / f"{split}.{language}" for language in languages}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        present = sorted(p.name for p in directory.glob(f"{split}.*")) if directory.is_dir() else []
        raise ParallelDataError(f"missing parallel files {missing}; {directory} has {present or 'no such files'}")
    return files
