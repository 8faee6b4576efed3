//! One benchmark workload of `../shared/bench` (W1–W7, and five elementwise
//! kernels), timed in this process, printed as one JSON line.
//!
//! `bench/compare.sh` runs it once per workload beside the same workloads in
//! JAX and PyTorch (`bench/peers.py`), so that each process's peak resident
//! memory belongs to one workload. Timing is the same on both sides: two
//! warm-up calls, then calls until `--seconds` have passed (at least five),
//! and the median and minimum of the single-call times.
//!
//! ```sh
//! cargo run --release --example workload -- W2_grad --seconds 2
//! cargo run --release --example workload -- W2_grad --jit   # through jit
//! cargo run --release --example workload -- list
//! ```
//!
//! The inputs have the workloads' shapes and dtypes, drawn from ferrax's own
//! generator; `peer_workloads` checks the results on the peers' exact inputs.

use std::hint::black_box;
use std::time::Instant;

use ferrax::array::parallel::{fill_chunks, CHEAP};
use ferrax::linalg;
use ferrax::nn::{softmax_cross_entropy, Gpt};
use ferrax::optim::{Adam, AdamState, Optimizer};
use ferrax::prelude::*;
use ferrax::prims::{ConvOptions, Padding};

/// The workloads, each with what it times.
const WORKLOADS: &[(&str, &str)] = &[
    ("W1", "scalar value and both partials of ln(x1) + x1 x2 - sin(x2)"),
    ("W2_loss", "MLP 784-512-512-10 loss, batch 256, f32"),
    ("W2_grad", "MLP loss and the gradient of its 6 parameters"),
    ("W3", "100 full-batch SGD steps of the MLP"),
    ("W4_jacfwd", "256x256 Jacobian of tanh(W2 tanh(W1 x)), forward mode, f64"),
    ("W4_jacrev", "the same Jacobian, reverse mode"),
    ("W5_hessian", "200x200 Hessian of sum softplus(Ax) + |x|^2/2, f64"),
    ("W5_hvp", "one Hessian-vector product of the same function"),
    ("W6", "512 per-example gradients of a logistic loss, 128 features, f32"),
    ("W7_f32", "1024x1024 matrix product, f32"),
    ("W7_f64", "1024x1024 matrix product, f64"),
    ("memcpy_1M", "copy of 2^20 f32 into an allocated buffer, threaded"),
    ("exp_1M", "exp of 2^20 f32"),
    ("tanh_1M", "tanh of 2^20 f32"),
    ("gelu_1M", "tanh-approximated GELU of 2^20 f32: one kernel, as in PyTorch (JAX: a chain of 8 ops)"),
    ("softplus_1M", "max(x, 0) + ln_1p(exp(-|x|)) of 2^20 f32: one kernel (JAX and PyTorch: a chain of 7)"),
    ("cheap8_1M", "-(relu(|(x/2 + 1) x - 1/4|))^2 of 2^20 f32: a chain of 8 cheap ops"),
    ("exp_1M_f64", "exp of 2^20 f64"),
    ("tanh_1M_f64", "tanh of 2^20 f64"),
    ("softplus_1M_f64", "softplus of 2^20 f64, as softplus_1M"),
    ("conv1_fb", "3x3 convolution 3->32 of 128x3x32x32 f32, forward and both gradients"),
    ("conv2_fb", "3x3 convolution 32->64 of 128x32x16x16, forward and both gradients"),
    ("conv3_fb", "3x3 convolution 64->128 of 128x64x8x8, forward and both gradients"),
    ("cnn_digits", "one SGD step of conv 1->16, conv 16->32, 2x2 max-pool, linear on 64 8x8 digits"),
    ("cnn_large", "one SGD step of three conv-relu-pool layers (32, 64, 128) on 128 3x32x32 images"),
    ("gpt_step", "one Adam step of a character transformer: 2 blocks, width 64, 4 heads, context 32, batch 32"),
    (
        "rnn_scan",
        "loss and gradient through 1000 steps of an Elman cell (input 32, hidden 128, batch 32, f32) in a scan",
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        eprintln!("usage: workload NAME [--seconds S] [--jit]   (workload list: the names)");
        std::process::exit(2);
    };
    if name == "list" {
        for (n, what) in WORKLOADS {
            println!("{n:12} {what}");
        }
        return;
    }
    let seconds = match args.iter().position(|a| a == "--seconds") {
        Some(i) => match args.get(i + 1).and_then(|s| s.parse::<f64>().ok()) {
            Some(s) if s > 0.0 => s,
            _ => {
                eprintln!("--seconds needs a positive number");
                std::process::exit(2);
            }
        },
        None => 2.0,
    };
    let jitted = args.iter().any(|a| a == "--jit");
    if jitted && name == "memcpy_1M" {
        println!("{{\"system\": \"ferrax_jit\", \"workload\": \"{name}\", \"skipped\": \"a copy: nothing to jit\"}}");
        return;
    }
    let Some(mut run) = workload(name, jitted) else {
        eprintln!("unknown workload {name:?}{}; `workload list` names them", if jitted { " under --jit" } else { "" });
        std::process::exit(2);
    };
    let before = memory_kb("VmRSS:");
    reset_peak();
    let (median, min, reps) = time(&mut *run, seconds);
    let peak = memory_kb("VmHWM:");
    println!(
        "{{\"system\": \"{}\", \"workload\": \"{name}\", \"median_s\": {median:e}, \"min_s\": {min:e}, \
         \"reps\": {reps}, \"rss_before_kb\": {before}, \"peak_rss_kb\": {peak}}}",
        if jitted { "ferrax_jit" } else { "ferrax" }
    );
}

