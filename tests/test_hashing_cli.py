"""`python -m mmml index` / `search` on a tiny hashing model and manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, tiny_mclip_config
from PIL import Image
from test_cmh import tiny_cmh_config

pytest.importorskip("faiss")

import mmml  # noqa: E402
from mmml.cli import main  # noqa: E402
from mmml.index import BinaryIndex, DenseIndex, load_index  # noqa: E402

CAPTIONS = ["a red circle", "a blue square", "a green star", "a big red square", "a small blue circle"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_processor):
    root = tmp_path_factory.mktemp("cli")
    (root / "images").mkdir()
    with (root / "manifest.jsonl").open("w") as handle:
        for i, caption in enumerate(CAPTIONS):
            Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                root / "images" / f"{i}.png")
            handle.write(json.dumps({"image": f"images/{i}.png", "captions": {"en": [caption]}}) + "\n")
    torch.manual_seed(0)
    model = mmml.CrossModalHashingModel(tiny_cmh_config("vit2cmh"))
    model.save_pretrained(root / "model")
    mmml.CrossModalHashingProcessor(tiny_processor.image_processor, tiny_processor.tokenizer).save_pretrained(
        root / "model")
    return root


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mmml", *args], capture_output=True, text=True, timeout=180, env=env)


def test_index_as_python_dash_m_then_search(workspace, capsys):
    out = workspace / "texts.idx"
    result = run_module("index", "--model", str(workspace / "model"), "--manifest", str(workspace / "manifest.jsonl"),
                        "--out", str(out), "--modality", "text")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "wrote" in result.stdout and "5 texts as 32-bit codes" in result.stdout
    assert "texts" in result.stderr  # the progress bar
    index = load_index(out)
    assert isinstance(index, BinaryIndex) and index.bits == 32 and index.metadata["items"] == CAPTIONS
    assert index.metadata["model"] == str((workspace / "model").resolve())
    capsys.readouterr()
    assert main(["search", "--index", str(out), "--text", "a green star", "--k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].split()[:3] == ["1", "hamming", "0"]
    assert any(line.endswith("a green star") and " hamming 0 " in line for line in lines)


def test_image_index_and_image_query(workspace, capsys):
    out = workspace / "images.idx"
    assert main(["index", "--model", str(workspace / "model"), "--manifest", str(workspace / "manifest.jsonl"),
                 "--out", str(out)]) == 0
    index = load_index(out)
    assert len(index) == 5 and index.metadata["modality"] == "image"
    capsys.readouterr()
    assert main(["search", "--index", str(out), "--image", str(workspace / "images" / "3.png"), "--k", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    distances = [int(line.split()[2]) for line in lines]
    assert distances == sorted(distances) and distances[0] == 0
    assert any(line.endswith("3.png") and int(line.split()[2]) == 0 for line in lines)


def test_dense_index_for_a_model_without_hash_heads(workspace, tiny_processor, capsys):
    model = mmml.MCLIPModel(tiny_mclip_config())
    model.save_pretrained(workspace / "mclip")
    tiny_processor.save_pretrained(workspace / "mclip")
    out = workspace / "dense.idx"
    assert main(["index", "--model", str(workspace / "mclip"), "--manifest", str(workspace / "manifest.jsonl"),
                 "--out", str(out), "--modality", "text"]) == 0
    assert isinstance(load_index(out), DenseIndex)
    capsys.readouterr()
    assert main(["search", "--index", str(out), "--text", "a blue square", "--k", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.endswith("a blue square") and float(line.split()[2]) == pytest.approx(1.0, abs=1e-4)


def test_query_from_a_model_of_another_bit_length_is_refused(workspace, capsys):
    index = BinaryIndex(16, metadata={"model": str(workspace / "model")})  # claims the 32-bit model
    index.add(np.ones((1, 16)), [0])
    path = index.save(workspace / "wrong.idx")
    assert main(["search", "--index", str(path), "--text", "a red circle"]) == 2
    error = capsys.readouterr().err
    assert "holds 16-bit codes" in error and "32 columns" in error


def test_missing_index_file_is_a_clear_error(workspace, capsys):
    assert main(["search", "--index", str(workspace / "nope.idx"), "--text", "x"]) == 2
    assert "no index file at" in capsys.readouterr().err
