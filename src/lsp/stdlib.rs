//! The stdlib modules as the editor offers them after `use std.` (the same embedded files the
//! checker loads; `check::load::STDLIB` is private to the checker).

/// `(module, text)` of each stdlib module.
pub const MODULES: &[(&str, &str)] = &[
    ("recipes", include_str!("../../stdlib/recipes.peft")),
    ("templates", include_str!("../../stdlib/templates.peft")),
    ("models", include_str!("../../stdlib/models.peft")),
];

/// The text of `std.NAME` (given as `NAME`).
pub fn text(module: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == module).map(|(_, t)| *t)
}
