"""Hashing losses: values against hand computations, similarity sources, and that training lowers them."""

from __future__ import annotations

import math

import pytest
import torch

from mmml.losses import (
    HashingLoss,
    bit_balance_loss,
    quantization_loss,
    similarity_from_labels,
    similarity_from_pairs,
    similarity_loss,
)


def test_similarity_from_labels_and_pairs():
    labels = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    expected = torch.tensor([[1.0, 1, 0], [1, 1, 0], [0, 0, 1]])
    torch.testing.assert_close(similarity_from_labels(labels), expected)
    torch.testing.assert_close(similarity_from_labels(labels[:2], labels[2:]), torch.tensor([[0.0], [0.0]]))
    torch.testing.assert_close(similarity_from_pairs(3), torch.eye(3))
    with pytest.raises(ValueError, match="num_labels"):
        similarity_from_labels(labels, torch.ones(2, 4))


def test_similarity_loss_matches_elementwise_reference():
    g = torch.Generator().manual_seed(0)
    u, v = torch.tanh(torch.randn(4, 8, generator=g)), torch.tanh(torch.randn(5, 8, generator=g))
    s = (torch.rand(4, 5, generator=g) > 0.6).float()
    pos, neg = [], []
    for i in range(4):
        for j in range(5):
            theta = 0.5 * float(u[i] @ v[j])
            nll = math.log1p(math.exp(theta)) - float(s[i, j]) * theta
            (pos if s[i, j] else neg).append(nll)
    expected = 0.5 * (sum(pos) / len(pos) + sum(neg) / len(neg))
    assert similarity_loss(u, v, s).item() == pytest.approx(expected, rel=1e-5)


def test_quantization_and_balance_on_known_codes():
    codes = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    assert quantization_loss(codes) == 0
    assert bit_balance_loss(codes) == 0
    assert quantization_loss(torch.full((3, 4), 0.5)).item() == pytest.approx(0.25)
    assert bit_balance_loss(torch.ones(3, 4)).item() == pytest.approx(1.0)
    assert bit_balance_loss(torch.ones(3, 4), -torch.ones(3, 4)).item() == pytest.approx(1.0)


def test_weights_combine_the_three_terms():
    g = torch.Generator().manual_seed(1)
    u, v = torch.tanh(torch.randn(6, 16, generator=g)), torch.tanh(torch.randn(6, 16, generator=g))
    loss = HashingLoss(similarity_weight=2.0, quantization_weight=0.5, balance_weight=3.0)(u, v)
    expected = (2.0 * similarity_loss(u, v, torch.eye(6)) + 0.5 * quantization_loss(u, v)
                + 3.0 * bit_balance_loss(u, v))
    torch.testing.assert_close(loss, expected)


def test_bad_inputs_are_refused():
    loss = HashingLoss()
    with pytest.raises(ValueError, match="same bits"):
        loss(torch.zeros(2, 8), torch.zeros(2, 16))
    with pytest.raises(ValueError, match="similarity must have shape"):
        loss(torch.zeros(2, 8), torch.zeros(3, 8), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="quantization_weight"):
        HashingLoss(quantization_weight=-1)


@pytest.mark.parametrize("supervision", ["labels", "pairs"])
def test_training_codes_lowers_loss_and_separates_similar_pairs(supervision):
    torch.manual_seed(0)
    n, bits = 24, 16
    labels = torch.nn.functional.one_hot(torch.arange(n) % 4, 4)
    image_features, text_features = torch.randn(n, 10), torch.randn(n, 10)
    image_head, text_head = torch.nn.Linear(10, bits), torch.nn.Linear(10, bits)
    optimizer = torch.optim.Adam([*image_head.parameters(), *text_head.parameters()], lr=0.05)
    loss_fn = HashingLoss()
    similarity = similarity_from_labels(labels) if supervision == "labels" else None
    losses = []
    for _ in range(150):
        loss = loss_fn(torch.tanh(image_head(image_features)), torch.tanh(text_head(text_features)), similarity)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    u, v = torch.sign(image_head(image_features)), torch.sign(text_head(text_features))
    hamming = 0.5 * (bits - u @ v.T)
    target = similarity if similarity is not None else torch.eye(n)
    assert hamming[target > 0].mean() + 3 < hamming[target == 0].mean()
