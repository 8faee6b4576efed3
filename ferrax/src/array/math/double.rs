//! The f64 elementary functions of [`FastMath`](super::FastMath) in f64
//! arithmetic that the compiler vectorises (4 lanes under AVX2, 8 under
//! AVX-512), where libm takes one element at a time: on a million
//! elements, two threads of an AMD EPYC (Zen 4), libm's `tanh` took 8.4 ms
//! against JAX's 0.55, and `exp` 2.4 ms against 0.54.
//!
//! The same reductions as the f32 functions, with series whose truncation
//! is far below an ulp: `e^r` by its Taylor series to r¹³ on |r| ≤ ln 2 /
//! 2 (for `tanh`, on `[0, ln 2)`, a polynomial fitted as closely), and
//! `ln(1 + m)` as `2 atanh(m / (2 + m))`, whose series in `s² ≤ 0.0295`
//! is summed to s²² in fdlibm's arrangement (the leading `m` exact, the
//! rest a small correction). The tests below measure every function
//! against libm's.

use super::super::simd::{madd, Isa};

/// 1.5 · 2^52: adding and subtracting it rounds an f64 of magnitude below
/// 2^51 to an integer, which is then the low bits of the sum.
const ROUNDER: f64 = 6_755_399_441_055_744.0;
/// ln 2 in two parts (fdlibm's): the first has 32 significant bits, so
/// that `n · LN2_HI` is exact for every exponent `n`.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// 1/k! for k = 2 … 13.
const INV_FACTORIALS: [f64; 12] = {
    let mut c = [0.0; 12];
    let (mut k, mut factorial) = (2, 1.0);
    while k <= 13 {
        factorial *= k as f64; // exact: 13! < 2^53
        c[k - 2] = 1.0 / factorial;
        k += 1;
    }
    c
};

/// `(e^r − 1 − r) / r²` on `[0, ln 2]` to within 3.6e-18, as a polynomial
/// of degree 10 (lowest coefficient first; `scripts/fit-expm1.py` derives
/// them): [`tanh`]'s reduced argument spans the whole interval, where the
/// Taylor series needs six more terms for the same error.
const EXPM1_ON_LN2: [f64; 11] = [
    0.5,
    0.16666666666666605,
    0.04166666666670265,
    0.008333333332525018,
    0.0013888888981905408,
    0.0001984126360594814,
    2.480184735670985e-05,
    2.755037500589881e-06,
    2.7675822427424673e-07,
    2.3809145859037096e-08,
    2.8057924179166324e-09,
];

/// 2 / (2k + 1) for k = 1 … 10: `2 atanh(s) = 2s + s Σ_k 2 s^2k / (2k + 1)`.
const ATANH_SERIES: [f64; 10] = {
    let mut c = [0.0; 10];
    let mut k = 1;
    while k <= 10 {
        c[k - 1] = 2.0 / (2 * k + 1) as f64;
        k += 1;
    }
    c
};

/// `x − n ln 2` for the `n` held in the low bits of `shifted`
/// (`x log2(e) + 1.5 · 2^52`, rounded either way).
#[inline(always)]
fn reduced<I: Isa>(x: f64, shifted: f64) -> f64 {
    let n = shifted - ROUNDER;
    let r = madd::<I, f64>(n, -LN2_HI, x);
    madd::<I, f64>(n, -LN2_LO, r)
}

/// `e^r − 1` as `r + r² p(r)`, `p`'s coefficients lowest first.
#[inline(always)]
fn exp_m1_by<I: Isa>(r: f64, p: &[f64]) -> f64 {
    let r2 = r * r;
    madd::<I, f64>(estrin::<I>(r, r2, p), r2, r)
}

