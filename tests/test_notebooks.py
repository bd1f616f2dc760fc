"""The notebooks run top to bottom (their code cells, in order, in one namespace)."""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT

# The quickstart is always a case: if it went missing, its case fails instead of silently dropping out.
NOTEBOOKS = sorted({*(REPO_ROOT / "notebooks").glob("*.ipynb"), REPO_ROOT / "notebooks" / "quickstart.ipynb"})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notebook = json.loads(path.read_text(encoding="utf-8"))
    namespace: dict = {"__name__": "__main__"}
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {index}]", "exec"), namespace)
    if path.name == "quickstart.ipynb":  # what it shows: per-language retrieval on the 50 test scenes, a reload
        result = namespace["result"]
        assert set(result) == {"en", "de", "fr", "es", "ru", "zh", "mean"}
        assert all(m["num_images"] == 50 and m["num_texts"] == 50 for m in result.values())
        assert tuple(namespace["out"].logits_per_image.shape) == (1, 2)
        assert type(namespace["reloaded"]).__name__ == "MCLIPModel"
