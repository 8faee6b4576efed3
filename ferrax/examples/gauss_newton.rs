//! Levenberg–Marquardt through `linalg::solve`, and the derivative of the
//! fitted parameters with respect to the data.
//!
//! The model y = a·exp(−b·t) + c is fitted to 40 noisy points by 30
//! damped Gauss–Newton steps inside a `fori_loop`: each step takes the
//! Jacobian of the residuals by `jacfwd` and solves (JᵀJ + λI) δ = −Jᵀr.
//! Because the loop and the solve are differentiable, `jacrev` of the
//! whole fit gives how each fitted parameter moves with each data point.
//! That is checked against the implicit-function theorem at the optimum,
//! dθ/dy = (∇²_θ L)⁻¹ Jᵀ with L = ½‖r‖², computed by `hessian`.
//!
//! ```sh
//! cargo run --release --example gauss_newton
//! ```

use ferrax::linalg;
use ferrax::prelude::*;

const POINTS: usize = 40;

fn times() -> Tensor {
    Tensor::linspace(0.0, 4.0, POINTS, DType::F64)
}

/// The model at every time.
fn model(theta: &Tensor) -> Tensor {
    let at = |i: usize| theta.slice(0, i, i + 1);
    at(0) * (-(at(1) * times())).exp() + at(2)
}

/// 30 Levenberg–Marquardt steps from a fixed start, as a function of the data.
fn fit(y: &Tensor) -> Tensor {
    let start = Tensor::from_vec(vec![1.0, 1.0, 0.0], &[3]);
    fori_loop(
        0,
        30,
        |_, theta: &Tensor| {
            let residual = |th: &Tensor| model(th) - y;
            let j = jacfwd(residual)(theta);
            let r = residual(theta);
            let normal = j.t().matmul(&j) + Tensor::eye(3, DType::F64) * 1e-3;
            theta - linalg::solve(&normal, &j.t().matmul(&r))
        },
        &start,
    )
}

fn main() {
    let truth = Tensor::from_vec(vec![2.5, 1.3, 0.5], &[3]);
    let y = model(&truth) + Tensor::randn(&[POINTS], DType::F64, 7) * 0.05;
    let theta = jit(fit)(&y);
    println!("fitted (a, b, c) = {:.5?}; true {:?}", theta.to_vec::<f64>(), truth.to_vec::<f64>());

    // How the fit moves with the data: reverse mode through the loop and the solves.
    let start = std::time::Instant::now();
    let through_loop = jacrev(fit)(&y);
    let took = start.elapsed();
    // The implicit-function theorem at the optimum.
    let loss = |a: &(Tensor, Tensor)| (model(&a.0) - &a.1).square().sum() * 0.5;
    let h = hessian(|th: &Tensor| loss(&(th.clone(), y.clone())))(&theta);
    let j = jacfwd(|th: &Tensor| model(th) - &y)(&theta);
    let implicit = linalg::solve(&h, &j.t());
    let diff = (&through_loop - &implicit).abs().max().item();
    println!(
        "d theta / d y ({:?}) through 30 steps vs the implicit-function theorem: max difference {diff:.1e} ({took:.1?})",
        through_loop.shape()
    );
    assert!(diff < 1e-8, "the derivative through the fit disagrees with the implicit one");
    for (name, row) in ["a", "b", "c"].iter().zip(0..3) {
        let r = implicit.slice(0, row, row + 1).squeeze(0).to_vec::<f64>();
        println!("  d{name}/dy[0..4] = {:+.4?}", &r[..4]);
    }
}
