"""Training pairs: deterministic caption choice, length-grouped batches, collation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmml.data.pairs import ImageTextCollator, ImageTextPairs, LengthGroupedBatchSampler


@pytest.fixture()
def rows():
    texts = ["a" * n for n in range(1, 41)]
    return {
        "image": [Image.new("RGB", (32, 32), (i * 6, 0, 0)) for i in range(40)],
        "captions": [{"en": [texts[i], texts[i] + "!"], "de": [texts[(i * 7) % 40]] if i % 2 else []}
                     for i in range(40)],
    }


class Dataset(dict):
    def select(self, indices):
        return Dataset({k: [v[i] for i in indices] for k, v in self.items()})


def test_captions_depend_only_on_seed_epoch_and_index(rows, tiny_processor):
    pairs = ImageTextPairs(Dataset(rows), tiny_processor.image_processor, seed=3)
    again = ImageTextPairs(Dataset(rows), tiny_processor.image_processor, seed=3)
    assert [pairs.caption(i, 0) for i in range(40)] == [again.caption(i, 0) for i in range(40)]
    assert [pairs.caption(i, 0) for i in range(40)] != [pairs.caption(i, 1) for i in range(40)]
    pairs.set_epoch(1)
    assert pairs[5]["text"] == pairs.caption(5, 1)[1]
    assert torch.equal(pairs[5]["pixel_values"], tiny_processor.image_processor(rows["image"][5], return_tensors="pt")["pixel_values"][0])
    # Every caption of a row in the chosen languages can be drawn, and only those.
    seen = {pairs.caption(1, epoch) for epoch in range(60)}
    assert seen == {("en", rows["captions"][1]["en"][0]), ("en", rows["captions"][1]["en"][1]),
                    ("de", rows["captions"][1]["de"][0])}


def test_rows_without_captions_in_the_languages_are_left_out_and_unknown_languages_fail(rows, tiny_processor, caplog):
    pairs = ImageTextPairs(Dataset(rows), tiny_processor.image_processor, languages=["de"])
    assert len(pairs) == 20 and pairs.row_indices == list(range(1, 40, 2))
    assert "20 of 40 rows have no caption" in caplog.text
    with pytest.raises(ValueError, match=r"\['fr'\].*available: \['de', 'en'\]"):
        ImageTextPairs(Dataset(rows), tiny_processor.image_processor, languages=["fr"])


def test_length_grouped_batches_partition_the_epoch_and_group_similar_lengths(rows, tiny_processor):
    pairs = ImageTextPairs(Dataset(rows), tiny_processor.image_processor, languages=["en"])
    sampler = LengthGroupedBatchSampler(pairs, batch_size=4, group_batches=5, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 10
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(40))
    lengths = pairs.caption_lengths(0)
    # Within a batch the spread of lengths is far below that of a random batch.
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < np.ptp(lengths) / 3
    assert batches == list(sampler)  # same epoch, same batches
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_collator_pads_to_the_longest_caption(tiny_processor):
    collate = ImageTextCollator(tiny_processor.tokenizer)
    items = [{"pixel_values": torch.zeros(3, 32, 32), "text": t, "language": "en"} for t in ("a red circle", "a")]
    batch = collate(items)
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["input_ids"].shape[1] == int(batch["attention_mask"].sum(1).max())
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()
