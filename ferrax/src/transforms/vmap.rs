//! Vectorising map: `vmap` runs a function written for one example on a
//! whole batch at once, by pushing a batch axis through every primitive.

use std::panic::Location;
use std::rc::Rc;
use std::sync::Arc;

use crate::core::{bind_dyn, push_frame, Aval, FrameId, Outs, Primitive, Tensor, Trace, TracerKind};
use crate::prims::batching::move_axis;
use crate::tree::Tree;

/// The batch interpretation: a tracer is a value with (or without) a batch axis.
struct BatchTrace {
    size: usize,
}

impl Trace for BatchTrace {
    fn name(&self) -> &'static str {
        "vmap"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn process(&self, me: FrameId, prim: &Arc<dyn Primitive>, ins: &[Tensor], avals: Outs<Aval>) -> Outs<Tensor> {
        let (values, axes): (Vec<Tensor>, Vec<Option<usize>>) = ins
            .iter()
            .map(|x| match x.tracer_of(me) {
                Some(TracerKind::Batch { value, axis }) => (value.clone(), *axis),
                _ => (x.clone(), None),
            })
            .unzip();
        if axes.iter().all(Option::is_none) {
            return bind_dyn(prim.clone(), &values);
        }
        let (outs, out_axes) = prim.batch(&values, &axes, self.size);
        assert!(
            outs.len() == avals.len() && out_axes.len() == avals.len(),
            "internal error: the batch rule of {} gave {} outputs for {}",
            prim.name(),
            outs.len(),
            avals.len()
        );
        outs.into_iter()
            .zip(out_axes)
            .zip(avals)
            .map(|((out, axis), aval)| {
                let Some(axis) = axis else { return out };
                let mut logical = out.shape().to_vec();
                let mapped = logical.remove(axis);
                assert!(
                    mapped == self.size && logical == aval.shape && out.dtype() == aval.dtype,
                    "internal error: the batch rule of {} gave {} with batch axis {axis} for a logical {} (batch \
                     size {})",
                    prim.name(),
                    out.aval(),
                    aval,
                    self.size
                );
                Tensor::new_tracer(me, aval, TracerKind::Batch { value: out, axis: Some(axis) })
            })
            .collect()
    }
}

/// Resolves a possibly negative axis against `rank`.
fn resolve(axis: isize, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as isize } else { axis };
    (0..rank as isize).contains(&a).then_some(a as usize)
}

fn vmap_impl<I: Tree, O: Tree>(
    f: &impl Fn(&I) -> O,
    xs: &I,
    in_axes: &[Option<isize>],
    out_axes: &[isize],
    at: &Location,
) -> O {
    let leaves = xs.leaves();
    if in_axes.len() != leaves.len() {
        panic!(
            "vmap: in_axes has {} entries but the input has {} leaves; give one entry per flattened leaf (None for \
             unmapped) (vmap applied at {at})",
            in_axes.len(),
            leaves.len()
        );
    }
    let mut axes = Vec::with_capacity(leaves.len());
    let mut size: Option<(usize, usize, usize)> = None; // (size, leaf, axis)
    for (i, (leaf, ax)) in leaves.iter().zip(in_axes).enumerate() {
        let Some(ax) = *ax else {
            axes.push(None);
            continue;
        };
        let Some(a) = resolve(ax, leaf.rank()) else {
            if leaf.rank() == 0 {
                panic!(
                    "vmap: cannot map over axis {ax} of input leaf {i}, which is 0-d; pass None in in_axes to \
                     broadcast it (vmap applied at {at})"
                );
            }
            panic!(
                "vmap: axis {ax} is out of range for input leaf {i} of shape {:?} (vmap applied at {at})",
                leaf.shape()
            )
        };
        let n = leaf.shape()[a];
        match size {
            None => size = Some((n, i, a)),
            Some((m, j, b)) if m != n => panic!(
                "vmap: mapped sizes differ: input leaf {j} has size {m} along axis {b}, input leaf {i} has size {n} \
                 along axis {a} (vmap applied at {at})"
            ),
            _ => {}
        }
        axes.push(Some(a));
    }
    let Some((size, ..)) = size else {
        panic!("vmap: no input is mapped; give at least one in_axes entry that is not None (vmap applied at {at})");
    };
    let mut out = None;
    let batched = vmap_partial(
        |ins| {
            let y = f(&xs.with_leaves(ins.to_vec()));
            let leaves = y.leaves();
            out = Some(y);
            leaves
        },
        &leaves,
        &axes,
        size,
    );
    let out = out.expect("traced");
    if out_axes.len() != batched.len() && out_axes.len() != 1 {
        panic!(
            "vmap: out_axes has {} entries but the output has {} leaves; give one per flattened output leaf, or one \
             for all (vmap applied at {at})",
            out_axes.len(),
            batched.len()
        );
    }
    let results: Vec<Tensor> = batched
        .into_iter()
        .enumerate()
        .map(|(i, (value, axis))| {
            let want = out_axes[if out_axes.len() == 1 { 0 } else { i }];
            let rank = value.rank() + axis.is_none() as usize;
            let Some(to) = resolve(want, rank) else {
                panic!(
                    "vmap: out_axes entry {want} is out of range for output leaf {i} of rank {} (vmap applied at {at})",
                    rank - 1
                )
            };
            match axis {
                Some(a) => move_axis(&value, a, to),
                // An output that does not depend on a mapped input is the same for every member.
                None => {
                    let mut shape = value.shape().to_vec();
                    shape.insert(to, size);
                    value.expand_dims(to).broadcast_to(&shape)
                }
            }
        })
        .collect();
    out.with_leaves(results)
}

