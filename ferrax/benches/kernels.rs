//! Kernel speed: matrix products in GFLOP/s, elementwise ops and chains of
//! them (eager and fused by jit) in GB/s next to a plain copy, the per-op overhead of `bind` and of `jvp`, and the size at
//! which splitting work across threads starts to pay.
//!
//! `cargo bench --bench kernels` (criterion prints `thrpt` as GFLOP/s for
//! `matmul`, as GiB/s for `elementwise`).

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrax::prelude::*;

fn matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul");
    let n = 1024;
    g.throughput(Throughput::Elements(2 * n * n * n));
    for dtype in [DType::F32, DType::F64] {
        let a = Tensor::randn(&[n as usize, n as usize], dtype, 1);
        let b = Tensor::randn(&[n as usize, n as usize], dtype, 2);
        g.bench_function(BenchmarkId::new("1024", dtype), |bench| bench.iter(|| black_box(a.matmul(&b))));
    }
    g.finish();
}

fn elementwise(c: &mut Criterion) {
    let mut g = c.benchmark_group("elementwise");
    let n = 1 << 20;
    let x = Tensor::randn(&[n], DType::F32, 3);
    let y = Tensor::randn(&[n], DType::F32, 4);
    // Bytes moved: one read and one write per element (two reads for add).
    g.throughput(Throughput::Bytes(2 * 4 * n as u64));
    let src: Vec<f32> = x.to_vec();
    g.bench_function("memcpy_1M_f32", |b| b.iter(|| black_box(src.clone())));
    g.bench_function("exp_1M_f32", |b| b.iter(|| black_box(x.exp())));
    g.bench_function("tanh_1M_f32", |b| b.iter(|| black_box(x.tanh())));
    g.throughput(Throughput::Bytes(3 * 4 * n as u64));
    g.bench_function("add_1M_f32", |b| b.iter(|| black_box(&x + &y)));
    // Chains of elementwise operations, eager (an array per operation) and
    // fused by jit (one pass over tiles); bytes: one read and one write.
    g.throughput(Throughput::Bytes(2 * 4 * n as u64));
    type Chain = fn(&Tensor) -> Tensor;
    let chains: [(&str, Chain); 3] = [
        ("gelu", |x| x.gelu_tanh()),
        ("softplus", |x| x.softplus()),
        ("cheap8", |x| {
            let y = ((x * 0.5 + 1.0) * x - 0.25).abs().relu();
            -(&y * &y)
        }),
    ];
    for (name, chain) in chains {
        g.bench_function(format!("{name}_1M_f32_eager"), |b| b.iter(|| black_box(chain(&x))));
        let fused = jit(chain);
        g.bench_function(format!("{name}_1M_f32_jit"), |b| b.iter(|| black_box(fused(&x))));
    }
    g.finish();
}

fn overhead(c: &mut Criterion) {
    let mut g = c.benchmark_group("overhead");
    let x = Tensor::scalar(0.5f64);
    let y = Tensor::scalar(2.0f64);
    g.bench_function("eager_mul_scalar", |b| b.iter(|| black_box(&x * &y)));
    g.bench_function("eager_sin_scalar", |b| b.iter(|| black_box(x.sin())));
    g.bench_function("jvp_mul_scalar", |b| b.iter(|| black_box(jvp(|x: &Tensor| x * &y, &x, &y))));
    g.bench_function("jvp_sin_scalar", |b| b.iter(|| black_box(jvp(|x: &Tensor| x.sin(), &x, &y))));
    // The jvp entry cost alone, to separate it from the per-op cost.
    g.bench_function("jvp_identity", |b| b.iter(|| black_box(jvp(|x: &Tensor| x.clone(), &x, &y))));
    // Per-op cost inside one jvp: ten sins.
    g.bench_function("jvp_10_sins", |b| {
        b.iter(|| {
            black_box(jvp(
                |x: &Tensor| {
                    let mut v = x.clone();
                    for _ in 0..10 {
                        v = v.sin();
                    }
                    v
                },
                &x,
                &y,
            ))
        })
    });
    // W1: the worked example's value and both partials, f32, by reverse mode.
    let at = (Tensor::scalar(2.0f32), Tensor::scalar(5.0f32));
    let w1 = value_and_grad(|x: &(Tensor, Tensor)| x.0.ln() + &x.0 * &x.1 - x.1.sin());
    g.bench_function("w1_value_and_grad", |b| b.iter(|| black_box(w1(&at))));
    let w1_jit = jit(value_and_grad(|x: &(Tensor, Tensor)| x.0.ln() + &x.0 * &x.1 - x.1.sin()));
    g.bench_function("w1_value_and_grad_jit", |b| b.iter(|| black_box(w1_jit(&at))));
    g.finish();
}

/// Elementwise add and exp at growing sizes, on one thread and on the whole
/// pool: where the two cross is the threshold in `array::parallel`. The
/// one-thread runs happen inside a one-thread rayon pool, entered once per
/// sample so the hand-off to it is not timed.
fn threshold(c: &mut Criterion) {
    let mut g = c.benchmark_group("threshold");
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    for n in [1 << 12, 1 << 13, 1 << 14, 1 << 15, 1 << 16, 1 << 17, 1 << 18] {
        let x = Tensor::randn(&[n], DType::F32, 5);
        g.throughput(Throughput::Elements(n as u64));
        type Op = fn(&Tensor) -> Tensor;
        let ops: [(&str, Op); 2] = [("add", |x| x + x), ("exp", |x| x.exp())];
        for (name, op) in ops {
            g.bench_function(BenchmarkId::new(format!("{name}_1thread"), n), |b| {
                b.iter_custom(|iters| {
                    one.install(|| {
                        let t = Instant::now();
                        for _ in 0..iters {
                            black_box(op(&x));
                        }
                        t.elapsed()
                    })
                })
            });
            g.bench_function(BenchmarkId::new(format!("{name}_pool"), n), |b| b.iter(|| black_box(op(&x))));
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = matmul, elementwise, overhead, threshold
}
criterion_main!(benches);
