"""Local folders for paths or Hub repos (used by loaders below the public `mmml.hub` face)."""

from __future__ import annotations

import os
from pathlib import Path


def local_folder(path_or_repo_id: str | os.PathLike, subfolder: str = "", **hub_kwargs) -> Path:
    """A local folder holding `subfolder` of a local path or a Hub repo (downloaded / from cache).

    `hub_kwargs` (`revision`, `token`, `cache_dir`, ...) go to `huggingface_hub.snapshot_download`.
    """
    local = Path(path_or_repo_id) / subfolder
    if Path(path_or_repo_id).is_dir():
        if not local.is_dir():
            raise FileNotFoundError(f"{path_or_repo_id} has no folder {subfolder!r}")
        return local
    from huggingface_hub import snapshot_download

    patterns = [f"{subfolder.strip('/')}/*"] if subfolder else None  # fnmatch: "*" spans "/" too
    root = snapshot_download(str(path_or_repo_id), allow_patterns=patterns, **hub_kwargs)
    if not (Path(root) / subfolder).is_dir():
        raise FileNotFoundError(f"Hub repo {path_or_repo_id} has no folder {subfolder!r}")
    return Path(root) / subfolder
