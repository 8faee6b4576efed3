//! Elementwise functions of two arguments (with numpy broadcasting),
//! comparisons and `select`, and the arithmetic operators on `Tensor`.

use std::ops;

use crate::array::{backend_of, Array, Aval, BinaryOp, CompareOp, DType};
use crate::core::{bind, Kind, Lin, Param, Params, SingleOutput, Tensor};

use super::promote::{inexact, promote_pair, with_scalar, Scalar};
use super::{
    add_tangents, batching, broadcast_or_panic, constant, expect_float, expect_numeric, expect_same_dtype, if_linear,
    or_zero, to_shape, unbroadcast,
};

/// The output aval of a broadcasting binary op over operands of one dtype:
/// numeric (`num`) or float (`float`).
#[track_caller]
fn binary_shape(op: &str, float_only: bool, ins: &[&Aval]) -> Aval {
    expect_same_dtype(op, ins[0], ins[1]);
    if float_only {
        expect_float(op, ins[0]);
    } else {
        expect_numeric(op, ins[0]);
    }
    Aval { dtype: ins[0].dtype, shape: broadcast_or_panic(op, &ins[0].shape, &ins[1].shape) }
}

/// Defines an arithmetic primitive over numeric (`num`) or float (`float`)
/// operands: its op (its CPU kernel is in `array::ops` under the same name),
/// its jvp and, when linear, its transpose.
macro_rules! arith {
    (
        $(#[$doc:meta])* $Prim:ident, $name:literal, $kind:ident,
        jvp: |$x:ident, $y:ident, $tx:ident, $ty:ident, $ans:ident| $jvp:expr
        $(, transpose: |$ct:ident, $ins:ident| $transpose:expr)?
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $Prim;

        impl SingleOutput for $Prim {
            fn name(&self) -> &'static str {
                $name
            }
            fn params(&self) -> Params {
                Vec::new()
            }
            fn kind(&self) -> Kind {
                Kind::Binary(BinaryOp::$Prim)
            }
            #[track_caller]
            fn shape(&self, ins: &[&Aval]) -> Aval {
                binary_shape($name, stringify!($kind) == "float", ins)
            }
            fn eval(&self, ins: &[&Array]) -> Array {
                backend_of(ins).binary(BinaryOp::$Prim, ins[0], ins[1])
            }
            #[allow(unused_variables)]
            fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
                let ($x, $y, $tx, $ty, $ans) = (&x[0], &x[1], t[0].as_ref(), t[1].as_ref(), ans);
                let out: Option<Tensor> = $jvp;
                out.map(|t| to_shape(t, ans.shape()))
            }
            fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
                batching::elementwise(self, x, axes)
            }
            $(
                fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
                    let ($ct, $ins) = (ct, ins);
                    $transpose
                }
            )?
        }
    };
}

arith!(
    /// The `add` primitive.
    Add, "add", num,
    jvp: |x, y, tx, ty, ans| add_tangents(tx.cloned(), ty.cloned()),
    transpose: |ct, ins| vec![
        if_linear(&ins[0], |a| unbroadcast(ct, &a.shape)),
        if_linear(&ins[1], |b| unbroadcast(ct, &b.shape)),
    ]
);

arith!(
    /// The `sub` primitive.
    Sub, "sub", num,
    jvp: |x, y, tx, ty, ans| add_tangents(tx.cloned(), ty.map(|t| -t)),
    transpose: |ct, ins| vec![
        if_linear(&ins[0], |a| unbroadcast(ct, &a.shape)),
        if_linear(&ins[1], |b| unbroadcast(&-ct, &b.shape)),
    ]
);

arith!(
    /// The `mul` primitive.
    Mul, "mul", num,
    jvp: |x, y, tx, ty, ans| add_tangents(tx.map(|t| t * y), ty.map(|t| x * t)),
    transpose: |ct, ins| vec![
        if_linear(&ins[0], |a| unbroadcast(&(ct * constant("mul", &ins[1])), &a.shape)),
        if_linear(&ins[1], |b| unbroadcast(&(constant("mul", &ins[0]) * ct), &b.shape)),
    ]
);

