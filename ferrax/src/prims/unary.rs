//! Elementwise functions of one argument.

use std::f64::consts::{FRAC_2_PI, FRAC_2_SQRT_PI, LN_10, LN_2, PI};

/// 1 / √(2π), the standard normal density at 0.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

use crate::array::{backend_of, Array, Aval, UnaryOp};
use crate::core::{bind, Kind, Lin, Param, Params, SingleOutput, Tensor};

use super::promote::inexact;
use super::{batching, expect_float, expect_numeric};

/// Defines a float-only elementwise primitive and the `Tensor` method that
/// binds it: its op (whose CPU kernel is in `array::ops`, under the same
/// name) and its derivative side by side.
///
/// Adding an elementwise function is a variant with its kernel line in
/// `array::ops::UnaryOp`, and one invocation here — `erf` was added so:
/// `Erf => each(x, out, |v: $t| Special::erf(v))` in the op table,
/// and `float_unary!(Erf, "erf", erf, jvp: |x, t, ans| …)` below.
macro_rules! float_unary {
    (
        $(#[$doc:meta])* $Prim:ident, $name:literal, $method:ident,
        jvp: |$x:ident, $t:ident, $ans:ident| $jvp:expr
    ) => {
        #[doc = concat!("The `", $name, "` primitive: [`UnaryOp::", stringify!($Prim), "`] elementwise.")]
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
                Kind::Unary(UnaryOp::$Prim)
            }
            #[track_caller]
            fn shape(&self, ins: &[&Aval]) -> Aval {
                expect_float($name, ins[0]);
                ins[0].clone()
            }
            fn eval(&self, ins: &[&Array]) -> Array {
                backend_of(ins).unary(UnaryOp::$Prim, ins[0])
            }
            #[allow(unused_variables)]
            fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
                let ($x, $t, $ans) = (&x[0], t[0].as_ref()?, ans);
                Some($jvp)
            }
            fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
                batching::unary(self, x, axes)
            }
        }

        impl Tensor {
            $(#[$doc])*
            ///
            /// Integer and bool tensors are computed in f64.
            #[track_caller]
            pub fn $method(&self) -> Tensor {
                bind($Prim, &[inexact(self)])
            }
        }
    };
}

float_unary!(
    /// Sine, elementwise.
    Sin, "sin", sin,
    jvp: |x, t, ans| t * x.cos()
);

float_unary!(
    /// Cosine, elementwise.
    Cos, "cos", cos,
    jvp: |x, t, ans| -(t * x.sin())
);

float_unary!(
    /// `e^x`, elementwise.
    Exp, "exp", exp,
    jvp: |x, t, ans| t * ans
);

float_unary!(
    /// Natural logarithm, elementwise.
    Ln, "ln", ln,
    jvp: |x, t, ans| t / x
);

float_unary!(
    /// `ln(1 + x)`, accurate for small `x`.
    Ln1p, "ln_1p", ln_1p,
    jvp: |x, t, ans| t / (x + 1.0)
);

float_unary!(
    /// `e^x - 1`, accurate for small `x`.
    ExpM1, "exp_m1", exp_m1,
    jvp: |x, t, ans| t * (ans + 1.0)
);

float_unary!(
    /// Hyperbolic tangent, elementwise.
    Tanh, "tanh", tanh,
    jvp: |x, t, ans| t * (1.0 - ans * ans)
);

float_unary!(
    /// Square root, elementwise.
    Sqrt, "sqrt", sqrt,
    jvp: |x, t, ans| t / (ans * 2.0)
);

float_unary!(
    /// The logistic function `1 / (1 + e^-x)`, computed without overflow.
    Logistic, "logistic", logistic,
    jvp: |x, t, ans| t * (ans * (1.0 - ans))
);

float_unary!(
    /// Hyperbolic sine, elementwise; finite wherever the result is.
    Sinh, "sinh", sinh,
    jvp: |x, t, ans| t * x.cosh()
);

float_unary!(
    /// Hyperbolic cosine, elementwise; finite wherever the result is
    /// (`cosh(710)` is 1.117e308).
    Cosh, "cosh", cosh,
    jvp: |x, t, ans| t * x.sinh()
);

float_unary!(
    /// Tangent, elementwise.
    Tan, "tan", tan,
    jvp: |x, t, ans| t * (ans * ans + 1.0)
);

float_unary!(
    /// Arctangent, elementwise, in `(-π/2, π/2)`.
    Atan, "atan", atan,
    jvp: |x, t, ans| t / (x * x + 1.0)
);

