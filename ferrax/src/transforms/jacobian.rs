//! Jacobians and Hessians, built from vmap over the rows (reverse mode) or
//! columns (forward mode) of an identity.

use crate::core::Tensor;
use crate::tree::Tree;

use super::jvp::jvp;
use super::linearize::{grad, vjp};
use super::vmap::vmap_axes;

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

/// Output structures whose Jacobians can be taken: a Jacobian of
/// `f: &I -> O` has `O`'s structure with each leaf replaced by a tree of
/// `I`'s structure — one block per (output leaf, input leaf) pair, of shape
/// `out.shape ++ in.shape` — as JAX nests them. Implemented for `Tensor`
/// (whose Jacobian is just an `I`) and for the containers of [`Tree`]
/// (`Vec`, arrays, tuples, `Option`, `BTreeMap<String, _>`, `Box`).
pub trait JacobianOut<I>: Tree {
    /// `Self` with every leaf replaced by an `I`.
    type Jacobian;

    /// The Jacobian from one `I` per output leaf, in flattening order.
    fn nest(&self, blocks: &mut dyn Iterator<Item = I>) -> Self::Jacobian;
}

impl<I> JacobianOut<I> for Tensor {
    type Jacobian = I;
    fn nest(&self, blocks: &mut dyn Iterator<Item = I>) -> I {
        blocks.next().expect("one block per output leaf")
    }
}

impl<I, T: JacobianOut<I>> JacobianOut<I> for Vec<T> {
    type Jacobian = Vec<T::Jacobian>;
    fn nest(&self, blocks: &mut dyn Iterator<Item = I>) -> Self::Jacobian {
        self.iter().map(|t| t.nest(blocks)).collect()
    }
}

impl<I, T: JacobianOut<I>, const N: usize> JacobianOut<I> for [T; N] {
    type Jacobian = [T::Jacobian; N];
    fn nest(&self, blocks: &mut dyn Iterator<Item = I>) -> Self::Jacobian {
        std::array::from_fn(|i| self[i].nest(blocks))
    }
}

impl<I, T: JacobianOut<I>> JacobianOut<I> for Option<T> {
    type Jacobian = Option<T::Jacobian>;
    fn nest(&self, blocks: &mut dyn Iterator<Item = I>) -> Self::Jacobian {
        self.as_ref().map(|t| t.nest(blocks))
    }
}

impl<I, T: JacobianOut<I>> JacobianOut<I> for Box<T> {
    type Jacobian = Box<T::Jacobian>;
    fn nest(&self, blocks: &mut dyn Iterator<Item = I>) -> Self::Jacobian {
        Box::new((**self).nest(blocks))
    }
}

impl<I, T: JacobianOut<I>> JacobianOut<I> for std::collections::BTreeMap<String, T> {
    type Jacobian = std::collections::BTreeMap<String, T::Jacobian>;
    fn nest(&self, blocks: &mut dyn Iterator<Item = I>) -> Self::Jacobian {
        self.iter().map(|(k, t)| (k.clone(), t.nest(blocks))).collect()
    }
}

macro_rules! tuple_jacobian {
    ($($T:ident $i:tt),+) => {
        impl<I, $($T: JacobianOut<I>),+> JacobianOut<I> for ($($T,)+) {
            type Jacobian = ($($T::Jacobian,)+);
            fn nest(&self, blocks: &mut dyn Iterator<Item = I>) -> Self::Jacobian {
                ($(self.$i.nest(blocks),)+)
            }
        }
    };
}

tuple_jacobian!(A 0);
tuple_jacobian!(A 0, B 1);
tuple_jacobian!(A 0, B 1, C 2);
tuple_jacobian!(A 0, B 1, C 2, D 3);
tuple_jacobian!(A 0, B 1, C 2, D 3, E 4);
tuple_jacobian!(A 0, B 1, C 2, D 3, E 4, F 5);

/// `blocks[k][j]` (output leaf k, input leaf j) nested as `out`'s structure of `x`'s.
fn nest_blocks<I: Tree, O: JacobianOut<I>>(out: &O, x: &I, blocks: Vec<Vec<Tensor>>) -> O::Jacobian {
    let mut per_output = blocks.into_iter().map(|row| x.with_leaves(row));
    out.nest(&mut per_output)
}

