"""The embedded clips: determinism, splits, frames, multilingual motion captions, the temporal split."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datasets import List, Value
from PIL import Image

from mmml.data import CLIP_SPLITS, SCENE_LANGUAGES, ClipConfig, build_clip_dataset, decode_image
from mmml.data.scenes import (
    Clip,
    ClipCaptionPlan,
    MotionEvent,
    SceneObject,
    caption_clip,
    clip_from_json,
    clip_key,
    get_grammar,
    pair_key,
    render_clip,
    reverse_clip,
)
from mmml.data.scenes.clips import _start_cells, candidate_clips, sample_clip_splits, split_of_pair
from mmml.data.scenes.labels import scene_labels
from mmml.data.scenes.motion import MOVE_DELTAS, action_path, end_cell, motion_steps
from mmml.data.scenes.sampling import stream_rng
from mmml.data.scenes.spec import BACKGROUND_RGB, COLORS

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_train=60, num_val=10, num_test=20, num_temporal_test=20)


@pytest.fixture(scope="module")
def tiny_clips():
    return build_clip_dataset(ClipConfig(**TINY))


def frames_of(row) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for data in row["video"]]


def clip_of(row) -> Clip:
    return clip_from_json(row["events"], row["clip_id"])


def digest(dataset_dict) -> str:
    sha = hashlib.sha256()
    for split in CLIP_SPLITS:
        for row in dataset_dict[split]:
            for frame in row.pop("video"):
                sha.update(frame)
            sha.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
    return sha.hexdigest()


# ---------------------------------------------------------------- config


def test_config_defaults():
    config = ClipConfig()
    assert (config.num_train, config.num_val, config.num_test, config.num_temporal_test) == (5000, 500, 1000, 1000)
    assert (config.num_frames, config.image_size, config.captions_per_language, config.seed) == (8, 60, 2, 0)
    assert config.languages == SCENE_LANGUAGES == ("en", "de", "fr", "es", "ru", "zh")


@pytest.mark.parametrize(
    "kwargs, names",
    [
        ({"languages": ("en", "xx")}, ["ClipConfig.languages", "xx"]),
        ({"languages": "en"}, ["ClipConfig.languages"]),
        ({"languages": ()}, ["ClipConfig.languages"]),
        ({"num_frames": 3}, ["ClipConfig.num_frames", ">= 4"]),
        ({"num_frames": 65}, ["ClipConfig.num_frames", "<= 64"]),
        ({"image_size": 8}, ["ClipConfig.image_size", ">= 24"]),
        ({"captions_per_language": 4}, ["ClipConfig.captions_per_language", "<= 3"]),
        ({"num_temporal_test": 3}, ["ClipConfig.num_temporal_test", "even"]),
        ({"num_train": -1}, ["ClipConfig.num_train"]),
        ({"seed": 1.5}, ["ClipConfig.seed"]),
        ({"num_train": 0, "num_val": 0, "num_test": 0, "num_temporal_test": 0}, ["zero clips"]),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs, names):
    with pytest.raises(ValueError) as error:
        ClipConfig(**kwargs)
    for name in names:
        assert name in str(error.value)


# ---------------------------------------------------------------- shape of the data


def test_splits_schema_frames_and_png(tiny_clips):
    assert list(tiny_clips) == ["train", "validation", "test", "temporal_test"]
    assert [len(tiny_clips[s]) for s in tiny_clips] == [60, 10, 20, 20]
    features = tiny_clips["train"].features
    # a plain list of PNG bytes per clip (what the video decoder samples frames from)
    assert features["video"] == List(Value("binary"))
    assert list(features["captions"]) == list(SCENE_LANGUAGES)
    for split in CLIP_SPLITS:
        for index, row in enumerate(tiny_clips[split]):
            assert row["clip_id"] == f"{split}-{index:06d}"
            assert len(row["video"]) == 8 and all(isinstance(frame, bytes) for frame in row["video"])
            assert all(frame.startswith(b"\x89PNG\r\n\x1a\n") for frame in row["video"])
            image = decode_image(row["video"][0])
            assert image.size == (60, 60) and image.mode == "RGB"
            assert row["labels"] == scene_labels(clip_of(row).objects)
            assert row["group"] == (index // 2 if split == "temporal_test" else -1)


def test_frame_count_size_languages_and_caption_count_are_configurable():
    config = ClipConfig(
        num_train=4, num_val=0, num_test=2, num_temporal_test=2, num_frames=12, image_size=64,
        languages=("zh", "de"), captions_per_language=3,
    )
    dataset = build_clip_dataset(config)
    row = dataset["train"][0]
    assert len(row["video"]) == 12
    assert all(frame.shape == (64, 64, 3) for frame in frames_of(row))
    assert list(row["captions"]) == ["zh", "de"]
    assert all(len(texts) == 3 and len(set(texts)) == 3 for texts in row["captions"].values())
    assert len(dataset["validation"]) == 0


def test_language_subset_gives_the_same_captions(tiny_clips):
    russian = build_clip_dataset(ClipConfig(**TINY, languages=("ru",)))
    assert russian["test"]["captions"] == [{"ru": c["ru"]} for c in tiny_clips["test"]["captions"]]
    assert russian["test"]["video"] == tiny_clips["test"]["video"]


# ---------------------------------------------------------------- determinism


def test_same_config_and_seed_give_identical_clips(tiny_clips):
    assert digest(build_clip_dataset(ClipConfig(**TINY))) == digest(tiny_clips)
    assert digest(build_clip_dataset(ClipConfig(**TINY, seed=1))) != digest(tiny_clips)


# Captions and events of ClipConfig(**TINY); a change means the generator changed (update on purpose only).
GOLDEN_TEXT_DIGEST = "d707c2a918b99e6a9f95987e1231eae39cc02ca9bc8b10959ce9e8fdd09c8d6e"


def test_generated_text_matches_the_recorded_digest(tiny_clips):
    assert tiny_clips["train"][0]["captions"]["en"] == [
        "A small green heart comes into view, then a large blue square goes left.",
        "First, a small green heart appears, then a large blue square moves to the left.",
    ]
    sha = hashlib.sha256()
    for split in CLIP_SPLITS:
        for row in tiny_clips[split].remove_columns("video"):
            sha.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
    assert sha.hexdigest() == GOLDEN_TEXT_DIGEST


@pytest.mark.slow
def test_clips_are_identical_in_a_process_with_another_hash_seed(tiny_clips):
    script = (
        "import sys; sys.path.insert(0, 'tests'); from test_scene_clips import digest, TINY; "
        "from mmml.data import ClipConfig, build_clip_dataset; "
        "print(digest(build_clip_dataset(ClipConfig(**TINY))))"
    )
    env = dict(os.environ, PYTHONHASHSEED="4321", HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == digest(tiny_clips)


def test_stored_events_reproduce_the_frames_exactly(tiny_clips):
    for split in ("train", "temporal_test"):
        for row in tiny_clips[split].select(range(10)):
            assert render_clip(clip_of(row), 8, 60) == row["video"]


# ---------------------------------------------------------------- splits


def test_splits_are_disjoint_in_content_and_reversal(tiny_clips):
    keys = {split: [clip_of(row).key for row in tiny_clips[split]] for split in CLIP_SPLITS}
    pairs = {split: {pair_key(clip_of(row)) for row in tiny_clips[split]} for split in CLIP_SPLITS}
    for split in CLIP_SPLITS:
        assert len(set(keys[split])) == len(keys[split])  # no content twice
        assert all(split_of_pair(key) == split for key in pairs[split])
    for i, a in enumerate(CLIP_SPLITS):
        for b in CLIP_SPLITS[i + 1 :]:
            assert not set(keys[a]) & set(keys[b])
            assert not pairs[a] & pairs[b]  # not even a clip's reversal crosses splits


def test_larger_datasets_keep_the_splits_of_smaller_ones():
    small = build_clip_dataset(ClipConfig(**TINY, languages=("en",)))
    large = build_clip_dataset(ClipConfig(num_train=150, num_val=20, num_test=30, num_temporal_test=30,
                                          languages=("en",), seed=3))
    small_keys = {s: {clip_of(r).key for r in small[s]} for s in CLIP_SPLITS}
    for split in CLIP_SPLITS:
        for other in CLIP_SPLITS:
            if other != split:
                assert not small_keys[split] & {clip_of(r).key for r in large[other]}


def test_asking_for_more_clips_than_the_draws_find_is_an_error():
    with pytest.raises(RuntimeError, match="still missing"):
        sample_clip_splits({"train": 50}, seed=0, max_draws=20)
    with pytest.raises(ValueError, match="even"):
        sample_clip_splits({"temporal_test": 3}, seed=0)


def test_all_kinds_of_clips_and_actions_occur():
    dataset = build_clip_dataset(ClipConfig(num_train=300, num_val=0, num_test=0, num_temporal_test=0,
                                            languages=("en",)))
    clips = [clip_of(row) for row in dataset["train"]]
    kinds = Counter((len(c.objects), len(c.events)) for c in clips)
    assert set(kinds) == {(1, 1), (1, 2), (2, 2)}
    assert set(Counter(e.action for c in clips for e in c.events)) == set(MOVE_DELTAS) | {"appear", "disappear"}


# ---------------------------------------------------------------- the temporal split


def test_temporal_pairs_have_the_same_frames_reversed_and_different_captions(tiny_clips):
    split = tiny_clips["temporal_test"]
    assert split["group"] == [i // 2 for i in range(len(split))]
    for g in range(len(split) // 2):
        a, b = split[2 * g], split[2 * g + 1]
        frames_a, frames_b = frames_of(a), frames_of(b)
        # the multiset of decoded frames is exactly equal: an order-blind head sees the same clip
        assert sorted(f.tobytes() for f in frames_a) == sorted(f.tobytes() for f in frames_b)
        assert np.array_equal(np.mean(frames_a, axis=0), np.mean(frames_b, axis=0))
        # in fact b is a played backwards
        assert all(np.array_equal(x, y) for x, y in zip(frames_a, reversed(frames_b)))
        assert [f.tobytes() for f in frames_a] != [f.tobytes() for f in frames_b]  # order does differ
        clip_a, clip_b = clip_of(a), clip_of(b)
        assert clip_b.key == reverse_clip(clip_a).key != clip_a.key
        for language in SCENE_LANGUAGES:
            assert not set(a["captions"][language]) & set(b["captions"][language])


def test_reversal_renders_as_the_reversed_frames_for_any_clip():
    candidates = candidate_clips(stream_rng(7, 0))
    for num_frames in (4, 7, 8, 9, 16):
        for _ in range(40):
            clip = next(candidates)
            assert render_clip(reverse_clip(clip), num_frames, 48) == render_clip(clip, num_frames, 48)[::-1]
            assert reverse_clip(reverse_clip(clip)).key == clip.key


# ---------------------------------------------------------------- motion is visible


def _cell_px(cell: tuple[int, int], image_size: int) -> np.ndarray:
    return (np.array(cell[::-1], dtype=float) + 0.5) * image_size / 3  # (x, y)


def _centroid(frame: np.ndarray, rgb) -> np.ndarray | None:
    mask = np.all(frame == np.array(rgb, dtype=np.uint8), axis=-1)  # fully covered pixels only
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_objects_move_appear_and_disappear_as_the_events_say(tiny_clips):
    """Centroids of each object's colour in the decoded frames follow the events, in order."""
    checked = Counter()
    for split in CLIP_SPLITS:
        for row in tiny_clips[split]:
            clip, frames = clip_of(row), frames_of(row)
            colors = Counter(o.color for o in clip.objects)
            # frame 3 of 8 is after the first event and before the second one
            checkpoints = {0: 0, len(frames) - 1: len(clip.events)}
            if len(clip.events) == 2:
                checkpoints[3] = 1
            for index, obj in enumerate(clip.objects):
                if colors[obj.color] > 1:
                    continue  # two objects of one colour: their pixels cannot be told apart
                for frame_index, done in checkpoints.items():
                    actions = [e.action for e in clip.events[:done] if e.actor == index]
                    own = clip.actions_of(index)
                    visible = ("appear" not in own or "appear" in actions) and "disappear" not in actions
                    centroid = _centroid(frames[frame_index], COLORS[obj.color])
                    assert (centroid is not None) == visible, (row["clip_id"], frame_index, row["captions"]["en"])
                    if visible:
                        cell = obj.cell
                        for action in actions:
                            dr, dc = MOVE_DELTAS.get(action, (0, 0))
                            cell = (cell[0] + dr, cell[1] + dc)
                        # shapes are not centred exactly on their centroid: compare with the start
                        offset = centroid - _cell_px(cell, 60)
                        start = _centroid(frames[0], COLORS[obj.color])
                        if start is not None:
                            assert np.abs(offset - (start - _cell_px(obj.cell, 60))).max() < 1.0
                        assert np.abs(offset).max() < 4.0
                        checked[frame_index] += 1
            # the displacement between first and last frame is the sum of the moves, in cells of 20 px
            for index, obj in enumerate(clip.objects):
                first = _centroid(frames[0], COLORS[obj.color])
                last = _centroid(frames[-1], COLORS[obj.color])
                if colors[obj.color] == 1 and first is not None and last is not None:
                    shift = np.subtract(end_cell(clip, index), obj.cell)[::-1] * 20.0
                    assert np.abs((last - first) - shift).max() < 1.0
    assert checked[3] > 10 and checked[7] > 30


