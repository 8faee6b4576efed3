//! Forward mode: `jvp` pushes tangents through a function alongside its values.

use std::rc::Rc;
use std::sync::Arc;

use crate::core::{bind_dyn, context, push_frame, small, Aval, FrameId, Outs, Primitive, Tensor, Trace, TracerKind};
use crate::tree::Tree;

/// The JVP interpretation: a tracer is a (primal, tangent) pair.
struct JvpTrace;

impl Trace for JvpTrace {
    fn name(&self) -> &'static str {
        "jvp"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn process(&self, me: FrameId, prim: &Arc<dyn Primitive>, ins: &[Tensor], avals: Outs<Aval>) -> Outs<Tensor> {
        jvp_step(me, prim, ins, avals, true)
    }
}

/// One primitive under a JVP frame `me`: the primal outputs, and — when
/// `with_tangent` — their tangents from the primitive's rule, as tracers of
/// `me`. Shared by `jvp`, `linearize` and the tape (which turns tangents off
/// under `no_grad`).
pub(crate) fn jvp_step(
    me: FrameId,
    prim: &Arc<dyn Primitive>,
    ins: &[Tensor],
    avals: Outs<Aval>,
    with_tangent: bool,
) -> Outs<Tensor> {
    let mut primals: smallvec::SmallVec<[Tensor; 4]> = smallvec::SmallVec::new();
    let mut tangents: smallvec::SmallVec<[Option<Tensor>; 4]> = smallvec::SmallVec::new();
    for x in ins {
        let (p, t) = unpack(x, me);
        primals.push(p);
        tangents.push(t);
    }
    if !with_tangent {
        let _primal = context::computing_primal_of(me.level);
        return bind_dyn(prim.clone(), &primals);
    }
    let (ans, extra) = {
        let _primal = context::computing_primal_of(me.level);
        match prim.jvp_outputs(&primals, &tangents) {
            Some(mut all) => {
                let extra = all.split_off(avals.len());
                (small(all), extra)
            }
            None => (bind_dyn(prim.clone(), &primals), Vec::new()),
        }
    };
    let out_tangents = {
        let _rule = context::applying_rule_at(me.level);
        if extra.is_empty() {
            prim.jvp(&primals, &tangents, &ans)
        } else {
            let all: Vec<Tensor> = ans.iter().cloned().chain(extra).collect();
            prim.jvp(&primals, &tangents, &all)
        }
    };
    assert!(
        out_tangents.len() == ans.len(),
        "internal error: the jvp rule of {} gave {} tangents for {} outputs",
        prim.name(),
        out_tangents.len(),
        ans.len()
    );
    small(ans.into_iter().zip(out_tangents).zip(avals).map(|((primal, tangent), aval)| match tangent {
        // A zero tangent needs no tracer: the value is a constant to this frame.
        None => primal,
        Some(tangent) => {
            assert!(
                crate::core::same_aval(tangent.aval(), &aval),
                "internal error: the jvp rule of {} gave a tangent {} for an output {}",
                prim.name(),
                tangent.aval(),
                aval
            );
            Tensor::new_tracer(me, aval, TracerKind::Jvp { primal, tangent })
        }
    }))
}

/// Splits a value seen by frame `me` into its primal and tangent (`None`: zero).
pub(crate) fn unpack(x: &Tensor, me: FrameId) -> (Tensor, Option<Tensor>) {
    match x.tracer_of(me) {
        Some(TracerKind::Jvp { primal, tangent }) => (primal.clone(), Some(tangent.clone())),
        _ => (x.clone(), None),
    }
}

/// Runs `f` at `primals` pushing `tangents` through it (forward mode):
/// returns `f(primals)` and the directional derivative `J · tangents`,
/// both with the structure of `f`'s output.
///
/// Tangents of integer or bool inputs are ignored (their derivative is
/// zero); outputs that do not depend on the inputs get zero tangents.
///
/// ```
/// # use ferrax::prelude::*;
/// // d/dx sin(x) at 0 in direction 1 is cos(0) = 1
/// let (y, dy) = jvp(|x: &Tensor| x.sin(), &Tensor::scalar(0.0), &Tensor::scalar(1.0));
/// assert_eq!((y.item(), dy.item()), (0.0, 1.0));
/// ```
///
/// # Panics
/// When `tangents` has another structure than `primals`, or a tangent's
/// shape or dtype differs from its primal's.
#[track_caller]
pub fn jvp<I: Tree, O: Tree>(f: impl FnOnce(&I) -> O, primals: &I, tangents: &I) -> (O, O) {
    let xs = primals.leaves();
    let ts = tangents.leaves();
    assert!(
        xs.len() == ts.len(),
        "jvp: primals have {} leaves but tangents have {}; pass tangents of the same structure",
        xs.len(),
        ts.len()
    );
    for (i, (x, t)) in xs.iter().zip(&ts).enumerate() {
        assert!(
            crate::core::same_aval(x.aval(), t.aval()) || !x.dtype().is_float(),
            "jvp: tangent {i} is {} but its primal is {}; a tangent must have its primal's shape and dtype",
            t.aval(),
            x.aval()
        );
    }
    let mut out = None;
    let tangents: Vec<Option<Tensor>> = ts.into_iter().map(Some).collect();
    let (ys, dys) = jvp_partial(
        |x| {
            let y = f(&primals.with_leaves(x.to_vec()));
            let leaves = y.leaves();
            out = Some(y);
            leaves
        },
        &xs,
        &tangents,
    );
    let out = out.expect("traced");
    // An output that does not depend on the inputs has a zero tangent.
    let dys: Vec<Tensor> = ys.iter().zip(dys).map(|(y, t)| t.unwrap_or_else(|| y.zeros_like())).collect();
    (out.with_leaves(ys), out.with_leaves(dys))
}

/// [`jvp`] on flat operands with symbolic zeros: only the inputs whose
/// tangent is `Some` carry one, and an output that does not depend on them
/// (or only through integer or piecewise-constant operations) gets `None`.
/// What the control-flow primitives stage their bodies' derivatives with.
pub(crate) fn jvp_partial(
    f: impl FnOnce(&[Tensor]) -> Vec<Tensor>,
    primals: &[Tensor],
    tangents: &[Option<Tensor>],
) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    let guard = push_frame(Rc::new(JvpTrace));
    let me = guard.frame();
    let traced: Vec<Tensor> = primals
        .iter()
        .zip(tangents)
        .map(|(x, t)| match t {
            Some(t) if x.dtype().is_float() => {
                Tensor::new_tracer(me, x.aval().clone(), TracerKind::Jvp { primal: x.clone(), tangent: t.clone() })
            }
            _ => x.clone(),
        })
        .collect();
    let out = f(&traced);
    let split = out.iter().map(|y| unpack(y, me)).unzip();
    drop(guard);
    split
}