/// Vectorises `f` over axis 0 of every input leaf: `vmap(f)(&xs)` equals
/// stacking `f` applied to each slice `xs[i]`, with the batch on axis 0 of
/// every output leaf — computed in one pass, as batched primitives.
///
/// ```
/// # use ferrax::prelude::*;
/// let xs = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// let norms = vmap(|x: &Tensor| (x * x).sum().sqrt())(&xs);
/// assert_eq!(norms.shape(), &[2]);
/// ```
///
/// # Panics
/// When an input leaf is 0-d or the leaves' sizes along axis 0 differ; when
/// `f` reads tensor values (a batched value has no single value).
#[track_caller]
pub fn vmap<I: Tree, O: Tree>(f: impl Fn(&I) -> O) -> impl Fn(&I) -> O {
    let at = Location::caller();
    move |xs: &I| {
        let n = xs.leaves().len();
        vmap_impl(&f, xs, &vec![Some(0); n], &[0], at)
    }
}

/// [`vmap`] with chosen axes: `in_axes` has one entry per flattened input
/// leaf (`None`: the leaf is not mapped and is shared by every member),
/// `out_axes` one per output leaf (or one for all); negative axes count from
/// the end.
///
/// ```
/// # use ferrax::prelude::*;
/// let xs = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
/// let w = Tensor::from_vec(vec![10.0, 20.0], &[2]);
/// // Map the rows of xs (axis 0), share w, put the batch last.
/// let ys = vmap_axes(|p: &(Tensor, Tensor)| &p.0 * &p.1, &[Some(0), None], &[-1])(&(xs, w));
/// assert_eq!(ys.shape(), &[2, 3]);
/// ```
///
/// # Panics
/// When `in_axes` does not have one entry per leaf, an axis is out of
/// range, a mapped leaf is 0-d, or the mapped sizes differ.
#[track_caller]
pub fn vmap_axes<I: Tree, O: Tree>(
    f: impl Fn(&I) -> O,
    in_axes: &[Option<isize>],
    out_axes: &[isize],
) -> impl Fn(&I) -> O {
    let (in_axes, out_axes, at) = (in_axes.to_vec(), out_axes.to_vec(), Location::caller());
    move |xs: &I| vmap_impl(&f, xs, &in_axes, &out_axes, at)
}

/// `f` applied to flat operands batched along `axes` (`None`: the same for
/// every member) of length `size`; each output with its batch axis, `None`
/// for an output that does not depend on a batched operand. What the
/// control-flow primitives batch their bodies with: a loop's carry that
/// stays unbatched must not be broadcast.
pub(crate) fn vmap_partial(
    f: impl FnOnce(&[Tensor]) -> Vec<Tensor>,
    ins: &[Tensor],
    axes: &[Option<usize>],
    size: usize,
) -> Vec<(Tensor, Option<usize>)> {
    let guard = push_frame(Rc::new(BatchTrace { size }));
    let me = guard.frame();
    let traced: Vec<Tensor> = ins
        .iter()
        .zip(axes)
        .map(|(x, axis)| match axis {
            None => x.clone(),
            Some(a) => {
                let mut shape = x.shape().to_vec();
                shape.remove(*a);
                Tensor::new_tracer(
                    me,
                    Aval::new(x.dtype(), &shape),
                    TracerKind::Batch { value: x.clone(), axis: Some(*a) },
                )
            }
        })
        .collect();
    let out = f(&traced)
        .iter()
        .map(|y| match y.tracer_of(me) {
            Some(TracerKind::Batch { value, axis }) => (value.clone(), *axis),
            _ => (y.clone(), None),
        })
        .collect();
    drop(guard);
    out
}
