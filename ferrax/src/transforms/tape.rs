//! A PyTorch-style tape: mark tensors as requiring gradients, compute
//! freely, call `backward`, read `grad`. Built on linearize and transpose,
//! not on a second autodiff engine: the tape is a JVP whose tangents are
//! staged (exactly what `linearize` does), kept open while the user
//! computes; `backward` transposes the tangent program recorded so far.
//!
//! ```
//! use ferrax::prelude::*;
//!
//! let tape = Tape::new();
//! let x = tape.requires_grad(&Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]));
//! let y = (&x * &x).sum();
//! y.backward();
//! assert_eq!(x.grad().unwrap().to_vec::<f64>(), vec![2.0, 4.0, 6.0]);
//! ```

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::core::{live_trace, push_frame, Aval, FrameGuard, FrameId, Outs, Primitive, Tensor, Trace, TracerKind};
use crate::graph::{backward_pass, Def};

use super::jvp::jvp_step;
use super::staging::Staging;

thread_local! {
    /// How many `no_grad` scopes are open on this thread.
    static NO_GRAD: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` without recording: operations on tensors that require
/// gradients compute their values only, as under PyTorch's `torch.no_grad()`.
///
/// ```
/// # use ferrax::prelude::*;
/// let tape = Tape::new();
/// let x = tape.requires_grad(&Tensor::scalar(3.0));
/// let y = no_grad(|| &x * 2.0);
/// assert!(!y.requires_grad());
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            NO_GRAD.with(|n| n.set(n.get() - 1));
        }
    }
    NO_GRAD.with(|n| n.set(n.get() + 1));
    let _reset = Reset;
    f()
}

/// The tape's interpretation: a JVP whose tangents live in the tape's staging frame.
struct TapeTrace {
    staging_frame: FrameId,
    /// Accumulated gradients, one slot per tensor marked with `requires_grad`.
    grads: RefCell<Vec<Option<Tensor>>>,
    /// The staged input variable of each marked tensor, in marking order.
    inputs: RefCell<Vec<usize>>,
}

impl Trace for TapeTrace {
    fn name(&self) -> &'static str {
        "a gradient tape"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn process(&self, me: FrameId, prim: &Arc<dyn Primitive>, ins: &[Tensor], avals: Outs<Aval>) -> Outs<Tensor> {
        jvp_step(me, prim, ins, avals, NO_GRAD.with(Cell::get) == 0)
    }
}

/// A recording of operations for reverse-mode gradients, PyTorch style.
/// Recording lasts as long as the tape: tensors marked by
/// [`Tape::requires_grad`] and everything computed from them are tracers
/// of the tape, usable until it is dropped (after that they panic as
/// escaped tracers; take values out with `to_array`, `item` or `detach`
/// first).
///
/// `backward` may be called any number of times: gradients accumulate in
/// each marked tensor until [`Tape::zero_grad`], and every backward pass is
/// exact, because the recording keeps what each pass needs.
pub struct Tape {
    // Dropped in declaration order: the tape frame above the staging frame.
    guard: FrameGuard,
    trace: Rc<TapeTrace>,
    staging: Staging,
}

impl Default for Tape {
    fn default() -> Self {
        Tape::new()
    }
}

impl Tape {
    /// Starts recording.
    pub fn new() -> Tape {
        let staging = Staging::new();
        let trace = Rc::new(TapeTrace {
            staging_frame: staging.frame(),
            grads: RefCell::new(Vec::new()),
            inputs: RefCell::new(Vec::new()),
        });
        let guard = push_frame(trace.clone());
        Tape { guard, trace, staging }
    }

    /// A tensor with `x`'s value whose gradient the tape will compute (a
    /// leaf, as PyTorch's `x.requires_grad_()`).
    ///
    /// # Panics
    /// When `x` is not a float tensor.
    #[track_caller]
    pub fn requires_grad(&self, x: &Tensor) -> Tensor {
        assert!(x.dtype().is_float(), "requires_grad: only float tensors have gradients, got {}", x.dtype());
        let tangent = self.staging.input(x.aval().clone());
        let var = self.staging.var_of(&tangent);
        self.trace.inputs.borrow_mut().push(var);
        self.trace.grads.borrow_mut().push(None);
        Tensor::new_tracer(self.guard.frame(), x.aval().clone(), TracerKind::Jvp { primal: x.clone(), tangent })
    }

    /// Accumulates `vᵀ J` into the gradient of every marked tensor `y`
    /// depends on: the gradient of `sum(y · v)`, as PyTorch's `y.backward(v)`.
    ///
    /// # Panics
    /// When `y` is not recorded by this tape (it does not depend on a marked
    /// tensor, or was computed under `no_grad`), or `v`'s shape or dtype differs from `y`'s.
    #[track_caller]
    pub fn backward_with(&self, y: &Tensor, v: &Tensor) {
        assert!(
            y.tracer_of(self.guard.frame()).is_some(),
            "backward: this tensor does not require grad and has no recorded history: it does not \
             depend on a tensor marked with requires_grad on this tape (or was computed under no_grad)"
        );
        backward_on(&self.trace, self.guard.frame(), y, v);
    }