/// The polynomial with coefficients `c` (lowest first, at most 16) at `r`
/// (`r2` its square) by Estrin's scheme: pairs `c₂ᵢ + c₂ᵢ₊₁ r`, then pairs
/// of those in `r²`, `r⁴`, …. Its chain of dependent operations is
/// `log₂` of Horner's: a vector's twelve fused multiply-adds one after the
/// other took longer than the core's reorder window could hide (an AMD
/// EPYC Zen 1, whose 256-bit operations are two µops each, ran `exp` of a
/// million f64 in 2.7 ms against PyTorch's 1.8).
#[inline(always)]
fn estrin<I: Isa>(r: f64, r2: f64, c: &[f64]) -> f64 {
    assert!(c.len() <= 16, "estrin: {} coefficients", c.len());
    // Fixed trip counts and guards on the (constant) length, so that the
    // whole unrolls into straight-line code that the compiler vectorises.
    let mut q = [0.0; 8];
    let n = c.len();
    for i in 0..8 {
        if 2 * i + 1 < n {
            q[i] = madd::<I, f64>(c[2 * i + 1], r, c[2 * i]);
        } else if 2 * i < n {
            q[i] = c[2 * i];
        }
    }
    let (mut m, mut x) = (n.div_ceil(2), r2);
    for _ in 0..3 {
        for i in 0..4 {
            if 2 * i + 1 < m {
                q[i] = madd::<I, f64>(q[2 * i + 1], x, q[2 * i]);
            } else if 2 * i < m {
                q[i] = q[2 * i];
            }
        }
        m = m.div_ceil(2);
        x = x * x;
    }
    q[0]
}

/// `2^n` for `n` in f64's normal range (wrapping outside it, so that the
/// garbage `n` of a NaN does no harm).
#[inline(always)]
fn power_of_two(n: i64) -> f64 {
    f64::from_bits((n.wrapping_add(1023) as u64) << 52)
}

/// The `n` held in the low bits of `shifted` (see [`reduced`]).
#[inline(always)]
fn exponent_of(shifted: f64) -> i64 {
    (shifted.to_bits() as i64).wrapping_sub(ROUNDER.to_bits() as i64)
}

/// `e^x`: subnormal results rounded once, overflow to infinity, NaN passed
/// through.
#[inline(always)]
pub(super) fn exp<I: Isa>(x: f64) -> f64 {
    // e^x rounds to +0 below -745.2, and is given as +0 there without being
    // computed (an underflowing product costs some cores a hundred cycles).
    // Not `clamp`, whose NaN handling keeps the loop from vectorising: a
    // NaN fails the comparisons and passes through. e^710 overflows.
    let zero = x < -746.0;
    let x = if x > 710.0 {
        710.0
    } else if zero {
        0.0
    } else {
        x
    };
    // x = n ln2 + r with |r| ≤ ln2 / 2 (a hair more when x log2(e) rounds
    // the other way). The first term of the series left out, r¹⁴/14!, is
    // below 4.3e-18.
    let shifted = madd::<I, f64>(x, std::f64::consts::LOG2_E, ROUNDER);
    let em1 = exp_m1_by::<I>(reduced::<I>(x, shifted), &INV_FACTORIALS);
    // 2^n as two normal factors (n is in [-1077, 1025]), so that a
    // subnormal result is rounded once, by the last product.
    let n = exponent_of(shifted);
    let half = n >> 1;
    let e = (em1 + 1.0) * power_of_two(half) * power_of_two(n.wrapping_sub(half));
    if zero {
        0.0
    } else {
        e
    }
}

/// `tanh(x)` as `E / (E + 2)` with `E = e^2|x| - 1`, the sign put back:
/// a quotient of positive numbers. `E = 2^n (e^r - 1) + (2^n - 1)` with
/// `n` rounded down, so that `r` is in [0, ln 2) and neither term is
/// negative: with `n` rounded to nearest, as in [`exp`], `r` is negative
/// half the time and the sum cancelled (4 ulp off at |x| = 0.2). `e^r - 1`
/// is [`EXPM1_ON_LN2`]'s polynomial.
#[inline(always)]
pub(super) fn tanh<I: Isa>(x: f64) -> f64 {
    // tanh rounds to 1 from 19.07 on; clamped at 20, E stays finite (a NaN
    // fails the comparison and passes through).
    let a = x.abs();
    let t = if a > 20.0 { 40.0 } else { a + a };
    // n = ⌊t log2(e)⌋: the product less a half, rounded to nearest.
    let shifted = madd::<I, f64>(t, std::f64::consts::LOG2_E, -0.5) + ROUNDER;
    let em1 = exp_m1_by::<I>(reduced::<I>(t, shifted), &EXPM1_ON_LN2);
    let scale = power_of_two(exponent_of(shifted));
    let e = madd::<I, f64>(scale, em1, scale - 1.0);
    (e / (e + 2.0)).copysign(x)
}

