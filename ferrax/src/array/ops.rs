//! The op vocabulary: every elementwise, reducing and scanning computation
//! a kernel can do, named by a value, with the CPU kernel of each beside its
//! name. Primitives pass these values to a [`Backend`](super::Backend)
//! instead of passing closures, so a primitive is readable as data (a fusion
//! pass can see that `sin` is elementwise) and a second backend implements
//! the same table. Adding an elementwise operation means one variant and
//! one kernel line here, and one primitive definition in `prims/`.

use std::fmt;

use super::elementwise::{map_isa, select_any, IsaFn};
use super::parallel::{CHEAP, COSTLY};
use super::simd::Isa;
use super::{map_float, map_num, zip_float, zip_num, zip_to, Array, Buffer, DType, FastMath, Special};

/// An elementwise function of one array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x` (wrapping for integers).
    Neg,
    /// `|x|`.
    Abs,
    /// -1, 0 or 1 (0 at ±0).
    Sign,
    /// `max(x, 0)`, NaN propagating.
    Relu,
    /// `x^n` for an integer `n`.
    PowI(i32),
    /// Sine.
    Sin,
    /// Cosine.
    Cos,
    /// Tangent.
    Tan,
    /// Arcsine.
    Asin,
    /// Arccosine.
    Acos,
    /// Arctangent.
    Atan,
    /// Hyperbolic sine.
    Sinh,
    /// Hyperbolic cosine.
    Cosh,
    /// Hyperbolic tangent.
    Tanh,
    /// Inverse hyperbolic sine.
    Asinh,
    /// Inverse hyperbolic cosine.
    Acosh,
    /// Inverse hyperbolic tangent.
    Atanh,
    /// `e^x`.
    Exp,
    /// `2^x`.
    Exp2,
    /// `e^x - 1`.
    ExpM1,
    /// Natural logarithm.
    Ln,
    /// `ln(1 + x)`.
    Ln1p,
    /// Base-2 logarithm.
    Log2,
    /// Base-10 logarithm.
    Log10,
    /// Square root.
    Sqrt,
    /// `1 / (1 + e^-x)`.
    Logistic,
    /// The error function.
    Erf,
    /// `1 - erf(x)`.
    Erfc,
    /// The inverse error function.
    Erfinv,
    /// Round down.
    Floor,
    /// Round up.
    Ceil,
    /// Round to nearest, ties to even.
    Round,
    /// Round toward zero.
    Trunc,
}

impl UnaryOp {
    /// Every op (`PowI` with a sample exponent).
    pub const ALL: [UnaryOp; 33] = {
        use UnaryOp::*;
        [
            Neg,
            Abs,
            Sign,
            Relu,
            PowI(2),
            Sin,
            Cos,
            Tan,
            Asin,
            Acos,
            Atan,
            Sinh,
            Cosh,
            Tanh,
            Asinh,
            Acosh,
            Atanh,
            Exp,
            Exp2,
            ExpM1,
            Ln,
            Ln1p,
            Log2,
            Log10,
            Sqrt,
            Logistic,
            Erf,
            Erfc,
            Erfinv,
            Floor,
            Ceil,
            Round,
            Trunc,
        ]
    };

    /// Whether the op is defined for integers too (the others take floats).
    pub fn takes_integers(self) -> bool {
        matches!(self, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Relu)
    }

    /// The op on every element of `x`, on the CPU.
    pub(crate) fn cpu(self, x: &Array) -> Array {
        use UnaryOp::*;
        let name = self.name();
        match self {
            Neg => map_num!(name, x, CHEAP, <T> |v| v.neg()),
            Abs => map_num!(name, x, CHEAP, <T> |v| v.abs()),
            Sign => map_num!(name, x, CHEAP, <T> |v| v.signum()),
            Relu => map_num!(name, x, CHEAP, <T> |v| v.max_nan(T::ZERO)),
            PowI(n) => map_float!(name, x, CHEAP, |v| v.powi(n)),
            Sin => map_float!(name, x, COSTLY, |v| v.sin()),
            Cos => map_float!(name, x, COSTLY, |v| v.cos()),
            Tan => map_float!(name, x, COSTLY, |v| v.tan()),
            Asin => map_float!(name, x, COSTLY, |v| v.asin()),
            Acos => map_float!(name, x, COSTLY, |v| v.acos()),
            Atan => map_float!(name, x, COSTLY, |v| v.atan()),
            Sinh => map_float!(name, x, COSTLY, |v| v.sinh()),
            Cosh => map_float!(name, x, COSTLY, |v| v.cosh()),
            Tanh => map_fast(name, x, FastTanh),
            Asinh => map_float!(name, x, COSTLY, |v| v.asinh()),
            Acosh => map_float!(name, x, COSTLY, |v| v.acosh()),
            Atanh => map_float!(name, x, COSTLY, |v| v.atanh()),
            Exp => map_fast(name, x, FastExp),
            Exp2 => map_float!(name, x, COSTLY, |v| v.exp2()),
            ExpM1 => map_float!(name, x, COSTLY, |v| v.exp_m1()),
            Ln => map_float!(name, x, COSTLY, |v| v.ln()),
            Ln1p => map_float!(name, x, COSTLY, |v| v.ln_1p()),
            Log2 => map_float!(name, x, COSTLY, |v| v.log2()),
            Log10 => map_float!(name, x, COSTLY, |v| v.log10()),
            Sqrt => map_float!(name, x, COSTLY, |v| v.sqrt()),
            Logistic => map_fast(name, x, FastLogistic),
            Erf => map_float!(name, x, COSTLY, |v| Special::erf(v)),
            Erfc => map_float!(name, x, COSTLY, |v| Special::erfc(v)),
            Erfinv => map_float!(name, x, COSTLY, |v| Special::erfinv(v)),
            Floor => map_float!(name, x, CHEAP, |v| v.floor()),
            Ceil => map_float!(name, x, CHEAP, |v| v.ceil()),
            Round => map_float!(name, x, CHEAP, |v| v.round_ties_even()),
            Trunc => map_float!(name, x, CHEAP, |v| v.trunc()),
        }
    }

