"""Kept for older callers: `MultimodalPairs` already carries what robust and multi-task training needs
(the pair's `index`, a second caption as `paired_text`, multi-hot `labels`), and
`MultimodalCollator` batches them.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmml.data.collate import MultimodalCollator
from mmml.data.pairs import ImageTextPairs

__all__ = ["MultiTaskCollator", "MultiTaskImageTextPairs"]

MultiTaskCollator = MultimodalCollator


class MultiTaskImageTextPairs(ImageTextPairs):
    """`ImageTextPairs` with `paired_caption` and `num_labels` (= `MultimodalPairs(labels=num_labels)`)."""

    def __init__(
        self,
        dataset,
        image_processor=None,
        languages: Sequence[str] | None = None,
        seed: int = 0,
        paired_caption: bool = False,
        num_labels: int | None = None,
    ):
        super().__init__(dataset, image_processor, languages=languages, seed=seed,
                         paired_caption=paired_caption, labels=num_labels)
