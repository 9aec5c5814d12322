//! Renderers for `peftc plan`: [`text`] for people, [`json`] for tools (`--format json`) and
//! [`dot`] for Graphviz (`--dot`). They only format a [`Plan`] with its [`PlanStatus`].
//!
//! [`Plan`]: super::Plan
//! [`PlanStatus`]: super::PlanStatus

mod dot;
mod json;
mod text;

pub use dot::dot;
pub use json::{json, JSON_FORMAT_VERSION};
pub use text::text;