/// `1 / (1 + e^-x)`: `1 / (1 + e^-x)` for `x ≥ 0` and `e^x / (1 + e^x)`
/// below, from `e^-|x|`, which never overflows; one quotient either way
/// (`e^x · (1 / (1 + e^x))`, the f32 form, rounds once more).
#[inline(always)]
pub(super) fn logistic<I: Isa>(x: f64) -> f64 {
    let e = exp::<I>(-x.abs());
    let numerator = if x >= 0.0 { 1.0 } else { e };
    numerator / (1.0 + e)
}

/// `ln(y) - scale · ln 2 + low` for a positive normal `y`, where `low` is a
/// correction below about an ulp of `y - 1`, added with the small terms.
#[inline(always)]
fn ln_reduced<I: Isa>(y: f64, scale: i64, low: f64) -> f64 {
    // y = 2^e (1 + m) with 1 + m in [√½, √2), so that ln(1 + m) is small.
    let bits = y.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1022 - scale;
    let half = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3fe0_0000_0000_0000); // in [1/2, 1)
    let (m, e) = if half < std::f64::consts::FRAC_1_SQRT_2 { (half + half - 1.0, e - 1) } else { (half - 1.0, e) };
    // e as an f64 through the bits of 1.5 · 2^52 + e, which vectorises
    // where a conversion from i64 does not (AVX2 has none).
    let e = f64::from_bits(ROUNDER.to_bits().wrapping_add(e as u64)) - ROUNDER;
    // ln(1 + m) = 2 atanh(s) = m - (m²/2 - s (m²/2 + R)) with s = m / (2 + m)
    // and R = Σ 2 s^2k / (2k + 1) (fdlibm's arrangement: m is exact, the
    // rest a correction to it). R's first term left out, 2 s²²/23, is
    // below 6e-19 of the result.
    let s = m / (2.0 + m);
    let z = s * s;
    let mut r = ATANH_SERIES[9];
    for &c in ATANH_SERIES[..9].iter().rev() {
        r = madd::<I, f64>(r, z, c);
    }
    let half_square = 0.5 * m * m;
    let small = madd::<I, f64>(s, madd::<I, f64>(r, z, half_square), madd::<I, f64>(e, LN2_LO, low));
    madd::<I, f64>(e, LN2_HI, m - (half_square - small))
}

/// `ln(x)`: -inf at ±0, NaN below zero, subnormals exact.
#[inline(always)]
pub(super) fn ln<I: Isa>(x: f64) -> f64 {
    // Subnormals are scaled into the normal range first (2^54 keeps them exact).
    let tiny = x < f64::MIN_POSITIVE;
    let (y, scale) = if tiny { (x * 18_014_398_509_481_984.0, 54) } else { (x, 0) };
    let r = ln_reduced::<I>(y, scale, 0.0);
    // The special cases as selects, which vectorise where branches would not.
    if x == 0.0 {
        f64::NEG_INFINITY
    } else if x == f64::INFINITY {
        x
    } else if x > 0.0 {
        r
    } else {
        f64::NAN // negative or NaN
    }
}

/// `ln(1 + x)`, accurate near zero: `u = 1 + x` is rounded, and the
/// rounding error `c` (exact) is put back as `c / u`, the first-order term
/// of `ln(1 + x) - ln(u)` (fdlibm's `log1p`).
#[inline(always)]
pub(super) fn ln_1p<I: Isa>(x: f64) -> f64 {
    let u = 1.0 + x;
    // Exact by Sterbenz's lemma on either side of 2.
    let c = if u < 2.0 { x - (u - 1.0) } else { 1.0 - (u - x) };
    let r = ln_reduced::<I>(u, 0, c / u);
    if x == 0.0 || x == f64::INFINITY {
        x // keeps the sign of zero
    } else if u == 0.0 {
        f64::NEG_INFINITY
    } else if u > 0.0 {
        r
    } else {
        f64::NAN // below -1, or NaN
    }
}

/// `ln(1 + e^x)` as `max(x, 0) + ln_1p(e^-|x|)`, the composite's
/// operations in its order (a NaN takes the zero branch, and the logarithm
/// gives NaN).
#[inline(always)]
pub(super) fn softplus<I: Isa>(x: f64) -> f64 {
    let positive = if x >= 0.0 { x } else { 0.0 };
    positive + ln_1p::<I>(exp::<I>(-x.abs()))
}

