//! The staging trace: tracers are variables of a graph under construction.
//! `make_graph` stages a whole function; `linearize` stages only its
//! tangent computation.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::core::{push_frame, small, Aval, FrameGuard, FrameId, Outs, Primitive, Tensor, Trace, TracerKind};
use crate::graph::{Graph, GraphBuilder, Var};
use crate::tree::Tree;

/// Records every operation on its tracers as an equation. Values from
/// outside (concrete arrays, tracers of lower frames) become constants.
pub(crate) struct StagingTrace {
    builder: RefCell<GraphBuilder>,
}

impl StagingTrace {
    fn var_of(&self, me: FrameId, x: &Tensor) -> Var {
        match x.tracer_of(me) {
            Some(TracerKind::Staged { node }) => *node,
            _ => self.builder.borrow_mut().add_const(x),
        }
    }

    /// The graph recorded so far by frame `me`, with these outputs; recording goes on.
    pub(crate) fn snapshot(&self, me: FrameId, outputs: &[Tensor]) -> Graph {
        let vars: Vec<Var> = outputs.iter().map(|y| self.var_of(me, y)).collect();
        self.builder.borrow().snapshot(vars)
    }
}

impl Trace for StagingTrace {
    fn name(&self) -> &'static str {
        "staging"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn process(&self, me: FrameId, prim: &Arc<dyn Primitive>, ins: &[Tensor], avals: Outs<Aval>) -> Outs<Tensor> {
        let vars: Vec<Var> = ins.iter().map(|x| self.var_of(me, x)).collect();
        let nodes = self.builder.borrow_mut().add_eqn(prim.clone(), vars, &avals);
        small(
            nodes.into_iter().zip(avals).map(|(node, aval)| Tensor::new_tracer(me, aval, TracerKind::Staged { node })),
        )
    }
}

/// A staging frame on the stack: create inputs, run code, finish into a graph.
pub(crate) struct Staging {
    trace: Rc<StagingTrace>,
    guard: FrameGuard,
}

impl Staging {
    /// Pushes a new staging frame.
    pub(crate) fn new() -> Staging {
        let trace = Rc::new(StagingTrace { builder: RefCell::new(GraphBuilder::new()) });
        let guard = push_frame(trace.clone());
        Staging { trace, guard }
    }

    /// A new graph input, as a tracer of this frame.
    pub(crate) fn input(&self, aval: Aval) -> Tensor {
        let node = self.trace.builder.borrow_mut().add_input(aval.clone());
        Tensor::new_tracer(self.guard.frame(), aval, TracerKind::Staged { node })
    }

    /// This staging frame.
    pub(crate) fn frame(&self) -> FrameId {
        self.guard.frame()
    }

    /// The variable of a tracer of this frame (or a new constant for any other value).
    pub(crate) fn var_of(&self, x: &Tensor) -> Var {
        self.trace.var_of(self.guard.frame(), x)
    }

    /// The graph recorded so far, with these outputs; recording goes on.
    pub(crate) fn snapshot(&self, outputs: &[Tensor]) -> Graph {
        self.trace.snapshot(self.guard.frame(), outputs)
    }

    /// Pops the frame and returns the graph whose outputs are `outputs`
    /// (tracers of this frame, or constants).
    pub(crate) fn finish(self, outputs: &[Tensor]) -> Graph {
        let me = self.guard.frame();
        let vars: Vec<Var> = outputs.iter().map(|y| self.trace.var_of(me, y)).collect();
        drop(self.guard);
        let builder = std::mem::take(&mut *self.trace.builder.borrow_mut());
        builder.finish(vars)
    }
}

/// The graph of `f` at inputs shaped like `x`: every primitive `f` applies,
/// one equation a line when printed (like `jax.make_jaxpr`). Used on
/// `grad(f)` it shows the forward and backward computation together.
///
/// ```
/// # use ferrax::prelude::*;
/// let g = make_graph(|x: &Tensor| x.sin() * x, &Tensor::scalar(1.0));
/// assert_eq!(g.to_string(), "{ lambda a:f64[] .\n    b:f64[] = sin a\n    c:f64[] = mul b a\n  in (c) }");
/// ```
///
/// # Panics
/// When `f` reads the values of its inputs (they are not known while staging).
pub fn make_graph<I: Tree, O: Tree>(f: impl FnOnce(&I) -> O, x: &I) -> Graph {
    let staging = Staging::new();
    let ins: Vec<Tensor> = x.leaves().iter().map(|l| staging.input(l.aval().clone())).collect();
    let out = f(&x.with_leaves(ins));
    staging.finish(&out.leaves())
}