def test_a_move_is_gradual_and_monotonic():
    obj = SceneObject("square", "blue", "large", 1, 2)
    frames = [np.asarray(decode_image(f)) for f in render_clip(Clip("x", (obj,), (MotionEvent(0, "move_left"),)), 8)]
    xs = [_centroid(f, COLORS["blue"])[0] for f in frames]
    assert all(b <= a for a, b in zip(xs, xs[1:])) and xs[0] - xs[-1] == pytest.approx(20.0, abs=0.5)
    assert len(set(np.round(xs, 3))) >= 5  # in-between positions, not a jump
    assert np.all(frames[0][0, 0] == BACKGROUND_RGB)


# ---------------------------------------------------------------- captions


RED_CIRCLE = SceneObject("circle", "red", "small", 1, 1)
BLUE_SQUARE = SceneObject("square", "blue", "large", 0, 0)
GREEN_STAR = SceneObject("star", "green", "large", 2, 2)
BLACK_HEART = SceneObject("heart", "black", "small", 0, 2)
ORANGE_DIAMOND = SceneObject("diamond", "orange", "large", 2, 0)

CIRCLE_LEFT_THEN_SQUARE_APPEARS = Clip(
    "a", (RED_CIRCLE, BLUE_SQUARE), (MotionEvent(0, "move_left"), MotionEvent(1, "appear"))
)
STAR_APPEARS_THEN_UP = Clip("b", (GREEN_STAR,), (MotionEvent(0, "appear"), MotionEvent(0, "move_up")))
HEART_DOWN_THEN_GONE = Clip("c", (BLACK_HEART,), (MotionEvent(0, "move_down"), MotionEvent(0, "disappear")))
DIAMOND_RIGHT = Clip("d", (ORANGE_DIAMOND,), (MotionEvent(0, "move_right"),))


