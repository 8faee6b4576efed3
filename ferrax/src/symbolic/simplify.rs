//! The simplifier: one bottom-up pass in which every node is rebuilt by a
//! constructor that assumes its children are already simple.
//!
//! Sums and products are normal forms rather than rule lists. A chain of
//! `+`, `-` and unary minus is read as a list of (coefficient, term) pairs
//! plus a constant; equal terms merge (`x + x → 2*x`, `x - x → 0`) and the
//! list is rebuilt. A chain of `*` and `/` is read as a coefficient and a
//! list of (base, exponent) pairs; equal bases merge (`x*x → x^2`,
//! `x/x → 1`). The identities `x·1`, `x+0`, `x^1`, `--x` and friends are the
//! special cases of rebuilding. Like any such simplifier it treats `x/x` and
//! `0/x` as 1 and 0 without asking whether `x` can be 0, and leaves terms
//! that are equal only after reordering (`x*y` and `y*x`) apart.

use std::collections::HashMap;

use super::expr::{BinOp, Expr, Func, Node};

impl Expr {
    /// An equal expression, usually smaller: constant folding, the usual
    /// identities and collection of like terms and factors.
    ///
    /// ```
    /// use ferrax::symbolic::parse;
    /// let s = |t: &str| parse(t).unwrap().simplify().to_string();
    /// assert_eq!(s("x*1 + 0 + x"), "2*x");
    /// assert_eq!(s("2*x + 3*x - x/x"), "5*x - 1");
    /// assert_eq!(s("x*x/x^3"), "1/x");
    /// assert_eq!(s("--y - (y - 1)"), "1");
    /// ```
    pub fn simplify(&self) -> Expr {
        Simplifier::default().run(self)
    }
}

/// One simplification pass; shared subtrees are simplified once and stay shared.
#[derive(Default)]
pub(super) struct Simplifier {
    memo: HashMap<*const Node, Expr>,
}

impl Simplifier {
    pub(super) fn run(&mut self, e: &Expr) -> Expr {
        if let Some(s) = self.memo.get(&e.key()) {
            return s.clone();
        }
        let s = match e.node() {
            Node::Num(_) | Node::Var(_) | Node::Const(_) => e.clone(),
            Node::Neg(a) => {
                let a = self.run(a);
                sum(&[(-1.0, a)])
            }
            Node::Binary(op, a, b) => {
                let (a, b) = (self.run(a), self.run(b));
                match op {
                    BinOp::Add => sum(&[(1.0, a), (1.0, b)]),
                    BinOp::Sub => sum(&[(1.0, a), (-1.0, b)]),
                    BinOp::Mul => product(&[(a, 1.0), (b, 1.0)]),
                    BinOp::Div => product(&[(a, 1.0), (b, -1.0)]),
                    BinOp::Pow => power(&a, &b),
                }
            }
            Node::Call(f, a) => call(*f, &self.run(a)),
        };
        if e.is_shared() {
            self.memo.insert(e.key(), s.clone());
        }
        s
    }
}

fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    Expr::new(Node::Binary(op, a, b))
}

/// A sum as a constant plus coefficients times terms without a numeric factor.
#[derive(Default)]
struct Terms {
    constant: f64,
    terms: Vec<(f64, Expr)>,
}

impl Terms {
    fn add(&mut self, e: &Expr, k: f64) {
        match e.node() {
            Node::Num(c) => self.constant += k * c,
            Node::Neg(a) => self.add(a, -k),
            Node::Binary(BinOp::Add, a, b) => {
                self.add(a, k);
                self.add(b, k);
            }
            Node::Binary(BinOp::Sub, a, b) => {
                self.add(a, k);
                self.add(b, -k);
            }
            Node::Binary(BinOp::Mul | BinOp::Div, ..) => {
                let mut p = Factors::of(e);
                let c = std::mem::replace(&mut p.num, 1.0);
                self.push(k * c, p.build());
            }
            _ => self.push(k, e.clone()),
        }
    }

    fn push(&mut self, c: f64, term: Expr) {
        if let Node::Num(v) = term.node() {
            // A product of numbers alone, such as 1/3.
            self.constant += c * v;
        } else if let Some(slot) = self.terms.iter_mut().find(|(_, t)| *t == term) {
            slot.0 += c;
        } else {
            self.terms.push((c, term));
        }
    }

