#!/usr/bin/env bash
# Compares two peftc builds on the tiny llama LoRA all-linear train (benches/tiny_llama.py's
# model and data, batch 8 x 128, r 16, 12 steps), both running AT THE SAME TIME, one rayon
# thread each, pinned to cores 0 and 1 (swapped every round): a change of a few percent shows
# even where the machine's speed drifts between runs, because both builds see the same drift.
# Prints each round's median step time (steps 3-12) and the ratio B / A. One thread per build:
# what it measures is the work per step, not how the products share two threads.
#
#   bash benches/ab_builds.sh BUILD_A BUILD_B [ROUNDS]    (default 4 rounds)
#
# Needs python3, taskset and 2 cores. Writes only into a temporary folder, removed at the end.
set -euo pipefail
a=$(realpath "$1")
b=$(realpath "$2")
rounds=${3:-4}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/tiny_llama.py" "$work/llama" >/dev/null
cat >"$work/bench.peft" <<EOF
model m = local("$work/llama/model")

dataset d = jsonl("$work/llama/data.jsonl") {
  text = field("text")
  max_len = 128
  split = { train = 95%, eval = 5%, seed = 1 }
}

adapter a = lora {
  r = 16
  alpha = 32
  dropout = 0.0
  targets = all_linear
}

train t {
  model = m
  adapters = [a]
  data = d.train
  max_steps = 12
  batch = 8
  lr = 0.0001
  schedule = constant
  optimizer = adamw { weight_decay = 0.0 }
  seed = 1
}
EOF

median() {
  python3 - "$1" <<'EOF'
import json, pathlib, statistics, sys
f = next(pathlib.Path(sys.argv[1]).rglob("metrics.jsonl"))
steps = [json.loads(l)["step_s"] for l in f.read_text().splitlines() if l.strip()]
print(f"{statistics.median(steps[2:]):.4f}")
EOF
}

for i in $(seq "$rounds"); do
  if ((i % 2)); then ca=0 cb=1; else ca=1 cb=0; fi
  for side in A B; do
    rm -rf "$work/$side" && mkdir "$work/$side" && cp "$work/bench.peft" "$work/$side/"
  done
  (cd "$work/A" && RAYON_NUM_THREADS=1 taskset -c $ca "$a" run bench.peft >run.log 2>&1) &
  (cd "$work/B" && RAYON_NUM_THREADS=1 taskset -c $cb "$b" run bench.peft >run.log 2>&1) &
  wait
  ma=$(median "$work/A")
  mb=$(median "$work/B")
  python3 -c "print('round $i: A $ma s (core $ca), B $mb s (core $cb), B / A %.3f' % ($mb / $ma))"
done
