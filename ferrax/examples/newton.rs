//! Newton's method in a `while_loop`, vmapped over many starting points.
//!
//! Kepler's equation E − e·sin E = M gives a planet's eccentric anomaly E
//! from its mean anomaly M. Newton's iteration solves it to machine
//! precision in a few steps, a different number for each M: under `vmap`
//! the loop runs until every member has converged, each member keeping its
//! answer from when its own test failed. Forward mode differentiates through
//! the loop; dE/dM is checked against the implicit-function value
//! 1 / (1 − e·cos E).
//!
//! ```sh
//! cargo run --release --example newton
//! ```

use ferrax::prelude::*;

const ECCENTRICITY: f64 = 0.6;

/// E for one mean anomaly `m` (a 0-d tensor), by Newton's iteration from E = M.
fn eccentric_anomaly(m: &Tensor) -> Tensor {
    let e = ECCENTRICITY;
    let step = |s: &(Tensor, Tensor)| {
        let x = &s.0;
        let residual = x - x.sin() * e - m;
        let next = x - &residual / (1.0 - x.cos() * e);
        let count = &s.1 + &Tensor::scalar(1i64);
        (next, count)
    };
    // At least one step, even from an exact start (M = 0, π): a Newton step
    // at the root carries the implicit derivative; the start's is dE/dM = 1.
    let unconverged = |s: &(Tensor, Tensor)| {
        let residual = (&s.0 - s.0.sin() * e - m).abs();
        let first = s.1.eq(&Tensor::scalar(0i64));
        first.logical_or(&residual.gt(&Tensor::scalar(1e-14)).logical_and(&s.1.lt(&Tensor::scalar(50i64))))
    };
    while_loop(unconverged, step, &(m.clone(), Tensor::scalar(0i64))).0
}

fn main() {
    let n = 10_000;
    let ms = Tensor::linspace(0.0, 2.0 * std::f64::consts::PI, n, DType::F64);
    let solve = jit(vmap(eccentric_anomaly));
    let start = std::time::Instant::now();
    let es = solve(&ms);
    let took = start.elapsed();
    let residual = (&es - es.sin() * ECCENTRICITY - &ms).abs().max().item();
    println!(
        "{n} solutions of Kepler's equation (e = {ECCENTRICITY}): max |E - e sin E - M| = {residual:.1e} ({took:.2?})"
    );
    assert!(residual < 1e-13);

    // dE/dM by forward mode through the loop, for every M at once.
    let (_, de) = jvp(|m: &Tensor| vmap(eccentric_anomaly)(m), &ms, &Tensor::ones(&[n], DType::F64));
    let implicit = (1.0 - es.cos() * ECCENTRICITY).recip();
    let worst = ((&de - &implicit) / &implicit).abs().max().item();
    println!("dE/dM through the loop vs 1 / (1 - e cos E): max relative difference {worst:.1e}");
    assert!(worst < 1e-10);
    let at = |t: &Tensor, i: usize| t.slice(0, i, i + 1).item();
    for i in [0, n / 8, n / 4, n / 2] {
        println!("  M = {:.4}  E = {:.12}  dE/dM = {:.10}", at(&ms, i), at(&es, i), at(&de, i));
    }
}
