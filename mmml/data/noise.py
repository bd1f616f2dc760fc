"""Noisy correspondence injection: turn a fraction of image-caption pairs into mismatched ones.

Two kinds, as RCAR defines them:

* ``complete``: the pair's captions (every language) are replaced by those of another image.
* ``partial``: the second half of every caption's words (characters for scripts written without
  spaces, e.g. Chinese) is replaced by the second half of the matching caption of another image,
  so the caption is partly right and partly about a different scene.

The noisy rows and their donors are drawn from ``numpy.random.default_rng(seed)``: the same
dataset, rate, kind and seed always give the same result. A donor is always a different row.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

NOISE_KINDS = ("complete", "partial")


def check_noise_rate(rate: float) -> float:
    """Return ``rate`` as a float; ``ValueError`` unless it lies in ``[0, 1)``."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"noise rate must be a number in [0, 1), got {rate!r}") from None
    if not 0.0 <= value < 1.0:  # also rejects NaN
        raise ValueError(f"noise rate must be in [0, 1) (1 would leave no clean pair), got {rate!r}")
    return value


def noisy_row_mask(num_rows: int, rate: float, seed: int) -> np.ndarray:
    """Boolean mask with exactly ``round(rate * num_rows)`` True entries at seeded positions."""
    rate = check_noise_rate(rate)
    rng = np.random.default_rng((seed, 0))
    mask = np.zeros(num_rows, dtype=bool)
    mask[rng.permutation(num_rows)[: int(round(rate * num_rows))]] = True
    return mask


def draw_donors(num_rows: int, noisy: np.ndarray, seed: int) -> np.ndarray:
    """For every row, the row whose captions it borrows (itself when clean, never itself when noisy)."""
    rng = np.random.default_rng((seed, 1))
    donors = np.arange(num_rows)
    for row in np.flatnonzero(noisy):
        donor = int(rng.integers(num_rows - 1))
        donors[row] = donor + (donor >= row)  # uniform over the other rows
    return donors


def mix_caption(own: str, donor: str) -> str:
    """First half of ``own`` followed by the second half of ``donor`` (by words, or characters)."""
    if " " in own.strip() or " " in donor.strip():
        own_units, donor_units, joiner = own.split(), donor.split(), " "
    else:
        own_units, donor_units, joiner = list(own), list(donor), ""
    keep = len(own_units) // 2
    borrowed = donor_units[len(donor_units) // 2 :]
    return joiner.join(own_units[:keep] + borrowed)


def _noisy_captions(own: dict, donor: dict, kind: str) -> dict:
    if kind == "complete":
        return {lang: list(texts) if texts is not None else None for lang, texts in donor.items()}
    mixed = {}
    for lang, texts in own.items():
        donor_texts = donor.get(lang) or []
        if not texts or not donor_texts:
            mixed[lang] = list(texts) if texts is not None else None
            continue
        mixed[lang] = [mix_caption(text, donor_texts[i % len(donor_texts)]) for i, text in enumerate(texts)]
    return mixed


def inject_caption_noise(
    captions: Sequence[dict[str, Any]], rate: float, kind: str = "complete", seed: int = 0
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Return ``(noisy_captions, noise_mask)`` for a list of per-row ``{language: [caption, ...]}``.

    ``noise_mask[i]`` is True where row ``i``'s captions were corrupted. Clean rows are returned
    unchanged (as copies). ``rate`` must be in ``[0, 1)``; ``kind`` one of :data:`NOISE_KINDS`.
    """
    rate = check_noise_rate(rate)
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
    num_rows = len(captions)
    if rate > 0 and num_rows < 2:
        raise ValueError(f"noise needs at least 2 rows to borrow captions from, got {num_rows}")
    noisy = noisy_row_mask(num_rows, rate, seed)
    donors = draw_donors(num_rows, noisy, seed)
    result = [
        _noisy_captions(captions[i], captions[int(donors[i])], kind) if noisy[i] else dict(captions[i])
        for i in range(num_rows)
    ]
    return result, noisy


def add_noise_to_dataset(dataset, rate: float, kind: str = "complete", seed: int = 0):
    """``(dataset_with_noisy_captions, noise_mask)`` for a ``datasets.Dataset`` with a ``captions`` column.

    Images, labels and every other column are untouched; only the captions of the noisy rows change.
    """
    noisy_captions, mask = inject_caption_noise(dataset["captions"], rate, kind, seed)
    if not mask.any():
        return dataset, mask
    features = dataset.features
    return dataset.remove_columns("captions").add_column("captions", noisy_captions).cast(features), mask
