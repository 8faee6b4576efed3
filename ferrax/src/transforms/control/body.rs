//! What the control-flow primitives share: a body held as a program, user
//! functions staged into bodies (closure-converted), and the body-level
//! transformations their rules are made of — forward mode split into a
//! pass that keeps residuals and a linear pass, vectorisation that keeps
//! unbatched values unbatched, and transposition.

use std::sync::Arc;

use crate::array::{Array, Aval};
use crate::core::{Outs, Tensor};
use crate::graph::{transpose_linear, Graph};
use crate::prims::batching::batch_first;

use super::super::custom::{id_of, stage};
use super::super::jit::interpret;
use super::super::jvp::jvp_partial;
use super::super::staging::Staging;
use super::super::vmap::vmap_partial;

/// A sub-program of a control-flow primitive: the simplified graph its
/// rules transform, and the same graph with its elementwise chains fused,
/// which is what runs.
#[derive(Clone)]
pub(super) struct Program {
    pub(super) graph: Arc<Graph>,
    run: Arc<Graph>,
    last_use: Arc<Vec<Option<usize>>>,
}

impl Program {
    pub(super) fn new(graph: Graph) -> Program {
        let graph = graph.optimized();
        let run = graph.fused();
        let last_use = Arc::new(run.last_uses());
        Program { graph: Arc::new(graph), run: Arc::new(run), last_use }
    }

    /// Runs the program on concrete operands, which it may write over.
    pub(super) fn run(&self, ins: Vec<Array>) -> Outs<Array> {
        interpret(&self.run, &self.last_use, ins)
    }

    /// The program applied with `bind`, so that enclosing transformations trace it.
    pub(super) fn eval(&self, ins: &[Tensor]) -> Vec<Tensor> {
        self.graph.eval(ins)
    }

    pub(super) fn in_avals(&self) -> Vec<Aval> {
        self.graph.input_avals()
    }

    pub(super) fn out_avals(&self) -> Vec<Aval> {
        self.graph.output_avals()
    }

    /// The program's identity, for primitive equality.
    pub(super) fn id(&self) -> usize {
        id_of(&self.graph)
    }
}

/// Stages `f` on inputs of `avals` inside a rule, where every value it
/// uses is an input or a constant.
pub(super) fn stage_closed(avals: &[Aval], f: impl FnOnce(&[Tensor]) -> Vec<Tensor>) -> Graph {
    let staged = stage(avals, |ins| f(&ins));
    assert!(staged.captured.is_empty(), "internal error: a control-flow rule staged a body that captured a tracer");
    Arc::try_unwrap(staged.graph).unwrap_or_else(|g| (*g).clone())
}

/// Stages a user's body on inputs of `avals`, closure-converted: the
/// tracers of enclosing transformations it captured become its first
/// inputs, and are returned to be passed as operands.
pub(super) fn stage_user(avals: &[Aval], f: impl FnOnce(&[Tensor]) -> Vec<Tensor>) -> (Graph, Vec<Tensor>) {
    let staged = stage(avals, |ins| f(&ins));
    let n = avals.len();
    let k = staged.captured.len();
    let order: Vec<usize> = (n..n + k).chain(0..n).collect();
    let all: Vec<usize> = (0..staged.graph.outputs.len()).collect();
    (staged.graph.restricted(&order, &all), staged.captured)
}

/// A body's forward mode split in two, as reverse mode needs it: `fwd`
/// computes the outputs and then the residuals; `lin` maps the tangents of
/// the inputs marked in `nz` (in order), then the residuals, to the
/// tangents of the outputs marked in `out_nz` (in order).
pub(super) struct Split {
    pub(super) fwd: Graph,
    pub(super) lin: Graph,
    pub(super) out_nz: Vec<bool>,
}

/// Splits `g` at the inputs with tangents (`nz`). Outputs marked in
/// `force` get a tangent, zero when the body gives none (a loop's carry
/// whose tangent another step makes nonzero).
pub(super) fn split(g: &Graph, nz: &[bool], force: &[bool]) -> Split {
    let in_avals: Vec<Aval> = g.input_avals();
    let mut lin = None;
    let mut out_nz = Vec::new();
    let fwd = stage_closed(&in_avals, |ins| {
        let tangent_stage = Staging::new();
        let ts: Vec<Option<Tensor>> =
            ins.iter().zip(nz).map(|(x, &n)| n.then(|| tangent_stage.input(x.aval().clone()))).collect();
        let (outs, touts) = jvp_partial(|x| g.eval(x), ins, &ts);
        let mut kept = Vec::new();
        for (k, (y, t)) in outs.iter().zip(touts).enumerate() {
            let forced = force.get(k).copied().unwrap_or(false);
            match t {
                Some(t) => kept.push(t),
                None if forced => kept.push(y.zeros_like()),
                None => {
                    out_nz.push(false);
                    continue;
                }
            }
            out_nz.push(true);
        }
        let (graph, residuals) = tangent_stage.finish(&kept).hoist_traced_consts();
        lin = Some(graph);
        outs.into_iter().chain(residuals).collect()
    });
    Split { fwd, lin: lin.expect("staged"), out_nz }
}

/// `g` applied to operands batched on axis 0 where `batched` says, each
/// output batched on axis 0 or not at all; outputs marked in `force` are
/// batched (broadcast when the body leaves them unbatched). Returns the
/// batched graph and which outputs are batched.
pub(super) fn batch_body(g: &Graph, batched: &[bool], force: &[bool], size: usize) -> (Graph, Vec<bool>) {
    let in_avals: Vec<Aval> = g
        .inputs
        .iter()
        .zip(batched)
        .map(|(&v, &b)| {
            let a = &g.avals[v];
            if b {
                let mut shape = vec![size];
                shape.extend_from_slice(&a.shape);
                Aval::new(a.dtype, &shape)
            } else {
                a.clone()
            }
        })
        .collect();
    let mut out_batched = Vec::new();
    let graph = stage_closed(&in_avals, |ins| {
        let axes: Vec<Option<usize>> = batched.iter().map(|&b| b.then_some(0)).collect();
        vmap_partial(|x| g.eval(x), ins, &axes, size)
            .into_iter()
            .enumerate()
            .map(|(k, (y, axis))| {
                let forced = force.get(k).copied().unwrap_or(false);
                out_batched.push(axis.is_some() || forced);
                if axis.is_some() || forced {
                    batch_first(&y, axis, size)
                } else {
                    y
                }
            })
            .collect()
    });
    (graph, out_batched)
}

/// The transpose of `g`, linear in the inputs not marked `known`: a graph
/// from the known inputs (in order) and a cotangent per output to the
/// cotangent of each linear input (in order; zeros where none flows).
pub(super) fn transpose_body(g: &Graph, known: &[bool]) -> Graph {
    let in_avals: Vec<Aval> = g.input_avals();
    let out_avals: Vec<Aval> = g.output_avals();
    let args: Vec<Aval> =
        in_avals.iter().zip(known).filter(|(_, &k)| k).map(|(a, _)| a.clone()).chain(out_avals).collect();
    stage_closed(&args, |ins| {
        let mut given = ins.iter();
        let values: Vec<Option<Tensor>> = known.iter().map(|&k| if k { given.next().cloned() } else { None }).collect();
        let cts: Vec<Option<Tensor>> = given.cloned().map(Some).collect();
        transpose_linear(g, &values, &cts)
            .into_iter()
            .zip(&in_avals)
            .zip(known)
            .filter(|(_, &k)| !k)
            .map(|((ct, a), _)| ct.unwrap_or_else(|| Tensor::zeros(&a.shape, a.dtype)))
            .collect()
    })
}
