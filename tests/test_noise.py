"""Noisy-correspondence injection: exact counts, determinism, donors, both kinds, bad rates."""

from __future__ import annotations

import numpy as np
import pytest

from mmml.data import SceneConfig, build_scene_dataset
from mmml.data.noise import add_noise_to_dataset, inject_caption_noise, mix_caption

CAPTIONS = [
    {"en": [f"scene {i} has a red circle and a blue square", f"a blue square near a red circle {i}"],
     "zh": [f"第{i}个场景有红色圆形"]}
    for i in range(40)
]


@pytest.mark.parametrize("kind", ["complete", "partial"])
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5])
def test_exact_fraction_and_clean_rows_untouched(kind, rate):
    noisy, mask = inject_caption_noise(CAPTIONS, rate, kind, seed=3)
    assert mask.dtype == bool and mask.shape == (40,)
    assert mask.sum() == round(rate * 40)
    for i in range(40):
        if mask[i]:
            assert noisy[i] != CAPTIONS[i]
        else:
            assert noisy[i] == CAPTIONS[i]


def test_deterministic_by_seed():
    a, mask_a = inject_caption_noise(CAPTIONS, 0.5, "partial", seed=7)
    b, mask_b = inject_caption_noise(CAPTIONS, 0.5, "partial", seed=7)
    c, mask_c = inject_caption_noise(CAPTIONS, 0.5, "partial", seed=8)
    assert a == b and (mask_a == mask_b).all()
    assert not (mask_a == mask_c).all()


def test_complete_noise_takes_all_captions_of_another_row():
    noisy, mask = inject_caption_noise(CAPTIONS, 0.5, "complete", seed=0)
    for i in np.flatnonzero(mask):
        donors = [j for j in range(40) if CAPTIONS[j] == noisy[i]]
        assert donors and i not in donors  # another image's captions, every language


def test_partial_noise_keeps_own_first_half_and_donor_second_half():
    assert mix_caption("a b c d", "w x y z") == "a b y z"
    assert mix_caption("一二三四", "甲乙丙丁") == "一二丙丁"  # characters when there are no spaces
    noisy, mask = inject_caption_noise(CAPTIONS, 0.5, "partial", seed=0)
    for i in np.flatnonzero(mask):
        own_words = CAPTIONS[i]["en"][0].split()
        new_words = noisy[i]["en"][0].split()
        assert new_words[: len(own_words) // 2] == own_words[: len(own_words) // 2]
        tail = " ".join(new_words[len(own_words) // 2 :])
        assert any(caps["en"][0].endswith(tail) for j, caps in enumerate(CAPTIONS) if j != i)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan"), "half", None])
def test_rate_outside_unit_interval_is_rejected(rate):
    with pytest.raises(ValueError, match=r"noise rate must be"):
        inject_caption_noise(CAPTIONS, rate)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="noise kind must be one of"):
        inject_caption_noise(CAPTIONS, 0.2, kind="swap")


def test_dataset_noise_changes_only_captions():
    dataset = build_scene_dataset(SceneConfig(num_train=30, num_val=0, num_test=0, languages=("en", "de"),
                                              image_size=24))["train"]
    noisy, mask = add_noise_to_dataset(dataset, 0.2, "complete", seed=1)
    assert mask.sum() == 6 and noisy.features == dataset.features and len(noisy) == len(dataset)
    assert noisy["labels"] == dataset["labels"] and noisy["scene_id"] == dataset["scene_id"]
    changed = [i for i in range(30) if noisy[i]["captions"] != dataset[i]["captions"]]
    assert changed == np.flatnonzero(mask).tolist()