/// The Jacobian by forward mode: one `jvp` per input element, all at once
/// under `vmap`. For `f: &Tensor -> Tensor` the result has shape
/// `f(x).shape ++ x.shape`; for trees, blocks nested as [`JacobianOut`]
/// describes. Cheaper than [`jacrev`] when there are fewer inputs than outputs.
///
/// ```
/// # use ferrax::prelude::*;
/// let j = jacfwd(|x: &Tensor| x * x)(&Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// assert_eq!(j.to_vec::<f64>(), vec![2.0, 0.0, 0.0, 4.0]);
/// // A pair of outputs of a pair of inputs: ((∂a/∂x, ∂a/∂y), (∂b/∂x, ∂b/∂y)).
/// let f = |p: &(Tensor, Tensor)| (&p.0 * &p.1, p.0.sin());
/// let ((ax, ay), (bx, by)) = jacfwd(f)(&(Tensor::scalar(2.0), Tensor::scalar(3.0)));
/// assert_eq!((ax.item(), ay.item(), by.item()), (3.0, 2.0, 0.0));
/// # let _ = bx;
/// ```
pub fn jacfwd<I: Tree, O: JacobianOut<I>>(f: impl Fn(&I) -> O) -> impl Fn(&I) -> O::Jacobian {
    move |x: &I| {
        let leaves = x.leaves();
        let zeros: Vec<Tensor> = leaves.iter().map(Tensor::zeros_like).collect();
        let mut out_template = None;
        // columns[j][k]: the derivative of output leaf k along every element of input leaf j.
        let columns: Vec<Vec<Tensor>> = (0..leaves.len())
            .map(|j| {
                // Tangents: the basis of leaf j (mapped), zeros elsewhere (shared).
                let mut tangents = zeros.clone();
                let leaf = &leaves[j];
                if leaf.size() == 1 {
                    // One column: a plain jvp, no batch to map over.
                    tangents[j] = Tensor::ones(leaf.shape(), leaf.dtype());
                    let (y, col) = jvp(&f, x, &x.with_leaves(tangents));
                    out_template.get_or_insert(y);
                    return col.leaves().iter().map(|c| with_trailing(c, 0, leaf.shape())).collect();
                }
                tangents[j] = basis(leaf);
                let in_axes: Vec<Option<isize>> = (0..leaves.len()).map(|i| (i == j).then_some(0)).collect();
                let cols =
                    vmap_axes(|t: &Vec<Tensor>| jvp(&f, x, &x.with_leaves(t.clone())).1, &in_axes, &[0])(&tangents);
                cols.leaves().iter().map(|c| columns_to_jacobian(c, leaf)).collect()
            })
            .collect();
        let out = out_template.unwrap_or_else(|| f(x));
        let n_out = out.leaves().len();
        let blocks: Vec<Vec<Tensor>> =
            (0..n_out).map(|k| columns.iter().map(|per_input| per_input[k].clone()).collect()).collect();
        nest_blocks(&out, x, blocks)
    }
}

/// `t` (whose first `lead` axes are dropped) with `trailing` appended to its shape.
fn with_trailing(t: &Tensor, lead: usize, trailing: &[usize]) -> Tensor {
    let mut shape = t.shape()[lead..].to_vec();
    shape.extend_from_slice(trailing);
    t.reshape(&shape)
}

/// The Jacobian by reverse mode: one pullback per output element, all at
/// once under `vmap`. Shapes and nesting as [`jacfwd`]. Cheaper when there
/// are fewer outputs than inputs.
///
/// ```
/// # use ferrax::prelude::*;
/// let j = jacrev(|x: &Tensor| x.sum_axes(&[0], false))(&Tensor::ones(&[2, 3], DType::F64));
/// assert_eq!(j.shape(), &[3, 2, 3]);
/// ```
pub fn jacrev<I: Tree, O: JacobianOut<I>>(f: impl Fn(&I) -> O) -> impl Fn(&I) -> O::Jacobian {
    move |x: &I| {
        let (y, pullback) = vjp(&f, x);
        let outs = y.leaves();
        let zeros: Vec<Tensor> = outs.iter().map(Tensor::zeros_like).collect();
        let blocks = outs
            .iter()
            .enumerate()
            .map(|(k, out)| {
                let mut cts = zeros.clone();
                // One row (a scalar output leaf): a plain pullback, no batch to map over.
                let (rows, lead) = if out.size() == 1 {
                    cts[k] = Tensor::ones(out.shape(), out.dtype());
                    (pullback(&y.with_leaves(cts)), 0)
                } else {
                    cts[k] = basis(out);
                    let in_axes: Vec<Option<isize>> = (0..outs.len()).map(|i| (i == k).then_some(0)).collect();
                    let rows = vmap_axes(|c: &Vec<Tensor>| pullback(&y.with_leaves(c.clone())), &in_axes, &[0])(&cts);
                    (rows, 1)
                };
                rows.leaves()
                    .iter()
                    .map(|r| {
                        let mut shape = out.shape().to_vec();
                        shape.extend_from_slice(&r.shape()[lead..]);
                        r.reshape(&shape)
                    })
                    .collect()
            })
            .collect();
        nest_blocks(&y, x, blocks)
    }
}

/// The Hessian of a scalar function, `jacfwd(jacrev(f))`: shape
/// `x.shape ++ x.shape`; for a tree of inputs, blocks `∂²f/∂xᵢ∂xⱼ` nested
/// as `I` of `I`.
///
/// ```
/// # use ferrax::prelude::*;
/// let h = hessian(|x: &Tensor| (x * x * x).sum())(&Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// assert_eq!(h.to_vec::<f64>(), vec![6.0, 0.0, 0.0, 12.0]);
/// let h = hessian(|p: &(Tensor, Tensor)| &p.0 * &p.0 * &p.1)(&(Tensor::scalar(2.0), Tensor::scalar(3.0)));
/// assert_eq!((h.0 .0.item(), h.0 .1.item(), h.1 .1.item()), (6.0, 4.0, 0.0));
/// ```
pub fn hessian<I: JacobianOut<I>>(f: impl Fn(&I) -> Tensor) -> impl Fn(&I) -> I::Jacobian {
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
