//! `cond` and `switch`: one primitive, [`Switch`], that runs one of its
//! branches, chosen by an index operand.
//!
//! Operands are `[index, operands..]`; every branch maps the operands to
//! outputs of the same avals. Forward mode is a switch over the branches'
//! jvps (linear in the tangents, with the operands as residuals); its
//! transpose is a switch over the branches' transposes, which recompute
//! the chosen branch's forward values before running backwards. Under
//! `vmap` an unbatched index keeps one branch per call; a batched one
//! runs every branch on the whole batch and selects per member, as JAX does.

use std::fmt;
use std::sync::Arc;

use crate::array::{Array, Aval, DType};
use crate::core::{bind_all, Kind, Lin, Outs, Param, Params, Primitive, Tensor};
use crate::graph::Graph;
use crate::prims::batching::batch_first;
use crate::prims::where_;
use crate::tree::Tree;

use super::super::custom::avals_of;
use super::super::jvp::jvp_partial;
use super::as_index;
use super::body::{batch_body, stage_closed, stage_user, transpose_body, Program};

/// The switch primitive (see the module documentation).
#[derive(Clone)]
pub(super) struct Switch {
    branches: Vec<Program>,
    outs: Arc<Vec<Aval>>,
}

impl fmt::Debug for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Switch({} branches)", self.branches.len())
    }
}

impl Switch {
    fn new(branches: Vec<Graph>) -> Switch {
        let branches: Vec<Program> = branches.into_iter().map(Program::new).collect();
        let outs = Arc::new(branches[0].out_avals());
        Switch { branches, outs }
    }

    /// Each branch transformed by `f`, as a new switch.
    fn map(&self, f: impl Fn(&Graph) -> Graph) -> Switch {
        Switch::new(self.branches.iter().map(|b| f(&b.graph)).collect())
    }
}

/// The branch an index value picks: clamped into range, as JAX's `switch` does.
fn clamp(i: i64, n: usize) -> usize {
    i.clamp(0, n as i64 - 1) as usize
}