    /// [`Tape::backward_with`] for a one-element `y`, with gradient 1.
    ///
    /// # Panics
    /// When `y` has more than one element: "grad can be implicitly created
    /// only for scalar outputs"; pass the gradient with `backward_with`.
    #[track_caller]
    pub fn backward(&self, y: &Tensor) {
        assert!(
            y.size() == 1,
            "backward: grad can be implicitly created only for scalar outputs, but this tensor has shape {:?}; \
             call backward_with(&v) with a gradient v of that shape (v = ones gives the gradient of y.sum())",
            y.shape()
        );
        self.backward_with(y, &Tensor::ones(y.shape(), y.dtype()));
    }

    /// The gradient accumulated for a marked tensor (`None` before any
    /// backward pass reached it, or for a tensor that is not a leaf marked
    /// on this tape).
    pub fn grad(&self, x: &Tensor) -> Option<Tensor> {
        grad_on(&self.trace, self.guard.frame(), x)
    }

    /// Clears every accumulated gradient.
    pub fn zero_grad(&self) {
        self.trace.grads.borrow_mut().iter_mut().for_each(|g| *g = None);
    }

    /// The number of operations recorded so far.
    pub fn recorded(&self) -> usize {
        self.staging.snapshot(&[]).eqns.len()
    }
}

/// The tape that recorded `x`, if any (alive on this thread).
fn tape_of(x: &Tensor) -> Option<(Rc<dyn Trace>, FrameId)> {
    let t = x.tracer()?;
    let trace = live_trace(t.frame())?;
    trace.as_any().is::<TapeTrace>().then_some((trace, t.frame()))
}

/// The gradient accumulated for `x` if it is a tensor marked on this tape.
fn grad_on(tape: &TapeTrace, frame: FrameId, x: &Tensor) -> Option<Tensor> {
    let Some(TracerKind::Jvp { tangent, .. }) = x.tracer_of(frame) else { return None };
    let Some(TracerKind::Staged { node }) = tangent.tracer_of(tape.staging_frame) else { return None };
    let k = tape.inputs.borrow().iter().position(|v| v == node)?;
    tape.grads.borrow()[k].clone()
}

impl Tensor {
    /// Whether this tensor was recorded by a live [`Tape`] (it depends on a
    /// tensor marked with `requires_grad`).
    pub fn requires_grad(&self) -> bool {
        tape_of(self).is_some()
    }

    /// PyTorch's `y.backward()`: accumulates the gradient of this one-element
    /// tensor into every marked tensor it depends on. See [`Tape::backward`].
    ///
    /// # Panics
    /// When the tensor is not recorded by a tape, or has more than one element.
    #[track_caller]
    pub fn backward(&self) {
        assert!(
            self.size() == 1,
            "backward: grad can be implicitly created only for scalar outputs, but this tensor has shape {:?}; \
             call backward_with(&v) with a gradient v of that shape",
            self.shape()
        );
        self.backward_with(&Tensor::ones(self.shape(), self.dtype()));
    }

    /// PyTorch's `y.backward(v)`: accumulates `vᵀ J`. See [`Tape::backward_with`].
    ///
    /// # Panics
    /// When the tensor is not recorded by a tape, or `v` does not match it.
    #[track_caller]
    pub fn backward_with(&self, v: &Tensor) {
        let (trace, frame) = tape_of(self).unwrap_or_else(|| {
            panic!(
                "backward: this tensor does not require grad and has no recorded history; mark its inputs \
                 with Tape::requires_grad (outside no_grad) first"
            )
        });
        backward_on(trace.as_any().downcast_ref::<TapeTrace>().expect("a tape"), frame, self, v);
    }

    /// The gradient accumulated for this marked tensor by backward passes (PyTorch's `x.grad`).
    pub fn grad(&self) -> Option<Tensor> {
        let (trace, frame) = tape_of(self)?;
        grad_on(trace.as_any().downcast_ref::<TapeTrace>()?, frame, self)
    }

    /// The value without its recorded history (PyTorch's `detach`): a
    /// constant to every transformation.
    pub fn detach(&self) -> Tensor {
        self.stop_gradient()
    }
}

/// The backward pass of `y` on a tape found through `y` itself.
#[track_caller]
fn backward_on(tape: &TapeTrace, frame: FrameId, y: &Tensor, v: &Tensor) {
    let Some(TracerKind::Jvp { tangent, .. }) = y.tracer_of(frame) else { unreachable!("y is a tape tracer") };
    assert!(
        v.aval() == y.aval(),
        "backward: the gradient argument is {} but the tensor is {}; pass one of the tensor's shape and dtype",
        v.aval(),
        y.aval()
    );
    let trace = live_trace(tape.staging_frame).expect("a tape's staging frame lives as long as the tape");
    let staging = trace.as_any().downcast_ref::<super::staging::StagingTrace>().expect("the tape's staging trace");
    let graph = staging.snapshot(tape.staging_frame, std::slice::from_ref(tangent));
    let cts = backward_pass(&graph, &[Some(v.clone())]);
    let inputs = tape.inputs.borrow();
    let mut grads = tape.grads.borrow_mut();
    for (slot, &var) in grads.iter_mut().zip(inputs.iter()) {
        let Def::Input(i) = graph.defs[var] else { unreachable!("marked tensors are graph inputs") };
        if let Some(ct) = &cts[i] {
            *slot = Some(match slot.take() {
                Some(g) => g + ct,
                None => ct.clone(),
            });
        }
    }
}
