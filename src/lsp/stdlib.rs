//! The stdlib modules as the editor offers them after `use std.`: the same embedded files the
//! checker loads ([`crate::check::STDLIB`]), named without the `std.` prefix.

/// `(module, text)` of each stdlib module, e.g. `("recipes", "...")`.
pub fn modules() -> impl Iterator<Item = (&'static str, &'static str)> {
    crate::check::STDLIB
        .iter()
        .map(|(name, text)| (name.strip_prefix("std.").unwrap_or(name), *text))
}

/// The text of `std.NAME` (given as `NAME`).
pub fn text(module: &str) -> Option<&'static str> {
    modules().find(|(n, _)| *n == module).map(|(_, t)| t)
}
