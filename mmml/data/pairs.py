"""Training pairs over a dataset's media and captions: one media item, one of its captions, per item.

`MultimodalPairs` keeps the media as the dataset holds them (paths, bytes, `{"bytes", "path"}`
dicts, PIL images) and decodes nothing: decoding happens per batch in the collator
(`mmml.data.collate.MultimodalCollator`), in the DataLoader's workers, so video and audio fit and
a bad file is reported (or skipped) when it is met.

The caption (language and phrasing) of item `i` is drawn from a generator seeded by
`(seed, epoch, i)`, not from global random state, so a run resumed mid-epoch sees exactly the
captions an uninterrupted run would, and every process agrees on them.
"""

from __future__ import annotations

import logging
import multiprocessing
import warnings
from collections.abc import Sequence
from multiprocessing import context as multiprocessing_context

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mmml.data.collate import MultimodalCollator

logger = logging.getLogger(__name__)

__all__ = ["ImageTextCollator", "ImageTextPairs", "LengthGroupedBatchSampler", "MultimodalPairs"]

# Older name of the collator; it now takes the processor: `ImageTextCollator(processor, max_text_length)`.
ImageTextCollator = MultimodalCollator


class _SharedEpoch:
    """The epoch in shared memory, so DataLoader workers (persistent ones too) see `set_epoch`.

    A worker holds its own copy of the dataset; with a plain int, a persistent worker would keep
    drawing the captions of the epoch it started in. Fork-started workers inherit the memory,
    spawn-started ones receive it while being spawned; any other pickle / deepcopy takes the value.
    """

    def __init__(self, value: int = 0):
        self._shared = multiprocessing.RawValue("q", value)

    @property
    def value(self) -> int:
        return int(self._shared.value)

    @value.setter
    def value(self, epoch: int) -> None:
        self._shared.value = int(epoch)

    def __getstate__(self):
        if multiprocessing_context.get_spawning_popen() is not None:
            return {"shared": self._shared}
        return {"value": self.value}

    def __setstate__(self, state):
        self._shared = state["shared"] if "shared" in state else multiprocessing.RawValue("q", state["value"])


def _column_names(dataset) -> list[str]:
    names = getattr(dataset, "column_names", None)
    return list(names) if names is not None else list(dataset.keys())


def _undecoded(dataset, columns: Sequence[str]):
    """The dataset with `columns` only, its `datasets.Image` columns switched to undecoded `{"bytes", "path"}`."""
    try:
        from datasets import Dataset as ArrowDataset
        from datasets import Image as ImageFeature
    except ImportError:  # pragma: no cover - datasets is a dependency
        return None
    if not isinstance(dataset, ArrowDataset):
        return None
    media = dataset.select_columns(list(columns))
    for column in columns:
        feature = media.features[column]
        if isinstance(feature, ImageFeature) and feature.decode:
            media = media.cast_column(column, ImageFeature(mode=feature.mode, decode=False))
    return media


def _multi_hot(label_rows, spec, row_indices: Sequence[int]) -> torch.Tensor:
    """`[len(rows), K]` float multi-hot labels: `spec` an int K (ids 0..K-1) or a sequence of the K label ids."""
    if isinstance(spec, bool) or not isinstance(spec, (int, Sequence)) or isinstance(spec, str):
        raise ValueError(f"labels must be None, a number of labels or a sequence of label ids, got {spec!r}")
    if isinstance(spec, int):
        if spec < 1:
            raise ValueError(f"labels (the number of labels) must be >= 1, got {spec}")
        labels = torch.zeros(len(label_rows), spec)
        for i, ids in enumerate(label_rows):
            ids = list(ids or [])
            if ids and (min(ids) < 0 or max(ids) >= spec):
                raise ValueError(f"row {row_indices[i]} has label ids {ids} outside [0, {spec})")
            labels[i, ids] = 1.0
        return labels
    column = {label: position for position, label in enumerate(spec)}
    if len(column) != len(spec):
        raise ValueError(f"labels lists a label id twice: {list(spec)}")
    labels = torch.zeros(len(label_rows), len(column))
    for i, ids in enumerate(label_rows):
        for label in ids or []:
            if label in column:
                labels[i, column[label]] = 1.0
    return labels