arith!(
    /// The `div` primitive: true division of floats (the `/` operator
    /// converts integer operands to f64 first, as JAX does).
    Div, "div", float,
    jvp: |x, y, tx, ty, ans| add_tangents(tx.map(|t| t / y), ty.map(|t| -(t * ans) / y)),
    transpose: |ct, ins| {
        // Linear only in the numerator: x / c.
        if ins[1].is_linear() {
            panic!("{}", crate::core::context::not_linear_in_operand("div", "the divisor"));
        }
        vec![if_linear(&ins[0], |a| unbroadcast(&(ct / constant("div", &ins[1])), &a.shape)), None]
    }
);

arith!(
    /// The `rem` primitive: the remainder of truncating division, with the
    /// dividend's sign (Rust's `%`, JAX's `lax.rem`); `x rem 0` is `x` for integers.
    Rem, "rem", num,
    // rem(x, y) = x - trunc(x / y) y, and trunc is piecewise constant.
    jvp: |x, y, tx, ty, ans| add_tangents(tx.cloned(), ty.map(|t| -(t * (x / y).trunc())))
);

arith!(
    /// The `floor_div` primitive: division rounded toward negative infinity
    /// (numpy's `floor_divide`); its derivative is zero.
    FloorDiv, "floor_div", num,
    jvp: |x, y, tx, ty, ans| None
);

arith!(
    /// The `max` primitive (numpy's `maximum`; NaN propagates). Where both
    /// arguments are equal the derivative is split evenly between them.
    Max, "max", num,
    jvp: |x, y, tx, ty, ans| add_tangents(tx.map(|t| t * balanced(x, y, ans)), ty.map(|t| t * balanced(y, x, ans)))
);

arith!(
    /// The `min` primitive (numpy's `minimum`; NaN propagates), with ties
    /// splitting the derivative evenly.
    Min, "min", num,
    jvp: |x, y, tx, ty, ans| add_tangents(tx.map(|t| t * balanced(x, y, ans)), ty.map(|t| t * balanced(y, x, ans)))
);

/// The share of the derivative of `max(x, y)` or `min(x, y)` that belongs
/// to `x`: 1 where `x` alone gave the answer, ½ on a tie, 0 otherwise — and
/// 0 for both where the answer is NaN, since then neither equals it (JAX's
/// `_balanced_eq`).
fn balanced(x: &Tensor, y: &Tensor, ans: &Tensor) -> Tensor {
    let dt = ans.dtype();
    let x_won = x.eq(ans).to_dtype(dt);
    let y_won = y.eq(ans).to_dtype(dt);
    x_won / (y_won + 1.0)
}

arith!(
    /// The `atan2` primitive: the angle of the point `(y = self, x = other)`.
    Atan2, "atan2", float,
    jvp: |x, y, tx, ty, ans| {
        let r2 = x * x + y * y;
        add_tangents(tx.map(|t| t * y / &r2), ty.map(|t| -(t * x) / &r2))
    }
);

arith!(
    /// The `pow` primitive: `x^y` for float tensors.
    ///
    /// `d/dx` is `y x^(y-1)`, NaN at `(0, 0)` as in JAX; `d/dy` is
    /// `ln(x) x^y` with the `x = 0` term taken as 0 (its limit for `y > 0`).
    Pow, "pow", float,
    jvp: |x, y, tx, ty, ans| {
        let dx = tx.map(|t| t * y * x.pow(&(y - 1.0)));
        let dy = ty.map(|t| {
            let x_is_zero = x.eq(&x.zeros_scalar());
            let safe_x = x_is_zero.select(&Tensor::ones(&[], x.dtype()), x);
            t * safe_x.ln() * ans
        });
        add_tangents(dx, dy)
    }
);

/// Which comparison a [`Compare`] makes (the op vocabulary's name for it).
pub type CmpOp = CompareOp;

/// The `compare` primitive: an elementwise comparison giving a bool tensor.
#[derive(Clone, Copy, Debug)]
pub struct Compare {
    /// Which comparison.
    pub op: CompareOp,
}

