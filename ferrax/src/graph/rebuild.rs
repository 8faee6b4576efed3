//! Building one graph from the variables of another, in order: what the
//! passes (simplification, fusion) produce, each new variable numbered as it
//! is defined.

use std::sync::Arc;

use super::{Def, Eqn, Graph, Var};
use crate::core::{Primitive, Tensor};

/// A graph being built from `from`'s variables.
pub(super) struct Rebuild<'g> {
    from: &'g Graph,
    out: Graph,
    /// The new variable of each of `from`'s, once defined.
    new_of: Vec<Option<Var>>,
}

impl<'g> Rebuild<'g> {
    /// A graph whose inputs are `inputs`, variables of `from`, in order.
    pub(super) fn new(from: &'g Graph, inputs: &[Var]) -> Rebuild<'g> {
        let mut r = Rebuild { from, out: Graph::empty(), new_of: vec![None; from.avals.len()] };
        for (k, &v) in inputs.iter().enumerate() {
            let nv = r.define(v, Def::Input(k));
            r.out.inputs.push(nv);
        }
        r
    }

    /// The next constant: `old`, with value `t`.
    pub(super) fn constant(&mut self, old: Var, t: &Tensor) {
        let nv = self.define(old, Def::Const(self.out.consts.len()));
        self.out.consts.push((nv, t.clone()));
    }

    /// The next constant `old` as a broadcast of the scalar `value`, every
    /// one of its elements: the program holds one element, and the array
    /// is made when the program runs, where an operation that dies with it
    /// (a scatter onto zeros) may write over it.
    pub(super) fn splat(&mut self, old: Var, value: Tensor) {
        let shape = self.from.avals[old].shape.clone();
        self.out.avals.push(value.aval().clone());
        self.out.defs.push(Def::Const(self.out.consts.len()));
        let scalar = self.out.avals.len() - 1;
        self.out.consts.push((scalar, value));
        let nv = self.define(old, Def::Eqn(self.out.eqns.len()));
        let prim = Arc::new(crate::prims::Broadcast { shape });
        self.out.eqns.push(Eqn { prim, inputs: vec![scalar], outs: smallvec::smallvec![nv], origin: None });
    }

    /// The next equation: `prim` of `inputs`, defining `outs` (all of `from`).
    pub(super) fn equation(
        &mut self,
        prim: Arc<dyn Primitive>,
        inputs: impl IntoIterator<Item = Var>,
        outs: &[Var],
        origin: Option<&'static str>,
    ) {
        let k = self.out.eqns.len();
        let inputs = inputs.into_iter().map(|v| self.var(v)).collect();
        let outs = outs.iter().map(|&o| self.define(o, Def::Eqn(k))).collect();
        self.out.eqns.push(Eqn { prim, inputs, outs, origin });
    }

    /// `e` itself.
    pub(super) fn copy(&mut self, e: &Eqn) {
        self.equation(e.prim.clone(), e.inputs.iter().copied(), &e.outs, e.origin);
    }

    /// The graph, returning `outputs` (of `from`).
    pub(super) fn finish(mut self, outputs: impl IntoIterator<Item = Var>) -> Graph {
        self.out.outputs = outputs.into_iter().map(|v| self.var(v)).collect();
        self.out
    }

    /// The new variable of `old`, which must be defined already.
    fn var(&self, old: Var) -> Var {
        self.new_of[old].expect("operands are defined before use")
    }

    fn define(&mut self, old: Var, def: Def) -> Var {
        self.out.avals.push(self.from.avals[old].clone());
        self.out.defs.push(def);
        let v = self.out.avals.len() - 1;
        self.new_of[old] = Some(v);
        v
    }
}
