//! `ferrax`: demos of automatic differentiation built on the ferrax library.

mod digits_models;
mod explain;
mod gpt;
mod inspect;
mod output;
mod plot;
mod ranks;
mod swell;
mod trace;
mod train;

use clap::{CommandFactory, Parser, Subcommand};
use ferrax::prelude::*;

use output::{outln, Failure};

/// ferrax: automatic differentiation for Rust. With no command, the worked
/// example by forward and reverse mode.
#[derive(Parser)]
#[command(name = "ferrax", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Four ways to differentiate an expression, with the traces of forward and reverse mode
    Explain(explain::Args),
    /// Expression swell: symbolic derivatives against AD graphs
    Swell(swell::Args),
    /// Train an MLP on handwritten digits
    Train(train::Args),
    /// List the tensors of a safetensors checkpoint (names, dtypes, shapes) without loading it
    Inspect(inspect::Args),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

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

    outln!("ferrax: automatic differentiation for Rust\n");
    outln!("f(x1, x2) = ln(x1) + x1*x2 - sin(x2)   at (x1, x2) = (2, 5)\n");

    let (y, d1) = jvp(worked_example, &at, &e1);
    let (_, d2) = jvp(worked_example, &at, &e2);
    outln!("  f(2, 5)   = {:>10.6}", y.item());
    outln!("forward mode (jvp, one pass per input):");
    outln!("  df/dx1    = {:>10.6}   jvp along (1, 0)", d1.item());
    outln!("  df/dx2    = {:>10.6}   jvp along (0, 1)", d2.item());

    let (g1, g2) = grad(worked_example)(&at);
    outln!("reverse mode (grad, one backward pass for both):");
    outln!("  df/dx1    = {:>10.6}", g1.item());
    outln!("  df/dx2    = {:>10.6}", g2.item());

    // <u, J v> by forward mode equals <J^T u, v> by reverse mode.
    let (v, u) = ((Tensor::scalar(0.3), Tensor::scalar(-1.7)), Tensor::scalar(2.5));
    let (_, jv) = jvp(worked_example, &at, &v);
    let (_, pullback) = vjp(worked_example, &at);
    let (b1, b2) = pullback(&u);
    let lhs = (&u * &jv).item();
    let rhs = (&b1 * &v.0 + &b2 * &v.1).item();
    outln!("agreement: <u, J v> = {lhs:.12} (jvp)   <J^T u, v> = {rhs:.12} (vjp)");

    let n1 = numerical_jvp(worked_example, &at, &e1);
    let n2 = numerical_jvp(worked_example, &at, &e2);
    outln!("\nexact: df/dx1 = 1/x1 + x2 = 5.5,  df/dx2 = x1 - cos(x2) = {:.6}", exact.1);
    outln!(
        "errors: central differences {:.1e}, {:.1e}; forward mode {:.1e}, {:.1e}; reverse mode {:.1e}, {:.1e}",
        (n1.item() - exact.0).abs(),
        (n2.item() - exact.1).abs(),
        (d1.item() - exact.0).abs(),
        (d2.item() - exact.1).abs(),
        (g1.item() - exact.0).abs(),
        (g2.item() - exact.1).abs(),
    );
    outln!("\nthe gradient's computation graph (make_graph(grad(f))):\n{}", make_graph(grad(worked_example), &at));
}

fn main() {
    let cli = Cli::parse();
    let result: Result<(), Failure> = match cli.command {
        None => {
            demo();
            Ok(())
        }
        Some(Command::Explain(args)) => explain::run(args),
        Some(Command::Swell(args)) => swell::run(args),
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Inspect(args)) => inspect::run(args),
        Some(Command::Completions { shell }) => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ferrax", &mut out);
            output::write(format_args!("{}", String::from_utf8_lossy(&out)));
            Ok(())
        }
    };
    match result {
        Ok(()) => {}
        Err(Failure::Usage(m)) => {
            eprintln!("ferrax: {m}");
            std::process::exit(2);
        }
        Err(Failure::Run(m)) => {
            eprintln!("ferrax: {m}");
            std::process::exit(1);
        }
    }
}
