//! Graph-to-graph simplification before a staged program is run many times
//! (`jit`): common subexpressions shared, dead equations and constants
//! dropped, large constants of one repeated value made by a broadcast. Every
//! value is kept bit for bit: no operation is reordered or rewritten.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::rebuild::Rebuild;
use super::{Eqn, Graph, Var};
use crate::array::{Array, Aval, Buffer};
use crate::core::{Param, Primitive, Tensor};

/// Constants larger than this are not computed ahead: the program would
/// carry another copy of them.
const FOLD_MAX_ELEMENTS: usize = 1 << 16;

/// The outputs of `e` computed now, when every operand is known and the
/// outputs are small.
fn foldable(e: &Eqn, ins: &[Var], known: &[Option<Tensor>], avals: &[Aval]) -> Option<Vec<Tensor>> {
    let values: Vec<Array> = ins.iter().map(|&v| known[v].as_ref()?.array().cloned()).collect::<Option<_>>()?;
    if e.outs.iter().any(|&o| avals[o].shape.iter().product::<usize>() > FOLD_MAX_ELEMENTS) {
        return None;
    }
    let refs: Vec<&Array> = values.iter().collect();
    Some(e.prim.eval(&refs).into_iter().map(Tensor::from_array).collect())
}

/// The one value, as a scalar, of a large constant whose elements all have
/// the same bits (the zeros a gather's transpose scatters onto: 16 MB for a
/// max pool over 128 images of 32 channels at 32×32), which the program
/// then makes as a broadcast when it runs.
fn splat(t: &Tensor) -> Option<Tensor> {
    let a = t.array()?;
    if a.size() <= FOLD_MAX_ELEMENTS || a.device() != crate::array::Device::Cpu {
        return None;
    }
    fn one<T: Copy, B: PartialEq>(v: &[T], bits: impl Fn(T) -> B) -> Option<T> {
        let first = *v.first()?;
        v.iter().all(|&x| bits(x) == bits(first)).then_some(first)
    }
    let buf = match a.buffer() {
        Buffer::F16(v) => Buffer::F16(vec![one(v, |x| x.to_bits())?]),
        Buffer::BF16(v) => Buffer::BF16(vec![one(v, |x| x.to_bits())?]),
        Buffer::F32(v) => Buffer::F32(vec![one(v, f32::to_bits)?]),
        Buffer::F64(v) => Buffer::F64(vec![one(v, f64::to_bits)?]),
        Buffer::I64(v) => Buffer::I64(vec![one(v, |x| x)?]),
        Buffer::Bool(v) => Buffer::Bool(vec![one(v, |x| x)?]),
    };
    Some(Tensor::from_array(Array::new(&[], buf)))
}

/// The operand `e` returns unchanged, bit for bit: a reshape, broadcast or
/// conversion to its own aval, a product with or quotient by a known tensor
/// of ones and a difference with one of +0s (none of them broadcasting: that
/// would change the shape), `powi(x, 1)`, the negation of a negation, a
/// permutation of a permutation that restores the order. (`x + 0` is not:
/// -0 + 0 is +0; `x - 0` is, as -0 - 0 is -0.)
fn identity(
    e: &Eqn,
    ins: &[Var],
    known: &[Option<Tensor>],
    producer: &[Option<usize>],
    eqns: &[Eqn],
    avals: &[Aval],
    rep: &[Var],
) -> Option<Var> {
    let out = &avals[*e.outs.first()?];
    // Every element of a known operand passes `test`.
    let all = |v: Var, test: fn(f64) -> bool| {
        known[v].as_ref().and_then(|t| t.array()).is_some_and(|a| (0..a.size()).all(|i| test(a.get_f64(i))))
    };
    let one = |x: f64| x == 1.0;
    let plus_zero = |x: f64| x == 0.0 && x.is_sign_positive();
    match (e.prim.name(), ins) {
        ("reshape" | "broadcast" | "convert", &[x]) if &avals[x] == out => Some(x),
        ("mul", &[a, b]) if all(b, one) && &avals[a] == out => Some(a),
        ("mul", &[a, b]) if all(a, one) && &avals[b] == out => Some(b),
        ("div", &[a, b]) if all(b, one) && &avals[a] == out => Some(a),
        ("sub", &[a, b]) if all(b, plus_zero) && &avals[a] == out => Some(a),
        ("powi", &[x]) if param(e, "n") == Some(Param::Int(1)) => Some(x),
        ("neg", &[x]) => {
            let inner = &eqns[producer[x]?];
            (inner.prim.name() == "neg").then(|| rep[inner.inputs[0]])
        }
        ("permute", &[x]) => {
            let inner = &eqns[producer[x]?];
            let (Some(Param::List(outer)), Some(Param::List(first))) = (param(e, "perm"), param(inner, "perm")) else {
                return None;
            };
            // Output axis i is the inner result's axis outer[i], which is x's axis first[outer[i]].
            let restores = inner.prim.name() == "permute" && outer.iter().enumerate().all(|(i, &o)| first[o] == i);
            restores.then(|| rep[inner.inputs[0]])
        }
        _ => None,
    }
}

