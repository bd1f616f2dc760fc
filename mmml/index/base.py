"""What the binary and the dense index share: external ids, add / search / remove, save / load."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .storage import IndexFileError, read_index_file, write_index_file


class EmptyIndexError(ValueError):
    """A search on an index that holds no items."""


class FaissIndex:
    """Base of `BinaryIndex` / `DenseIndex`: a faiss index plus the external id of every row.

    faiss numbers rows in insertion order; `self._ids[row]` is the caller's id. Exact (flat) kinds
    remove rows in place (faiss keeps the order of the remaining rows, as `np.delete` does);
    approximate kinds keep a copy of the vectors and are rebuilt without the removed rows.
    `metadata` is any JSON-serialisable dict saved with the index (which model and processor
    encoded the items, their modality, ...).
    """

    # kind -> default options; the first kind is the exact one.
    DEFAULT_OPTIONS: ClassVar[dict[str, dict[str, Any]]] = {}
    EXACT_KIND: ClassVar[str] = "flat"
    width_name: ClassVar[str] = "width"
    item_name: ClassVar[str] = "items"

    def __init__(self, width: int, kind: str = "flat", metadata: dict[str, Any] | None = None, **options: Any):
        if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
            raise ValueError(f"{self.width_name} must be a positive int, got {width!r}")
        if kind not in self.DEFAULT_OPTIONS:
            raise ValueError(f"kind must be one of {tuple(self.DEFAULT_OPTIONS)}, got {kind!r}")
        self.width = width
        self.kind = kind
        self.options = self._check_options(dict(options))
        self.metadata = dict(metadata or {})
        self._ids = np.empty(0, dtype=np.int64)
        self._vectors = self._empty_rows() if kind != self.EXACT_KIND else None
        self._index = self._new_faiss_index()

    # --- hooks for subclasses -------------------------------------------------------------
    def _check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The kind's default options updated with `options`; unknown names raise."""
        defaults = self.DEFAULT_OPTIONS[self.kind]
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise ValueError(f"unknown options {unknown} for kind={self.kind!r}; valid: {sorted(defaults)}")
        return {**defaults, **options}

    def _new_faiss_index(self):
        raise NotImplementedError

    def _empty_rows(self) -> np.ndarray:
        raise NotImplementedError

    def _as_rows(self, items, what: str) -> np.ndarray:
        """Validated, contiguous rows of the faiss dtype; raises naming `what` and the valid shapes."""
        raise NotImplementedError

    def _train_if_needed(self, rows: np.ndarray) -> None:
        """IVF kinds are trained on their first `add`, which must hold at least `nlist` rows."""
        if self.kind == "ivf" and not self._index.is_trained:
            if rows.shape[0] < self.options["nlist"]:
                raise ValueError(
                    f"an ivf index is trained on its first add, which needs at least nlist={self.options['nlist']} "
                    f"{self.item_name}; got {rows.shape[0]}. Add more {self.item_name} at once or lower nlist"
                )
            self._index.train(rows)

    def _missing_distance(self):
        raise NotImplementedError

    def _serialize(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def _deserialize(cls, data: bytes):
        raise NotImplementedError

    # --- public API ------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._ids.shape[0])

    @property
    def ids(self) -> np.ndarray:
        """The external ids, in row order (a copy)."""
        return self._ids.copy()

    def _describe_source(self) -> str:
        model = self.metadata.get("model")
        return f" (built by model {model})" if model else ""

    def add(self, items, ids) -> None:
        """Add rows with their int64 `ids` (unique, not already in the index)."""
        rows = self._as_rows(items, "items")
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) and ids.size:
            raise ValueError(f"ids must be a 1-D sequence of integers, got shape {ids.shape} and dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        if ids.shape[0] != rows.shape[0]:
            raise ValueError(f"got {rows.shape[0]} items but {ids.shape[0]} ids; pass one id per item")
        if (ids < 0).any():
            raise ValueError(f"ids must be >= 0 (-1 marks a missing result), got {int(ids.min())}")
        unique = np.unique(ids)
        if unique.shape[0] != ids.shape[0]:
            raise ValueError("ids contain duplicates; every item needs its own id")
        clash = np.intersect1d(unique, self._ids, assume_unique=True)
        if clash.size:
            raise ValueError(f"ids already in the index: {clash[:10].tolist()}; remove them first to replace them")
        if rows.shape[0] == 0:
            return
        self._train_if_needed(rows)
        self._index.add(rows)
        self._ids = np.concatenate([self._ids, ids])
        if self._vectors is not None:
            self._vectors = np.concatenate([self._vectors, rows])

    def search(self, queries, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """`(distances, ids)`, each `[num_queries, k]`, best first; id -1 where fewer than k were found."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if len(self) == 0:
            raise EmptyIndexError("the index is empty: add items before searching")
        rows = self._as_rows(queries, "queries")
        distances, positions = self._index.search(rows, k)
        found = positions >= 0
        ids = np.where(found, self._ids[np.where(found, positions, 0)], -1)
        if not found.all():
            distances = np.where(found, distances, self._missing_distance())
        return distances, ids

    def remove(self, ids) -> int:
        """Remove the items with these ids; every id must be in the index. Returns the count removed."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        unknown = np.setdiff1d(ids, self._ids, assume_unique=True)
        if unknown.size:
            raise KeyError(f"ids not in the index: {unknown[:10].tolist()} (nothing was removed)")
        if ids.size == 0:
            return 0
        keep = ~np.isin(self._ids, ids)
        if self._vectors is None:
            import faiss

            self._index.remove_ids(faiss.IDSelectorBatch(np.flatnonzero(~keep).astype(np.int64)))
        else:
            self._vectors = self._vectors[keep]
            self._index.reset()
            if self._vectors.shape[0]:
                self._index.add(self._vectors)
        self._ids = self._ids[keep]
        return int(ids.size)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to one file atomically (an existing file is replaced only on success)."""
        header = {"class": type(self).__name__, "width": self.width, "kind": self.kind, "options": self.options,
                  "metadata": self.metadata, "count": len(self)}
        sections = {"ids": self._ids.tobytes(), "faiss": self._serialize()}
        if self._vectors is not None:
            sections["vectors"] = self._vectors.tobytes()
        return write_index_file(path, header, sections)

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read an index saved by `save`; `IndexFileError` for a truncated or corrupted file."""
        header, sections = read_index_file(path)
        return cls._from_file_parts(path, header, sections)

    @classmethod
    def _from_file_parts(cls, path, header: dict[str, Any], sections: dict[str, bytes]):
        if header["class"] != cls.__name__:
            raise IndexFileError(f"{path} holds a {header['class']}, not a {cls.__name__}; load it with that class")
        index = cls(header["width"], header["kind"], header["metadata"], **header["options"])
        index._ids = np.frombuffer(sections["ids"], dtype=np.int64).copy()
        index._index = cls._deserialize(sections["faiss"])
        if "vectors" in sections:
            index._vectors = np.frombuffer(sections["vectors"], dtype=index._empty_rows().dtype).reshape(
                len(index._ids), -1).copy()
        if index._index.ntotal != len(index._ids) or header["count"] != len(index._ids):
            raise IndexFileError(f"{path} is inconsistent: {index._index.ntotal} rows but {len(index._ids)} ids")
        index._after_load()
        return index

    def _after_load(self) -> None:
        """Re-apply search-time options that faiss does not serialise."""
        if self.kind == "ivf":
            self._index.nprobe = self.options["nprobe"]
        elif self.kind == "hnsw":
            self._index.hnsw.efSearch = self.options["ef_search"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.width_name}={self.width}, kind={self.kind!r}, items={len(self)})"
