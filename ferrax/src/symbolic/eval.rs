//! Evaluation in `f64`, and the variables an expression reads.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use super::expr::{Expr, Node};
use crate::array::DType;

/// An expression could not be evaluated with the variables given.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvalError {
    /// The expression reads a variable the map does not hold.
    UnknownVariable(String),
    /// [`Expr::to_tensor`]: a variable is not a float tensor.
    NotFloat {
        /// The variable.
        name: String,
        /// Its dtype.
        dtype: DType,
    },
    /// [`Expr::to_tensor`]: two variables have different float dtypes.
    MixedDTypes {
        /// The first variable read, by name order, and its dtype.
        first: (String, DType),
        /// A variable of another dtype.
        other: (String, DType),
    },
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::UnknownVariable(name) => write!(f, "unknown variable '{name}'; give it a value"),
            EvalError::NotFloat { name, dtype } => {
                write!(f, "variable '{name}' is {dtype}; expressions compute in floats, convert it with .to_dtype")
            }
            EvalError::MixedDTypes { first: (a, da), other: (b, db) } => {
                write!(f, "variable '{a}' is {da} but '{b}' is {db}; give every variable one float dtype")
            }
        }
    }
}

impl std::error::Error for EvalError {}

impl Expr {
    /// The value at `vars`, computed in `f64`. Domain errors are values, as
    /// in `f64` arithmetic: `ln(-1)` is NaN, `1/0` is infinite.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// let e = ferrax::symbolic::parse("x^2 + y").unwrap();
    /// let at = BTreeMap::from([("x".to_string(), 3.0), ("y".to_string(), 1.0)]);
    /// assert_eq!(e.eval(&at), Ok(10.0));
    /// ```
    ///
    /// # Errors
    /// [`EvalError::UnknownVariable`] naming the first variable (in the
    /// order met) missing from `vars`.
    pub fn eval(&self, vars: &BTreeMap<String, f64>) -> Result<f64, EvalError> {
        Evaluator { vars, memo: HashMap::new() }.eval(self)
    }

    /// The variables read, sorted and without repeats; `pi` and `e` are constants, not variables.
    pub fn variables(&self) -> Vec<String> {
        fn walk(e: &Expr, seen: &mut HashSet<*const Node>, out: &mut BTreeSet<String>) {
            if e.is_shared() && !seen.insert(e.key()) {
                return;
            }
            match e.node() {
                Node::Var(name) => {
                    out.insert(name.clone());
                }
                Node::Num(_) | Node::Const(_) => {}
                Node::Neg(a) | Node::Call(_, a) => walk(a, seen, out),
                Node::Binary(_, a, b) => {
                    walk(a, seen, out);
                    walk(b, seen, out);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(self, &mut HashSet::new(), &mut out);
        out.into_iter().collect()
    }
}

struct Evaluator<'a> {
    vars: &'a BTreeMap<String, f64>,
    /// Values of shared nodes, so a derivative that reuses a subtree many
    /// times computes it once.
    memo: HashMap<*const Node, f64>,
}

impl Evaluator<'_> {
    fn eval(&mut self, e: &Expr) -> Result<f64, EvalError> {
        if let Some(&v) = self.memo.get(&e.key()) {
            return Ok(v);
        }
        let v = match e.node() {
            Node::Num(v) => *v,
            Node::Const(c) => c.value(),
            Node::Var(name) => *self.vars.get(name).ok_or_else(|| EvalError::UnknownVariable(name.clone()))?,
            Node::Neg(a) => -self.eval(a)?,
            Node::Binary(op, a, b) => op.apply(self.eval(a)?, self.eval(b)?),
            Node::Call(f, a) => f.apply(self.eval(a)?),
        };
        if e.is_shared() {
            self.memo.insert(e.key(), v);
        }
        Ok(v)
    }
}
