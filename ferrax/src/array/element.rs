//! Element types that an [`Array`](super::Array) can hold, and the numeric
//! traits the generic kernels are written against.

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

use super::{Buffer, DType};

/// A type that can be stored in an array: `f32`, `f64`, `i64` or `bool`.
pub trait Element: Copy + Send + Sync + PartialOrd + PartialEq + Debug + Default + 'static {
    /// The dtype tag of this element type.
    const DTYPE: DType;
    /// The typed slice of `buf`, or `None` when it holds another dtype.
    fn slice(buf: &Buffer) -> Option<&[Self]>;
    /// Wraps a vector of this element type in a [`Buffer`].
    fn into_buffer(v: Vec<Self>) -> Buffer;
    /// The vector inside `buf`, or `None` when it holds another dtype.
    fn from_buffer(buf: Buffer) -> Option<Vec<Self>>;
    /// Lossless for every value of `f32`, `i64` up to 2^53 and `bool`.
    fn to_f64(self) -> f64;
    /// `as`-cast semantics: floats round, integers truncate toward zero, bool is `v != 0`.
    fn from_f64(v: f64) -> Self;
}

/// Elements with arithmetic: `f32`, `f64`, `i64`.
pub trait Num: Element + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> {
    /// The additive identity.
    const ZERO: Self;
    /// The multiplicative identity.
    const ONE: Self;
    /// The smallest value; the identity of `max`.
    const MIN_VALUE: Self;
    /// The largest value; the identity of `min`.
    const MAX_VALUE: Self;
    /// `-x` (wrapping for integers).
    fn neg(self) -> Self;
    /// `|x|` (wrapping for `i64::MIN`).
    fn abs(self) -> Self;
    /// -1, 0 or 1; 0 for ±0, as numpy.
    fn signum(self) -> Self;
    /// `self + other`, wrapping around for integers (as JAX and numpy do; a
    /// plain `+` would panic on overflow in debug builds and wrap in release).
    fn wadd(self, other: Self) -> Self;
    /// `self - other`, wrapping for integers.
    fn wsub(self, other: Self) -> Self;
    /// `self * other`, wrapping for integers.
    fn wmul(self, other: Self) -> Self;
    /// Maximum that propagates NaN (as numpy's `maximum` does).
    fn max_nan(self, other: Self) -> Self;
    /// Minimum that propagates NaN.
    fn min_nan(self, other: Self) -> Self;
    /// `true` for NaN (never for integers).
    fn is_nan_like(self) -> bool;
    /// The remainder of truncating division, with the sign of `self` (Rust's
    /// `%`, C's `fmod`, JAX's `lax.rem`). Integers: `x rem 0 = x`, never a panic.
    fn rem_trunc(self, other: Self) -> Self;
    /// Division rounded toward negative infinity (numpy's `floor_divide`).
    /// Integers follow XLA: `x / 0` is -1 before the rounding adjustment, so
    /// `x // 0` is -2 for `x != 0` and -1 for 0; `i64::MIN // -1` wraps.
    fn floor_div(self, other: Self) -> Self;
}

/// Floating-point elements: `f32`, `f64`.
pub trait Float: Num + Neg<Output = Self> {
    /// Machine epsilon.
    const EPSILON: Self;
}

macro_rules! element {
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn slice(buf: &Buffer) -> Option<&[Self]> {
                match buf {
                    Buffer::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn into_buffer(v: Vec<Self>) -> Buffer {
                Buffer::$variant(v)
            }
            fn from_buffer(buf: Buffer) -> Option<Vec<Self>> {
                match buf {
                    Buffer::$variant(v) => Some(v),
                    _ => None,
                }
            }
            #[allow(clippy::redundant_closure_call)]
            fn to_f64(self) -> f64 {
                ($to)(self)
            }
            #[allow(clippy::redundant_closure_call)]
            fn from_f64(v: f64) -> Self {
                ($from)(v)
            }
        }
    };
}

element!(f32, F32, |x: f32| x as f64, |v: f64| v as f32);
element!(f64, F64, |x: f64| x, |v: f64| v);
element!(i64, I64, |x: i64| x as f64, |v: f64| v as i64);
element!(bool, Bool, |x: bool| if x { 1.0 } else { 0.0 }, |v: f64| v != 0.0);

