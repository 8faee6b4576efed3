//! Jacobians and Hessians, built from vmap over the rows (reverse mode) or
//! columns (forward mode) of an identity.

use crate::core::Tensor;
use crate::tree::Tree;

use super::jvp::jvp;
use super::linearize::{grad, vjp};
use super::vmap::{vmap, vmap_axes};

/// The `n × n` identity reshaped to `[n] ++ shape`: basis vectors of a leaf, stacked.
fn basis(t: &Tensor) -> Tensor {
    let n = t.size();
    let mut shape = vec![n];
    shape.extend_from_slice(t.shape());
    Tensor::eye(n, t.dtype()).reshape(&shape)
}

/// A stack `[n] ++ out` of directional derivatives as `out ++ leaf`.
fn columns_to_jacobian(cols: &Tensor, leaf: &Tensor) -> Tensor {
    let rank = cols.rank();
    let perm: Vec<usize> = (1..rank).chain(std::iter::once(0)).collect();
    let mut shape = cols.shape()[1..].to_vec();
    shape.extend_from_slice(leaf.shape());
    cols.permute(&perm).reshape(&shape)
}

/// The Jacobian by forward mode: one `jvp` per input element, all at once
/// under `vmap`. For `f: &Tensor -> Tensor` the result has shape
/// `f(x).shape ++ x.shape`; for a tree of inputs, a tree of such Jacobians,
/// one per leaf. Cheaper than [`jacrev`] when there are fewer inputs than outputs.
///
/// ```
/// # use ferrax::prelude::*;
/// let j = jacfwd(|x: &Tensor| x * x)(&Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// assert_eq!(j.to_vec::<f64>(), vec![2.0, 0.0, 0.0, 4.0]);
/// ```
pub fn jacfwd<I: Tree>(f: impl Fn(&I) -> Tensor) -> impl Fn(&I) -> I {
    move |x: &I| {
        let leaves = x.leaves();
        let zeros: Vec<Tensor> = leaves.iter().map(Tensor::zeros_like).collect();
        let jacobians = (0..leaves.len())
            .map(|j| {
                // Tangents: the basis of leaf j (mapped), zeros elsewhere (shared).
                let mut tangents = zeros.clone();
                if leaves[j].size() == 1 {
                    // One column: a plain jvp, no batch to map over.
                    tangents[j] = Tensor::ones(leaves[j].shape(), leaves[j].dtype());
                    let col = jvp(&f, x, &x.with_leaves(tangents)).1;
                    let mut shape = col.shape().to_vec();
                    shape.extend_from_slice(leaves[j].shape());
                    return col.reshape(&shape);
                }
                tangents[j] = basis(&leaves[j]);
                let in_axes: Vec<Option<isize>> = (0..leaves.len()).map(|i| (i == j).then_some(0)).collect();
                let cols =
                    vmap_axes(|t: &Vec<Tensor>| jvp(&f, x, &x.with_leaves(t.clone())).1, &in_axes, &[0])(&tangents);
                columns_to_jacobian(&cols, &leaves[j])
            })
            .collect();
        x.with_leaves(jacobians)
    }
}

/// The Jacobian by reverse mode: one pullback per output element, all at
/// once under `vmap`. Shapes as [`jacfwd`]. Cheaper when there are fewer
/// outputs than inputs.
///
/// ```
/// # use ferrax::prelude::*;
/// let j = jacrev(|x: &Tensor| x.sum_axes(&[0], false))(&Tensor::ones(&[2, 3], DType::F64));
/// assert_eq!(j.shape(), &[3, 2, 3]);
/// ```
pub fn jacrev<I: Tree>(f: impl Fn(&I) -> Tensor) -> impl Fn(&I) -> I {
    move |x: &I| {
        let (y, pullback) = vjp(&f, x);
        // One row (a scalar function): a plain pullback, no batch to map over.
        let (rows, lead) = if y.size() == 1 {
            (pullback(&Tensor::ones(y.shape(), y.dtype())), 0)
        } else {
            (vmap(&pullback)(&basis(&y)), 1)
        };
        rows.map_leaves(|r| {
            let mut shape = y.shape().to_vec();
            shape.extend_from_slice(&r.shape()[lead..]);
            r.reshape(&shape)
        })
    }
}

/// The Hessian of a scalar function, `jacfwd(jacrev(f))`: shape `x.shape ++ x.shape`.
///
/// ```
/// # use ferrax::prelude::*;
/// let h = hessian(|x: &Tensor| (x * x * x).sum())(&Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// assert_eq!(h.to_vec::<f64>(), vec![6.0, 0.0, 0.0, 12.0]);
/// ```
pub fn hessian(f: impl Fn(&Tensor) -> Tensor) -> impl Fn(&Tensor) -> Tensor {
    jacfwd(jacrev(f))
}

/// The Hessian-vector product `H(x) v` of a scalar function, forward over
/// reverse: the jvp of the gradient. Costs a small multiple of one gradient.
///
/// ```
/// # use ferrax::prelude::*;
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let hv = hvp(|x: &Tensor| (x * x * x).sum(), &x, &Tensor::from_vec(vec![1.0, 1.0], &[2]));
/// assert_eq!(hv.to_vec::<f64>(), vec![6.0, 12.0]);
/// ```
pub fn hvp<I: Tree>(f: impl Fn(&I) -> Tensor, x: &I, v: &I) -> I {
    jvp(grad(f), x, v).1
}