/// The parameter of `e`'s primitive called `name`.
fn param(e: &Eqn, name: &str) -> Option<Param> {
    e.prim.params().into_iter().find(|(n, _)| *n == name).map(|(_, p)| p)
}

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
    /// This graph simplified, every value bit for bit as before: equations
    /// whose operands are all known computed now (constant folding, for
    /// results up to 65 536 elements); operations that return an operand
    /// unchanged removed (`x * 1` without broadcasting, `-(-x)`, reshapes,
    /// broadcasts and conversions to the same shape and dtype); repeated
    /// equations computed once (the same primitive and parameters on the
    /// same operands); the equations and constants that no output depends
    /// on dropped; and constants of more than 65 536 elements that all have
    /// the same bits (a gather's transpose scatters onto such zeros) made by
    /// a broadcast of one element when the program runs. Inputs are kept,
    /// so the signature does not change. (`x + 0` is kept: it turns -0
    /// into +0.)
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let g = make_graph(|x: &Tensor| { let _unused = x.exp(); x.sin() + x.sin() }, &Tensor::scalar(1.0));
    /// assert_eq!(g.eqns.len(), 4);
    /// assert_eq!(g.optimized().to_string(), "{ lambda a:f64[] .\n    b:f64[] = sin a\n    c:f64[] = add b b\n  in (c) }");
    /// ```
    pub fn optimized(&self) -> Graph {
        let n = self.avals.len();
        // Each variable's representative: itself, the first of equal
        // subexpressions, or the operand an identity operation returns.
        let mut rep: Vec<Var> = (0..n).collect();
        // The value of every variable known before the program runs.
        let mut known: Vec<Option<Tensor>> = vec![None; n];
        for (v, t) in &self.consts {
            known[*v] = Some(t.clone());
        }
        // The equation defining each variable.
        let mut producer: Vec<Option<usize>> = vec![None; n];
        let mut folded: Vec<(Var, Tensor)> = Vec::new();
        let mut seen: HashMap<Key, usize> = HashMap::new();
        let mut shared = vec![false; self.eqns.len()];
        for (i, e) in self.eqns.iter().enumerate() {
            let ins: Vec<Var> = e.inputs.iter().map(|&v| rep[v]).collect();
            if let Some(values) = foldable(e, &ins, &known, &self.avals) {
                for (&o, t) in e.outs.iter().zip(values) {
                    known[o] = Some(t.clone());
                    folded.push((o, t));
                }
                shared[i] = true;
                continue;
            }
            if let Some(same) = identity(e, &ins, &known, &producer, &self.eqns, &self.avals, &rep) {
                rep[e.outs[0]] = same;
                shared[i] = true;
                continue;
            }
            let key = Key(e.prim.clone(), ins);
            match seen.get(&key) {
                Some(&j) => {
                    for (&o, &first) in e.outs.iter().zip(&self.eqns[j].outs) {
                        rep[o] = first;
                    }
                    shared[i] = true;
                }
                None => {
                    seen.insert(key, i);
                    for &o in &e.outs {
                        producer[o] = Some(i);
                    }
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
        let mut rb = Rebuild::new(self, &self.inputs);
        for (v, t) in self.consts.iter().chain(&folded) {
            if live[*v] {
                match splat(t) {
                    Some(value) => rb.splat(*v, value),
                    None => rb.constant(*v, t),
                }
            }
        }
        for (i, e) in self.eqns.iter().enumerate() {
            if keep[i] {
                rb.equation(e.prim.clone(), e.inputs.iter().map(|&v| rep[v]), &e.outs, e.origin);
            }
        }
        let out = rb.finish(self.outputs.iter().map(|&v| rep[v]));
        debug_assert!(out.check().is_ok(), "optimized graph fails its check: {:?}", out.check());
        out
    }
}
