//! f16 and bf16: conversions round once and to nearest even, promotion
//! follows JAX, operations compute in f32 and round their results, sums
//! and matrix products accumulate in f32, and every transformation keeps
//! the dtype.

use ferrax::half::{bf16, f16};
use ferrax::prelude::*;

#[test]
fn conversions_round_once_to_nearest_even() {
    // 1 + 2⁻¹¹ + 2⁻⁴⁰ lies just above the midpoint of f16's 1 and 1 + 2⁻¹⁰:
    // rounded from f64 at once it goes up; through f32, which drops the
    // 2⁻⁴⁰, it would be a tie and go to even, 1.
    let x = Tensor::scalar(1.0 + 2f64.powi(-11) + 2f64.powi(-40));
    assert_eq!(x.to_dtype(DType::F16).to_vec::<f16>(), [f16::from_f64(1.0 + 2f64.powi(-10))]);
    // Ties go to even: 1 + 2⁻⁸ is halfway between bf16's 1 and 1 + 2⁻⁷.
    let tie = Tensor::from_vec(vec![1.0f32 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8)], &[2]);
    assert_eq!(tie.to_dtype(DType::BF16).to_vec::<bf16>(), [bf16::ONE, bf16::from_f32(1.0 + 4.0 * 2f32.powi(-8))]);
    // Overflow to infinity, NaN kept, and back to f32 exactly.
    let big = Tensor::from_vec(vec![70000.0f32, f32::NAN, -0.0], &[3]).to_dtype(DType::F16);
    let back = big.to_dtype(DType::F32).to_vec::<f32>();
    assert!(back[0].is_infinite() && back[1].is_nan() && back[2] == 0.0 && back[2].is_sign_negative());
    // bf16 keeps f32's range: 3e38 = 1.763… × 2¹²⁷ becomes 226/128 × 2¹²⁷.
    assert_eq!(Tensor::scalar(3.0e38f32).to_dtype(DType::BF16).to_dtype(DType::F32).item(), 226.0 * 2f64.powi(120));
}

#[test]
fn promotion_follows_jax() {
    let h = Tensor::ones(&[2], DType::F16);
    let b = Tensor::ones(&[2], DType::BF16);
    assert_eq!((&h + &b).dtype(), DType::F32);
    assert_eq!((&b + Tensor::ones(&[2], DType::F32)).dtype(), DType::F32);
    assert_eq!((&b + Tensor::from_vec(vec![1i64, 2], &[2])).dtype(), DType::BF16);
    // Rust numbers are weakly typed: the tensor's dtype wins.
    assert_eq!((&h * 2.5).dtype(), DType::F16);
    assert_eq!((&b + 1).dtype(), DType::BF16);
    assert_eq!(Tensor::from_vec(vec![1i64, 2], &[2]).to_dtype(DType::BF16).exp().dtype(), DType::BF16);
}

type Op = fn(&Tensor) -> Tensor;

#[test]
fn each_operation_rounds_the_f32_result_once() {
    let x = Tensor::linspace(-3.0, 3.0, 101, DType::F32);
    for half in [DType::F16, DType::BF16] {
        let xh = x.to_dtype(half);
        let xw = xh.to_dtype(DType::F32);
        let ops: [(&str, Op); 6] = [
            ("exp", |t| t.exp()),
            ("tanh", |t| t.tanh()),
            ("sin", |t| t.sin()),
            ("square", |t| t.square()),
            ("logistic", |t| t.sigmoid()),
            ("x * 1.1 + 0.3", |t| t * 1.1 + 0.3),
        ];
        for (name, op) in ops {
            let got = op(&xh);
            assert_eq!(got.dtype(), half, "{name}");
            // One rounding of the f32 result, except where an op is
            // composed of several (the last line: two).
            let want = op(&xw).to_dtype(half);
            if name.contains('+') {
                let err = (&got.to_dtype(DType::F32) - &want.to_dtype(DType::F32)).abs().max().item();
                assert!(err <= 4.0 * 2f64.powi(-8), "{name} in {half}: {err}");
            } else {
                assert!(got.to_array().bit_eq(&want.to_array()), "{name} in {half}: {got} against {want}");
            }
        }
    }
}