def say(language: str, clip: Clip, template: str = "then", style: int = 0) -> str:
    return caption_clip(clip, ClipCaptionPlan(template, style), language)


def test_english_motion_captions():
    clip = CIRCLE_LEFT_THEN_SQUARE_APPEARS
    assert say("en", clip) == "A small red circle moves to the left, then a large blue square appears."
    assert say("en", clip, "first_then", 1) == (
        "First, a small red circle slides to the left, then a large blue square shows up."
    )
    assert say("en", reverse_clip(clip), "after_that", 2) == (
        "A large blue square goes out of view. After that, a small red circle goes right."
    )
    assert say("en", STAR_APPEARS_THEN_UP, "and_then") == "A large green star appears and then moves up."
    assert say("en", STAR_APPEARS_THEN_UP, "then", 1) == "A large green star shows up, then it slides up."
    assert say("en", DIAMOND_RIGHT, "and_then", 2) == "A large orange diamond goes right."


def test_german_verb_second_separable_verbs_and_pronoun_gender():
    clip = CIRCLE_LEFT_THEN_SQUARE_APPEARS
    assert say("de", clip) == (
        "Ein kleiner roter Kreis bewegt sich nach links, dann erscheint ein großes blaues Quadrat."
    )
    assert say("de", clip, "first_then", 1) == (
        "Zuerst gleitet ein kleiner roter Kreis nach links, dann taucht ein großes blaues Quadrat auf."
    )
    assert say("de", reverse_clip(clip), "after_that", 1) == (
        "Ein großes blaues Quadrat löst sich auf. Danach gleitet ein kleiner roter Kreis nach rechts."
    )
    # pronoun before "sich"; "es" for the neuter Herz; shared subject with "und ... dann"
    assert say("de", HEART_DOWN_THEN_GONE) == "Ein kleines schwarzes Herz bewegt sich nach unten, dann verschwindet es."
    assert say("de", HEART_DOWN_THEN_GONE, "then", 1) == (
        "Ein kleines schwarzes Herz gleitet nach unten, dann löst es sich auf."
    )
    assert say("de", STAR_APPEARS_THEN_UP, "and_then") == (
        "Ein großer grüner Stern erscheint und bewegt sich dann nach oben."
    )
    assert say("de", STAR_APPEARS_THEN_UP, "first_then", 2) == (
        "Zuerst kommt ein großer grüner Stern zum Vorschein, dann wandert er nach oben."
    )
    assert say("de", DIAMOND_RIGHT, "after_that", 2) == "Eine große orangefarbene Raute wandert nach rechts."
    raute = Clip("r", (ORANGE_DIAMOND,), (MotionEvent(0, "move_right"), MotionEvent(0, "disappear")))
    assert say("de", raute, "then", 2) == (
        "Eine große orangefarbene Raute wandert nach rechts, dann wird sie unsichtbar."
    )


