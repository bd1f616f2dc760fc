"""Tokenizer training and the M-CLIP processor's save / load through AutoProcessor."""

from __future__ import annotations

import pytest
import torch
from conftest import CORPUS
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer

import mmml
from mmml.processing import sentencepiece_to_transformers, train_sentencepiece


def test_wrapped_tokenizer_tokenizes_exactly_like_sentencepiece():
    sp = train_sentencepiece(CORPUS * 20, vocab_size=150)
    tokenizer = sentencepiece_to_transformers(sp, model_max_length=32)
    for text in CORPUS + ["ein kleiner roter Stern unten", "左下角有一个绿色的三角形"]:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        assert ids[1:-1] == sp.encode(text)
    assert tokenizer.pad_token_id == 1 and tokenizer.unk_token_id == 3
    # Non-Latin scripts are covered, not mapped to <unk>.
    assert tokenizer.unk_token_id not in tokenizer("маленький красный круг")["input_ids"]
    assert tokenizer.unk_token_id not in tokenizer("蓝色的小正方形")["input_ids"]


def test_chinese_pieces_are_single_characters_unless_asked_otherwise():
    chinese = "右上角有一个蓝色的小正方形"
    per_char = train_sentencepiece(CORPUS * 20, vocab_size=150)
    assert [p.lstrip("▁") for p in per_char.encode(chinese, out_type=str) if p.lstrip("▁")] == list(chinese)
    merged = train_sentencepiece(CORPUS * 20, vocab_size=150, single_character_cjk=False)
    assert len(merged.encode(chinese)) < len(chinese)


def test_tokenizer_training_is_deterministic_and_validates_input():
    a = train_sentencepiece(CORPUS * 20, vocab_size=150)
    b = train_sentencepiece(CORPUS * 20, vocab_size=150)
    assert a.serialized_model_proto() == b.serialized_model_proto()
    with pytest.raises(ValueError, match="empty corpus"):
        train_sentencepiece(["", "   "])
    with pytest.raises(ValueError, match="model_type"):
        train_sentencepiece(CORPUS, model_type="wordpiece")


def test_tokenizer_round_trips_through_auto_tokenizer(tmp_path, tiny_tokenizer):
    tiny_tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in CORPUS:
        assert reloaded(text)["input_ids"] == tiny_tokenizer(text)["input_ids"]
    assert reloaded.decode(reloaded(CORPUS[4])["input_ids"], skip_special_tokens=True) == CORPUS[4]


def test_processor_outputs_and_auto_processor_round_trip(tmp_path, tiny_processor):
    images = [Image.new("RGB", (48, 40), (200, 30, 30)), Image.new("RGB", (32, 32), (30, 30, 200))]
    texts = [CORPUS[0], CORPUS[5]]
    batch = tiny_processor(text=texts, images=images, return_tensors="pt")
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    # Padded to the longest text by default, with the tokenizer's pad id.
    shorter = int(batch["attention_mask"].sum(1).argmin())
    assert batch["input_ids"][shorter, -1] == tiny_processor.tokenizer.pad_token_id
    tiny_processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, mmml.MCLIPProcessor)
    again = reloaded(text=texts, images=images, return_tensors="pt")
    for key in batch:
        assert torch.equal(batch[key], again[key]), key


def test_processor_truncates_to_model_max_length(tiny_processor):
    long_text = " ".join(CORPUS * 5)
    batch = tiny_processor(text=[long_text], return_tensors="pt")
    assert batch["input_ids"].shape[1] == tiny_processor.tokenizer.model_max_length


# -- the multimodal processor base -------------------------------------------------------------

import json  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
from transformers import (  # noqa: E402
    AutoConfig,
    CLIPImageProcessor,
    PretrainedConfig,
    WhisperFeatureExtractor,
)

from mmml.processing import FrameProcessor, MultimodalProcessor, pixel_values  # noqa: E402
from mmml.processing.image import fast_path_applies  # noqa: E402


def frame_image_processor(side: int = 16) -> CLIPImageProcessor:
    return CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})


def tiny_whisper_extractor() -> WhisperFeatureExtractor:
    """8 mel bins, 1 s chunks at 16 kHz: 100 frames per clip."""
    return WhisperFeatureExtractor(feature_size=8, sampling_rate=16000, hop_length=160, chunk_length=1, n_fft=400)