float_unary!(
    /// Arcsine, elementwise; NaN outside `[-1, 1]`.
    Asin, "asin", asin,
    jvp: |x, t, ans| t / ((1.0 - x) * (x + 1.0)).sqrt()
);

float_unary!(
    /// Arccosine, elementwise; NaN outside `[-1, 1]`.
    Acos, "acos", acos,
    jvp: |x, t, ans| -(t / ((1.0 - x) * (x + 1.0)).sqrt())
);

float_unary!(
    /// Inverse hyperbolic sine, elementwise.
    Asinh, "asinh", asinh,
    jvp: |x, t, ans| t / (x * x + 1.0).sqrt()
);

float_unary!(
    /// Inverse hyperbolic cosine, elementwise; NaN below 1.
    Acosh, "acosh", acosh,
    jvp: |x, t, ans| t / ((x - 1.0) * (x + 1.0)).sqrt()
);

float_unary!(
    /// Inverse hyperbolic tangent, elementwise; ±∞ at ±1, NaN beyond.
    Atanh, "atanh", atanh,
    jvp: |x, t, ans| t / ((1.0 - x) * (x + 1.0))
);

float_unary!(
    /// The error function `erf(x) = 2/√π ∫₀ˣ e^(-s²) ds`, elementwise.
    Erf, "erf", erf,
    jvp: |x, t, ans| t * (-(x * x)).exp() * FRAC_2_SQRT_PI
);

float_unary!(
    /// The complementary error function `1 - erf(x)`, accurate where
    /// `erf(x)` is near 1.
    Erfc, "erfc", erfc,
    jvp: |x, t, ans| -(t * (-(x * x)).exp() * FRAC_2_SQRT_PI)
);

float_unary!(
    /// GELU, `x Φ(x)` with `Φ` the standard normal distribution function,
    /// computed as `x erfc(−x / √2) / 2` (JAX's `gelu(approximate=False)`;
    /// PyTorch's `gelu` writes `x (1 + erf(x / √2)) / 2`, which gives 0 below
    /// x ≈ −5.5 in f32), in one kernel; its derivative is one more
    /// ([`Tensor::gelu_grad`]). In the negative tail the result keeps its
    /// relative precision, to about `x²/2` ulp in f32 (the conditioning of
    /// `e^(−x²/2)`). See [`Tensor::gelu_tanh`] for the tanh approximation.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let y = Tensor::from_vec(vec![-1.0, 0.0, 2.0], &[3]).gelu();
    /// assert!((y.to_vec::<f64>()[2] - 1.9544997361036416).abs() < 1e-15);
    /// ```
    Gelu, "gelu", gelu,
    jvp: |x, t, ans| t * x.gelu_grad()
);

float_unary!(
    /// The derivative of [`Tensor::gelu`]: `Φ(x) + x φ(x)`, with `φ` the
    /// standard normal density.
    GeluGrad, "gelu_grad", gelu_grad,
    jvp: |x, t, ans| {
        let square = x * x;
        t * (&square * -0.5).exp() * FRAC_1_SQRT_2PI * (2.0 - square)
    }
);

float_unary!(
    /// GELU, the tanh approximation (JAX's default `gelu`, PyTorch's
    /// `gelu(approximate="tanh")`): `½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))`,
    /// in one kernel; its derivative is one more
    /// ([`Tensor::gelu_tanh_grad`]). In f64 the kernel follows that formula
    /// operation for operation. In f32 it computes `½ (1 + tanh u)` as the
    /// logistic function of `2u`, the same function without the cancellation
    /// of `1 + tanh u` where tanh rounds to −1: below x ≈ −4.7 the formula
    /// gives 0 in f32, while the kernel keeps the tail's relative precision.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let y = Tensor::from_vec(vec![-1.0, 0.0, 2.0], &[3]).gelu_tanh();
    /// assert!((y.to_vec::<f64>()[2] - 1.954597694087775).abs() < 1e-15);
    /// ```
    GeluTanh, "gelu_tanh", gelu_tanh,
    jvp: |x, t, ans| t * x.gelu_tanh_grad()
);