impl SingleOutput for Compare {
    fn name(&self) -> &'static str {
        "compare"
    }
    fn params(&self) -> Params {
        vec![("op", Param::Name(self.op.name()))]
    }
    fn kind(&self) -> Kind {
        Kind::Compare(self.op)
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let op = self.op.name();
        expect_same_dtype(op, ins[0], ins[1]);
        Aval { dtype: DType::Bool, shape: broadcast_or_panic(op, &ins[0].shape, &ins[1].shape) }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).compare(self.op, ins[0], ins[1])
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        batching::elementwise(self, x, axes)
    }
    fn jvp(&self, _x: &[Tensor], _t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        None // bool output
    }
}

/// The `select` primitive: `cond ? a : b` elementwise, all three broadcast.
#[derive(Clone, Copy, Debug)]
pub struct Select;

impl SingleOutput for Select {
    fn name(&self) -> &'static str {
        "select"
    }
    fn params(&self) -> Params {
        Vec::new()
    }
    fn kind(&self) -> Kind {
        Kind::Select
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        if ins[0].dtype != DType::Bool {
            panic!(
                "select: the condition must be a bool tensor, got {}; build it with a comparison such as x.gt(&y)",
                ins[0].dtype
            );
        }
        expect_same_dtype("select", ins[1], ins[2]);
        let ab = broadcast_or_panic("select", &ins[1].shape, &ins[2].shape);
        Aval { dtype: ins[1].dtype, shape: broadcast_or_panic("select", &ins[0].shape, &ab) }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).select(ins[0], ins[1], ins[2])
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        batching::elementwise(self, x, axes)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
        let (cond, a, b) = (&x[0], &x[1], &x[2]);
        let ta = or_zero(t[1].as_ref(), a);
        let tb = or_zero(t[2].as_ref(), b);
        Some(to_shape(cond.select(&ta, &tb), ans.shape()))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let cond = constant("select", &ins[0]);
        let zero = ct.zeros_scalar();
        vec![
            None,
            if_linear(&ins[1], |a| unbroadcast(&cond.select(ct, &zero), &a.shape)),
            if_linear(&ins[2], |b| unbroadcast(&cond.select(&zero, ct), &b.shape)),
        ]
    }
}

/// `a op b` after promotion to a common dtype.
#[track_caller]
fn binary<P: SingleOutput>(prim: P, a: &Tensor, b: &Tensor) -> Tensor {
    let (a, b) = promote_pair(a, b);
    bind(prim, &[a, b])
}

/// `a / b`: true division. The operands are promoted together first, then
/// to f64 if that is not a float (so f32 / i64 is f32, as in JAX).
#[track_caller]
fn true_div(a: &Tensor, b: &Tensor) -> Tensor {
    float_binary(Div, a, b)
}

/// A float-only binary primitive: operands promoted together, then to f64
/// when the common dtype is integer or bool.
#[track_caller]
fn float_binary<P: SingleOutput>(prim: P, a: &Tensor, b: &Tensor) -> Tensor {
    let (a, b) = promote_pair(a, b);
    bind(prim, &[inexact(&a), inexact(&b)])
}

/// `x op s` or `s op x` (`scalar_first`) for a weakly typed Rust number.
#[track_caller]
fn with_number<P: SingleOutput>(prim: P, x: &Tensor, s: Scalar, scalar_first: bool) -> Tensor {
    let (x, s) = with_scalar(x, s);
    bind(prim, &if scalar_first { [s, x] } else { [x, s] })
}

/// [`with_number`] for `/`, which is true division.
#[track_caller]
fn div_number(x: &Tensor, s: Scalar, scalar_first: bool) -> Tensor {
    let s = match s {
        Scalar::Int(v) if !x.dtype().is_float() => Scalar::Float(v as f64),
        s => s,
    };
    with_number(Div, &inexact(x), s, scalar_first)
}

