"""Parallel text (the same sentences in several languages): line-aligned files or a JSONL manifest.

A parallel *source* is a folder or a `.jsonl` file with a sampling weight (`ParallelSource`). A folder
holds either layout, resolved by `resolve_parallel_files`:

- flat (Multi30K): `train.en`, `train.de`, `val.en`, ... (any number of aligned languages);
- pair folders (news-parallel): `en-de/train.en`, `en-de/train.de`, `en-fr/...` (two languages,
  the folder named in either order).

`SourceMixture` decides which items of which source an epoch holds, from the weights and a seed.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np


class ParallelDataError(ValueError):
    """Parallel data that cannot be aligned: unequal files, missing languages, empty lines."""


class ParallelFilesNotFound(ParallelDataError):
    """A source has no files for a split and languages (a split it does not have, or a language)."""


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




def _layout_candidates(directory: Path, split: str, languages: Sequence[str]) -> list[dict[str, Path]]:
    """The file sets `resolve_parallel_files` tries, in order: flat, then `{a}-{b}/`, then `{b}-{a}/`."""
    candidates = [{language: directory / f"{split}.{language}" for language in languages}]
    if len(languages) == 2:
        first, second = languages
        for folder in dict.fromkeys((f"{first}-{second}", f"{second}-{first}")):
            candidates.append({language: directory / folder / f"{split}.{language}" for language in languages})
    return candidates


def _describe_folder(directory: Path, split: str) -> str:
    """What a source folder holds for `split`, for error messages."""
    if not directory.is_dir():
        return f"{directory} is not a folder"
    flat = sorted(p.name for p in directory.glob(f"{split}.*"))
    text = f"{directory} has {flat or 'no such files'}"
    pairs = sorted(p.name for p in directory.iterdir() if p.is_dir() and "-" in p.name)
    if pairs:
        splits = sorted({f.name.split(".")[0] for pair in pairs for f in (directory / pair).iterdir() if f.is_file()})
        text += f" and pair folders {pairs} (splits {splits})"
    return text


def resolve_parallel_files(
    directory: str | os.PathLike, split: str, languages: Sequence[str]
) -> dict[str, Path]:
    """`{language: file}` of `split` in a source folder, in either layout.

    Tried in order: flat `{split}.{language}` files (any number of languages), then, for two
    languages, a pair folder `{a}-{b}/{split}.{language}` named in either order. The first layout
    whose files all exist wins; when none does, `ParallelFilesNotFound` lists every file looked for
    and what the folder holds.
    """
    directory, languages = Path(directory), list(languages)
    candidates = _layout_candidates(directory, split, languages)
    for files in candidates:
        if all(path.is_file() for path in files.values()):
            return files
    looked_for = "; ".join(" + ".join(str(path) for path in files.values()) for files in candidates)
    raise ParallelFilesNotFound(
        f"no {split!r} parallel files for {languages} in {directory}: looked for {looked_for}; "
        f"{_describe_folder(directory, split)}"
    )


parallel_files_in = resolve_parallel_files  # the earlier, flat-only name


def load_parallel_source(path: str | os.PathLike, split: str, languages: Sequence[str]) -> dict[str, list[str]]:
    """`{language: sentences}` of `split`: a folder through `resolve_parallel_files`, or a JSON-lines
    file (which has no splits: the same rows for every split)."""
    if str(path).endswith(".jsonl"):
        return load_parallel_manifest(path, list(languages))
    return load_parallel_files(resolve_parallel_files(path, split, languages))


def _default_name(path: str) -> str:
    return Path(path).stem if path.endswith(".jsonl") else Path(path).name


@dataclass(frozen=True)
class ParallelSource:
    """One parallel corpus of a mixture and its sampling weight (how it is drawn: `SourceMixture`).

    `path`: a folder (flat or pair-folder layout) or a `.jsonl` file; `name` (default: the folder's
    or file's name) labels the source in logs and metrics.
    """

    path: str
    weight: float = 1.0
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "path", str(self.path))
        if not self.path:
            raise ParallelDataError("a parallel source needs a path")
        weight = self.weight
        is_number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
        if not (is_number and math.isfinite(weight) and weight > 0):
            raise ParallelDataError(f"parallel source {self.path}: weight must be a positive number, got {weight!r}")
        object.__setattr__(self, "weight", float(weight))
        object.__setattr__(self, "name", self.name or _default_name(self.path))


def _from_mapping(cls: type, item: Mapping) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(item) - known)
    if unknown:
        raise ParallelDataError(f"{cls.__name__} {dict(item)}: unknown keys {unknown}; valid keys: {sorted(known)}")
    return cls(**item)


def _source_from_string(text: str) -> ParallelSource:
    """`path` or `path=weight`."""
    head, eq, tail = text.strip().rpartition("=")
    try:
        weight = float(tail) if eq else None
    except ValueError:
        weight = None
    return ParallelSource(text.strip()) if weight is None else ParallelSource(head, weight)


def _items(value: Any) -> list:
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:  # comma-separated strings are several items
        if isinstance(item, (str, os.PathLike)):
            out.extend(part for part in str(item).split(",") if part.strip())
        else:
            out.append(item)
    return out


def _check_unique(names: list, what: str) -> None:
    repeated = sorted({str(name) for name in names if names.count(name) > 1})
    if repeated:
        raise ParallelDataError(f"{what} share the names {repeated}; give each its own `name`")


def _parse_specs(value: Any, spec_class: type, from_string, expected: str) -> list:
    """Instances of `spec_class` from `_items(value)`: instances as they are, mappings by field name,
    strings through `from_string`; anything else is a `ParallelDataError` saying what was `expected`."""
    specs = []
    for item in _items(value):
        if isinstance(item, spec_class):
            specs.append(item)
        elif isinstance(item, Mapping):
            specs.append(_from_mapping(spec_class, item))
        elif isinstance(item, str):
            specs.append(from_string(item))
        else:
            raise ParallelDataError(f"{expected}, got {item!r}")
    return specs


def parse_parallel_sources(value: Any) -> list[ParallelSource]:
    """Sources from a config or command-line value.

    Accepted: a path (one source, weight 1); `path=weight`; several of those separated by commas;
    a mapping `{path, weight, name}`; a `ParallelSource`; or a list of any of them. Names must differ.
    """
    sources = _parse_specs(value, ParallelSource, _source_from_string,
                           "a parallel source is a path or a mapping with a `path`")
    if not sources:
        raise ParallelDataError("no parallel source given")
    _check_unique([source.name for source in sources], "parallel sources")
    return sources


def mixture_counts(weights: Sequence[float], total: int) -> list[int]:
    """`total` items shared out in proportion to `weights` (largest remainder: the floors of the
    quotas, then one more item each to the largest fractional parts, earlier sources first on ties)."""
    quotas = [total * weight / sum(weights) for weight in weights]
    counts = [math.floor(quota) for quota in quotas]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - quotas[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


_MIXTURE_STREAM = 0x6D6978  # keeps the mixture's random streams apart from other (seed, ...) streams


class SourceMixture:
    """Which items of which source each epoch holds; items are indices into the sources concatenated.

    Definition: an epoch holds `epoch_size` items (default: the sum of the sources' sizes), of which
    source i gets `counts[i] = mixture_counts(weights, epoch_size)[i]`: its share is exactly
    weight_i / sum(weights), up to rounding to whole items. Source i's items are read from an endless
    stream of its permutations (pass k shuffled by `(seed, i, k)`); epoch e takes positions
    `[e * counts[i], (e + 1) * counts[i])` of it. So every item of a source is used once before any is
    used twice; a source smaller than its share repeats (whole passes, then part of the next), a
    larger one is covered over several epochs. An epoch depends on `(seed, epoch)` only: it is the
    same on every process and rebuilt exactly on resume.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], seed: int = 0, epoch_size: int | None = None):
        if len(sizes) != len(weights) or not sizes:
            raise ValueError(f"need one weight per source, got {len(sizes)} sizes and {len(weights)} weights")
        if any(size < 1 for size in sizes) or any(not weight > 0 for weight in weights):
            raise ValueError(f"source sizes must be >= 1 and weights > 0, got {list(sizes)} and {list(weights)}")
        self.sizes = [int(size) for size in sizes]
        self.weights = [float(weight) for weight in weights]
        self.seed = int(seed)
        self.epoch_size = sum(self.sizes) if epoch_size is None else int(epoch_size)
        if self.epoch_size < 1:
            raise ValueError(f"epoch_size must be >= 1, got {self.epoch_size}")
        self.counts = mixture_counts(self.weights, self.epoch_size)
        self.offsets = np.cumsum([0, *self.sizes[:-1]])

    def __len__(self) -> int:
        return self.epoch_size

    def _pass(self, source: int, k: int) -> np.ndarray:
        return np.random.default_rng((self.seed, _MIXTURE_STREAM, source, k)).permutation(self.sizes[source])

    def _stream(self, source: int, start: int, stop: int) -> np.ndarray:
        """Positions `[start, stop)` of a source's stream of permutations (its own item indices)."""
        if stop <= start:
            return np.empty(0, dtype=np.int64)
        size = self.sizes[source]
        passes = range(start // size, (stop - 1) // size + 1)
        stream = np.concatenate([self._pass(source, k) for k in passes])
        return stream[start - passes[0] * size : stop - passes[0] * size]

    def epoch_items(self, epoch: int) -> np.ndarray:
        """The epoch's items, sorted (a batch sampler shuffles them); repeated items appear repeatedly."""
        parts = [self.offsets[i] + self._stream(i, epoch * count, (epoch + 1) * count)
                 for i, count in enumerate(self.counts)]
        return np.sort(np.concatenate(parts))

    def source_of(self, items: np.ndarray) -> np.ndarray:
        """The source index of each item."""
        return np.searchsorted(self.offsets, np.asarray(items), side="right") - 1


@dataclass
class ParallelPart:
    """One language pair of one source and split: `texts[i]` (in `language`) translates
    `translations[i]` (in the pivot language: the teacher's / base model's)."""

    source: str
    language: str
    texts: list[str]
    translations: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def _load_part(source: ParallelSource, split: str, pivot: str, language: str, max_pairs: int | None) -> ParallelPart:
    texts = load_parallel_source(source.path, split, [pivot, language])
    return ParallelPart(source.name, language, texts[language][:max_pairs], texts[pivot][:max_pairs])


def load_parallel_parts(
    sources: Sequence[ParallelSource],
    split: str,
    pivot: str,
    languages: Sequence[str],
    max_pairs: int | None = None,
    every_source: bool = True,
) -> tuple[list[ParallelPart], list[str]]:
    """Every `(source, language)` pair of `split` that exists, grouped by source in the given order,
    and a line per pair that does not (what was looked for).

    Each part pairs `language` with `pivot`, so pair folders (`en-de/`, `en-fr/`) and flat folders
    (all languages aligned) read alike; `max_pairs` keeps the first pairs of each part. With
    `every_source` (training) a source that has the split for none of `languages` is an error naming
    it; without (evaluation) it is left out. A language no source has is an error with
    `every_source`; without, the error comes only when no source has anything.
    """
    parts, missing = [], []
    for source in sources:
        found = []
        for language in languages:
            try:
                found.append(_load_part(source, split, pivot, language, max_pairs))
            except ParallelFilesNotFound as error:
                missing.append(f"source {source.name!r}: {error}")
        if every_source and not found:
            raise ParallelFilesNotFound(
                f"parallel source {source.name!r} ({source.path}) has no {split!r} split for any of "
                f"{[f'{pivot}-{language}' for language in languages]}: " + " | ".join(missing[-len(languages):])
            )
        parts.extend(found)
    absent = [language for language in languages if not any(part.language == language for part in parts)]
    if (every_source and absent) or not parts:
        raise ParallelFilesNotFound(
            f"no parallel source has a {split!r} split for {[f'{pivot}-{language}' for language in absent]}: "
            + " | ".join(missing)
        )
    return parts, missing


@dataclass(frozen=True)
class ParallelEvalSet:
    """A named bitext evaluation set: a source's split (`path`, optional `split`; default the
    recipe's eval split), or line-aligned `files` `{language: path}` (e.g. Tatoeba's, see
    `tatoeba_files`)."""

    name: str = ""
    path: str | None = None
    split: str | None = None
    files: dict[str, str] | None = None

    def __post_init__(self):
        if (self.path is None) == (self.files is None):
            raise ParallelDataError(f"eval set {self.name!r}: give exactly one of `path` or `files`")
        if self.files is not None and len(self.files) < 2:
            raise ParallelDataError(f"eval set {self.name!r}: `files` needs two languages, got {sorted(self.files)}")
        if not self.name:
            if self.path is None:
                raise ParallelDataError(f"an eval set of files {self.files} needs a `name`")
            object.__setattr__(self, "name", _default_name(str(self.path)))


def parse_eval_sets(value: Any) -> list[ParallelEvalSet]:
    """Eval sets from a config or command-line value: a path, a mapping `{name, path, split}` or
    `{name, files}`, a `ParallelEvalSet`, or a list of them (None: no eval set)."""
    return _parse_specs(value, ParallelEvalSet, lambda text: ParallelEvalSet(path=text.strip()),
                        "an eval set is a path or a mapping with `path` or `files`")


def load_eval_set_parts(
    spec: ParallelEvalSet, default_split: str | None, pivot: str, languages: Sequence[str]
) -> list[ParallelPart]:
    """The parts of an eval set for the languages it has (an error when it has none of `languages`)."""
    if spec.path is not None:
        split = spec.split or default_split
        if not split:
            raise ParallelDataError(f"eval set {spec.name!r}: no `split` and no eval split to default to")
        parts, _ = load_parallel_parts([ParallelSource(spec.path, name=spec.name)], split, pivot, languages,
                                       every_source=True)
        return parts
    if pivot not in spec.files:
        raise ParallelDataError(f"eval set {spec.name!r}: `files` has no {pivot!r} file (has {sorted(spec.files)})")
    parts = []
    for language in (lang for lang in languages if lang in spec.files):
        texts = load_parallel_files({pivot: spec.files[pivot], language: spec.files[language]})
        parts.append(ParallelPart(spec.name, language, texts[language], texts[pivot]))
    if not parts:
        raise ParallelDataError(f"eval set {spec.name!r} has files for {sorted(spec.files)}, none of {list(languages)}")
    return parts


# Tatoeba (LASER's test sets) names its files by ISO 639-3 codes: tatoeba.deu-eng.deu + tatoeba.deu-eng.eng.
TATOEBA_CODES = {
    "ar": "ara", "cs": "ces", "de": "deu", "el": "ell", "es": "spa", "fr": "fra", "he": "heb", "hi": "hin",
    "it": "ita", "ja": "jpn", "ko": "kor", "nl": "nld", "pl": "pol", "pt": "por", "ru": "rus", "sw": "swh",
    "tr": "tur", "uk": "ukr", "vi": "vie", "zh": "cmn",
}


def tatoeba_files(directory: str | os.PathLike, language: str, english: str = "en") -> dict[str, Path]:
    """`{english: .../tatoeba.xxx-eng.eng, language: .../tatoeba.xxx-eng.xxx}` for an ISO 639-1 `language`
    (an ISO 639-3 code is taken as is)."""
    code = TATOEBA_CODES.get(language, language)
    if not re.fullmatch(r"[a-z]{3}", code):
        raise ParallelDataError(f"no Tatoeba code for {language!r}; known: {sorted(TATOEBA_CODES)}")
    stem = Path(directory) / f"tatoeba.{code}-eng"
    return {english: stem.with_name(f"{stem.name}.eng"), language: stem.with_name(f"{stem.name}.{code}")}
