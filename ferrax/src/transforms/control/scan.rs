//! The `scan` primitive: a body applied along the leading axis of its
//! `xs`, threading a carry.
//!
//! Operands are `[consts.., init.., xs..]`; the body maps
//! `[consts.., carry.., x..]` to `[carry'.., y..]`; the outputs are the
//! final carry and every step's `y` stacked. As in JAX, every rule is a
//! transformation of the body: forward mode is a scan that also emits each
//! step's residuals followed by a scan of the linear part over them (so
//! reverse mode keeps one step's residuals per step and recomputes
//! nothing), the transpose is the transposed body scanned the other way,
//! and the batch rule scans the batched body.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::array::{slice, Array, Aval, Buffer, DType};
use crate::core::{bind_all, Kind, Lin, Outs, Param, Params, Primitive, Tensor};
use crate::graph::Graph;
use crate::prims::batching::{batch_first, move_axis};

use super::body::{batch_body, split, stage_closed, transpose_body, Program};

/// The scan primitive (see the module documentation).
#[derive(Clone)]
pub(super) struct Scan {
    body: Program,
    n_consts: usize,
    n_carry: usize,
    length: usize,
    reverse: bool,
    outs: Arc<Vec<Aval>>,
    /// Forward-mode plans by which operands have tangents.
    plans: Arc<Mutex<HashMap<Vec<bool>, Arc<JvpPlan>>>>,
}

impl fmt::Debug for Scan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scan({} equations, length {})", self.body.graph.eqns.len(), self.length)
    }
}

/// `aval` with a leading axis of `n`.
fn stacked(aval: &Aval, n: usize) -> Aval {
    let mut shape = vec![n];
    shape.extend_from_slice(&aval.shape);
    Aval::new(aval.dtype, &shape)
}

impl Scan {
    /// A scan of `body` (already checked: its carry outputs match its carry inputs).
    pub(super) fn new(body: Graph, n_consts: usize, n_carry: usize, length: usize, reverse: bool) -> Scan {
        let body = Program::new(body);
        let ins = body.in_avals();
        let outs = body.out_avals();
        assert!(
            outs.len() >= n_carry && ins[n_consts..n_consts + n_carry] == outs[..n_carry],
            "internal error: a scan body's carry outputs differ from its carry inputs"
        );
        let mut all: Vec<Aval> = outs[..n_carry].to_vec();
        all.extend(outs[n_carry..].iter().map(|a| stacked(a, length)));
        Scan { body, n_consts, n_carry, length, reverse, outs: Arc::new(all), plans: Default::default() }
    }

    fn n_ys(&self) -> usize {
        self.outs.len() - self.n_carry
    }

    /// This scan's shape with another body.
    fn with_body(&self, body: Graph, n_consts: usize, n_carry: usize, reverse: bool) -> Scan {
        Scan::new(body, n_consts, n_carry, self.length, reverse)
    }

    /// The forward-mode plan for tangents on the operands marked in `nz`.
    fn plan(&self, nz: Vec<bool>) -> Arc<JvpPlan> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans.entry(nz.clone()).or_insert_with(|| Arc::new(JvpPlan::new(self, nz))).clone()
    }
}

/// `n` zeros of `dtype`.
fn zeroed(dtype: DType, n: usize) -> Buffer {
    match dtype {
        DType::F16 => Buffer::F16(vec![half::f16::ZERO; n]),
        DType::BF16 => Buffer::BF16(vec![half::bf16::ZERO; n]),
        DType::F32 => Buffer::F32(vec![0.0; n]),
        DType::F64 => Buffer::F64(vec![0.0; n]),
        DType::I64 => Buffer::I64(vec![0; n]),
        DType::Bool => Buffer::Bool(vec![false; n]),
    }
}

