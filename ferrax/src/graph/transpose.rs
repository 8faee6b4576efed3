//! Transposition of a linear graph: the backward pass of reverse mode.

use crate::core::{bind_dyn, small, Lin, Outs, Tensor};

use super::{Eqn, Graph};

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
    transpose_with(graph, known, cts, None)
}

/// [`backward_pass`] that hands each input's cotangent to `ready(input,
/// cotangent)` as soon as it is final, instead of returning them all at the
/// end: an input's cotangent is complete once the walk has passed the first
/// equation that reads it, so the last layers' gradients of a network are
/// ready while the first layers' are still being computed. `ready` is
/// called exactly once for every input (`None`: zero), in the order they
/// become final. What data-parallel training sends to the other ranks while
/// the backward pass goes on (PyTorch's gradient hooks).
#[track_caller]
pub(crate) fn backward_pass_each(graph: &Graph, cts: &[Option<Tensor>], ready: &mut dyn FnMut(usize, Option<Tensor>)) {
    let left = transpose_with(graph, &vec![None; graph.inputs.len()], cts, Some(ready));
    debug_assert!(left.iter().all(Option::is_none), "every input's cotangent was handed over");
}

/// The walk of [`transpose_linear`]; with `ready`, each linear input's
/// cotangent goes there once final (and is `None` in the result).
#[track_caller]
fn transpose_with(
    graph: &Graph,
    known: &[Option<Tensor>],
    cts: &[Option<Tensor>],
    mut ready: Option<&mut dyn FnMut(usize, Option<Tensor>)>,
) -> Vec<Option<Tensor>> {
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
    // final_after[i]: the linear inputs whose last cotangent comes from
    // equation i, the first to read them (the walk goes backwards).
    let mut final_after: Vec<Vec<usize>> = Vec::new();
    if let Some(ready) = ready.as_mut() {
        let mut first_read: Vec<Option<usize>> = vec![None; graph.avals.len()];
        for (i, e) in graph.eqns.iter().enumerate().rev() {
            for &v in &e.inputs {
                first_read[v] = Some(i);
            }
        }
        final_after = vec![Vec::new(); graph.eqns.len()];
        for (p, (&v, k)) in graph.inputs.iter().zip(known).enumerate() {
            match (k, first_read[v]) {
                (Some(_), _) => {}
                (None, Some(i)) => final_after[i].push(p),
                (None, None) => ready(p, ct_of[v].take()),
            }
        }
    }
    for (i, e) in graph.eqns.iter().enumerate().rev() {
        transpose_eqn(graph, e, &value, &mut ct_of);
        if let Some(ready) = ready.as_mut() {
            for &p in &final_after[i] {
                ready(p, ct_of[graph.inputs[p]].take());
            }
        }
    }
    graph.inputs.iter().zip(known).map(|(&v, k)| if k.is_some() { None } else { ct_of[v].take() }).collect()
}

/// Adds `ct` into `slot` (a sum of the cotangents fanning in to a variable).
fn accumulate(slot: &mut Option<Tensor>, ct: Tensor) {
    *slot = Some(match slot.take() {
        Some(prev) => prev + ct,
        None => ct,
    });
}

/// Transposes one equation: its outputs' cotangents (taken from `ct_of`)
/// become its linear inputs' (added into `ct_of`).
fn transpose_eqn(graph: &Graph, e: &Eqn, value: &[Option<Tensor>], ct_of: &mut [Option<Tensor>]) {
    if e.outs.iter().all(|&v| value[v].is_some()) {
        return;
    }
    let cts: Outs<Option<Tensor>> = small(e.outs.iter().map(|&v| ct_of[v].take()));
    if cts.iter().all(Option::is_none) {
        return;
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

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::transforms::value_and_grad_streamed;

    /// Each gradient is handed over once, as soon as it is final: an unused
    /// input's (zero) first, then the layers' from the last to the first,
    /// with the bits of the whole gradient.
    #[test]
    fn each_gradient_is_handed_over_once_final_last_layer_first() {
        let x = Tensor::randn(&[5, 4], DType::F64, 9);
        let ws: Vec<Tensor> = (0..4).map(|i| Tensor::randn(&[4, 4], DType::F64, i)).collect();
        let f = |ws: &Vec<Tensor>| ws[..3].iter().fold(x.clone(), |h, w| h.matmul(w).tanh()).sum();
        let (value, want) = value_and_grad(f)(&ws);
        let mut got = Vec::new();
        let (v, whole) = value_and_grad_streamed(f, &ws, |_| true, &mut |i, g| got.push((i, g)));
        assert!(whole.is_none());
        assert_eq!(v.item(), value.item());
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3, 2, 1, 0]);
        for (i, g) in got {
            assert!(g.to_array().bit_eq(&want[i].to_array()), "leaf {i}");
        }
        assert_eq!(want[3].abs().max().item(), 0.0);
    }
}
