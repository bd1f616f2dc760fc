"""Hub round trip: a saved mmml model + processor served by a real Hub server (olah) on loopback.

The checkpoint is published as a git repo in a local mirror, served by `olah` (see tests/hub_server.py) and
pulled by name ("mmml-test/tiny-mclip") with `HF_ENDPOINT` pointing at the server, into a fresh Hub cache.

Workaround, and why: olah answers a request for a file (or tree path) missing from a mirror with
401 RepoNotFound where the real Hub says 404 EntryNotFound. transformers treats RepositoryNotFoundError as fatal,
so two online code paths fail against olah although the repo is fine:
  * `AutoModel.from_pretrained("org/name")` probes `adapter_config.json` at "main" (peft is installed), and
  * `ProcessorMixin.from_pretrained("org/name")` lists `additional_chat_templates/` through the tree API.
`MCLIPModel.from_pretrained("org/name")` has neither probe, so the model is pulled with the model class; the
processor files are pulled with `huggingface_hub.snapshot_download` and the processor is loaded from that
snapshot. `AutoModel` / `AutoProcessor` then load "org/name" from the cache with HF_HUB_OFFLINE=1, with the
server already stopped, which is also the "download once, run offline" flow users follow.

The online part runs in a subprocess because huggingface_hub reads HF_ENDPOINT / HF_HUB_CACHE / HF_HUB_OFFLINE
at import time, and this pytest process has already imported it with HF_HUB_OFFLINE=1 (tests/conftest.py).
The offline part runs in this process (already offline, mmml already imported) to keep the test short.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import tiny_mclip_config
from safetensors.torch import save_file

import mmml

REPO_ID = "mmml-test/tiny-mclip"
TEXTS = ["a red circle", "ein blauer Kreis", "une étoile rouge"]
IMAGE_COLORS = [(10, 180, 30), (200, 40, 90), (0, 0, 255)]


def _images():
    from PIL import Image

    return [Image.new("RGB", (40, 40), color) for color in IMAGE_COLORS]


@pytest.fixture
def olah_server(tmp_path):
    """Yields a started-on-demand OlahServer for `tmp_path/mirror`; always stopped afterwards."""
    pytest.importorskip("olah", reason="the Hub round-trip test needs PyPI's `olah` (a Hub mirror server)")
    if shutil.which("git") is None:
        pytest.skip("the Hub round-trip test needs the `git` CLI to build the olah mirror")
    from hub_server import OlahServer

    server = OlahServer(tmp_path / "mirror", tmp_path / "olah", probe_repo=REPO_ID)
    try:
        yield server
    finally:
        server.stop()


def test_from_pretrained_by_repo_id_through_a_real_hub_server(tmp_path, tiny_processor, olah_server):
    from hub_server import publish_to_git_mirror

    # The checkpoint and the logits it must reproduce.
    model = mmml.MCLIPModel(tiny_mclip_config()).eval()
    model.save_pretrained(tmp_path / "ckpt")
    tiny_processor.save_pretrained(tmp_path / "ckpt")
    with torch.no_grad():
        expected = model(**tiny_processor(text=TEXTS, images=_images(), return_tensors="pt")).logits_per_image
    save_file({"logits": expected.contiguous()}, str(tmp_path / "expected.safetensors"))
    sha = publish_to_git_mirror(tmp_path / "ckpt", tmp_path / "mirror", REPO_ID)

    server = olah_server.start()
    hub_cache = tmp_path / "hf_home" / "hub"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT=server.endpoint, HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf_home"), HF_HUB_CACHE=str(hub_cache),
        HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_IMPLICIT_TOKEN="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_XET="1", HF_HUB_ETAG_TIMEOUT="10", HF_HUB_DOWNLOAD_TIMEOUT="20",
        TOKENIZERS_PARALLELISM="false",
    )
    script = textwrap.dedent(f"""
        import json, torch, mmml
        from huggingface_hub import constants, snapshot_download
        from PIL import Image
        from safetensors.torch import load_file
        assert constants.ENDPOINT == {server.endpoint!r} and not constants.HF_HUB_OFFLINE
        model = mmml.MCLIPModel.from_pretrained({REPO_ID!r}).eval()
        # Not MCLIPProcessor.from_pretrained({REPO_ID!r}): see the module docstring (olah's 401 on missing paths).
        snapshot = snapshot_download({REPO_ID!r})
        processor = mmml.MCLIPProcessor.from_pretrained(snapshot)
        images = [Image.new("RGB", (40, 40), c) for c in {IMAGE_COLORS!r}]
        with torch.no_grad():
            logits = model(**processor(text={TEXTS!r}, images=images, return_tensors="pt")).logits_per_image
        expected = load_file({str(tmp_path / 'expected.safetensors')!r})["logits"]
        assert torch.equal(logits, expected), (logits, expected)
        print("RESULT " + json.dumps({{"snapshot": snapshot}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, f"client failed:\n{result.stderr[-4000:]}\nolah log:\n{server.log()[-3000:]}"
    report = json.loads(result.stdout.split("RESULT ", 1)[1])
    server.stop()  # flushes the log; everything below must come from the cache alone

    # The files really came through the server: a Hub cache entry at the mirror's commit, and olah served them.
    snapshot = hub_cache / "models--mmml-test--tiny-mclip" / "snapshots" / sha
    assert os.path.samefile(report["snapshot"], snapshot)
    assert (hub_cache / "models--mmml-test--tiny-mclip" / "refs" / "main").read_text() == sha
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= set(os.listdir(snapshot))
    log = server.log()
    for name in ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json"):
        assert f'"GET /{REPO_ID}/resolve/{sha}/{name} HTTP/1.1" 200' in log, log[-3000:]

    # Offline, server gone: the Auto classes load "org/name" from the cache and give the same logits.
    from huggingface_hub import constants
    from transformers import AutoModel, AutoProcessor

    # tests/conftest.py sets HF_HUB_OFFLINE=1 for this process; if the caller overrode it, stay off the network anyway.
    cache = dict(cache_dir=str(hub_cache), **({} if constants.HF_HUB_OFFLINE else {"local_files_only": True}))
    auto_model = AutoModel.from_pretrained(REPO_ID, **cache).eval()
    auto_processor = AutoProcessor.from_pretrained(REPO_ID, **cache)
    assert type(auto_model) is mmml.MCLIPModel and type(auto_processor) is mmml.MCLIPProcessor
    with torch.no_grad():
        logits = auto_model(**auto_processor(text=TEXTS, images=_images(), return_tensors="pt")).logits_per_image
    assert torch.equal(logits, expected)
