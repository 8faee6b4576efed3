//! `ferrax explain --program`: the program of the gradient as traced and
//! as `jit` runs it, simplified and fused.

use std::collections::BTreeMap;
use std::fmt::Write;

use ferrax::prelude::*;
use serde_json::json;

use super::Problem;

/// The gradient's program three ways: as traced, simplified, and fused as
/// `jit` runs it, with the equation counts.
pub(super) fn report(p: &Problem, as_json: bool) -> String {
    let x = p.tensors();
    let (what, traced) = if p.exprs.len() == 1 && p.scalar_vars() {
        ("the gradient of f", make_graph(grad(|v: &BTreeMap<String, Tensor>| p.eval(v)), &x))
    } else {
        ("the gradient of sum(f)", make_graph(grad(|v: &BTreeMap<String, Tensor>| p.eval(v).sum()), &x))
    };
    let simplified = traced.optimized();
    let fused = simplified.fused();
    // Each fused equation stands for the equations of its body.
    let chains: Vec<usize> = fused.eqns.iter().filter_map(|e| e.prim.subgraph().map(|body| body.eqns.len())).collect();
    let counts = (traced.eqns.len(), simplified.eqns.len(), fused.eqns.len());
    if as_json {
        let j = json!({
            "expression": p.source,
            "program_of": what,
            "traced_equations": counts.0,
            "simplified_equations": counts.1,
            "fused_equations": counts.2,
            "fused_chains": chains,
            "traced": traced.to_string(),
            "optimised": fused.to_string(),
        });
        return serde_json::to_string_pretty(&j).expect("JSON values serialise") + "\n";
    }
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut s = String::new();
    let _ = writeln!(s, "f = {}; the program of {what}:\n", p.source);
    let _ = writeln!(s, "as traced ({}):\n{traced}\n", plural(counts.0, "equation"));
    let _ = write!(
        s,
        "as jit runs it ({}): simplified to {} (constants folded; exact identities, shared subexpressions and \
         dead code removed)",
        plural(counts.2, "equation"),
        counts.1
    );
    if !chains.is_empty() {
        let sizes: Vec<String> = chains.iter().map(|c| c.to_string()).collect();
        let _ = write!(
            s,
            ", then {} of {} equations fused, each into one equation whose kernel makes one pass over the data \
             with no intermediate arrays",
            plural(chains.len(), "elementwise chain"),
            sizes.join(", ")
        );
    }
    let _ = writeln!(s, ":\n{fused}");
    s
}
