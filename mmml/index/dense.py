"""`DenseIndex`: float embeddings on faiss float indexes, with the same API as `BinaryIndex`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import FaissIndex

_DEFAULTS = {
    "flat": {"metric": "ip"},
    "ivf": {"metric": "ip", "nlist": 256, "nprobe": 8},
    "hnsw": {"metric": "ip", "M": 32, "ef_construction": 40, "ef_search": 64},
}
METRICS = ("ip", "l2")


class DenseIndex(FaissIndex):
    """Index of `dim`-dimensional float32 embeddings.

    `metric`: `"ip"` (inner product, higher is better; normalise for cosine) or `"l2"` (squared
    L2 distance, lower is better). `kind`: `"flat"` (exact), `"ivf"` (`nlist`, `nprobe`; trained on
    the first `add`) or `"hnsw"` (`M`, `ef_construction`, `ef_search`). `search` returns float32
    scores / distances (NaN where fewer than k items were found) and int64 ids.
    """

    DEFAULT_OPTIONS = _DEFAULTS
    item_name = "vectors"
    width_name = "dim"

    @property
    def dim(self) -> int:
        return self.width

    def _check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        merged = super()._check_options(options)
        if merged["metric"] not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {merged['metric']!r}")
        return merged

    def _new_faiss_index(self):
        import faiss

        o = self.options
        metric = faiss.METRIC_INNER_PRODUCT if o["metric"] == "ip" else faiss.METRIC_L2
        if self.kind == "flat":
            return faiss.IndexFlat(self.dim, metric)
        if self.kind == "ivf":
            index = faiss.IndexIVFFlat(faiss.IndexFlat(self.dim, metric), self.dim, o["nlist"], metric)
            index.nprobe = o["nprobe"]
            return index
        index = faiss.IndexHNSWFlat(self.dim, o["M"], metric)
        index.hnsw.efConstruction = o["ef_construction"]
        index.hnsw.efSearch = o["ef_search"]
        return index

    def _empty_rows(self) -> np.ndarray:
        return np.empty((0, self.dim), dtype=np.float32)

    def _as_rows(self, items, what: str) -> np.ndarray:
        array = items.detach().float().cpu().numpy() if isinstance(items, torch.Tensor) else np.asarray(items)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(
                f"{what} must be [n, {self.dim}] embeddings for this index{self._describe_source()}, "
                f"got shape {array.shape}"
            )
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{what} must be numeric, got dtype {array.dtype}")
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        return array

    def _missing_distance(self):
        return np.float32("nan")

    def _serialize(self) -> bytes:
        import faiss

        return faiss.serialize_index(self._index).tobytes()

    @classmethod
    def _deserialize(cls, data: bytes):
        import faiss

        return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