/// Copies `y` into row `t` of `rows`, a buffer of rows of `y`'s size.
fn write_row(rows: &mut Buffer, t: usize, y: &Array) {
    fn put<T: Copy>(rows: &mut [T], t: usize, y: &[T]) {
        rows[t * y.len()..(t + 1) * y.len()].copy_from_slice(y);
    }
    match (rows, y.buffer()) {
        (Buffer::F16(r), Buffer::F16(v)) => put(r, t, v),
        (Buffer::BF16(r), Buffer::BF16(v)) => put(r, t, v),
        (Buffer::F32(r), Buffer::F32(v)) => put(r, t, v),
        (Buffer::F64(r), Buffer::F64(v)) => put(r, t, v),
        (Buffer::I64(r), Buffer::I64(v)) => put(r, t, v),
        (Buffer::Bool(r), Buffer::Bool(v)) => put(r, t, v),
        _ => unreachable!("a scan body's output has the dtype it was staged with"),
    }
}

/// The `t`-th row (along axis 0) of `x`.
fn row(x: &Array, t: usize) -> Array {
    let mut starts = vec![0; x.rank()];
    let mut ends = x.shape().to_vec();
    starts[0] = t;
    ends[0] = t + 1;
    slice(x, &starts, &ends).reshape(&x.shape()[1..])
}

