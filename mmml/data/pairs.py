"""Image-caption pairs for contrastive training: one image, one of its captions, per item.

The caption (language and phrasing) of item `i` is drawn from a generator seeded by
`(seed, epoch, i)`, not from global random state, so a run resumed mid-epoch sees exactly the
captions an uninterrupted run would, and every process agrees on them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

logger = logging.getLogger(__name__)


def encode_images(images: Sequence, image_processor, batch_size: int = 256) -> torch.Tensor:
    """Run `image_processor` over `images` (PIL images, paths or bytes) in batches; `[N, C, H, W]`."""
    from .images import decode_image

    chunks = []
    for start in range(0, len(images), batch_size):
        batch = [decode_image(image) for image in images[start : start + batch_size]]
        chunks.append(image_processor(images=batch, return_tensors="pt")["pixel_values"])
    return torch.cat(chunks) if chunks else torch.empty(0)


class ImageTextPairs(Dataset):
    """A `datasets.Dataset` with `image` and `captions` columns as (pixel_values, caption) items.

    Pixel values are computed once up front with the processor's image processor (images are
    small and re-decoding them every epoch would dominate a CPU step). Rows without a caption in
    any of `languages` cannot be trained on; they are left out and counted in the log.
    """

    def __init__(self, dataset, image_processor, languages: Sequence[str] | None = None, seed: int = 0):
        captions = dataset["captions"]
        available = sorted({lang for row in captions for lang, texts in row.items() if texts})
        if languages is None:
            languages = available
        unknown = sorted(set(languages) - set(available))
        if unknown:
            raise ValueError(f"languages {unknown} have no captions in this dataset; available: {available}")
        self.languages = list(languages)
        self.seed = seed
        self.epoch = 0
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
        images = dataset.select(keep)["image"] if len(keep) < len(captions) else dataset["image"]
        self.pixel_values = encode_images(images, image_processor)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._captions)

    def caption(self, index: int, epoch: int) -> tuple[str, str]:
        """The (language, caption) item `index` shows in `epoch`."""
        options = self._captions[index]
        rng = np.random.default_rng((self.seed, epoch, index))
        return options[int(rng.integers(len(options)))]

    def caption_lengths(self, epoch: int) -> np.ndarray:
        """Character length of every item's caption in `epoch` (a cheap proxy for token length)."""
        return np.array([len(self.caption(i, epoch)[1]) for i in range(len(self))])

    def __getitem__(self, index: int) -> dict:
        language, text = self.caption(index, self.epoch)
        return {"pixel_values": self.pixel_values[index], "text": text, "language": language}


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Random batches whose captions have similar lengths, so little compute goes to padding.

    Each epoch: shuffle all items, cut the order into mega-batches of `group_batches` batches,
    sort each mega-batch by caption length, cut it into batches and shuffle the batch order.
    Everything is drawn from `(seed, epoch)`, so runs and resumed runs see the same batches.
    Similar-length captions describe similar numbers of objects, which also makes in-batch
    negatives harder than in uniformly random batches.
    """

    def __init__(self, pairs, batch_size: int, group_batches: int = 16, seed: int = 0):
        """`pairs`: any dataset with `caption_lengths(epoch)` (e.g. `ImageTextPairs`)."""
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


class ImageTextCollator:
    """Stacks pixel values and tokenizes the captions of a batch (padded to its longest)."""

    def __init__(self, tokenizer, max_length: int | None = None):
        self.tokenizer = tokenizer
        self.max_length = max_length or tokenizer.model_max_length

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(
            [item["text"] for item in items],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {
            "pixel_values": torch.stack([item["pixel_values"] for item in items]),
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
        }
