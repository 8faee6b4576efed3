//! Optimisers over any [`Tree`] of parameters: SGD with momentum and
//! weight decay, Adam and AdamW. Each is a pure update `(params, grads,
//! state) -> (params, state)`; the state is itself a tree, so it can be
//! checkpointed with [`crate::io::save_safetensors`] next to the parameters.
//!
//! ```
//! use ferrax::prelude::*;
//! use ferrax::optim::{Adam, Optimizer};
//!
//! let opt = Adam::new(0.1);
//! let mut params = Tensor::from_vec(vec![3.0, -2.0], &[2]);
//! let mut state = opt.init(&params);
//! for _ in 0..200 {
//!     let g = grad(|p: &Tensor| p.square().sum())(&params);
//!     (params, state) = opt.update(&params, &g, &state);
//! }
//! assert!(params.abs().max().item() < 1e-2);
//! ```

mod fused;
mod mixed;
mod tools;

pub use mixed::{cast, LossScale, MixedPrecision, MixedStep};
pub use tools::{clip_grad_norm, clip_grad_value, decay_mask, decay_weights, ema_update, Accumulator, Schedule};

use crate::core::Tensor;
use crate::Tree;

/// An optimiser: how parameters move given their gradients.
pub trait Optimizer {
    /// What it remembers between steps, with the structure of the parameters.
    type State<P: Tree>: Tree;

    /// The state before the first step.
    fn init<P: Tree>(&self, params: &P) -> Self::State<P>;

    /// One step: new parameters and state.
    fn update<P: Tree>(&self, params: &P, grads: &P, state: &Self::State<P>) -> (P, Self::State<P>);
}

/// Pairs up the leaves of two trees of one structure.
#[track_caller]
fn zip_leaves(params: &impl Tree, grads: &impl Tree) -> (Vec<Tensor>, Vec<Tensor>) {
    let (p, g) = (params.leaves(), grads.leaves());
    assert!(p.len() == g.len(), "optimizer: {} parameter leaves but {} gradient leaves", p.len(), g.len());
    (p, g)
}

/// Stochastic gradient descent as PyTorch defines it:
/// `g ← g + λ p; v ← μ v + g; p ← p − η (g + μ v if nesterov else v)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate η.
    pub lr: f64,
    /// Momentum μ (0: plain SGD).
    pub momentum: f64,
    /// L2 weight decay λ, added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Sgd {
        Sgd { lr, momentum: 0.0, weight_decay: 0.0, nesterov: false }
    }

    /// With momentum `mu`.
    pub fn momentum(self, mu: f64) -> Sgd {
        Sgd { momentum: mu, ..self }
    }

    /// With L2 weight decay `lambda`.
    pub fn weight_decay(self, lambda: f64) -> Sgd {
        Sgd { weight_decay: lambda, ..self }
    }
}

/// [`Sgd`]'s state: the velocity of every parameter.
#[derive(Clone, Debug, Tree)]
pub struct SgdState<P> {
    /// The momentum buffer of every parameter.
    pub velocity: P,
}

impl Optimizer for Sgd {
    type State<P: Tree> = SgdState<P>;

    fn init<P: Tree>(&self, params: &P) -> SgdState<P> {
        SgdState { velocity: params.map_leaves(Tensor::zeros_like) }
    }

    fn update<P: Tree>(&self, params: &P, grads: &P, state: &SgdState<P>) -> (P, SgdState<P>) {
        let (ps, gs) = zip_leaves(params, grads);
        let vs = state.velocity.leaves();
        let mut new_p = Vec::with_capacity(ps.len());
        let mut new_v = Vec::with_capacity(ps.len());
        for ((p, g), v) in ps.iter().zip(&gs).zip(&vs) {
            let g = if self.weight_decay != 0.0 { g + p * self.weight_decay } else { g.clone() };
            let (step, v) = if self.momentum != 0.0 {
                let v = v * self.momentum + &g;
                let step = if self.nesterov { &g + &v * self.momentum } else { v.clone() };
                (step, v)
            } else {
                (g, v.clone())
            };
            new_p.push(p - step * self.lr);
            new_v.push(v);
        }
        (params.with_leaves(new_p), SgdState { velocity: state.velocity.with_leaves(new_v) })
    }
}

