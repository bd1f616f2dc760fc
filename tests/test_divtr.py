"""DI-vTR: config, the meanP / seqTransf / divtr heads, the pairwise scorer in both directions, training on an
order-dependent task, saving / loading, weights from M-CLIP, and two-stage evaluation."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import CORPUS, tiny_mclip_config, tiny_text_config, tiny_vision_config
from PIL import Image
from transformers import AutoConfig, AutoModel, AutoProcessor, BertModel, CLIPImageProcessor, CLIPVisionModel

import mmml
from mmml.data.collate import MediaDecoder
from mmml.eval import RetrievalEvaluator
from mmml.models.divtr import DIVTRTextOutput, DIVTRVideoOutput
from mmml.processing import FrameProcessor

HEADS = ("meanP", "seqTransf", "divtr")


def tiny_config(head: str = "divtr", **overrides) -> mmml.DIVTRConfig:
    values = dict(vision_config=tiny_vision_config(), text_config=tiny_text_config(), projection_dim=16,
                  similarity_head=head, max_frames=8, temporal_layers=1, temporal_heads=2, interaction_heads=2)
    values.update(overrides)
    return mmml.DIVTRConfig(**values)


def tiny_model(head: str = "divtr", seed: int = 0, **overrides) -> mmml.DIVTRModel:
    torch.manual_seed(seed)
    return mmml.DIVTRModel(tiny_config(head, **overrides)).eval()


def clip_batch(seed: int = 1):
    """3 clips of up to 4 frames (two with padding frames) and 3 captions (one with padding tokens)."""
    generator = torch.Generator().manual_seed(seed)
    clips = torch.randn(3, 4, 3, 32, 32, generator=generator)
    frame_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])
    input_ids = torch.randint(5, 120, (3, 6), generator=generator)
    attention_mask = torch.ones(3, 6, dtype=torch.long)
    attention_mask[1, 3:] = 0
    return clips, frame_mask, input_ids, attention_mask


# -- config --------------------------------------------------------------------------------------


def test_config_defaults_and_validation():
    config = tiny_config()
    assert config.model_type == "divtr" and config.modalities == ["video", "text"]
    assert mmml.DIVTRConfig().similarity_head == "divtr" and mmml.DIVTRConfig().temporal_layers == 4
    reloaded = AutoConfig.for_model(**config.to_dict())
    assert type(reloaded) is mmml.DIVTRConfig and reloaded.similarity_head == "divtr"
    with pytest.raises(ValueError, match=r"similarity_head must be one of \('meanP', 'seqTransf', 'divtr'\)"):
        tiny_config("meanp")
    with pytest.raises(ValueError, match="temporal_layers must be a positive integer"):
        tiny_config(temporal_layers=0)
    with pytest.raises(ValueError, match="interaction_layers must be a positive integer"):
        tiny_config(interaction_layers=0)
    with pytest.raises(ValueError, match="interaction_weight must be a number >= 0"):
        tiny_config(interaction_weight=-1.0)
    with pytest.raises(ValueError, match="interaction_loss_weight must be a number >= 0"):
        tiny_config(interaction_loss_weight=float("nan"))
    with pytest.raises(ValueError, match=r"projection_dim \(16\) must be divisible by temporal_heads \(3\)"):
        tiny_config("seqTransf", temporal_heads=3)
    with pytest.raises(ValueError, match="interaction_heads"):
        tiny_config("divtr", interaction_heads=5)
    tiny_config("meanP", temporal_heads=3)  # meanP has no temporal encoder: its heads do not matter
    with pytest.raises(ValueError, match="modalities must include 'video' and 'text'"):
        tiny_config(modalities=["image", "text"])


def test_auto_model_from_config_builds_the_heads_parts():
    for head in HEADS:
        model = AutoModel.from_config(tiny_config(head))
        assert type(model) is mmml.DIVTRModel
        assert (model.temporal_encoder is not None) == (head != "meanP")
        assert (model.text_to_video is not None) == (head == "divtr")
        assert model.has_pairwise_scorer == (head == "divtr")
        assert not hasattr(model, "video_model")  # frames go through the image tower


# -- video features --------------------------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_video_features_shape_and_padding_frames_do_not_count(head):
    model = tiny_model(head)
    clips, frame_mask, _, _ = clip_batch()
    padded = clips.clone()
    padded[1, 2:] = torch.randn(2, 3, 32, 32)  # other content in padding frames
    padded[2, 3] = 7.0
    with torch.no_grad():
        out = model.get_video_features(pixel_values_videos=clips, video_frame_mask=frame_mask)
        other = model.get_video_features(pixel_values_videos=padded, video_frame_mask=frame_mask)
        alone = model.get_video_features(pixel_values_videos=clips[1:2, :2]).pooler_output
        frames = model.visual_projection(model.vision_model(pixel_values=clips[0]).pooler_output)
    assert isinstance(out, DIVTRVideoOutput)
    assert out.pooler_output.shape == (3, 16) and out.frame_embeds.shape == (3, 4, 16)
    assert out.frame_mask.tolist() == frame_mask.tolist()
    torch.testing.assert_close(out.pooler_output, other.pooler_output)
    torch.testing.assert_close(out.pooler_output[1:2], alone)
    if head == "meanP":
        torch.testing.assert_close(out.pooler_output[0], F.normalize(frames, dim=-1).mean(0))
    else:  # position embeddings + transformer + residual, then the mean of the normalised contextual frames
        contextual = model.temporal_encoder(frames[None])[0]
        torch.testing.assert_close(out.frame_embeds[0], contextual)
        torch.testing.assert_close(out.pooler_output[0], F.normalize(contextual, dim=-1).mean(0))


@pytest.mark.parametrize("head", HEADS)
def test_temporal_heads_are_order_sensitive_and_meanP_is_not(head):
    model = tiny_model(head)
    clips = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        forward = model.get_video_features(pixel_values_videos=clips).pooler_output
        reversed_ = model.get_video_features(pixel_values_videos=clips.flip(1)).pooler_output
    if head == "meanP":
        torch.testing.assert_close(forward, reversed_)
    else:  # at initialisation already (small position embeddings), far above float rounding
        assert (forward - reversed_).abs().max() > 1e-4


def test_clips_longer_than_max_frames_are_refused_by_name():
    model = tiny_model("seqTransf", max_frames=3)
    with pytest.raises(ValueError, match="max_frames"):
        model.get_video_features(pixel_values_videos=torch.zeros(1, 4, 3, 32, 32))


# -- scoring ---------------------------------------------------------------------------------------


def _reference_direction(stack, hidden: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """PairwiseCrossAttention for one pair of unpadded items, written out: [L_h, d] x [L_c, d] -> [d]."""
    stream = hidden
    for position, layer in enumerate(stack.layers):
        heads, width = layer.num_heads, layer.head_dim
        query = layer.q_proj(layer.norm(stream)).view(-1, heads, width).transpose(0, 1)
        normed = layer.context_norm(context)
        key = layer.k_proj(normed).view(-1, heads, width).transpose(0, 1)
        value = layer.v_proj(normed).view(-1, heads, width).transpose(0, 1)
        weights = torch.softmax(query @ key.transpose(1, 2) * width**-0.5, dim=-1)
        attended = layer.out_proj((weights @ value).transpose(0, 1).reshape(stream.shape[0], -1))
        if position == len(stack.layers) - 1:
            return attended.mean(0)
        stream = stream + attended
    raise AssertionError


def _reference_score(model, video_out, text_out, v: int, t: int, frame_mask, attention_mask) -> torch.Tensor:
    """Brute force: one (clip, caption) pair from its real frames and tokens only."""
    video_embed = F.normalize(video_out.pooler_output[v], dim=-1)
    text_embed = F.normalize(text_out.pooler_output[t], dim=-1)
    score = video_embed @ text_embed
    if model.config.similarity_head == "divtr":
        frames = video_out.frame_embeds[v][frame_mask[v].bool()]
        tokens = model.text_projection(text_out.last_hidden_state[t][attention_mask[t].bool()])
        seen_by_text = _reference_direction(model.text_to_video, tokens, frames)
        seen_by_video = _reference_direction(model.video_to_text, frames, tokens)
        interaction = (text_embed @ F.normalize(seen_by_text, dim=-1)
                       + video_embed @ F.normalize(seen_by_video, dim=-1)) / 2
        score = score + model.config.interaction_weight * interaction
    return model.scaled_logit_scale() * score


@pytest.mark.parametrize("head,layers", [("meanP", 1), ("seqTransf", 1), ("divtr", 1), ("divtr", 2)])
def test_score_pairs_in_both_directions_equals_a_brute_force_recomputation(head, layers):
    model = tiny_model(head, interaction_layers=layers, interaction_weight=0.7)
    with torch.no_grad():
        model.logit_scale.fill_(1.5)
    clips, frame_mask, input_ids, attention_mask = clip_batch()
    with torch.no_grad():
        video_out = model.get_video_features(pixel_values_videos=clips, video_frame_mask=frame_mask)
        text_out = model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        video = model.scoring_inputs("video", video_out, {"video_frame_mask": frame_mask})
        text = model.scoring_inputs("text", text_out, {"input_ids": input_ids, "attention_mask": attention_mask})
        t2v = model.score_pairs(text, video, "text", "video")
        v2t = model.score_pairs(video, text, "video", "text")
        out = model(pixel_values_videos=clips, video_frame_mask=frame_mask, input_ids=input_ids,
                    attention_mask=attention_mask)
        brute = torch.stack([torch.stack([_reference_score(model, video_out, text_out, v, t, frame_mask, attention_mask)
                                          for t in range(3)]) for v in range(3)])
    torch.testing.assert_close(t2v, v2t)
    torch.testing.assert_close(t2v, brute.diagonal())
    torch.testing.assert_close(out.logits_per_video, brute)  # forward scores every (clip, caption) pair
    torch.testing.assert_close(out.logits_per_text, brute.t())
    assert out.logits["video_text"] is out.logits_per_video
    dense = model.similarity(out.video_embeds, out.text_embeds)
    torch.testing.assert_close(out.dense_logits_per_video, dense)
    if head == "divtr":
        assert set(video) == {"embeds", "frame_embeds", "frame_mask"}
        assert set(text) == {"embeds", "token_embeds", "attention_mask"}
        assert isinstance(text_out, DIVTRTextOutput) and text.pop("token_embeds").shape == (3, 6, 16)
        torch.testing.assert_close(out.logits_per_video, dense + out.interaction_logits)
        assert (out.interaction_logits.abs() > 1e-4).all()
    else:
        assert set(video) == set(text) == {"embeds"} and not model.has_pairwise_scorer
        torch.testing.assert_close(t2v, dense.diagonal())
        assert out.interaction_logits is None


def test_divtr_scores_do_not_depend_on_zero_padding_or_the_attention_implementation():
    model = tiny_model("divtr", interaction_layers=2)
    clips, frame_mask, input_ids, attention_mask = clip_batch()
    with torch.no_grad():
        video = model.scoring_inputs("video", model.get_video_features(pixel_values_videos=clips,
                                                                       video_frame_mask=frame_mask))
        text = model.scoring_inputs("text", model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
        scores = model.score_pairs(text, video, "text", "video")
        # the evaluator's store zero-pads rows to the longest stored clip / caption
        wider_video = {**video, "frame_embeds": F.pad(video["frame_embeds"], (0, 0, 0, 3)),
                       "frame_mask": F.pad(video["frame_mask"], (0, 3))}
        wider_text = {**text, "token_embeds": F.pad(text["token_embeds"], (0, 0, 0, 5)),
                      "attention_mask": F.pad(text["attention_mask"], (0, 5))}
        torch.testing.assert_close(model.score_pairs(wider_text, wider_video, "text", "video"), scores)
        assert model.config._attn_implementation == "sdpa"
        model.config._attn_implementation = "eager"
        torch.testing.assert_close(model.score_pairs(text, video, "text", "video"), scores)


def test_the_interaction_score_changes_with_the_text_and_the_clip():
    model = tiny_model("divtr")
    clips, frame_mask, input_ids, attention_mask = clip_batch()
    with torch.no_grad():
        video = model.scoring_inputs("video", model.get_video_features(pixel_values_videos=clips,
                                                                       video_frame_mask=frame_mask))
        text = model.scoring_inputs("text", model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
        grid = model.all_pairs_interaction(video, text)  # [videos, texts], unweighted
        same_video = model.interaction_scores(video, text, torch.zeros(3, dtype=torch.long), torch.arange(3))
    assert grid.shape == (3, 3) and grid.abs().max() <= 1
    torch.testing.assert_close(same_video, grid[0])
    assert grid[0].std() > 1e-3 and grid[:, 0].std() > 1e-3  # one clip, other captions; one caption, other clips
    with pytest.raises(ValueError, match="similarity_head='divtr'"):
        tiny_model("seqTransf").interaction_scores(video, text)


# -- training --------------------------------------------------------------------------------------


def order_task(seed: int = 0, prototypes: int = 3, frames: int = 4):
    """Clips of two prototype frames, `a` then `b`, each with its reversed twin (`b` then `a`) in the batch;
    the caption says which comes first ("first a" and "then b" tokens). Order-blind meanP gives a clip and
    its twin the same embedding."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(prototypes, 3, 32, 32, generator=generator)
    pairs = [(a, b) for a in range(prototypes) for b in range(a + 1, prototypes)]
    pairs += [(b, a) for a, b in pairs]  # the twin of pair i is pair (i + K) % 2K
    half = frames // 2
    clips = torch.stack([torch.stack([images[a]] * half + [images[b]] * (frames - half)) for a, b in pairs])
    input_ids = torch.tensor([[1, 10 + a, 20 + b, 2] for a, b in pairs])
    return clips, input_ids