impl Primitive for Scan {
    fn name(&self) -> &'static str {
        "scan"
    }
    fn params(&self) -> Params {
        vec![
            ("body", Param::Id(self.body.id())),
            ("consts", Param::Usize(self.n_consts)),
            ("carry", Param::Usize(self.n_carry)),
            ("length", Param::Usize(self.length)),
            ("reverse", Param::Bool(self.reverse)),
        ]
    }
    fn kind(&self) -> Kind {
        Kind::Call
    }
    fn shape(&self, ins: &[&Aval]) -> Outs<Aval> {
        let body = self.body.in_avals();
        let fixed = self.n_consts + self.n_carry;
        let ok = ins.len() == body.len()
            && ins[..fixed].iter().zip(&body).all(|(a, b)| *a == b)
            && ins[fixed..].iter().zip(&body[fixed..]).all(|(a, b)| **a == stacked(b, self.length));
        assert!(ok, "internal error: scan applied to operands its body was not staged for");
        self.outs.iter().cloned().collect()
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        self.eval_owned(ins.iter().map(|a| (*a).clone()).collect())
    }
    fn eval_owned(&self, mut ins: Vec<Array>) -> Outs<Array> {
        let xs = ins.split_off(self.n_consts + self.n_carry);
        let mut carry = ins.split_off(self.n_consts);
        let consts = ins;
        // Each step's outputs are written into their rows as they come.
        let mut ys: Vec<Buffer> = self.outs[self.n_carry..].iter().map(|a| zeroed(a.dtype, a.size())).collect();
        for i in 0..self.length {
            let t = if self.reverse { self.length - 1 - i } else { i };
            let mut args = consts.clone();
            args.append(&mut carry);
            args.extend(xs.iter().map(|x| row(x, t)));
            let mut outs = self.body.run(args).into_vec();
            for (rows, y) in ys.iter_mut().zip(outs.drain(self.n_carry..)) {
                write_row(rows, t, &y);
            }
            carry = outs;
        }
        let mut out: Outs<Array> = carry.into_iter().collect();
        for (rows, aval) in ys.into_iter().zip(&self.outs[self.n_carry..]) {
            out.push(Array::new(&aval.shape, rows));
        }
        out
    }
    fn jvp_outputs(&self, x: &[Tensor], t: &[Option<Tensor>]) -> Option<Vec<Tensor>> {
        let plan = self.plan(tangent_mask(x, t));
        Some(plan.forward(x))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &[Tensor]) -> Outs<Option<Tensor>> {
        let plan = self.plan(tangent_mask(x, t));
        let computed;
        let ans = if ans.len() > self.outs.len() {
            ans
        } else {
            computed = plan.forward(x);
            &computed
        };
        plan.tangents(self, x, t, &ans[self.outs.len()..])
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        let (nc, nk) = (self.n_consts, self.n_carry);
        let mut batched: Vec<bool> = axes.iter().map(Option::is_some).collect();
        // A carry is batched when its initial value is or when a step makes it so.
        let (body, out_batched) = loop {
            let (body, out_batched) = batch_body(&self.body.graph, &batched, &batched[nc..nc + nk], size);
            let grown: Vec<usize> = (0..nk).filter(|&k| out_batched[k] && !batched[nc + k]).collect();
            if grown.is_empty() {
                break (body, out_batched);
            }
            for k in grown {
                batched[nc + k] = true;
            }
        };
        let operands: Vec<Tensor> = x
            .iter()
            .zip(axes)
            .enumerate()
            .map(|(i, (v, &a))| {
                if i < nc + nk {
                    if batched[i] {
                        batch_first(v, a, size)
                    } else {
                        v.clone()
                    }
                } else {
                    match a {
                        Some(a) => move_axis(v, a, 1),
                        None => v.clone(),
                    }
                }
            })
            .collect();
        let outs = bind_all(self.with_body(body, nc, nk, self.reverse), &operands);
        let out_axes = out_batched.iter().enumerate().map(|(k, &b)| b.then_some(if k < nk { 0 } else { 1 })).collect();
        (outs, out_axes)
    }
    fn transpose(&self, cts: &[Option<Tensor>], ins: &[Lin]) -> Vec<Option<Tensor>> {
        let (nc, nk) = (self.n_consts, self.n_carry);
        let n_in = ins.len();
        // Residuals are the constant consts and xs; the carry is linear.
        let known: Vec<bool> =
            ins.iter().enumerate().map(|(i, l)| !l.is_linear() && !(nc..nc + nk).contains(&i)).collect();
        let lin_consts: Vec<usize> = (0..nc).filter(|&i| !known[i]).collect();
        let lin_xs: Vec<usize> = (nc + nk..n_in).filter(|&i| !known[i]).collect();
        let res: Vec<usize> = (0..n_in).filter(|&i| known[i]).collect();
        let res_consts = res.iter().filter(|&&i| i < nc).count();
        // The body's transpose: [residuals.., ct carry'.., ct y..] -> [ct lin consts.., ct carry.., ct lin xs..].
        let tb = transpose_body(&self.body.graph, &known);
        let body_avals = self.body.in_avals();
        let out_avals = self.body.out_avals();
        let n_ys = self.n_ys();
        // The transposed scan's body: consts = constant consts; carry =
        // (sums of the linear consts' cotangents, the carry's cotangent);
        // xs = (the ys' cotangents, the constant xs).
        let mut t_avals: Vec<Aval> = res[..res_consts].iter().map(|&i| body_avals[i].clone()).collect();
        t_avals.extend(lin_consts.iter().map(|&i| body_avals[i].clone()));
        t_avals.extend(out_avals[..nk].iter().cloned());
        t_avals.extend(out_avals[nk..].iter().cloned());
        t_avals.extend(res[res_consts..].iter().map(|&i| body_avals[i].clone()));
        let n_lc = lin_consts.len();
        let body = stage_closed(&t_avals, |a| {
            let (rc, rest) = a.split_at(res_consts);
            let (acc, rest) = rest.split_at(n_lc);
            let (ct_carry, rest) = rest.split_at(nk);
            let (ct_y, rx) = rest.split_at(n_ys);
            let args: Vec<Tensor> = rc.iter().chain(rx).chain(ct_carry).chain(ct_y).cloned().collect();
            let got = tb.eval(&args);
            let (ct_lc, rest) = got.split_at(n_lc);
            let (ct_k, ct_lx) = rest.split_at(nk);
            let mut outs: Vec<Tensor> = acc.iter().zip(ct_lc).map(|(s, c)| s + c).collect();
            outs.extend(ct_k.iter().cloned());
            outs.extend(ct_lx.iter().cloned());
            outs
        });
        let value = |i: usize| ins[i].value().cloned().expect("a residual");
        let zeros = |a: &Aval| Tensor::zeros(&a.shape, a.dtype);
        let mut operands: Vec<Tensor> = res[..res_consts].iter().map(|&i| value(i)).collect();
        operands.extend(lin_consts.iter().map(|&i| zeros(&body_avals[i])));
        operands.extend(cts.iter().zip(self.outs.iter()).map(|(c, a)| c.clone().unwrap_or_else(|| zeros(a))));
        operands.extend(res[res_consts..].iter().map(|&i| value(i)));
        let outs = bind_all(self.with_body(body, res_consts, n_lc + nk, !self.reverse), &operands);
        let mut result: Vec<Option<Tensor>> = vec![None; n_in];
        for (&i, ct) in lin_consts.iter().zip(&outs[..n_lc]) {
            result[i] = Some(ct.clone());
        }
        for k in 0..nk {
            if ins[nc + k].is_linear() {
                result[nc + k] = Some(outs[n_lc + k].clone());
            }
        }
        for (&i, ct) in lin_xs.iter().zip(&outs[n_lc + nk..]) {
            result[i] = Some(ct.clone());
        }
        result
    }
    fn subgraph(&self) -> Option<&Graph> {
        Some(&self.body.graph)
    }
    fn programs(&self) -> Option<Vec<&Graph>> {
        Some(vec![&self.body.graph])
    }
}