#[test]
fn sums_and_matrix_products_accumulate_in_f32() {
    // Added in bf16, the running sum of ones would stop at 256 (256 + 1
    // rounds back to 256), and in f16 at 2048.
    assert_eq!(Tensor::ones(&[10000], DType::BF16).sum().to_dtype(DType::F32).item(), 9984.0); // nearest bf16 to 10000
    assert_eq!(Tensor::ones(&[10000], DType::F16).sum().to_dtype(DType::F32).item(), 10000.0);
    let a = Tensor::ones(&[1, 300], DType::BF16);
    assert_eq!(a.matmul(&a.t()).to_dtype(DType::F32).item(), 300.0);
    let c = Tensor::ones(&[3000], DType::F16).cumsum(0).to_dtype(DType::F32).to_vec::<f32>();
    assert_eq!(c[2999], 3000.0);
    // The mean divides the f32 sum.
    assert_eq!(Tensor::full(&[4096], 0.1, DType::BF16).mean().dtype(), DType::BF16);
}

#[test]
fn every_transformation_keeps_the_dtype() {
    let loss = |p: &(Tensor, Tensor)| (p.0.matmul(&p.1).tanh() * 2.0).sum();
    for half in [DType::F16, DType::BF16] {
        let p = (Tensor::randn(&[4, 3], half, 0), Tensor::randn(&[3, 2], half, 1));
        let wide = (p.0.to_dtype(DType::F32), p.1.to_dtype(DType::F32));
        let (g0, g1) = grad(loss)(&p);
        assert_eq!((g0.dtype(), g1.dtype()), (half, half));
        let (w0, _) = grad(loss)(&wide);
        let err = (&g0.to_dtype(DType::F32) - &w0).abs().max().item() / w0.abs().max().item();
        assert!(err < 0.05, "{half}: gradient off f32's by {err}");
        // jit computes inside a fused group in f32 and rounds once per
        // output, as XLA does; the result stays in the half dtype.
        let j = jit(loss)(&p);
        assert_eq!(j.dtype(), half);
        assert!((j.to_dtype(DType::F32).item() - loss(&p).to_dtype(DType::F32).item()).abs() < 0.1);
        let v = vmap(|r: &Tensor| r.exp().sum())(&p.0);
        assert_eq!((v.dtype(), v.shape()), (half, &[4][..]));
        let h = hessian(|x: &Tensor| x.powi(3).sum())(&p.0.reshape(&[12]));
        assert_eq!(h.dtype(), half);
        let jac = jacrev(|x: &Tensor| x.sin())(&p.0.reshape(&[12]));
        assert_eq!(jac.dtype(), half);
    }
}

#[test]
fn half_precision_files_round_trip() {
    let x = Tensor::randn(&[3, 5], DType::BF16, 3);
    let path = std::env::temp_dir().join(format!("ferrax-half-{}.safetensors", std::process::id()));
    ferrax::io::save_safetensors(&path, &vec![x.clone()]).unwrap();
    let back = ferrax::io::load_safetensors(&path, &vec![Tensor::zeros(&[3, 5], DType::BF16)]).unwrap();
    assert!(back[0].to_array().bit_eq(&x.to_array()));
    std::fs::remove_file(&path).unwrap();
    let y = Tensor::randn(&[4], DType::F16, 4);
    let npy = ferrax::io::npy_to_bytes(&y);
    assert!(ferrax::io::npy_from_bytes(&npy).unwrap().to_array().bit_eq(&y.to_array()));
    // numpy has no bf16.
    let e = ferrax::io::save_npy(std::env::temp_dir().join("ferrax-bf16.npy"), &x).unwrap_err();
    assert!(e.to_string().contains("bf16"), "{e}");
}

#[test]
fn linear_algebra_refuses_half_precision_by_name() {
    let a = Tensor::eye(3, DType::BF16);
    let m = std::panic::catch_unwind(|| ferrax::linalg::cholesky(&a)).unwrap_err();
    let m = m.downcast_ref::<String>().unwrap();
    assert!(m.contains("cholesky") && m.contains("bf16") && m.contains("to_dtype"), "{m}");
}

mod mixed {
    use ferrax::optim::{Adam, MixedPrecision, Optimizer, Sgd};
    use ferrax::prelude::*;

    #[test]
    fn an_overflowing_f16_step_is_skipped_and_the_scale_backs_off() {
        let mixed = MixedPrecision::f16();
        let opt = Sgd::new(0.1);
        // d/dw of 1000 w² at w = 10 is 20000: times the scale 2¹⁶ it overflows f16.
        let loss = |w: &Tensor| (w.square() * 1000.0).sum();
        let w = Tensor::full(&[2], 10.0, DType::F32);
        let state = opt.init(&w);
        let mut scale = mixed.init();
        let mut skipped = 0;
        loop {
            let step = mixed.step(&opt, loss, &w, &state, &scale);
            if step.finite.item() != 0.0 {
                // Taken once 20000 × scale fits in f16 (≤ 65504): at scale 2.
                assert_eq!(scale.scale.item(), 2.0);
                assert_eq!(step.params.to_vec::<f32>(), [10.0 - 0.1 * 20000.0; 2]);
                break;
            }
            assert_eq!(step.params.to_vec::<f32>(), w.to_vec::<f32>(), "a skipped step changes nothing");
            assert_eq!(step.scale.scale.item(), scale.scale.item() / 2.0);
            skipped += 1;
            scale = step.scale;
        }
        assert_eq!(skipped, 15);
    }

