"""Frozen modules and the frozen-tower output cache, alone and through the shared recipe."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_mclip_config
from test_pretrain_recipe import load_recipe, tiny_args

import mmml
from mmml.training.freezing import FrozenTowerCache, freeze_modules


def test_frozen_modules_get_no_gradients_and_stay_in_eval_mode():
    model = mmml.MCLIPModel(tiny_mclip_config())
    frozen = freeze_modules(model, ["vision_model", "text_model.encoder.layer.0"])
    model.train()
    assert all(not module.training for f in frozen for module in f.modules())
    assert model.text_projection.training and model.text_model.embeddings.training
    names = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert names and all(n.startswith(("vision_model.", "text_model.encoder.layer.0.")) for n in names)
    assert any(p.requires_grad for n, p in model.named_parameters() if n.startswith("text_model.embeddings"))


def test_unknown_module_names_are_refused_with_the_valid_ones():
    model = mmml.MCLIPModel(tiny_mclip_config())
    with pytest.raises(ValueError, match=r"\['vision_tower'\] are not submodules of MCLIPModel.*'vision_model'"):
        freeze_modules(model, ["vision_tower"])


def test_the_cache_returns_the_towers_outputs_and_encodes_each_input_once():
    torch.manual_seed(0)
    model = mmml.MCLIPModel(tiny_mclip_config()).eval()
    freeze_modules(model, ["vision_model"])
    images = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        expected = model.get_image_features(pixel_values=images).pooler_output
    cache = FrozenTowerCache(model.vision_model).install()
    computed = []  # batch sizes the tower itself ran on
    tower_forward = cache._forward
    cache._forward = lambda **inputs: computed.append(len(inputs["pixel_values"])) or tower_forward(**inputs)
    with torch.no_grad():
        first = model.get_image_features(pixel_values=images[:4]).pooler_output
        second = model.get_image_features(pixel_values=images[[5, 0, 4, 1]]).pooler_output
    # Rows computed in other batches: equal up to the batch-size dependence of the kernels.
    torch.testing.assert_close(first, expected[:4], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(second, expected[[5, 0, 4, 1]], rtol=1e-5, atol=1e-6)
    assert (cache.misses, cache.hits, len(cache.entries)) == (6, 2, 6)
    assert computed == [4, 2]  # the second batch ran only its two new rows
    assert cache.nbytes == 6 * (32 + 17 * 32) * 4  # pooled + 16 patches and CLS, float32
    cache.remove()
    with torch.no_grad():
        model.get_image_features(pixel_values=images[:1])
    assert cache.misses == 6 and computed == [4, 2]  # removed: the tower runs itself, past the cache


def test_a_tower_with_trainable_weights_is_not_cached():
    model = mmml.MCLIPModel(tiny_mclip_config())
    with pytest.raises(ValueError, match="needs a frozen tower"):
        FrozenTowerCache(model.vision_model)


def test_a_recipe_run_with_a_frozen_tower_keeps_it_and_reports_the_cache(tmp_path):
    recipe = load_recipe()
    runs = {}
    for steps in (1, 12):
        output_dir = tmp_path / f"steps{steps}"
        summary = recipe.main(tiny_args(output_dir, frozen_modules="vision_model", max_steps=steps,
                                        eval_every_steps=0, checkpoint_every_steps=100))
        runs[steps] = (summary, mmml.MCLIPModel.from_pretrained(output_dir / "final"))
    summary, trained = runs[12]
    cache = summary["frozen_tower_cache"]["vision_model"]
    # 12 steps of 8 go over the 48 training scenes twice: the second pass and nothing else hits.
    assert cache["entries"] == 48 + 16 and cache["hits"] >= 48 and cache["bytes"] > 0
    assert summary["args"]["frozen_modules"] == ["vision_model"]
    _, early = runs[1]
    for name, weight in trained.vision_model.state_dict().items():
        assert torch.equal(weight, early.vision_model.state_dict()[name]), name  # the frozen tower never moved
    assert not torch.equal(trained.text_projection.weight, early.text_projection.weight)