def direction_accuracy(scores: torch.Tensor) -> float:
    """Share of clips whose own caption outscores their twin's caption (by a margin, so ties count as wrong)."""
    index = torch.arange(scores.shape[0])
    twin = (index + scores.shape[0] // 2) % scores.shape[0]
    return float((scores[index, index] > scores[index, twin] + 1e-3).float().mean())


def train_on_order_task(head: str, steps: int = 60, **overrides):
    model = tiny_model(head, **overrides).train()
    clips, input_ids = order_task()
    batch = dict(pixel_values_videos=clips, input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    new = ("temporal_encoder.", "text_to_video.", "video_to_text.")  # fresh parts learn faster, as in CLIP4Clip
    optimizer = torch.optim.AdamW([
        {"params": [p for n, p in model.named_parameters() if not n.startswith(new)], "lr": 3e-3},
        {"params": [p for n, p in model.named_parameters() if n.startswith(new)], "lr": 1e-2},
    ], weight_decay=0.0)
    history = []
    for _ in range(steps):
        out = model(**batch, return_loss=True)
        history.append({name: value.item() for name, value in out.loss_terms.items()})
        torch.testing.assert_close(out.loss, sum(out.loss_terms.values()))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        scores = model(**batch).logits_per_video
    return history, direction_accuracy(scores)


def test_loss_terms_decrease_and_temporal_heads_learn_the_order_that_meanP_cannot():
    results = {head: train_on_order_task(head) for head in HEADS}
    for head, (history, _) in results.items():
        expected = {"contrastive", "interaction"} if head == "divtr" else {"contrastive"}
        assert all(set(terms) == expected for terms in history)
        assert all(torch.isfinite(torch.tensor(list(terms.values()))).all() for terms in history)
        for name in expected:
            assert history[-1][name] < 0.5 * history[0][name], (head, name, history[0], history[-1])
    accuracy = {head: result[1] for head, result in results.items()}
    assert accuracy["meanP"] <= 0.5  # a clip and its reversed twin look the same to meanP
    assert accuracy["seqTransf"] > accuracy["meanP"] and accuracy["divtr"] > accuracy["meanP"], accuracy
    assert accuracy["divtr"] >= 0.8, accuracy


@pytest.mark.parametrize("head", HEADS)
def test_reversed_video_inputs_equal_encoding_the_clip_played_backwards(head):
    model = tiny_model(head)
    clips, frame_mask, _, _ = clip_batch()
    backwards = clips.clone()
    for row, length in enumerate(frame_mask.sum(dim=1).tolist()):
        backwards[row, :length] = clips[row, :length].flip(0)
    with torch.no_grad():
        reversed_inputs = model.reversed_video_inputs(model.get_video_features(clips, frame_mask))
        expected = model.scoring_inputs("video", model.get_video_features(backwards, frame_mask))
    assert set(reversed_inputs) == set(expected)
    for name in expected:  # same kernels, different gather order of the frames: float rounding only
        torch.testing.assert_close(reversed_inputs[name], expected[name], rtol=1e-5, atol=1e-6)


def test_temporal_order_term_is_log2_with_zero_gradient_for_meanP_and_trains_the_temporal_heads():
    clips, input_ids = order_task()
    batch = dict(pixel_values_videos=clips, input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    meanp = tiny_model("meanP", temporal_order_loss_weight=1.0).train()
    out = meanp(**batch, return_loss=True)
    assert set(out.loss_terms) == {"contrastive", "temporal_order"}
    torch.testing.assert_close(out.loss_terms["temporal_order"], torch.tensor(2.0).log(), atol=1e-5, rtol=0)
    grads = torch.autograd.grad(out.loss_terms["temporal_order"], [p for p in meanp.parameters() if p.requires_grad],
                                allow_unused=True)
    assert max(float(g.abs().max()) for g in grads if g is not None) < 1e-5
    for head in ("seqTransf", "divtr"):
        history, accuracy = train_on_order_task(head, temporal_order_loss_weight=1.0)
        first, last = history[0]["temporal_order"], history[-1]["temporal_order"]
        assert last < 0.5 * first, (head, first, last)
        assert accuracy >= 0.8, (head, accuracy)
    with pytest.raises(ValueError, match="temporal_order_loss_weight"):
        tiny_config(temporal_order_loss_weight=-0.5)


# -- saving, loading, construction -----------------------------------------------------------------


def frame_processor() -> FrameProcessor:
    return FrameProcessor(CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}))


def pil_clips(lengths=(3, 2)):
    return [[Image.new("RGB", (40, 36), (30 * i + 80 * c, 120, 60 * c)) for i in range(n)]
            for c, n in enumerate(lengths)]


def test_save_and_load_through_auto_model_and_auto_processor(tmp_path, tiny_tokenizer):
    model = tiny_model("divtr")
    processor = mmml.DIVTRProcessor(video_processor=frame_processor(), tokenizer=tiny_tokenizer)
    assert processor.model_input_names == ["input_ids", "attention_mask", "pixel_values_videos", "video_frame_mask"]
    inputs = processor(text=CORPUS[:2], videos=pil_clips(), return_tensors="pt")
    assert inputs["video_frame_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "divtr"
    reloaded = AutoModel.from_pretrained(tmp_path)
    reloaded_processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded) is mmml.DIVTRModel and type(reloaded_processor) is mmml.DIVTRProcessor
    assert isinstance(reloaded_processor.video_processor, FrameProcessor)
    again = reloaded_processor(text=CORPUS[:2], videos=pil_clips(), return_tensors="pt")
    assert sorted(again) == sorted(inputs) and all(torch.equal(again[k], inputs[k]) for k in inputs)
    with torch.no_grad():
        expected, actual = model(**inputs), reloaded(**again)
    for field in ("logits_per_video", "logits_per_text", "interaction_logits", "video_embeds", "text_embeds"):
        torch.testing.assert_close(actual[field], expected[field])


def test_return_dict_false_returns_the_output_as_a_tuple():
    model = tiny_model("divtr")
    clips, frame_mask, input_ids, attention_mask = clip_batch()
    inputs = dict(pixel_values_videos=clips, video_frame_mask=frame_mask, input_ids=input_ids,
                  attention_mask=attention_mask)
    with torch.no_grad():
        as_dict = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_dict.to_tuple())
    assert torch.equal(as_tuple[0], as_dict.logits_per_text) and torch.equal(as_tuple[1], as_dict.text_embeds)
    assert torch.equal(as_tuple[-3], as_dict.logits_per_video) and torch.equal(as_tuple[-1], as_dict.interaction_logits)


