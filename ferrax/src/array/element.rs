//! Element types that an [`Array`](super::Array) can hold, and the numeric
//! traits the generic kernels are written against.

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

use super::{Buffer, DType};

/// A type that can be stored in an array: `f16`, `bf16` (from the `half`
/// crate), `f32`, `f64`, `i64` or `bool`.
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

element!(half::f16, F16, |x: half::f16| x.to_f64(), f16_from_f64);
element!(half::bf16, BF16, |x: half::bf16| x.to_f64(), bf16_from_f64);

/// `x` rounded to f32 *to odd*: exact values as they are, inexact ones to
/// whichever of the two neighbouring f32 values has an odd last bit. A
/// second rounding, to nearest even, of this to a type with at least two
/// bits fewer is then the correct rounding of `x` itself (Boldo and
/// Melquiond's round-to-odd), where rounding to nearest twice is not (1 +
/// 2⁻¹¹ + 2⁻⁴⁰ would become a tie in f32 and go down in f16).
fn f32_round_to_odd(x: f64) -> f32 {
    let r = x as f32;
    if !r.is_finite() || r as f64 == x || r.to_bits() & 1 == 1 {
        return r;
    }
    // r is the even neighbour; step one unit of the magnitude toward x.
    let toward_zero = (r as f64).abs() > x.abs();
    f32::from_bits(if toward_zero { r.to_bits() - 1 } else { r.to_bits() + 1 })
}

/// `x` rounded once to the nearest f16 (ties to even). The `half` crate's
/// `from_f64` goes through f32 by rounding to nearest, which rounds twice.
pub(crate) fn f16_from_f64(x: f64) -> half::f16 {
    half::f16::from_f32(f32_round_to_odd(x))
}

/// `x` rounded once to the nearest bf16 (ties to even).
pub(crate) fn bf16_from_f64(x: f64) -> half::bf16 {
    half::bf16::from_f32(f32_round_to_odd(x))
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
                // One choice from three comparisons, without branches, so
                // that loops of it vectorise (branching, a max over rows of
                // random values mispredicted every other element). NaN wins;
                // max(-0, +0) = +0, as IEEE maximum.
                let keep = self.is_nan() | (self > other) | ((self == other) & self.is_sign_positive());
                if keep {
                    self
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
                // As `max_nan`: NaN wins, min(-0, +0) = -0.
                let keep = self.is_nan() | (self < other) | ((self == other) & self.is_sign_negative());
                if keep {
                    self
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

#[cfg(test)]
mod tests {
    use super::{bf16_from_f64, f16_from_f64};

    /// The nearest of the values `to_f64(bits)` around `x` (ties to an even
    /// last bit), by exact comparisons of distances: neighbouring values
    /// differ from `x` by less than `x`, so the subtractions are exact.
    fn nearest(x: f64, near: u16, to_f64: impl Fn(u16) -> f64) -> u16 {
        let candidates = [near.wrapping_sub(1), near, near.wrapping_add(1)];
        let mut best = near;
        for c in candidates {
            let (d, b) = ((to_f64(c) - x).abs(), (to_f64(best) - x).abs());
            if d < b || (d == b && c & 1 == 0) {
                best = c;
            }
        }
        best
    }

    #[test]
    fn rounding_from_f64_is_correct_where_rounding_twice_is_not() {
        let mut rng = crate::array::Rng::new(5);
        let (mut double_rounding_wrong, mut checked) = (0, 0);
        for _ in 0..200_000 {
            // Positive magnitudes over f16's normal and subnormal ranges,
            // and values a hair off the midpoints where double rounding errs.
            let base = rng.uniform_in(-20.0, 15.0).exp2();
            let x = if rng.below(2) == 0 {
                base
            } else {
                let m = half::f16::from_f64(base).to_f64();
                let ulp = (half::f16::from_bits(half::f16::from_f64(base).to_bits() + 1).to_f64() - m).abs();
                m + ulp / 2.0 + ulp * 2f64.powi(-30) * rng.uniform_in(-1.0, 1.0)
            };
            if !x.is_finite() || x > 65000.0 {
                continue;
            }
            checked += 1;
            let got = f16_from_f64(x).to_bits();
            let want = nearest(x, got, |b| half::f16::from_bits(b).to_f64());
            assert_eq!(got, want, "f16 of {x:e}");
            double_rounding_wrong += (half::f16::from_f32(x as f32).to_bits() != want) as usize;
            let got = bf16_from_f64(x).to_bits();
            assert_eq!(got, nearest(x, got, |b| half::bf16::from_bits(b).to_f64()), "bf16 of {x:e}");
        }
        assert!(checked > 150_000 && double_rounding_wrong > 100, "{checked} checked, {double_rounding_wrong} cases");
    }
}