def test_french_motion_captions_and_pronoun_gender():
    clip = CIRCLE_LEFT_THEN_SQUARE_APPEARS
    assert say("fr", clip) == "Un petit cercle rouge se déplace vers la gauche, puis un grand carré bleu apparaît."
    assert say("fr", clip, "first_then", 2) == (
        "D'abord, un petit cercle rouge se dirige vers la gauche, puis un grand carré bleu fait son apparition."
    )
    assert say("fr", STAR_APPEARS_THEN_UP, "after_that", 1) == (
        "Une grande étoile verte surgit. Ensuite, elle glisse vers le haut."
    )
    assert say("fr", HEART_DOWN_THEN_GONE, "and_then", 1) == (
        "Un petit cœur noir glisse vers le bas et ensuite il s'efface."
    )


def test_spanish_verb_first_appearing_and_null_subjects():
    clip = CIRCLE_LEFT_THEN_SQUARE_APPEARS
    assert say("es", clip) == (
        "Un círculo rojo pequeño se mueve hacia la izquierda, luego aparece un cuadrado azul grande."
    )
    assert say("es", STAR_APPEARS_THEN_UP, "and_then") == (
        "Aparece una estrella verde grande y después se mueve hacia arriba."
    )
    assert say("es", STAR_APPEARS_THEN_UP, "first_then", 1) == (
        "Primero surge una estrella verde grande, luego se desliza hacia arriba."
    )
    assert say("es", HEART_DOWN_THEN_GONE, "after_that", 2) == (
        "Un corazón negro pequeño avanza hacia abajo. A continuación, se esfuma."
    )