def test_from_mclip_copies_the_towers_projections_and_scale_exactly(tmp_path):
    torch.manual_seed(0)
    mclip = mmml.MCLIPModel(tiny_mclip_config()).eval()
    with torch.no_grad():
        mclip.logit_scale.fill_(3.1)
    model = mmml.DIVTRModel.from_mclip(mclip, similarity_head="meanP")
    source = mclip.state_dict()
    kept = ("vision_model", "visual_projection", "text_model", "text_projection", "logit_scale")
    copied = [name for name in model.state_dict() if name.split(".")[0] in kept]
    assert copied and all(torch.equal(model.state_dict()[name], source[name]) for name in copied)
    assert set(copied) == {name for name in source if not name.startswith(("image_hash", "text_hash"))}
    frames = torch.randn(2, 3, 32, 32)
    ids = torch.randint(5, 120, (2, 5))
    with torch.no_grad():
        clip_embeds = model.get_video_features(pixel_values_videos=frames[:, None]).pooler_output  # 1-frame clips
        image_embeds = mclip.get_image_features(pixel_values=frames).pooler_output
        text = model.get_text_features(input_ids=ids).pooler_output
        mclip_text = mclip.get_text_features(input_ids=ids).pooler_output
    torch.testing.assert_close(clip_embeds, F.normalize(image_embeds, dim=-1))
    torch.testing.assert_close(text, mclip_text)
    # the DI-vTR head from a saved M-CLIP: the same copies, fresh temporal and interaction parts
    mclip.save_pretrained(tmp_path)
    divtr = mmml.DIVTRModel.from_mclip(str(tmp_path), temporal_layers=2, temporal_heads=2, interaction_heads=2)
    assert divtr.config.similarity_head == "divtr" and len(divtr.temporal_encoder.layers) == 2
    assert all(torch.equal(divtr.state_dict()[name], source[name]) for name in copied)
    with pytest.raises(ValueError, match="visual_projection.weight"):
        mmml.DIVTRModel.from_mclip(mclip, projection_dim=8, temporal_heads=2, interaction_heads=2)
    with pytest.raises(ValueError, match="image-text mmml model"):
        mmml.DIVTRModel.from_mclip(model)


