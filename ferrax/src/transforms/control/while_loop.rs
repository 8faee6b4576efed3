//! `while_loop`: the [`While`] primitive, a body applied to a carry for as
//! long as a predicate of it holds.
//!
//! Operands are `[cond consts.., body consts.., init..]`; `cond` maps
//! `[cond consts.., carry..]` to a 0-d bool, `body` maps `[body consts..,
//! carry..]` to the next carry. Forward mode is a loop over the carry and
//! its tangent together. Reverse mode is refused: the number of steps is
//! known only once the loop has run, so there is nowhere to keep each
//! step's residuals (JAX refuses it too). Under `vmap` a batched predicate
//! runs the loop until every member is done, each member's carry frozen
//! once its own predicate fails.

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
use super::body::{batch_body, stage_closed, stage_user, Program};
use super::check_carry;

/// The while primitive (see the module documentation).
#[derive(Clone)]
pub(super) struct While {
    cond: Program,
    body: Program,
    n_cond: usize,
    n_body: usize,
    outs: Arc<Vec<Aval>>,
}

impl fmt::Debug for While {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "While({} + {} equations)", self.cond.graph.eqns.len(), self.body.graph.eqns.len())
    }
}

impl While {
    fn new(cond: Graph, body: Graph, n_cond: usize, n_body: usize) -> While {
        let (cond, body) = (Program::new(cond), Program::new(body));
        let outs = Arc::new(body.out_avals());
        While { cond, body, n_cond, n_body, outs }
    }
}

const REVERSE_REFUSED: &str = "while_loop: reverse-mode differentiation (grad, vjp, jacrev) is not supported: the \
    number of steps is known only when the loop has run, so each step's values cannot be kept for the backward \
    pass. Use fori_loop with static bounds, or scan, which store them; forward mode (jvp, jacfwd) works";

