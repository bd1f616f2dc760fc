"""Binary (Hamming) and dense (float) indexes on faiss with one API: add, search, remove, save, load.

Needs the `index` extra (`pip install mmml[index]`, i.e. faiss-cpu).
"""

from __future__ import annotations

import os

from .base import EmptyIndexError, FaissIndex
from .binary import BinaryIndex
from .dense import DenseIndex
from .storage import IndexFileError, read_index_file


def load_index(path: str | os.PathLike) -> BinaryIndex | DenseIndex:
    """Load a `BinaryIndex` or `DenseIndex`, whichever the file holds."""
    header, sections = read_index_file(path)
    classes = {cls.__name__: cls for cls in (BinaryIndex, DenseIndex)}
    if header.get("class") not in classes:
        raise IndexFileError(f"{path} holds an unknown index class {header.get('class')!r}; known: {sorted(classes)}")
    return classes[header["class"]]._from_file_parts(path, header, sections)


__all__ = ["BinaryIndex", "DenseIndex", "EmptyIndexError", "FaissIndex", "IndexFileError", "load_index"]
