//! Function transformations: `jvp` (forward mode); `linearize`, `vjp`,
//! `grad` and `value_and_grad` (reverse mode); `make_graph` (staging).

mod jvp;
mod linearize;
mod staging;

pub use jvp::jvp;
pub use linearize::{grad, linearize, value_and_grad, vjp};
pub use staging::make_graph;
