//! The op vocabulary: every elementwise, reducing and scanning computation
//! a kernel can do, named by a value, with the CPU kernel of each beside its
//! name. Primitives pass these values to a [`Backend`](super::Backend)
//! instead of passing closures, so a primitive is readable as data (a fusion
//! pass can see that `sin` is elementwise) and a second backend implements
//! the same table. Adding an elementwise operation means one variant and
//! one kernel line here, and one primitive definition in `prims/`.

use std::fmt;

use std::marker::PhantomData;
use std::mem::MaybeUninit;

use super::elementwise::{select_any, zip};
use super::fused::FloatRuns;
use super::parallel::{build, CHEAP, COSTLY};
use super::simd::{self, dispatch, vectorized, Isa, Kernel};
use super::{map_num, zip_num, zip_to, Array, Buffer, DType, FastMath, Num, Special};

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
    /// GELU, `x Φ(x)` with `Φ` the standard normal distribution function,
    /// computed as `x (1 + erf(x / √2)) / 2`.
    Gelu,
    /// The derivative of [`UnaryOp::Gelu`]: `Φ(x) + x φ(x)`.
    GeluGrad,
    /// GELU's tanh approximation, `x (1 + tanh(√(2/π) (x + 0.044715 x³))) / 2`.
    GeluTanh,
    /// The derivative of [`UnaryOp::GeluTanh`].
    GeluTanhGrad,
    /// `ln(1 + e^x)`, as `max(x, 0) + ln_1p(e^-|x|)`.
    Softplus,
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
    pub const ALL: [UnaryOp; 38] = {
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
            Gelu,
            GeluGrad,
            GeluTanh,
            GeluTanhGrad,
            Softplus,
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
        let cost = self.cost();
        // SAFETY (both float arms): `unary` writes every element of the chunk it is given.
        let buf = match x.buffer() {
            Buffer::F32(d) => {
                Buffer::F32(unsafe { build(d.len(), cost, |s, o| f32::unary(self, &d[s..s + o.len()], o)) })
            }
            Buffer::F64(d) => {
                Buffer::F64(unsafe { build(d.len(), cost, |s, o| f64::unary(self, &d[s..s + o.len()], o)) })
            }
            _ => {
                return match self {
                    Neg => map_num!(name, x, CHEAP, <T> |v| v.neg()),
                    Abs => map_num!(name, x, CHEAP, <T> |v| v.abs()),
                    Sign => map_num!(name, x, CHEAP, <T> |v| v.signum()),
                    Relu => map_num!(name, x, CHEAP, <T> |v| v.max_nan(T::ZERO)),
                    _ => panic!("{name}: expected a float array, got {}", x.dtype()),
                }
            }
        };
        Array::new(x.shape(), buf)
    }

    /// Per-element cost, for deciding when to split across threads.
    pub(crate) fn cost(self) -> usize {
        use UnaryOp::*;
        match self {
            Neg | Abs | Sign | Relu | PowI(_) | Floor | Ceil | Round | Trunc => CHEAP,
            _ => COSTLY,
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
            Gelu => "gelu",
            GeluGrad => "gelu_grad",
            GeluTanh => "gelu_tanh",
            GeluTanhGrad => "gelu_tanh_grad",
            Softplus => "softplus",
            Floor => "floor",
            Ceil => "ceil",
            Round => "round",
            Trunc => "trunc",
        }
    }
}

/// `f` on every element of a contiguous run.
#[inline(always)]
fn each<T: Copy, U>(x: &[T], out: &mut [MaybeUninit<U>], f: impl Fn(T) -> U) {
    // The loop proper starts where `out` reaches a cache line, and so, for
    // arrays from the allocator (which share their offset from a line),
    // does `x`: a negation of 2^20 f32 took 86 µs against 96 µs across
    // lines, a relu 82 against 103, on one thread of an AMD EPYC (Zen 4).
    let head = simd::to_line(out.as_ptr()).min(out.len());
    vectorized(|| {
        for (o, &v) in out[..head].iter_mut().zip(x) {
            o.write(f(v));
        }
        for (o, &v) in out[head..].iter_mut().zip(&x[head..]) {
            o.write(f(v));
        }
    })
}

