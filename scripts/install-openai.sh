#!/usr/bin/env bash
# Installs the pinned `openai` Python client into target/openai-venv for the `peftc serve`
# real-client test (tests/serve/openai_client.rs). Idempotent; the test reports skipped when
# the venv is absent. Needs python3 with venv and pip, and PyPI.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="$repo/target/openai-venv"
python="${PYTHON:-python3}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import openai" 2>/dev/null; then
  exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r "$repo/tests/serve/requirements-openai.txt"
