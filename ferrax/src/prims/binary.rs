//! Elementwise functions of two arguments (with numpy broadcasting),
//! comparisons and `select`, and the arithmetic operators on `Tensor`.

use std::ops;

use crate::array::parallel::{CHEAP, COSTLY};
use crate::array::{elementwise, zip_num, zip_to, Array, Aval, DType};
use crate::core::{bind, Lin, Primitive, Tensor};

use super::{
    add_tangents, batching, broadcast_or_panic, constant, expect_float, expect_numeric, expect_same_dtype, if_linear,
    or_zero, to_shape, unbroadcast,
};

/// The output aval of a broadcasting binary op over numeric operands of one dtype.
#[track_caller]
fn numeric_binary_shape(op: &str, ins: &[&Aval]) -> Aval {
    expect_same_dtype(op, ins[0], ins[1]);
    expect_numeric(op, ins[0]);
    Aval { dtype: ins[0].dtype, shape: broadcast_or_panic(op, &ins[0].shape, &ins[1].shape) }
}

/// Defines an arithmetic primitive: its kernel over f32/f64/i64 and its jvp.
macro_rules! arith {
    (
        $(#[$doc:meta])* $Prim:ident, $name:literal,
        kernel: <$T:ident> |$a:ident, $b:ident| $kernel:expr,
        jvp: |$x:ident, $y:ident, $tx:ident, $ty:ident, $ans:ident| $jvp:expr
        $(, transpose: |$ct:ident, $ins:ident| $transpose:expr)?
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $Prim;

        impl Primitive for $Prim {
            fn name(&self) -> &'static str {
                $name
            }
            #[track_caller]
            fn shape(&self, ins: &[&Aval]) -> Aval {
                numeric_binary_shape($name, ins)
            }
            fn eval(&self, ins: &[&Array]) -> Array {
                let out = broadcast_or_panic($name, ins[0].shape(), ins[1].shape());
                zip_num!($name, ins[0], ins[1], &out, CHEAP, <$T> |$a, $b| $kernel)
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
    Add, "add",
    kernel: <T> |a, b| a + b,
    jvp: |x, y, tx, ty, ans| add_tangents(tx.cloned(), ty.cloned()),
    transpose: |ct, ins| vec![
        if_linear(&ins[0], |a| unbroadcast(ct, &a.shape)),
        if_linear(&ins[1], |b| unbroadcast(ct, &b.shape)),
    ]
);

arith!(
    /// The `sub` primitive.
    Sub, "sub",
    kernel: <T> |a, b| a - b,
    jvp: |x, y, tx, ty, ans| add_tangents(tx.cloned(), ty.map(|t| -t)),
    transpose: |ct, ins| vec![
        if_linear(&ins[0], |a| unbroadcast(ct, &a.shape)),
        if_linear(&ins[1], |b| unbroadcast(&-ct, &b.shape)),
    ]
);

arith!(
    /// The `mul` primitive.
    Mul, "mul",
    kernel: <T> |a, b| a * b,
    jvp: |x, y, tx, ty, ans| add_tangents(tx.map(|t| t * y), ty.map(|t| x * t)),
    transpose: |ct, ins| vec![
        if_linear(&ins[0], |a| unbroadcast(&(ct * constant("mul", &ins[1])), &a.shape)),
        if_linear(&ins[1], |b| unbroadcast(&(constant("mul", &ins[0]) * ct), &b.shape)),
    ]
);

arith!(
    /// The `div` primitive (truncating for integers).
    Div, "div",
    kernel: <T> |a, b| a / b,
    jvp: |x, y, tx, ty, ans| add_tangents(tx.map(|t| t / y), ty.map(|t| -(t * ans) / y)),
    transpose: |ct, ins| {
        // Linear only in the numerator: x / c.
        assert!(!ins[1].is_linear(), "div: the divisor of a linear program must be a constant (an internal error)");
        vec![if_linear(&ins[0], |a| unbroadcast(&(ct / constant("div", &ins[1])), &a.shape)), None]
    }
);

arith!(
    /// The `max` primitive (numpy's `maximum`; NaN propagates). Where both
    /// arguments are equal the derivative is split evenly between them.
    Max, "max",
    kernel: <T> |a, b| a.max_nan(b),
    jvp: |x, y, tx, ty, ans| {
        let wx = balanced(x, y, ans);
        add_tangents(tx.map(|t| t * &wx), ty.map(|t| t * (1.0 - &wx)))
    }
);

arith!(
    /// The `min` primitive (numpy's `minimum`; NaN propagates), with ties
    /// splitting the derivative evenly.
    Min, "min",
    kernel: <T> |a, b| a.min_nan(b),
    jvp: |x, y, tx, ty, ans| {
        let wx = balanced(x, y, ans);
        add_tangents(tx.map(|t| t * &wx), ty.map(|t| t * (1.0 - &wx)))
    }
);

/// The share of the derivative of `max(x, y)` or `min(x, y)` that belongs
/// to `x`: 1 where `x` alone gave the answer, ½ on a tie, 0 otherwise.
fn balanced(x: &Tensor, y: &Tensor, ans: &Tensor) -> Tensor {
    let dt = ans.dtype();
    let x_won = x.eq(ans).to_dtype(dt);
    let y_won = y.eq(ans).to_dtype(dt);
    x_won * (1.0 - y_won * 0.5)
}

/// The `pow` primitive: `x^y` for float tensors.
///
/// `d/dx` is `y x^(y-1)`, NaN at `(0, 0)` as in JAX; `d/dy` is
/// `ln(x) x^y` with the `x = 0` term taken as 0 (its limit for `y > 0`).
#[derive(Clone, Copy, Debug)]
pub struct Pow;

impl Primitive for Pow {
    fn name(&self) -> &'static str {
        "pow"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        expect_same_dtype("pow", ins[0], ins[1]);
        expect_float("pow", ins[0]);
        Aval { dtype: ins[0].dtype, shape: broadcast_or_panic("pow", &ins[0].shape, &ins[1].shape) }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        let out = broadcast_or_panic("pow", ins[0].shape(), ins[1].shape());
        match (ins[0].buffer(), ins[1].buffer()) {
            (crate::array::Buffer::F32(a), crate::array::Buffer::F32(b)) => {
                Array::from_vec(elementwise::zip(a, ins[0].shape(), b, ins[1].shape(), &out, COSTLY, f32::powf), &out)
            }
            (crate::array::Buffer::F64(a), crate::array::Buffer::F64(b)) => {
                Array::from_vec(elementwise::zip(a, ins[0].shape(), b, ins[1].shape(), &out, COSTLY, f64::powf), &out)
            }
            _ => unreachable!("pow: the shape rule admits only float operands of one dtype"),
        }
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        batching::elementwise(self, x, axes)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
        let (x, y) = (&x[0], &x[1]);
        let dx = t[0].as_ref().map(|t| t * y * x.pow(&(y - 1.0)));
        let dy = t[1].as_ref().map(|t| {
            let x_is_zero = x.eq(&x.zeros_scalar());
            let safe_x = x_is_zero.select(&Tensor::ones(&[], x.dtype()), x);
            t * safe_x.ln() * ans
        });
        add_tangents(dx, dy).map(|t| to_shape(t, ans.shape()))
    }
}

/// Which comparison a [`Compare`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

/// The `compare` primitive: an elementwise comparison giving a bool tensor.
#[derive(Clone, Copy, Debug)]
pub struct Compare {
    /// Which comparison.
    pub op: CmpOp,
}

impl Compare {
    fn op_name(&self) -> &'static str {
        match self.op {
            CmpOp::Gt => "gt",
            CmpOp::Lt => "lt",
            CmpOp::Ge => "ge",
            CmpOp::Le => "le",
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
        }
    }
}

impl Primitive for Compare {
    fn name(&self) -> &'static str {
        "compare"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let op = self.op_name();
        expect_same_dtype(op, ins[0], ins[1]);
        Aval { dtype: DType::Bool, shape: broadcast_or_panic(op, &ins[0].shape, &ins[1].shape) }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        let out = broadcast_or_panic(self.op_name(), ins[0].shape(), ins[1].shape());
        let name = self.op_name();
        match self.op {
            CmpOp::Gt => zip_to!(name, ins[0], ins[1], &out, CHEAP, bool, <T> |a, b| a > b),
            CmpOp::Lt => zip_to!(name, ins[0], ins[1], &out, CHEAP, bool, <T> |a, b| a < b),
            CmpOp::Ge => zip_to!(name, ins[0], ins[1], &out, CHEAP, bool, <T> |a, b| a >= b),
            CmpOp::Le => zip_to!(name, ins[0], ins[1], &out, CHEAP, bool, <T> |a, b| a <= b),
            CmpOp::Eq => zip_to!(name, ins[0], ins[1], &out, CHEAP, bool, <T> |a, b| a == b),
            CmpOp::Ne => zip_to!(name, ins[0], ins[1], &out, CHEAP, bool, <T> |a, b| a != b),
        }
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

impl Primitive for Select {
    fn name(&self) -> &'static str {
        "select"
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
        let ab = broadcast_or_panic("select", ins[1].shape(), ins[2].shape());
        let out = broadcast_or_panic("select", ins[0].shape(), &ab);
        elementwise::select_any(ins[0], ins[1], ins[2], &out)
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

/// A 0-d tensor of `like`'s dtype holding `v`, for mixing `f64` into tensor arithmetic.
#[track_caller]
fn scalar_like(op: &str, v: f64, like: &Tensor) -> Tensor {
    match like.dtype() {
        DType::F32 | DType::F64 => Tensor::full(&[], v, like.dtype()),
        DType::I64 if v.fract() == 0.0 && v.abs() < 9.2e18 => Tensor::full(&[], v, DType::I64),
        dt => panic!(
            "{op}: cannot combine a {dt} tensor with the number {v}; convert the tensor with .to_dtype(DType::F64)"
        ),
    }
}

macro_rules! operator {
    ($Trait:ident, $method:ident, $Prim:ident, $name:literal) => {
        impl ops::$Trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                bind($Prim, &[self.clone(), rhs.clone()])
            }
        }
        impl ops::$Trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                bind($Prim, &[self.clone(), rhs])
            }
        }
        impl ops::$Trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                bind($Prim, &[self, rhs.clone()])
            }
        }
        impl ops::$Trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                bind($Prim, &[self, rhs])
            }
        }
        impl ops::$Trait<f64> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                let r = scalar_like($name, rhs, self);
                bind($Prim, &[self.clone(), r])
            }
        }
        impl ops::$Trait<f64> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                let r = scalar_like($name, rhs, &self);
                bind($Prim, &[self, r])
            }
        }
        impl ops::$Trait<&Tensor> for f64 {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                let l = scalar_like($name, self, rhs);
                bind($Prim, &[l, rhs.clone()])
            }
        }
        impl ops::$Trait<Tensor> for f64 {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                let l = scalar_like($name, self, &rhs);
                bind($Prim, &[l, rhs])
            }
        }
    };
}

