"""recipes/pretrain.py end to end on a tiny model: outputs, exact resume, two processes."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT
from safetensors.torch import load_file
from transformers import AutoModel, AutoProcessor

import mmml  # noqa: F401  (registers the Auto classes)
from mmml.eval import RETRIEVAL_METRIC_KEYS

TINY_MODEL = json.dumps({
    "projection_dim": 16,
    "vision_config": {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                      "num_hidden_layers": 1, "num_attention_heads": 2, "patch_size": 8},
    "text_config": {"model_type": "bert", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                    "num_attention_heads": 2},
})


# M-CLIP runs its text tower in length groups, as the main job does (other families refuse it).
TINY_MCLIP = json.dumps({**json.loads(TINY_MODEL), "text_length_buckets": 2})


def tiny_args(output_dir, **overrides) -> list[str]:
    values = {
        "output_dir": str(output_dir), "num_train_scenes": 48, "num_val_scenes": 8, "num_test_scenes": 16,
        "languages": "en,de,zh", "captions_per_language": 1, "image_size": 32, "model_config": TINY_MCLIP,
        "tokenizer_vocab_size": 300, "per_device_train_batch_size": 8, "max_steps": 8, "warmup_steps": 2,
        "eval_every_steps": 4, "checkpoint_every_steps": 3, "keep_checkpoints": 5, "log_every_steps": 2,
        "eval_batch_size": 16, "max_grad_norm": 0.5,
    }
    values.update(overrides)
    return [item for key, value in values.items() for item in (f"--{key}", str(value))]


def load_recipe():
    spec = importlib.util.spec_from_file_location("pretrain_recipe", REPO_ROOT / "recipes" / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recipe():
    return load_recipe()


@pytest.fixture(scope="module")
def uninterrupted_run(recipe, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("full")
    summary = recipe.main(tiny_args(output_dir))
    return output_dir, summary


def test_run_writes_metrics_checkpoints_and_a_loadable_model(uninterrupted_run):
    output_dir, summary = uninterrupted_run
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert set(metrics["test"]) == {"en", "de", "zh", "mean"}
    for lang_metrics in metrics["test"].values():
        assert set(RETRIEVAL_METRIC_KEYS) <= set(lang_metrics)
    assert metrics["test"]["mean"]["t2i_r1"] == pytest.approx(
        sum(metrics["test"][lang]["t2i_r1"] for lang in ("en", "de", "zh")) / 3
    )
    assert [entry["step"] for entry in metrics["validation_history"]] == [4]
    log = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6, 8] and all(r["loss"] > 0 for r in log)
    assert sorted(p.name for p in (output_dir / "checkpoints").iterdir()) == ["step_3", "step_6"]
    model = AutoModel.from_pretrained(output_dir / "final")
    processor = AutoProcessor.from_pretrained(output_dir / "final")
    assert type(model).__name__ == "MCLIPModel" and type(processor).__name__ == "MCLIPProcessor"
    assert summary["test"] == metrics["test"]
    card = (output_dir / "final" / "README.md").read_text()
    assert "language: [en, de, zh]" in card and f"| zh | {metrics['test']['zh']['t2i_r1']:.1f} |" in card


def test_stopped_and_resumed_run_ends_with_exactly_the_same_weights(recipe, uninterrupted_run, tmp_path):
    full_dir, _ = uninterrupted_run
    # Stop mid-epoch (6 batches per epoch): step 5 is inside the first epoch.
    assert recipe.main(tiny_args(tmp_path, stop_after_steps=5)) is None
    assert (tmp_path / "checkpoints" / "step_5").is_dir() and not (tmp_path / "final").exists()
    recipe.main(tiny_args(tmp_path, resume_from_checkpoint="latest"))
    resumed = load_file(str(tmp_path / "final" / "model.safetensors"))
    uninterrupted = load_file(str(full_dir / "final" / "model.safetensors"))
    assert resumed.keys() == uninterrupted.keys()
    for name in uninterrupted:
        assert torch.equal(resumed[name], uninterrupted[name]), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"] == json.loads((full_dir / "metrics.json").read_text())["test"]


def test_resuming_from_a_missing_checkpoint_is_a_clear_error(recipe, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a complete mmml checkpoint"):
        recipe.main(tiny_args(tmp_path, resume_from_checkpoint=str(tmp_path / "nope")))


@pytest.mark.parametrize("field, value", [("max_grad_norm", "0"), ("tokenizer_training_texts", "0"), ("max_steps", "0")])
def test_invalid_arguments_name_the_field(recipe, tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        recipe.main(tiny_args(tmp_path, **{field: value}))


def test_tokenizer_trains_on_a_seeded_sample_of_the_captions(recipe, tmp_path, monkeypatch):
    from mmml.training import recipe_setup

    corpora = []
    real_train = recipe_setup.train_multilingual_tokenizer
    monkeypatch.setattr(recipe_setup, "train_multilingual_tokenizer",
                        lambda corpus, *a: corpora.append(corpus) or real_train(corpus, *a))
    for run in ("a", "b"):
        args = recipe.parse_args(recipe.PretrainArguments, tiny_args(tmp_path / run, tokenizer_training_texts=50))
        recipe.build_processor(args, recipe.Accelerator(cpu=True), recipe.load_splits(args)["train"],
                               recipe.build_model_config(args))
    assert len(corpora[0]) == 50 and corpora[0] == corpora[1]


def test_a_single_cpu_process_on_one_thread_of_several_warns(monkeypatch, caplog):
    from accelerate import Accelerator

    from mmml.training import cpu_threads

    monkeypatch.setattr(cpu_threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(cpu_threads.torch, "get_num_threads", lambda: 1)
    with caplog.at_level("WARNING"):
        cpu_threads.warn_if_cpu_threads_idle(Accelerator(cpu=True))
    assert "1 of 4 CPU threads" in caplog.text and "--num_cpu_threads_per_process 4" in caplog.text


def test_two_processes_under_accelerate_launch(tmp_path):
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO_ROOT / "recipes" / "pretrain.py"), *tiny_args(tmp_path, max_steps=4, per_device_train_batch_size=4),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"]["mean"]["num_images"] == 16
    # Rank 1 wrote its own RNG state: the processes really formed one group (an Accelerator not told to
    # use the CPU on a machine without GPUs silently runs two independent single-process jobs).
    assert (tmp_path / "checkpoints" / "step_3" / "random_states_1.pkl").exists()
    model = AutoModel.from_pretrained(tmp_path / "final")
    assert type(model).__name__ == "MCLIPModel" and model.config.text_length_buckets == 2  # TINY_MCLIP, saved once



def test_a_short_run_retrieves_far_better_than_chance(recipe, tmp_path):
    """200 steps on 1,024 English scenes: test t2i R@1 about 59 (seed 0; 26 for seed 3) on a 64-image
    gallery, where chance is 1/64 = 1.6%; the threshold leaves 2x slack under the worst seed seen."""
    model = {"projection_dim": 32,
             "vision_config": {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                               "num_hidden_layers": 1, "num_attention_heads": 2, "patch_size": 8},
             "text_config": {"model_type": "bert", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}}
    summary = recipe.main(tiny_args(
        tmp_path, num_train_scenes=1024, num_test_scenes=64, languages="en", model_config=json.dumps(model),
        per_device_train_batch_size=64, max_steps=200, warmup_steps=10, learning_rate=1e-3, eval_every_steps=0,
        checkpoint_every_steps=0, log_every_steps=50, max_grad_norm="none"))
    test = summary["test"]["en"]
    assert test["num_images"] == 64
    assert test["t2i_r1"] > 8 * 100 / 64 and test["i2t_r1"] > 8 * 100 / 64, test
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss/contrastive"] for r in log] == [r["loss"] for r in log]  # the only objective, by name
    assert log[-1]["loss"] < 0.5 * math.log(64)  # an untrained InfoNCE over 64 pairs sits at ln 64


def test_model_config_overrides_a_pretrained_models_plain_fields_and_refuses_tower_changes(tmp_path):
    from conftest import tiny_text_config, tiny_vision_config
    from transformers import AutoConfig

    from mmml.training.recipe_setup import with_model_config_overrides

    mmml.DIVTRConfig(vision_config=tiny_vision_config(), text_config=tiny_text_config(), projection_dim=16,
                     temporal_heads=2, interaction_heads=2).save_pretrained(tmp_path)
    saved = AutoConfig.from_pretrained(tmp_path)
    same_towers = {"vision_config": {"hidden_size": saved.vision_config.hidden_size}, "projection_dim": 16}
    config = with_model_config_overrides(saved, {**same_towers, "temporal_order_loss_weight": 0.5})
    assert config.temporal_order_loss_weight == 0.5 and saved.temporal_order_loss_weight == 0.0
    assert with_model_config_overrides(saved, same_towers) is saved
    with pytest.raises(ValueError, match=r"vision_config.hidden_size: \d+ in the checkpoint, 7 given"):
        with_model_config_overrides(saved, {"vision_config": {"hidden_size": 7}})
    with pytest.raises(ValueError, match="model_config.temporal_order_weight is not a field of DIVTRConfig"):
        with_model_config_overrides(saved, {"temporal_order_weight": 1.0})
    with pytest.raises(ValueError, match="temporal_order_loss_weight must be a number >= 0"):
        with_model_config_overrides(saved, {"temporal_order_loss_weight": -1.0})
