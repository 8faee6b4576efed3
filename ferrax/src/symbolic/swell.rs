//! How big an expression is, counted two ways, and the families that show
//! the two counts drifting apart under differentiation ("expression swell").

use std::collections::HashMap;

use super::expr::{BinOp, Constant, Expr, Func, Node};

impl Expr {
    /// Node count as a tree: a shared subtree counts every time it occurs.
    /// Saturates at `usize::MAX`.
    pub fn tree_size(&self) -> usize {
        fn go(e: &Expr, memo: &mut HashMap<*const Node, usize>) -> usize {
            if let Some(&n) = memo.get(&e.key()) {
                return n;
            }
            let n = match e.node() {
                Node::Num(_) | Node::Var(_) | Node::Const(_) => 1,
                Node::Neg(a) | Node::Call(_, a) => go(a, memo).saturating_add(1),
                Node::Binary(_, a, b) => go(a, memo).saturating_add(go(b, memo)).saturating_add(1),
            };
            if e.is_shared() {
                memo.insert(e.key(), n);
            }
            n
        }
        go(self, &mut HashMap::new())
    }

    /// Node count with structurally equal subtrees counted once: the size of
    /// the expression after hash-consing by structure (not by pointer), the
    /// smallest program that computes it without recomputing anything.
    pub fn dag_size(&self) -> usize {
        let mut interner = Interner::default();
        interner.id(self);
        interner.table.len()
    }
}

/// A node by the ids of its children: equal keys are equal subtrees.
#[derive(Hash, PartialEq, Eq)]
enum Key {
    Num(u64),
    Var(String),
    Const(Constant),
    Neg(usize),
    Binary(BinOp, usize, usize),
    Call(Func, usize),
}

#[derive(Default)]
struct Interner {
    table: HashMap<Key, usize>,
    by_ptr: HashMap<*const Node, usize>,
}

impl Interner {
    fn id(&mut self, e: &Expr) -> usize {
        if let Some(&id) = self.by_ptr.get(&e.key()) {
            return id;
        }
        let key = match e.node() {
            // 0 and -0 compare equal, so they intern as one.
            Node::Num(v) => Key::Num(if *v == 0.0 { 0 } else { v.to_bits() }),
            Node::Var(name) => Key::Var(name.clone()),
            Node::Const(c) => Key::Const(*c),
            Node::Neg(a) => Key::Neg(self.id(a)),
            Node::Binary(op, a, b) => Key::Binary(*op, self.id(a), self.id(b)),
            Node::Call(f, a) => Key::Call(*f, self.id(a)),
        };
        let next = self.table.len();
        let id = *self.table.entry(key).or_insert(next);
        if e.is_shared() {
            self.by_ptr.insert(e.key(), id);
        }
        id
    }
}

/// The family used to measure expression swell: [`nested_sin`].
///
/// Its derivative `cos(sₙ₋₁)·cos(sₙ₋₂)·…·cos(x)`, with `sₖ = sinᵏ(x)`,
/// writes every inner composition out again: as a tree it has
/// n(n+3)/2 + n − 1 nodes, but the compositions nest inside each other, so
/// it has only 3n − 1 distinct subtrees. Quadratic against linear is the
/// gap between differentiating formulas and differentiating programs.
///
/// ```
/// let d = ferrax::symbolic::swell_family(8).diff("x");
/// assert_eq!((d.tree_size(), d.dag_size()), (51, 23));
/// ```
pub fn swell_family(n: usize) -> Expr {
    nested_sin(n)
}

/// `sin(sin(…sin(x)))`, n applications of `sin` (`x` for n = 0).
pub fn nested_sin(n: usize) -> Expr {
    (0..n).fold(Expr::var("x"), |e, _| e.sin())
}

/// The rising factorial `x·(x+1)·(x+2)·…·(x+n−1)`, built left to right
/// (`1` for n = 0). The product rule gives `fₙ' = fₙ₋₁'·(x+n−1) + fₙ₋₁`, so
/// every partial product appears again in the derivative: 2n² − 3 tree
/// nodes (n ≥ 2), while the shared partial products keep the DAG at 5n − 5.
pub fn nested_product(n: usize) -> Expr {
    let x = Expr::var("x");
    if n == 0 {
        return Expr::num(1.0);
    }
    (1..n).fold(x.clone(), |acc, k| acc * (&x + k as f64))
}