def test_russian_motion_captions_and_pronoun_gender():
    clip = CIRCLE_LEFT_THEN_SQUARE_APPEARS
    assert say("ru", clip) == "Маленький красный круг движется влево, затем появляется большой синий квадрат."
    assert say("ru", reverse_clip(clip), "and_then", 1) == (
        "Большой синий квадрат пропадает, а потом маленький красный круг смещается вправо."
    )
    assert say("ru", STAR_APPEARS_THEN_UP, "first_then") == (
        "Сначала появляется большая зелёная звезда, потом она движется вверх."
    )
    assert say("ru", STAR_APPEARS_THEN_UP, "and_then", 2) == (
        "Показывается большая зелёная звезда, а потом перемещается вверх."
    )
    assert say("ru", HEART_DOWN_THEN_GONE, "after_that") == (
        "Маленькое чёрное сердце движется вниз. После этого оно исчезает."
    )


def test_chinese_motion_captions():
    clip = CIRCLE_LEFT_THEN_SQUARE_APPEARS
    assert say("zh", clip) == "一个红色的小圆形向左移动，然后出现了一个蓝色的大正方形。"
    assert say("zh", clip, "first_then", 2) == "一个红色的小圆形先向左滑动，然后一个蓝色的大正方形显现出来。"
    assert say("zh", STAR_APPEARS_THEN_UP, "first_then") == "先出现了一颗绿色的大星星，然后它向上移动。"
    assert say("zh", STAR_APPEARS_THEN_UP, "and_then", 1) == "冒出了一颗绿色的大星星，接着朝上移动。"
    assert say("zh", HEART_DOWN_THEN_GONE, "after_that", 2) == "一颗黑色的小爱心向下滑动。之后，它从画面中消失了。"


