//! The collectives as primitives, so they differentiate, batch and stage
//! like any operation (JAX's `psum`, `all_gather`, `psum_scatter`).
//!
//! Differentiating through them takes the objective to be the sum of the
//! ranks' results, as JAX does: the transpose of a sum across ranks is a
//! sum across ranks, of a gather a reduce-scatter, and of a reduce-scatter
//! a gather.

use std::fmt;

use crate::array::{Array, Aval};
use crate::core::{bind, bind_all, bind_all_owned, Kind, Lin, Outs, Param, Params, Primitive, SingleOutput, Tensor};
use crate::prims::batching::move_axis;
use crate::tree::Tree;

use super::{CommError, Reduction, SharedComm};

/// The communicator's identity as a parameter: two primitives are equal
/// only over the same group.
fn id(comm: &SharedComm) -> Param {
    Param::Id(std::sync::Arc::as_ptr(comm) as *const () as usize)
}

/// The names of the primitives that communicate: [`AllReduce`],
/// [`AllGather`], [`ReduceScatter`].
pub(crate) const COLLECTIVES: [&str; 3] = [PSUM, ALL_GATHER, PSUM_SCATTER];
const PSUM: &str = "psum";
const ALL_GATHER: &str = "all_gather";
const PSUM_SCATTER: &str = "psum_scatter";

/// Inside a traced or evaluated program there is no `Result` to return.
fn or_panic<T>(r: Result<T, CommError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The batch rule of a collective along an axis: the operand's batch axis
/// goes first and the collective (made by `along`) runs along the axis
/// after it.
fn batch_along<P: SingleOutput>(
    x: &[Tensor],
    axes: &[Option<usize>],
    along: impl FnOnce(usize) -> P,
    axis: usize,
) -> (Tensor, Option<usize>) {
    let b = axes[0].expect("batch rules see a batched operand");
    (bind(along(axis + 1), &[move_axis(&x[0], b, 0)]), Some(0))
}

/// The sum of every rank's operand, for each of its operands (JAX's
/// `psum` of several arrays): one collective per bucket of arrays of one
/// dtype, each array read and written in place where the transport can.
#[derive(Clone)]
pub struct AllReduce {
    /// The group.
    pub comm: SharedComm,
}

impl fmt::Debug for AllReduce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllReduce({:?})", self.comm)
    }
}

/// `Name(group, axis n)`: the communicator is shown by its rank and size.
macro_rules! debug_with_axis {
    ($($t:ident),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?}, axis {})", stringify!($t), self.comm, self.axis)
            }
        }
    )*};
}
debug_with_axis!(AllGather, ReduceScatter);

impl Primitive for AllReduce {
    fn name(&self) -> &'static str {
        PSUM
    }
    fn params(&self) -> Params {
        vec![("group", id(&self.comm))]
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    fn shape(&self, ins: &[&Aval]) -> Outs<Aval> {
        ins.iter()
            .map(|&a| {
                crate::prims::expect_numeric(PSUM, a);
                a.clone()
            })
            .collect()
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        self.eval_owned(ins.iter().map(|&x| x.clone()).collect())
    }
    fn eval_owned(&self, ins: Vec<Array>) -> Outs<Array> {
        or_panic(super::reduce_in_buckets(&*self.comm, ins, Reduction::Sum)).into_iter().collect()
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &[Tensor]) -> Outs<Option<Tensor>> {
        self.sum_present(t)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        (bind_all(self.clone(), x), axes.iter().copied().collect())
    }
    fn transpose(&self, cts: &[Option<Tensor>], _ins: &[Lin]) -> Vec<Option<Tensor>> {
        self.sum_present(cts).into_vec()
    }
}

impl AllReduce {
    /// The tensors that are present summed across ranks, in one
    /// collective; `None` (a zero) stays `None`. Every rank runs the same
    /// program, so every rank has the same ones present.
    fn sum_present(&self, xs: &[Option<Tensor>]) -> Outs<Option<Tensor>> {
        let present: Vec<Tensor> = xs.iter().flatten().cloned().collect();
        if present.is_empty() {
            return xs.iter().map(|_| None).collect();
        }
        let mut summed = bind_all(self.clone(), &present).into_iter();
        xs.iter().map(|x| x.as_ref().and_then(|_| summed.next())).collect()
    }
}

/// Every rank's operand concatenated along `axis`.
#[derive(Clone)]
pub struct AllGather {
    /// The group.
    pub comm: SharedComm,
    /// The axis the parts are joined along.
    pub axis: usize,
}

impl SingleOutput for AllGather {
    fn name(&self) -> &'static str {
        ALL_GATHER
    }
    fn params(&self) -> Params {
        vec![("group", id(&self.comm)), ("axis", Param::Usize(self.axis))]
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let a = ins[0];
        assert!(self.axis < a.rank(), "all_gather: axis {} is out of range for {a}", self.axis);
        let mut shape = a.shape.clone();
        shape[self.axis] *= self.comm.size();
        Aval::new(a.dtype, &shape)
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        or_panic(self.comm.all_gather(ins[0], self.axis))
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(bind(self.clone(), &[t[0].clone()?]))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        batch_along(x, axes, |axis| AllGather { comm: self.comm.clone(), axis }, self.axis)
    }
    fn transpose(&self, ct: &Tensor, _ins: &[Lin]) -> Vec<Option<Tensor>> {
        vec![Some(bind(ReduceScatter { comm: self.comm.clone(), axis: self.axis }, std::slice::from_ref(ct)))]
    }
}