    /// Terms in order of first appearance, the constant last, except that a
    /// positive item is moved to the front rather than start with a minus:
    /// `1 - sin(x)`, not `-sin(x) + 1`.
    fn build(self) -> Expr {
        let mut items: Vec<(f64, Option<Expr>)> =
            self.terms.into_iter().filter(|(c, _)| *c != 0.0).map(|(c, t)| (c, Some(t))).collect();
        if self.constant != 0.0 {
            items.push((self.constant, None));
        }
        if items.first().is_some_and(|(c, _)| *c < 0.0) {
            if let Some(i) = items.iter().position(|(c, _)| *c > 0.0) {
                let item = items.remove(i);
                items.insert(0, item);
            }
        }
        let mut items = items.into_iter();
        let Some((c, t)) = items.next() else { return Expr::num(0.0) };
        let mut acc = scaled(c, t);
        for (c, t) in items {
            acc = if c < 0.0 { bin(BinOp::Sub, acc, scaled(-c, t)) } else { bin(BinOp::Add, acc, scaled(c, t)) };
        }
        acc
    }
}

/// `c·t`, or the number `c` when there is no term.
fn scaled(c: f64, t: Option<Expr>) -> Expr {
    match t {
        None => Expr::num(c),
        Some(t) if c == 1.0 => t,
        Some(t) => product(&[(Expr::num(c), 1.0), (t, 1.0)]),
    }
}

/// The simplified sum `Σ kᵢ·eᵢ` of simplified parts.
fn sum(parts: &[(f64, Expr)]) -> Expr {
    let mut t = Terms::default();
    for (k, e) in parts {
        t.add(e, *k);
    }
    t.build()
}

/// A product as `num / den` times powers of bases that are not numbers.
/// The denominator's coefficient is kept apart so that `x/3` stays `x/3`
/// instead of becoming `0.3333333333333333*x`.
struct Factors {
    num: f64,
    den: f64,
    factors: Vec<(Expr, f64)>,
}

impl Factors {
    fn of(e: &Expr) -> Factors {
        let mut p = Factors { num: 1.0, den: 1.0, factors: Vec::new() };
        p.mul(e, 1.0);
        p
    }

    /// Multiplies by `e^k`, for `k` = 1 or -1.
    fn mul(&mut self, e: &Expr, k: f64) {
        match e.node() {
            Node::Num(c) if k > 0.0 => self.num *= c,
            // x/0 is kept as written rather than folded to an infinity.
            Node::Num(c) if *c != 0.0 => self.den *= c,
            Node::Neg(a) => {
                self.num = -self.num;
                self.mul(a, k);
            }
            Node::Binary(BinOp::Mul, a, b) => {
                self.mul(a, k);
                self.mul(b, k);
            }
            Node::Binary(BinOp::Div, a, b) => {
                self.mul(a, k);
                self.mul(b, -k);
            }
            Node::Binary(BinOp::Pow, b, p) if p.as_num().is_some_and(f64::is_finite) => {
                self.push(b, k * p.as_num().unwrap_or(1.0))
            }
            _ => self.push(e, k),
        }
    }

    fn push(&mut self, base: &Expr, k: f64) {
        if let Some(slot) = self.factors.iter_mut().find(|(b, _)| b == base) {
            slot.1 += k;
        } else {
            self.factors.push((base.clone(), k));
        }
    }

    /// `coefficient * positive powers / (den * negative powers)`, the sign
    /// carried by the first factor: `-2*x`, `-sin(x)*y`, `-1/x`.
    fn build(mut self) -> Expr {
        // 0/x is 0, but 0/0 stays as written: it is NaN, not an identity's blind spot.
        if self.num == 0.0 && !self.factors.iter().any(|(b, k)| *k < 0.0 && b.as_num() == Some(0.0)) {
            return Expr::num(0.0);
        }
        if self.den < 0.0 {
            (self.num, self.den) = (-self.num, -self.den);
        }
        self.factors.retain(|(_, k)| *k != 0.0);
        if self.factors.is_empty() {
            return Expr::num(self.num / self.den);
        }
        let (num, den) = reduce(self.num, self.den);
        let mut top = Vec::new();
        if num.abs() != 1.0 {
            top.push(Expr::num(num.abs()));
        }
        let mut bottom = Vec::new();
        if den != 1.0 {
            bottom.push(Expr::num(den));
        }
        for (b, k) in self.factors {
            let side = if k > 0.0 { &mut top } else { &mut bottom };
            side.push(if k.abs() == 1.0 { b } else { bin(BinOp::Pow, b, Expr::num(k.abs())) });
        }
        if top.is_empty() {
            top.push(Expr::num(1.0));
        }
        if num < 0.0 {
            top[0] = match top[0].node() {
                Node::Num(v) => Expr::num(-v),
                // -(a + b)*c would come back as (-a - b)*c from a second pass; this is that form.
                Node::Binary(BinOp::Add | BinOp::Sub, ..) => sum(&[(-1.0, top[0].clone())]),
                _ => Expr::new(Node::Neg(top[0].clone())),
            };
        }
        let chain = |v: Vec<Expr>| v.into_iter().reduce(|a, b| bin(BinOp::Mul, a, b));
        let numer = chain(top).unwrap_or_else(|| Expr::num(1.0));
        match chain(bottom) {
            Some(denom) => bin(BinOp::Div, numer, denom),
            None => numer,
        }
    }
}

