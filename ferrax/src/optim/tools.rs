//! What a training loop needs around an optimiser: learning-rate
//! schedules, gradient clipping, decoupled weight decay with a mask, an
//! exponential moving average of the parameters, and gradient accumulation.
//! Every function is pure over [`Tree`]s, like the optimisers.
//!
//! ```
//! use ferrax::prelude::*;
//! use ferrax::optim::{clip_grad_norm, Adam, Optimizer, Schedule};
//!
//! let schedule = Schedule::cosine(0.1, 10, 100);
//! let mut params = Tensor::from_vec(vec![3.0, -2.0], &[2]);
//! let mut state = Adam::new(0.0).init(&params);
//! for step in 0..100 {
//!     let g = grad(|p: &Tensor| p.square().sum())(&params);
//!     let (g, _norm) = clip_grad_norm(&g, 1.0);
//!     (params, state) = Adam::new(schedule.at(step)).update(&params, &g, &state);
//! }
//! assert!(params.abs().max().item() < 0.5);
//! ```

use std::f64::consts::PI;

use crate::core::Tensor;
use crate::Tree;

/// A learning rate as a function of the step (counted from 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The same rate throughout.
    Constant(f64),
    /// `lr · gamma^(step / every)` (PyTorch's `StepLR`).
    Step {
        /// The initial rate.
        lr: f64,
        /// Steps between decays.
        every: usize,
        /// The factor at each decay.
        gamma: f64,
    },
    /// A linear warm-up from 0 to `peak` over `warmup` steps, then a cosine
    /// decay to `floor` at `total` steps (and `floor` after).
    Cosine {
        /// The rate after warm-up.
        peak: f64,
        /// Warm-up steps.
        warmup: usize,
        /// The step at which the decay ends.
        total: usize,
        /// The final rate.
        floor: f64,
    },
    /// The one-cycle policy (Smith, 2018) as PyTorch's `OneCycleLR` with
    /// cosine annealing: from `peak / 25` up to `peak` over the first
    /// `pct_start` of `total` steps, then down to `peak / 25 / 1e4`.
    OneCycle {
        /// The largest rate.
        peak: f64,
        /// The length of the cycle.
        total: usize,
        /// The fraction of the cycle spent rising (PyTorch's default 0.3).
        pct_start: f64,
    },
}

impl Schedule {
    /// Warm-up then cosine decay to zero.
    pub fn cosine(peak: f64, warmup: usize, total: usize) -> Schedule {
        Schedule::Cosine { peak, warmup, total, floor: 0.0 }
    }

    /// The one-cycle policy with PyTorch's default rise of 30%.
    pub fn one_cycle(peak: f64, total: usize) -> Schedule {
        Schedule::OneCycle { peak, total, pct_start: 0.3 }
    }

    /// The rate at `step`.
    ///
    /// ```
    /// # use ferrax::optim::Schedule;
    /// let s = Schedule::cosine(1.0, 10, 110);
    /// assert_eq!(s.at(0), 0.0);
    /// assert_eq!(s.at(10), 1.0);
    /// assert!((s.at(60) - 0.5).abs() < 1e-12);
    /// assert_eq!(s.at(500), 0.0);
    /// ```
    pub fn at(&self, step: usize) -> f64 {
        // cos annealing from `a` to `b` at fraction `t` of the way.
        let anneal = |a: f64, b: f64, t: f64| b + (a - b) * 0.5 * (1.0 + (PI * t.clamp(0.0, 1.0)).cos());
        match *self {
            Schedule::Constant(lr) => lr,
            Schedule::Step { lr, every, gamma } => lr * gamma.powi((step / every.max(1)) as i32),
            Schedule::Cosine { peak, warmup, total, floor } => {
                if step < warmup {
                    peak * step as f64 / warmup as f64
                } else if total <= warmup {
                    floor
                } else {
                    anneal(peak, floor, (step - warmup) as f64 / (total - warmup) as f64)
                }
            }
            Schedule::OneCycle { peak, total, pct_start } => {
                let (start, end) = (peak / 25.0, peak / 25.0 / 1e4);
                // PyTorch's phase ends: the rise ends at step pct·total − 1, the fall at total − 1.
                let up = (pct_start * total as f64 - 1.0).max(0.0);
                let last = (total as f64 - 1.0).max(up + 1.0);
                let s = step as f64;
                if s <= up {
                    anneal(start, peak, if up == 0.0 { 1.0 } else { s / up })
                } else {
                    anneal(peak, end, (s - up) / (last - up))
                }
            }
        }
    }
}