impl Primitive for While {
    fn name(&self) -> &'static str {
        "while"
    }
    fn params(&self) -> Params {
        vec![
            ("cond", Param::Id(self.cond.id())),
            ("body", Param::Id(self.body.id())),
            ("cond_consts", Param::Usize(self.n_cond)),
        ]
    }
    fn kind(&self) -> Kind {
        Kind::Call
    }
    fn shape(&self, ins: &[&Aval]) -> Outs<Aval> {
        let body = self.body.in_avals();
        assert!(
            ins.len() == self.n_cond + body.len() && ins[self.n_cond..].iter().zip(&body).all(|(a, b)| *a == b),
            "internal error: while applied to operands its body was not staged for"
        );
        self.outs.iter().cloned().collect()
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        let (cc, rest) = ins.split_at(self.n_cond);
        let (bc, init) = rest.split_at(self.n_body);
        let owned = |xs: &[&Array]| xs.iter().map(|a| (*a).clone()).collect::<Vec<Array>>();
        let (cc, bc) = (owned(cc), owned(bc));
        let mut carry = owned(init);
        loop {
            let mut args = cc.clone();
            args.extend(carry.iter().cloned());
            if !self.cond.run(args)[0].as_slice::<bool>()[0] {
                return carry.into_iter().collect();
            }
            let mut args = bc.clone();
            args.append(&mut carry);
            carry = self.body.run(args).into_vec();
        }
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &[Tensor]) -> Outs<Option<Tensor>> {
        let (nc, nb) = (self.n_cond, self.n_body);
        let nk = self.outs.len();
        let float = |a: &Aval| a.dtype.is_float();
        let mut nz: Vec<bool> = x.iter().zip(t).map(|(x, t)| t.is_some() && x.dtype().is_float()).collect();
        let body_avals = self.body.in_avals();
        // The body's jvp over [body consts, their tangents, carry, its tangents]; the carry's
        // tangent is nonzero when its start is or a step makes it so.
        let staged = loop {
            let bnz = &nz[nc..];
            let t_avals = |r: std::ops::Range<usize>| -> Vec<Aval> {
                r.filter(|&i| bnz[i]).map(|i| body_avals[i].clone()).collect()
            };
            let mut all: Vec<Aval> = body_avals[..nb].to_vec();
            all.extend(t_avals(0..nb));
            all.extend(body_avals[nb..].iter().cloned());
            all.extend(t_avals(nb..nb + nk));
            let mut out_nz = Vec::new();
            let g = stage_closed(&all, |ins| {
                let n_tc = bnz[..nb].iter().filter(|&&b| b).count();
                let (bc, rest) = ins.split_at(nb);
                let (tc, rest) = rest.split_at(n_tc);
                let (carry, tk) = rest.split_at(nk);
                let (mut tc, mut tk) = (tc.iter(), tk.iter());
                let tangents: Vec<Option<Tensor>> = (0..nb + nk)
                    .map(|i| {
                        if !bnz[i] {
                            None
                        } else if i < nb {
                            tc.next().cloned()
                        } else {
                            tk.next().cloned()
                        }
                    })
                    .collect();
                let primals: Vec<Tensor> = bc.iter().chain(carry).cloned().collect();
                let (ys, dys) = jvp_partial(|x| self.body.eval(x), &primals, &tangents);
                out_nz = dys.iter().map(Option::is_some).collect();
                let kept: Vec<Tensor> = ys
                    .iter()
                    .zip(dys)
                    .enumerate()
                    .filter(|(k, _)| bnz[nb + k])
                    .map(|(_, (y, dy))| dy.unwrap_or_else(|| y.zeros_like()))
                    .collect();
                ys.into_iter().chain(kept).collect()
            });
            let grown: Vec<usize> =
                (0..nk).filter(|&k| out_nz[k] && !nz[nc + nb + k] && float(&body_avals[nb + k])).collect();
            if grown.is_empty() {
                break g;
            }
            for k in grown {
                nz[nc + nb + k] = true;
            }
        };
        let n_tc = nz[nc..nc + nb].iter().filter(|&&b| b).count();
        let n_tk = nz[nc + nb..].iter().filter(|&&b| b).count();
        // The predicate ignores the tangents.
        let mut cond_avals = self.cond.in_avals();
        cond_avals.extend((0..nk).filter(|&k| nz[nc + nb + k]).map(|k| self.outs[k].clone()));
        let cond = stage_closed(&cond_avals, |ins| self.cond.eval(&ins[..nc + nk]));
        let joint = While::new(cond, staged, nc, nb + n_tc);
        let tangent = |i: usize| t[i].clone().unwrap_or_else(|| x[i].zeros_like());
        let mut operands: Vec<Tensor> = x[..nc + nb].to_vec();
        operands.extend((nc..nc + nb).filter(|&i| nz[i]).map(tangent));
        operands.extend(x[nc + nb..].iter().cloned());
        operands.extend((nc + nb..x.len()).filter(|&i| nz[i]).map(tangent));
        let outs = bind_all(joint, &operands);
        debug_assert_eq!(outs.len(), nk + n_tk);
        let mut dys = outs.into_iter().skip(nk);
        (0..nk).map(|k| if nz[nc + nb + k] { dys.next() } else { None }).collect()
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        let (nc, nb) = (self.n_cond, self.n_body);
        let nk = self.outs.len();
        let mut batched: Vec<bool> = axes.iter().map(Option::is_some).collect();
        let cond_mask = |b: &[bool]| -> Vec<bool> { b[..nc].iter().chain(&b[nc + nb..]).copied().collect() };
        // The carry's batching: from its start and the body, and all of it once the predicate is batched.
        let (pred_batched, cond_b, body) = loop {
            let (cond_b, pred) = batch_body(&self.cond.graph, &cond_mask(&batched), &[], size);
            let pred_batched = pred[0];
            if pred_batched && !batched[nc + nb..].iter().all(|&b| b) {
                batched[nc + nb..].iter_mut().for_each(|b| *b = true);
                continue;
            }
            let (body, out_b) = batch_body(&self.body.graph, &batched[nc..], &batched[nc + nb..], size);
            let grown: Vec<usize> = (0..nk).filter(|&k| out_b[k] && !batched[nc + nb + k]).collect();
            if grown.is_empty() {
                break (pred_batched, cond_b, body);
            }
            for k in grown {
                batched[nc + nb + k] = true;
            }
        };
        let operands: Vec<Tensor> = x
            .iter()
            .zip(axes)
            .zip(&batched)
            .map(|((v, &a), &b)| if b { batch_first(v, a, size) } else { v.clone() })
            .collect();
        let prim = if !pred_batched {
            While::new(cond_b, body, nc, nb)
        } else {
            // Run while any member's predicate holds; a member whose own fails keeps its carry.
            let cond_avals = cond_b.input_avals();
            let any = stage_closed(&cond_avals, |ins| {
                vec![cond_b.eval(ins)[0].to_dtype(DType::I64).max().gt(&Tensor::scalar(0i64))]
            });
            let body_avals: Vec<Aval> = cond_avals[..nc].iter().cloned().chain(body.input_avals()).collect();
            let guarded = stage_closed(&body_avals, |ins| {
                let (cc, rest) = ins.split_at(nc);
                let carry = &rest[nb..];
                let args: Vec<Tensor> = cc.iter().chain(carry).cloned().collect();
                let live = cond_b.eval(&args)[0].clone();
                let next = body.eval(rest);
                next.iter()
                    .zip(carry)
                    .map(|(n, c)| {
                        let mut shape = vec![1; n.rank()];
                        shape[0] = size;
                        where_(&live.reshape(&shape), n, c)
                    })
                    .collect()
            });
            let w = While::new(any, guarded, nc, nc + nb);
            let mut ops = operands[..nc].to_vec();
            ops.extend(operands.iter().cloned());
            let outs = bind_all(w, &ops);
            let n = outs.len();
            return (outs, smallvec::smallvec![Some(0); n]);
        };
        let outs = bind_all(prim, &operands);
        let out_axes = batched[nc + nb..].iter().map(|&b| b.then_some(0)).collect();
        (outs, out_axes)
    }
    fn transpose(&self, _cts: &[Option<Tensor>], _ins: &[Lin]) -> Vec<Option<Tensor>> {
        panic!("{REVERSE_REFUSED}")
    }
    fn subgraph(&self) -> Option<&Graph> {
        Some(&self.body.graph)
    }
    fn programs(&self) -> Option<Vec<&Graph>> {
        Some(vec![&self.cond.graph, &self.body.graph])
    }
}