class MultimodalPairs(Dataset):
    """A dataset with `captions` and media columns as (media, caption) items; nothing is decoded here.

    Args:
        dataset: a `datasets.Dataset` (or a mapping of column -> list) with a `captions` column
            (language -> list of str) and the `media_columns`.
        media_columns: the columns whose values (paths, bytes, `{"bytes", "path"}` dicts, PIL
            images) the items carry as they are; a `datasets.Image` column is read undecoded.
        languages: the caption languages to draw from (default: every language with a caption).
            Rows without a caption in any of them cannot be trained on; they are left out and
            counted in the log (`row_indices` lists the rows kept).
        seed: the caption draw of item `i` in epoch `e` depends only on `(seed, e, i)`.
        paired_caption: items add `paired_text`, a second caption of the same row, a different one
            whenever the row has more than one (text-text matching).
        labels: items add `labels`, a float multi-hot vector built from the dataset's `labels`
            column (label ids): an int K (ids 0..K-1; other ids raise a ValueError naming the row)
            or a sequence of label ids (one position per id, in that order; other ids ignored).

    An item is `{"row": dataset row, "index": item index, "text", "language", <media column>:
    source, ["media_seed"], ["paired_text"], ["labels"]}`; `media_seed` (with media columns) is
    `(seed, epoch, index)`, from which the collator seeds random draws while decoding (the frames a
    training clip shows), so they too are the same in resumed runs and in every worker.
    `__getitems__` fetches a batch of items in one read.
    """

    def __init__(self, dataset, media_columns: Sequence[str] = ("image",), languages: Sequence[str] | None = None,
                 seed: int = 0, paired_caption: bool = False, labels: int | Sequence[int] | None = None):
        if isinstance(media_columns, str):
            media_columns = (media_columns,)
        self.media_columns = list(media_columns)
        columns = _column_names(dataset)
        missing = [column for column in ["captions", *self.media_columns] if column not in columns]
        if missing:
            raise ValueError(f"the dataset has no column {', '.join(map(repr, missing))}; its columns: {columns}")
        captions = dataset["captions"]
        available = sorted({lang for row in captions for lang, texts in row.items() if texts})
        if languages is None:
            languages = available
        unknown = sorted(set(languages) - set(available))
        if unknown:
            raise ValueError(f"languages {unknown} have no captions in this dataset; available: {available}")
        self.languages = list(languages)
        self.seed = seed
        self._epoch = _SharedEpoch(0)
        self.paired_caption = paired_caption
        self._captions: list[list[tuple[str, str]]] = []
        keep: list[int] = []
        for index, row in enumerate(captions):
            options = [(lang, text) for lang in self.languages for text in (row.get(lang) or [])]
            if options:
                keep.append(index)
                self._captions.append(options)
        if len(keep) < len(captions):
            logger.warning(
                "%d of %d rows have no caption in %s and are not used for training",
                len(captions) - len(keep), len(captions), self.languages,
            )
        self.row_indices = keep
        self._media = _undecoded(dataset, self.media_columns) if self.media_columns else None
        self._media_lists = None
        if self._media is None and self.media_columns:
            self._media_lists = {column: dataset[column] for column in self.media_columns}
        self.labels: torch.Tensor | None = None
        if labels is not None:
            if "labels" not in columns:
                raise ValueError(f"labels={labels!r} needs a `labels` column; the dataset has {columns}")
            label_column = list(dataset["labels"])
            self.labels = _multi_hot([label_column[row] for row in keep], labels, keep)

    @property
    def epoch(self) -> int:
        """The epoch whose captions the items show (shared with DataLoader workers)."""
        return self._epoch.value

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self._epoch.value = epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._captions)

    def caption(self, index: int, epoch: int) -> tuple[str, str]:
        """The (language, caption) item `index` shows in `epoch`."""
        options = self._captions[index]
        rng = np.random.default_rng((self.seed, epoch, index))
        return options[int(rng.integers(len(options)))]

    def second_caption(self, index: int, epoch: int) -> tuple[str, str]:
        """Another caption of item `index` (the same one only when the row has a single caption)."""
        options = self._captions[index]
        first = self.caption(index, epoch)
        others = [option for option in options if option != first] or options
        rng = np.random.default_rng((self.seed, epoch, index, 1))
        return others[int(rng.integers(len(others)))]

    def caption_lengths(self, epoch: int) -> np.ndarray:
        """Character length of every item's caption in `epoch` (a cheap proxy for token length)."""
        return np.array([len(self.caption(i, epoch)[1]) for i in range(len(self))])

    def _media_of(self, rows: list[int]) -> list[dict]:
        if not self.media_columns:
            return [{} for _ in rows]
        if self._media is not None:
            batch = self._media[rows]  # one Arrow read for the whole batch
            return [{column: batch[column][i] for column in self.media_columns} for i in range(len(rows))]
        return [{column: self._media_lists[column][row] for column in self.media_columns} for row in rows]

    def _item(self, index: int, media: dict) -> dict:
        epoch = self.epoch
        language, text = self.caption(index, epoch)
        item = {"row": self.row_indices[index], "index": index, "text": text, "language": language, **media}
        if self.media_columns:
            item["media_seed"] = (self.seed, epoch, index)
        if self.paired_caption:
            item["paired_text"] = self.second_caption(index, epoch)[1]
        if self.labels is not None:
            item["labels"] = self.labels[index]
        return item

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} pairs")
        return self._item(index, self._media_of([self.row_indices[index]])[0])

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        indices = [int(i) + len(self) if int(i) < 0 else int(i) for i in indices]
        for index in indices:
            if not 0 <= index < len(self):
                raise IndexError(f"item {index} out of range for {len(self)} pairs")
        media = self._media_of([self.row_indices[i] for i in indices])
        return [self._item(index, item_media) for index, item_media in zip(indices, media)]