macro_rules! float_num {
    ($t:ty) => {
        impl Num for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const MIN_VALUE: Self = <$t>::NEG_INFINITY;
            const MAX_VALUE: Self = <$t>::INFINITY;
            #[inline(always)]
            fn neg(self) -> Self {
                -self
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn signum(self) -> Self {
                // numpy and JAX: sign(0) = 0 (Rust's f64::signum gives 1 for +0).
                if self > 0.0 {
                    1.0
                } else if self < 0.0 {
                    -1.0
                } else {
                    self
                }
            }
            #[inline(always)]
            fn wadd(self, other: Self) -> Self {
                self + other
            }
            #[inline(always)]
            fn wsub(self, other: Self) -> Self {
                self - other
            }
            #[inline(always)]
            fn wmul(self, other: Self) -> Self {
                self * other
            }
            #[inline(always)]
            fn max_nan(self, other: Self) -> Self {
                if self.is_nan() || self > other {
                    self
                } else if other.is_nan() {
                    other
                } else if self == other {
                    // max(-0, +0) = +0, as IEEE maximum.
                    if self.is_sign_negative() {
                        other
                    } else {
                        self
                    }
                } else {
                    other
                }
            }
            #[inline(always)]
            fn is_nan_like(self) -> bool {
                self.is_nan()
            }
            #[inline(always)]
            fn min_nan(self, other: Self) -> Self {
                if self.is_nan() || self < other {
                    self
                } else if other.is_nan() {
                    other
                } else if self == other {
                    if self.is_sign_negative() {
                        self
                    } else {
                        other
                    }
                } else {
                    other
                }
            }
            #[inline(always)]
            fn rem_trunc(self, other: Self) -> Self {
                self % other
            }
            #[inline(always)]
            fn floor_div(self, other: Self) -> Self {
                // numpy's npy_divmod: exact where floor(a / b) is not (1 // 0.1 is 9).
                let m = self % other;
                if other == 0.0 {
                    return self / other;
                }
                let mut div = (self - m) / other;
                if m != 0.0 && ((other < 0.0) != (m < 0.0)) {
                    div -= 1.0;
                }
                if div != 0.0 {
                    let f = div.floor();
                    if div - f > 0.5 {
                        f + 1.0
                    } else {
                        f
                    }
                } else {
                    (0.0 as $t).copysign(self / other)
                }
            }
        }
        impl Float for $t {
            const EPSILON: Self = <$t>::EPSILON;
        }
    };
}

float_num!(f32);
float_num!(f64);

impl Num for i64 {
    const ZERO: Self = 0;
    const ONE: Self = 1;
    const MIN_VALUE: Self = i64::MIN;
    const MAX_VALUE: Self = i64::MAX;
    #[inline(always)]
    fn neg(self) -> Self {
        self.wrapping_neg()
    }
    #[inline(always)]
    fn abs(self) -> Self {
        self.wrapping_abs()
    }
    #[inline(always)]
    fn signum(self) -> Self {
        i64::signum(self)
    }
    #[inline(always)]
    fn wadd(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    #[inline(always)]
    fn wsub(self, other: Self) -> Self {
        self.wrapping_sub(other)
    }
    #[inline(always)]
    fn wmul(self, other: Self) -> Self {
        self.wrapping_mul(other)
    }
    #[inline(always)]
    fn max_nan(self, other: Self) -> Self {
        self.max(other)
    }
    #[inline(always)]
    fn min_nan(self, other: Self) -> Self {
        self.min(other)
    }
    #[inline(always)]
    fn is_nan_like(self) -> bool {
        false
    }
    #[inline(always)]
    fn rem_trunc(self, other: Self) -> Self {
        if other == 0 {
            self
        } else {
            self.wrapping_rem(other)
        }
    }
    #[inline(always)]
    fn floor_div(self, other: Self) -> Self {
        let div = if other == 0 { -1 } else { self.wrapping_div(other) };
        if self.signum() != other.signum() && self.rem_trunc(other) != 0 {
            div.wrapping_sub(1)
        } else {
            div
        }
    }
}
