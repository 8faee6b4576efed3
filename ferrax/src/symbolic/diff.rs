//! The symbolic derivative: one rule per node, the chain rule per function.

use std::collections::HashMap;

use super::expr::{BinOp, Expr, Func, Node};
use super::simplify::Simplifier;

impl Expr {
    /// The derivative with respect to `var`, simplified.
    ///
    /// The rules are the textbook ones; `x^c` with `c` free of `var` uses the
    /// power rule `c·x^(c−1)·x'`, `a^g` with `a` free of `var` gives
    /// `a^g·ln(a)·g'`, and the general `f^g` gives `f^g·(g'·ln f + g·f'/f)`.
    /// The derivative of `abs(u)` is `sign(u)·u'`, with `sign(0) = 0`: at the
    /// kink this takes the midpoint of the one-sided slopes, where ferrax's
    /// AD follows JAX and takes the right-hand slope 1. `sign` itself is
    /// piecewise constant, with derivative 0.
    ///
    /// A subtree free of `var` differentiates to 0 without being visited, and
    /// the derivative reuses the subtrees of the expression (`exp(u)` appears
    /// in its own derivative as the same node), so a shared subtree is
    /// differentiated once.
    ///
    /// ```
    /// let e = ferrax::symbolic::parse("ln(x1) + x1*x2 - sin(x2)").unwrap();
    /// assert_eq!(e.diff("x1").to_string(), "1/x1 + x2");
    /// assert_eq!(e.diff("x2").to_string(), "x1 - cos(x2)");
    /// ```
    pub fn diff(&self, var: &str) -> Expr {
        let raw = Differ { var, depends: HashMap::new(), memo: HashMap::new() }.d(self);
        Simplifier::default().run(&raw)
    }
}

struct Differ<'a> {
    var: &'a str,
    /// Whether a shared node reads `var`.
    depends: HashMap<*const Node, bool>,
    /// Derivatives of shared nodes.
    memo: HashMap<*const Node, Expr>,
}

impl Differ<'_> {
    fn depends(&mut self, e: &Expr) -> bool {
        if let Some(&d) = self.depends.get(&e.key()) {
            return d;
        }
        let d = match e.node() {
            Node::Var(name) => name == self.var,
            Node::Num(_) | Node::Const(_) => false,
            Node::Neg(a) | Node::Call(_, a) => self.depends(a),
            Node::Binary(_, a, b) => {
                let da = self.depends(a);
                self.depends(b) || da
            }
        };
        if e.is_shared() {
            self.depends.insert(e.key(), d);
        }
        d
    }

    /// The unsimplified derivative; `diff` simplifies it once at the end.
    fn d(&mut self, e: &Expr) -> Expr {
        if !self.depends(e) {
            return Expr::num(0.0);
        }
        if let Some(d) = self.memo.get(&e.key()) {
            return d.clone();
        }
        let d = match e.node() {
            // A node that depends on `var` and has no children is `var`.
            Node::Var(_) | Node::Num(_) | Node::Const(_) => Expr::num(1.0),
            Node::Neg(u) => -self.d(u),
            Node::Binary(BinOp::Add, u, v) => self.d(u) + self.d(v),
            Node::Binary(BinOp::Sub, u, v) => self.d(u) - self.d(v),
            Node::Binary(BinOp::Mul, u, v) => self.d(u) * v + u * self.d(v),
            Node::Binary(BinOp::Div, u, v) => (self.d(u) * v - u * self.d(v)) / v.pow(2.0),
            Node::Binary(BinOp::Pow, f, g) => {
                if !self.depends(g) {
                    g * f.pow(g - 1.0) * self.d(f)
                } else if !self.depends(f) {
                    e * f.ln() * self.d(g)
                } else {
                    e * (self.d(g) * f.ln() + g * self.d(f) / f)
                }
            }
            Node::Call(func, u) => outer(*func, u, e) * self.d(u),
        };
        if e.is_shared() {
            self.memo.insert(e.key(), d.clone());
        }
        d
    }
}

/// `f'(u)`, given `e = f(u)`, which several rules reuse.
fn outer(f: Func, u: &Expr, e: &Expr) -> Expr {
    match f {
        Func::Sin => u.cos(),
        Func::Cos => -u.sin(),
        Func::Tan => 1.0 / u.cos().pow(2.0),
        Func::Exp => e.clone(),
        Func::Ln => 1.0 / u,
        Func::Sqrt => 0.5 / e,
        Func::Tanh => 1.0 - e.pow(2.0),
        Func::Sigmoid => e * (1.0 - e),
        Func::Abs => u.sign(),
        Func::Sign => Expr::num(0.0),
    }
}