class ImageTextPairs(MultimodalPairs):
    """`MultimodalPairs` over the `image` column (kept for older callers; items carry the image source).

    `image_processor` is accepted for compatibility and ignored: images are decoded and processed
    per batch by `mmml.data.collate.MultimodalCollator`.
    """

    def __init__(self, dataset, image_processor=None, languages: Sequence[str] | None = None, seed: int = 0, **kwargs):
        if image_processor is not None:
            warnings.warn(
                "ImageTextPairs no longer processes images up front: image_processor is ignored; batch the items "
                "with mmml.data.collate.MultimodalCollator(processor)", DeprecationWarning, stacklevel=2,
            )
        super().__init__(dataset, media_columns=("image",), languages=languages, seed=seed, **kwargs)


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Random batches whose captions have similar lengths, so little compute goes to padding.

    Each epoch: shuffle all items, cut the order into mega-batches of `group_batches` batches,
    sort each mega-batch by caption length, cut it into batches and shuffle the batch order.
    Everything is drawn from `(seed, epoch)`, so runs and resumed runs see the same batches.
    Similar-length captions describe similar numbers of objects, which also makes in-batch
    negatives harder than in uniformly random batches.
    """

    def __init__(self, pairs, batch_size: int, group_batches: int = 16, seed: int = 0):
        """`pairs`: any dataset with `caption_lengths(epoch)` (e.g. `MultimodalPairs`)."""
        if batch_size < 1 or group_batches < 1:
            raise ValueError(f"batch_size and group_batches must be >= 1, got {batch_size}, {group_batches}")
        self.pairs = pairs
        self.batch_size = batch_size
        self.group_batches = group_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs) // self.batch_size

    def __iter__(self):
        rng = np.random.default_rng((self.seed, self.epoch, 1))
        lengths = self.pairs.caption_lengths(self.epoch)
        order = rng.permutation(len(lengths))[: len(self) * self.batch_size]
        group = self.batch_size * self.group_batches
        batches = []
        for start in range(0, len(order), group):
            chunk = order[start : start + group]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size))
        for position in rng.permutation(len(batches)):
            yield batches[position]
