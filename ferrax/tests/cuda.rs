//! The CUDA backend (the `cuda` feature). Without a GPU, the kernels are
//! still compiled by NVRTC when its library can be loaded (CI installs it),
//! and the GPU tests skip with the reason printed; with
//! `FERRAX_REQUIRE_GPU=1` they fail instead, so a GPU machine cannot pass
//! them by skipping. The gradient-check and batching tables run on the GPU
//! in `tests/prims.rs`.
#![cfg(feature = "cuda")]

use ferrax::array::fused::{FusedOp, FusedProgram, FusedReduce, FusedStep, Operand};
use ferrax::array::{BinaryOp, CompareOp, ReduceOp, UnaryOp};
use ferrax::core::bind;
use ferrax::cuda::{self, codegen};
use ferrax::prelude::*;
use ferrax::prims::Matmul;

mod common;
use common::gpu::{gpu_or_skip, require};

/// The architectures of the GPUs the project runs on: H100 and H200 are
/// compute capability 9.0; A100 is 8.0.
const ARCHS: [&str; 2] = ["sm_80", "sm_90"];

fn nvrtc_or_skip() -> bool {
    match cuda::nvrtc_available() {
        Ok(()) => true,
        Err(e) if require("FERRAX_REQUIRE_NVRTC") || require("FERRAX_REQUIRE_GPU") => {
            panic!("NVRTC is required here but {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e} (set LD_LIBRARY_PATH to the nvidia-cuda-nvrtc wheel's lib folder)");
            false
        }
    }
}

/// Fused programs that use every kind of step, a broadcast bool input, more
/// inputs than the strided ones, several outputs and a reduction.
fn sample_programs() -> Vec<(FusedProgram, Vec<DType>)> {
    use Operand::{Input, Step};
    let step = |op, args: &[Operand]| FusedStep { op, args: args.to_vec() };
    let mut all = Vec::new();
    for dtype in [DType::F32, DType::F64] {
        let mut steps = vec![step(FusedOp::Binary(BinaryOp::Add), &[Input(0), Input(1)])];
        for op in UnaryOp::ALL {
            steps.push(step(FusedOp::Unary(op), &[Step(steps.len() - 1)]));
        }
        for op in BinaryOp::ALL {
            steps.push(step(FusedOp::Binary(op), &[Step(steps.len() - 1), Input(2)]));
        }
        let last = steps.len() - 1;
        for op in CompareOp::ALL {
            steps.push(step(FusedOp::Compare(op), &[Step(last), Input(3)]));
        }
        let mask = steps.len() - 1;
        steps.push(step(FusedOp::Select, &[Step(mask), Step(last), Input(4)]));
        steps.push(step(FusedOp::Select, &[Input(5), Step(last), Input(0)]));
        let n = steps.len();
        let ins = vec![dtype, dtype, dtype, dtype, dtype, DType::Bool];
        all.push((FusedProgram::new(steps.clone(), vec![n - 1, mask, n - 2]), ins.clone()));
        let reduce = FusedReduce { op: ReduceOp::Sum, step: n - 1, axes: 1 };
        all.push((FusedProgram::reducing(steps, vec![mask], reduce), ins));
    }
    all
}