class VideoTextProcessor(MultimodalProcessor):
    """A family-like processor (video + text), registered with AutoProcessor below."""

    def __init__(self, video_processor=None, tokenizer=None, **kwargs):
        super().__init__(video_processor=video_processor, tokenizer=tokenizer, **kwargs)


class AudioTextProcessor(MultimodalProcessor):
    def __init__(self, feature_extractor=None, tokenizer=None, **kwargs):
        super().__init__(feature_extractor=feature_extractor, tokenizer=tokenizer, **kwargs)


class _VideoTextTestConfig(PretrainedConfig):
    model_type = "mmml_test_video_text"


class _AudioTextTestConfig(PretrainedConfig):
    model_type = "mmml_test_audio_text"


for _config, _processor in ((_VideoTextTestConfig, VideoTextProcessor), (_AudioTextTestConfig, AudioTextProcessor)):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoProcessor.register(_config, _processor, exist_ok=True)


def clips(num_frames=(3, 1)):
    return [[Image.new("RGB", (20, 16), (40 * i + 10 * c, 90, 0)) for i in range(n)] for c, n in enumerate(num_frames)]


def sounds():
    t = np.linspace(0, 1, 16000, dtype=np.float32)
    return [np.sin(2 * np.pi * 440 * t)[:12000], 0.1 * np.sin(2 * np.pi * 220 * t)[:4800]]


def assert_same_batches(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_text_only_processor_round_trips_and_names_its_missing_component(tmp_path, tiny_tokenizer):
    processor = mmml.MCLIPProcessor(tokenizer=tiny_tokenizer)
    assert processor.components == ["tokenizer"] and processor.model_input_names == ["input_ids", "attention_mask"]
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["image_processor"] is None and saved["processor_class"] == "MCLIPProcessor"
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded) is mmml.MCLIPProcessor and reloaded.image_processor is None
    assert_same_batches(processor(text=CORPUS, return_tensors="pt"), reloaded(text=CORPUS, return_tensors="pt"))
    with pytest.raises(ValueError, match=r"has no image_processor, so it cannot process `images`"):
        reloaded(text=CORPUS[:1], images=[Image.new("RGB", (8, 8))])
    with pytest.raises(ValueError, match="at least one of"):
        MultimodalProcessor()


def test_image_only_processor_round_trips(tmp_path, tiny_processor):
    processor = mmml.MCLIPProcessor(image_processor=tiny_processor.image_processor)
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["tokenizer"] is None
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert reloaded.tokenizer is None and reloaded.model_input_names == ["pixel_values"]
    images = [Image.new("RGB", (40, 32), (9, 99, 199))]
    assert_same_batches(processor(images=images, return_tensors="pt"), reloaded(images=images, return_tensors="pt"))
    with pytest.raises(ValueError, match="has no tokenizer"):
        reloaded(text=["a"])


def test_frame_processor_pads_clips_and_marks_real_frames(tiny_tokenizer):
    image_processor = frame_image_processor()
    batch = FrameProcessor(image_processor)(clips((3, 1)), return_tensors="pt")
    assert batch["pixel_values_videos"].shape == (2, 3, 3, 16, 16)
    assert batch["video_frame_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    frames = image_processor(images=clips((3, 1))[0] + clips((3, 1))[1], return_tensors="pt")["pixel_values"]
    assert torch.equal(batch["pixel_values_videos"][0], frames[:3])
    assert torch.equal(batch["pixel_values_videos"][1, 0], frames[3])
    assert not batch["pixel_values_videos"][1, 1:].any()
    # One clip alone (a list of frames, or a [F, H, W, C] array) is a batch of one.
    single = FrameProcessor(image_processor)(clips((2,))[0], return_tensors="pt")
    assert single["pixel_values_videos"].shape == (1, 2, 3, 16, 16)
    array = np.stack([np.asarray(frame) for frame in clips((2,))[0]])
    assert torch.equal(FrameProcessor(image_processor)(array, return_tensors="pt")["pixel_values_videos"],
                       single["pixel_values_videos"])
    with pytest.raises(ValueError, match="video 1 has no frames"):
        FrameProcessor(image_processor)([clips((1,))[0], []])


def test_video_text_processor_round_trips_through_auto_processor(tmp_path, tiny_tokenizer):
    processor = VideoTextProcessor(video_processor=FrameProcessor(frame_image_processor()), tokenizer=tiny_tokenizer)
    assert processor.model_input_names == ["input_ids", "attention_mask", "pixel_values_videos", "video_frame_mask"]
    batch = processor(text=CORPUS[:2], videos=clips(), return_tensors="pt")
    assert sorted(batch) == sorted(processor.model_input_names)
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded) is VideoTextProcessor and isinstance(reloaded.video_processor, FrameProcessor)
    assert_same_batches(batch, reloaded(text=CORPUS[:2], videos=clips(), return_tensors="pt"))


