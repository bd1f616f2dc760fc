"""The index file format: one file, written atomically, checked on load.

Layout: 8 magic bytes, the header length (8 bytes, little endian), a UTF-8 JSON header, then the
sections it lists (raw bytes, back to back). The header holds the sections' sizes and a SHA-256 of
all section bytes, so a truncated or altered file is refused with an error saying what is wrong
instead of loading as a smaller index.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

MAGIC = b"MMMLIDX\x01"
FORMAT_VERSION = 1


class IndexFileError(ValueError):
    """An index file that cannot be read: not an mmml index, truncated, or corrupted."""


def write_index_file(path: str | os.PathLike, header: dict[str, Any], sections: dict[str, bytes]) -> Path:
    """Write `header` and `sections` to `path` through a temporary file and `os.replace`.

    If anything fails before the replace, an existing file at `path` is left untouched and the
    temporary file is removed.
    """
    path = Path(path)
    digest = hashlib.sha256()
    for data in sections.values():
        digest.update(data)
    header = dict(header, format_version=FORMAT_VERSION, sha256=digest.hexdigest(),
                  sections=[[name, len(data)] for name, data in sections.items()])
    header_bytes = json.dumps(header).encode("utf-8")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as handle:
            handle.write(MAGIC)
            handle.write(struct.pack("<Q", len(header_bytes)))
            handle.write(header_bytes)
            for data in sections.values():
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_index_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, bytes]]:
    """`(header, sections)` of an index file; `IndexFileError` naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no index file at {path}")
    data = path.read_bytes()
    if data[: len(MAGIC)] != MAGIC:
        raise IndexFileError(f"{path} is not an mmml index file (it does not start with {MAGIC!r})")
    start = len(MAGIC) + 8
    if len(data) < start:
        raise IndexFileError(f"{path} is truncated: {len(data)} bytes, shorter than the file header")
    (header_length,) = struct.unpack("<Q", data[len(MAGIC) : start])
    if len(data) < start + header_length:
        raise IndexFileError(
            f"{path} is truncated: the header needs {header_length} bytes, only {len(data) - start} present"
        )
    try:
        header = json.loads(data[start : start + header_length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexFileError(f"{path} has a corrupted header ({error})") from None
    if header.get("format_version") != FORMAT_VERSION:
        raise IndexFileError(f"{path} has index format {header.get('format_version')!r}; this mmml reads {FORMAT_VERSION}")
    offset = start + header_length
    expected = sum(size for _, size in header["sections"])
    if len(data) - offset != expected:
        state = "truncated" if len(data) - offset < expected else "longer than its header says"
        raise IndexFileError(
            f"{path} is {state}: expected {expected} bytes of index data, found {len(data) - offset}; "
            "rebuild or restore the index"
        )
    if hashlib.sha256(data[offset:]).hexdigest() != header["sha256"]:
        raise IndexFileError(f"{path} is corrupted: its checksum does not match; rebuild or restore the index")
    sections = {}
    for name, size in header["sections"]:
        sections[name] = data[offset : offset + size]
        offset += size
    return header, sections
