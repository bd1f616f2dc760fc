"""Manifests: writing scene datasets, loading (with bad-sample handling), real data, image decoding."""

from __future__ import annotations

import io
import os
import json
import logging
from pathlib import Path

import pytest
from conftest import shared_data_dir
from datasets import Image as ImageFeature
from PIL import Image

from mmml.data import (
    BadSampleError,
    ImageDecodeError,
    ManifestFormatError,
    SceneConfig,
    build_scene_dataset,
    decode_image,
    load_manifest,
    load_manifest_with_report,
    write_manifest,
)

FLICKR_TEST = shared_data_dir() / "flickr8k-multi30k" / "test.jsonl"


@pytest.fixture(scope="module")
def scenes():
    return build_scene_dataset(SceneConfig(num_train=12, num_val=3, num_test=5, languages=("en", "de", "zh")))


@pytest.fixture()
def written(scenes, tmp_path):
    write_manifest(scenes, tmp_path / "out")
    return tmp_path / "out"


def write_rows(path: Path, rows: list) -> Path:
    lines = [(row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def png_file(path: Path, color=(255, 0, 0)) -> str:
    Image.new("RGB", (8, 8), color).save(path)
    return path.name


# ---------------------------------------------------------------- round trip


def test_write_manifest_layout(scenes, tmp_path):
    manifests = write_manifest(scenes, tmp_path / "out")
    assert {split: path.name for split, path in manifests.items()} == {
        "train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"
    }
    first = json.loads((tmp_path / "out" / "test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["image"] == "images/test-000000.png"
    assert set(first["captions"]) == {"en", "de", "zh"}
    assert (tmp_path / "out" / "images" / "train-000011.png").is_file()
    assert len(list((tmp_path / "out" / "images").iterdir())) == 20


def test_round_trip_keeps_captions_fields_and_pixels(scenes, written):
    for split in ("train", "validation", "test"):
        loaded = load_manifest(written / f"{split}.jsonl")
        original = scenes[split]
        assert loaded["captions"] == original["captions"]
        assert loaded["scene_id"] == original["scene_id"]
        assert loaded["labels"] == original["labels"]
        assert loaded["objects"] == original["objects"]
        raw = original.cast_column("image", ImageFeature(decode=False))
        for path, stored, image in zip(loaded["image"], raw["image"], original["image"]):
            assert os.path.isabs(path) and Path(path).is_file()
            assert Path(path).read_bytes() == stored["bytes"]
            assert decode_image(path).tobytes() == image.convert("RGB").tobytes()


def test_load_manifest_from_any_working_directory(written, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    loaded = load_manifest(os.path.relpath(written / "test.jsonl", tmp_path))
    assert all(Path(path).is_file() for path in loaded["image"])


# ---------------------------------------------------------------- bad samples


def test_missing_image_raises_naming_file_row_and_image(written):
    (written / "images" / "test-000001.png").unlink()
    with pytest.raises(BadSampleError) as error:
        load_manifest(written / "test.jsonl")
    message = str(error.value)
    assert str(written / "test.jsonl") in message
    assert "row 2" in message
    assert "test-000001.png" in message and "not found" in message


def test_corrupt_image_raises_naming_file_row_and_image(written):
    (written / "images" / "test-000003.png").write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(BadSampleError) as error:
        load_manifest(written / "test.jsonl")
    message = str(error.value)
    assert str(written / "test.jsonl") in message and "row 4" in message and "test-000003.png" in message
    assert "PIL cannot read it" in message


def test_skip_bad_samples_skips_and_reports(written, caplog):
    (written / "images" / "test-000001.png").unlink()
    (written / "images" / "test-000003.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with caplog.at_level(logging.WARNING, logger="mmml.data.manifest"):
        dataset, report = load_manifest_with_report(written / "test.jsonl", skip_bad_samples=True)
    assert len(dataset) == 3
    assert dataset["scene_id"] == ["test-000000", "test-000002", "test-000004"]
    assert report.rows_read == 5 and report.num_skipped == 2 and report.num_loaded == 3
    assert [skipped.row for skipped in report.skipped] == [2, 4]
    assert "skipped 2 of 5 rows" in caplog.text and "rows 2, 4" in caplog.text
    assert len(load_manifest(written / "test.jsonl", skip_bad_samples=True)) == 3


# ---------------------------------------------------------------- malformed manifests


@pytest.mark.parametrize(
    "bad_row, expected",
    [
        ('{"image": "a.png", "captions": {"en": ["x"]}', "invalid JSON"),
        ('["a.png"]', "expected a JSON object"),
        ({"captions": {"en": ["x"]}}, "missing required field 'image'"),
        ({"image": "a.png"}, "missing required field 'captions'"),
        ({"image": "a.png", "captions": ["x"]}, "'captions' must map"),
        ({"image": "a.png", "captions": {"en": [1]}}, "captions['en']"),
        ({"image": "", "captions": {"en": ["x"]}}, "'image' must be"),
    ],
)
def test_malformed_rows_raise_naming_file_and_row(tmp_path, bad_row, expected):
    good = {"image": png_file(tmp_path / "a.png"), "captions": {"en": ["a red square"]}}
    manifest = write_rows(tmp_path / "m.jsonl", [good, "", bad_row])
    with pytest.raises(ManifestFormatError) as error:
        load_manifest(manifest, skip_bad_samples=True)
    assert str(manifest) in str(error.value) and "row 3" in str(error.value)
    assert expected in str(error.value)


def test_captions_are_normalised_to_one_list_per_language(tmp_path):
    png_file(tmp_path / "a.png")
    png_file(tmp_path / "b.png", color=(0, 0, 255))
    rows = [
        {"image": "a.png", "captions": {"en": ["red"], "de": "rot"}, "source": "x"},
        {"image": "b.png", "captions": {"fr": ["bleu"]}, "extra": 3},
    ]
    manifest = write_rows(tmp_path / "m.jsonl", rows)
    dataset = load_manifest(manifest)
    assert dataset["captions"] == [
        {"en": ["red"], "de": ["rot"], "fr": []},
        {"en": [], "de": [], "fr": ["bleu"]},
    ]
    assert dataset["source"] == ["x", None] and dataset["extra"] == [None, 3]
    assert dataset["image"] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    only = load_manifest(manifest, languages=["fr", "ru"])
    assert only["captions"] == [{"fr": [], "ru": []}, {"fr": ["bleu"], "ru": []}]


def test_manifest_loaded_dataset_can_be_written_again(written, tmp_path):
    loaded = load_manifest(written / "validation.jsonl")
    manifests = write_manifest(loaded, tmp_path / "copy", split="validation")
    again = load_manifest(manifests["validation"])
    assert again["captions"] == loaded["captions"]
    for a, b in zip(again["image"], loaded["image"]):
        assert Path(a).read_bytes() == Path(b).read_bytes()


# ---------------------------------------------------------------- real data


def test_reads_real_flickr8k_multi30k_manifest():
    if not FLICKR_TEST.is_file():
        pytest.skip(f"real data not found at {FLICKR_TEST} (set MMML_SHARED_DATA to the shared data folder)")
    dataset, report = load_manifest_with_report(FLICKR_TEST)
    assert report.num_skipped == 0 and len(dataset) == report.rows_read == 92
    assert {"en", "de", "fr", "cs"} <= set(dataset.features["captions"])
    assert {"speech", "speech_text", "flickr_id", "split"} <= set(dataset.column_names)
    assert all(len(row["en"]) == 5 for row in dataset["captions"])
    assert any(row["de"] == [] for row in dataset["captions"])  # not every photo has a Multi30K caption
    first = dataset[0]
    assert os.path.isabs(first["image"]) and Path(first["image"]).is_file()
    assert Path(first["speech"]).is_file()
    assert decode_image(first["image"]).mode == "RGB"


# ---------------------------------------------------------------- decode_image


def test_decode_image_accepts_paths_bytes_pil_and_dicts(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGBA", (4, 3), (10, 20, 30, 255)).save(path)
    data = path.read_bytes()
    for source in (path, str(path), data, {"bytes": data, "path": None}, {"bytes": None, "path": str(path)}):
        image = decode_image(source)
        assert image.mode == "RGB" and image.size == (4, 3) and image.getpixel((0, 0)) == (10, 20, 30)
    grey = decode_image(Image.new("L", (2, 2), 7))
    assert grey.mode == "RGB" and grey.getpixel((1, 1)) == (7, 7, 7)
    transparent = decode_image(Image.new("RGBA", (2, 2), (0, 0, 0, 0)))
    assert transparent.getpixel((0, 0)) == (255, 255, 255)


def test_decode_image_errors_name_the_file(tmp_path):
    with pytest.raises(ImageDecodeError, match="missing.png"):
        decode_image(tmp_path / "missing.png")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ImageDecodeError, match="broken.jpg"):
        decode_image(broken)
    with pytest.raises(ImageDecodeError, match="12 bytes"):
        decode_image(b"not an image")
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, format="PNG")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(buffer.getvalue()[:60])
    with pytest.raises(ImageDecodeError, match="truncated.png"):
        decode_image(truncated)