def test_audio_text_processor_renames_the_audio_mask_and_round_trips(tmp_path, tiny_tokenizer):
    extractor = tiny_whisper_extractor()
    processor = AudioTextProcessor(feature_extractor=extractor, tokenizer=tiny_tokenizer)
    assert processor.model_input_names == ["input_ids", "attention_mask", "input_features", "audio_attention_mask"]
    batch = processor(text=CORPUS[:2], audio=sounds(), sampling_rate=16000, return_tensors="pt")
    assert sorted(batch) == sorted(processor.model_input_names)
    assert batch["input_features"].shape == (2, 8, 100)
    assert batch["audio_attention_mask"].sum(1).tolist() == [75, 30]  # 12000 and 4800 samples, hop 160
    direct = extractor(sounds(), sampling_rate=16000, return_attention_mask=True, return_tensors="pt")
    assert torch.equal(batch["input_features"], direct["input_features"])
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded) is AudioTextProcessor and isinstance(reloaded.feature_extractor, WhisperFeatureExtractor)
    # The reloaded tokenizer's saved defaults (max_length=32) must not reach the audio extractor.
    assert_same_batches(batch, reloaded(text=CORPUS[:2], audio=sounds(), sampling_rate=16000, return_tensors="pt"))


def test_the_base_class_loads_with_remote_code_and_all_four_components(tmp_path, tiny_processor):
    processor = MultimodalProcessor(
        image_processor=tiny_processor.image_processor, video_processor=FrameProcessor(frame_image_processor()),
        feature_extractor=tiny_whisper_extractor(), tokenizer=tiny_processor.tokenizer,
    )
    inputs = dict(text=CORPUS[:2], images=[Image.new("RGB", (32, 32), (1, 2, 3))] * 2, videos=clips(),
                  audio=sounds(), sampling_rate=16000, return_tensors="pt")
    batch = processor(**inputs)
    assert sorted(batch) == sorted(processor.model_input_names) == sorted(
        ["input_ids", "attention_mask", "pixel_values", "pixel_values_videos", "video_frame_mask",
         "input_features", "audio_attention_mask"])
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "multimodal.py").read_text().count("from mmml.processing.multimodal import MultimodalProcessor")
    reloaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(reloaded).__name__ == "MultimodalProcessor" and reloaded.components == processor.components
    assert_same_batches(batch, reloaded(**inputs))
    # Remote-code loading registered nothing that makes later saves copy mmml's module files.
    assert MultimodalProcessor._auto_class is None and mmml.MCLIPProcessor._auto_class is None
    reloaded.save_pretrained(tmp_path / "again")
    assert sorted(p.name for p in (tmp_path / "again").glob("*.py")) == ["multimodal.py"]


@pytest.mark.parametrize("size", [(24, 24), (24, 30), (30, 24)])
def test_the_image_fast_path_equals_the_image_processor_exactly(size):
    image_processor = CLIPImageProcessor(size={"shortest_edge": 24}, crop_size={"height": size[1], "width": size[0]})
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(5)]
    assert fast_path_applies(image_processor, images)
    expected = image_processor(images=images, return_tensors="pt")["pixel_values"]
    fast = pixel_values(image_processor, images)
    assert fast.dtype == expected.dtype and torch.equal(fast, expected)
    # Images that need resizing or cropping take the processor's own path.
    other = [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))]
    assert not fast_path_applies(image_processor, other)
    assert torch.equal(pixel_values(image_processor, other),
                       image_processor(images=other, return_tensors="pt")["pixel_values"])


