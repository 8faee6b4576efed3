//! `ferrax swell`: expression swell measured — the derivative of two
//! families written out as a tree, shared as a DAG, and the graph ferrax's
//! reverse mode builds.

use std::collections::BTreeMap;

use ferrax::prelude::*;
use ferrax::symbolic::{nested_product, nested_sin, Expr};

use crate::output::{outln, Failure};

/// The largest n: measuring every row up to n costs about n⁴·⁵ (`--max 100`
/// takes 0.4 s, 200 takes 9 s, 400 four minutes), so the limit keeps a run
/// to about a second.
const MAX_N: usize = 120;

/// `ferrax swell`'s options.
#[derive(clap::Args)]
pub struct Args {
    /// The largest n of the families f_n (1 to 120)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=MAX_N as i64))]
    max: u16,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let max = args.max as usize;
    outln!("expression swell: node counts of d/dx f_n(x)");
    outln!("  f_n = sin(sin(...sin(x))) (n times)          f_n = x(x+1)(x+2)...(x+n-1)");
    outln!(
        "  {:>3} {:>8} {:>6} {:>9}        {:>8} {:>6} {:>9}",
        "n",
        "tree",
        "DAG",
        "AD graph",
        "tree",
        "DAG",
        "AD graph"
    );
    let ad_size = |e: &Expr| {
        let at = BTreeMap::from([("x".to_string(), Tensor::scalar(0.5))]);
        make_graph(grad(|v: &BTreeMap<String, Tensor>| e.to_tensor(v).expect("x is given")), &at).eqns.len()
    };
    for n in 1..=max {
        let (s, p) = (nested_sin(n), nested_product(n));
        let (ds, dp) = (s.diff("x"), p.diff("x"));
        outln!(
            "  {n:>3} {:>8} {:>6} {:>9}        {:>8} {:>6} {:>9}",
            ds.tree_size(),
            ds.dag_size(),
            ad_size(&s),
            dp.tree_size(),
            dp.dag_size(),
            ad_size(&p)
        );
    }
    outln!(
        "tree: the derivative written out; DAG: with repeated subexpressions shared; AD graph: equations in \
         make_graph(grad(f))"
    );
    Ok(())
}