/// The gradients scaled so that their global 2-norm (over every leaf) is
/// at most `max_norm`, and that norm before clipping (PyTorch's
/// `clip_grad_norm_`, which scales by `max_norm / (norm + 1e-6)`).
///
/// # Panics
/// When `max_norm` is negative or NaN.
#[track_caller]
pub fn clip_grad_norm<P: Tree>(grads: &P, max_norm: f64) -> (P, f64) {
    assert!(max_norm >= 0.0, "clip_grad_norm: max_norm must be >= 0, got {max_norm}");
    let norm =
        grads.leaves().iter().map(|g| g.to_dtype(crate::array::DType::F64).square().sum().item()).sum::<f64>().sqrt();
    let scale = max_norm / (norm + 1e-6);
    if scale >= 1.0 {
        return (grads.map_leaves(Tensor::clone), norm);
    }
    (grads.map_leaves(|g| g * scale), norm)
}

/// Every gradient element clamped to `[-limit, limit]` (PyTorch's `clip_grad_value_`).
///
/// # Panics
/// When `limit` is negative or NaN.
#[track_caller]
pub fn clip_grad_value<P: Tree>(grads: &P, limit: f64) -> P {
    assert!(limit >= 0.0, "clip_grad_value: limit must be >= 0, got {limit}");
    grads.map_leaves(|g| g.clamp(-limit, limit))
}

/// Which leaves weight decay applies to by the usual rule: matrices and
/// kernels (rank ≥ 2) decay; biases, norms' scales and shifts (rank ≤ 1) do not.
pub fn decay_mask<P: Tree>(params: &P) -> Vec<bool> {
    params.leaves().iter().map(|p| p.rank() >= 2).collect()
}

/// Decoupled weight decay (AdamW's): each leaf where `mask` is true shrunk
/// by `p ← p (1 − lr · lambda)`; apply it beside an optimiser without decay.
///
/// # Panics
/// When the mask does not have one entry per leaf.
#[track_caller]
pub fn decay_weights<P: Tree>(params: &P, lr: f64, lambda: f64, mask: &[bool]) -> P {
    let leaves = params.leaves();
    assert_eq!(leaves.len(), mask.len(), "decay_weights: {} leaves but a mask of {}", leaves.len(), mask.len());
    let factor = 1.0 - lr * lambda;
    params.with_leaves(leaves.iter().zip(mask).map(|(p, &m)| if m { p * factor } else { p.clone() }).collect())
}

/// An exponential moving average of the parameters: `avg ← d·avg + (1−d)·params`.
///
/// # Panics
/// When the trees differ in structure.
#[track_caller]
pub fn ema_update<P: Tree>(avg: &P, params: &P, decay: f64) -> P {
    let (a, p) = (avg.leaves(), params.leaves());
    assert_eq!(a.len(), p.len(), "ema_update: {} leaves in the average but {} in the parameters", a.len(), p.len());
    avg.with_leaves(a.iter().zip(&p).map(|(a, p)| a * decay + p * (1.0 - decay)).collect())
}

/// Gradients summed over micro-batches, for an update as of one large
/// batch: `add` each micro-batch's gradient, then `mean` divides by their count.
#[derive(Clone, Debug, Default)]
pub struct Accumulator<P> {
    sum: Option<P>,
    count: usize,
}

impl<P: Tree> Accumulator<P> {
    /// Nothing accumulated.
    pub fn new() -> Accumulator<P> {
        Accumulator { sum: None, count: 0 }
    }

    /// Adds one micro-batch's gradient.
    pub fn add(&mut self, grads: &P) {
        self.sum = Some(match self.sum.take() {
            None => grads.map_leaves(Tensor::clone),
            Some(s) => {
                let leaves = s.leaves().iter().zip(grads.leaves()).map(|(a, b)| a + b).collect();
                s.with_leaves(leaves)
            }
        });
        self.count += 1;
    }

    /// The number of gradients added.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The mean of the gradients added (`None` before the first), and a
    /// fresh accumulator.
    pub fn mean(&mut self) -> Option<P> {
        let n = self.count as f64;
        self.count = 0;
        self.sum.take().map(|s| s.map_leaves(|g| g / n))
    }
}
