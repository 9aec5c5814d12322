//! Inference without a gradient graph, as `torch.no_grad()`: inside [`no_grad`] the trainable
//! parameters (`Var`s of adapters and `modules_to_save` copies) enter the forward pass detached,
//! so candle records no graph and every intermediate activation is freed as soon as it is used.
//! Outside it (training, gradient tests) parameters are tracked as usual. Per thread; nests.
//! Must not change any value, only whether a graph is kept.

use candle_core::{Tensor, Var};
use std::cell::Cell;

thread_local! {
    static NO_GRAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with gradient tracking of parameters off on this thread.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            NO_GRAD.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(NO_GRAD.with(|c| c.replace(true)));
    f()
}

/// Whether this thread is inside [`no_grad`].
pub fn is_no_grad() -> bool {
    NO_GRAD.with(Cell::get)
}

/// A parameter as the forward pass should see it: detached inside [`no_grad`].
pub fn param(v: &Var) -> Tensor {
    if is_no_grad() {
        v.as_tensor().detach()
    } else {
        v.as_tensor().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn no_grad_detaches_parameters_and_restores_after() -> candle_core::Result<()> {
        let v = Var::new(&[1f32, 2.0], &Device::Cpu)?;
        let tracked = (param(&v) * 3.0)?.sum_all()?;
        assert!(tracked.backward()?.get(v.as_tensor()).is_some());
        let detached = no_grad(|| (param(&v) * 3.0)?.sum_all())?;
        assert!(detached.backward()?.get(v.as_tensor()).is_none());
        assert_eq!(detached.to_scalar::<f32>()?, tracked.to_scalar::<f32>()?);
        assert!(!is_no_grad());
        no_grad(|| no_grad(|| ()));
        assert!(!is_no_grad());
        Ok(())
    }
}
