#!/usr/bin/env bash
# Creates .venv and installs mmml into it (`bash scripts/setup.sh test` adds the test extras).
# The CPU build of torch is installed first so that pip never resolves torch to a multi-GB CUDA
# build. Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
[ -x .venv/bin/python ] || python3 -m venv .venv
pip_install() {
  # pip's warnings about this machine's absent local index folders are noise; errors still fail the script.
  .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}
pip_install "torch==2.13.0"
pip_install -e ".${extras:+[$extras]}"
.venv/bin/python -c "import mmml, torch; print(f'mmml {mmml.__version__} ready (torch {torch.__version__})')"
