#!/usr/bin/env bash
# Estimated (`peftc check --figures`) against measured (peak resident set of the train stage,
# VmHWM, printed by `peftc run`) memory for a tiny BERT fixture and the instruct example
# (SmolLM2-135M Q4_1 GGUF, cut to 3 steps). Needs `bash scripts/fetch-assets.sh` and
# `bash scripts/fetch-data.sh` for the instruct example. Usage: bash benches/memory_estimate.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --bin peftc --manifest-path "$repo/Cargo.toml" >&2
peftc="$repo/target/release/peftc"
assets="${PEFTC_TEST_ASSETS:-$repo/target/assets}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Tiny BERT (tests/fixtures/parity/bert/base), LoRA r 4, 3 steps of batch 8.
mkdir -p "$work/bert"
cp -r "$repo/tests/fixtures/parity/bert/base" "$work/bert/model"
for i in $(seq 0 39); do
  if [ $((i % 2)) = 0 ]; then echo "{\"text\":\"this movie was very good $i\",\"label\":\"positive\"}"
  else echo "{\"text\":\"this film was not good it was bad $i\",\"label\":\"negative\"}"; fi
done > "$work/bert/data.jsonl"
cat > "$work/bert/p.peft" <<'PEFT'
model tiny = local("model") {
  task = classify(labels = ["negative", "positive"])
}
dataset reviews = jsonl("data.jsonl") {
  text  = field("text")
  label = field("label")
  split = { train = 75%, eval = 25%, seed = 3 }
  max_len = 16
}
adapter a = lora { r = 4, alpha = 8, targets = [query, value] }
train t {
  model     = tiny
  adapters  = [a]
  data      = reviews.train
  max_steps = 3
  batch     = 8
  lr        = 1e-3
}
PEFT
(cd "$work/bert" && "$peftc" run p.peft 2>&1 | grep '^memory') || true

# The instruct example on its GGUF base, 3 steps.
gguf="$assets/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$gguf" ] && [ -s "$repo/examples/data/chatterbot_qa.jsonl" ]; then
  mkdir -p "$work/instruct/models" "$work/instruct/data"
  ln -s "$gguf" "$work/instruct/models/"
  cp "$repo/examples/data/chatterbot_qa.jsonl" "$work/instruct/data/"
  sed 's/max_steps  = 50/max_steps  = 3/; s/checkpoint_every = 25//' "$repo/examples/instruct.peft" \
    | grep -v '^export' > "$work/instruct/instruct.peft"
  (cd "$work/instruct" && "$peftc" run --only train.instruct instruct.peft 2>&1 | grep '^memory') || true
  # The same train on the dequantized base (`weights = dense`): memory and seconds per step.
  mkdir -p "$work/dense"
  cp -r "$work/instruct/models" "$work/instruct/data" "$work/dense/"
  sed 's|gguf("models/SmolLM2-135M-Instruct.Q4_1.gguf")|& { weights = dense }|' \
    "$work/instruct/instruct.peft" > "$work/dense/instruct.peft"
  (cd "$work/dense" && "$peftc" run --only train.instruct instruct.peft 2>&1 | grep '^memory' | sed 's/^/dense: /') || true
  for d in instruct dense; do
    echo "$d: seconds per step: $(cat "$work/$d"/.peft/entries/*/out/metrics.jsonl 2>/dev/null \
      | sed -n 's/.*"step_s":\([0-9.]*\).*/\1/p' | tr '\n' ' ')"
  done
else
  echo "skipped: instruct example (run scripts/fetch-assets.sh and scripts/fetch-data.sh)"
fi
