//! Workloads W2 and W3 of the peer benchmarks: an MLP 784-512-512-10 with tanh,
//! batch 256, f32, softmax cross-entropy. Times the loss alone and the loss
//! with the gradient of all six parameters, and (printed before the timings)
//! the peak heap memory of one gradient next to the size of the activations;
//! and 100 full-batch SGD steps (W3); the gradient and the steps eagerly and
//! through jit.
//!
//! `cargo bench --bench mlp`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use ferrax::prelude::*;

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

struct Problem {
    params: Vec<Tensor>,
    x: Tensor,
    y: Tensor,
}

/// The W2 shapes with seeded normal weights × 0.05, zero biases.
fn problem() -> Problem {
    let w = |shape: &[usize], seed| Tensor::randn(shape, DType::F32, seed) * 0.05;
    let params = vec![
        w(&[784, 512], 1),
        Tensor::zeros(&[512], DType::F32),
        w(&[512, 512], 2),
        Tensor::zeros(&[512], DType::F32),
        w(&[512, 10], 3),
        Tensor::zeros(&[10], DType::F32),
    ];
    let x = Tensor::randn(&[256, 784], DType::F32, 4);
    let labels = Tensor::from_vec((0..256).map(|i| (i * 7 % 10) as i64).collect(), &[256]);
    Problem { params, x, y: labels.one_hot(10, DType::F32) }
}

/// W2's loss: `mean_i(logsumexp(z_i) − Σ_j Y_ij z_ij)`.
fn loss(p: &[Tensor], x: &Tensor, y: &Tensor) -> Tensor {
    let h1 = (x.matmul(&p[0]) + &p[1]).tanh();
    let h2 = (h1.matmul(&p[2]) + &p[3]).tanh();
    let z = h2.matmul(&p[4]) + &p[5];
    (z.logsumexp_axes(&[1], false) - (y * &z).sum_axes(&[1], false)).mean()
}

fn report_memory(pr: &Problem) {
    let f = |p: &Vec<Tensor>| loss(p, &pr.x, &pr.y);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let (v, g) = value_and_grad(f)(&pr.params);
    let peak = PEAK.load(Ordering::Relaxed) - base;
    drop((v, g));
    // Activations: the two hidden layers and the logits, before and after tanh.
    let activations = 4 * 256 * (512 * 2 + 512 * 2 + 10);
    let params: usize = pr.params.iter().map(|p| 4 * p.size()).sum();
    println!(
        "W2 memory: peak heap during value_and_grad {:.2} MB above the inputs; activations {:.2} MB; parameters {:.2} MB",
        peak as f64 / 1e6,
        activations as f64 / 1e6,
        params as f64 / 1e6
    );
    let (_, pullback) = vjp(f, &pr.params);
    let held = LIVE.load(Ordering::Relaxed) - base;
    println!("W2 memory: a live pullback holds {:.2} MB (its residuals)", held as f64 / 1e6);
    drop(pullback);
    println!("W2 memory: after dropping it, {:.2} MB remain", (LIVE.load(Ordering::Relaxed) - base) as f64 / 1e6);
}

/// A deep tanh MLP: 16 layers 512 → 512, batch 256.
fn deep(ws: &[Tensor], x: &Tensor) -> Tensor {
    ws.iter().fold(x.clone(), |h, w| h.matmul(w).tanh())
}

/// The memory a pullback of the 16-layer MLP holds, plain and with each
/// block of 4 layers checkpointed, and the time of one gradient each way.
fn report_checkpoint_memory() {
    let ws: Vec<Tensor> = (0..16).map(|i| Tensor::randn(&[512, 512], DType::F32, 10 + i) * 0.05).collect();
    let x = Tensor::randn(&[256, 512], DType::F32, 9);
    let block = checkpoint(|a: &[Tensor]| deep(&a[1..], &a[0]));
    let plain = |p: &Vec<Tensor>| deep(p, &x).sum();
    let ckpt = |p: &Vec<Tensor>| {
        let h = p.chunks(4).fold(x.clone(), |h, ws| block(&[&[h][..], ws].concat()));
        h.sum()
    };
    for (name, f) in [("plain", &plain as &dyn Fn(&Vec<Tensor>) -> Tensor), ("checkpointed every 4 layers", &ckpt)] {
        let base = LIVE.load(Ordering::Relaxed);
        let (_, pullback) = vjp(f, &ws);
        let held = LIVE.load(Ordering::Relaxed) - base;
        let t = std::time::Instant::now();
        black_box(pullback(&Tensor::scalar(1.0f32)));
        println!(
            "deep MLP (16 x 512, batch 256), {name}: the pullback holds {:.1} MB; the backward pass takes {:.1} ms",
            held as f64 / 1e6,
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    println!("  (one activation is {:.2} MB)", (256 * 512 * 4) as f64 / 1e6);
}

fn w2(c: &mut Criterion) {
    let pr = problem();
    println!("W2 loss at init: {:.6}", loss(&pr.params, &pr.x, &pr.y).item());
    report_memory(&pr);
    report_checkpoint_memory();
    let mut g = c.benchmark_group("W2");
    g.bench_function("loss", |b| b.iter(|| black_box(loss(&pr.params, &pr.x, &pr.y))));
    g.bench_function("loss_and_grad", |b| {
        b.iter(|| black_box(value_and_grad(|p: &Vec<Tensor>| loss(p, &pr.x, &pr.y))(&pr.params)))
    });
    // The same under jit: staged once, then run from the cache.
    let step = jit(|(p, x, y): &(Vec<Tensor>, Tensor, Tensor)| value_and_grad(|p: &Vec<Tensor>| loss(p, x, y))(p));
    let args = (pr.params.clone(), pr.x.clone(), pr.y.clone());
    g.bench_function("loss_and_grad_jit", |b| b.iter(|| black_box(step(&args))));
    // W3: 100 full-batch SGD steps (lr 0.1) from the initial parameters.
    g.sample_size(10);
    g.bench_function("train_100_sgd_steps", |b| {
        b.iter(|| {
            let mut p = pr.params.clone();
            for _ in 0..100 {
                let g = grad(|p: &Vec<Tensor>| loss(p, &pr.x, &pr.y))(&p);
                p = p.iter().zip(&g).map(|(p, g)| p - g * 0.1).collect();
            }
            black_box(p)
        })
    });
    let grad_jit = jit(|(p, x, y): &(Vec<Tensor>, Tensor, Tensor)| grad(|p: &Vec<Tensor>| loss(p, x, y))(p));
    g.bench_function("train_100_sgd_steps_jit", |b| {
        b.iter(|| {
            let mut p = pr.params.clone();
            for _ in 0..100 {
                let g = grad_jit(&(p.clone(), pr.x.clone(), pr.y.clone()));
                p = p.iter().zip(&g).map(|(p, g)| p - g * 0.1).collect();
            }
            black_box(p)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(4));
    targets = w2
}
criterion_main!(benches);