/// `f(a, b)` on the elements of two contiguous runs.
#[inline(always)]
fn each2<T: Copy, U>(a: &[T], b: &[T], out: &mut [MaybeUninit<U>], f: impl Fn(T, T) -> U) {
    vectorized(|| {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            o.write(f(x, y));
        }
    })
}

/// Binds `$f` to the formula of the cheap unary `$op` (neg, abs, relu,
/// square: the unary links of a fused chain) on `$T` and
/// evaluates `$body`; shared as `float_binary!` is.
macro_rules! cheap_unary {
    ($op:expr, $T:ty, |$f:ident| $body:expr) => {
        match $op {
            UnaryOp::Neg => {
                let $f = |v: $T| -v;
                $body
            }
            UnaryOp::Abs => {
                let $f = |v: $T| Num::abs(v);
                $body
            }
            UnaryOp::Relu => {
                let $f = |v: $T| v.max_nan(0.0);
                $body
            }
            UnaryOp::PowI(2) => {
                let $f = |v: $T| v * v;
                $body
            }
            op => unreachable!("{op:?} is not one of the unary links of a chain"),
        }
    };
}

/// Binds `$f` to the formula of the float binary `$op` on `$T` and
/// evaluates `$body`: the one table that the eager kernels, the fused steps
/// and the in-place links of a chain all expand, so that they give the same bits.
macro_rules! float_binary {
    ($op:expr, $T:ty, |$f:ident| $body:expr) => {
        match $op {
            BinaryOp::Add => {
                let $f = |x: $T, y: $T| x + y;
                $body
            }
            BinaryOp::Sub => {
                let $f = |x: $T, y: $T| x - y;
                $body
            }
            BinaryOp::Mul => {
                let $f = |x: $T, y: $T| x * y;
                $body
            }
            BinaryOp::Div => {
                let $f = |x: $T, y: $T| x / y;
                $body
            }
            BinaryOp::Rem => {
                let $f = |x: $T, y: $T| x.rem_trunc(y);
                $body
            }
            BinaryOp::FloorDiv => {
                let $f = |x: $T, y: $T| x.floor_div(y);
                $body
            }
            BinaryOp::Max => {
                let $f = |x: $T, y: $T| x.max_nan(y);
                $body
            }
            BinaryOp::Min => {
                let $f = |x: $T, y: $T| x.min_nan(y);
                $body
            }
            BinaryOp::Pow => {
                let $f = |x: $T, y: $T| x.powf(y);
                $body
            }
            BinaryOp::Atan2 => {
                let $f = |x: $T, y: $T| x.atan2(y);
                $body
            }
        }
    };
}