/// Adam (Kingma & Ba, 2015), and AdamW (Loshchilov & Hutter, 2019) when
/// `decoupled`: as PyTorch defines them, with bias correction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate η.
    pub lr: f64,
    /// Decay of the first-moment estimate β₁.
    pub beta1: f64,
    /// Decay of the second-moment estimate β₂.
    pub beta2: f64,
    /// Added to the denominator for stability ε.
    pub eps: f64,
    /// Weight decay: added to the gradient (Adam) or applied to the
    /// parameters directly, `p ← p (1 − η λ)` (AdamW).
    pub weight_decay: f64,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
}

impl Adam {
    /// Adam with learning rate `lr` and the usual β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    pub fn new(lr: f64) -> Adam {
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false }
    }

    /// AdamW with learning rate `lr` and decoupled weight decay `lambda`.
    pub fn adamw(lr: f64, lambda: f64) -> Adam {
        Adam { weight_decay: lambda, decoupled: true, ..Adam::new(lr) }
    }
}

/// Adam's bias corrections `(1 - β₁ᵗ, 1 - β₂ᵗ)`.
enum Correction {
    Known(f64, f64),
    Traced(Tensor, Tensor),
}

/// [`Adam`]'s state: the step count and the first and second moment estimates.
#[derive(Clone, Debug, Tree)]
pub struct AdamState<P> {
    /// Steps taken, an i64 scalar.
    pub step: Tensor,
    /// First-moment (mean) estimates.
    pub m: P,
    /// Second-moment (uncentred variance) estimates.
    pub v: P,
}

impl Optimizer for Adam {
    type State<P: Tree> = AdamState<P>;

    fn init<P: Tree>(&self, params: &P) -> AdamState<P> {
        AdamState {
            step: Tensor::scalar(0i64),
            m: params.map_leaves(Tensor::zeros_like),
            v: params.map_leaves(Tensor::zeros_like),
        }
    }

    fn update<P: Tree>(&self, params: &P, grads: &P, state: &AdamState<P>) -> (P, AdamState<P>) {
        let (ps, gs) = zip_leaves(params, grads);
        let step = &state.step + &Tensor::scalar(1i64);
        // The bias corrections 1 - β^t: from the count when it is known, and
        // as tensor operations when it is traced (an update inside jit or a
        // scan), computed the same way in f64 and rounded to each parameter's dtype.
        let corrections = match state.step.array() {
            Some(_) => {
                let t = state.step.item() + 1.0;
                Correction::Known(1.0 - self.beta1.powf(t), 1.0 - self.beta2.powf(t))
            }
            None => {
                let t = step.to_dtype(crate::DType::F64);
                let c = |beta: f64| 1.0 - Tensor::scalar(beta).pow(&t);
                Correction::Traced(c(self.beta1), c(self.beta2))
            }
        };
        let (ms, vs) = (state.m.leaves(), state.v.leaves());
        let (mut new_p, mut new_m, mut new_v) = (Vec::new(), Vec::new(), Vec::new());
        for (((p, g), m), v) in ps.iter().zip(&gs).zip(&ms).zip(&vs) {
            if let Correction::Known(c1, c2) = corrections {
                if let Some((p, m, v)) = self.fused_step(p, g, m, v, (c1, c2)) {
                    new_p.push(p);
                    new_m.push(m);
                    new_v.push(v);
                    continue;
                }
            }
            let (p, g) = match (self.weight_decay != 0.0, self.decoupled) {
                (true, true) => (p * (1.0 - self.lr * self.weight_decay), g.clone()),
                (true, false) => (p.clone(), g + p * self.weight_decay),
                (false, _) => (p.clone(), g.clone()),
            };
            let m = m * self.beta1 + &g * (1.0 - self.beta1);
            let v = v * self.beta2 + g.square() * (1.0 - self.beta2);
            let (m_hat, v_hat) = match &corrections {
                Correction::Known(c1, c2) => (&m / *c1, &v / *c2),
                Correction::Traced(c1, c2) => (&m / c1.to_dtype(m.dtype()), &v / c2.to_dtype(v.dtype())),
            };
            new_p.push(p - m_hat / (v_hat.sqrt() + self.eps) * self.lr);
            new_m.push(m);
            new_v.push(v);
        }
        let state = AdamState { step, m: state.m.with_leaves(new_m), v: state.v.with_leaves(new_v) };
        (params.with_leaves(new_p), state)
    }
}
