#!/usr/bin/env bash
# Installs the pieces of the CUDA 13.0 toolkit that `cargo build --features cuda` needs at build
# time (nvcc, headers, the libraries to link against) from NVIDIA's PyPI wheels into a venv, lays
# them out like a toolkit and prints the environment for the build, to `eval`:
#
#   eval "$(bash scripts/install-cuda-toolkit.sh)"
#   CARGO_TARGET_DIR=target/cuda cargo build --release --features cuda
#
# It needs no GPU and no driver: the driver library (`libcuda.so`) is not in any wheel, so the
# script builds a link-time stub from the names cudarc declares. The stub only satisfies the
# linker; a binary built this way loads the real `libcuda.so.1` of the machine it runs on.
#
# Environment:
#   PEFTC_CUDA_TOOLKIT_DIR  where to install (default: target/cuda-toolkit of this checkout)
#   PEFTC_CUDA_PYTHON       the Python that creates the venv (default: python3)
#   CUDA_COMPUTE_CAP        the GPU generation candle's kernels are compiled for (default 90:
#                           H100/H200). Pick your card's compute capability without the dot:
#                           80 A100, 86 RTX 30xx / A10, 89 RTX 40xx / L4 / L40, 90 H100/H200,
#                           100 B200, 120 RTX 50xx (`nvidia-smi --query-gpu=compute_cap
#                           --format=csv` prints it on the GPU machine).
#
# Idempotent: a second run reuses the venv, the links and the stub and only prints the
# environment. Offline except PyPI. Does not touch anything outside its install folder.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
dir="${PEFTC_CUDA_TOOLKIT_DIR:-$root/target/cuda-toolkit}"
py="${PEFTC_CUDA_PYTHON:-python3}"
cap="${CUDA_COMPUTE_CAP:-90}"
log() { echo "$*" >&2; }

# The CUDA 13.0 wheels (the cu12 nvcc wheels carry no nvcc); 13.0 matches the GPU machines'
# driver: a newer nvcc writes PTX a 13.0 driver refuses.
wheels=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
)
stamp="$dir/.installed-$(printf '%s\n' "${wheels[@]}" | sha256sum | cut -c1-16)"

mkdir -p "$dir"
if [ ! -x "$dir/venv/bin/python" ]; then
  log "== creating the venv $dir/venv"
  "$py" -m venv "$dir/venv"
fi
if [ ! -f "$stamp" ]; then
  log "== installing the CUDA 13.0 wheels (about 1.2 GB)"
  "$dir/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${wheels[@]}" >&2
  touch "$stamp"
fi

cu13="$("$dir/venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
[ -x "$cu13/bin/nvcc" ] || { log "no nvcc under $cu13/bin: the wheels did not install a toolkit"; exit 1; }

# A folder laid out like a toolkit: bin, include, nvvm point into the wheels; lib64 holds the
# unversioned names the linker looks for.
tk="$dir/cuda"
mkdir -p "$tk/lib64/stubs"
for sub in bin include nvvm; do
  ln -sfn "$cu13/$sub" "$tk/$sub"
done
for lib in "$cu13"/lib/lib*.so.*; do
  base="$(basename "$lib")"
  ln -sfn "$lib" "$tk/lib64/$base"
  ln -sfn "$lib" "$tk/lib64/${base%%.so.*}.so"
done

# The libcuda link stub: one function per `cu*` name that cudarc's driver bindings declare, each
# returning CUDA_ERROR_NO_DEVICE (100). Linking needs it; at run time it stands for a driver on a
# machine without a GPU (the CI test of the "no GPU" message puts it on LD_LIBRARY_PATH as
# libcuda.so.1); on a GPU machine the real driver is loaded instead.
stub="$tk/lib64/stubs/libcuda.so"
if [ ! -f "$stub" ] || ! grep -q 'return 100;' "$tk/lib64/stubs/libcuda.c" 2>/dev/null; then
  cudarc_src="$(cargo metadata --format-version 1 --locked --features cuda 2>/dev/null |
    "$dir/venv/bin/python" -c 'import json,sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"] == "cudarc").rsplit("/", 1)[0])')"
  sys_rs="$cudarc_src/src/driver/sys/mod.rs"
  [ -f "$sys_rs" ] || { log "cudarc's driver bindings not found at $sys_rs (run cargo fetch)"; exit 1; }
  names="$(grep -oE 'pub (unsafe )?fn cu[A-Za-z0-9_]+' "$sys_rs" | awk '{print $NF}' | sort -u)"
  log "== building the libcuda link stub ($(echo "$names" | wc -l) names from $sys_rs)"
  echo "$names" | awk '{print "int " $1 "(void) { return 100; }"}' > "$tk/lib64/stubs/libcuda.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub" "$tk/lib64/stubs/libcuda.c"
fi
ln -sfn libcuda.so "$tk/lib64/stubs/libcuda.so.1"

log "== CUDA toolkit ready at $tk (nvcc $("$tk/bin/nvcc" --version | grep -oE 'release [0-9.]+' | cut -d' ' -f2)), compute capability $cap"
cat <<EOF
export CUDA_HOME="$tk"
export CUDA_PATH="$tk"
export CUDA_ROOT="$tk"
export PATH="$tk/bin:\$PATH"
export LIBRARY_PATH="$tk/lib64:$tk/lib64/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export CUDA_COMPUTE_CAP="$cap"
EOF
