//! Every SIMD level of ferrax's kernels gives the same answers. The level is
//! chosen once per process, so the first test runs the second in child
//! processes, once per level this CPU has, forced with `FERRAX_SIMD`.
//! (Matrix products are the `gemm` crate's, which dispatches by itself.)

use std::process::Command;

use ferrax::array::simd::{self, Level};
use ferrax::prelude::*;

fn run_child(simd_env: &str, expect: &str) -> (bool, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kernels_agree_at_this_level", "--nocapture", "--test-threads=1"])
        .env("FERRAX_SIMD", simd_env)
        .env("FERRAX_EXPECT_LEVEL", expect)
        .output()
        .expect("the test binary runs itself");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success() && text.contains("1 passed"), text)
}

#[test]
fn every_level_this_cpu_has_agrees_with_the_references() {
    let best = simd::detected();
    for level in [Level::Scalar, Level::Avx2, Level::Avx512] {
        if level > best {
            eprintln!("not tested here: this CPU has no {}", level.name());
            continue;
        }
        let (ok, text) = run_child(level.name(), level.name());
        assert!(ok, "FERRAX_SIMD={}:\n{text}", level.name());
    }
}

#[test]
fn an_unknown_level_is_reported_and_ignored() {
    let (ok, text) = run_child("sse9", simd::detected().name());
    assert!(ok, "{text}");
    assert!(text.contains("FERRAX_SIMD=\"sse9\" is not one of avx512, avx2, scalar"), "{text}");
}

/// Error of `got` in f32 ulps of the correctly rounded `exact`.
fn ulps(got: f32, exact: f64) -> f64 {
    let rounded = exact as f32;
    if got == rounded || (got.is_nan() && exact.is_nan()) {
        return 0.0;
    }
    let ulp = (f32::from_bits(rounded.abs().to_bits() + 1) - rounded.abs()) as f64;
    ((got as f64) - exact).abs() / ulp
}

/// A function's exact value, in f64.
type Exact = fn(f64) -> f64;

/// Odd lengths around the vector widths, and one large enough to be split across threads.
const LENGTHS: [usize; 9] = [0, 1, 7, 8, 9, 17, 33, 1000, 300_000];

fn values(n: usize) -> Vec<f32> {
    // Spread over the interesting range, with the special values first.
    let special =
        [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-30, -88.9, 89.0, -104.5, 0.624, 0.626, -1.0, 1e-40];
    (0..n).map(|i| if i < special.len() { special[i] } else { ((i as f32) * 0.618_034).sin() * 30.0 }).collect()
}

/// Run in a child process with `FERRAX_SIMD` set; on its own (no
/// `FERRAX_EXPECT_LEVEL`) it checks the detected level.
#[test]
fn kernels_agree_at_this_level() {
    if let Ok(expected) = std::env::var("FERRAX_EXPECT_LEVEL") {
        assert_eq!(simd::level().name(), expected, "FERRAX_SIMD did not select the level");
    }
    for n in LENGTHS {
        let xs = values(n);
        let x = Tensor::from_vec(xs.clone(), &[n]);
        let unary: [(&str, Tensor, Exact, f64); 5] = [
            ("exp", x.exp(), f64::exp, 1.5),
            ("tanh", x.tanh(), f64::tanh, 2.0),
            ("sigmoid", x.sigmoid(), |v: f64| 1.0 / (1.0 + (-v).exp()), 3.0),
            ("ln", x.ln(), f64::ln, 1.0),
            ("ln_1p", x.ln_1p(), f64::ln_1p, 1.0),
        ];
        for (name, got, exact, bound) in unary {
            for (&v, g) in xs.iter().zip(got.to_vec::<f32>()) {
                let u = ulps(g, exact(v as f64));
                assert!(u <= bound, "{name}({v:e}) = {g:e} is {u} ulp off (n = {n})");
            }
        }
        // f64 within one to three ulp of libm (the bounds of `math::double`'s test).
        let x64 = x.to_dtype(DType::F64);
        let unary64: [(&str, Tensor, Exact, f64); 5] = [
            ("exp", x64.exp(), f64::exp, 1.0),
            ("tanh", x64.tanh(), f64::tanh, 3.0),
            (
                "sigmoid",
                x64.sigmoid(),
                |v: f64| if v >= 0.0 { 1.0 / (1.0 + (-v).exp()) } else { v.exp() / (1.0 + v.exp()) },
                2.0,
            ),
            ("ln", x64.ln(), f64::ln, 1.0),
            ("ln_1p", x64.ln_1p(), f64::ln_1p, 1.0),
        ];
        for (name, got, want, bound) in unary64 {
            for (&v, g) in xs.iter().zip(got.to_vec::<f64>()) {
                let want = want(v as f64);
                let ulp = f64::from_bits(want.abs().to_bits() + 1) - want.abs();
                let same = g == want || (g.is_nan() && want.is_nan());
                assert!(same || (g - want).abs() <= bound * ulp, "f64 {name}({v:e}) = {g:e}, libm {want:e} (n = {n})");
            }
        }
        // Arithmetic is exact whatever the vector width, broadcasting included.
        let y: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
        let yt = Tensor::from_vec(y.clone(), &[n]);
        let sum = (&x + &yt).to_vec::<f32>();
        let prod = (&x * &yt).to_vec::<f32>();
        let scaled = (&x * 2.5).to_vec::<f32>();
        let chosen = where_(&x.gt(&yt), &x, &yt).to_vec::<f32>();
        for i in 0..n {
            let same = |a: f32, b: f32| a == b || (a.is_nan() && b.is_nan());
            assert!(same(sum[i], xs[i] + y[i]), "add at {i}");
            assert!(same(prod[i], xs[i] * y[i]), "mul at {i}");
            assert!(same(scaled[i], xs[i] * 2.5), "scale at {i}");
            assert!(same(chosen[i], if xs[i] > y[i] { xs[i] } else { y[i] }), "where at {i}");
        }
        // A jitted chain of cheap ops (one pass, the value in registers)
        // gives the eager ops' bits: constants held in registers, relu as
        // a mask, and the tiles of a long array aligned to the output.
        let chain = |x: &Tensor| {
            let y = ((x * 0.5 + 1.0) * x - 0.25).abs().relu();
            (-(&y * &y) / 3.0, (x.relu() * 3.0).minimum(&(x * 0.5 + 2.0)))
        };
        // The special values throughout, not only first (which may be
        // before the first aligned block).
        let mixed: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { xs[(i / 3) % 13] } else { xs[i] }).collect();
        let mixed = Tensor::from_vec(mixed, &[n]);
        let (fused, eager) = (jit(chain)(&mixed), chain(&mixed));
        for (fused, eager) in [(fused.0, eager.0), (fused.1, eager.1)] {
            for (i, (f, e)) in fused.to_vec::<f32>().into_iter().zip(eager.to_vec::<f32>()).enumerate() {
                assert!(f.to_bits() == e.to_bits() || (f.is_nan() && e.is_nan()), "chain at {i}: {f} against {e}");
            }
        }
        // Sums are reassociated across lanes: within the bound of pairwise-ish summation.
        let finite: Vec<f32> = xs.iter().map(|v| if v.is_finite() { *v } else { 0.0 }).collect();
        let total = Tensor::from_vec(finite.clone(), &[n]).sum().item();
        let exact: f64 = finite.iter().map(|&v| v as f64).sum();
        let scale: f64 = finite.iter().map(|&v| (v as f64).abs()).sum();
        assert!((total - exact).abs() <= 1e-6 * scale.max(1.0), "sum of {n}: {total} against {exact}");
    }
}
