//! The plan: a DAG of [`Stage`]s with content keys, and why each stage is cached or will run.
//!
//! A caller (the compiler from a checked program, or a test) builds [`Stage`]s with a canonical
//! config, slot-named inputs and file inputs, and assembles them into a [`Plan`], which checks ids
//! and finds a topological order. [`StageKey`] is the explicit, serialisable record hashed into a
//! stage's content key; [`PlanStatus`] says, per stage, cached or to run and why, and the
//! [`render`] functions print it as text, JSON or Graphviz dot.
//!
//! This module never runs anything and never touches the cache: `exec` computes the status.

mod canonical;
pub mod configs;
mod dag;
mod digest;
mod error;
mod key;
pub mod lower;
pub mod render;
mod stage;
mod status;

pub use canonical::{canonical, config_diff};
pub use dag::Plan;
pub use digest::Digest;
pub use error::PlanError;
pub use key::{StageKey, KEY_SCHEMA};
pub use stage::{Stage, StageId};
pub use status::{PlanStatus, Reason, StageState, StageStatus};
