//! # ferrax
//!
//! Automatic differentiation for Rust, built the way JAX is: n-dimensional
//! [`Tensor`]s and composable function transformations over ordinary
//! closures — forward mode ([`jvp`]), reverse mode ([`vjp`], [`grad`],
//! [`linearize`]), vectorisation ([`vmap`]), Jacobians and Hessians
//! ([`jacfwd`], [`jacrev`], [`hessian`]), custom rules ([`custom_jvp`],
//! [`custom_vjp`], [`checkpoint`]) and a PyTorch-style [`Tape`]. Every
//! transformation nests inside every other without confusing their
//! perturbations.
//!
//! ```
//! use ferrax::prelude::*;
//!
//! // f(x1, x2) = ln(x1) + x1·x2 − sin(x2), differentiated along x1 at (2, 5)
//! let f = |x: &(Tensor, Tensor)| x.0.ln() + &x.0 * &x.1 - x.1.sin();
//! let at = (Tensor::scalar(2.0), Tensor::scalar(5.0));
//! let along_x1 = (Tensor::scalar(1.0), Tensor::scalar(0.0));
//! let (y, dy) = jvp(f, &at, &along_x1);
//! assert!((y.item() - 11.652071455).abs() < 1e-8);
//! assert!((dy.item() - 5.5).abs() < 1e-12);
//! // Every partial derivative at once, by reverse mode.
//! let (d1, d2) = grad(f)(&at);
//! assert_eq!(d1.item(), 5.5);
//! assert!((d2.item() - 1.716337815).abs() < 1e-9);
//! ```
//!
//! The layers, bottom up: [`array`](mod@array) (concrete arrays and CPU kernels),
//! [`core`] (tensors, primitives, `bind` and the trace stack), [`prims`]
//! (the primitives and their rules), [`composite`] (functions built from
//! them), [`graph`] (staged programs), [`transforms`], [`numeric`] (finite
//! differences and `check_grads`), [`symbolic`], and [`nn`], [`optim`],
//! [`io`], [`data`] for models and training.

#![warn(missing_docs)]

// Lets `#[derive(Tree)]` name `::ferrax` inside this crate too.
extern crate self as ferrax;

pub mod array;
pub mod composite;
pub mod core;
pub mod data;
pub mod distributed;
pub mod graph;
pub mod io;
pub mod linalg;
pub mod nn;
pub mod numeric;
pub mod optim;
pub mod prims;
pub mod symbolic;
pub mod transforms;
pub mod tree;

/// NVIDIA GPUs (the `cuda` feature): whether one can be used
/// ([`cuda::available`]), and the kernels generated for them.
#[cfg(feature = "cuda")]
pub use crate::array::cuda;
pub use crate::array::{Aval, DType, Device, DeviceError, IndexMode};
pub use crate::composite::{einsum, MatrixNorm};
pub use crate::core::Tensor;
pub use crate::numeric::{check_grads, numerical_grad, numerical_jacobian, numerical_jvp, GradCheckError};
pub use crate::prims::where_;
pub use crate::transforms::control;
pub use crate::transforms::{
    checkpoint, custom_jvp, custom_vjp, grad, grad_with_aux, hessian, hvp, jacfwd, jacrev, jit, jit_static, jvp,
    linearize, make_graph, no_grad, value_and_grad, value_and_grad_with_aux, vjp, vmap, vmap_axes, JacobianOut, Tape,
};
pub use crate::tree::{device_put, Tree};
pub use ferrax_derive::Tree;
/// The `half` crate, whose `f16` and `bf16` are the elements of
/// [`DType::F16`] and [`DType::BF16`] arrays (`Tensor::from_vec`, `to_vec`).
pub use half;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Everything a user of ferrax needs, in one import.
pub mod prelude {
    pub use crate::array::{Aval, DType, Device, IndexMode};
    pub use crate::composite::{einsum, MatrixNorm};
    pub use crate::core::Tensor;
    pub use crate::numeric::{check_grads, numerical_grad, numerical_jacobian, numerical_jvp, GradCheckError};
    pub use crate::prims::where_;
    pub use crate::transforms::control::{cond, fori_loop, scan, switch, while_loop};
    pub use crate::transforms::{
        checkpoint, custom_jvp, custom_vjp, grad, grad_with_aux, hessian, hvp, jacfwd, jacrev, jit, jit_static, jvp,
        linearize, make_graph, no_grad, value_and_grad, value_and_grad_with_aux, vjp, vmap, vmap_axes, JacobianOut,
        Tape,
    };
    pub use crate::tree::{device_put, Tree};
    pub use ferrax_derive::Tree;
}