#[cfg(test)]
mod tests {
    use crate::array::ops::UnaryOp;
    use crate::array::{Array, Rng};

    /// Error of `got` in ulps of libm's `want` (itself within about an ulp
    /// of the exact value); 0 where they agree, NaN included.
    fn ulps(got: f64, want: f64) -> f64 {
        if got == want || (got.is_nan() && want.is_nan()) {
            return 0.0;
        }
        if !got.is_finite() || !want.is_finite() {
            return f64::INFINITY;
        }
        let ulp = f64::from_bits(want.abs().to_bits() + 1) - want.abs();
        (got - want).abs() / ulp
    }

    /// Inputs for a function whose interesting range is `lo..hi`: a
    /// million uniform there, a million bit patterns of every exponent
    /// (subnormals, infinities and NaNs among them), and the special values.
    fn inputs(lo: f64, hi: f64) -> Vec<f64> {
        let mut rng = Rng::new(11);
        let mut xs: Vec<f64> = (0..1 << 20).map(|_| rng.uniform_in(lo, hi)).collect();
        xs.extend((0..1 << 20).map(|_| f64::from_bits(rng.next_u64())));
        xs.extend([0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, f64::MIN_POSITIVE, 5e-324, -1.0, 1.0]);
        xs.extend([709.78, 709.79, -745.1, -745.2, -708.4, 19.06, 19.07, 2f64.powi(-30), -0.29, 0.41]);
        xs
    }

    /// The worst error of `op`'s kernel (at the SIMD level this process
    /// runs) against `want` over [`inputs`].
    fn worst_ulps(op: UnaryOp, lo: f64, hi: f64, want: impl Fn(f64) -> f64) -> (f64, f64) {
        let xs = inputs(lo, hi);
        let got = op.cpu(&Array::from_vec(xs.clone(), &[xs.len()])).to_vec::<f64>();
        let (mut worst, mut at) = (0.0f64, 0.0);
        for (&x, &g) in xs.iter().zip(&got) {
            let u = ulps(g, want(x));
            if u > worst || u.is_nan() {
                (worst, at) = (u, x);
            }
        }
        eprintln!("f64 {}: {worst} ulp at {at:e}, {:?}", op.name(), crate::array::simd::level());
        (worst, at)
    }

    /// Within an ulp of libm for `exp`, `ln` and `ln_1p`, two for the
    /// logistic function and softplus (compared with their formulas in
    /// libm's functions, which round more often), and three for `tanh`,
    /// whose libm is itself up to 2.07 ulp off: against 120-bit values
    /// (mpmath) at 20 000 points of [0, 1.2], ferrax's was at most 2.08 ulp
    /// off (at 0.0154), and 1.45 at as many of [1.2, 19.2], with the
    /// Taylor series as with the fitted polynomial. The worst measured at
    /// every SIMD level (the FERRAX_SIMD=scalar run of tests/simd_levels.rs
    /// covers the unfused arithmetic).
    #[test]
    fn f64_functions_match_libm() {
        type Want = fn(f64) -> f64;
        let logistic: Want = |x| if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) };
        let softplus: Want = |x| x.max(0.0) + (-x.abs()).exp().ln_1p();
        let cases: [(UnaryOp, f64, f64, Want, f64); 6] = [
            (UnaryOp::Exp, -750.0, 712.0, f64::exp, 1.0),
            (UnaryOp::Tanh, -25.0, 25.0, f64::tanh, 3.0),
            (UnaryOp::Logistic, -750.0, 40.0, logistic, 2.0),
            (UnaryOp::Softplus, -750.0, 750.0, softplus, 2.0),
            (UnaryOp::Ln, 0.0, 4.0, f64::ln, 1.0),
            (UnaryOp::Ln1p, -1.0, 4.0, f64::ln_1p, 1.0),
        ];
        for (op, lo, hi, want, bound) in cases {
            let (worst, at) = worst_ulps(op, lo, hi, want);
            assert!(worst <= bound, "f64 {}: {worst} ulp at {at:e}", op.name());
        }
    }
}
