"""Pairs that also carry what robust and multi-task training needs: the pair's id, a second caption
of the same image (text-text matching) and the image's multi-hot labels (multi-label classification).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mmml.data.pairs import ImageTextCollator, ImageTextPairs


class MultiTaskImageTextPairs(ImageTextPairs):
    """:class:`ImageTextPairs` whose items add ``index``, and optionally ``paired_text`` and ``labels``.

    Args:
        paired_caption: add a second caption of the same image, a different one whenever the row has
            more than one (drawn like the first, from ``(seed, epoch, index)``).
        num_labels: add ``labels``, a ``[num_labels]`` multi-hot float vector built from the dataset's
            ``labels`` column (label ids); None leaves labels out.
    """

    def __init__(
        self,
        dataset,
        image_processor,
        languages: Sequence[str] | None = None,
        seed: int = 0,
        paired_caption: bool = False,
        num_labels: int | None = None,
    ):
        super().__init__(dataset, image_processor, languages=languages, seed=seed)
        self.paired_caption = paired_caption
        self.labels = None
        if num_labels is not None:
            if "labels" not in dataset.column_names:
                raise ValueError(f"num_labels={num_labels} needs a `labels` column; the dataset has {dataset.column_names}")
            rows = dataset.select(self.row_indices)["labels"]
            self.labels = torch.zeros(len(rows), num_labels)
            for i, ids in enumerate(rows):
                if ids and (min(ids) < 0 or max(ids) >= num_labels):
                    raise ValueError(f"row {self.row_indices[i]} has label ids {ids} outside [0, {num_labels})")
                self.labels[i, list(ids)] = 1.0

    def second_caption(self, index: int, epoch: int) -> tuple[str, str]:
        """Another caption of item ``index`` (the same one only when the row has a single caption)."""
        options = self._captions[index]
        first = self.caption(index, epoch)
        others = [option for option in options if option != first] or options
        rng = np.random.default_rng((self.seed, epoch, index, 1))
        return others[int(rng.integers(len(others)))]

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        item["index"] = index
        if self.paired_caption:
            item["paired_text"] = self.second_caption(index, self.epoch)[1]
        if self.labels is not None:
            item["labels"] = self.labels[index]
        return item


class MultiTaskCollator(ImageTextCollator):
    """:class:`ImageTextCollator` that also batches ``index`` (as ``sample_ids``), ``paired_text``
    (as ``paired_input_ids`` / ``paired_attention_mask``) and ``labels`` when the items have them."""

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch = super().__call__(items)
        if "index" in items[0]:
            batch["sample_ids"] = torch.tensor([item["index"] for item in items], dtype=torch.long)
        if "paired_text" in items[0]:
            tokens = self.tokenizer([item["paired_text"] for item in items], padding=True, truncation=True,
                                    max_length=self.max_length, return_tensors="pt")
            batch["paired_input_ids"] = tokens["input_ids"]
            batch["paired_attention_mask"] = tokens["attention_mask"]
        if "labels" in items[0]:
            batch["labels"] = torch.stack([item["labels"] for item in items])
        return batch
