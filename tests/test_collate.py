"""MultimodalCollator: per-batch decoding, keys from the processor's model_input_names, bad files, workers."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import torch
from conftest import CORPUS
from PIL import Image
from torch.utils.data import DataLoader

import mmml
from mmml.data import BadSampleError, decode_image
from mmml.data.collate import MEDIA_DECODERS, MediaDecoder, MultimodalCollator, register_media_decoder
from mmml.data.pairs import MultimodalPairs


class Dataset(dict):
    def select(self, indices):
        return Dataset({k: [v[i] for i in indices] for k, v in self.items()})


@pytest.fixture()
def image_rows(tmp_path):
    """Eight PNG files on disk (row 5's file is corrupt), captions in two languages, labels."""
    paths = []
    for i in range(8):
        path = tmp_path / f"image_{i}.png"
        if i == 5:
            path.write_bytes(b"not a png")
        else:
            Image.new("RGB", (40, 32), (30 * i, 200 - 20 * i, 90)).save(path)
        paths.append(str(path))
    return {
        "image": paths,
        "captions": [{"en": [CORPUS[i % 6], CORPUS[(i + 1) % 6]], "de": [CORPUS[1]]} for i in range(8)],
        "labels": [[i % 3] for i in range(8)],
    }


def good_items(pairs, indices):
    return [pairs[i] for i in indices]


def test_batch_keys_follow_the_processors_model_input_names(image_rows, tiny_processor):
    pairs = MultimodalPairs(Dataset(image_rows), languages=["en"], seed=1)
    items = good_items(pairs, [0, 1, 2])
    batch = MultimodalCollator(tiny_processor)(items)
    assert tiny_processor.model_input_names == ["input_ids", "attention_mask", "pixel_values"]
    assert sorted(batch) == ["attention_mask", "input_ids", "pixel_values", "sample_ids"]
    assert batch.pop("sample_ids").tolist() == [0, 1, 2]
    expected = tiny_processor(text=[item["text"] for item in items],
                              images=[decode_image(item["image"]) for item in items], return_tensors="pt")
    for key in batch:
        assert torch.equal(batch[key], expected[key]), key
    # A text-only processor over text-only pairs: text inputs only.
    text_only = mmml.MCLIPProcessor(tokenizer=tiny_processor.tokenizer)
    text_pairs = MultimodalPairs(Dataset(image_rows), media_columns=(), languages=["en"])
    assert "image" not in text_pairs[0]
    text_batch = MultimodalCollator(text_only)(good_items(text_pairs, [0, 1]))
    assert sorted(text_batch) == ["attention_mask", "input_ids", "sample_ids"]
    with pytest.raises(ValueError, match="has no image_processor"):
        MultimodalCollator(text_only)(items)
    with pytest.raises(TypeError, match="not its tokenizer"):
        MultimodalCollator(tiny_processor.tokenizer)


def test_multitask_items_add_ids_paired_texts_and_labels(image_rows, tiny_processor):
    pairs = MultimodalPairs(Dataset(image_rows), languages=["en"], paired_caption=True, labels=3, seed=2)
    items = good_items(pairs, [4, 0, 2])
    batch = MultimodalCollator(tiny_processor, max_text_length=6)(items)
    assert sorted(batch) == ["attention_mask", "input_ids", "labels", "paired_attention_mask", "paired_input_ids",
                             "pixel_values", "sample_ids"]
    assert batch["sample_ids"].tolist() == [4, 0, 2]
    assert batch["labels"].tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    assert batch["input_ids"].shape[1] <= 6 and batch["paired_input_ids"].shape[1] <= 6
    paired = tiny_processor(text=[item["paired_text"] for item in items], return_tensors="pt",
                            text_kwargs={"max_length": 6})
    assert torch.equal(batch["paired_input_ids"], paired["input_ids"])
    # With TF-IDF text features the text inputs (and the paired ones) are `text_features`.
    hashing = mmml.CrossModalHashingProcessor(tiny_processor.image_processor, tiny_processor.tokenizer)
    tfidf = hashing.with_tfidf_fitted_on(CORPUS, max_features=9)
    batch = MultimodalCollator(tfidf)(items)
    assert sorted(batch) == ["labels", "paired_text_features", "pixel_values", "sample_ids", "text_features"]


def test_an_undecodable_file_is_named_with_its_row(image_rows, tiny_processor):
    pairs = MultimodalPairs(Dataset(image_rows), languages=["en"])
    expected = r"dataset row 5: cannot decode its image .*image_5\.png.*skip_bad_samples"
    with pytest.raises(BadSampleError, match=expected):
        MultimodalCollator(tiny_processor)(good_items(pairs, [4, 5, 6]))


def test_skipped_samples_are_warned_about_and_counted(image_rows, tiny_processor, caplog):
    image_rows["image"][2] = image_rows["image"][2].replace("image_2", "missing")
    pairs = MultimodalPairs(Dataset(image_rows), languages=["en"], labels=3)
    collate = MultimodalCollator(tiny_processor, skip_bad_samples=True)
    with caplog.at_level(logging.WARNING, logger="mmml.data.collate"):
        batch = collate(good_items(pairs, [1, 2, 3, 5, 6]))
    assert batch["num_skipped_samples"] == 2
    assert batch["pixel_values"].shape[0] == batch["input_ids"].shape[0] == batch["labels"].shape[0] == 3
    assert batch["sample_ids"].tolist() == [1, 3, 6]
    assert "dataset row 2" in caplog.text and "missing.png" in caplog.text
    assert "dataset row 5" in caplog.text and "image_5.png" in caplog.text
    assert collate(good_items(pairs, [0, 1]))["num_skipped_samples"] == 0
    with pytest.raises(BadSampleError, match="none of the 2 samples"):
        collate(good_items(pairs, [2, 5]))


def test_the_collator_runs_in_dataloader_workers(image_rows, tiny_processor):
    pairs = MultimodalPairs(Dataset(image_rows), languages=["en"], paired_caption=True, labels=3)
    collate = MultimodalCollator(tiny_processor, skip_bad_samples=True)
    clone = pickle.loads(pickle.dumps(collate))
    assert clone.decoders["image"].decode is decode_image
    batches = [[0, 5, 2], [7, 1, 3]]
    in_process = [collate(pairs.__getitems__(batch)) for batch in batches]
    loader = DataLoader(pairs, batch_sampler=batches, collate_fn=collate, num_workers=1)
    from_workers = list(loader)
    assert [batch["num_skipped_samples"] for batch in from_workers] == [1, 0]
    for expected, got in zip(in_process, from_workers):
        assert sorted(expected) == sorted(got)
        for key, value in expected.items():
            assert torch.equal(value, got[key]) if torch.is_tensor(value) else value == got[key], key


def decode_frames(paths):
    """A picklable decoder for a `video` column holding a list of frame files."""
    return [decode_image(path) for path in paths]


def test_other_media_columns_decode_with_registered_decoders(image_rows, tiny_tokenizer, monkeypatch):
    from mmml.processing import FrameProcessor, MultimodalProcessor
    from transformers import CLIPImageProcessor

    rows = dict(image_rows, video=[[image_rows["image"][i], image_rows["image"][(i + 1) % 8]][: 1 + i % 2]
                                   for i in range(8)])
    monkeypatch.setitem(MEDIA_DECODERS, "video", MEDIA_DECODERS.get("video"))  # restored afterwards
    register_media_decoder("video", decode_frames)
    assert MEDIA_DECODERS["video"].processor_argument == "videos"
    image_processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor = MultimodalProcessor(video_processor=FrameProcessor(image_processor), tokenizer=tiny_tokenizer)
    pairs = MultimodalPairs(Dataset(rows), media_columns=("video",), languages=["en"])
    batch = MultimodalCollator(processor)(good_items(pairs, [0, 1, 3]))
    assert sorted(batch) == ["attention_mask", "input_ids", "pixel_values_videos", "sample_ids", "video_frame_mask"]
    assert batch["pixel_values_videos"].shape == (3, 2, 3, 16, 16)
    assert batch["video_frame_mask"].tolist() == [[1, 0], [1, 1], [1, 1]]
    with pytest.raises(ValueError, match="processor_argument"):
        register_media_decoder("thumbnail", decode_frames)
    with pytest.raises(ValueError, match="processor_argument"):
        MediaDecoder(decode_frames, "pixels")


def test_collating_scene_batches_is_fast_and_exact():
    """The main job's data: 60-px scene PNGs in a datasets.Dataset, decoded per batch."""
    import time

    from transformers import CLIPImageProcessor

    from mmml.data import SceneConfig, build_scene_dataset
    from mmml.processing import train_multilingual_tokenizer

    scenes = build_scene_dataset(SceneConfig(num_train=128, num_val=8, num_test=8, image_size=60))["train"]
    texts = [text for row in scenes["captions"] for captions in row.values() for text in captions]
    tokenizer = train_multilingual_tokenizer(texts, vocab_size=300, model_max_length=64)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 60}, crop_size={"height": 60, "width": 60})
    processor = mmml.MCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    pairs = MultimodalPairs(scenes)
    collate = MultimodalCollator(processor)
    items = pairs.__getitems__(list(range(128)))
    start = time.process_time()
    batch = collate(items)
    elapsed = time.process_time() - start
    expected = image_processor(images=[decode_image(row) for row in scenes["image"]], return_tensors="pt")
    assert torch.equal(batch["pixel_values"], expected["pixel_values"])
    assert elapsed < 1.0, f"collating 128 scene images took {elapsed:.3f} s of CPU"
    assert np.isfinite(batch["pixel_values"].numpy()).all()


def test_persistent_workers_see_set_epoch(image_rows, tiny_processor):
    """A worker's copy of the pairs shares the epoch: captions change with `set_epoch`, as in one process."""
    pairs = MultimodalPairs(Dataset(image_rows), media_columns=(), languages=["en"], seed=4)
    text_only = mmml.MCLIPProcessor(tokenizer=tiny_processor.tokenizer)
    loader = DataLoader(pairs, batch_sampler=[list(range(8))], collate_fn=MultimodalCollator(text_only),
                        num_workers=1, persistent_workers=True)
    for epoch in (0, 1, 2):
        pairs.set_epoch(epoch)
        (batch,) = list(loader)
        expected = text_only(text=[pairs.caption(i, epoch)[1] for i in range(8)], return_tensors="pt")
        assert torch.equal(batch["input_ids"], expected["input_ids"]), epoch
    assert pairs.caption(0, 0) != pairs.caption(0, 1) or pairs.caption(1, 0) != pairs.caption(1, 1)
    # Outside a worker start a pickled copy takes the epoch's value and goes its own way.
    clone = pickle.loads(pickle.dumps(pairs))
    clone.set_epoch(9)
    assert pairs.epoch == 2 and clone.epoch == 9
