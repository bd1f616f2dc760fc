"""A real Hugging Face Hub server on loopback for tests: PyPI's `olah` serving a local git mirror.

olah (https://github.com/vtuber-plan/olah) is a Hub mirror server. Besides proxying huggingface.co it serves
git repositories found under `mirrors-path` as `<mirrors-path>/<repo_type>/<org>/<name>` (branch names and
commit SHAs resolve through git). It speaks the Hub's HTTP API (`/api/models/{id}/revision/{rev}`,
`/{id}/resolve/{rev}/{file}`, ...), so `huggingface_hub` / `transformers` clients work against it unchanged
with `HF_ENDPOINT=http://127.0.0.1:PORT`.

Configuration (TOML, because `mirrors-path` and `offline` are only read from a config file, not from CLI flags):

* `[accessibility] offline = true`: never contact the upstream Hub; everything comes from the local mirror.
* `hf-netloc` / `hf-lfs-netloc` point at a closed loopback port as a second guard, so even a code path that
  ignored `offline` could not reach huggingface.co.
* `host`/`port` bind to 127.0.0.1 only; `repos-path` (olah's own cache) and `--log-path` live in a temp folder.

olah is read-only (no upload API), so repositories are published by committing them to the git mirror.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# A git identity and dates fixed so the mirror commit does not depend on the machine's git configuration.
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "mmml tests",
    "GIT_AUTHOR_EMAIL": "tests@mmml.invalid",
    "GIT_COMMITTER_NAME": "mmml tests",
    "GIT_COMMITTER_EMAIL": "tests@mmml.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
}


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def publish_to_git_mirror(folder: Path, mirror_root: Path, repo_id: str, repo_type: str = "models") -> str:
    """Copy `folder` to `<mirror_root>/<repo_type>/<repo_id>` as a git repo with one commit on `main`.

    Returns the commit SHA (what the Hub API reports as the revision of `main`).
    """
    target = Path(mirror_root) / repo_type / repo_id
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(folder, target)
    env = {**os.environ, **_GIT_ENV}

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=target, env=env, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr}")
        return result.stdout.strip()

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "commit.gpgsign=false", "commit", "-q", "-m", f"Upload {repo_id}")
    return git("rev-parse", "HEAD")


class OlahServer:
    """An `olah` subprocess serving `mirror_root` on 127.0.0.1, offline. Use as a context manager or call stop()."""

    def __init__(self, mirror_root: Path, workdir: Path, startup_timeout: float = 30.0, probe_repo: str | None = None):
        self.mirror_root = Path(mirror_root)
        self.workdir = Path(workdir)
        self.startup_timeout = startup_timeout
        self.probe_repo = probe_repo
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_path = self.workdir / "olah.out"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self, port: int) -> Path:
        config = self.workdir / "olah.toml"
        config.write_text(
            "[basic]\n"
            'host = "127.0.0.1"\n'
            f"port = {port}\n"
            f"repos-path = {str(self.workdir / 'repos')!r}\n"
            f"mirrors-path = [{str(self.mirror_root)!r}]\n"
            'mirror-scheme = "http"\n'
            f'mirror-netloc = "127.0.0.1:{port}"\n'
            f'mirror-lfs-netloc = "127.0.0.1:{port}"\n'
            # Upstream: a closed loopback port (discard), never huggingface.co. `offline` already stops upstream calls.
            'hf-scheme = "http"\n'
            'hf-netloc = "127.0.0.1:9"\n'
            'hf-lfs-netloc = "127.0.0.1:9"\n'
            "\n[accessibility]\n"
            "offline = true\n"
        )
        return config

    def _ready(self) -> bool:
        # The Hub's "repo info at a revision" call; answers 200 once the server is up and reads the mirror.
        path = f"/api/models/{self.probe_repo}/revision/main" if self.probe_repo else "/"
        try:
            with urllib.request.urlopen(self.endpoint + path, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def start(self, attempts: int = 3) -> "OlahServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):  # a free port can be taken between probing it and olah binding it: retry
            self.port = free_port()
            config = self._write_config(self.port)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
            env["PYTHONUNBUFFERED"] = "1"
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "olah.server", "--config", str(config),
                     "--log-path", str(self.workdir / "logs")],
                    cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._ready():
                    return self
                time.sleep(0.2)
            self.stop()
        raise RuntimeError(f"olah did not start within {self.startup_timeout} s; log:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """Terminate (then kill) the server; idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "OlahServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
