#!/usr/bin/env bash
# Training speed and peak memory of one LoRA train under different allocator / thread settings,
# each a fresh `peftc run` process on the same pipeline: all-MiniLM-L6-v2 (test assets), the
# sentiment example's shape (LoRA r 8 all linear + 2-label head, batch 16, max_len 64), the first
# 400 Rotten Tomatoes rows, one epoch (25 steps). Prints, per setting: the last tokens/s figure
# of the train, its peak resident memory line, and the process's wall / user / system seconds.
# Needs scripts/fetch-assets.sh and scripts/fetch-data.sh.
# Usage: bash benches/allocator_ab.sh ["ENV=VALUE ..." ...]   (default: the settings below)
# PEFTC_BIN=path uses a built binary instead of building the release one.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PEFTC_BIN:-}" ]; then
  cargo build --release --bin peftc --manifest-path "$repo/Cargo.toml" >&2
  PEFTC_BIN="$repo/target/release/peftc"
fi
assets="${PEFTC_TEST_ASSETS:-$repo/target/assets}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/ab.peft" <<PEFT
model minilm = local("$assets/all-MiniLM-L6-v2") {
  task = classify(labels = ["negative", "positive"])
}
dataset reviews = jsonl("$repo/examples/data/rotten_tomatoes.jsonl") {
  text    = field("text")
  label   = field("label")
  max_len = 64
  limit   = 400
}
adapter sent = lora {
  r       = 8
  alpha   = 16
  targets = all_linear
}
train tune {
  model    = minilm
  adapters = [sent]
  data     = reviews
  epochs   = 1
  batch    = 16
  lr       = 2e-3
  seed     = 7
}
PEFT
if [ "$#" -eq 0 ]; then
  set -- "" "MALLOC_MMAP_THRESHOLD_=131072" "MALLOC_MMAP_THRESHOLD_=4194304" \
    "MALLOC_MMAP_THRESHOLD_=33554432" "CANDLE_NUM_THREADS=2"
fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
(cd "$work" && "$PEFTC_BIN" run --only tokenize.reviews ab.peft >/dev/null 2>&1 || true)
for setting in "$@"; do
  # shellcheck disable=SC2086 # each setting is a list of ENV=VALUE words
  if ! out="$(cd "$work" && { TIMEFORMAT='wall %R s, user %U s, system %S s'; time env $setting \
    "$PEFTC_BIN" run --force train.tune ab.peft 2>&1; } 2>&1)"; then
    echo "${setting:-(defaults)}: the run failed:"
    tail -n 5 <<<"$out"
    continue
  fi
  tok="$(grep -o '[0-9]* tok/s' <<<"$out" | tail -n1 || true)"
  mem="$(grep '^memory' <<<"$out" | sed 's/^memory train.tune: //' || true)"
  times="$(grep '^wall' <<<"$out" || true)"
  echo "${setting:-(defaults)}: $tok; $times; $mem"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
