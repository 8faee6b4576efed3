//! Elementwise fusion: chains of elementwise equations over one shape and
//! float dtype become one [`Fused`] equation whose kernel runs the whole
//! chain over cache-sized tiles ([`FusedProgram`]), so the chain's
//! intermediate values are never arrays. Broadcasts into the chain are
//! read in place rather than materialised, and a sum, product, maximum or
//! minimum over trailing axes of a chain's value is computed with it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::rebuild::Rebuild;
use super::{Def, Eqn, Graph, Var};
use crate::array::fused::{FusedOp, FusedProgram, FusedReduce, FusedStep, Operand};
use crate::array::{Array, Aval, DType, ReduceOp};
use crate::core::{Kind, Outs, Param, Params, Primitive, Tensor};

/// What an equation contributes to a fused group.
#[derive(Clone, Copy)]
enum Role {
    /// A step of the kernel.
    Step(FusedOp),
    /// A broadcast of an outside value, read in place by the steps.
    Load,
    /// A reduction over this many trailing axes of a step's values: the
    /// group's last member.
    Reduce(ReduceOp, usize),
}

/// The role of `e` in a group over float dtype and shape (both returned), if it can be in one.
fn role(e: &Eqn, avals: &[Aval]) -> Option<(Role, DType, Vec<usize>)> {
    if e.outs.len() != 1 {
        return None;
    }
    let out = &avals[e.outs[0]];
    let kind = e.prim.kind();
    let role = match kind {
        _ if let Some(op) = elementwise(&kind) => Role::Step(op),
        Kind::Layout if e.prim.name() == "broadcast" => Role::Load,
        Kind::Reduce(op) => {
            let rank = avals[e.inputs[0]].rank();
            let axes = e.prim.params().into_iter().find_map(|(n, p)| match p {
                Param::List(a) if n == "axes" => Some(a),
                _ => None,
            })?;
            // The trailing axes only: then each output is one contiguous row.
            let trailing = !axes.is_empty() && axes.iter().enumerate().all(|(i, &a)| a == rank - axes.len() + i);
            if !trailing {
                return None;
            }
            let x = &avals[e.inputs[0]];
            return x.dtype.is_float().then(|| (Role::Reduce(op, axes.len()), x.dtype, x.shape.clone()));
        }
        _ => return None,
    };
    // A comparison's dtype is its operands'.
    let dtype = match role {
        Role::Step(FusedOp::Compare(_)) => avals[e.inputs[0]].dtype,
        _ => out.dtype,
    };
    dtype.is_float().then(|| (role, dtype, out.shape.clone()))
}

/// The elementwise operation a primitive of this kind computes, if any:
/// what a fused step (or a scalar program's instruction) runs for it.
pub(crate) fn elementwise(kind: &Kind) -> Option<FusedOp> {
    Some(match *kind {
        Kind::Unary(op) => FusedOp::Unary(op),
        Kind::Binary(op) => FusedOp::Binary(op),
        Kind::Compare(op) => FusedOp::Compare(op),
        Kind::Select => FusedOp::Select,
        _ => return None,
    })
}

struct Group {
    members: Vec<usize>,
    dtype: DType,
    shape: Vec<usize>,
    /// A value of the group was read outside it: later equations may not
    /// join, or the group (emitted at its last member) would come after that reader.
    sealed: bool,
}

impl Graph {
    /// This graph with every chain of two or more elementwise equations
    /// (unary and binary functions, comparisons, selects, and the broadcasts
    /// that feed them) over one shape and float dtype replaced by one
    /// `fused` equation, ending with a reduction of one of its values over
    /// trailing axes where one follows (summed in the eager order). Its kernel computes the chain tile by tile with the
    /// same per-element arithmetic, so every value is bit for bit what the
    /// unfused graph gives; the values the rest of the graph reads are its
    /// outputs. Equations join a group in program order, so no value is
    /// computed before its operands.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let g = make_graph(|x: &Tensor| (x.sin() * 2.0 + 1.0).exp().sum(), &Tensor::zeros(&[8], DType::F32));
    /// let f = g.fused();
    /// assert_eq!(f.eqns.len(), 1); // one fused chain, ending with the sum
    /// assert!(f.to_string().contains("fused[eqns="));
    /// let x = Tensor::linspace(-1.0, 1.0, 8, DType::F32);
    /// assert_eq!(f.eval(&[x.clone()])[0].item(), g.eval(&[x])[0].item());
    /// ```
    pub fn fused(&self) -> Graph {
        let (groups, group_of) = self.fusion_groups();
        let n = self.avals.len();
        // Which values are read outside the group that computes them.
        let mut escapes = vec![false; n];
        for (i, e) in self.eqns.iter().enumerate() {
            for &v in &e.inputs {
                if let Def::Eqn(p) = self.defs[v] {
                    if group_of[p].is_none() || group_of[p] != group_of[i] {
                        escapes[v] = true;
                    }
                }
            }
        }
        for &v in &self.outputs {
            escapes[v] = true;
        }

        let mut rb = Rebuild::new(self, &self.inputs);
        for (v, t) in &self.consts {
            rb.constant(*v, t);
        }
        for (i, e) in self.eqns.iter().enumerate() {
            let Some(g) = group_of[i] else {
                rb.copy(e);
                continue;
            };
            let group = &groups[g];
            // A broadcast that is read outside the group is an array anyway.
            if matches!(role(e, &self.avals), Some((Role::Load, ..))) && escapes[e.outs[0]] {
                rb.copy(e);
            }
            if *group.members.last().expect("groups are not empty") != i {
                continue;
            }
            let (prim, inputs, outputs) = self.fuse_group(group, &escapes);
            rb.equation(Arc::new(prim), inputs, &outputs, None);
        }
        let out = rb.finish(self.outputs.iter().copied());
        debug_assert!(out.check().is_ok(), "fused graph fails its check: {:?}", out.check());
        out
    }