/// Calls `f` twice, then until `seconds` have passed and at least five
/// times; the median and minimum single-call time and the number of calls.
fn time(f: &mut dyn FnMut(), seconds: f64) -> (f64, f64, usize) {
    f();
    f();
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 5 || start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0], times.len())
}

/// A field of `/proc/self/status` in kB (0 where there is no such file).
fn memory_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the kernel's peak-RSS mark to the current RSS, so that the peak read
/// afterwards belongs to the timed calls (Linux ≥ 4.0; a no-op elsewhere).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Padding 1 for the 3x3 kernels of the network workloads.
fn same() -> ConvOptions {
    ConvOptions::new().padding(Padding::Same)
}

fn normal(shape: &[usize], dtype: DType, seed: u64, scale: f64) -> Tensor {
    Tensor::randn(shape, dtype, seed) * scale
}

/// The MLP of W2/W3: parameters, inputs, one-hot labels.
fn mlp_problem() -> (Vec<Tensor>, Tensor, Tensor) {
    let f32 = DType::F32;
    let params = vec![
        normal(&[784, 512], f32, 1, 0.05),
        Tensor::zeros(&[512], f32),
        normal(&[512, 512], f32, 2, 0.05),
        Tensor::zeros(&[512], f32),
        normal(&[512, 10], f32, 3, 0.05),
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

/// The gradient of gpt_step's loss, eager or jitted.
type GptGrad = dyn Fn(&(Gpt, Tensor, Tensor)) -> Gpt;

/// `f(x)` as a timed call: eager, or through `jit(f)` (traced before timing, in the warm-up calls).
fn call<I, O>(f: impl Fn(&I) -> O + Send + Sync + 'static, x: I, jitted: bool) -> Box<dyn FnMut()>
where
    I: Tree + 'static,
    O: Tree + Send + Sync + 'static,
{
    if jitted {
        let g = jit(f);
        Box::new(move || {
            black_box(g(&x));
        })
    } else {
        Box::new(move || {
            black_box(f(&x));
        })
    }
}

/// The workload's timed call, with its inputs built; with `jitted`, the
/// function a user would jit is (the loss and gradient, the whole Jacobian,
/// one SGD step's gradient).
fn workload(name: &str, jitted: bool) -> Option<Box<dyn FnMut()>> {
    let f64_ = DType::F64;
    Some(match name {
        "W1" => {
            let x = (Tensor::scalar(2.0f32), Tensor::scalar(5.0f32));
            call(value_and_grad(|x: &(Tensor, Tensor)| x.0.ln() + &x.0 * &x.1 - x.1.sin()), x, jitted)
        }
        "W2_loss" => {
            let (p, x, y) = mlp_problem();
            call(move |p: &Vec<Tensor>| mlp_loss(p, &x, &y), p, jitted)
        }
        "W2_grad" => {
            let (p, x, y) = mlp_problem();
            call(value_and_grad(move |p: &Vec<Tensor>| mlp_loss(p, &x, &y)), p, jitted)
        }
        "W3" => {
            let (p0, x, y) = mlp_problem();
            let step = move |p: &Vec<Tensor>| {
                let g = grad(|p: &Vec<Tensor>| mlp_loss(p, &x, &y))(p);
                p.iter().zip(&g).map(|(p, g)| p - g * 0.1).collect::<Vec<Tensor>>()
            };
            if jitted {
                // The whole loop is one program, as JAX's W3 jits a fori_loop.
                let train = jit(move |p: &Vec<Tensor>| fori_loop(0, 100, |_, p: &Vec<Tensor>| step(p), p));
                return Some(Box::new(move || {
                    black_box(train(&p0));
                }));
            }
            Box::new(move || {
                let mut p = p0.clone();
                for _ in 0..100 {
                    p = step(&p);
                }
                black_box(p);
            })
        }
        "W4_jacfwd" | "W4_jacrev" => {
            let (w1, w2) = (normal(&[256, 256], f64_, 1, 0.05), normal(&[256, 256], f64_, 2, 0.05));
            let x = Tensor::randn(&[256], f64_, 3);
            let f = move |x: &Tensor| w2.matmul(&w1.matmul(x).tanh()).tanh();
            if name == "W4_jacfwd" {
                call(jacfwd(f), x, jitted)
            } else {
                call(jacrev(f), x, jitted)
            }
        }
        "W5_hessian" | "W5_hvp" => {
            let a = normal(&[300, 200], f64_, 1, 0.05);
            let (x, v) = (Tensor::randn(&[200], f64_, 2), Tensor::randn(&[200], f64_, 3));
            let f = move |x: &Tensor| a.matmul(x).softplus().sum() + x.square().sum() * 0.5;
            if name == "W5_hessian" {
                call(hessian(f), x, jitted)
            } else {
                call(move |xv: &(Tensor, Tensor)| hvp(&f, &xv.0, &xv.1), (x, v), jitted)
            }
        }
        "W6" => {
            let f32 = DType::F32;
            let params = (normal(&[128], f32, 1, 0.05), Tensor::zeros(&[], f32));
            let x = Tensor::randn(&[512, 128], f32, 2);
            let y = Tensor::from_vec((0..512).map(|i| ((i * 31 + 7) % 2) as f32).collect(), &[512]);
            let loss = |p: &(Tensor, Tensor), x: &Tensor, y: &Tensor| {
                let z = x.matmul(&p.0) + &p.1;
                (z.softplus() - y * &z).sum()
            };
            let per_example = vmap_axes(
                move |a: &((Tensor, Tensor), Tensor, Tensor)| grad(|p: &(Tensor, Tensor)| loss(p, &a.1, &a.2))(&a.0),
                &[None, None, Some(0), Some(0)],
                &[0],
            );
            call(per_example, (params, x, y), jitted)
        }
        "W7_f32" | "W7_f64" => {
            let dtype = if name == "W7_f32" { DType::F32 } else { f64_ };
            let (a, b) = (Tensor::randn(&[1024, 1024], dtype, 1), Tensor::randn(&[1024, 1024], dtype, 2));
            call(|ab: &(Tensor, Tensor)| ab.0.matmul(&ab.1), (a, b), jitted)
        }
        "conv1_fb" | "conv2_fb" | "conv3_fb" => {
            let (c, o, hw) = match name {
                "conv1_fb" => (3, 32, 32),
                "conv2_fb" => (32, 64, 16),
                _ => (64, 128, 8),
            };
            let f32 = DType::F32;
            let x = Tensor::randn(&[128, c, hw, hw], f32, 1);
            let w = normal(&[o, c, 3, 3], f32, 2, 0.1);
            let ct = Tensor::randn(&[128, o, hw, hw], f32, 3);
            let fb = move |xw: &(Tensor, Tensor)| {
                let (_, pullback) = vjp(|xw: &(Tensor, Tensor)| xw.0.conv(&xw.1, &same()), xw);
                pullback(&ct)
            };
            call(fb, (x, w), jitted)
        }
        "cnn_digits" | "cnn_large" => {
            let (n, c, hw, chans, pool_each): (usize, usize, usize, &[usize], bool) =
                if name == "cnn_digits" { (64, 1, 8, &[16, 32], false) } else { (128, 3, 32, &[32, 64, 128], true) };
            let f32 = DType::F32;
            let mut params = Vec::new();
            let mut cin = c;
            for (i, &o) in chans.iter().enumerate() {
                params.push(normal(&[o, cin, 3, 3], f32, 10 + i as u64, (2.0 / (9 * cin) as f64).sqrt()));
                params.push(Tensor::zeros(&[o], f32));
                cin = o;
            }
            let side = hw / if pool_each { 1 << chans.len() } else { 2 };
            params.push(normal(&[cin * side * side, 10], f32, 20, 0.05));
            params.push(Tensor::zeros(&[10], f32));
            let x = Tensor::randn(&[n, c, hw, hw], f32, 1);
            let labels = Tensor::from_vec((0..n).map(|i| (i * 7 % 10) as i64).collect(), &[n]);
            let step = move |p: &Vec<Tensor>| {
                let g = grad(|p: &Vec<Tensor>| {
                    let mut h = x.clone();
                    for l in 0..chans.len() {
                        let b = p[2 * l + 1].reshape(&[1, chans[l], 1, 1]);
                        h = (h.conv(&p[2 * l], &same()) + b).relu();
                        if pool_each {
                            h = h.max_pool(&[2, 2], &[], &Padding::Valid);
                        }
                    }
                    if !pool_each {
                        h = h.max_pool(&[2, 2], &[], &Padding::Valid);
                    }
                    let flat = h.reshape(&[n, h.size() / n]);
                    softmax_cross_entropy(&(flat.matmul(&p[p.len() - 2]) + &p[p.len() - 1]), &labels)
                })(p);
                p.iter().zip(&g).map(|(a, d)| a - d * 0.1).collect::<Vec<Tensor>>()
            };
            call(step, params, jitted)
        }
        "rnn_scan" => {
            let steps = std::env::var("RNN_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
            let p = vec![
                normal(&[32, 128], DType::F32, 1, 0.1),
                normal(&[128, 128], DType::F32, 2, 1.0 / (128f64).sqrt()),
                Tensor::zeros(&[128], DType::F32),
            ];
            let xs = Tensor::randn(&[steps, 32, 32], DType::F32, 3);
            let h0 = Tensor::zeros(&[32, 128], DType::F32);
            let loss = move |p: &Vec<Tensor>| {
                let cell = |h: &Tensor, x: &Tensor| {
                    let h = (x.matmul(&p[0]) + h.matmul(&p[1]) + &p[2]).tanh();
                    (h.clone(), h)
                };
                scan(cell, &h0, &xs).1.square().mean()
            };
            call(value_and_grad(loss), p, jitted)
        }
        la if la.starts_with("la_") => {
            let parts: Vec<&str> = la.split('_').collect();
            let (op, with_grad) = (parts[1].to_string(), parts.len() == 4);
            // `la_OP_N`, or `la_OP_BxN` for a batch of B matrices.
            let (batch, n) = match parts[2].split_once('x') {
                Some((b, n)) => (vec![b.parse::<usize>().ok()?], n.parse::<usize>().ok()?),
                None => (vec![], parts[2].parse::<usize>().ok()?),
            };
            let a = Tensor::randn(&[batch, vec![n, n]].concat(), f64_, 1);
            let a = match op.as_str() {
                "cholesky" | "eigh" => a.matmul(&a.t()) / n as f64 + Tensor::eye(n, f64_),
                "solve" => a + Tensor::eye(n, f64_) * (n as f64).sqrt(),
                _ => a,
            };
            let b = Tensor::randn(&[n], f64_, 2);
            let (kind, rhs) = (op.clone(), b.clone());
            let scalar = move |a: &Tensor| -> Tensor {
                match op.as_str() {
                    "solve" => linalg::solve(a, &b).sum(),
                    "cholesky" => linalg::cholesky(a).sum(),
                    "eigh" => {
                        let (w, v) = linalg::eigh(a);
                        w.sum() + v.powi(4).sum()
                    }
                    _ => {
                        let (u, s, _) = linalg::svd(a, false);
                        s.sum() + u.powi(4).sum()
                    }
                }
            };
            if with_grad {
                call(value_and_grad(scalar), a, jitted)
            } else {
                let factor = move |a: &Tensor| -> Vec<Tensor> {
                    match kind.as_str() {
                        "solve" => vec![linalg::solve(a, &rhs)],
                        "cholesky" => vec![linalg::cholesky(a)],
                        "eigh" => {
                            let (w, v) = linalg::eigh(a);
                            vec![w, v]
                        }
                        "qr" => {
                            let (q, r) = linalg::qr(a, false);
                            vec![q, r]
                        }
                        _ => {
                            let (u, s, vt) = linalg::svd(a, false);
                            vec![u, s, vt]
                        }
                    }
                };
                call(factor, a, jitted)
            }
        }
        "gpt_step" => {
            let (vocab, batch, context) = (60, 32, 32);
            let model = Gpt::new(vocab, 64, 4, 2, context, DType::F32, 0);
            let state = Adam::new(3e-3).init(&model);
            let mut rng = ferrax::array::Rng::new(1);
            let mut ids = || -> Tensor {
                let v: Vec<i64> = (0..batch * context).map(|_| rng.below(vocab) as i64).collect();
                Tensor::from_vec(v, &[batch, context])
            };
            let (x, y) = (ids(), ids());
            // Adam's bias correction reads its step count, so under --jit the
            // loss and gradient are staged and the update runs eagerly (as
            // `ferrax train` does).
            let g = move |a: &(Gpt, Tensor, Tensor)| grad(|m: &Gpt| m.loss(&a.1, &a.2))(&a.0);
            let g: Box<GptGrad> = if jitted { Box::new(jit(g)) } else { Box::new(g) };
            let ms: (Gpt, AdamState<Gpt>) = (model, state);
            Box::new(move || {
                let grads = g(&(ms.0.clone(), x.clone(), y.clone()));
                black_box(Adam::new(3e-3).update(&ms.0, &grads, &ms.1));
            })
        }
        "exp_1M" => call(|x: &Tensor| x.exp(), Tensor::randn(&[1 << 20], DType::F32, 1), jitted),
        "tanh_1M" => call(|x: &Tensor| x.tanh(), Tensor::randn(&[1 << 20], DType::F32, 1), jitted),
        "gelu_1M" => call(|x: &Tensor| x.gelu_tanh(), Tensor::randn(&[1 << 20], DType::F32, 1), jitted),
        "softplus_1M" => call(|x: &Tensor| x.softplus(), Tensor::randn(&[1 << 20], DType::F32, 1), jitted),
        "exp_1M_f64" => call(|x: &Tensor| x.exp(), Tensor::randn(&[1 << 20], DType::F64, 1), jitted),
        "tanh_1M_f64" => call(|x: &Tensor| x.tanh(), Tensor::randn(&[1 << 20], DType::F64, 1), jitted),
        "softplus_1M_f64" => call(|x: &Tensor| x.softplus(), Tensor::randn(&[1 << 20], DType::F64, 1), jitted),
        "cheap8_1M" => call(
            |x: &Tensor| {
                let y = ((x * 0.5 + 1.0) * x - 0.25).abs().relu();
                -(&y * &y)
            },
            Tensor::randn(&[1 << 20], DType::F32, 1),
            jitted,
        ),
        "memcpy_1M" if !jitted => {
            // The copy is into a vector allocated once, split across threads
            // as ferrax's kernels are: the memory bandwidth the two kernels
            // are judged against, without allocation.
            let raw: Vec<f32> = Tensor::randn(&[1 << 20], DType::F32, 1).to_vec();
            let mut dst = vec![0.0f32; raw.len()];
            Box::new(move || {
                fill_chunks(&mut dst, CHEAP, |start, chunk| chunk.copy_from_slice(&raw[start..start + chunk.len()]));
                black_box(&mut dst);
            })
        }
        _ => return None,
    })
}