/// Implements an operator for every mix of `Tensor`, `&Tensor`, `f64` and
/// `i64`: through the primitive `$Prim` after promotion, or through the
/// functions `$tensors(a, b)` and `$number(x, scalar, scalar_first)`.
/// (Functions, not closures: a closure would end the `#[track_caller]`
/// chain, and misuse would be reported here instead of at the user's line.)
macro_rules! operator {
    ($Trait:ident, $method:ident, $Prim:ident) => {
        operator!(@all $Trait, $method, (|a, b| binary($Prim, a, b)), (|x, s, first| with_number($Prim, x, s, first)));
    };
    ($Trait:ident, $method:ident, fn $tensors:ident, fn $number:ident) => {
        operator!(@all $Trait, $method, (|a, b| $tensors(a, b)), (|x, s, first| $number(x, s, first)));
    };
    (@all $Trait:ident, $method:ident, (|$a:ident, $b:ident| $tensors:expr), (|$x:ident, $s:ident, $first:ident| $number:expr)) => {
        operator!(@tensors $Trait, $method, |$a, $b| $tensors, Tensor, Tensor);
        operator!(@tensors $Trait, $method, |$a, $b| $tensors, Tensor, &Tensor);
        operator!(@tensors $Trait, $method, |$a, $b| $tensors, &Tensor, Tensor);
        operator!(@tensors $Trait, $method, |$a, $b| $tensors, &Tensor, &Tensor);
        operator!(@number $Trait, $method, |$x, $s, $first| $number, f64);
        operator!(@number $Trait, $method, |$x, $s, $first| $number, i64);
    };
    (@tensors $Trait:ident, $method:ident, |$a:ident, $b:ident| $tensors:expr, $A:ty, $B:ty) => {
        impl ops::$Trait<$B> for $A {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: $B) -> Tensor {
                let ($a, $b): (&Tensor, &Tensor) = (self.as_ref(), rhs.as_ref());
                $tensors
            }
        }
    };
    (@number $Trait:ident, $method:ident, |$x:ident, $s:ident, $first:ident| $number:expr, $N:ty) => {
        impl ops::$Trait<$N> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: $N) -> Tensor {
                let ($x, $s, $first) = (self, Scalar::from(rhs), false);
                $number
            }
        }
        impl ops::$Trait<$N> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: $N) -> Tensor {
                let ($x, $s, $first) = (&self, Scalar::from(rhs), false);
                $number
            }
        }
        impl ops::$Trait<&Tensor> for $N {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                let ($x, $s, $first) = (rhs, Scalar::from(self), true);
                $number
            }
        }
        impl ops::$Trait<Tensor> for $N {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                let ($x, $s, $first) = (&rhs, Scalar::from(self), true);
                $number
            }
        }
    };
}

operator!(Add, add, Add);
operator!(Sub, sub, Sub);
operator!(Mul, mul, Mul);
operator!(Div, div, fn true_div, fn div_number);
operator!(Rem, rem, Rem);

impl AsRef<Tensor> for Tensor {
    fn as_ref(&self) -> &Tensor {
        self
    }
}

impl ops::Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

impl ops::Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}

