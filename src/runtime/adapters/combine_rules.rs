//! Which adapter kinds can be active together or combined into one: the rule the runtime
//! ([`super::combine::add_weighted_adapter`], the adapters stage) and `peftc check` share. Pure:
//! it looks at kinds only and must not depend on candle.

/// The kind of one adapter, as far as combining goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartKind {
    /// LoRA; `dora` when it has a magnitude vector.
    Lora { dora: bool },
    /// A bottleneck adapter in the residual stream.
    Bottleneck,
}

/// How adapters are put together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Together {
    /// Active at once, deltas added.
    Stack,
    /// A weighted combination into one new adapter (PEFT's `add_weighted_adapter`).
    Weighted,
}

/// Why `parts` cannot be put together `how`, or `Ok`.
pub fn can_combine(parts: &[PartKind], how: Together) -> Result<(), &'static str> {
    let bottlenecks = parts.iter().filter(|p| **p == PartKind::Bottleneck).count();
    match how {
        Together::Weighted if bottlenecks > 0 => {
            Err("bottleneck adapters cannot be combined with weights (only LoRA adapters can)")
        }
        Together::Weighted if parts.contains(&PartKind::Lora { dora: true }) => {
            Err("DoRA adapters cannot be combined with weights")
        }
        Together::Stack if bottlenecks > 1 => {
            Err("only one bottleneck adapter can be active at a time")
        }
        _ => Ok(()),
    }
}