/// The float kernel of every op, written once and compiled for f32 and f64:
/// what the eager kernels run on each chunk and fused programs on each tile.
macro_rules! float_runs {
    ($($t:ty),*) => {$(
        impl FloatRuns for $t {
            fn unary(op: UnaryOp, x: &[$t], out: &mut [MaybeUninit<$t>]) {
                use UnaryOp::*;
                // `Num::` where the inherent method differs (`signum` is ±1 at ±0).
                match op {
                    Neg | Abs | Relu | PowI(2) => cheap_unary!(op, $t, |f| each(x, out, f)),
                    Sign => each(x, out, |v: $t| Num::signum(v)),
                    // `powi` is a library call per element (repeated squaring);
                    // the small exponents get its products written out, in its
                    // order, so they vectorise and give the same bits.
                    PowI(3) => each(x, out, |v: $t| v * (v * v)),
                    PowI(4) => each(x, out, |v: $t| (v * v) * (v * v)),
                    PowI(-1) => each(x, out, |v: $t| 1.0 / v),
                    PowI(-2) => each(x, out, |v: $t| 1.0 / (v * v)),
                    PowI(n) => each(x, out, |v: $t| v.powi(n)),
                    Sin => each(x, out, |v: $t| v.sin()),
                    Cos => each(x, out, |v: $t| v.cos()),
                    Tan => each(x, out, |v: $t| v.tan()),
                    Asin => each(x, out, |v: $t| v.asin()),
                    Acos => each(x, out, |v: $t| v.acos()),
                    Atan => each(x, out, |v: $t| v.atan()),
                    Sinh => each(x, out, |v: $t| v.sinh()),
                    Cosh => each(x, out, |v: $t| v.cosh()),
                    Tanh => dispatch(Fast::<_, FastTanh>::new(x, out)),
                    Asinh => each(x, out, |v: $t| v.asinh()),
                    Acosh => each(x, out, |v: $t| v.acosh()),
                    Atanh => each(x, out, |v: $t| v.atanh()),
                    Exp => dispatch(Fast::<_, FastExp>::new(x, out)),
                    Exp2 => each(x, out, |v: $t| v.exp2()),
                    ExpM1 => each(x, out, |v: $t| v.exp_m1()),
                    Ln => dispatch(Fast::<_, FastLn>::new(x, out)),
                    Ln1p => dispatch(Fast::<_, FastLn1p>::new(x, out)),
                    Log2 => each(x, out, |v: $t| v.log2()),
                    Log10 => each(x, out, |v: $t| v.log10()),
                    Sqrt => each(x, out, |v: $t| v.sqrt()),
                    Logistic => dispatch(Fast::<_, FastLogistic>::new(x, out)),
                    Erf => dispatch(Fast::<_, FastErf>::new(x, out)),
                    Erfc => each(x, out, |v: $t| Special::erfc(v)),
                    Erfinv => each(x, out, |v: $t| Special::erfinv(v)),
                    Gelu => dispatch(Fast::<_, FastGelu>::new(x, out)),
                    GeluGrad => dispatch(Fast::<_, FastGeluGrad>::new(x, out)),
                    GeluTanh => dispatch(Fast::<_, FastGeluTanh>::new(x, out)),
                    GeluTanhGrad => dispatch(Fast::<_, FastGeluTanhGrad>::new(x, out)),
                    Softplus => dispatch(Fast::<_, FastSoftplus>::new(x, out)),
                    Floor => each(x, out, |v: $t| v.floor()),
                    Ceil => each(x, out, |v: $t| v.ceil()),
                    Round => each(x, out, |v: $t| v.round_ties_even()),
                    Trunc => each(x, out, |v: $t| v.trunc()),
                }
            }

            fn binary(op: BinaryOp, a: &[$t], b: &[$t], out: &mut [MaybeUninit<$t>]) {
                float_binary!(op, $t, |f| each2(a, b, out, f))
            }

            // In place, for a chain's links: the same formulas, so the same bits.
            fn unary_assign(op: UnaryOp, x: &mut [$t]) {
                cheap_unary!(op, $t, |f| vectorized(|| x.iter_mut().for_each(|v| *v = f(*v))))
            }

            fn binary_assign(op: BinaryOp, swap: bool, x: &mut [$t], y: &[$t]) {
                float_binary!(op, $t, |f| vectorized(|| {
                    if swap {
                        x.iter_mut().zip(y).for_each(|(v, &y)| *v = f(y, *v))
                    } else {
                        x.iter_mut().zip(y).for_each(|(v, &y)| *v = f(*v, y))
                    }
                }))
            }

            fn compare(op: CompareOp, a: &[$t], b: &[$t], out: &mut [MaybeUninit<$t>]) {
                use CompareOp::*;
                let mask = |c: bool| if c { 1.0 } else { 0.0 };
                match op {
                    Gt => each2(a, b, out, |x: $t, y| mask(x > y)),
                    Lt => each2(a, b, out, |x: $t, y| mask(x < y)),
                    Ge => each2(a, b, out, |x: $t, y| mask(x >= y)),
                    Le => each2(a, b, out, |x: $t, y| mask(x <= y)),
                    Eq => each2(a, b, out, |x: $t, y| mask(x == y)),
                    Ne => each2(a, b, out, |x: $t, y| mask(x != y)),
                }
            }
        }
    )*};
}
float_runs!(f32, f64);

