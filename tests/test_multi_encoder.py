"""The modality-general core: routing, tuples, objectives and their named terms, hashing on any family,
video and audio towers, the scoring hook, and MLA under gradient checkpointing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_mclip_config, tiny_text_config, tiny_vision_config
from transformers import ASTConfig

import mmml
from mmml.losses import ContrastiveLoss, HashingLoss
from mmml.modeling import MultiEncoderConfig, MultiEncoderModel


def inputs(batch: int = 4, seq: int = 7, vocab: int = 120, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, seq), generator=generator)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": torch.randn(batch, 3, 32, 32, generator=generator)}


def test_return_dict_false_returns_the_output_as_a_tuple():
    # Before the core was modality-general this raised "got multiple values for keyword argument 'return_dict'".
    torch.manual_seed(0)
    model = mmml.MCLIPModel(tiny_mclip_config()).eval()
    with torch.no_grad():
        as_dict = model(**inputs())
        as_tuple = model(**inputs(), return_dict=False)
    assert isinstance(as_tuple, tuple)
    assert torch.equal(as_tuple[0], as_dict.logits_per_image) and torch.equal(as_tuple[1], as_dict.logits_per_text)
    assert torch.equal(as_tuple[2], as_dict.text_embeds) and torch.equal(as_tuple[3], as_dict.image_embeds)


def test_an_input_no_modality_owns_is_refused_by_name():
    model = mmml.MCLIPModel(tiny_mclip_config())
    with pytest.raises(TypeError, match="pixel_values_videos"):
        model(**inputs(), pixel_values_videos=torch.zeros(4, 2, 3, 32, 32))  # no video modality here
    with pytest.raises(TypeError, match="'colour'"):
        model(**inputs(), colour=torch.zeros(4))


def test_loss_terms_sum_to_the_loss_and_name_every_objective():
    torch.manual_seed(0)
    model = mmml.MCLIPModel(tiny_mclip_config(hash_bits=16))
    out = model(**inputs(), return_loss=True)
    assert set(out.loss_terms) == {"contrastive", "hash_similarity", "hash_quantization", "hash_balance"}
    assert all(torch.isfinite(term) for term in out.loss_terms.values())
    torch.testing.assert_close(out.loss, sum(out.loss_terms.values()))
    scale = model.scaled_logit_scale()
    torch.testing.assert_close(out.loss_terms["contrastive"],
                               ContrastiveLoss()(out.image_embeds, out.text_embeds, scale))
    hashing = HashingLoss(1.0, 0.1, 0.01)(out.image_hash, out.text_hash)
    torch.testing.assert_close(sum(v for k, v in out.loss_terms.items() if k.startswith("hash_")), hashing)


def test_objectives_compose_from_the_config_with_weights():
    torch.manual_seed(0)
    plain = mmml.MCLIPModel(tiny_mclip_config())
    weighted = mmml.MCLIPModel(tiny_mclip_config(objectives=[
        {"type": "contrastive", "pairs": [["image", "text"]], "weights": [0.25]}]))
    weighted.load_state_dict(plain.state_dict())
    torch.testing.assert_close(weighted(**inputs(), return_loss=True).loss,
                               0.25 * plain(**inputs(), return_loss=True).loss)
    with pytest.raises(ValueError, match="valid: .*contrastive"):
        tiny_mclip_config(objectives=[{"type": "mlm"}])
    with pytest.raises(ValueError, match="names modalities \\['audio'\\]"):
        tiny_mclip_config(objectives=[{"type": "contrastive", "pairs": [["audio", "text"]]}])


def test_distillation_objective_reads_teacher_embeds_from_the_batch():
    torch.manual_seed(0)
    model = mmml.MCLIPModel(tiny_mclip_config(objectives=[{"type": "distillation", "modality": "text"}]))
    batch = inputs()
    teacher = torch.randn(4, 16)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], teacher_embeds=teacher,
                return_loss=True)
    student = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
    assert set(out.loss_terms) == {"distillation"}
    torch.testing.assert_close(out.loss, F.mse_loss(student, teacher))


def test_vse_with_hash_bits_returns_codes_and_hashing_terms():
    # Before, VSEModel built the heads and then returned image_hash=None and no hashing loss.
    torch.manual_seed(0)
    config = mmml.VSEConfig(text_config=tiny_text_config(), vision_config=tiny_vision_config(), projection_dim=16,
                            hash_bits=16)
    model = mmml.VSEModel(config)
    out = model(**inputs(), return_loss=True)
    assert out.image_hash.shape == (4, 16) and out.text_hash.shape == (4, 16)
    assert {"matching", "hash_similarity", "hash_quantization", "hash_balance"} <= set(out.loss_terms)
    torch.testing.assert_close(out.loss, sum(out.loss_terms.values()))
    out.loss.backward()
    assert model.image_hash_head.weight.grad.abs().sum() > 0
    codes = model.eval().get_image_codes(inputs()["pixel_values"])
    assert set(codes.unique().tolist()) <= {-1.0, 1.0} and codes.shape == (4, 16)


def test_a_family_that_cannot_hash_refuses_hash_bits():
    class NoHashing(mmml.MCLIPModel):
        supports_hashing = False

    with pytest.raises(ValueError, match="cannot carry hash heads"):
        NoHashing(tiny_mclip_config(hash_bits=16))


def test_default_scorer_is_the_scaled_cosine_of_aligned_pairs():
    torch.manual_seed(0)
    model = mmml.MCLIPModel(tiny_mclip_config()).eval()
    batch = inputs()
    with torch.no_grad():
        out = model(**batch)
        image = model.scoring_inputs("image", out.vision_model_output)
        text = model.scoring_inputs("text", out.text_model_output)
        scores = model.score_pairs(text, image, "text", "image")
    torch.testing.assert_close(scores, out.logits_per_text.diagonal())
    assert not model.has_pairwise_scorer


def tiny_video_model(**overrides) -> MultiEncoderModel:
    torch.manual_seed(0)
    config = MultiEncoderConfig(modalities=["video", "text"], vision_config=tiny_vision_config(),
                                text_config=tiny_text_config(), projection_dim=16, **overrides)
    return MultiEncoderModel(config).eval()


def test_video_frames_go_through_the_image_tower_and_padding_frames_do_not_count():
    model = tiny_video_model()
    assert not hasattr(model, "video_model") and hasattr(model, "vision_model")  # frames share the image tower
    generator = torch.Generator().manual_seed(1)
    clips = torch.randn(2, 3, 3, 32, 32, generator=generator)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    padded = clips.clone()
    padded[0, 2] = torch.randn(3, 32, 32, generator=generator)  # other content in a padding frame
    with torch.no_grad():
        first = model.get_video_features(pixel_values_videos=clips, video_frame_mask=mask).pooler_output
        second = model.get_video_features(pixel_values_videos=padded, video_frame_mask=mask).pooler_output
        alone = model.get_video_features(pixel_values_videos=clips[:1, :2]).pooler_output
        frames = F.normalize(model.visual_projection(model.vision_model(pixel_values=clips[0, :2]).pooler_output), dim=-1)
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first[:1], alone)
    torch.testing.assert_close(first[0], frames.mean(0))  # meanP: mean of normalised frame embeddings


def test_video_text_model_trains_with_a_video_text_contrastive_term():
    model = tiny_video_model().train()
    batch = inputs()
    clips = torch.randn(4, 2, 3, 32, 32)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values_videos=clips,
                video_frame_mask=torch.ones(4, 2, dtype=torch.long), return_loss=True)
    assert set(out.loss_terms) == {"contrastive"} and out.logits["video_text"].shape == (4, 4)
    assert out.video_embeds.shape == (4, 16) and out.image_embeds is None
    out.loss.backward()
    assert model.vision_model.embeddings.patch_embedding.weight.grad.abs().sum() > 0


def test_audio_tower_from_its_sub_config():
    torch.manual_seed(0)
    audio = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                      num_mel_bins=16, max_length=32, patch_size=16, frequency_stride=16, time_stride=16)
    config = MultiEncoderConfig(modalities=["audio", "text"], audio_config=audio, text_config=tiny_text_config(),
                                projection_dim=16)
    model = MultiEncoderModel(config)
    assert config.vision_config is None  # an unlisted modality gets no default tower
    batch = inputs()
    out = model(input_features=torch.randn(4, 32, 16), input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"], return_loss=True)
    assert out.audio_embeds.shape == (4, 16) and torch.isfinite(out.loss)
    reloaded = MultiEncoderConfig.from_dict(config.to_dict())
    assert reloaded.modalities == ["audio", "text"] and reloaded.audio_config.num_mel_bins == 16


def mla_with_acquirer() -> mmml.MLAModel:
    torch.manual_seed(0)
    model = mmml.MLAModel(mmml.MLAConfig(text_config=tiny_text_config(), vision_config=tiny_vision_config(),
                                         projection_dim=16))
    model.add_language("de", r=4)
    with torch.no_grad():
        for parameter in model.acquirer_parameters("de"):
            parameter.add_(torch.randn_like(parameter) * 0.5)
    return model


def mla_gradients(model: mmml.MLAModel) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    batch = inputs()
    model.train()
    out = model(**batch, language=["de", "en", "de", "en"], return_loss=True)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_mla_trains_its_acquirer_under_gradient_checkpointing():
    # Before, backward raised torch.utils.checkpoint.CheckpointError: the per-sample routing was gone
    # by the time the checkpointed layers were recomputed.
    plain_loss, plain_grads = mla_gradients(mla_with_acquirer())
    model = mla_with_acquirer()
    model.gradient_checkpointing_enable()
    loss, grads = mla_gradients(model)
    assert plain_grads and set(grads) == set(plain_grads)
    torch.testing.assert_close(loss, plain_loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], msg=name)


def test_mla_language_travels_with_the_call_not_the_model():
    model = mla_with_acquirer().eval()
    batch = inputs()
    with torch.no_grad():
        routed = model(**batch, language="de").text_embeds
        base = model(**batch).text_embeds
        direct = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                         language="de").pooler_output
    assert not torch.allclose(routed, base)
    torch.testing.assert_close(routed, F.normalize(direct, dim=-1))
    assert not hasattr(model, "_call_language")