    /// The op's name in messages.
    pub fn name(self) -> &'static str {
        use UnaryOp::*;
        match self {
            Neg => "neg",
            Abs => "abs",
            Sign => "signum",
            Relu => "relu",
            PowI(_) => "powi",
            Sin => "sin",
            Cos => "cos",
            Tan => "tan",
            Asin => "asin",
            Acos => "acos",
            Atan => "atan",
            Sinh => "sinh",
            Cosh => "cosh",
            Tanh => "tanh",
            Asinh => "asinh",
            Acosh => "acosh",
            Atanh => "atanh",
            Exp => "exp",
            Exp2 => "exp2",
            ExpM1 => "exp_m1",
            Ln => "ln",
            Ln1p => "ln_1p",
            Log2 => "log2",
            Log10 => "log10",
            Sqrt => "sqrt",
            Logistic => "logistic",
            Erf => "erf",
            Erfc => "erfc",
            Erfinv => "erfinv",
            Floor => "floor",
            Ceil => "ceil",
            Round => "round",
            Trunc => "trunc",
        }
    }
}

/// The vectorised elementary functions of [`FastMath`], as kernels.
macro_rules! fast_fns {
    ($($name:ident => $method:ident),*) => {$(
        struct $name;
        impl<T: FastMath + Sync> IsaFn<T, T> for $name {
            #[inline(always)]
            fn call<I: Isa>(&self, v: T) -> T {
                v.$method::<I>()
            }
        }
    )*};
}
fast_fns!(FastExp => exp_in, FastTanh => tanh_in, FastLogistic => logistic_in);

/// `f` on every element of a float array, compiled per SIMD level.
fn map_fast<F: IsaFn<f32, f32> + IsaFn<f64, f64>>(name: &str, x: &Array, f: F) -> Array {
    let buf = match x.buffer() {
        Buffer::F32(d) => Buffer::F32(map_isa(d, COSTLY, f)),
        Buffer::F64(d) => Buffer::F64(map_isa(d, COSTLY, f)),
        _ => panic!("{name}: expected a float array, got {}", x.dtype()),
    };
    Array::new(x.shape(), buf)
}

