"""VSE++ triplet loss, beta mixture, refurbished targets, RCAR tracker, AUC: against references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmml.eval.auc import roc_auc
from mmml.losses import ContrastiveLoss, TripletLoss
from mmml.losses.beta_mixture import BetaMixture, DegenerateLossesError, clean_probability, normalize_losses
from mmml.losses.robust import RobustMatchingLoss, refurbished_targets, soft_margins
from mmml.training.robust import NoisyCorrespondenceTracker


def _embeddings(batch=6, dim=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(batch, dim, generator=generator), dim=-1)
    text = F.normalize(torch.randn(batch, dim, generator=generator), dim=-1)
    return image, text


def _reference_triplet(image, text, margins, max_violation):
    scores = (image @ text.T).tolist()
    n = len(scores)
    losses = []
    for i in range(n):
        cost_t = [max(0.0, margins[i] - scores[i][i] + scores[i][j]) for j in range(n) if j != i]
        cost_i = [max(0.0, margins[i] - scores[i][i] + scores[j][i]) for j in range(n) if j != i]
        losses.append(max(cost_t) + max(cost_i) if max_violation else sum(cost_t) + sum(cost_i))
    return losses


@pytest.mark.parametrize("max_violation", [True, False])
def test_triplet_matches_loop_reference(max_violation):
    image, text = _embeddings()
    loss = TripletLoss(margin=0.3, max_violation=max_violation, reduction="none")(image, text)
    expected = _reference_triplet(image, text, [0.3] * 6, max_violation)
    assert torch.allclose(loss, torch.tensor(expected), atol=1e-6)
    mean = TripletLoss(margin=0.3, max_violation=max_violation)(image, text)
    assert mean.item() == pytest.approx(sum(expected) / 6, abs=1e-6)


def test_triplet_per_pair_margins_and_zero_for_separated_pairs():
    image, text = _embeddings()
    margins = torch.linspace(0.0, 0.5, 6)
    loss = TripletLoss(reduction="none")(image, text, margins)
    assert torch.allclose(loss, torch.tensor(_reference_triplet(image, text, margins.tolist(), True)), atol=1e-6)
    eye = torch.eye(4)
    assert TripletLoss(margin=0.2)(eye, eye).item() == 0.0  # positives 1, negatives 0: no violation


def test_triplet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="margin must be >= 0"):
        TripletLoss(margin=-1)
    image, text = _embeddings()
    with pytest.raises(ValueError, match="margin must be a float or a"):
        TripletLoss()(image, text, torch.ones(3))


def test_beta_mixture_recovers_known_components():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.beta(2.0, 8.0, 6000), rng.beta(9.0, 3.0, 2000)])
    mixture = BetaMixture(max_iters=200).fit(x)
    assert mixture.converged
    np.testing.assert_allclose(mixture.weights, [0.75, 0.25], atol=0.02)
    np.testing.assert_allclose(mixture.means(), [0.2, 0.75], atol=0.02)
    np.testing.assert_allclose(mixture.alphas, [2.0, 9.0], rtol=0.15)
    np.testing.assert_allclose(mixture.betas, [8.0, 3.0], rtol=0.15)
    assert mixture.separation() > 4  # Ashman's D of beta(2, 8) and beta(9, 3): 4.6
    posterior = mixture.posterior(x)
    np.testing.assert_allclose(posterior.sum(axis=0), 1.0)
    truth = np.r_[np.ones(6000, bool), np.zeros(2000, bool)]
    assert ((posterior[0] > 0.5) == truth).mean() > 0.95


def test_clean_probability_separates_low_and_high_losses():
    rng = np.random.default_rng(1)
    losses = np.r_[rng.normal(0.5, 0.1, 300), rng.normal(3.0, 0.3, 100)]
    probability, _ = clean_probability(losses)
    assert probability[:300].min() > 0.9 and probability[300:].max() < 0.1
    assert roc_auc(probability, np.r_[np.ones(300, bool), np.zeros(100, bool)]) == 1.0


@pytest.mark.parametrize(
    "losses, message",
    [
        (np.full(50, 1.7), "are equal"),
        (np.r_[np.ones(10), np.nan], "NaN or infinite"),
        (np.r_[np.ones(10), np.inf], "NaN or infinite"),
        (np.ones(1), "at least 2"),
    ],
)
def test_degenerate_losses_raise_a_clear_error(losses, message):
    with pytest.raises(DegenerateLossesError, match=message):
        clean_probability(losses)


def test_mixture_survives_extreme_but_valid_inputs():
    # two point masses at the ends and a single outlier: the guards keep every number finite
    for x in (np.r_[np.zeros(100), np.ones(100)], np.r_[np.zeros(199), 1.0], np.r_[np.zeros(100), np.full(100, 1e-9), 1]):
        mixture = BetaMixture().fit(x)
        posterior = mixture.posterior(x)
        assert np.isfinite(posterior).all() and np.isfinite(mixture.alphas).all()
    np.testing.assert_allclose(normalize_losses(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])


def test_refurbished_targets_reduce_to_plain_when_all_clean():
    image, text = _embeddings(batch=5)
    logits = 10 * image @ text.T
    assert torch.equal(refurbished_targets(logits, torch.ones(5)), torch.eye(5))
    assert torch.equal(refurbished_targets(logits, None), torch.eye(5))
    noisy = refurbished_targets(logits, torch.zeros(5))
    assert torch.allclose(noisy, logits.softmax(1))
    assert torch.allclose(refurbished_targets(logits, torch.full((5,), 0.25)).sum(1), torch.ones(5))
    assert torch.allclose(soft_margins(torch.tensor([0.0, 1.0]), 0.2), torch.tensor([0.0, 0.2]))


def test_robust_loss_with_all_clean_equals_plain_losses():
    image, text = _embeddings(batch=7)
    scale = torch.tensor(12.0)
    plain = ContrastiveLoss()(image, text, scale) + TripletLoss(margin=0.2)(image, text)
    robust = RobustMatchingLoss(margin=0.2)
    for clean_prob in (None, torch.ones(7)):
        out = robust(image, text, scale, clean_prob)
        assert out.loss.item() == pytest.approx(plain.item(), rel=1e-6)
    per_sample = out.per_sample_loss
    assert per_sample.shape == (7,) and not per_sample.requires_grad
    assert per_sample.mean().item() == pytest.approx(ContrastiveLoss()(image, text, scale).item(), rel=1e-6)


def test_pairs_judged_noisy_stop_pulling_their_embeddings_together():
    image, text = _embeddings(batch=6)
    image.requires_grad_(True)
    clean_prob = torch.tensor([1.0, 1, 1, 1, 1, 0])
    loss = RobustMatchingLoss(triplet_weight=0.0)(image, text, 10.0, clean_prob).loss
    (grad,) = torch.autograd.grad(loss, image)
    # the noisy row's own image gets no gradient from its own row (target = its prediction); it still
    # gets column terms as a negative of other texts, so compare with the all-clean gradient
    image_clean = image.detach().clone().requires_grad_(True)
    (grad_clean,) = torch.autograd.grad(RobustMatchingLoss(triplet_weight=0.0)(image_clean, text, 10.0).loss, image_clean)
    assert grad[5].norm() < grad_clean[5].norm()
    only_noisy = RobustMatchingLoss(triplet_weight=0.0)(image[5:6].detach(), text[5:6], 10.0, torch.zeros(1)).loss
    assert only_noisy.item() == pytest.approx(0.0, abs=1e-6)  # a batch of one noisy pair: no pull at all


def test_roc_auc_known_values():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert roc_auc([1, 1, 1], [0, 1, 1]) == 0.5
    assert roc_auc([0.2, 0.3], [1, 1]) is None


def test_tracker_splits_after_warmup_and_reports_auc():
    rng = np.random.default_rng(0)
    noise = np.zeros(40, bool)
    noise[::4] = True
    tracker = NoisyCorrespondenceTracker(40, warmup_epochs=2, noise_mask=noise)
    for epoch in range(3):
        for chunk in np.array_split(rng.permutation(40), 5):
            losses = np.where(noise[chunk], 3.0, 0.5) + rng.normal(0, 0.1, chunk.size)
            tracker.record(torch.tensor(chunk), torch.tensor(losses))
        stats = tracker.end_epoch(epoch)
        if epoch == 0:
            assert stats["status"] == "warm-up" and tracker.clean_prob_for(torch.arange(3)) is None
    assert stats["status"] == "fitted" and stats["clean_prob_auc"] == 1.0 and stats["num_recorded"] == 40
    prob = tracker.clean_prob_for(torch.arange(40)).numpy()
    assert prob[noise].max() < 0.1 and prob[~noise].min() > 0.9
    restored = NoisyCorrespondenceTracker(40)
    restored.load_state_dict(tracker.state_dict())
    assert torch.equal(restored.clean_prob_for(torch.arange(40)), tracker.clean_prob_for(torch.arange(40)))


def test_tracker_falls_back_on_equal_losses_and_raises_on_nan():
    tracker = NoisyCorrespondenceTracker(10, warmup_epochs=0)
    tracker.record(torch.arange(10), torch.full((10,), 2.0))
    stats = tracker.end_epoch(0)
    assert stats["status"].startswith("fallback") and tracker.clean_prob_for(torch.arange(10)) is None
    tracker.record(torch.arange(10), torch.tensor([1.0] * 9 + [float("nan")]))
    with pytest.raises(DegenerateLossesError, match="NaN"):
        tracker.end_epoch(1)


def test_tracker_ignores_a_split_whose_components_are_not_separated():
    rng = np.random.default_rng(0)
    tracker = NoisyCorrespondenceTracker(400, warmup_epochs=0, noise_mask=np.arange(400) < 200, min_separation=1.2)
    tracker.record(torch.arange(400), torch.tensor(rng.normal(4.0, 0.05, 400)))  # one blob: nothing learned yet
    stats = tracker.end_epoch(0)
    assert stats["status"].startswith("fallback: components not separated")
    assert tracker.clean_prob_for(torch.arange(4)) is None  # every pair counts as clean


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs gloo")
def test_robust_loss_and_tracker_under_two_processes_match_one_process(tmp_path):
    import json
    import os
    import socket
    import subprocess
    import sys

    from conftest import REPO_ROOT

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result_path = tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(port),
               str(REPO_ROOT / "tests" / "distributed" / "robust_check.py"), str(result_path)]
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-4000:]}"
    result = json.loads(result_path.read_text())
    assert result["world_size"] == 2 and result["status"] == "fitted"
    assert result["num_recorded"] == result["reference_num_recorded"] == 70
    for key in ("loss_diff", "per_sample_diff", "triplet_diff", "clean_prob_diff"):
        assert result[key] < 1e-9, (key, result[key])
