//! Expressions as tensor programs: every node becomes the Tensor operation
//! of the same name, so ferrax's transformations (jvp, grad, hessian, vmap,
//! make_graph) see an ordinary function of tensors.

use std::collections::{BTreeMap, HashMap};

use super::eval::EvalError;
use super::expr::{BinOp, Expr, Func, Node};
use crate::array::DType;
use crate::core::Tensor;

impl Expr {
    /// Evaluates the expression with Tensor operations on `vars`, so that it
    /// can be differentiated by [`grad`](crate::grad), [`jvp`](crate::jvp)
    /// and [`hessian`](crate::hessian), vectorised, or staged by
    /// [`make_graph`](crate::make_graph) like any closure over tensors.
    ///
    /// Variables may be tensors of any shapes that broadcast together; the
    /// operations are elementwise. Numbers become scalars of the variables'
    /// dtype (f64 when the expression reads none). Subexpressions without
    /// variables are folded to one number first, so `x^(1/2)` becomes
    /// `x.powf(0.5)`: a constant integer exponent uses `powi`, another
    /// constant `powf`, anything else `pow`; `+ - * /` with a constant side
    /// use the `f64` operators. A subtree shared by several parents is
    /// computed once.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// use ferrax::prelude::*;
    /// let e = ferrax::symbolic::parse("ln(x1) + x1*x2 - sin(x2)").unwrap();
    /// let at = BTreeMap::from([("x1".to_string(), Tensor::scalar(2.0)), ("x2".to_string(), Tensor::scalar(5.0))]);
    /// let g = grad(|v: &BTreeMap<String, Tensor>| e.to_tensor(v).unwrap())(&at);
    /// assert_eq!(g["x1"].item(), 5.5);
    /// ```
    ///
    /// # Errors
    /// [`EvalError::UnknownVariable`] for a variable missing from `vars`,
    /// [`EvalError::NotFloat`] and [`EvalError::MixedDTypes`] unless every
    /// variable read is a float tensor of one dtype.
    ///
    /// # Panics
    /// When the variables' shapes do not broadcast together, as the Tensor
    /// operations do.
    #[track_caller]
    pub fn to_tensor(&self, vars: &BTreeMap<String, Tensor>) -> Result<Tensor, EvalError> {
        let mut dtype: Option<(String, DType)> = None;
        for name in self.variables() {
            let t = vars.get(&name).ok_or_else(|| EvalError::UnknownVariable(name.clone()))?;
            if !t.dtype().is_float() {
                return Err(EvalError::NotFloat { name, dtype: t.dtype() });
            }
            match &dtype {
                None => dtype = Some((name, t.dtype())),
                Some((first, d)) if *d != t.dtype() => {
                    return Err(EvalError::MixedDTypes { first: (first.clone(), *d), other: (name, t.dtype()) })
                }
                Some(_) => {}
            }
        }
        let dtype = dtype.map_or(DType::F64, |(_, d)| d);
        let mut c = Compiler { vars, dtype, memo: HashMap::new() };
        Ok(match c.compile(self) {
            Value::Num(v) => Tensor::full(&[], v, dtype),
            Value::Tensor(t) => t,
        })
    }
}

/// A compiled subtree: a number while it reads no variable.
#[derive(Clone)]
enum Value {
    Num(f64),
    Tensor(Tensor),
}

struct Compiler<'a> {
    vars: &'a BTreeMap<String, Tensor>,
    dtype: DType,
    memo: HashMap<*const Node, Value>,
}

// Tensor operations panic on shapes that do not broadcast; track_caller all
// the way down makes that panic point at the user's call of to_tensor.
impl Compiler<'_> {
    #[track_caller]
    fn compile(&mut self, e: &Expr) -> Value {
        if let Some(v) = self.memo.get(&e.key()) {
            return v.clone();
        }
        let v = match e.node() {
            Node::Num(v) => Value::Num(*v),
            Node::Const(c) => Value::Num(c.value()),
            // to_tensor checked every variable before compiling.
            Node::Var(name) => Value::Tensor(self.vars[name].clone()),
            Node::Neg(a) => match self.compile(a) {
                Value::Num(v) => Value::Num(-v),
                Value::Tensor(t) => Value::Tensor(-t),
            },
            Node::Call(f, a) => match self.compile(a) {
                Value::Num(v) => Value::Num(f.apply(v)),
                Value::Tensor(t) => Value::Tensor(call(*f, &t)),
            },
            Node::Binary(op, a, b) => {
                let (a, b) = (self.compile(a), self.compile(b));
                self.binary(*op, a, b)
            }
        };
        if e.is_shared() {
            self.memo.insert(e.key(), v.clone());
        }
        v
    }

    #[track_caller]
    fn binary(&self, op: BinOp, a: Value, b: Value) -> Value {
        use Value::{Num, Tensor as T};
        Value::Tensor(match (op, a, b) {
            (_, Num(x), Num(y)) => return Num(op.apply(x, y)),
            (BinOp::Pow, T(x), Num(p)) if p.fract() == 0.0 && p.abs() <= f64::from(i32::MAX) => x.powi(p as i32),
            (BinOp::Pow, T(x), Num(p)) => x.powf(p),
            (BinOp::Pow, Num(x), T(y)) => Tensor::full(&[], x, self.dtype).pow(&y),
            (BinOp::Pow, T(x), T(y)) => x.pow(&y),
            (BinOp::Add, T(x), Num(y)) => x + y,
            (BinOp::Add, Num(x), T(y)) => x + y,
            (BinOp::Add, T(x), T(y)) => x + y,
            (BinOp::Sub, T(x), Num(y)) => x - y,
            (BinOp::Sub, Num(x), T(y)) => x - y,
            (BinOp::Sub, T(x), T(y)) => x - y,
            (BinOp::Mul, T(x), Num(y)) => x * y,
            (BinOp::Mul, Num(x), T(y)) => x * y,
            (BinOp::Mul, T(x), T(y)) => x * y,
            (BinOp::Div, T(x), Num(y)) => x / y,
            (BinOp::Div, Num(x), T(y)) => x / y,
            (BinOp::Div, T(x), T(y)) => x / y,
        })
    }
}

/// The Tensor method of each function.
#[track_caller]
fn call(f: Func, x: &Tensor) -> Tensor {
    match f {
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.tan(),
        Func::Exp => x.exp(),
        Func::Ln => x.ln(),
        Func::Sqrt => x.sqrt(),
        Func::Tanh => x.tanh(),
        Func::Sigmoid => x.sigmoid(),
        Func::Abs => x.abs(),
        Func::Sign => x.signum(),
    }
}
