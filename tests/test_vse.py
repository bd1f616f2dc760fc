"""VSE family: GPO pooling, interaction / GCN blocks, objectives, Auto round trip, recipe integration."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT, tiny_text_config, tiny_vision_config
from transformers import AutoConfig, AutoModel, AutoProcessor, CLIPImageProcessor

import mmml
from mmml.modeling.gpo import GPOPooling
from mmml.modeling.interaction import Attention, GraphReasoning, InteractionBlock

ALL_OPTIONS = dict(interaction_layers=1, gcn_layers=2, alignment_weight=1.0, itm_weight=1.0,
                   text_matching_weight=1.0, classification_weight=1.0, num_labels=5)


def tiny_vse_config(**overrides) -> mmml.VSEConfig:
    values = dict(text_config=tiny_text_config(num_hidden_layers=2), vision_config=tiny_vision_config(),
                  projection_dim=16, num_attention_heads=2)
    values.update(overrides)
    return mmml.VSEConfig(**values)


def tiny_batch(batch=4, length=7, num_labels=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 100, (batch, length), generator=generator)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    attention_mask[1, 4:] = 0
    return dict(input_ids=input_ids, attention_mask=attention_mask,
                pixel_values=torch.randn(batch, 3, 32, 32, generator=generator),
                paired_input_ids=input_ids.flip(1), paired_attention_mask=attention_mask,
                labels=torch.randint(0, 2, (batch, num_labels), generator=generator).float())


def test_gpo_weights_sum_to_one_and_ignore_padding():
    torch.manual_seed(0)
    gpo = GPOPooling()
    features = torch.randn(3, 6, 4)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] + [0] * 5])
    pooled, weights = gpo(features, mask)
    assert torch.allclose(weights.sum(1), torch.ones(3))
    assert (weights[1, 3:] == 0).all() and (weights[2, 1:] == 0).all()
    assert torch.allclose(pooled[2], features[2, 0])  # one element: pooling returns it
    # the padded elements do not matter, whatever their values
    changed = features.clone()
    changed[1, 3:] = 1e3
    assert torch.allclose(gpo(changed, mask)[0], pooled)
    # pooled = weighted sum of the per-dimension sorted values of the valid elements
    values = features[1, :3].sort(dim=0, descending=True).values
    assert torch.allclose(pooled[1], (values * weights[1, :3, None]).sum(0), atol=1e-6)
    with pytest.raises(ValueError, match="no valid element"):
        gpo(features, torch.zeros(3, 6))


def test_gpo_can_learn_max_pooling():
    torch.manual_seed(0)
    gpo = GPOPooling()
    optimizer = torch.optim.Adam(gpo.parameters(), lr=0.02)
    for _ in range(60):
        features = torch.randn(16, 5, 8)
        loss = (gpo(features)[0] - features.max(dim=1).values).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    features = torch.randn(16, 5, 8)
    assert (gpo(features)[0] - features.max(dim=1).values).pow(2).mean() < 0.05


def test_attention_sdpa_matches_eager_and_respects_masks():
    torch.manual_seed(0)
    config = tiny_vse_config()
    block = InteractionBlock(config, 16, 2, cross_attention=True).eval()
    hidden, context = torch.randn(2, 5, 16), torch.randn(2, 4, 16)
    mask, context_mask = torch.tensor([[1, 1, 1, 0, 0], [1] * 5]), torch.tensor([[1, 1, 0, 0], [1] * 4])
    config._attn_implementation = "eager"
    eager = block(hidden, mask, context, context_mask)
    config._attn_implementation = "sdpa"
    sdpa = block(hidden, mask, context, context_mask)
    assert torch.allclose(eager, sdpa, atol=1e-5)
    changed = context.clone()
    changed[0, 2:] = 100.0  # masked context must not matter
    assert torch.allclose(block(hidden, mask, changed, context_mask)[0], sdpa[0], atol=1e-5)
    attention = Attention(config, 16, 2)
    assert {"q_proj", "k_proj", "v_proj"} <= {name for name, _ in attention.named_children()}


def test_graph_reasoning_ignores_padding():
    torch.manual_seed(0)
    layer = GraphReasoning(8)
    hidden = torch.randn(1, 4, 8)
    mask = torch.tensor([[1, 1, 0, 0]])
    changed = hidden.clone()
    changed[0, 2:] = 50.0
    assert torch.allclose(layer(hidden, mask)[0, :2], layer(changed, mask)[0, :2], atol=1e-6)


def test_features_match_forward_and_every_objective_trains():
    torch.manual_seed(0)
    model = mmml.VSEModel(tiny_vse_config(**ALL_OPTIONS))
    batch = tiny_batch()
    out = model(**batch, return_loss=True)
    assert isinstance(out, mmml.VSEOutput)
    assert out.itm_logits.shape == (12, 2) and out.label_logits.shape == (4, 5)
    assert torch.allclose(out.loss, out.matching_loss + out.auxiliary_loss)
    image = model.get_image_features(pixel_values=batch["pixel_values"]).pooler_output
    text = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
    assert torch.allclose(torch.nn.functional.normalize(image, dim=-1), out.image_embeds, atol=1e-6)
    assert torch.allclose(torch.nn.functional.normalize(text, dim=-1), out.text_embeds, atol=1e-6)
    out.loss.backward()
    for name in ("vision_alignment", "text_alignment", "itm_head", "classifier", "fusion", "text_embedder",
                 "vision_embedder"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
    # a few optimisation steps on one batch lower every part of the loss
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        out = model(**batch, return_loss=True)
        first = first or (out.matching_loss.item(), out.auxiliary_loss.item())
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert out.matching_loss.item() < first[0] and out.auxiliary_loss.item() < first[1]


def test_plain_options_give_only_the_matching_loss_and_triplet_option():
    torch.manual_seed(0)
    model = mmml.VSEModel(tiny_vse_config(token_pooling="mean", matching_loss="triplet", triplet_margin=0.3))
    batch = tiny_batch()
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                pixel_values=batch["pixel_values"], return_loss=True)
    assert out.auxiliary_loss.item() == 0.0 and out.itm_logits is None and out.label_logits is None
    expected = mmml.losses.TripletLoss(margin=0.3)(out.image_embeds, out.text_embeds)
    assert torch.allclose(out.matching_loss, expected)


def test_missing_auxiliary_inputs_raise_clear_errors():
    model = mmml.VSEModel(tiny_vse_config(text_matching_weight=1.0))
    batch = tiny_batch()
    with pytest.raises(ValueError, match="paired_input_ids"):
        model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"], return_loss=True)
    model = mmml.VSEModel(tiny_vse_config(classification_weight=1.0, num_labels=5))
    with pytest.raises(ValueError, match="multi-hot `labels`"):
        model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"], return_loss=True)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("token_pooling", "max", "token_pooling must be one of"),
        ("matching_loss", "hinge", "matching_loss must be one of"),
        ("gcn_layers", -1, "gcn_layers must be an integer >= 0"),
        ("itm_weight", -0.5, "itm_weight must be >= 0"),
        ("num_attention_heads", 3, "divisible by num_attention_heads"),
        ("alignment_layer", 5, "alignment_layer"),
    ],
)
def test_config_rejects_bad_values(field, value, message):
    extra = {"alignment_weight": 1.0} if field == "alignment_layer" else {}
    with pytest.raises(ValueError, match=message):
        tiny_vse_config(**{field: value}, **extra)
    with pytest.raises(ValueError, match="needs fusion_layers"):
        tiny_vse_config(itm_weight=1.0, fusion_layers=0)


def test_save_and_reload_with_auto_classes_in_a_fresh_process(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    model = mmml.VSEModel(tiny_vse_config(**ALL_OPTIONS)).eval()
    processor = mmml.VSEProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                     crop_size={"height": 32, "width": 32}),
                                  tokenizer=tiny_tokenizer)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    batch = tiny_batch()
    reference = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    torch.save({"batch": batch, "text": reference.pooler_output.detach(),
                "image": model.get_image_features(pixel_values=batch["pixel_values"]).pooler_output.detach()},
               tmp_path / "reference.pt")
    assert isinstance(AutoConfig.from_pretrained(tmp_path), mmml.VSEConfig)
    script = (
        "import sys, torch, mmml\n"
        "from transformers import AutoModel, AutoProcessor\n"
        f"path = {str(tmp_path)!r}\n"
        "model = AutoModel.from_pretrained(path).eval()\n"
        "assert type(model).__name__ == 'VSEModel', type(model)\n"
        "assert type(AutoProcessor.from_pretrained(path)).__name__ == 'VSEProcessor'\n"
        "ref = torch.load(path + '/reference.pt')\n"
        "b = ref['batch']\n"
        "t = model.get_text_features(input_ids=b['input_ids'], attention_mask=b['attention_mask']).pooler_output\n"
        "i = model.get_image_features(pixel_values=b['pixel_values']).pooler_output\n"
        "assert torch.allclose(t, ref['text'], atol=1e-6) and torch.allclose(i, ref['image'], atol=1e-6)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
    assert isinstance(AutoModel.from_pretrained(tmp_path), mmml.VSEModel)
    assert isinstance(AutoProcessor.from_pretrained(tmp_path), mmml.VSEProcessor)
