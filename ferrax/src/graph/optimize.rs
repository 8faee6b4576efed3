//! Graph-to-graph simplification before a staged program is run many times
//! (`jit`): common subexpressions shared, dead equations and constants
//! dropped. Both passes keep every value bit for bit: no operation is
//! reordered or rewritten.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::{Def, Eqn, Graph, Var};
use crate::core::Primitive;

/// An equation's identity for sharing: its primitive with parameters and its operands.
struct Key(Arc<dyn Primitive>, Vec<Var>);

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.1 == other.1 && *self.0 == *other.0
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (*self.0).hash(state);
        self.1.hash(state);
    }
}

impl Graph {
    /// This graph with repeated equations computed once (the same primitive
    /// and parameters on the same operands) and with the equations and
    /// constants that no output depends on removed. Inputs are kept, so the
    /// signature does not change.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let g = make_graph(|x: &Tensor| { let _unused = x.exp(); x.sin() + x.sin() }, &Tensor::scalar(1.0));
    /// assert_eq!(g.eqns.len(), 4);
    /// assert_eq!(g.optimized().to_string(), "{ lambda a:f64[] .\n    b:f64[] = sin a\n    c:f64[] = add b b\n  in (c) }");
    /// ```
    pub fn optimized(&self) -> Graph {
        let n = self.avals.len();
        // Common subexpressions: each variable's representative.
        let mut rep: Vec<Var> = (0..n).collect();
        let mut seen: HashMap<Key, usize> = HashMap::new();
        let mut shared = vec![false; self.eqns.len()];
        for (i, e) in self.eqns.iter().enumerate() {
            let key = Key(e.prim.clone(), e.inputs.iter().map(|&v| rep[v]).collect());
            match seen.get(&key) {
                Some(&j) => {
                    for (&o, &first) in e.outs.iter().zip(&self.eqns[j].outs) {
                        rep[o] = first;
                    }
                    shared[i] = true;
                }
                None => {
                    seen.insert(key, i);
                }
            }
        }
        // Dead code: what the outputs need, walking back.
        let mut live = vec![false; n];
        for &v in &self.outputs {
            live[rep[v]] = true;
        }
        let mut keep = vec![false; self.eqns.len()];
        for (i, e) in self.eqns.iter().enumerate().rev() {
            if !shared[i] && e.outs.iter().any(|&o| live[o]) {
                keep[i] = true;
                for &v in &e.inputs {
                    live[rep[v]] = true;
                }
            }
        }
        // Renumber in the original order: inputs, live constants, kept equations.
        let mut new_of: Vec<Option<Var>> = vec![None; n];
        let mut out = Graph::empty();
        let fresh = |out: &mut Graph, new_of: &mut [Option<Var>], old: Var, def: Def| {
            out.avals.push(self.avals[old].clone());
            out.defs.push(def);
            new_of[old] = Some(out.avals.len() - 1);
            out.avals.len() - 1
        };
        for (k, &v) in self.inputs.iter().enumerate() {
            let nv = fresh(&mut out, &mut new_of, v, Def::Input(k));
            out.inputs.push(nv);
        }
        for (v, t) in &self.consts {
            if live[*v] {
                let def = Def::Const(out.consts.len());
                let nv = fresh(&mut out, &mut new_of, *v, def);
                out.consts.push((nv, t.clone()));
            }
        }
        for (i, e) in self.eqns.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let k = out.eqns.len();
            let inputs = e.inputs.iter().map(|&v| new_of[rep[v]].expect("operands are defined first")).collect();
            let outs = e.outs.iter().map(|&o| fresh(&mut out, &mut new_of, o, Def::Eqn(k))).collect();
            out.eqns.push(Eqn { prim: e.prim.clone(), inputs, outs, origin: e.origin });
        }
        out.outputs = self.outputs.iter().map(|&v| new_of[rep[v]].expect("outputs are defined")).collect();
        debug_assert!(out.check().is_ok(), "optimized graph fails its check: {:?}", out.check());
        out
    }
}
