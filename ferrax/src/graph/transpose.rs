//! Transposition of a linear graph: the backward pass of reverse mode.

use crate::core::{bind_dyn, small, Lin, Outs, Tensor};

use super::Graph;

/// Runs the transpose of a linear graph: given a cotangent for each output
/// (`None`: zero), returns the cotangent of each input (`None`: zero).
///
/// Every equation of a linear graph is linear in the inputs; constants are
/// the residuals it was staged with. The walk goes backwards over the
/// equations, applying each primitive's `transpose` rule and summing the
/// cotangents that fan in to a variable. Symbolic zeros skip work: an
/// equation whose output received no cotangent is never visited. All work
/// is done with `bind`, so an enclosing transformation sees it.
///
/// # Panics
/// When a cotangent's shape or dtype differs from its output's.
#[track_caller]
pub fn backward_pass(graph: &Graph, cts: &[Option<Tensor>]) -> Vec<Option<Tensor>> {
    transpose_linear(graph, &vec![None; graph.inputs.len()], cts)
}

/// [`backward_pass`] for a graph linear in some of its inputs only: the
/// others are `known` (`Some`: their values, which may be tracers). The
/// equations that read known values alone are evaluated first, as the
/// residuals of the rest; then the rest is transposed. Returns the
/// cotangent of each input that is not known (`None`: zero, and for the
/// known ones). The transpose rule of the control-flow primitives, whose
/// bodies read residuals and tangents together.
#[track_caller]
pub(crate) fn transpose_linear(graph: &Graph, known: &[Option<Tensor>], cts: &[Option<Tensor>]) -> Vec<Option<Tensor>> {
    assert_eq!(cts.len(), graph.outputs.len(), "backward pass: one cotangent per output");
    let mut value: Vec<Option<Tensor>> = vec![None; graph.avals.len()];
    for (&v, k) in graph.inputs.iter().zip(known) {
        value[v] = k.clone();
    }
    for (v, t) in &graph.consts {
        value[*v] = Some(t.clone());
    }
    for e in &graph.eqns {
        if e.inputs.iter().all(|&v| value[v].is_some()) {
            let args: Vec<Tensor> = e.inputs.iter().map(|&v| value[v].clone().expect("known")).collect();
            for (&o, y) in e.outs.iter().zip(bind_dyn(e.prim.clone(), &args)) {
                value[o] = Some(y);
            }
        }
    }
    let mut ct_of: Vec<Option<Tensor>> = vec![None; graph.avals.len()];
    let accumulate = |slot: &mut Option<Tensor>, ct: Tensor| {
        *slot = Some(match slot.take() {
            Some(prev) => prev + ct,
            None => ct,
        });
    };
    for (i, (&v, ct)) in graph.outputs.iter().zip(cts).enumerate() {
        let Some(ct) = ct else { continue };
        assert!(
            ct.aval() == &graph.avals[v],
            "cotangent {i} is {} but the output it belongs to is {}; pass a cotangent of the output's shape and dtype",
            ct.aval(),
            graph.avals[v]
        );
        if value[v].is_some() {
            continue; // an output that does not depend on the linear inputs
        }
        accumulate(&mut ct_of[v], ct.clone());
    }
    for e in graph.eqns.iter().rev() {
        if e.outs.iter().all(|&v| value[v].is_some()) {
            continue;
        }
        let cts: Outs<Option<Tensor>> = small(e.outs.iter().map(|&v| ct_of[v].take()));
        if cts.iter().all(Option::is_none) {
            continue;
        }
        let lins: Vec<Lin> = e
            .inputs
            .iter()
            .map(|&v| match &value[v] {
                Some(t) => Lin::Const(t.clone()),
                None => Lin::Linear(graph.avals[v].clone()),
            })
            .collect();
        let in_cts = {
            let _origin = crate::core::context::transposing(e.origin);
            e.prim.transpose(&cts, &lins)
        };
        debug_assert_eq!(in_cts.len(), e.inputs.len(), "{}: one cotangent per input", e.prim.name());
        for ((&v, lin), ct) in e.inputs.iter().zip(&lins).zip(in_cts) {
            if let (Some(ct), true) = (ct, lin.is_linear()) {
                debug_assert!(
                    ct.aval() == &graph.avals[v],
                    "{}: transpose gave {} for {}",
                    e.prim.name(),
                    ct.aval(),
                    graph.avals[v]
                );
                accumulate(&mut ct_of[v], ct);
            }
        }
    }
    graph.inputs.iter().zip(known).map(|(&v, k)| if k.is_some() { None } else { ct_of[v].take() }).collect()
}
