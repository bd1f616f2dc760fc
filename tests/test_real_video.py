"""Real clips (`../shared/data/video`) through decoder, processor, DI-vTR model and evaluator."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import shared_data_dir, tiny_text_config, tiny_vision_config
from transformers import CLIPImageProcessor

import mmml
from mmml.data.collate import evaluation_media_decoder
from mmml.data.video import decode_video
from mmml.eval import RetrievalEvaluator
from mmml.processing.video import FrameProcessor

VIDEO_DIR = shared_data_dir() / "video"
pytestmark = pytest.mark.skipif(not (VIDEO_DIR / "video_text_test_list.json").is_file(),
                                reason=f"real clips not found at {VIDEO_DIR} (shared data absent)")


def real_clip_rows() -> list[dict]:
    """The captioned clip (MSVD style: several captions) and the labelled Kinetics clip (one caption)."""
    captions = json.loads((VIDEO_DIR / "video_text_test_list.json").read_text())
    rows = [{"video": str(VIDEO_DIR / name), "captions": {"en": list(texts)}} for name, texts in captions.items()]
    rows.append({"video": str(VIDEO_DIR / "kinetics_demo.mp4"), "captions": {"en": ["arm wrestling"]}})
    return rows


@pytest.fixture(scope="module")
def model_and_processor(tiny_tokenizer):
    torch.manual_seed(0)
    config = mmml.DIVTRConfig(vision_config=tiny_vision_config(), text_config=tiny_text_config(), projection_dim=16,
                              max_frames=8, temporal_layers=1, temporal_heads=2, interaction_layers=1,
                              interaction_heads=2)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = mmml.DIVTRProcessor(video_processor=FrameProcessor(image_processor), tokenizer=tiny_tokenizer)
    return mmml.DIVTRModel(config).eval(), processor


def test_real_clips_decode_process_embed_and_evaluate(model_and_processor):
    model, processor = model_and_processor
    rows = real_clip_rows()
    clips = [decode_video(row["video"], num_frames=8, sampling="uniform") for row in rows]
    assert all(clip.frames.shape[0] == 8 and clip.frames.shape[-1] == 3 for clip in clips)
    inputs = processor(videos=[clip.images() for clip in clips], text=["arm wrestling"], return_tensors="pt")
    assert inputs["pixel_values_videos"].shape == (2, 8, 3, 32, 32) and inputs["video_frame_mask"].all()
    with torch.no_grad():
        out = model(**inputs)
    assert out.video_embeds.shape == (2, 16) and torch.isfinite(out.logits["video_text"]).all()

    metrics = RetrievalEvaluator(processor, gallery_modality="video", batch_size=2).evaluate(model, rows)
    english = metrics["en"]
    assert english["num_videos"] == 2 and english["num_texts"] == 3
    # a gallery of two: every caption's rank is 1 or 2, whatever the untrained model scores
    assert english["t2v_r1"] in (0.0, 100 / 3, 200 / 3, 100.0) and english["t2v_r5"] == 100.0
    assert {"v2t_medr", "v2t_meanr", "t2v_medr", "t2v_meanr", "rsum"} <= set(english)


def test_the_evaluator_samples_real_clips_uniformly():
    decoder = evaluation_media_decoder("video")
    first = decoder.decode(str(VIDEO_DIR / "kinetics_demo.mp4"))
    again = decoder.decode(str(VIDEO_DIR / "kinetics_demo.mp4"))
    assert len(first) == 8 and all((a.tobytes() == b.tobytes()) for a, b in zip(first, again))  # deterministic