impl Primitive for Switch {
    fn name(&self) -> &'static str {
        "switch"
    }
    fn params(&self) -> Params {
        let ids: Vec<usize> = self.branches.iter().map(Program::id).collect();
        vec![("branches", Param::List(ids))]
    }
    fn kind(&self) -> Kind {
        Kind::Call
    }
    fn shape(&self, ins: &[&Aval]) -> Outs<Aval> {
        let want = self.branches[0].in_avals();
        let ok = ins[0].dtype == DType::I64
            && ins[0].shape.is_empty()
            && ins.len() == want.len() + 1
            && ins[1..].iter().zip(&want).all(|(a, b)| *a == b);
        assert!(ok, "internal error: switch applied to operands its branches were not staged for");
        self.outs.iter().cloned().collect()
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        let i = clamp(ins[0].as_slice::<i64>()[0], self.branches.len());
        self.branches[i].run(ins[1..].iter().map(|a| (*a).clone()).collect())
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &[Tensor]) -> Outs<Option<Tensor>> {
        let nz: Vec<bool> = x[1..].iter().zip(&t[1..]).map(|(x, t)| t.is_some() && x.dtype().is_float()).collect();
        if !nz.contains(&true) {
            return smallvec::smallvec![None; self.outs.len()];
        }
        let in_avals = self.branches[0].in_avals();
        let t_avals: Vec<Aval> = in_avals.iter().zip(&nz).filter(|(_, &n)| n).map(|(a, _)| a.clone()).collect();
        let all: Vec<Aval> = in_avals.iter().chain(&t_avals).cloned().collect();
        // Each branch's tangents, zeros where it has none but another branch has.
        let stage_jvp = |g: &Graph, union: &[bool], found: &mut Vec<bool>| {
            stage_closed(&all, |ins| {
                let (x, ts) = ins.split_at(in_avals.len());
                let mut given = ts.iter();
                let tangents: Vec<Option<Tensor>> =
                    nz.iter().map(|&n| if n { given.next().cloned() } else { None }).collect();
                let (ys, dys) = jvp_partial(|x| g.eval(x), x, &tangents);
                *found = dys.iter().map(Option::is_some).collect();
                ys.iter()
                    .zip(dys)
                    .zip(union)
                    .filter(|(_, &u)| u)
                    .map(|((y, dy), _)| dy.unwrap_or_else(|| y.zeros_like()))
                    .collect()
            })
        };
        let mut union = vec![false; self.outs.len()];
        for b in &self.branches {
            let mut found = Vec::new();
            stage_jvp(&b.graph, &[], &mut found);
            for (u, f) in union.iter_mut().zip(found) {
                *u |= f;
            }
        }
        let tangent = self.map(|g| stage_jvp(g, &union, &mut Vec::new()));
        let mut operands = x.to_vec();
        operands.extend(t[1..].iter().zip(&nz).filter(|(_, &n)| n).map(|(t, _)| t.clone().expect("nonzero")));
        let mut dys = bind_all(tangent, &operands).into_iter();
        union.iter().map(|&u| if u { dys.next() } else { None }).collect()
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        let batched: Vec<bool> = axes[1..].iter().map(Option::is_some).collect();
        let every = vec![true; self.outs.len()];
        let each = self.map(|g| batch_body(g, &batched, &every, size).0);
        let operands: Vec<Tensor> = x[1..]
            .iter()
            .zip(&axes[1..])
            .map(|(v, &a)| if a.is_some() { batch_first(v, a, size) } else { v.clone() })
            .collect();
        let outs: Outs<Tensor> = match axes[0] {
            None => {
                let all: Vec<Tensor> = std::iter::once(x[0].clone()).chain(operands).collect();
                bind_all(each, &all)
            }
            Some(a) => {
                // Every branch on the whole batch, then each member's pick.
                let n = self.branches.len();
                let index = batch_first(&x[0], Some(a), size)
                    .maximum(&Tensor::scalar(0i64))
                    .minimum(&Tensor::scalar(n as i64 - 1));
                let results: Vec<Vec<Tensor>> = each.branches.iter().map(|b| b.eval(&operands)).collect();
                (0..self.outs.len())
                    .map(|k| {
                        let first = results[0][k].clone();
                        let mut shape = vec![1; first.rank()];
                        shape[0] = size;
                        (1..n).fold(first, |acc, i| {
                            let pick = index.eq(&Tensor::scalar(i as i64)).reshape(&shape);
                            where_(&pick, &results[i][k], &acc)
                        })
                    })
                    .collect()
            }
        };
        let n = outs.len();
        (outs, smallvec::smallvec![Some(0); n])
    }
    fn transpose(&self, cts: &[Option<Tensor>], ins: &[Lin]) -> Vec<Option<Tensor>> {
        let known: Vec<bool> = ins[1..].iter().map(|l| !l.is_linear()).collect();
        let transposed = self.map(|g| transpose_body(g, &known));
        let index = ins[0].value().cloned().expect("switch: the index is never linear");
        let mut operands = vec![index];
        operands.extend(ins[1..].iter().filter_map(|l| l.value().cloned()));
        operands.extend(
            cts.iter()
                .zip(self.outs.iter())
                .map(|(c, a)| c.clone().unwrap_or_else(|| Tensor::zeros(&a.shape, a.dtype))),
        );
        let mut got = bind_all(transposed, &operands).into_iter();
        std::iter::once(None).chain(known.iter().map(|&k| if k { None } else { got.next() })).collect()
    }
    fn subgraph(&self) -> Option<&Graph> {
        Some(&self.branches[0].graph)
    }
    fn programs(&self) -> Option<Vec<&Graph>> {
        Some(self.branches.iter().map(|b| &*b.graph).collect())
    }
}