operator!(Add, add, Add, "add");
operator!(Sub, sub, Sub, "sub");
operator!(Mul, mul, Mul, "mul");
operator!(Div, div, Div, "div");

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
        /// # Panics
        /// When the dtypes differ or the shapes do not broadcast.
        #[track_caller]
        pub fn $method(&self, other: &Tensor) -> Tensor {
            bind(Compare { op: CmpOp::$op }, &[self.clone(), other.clone()])
        }
    };
}

impl Tensor {
    /// Elementwise maximum (numpy's `maximum`), broadcasting.
    ///
    /// # Panics
    /// When the dtypes differ or the shapes do not broadcast.
    #[track_caller]
    pub fn maximum(&self, other: &Tensor) -> Tensor {
        bind(Max, &[self.clone(), other.clone()])
    }

    /// Elementwise minimum (numpy's `minimum`), broadcasting.
    ///
    /// # Panics
    /// When the dtypes differ or the shapes do not broadcast.
    #[track_caller]
    pub fn minimum(&self, other: &Tensor) -> Tensor {
        bind(Min, &[self.clone(), other.clone()])
    }

    /// `self^exponent` elementwise, broadcasting; float tensors only.
    ///
    /// # Panics
    /// When the tensors are not floats of one dtype or do not broadcast.
    #[track_caller]
    pub fn pow(&self, exponent: &Tensor) -> Tensor {
        bind(Pow, &[self.clone(), exponent.clone()])
    }

    /// `self^p` for a float exponent.
    ///
    /// # Panics
    /// When the tensor is not a float tensor.
    #[track_caller]
    pub fn powf(&self, p: f64) -> Tensor {
        expect_float("powf", self.aval());
        self.pow(&scalar_like("powf", p, self))
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

    /// `self ? on_true : on_false` elementwise, for a bool `self`; all three broadcast.
    ///
    /// # Panics
    /// When `self` is not bool, the branches' dtypes differ, or the shapes do not broadcast.
    #[track_caller]
    pub fn select(&self, on_true: &Tensor, on_false: &Tensor) -> Tensor {
        bind(Select, &[self.clone(), on_true.clone(), on_false.clone()])
    }
}
