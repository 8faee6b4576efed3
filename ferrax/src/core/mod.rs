//! Tensors, primitives, `bind` and the trace stack.
//!
//! A [`Tensor`] is either a concrete [`Array`] or a *tracer*: a stand-in
//! value owned by one active transformation. Operations never look inside a
//! tracer themselves; they call [`bind`], which routes them to the right
//! transformation.

pub mod context;
mod primitive;
mod tensor;
mod trace;

use std::sync::Arc;

pub use crate::array::{Array, Aval, DType};
pub use primitive::{label, Kind, Lin, Outs, Param, Params, Primitive, SingleOutput};
pub use trace::{
    bind, bind_all, bind_all_owned, bind_dyn, is_live, live_trace, push_frame, FrameGuard, FrameId, Trace,
};
pub(crate) use trace::{same_aval, small};

/// An n-dimensional value: what users hold and transformations trace.
///
/// Cheap to clone (a reference count), immutable, `Send + Sync`.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Repr>);

pub(crate) enum Repr {
    Array(Array),
    Tracer(Tracer),
}

/// A traced value: an abstract value owned by one frame of the trace stack,
/// with that transformation's payload.
pub struct Tracer {
    pub(crate) aval: Aval,
    pub(crate) frame: FrameId,
    pub(crate) kind: TracerKind,
}

/// What each kind of transformation stores in its tracers.
pub enum TracerKind {
    /// Forward mode: the primal value and its tangent.
    Jvp {
        /// The value.
        primal: Tensor,
        /// Its tangent.
        tangent: Tensor,
    },
    /// vmap: the batched value and the axis that is mapped (`None`: not mapped).
    Batch {
        /// The value with the batch axis.
        value: Tensor,
        /// Where the batch axis is.
        axis: Option<usize>,
    },
    /// A node of a graph under construction.
    Staged {
        /// The graph variable.
        node: usize,
    },
}

impl TracerKind {
    /// The transformation's name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            TracerKind::Jvp { .. } => "jvp",
            TracerKind::Batch { .. } => "vmap",
            TracerKind::Staged { .. } => "a staging transformation (linearize, vjp or make_graph)",
        }
    }
}

impl Tensor {
    /// Wraps a concrete array.
    pub fn from_array(a: Array) -> Tensor {
        Tensor(Arc::new(Repr::Array(a)))
    }

    /// A new tracer of `frame`.
    pub fn new_tracer(frame: FrameId, aval: Aval, kind: TracerKind) -> Tensor {
        Tensor(Arc::new(Repr::Tracer(Tracer { aval, frame, kind })))
    }

    /// The abstract value (dtype and shape).
    pub fn aval(&self) -> &Aval {
        match &*self.0 {
            Repr::Array(a) => a.aval(),
            Repr::Tracer(t) => &t.aval,
        }
    }

    /// The concrete value as [`Tensor::to_array`] gives it, without another
    /// handle on the array where this tensor was its only holder, so that
    /// the array's buffer may be unique.
    pub(crate) fn into_array(self) -> Array {
        match Arc::try_unwrap(self.0) {
            Ok(Repr::Array(a)) => a,
            Ok(repr) => Tensor(Arc::new(repr)).to_array(),
            Err(shared) => Tensor(shared).to_array(),
        }
    }

    /// The concrete array, or `None` for a tracer.
    pub fn array(&self) -> Option<&Array> {
        match &*self.0 {
            Repr::Array(a) => Some(a),
            Repr::Tracer(_) => None,
        }
    }

    /// The tracer, or `None` for a concrete tensor.
    pub fn tracer(&self) -> Option<&Tracer> {
        match &*self.0 {
            Repr::Array(_) => None,
            Repr::Tracer(t) => Some(t),
        }
    }

    /// The payload when this is a tracer of `frame`.
    pub fn tracer_of(&self, frame: FrameId) -> Option<&TracerKind> {
        match &*self.0 {
            Repr::Tracer(t) if t.frame == frame => Some(&t.kind),
            _ => None,
        }
    }

    /// `true` when both handles point at the same value (not a value comparison).
    pub fn same(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The address of the shared value: equal for clones of one tensor.
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0) as *const () as usize
    }
}

impl Tracer {
    /// The frame that owns this tracer.
    pub fn frame(&self) -> FrameId {
        self.frame
    }

    /// The transformation's payload.
    pub fn kind(&self) -> &TracerKind {
        &self.kind
    }
}
