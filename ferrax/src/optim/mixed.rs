//! Mixed-precision training: f32 master weights, the forward and backward
//! passes in bf16 or f16, and for f16 dynamic loss scaling (PyTorch's
//! `GradScaler`), as pure functions over trees — so a whole step runs under
//! `jit` and inside `scan`.
//!
//! ```
//! use ferrax::prelude::*;
//! use ferrax::optim::{Adam, MixedPrecision, Optimizer};
//!
//! let x = Tensor::randn(&[32, 4], DType::F32, 0);
//! let y = x.sum_axes(&[1], true);
//! let loss = |w: &Tensor| (x.to_dtype(w.dtype()).matmul(w).to_dtype(DType::F32) - &y).square().mean();
//! let mixed = MixedPrecision::f16();
//! let opt = Adam::new(1e-2);
//! let (mut w, mut state, mut scale) = (Tensor::zeros(&[4, 1], DType::F32), opt.init(&Tensor::zeros(&[4, 1], DType::F32)), mixed.init());
//! for _ in 0..400 {
//!     let step = mixed.step(&opt, loss, &w, &state, &scale);
//!     (w, state, scale) = (step.params, step.state, step.scale);
//! }
//! assert_eq!(w.dtype(), DType::F32);
//! // The master weights reach what f16 alone could not hold: the loss
//! // falls to about 2e-7.
//! assert!(loss(&w).item() < 1e-5);
//! ```

use crate::array::DType;
use crate::core::Tensor;
use crate::prims::where_;
use crate::transforms::value_and_grad;
use crate::Tree;

use super::Optimizer;

/// A tree with its float leaves converted to `dtype` (integer and bool
/// leaves as they are).
pub fn cast<T: Tree>(tree: &T, dtype: DType) -> T {
    tree.with_leaves(
        tree.leaves().iter().map(|t| if t.dtype().is_float() { t.to_dtype(dtype) } else { t.clone() }).collect(),
    )
}

/// The state of dynamic loss scaling: the scale the loss is multiplied by
/// before the backward pass, and the steps since it last changed.
#[derive(Clone, Debug, crate::Tree)]
pub struct LossScale {
    /// The factor, an f32 scalar.
    pub scale: Tensor,
    /// Consecutive steps with finite gradients, an i64 scalar.
    pub good_steps: Tensor,
}

/// How a mixed-precision step computes: in `compute`, with the loss
/// scaled by a factor that halves (`backoff`) when a step's gradients
/// overflow — the step is then skipped — and doubles (`growth`) after
/// `growth_interval` steps without overflow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixedPrecision {
    /// The dtype of the forward and backward passes (bf16 or f16).
    pub compute: DType,
    /// The first scale.
    pub init_scale: f64,
    /// The scale's factor after `growth_interval` good steps (1: fixed).
    pub growth: f64,
    /// The scale's factor after an overflow.
    pub backoff: f64,
    /// Good steps before the scale grows.
    pub growth_interval: i64,
}

impl MixedPrecision {
    /// bf16 compute. bf16 has f32's range, so the loss is not scaled (as
    /// PyTorch's autocast with bf16 needs no `GradScaler`); a step whose
    /// gradients are not finite is still skipped.
    pub fn bf16() -> MixedPrecision {
        MixedPrecision { compute: DType::BF16, init_scale: 1.0, growth: 1.0, backoff: 1.0, growth_interval: i64::MAX }
    }

    /// f16 compute with PyTorch's `GradScaler` defaults: the scale starts at
    /// 2¹⁶, halves on overflow and doubles after 2000 good steps. f16's
    /// largest value is 65504 and its smallest normal 6.1e-5, so small
    /// gradients would flush to zero unscaled. (When the loss itself is an
    /// f16 value, 2¹⁶ overflows in its own backward pass: the first step
    /// is skipped and the scale backs off to 2¹⁵, as PyTorch's does.)
    pub fn f16() -> MixedPrecision {
        MixedPrecision { compute: DType::F16, init_scale: 65536.0, growth: 2.0, backoff: 0.5, growth_interval: 2000 }
    }