/// The sum of every rank's operand, this rank keeping its slice along `axis`.
#[derive(Clone)]
pub struct ReduceScatter {
    /// The group.
    pub comm: SharedComm,
    /// The axis that is split among the ranks.
    pub axis: usize,
}

impl SingleOutput for ReduceScatter {
    fn name(&self) -> &'static str {
        PSUM_SCATTER
    }
    fn params(&self) -> Params {
        vec![("group", id(&self.comm)), ("axis", Param::Usize(self.axis))]
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let (a, n) = (ins[0], self.comm.size());
        crate::prims::expect_numeric(PSUM_SCATTER, a);
        assert!(
            self.axis < a.rank() && a.shape[self.axis] % n == 0,
            "psum_scatter: axis {} of {a} must split into {n} equal parts, one per rank",
            self.axis
        );
        let mut shape = a.shape.clone();
        shape[self.axis] /= n;
        Aval::new(a.dtype, &shape)
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        or_panic(self.comm.reduce_scatter(ins[0], self.axis))
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(bind(self.clone(), &[t[0].clone()?]))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        batch_along(x, axes, |axis| ReduceScatter { comm: self.comm.clone(), axis }, self.axis)
    }
    fn transpose(&self, ct: &Tensor, _ins: &[Lin]) -> Vec<Option<Tensor>> {
        vec![Some(bind(AllGather { comm: self.comm.clone(), axis: self.axis }, std::slice::from_ref(ct)))]
    }
}

/// The sum of `x` over the ranks of `comm` (JAX's `psum`), differentiable:
/// the gradient of `psum(f(x))` summed over ranks is `psum` of the
/// cotangents.
///
/// # Panics
/// When a rank fails to take part (the [`CommError`]'s message), or `x` is bool.
#[track_caller]
pub fn psum(x: &Tensor, comm: &SharedComm) -> Tensor {
    bind_all(AllReduce { comm: comm.clone() }, std::slice::from_ref(x)).swap_remove(0)
}

/// Every leaf of `tree` summed over the ranks of `comm` (JAX's `psum` of a
/// pytree), in one collective per bucket of leaves of one dtype, as
/// [`all_reduce`](super::all_reduce) sends them; differentiable as [`psum`] is.
///
/// A model's gradients summed this way skip the concatenation into one
/// array and the slicing back that summing the concatenation with
/// [`psum`] would cost: on a transport that reads and writes the arrays in
/// place (MPI ranks on one machine), the leaves go to the other ranks as
/// they are.
///
/// # Panics
/// As [`psum`].
///
/// ```
/// use std::sync::Arc;
/// use ferrax::prelude::*;
/// use ferrax::distributed::{psum_tree, SharedComm, ThreadGroup};
///
/// let sums: Vec<(Tensor, Tensor)> = std::thread::scope(|s| {
///     let ranks: Vec<_> = ThreadGroup::new(2).into_iter().map(|comm| s.spawn(move || {
///         let comm: SharedComm = Arc::new(comm);
///         let r = comm.rank() as f64;
///         let tree = (Tensor::full(&[2, 2], r, DType::F32), Tensor::full(&[3], 10.0 * r, DType::F32));
///         psum_tree(&tree, &comm)
///     })).collect();
///     ranks.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(sums[1].0.to_vec::<f32>(), [1.0; 4]);
/// assert_eq!(sums[0].1.to_vec::<f32>(), [10.0; 3]);
/// ```
#[track_caller]
pub fn psum_tree<T: Tree>(tree: &T, comm: &SharedComm) -> T {
    let leaves = tree.leaves();
    if leaves.is_empty() {
        return tree.with_leaves(Vec::new());
    }
    tree.with_leaves(bind_all(AllReduce { comm: comm.clone() }, &leaves).into_vec())
}

/// [`psum_tree`] of a tree given up, as a model's gradients are once
/// computed: evaluated eagerly, the sums may be written over the leaves'
/// buffers that nothing else holds (see [`all_reduce_owned`](super::all_reduce_owned)).
/// Traced, it is [`psum_tree`].
///
/// # Panics
/// As [`psum`].
#[track_caller]
pub fn psum_tree_owned<T: Tree>(tree: T, comm: &SharedComm) -> T {
    let (shell, leaves) = super::take_leaves(tree);
    if leaves.is_empty() {
        return shell;
    }
    shell.with_leaves(bind_all_owned(AllReduce { comm: comm.clone() }, leaves).into_vec())
}

/// Every rank's `x` concatenated along `axis` (JAX's `all_gather` with
/// `tiled=True`); its transpose is [`psum_scatter`].
///
/// # Panics
/// When `axis` is out of range, or a rank fails to take part.
#[track_caller]
pub fn all_gather_tensor(x: &Tensor, comm: &SharedComm, axis: usize) -> Tensor {
    bind(AllGather { comm: comm.clone(), axis }, std::slice::from_ref(x))
}

/// The sum over ranks of `x`, this rank keeping the `rank`-th of `size`
/// equal slices along `axis` (JAX's `psum_scatter` with `tiled=True`).
///
/// # Panics
/// When the axis does not split evenly, or a rank fails to take part.
#[track_caller]
pub fn psum_scatter(x: &Tensor, comm: &SharedComm, axis: usize) -> Tensor {
    bind(ReduceScatter { comm: comm.clone(), axis }, std::slice::from_ref(x))
}
