//! The trace stack and `bind`: how every operation finds the transformation
//! that must handle it.
//!
//! Each active transformation is a frame on a thread-local stack; its
//! position is its *level*. A traced value remembers the frame that made it.
//! `bind` hands an operation to the highest-level frame among its inputs
//! (values of lower frames and concrete arrays are simply constants there),
//! or evaluates it on arrays when no input is traced. Levels keep nested
//! transformations apart: an inner `jvp` never mistakes an outer one's
//! perturbation for its own.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::array::{Array, Aval};

use smallvec::SmallVec;

use super::{Outs, Primitive, Repr, SingleOutput, Tensor};

/// Identifies a frame: its level on the stack and a process-wide unique id,
/// so a frame popped and replaced at the same level is never confused with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameId {
    /// Position on the stack: higher levels are inner transformations.
    pub level: usize,
    /// Unique for the life of the process.
    pub id: u64,
}

/// A transformation's interpretation of primitives: what a frame does with
/// an operation that involves its tracers.
pub trait Trace {
    /// A short name for messages: "jvp", "vmap", "staging", "tape".
    fn name(&self) -> &'static str;

    /// The trace as `Any`, for code that owns a kind of trace to find its own
    /// state again from a tracer (the tape does).
    fn as_any(&self) -> &dyn std::any::Any;

    /// Applies `prim` to `ins`, at least one of which is a tracer of frame
    /// `me`; `avals` are the outputs' abstract values, already checked by
    /// the primitive's shape rule.
    fn process(&self, me: FrameId, prim: &Arc<dyn Primitive>, ins: &[Tensor], avals: Outs<Aval>) -> Outs<Tensor>;
}

struct Entry {
    id: u64,
    trace: Rc<dyn Trace>,
}

thread_local! {
    static STACK: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Keeps a frame on the stack; dropping it pops the frame, also when the
/// transformed function panics, so the stack is never left dirty.
pub struct FrameGuard {
    frame: FrameId,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl FrameGuard {
    /// The frame this guard keeps alive.
    pub fn frame(&self) -> FrameId {
        self.frame
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        // Transformations nest, so frames normally end in LIFO order. A frame
        // that outlives one above it (a `Tape` kept past an inner one) is not
        // removed — that would shift the levels above — but marked dead, so
        // its tracers read as escaped; dead frames on top are then popped.
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(e) = s.get_mut(self.frame.level).filter(|e| e.id == self.frame.id) {
                e.id = DEAD;
            }
            while s.last().is_some_and(|e| e.id == DEAD) {
                s.pop();
            }
        });
    }
}

/// The id of a frame that has ended but could not yet be popped.
const DEAD: u64 = 0;

/// Pushes a new frame for `trace` on top of the stack.
pub fn push_frame(trace: Rc<dyn Trace>) -> FrameGuard {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let level = STACK.with(|s| {
        let mut s = s.borrow_mut();
        s.push(Entry { id, trace });
        s.len() - 1
    });
    FrameGuard { frame: FrameId { level, id }, _not_send: std::marker::PhantomData }
}

/// The trace of a live frame.
///
/// # Panics
/// When the frame is no longer on this thread's stack: the tracer escaped
/// the transformation that made it (or crossed to another thread).
#[track_caller]
pub(crate) fn trace_of(frame: FrameId, kind: &str) -> Rc<dyn Trace> {
    let found = STACK.with(|s| s.borrow().get(frame.level).filter(|e| e.id == frame.id).map(|e| e.trace.clone()));
    match found {
        Some(t) => t,
        None => panic!("{}", escaped_message(kind, frame)),
    }
}

/// The trace of `frame` when it is live on this thread.
pub fn live_trace(frame: FrameId) -> Option<Rc<dyn Trace>> {
    STACK.with(|s| s.borrow().get(frame.level).filter(|e| e.id == frame.id).map(|e| e.trace.clone()))
}

/// Whether `frame` is still on this thread's stack.
pub fn is_live(frame: FrameId) -> bool {
    STACK.with(|s| s.borrow().get(frame.level).is_some_and(|e| e.id == frame.id))
}

pub(crate) fn escaped_message(kind: &str, frame: FrameId) -> String {
    format!(
        "escaped tracer: a value traced by {kind} (level {}) was used after that transformation \
         returned, or on another thread. Return it from the transformed function instead of \
         storing it outside (in a captured variable, a static or a channel).",
        frame.level
    )
}

/// Applies a primitive with one output to tensors: evaluates it on arrays
/// when no input is traced, otherwise hands it to the highest-level
/// transformation among the inputs. Every tensor operation goes through here
/// (or [`bind_all`], for several outputs).
///
/// # Panics
/// When the primitive's shape rule rejects the inputs, an input is a tracer
/// whose transformation has ended, or the inputs live on different devices.
#[track_caller]
pub fn bind<P: SingleOutput>(prim: P, ins: &[Tensor]) -> Tensor {
    match top_frame(ins) {
        // Most operations are eager and have one output: no vectors at all.
        None => {
            let arrays = arrays_of(ins);
            let avals: Inputs<&Aval> = small(arrays.iter().map(|a| a.aval()));
            let want = prim.shape(&avals);
            let device = crate::array::backend_of(&arrays).device();
            let out = crate::array::placed(prim.name(), prim.eval(&arrays), device);
            check_outputs(&prim, std::slice::from_ref(out.aval()), std::slice::from_ref(&want));
            Tensor::from_array(out)
        }
        Some(frame) => {
            let mut outs = bind_traced(Arc::new(prim), ins, frame);
            outs.pop().expect("a single-output primitive gives one output")
        }
    }
}