/// A vectorised elementary function over a run, compiled per SIMD level.
struct Fast<'a, T, F> {
    x: &'a [T],
    out: &'a mut [MaybeUninit<T>],
    f: PhantomData<F>,
}

impl<'a, T, F> Fast<'a, T, F> {
    fn new(x: &'a [T], out: &'a mut [MaybeUninit<T>]) -> Self {
        Fast { x, out, f: PhantomData }
    }
}

impl<T: FastMath, F: FastFn> Kernel for Fast<'_, T, F> {
    type Out = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        // Two halves in one loop: a vector's polynomial is a long chain of
        // dependent operations, and two independent chains in each
        // iteration keep the units busy where the core's reorder window
        // holds too few iterations to overlap them by itself. On one thread
        // of an AMD EPYC (Zen 1), whose 256-bit operations are two µops
        // each, a million f32 tanh took 2.45 ms against 2.76, f64 exp 4.56
        // against 4.99 (after `double`'s Estrin scheme), f32 exp 1.56
        // against 1.68; four chains spilled registers and lost again.
        let half = self.x.len() / 2;
        let (o1, o2) = self.out.split_at_mut(half);
        let (x1, x2) = self.x.split_at(half);
        for (((a, &u), b), &v) in o1.iter_mut().zip(x1).zip(o2.iter_mut()).zip(x2) {
            a.write(F::call::<I, T>(u));
            b.write(F::call::<I, T>(v));
        }
        // An odd length leaves the second half's last element.
        if x2.len() > half {
            if let (Some(o), Some(&v)) = (o2.last_mut(), x2.last()) {
                o.write(F::call::<I, T>(v));
            }
        }
    }
}

/// One of [`FastMath`]'s functions, chosen by type.
trait FastFn {
    fn call<I: Isa, T: FastMath>(v: T) -> T;
}

/// The vectorised elementary functions of [`FastMath`], as kernels.
macro_rules! fast_fns {
    ($($name:ident => $method:ident),*) => {$(
        struct $name;
        impl FastFn for $name {
            #[inline(always)]
            fn call<I: Isa, T: FastMath>(v: T) -> T {
                v.$method::<I>()
            }
        }
    )*};
}
fast_fns!(
    FastExp => exp_in,
    FastTanh => tanh_in,
    FastLogistic => logistic_in,
    FastLn => ln_in,
    FastLn1p => ln_1p_in,
    FastErf => erf_in,
    FastGelu => gelu_in,
    FastGeluGrad => gelu_grad_in,
    FastGeluTanh => gelu_tanh_in,
    FastGeluTanhGrad => gelu_tanh_grad_in,
    FastSoftplus => softplus_in
);

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
        let cost = if matches!(self, Pow | Atan2) { COSTLY } else { CHEAP };
        let float = match (a.buffer(), b.buffer()) {
            (Buffer::F32(x), Buffer::F32(y)) => {
                Some(Buffer::F32(float_binary!(self, f32, |f| zip(x, a.shape(), y, b.shape(), out, cost, f))))
            }
            (Buffer::F64(x), Buffer::F64(y)) => {
                Some(Buffer::F64(float_binary!(self, f64, |f| zip(x, a.shape(), y, b.shape(), out, cost, f))))
            }
            _ => None,
        };
        if let Some(buf) = float {
            return Array::new(out, buf);
        }
        // Integers, with wrapping arithmetic (the float arms of `zip_num` are not reached).
        match self {
            Add => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.wadd(y)),
            Sub => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.wsub(y)),
            Mul => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.wmul(y)),
            Rem => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.rem_trunc(y)),
            FloorDiv => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.floor_div(y)),
            Max => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.max_nan(y)),
            Min => zip_num!(name, a, b, out, CHEAP, <T> |x, y| x.min_nan(y)),
            Div | Pow | Atan2 => {
                panic!("{name}: expected two float arrays of one dtype, got {} and {}", a.dtype(), b.dtype())
            }
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
