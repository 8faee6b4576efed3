//! Helpers shared by the batch (vmap) rules.

use crate::core::{bind, SingleOutput, Tensor};

/// The physical axis of logical axis `a` in a value whose batch axis is `bd`.
pub(crate) fn phys(a: usize, bd: usize) -> usize {
    if a >= bd {
        a + 1
    } else {
        a
    }
}

/// `x` with axis `from` moved to position `to`, the others in order.
pub(crate) fn move_axis(x: &Tensor, from: usize, to: usize) -> Tensor {
    if from == to {
        return x.clone();
    }
    let mut perm: Vec<usize> = (0..x.rank()).filter(|&d| d != from).collect();
    perm.insert(to, from);
    x.permute(&perm)
}

/// `x` with its batch axis first; an unbatched `x` is broadcast to `size` copies.
pub(crate) fn batch_first(x: &Tensor, axis: Option<usize>, size: usize) -> Tensor {
    match axis {
        Some(a) => move_axis(x, a, 0),
        None => {
            let mut shape = vec![size];
            shape.extend_from_slice(x.shape());
            x.expand_dims(0).broadcast_to(&shape)
        }
    }
}

/// The batch rule of an elementwise primitive whose operands broadcast
/// numpy-style. The output keeps the batch axis where a full-rank batched
/// operand already has it, so chains of elementwise ops never copy to move
/// it: other batched operands are padded with leading size-1 axes and moved
/// there (a copy only when their batch axis is elsewhere), and unbatched
/// operands get a size-1 axis inserted where the batch axis falls among
/// their own axes (a reshape, never a copy).
pub(crate) fn elementwise<P: SingleOutput + Clone>(
    prim: &P,
    x: &[Tensor],
    axes: &[Option<usize>],
) -> (Tensor, Option<usize>) {
    let logical_rank = |v: &Tensor, a: &Option<usize>| v.rank() - a.is_some() as usize;
    let rank = x.iter().zip(axes).map(|(v, a)| logical_rank(v, a)).max().unwrap_or(0);
    let bd = x.iter().zip(axes).find_map(|(v, a)| a.filter(|_| logical_rank(v, a) == rank)).unwrap_or(0);
    let args: Vec<Tensor> = x
        .iter()
        .zip(axes)
        .map(|(v, a)| {
            let lead = rank - logical_rank(v, a);
            match a {
                Some(a) => {
                    let mut shape = vec![1; lead];
                    shape.extend_from_slice(v.shape());
                    move_axis(&v.reshape(&shape), a + lead, bd)
                }
                None if bd > lead => {
                    let mut shape = v.shape().to_vec();
                    shape.insert(bd - lead, 1);
                    v.reshape(&shape)
                }
                None => v.clone(),
            }
        })
        .collect();
    (bind(prim.clone(), &args), Some(bd))
}

/// The batch rule of a primitive with one operand that acts on each element
/// (or each logical axis it is told about) independently: the batch axis stays put.
pub(crate) fn unary<P: SingleOutput + Clone>(
    prim: &P,
    x: &[Tensor],
    axes: &[Option<usize>],
) -> (Tensor, Option<usize>) {
    (bind(prim.clone(), std::slice::from_ref(&x[0])), axes[0])
}