/// `num / den` as a pair with a denominator only where it keeps the
/// coefficient exact: whole numbers lose their common divisor (`2*x/4` is
/// `x/2`), a quotient that is whole or any non-integer pair is divided out.
fn reduce(num: f64, den: f64) -> (f64, f64) {
    let q = num / den;
    let whole = |v: f64| v.fract() == 0.0 && v.abs() < 9.0e15;
    if den == 1.0 || whole(q) || !whole(num) || !whole(den) {
        return (q, 1.0);
    }
    let (mut a, mut b) = (num.abs() as u64, den as u64);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    (num / a as f64, den / a as f64)
}

/// The simplified product `Π eᵢ^kᵢ` of simplified parts, `k` = ±1.
fn product(parts: &[(Expr, f64)]) -> Expr {
    let mut p = Factors { num: 1.0, den: 1.0, factors: Vec::new() };
    for (e, k) in parts {
        p.mul(e, *k);
    }
    p.build()
}

/// The simplified `a^b` of simplified parts.
fn power(a: &Expr, b: &Expr) -> Expr {
    match (a.as_num(), b.as_num()) {
        (Some(x), Some(y)) if x.powf(y).is_finite() => Expr::num(x.powf(y)),
        (Some(1.0), None) => Expr::num(1.0),
        (None, Some(k)) => {
            let mut p = Factors { num: 1.0, den: 1.0, factors: Vec::new() };
            // A whole power distributes over a product, (2·x^j/y)^k = 2^k·x^(j·k)/y^k,
            // which a fractional one does not: (x²)^½ = |x|.
            if k.fract() == 0.0
                && matches!(a.node(), Node::Neg(_) | Node::Binary(BinOp::Mul | BinOp::Div | BinOp::Pow, ..))
            {
                p.mul(a, 1.0);
                if p.num != 0.0 {
                    p.factors.iter_mut().for_each(|f| f.1 *= k);
                    let (num, den) = (p.num.powf(k.abs()), p.den.powf(k.abs()));
                    (p.num, p.den) = if k < 0.0 { (den, num) } else { (num, den) };
                    return p.build();
                }
                p = Factors { num: 1.0, den: 1.0, factors: Vec::new() };
            }
            p.push(a, k);
            p.build()
        }
        _ => bin(BinOp::Pow, a.clone(), b.clone()),
    }
}

/// The simplified `f(a)` of a simplified argument: exact values at the
/// points where they are exact, and a few compositions that cancel.
fn call(f: Func, a: &Expr) -> Expr {
    if let Some(v) = a.as_num().and_then(|c| exact(f, c)) {
        return Expr::num(v);
    }
    match (f, a.node()) {
        (Func::Ln, Node::Call(Func::Exp, inner)) => inner.clone(),
        (Func::Abs | Func::Cos, Node::Neg(inner)) => call(f, inner),
        (Func::Abs, Node::Call(Func::Abs, _)) | (Func::Sign, Node::Call(Func::Sign, _)) => a.clone(),
        _ => Expr::new(Node::Call(f, a.clone())),
    }
}

/// `f(c)` where it is exact in `f64`; transcendental values at other points
/// stay symbolic, so `sin(2)` does not turn into sixteen digits.
fn exact(f: Func, c: f64) -> Option<f64> {
    match f {
        Func::Abs | Func::Sign => Some(f.apply(c)),
        Func::Sqrt if c >= 0.0 && c.sqrt() * c.sqrt() == c => Some(c.sqrt()),
        Func::Sin | Func::Tan | Func::Tanh | Func::Cos | Func::Exp | Func::Sigmoid if c == 0.0 => Some(f.apply(c)),
        Func::Ln => (c == 1.0).then_some(0.0),
        _ => None,
    }
}
