"""Tests for mmml.losses: single-process values/gradients and a real 2-process check."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from mmml.losses import ContrastiveLoss, DistillationLoss, gather_features

REPO_ROOT = Path(__file__).resolve().parents[1]
GRAD_CHECK = REPO_ROOT / "tests" / "distributed" / "contrastive_grad_check.py"

ALL_OPTIONS = [
    {"local_loss": local_loss, "gather_with_grad": gather_with_grad}
    for local_loss in (False, True)
    for gather_with_grad in (True, False)
]


def reference_clip_loss(image: torch.Tensor, text: torch.Tensor, scale) -> torch.Tensor:
    logits = scale * image @ text.T
    labels = torch.arange(image.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def random_embeddings(batch: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(batch, dim, generator=generator), dim=-1)
    text = F.normalize(torch.randn(batch, dim, generator=generator), dim=-1)
    return image, text


@pytest.mark.parametrize("options", ALL_OPTIONS)
@pytest.mark.parametrize("scale", [1.0, 14.3, torch.tensor(100.0)])
def test_contrastive_matches_reference_in_single_process(options, scale):
    image, text = random_embeddings(6, 5)
    loss = ContrastiveLoss(**options)(image, text, scale)
    assert loss.shape == ()
    torch.testing.assert_close(loss, reference_clip_loss(image, text, scale))


def test_contrastive_is_not_symmetric_by_accident():
    # Swapping one modality's rows must change the loss: guards against labels/transposes that cancel out.
    image, text = random_embeddings(5, 4)
    loss_fn = ContrastiveLoss()
    assert not torch.isclose(loss_fn(image, text, 10.0), loss_fn(image, text.flip(0), 10.0))


def test_contrastive_perfectly_aligned_orthogonal_embeddings_give_zero_loss():
    embeds = torch.eye(4, 8)
    assert ContrastiveLoss()(embeds, embeds.clone(), 100.0).item() < 1e-6


def test_contrastive_identical_embeddings_give_log_batch():
    embeds = F.normalize(torch.ones(7, 3), dim=-1)
    loss = ContrastiveLoss()(embeds, embeds.clone(), 20.0)
    assert loss.item() == pytest.approx(math.log(7), abs=1e-6)


def test_contrastive_label_cache_handles_changing_batch_sizes():
    loss_fn = ContrastiveLoss()
    for batch in (4, 6, 4, 3):
        image, text = random_embeddings(batch, 5, seed=batch)
        torch.testing.assert_close(loss_fn(image, text, 10.0), reference_clip_loss(image, text, 10.0))


def test_contrastive_gradients_reach_embeddings_and_logit_scale():
    image, text = random_embeddings(6, 5)
    log_scale = torch.tensor(math.log(10.0), requires_grad=True)
    image = image.clone().requires_grad_()
    text = text.clone().requires_grad_()
    ContrastiveLoss()(image, text, log_scale.exp()).backward()

    ref_image = image.detach().clone().requires_grad_()
    ref_text = text.detach().clone().requires_grad_()
    ref_log_scale = log_scale.detach().clone().requires_grad_()
    reference_clip_loss(ref_image, ref_text, ref_log_scale.exp()).backward()

    assert log_scale.grad is not None and log_scale.grad.abs().item() > 0
    torch.testing.assert_close(log_scale.grad, ref_log_scale.grad)
    torch.testing.assert_close(image.grad, ref_image.grad)
    torch.testing.assert_close(text.grad, ref_text.grad)


@pytest.mark.parametrize(
    ("image_shape", "text_shape"),
    [((4, 8), (5, 8)), ((4, 8), (4, 6)), ((4,), (4,)), ((2, 4, 8), (2, 4, 8)), ((0, 8), (0, 8))],
)
def test_contrastive_rejects_mismatched_or_malformed_shapes(image_shape, text_shape):
    with pytest.raises(ValueError) as excinfo:
        ContrastiveLoss()(torch.zeros(image_shape), torch.zeros(text_shape), 1.0)
    assert str(tuple(image_shape)) in str(excinfo.value)
    assert str(tuple(text_shape)) in str(excinfo.value)


def test_contrastive_rejects_non_scalar_logit_scale():
    image, text = random_embeddings(3, 4)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        ContrastiveLoss()(image, text, torch.ones(3))


def test_gather_features_is_identity_without_process_group():
    image, text = random_embeddings(3, 4)
    assert gather_features(image, text) == (image, text)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_contrastive_world_of_one_is_plain_loss(tmp_path):
    if dist.is_initialized():
        pytest.skip("a process group is already running")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        image, text = random_embeddings(5, 4)
        for options in ALL_OPTIONS:
            loss = ContrastiveLoss(**options)(image, text, 5.0)
            torch.testing.assert_close(loss, reference_clip_loss(image, text, 5.0))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_contrastive_gradients_under_two_processes_match_full_batch(tmp_path):
    result_path = tmp_path / "result.json"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(GRAD_CHECK), str(result_path),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"grad check failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"

    result = json.loads(result_path.read_text())
    assert result["world_size"] == 2
    assert set(result["settings"]) == {
        f"local_loss={o['local_loss']},gather_with_grad={o['gather_with_grad']}" for o in ALL_OPTIONS
    }
    for name, diffs in result["settings"].items():
        assert diffs["grad_max_abs"] > 1e-2, f"{name}: degenerate reference gradients"
        assert diffs["loss_max_abs_diff"] < 1e-5, name
        assert diffs["grad_max_abs_diff"] < 1e-5, name


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_distillation_matches_mse_and_leaves_teacher_alone(reduction):
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(4, 6, generator=generator, requires_grad=True)
    teacher = torch.randn(4, 6, generator=generator, requires_grad=True)
    loss = DistillationLoss(reduction)(student, teacher)
    expected = F.mse_loss(student, teacher.detach(), reduction=reduction)
    torch.testing.assert_close(loss, expected)

    loss.sum().backward()
    assert teacher.grad is None
    expected_grad = 2 * (student - teacher).detach()
    if reduction == "mean":
        expected_grad /= student.numel()
    torch.testing.assert_close(student.grad, expected_grad)


def test_distillation_rejects_shape_mismatch():
    with pytest.raises(ValueError) as excinfo:
        DistillationLoss()(torch.zeros(4, 6), torch.zeros(4, 5))
    assert "(4, 6)" in str(excinfo.value) and "(4, 5)" in str(excinfo.value)


def test_distillation_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="batchmean"):
        DistillationLoss("batchmean")