/// Which operands carry a tangent (float ones only).
fn tangent_mask(x: &[Tensor], t: &[Option<Tensor>]) -> Vec<bool> {
    x.iter().zip(t).map(|(x, t)| t.is_some() && x.dtype().is_float()).collect()
}

/// Where a residual of the split body comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Residual {
    /// A const operand, passed as it is.
    Const(usize),
    /// An `xs` operand, passed as it is.
    Xs(usize),
    /// Computed from the consts alone: once, before the loop.
    Invariant,
    /// Computed each step: stacked by the forward scan.
    Stacked,
}

/// Forward mode of one scan for one pattern of tangents: a forward scan
/// that also stacks each step's residuals, the residuals that do not
/// change between steps computed once, and a scan of the body's linear part.
struct JvpPlan {
    fwd: Scan,
    invariant: Arc<Graph>,
    sources: Vec<Residual>,
    tangent: Scan,
    /// Operands with tangents; the carry's after the fixpoint.
    nz: Vec<bool>,
    /// Outputs with tangents.
    out_nz: Vec<bool>,
}

impl JvpPlan {
    fn new(scan: &Scan, mut nz: Vec<bool>) -> JvpPlan {
        let (nc, nk) = (scan.n_consts, scan.n_carry);
        let g = &scan.body.graph;
        let body_avals = scan.body.in_avals();
        // The carry has a tangent when its initial value has or a step gives it one.
        let sp = loop {
            let sp = split(g, &nz, &nz[nc..nc + nk]);
            let grown: Vec<usize> =
                (0..nk).filter(|&k| sp.out_nz[k] && !nz[nc + k] && body_avals[nc + k].dtype.is_float()).collect();
            if grown.is_empty() {
                break sp;
            }
            for k in grown {
                nz[nc + k] = true;
            }
        };
        let n_out = g.outputs.len();
        let n_res = sp.fwd.outputs.len() - n_out;
        let n_in = g.inputs.len();
        let varying: Vec<bool> = (0..n_in).map(|i| i >= nc).collect();
        let depends = sp.fwd.reaches(&varying);
        let sources: Vec<Residual> = (0..n_res)
            .map(|r| {
                let v = sp.fwd.outputs[n_out + r];
                match sp.fwd.inputs.iter().position(|&u| u == v) {
                    Some(i) if i < nc => Residual::Const(i),
                    Some(i) if i >= nc + nk => Residual::Xs(i - nc - nk),
                    _ if !depends[n_out + r] => Residual::Invariant,
                    _ => Residual::Stacked,
                }
            })
            .collect();
        let of = |kind: fn(&Residual) -> bool| -> Vec<usize> { (0..n_res).filter(|&r| kind(&sources[r])).collect() };
        let invariant = of(|s| *s == Residual::Invariant);
        let stacked = of(|s| *s == Residual::Stacked);
        let from_consts = of(|s| matches!(s, Residual::Const(_)));
        let from_xs = of(|s| matches!(s, Residual::Xs(_)));
        // The forward scan: the body's outputs, then the stacked residuals.
        let fwd_outs: Vec<usize> = (0..n_out).chain(stacked.iter().map(|r| n_out + r)).collect();
        let fwd = scan.with_body(sp.fwd.restricted(&(0..n_in).collect::<Vec<_>>(), &fwd_outs), nc, nk, scan.reverse);
        let inv_outs: Vec<usize> = invariant.iter().map(|r| n_out + r).collect();
        let invariant_graph = Arc::new(sp.fwd.restricted(&(0..nc).collect::<Vec<_>>(), &inv_outs));
        // The linear scan: its inputs are the tangents (in operand order), then the residuals.
        let n_t = nz.iter().filter(|&&b| b).count();
        let t_index = |i: usize| nz[..i].iter().filter(|&&b| b).count();
        let t_of = |range: std::ops::Range<usize>| -> Vec<usize> { range.filter(|&i| nz[i]).map(t_index).collect() };
        let res_index = |rs: &[usize]| -> Vec<usize> { rs.iter().map(|r| n_t + r).collect() };
        let lin_consts: Vec<usize> =
            [res_index(&invariant), res_index(&from_consts), t_of(0..nc)].into_iter().flatten().collect();
        let lin_carry = t_of(nc..nc + nk);
        let lin_xs: Vec<usize> =
            [res_index(&stacked), res_index(&from_xs), t_of(nc + nk..n_in)].into_iter().flatten().collect();
        let order: Vec<usize> = lin_consts.iter().chain(&lin_carry).chain(&lin_xs).copied().collect();
        let all_outs: Vec<usize> = (0..sp.lin.outputs.len()).collect();
        let tangent =
            scan.with_body(sp.lin.restricted(&order, &all_outs), lin_consts.len(), lin_carry.len(), scan.reverse);
        JvpPlan { fwd, invariant: invariant_graph, sources, tangent, nz, out_nz: sp.out_nz }
    }