    /// The scaling state before the first step.
    pub fn init(&self) -> LossScale {
        LossScale { scale: Tensor::full(&[], self.init_scale, DType::F32), good_steps: Tensor::scalar(0i64) }
    }

    /// The loss (f32) and the gradients with respect to f32 `params`,
    /// computed by running `loss` on `params` cast to the compute dtype
    /// with the loss multiplied by the scale, and unscaled in f32; and
    /// whether every gradient is finite (a bool scalar).
    ///
    /// `loss` receives the parameters in the compute dtype; convert its
    /// inputs to that dtype, and keep what needs the range or precision
    /// (a softmax and its cross-entropy) in f32 by converting the logits,
    /// as PyTorch's autocast does.
    pub fn value_and_grad<P: Tree>(
        &self,
        loss: impl Fn(&P) -> Tensor,
        params: &P,
        scale: &LossScale,
    ) -> (Tensor, P, Tensor) {
        let scaled = |p: &P| loss(p).to_dtype(DType::F32) * &scale.scale;
        let (value, grads) = value_and_grad(scaled)(&cast(params, self.compute));
        let inverse = scale.scale.recip();
        let grads: Vec<Tensor> = grads.leaves().iter().map(|g| g.to_dtype(DType::F32) * &inverse).collect();
        // NaN fails every comparison, so `max |g| < ∞` is false for NaN and ∞ alike.
        let finite = grads
            .iter()
            .map(|g| g.abs().max().lt(&Tensor::full(&[], f64::INFINITY, DType::F32)))
            .reduce(|a, b| a.logical_and(&b))
            .unwrap_or_else(|| Tensor::scalar(true));
        (value * inverse, params.with_leaves(grads), finite)
    }

    /// The scaling state after a step whose gradients were `finite` or not.
    pub fn update_scale(&self, s: &LossScale, finite: &Tensor) -> LossScale {
        let good = &s.good_steps + 1;
        let grow = good.ge(&Tensor::scalar(self.growth_interval));
        let scale_if_finite = where_(&grow, &(&s.scale * self.growth), &s.scale);
        LossScale {
            scale: where_(finite, &scale_if_finite, &(&s.scale * self.backoff)),
            good_steps: where_(finite, &where_(&grow, &Tensor::scalar(0i64), &good), &Tensor::scalar(0i64)),
        }
    }

    /// One optimiser step in mixed precision: the gradients as
    /// [`MixedPrecision::value_and_grad`] gives them, the update in f32, and
    /// the parameters and optimiser state left as they were when the
    /// gradients overflowed.
    pub fn step<P: Tree, O: Optimizer>(
        &self,
        opt: &O,
        loss: impl Fn(&P) -> Tensor,
        params: &P,
        state: &O::State<P>,
        scale: &LossScale,
    ) -> MixedStep<P, O::State<P>> {
        let (loss, grads, finite) = self.value_and_grad(loss, params, scale);
        let (new_params, new_state) = opt.update(params, &grads, state);
        let keep = |new: Vec<Tensor>, old: Vec<Tensor>| -> Vec<Tensor> {
            new.iter().zip(&old).map(|(n, o)| where_(&finite, n, o)).collect()
        };
        MixedStep {
            params: params.with_leaves(keep(new_params.leaves(), params.leaves())),
            state: state.with_leaves(keep(new_state.leaves(), state.leaves())),
            scale: self.update_scale(scale, &finite),
            loss,
            finite,
        }
    }
}

/// What [`MixedPrecision::step`] returns.
#[derive(Clone, Debug)]
pub struct MixedStep<P, S> {
    /// The parameters after the step (f32; unchanged if it was skipped).
    pub params: P,
    /// The optimiser state after the step.
    pub state: S,
    /// The scaling state for the next step.
    pub scale: LossScale,
    /// The loss before the step, unscaled, in f32.
    pub loss: Tensor,
    /// Whether the gradients were finite (the step was taken), a bool scalar.
    pub finite: Tensor,
}
