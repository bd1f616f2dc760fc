"""Training pairs: deterministic caption choice, lazy media, labels, length-grouped batches."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmml.data.pairs import ImageTextPairs, LengthGroupedBatchSampler, MultimodalPairs


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


def test_captions_depend_only_on_seed_epoch_and_index(rows):
    pairs = MultimodalPairs(Dataset(rows), seed=3)
    again = MultimodalPairs(Dataset(rows), seed=3)
    assert [pairs.caption(i, 0) for i in range(40)] == [again.caption(i, 0) for i in range(40)]
    assert [pairs.caption(i, 0) for i in range(40)] != [pairs.caption(i, 1) for i in range(40)]
    pairs.set_epoch(1)
    item = pairs[5]
    assert item["text"] == pairs.caption(5, 1)[1] and item["language"] == pairs.caption(5, 1)[0]
    # The media source as the dataset holds it, not decoded or processed.
    assert item["image"] is rows["image"][5] and item["row"] == 5 and item["index"] == 5
    # Every caption of a row in the chosen languages can be drawn, and only those.
    seen = {pairs.caption(1, epoch) for epoch in range(60)}
    assert seen == {("en", rows["captions"][1]["en"][0]), ("en", rows["captions"][1]["en"][1]),
                    ("de", rows["captions"][1]["de"][0])}


def test_caption_draws_are_unchanged(rows):
    """Resume-exactness depends on this draw: the same (seed, epoch, index) gives the same caption as before."""
    pairs = MultimodalPairs(Dataset(rows), seed=3)
    options = [[(lang, text) for lang in ("de", "en") for text in (rows["captions"][i].get(lang) or [])]
               for i in range(40)]
    for epoch in (0, 1, 7):
        expected = [options[i][int(np.random.default_rng((3, epoch, i)).integers(len(options[i])))] for i in range(40)]
        assert [pairs.caption(i, epoch) for i in range(40)] == expected


def test_rows_without_captions_in_the_languages_are_left_out_and_unknown_languages_fail(rows, caplog):
    pairs = MultimodalPairs(Dataset(rows), languages=["de"])
    assert len(pairs) == 20 and pairs.row_indices == list(range(1, 40, 2))
    assert "20 of 40 rows have no caption" in caplog.text
    assert pairs[0]["row"] == 1 and pairs[0]["image"] is rows["image"][1]
    with pytest.raises(ValueError, match=r"\['fr'\].*available: \['de', 'en'\]"):
        MultimodalPairs(Dataset(rows), languages=["fr"])
    with pytest.raises(ValueError, match="no column 'video'"):
        MultimodalPairs(Dataset(rows), media_columns=("video",))


def test_paired_captions_and_labels(rows):
    rows = dict(rows, labels=[[i % 3, 3] if i % 4 else [] for i in range(40)])
    pairs = MultimodalPairs(Dataset(rows), languages=["en"], paired_caption=True, labels=5, seed=1)
    item = pairs[2]
    assert item["paired_text"] != item["text"] and item["paired_text"] in rows["captions"][2]["en"]
    assert item["labels"].tolist() == [0, 0, 1, 1, 0] and pairs[4]["labels"].sum() == 0
    # A sequence of label ids: one position per id in that order, other ids ignored.
    chosen = MultimodalPairs(Dataset(rows), languages=["en"], labels=[3, 1])
    assert chosen[1]["labels"].tolist() == [1, 1] and chosen[2]["labels"].tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"row 1 has label ids \[1, 3\] outside \[0, 3\)"):
        MultimodalPairs(Dataset(rows), languages=["en"], labels=3)
    with pytest.raises(ValueError, match="needs a `labels` column"):
        MultimodalPairs(Dataset({k: v for k, v in rows.items() if k != "labels"}), labels=5)


def test_a_datasets_image_column_is_read_undecoded_and_in_batches():
    import io

    from datasets import Dataset as ArrowDataset
    from datasets import Features, Image as ImageFeature, List, Value

    def png(i):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (i, 0, 0)).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    features = Features({"image": ImageFeature(), "captions": {"en": List(Value("string"))}})
    dataset = ArrowDataset.from_dict({"image": [png(i) for i in range(6)],
                                      "captions": [{"en": [f"caption {i}"] if i != 2 else []} for i in range(6)]},
                                     features=features)
    pairs = MultimodalPairs(dataset)
    assert len(pairs) == 5 and pairs.row_indices == [0, 1, 3, 4, 5]
    item = pairs[2]
    assert item["row"] == 3 and isinstance(item["image"], dict) and item["image"]["bytes"] == png(3)["bytes"]
    assert pairs.__getitems__([4, 2, 0]) == [pairs[4], pairs[2], pairs[0]]
    assert dataset.features["image"].decode  # the caller's dataset is left as it was


def test_image_text_pairs_is_the_image_column_and_ignores_an_image_processor(rows, tiny_processor):
    with pytest.warns(DeprecationWarning, match="image_processor is ignored"):
        pairs = ImageTextPairs(Dataset(rows), tiny_processor.image_processor, languages=["en"], seed=3)
    assert pairs.media_columns == ["image"] and pairs[0] == MultimodalPairs(Dataset(rows), languages=["en"], seed=3)[0]


def test_length_grouped_batches_partition_the_epoch_and_group_similar_lengths(rows):
    pairs = MultimodalPairs(Dataset(rows), languages=["en"])
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
