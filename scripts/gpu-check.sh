#!/usr/bin/env bash
# The GPU check in one script, in two halves.
#
#   bash scripts/gpu-check.sh prepare   # here (no GPU needed): installs the CUDA toolkit wheels,
#                                       # builds the release binary with --features cuda, and
#                                       # collects what travels into target/gpu-carry/ (the
#                                       # binary xz-compressed, the Python wheels for the PyTorch side)
#   bash scripts/gpu-check.sh run       # on the GPU machine, from a checkout with
#                                       # target/gpu-carry/ beside it: the parity checks and the
#                                       # bench, written to benches/results/gpu-YYYY-MM-DD.txt
#                                       # (and to $OUT when that is set)
#   bash scripts/gpu-check.sh dry-run   # here: the run half on the CPU with the default build
#                                       # (every comparison CPU against CPU, a one-layer bench)
#
# What `run` does, all in `peftc gpu-check` (src/cli/gpu_check.rs) and benches/gpu_vs_torch.py:
#   - dequantization on the GPU against the CPU, bit for bit: NF4 (double quant and f32 scales),
#     int8 (peftc's kernels), Q4_K (candle's kernel), f32 and bf16;
#   - logits of every decoder fixture (llama, mistral, qwen2, gpt2) on the GPU against the CPU:
#     f32 within 1e-4, bf16 within 2 % of the largest logit;
#   - one LoRA SGD step on the GPU against the CPU: loss and adapter weights within 1e-4;
#   - the bench: LoRA (bf16) and QLoRA (NF4 + double quant, bf16 compute) training on a random
#     llama of TinyLlama-1.1B's shape, seq 1024, against transformers + PEFT (+ bitsandbytes) on
#     the same folder and shapes: tokens/s and peak device memory side by side.
#
# Env (run): PEFTC_GPU_BATCH (8), PEFTC_GPU_SEQ (1024), PEFTC_GPU_STEPS (10), PEFTC_GPU_LAYERS
# (22), PEFTC_GPU_PYTHON (python3: the one with PyTorch), PEFTC_GPU_WORK (a scratch folder,
# default /tmp/peftc-gpu-check).
# Env (prepare): PEFTC_GPU_PYVER (the GPU machine's Python, default this machine's python3), the
# variables of scripts/install-cuda-toolkit.sh (CUDA_COMPUTE_CAP: 90).
set -euo pipefail
cd "$(dirname "$0")/.."
carry=target/gpu-carry
mode="${1:-}"

prepare() {
  local start
  start=$(date +%s)
  eval "$(bash scripts/install-cuda-toolkit.sh)"
  CARGO_TARGET_DIR=target/cuda cargo build --release --locked --features cuda
  echo "== cuda build: $(($(date +%s) - start)) s"
  rm -rf "$carry"
  mkdir -p "$carry/wheels"
  xz -9 -c target/cuda/release/peftc > "$carry/peftc.xz"
  # The PyTorch side's packages without PyTorch's own (the GPU machine has PyTorch).
  local py pyver
  py="${PEFTC_CUDA_TOOLKIT_DIR:-target/cuda-toolkit}/venv/bin/python"
  pyver="${PEFTC_GPU_PYVER:-$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}"
  "$py" -m pip install --quiet --disable-pip-version-check --dry-run --ignore-installed \
    --python-version "$pyver" --only-binary=:all: --target /tmp/peftc-gpu-dry \
    --report "$carry/resolve.json" \
    transformers==5.25.0 peft==0.21.2 accelerate==1.16.0 bitsandbytes==0.50.2
  "$py" - "$carry/resolve.json" > "$carry/wheels.txt" <<'EOF'
import json, re, sys
# PyTorch and its own dependencies are on the GPU machine; so is numpy (16 MiB, beside PyTorch);
# hf-xet only downloads from the Hub.
skip = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*|sympy|mpmath|networkx|jinja2|markupsafe|"
                  r"setuptools|filelock|fsspec|typing-extensions|numpy|hf-xet)$", re.I)
for i in json.load(open(sys.argv[1]))["install"]:
    m = i["metadata"]
    if not skip.match(m["name"].replace("_", "-")):
        print(f'{m["name"]}=={m["version"]}')
