"""Hashing metrics: mAP@K against a brute-force reference, the documented tie rule, P@r2, PR curve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmml.eval import (
    hamming_distances,
    hashing_metrics,
    mean_average_precision,
    precision_at_radius,
    precision_recall_curve,
    relevance_from_labels,
    relevance_from_pairs,
    save_precision_recall_curve,
)
from mmml.modeling import pack_codes


def brute_force_map(distances, relevance, k, tie_rule):
    """One query at a time with Python sorting; the tie rule spelled out as a sort key."""
    aps = []
    for d_row, rel_row in zip(distances.tolist(), relevance.tolist()):
        def key(j):
            tie = {"pessimistic": int(rel_row[j]), "optimistic": -int(rel_row[j]), "index": 0}[tie_rule]
            return (d_row[j], tie, j)

        order = sorted(range(len(d_row)), key=key)[: k or len(d_row)]
        hits, precision_sum = 0, 0.0
        for rank, j in enumerate(order, start=1):
            if rel_row[j]:
                hits += 1
                precision_sum += hits / rank
        aps.append(precision_sum / hits if hits else 0.0)
    return sum(aps) / len(aps)


def test_hamming_distances_from_signed_and_packed_codes():
    rng = np.random.default_rng(0)
    a, b = np.where(rng.random((5, 32)) > 0.5, 1.0, -1.0), np.where(rng.random((7, 32)) > 0.5, 1.0, -1.0)
    expected = (a[:, None, :] != b[None, :, :]).sum(-1)
    np.testing.assert_array_equal(hamming_distances(a, b), expected)
    packed_a, packed_b = pack_codes(torch.tensor(a)), pack_codes(torch.tensor(b))
    np.testing.assert_array_equal(hamming_distances(packed_a, packed_b), expected)


@pytest.mark.parametrize("tie_rule", ["pessimistic", "optimistic", "index"])
@pytest.mark.parametrize("k", [None, 1, 5, 30])
def test_map_matches_brute_force_on_random_codes(tie_rule, k):
    rng = np.random.default_rng(1)
    queries, database = rng.integers(0, 2, (40, 16)), rng.integers(0, 2, (60, 16))
    labels_q, labels_db = rng.random((40, 6)) > 0.75, rng.random((60, 6)) > 0.75
    distances = hamming_distances(queries, database)
    relevance = relevance_from_labels(labels_q, labels_db)
    assert len(np.unique(distances)) < 17  # ties abound with 16 bits and 60 items
    expected = brute_force_map(distances, relevance, k, tie_rule)
    assert mean_average_precision(distances, relevance, k, tie_rule) == pytest.approx(expected, abs=1e-12)


def test_tie_rule_on_a_hand_example():
    # Three items all at distance 1, only the last relevant; one item at distance 3, not relevant.
    distances = np.array([[1, 1, 1, 3]])
    relevance = np.array([[False, False, True, False]])
    assert mean_average_precision(distances, relevance, tie_rule="pessimistic") == pytest.approx(1 / 3)
    assert mean_average_precision(distances, relevance, tie_rule="optimistic") == pytest.approx(1.0)
    assert mean_average_precision(distances, relevance, tie_rule="index") == pytest.approx(1 / 3)
    # Database order decides under "index": move the relevant item first.
    assert mean_average_precision(distances, relevance[:, [2, 0, 1, 3]], tie_rule="index") == pytest.approx(1.0)
    # A constant code (everything tied) gets the worst possible AP under the default rule.
    tied = np.zeros((1, 4), dtype=int)
    assert mean_average_precision(tied, np.array([[True, False, False, False]])) == pytest.approx(1 / 4)


def test_map_at_k_counts_queries_without_hits_as_zero():
    distances = np.array([[0, 1, 2], [0, 1, 2]])
    relevance = np.array([[True, False, False], [False, False, True]])
    assert mean_average_precision(distances, relevance, k=2) == pytest.approx(0.5)
    assert mean_average_precision(distances, relevance) == pytest.approx((1 + 1 / 3) / 2)


def test_precision_at_radius_two():
    distances = np.array([[0, 2, 3, 1], [5, 6, 7, 8]])
    relevance = np.array([[True, False, True, True], [True, True, True, True]])
    # Query 0 retrieves items 0, 1, 3 (2 relevant of 3); query 1 retrieves nothing and scores 0.
    assert precision_at_radius(distances, relevance, 2) == pytest.approx((2 / 3 + 0) / 2)


def test_relevance_from_pairs():
    np.testing.assert_array_equal(relevance_from_pairs([0, 1], [0, 0, 1, 2]),
                                  [[True, True, False, False], [False, False, True, False]])


def test_perfect_codes_score_one_and_pr_curve_png(tmp_path):
    rng = np.random.default_rng(2)
    classes = rng.integers(0, 4, 30)
    class_codes = np.where(rng.random((4, 32)) > 0.5, 1.0, -1.0)
    codes = class_codes[classes]
    relevance = relevance_from_pairs(classes, classes)
    metrics = hashing_metrics(codes, codes, relevance)
    assert metrics["i2t_map"] == pytest.approx(1.0) and metrics["t2i_map"] == pytest.approx(1.0)
    assert metrics["i2t_p_r2"] == pytest.approx(1.0)
    curve = precision_recall_curve(hamming_distances(codes, codes), relevance)
    assert curve["recall"][0] == pytest.approx(1.0) and curve["precision"][0] == pytest.approx(1.0)
    assert curve["recall"][-1] == pytest.approx(1.0)
    assert np.all(np.diff(curve["recall"]) >= 0)
    path = save_precision_recall_curve({"i2t": curve}, tmp_path / "pr.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100


def test_bad_metric_inputs():
    with pytest.raises(ValueError, match="tie_rule"):
        mean_average_precision(np.zeros((1, 2)), np.zeros((1, 2)), tie_rule="random")
    with pytest.raises(ValueError, match="same shape"):
        mean_average_precision(np.zeros((1, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="k must be"):
        mean_average_precision(np.zeros((1, 2)), np.zeros((1, 2)), k=0)
    with pytest.raises(ValueError, match="same bits"):
        hamming_distances(np.ones((1, 8)), np.ones((1, 16)))
