"""Reading and writing JSON-lines manifests.

A manifest has one JSON object per line and one row per image or video clip::

    {"image": "images/x.png", "captions": {"en": ["..."], "de": ["..."]}, ...other fields}
    {"video": "clips/x.mp4", "captions": {"en": ["..."], "de": ["..."]}, ...other fields}

Paths are relative to the manifest file. :func:`load_manifest` returns a ``datasets.Dataset``
whose ``image`` / ``video`` columns hold absolute path strings (decoding is left to mmml's
processors), ``captions`` is a struct with one list of strings per language (empty where a row
lacks the language), and every other field is kept; the media paths in :data:`MEDIA_PATH_FIELDS`
are made absolute as well. Every image and clip is checked on load (an image: PIL can open and
verify it; a clip: the container opens, has a video stream and its first frame decodes, with PyAV
or decord; only existence when neither is installed); a bad one raises :class:`BadSampleError` or,
with ``skip_bad_samples=True``, is skipped, logged and listed in the :class:`ManifestReport` of
:func:`load_manifest_with_report`. Structural problems (invalid JSON, a row with neither ``image``
nor ``video``, or without ``captions``) always raise :class:`ManifestFormatError`: nothing is
dropped silently. Rows are numbered by their 1-based line in the file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pyarrow as pa
from datasets import Dataset, DatasetDict, List, Value
from datasets import Image as ImageFeature
from PIL import Image

from mmml.data.images import decode_image
from mmml.data.video import video_problem

logger = logging.getLogger(__name__)

#: fields besides ``image`` / ``video`` holding a path relative to the manifest; made absolute on load (not checked)
MEDIA_PATH_FIELDS: tuple[str, ...] = ("speech", "audio")
#: the media fields a row needs one of; each is made absolute and checked on load
CHECKED_MEDIA_FIELDS: tuple[str, ...] = ("image", "video")

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ManifestFormatError(ValueError):
    """The manifest itself is malformed (bad JSON, missing ``image`` / ``video`` / ``captions``, bad types)."""


class BadSampleError(ValueError):
    """A manifest row points to an image or clip that is missing or cannot be read."""


@dataclass(frozen=True)
class SkippedRow:
    """A row left out by ``skip_bad_samples=True``; ``row`` is the 1-based line number.

    ``image`` is the bad file's path (also for a clip: ``column`` says which field it was).
    """

    row: int
    image: str
    reason: str
    column: str = "image"


@dataclass
class ManifestReport:
    """What :func:`load_manifest_with_report` read and what it skipped."""

    path: Path
    rows_read: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    @property
    def num_loaded(self) -> int:
        return self.rows_read - self.num_skipped


def image_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a readable image (file missing, PIL cannot open or verify it), or None."""
    if not os.path.isfile(path):
        return "file not found"
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as error:  # PIL raises many types for corrupt files
        return f"PIL cannot read it ({type(error).__name__}: {error})"
    return None


_MEDIA_CHECKS = {"image": image_problem, "video": video_problem}


