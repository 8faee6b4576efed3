//! Vectorisable elementary functions.
//!
//! The standard library's `f32::exp` and `f32::tanh` call libm one element
//! at a time. For f32 these versions compute in f64 with a branch-free
//! polynomial the compiler vectorises, then round once to f32: the f64
//! intermediate is accurate to about 1e-13, so the f32 result is the
//! correctly rounded one except when the exact value lies within 1e-13
//! (relative) of a rounding boundary — within 0.5 ulp plus a hair, where
//! libm's `expf`/`tanhf` promise about 1 ulp. f64 keeps the standard library.

/// Elementary functions as kernels use them: vectorisable for f32, libm for f64.
pub trait FastMath: Copy {
    /// `e^x`.
    fn exp_fast(self) -> Self;
    /// `tanh(x)`.
    fn tanh_fast(self) -> Self;
    /// `1 / (1 + e^-x)`.
    fn logistic_fast(self) -> Self;
}

const LOG2E: f64 = std::f64::consts::LOG2_E;
const LN2: f64 = std::f64::consts::LN_2;
/// 1.5 · 2^52: adding and subtracting it rounds an f64 of magnitude below 2^51 to an integer.
const ROUNDER: f64 = 6755399441055744.0;

/// `e^x` for `|x| <= 700` (clamped there; NaN passes through), to about 2e-16 relative.
#[inline(always)]
fn exp_f64_core(x: f64) -> f64 {
    // Not `clamp`: its NaN handling keeps the loop from vectorising. A NaN
    // fails both comparisons and passes through.
    #[allow(clippy::manual_clamp)]
    let x = if x > 700.0 {
        700.0
    } else if x < -700.0 {
        -700.0
    } else {
        x
    };
    // x = n ln2 + r with |r| <= ln2 / 2
    let shifted = x * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * LN2;
    // e^r by its Taylor series to degree 11 (truncation below 2e-15 · e^r at |r| = ln2/2)
    let mut p = 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // 2^n from the low bits of `shifted`, which hold n in two's complement.
    let n_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i64;
    let scale = f64::from_bits(((n_bits + 1023) as u64) << 52);
    p * scale
}

impl FastMath for f32 {
    #[inline(always)]
    fn exp_fast(self) -> f32 {
        exp_f64_core(self as f64) as f32
    }

    #[inline(always)]
    fn tanh_fast(self) -> f32 {
        let x = self as f64;
        let a = x.abs();
        // tanh(a) = (1 - e^-2a) / (1 + e^-2a): no overflow, and for a >= 2^-12 the
        // cancellation in the numerator costs at most a factor 1/(2a) of 1e-16.
        let e = exp_f64_core(-2.0 * a);
        let t = (1.0 - e) / (1.0 + e);
        let t = if x < 0.0 { -t } else { t };
        // Below 2^-12, tanh(x) = x(1 - x²/3 + …) rounds to x in f32.
        if a < 1.0 / 4096.0 {
            self
        } else {
            t as f32
        }
    }

    #[inline(always)]
    fn logistic_fast(self) -> f32 {
        // In f64, e^-x cannot overflow for any f32 x once clamped to ±700.
        (1.0 / (1.0 + exp_f64_core(-(self as f64)))) as f32
    }
}

impl FastMath for f64 {
    #[inline(always)]
    fn exp_fast(self) -> f64 {
        self.exp()
    }

    #[inline(always)]
    fn tanh_fast(self) -> f64 {
        self.tanh()
    }

    #[inline(always)]
    fn logistic_fast(self) -> f64 {
        if self >= 0.0 {
            1.0 / (1.0 + (-self).exp())
        } else {
            let e = self.exp();
            e / (1.0 + e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FastMath;

    /// Distance in f32 ulps between `got` and the correctly rounded value of the f64 `exact`.
    fn ulps(got: f32, exact: f64) -> f64 {
        let rounded = exact as f32;
        if got == rounded || (got.is_nan() && exact.is_nan()) {
            return 0.0;
        }
        let ulp = (f32::from_bits(rounded.abs().to_bits() + 1) - rounded.abs()) as f64;
        ((got as f64) - exact).abs() / ulp
    }

    fn sweep(mut check: impl FnMut(f32)) {
        // Every 97th f32 bit pattern: all exponents, signs, subnormals, inf and NaN.
        let mut bits = 0u32;
        loop {
            check(f32::from_bits(bits));
            match bits.checked_add(97) {
                Some(b) => bits = b,
                None => break,
            }
        }
    }

    #[test]
    fn f32_exp_tanh_logistic_are_correctly_rounded_but_for_near_ties() {
        let mut worst = [0.0f64; 3];
        let mut wrong = [0usize; 3];
        let mut count = 0usize;
        sweep(|x| {
            let xd = x as f64;
            let logistic = if xd >= 0.0 { 1.0 / (1.0 + (-xd).exp()) } else { xd.exp() / (1.0 + xd.exp()) };
            for (k, (got, exact)) in
                [(x.exp_fast(), xd.exp()), (x.tanh_fast(), xd.tanh()), (x.logistic_fast(), logistic)]
                    .into_iter()
                    .enumerate()
            {
                let u = ulps(got, exact);
                worst[k] = worst[k].max(u);
                wrong[k] += (u > 0.0) as usize;
            }
            count += 1;
        });
        // Never more than half an ulp plus the f64 intermediate's error, and
        // the rounding differs from the correctly rounded result only near ties.
        for k in 0..3 {
            assert!(worst[k] <= 0.5001, "function {k}: worst error {} ulp", worst[k]);
            assert!(wrong[k] * 10_000 < count, "function {k}: {} of {count} not correctly rounded", wrong[k]);
        }
    }
}