#[test]
fn every_generated_kernel_compiles_with_nvrtc() {
    if !nvrtc_or_skip() {
        return;
    }
    let mut kernels = codegen::every_kernel();
    for (p, ins) in sample_programs() {
        let dtype = ins[0];
        kernels.push(codegen::fused(&p, dtype, ins.len(), &ins));
    }
    let mut failures = Vec::new();
    for arch in ARCHS {
        for k in &kernels {
            if let Err(e) = cuda::compile(k, arch) {
                failures.push(format!("{arch}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} kernels failed:\n{}", failures.len(), kernels.len(), failures.join("\n"));
    eprintln!("{} kernels compiled for {ARCHS:?}", kernels.len());
}

#[test]
fn without_a_gpu_placement_fails_with_the_reason() {
    if cuda::available() {
        return;
    }
    let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    let why = x.array().unwrap().try_to_device(Device::Cuda(0)).expect_err("no GPU here");
    assert!(why.to_string().contains("CUDA") || why.to_string().contains("GPU"), "{why}");
}

/// Every dtype round-trips bit for bit, including NaN payloads and
/// subnormals, and the host copy is what was sent.
#[test]
fn transfers_round_trip_bit_exactly() {
    let Some(gpu) = gpu_or_skip() else { return };
    let specials = [0.0, -0.0, 1.5, f64::NAN, f64::INFINITY, -f64::INFINITY, 1e-310, 5e-324, -3.25e300];
    for dtype in [DType::F16, DType::BF16, DType::F32, DType::F64, DType::I64, DType::Bool] {
        let base = Tensor::from_vec(specials.to_vec(), &[specials.len()]).to_dtype(dtype);
        for n in [0usize, 1, 3, 7, 9, 1000, 100_003] {
            let x = Tensor::randn(&[n], DType::F64, n as u64).to_dtype(dtype);
            let x = if n == 9 { base.clone() } else { x };
            let y = x.to_device(gpu);
            assert_eq!(y.device(), gpu);
            let back = y.to_device(Device::Cpu);
            assert_eq!(back.device(), Device::Cpu);
            assert!(back.array().unwrap().bit_eq(x.array().unwrap()), "{dtype} × {n} changed on the way");
        }
    }
}

/// Conversions between every pair of dtypes give the CPU's bits.
#[test]
fn conversions_match_the_cpu_bit_for_bit() {
    let Some(gpu) = gpu_or_skip() else { return };
    let v: Vec<f64> = (0..4000).map(|i| ((i as f64) * 0.37 - 700.0) * (1.0 + (i % 7) as f64 * 1e-5)).collect();
    let mut v = v;
    v.extend([f64::NAN, f64::INFINITY, -0.0, 65504.0, 65520.0, 1e-8, 3e38, 1e39, 9.3e18, -9.3e18]);
    let dtypes = [DType::F16, DType::BF16, DType::F32, DType::F64, DType::I64, DType::Bool];
    for from in dtypes {
        let x = Tensor::from_vec(v.clone(), &[v.len()]).to_dtype(from);
        let xg = x.to_device(gpu);
        for to in dtypes {
            let (want, got) = (x.to_dtype(to), xg.to_dtype(to));
            assert_eq!(got.device(), gpu);
            assert!(got.array().unwrap().bit_eq(want.array().unwrap()), "{from} -> {to} differs from the CPU");
        }
    }
}

/// Matrix products through cuBLAS, every transposition and a batch,
/// against the CPU's (both accumulate in the operands' precision).
#[test]
fn matrix_products_match_the_cpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    for dtype in [DType::F32, DType::F64, DType::BF16] {
        for (m, k, n) in [(1, 1, 1), (3, 5, 7), (64, 33, 17), (0, 4, 3), (5, 0, 2)] {
            let a = Tensor::randn(&[2, m, k], dtype, 1);
            let b = Tensor::randn(&[2, k, n], dtype, 2);
            let want = a.matmul(&b);
            let got = a.to_device(gpu).matmul(&b.to_device(gpu));
            assert_eq!(got.device(), gpu);
            common::gpu::assert_close(&got, &want, 1e-5, &format!("{dtype} [{m},{k}]@[{k},{n}]"));
            for (ta, tb) in [(true, false), (false, true), (true, true)] {
                let (sa, sb) = (if ta { a.t() } else { a.clone() }, if tb { b.t() } else { b.clone() });
                let got = bind(Matmul { ta, tb }, &[sa.to_device(gpu), sb.to_device(gpu)]);
                common::gpu::assert_close(&got, &want, 1e-5, &format!("{dtype} [{m},{k}]@[{k},{n}], ta {ta}, tb {tb}"));
            }
        }
    }
}

/// Values made on the host follow a computation onto the GPU (JAX's rule
/// for uncommitted values); two GPUs in one operation are refused.
#[test]
fn host_values_follow_the_gpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    let x = Tensor::randn(&[4, 3], DType::F32, 1).to_device(gpu);
    let y = &x + &Tensor::ones(&[3], DType::F32);
    assert_eq!(y.device(), gpu);
    let z = x.clone() * 2.0;
    assert_eq!(z.device(), gpu);
    common::gpu::assert_close(&z, &(x.to_device(Device::Cpu) * 2.0), 0.0, "scalar times");
}

/// W2's network: 784-512-512-10, tanh, softmax cross-entropy, batch 256.
fn mlp_problem() -> (Vec<Tensor>, Tensor, Tensor) {
    let f32 = DType::F32;
    let params = vec![
        Tensor::randn(&[784, 512], f32, 1) * 0.05,
        Tensor::zeros(&[512], f32),
        Tensor::randn(&[512, 512], f32, 2) * 0.05,
        Tensor::zeros(&[512], f32),
        Tensor::randn(&[512, 10], f32, 3) * 0.05,
        Tensor::zeros(&[10], f32),
    ];
    let x = Tensor::randn(&[256, 784], f32, 4);
    let labels = Tensor::from_vec((0..256).map(|i| (i * 7 % 10) as i64).collect(), &[256]);
    (params, x, labels.one_hot(10, f32))
}

fn mlp_loss(p: &[Tensor], x: &Tensor, y: &Tensor) -> Tensor {
    let h1 = (x.matmul(&p[0]) + &p[1]).tanh();
    let h2 = (h1.matmul(&p[2]) + &p[3]).tanh();
    let z = h2.matmul(&p[4]) + &p[5];
    (z.logsumexp_axes(&[1], false) - (y * &z).sum_axes(&[1], false)).mean()
}

fn sgd_step(p: &Vec<Tensor>, x: &Tensor, y: &Tensor) -> Vec<Tensor> {
    let g = grad(|p: &Vec<Tensor>| mlp_loss(p, x, y))(p);
    p.iter().zip(&g).map(|(p, g)| p - g * 0.1).collect()
}

/// Ten SGD steps of W2's network on the GPU, eagerly and under jit (fused
/// kernels), end where the CPU's do. The runs differ only in the order of
/// f32 summation inside matrix products and reductions (each a few ulp
/// of the sums), which ten steps of a contracting optimisation keep
/// within 1e-4 of the parameters' scale.
#[test]
fn ten_w2_training_steps_match_the_cpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    let (p0, x, y) = mlp_problem();
    let mut cpu = p0.clone();
    for _ in 0..10 {
        cpu = sgd_step(&cpu, &x, &y);
    }
    let (xg, yg) = (x.to_device(gpu), y.to_device(gpu));
    let mut eager = device_put(&p0, gpu);
    for _ in 0..10 {
        eager = sgd_step(&eager, &xg, &yg);
    }
    let step = {
        let (xg, yg) = (xg.clone(), yg.clone());
        jit(move |p: &Vec<Tensor>| sgd_step(p, &xg, &yg))
    };
    let mut jitted = device_put(&p0, gpu);
    for _ in 0..10 {
        jitted = step(&jitted);
    }
    for (k, c) in cpu.iter().enumerate() {
        for (run, g) in [("eager", &eager[k]), ("jit", &jitted[k])] {
            assert_eq!(g.device(), gpu, "{run}: parameter {k} left the GPU");
            common::gpu::assert_close(g, c, 1e-4, &format!("{run}: parameter {k} after 10 steps"));
        }
    }
    let loss = |p: &Vec<Tensor>, x: &Tensor, y: &Tensor| mlp_loss(p, x, y).to_vec::<f32>()[0];
    assert!((loss(&jitted, &xg, &yg) - loss(&cpu, &x, &y)).abs() < 1e-4);
}

/// A jitted elementwise chain runs as one generated kernel on the GPU and
/// gives the CPU's values, with broadcast operands, a mask and a reduction.
#[test]
fn fused_chains_on_the_gpu_match_the_cpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    let f = |a: &(Tensor, Tensor, Tensor)| {
        let h = ((&a.0 + &a.1).tanh() * &a.2 + 1.0).exp();
        let m = where_(&h.gt(&Tensor::scalar(1.5f32)), &h, &(h.clone() * 0.5));
        (m.clone(), m.sum_axes(&[1], false))
    };
    let x = Tensor::randn(&[64, 300], DType::F32, 1);
    let (b, c) = (Tensor::randn(&[300], DType::F32, 2), Tensor::randn(&[64, 1], DType::F32, 3));
    let want = f(&(x.clone(), b.clone(), c.clone()));
    let got = jit(f)(&(x.to_device(gpu), b.to_device(gpu), c.to_device(gpu)));
    common::gpu::assert_close(&got.0, &want.0, 1e-6, "fused values");
    common::gpu::assert_close(&got.1, &want.1, 1e-5, "fused row sums");
    assert_eq!((got.0.device(), got.1.device()), (gpu, gpu));
}
