//! `ferrax`: demos of automatic differentiation built on the ferrax library.

mod args;
mod explain;
mod json;
mod plot;
mod trace;
mod train;

use ferrax::prelude::*;

const USAGE: &str = "\
ferrax: automatic differentiation for Rust

usage:
  ferrax                 the worked example, by forward and reverse mode
  ferrax explain \"<expr>\" --at x=1,y=2
                         four ways to differentiate an expression, with the traces
                         of forward and reverse mode (ferrax explain --help)
  ferrax swell [--max N] expression swell: symbolic derivatives against AD graphs
  ferrax train [..]      train an MLP on handwritten digits (ferrax train --help)
  ferrax help            this text";

/// The classic worked example: `f(x1, x2) = ln(x1) + x1·x2 − sin(x2)`.
fn worked_example(x: &(Tensor, Tensor)) -> Tensor {
    let (x1, x2) = x;
    x1.ln() + x1 * x2 - x2.sin()
}

fn demo() {
    let at = (Tensor::scalar(2.0), Tensor::scalar(5.0));
    let e1 = (Tensor::scalar(1.0), Tensor::scalar(0.0));
    let e2 = (Tensor::scalar(0.0), Tensor::scalar(1.0));
    let exact = (5.5, 2.0 - 5f64.cos());

    println!("ferrax: automatic differentiation for Rust\n");
    println!("f(x1, x2) = ln(x1) + x1*x2 - sin(x2)   at (x1, x2) = (2, 5)\n");

    let (y, d1) = jvp(worked_example, &at, &e1);
    let (_, d2) = jvp(worked_example, &at, &e2);
    println!("  f(2, 5)   = {:>10.6}", y.item());
    println!("forward mode (jvp, one pass per input):");
    println!("  df/dx1    = {:>10.6}   jvp along (1, 0)", d1.item());
    println!("  df/dx2    = {:>10.6}   jvp along (0, 1)", d2.item());

    let (g1, g2) = grad(worked_example)(&at);
    println!("reverse mode (grad, one backward pass for both):");
    println!("  df/dx1    = {:>10.6}", g1.item());
    println!("  df/dx2    = {:>10.6}", g2.item());

    // <u, J v> by forward mode equals <J^T u, v> by reverse mode.
    let (v, u) = ((Tensor::scalar(0.3), Tensor::scalar(-1.7)), Tensor::scalar(2.5));
    let (_, jv) = jvp(worked_example, &at, &v);
    let (_, pullback) = vjp(worked_example, &at);
    let (b1, b2) = pullback(&u);
    let lhs = (&u * &jv).item();
    let rhs = (&b1 * &v.0 + &b2 * &v.1).item();
    println!("agreement: <u, J v> = {lhs:.12} (jvp)   <J^T u, v> = {rhs:.12} (vjp)");

    let n1 = numerical_jvp(worked_example, &at, &e1);
    let n2 = numerical_jvp(worked_example, &at, &e2);
    println!("\nexact: df/dx1 = 1/x1 + x2 = 5.5,  df/dx2 = x1 - cos(x2) = {:.6}", exact.1);
    println!(
        "errors: central differences {:.1e}, {:.1e}; forward mode {:.1e}, {:.1e}; reverse mode {:.1e}, {:.1e}",
        (n1.item() - exact.0).abs(),
        (n2.item() - exact.1).abs(),
        (d1.item() - exact.0).abs(),
        (d2.item() - exact.1).abs(),
        (g1.item() - exact.0).abs(),
        (g2.item() - exact.1).abs(),
    );
    println!("\nthe gradient's computation graph (make_graph(grad(f))):\n{}", make_graph(grad(worked_example), &at));
}

/// Expression swell measured: the derivative of two families written out as
/// a tree, shared as a DAG, and the graph ferrax's reverse mode builds.
fn swell(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    use ferrax::symbolic::{nested_product, nested_sin, Expr};
    let args = args::Args::parse(argv, &["max"], &[])?;
    let max: usize = args.parsed("max", 10)?;
    println!("expression swell: node counts of d/dx f_n(x)");
    println!("  f_n = sin(sin(...sin(x))) (n times)          f_n = x(x+1)(x+2)...(x+n-1)");
    println!(
        "  {:>3} {:>8} {:>6} {:>9}        {:>8} {:>6} {:>9}",
        "n", "tree", "DAG", "AD graph", "tree", "DAG", "AD graph"
    );
    let ad_size = |e: &Expr| {
        let at = std::collections::BTreeMap::from([("x".to_string(), Tensor::scalar(0.5))]);
        make_graph(grad(|v: &std::collections::BTreeMap<String, Tensor>| e.to_tensor(v).expect("x is given")), &at)
            .eqns
            .len()
    };
    for n in 1..=max {
        let (s, p) = (nested_sin(n), nested_product(n));
        let (ds, dp) = (s.diff("x"), p.diff("x"));
        println!(
            "  {n:>3} {:>8} {:>6} {:>9}        {:>8} {:>6} {:>9}",
            ds.tree_size(),
            ds.dag_size(),
            ad_size(&s),
            dp.tree_size(),
            dp.dag_size(),
            ad_size(&p)
        );
    }
    println!("tree: the derivative written out; DAG: with repeated subexpressions shared; AD graph: equations in make_graph(grad(f))");
    Ok(())
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = match argv.first().map(String::as_str) {
        None => {
            demo();
            Ok(())
        }
        Some("train") if argv.iter().any(|a| a == "--help" || a == "-h") => {
            println!("{}", train::USAGE);
            Ok(())
        }
        Some("explain") if argv.iter().any(|a| a == "--help" || a == "-h") => {
            println!("{}", explain::USAGE);
            Ok(())
        }
        Some("explain") => explain::run(&argv[1..]),
        Some("swell") => swell(&argv[1..]),
        Some("train") => train::run(&argv[1..]),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command '{other}'\n\n{USAGE}").into()),
    };
    if let Err(e) = result {
        eprintln!("ferrax: {e}");
        std::process::exit(2);
    }
}