/// `branches[index](operand)`, with every branch staged, so that the choice
/// can depend on a traced value — JAX's `lax.switch`. The index (a 0-d
/// integer tensor) is clamped into range. Every branch must return outputs
/// of the same structure, shapes and dtypes. Under `vmap` with a batched
/// index every branch runs on the whole batch and each member takes its own.
///
/// ```
/// # use ferrax::prelude::*;
/// let x = Tensor::scalar(2.0);
/// let branches: [&dyn Fn(&Tensor) -> Tensor; 3] = [&|x| x.sin(), &|x| x * x, &|x| -x];
/// let y = switch(&Tensor::scalar(1i64), &branches, &x);
/// assert_eq!(y.item(), 4.0);
/// let batch = vmap(|i: &Tensor| switch(i, &branches, &x))(&Tensor::from_vec(vec![1i64, 2, 9], &[3]));
/// assert_eq!(batch.to_vec::<f64>(), vec![4.0, -2.0, -2.0]);
/// ```
///
/// # Panics
/// When there are no branches, the index is not a 0-d integer or bool
/// tensor, or two branches' outputs differ.
#[track_caller]
pub fn switch<I: Tree, O: Tree>(index: &Tensor, branches: &[&dyn Fn(&I) -> O], operand: &I) -> O {
    assert!(!branches.is_empty(), "switch: needs at least one branch");
    let index = as_index(index, "switch");
    let ops = operand.leaves();
    let in_avals = avals_of(&ops);
    let mut staged: Vec<(Graph, Vec<Tensor>, Vec<Aval>)> = Vec::new();
    let mut out_tree = None;
    for (i, branch) in branches.iter().enumerate() {
        let (graph, captured) = stage_user(&in_avals, |ins| {
            let y = branch(&operand.with_leaves(ins.to_vec()));
            let leaves = y.leaves();
            out_tree.get_or_insert(y);
            leaves
        });
        let outs: Vec<Aval> = graph.output_avals();
        if let Some((_, _, first)) = staged.first() {
            if outs != *first {
                let show = |a: &[Aval]| a.iter().map(Aval::to_string).collect::<Vec<_>>().join(", ");
                panic!(
                    "switch: branch {i} returns ({}) but branch 0 returns ({}); every branch must return the same \
                     structure, shapes and dtypes",
                    show(&outs),
                    show(first)
                );
            }
        }
        staged.push((graph, captured, outs));
    }
    // Every branch takes the operands, then what all of them captured.
    let captured: Vec<Tensor> = staged.iter().flat_map(|(_, c, _)| c.iter().cloned()).collect();
    let all_avals: Vec<Aval> = in_avals.iter().cloned().chain(avals_of(&captured)).collect();
    let mut at = ops.len();
    let graphs: Vec<Graph> = staged
        .iter()
        .map(|(g, c, _)| {
            let own = at..at + c.len();
            at += c.len();
            stage_closed(&all_avals, |ins| {
                let args: Vec<Tensor> = ins[own.clone()].iter().chain(&ins[..ops.len()]).cloned().collect();
                g.eval(&args)
            })
        })
        .collect();
    let operands: Vec<Tensor> = std::iter::once(index).chain(ops).chain(captured).collect();
    let outs = bind_all(Switch::new(graphs), &operands);
    out_tree.expect("staged").with_leaves(outs.into_vec())
}

/// `true_fn(operand)` if `pred` else `false_fn(operand)`, with both
/// branches staged, so the choice can depend on a traced value — JAX's
/// `lax.cond`. Under `vmap` with a batched `pred` both branches run on the
/// whole batch and each member takes its own, like a `where_`.
///
/// ```
/// # use ferrax::prelude::*;
/// let relu_ish = |x: &Tensor| cond(&x.gt(&Tensor::scalar(0.0)), |x: &Tensor| x.clone(), |x: &Tensor| x * 0.1, x);
/// assert_eq!(relu_ish(&Tensor::scalar(-2.0)).item(), -0.2);
/// assert_eq!(grad(relu_ish)(&Tensor::scalar(-2.0)).item(), 0.1);
/// let xs = Tensor::from_vec(vec![-1.0, 3.0], &[2]);
/// assert_eq!(vmap(relu_ish)(&xs).to_vec::<f64>(), vec![-0.1, 3.0]);
/// ```
///
/// # Panics
/// When `pred` is not a 0-d bool (or integer) tensor, or the branches'
/// outputs differ in structure, shape or dtype.
#[track_caller]
pub fn cond<I: Tree, O: Tree>(pred: &Tensor, true_fn: impl Fn(&I) -> O, false_fn: impl Fn(&I) -> O, operand: &I) -> O {
    let index = as_index(pred, "cond");
    let index = if pred.dtype() == DType::Bool { index } else { index.ne(&Tensor::scalar(0i64)).to_dtype(DType::I64) };
    switch(&index, &[&false_fn, &true_fn], operand)
}
