//! Tests of `peftc lsp`: the real binary over JSON-RPC, and a real editor (Neovim).
mod client;
mod nvim;
mod protocol;
mod robust;