def test_from_vision_text_pretrained_takes_any_two_towers(tmp_path):
    torch.manual_seed(0)
    CLIPVisionModel(tiny_vision_config()).save_pretrained(tmp_path / "vision")
    BertModel(tiny_text_config(), add_pooling_layer=False).save_pretrained(tmp_path / "text")
    model = mmml.DIVTRModel.from_vision_text_pretrained(
        str(tmp_path / "vision"), str(tmp_path / "text"), projection_dim=16, similarity_head="seqTransf",
        temporal_layers=1, temporal_heads=2)
    vision = CLIPVisionModel.from_pretrained(tmp_path / "vision")
    assert type(model) is mmml.DIVTRModel and model.config.similarity_head == "seqTransf"
    assert all(torch.equal(value, model.vision_model.state_dict()[name]) for name, value in vision.state_dict().items())


# -- evaluation ------------------------------------------------------------------------------------


def test_two_stage_evaluation_reranks_with_the_pairwise_scorer(tiny_tokenizer):
    model = tiny_model("divtr")
    processor = mmml.DIVTRProcessor(video_processor=frame_processor(), tokenizer=tiny_tokenizer)
    rows = [{"video": clip, "captions": {"en": [CORPUS[i]], "de": [CORPUS[i + 1], CORPUS[(i + 3) % 6]]}}
            for i, clip in enumerate(pil_clips((3, 2, 4, 1)))]
    decoder = MediaDecoder(lambda clip: clip, "videos")
    calls = []
    score_pairs = model.score_pairs

    def counting(query, gallery, query_modality, gallery_modality):
        calls.append((query_modality, gallery_modality, query["embeds"].shape[0]))
        return score_pairs(query, gallery, query_modality, gallery_modality)

    model.score_pairs = counting
    evaluator = RetrievalEvaluator(processor, gallery_modality="video", media_decoder=decoder, batch_size=3)
    metrics = evaluator.evaluate(model, rows)
    assert {"en", "de", "mean"} <= set(metrics) and metrics["en"]["num_videos"] == 4
    assert 0 <= metrics["mean"]["t2v_r1"] <= 100 and "v2t_r1" in metrics["de"]
    assert {(q, g) for q, g, _ in calls} == {("text", "video"), ("video", "text")}


def test_model_card_renders_for_the_family():
    from mmml.hub import render_model_card

    card = render_model_card(tiny_model("divtr"), "org/divtr-tiny")
    assert card.startswith("---\nlibrary_name: transformers") and "# divtr-tiny" in card
    assert "`clip_vision_model`, 1 layers, width 32" in card and "16-dimensional" in card
    assert 'AutoModel.from_pretrained("org/divtr-tiny")' in card and "Not evaluated yet." in card
