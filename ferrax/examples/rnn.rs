//! A GRU trained by backpropagation through time, its unroll a `scan`.
//!
//! The network reads a noisy sum of two sine waves one sample at a time
//! and predicts the next sample. The loss over the whole sequence is one
//! `scan`; `jit(value_and_grad(loss))` stages it once, and its gradient is
//! a second scan that runs backwards over each step's residuals. Before
//! training, the gradient is checked against the same loss written as a
//! Rust loop (unrolled into one graph node per step).
//!
//! ```sh
//! cargo run --release --example rnn
//! ```

use ferrax::optim::{Adam, Optimizer};
use ferrax::prelude::*;

const HIDDEN: usize = 32;
const STEPS: usize = 120;

/// GRU parameters: [W_zrn (1 x 3H), U_zr (H x 2H), U_n (H x H), b (3H), readout (H x 1), readout bias].
fn init_params() -> Vec<Tensor> {
    let h = HIDDEN;
    let scale = 1.0 / (h as f64).sqrt();
    vec![
        Tensor::randn(&[1, 3 * h], DType::F32, 1) * 0.5,
        Tensor::randn(&[h, 2 * h], DType::F32, 2) * scale,
        Tensor::randn(&[h, h], DType::F32, 3) * scale,
        Tensor::zeros(&[3 * h], DType::F32),
        Tensor::randn(&[h, 1], DType::F32, 4) * scale,
        Tensor::zeros(&[1], DType::F32),
    ]
}

/// One GRU step on a batch: `x` is [B, 1], `h` is [B, H]; returns the next state and its prediction.
fn gru(p: &[Tensor], h: &Tensor, x: &Tensor) -> (Tensor, Tensor) {
    let n = HIDDEN;
    let gates = x.matmul(&p[0]) + &p[3];
    let zr = (gates.slice(1, 0, 2 * n) + h.matmul(&p[1])).sigmoid();
    let (z, r) = (zr.slice(1, 0, n), zr.slice(1, n, 2 * n));
    let cand = (gates.slice(1, 2 * n, 3 * n) + (&r * h).matmul(&p[2])).tanh();
    let next = &cand + &z * (h - &cand);
    let pred = next.matmul(&p[4]) + &p[5];
    (next, pred)
}

/// Mean squared error of one-step-ahead predictions; `xs` is [T, B, 1].
fn loss_scan(p: &[Tensor], xs: &Tensor) -> Tensor {
    let (t, b) = (xs.shape()[0], xs.shape()[1]);
    let h0 = Tensor::zeros(&[b, HIDDEN], DType::F32);
    let (_, preds) = scan(|h: &Tensor, x: &Tensor| gru(p, h, x), &h0, &xs.slice(0, 0, t - 1));
    (preds - xs.slice(0, 1, t)).square().mean()
}

/// The same loss as a Rust loop.
fn loss_loop(p: &[Tensor], xs: &Tensor) -> Tensor {
    let (t, b) = (xs.shape()[0], xs.shape()[1]);
    let mut h = Tensor::zeros(&[b, HIDDEN], DType::F32);
    let mut preds = Vec::new();
    for i in 0..t - 1 {
        let (next, pred) = gru(p, &h, &xs.slice(0, i, i + 1).squeeze(0));
        h = next;
        preds.push(pred);
    }
    (Tensor::stack(&preds, 0) - xs.slice(0, 1, t)).square().mean()
}

/// A batch of sequences: sin(a t + phase) + 0.5 sin(2.3 a t), with noise; [T, B, 1].
fn data(batch: usize, seed: u64) -> Tensor {
    let phase = Tensor::rand_uniform(&[1, batch, 1], 0.0, 6.3, DType::F32, seed);
    let t = Tensor::arange(STEPS, DType::F32).reshape(&[STEPS, 1, 1]) * 0.15;
    let clean = (&t + &phase).sin() + ((&t * 2.3) + &phase).sin() * 0.5;
    clean + Tensor::randn(&[STEPS, batch, 1], DType::F32, seed + 1) * 0.05
}

fn main() {
    let xs = data(32, 10);
    let mut params = init_params();
    // The scan's gradient against the unrolled loop's.
    let g_scan = grad(|p: &Vec<Tensor>| loss_scan(p, &xs))(&params);
    let g_loop = grad(|p: &Vec<Tensor>| loss_loop(p, &xs))(&params);
    let worst = g_scan.iter().zip(&g_loop).map(|(a, b)| (a - b).abs().max().item()).fold(0.0, f64::max);
    println!("gradient through the scan vs the unrolled loop: max difference {worst:.2e} (f32)");
    assert!(worst < 1e-5, "the scan's gradient disagrees with the loop's");

    let step = jit(value_and_grad(|a: &(Vec<Tensor>, Tensor)| loss_scan(&a.0, &a.1)));
    let opt = Adam::new(0.01);
    let mut state = opt.init(&params);
    let start = std::time::Instant::now();
    let first = step(&(params.clone(), xs.clone())).0.item();
    for it in 1..=300 {
        let batch = data(32, 100 + it);
        let (loss, (g, _)) = step(&(params.clone(), batch));
        (params, state) = opt.update(&params, &g, &state);
        if it % 50 == 0 {
            println!("step {it:4}  loss {:.5}", loss.item());
        }
    }
    let last = loss_scan(&params, &data(32, 9999)).item();
    println!(
        "loss {first:.4} -> {last:.4} on held-out sequences ({:.1} ms per step of {} time steps)",
        start.elapsed().as_secs_f64() * 1e3 / 300.0,
        STEPS - 1
    );
}
