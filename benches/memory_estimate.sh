#!/usr/bin/env bash
# Estimated (`peftc check --figures`) against measured (peak resident set while the train stage
# trains, VmHWM, printed by `peftc run`) memory of train stages, one `peftc run` process each:
#   - every model of tests/fixtures/parity (tiny BERT classification; tiny llama, mistral, qwen2,
#     gpt2 causal LMs), LoRA, 3 steps;
#   - a llama of the shape of benches/train_vs_torch.py (hidden 512, 8 layers, vocab 8000,
#     benches/tiny_llama.py, standard-library Python), batch 8 x 128, LoRA r 16 on q,v and on
#     every linear layer, 3 steps;
#   - the sentiment example's two trains (MiniLM; needs scripts/fetch-assets.sh,
#     scripts/fetch-data.sh and scripts/install-hf-cache.sh), as written or, with
#     PEFTC_BENCH_SENTIMENT_STEPS=n, n steps each;
#   - the instruct example (SmolLM2-135M Q4_1 GGUF) cut to 3 steps, on the stored base and with
#     `weights = dense`.
# Each line is `case: memory train.x: ...` as `peftc run` prints it; when a run's longest batch
# was shorter than `max_len`, the ratio is against the estimate at that length (printed too).
# Usage: bash benches/memory_estimate.sh [fixtures|llama|sentiment|instruct]...  (default: all)
# PEFTC_BIN=path uses a built binary instead of building the release one.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PEFTC_BIN:-}" ]; then
  cargo build --release --bin peftc --manifest-path "$repo/Cargo.toml" >&2
  PEFTC_BIN="$repo/target/release/peftc"
fi
peftc="$PEFTC_BIN"
assets="${PEFTC_TEST_ASSETS:-$repo/target/assets}"
python="${PEFTC_BENCH_PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cases="${*:-fixtures llama sentiment instruct}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"

# `label dir file [args]`: runs `peftc run` in dir and prints its memory lines.
measure() {
  local label="$1" dir="$2" file="$3"
  shift 3
  (cd "$dir" && "$peftc" run "$@" "$file" 2>&1 | grep '^memory' | sed "s|^|$label: |") \
    || echo "$label: no memory line (the run failed?)"
}

fixtures() {
  local f="$repo/tests/fixtures/parity"
  mkdir -p "$work/bert"
  cp -r "$f/bert/base" "$work/bert/model"
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
  measure "tiny BERT fixture, LoRA r 4 q,v, batch 8 x 16" "$work/bert" p.peft
  for arch in llama mistral qwen2 gpt2; do
    mkdir -p "$work/$arch"
    cp -r "$f/$arch/model" "$work/$arch/model"
    for i in $(seq 0 31); do
      echo "{\"text\":\"question $i: what comes after $i? answer: the number after $i is $((i + 1)).\"}"
    done > "$work/$arch/data.jsonl"
    cat > "$work/$arch/p.peft" <<'PEFT'
model tiny = local("model")
dataset d = jsonl("data.jsonl") {
  text    = field("text")
  max_len = 32
}
adapter a = lora { r = 4, alpha = 8, dropout = 0.1, targets = all_linear }
train t {
  model     = tiny
  adapters  = [a]
  data      = d
  max_steps = 3
  batch     = 4
  lr        = 1e-3
}
PEFT
    measure "tiny $arch fixture, LoRA r 4 all linear, batch 4 x 32" "$work/$arch" p.peft
  done
}

llama() {
  "$python" "$repo/benches/tiny_llama.py" "$work/llama512"
  for t in qv all; do
    local targets="[q_proj, v_proj]"
    [ "$t" = all ] && targets="all_linear"
    cat > "$work/llama512/$t.peft" <<PEFT
model m = local("model")
dataset d = jsonl("data.jsonl") {
  text    = field("text")
  max_len = 128
}
adapter a = lora { r = 16, alpha = 32, targets = $targets }
train t {
  model     = m
  adapters  = [a]
  data      = d
  max_steps = 3
  batch     = 8
  lr        = 1e-3
}
PEFT
    measure "llama 512 x 8 layers, vocab 8000, LoRA r 16 $t, batch 8 x 128" "$work/llama512" "$t.peft"
  done
}

sentiment() {
  if [ ! -s "$repo/examples/data/rotten_tomatoes.jsonl" ]; then
    echo "skipped: sentiment example (run scripts/fetch-data.sh and scripts/install-hf-cache.sh)"
    return
  fi
  mkdir -p "$work/sentiment/data"
  cp "$repo/examples/data/rotten_tomatoes.jsonl" "$work/sentiment/data/"
  # PEFTC_BENCH_SENTIMENT_STEPS=n cuts each train to n steps (the whole run takes minutes).
  if [ -n "${PEFTC_BENCH_SENTIMENT_STEPS:-}" ]; then
    sed "s/epochs   = 2/max_steps = $PEFTC_BENCH_SENTIMENT_STEPS/" "$repo/examples/sentiment.peft"
  else
    cat "$repo/examples/sentiment.peft"
  fi | grep -v '^export' > "$work/sentiment/sentiment.peft"
  measure "sentiment example${PEFTC_BENCH_SENTIMENT_STEPS:+, $PEFTC_BENCH_SENTIMENT_STEPS steps}" "$work/sentiment" sentiment.peft --only train.tune --only train.probe
}

instruct() {
  local gguf="$assets/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ ! -s "$gguf" ] || [ ! -s "$repo/examples/data/chatterbot_qa.jsonl" ]; then
    echo "skipped: instruct example (run scripts/fetch-assets.sh and scripts/fetch-data.sh)"
    return
  fi
  mkdir -p "$work/instruct/models" "$work/instruct/data"
  ln -s "$gguf" "$work/instruct/models/"
  cp "$repo/examples/data/chatterbot_qa.jsonl" "$work/instruct/data/"
  sed 's/max_steps  = 50/max_steps  = 3/; s/checkpoint_every = 25//' "$repo/examples/instruct.peft" \
    | grep -v '^export' > "$work/instruct/instruct.peft"
  measure "instruct example, stored Q4_1, 3 steps" "$work/instruct" instruct.peft --only train.instruct
  mkdir -p "$work/dense"
  cp -r "$work/instruct/models" "$work/instruct/data" "$work/dense/"
  sed 's|gguf("models/SmolLM2-135M-Instruct.Q4_1.gguf")|& { weights = dense }|' \
    "$work/instruct/instruct.peft" > "$work/dense/instruct.peft"
  measure "instruct example, weights = dense, 3 steps" "$work/dense" instruct.peft --only train.instruct
  for d in instruct dense; do
    echo "$d: seconds per step: $(cat "$work/$d"/.peft/entries/*/out/metrics.jsonl 2>/dev/null \
      | sed -n 's/.*"step_s":\([0-9.]*\).*/\1/p' | tr '\n' ' ')"
  done
}

for c in $cases; do "$c"; done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
