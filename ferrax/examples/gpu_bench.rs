//! The GPU benchmarks of the CUDA issue, on cuda:0, one JSON line per
//! measurement (`bench/gpu_peers.py` prints the same lines for PyTorch and
//! JAX, and `bench/gpu_table.py` joins them into one table).
//!
//! ```text
//! cargo run --release --features cuda --example gpu_bench -- [--seconds S] [--only NAME,...]
//! ```
//!
//! Workloads: `matmul_f32_4096`, `matmul_bf16_4096` (one product of two
//! 4096² matrices), `tanh_64M` and `add_64M` (elementwise over 64M f32,
//! reported as the bytes they move per second), `W2_grad_256` and
//! `W2_grad_4096` (the MLP's loss and gradient at two batch sizes, eager
//! and jitted), `W3` (100 SGD steps of W2 as one jitted `fori_loop`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ferrax::prelude::*;

fn sync() {
    ferrax::cuda::synchronize(0).expect("cuda:0 synchronises");
}

/// Seconds per call: the median of repeated timed calls after warm-up calls
/// (which also compile the kernels), each timed call waiting for the GPU.
fn time(seconds: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    sync();
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 5 || (start.elapsed() < Duration::from_secs_f64(seconds) && samples.len() < 1000) {
        let t = Instant::now();
        f();
        sync();
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn report(workload: &str, system: &str, seconds: f64, extra: &str) {
    println!(r#"{{"workload": "{workload}", "system": "{system}", "seconds": {seconds:e}{extra}}}"#);
}

fn mlp(batch: usize, gpu: Device) -> (Vec<Tensor>, Tensor, Tensor) {
    let f32 = DType::F32;
    let params = vec![
        Tensor::randn(&[784, 512], f32, 1) * 0.05,
        Tensor::zeros(&[512], f32),
        Tensor::randn(&[512, 512], f32, 2) * 0.05,
        Tensor::zeros(&[512], f32),
        Tensor::randn(&[512, 10], f32, 3) * 0.05,
        Tensor::zeros(&[10], f32),
    ];
    let x = Tensor::randn(&[batch, 784], f32, 4);
    let labels = Tensor::from_vec((0..batch).map(|i| (i * 7 % 10) as i64).collect(), &[batch]);
    (device_put(&params, gpu), x.to_device(gpu), labels.one_hot(10, f32).to_device(gpu))
}

fn mlp_loss(p: &[Tensor], x: &Tensor, y: &Tensor) -> Tensor {
    let h1 = (x.matmul(&p[0]) + &p[1]).tanh();
    let h2 = (h1.matmul(&p[2]) + &p[3]).tanh();
    let z = h2.matmul(&p[4]) + &p[5];
    (z.logsumexp_axes(&[1], false) - (y * &z).sum_axes(&[1], false)).mean()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let seconds: f64 = arg("--seconds").map_or(1.0, |s| s.parse().expect("--seconds takes a number"));
    let only: Option<Vec<String>> = arg("--only").map(|s| s.split(',').map(String::from).collect());
    let wanted = |w: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == w));
    if let Err(e) = ferrax::cuda::device_count().and_then(|n| {
        if n > 0 {
            Ok(())
        } else {
            Err(ferrax::cuda::CudaError::NoDevice { ordinal: 0, count: 0 })
        }
    }) {
        eprintln!("gpu_bench: no GPU: {e}");
        std::process::exit(2);
    }
    let gpu = Device::Cuda(0);
    eprintln!("gpu_bench on {}", ferrax::cuda::device_name(0).unwrap_or_default());

    for dtype in [DType::F32, DType::BF16] {
        let name = format!("matmul_{dtype}_4096");
        if wanted(&name) {
            let a = Tensor::randn(&[4096, 4096], DType::F32, 1).to_dtype(dtype).to_device(gpu);
            let b = Tensor::randn(&[4096, 4096], DType::F32, 2).to_dtype(dtype).to_device(gpu);
            let t = time(seconds, || {
                black_box(a.matmul(&b));
            });
            report(&name, "ferrax", t, &format!(r#", "tflops": {:.1}"#, 2.0 * 4096f64.powi(3) / t / 1e12));
        }
    }
    let n = 64 << 20;
    if wanted("tanh_64M") || wanted("add_64M") {
        let x = Tensor::randn(&[n], DType::F32, 1).to_device(gpu);
        let y = Tensor::randn(&[n], DType::F32, 2).to_device(gpu);
        if wanted("tanh_64M") {
            let t = time(seconds, || {
                black_box(x.tanh());
            });
            report("tanh_64M", "ferrax", t, &format!(r#", "gbps": {:.0}"#, 8.0 * n as f64 / t / 1e9));
        }
        if wanted("add_64M") {
            let t = time(seconds, || {
                black_box(&x + &y);
            });
            report("add_64M", "ferrax", t, &format!(r#", "gbps": {:.0}"#, 12.0 * n as f64 / t / 1e9));
        }
    }
    for batch in [256, 4096] {
        let name = format!("W2_grad_{batch}");
        if !wanted(&name) {
            continue;
        }
        let (p, x, y) = mlp(batch, gpu);
        let (xe, ye) = (x.clone(), y.clone());
        let eager = value_and_grad(move |p: &Vec<Tensor>| mlp_loss(p, &xe, &ye));
        report(&name, "ferrax eager", time(seconds, || drop(black_box(eager(&p)))), "");
        let jitted = jit(value_and_grad(move |p: &Vec<Tensor>| mlp_loss(p, &x, &y)));
        report(&name, "ferrax jit", time(seconds, || drop(black_box(jitted(&p)))), "");
    }
    if wanted("W3") {
        let (p0, x, y) = mlp(256, gpu);
        let train = jit(move |p: &Vec<Tensor>| {
            fori_loop(
                0,
                100,
                |_, p: &Vec<Tensor>| {
                    let g = grad(|p: &Vec<Tensor>| mlp_loss(p, &x, &y))(p);
                    p.iter().zip(&g).map(|(p, g)| p - g * 0.1).collect::<Vec<Tensor>>()
                },
                p,
            )
        });
        report("W3", "ferrax jit", time(seconds, || drop(black_box(train(&p0)))), "");
    }
}