/// An elementwise function of two arrays of one dtype, broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b` (wrapping for integers).
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`, floats only.
    Div,
    /// Truncated remainder (`x rem 0 = x` for integers).
    Rem,
    /// Division rounded toward negative infinity.
    FloorDiv,
    /// Maximum, NaN propagating.
    Max,
    /// Minimum, NaN propagating.
    Min,
    /// `a^b`, floats only.
    Pow,
    /// The angle of `(b, a)`, floats only.
    Atan2,
}

impl BinaryOp {
    /// Every op.
    pub const ALL: [BinaryOp; 10] = {
        use BinaryOp::*;
        [Add, Sub, Mul, Div, Rem, FloorDiv, Max, Min, Pow, Atan2]
    };

    /// Whether the op is defined for integers too.
    pub fn takes_integers(self) -> bool {
        !matches!(self, BinaryOp::Div | BinaryOp::Pow | BinaryOp::Atan2)
    }

    /// The op on the elements of `a` and `b` broadcast to `out`, on the CPU.
    pub(crate) fn cpu(self, a: &Array, b: &Array, out: &[usize]) -> Array {
        use BinaryOp::*;
        let name = self.name();
        match self {
            Add => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.wadd(y)),
            Sub => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.wsub(y)),
            Mul => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.wmul(y)),
            Rem => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.rem_trunc(y)),
            FloorDiv => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.floor_div(y)),
            Max => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.max_nan(y)),
            Min => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.min_nan(y)),
            Div => zip_float!(name, a, b, out, CHEAP, |x, y| x / y),
            Pow => zip_float!(name, a, b, out, COSTLY, |x, y| x.powf(y)),
            Atan2 => zip_float!(name, a, b, out, COSTLY, |x, y| x.atan2(y)),
        }
    }

    /// The op's name in messages.
    pub fn name(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "add",
            Sub => "sub",
            Mul => "mul",
            Div => "div",
            Rem => "rem",
            FloorDiv => "floor_div",
            Max => "max",
            Min => "min",
            Pow => "pow",
            Atan2 => "atan2",
        }
    }
}

/// An elementwise comparison, giving bool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
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

impl CompareOp {
    /// Every comparison.
    pub const ALL: [CompareOp; 6] =
        [CompareOp::Gt, CompareOp::Lt, CompareOp::Ge, CompareOp::Le, CompareOp::Eq, CompareOp::Ne];

    /// The comparison of `a` and `b` broadcast to `out`, on the CPU.
    pub(crate) fn cpu(self, a: &Array, b: &Array, out: &[usize]) -> Array {
        use CompareOp::*;
        let name = self.name();
        match self {
            Gt => zip_to!(name, a, b, out, CHEAP, bool, <T> |x, y| x > y),
            Lt => zip_to!(name, a, b, out, CHEAP, bool, <T> |x, y| x < y),
            Ge => zip_to!(name, a, b, out, CHEAP, bool, <T> |x, y| x >= y),
            Le => zip_to!(name, a, b, out, CHEAP, bool, <T> |x, y| x <= y),
            Eq => zip_to!(name, a, b, out, CHEAP, bool, <T> |x, y| x == y),
            Ne => zip_to!(name, a, b, out, CHEAP, bool, <T> |x, y| x != y),
        }
    }

    /// The comparison's name (`gt`, `le`, …).
    pub fn name(self) -> &'static str {
        use CompareOp::*;
        match self {
            Gt => "gt",
            Lt => "lt",
            Ge => "ge",
            Le => "le",
            Eq => "eq",
            Ne => "ne",
        }
    }
}

/// An associative reduction: over axes (`reduce`), as a running scan
/// (`scan`), or the position of an extreme (`arg_reduce`, `Max` and `Min`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum (wrapping for integers); identity 0.
    Sum,
    /// Product; identity 1.
    Prod,
    /// Maximum, NaN propagating; identity -∞ (`i64::MIN`).
    Max,
    /// Minimum, NaN propagating; identity +∞ (`i64::MAX`).
    Min,
}

impl ReduceOp {
    /// Every op.
    pub const ALL: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min];

    /// The op's name (`sum`, `max`, …).
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Prod => "prod",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }
}

/// A change of layout: the same elements, moved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LayoutOp {
    /// numpy-style broadcast to a shape.
    Broadcast(Vec<usize>),
    /// Output axis `i` is input axis `perm[i]`.
    Permute(Vec<usize>),
    /// The block `starts[d]..ends[d]` of every axis.
    Slice {
        /// First index kept, per axis.
        starts: Vec<usize>,
        /// One past the last, per axis.
        ends: Vec<usize>,
    },
    /// Zeros before (`lo`) and after (`hi`) each axis.
    Pad {
        /// Before, per axis.
        lo: Vec<usize>,
        /// After, per axis.
        hi: Vec<usize>,
    },
    /// Reversed along these axes.
    Rev(Vec<usize>),
}

impl LayoutOp {
    /// The op on the CPU.
    pub(crate) fn cpu(&self, x: &Array) -> Array {
        use super::layout;
        match self {
            LayoutOp::Broadcast(shape) => layout::broadcast_to(x, shape),
            LayoutOp::Permute(perm) => layout::permute(x, perm),
            LayoutOp::Slice { starts, ends } => layout::slice(x, starts, ends),
            LayoutOp::Pad { lo, hi } => layout::pad(x, lo, hi),
            LayoutOp::Rev(axes) => layout::rev(x, axes),
        }
    }
}

/// `cond ? a : b` with broadcasting, on the CPU.
pub(crate) fn select_cpu(cond: &Array, a: &Array, b: &Array, out: &[usize]) -> Array {
    select_any(cond, a, b, out)
}

impl fmt::Display for UnaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnaryOp::PowI(n) => write!(f, "powi({n})"),
            op => f.write_str(op.name()),
        }
    }
}

impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for ReduceOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The dtype a conversion gives; used by [`Backend::convert`](super::Backend::convert).
pub(crate) fn convert_cpu(x: &Array, dtype: DType) -> Array {
    x.to_dtype(dtype)
}