    /// The groups worth fusing (two or more steps), and each equation's group.
    fn fusion_groups(&self) -> (Vec<Group>, Vec<Option<usize>>) {
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of: Vec<Option<usize>> = vec![None; self.eqns.len()];
        // The last group of each dtype and shape, which an equation may join.
        let mut latest: HashMap<(DType, Vec<usize>), usize> = HashMap::new();
        let producer = |v: Var| match self.defs[v] {
            Def::Eqn(p) => Some(p),
            _ => None,
        };
        for (i, e) in self.eqns.iter().enumerate() {
            let role = role(e, &self.avals);
            let joined = role.as_ref().and_then(|(role, dtype, shape)| {
                let open = |g: &usize| !groups[*g].sealed && groups[*g].dtype == *dtype && groups[*g].shape == *shape;
                // The chain of an operand, or else the last chain of its dtype and shape if still open: an
                // equation whose operands are all computed before it may run
                // in any group still open, which saves a pass over memory.
                let own = e.inputs.iter().filter_map(|&v| group_of[producer(v)?]).filter(open).max();
                if let Role::Reduce(..) = role {
                    // Only the chain that computes the operand, as a step.
                    let p = producer(e.inputs[0])?;
                    let is_step = matches!(self::role(&self.eqns[p], &self.avals), Some((Role::Step(_), ..)));
                    return own.filter(|_| is_step);
                }
                let key = (*dtype, shape.clone());
                let g = own.or_else(|| latest.get(&key).copied().filter(open)).unwrap_or_else(|| {
                    groups.push(Group { members: Vec::new(), dtype: *dtype, shape: key.1.clone(), sealed: false });
                    groups.len() - 1
                });
                latest.insert(key, g);
                Some(g)
            });
            if let Some(g) = joined {
                groups[g].members.push(i);
                group_of[i] = Some(g);
                // The reduction ends the chain's kernel.
                if let Some((Role::Reduce(..), ..)) = role {
                    groups[g].sealed = true;
                }
            }
            for &v in &e.inputs {
                if let Some(h) = producer(v).and_then(|p| group_of[p]) {
                    if Some(h) != joined {
                        groups[h].sealed = true;
                    }
                }
            }
        }
        // Fewer than two steps gain nothing: their equations stay as they are.
        let steps = |g: &Group| {
            let counts =
                |i: &&usize| matches!(role(&self.eqns[**i], &self.avals), Some((Role::Step(_) | Role::Reduce(..), ..)));
            g.members.iter().filter(counts).count()
        };
        let worth: Vec<bool> = groups.iter().map(|g| steps(g) >= 2).collect();
        let mut renumber = vec![None; groups.len()];
        let mut kept = Vec::new();
        for (g, group) in groups.into_iter().enumerate() {
            if worth[g] {
                renumber[g] = Some(kept.len());
                kept.push(group);
            }
        }
        let group_of = group_of.into_iter().map(|g| g.and_then(|g| renumber[g])).collect();
        (kept, group_of)
    }

