//! Special functions the standard library lacks on stable Rust: the error
//! function, its complement and its inverse.

/// `erf`, `erfc` and `erfinv`, for the float element types.
pub trait Special: Copy {
    /// The error function `2/√π ∫₀ˣ e^(-t²) dt`.
    fn erf(self) -> Self;
    /// `1 - erf(x)`, accurate where `erf(x)` is close to 1.
    fn erfc(self) -> Self;
    /// The inverse of `erf` on `(-1, 1)`; ±∞ at ±1 and NaN outside `[-1, 1]`.
    fn erfinv(self) -> Self;
}

impl Special for f64 {
    fn erf(self) -> f64 {
        libm::erf(self)
    }
    fn erfc(self) -> f64 {
        libm::erfc(self)
    }
    fn erfinv(self) -> f64 {
        erfinv_f64(self)
    }
}

impl Special for f32 {
    fn erf(self) -> f32 {
        libm::erff(self)
    }
    fn erfc(self) -> f32 {
        libm::erfcf(self)
    }
    fn erfinv(self) -> f32 {
        // The f64 result is accurate to a few ulps of f64: one rounding to f32.
        erfinv_f64(self as f64) as f32
    }
}

/// `erfinv(y)`: Winitzki's closed form (relative error below 2e-3) refined
/// by Halley steps on `erf(x) = y`, or on `erfc(x) = 1 - y` when `|y| > ½`
/// so that the residual keeps its relative accuracy as `y` nears ±1 (there
/// `1 - y` is exact).
fn erfinv_f64(y: f64) -> f64 {
    if y.is_nan() || y.abs() > 1.0 {
        return f64::NAN;
    }
    if y.abs() == 1.0 {
        return y * f64::INFINITY;
    }
    if y == 0.0 {
        return y; // keeps the sign of zero
    }
    let a = y.abs();
    const W: f64 = 0.147;
    let ln = ((1.0 - a) * (1.0 + a)).ln();
    let b = 2.0 / (std::f64::consts::PI * W) + ln / 2.0;
    let mut x = ((b * b - ln / W).sqrt() - b).sqrt();
    let two_over_sqrt_pi = std::f64::consts::FRAC_2_SQRT_PI;
    for _ in 0..3 {
        // f(x) = erf(x) - a, f' = 2/√π e^(-x²), f''/f' = -2x: Halley's step.
        let r = if a > 0.5 { (1.0 - a) - libm::erfc(x) } else { libm::erf(x) - a };
        let d = two_over_sqrt_pi * (-x * x).exp();
        if d == 0.0 {
            break;
        }
        let step = r / d;
        x -= step / (1.0 + x * step);
    }
    x.copysign(y)
}

#[cfg(test)]
mod tests {
    use super::Special;

    #[test]
    fn erfinv_inverts_erf_to_the_last_bits() {
        let mut worst = 0.0f64;
        for i in 1..2000 {
            let x = -6.0 + 12.0 * i as f64 / 2000.0;
            let y = Special::erf(x);
            if y.abs() >= 1.0 {
                continue;
            }
            // The condition of erfinv at y is |dx/dy| |y| / |x| = √π/2 e^(x²) |y/x|:
            // compare within that many ulps of y, plus a few of x.
            let got = y.erfinv();
            let cond = std::f64::consts::PI.sqrt() / 2.0 * (x * x).exp() * (y / x).abs();
            let err = ((got - x) / x).abs() / f64::EPSILON / (cond + 1.0);
            worst = worst.max(err);
        }
        assert!(worst < 4.0, "worst error {worst} ulps (scaled by the condition number)");
        assert_eq!(1.0f64.erfinv(), f64::INFINITY);
        assert_eq!((-1.0f64).erfinv(), f64::NEG_INFINITY);
        assert!(1.5f64.erfinv().is_nan() && f64::NAN.erfinv().is_nan());
        assert_eq!(0.5f32.erfinv(), 0.47693628f32);
        // Near 1, where erf saturates, the erfc residual keeps relative accuracy.
        let y: f64 = 1.0 - 1e-15;
        let tail = 1.0 - y; // exact
        assert!((Special::erfc(y.erfinv()) - tail).abs() / tail < 1e-12);
    }
}
