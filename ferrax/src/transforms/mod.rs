//! Function transformations: `jvp` (forward mode); `linearize`, `vjp`,
//! `grad` and `value_and_grad` (reverse mode); `vmap` and `vmap_axes`
//! (vectorisation); `jacfwd`, `jacrev`, `hessian`, `hvp`; `make_graph` (staging).

mod jacobian;
mod jvp;
mod linearize;
mod staging;
mod vmap;

pub use jacobian::{hessian, hvp, jacfwd, jacrev};
pub use jvp::jvp;
pub use linearize::{grad, linearize, value_and_grad, vjp};
pub use staging::make_graph;
pub use vmap::{vmap, vmap_axes};