    /// The fused primitive of a group, the variables it reads and the ones it defines.
    fn fuse_group(&self, group: &Group, escapes: &[bool]) -> (Fused, Vec<Var>, Vec<Var>) {
        let mut inputs: Vec<Var> = Vec::new();
        let mut operand: HashMap<Var, Operand> = HashMap::new();
        let mut input = |v: Var, inputs: &mut Vec<Var>| {
            *operand.entry(v).or_insert_with(|| {
                inputs.push(v);
                Operand::Input(inputs.len() - 1)
            })
        };
        let mut steps = Vec::new();
        let mut outputs = Vec::new();
        let mut out_vars = Vec::new();
        let mut reduce = None;
        // The group's own equations, as a graph of its inputs: what rules and printing use.
        let mut body_eqns: Vec<&Eqn> = Vec::new();
        let mut step_of: HashMap<Var, Operand> = HashMap::new();
        for &i in &group.members {
            let e = &self.eqns[i];
            let o = e.outs[0];
            match role(e, &self.avals).expect("members have a role").0 {
                Role::Load if escapes[o] => {
                    let op = input(o, &mut inputs);
                    step_of.insert(o, op);
                }
                Role::Load => {
                    let op = input(e.inputs[0], &mut inputs);
                    step_of.insert(o, op);
                    body_eqns.push(e);
                }
                Role::Step(op) => {
                    let mut args = Vec::with_capacity(e.inputs.len());
                    for &v in &e.inputs {
                        args.push(match step_of.get(&v) {
                            Some(&a) => a,
                            None => input(v, &mut inputs),
                        });
                    }
                    steps.push(FusedStep { op, args });
                    step_of.insert(o, Operand::Step(steps.len() - 1));
                    body_eqns.push(e);
                    if escapes[o] {
                        outputs.push(steps.len() - 1);
                        out_vars.push(o);
                    }
                }
                Role::Reduce(op, axes) => {
                    let Some(&Operand::Step(step)) = step_of.get(&e.inputs[0]) else {
                        unreachable!("a reduction joins only the chain whose step computes its operand")
                    };
                    reduce = Some((FusedReduce { op, step, axes }, o));
                    body_eqns.push(e);
                }
            }
        }
        // The reduction's value comes after the outputs.
        out_vars.extend(reduce.map(|(_, o)| o));
        let body = self.subgraph(&inputs, &body_eqns, &out_vars);
        let outs = out_vars.iter().map(|&v| self.avals[v].clone()).collect();
        let fused = Fused {
            body: Arc::new(body),
            program: Arc::new(match reduce {
                Some((r, _)) => FusedProgram::reducing(steps, outputs, r),
                None => FusedProgram::new(steps, outputs),
            }),
            dtype: group.dtype,
            shape: group.shape.clone(),
            outs,
        };
        (fused, inputs, out_vars)
    }

    /// The graph of `eqns` (in order) as a function of `inputs`, returning `outputs`.
    fn subgraph(&self, inputs: &[Var], eqns: &[&Eqn], outputs: &[Var]) -> Graph {
        let mut rb = Rebuild::new(self, inputs);
        for e in eqns {
            rb.copy(e);
        }
        rb.finish(outputs.iter().copied())
    }
}

/// A fused chain of elementwise equations: evaluated by its tile kernel;
/// differentiated and batched through its equations (`body`), like a call.
#[derive(Clone)]
pub struct Fused {
    body: Arc<Graph>,
    program: Arc<FusedProgram>,
    dtype: DType,
    shape: Vec<usize>,
    outs: Vec<Aval>,
}

impl fmt::Debug for Fused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fused({} equations over {}{:?})", self.body.eqns.len(), self.dtype, self.shape)
    }
}

impl Primitive for Fused {
    fn name(&self) -> &'static str {
        "fused"
    }
    fn params(&self) -> Params {
        vec![("eqns", Param::Usize(self.body.eqns.len())), ("program", Param::Id(Arc::as_ptr(&self.program) as usize))]
    }
    fn kind(&self) -> Kind {
        Kind::Call
    }
    fn shape(&self, _ins: &[&Aval]) -> Outs<Aval> {
        self.outs.iter().cloned().collect()
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        crate::array::backend_of(ins).fused(&self.program, ins, self.dtype, &self.shape).into_iter().collect()
    }
    fn eval_owned(&self, ins: Vec<Array>) -> Outs<Array> {
        if ins.iter().any(|a| a.device() != crate::array::Device::Cpu) {
            return self.eval(&ins.iter().collect::<Vec<_>>());
        }
        self.program.run_owned(ins, self.dtype, &self.shape).into_iter().collect()
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &[Tensor]) -> Outs<Option<Tensor>> {
        crate::transforms::call_tangents(&self.body, &self.outs, x, t)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        crate::transforms::call_batched(&self.body, x, axes, size)
    }
    fn programs(&self) -> Option<Vec<&Graph>> {
        Some(vec![&self.body])
    }
    fn subgraph(&self) -> Option<&Graph> {
        Some(&self.body)
    }
}