def test_the_image_fast_path_on_scene_images_and_through_the_processor(tiny_tokenizer):
    from mmml.data import SceneConfig, build_scene_dataset, decode_image

    scenes = build_scene_dataset(SceneConfig(num_train=16, num_val=8, num_test=8, image_size=60))["train"]
    images = [decode_image(image) for image in scenes["image"]]
    image_processor = CLIPImageProcessor(size={"shortest_edge": 60}, crop_size={"height": 60, "width": 60})
    assert fast_path_applies(image_processor, images)
    expected = image_processor(images=images, return_tensors="pt")["pixel_values"]
    processor = mmml.MCLIPProcessor(image_processor=image_processor, tokenizer=tiny_tokenizer)
    assert torch.equal(processor(images=images, return_tensors="pt")["pixel_values"], expected)
    # A call-time override goes to the image processor itself.
    unnormalised = processor(images=images, do_normalize=False, return_tensors="pt")["pixel_values"]
    direct = image_processor(images=images, do_normalize=False, return_tensors="pt")["pixel_values"]
    assert torch.equal(unnormalised, direct)


def test_hashing_processor_adapts_to_a_tfidf_corpus_and_old_saves_load(tmp_path, tiny_processor):
    processor = mmml.CrossModalHashingProcessor(tiny_processor.image_processor, tiny_processor.tokenizer)
    assert processor.adapted_to_corpus(CORPUS) is processor
    bert = SimpleNamespace(text_config=SimpleNamespace(model_type="bert"))
    assert processor.adapted_to_corpus(CORPUS, bert, max_features=7) is processor
    tfidf_config = SimpleNamespace(text_config=SimpleNamespace(model_type="tfidf_encoder"))
    fitted = processor.adapted_to_corpus(CORPUS, tfidf_config, max_features=7)
    assert fitted is not processor and fitted.tfidf.vocab_size == 7
    assert fitted.model_input_names == ["pixel_values", "text_features"]
    batch = fitted(text=CORPUS[:3], images=[Image.new("RGB", (32, 32))] * 3, return_tensors="pt")
    assert sorted(batch) == ["pixel_values", "text_features"] and batch["text_features"].shape == (3, 7)
    # processor_config.json as mmml wrote it before the multimodal base (no null components).
    tiny_processor.tokenizer.save_pretrained(tmp_path)
    legacy = {
        "auto_map": {"AutoProcessor": "processing_cmh.CrossModalHashingProcessor"},
        "image_processor": tiny_processor.image_processor.to_dict(),
        "processor_class": "CrossModalHashingProcessor",
        "tfidf": fitted.tfidf.to_dict(),
    }
    (tmp_path / "processor_config.json").write_text(json.dumps(legacy, default=int), encoding="utf-8")
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded) is mmml.CrossModalHashingProcessor and reloaded.tfidf.vocabulary == fitted.tfidf.vocabulary
    assert torch.equal(reloaded(text=CORPUS, return_tensors="pt")["text_features"],
                       fitted(text=CORPUS, return_tensors="pt")["text_features"])


def test_mla_processor_routes_languages_with_media_and_text_kwargs(tiny_processor):
    from mmml.processing import train_multilingual_tokenizer

    processor = mmml.MLAProcessor(image_processor=tiny_processor.image_processor, tokenizer=tiny_processor.tokenizer)
    processor.set_language_tokenizer("de", train_multilingual_tokenizer([CORPUS[1]] * 40, vocab_size=60,
                                                                       model_max_length=32))
    images = [Image.new("RGB", (32, 32), (i, 0, 0)) for i in range(2)]
    batch = processor(text=[CORPUS[0], CORPUS[1]], images=images, language=["en", "de"], return_tensors="pt",
                      text_kwargs={"max_length": 5})
    assert batch["language"] == ["en", "de"] and batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["input_ids"].shape == (2, 5)
    german = processor.language_tokenizers["de"](CORPUS[1], truncation=True, max_length=5)["input_ids"]
    assert batch["input_ids"][1].tolist()[: len(german)] == german
