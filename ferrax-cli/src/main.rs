//! `ferrax`: demos of automatic differentiation built on the ferrax library.

use ferrax::prelude::*;

/// The classic worked example: `f(x1, x2) = ln(x1) + x1·x2 − sin(x2)`.
fn worked_example(x: &(Tensor, Tensor)) -> Tensor {
    let (x1, x2) = x;
    x1.ln() + x1 * x2 - x2.sin()
}

fn demo() {
    let at = (Tensor::scalar(2.0), Tensor::scalar(5.0));
    let e1 = (Tensor::scalar(1.0), Tensor::scalar(0.0));
    let e2 = (Tensor::scalar(0.0), Tensor::scalar(1.0));
    let (y, d1) = jvp(worked_example, &at, &e1);
    let (_, d2) = jvp(worked_example, &at, &e2);
    let n1 = numerical_jvp(worked_example, &at, &e1);
    let n2 = numerical_jvp(worked_example, &at, &e2);
    println!("ferrax: automatic differentiation for Rust\n");
    println!("f(x1, x2) = ln(x1) + x1*x2 - sin(x2)   at (x1, x2) = (2, 5)\n");
    println!("  f(2, 5)   = {:>10.6}", y.item());
    println!("  df/dx1    = {:>10.6}   forward mode: jvp along (1, 0)", d1.item());
    println!("  df/dx2    = {:>10.6}   forward mode: jvp along (0, 1)", d2.item());
    println!("\n  exact:        df/dx1 = 1/x1 + x2 = 5.5,  df/dx2 = x1 - cos(x2) = {:.6}", 2.0 - 5f64.cos());
    println!(
        "  central differences: {:.6}, {:.6} (errors {:.1e}, {:.1e}; forward mode's: {:.1e}, {:.1e})",
        n1.item(),
        n2.item(),
        (n1.item() - 5.5).abs(),
        (n2.item() - (2.0 - 5f64.cos())).abs(),
        (d1.item() - 5.5).abs(),
        (d2.item() - (2.0 - 5f64.cos())).abs(),
    );
}

fn main() {
    demo();
}
