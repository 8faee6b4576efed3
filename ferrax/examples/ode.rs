//! An ODE integrated with RK4 in a `fori_loop`, differentiated with respect
//! to its parameters, and fitted to observations with Adam.
//!
//! The Lotka–Volterra predator–prey model, dx/dt = αx − βxy, dy/dt = δxy − γy,
//! is integrated over 10 time units in 400 RK4 steps; the loss compares the
//! trajectory at 20 observation times with one simulated from other
//! parameters. The gradient (reverse mode through the loop, each step's
//! residuals kept) is checked against central differences, then Adam
//! recovers the parameters.
//!
//! ```sh
//! cargo run --release --example ode
//! ```

use ferrax::control::{scan_with, ScanOptions};
use ferrax::optim::{Adam, Optimizer};
use ferrax::prelude::*;

const DT: f64 = 0.025;
const PER_OBSERVATION: i64 = 20;
const OBSERVATIONS: usize = 20;

/// The vector field at state `s` = [x, y] for parameters `p` = [α, β, δ, γ].
fn field(p: &Tensor, s: &Tensor) -> Tensor {
    let at = |t: &Tensor, i: usize| t.slice(0, i, i + 1);
    let (x, y) = (at(s, 0), at(s, 1));
    let (alpha, beta, delta, gamma) = (at(p, 0), at(p, 1), at(p, 2), at(p, 3));
    let dx = &alpha * &x - &beta * &x * &y;
    let dy = &delta * &x * &y - &gamma * &y;
    Tensor::concat(&[dx, dy], 0)
}

/// One classical Runge–Kutta step.
fn rk4(p: &Tensor, s: &Tensor) -> Tensor {
    let k1 = field(p, s);
    let k2 = field(p, &(s + &k1 * (DT / 2.0)));
    let k3 = field(p, &(s + &k2 * (DT / 2.0)));
    let k4 = field(p, &(s + &k3 * DT));
    s + (k1 + k2 * 2.0 + k3 * 2.0 + k4) * (DT / 6.0)
}

/// The state at every observation time: a scan over observations, each a `fori_loop` of RK4 steps.
fn trajectory(p: &Tensor, s0: &Tensor) -> Tensor {
    let opts = ScanOptions { length: Some(OBSERVATIONS), ..Default::default() };
    let (_, states) = scan_with(
        |s: &Tensor, _: &()| {
            let next = fori_loop(0, PER_OBSERVATION, |_, s: &Tensor| rk4(p, s), s);
            (next.clone(), next)
        },
        s0,
        &(),
        opts,
    );
    states
}

fn main() {
    let s0 = Tensor::from_vec(vec![1.0, 0.5], &[2]);
    let truth = Tensor::from_vec(vec![1.1, 0.4, 0.1, 0.4], &[4]);
    let observed = trajectory(&truth, &s0);
    let loss = |p: &Tensor| (trajectory(p, &s0) - &observed).square().mean();

    let mut p = Tensor::from_vec(vec![0.9, 0.5, 0.15, 0.5], &[4]);
    let g = grad(loss)(&p);
    let fd = numerical_grad(loss, &p);
    println!("d loss / d (alpha, beta, delta, gamma) = {:?}", g.to_vec::<f64>());
    println!("central differences                     = {:?}", fd.to_vec::<f64>());
    let rel = (&g - &fd).abs().max().item() / fd.abs().max().item();
    assert!(rel < 1e-6, "the gradient through the loop disagrees with finite differences ({rel:e})");

    let step = jit(value_and_grad(loss));
    let opt = Adam::new(0.01);
    let mut state = opt.init(&p);
    let start = std::time::Instant::now();
    for it in 0..=400 {
        let (l, g) = step(&p);
        if it % 100 == 0 {
            println!("step {it:3}  loss {:.3e}  parameters {:.4?}", l.item(), p.to_vec::<f64>());
        }
        (p, state) = opt.update(&p, &g, &state);
    }
    println!(
        "true parameters {:?}; {:.2} ms per gradient of {} RK4 steps",
        truth.to_vec::<f64>(),
        start.elapsed().as_secs_f64() * 1e3 / 401.0,
        OBSERVATIONS as i64 * PER_OBSERVATION
    );
}
