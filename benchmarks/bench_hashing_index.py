"""Item 8 of issue 4: Hamming search at 1M codes - BinaryIndex vs raw faiss vs float matmul; memory; ANN.

    OMP_NUM_THREADS=1 python benchmarks/bench_hashing_index.py \
        --model outputs/hashing_table/embedded/cmhr-drn_64/final [--n 1000000] [--threads 1]

The database is 1,000,000 captions of generated scenes (captions only, no rendering) encoded by a
trained 64-bit hashing model (CMHR-DRN: TF-IDF text tower, cheap enough to encode 1M texts on a
CPU); the queries are the codes of 1,000 test-scene images from the same model (image -> text).
Codes and embeddings are cached in `--cache` so reruns skip the encoding.

1. Exact top-10, in one run, each timed `--repeats` times interleaved (median reported):
   raw `faiss.IndexBinaryFlat`, `mmml.index.BinaryIndex` (target overhead <= 5%), and the float
   matmul Hamming scan of common hashing codebases, `0.5 * (bits - Q @ B.T)` + top-k in chunks
   (target: BinaryIndex >= 10x faster). Dense float32 exact search of the same model for context.
2. Bytes per item: BinaryIndex vs DenseIndex of the same model's float32 embeddings (saved files).
3. Approximate kinds (mih / ivf / hnsw) at 1M: build time, search time, speed-up over the exact
   index and recall@10. Recall is tie-aware: a returned item counts when its true Hamming
   distance is <= the exact 10th-nearest distance (ids at a tied distance are interchangeable).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from transformers import AutoModel, AutoProcessor

import mmml  # noqa: F401
from mmml.data import SceneConfig, build_scene_dataset
from mmml.data.scenes.dataset import caption_scene
from mmml.data.scenes.sampling import CAPTION_STREAM, sample_scenes, stream_rng
from mmml.index import BinaryIndex, DenseIndex
from mmml.eval.encoding import encode_images, encode_texts
from mmml.modeling import pack_codes


def scene_captions(n: int, seed: int) -> list[str]:
    config = SceneConfig(num_train=n, num_val=0, num_test=0, languages=("en",), captions_per_language=1, seed=seed)
    scenes = sample_scenes(config.split_sizes, config.profile, seed)["train"]
    rng = stream_rng(seed, CAPTION_STREAM)
    return [caption_scene(scene, config, rng)["en"][0] for scene in scenes]


def encode(model_path: str, n: int, num_queries: int, cache: Path) -> dict[str, np.ndarray]:
    if cache.exists():
        return dict(np.load(cache))
    model, processor = AutoModel.from_pretrained(model_path).eval(), AutoProcessor.from_pretrained(model_path)
    start = time.perf_counter()
    texts = encode_texts(model, processor, scene_captions(n, seed=101), batch_size=4096, progress=True)
    images_split = build_scene_dataset(SceneConfig(num_train=0, num_val=0, num_test=num_queries, languages=("en",),
                                                   captions_per_language=1, image_size=60, seed=202))["test"]
    images = encode_images(model, processor, images_split["image"], batch_size=256)
    data = {"db_codes": pack_codes(texts.codes).numpy(), "db_embeds": texts.embeds.numpy(),
            "query_codes": pack_codes(images.codes).numpy(), "query_embeds": images.embeds.numpy(),
            "encode_s": np.array(time.perf_counter() - start)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **data)
    return data


def float_matmul_topk(queries: torch.Tensor, database: torch.Tensor, k: int, chunk: int = 65536):
    """The float Hamming scan of DCMH-style codebases: 0.5 * (bits - Q @ B.T), top-k, database in chunks."""
    bits = queries.shape[1]
    best_d = torch.full((queries.shape[0], k), float("inf"))
    best_i = torch.full((queries.shape[0], k), -1, dtype=torch.long)
    for start in range(0, database.shape[0], chunk):
        d = 0.5 * (bits - queries @ database[start : start + chunk].T)
        values, positions = torch.topk(d, min(k, d.shape[1]), dim=1, largest=False)
        merged_d = torch.cat([best_d, values], dim=1)
        merged_i = torch.cat([best_i, positions + start], dim=1)
        best_d, order = torch.topk(merged_d, k, dim=1, largest=False)
        best_i = torch.gather(merged_i, 1, order)
    return best_d, best_i


def timed(fn, repeats_log: list[float]):
    start = time.perf_counter()
    result = fn()
    repeats_log.append(time.perf_counter() - start)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", default="outputs/bench_hashing/codes.npz")
    parser.add_argument("--skip", default="", help="comma list of approximate kinds to skip (mih, ivf, hnsw)")
    parser.add_argument("--out", default="outputs/bench_hashing/results.json")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    data = encode(args.model, args.n, args.queries, Path(args.cache))
    db, queries = data["db_codes"], data["query_codes"]
    bits = db.shape[1] * 8
    ids = np.arange(db.shape[0])
    results: dict = {"n": int(db.shape[0]), "queries": int(queries.shape[0]), "k": args.k, "bits": bits,
                     "threads": args.threads, "unique_db_codes": int(np.unique(db, axis=0).shape[0])}
    print(json.dumps({k: v for k, v in results.items()}))

    # 1. Exact search.
    raw = faiss.IndexBinaryFlat(bits)
    raw.add(db)
    wrapped = BinaryIndex(bits)
    wrapped.add(db, ids)
    float_db = torch.from_numpy(np.unpackbits(db, axis=1).astype(np.float32) * 2 - 1)
    float_q = torch.from_numpy(np.unpackbits(queries, axis=1).astype(np.float32) * 2 - 1)
    dense = DenseIndex(data["db_embeds"].shape[1])
    dense.add(data["db_embeds"], ids)
    times = {"faiss_flat": [], "binary_index": [], "float_matmul": [], "dense_flat": []}
    for _ in range(args.repeats):
        raw_d, raw_i = timed(lambda: raw.search(queries, args.k), times["faiss_flat"])
        our_d, our_i = timed(lambda: wrapped.search(queries, args.k), times["binary_index"])
        mm_d, _ = timed(lambda: float_matmul_topk(float_q, float_db, args.k), times["float_matmul"])
        timed(lambda: dense.search(data["query_embeds"], args.k), times["dense_flat"])
    assert np.array_equal(raw_d, our_d) and np.array_equal(raw_i, our_i)
    assert np.array_equal(mm_d.numpy().astype(np.int32), our_d)  # same distances (ties may order ids differently)
    median = {name: statistics.median(values) for name, values in times.items()}
    results["exact_s"] = median
    results["exact_all_s"] = times
    results["binary_index_overhead"] = median["binary_index"] / median["faiss_flat"] - 1
    results["speedup_vs_float_matmul"] = median["float_matmul"] / median["binary_index"]
    print(json.dumps({"exact_s": median, "overhead": results["binary_index_overhead"],
                      "speedup_vs_float_matmul": results["speedup_vs_float_matmul"]}))

    # 2. Memory per item (saved index files; the live indexes hold the same bytes).
    with tempfile.TemporaryDirectory() as tmp:
        binary_bytes = wrapped.save(Path(tmp) / "b.idx").stat().st_size
        dense_bytes = dense.save(Path(tmp) / "d.idx").stat().st_size
    results["bytes_per_item"] = {"binary_index": binary_bytes / len(ids), "dense_index": dense_bytes / len(ids),
                                 "code": bits / 8, "float32_embedding": data["db_embeds"].shape[1] * 4}
    print(json.dumps(results["bytes_per_item"]))
    del dense, float_db

    # 3. Approximate search.
    kth = our_d[:, -1:]
    exact_time = median["binary_index"]
    approximate = {
        "mih nflip=1": ("mih", {"nflip": 1}), "mih nflip=2": ("mih", {"nflip": 2}),
        "ivf nlist=1024 nprobe=8": ("ivf", {"nlist": 1024, "nprobe": 8}),
        "ivf nlist=1024 nprobe=32": ("ivf", {"nlist": 1024, "nprobe": 32}),
        "hnsw M=16 ef=64": ("hnsw", {"M": 16, "ef_search": 64}),
    }
    skip = set(filter(None, args.skip.split(",")))
    results["approximate"] = {}
    for name, (kind, options) in approximate.items():
        if kind in skip:
            continue
        start = time.perf_counter()
        index = BinaryIndex(bits, kind=kind, **options)
        index.add(db, ids)
        build = time.perf_counter() - start
        search_times = []
        for _ in range(args.repeats):
            _, found = timed(lambda: index.search(queries, args.k), search_times)
        true_d = np.stack([np.bitwise_count(db[np.maximum(row, 0)] ^ q).sum(axis=1) for row, q in zip(found, queries)])
        true_d = np.where(found >= 0, true_d, bits + 1)
        recall = float(((true_d <= kth) & (found >= 0)).sum() / found.size)
        t = statistics.median(search_times)
        results["approximate"][name] = {"build_s": build, "search_s": t, "speedup": exact_time / t, "recall_at_10": recall}
        print(json.dumps({name: results["approximate"][name]}), flush=True)
        del index
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
