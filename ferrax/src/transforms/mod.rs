//! Function transformations: `jvp` (forward mode).

mod jvp;

pub use jvp::jvp;