    #[test]
    fn the_scale_grows_after_good_steps_and_rescues_small_gradients() {
        // From 2¹⁰: the default 2¹⁶ is beyond f16's largest value, so the
        // backward pass of a loss computed in f16 overflows at once and the
        // first step is skipped (as with PyTorch's GradScaler).
        let mixed = MixedPrecision { growth_interval: 3, init_scale: 1024.0, ..MixedPrecision::f16() };
        // The gradient of a mean over 4096 elements of 1e-4 w is 2.4e-8
        // each: below half of f16's smallest subnormal (6e-8), so it
        // flushes to zero unscaled; scaled by 2¹⁵ it is 8e-4, a normal f16.
        let a = Tensor::full(&[4096], 1e-4, DType::F32);
        let loss = |w: &Tensor| (w * a.to_dtype(w.dtype())).mean();
        let w = Tensor::ones(&[4096], DType::F32);
        let rescue = MixedPrecision { init_scale: 32768.0, ..mixed };
        let (_, g, finite) = rescue.value_and_grad(loss, &w, &rescue.init());
        assert_eq!(finite.item(), 1.0);
        let want = Tensor::scalar(1e-4f32).to_dtype(DType::F16).item() / 4096.0;
        for v in g.to_vec::<f32>() {
            assert!((v as f64 / want - 1.0).abs() < 1e-3, "{v} against {want}");
        }
        let unscaled = MixedPrecision { init_scale: 1.0, ..mixed };
        let (_, g, _) = unscaled.value_and_grad(loss, &w, &unscaled.init());
        assert_eq!(g.abs().max().item(), 0.0, "without scaling the gradient flushes to zero");

        let opt = Adam::new(1e-3);
        let w = Tensor::ones(&[4], DType::F32);
        let (mut p, mut s, mut scale) = (w.clone(), opt.init(&w), mixed.init());
        let mut scales = Vec::new();
        for _ in 0..7 {
            let step = mixed.step(&opt, |w: &Tensor| w.square().sum(), &p, &s, &scale);
            (p, s, scale) = (step.params, step.state, step.scale);
            scales.push(scale.scale.item());
        }
        let s0 = 1024.0;
        assert_eq!(scales, [s0, s0, 2.0 * s0, 2.0 * s0, 2.0 * s0, 4.0 * s0, 4.0 * s0]);
    }

    #[test]
    fn a_mixed_step_runs_under_jit_and_scan_and_follows_f32() {
        let x = Tensor::randn(&[64, 8], DType::F32, 0);
        let w_true = Tensor::randn(&[8, 1], DType::F32, 1);
        let y = x.matmul(&w_true);
        let loss = move |w: &Tensor| (x.to_dtype(w.dtype()).matmul(w).to_dtype(DType::F32) - &y).square().mean();
        let opt = Adam::new(3e-2);
        let w0 = Tensor::zeros(&[8, 1], DType::F32);
        for mixed in [MixedPrecision::bf16(), MixedPrecision::f16()] {
            let loss = loss.clone();
            let step = jit(move |(w, s, sc): &(Tensor, _, _)| {
                let st = mixed.step(&opt, loss.clone(), w, s, sc);
                (st.params, st.state, st.scale)
            });
            let mut carry = (w0.clone(), opt.init(&w0), mixed.init());
            for _ in 0..300 {
                carry = step(&carry);
            }
            assert_eq!(carry.0.dtype(), DType::F32);
            // The fitted weights are the f32 solution to the compute type's precision.
            let err = (&carry.0 - &w_true).abs().max().item();
            assert!(err < 0.05, "{}: {err}", mixed.compute);
        }
    }
}

#[test]
fn half_values_print_with_the_digits_that_identify_them() {
    let x = Tensor::from_vec(vec![0.0189209f32, 1.0, -2.5, 65504.0], &[4]).to_dtype(DType::F16);
    assert_eq!(format!("{x}"), "[ 1.892e-02  1.000e+00 -2.500e+00  6.550e+04]");
    let y = Tensor::from_vec(vec![0.1f32, -0.40429688], &[2]).to_dtype(DType::BF16);
    assert_eq!(format!("{y}"), "[ 0.1   -0.404]");
}
