//! Workloads W4 (the full 256×256 Jacobian of x ↦ tanh(W2·tanh(W1·x)), f64),
//! W5 (Hessian and Hessian-vector product of Σ softplus(A x) + ½|x|², f64)
//! and W6 (per-example gradients of a logistic loss, 512 × 128, f32) of the
//! peer benchmarks: Jacobians through vmap against loops of single
//! jvp/vjp calls.
//!
//! `cargo bench --bench jacobian`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ferrax::prelude::*;

fn w4(c: &mut Criterion) {
    let w1 = Tensor::randn(&[256, 256], DType::F64, 1) * 0.05;
    let w2 = Tensor::randn(&[256, 256], DType::F64, 2) * 0.05;
    let x = Tensor::randn(&[256], DType::F64, 3);
    let f = |x: &Tensor| w2.matmul(&w1.matmul(x).tanh()).tanh();
    let eye = Tensor::eye(256, DType::F64);
    let rows: Vec<Tensor> = (0..256).map(|i| eye.slice(0, i, i + 1).squeeze(0)).collect();
    println!("W4 |J|_F = {:.12e}", jacrev(f)(&x).square().sum().sqrt().item());
    let mut g = c.benchmark_group("W4");
    g.bench_function("jacfwd_vmap", |b| b.iter(|| black_box(jacfwd(f)(&x))));
    g.bench_function("jacrev_vmap", |b| b.iter(|| black_box(jacrev(f)(&x))));
    g.bench_function("loop_256_vjp", |b| {
        b.iter(|| {
            let (_, pullback) = vjp(f, &x);
            black_box(Tensor::stack(&rows.iter().map(&pullback).collect::<Vec<_>>(), 0))
        })
    });
    g.bench_function("loop_256_jvp", |b| {
        b.iter(|| black_box(Tensor::stack(&rows.iter().map(|e| jvp(f, &x, e).1).collect::<Vec<_>>(), 1)))
    });
    g.finish();
}

fn w5(c: &mut Criterion) {
    let a = Tensor::randn(&[300, 200], DType::F64, 4) * 0.05;
    let x = Tensor::randn(&[200], DType::F64, 5);
    let v = Tensor::randn(&[200], DType::F64, 6);
    let f = |x: &Tensor| a.matmul(x).softplus().sum() + x.square().sum() * 0.5;
    let mut g = c.benchmark_group("W5");
    g.bench_function("hessian", |b| b.iter(|| black_box(hessian(f)(&x))));
    g.bench_function("hvp", |b| b.iter(|| black_box(hvp(f, &x, &v))));
    g.finish();
}

fn loss(p: &(Tensor, Tensor), x: &Tensor, y: &Tensor) -> Tensor {
    let z = x.matmul(&p.0) + &p.1;
    (z.softplus() - y * &z).sum()
}

fn w6(c: &mut Criterion) {
    let w = Tensor::randn(&[128], DType::F32, 7) * 0.05;
    let b = Tensor::zeros(&[], DType::F32);
    let xs = Tensor::randn(&[512, 128], DType::F32, 8);
    let ys = Tensor::from_vec((0..512).map(|i| ((i * 31 + 7) % 2) as f32).collect(), &[512]);
    let params = (w, b);
    let per_example = vmap_axes(
        |a: &((Tensor, Tensor), Tensor, Tensor)| grad(|p: &(Tensor, Tensor)| loss(p, &a.1, &a.2))(&a.0),
        &[None, None, Some(0), Some(0)],
        &[0],
    );
    let rows: Vec<(Tensor, Tensor)> =
        (0..512).map(|i| (xs.slice(0, i, i + 1).squeeze(0), ys.slice(0, i, i + 1).squeeze(0))).collect();
    let mut g = c.benchmark_group("W6");
    let args = (params.clone(), xs.clone(), ys.clone());
    g.bench_function("vmap_grad", |b| b.iter(|| black_box(per_example(&args))));
    g.bench_function("loop_512_grad", |b| {
        b.iter(|| {
            let grads: Vec<(Tensor, Tensor)> =
                rows.iter().map(|(x, y)| grad(|p: &(Tensor, Tensor)| loss(p, x, y))(&params)).collect();
            let gw: Vec<Tensor> = grads.iter().map(|g| g.0.clone()).collect();
            let gb: Vec<Tensor> = grads.iter().map(|g| g.1.clone()).collect();
            black_box((Tensor::stack(&gw, 0), Tensor::stack(&gb, 0)))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(3));
    targets = w4, w5, w6
}
criterion_main!(benches);
