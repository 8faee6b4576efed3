//! Function transformations: `jvp` (forward mode); `linearize`, `vjp`,
//! `grad` and `value_and_grad` (reverse mode); `vmap` and `vmap_axes`
//! (vectorisation); `jacfwd`, `jacrev`, `hessian`, `hvp`; `jit`; `make_graph` (staging).

pub mod control;
mod custom;
mod jacobian;
mod jit;
mod jvp;
mod linearize;
mod scalar;
mod staging;
mod tape;
mod vmap;

pub(crate) use custom::{call_batched, call_tangents};
pub use custom::{checkpoint, custom_jvp, custom_vjp};
pub use jacobian::{hessian, hvp, jacfwd, jacrev, JacobianOut};
pub use jit::{jit, jit_static, Jit, JitStats};
pub use jvp::jvp;
pub(crate) use linearize::value_and_grad_streamed;
pub use linearize::{grad, grad_with_aux, linearize, value_and_grad, value_and_grad_with_aux, vjp};
pub use staging::make_graph;
pub use tape::{no_grad, Tape};
pub use vmap::{vmap, vmap_axes};