    /// The outputs, then the stacked residuals, then the invariant ones.
    fn forward(&self, x: &[Tensor]) -> Vec<Tensor> {
        let mut outs = bind_all(self.fwd.clone(), x).into_vec();
        outs.extend(self.invariant.eval(&x[..self.fwd.n_consts]));
        outs
    }

    /// The outputs' tangents, from the residuals `forward` returned after the outputs.
    fn tangents(&self, scan: &Scan, x: &[Tensor], t: &[Option<Tensor>], extra: &[Tensor]) -> Outs<Option<Tensor>> {
        let (nc, nk) = (scan.n_consts, scan.n_carry);
        let n_stacked = self.sources.iter().filter(|s| **s == Residual::Stacked).count();
        let (stacked, invariant) = extra.split_at(n_stacked);
        let tangent = |i: usize| t[i].clone().unwrap_or_else(|| x[i].zeros_like());
        let wanted =
            |range: std::ops::Range<usize>| -> Vec<Tensor> { range.filter(|&i| self.nz[i]).map(tangent).collect() };
        let mut operands: Vec<Tensor> = invariant.to_vec();
        for s in &self.sources {
            if let Residual::Const(i) = s {
                operands.push(x[*i].clone());
            }
        }
        operands.extend(wanted(0..nc));
        operands.extend(wanted(nc..nc + nk));
        operands.extend(stacked.iter().cloned());
        for s in &self.sources {
            if let Residual::Xs(j) = s {
                operands.push(x[nc + nk + j].clone());
            }
        }
        operands.extend(wanted(nc + nk..x.len()));
        let mut touts = bind_all(self.tangent.clone(), &operands).into_iter();
        self.out_nz.iter().map(|&b| if b { touts.next() } else { None }).collect()
    }
}