/// Applies `body` to the carry while `cond_fn` of it is true — JAX's
/// `lax.while_loop`:
///
/// ```text
/// carry = init
/// while cond_fn(&carry) { carry = body(&carry) }
/// carry
/// ```
///
/// Both functions are traced once into one primitive, so the loop runs
/// under `jit` and `vmap` (a batched predicate runs until every member is
/// done, each member keeping its carry from when its own predicate failed).
/// Forward mode (`jvp`, `jacfwd`) differentiates through it; reverse mode
/// is refused with a message pointing to [`fori_loop`](super::fori_loop)
/// and [`scan`](super::scan), whose numbers of steps are known in advance.
///
/// ```
/// # use ferrax::prelude::*;
/// // Newton's method for sqrt(a), vmapped over several a.
/// let sqrt = |a: &Tensor| {
///     let step = |x: &Tensor| (x + a / x) * 0.5;
///     while_loop(|x: &Tensor| (step(x) - x).abs().gt(&Tensor::scalar(1e-12)), step, &Tensor::scalar(1.0))
/// };
/// let roots = vmap(sqrt)(&Tensor::from_vec(vec![4.0, 2.0, 100.0], &[3]));
/// assert!((roots - Tensor::from_vec(vec![2.0, 2f64.sqrt(), 10.0], &[3])).abs().max().item() < 1e-12);
/// ```
///
/// # Panics
/// When `cond_fn` does not return a 0-d bool tensor, or `body` returns a
/// carry of another structure, shape or dtype than `init`.
#[track_caller]
pub fn while_loop<C: Tree>(cond_fn: impl Fn(&C) -> Tensor, body: impl Fn(&C) -> C, init: &C) -> C {
    let init_l = init.leaves();
    let in_avals = avals_of(&init_l);
    let (cond, cond_captured) = stage_user(&in_avals, |ins| {
        let pred = cond_fn(&init.with_leaves(ins.to_vec()));
        assert!(
            pred.dtype() == DType::Bool && pred.rank() == 0,
            "while_loop: the condition returned {}; it must return a 0-d bool tensor (compare, then reduce with \
             any/all or index a single element)",
            pred.aval()
        );
        vec![pred]
    });
    let (body_graph, body_captured) = stage_user(&in_avals, |ins| {
        let next = body(&init.with_leaves(ins.to_vec())).leaves();
        check_carry("while_loop", &init_l, &next);
        next
    });
    let prim = While::new(cond, body_graph, cond_captured.len(), body_captured.len());
    let operands: Vec<Tensor> = cond_captured.into_iter().chain(body_captured).chain(init_l).collect();
    init.with_leaves(bind_all(prim, &operands).into_vec())
}

/// `body(i, carry)` for `i` from `lower` up to `upper` (exclusive) where the
/// bounds are 0-d i64 tensors that may be traced — JAX's `fori_loop` with
/// dynamic bounds. It is a [`while_loop`]: forward mode and `vmap` work
/// (batched bounds run each member its own number of steps), reverse mode
/// does not; with bounds known in Rust use [`fori_loop`](super::fori_loop).
///
/// ```
/// # use ferrax::prelude::*;
/// use ferrax::control::fori_loop_traced;
/// let n = Tensor::scalar(3i64);
/// let y = fori_loop_traced(&Tensor::scalar(0i64), &n, |i: &Tensor, c: &Tensor| c + i.to_dtype(DType::F64), &Tensor::scalar(0.0));
/// assert_eq!(y.item(), 3.0); // 0 + 1 + 2
/// ```
///
/// # Panics
/// When a bound is not a 0-d i64 tensor, or `body` returns a carry of another
/// structure, shape or dtype than `init`.
#[track_caller]
pub fn fori_loop_traced<C: Tree>(lower: &Tensor, upper: &Tensor, body: impl Fn(&Tensor, &C) -> C, init: &C) -> C {
    for (what, b) in [("lower", lower), ("upper", upper)] {
        assert!(
            b.dtype() == DType::I64 && b.rank() == 0,
            "fori_loop_traced: the {what} bound is {}; pass a 0-d i64 tensor",
            b.aval()
        );
    }
    let start = (lower.clone(), init.with_leaves(init.leaves()));
    let (_, out) = while_loop(
        |c: &(Tensor, C)| c.0.lt(upper),
        |c: &(Tensor, C)| (&c.0 + &Tensor::scalar(1i64), body(&c.0, &c.1)),
        &start,
    );
    out
}