def test_every_caption_names_each_object_once_and_phrasings_differ(tiny_clips):
    for split in CLIP_SPLITS:
        for row in tiny_clips[split]:
            clip = clip_of(row)
            for language, captions in row["captions"].items():
                grammar = get_grammar(language)
                assert len(captions) == 2 and len(set(captions)) == 2
                for caption in captions:
                    text = caption.lower()
                    for obj in clip.objects:
                        assert sum(text.count(form.lower()) for form in grammar.noun_phrase_forms(obj)) == 1, caption


def test_captions_differ_across_directions_and_order():
    """Every action has its own words: clips that differ in one action or in event order never share a caption."""
    clips = []
    for first in ("move_left", "move_right", "move_up", "move_down", "appear", "disappear"):
        for second in ("move_left", "move_up", "appear", "disappear"):
            a = _start_cells((first,))[0]
            b = _start_cells((second,), frozenset(action_path(a, [first])))[0]
            objects = (SceneObject("circle", "red", "small", *a), SceneObject("square", "blue", "large", *b))
            clips.append(Clip("x", objects, (MotionEvent(0, first), MotionEvent(1, second))))
    for language in SCENE_LANGUAGES:
        for template in ("then", "and_then", "first_then", "after_that"):
            for style in range(3):
                texts = [say(language, clip, template, style) for clip in clips]
                assert len(set(texts)) == len(texts)
                reversed_texts = [say(language, reverse_clip(clip), template, style) for clip in clips]
                assert not set(texts) & set(reversed_texts)


def test_motion_steps_mark_a_continuing_subject():
    steps = motion_steps(STAR_APPEARS_THEN_UP)
    assert [(s.action, s.continues) for s in steps] == [("appear", False), ("move_up", True)]
    assert [s.continues for s in motion_steps(CIRCLE_LEFT_THEN_SQUARE_APPEARS)] == [False, False]


# ---------------------------------------------------------------- clip rules


@pytest.mark.parametrize(
    "objects, events, message",
    [
        ((RED_CIRCLE,), (MotionEvent(0, "move_left"), MotionEvent(0, "move_right")), "reads the same backwards"),
        ((RED_CIRCLE,), (MotionEvent(0, "appear"), MotionEvent(0, "disappear")), "reads the same backwards"),
        ((BLUE_SQUARE,), (MotionEvent(0, "move_up"),), "leaves the grid"),
        ((RED_CIRCLE,), (MotionEvent(0, "move_up"), MotionEvent(0, "appear")), "appear only as its first"),
        ((RED_CIRCLE, SceneObject("star", "red", "small", 1, 0)),
         (MotionEvent(0, "move_left"), MotionEvent(1, "appear")), "touch another object"),
        ((RED_CIRCLE, SceneObject("circle", "red", "small", 0, 0)),
         (MotionEvent(0, "appear"), MotionEvent(1, "appear")), "look the same"),
        ((RED_CIRCLE, BLUE_SQUARE), (MotionEvent(1, "appear"), MotionEvent(0, "appear")), "order of their first"),
        ((RED_CIRCLE,), (), "1..2 events"),
    ],
)
def test_invalid_clips_are_rejected(objects, events, message):
    with pytest.raises(ValueError, match=message):
        Clip("bad", objects, events)


def test_events_json_round_trip():
    clip = CIRCLE_LEFT_THEN_SQUARE_APPEARS
    from mmml.data.scenes import clip_to_json

    data = json.loads(clip_to_json(clip))
    assert data["events"][0] == {"object": 0, "action": "move_left", "from": [1, 1], "to": [1, 0]}
    assert data["events"][1] == {"object": 1, "action": "appear", "from": [0, 0], "to": [0, 0]}
    assert clip_key(clip_from_json(clip_to_json(clip))) == clip_key(clip)


# ---------------------------------------------------------------- speed


def test_generation_is_fast():
    config = ClipConfig(num_train=200, num_val=20, num_test=40, num_temporal_test=40)
    start = time.perf_counter()
    dataset = build_clip_dataset(config)
    elapsed = time.perf_counter() - start
    assert sum(len(split) for split in dataset.values()) == 300
    # about 0.6 s on a loaded 2-core CPU (7,500 clips of 8 frames: about 12 s)
    assert elapsed < 6.0, f"{elapsed:.2f} s for 300 clips"