/// [`bind`] for a primitive with any number of outputs.
#[track_caller]
pub fn bind_all<P: Primitive>(prim: P, ins: &[Tensor]) -> Outs<Tensor> {
    match top_frame(ins) {
        None => eval_eager(&prim, ins),
        Some(frame) => bind_traced(Arc::new(prim), ins, frame),
    }
}

/// [`bind_all`] on operands given up: evaluated eagerly, the primitive
/// gets the arrays of those no one else holds ([`Primitive::eval_owned`]),
/// so that it may write its outputs over them, as `jit`'s interpreter lets
/// it do at an operand's last use. Traced, it is [`bind_all`].
#[track_caller]
pub fn bind_all_owned<P: Primitive>(prim: P, ins: Vec<Tensor>) -> Outs<Tensor> {
    if let Some(frame) = top_frame(&ins) {
        return bind_traced(Arc::new(prim), &ins, frame);
    }
    let avals: Inputs<Aval> = small(ins.iter().map(|x| x.aval().clone()));
    let refs: Inputs<&Aval> = small(avals.iter());
    let want = prim.shape(&refs);
    let device = crate::array::backend_of(&arrays_of(&ins)).device();
    let arrays = ins.into_iter().map(Tensor::into_array).collect();
    eager_outputs(&prim, prim.eval_owned(arrays), device, &want)
}

/// [`bind_all`] for a primitive already behind an `Arc` (graph interpreters, trace rules).
#[track_caller]
pub fn bind_dyn(prim: Arc<dyn Primitive>, ins: &[Tensor]) -> Outs<Tensor> {
    match top_frame(ins) {
        None => eval_eager(&*prim, ins),
        Some(frame) => bind_traced(prim, ins, frame),
    }
}

/// Operands of one operation: inline up to four, the most any common primitive takes.
type Inputs<T> = SmallVec<[T; 4]>;

/// Collects into a `SmallVec` by pushing. `SmallVec`'s own `FromIterator`
/// reserves through a generic path that cost about a hundred instructions a
/// call under callgrind — more than a scalar operation's kernel — where a
/// push to inline storage is a compare and a store.
#[inline]
pub(crate) fn small<A: smallvec::Array>(items: impl IntoIterator<Item = A::Item>) -> SmallVec<A> {
    let mut v = SmallVec::new();
    for x in items {
        v.push(x);
    }
    v
}

/// The highest-level frame among the inputs' tracers; checks that every one is live.
#[track_caller]
fn top_frame(ins: &[Tensor]) -> Option<FrameId> {
    let mut top: Option<FrameId> = None;
    for x in ins {
        if let Repr::Tracer(t) = &*x.0 {
            if !is_live(t.frame) {
                panic!("{}", escaped_message(t.kind.name(), t.frame));
            }
            if top.is_none_or(|f| t.frame.level > f.level) {
                top = Some(t.frame);
            }
        }
    }
    top
}

fn arrays_of(ins: &[Tensor]) -> Inputs<&Array> {
    small(ins.iter().map(|x| x.array().expect("no tracers here")))
}

#[track_caller]
fn eval_eager<P: Primitive + ?Sized>(prim: &P, ins: &[Tensor]) -> Outs<Tensor> {
    let arrays = arrays_of(ins);
    let avals: Inputs<&Aval> = small(arrays.iter().map(|a| a.aval()));
    let want = prim.shape(&avals);
    // Placement: the inputs must share a device (the message names both).
    let device = crate::array::backend_of(&arrays).device();
    let outs = prim.eval(&arrays);
    eager_outputs(prim, outs, device, &want)
}

/// An eager evaluation's outputs placed with its inputs, checked against
/// the shape rule's promise.
#[track_caller]
fn eager_outputs<P: Primitive + ?Sized>(
    prim: &P,
    mut outs: Outs<Array>,
    device: crate::array::Device,
    want: &[Aval],
) -> Outs<Tensor> {
    if device != crate::array::Device::Cpu {
        outs = small(outs.into_iter().map(|y| crate::array::placed(prim.name(), y, device)));
    }
    {
        let got: Outs<&Aval> = small(outs.iter().map(Array::aval));
        check_outputs(prim, &got, want);
    }
    small(outs.into_iter().map(Tensor::from_array))
}

/// The kernel computed what the shape rule promised: a wrong kernel must not
/// hand out a value whose shape disagrees with every trace of the same program.
fn check_outputs<P: Primitive + ?Sized, A: std::borrow::Borrow<Aval>>(prim: &P, got: &[A], want: &[Aval]) {
    let agree = got.len() == want.len() && got.iter().zip(want).all(|(o, w)| same_aval(o.borrow(), w));
    assert!(
        agree,
        "internal error: {} computed {:?} where its shape rule promised {:?}",
        prim.name(),
        got.iter().map(|o| o.borrow().to_string()).collect::<Vec<_>>(),
        want.iter().map(Aval::to_string).collect::<Vec<_>>()
    );
}

/// `a == b` without `memcmp`: for the one- or two-element shapes of scalar
/// work, the library call (and its AVX-512 warm-up) costs more than the op.
#[inline]
pub(crate) fn same_aval(a: &Aval, b: &Aval) -> bool {
    a.dtype == b.dtype && crate::array::same_shape(&a.shape, &b.shape)
}

#[track_caller]
fn bind_traced(prim: Arc<dyn Primitive>, ins: &[Tensor], frame: FrameId) -> Outs<Tensor> {
    let avals: Inputs<&Aval> = small(ins.iter().map(Tensor::aval));
    let out_avals = prim.shape(&avals);
    let trace = trace_of(frame, "a transformation");
    trace.process(frame, &prim, ins, out_avals)
}