macro_rules! comparison {
    ($(#[$doc:meta])* $method:ident, $op:ident) => {
        $(#[$doc])*
        ///
        /// The operands are promoted to a common dtype first.
        ///
        /// # Panics
        /// When the shapes do not broadcast.
        #[track_caller]
        pub fn $method(&self, other: &Tensor) -> Tensor {
            binary(Compare { op: CmpOp::$op }, self, other)
        }
    };
}

impl Tensor {
    /// Elementwise maximum (numpy's `maximum`), broadcasting. NaN
    /// propagates; ties split the derivative evenly.
    ///
    /// # Panics
    /// When the shapes do not broadcast or an operand is bool.
    #[track_caller]
    pub fn maximum(&self, other: &Tensor) -> Tensor {
        binary(Max, self, other)
    }

    /// Elementwise minimum (numpy's `minimum`), broadcasting. NaN
    /// propagates; ties split the derivative evenly.
    ///
    /// # Panics
    /// When the shapes do not broadcast or an operand is bool.
    #[track_caller]
    pub fn minimum(&self, other: &Tensor) -> Tensor {
        binary(Min, self, other)
    }

    /// `self^exponent` elementwise, broadcasting (integer operands are
    /// computed in f64).
    ///
    /// # Panics
    /// When the shapes do not broadcast.
    #[track_caller]
    pub fn pow(&self, exponent: &Tensor) -> Tensor {
        float_binary(Pow, self, exponent)
    }

    /// `self^p` for a float exponent (an integer tensor is computed in f64).
    #[track_caller]
    pub fn powf(&self, p: f64) -> Tensor {
        with_number(Pow, &inexact(self), Scalar::Float(p), false)
    }

    /// The four-quadrant arctangent of `self / other`: the angle of the
    /// point `(other, self)`, in `[-π, π]`. Broadcasting.
    ///
    /// # Panics
    /// When the shapes do not broadcast.
    #[track_caller]
    pub fn atan2(&self, other: &Tensor) -> Tensor {
        float_binary(Atan2, self, other)
    }

    /// Division rounded toward negative infinity (numpy's `floor_divide`,
    /// Python's `//`), broadcasting. Its derivative is zero. For integers
    /// `x // 0` does not panic: it gives XLA's answer (-2, or -1 for 0).
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![7i64, -7], &[2]);
    /// assert_eq!(x.floor_div(&Tensor::scalar(2i64)).to_vec::<i64>(), vec![3, -4]);
    /// ```
    ///
    /// # Panics
    /// When the shapes do not broadcast or an operand is bool.
    #[track_caller]
    pub fn floor_div(&self, other: &Tensor) -> Tensor {
        binary(FloorDiv, self, other)
    }

    /// The remainder of truncating division, with the sign of `self`
    /// (Rust's `%`, which is also this operation on tensors; JAX's
    /// `lax.rem`). For integers `x rem 0` is `x`, not a panic.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![7i64, -7], &[2]);
    /// assert_eq!((&x % 2).to_vec::<i64>(), vec![1, -1]);
    /// ```
    ///
    /// # Panics
    /// When the shapes do not broadcast or an operand is bool.
    #[track_caller]
    pub fn rem(&self, other: &Tensor) -> Tensor {
        binary(Rem, self, other)
    }

    comparison!(
        /// `self > other`, elementwise, as a bool tensor.
        gt, Gt
    );
    comparison!(
        /// `self < other`, elementwise, as a bool tensor.
        lt, Lt
    );
    comparison!(
        /// `self >= other`, elementwise, as a bool tensor.
        ge, Ge
    );
    comparison!(
        /// `self <= other`, elementwise, as a bool tensor.
        le, Le
    );
    comparison!(
        /// `self == other`, elementwise, as a bool tensor.
        eq, Eq
    );
    comparison!(
        /// `self != other`, elementwise, as a bool tensor.
        ne, Ne
    );

    /// `self ? on_true : on_false` elementwise, for a bool `self`; all three
    /// broadcast, and the branches are promoted to a common dtype.
    ///
    /// # Panics
    /// When `self` is not bool or the shapes do not broadcast.
    #[track_caller]
    pub fn select(&self, on_true: &Tensor, on_false: &Tensor) -> Tensor {
        let (a, b) = promote_pair(on_true, on_false);
        bind(Select, &[self.clone(), a, b])
    }
}

/// `cond ? on_true : on_false` elementwise (numpy's and JAX's `where`; the
/// name `where` is a Rust keyword). All three broadcast; the branches are
/// promoted to a common dtype.
///
/// ```
/// # use ferrax::prelude::*;
/// let x = Tensor::from_vec(vec![-1.0, 2.0], &[2]);
/// let y = ferrax::where_(&x.gt(&Tensor::scalar(0.0)), &x, &Tensor::scalar(0.0));
/// assert_eq!(y.to_vec::<f64>(), vec![0.0, 2.0]);
/// ```
///
/// # Panics
/// When `cond` is not bool or the shapes do not broadcast.
#[track_caller]
pub fn where_(cond: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Tensor {
    cond.select(on_true, on_false)
}