float_unary!(
    /// The derivative of [`Tensor::gelu_tanh`]: `(1 + t) / 2 + x (1 − t²) u′ / 2`
    /// with `t = tanh(u)`, `u = √(2/π) (x + 0.044715 x³)`.
    GeluTanhGrad, "gelu_tanh_grad", gelu_tanh_grad,
    jvp: |x, t, ans| {
        // (1 − t²) (u′ + x (u″ − 2 t u′²) / 2).
        let (c, k) = (FRAC_2_PI.sqrt(), 0.044715);
        let th = ((x + x.powi(3) * k) * c).tanh();
        let du = (x * x * (3.0 * k) + 1.0) * c;
        let ddu = x * (6.0 * k * c);
        let curve = ddu - &th * 2.0 * du.square();
        t * (1.0 - th.square()) * (du + x * curve * 0.5)
    }
);

float_unary!(
    /// `ln(1 + e^x)`, computed as `max(x, 0) + ln_1p(e^-|x|)` so it never
    /// overflows, in one kernel; its derivative is the sigmoid, ½ at 0.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let y = Tensor::from_vec(vec![-800.0, 0.0, 800.0], &[3]).softplus();
    /// assert_eq!(y.to_vec::<f64>(), vec![0.0, std::f64::consts::LN_2, 800.0]);
    /// ```
    Softplus, "softplus", softplus,
    jvp: |x, t, ans| t * x.logistic()
);

float_unary!(
    /// The inverse error function on `(-1, 1)`: ±∞ at ±1, NaN beyond.
    Erfinv, "erfinv", erfinv,
    jvp: |x, t, ans| t * (ans * ans).exp() * (PI.sqrt() / 2.0)
);

float_unary!(
    /// Base-2 logarithm, elementwise (exact at powers of two).
    Log2, "log2", log2,
    jvp: |x, t, ans| t / (x * LN_2)
);

float_unary!(
    /// Base-10 logarithm, elementwise (exact at powers of ten).
    Log10, "log10", log10,
    jvp: |x, t, ans| t / (x * LN_10)
);

float_unary!(
    /// `2^x`, elementwise.
    Exp2, "exp2", exp2,
    jvp: |x, t, ans| t * ans * LN_2
);

/// Defines a rounding primitive: float kernel, zero derivative, and a
/// method that leaves integer and bool tensors as they are (as JAX does).
macro_rules! rounding {
    ($(#[$doc:meta])* $Prim:ident, $name:literal, $method:ident) => {
        #[doc = concat!("The `", $name, "` primitive: [`UnaryOp::", stringify!($Prim), "`] elementwise.")]
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
                Kind::Unary(UnaryOp::$Prim)
            }
            #[track_caller]
            fn shape(&self, ins: &[&Aval]) -> Aval {
                expect_float($name, ins[0]);
                ins[0].clone()
            }
            fn eval(&self, ins: &[&Array]) -> Array {
                backend_of(ins).unary(UnaryOp::$Prim, ins[0])
            }
            fn jvp(&self, _x: &[Tensor], _t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
                None // piecewise constant
            }
            fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
                batching::unary(self, x, axes)
            }
        }

        impl Tensor {
            $(#[$doc])*
            /// Its derivative is zero; integer and bool tensors are returned unchanged.
            #[track_caller]
            pub fn $method(&self) -> Tensor {
                if self.dtype().is_float() {
                    bind($Prim, std::slice::from_ref(self))
                } else {
                    self.clone()
                }
            }
        }
    };
}

rounding!(
    /// The largest integer not above each element.
    Floor, "floor", floor
);

rounding!(
    /// The smallest integer not below each element.
    Ceil, "ceil", ceil
);

rounding!(
    /// The nearest integer, ties to even (numpy's and JAX's `round`; Rust's
    /// `round_ties_even`, not `f64::round`).
    Round, "round", round
);

rounding!(
    /// The integer part, rounding toward zero.
    Trunc, "trunc", trunc
);

/// Defines an elementwise primitive of one numeric operand (integers too):
/// its op, its jvp and, when linear, its transpose.
macro_rules! numeric_unary {
    (
        $(#[$doc:meta])* $Prim:ident, $name:literal, $op:ident,
        jvp: |$x:ident, $t:ident| $jvp:expr
        $(, transpose: |$ct:ident| $transpose:expr)?
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
                Kind::Unary(UnaryOp::$op)
            }
            #[track_caller]
            fn shape(&self, ins: &[&Aval]) -> Aval {
                expect_numeric($name, ins[0]);
                ins[0].clone()
            }
            fn eval(&self, ins: &[&Array]) -> Array {
                backend_of(ins).unary(UnaryOp::$op, ins[0])
            }
            fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
                batching::unary(self, x, axes)
            }
            #[allow(unused_variables)]
            fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
                let ($x, $t) = (&x[0], t[0].as_ref()?);
                $jvp
            }
            $(
                fn transpose(&self, ct: &Tensor, _ins: &[Lin]) -> Vec<Option<Tensor>> {
                    let $ct = ct;
                    $transpose
                }
            )?
        }
    };
}