def _iter_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("r", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ManifestFormatError(
                    f"{path}: row {line_number}: invalid JSON ({error.msg} at column {error.colno})"
                ) from None
            if not isinstance(row, dict):
                raise ManifestFormatError(
                    f"{path}: row {line_number}: expected a JSON object, got {type(row).__name__}"
                )
            yield line_number, row


def _normalise_captions(value: Any, where: str) -> dict[str, list[str]]:
    if not isinstance(value, Mapping):
        raise ManifestFormatError(f"{where}: 'captions' must map language codes to lists of strings")
    captions: dict[str, list[str]] = {}
    for language, texts in value.items():
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise ManifestFormatError(f"{where}: captions[{language!r}] must be a string or a list of strings")
        captions[str(language)] = texts
    return captions


def _absolute(base: Path, relative: str) -> str:
    return os.path.abspath(os.path.join(base, relative))


def load_manifest_with_report(
    path: str | os.PathLike, skip_bad_samples: bool = False, languages: Sequence[str] | None = None
) -> tuple[Dataset, ManifestReport]:
    """Load a manifest as a ``datasets.Dataset`` and report which rows were skipped.

    Args:
        path: the ``.jsonl`` manifest.
        skip_bad_samples: skip rows whose image or clip is missing or unreadable (logged as a
            warning and listed in the report) instead of raising :class:`BadSampleError`.
        languages: caption languages to keep, in this order (absent ones become empty lists);
            default: every language seen in the file, in order of first appearance.
    """
    manifest = Path(path)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    base = manifest.resolve().parent
    report = ManifestReport(path=manifest)
    rows: list[dict[str, Any]] = []
    captions: list[dict[str, list[str]]] = []
    columns: dict[str, None] = {}  # ordered union of the fields of all rows
    seen_languages: dict[str, None] = {}
    for line_number, row in _iter_rows(manifest):
        report.rows_read += 1
        where = f"{manifest}: row {line_number}"
        media = [name for name in CHECKED_MEDIA_FIELDS if name in row]
        if not media:
            raise ManifestFormatError(f"{where}: missing required field 'image' (or 'video' for a clip)")
        if "captions" not in row:
            raise ManifestFormatError(f"{where}: missing required field 'captions'")
        for name in media:
            if not isinstance(row[name], str) or not row[name]:
                raise ManifestFormatError(f"{where}: {name!r} must be a non-empty path string, got {row[name]!r}")
        row_captions = _normalise_captions(row["captions"], where)
        # the schema comes from every row, so skipping a bad one never changes it
        seen_languages.update(dict.fromkeys(row_captions))
        columns.update(dict.fromkeys(row))
        kept = dict(row)
        bad = None
        for name in media:
            kept[name] = _absolute(base, row[name])
            problem = _MEDIA_CHECKS[name](kept[name])
            if problem is not None:
                bad = SkippedRow(line_number, kept[name], problem, column=name)
                break
        if bad is not None:
            if not skip_bad_samples:
                raise BadSampleError(
                    f"{where}: {bad.column} {bad.image}: {bad.reason} (pass skip_bad_samples=True to skip such rows)"
                )
            report.skipped.append(bad)
            continue
        for name in MEDIA_PATH_FIELDS:
            if isinstance(kept.get(name), str) and kept[name]:
                kept[name] = _absolute(base, kept[name])
        rows.append(kept)
        captions.append(row_captions)

    if report.skipped:
        logger.warning(
            "%s: skipped %d of %d rows with bad images or clips (rows %s)",
            manifest, report.num_skipped, report.rows_read, ", ".join(str(s.row) for s in report.skipped),
        )
    caption_languages = list(languages) if languages is not None else list(seen_languages)
    column_names = list(columns) or ["image", "captions"]  # no rows kept: still the two required columns
    return _rows_to_dataset(manifest, rows, captions, column_names, caption_languages), report


def _rows_to_dataset(
    manifest: Path,
    rows: list[dict[str, Any]],
    captions: list[dict[str, list[str]]],
    columns: list[str],
    languages: list[str],
) -> Dataset:
    captions_type = pa.struct([(language, pa.list_(pa.string())) for language in languages])
    mapping: dict[str, Any] = {}
    for name in columns:
        if name in CHECKED_MEDIA_FIELDS:
            mapping[name] = pa.array([row.get(name) for row in rows], type=pa.string())
        elif name == "captions":
            mapping[name] = pa.array(
                [{language: texts.get(language, []) for language in languages} for texts in captions],
                type=captions_type,
            )
        else:
            mapping[name] = [row.get(name) for row in rows]
    try:
        dataset = Dataset.from_dict(mapping)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as error:
        raise ManifestFormatError(f"{manifest}: fields have inconsistent types across rows: {error}") from error
    captions_feature = {language: List(Value("string")) for language in languages}
    if dataset.features["captions"] != captions_feature:  # e.g. no languages at all
        dataset = dataset.cast_column("captions", captions_feature)
    return dataset


def load_manifest(
    path: str | os.PathLike, skip_bad_samples: bool = False, languages: Sequence[str] | None = None
) -> Dataset:
    """Load a manifest as a ``datasets.Dataset`` (see :func:`load_manifest_with_report`)."""
    dataset, _ = load_manifest_with_report(path, skip_bad_samples=skip_bad_samples, languages=languages)
    return dataset


def _image_suffix(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    return None


def _write_image(value: Any, target_stem: Path) -> Path:
    """Write one image cell (``{"bytes", "path"}`` dict or path string) next to ``target_stem``."""
    data = value.get("bytes") if isinstance(value, Mapping) else None
    source = value.get("path") if isinstance(value, Mapping) else value
    if data:
        suffix = _image_suffix(data)
        if suffix is None:  # any other format: store as PNG
            target = target_stem.with_suffix(".png")
            decode_image(data).save(target, format="PNG")
            return target
        target = target_stem.with_suffix(suffix)
        target.write_bytes(data)
        return target
    if source:
        target = target_stem.with_suffix(Path(source).suffix.lower() or ".png")
        shutil.copyfile(source, target)
        return target
    raise ValueError(f"image for {target_stem.name} has neither bytes nor a path")


def _iter_rows_batched(dataset: Dataset, batch_size: int = 1000) -> Iterator[dict[str, Any]]:
    # batched reads are much faster than datasets' row-by-row iteration
    for batch in dataset.iter(batch_size=batch_size):
        names = list(batch)
        for values in zip(*(batch[name] for name in names)):
            yield dict(zip(names, values))


def write_manifest(
    dataset: DatasetDict | Mapping[str, Dataset] | Dataset, out_dir: str | os.PathLike, split: str | None = None
) -> dict[str, Path]:
    """Write ``out_dir/images/<id>.<ext>`` and one ``out_dir/<split>.jsonl`` per split.

    ``<id>`` is the row's ``scene_id`` when the dataset has one, else ``<split>-<index:06d>``.
    Encoded image bytes are written unchanged; every other column is copied into the rows.
    A single ``Dataset`` is written as ``split`` (default: its own split name, else "train").
    Returns the manifest path of every split.
    """
    if isinstance(dataset, Dataset):
        dataset = {split or (str(dataset.split) if dataset.split else "train"): dataset}
    out = Path(out_dir)
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    written_names: set[str] = set()
    manifests: dict[str, Path] = {}
    for split_name, split_dataset in dataset.items():
        if "image" not in split_dataset.column_names:
            raise ValueError(f"split {split_name!r} has no 'image' column")
        if isinstance(split_dataset.features["image"], ImageFeature):
            split_dataset = split_dataset.cast_column("image", ImageFeature(decode=False))
        manifest_path = out / f"{split_name}.jsonl"
        with manifest_path.open("w", encoding="utf-8") as handle:
            for index, row in enumerate(_iter_rows_batched(split_dataset)):
                name = str(row.get("scene_id") or f"{split_name}-{index:06d}")
                if name in written_names:
                    raise ValueError(f"split {split_name!r} row {index}: duplicate image id {name!r}")
                if not _SAFE_NAME.match(name):
                    raise ValueError(f"split {split_name!r} row {index}: id {name!r} is not a safe file name")
                written_names.add(name)
                image_file = _write_image(row["image"], image_dir / name)
                record = row
                record["image"] = image_file.relative_to(out).as_posix()
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        manifests[split_name] = manifest_path
    return manifests
