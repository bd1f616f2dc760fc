"""BinaryIndex / DenseIndex: exact results against brute force, ids, remove, save/load, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

faiss = pytest.importorskip("faiss")

from mmml.eval import hamming_distances  # noqa: E402
from mmml.index import BinaryIndex, DenseIndex, EmptyIndexError, IndexFileError, load_index  # noqa: E402
from mmml.modeling import pack_codes  # noqa: E402


def random_codes(n, bits=64, seed=0):
    return np.where(np.random.default_rng(seed).random((n, bits)) > 0.5, 1.0, -1.0).astype(np.float32)


def test_flat_binary_search_matches_brute_force_with_external_ids():
    codes, queries = random_codes(300), random_codes(20, seed=1)
    ids = np.arange(1000, 1300)
    index = BinaryIndex(64)
    index.add(pack_codes(torch.tensor(codes)), ids)  # packed torch codes
    distances, found = index.search(queries, k=5)  # unpacked numpy queries
    reference = hamming_distances(queries, codes)
    np.testing.assert_array_equal(distances, np.sort(reference, axis=1)[:, :5])
    np.testing.assert_array_equal(reference[np.arange(20)[:, None], found - 1000], distances)
    assert len(index) == 300


def test_k_beyond_size_marks_missing_results():
    index = BinaryIndex(16)
    index.add(random_codes(3, 16), [7, 8, 9])
    distances, ids = index.search(random_codes(1, 16, seed=3), k=5)
    assert sorted(ids[0, :3].tolist()) == [7, 8, 9] and ids[0, 3:].tolist() == [-1, -1]
    assert distances[0, 3:].tolist() == [-1, -1]


@pytest.mark.parametrize("kind", ["flat", "mih", "ivf", "hnsw"])
def test_remove_save_load_round_trip(tmp_path, kind):
    options = {"ivf": {"nlist": 4, "nprobe": 4}, "mih": {"nflip": 2}}.get(kind, {})
    codes = random_codes(200, 32)
    index = BinaryIndex(32, kind=kind, metadata={"model": "m", "processor": "p"}, **options)
    index.add(codes, np.arange(200) * 10)
    # Each code finds itself at distance 0 (exact for flat; the approximate kinds find exact duplicates too).
    distances, ids = index.search(codes[:10], k=1)
    assert ids[:, 0].tolist() == list(range(0, 100, 10)) and (distances == 0).all()
    assert index.remove([0, 30]) == 2
    assert len(index) == 198 and 0 not in index.ids and 30 not in index.ids
    _, ids = index.search(codes[[0, 3, 4]], k=1)
    assert ids[0, 0] != 0 and ids[1, 0] != 30 and ids[2, 0] == 40
    path = index.save(tmp_path / "codes.idx")
    loaded = load_index(path)
    assert isinstance(loaded, BinaryIndex) and loaded.kind == kind and loaded.metadata == {"model": "m", "processor": "p"}
    np.testing.assert_array_equal(loaded.ids, index.ids)
    for a, b in zip(loaded.search(codes[:20], k=3), index.search(codes[:20], k=3)):
        np.testing.assert_array_equal(a, b)


def test_dense_index_matches_numpy_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    vectors, queries = rng.standard_normal((100, 8)).astype(np.float32), rng.standard_normal((5, 8)).astype(np.float32)
    index = DenseIndex(8)
    index.add(torch.tensor(vectors), np.arange(100) + 5)
    scores, ids = index.search(queries, k=3)
    reference = queries @ vectors.T
    np.testing.assert_array_equal(ids - 5, np.argsort(-reference, axis=1)[:, :3])
    np.testing.assert_allclose(scores, np.sort(reference, axis=1)[:, ::-1][:, :3], rtol=1e-5)
    index.remove([5])
    loaded = DenseIndex.load(index.save(tmp_path / "dense.idx"))
    assert len(loaded) == 99 and 5 not in loaded.ids
    l2 = DenseIndex(8, kind="hnsw", metric="l2")
    l2.add(vectors, np.arange(100))
    assert l2.search(vectors[:4], k=1)[1][:, 0].tolist() == [0, 1, 2, 3]


def test_wrong_code_length_and_dimension_are_refused():
    index = BinaryIndex(64, metadata={"model": "outputs/vit2cmh/final"})
    index.add(random_codes(5), np.arange(5))
    with pytest.raises(ValueError, match=r"holds 64-bit codes \(built by model outputs/vit2cmh/final\)"):
        index.search(random_codes(2, 32), k=1)
    with pytest.raises(ValueError, match="64-bit"):
        index.add(np.zeros((2, 4), dtype=np.uint8), [10, 11])
    with pytest.raises(ValueError, match="-1/\\+1 or 0/1"):
        index.add(np.full((1, 64), 3.0), [12])
    dense = DenseIndex(8)
    with pytest.raises(ValueError, match=r"\[n, 8\]"):
        dense.add(np.zeros((2, 9)), [0, 1])
    with pytest.raises(ValueError, match="multiple of 8"):
        BinaryIndex(12)


def test_ids_and_options_are_checked():
    index = BinaryIndex(16)
    index.add(random_codes(2, 16), [1, 2])
    with pytest.raises(ValueError, match="already in the index"):
        index.add(random_codes(1, 16), [2])
    with pytest.raises(ValueError, match="duplicates"):
        index.add(random_codes(2, 16), [5, 5])
    with pytest.raises(ValueError, match="one id per item"):
        index.add(random_codes(2, 16), [5])
    with pytest.raises(KeyError, match=r"ids not in the index: \[99\] \(nothing was removed\)"):
        index.remove([1, 99])
    assert len(index) == 2
    with pytest.raises(ValueError, match="unknown options"):
        BinaryIndex(16, kind="flat", nprobe=3)
    with pytest.raises(ValueError, match="kind must be one of"):
        BinaryIndex(16, kind="lsh")
    with pytest.raises(ValueError, match="nlist=8"):
        BinaryIndex(16, kind="ivf", nlist=8).add(random_codes(3, 16), [0, 1, 2])


def test_empty_index_refuses_search():
    with pytest.raises(EmptyIndexError, match="empty"):
        BinaryIndex(16).search(random_codes(1, 16), k=1)
    with pytest.raises(EmptyIndexError):
        DenseIndex(4).search(np.zeros((1, 4)), k=1)


def test_truncated_or_foreign_file_is_refused(tmp_path):
    index = BinaryIndex(16)
    index.add(random_codes(50, 16), np.arange(50))
    path = index.save(tmp_path / "codes.idx")
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 20, 10):
        (tmp_path / "cut.idx").write_bytes(data[:cut])
        with pytest.raises(IndexFileError, match="truncated"):
            load_index(tmp_path / "cut.idx")
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF
    (tmp_path / "flip.idx").write_bytes(bytes(flipped))
    with pytest.raises(IndexFileError, match="checksum"):
        load_index(tmp_path / "flip.idx")
    (tmp_path / "other.idx").write_bytes(b"not an index at all")
    with pytest.raises(IndexFileError, match="not an mmml index file"):
        load_index(tmp_path / "other.idx")
    with pytest.raises(IndexFileError, match="holds a BinaryIndex"):
        DenseIndex.load(path)


def test_failed_save_leaves_the_existing_file_intact(tmp_path, monkeypatch):
    index = BinaryIndex(16)
    index.add(random_codes(10, 16), np.arange(10))
    path = index.save(tmp_path / "codes.idx")
    before = path.read_bytes()
    index.add(random_codes(10, 16, seed=5), np.arange(10, 20))

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr("mmml.index.storage.os.fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        index.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.idx"]
    assert len(load_index(path)) == 10