numeric_unary!(
    /// The `relu` primitive: `max(x, 0)`, NaN propagating, with derivative
    /// 0 at 0 (JAX's rule). A primitive rather than a `select`, whose NaN
    /// test would send NaN to 0, and rather than `maximum`, whose tie at 0
    /// would split the derivative.
    Relu, "relu", Relu,
    jvp: |x, t| Some(x.gt(&x.zeros_scalar()).select(t, &t.zeros_scalar()))
);

numeric_unary!(
    /// The `neg` primitive.
    Neg, "neg", Neg,
    jvp: |x, t| Some(t.neg()),
    transpose: |ct| vec![Some(ct.neg())]
);

numeric_unary!(
    /// The `abs` primitive; its derivative at 0 is 1, as JAX's (the right-hand one).
    Abs, "abs", Abs,
    jvp: |x, t| Some(x.ge(&x.zeros_scalar()).select(t, &-t))
);

numeric_unary!(
    /// The `signum` primitive: -1, 0 or 1 (0 at 0, as numpy); piecewise constant.
    Signum, "signum", Sign,
    jvp: |x, t| None
);

/// The `powi` primitive: `x^n` for a fixed integer `n`.
#[derive(Clone, Copy, Debug)]
pub struct PowI {
    /// The exponent.
    pub n: i32,
}

impl SingleOutput for PowI {
    fn name(&self) -> &'static str {
        "powi"
    }
    fn params(&self) -> Params {
        vec![("n", Param::Int(self.n.into()))]
    }
    fn kind(&self) -> Kind {
        Kind::Unary(UnaryOp::PowI(self.n))
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        expect_float("powi", ins[0]);
        ins[0].clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).unary(UnaryOp::PowI(self.n), ins[0])
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        batching::unary(self, x, axes)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        let (x, t) = (&x[0], t[0].as_ref()?);
        match self.n {
            0 => None, // x^0 = 1 everywhere, including at 0
            1 => Some(t.clone()),
            n => Some(t * (x.powi(n - 1) * f64::from(n))),
        }
    }
}

impl Tensor {
    /// `-x`, elementwise (also available as the unary `-` operator).
    ///
    /// # Panics
    /// For a bool tensor.
    #[track_caller]
    pub fn neg(&self) -> Tensor {
        bind(Neg, std::slice::from_ref(self))
    }

    /// Absolute value, elementwise. Its derivative at 0 is taken as 1.
    ///
    /// # Panics
    /// For a bool tensor.
    #[track_caller]
    pub fn abs(&self) -> Tensor {
        bind(Abs, std::slice::from_ref(self))
    }

    /// -1, 0 or 1 by the sign of each element.
    ///
    /// # Panics
    /// For a bool tensor.
    #[track_caller]
    pub fn signum(&self) -> Tensor {
        bind(Signum, std::slice::from_ref(self))
    }

    /// `x^n` for an integer exponent, elementwise.
    ///
    /// # Panics
    /// When the tensor is not a float tensor.
    #[track_caller]
    pub fn powi(&self, n: i32) -> Tensor {
        bind(PowI { n }, std::slice::from_ref(self))
    }

    /// `max(x, 0)` elementwise: NaN stays NaN, and the derivative at 0 is 0 (as JAX).
    ///
    /// # Panics
    /// For a bool tensor.
    #[track_caller]
    pub fn relu(&self) -> Tensor {
        bind(Relu, std::slice::from_ref(self))
    }

    /// `ln(1 + x)`: an alias of [`Tensor::ln_1p`] under jax.numpy's name.
    #[track_caller]
    pub fn log1p(&self) -> Tensor {
        self.ln_1p()
    }

    /// `e^x - 1`: an alias of [`Tensor::exp_m1`] under jax.numpy's name.
    #[track_caller]
    pub fn expm1(&self) -> Tensor {
        self.exp_m1()
    }

    /// A 0-d zero of this tensor's dtype (broadcasts against anything).
    pub fn zeros_scalar(&self) -> Tensor {
        Tensor::zeros(&[], self.dtype())
    }
}
