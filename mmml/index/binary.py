"""`BinaryIndex`: packed binary codes searched by Hamming distance on faiss binary indexes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import FaissIndex

_DEFAULTS = {
    "flat": {},
    # Multi-index hashing: `nhash` tables of `bits // nhash` bits each, probed with up to `nflip` flipped bits.
    "mih": {"nhash": None, "nflip": 1},
    "ivf": {"nlist": 256, "nprobe": 8},
    "hnsw": {"M": 16, "ef_construction": 40, "ef_search": 64},
}


class BinaryIndex(FaissIndex):
    """Hamming-distance index of `bits`-bit codes.

    `kind`: `"flat"` (exact, `faiss.IndexBinaryFlat`), or approximate `"mih"` (multi-index hashing,
    `IndexBinaryMultiHash`; options `nhash`, `nflip`), `"ivf"` (`IndexBinaryIVF`; `nlist`,
    `nprobe`; trained on the first `add`, which needs at least `nlist` codes) or `"hnsw"`
    (`IndexBinaryHNSW`; `M`, `ef_construction`, `ef_search`).

    Codes go in as packed `uint8` `[n, bits // 8]` (`mmml.modeling.pack_codes`) or unpacked
    `[n, bits]` {-1, +1} / {0, 1} values (numpy or torch). `search` returns int32 Hamming distances
    (-1 where fewer than k items were found) and int64 ids.
    """

    DEFAULT_OPTIONS = _DEFAULTS
    item_name = "codes"
    width_name = "bits"

    def __init__(self, bits: int, kind: str = "flat", metadata: dict[str, Any] | None = None, **options: Any):
        if isinstance(bits, int) and not isinstance(bits, bool) and bits % 8:
            raise ValueError(f"bits must be a positive multiple of 8, got {bits!r}")
        super().__init__(bits, kind, metadata, **options)

    @property
    def bits(self) -> int:
        return self.width

    def _check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        merged = super()._check_options(options)
        if self.kind == "mih":
            if merged["nhash"] is None:
                merged["nhash"] = max(1, self.bits // 16)
            if self.bits % merged["nhash"] or self.bits // merged["nhash"] > 64:
                raise ValueError(f"nhash must divide bits ({self.bits}) into tables of <= 64 bits, got {merged['nhash']}")
        return merged

    def _new_faiss_index(self):
        import faiss

        o = self.options
        if self.kind == "flat":
            return faiss.IndexBinaryFlat(self.bits)
        if self.kind == "mih":
            index = faiss.IndexBinaryMultiHash(self.bits, o["nhash"], self.bits // o["nhash"])
            index.nflip = o["nflip"]
            return index
        if self.kind == "ivf":
            index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(self.bits), self.bits, o["nlist"])
            index.nprobe = o["nprobe"]
            return index
        index = faiss.IndexBinaryHNSW(self.bits, o["M"])
        index.hnsw.efConstruction = o["ef_construction"]
        index.hnsw.efSearch = o["ef_search"]
        return index

    def _after_load(self) -> None:
        super()._after_load()
        if self.kind == "mih":
            self._index.nflip = self.options["nflip"]

    def _empty_rows(self) -> np.ndarray:
        return np.empty((0, self.bits // 8), dtype=np.uint8)

    def _as_rows(self, items, what: str) -> np.ndarray:
        array = items.detach().cpu().numpy() if isinstance(items, torch.Tensor) else np.asarray(items)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2:
            raise ValueError(f"{what} must be a 2-D array of codes, got shape {array.shape}")
        columns = array.shape[1]
        if array.dtype == np.uint8 and columns == self.bits // 8:
            return np.ascontiguousarray(array)
        if columns == self.bits:
            values = np.unique(array)
            if not (set(values.tolist()) <= {-1, 1} or set(values.tolist()) <= {0, 1}):
                raise ValueError(f"unpacked {what} must hold only -1/+1 or 0/1 values, got {values[:5].tolist()}")
            return np.packbits(array > 0, axis=1)
        raise ValueError(
            f"{what} have {columns} columns ({array.dtype}), but this index holds {self.bits}-bit codes"
            f"{self._describe_source()}: pass packed uint8 [n, {self.bits // 8}] or unpacked [n, {self.bits}] codes"
        )

    def _missing_distance(self):
        return np.int32(-1)

    def _serialize(self) -> bytes:
        import faiss

        return faiss.serialize_index_binary(self._index).tobytes()

    @classmethod
    def _deserialize(cls, data: bytes):
        import faiss

        return faiss.deserialize_index_binary(np.frombuffer(data, dtype=np.uint8))