EOF
  "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$pyver" -d "$carry/wheels" -r "$carry/wheels.txt"
  # bitsandbytes ships one library per CUDA / ROCm version: keep the CUDA 13.0 one (the GPU
  # machines' driver) and the CPU one.
  "$py" - "$carry/wheels" <<'EOF'
import glob, os, re, sys, zipfile
for whl in glob.glob(os.path.join(sys.argv[1], "bitsandbytes-*.whl")):
    tmp = whl + ".tmp"
    with zipfile.ZipFile(whl) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if re.search(r"libbitsandbytes_(?!cuda130\.|cpu\.)", item.filename):
                continue
            data = src.read(item.filename)
            if item.filename.endswith("RECORD"):
                data = b"\n".join(l for l in data.split(b"\n")
                                  if not re.search(rb"libbitsandbytes_(?!cuda130\.|cpu\.)", l))
            dst.writestr(item, data)
    os.replace(tmp, whl)
EOF
  rm -f "$carry/resolve.json"
  echo "== what travels (limit 64 MiB):"
  du -b "$carry/peftc.xz" "$carry"/wheels/*.whl | sort -n | awk '{printf "  %8.1f MiB  %s\n", $1/1048576, $2}'
  du -sb "$carry" | awk '{printf "  %8.1f MiB  in all\n", $1/1048576}'
}

run_checks() {
  local bin="$1" device="$2" out_file="$3" layers="$4" batch="$5" seq="$6" steps="$7"
  local work="${PEFTC_GPU_WORK:-/tmp/peftc-gpu-check}"
  mkdir -p "$work" "$(dirname "$out_file")"
  {
    echo "# peftc gpu-check, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "# device $device; $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
    echo "# bench: layers $layers, batch $batch, seq $seq, $steps timed steps after 2 warm-up"
  } > "$out_file"
  local status=0
  "$bin" gpu-check --device "$device" --fixtures tests/fixtures/parity --bench "$work/model" \
    --layers "$layers" --batch "$batch" --seq "$seq" --steps "$steps" 2>&1 | tee -a "$out_file" || status=1
  if [ "$device" != cpu ]; then
    local py="${PEFTC_GPU_PYTHON:-python3}"
    if [ -d "$carry/wheels" ] && [ ! -x "$work/venv/bin/python" ]; then
      "$py" -m venv --system-site-packages "$work/venv"
      "$work/venv/bin/python" -m pip install --quiet --no-index --no-deps "$carry"/wheels/*.whl || true
    fi
    [ -x "$work/venv/bin/python" ] && py="$work/venv/bin/python"
    "$py" benches/gpu_vs_torch.py --model "$work/model" --batch "$batch" --seq "$seq" \
      --steps "$steps" 2>&1 | tee -a "$out_file" || status=1
  fi
  echo "== written to $out_file"
  return $status
}

case "$mode" in
  prepare)
    prepare
    ;;
  run)
    bin="$PWD/$carry/peftc"
    if [ ! -x "$bin" ]; then
      "${PEFTC_GPU_PYTHON:-python3}" -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$carry/peftc.xz" "$bin"
      chmod +x "$bin"
    fi
    # The CUDA libraries the binary links (cudart, cuBLAS, cuRAND, NVRTC): PyTorch's wheels
    # carry them on the GPU machine.
    for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
      dir="$(find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o -name "$lib" -print -quit \
        2>/dev/null | xargs -r dirname)"
      [ -n "$dir" ] && export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
    out_file="benches/results/gpu-$(date -u +%Y-%m-%d).txt"
    status=0
    run_checks "$bin" cuda:0 "$out_file" "${PEFTC_GPU_LAYERS:-22}" "${PEFTC_GPU_BATCH:-8}" \
      "${PEFTC_GPU_SEQ:-1024}" "${PEFTC_GPU_STEPS:-10}" || status=1
    if [ -n "${OUT:-}" ]; then cp "$out_file" "$OUT/"; fi
    exit $status
    ;;
  dry-run)
    cargo build --locked
    run_checks target/debug/peftc cpu target/gpu-dry-run.txt 1 1 64 1
    ;;
  *)
    echo "usage: scripts/gpu-check.sh prepare | run | dry-run" >&2
    exit 2
    ;;
esac
