//! Data-parallel training across ranks: collectives over trees of tensors,
//! collectives that differentiate, and a trainer that keeps the ranks'
//! parameters identical.
//!
//! A [`Communicator`] is one rank's view of a group. [`ThreadGroup`] makes a
//! group of threads in this process; under the `mpi` feature, the processes
//! of an MPI job form one (`MpiComm`, `mpirun -np N`). The eager collectives over trees
//! ([`all_reduce`], [`broadcast`], [`all_gather`], [`reduce_scatter`],
//! [`barrier`]) return a typed [`CommError`] when a rank dies, hangs past
//! the timeout or calls a different collective, on every rank, never a
//! hang. [`psum`] (and [`psum_tree`]), [`all_gather_tensor`] and [`psum_scatter`] are
//! primitives with jvp, transpose and batch rules, as JAX's `psum`,
//! `all_gather` and `psum_scatter`, so `grad` of a loss computed across
//! ranks is the gradient of the sum of the ranks' losses; inside a traced
//! function a communication failure panics with the same message.

mod combine;
mod conformance;
mod data_parallel;
#[cfg(feature = "mpi")]
mod mpi;
mod prims;
#[cfg(feature = "mpi")]
mod shm;
mod threads;

use std::fmt;
use std::sync::Arc;

use crate::array::{Array, DType};
use crate::core::Tensor;
use crate::tree::Tree;

pub use conformance::check_collectives;
pub use data_parallel::{DataParallel, FIRST_BUCKET_BYTES};
#[cfg(feature = "mpi")]
pub use mpi::{launched_by_mpi, MpiComm};
pub use prims::{
    all_gather_tensor, psum, psum_scatter, psum_tree, psum_tree_owned, AllGather, AllReduce, ReduceScatter,
};
pub use threads::{ThreadComm, ThreadGroup, DEFAULT_TIMEOUT};

/// How [`Communicator::all_reduce`] combines the ranks' arrays, elementwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// The sum.
    Sum,
    /// The sum divided by the number of ranks (floats only).
    Mean,
    /// The maximum.
    Max,
}

/// Why a collective failed. Every rank of a group that breaks gets one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommError {
    /// The other ranks did not all arrive within the timeout.
    Timeout {
        /// The collective.
        op: String,
        /// The rank that waited.
        rank: usize,
        /// Who was missing, and for how long.
        why: String,
    },
    /// The group broke earlier: a rank panicked, left, or timed out.
    Broken {
        /// The collective that found it broken.
        op: String,
        /// The rank that found it.
        rank: usize,
        /// What broke it.
        why: String,
    },
    /// Ranks called different collectives at the same point.
    Mismatch {
        /// The collective this rank called.
        op: String,
        /// This rank.
        rank: usize,
        /// Which collectives met.
        why: String,
    },
    /// The ranks' operands do not fit together (shapes, dtypes, a root
    /// that is no rank, an axis not divisible by the group's size).
    Operands {
        /// The collective.
        op: String,
        /// What is wrong.
        why: String,
    },
    /// The transport (MPI) reported an error.
    Transport(String),
}

impl fmt::Display for CommError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommError::Timeout { op, why, .. } => write!(f, "{op} timed out: {why}"),
            CommError::Broken { op, rank, why } => write!(f, "{op} on rank {rank}: the group is broken ({why})"),
            CommError::Mismatch { op, why, .. } => write!(f, "{op}: the ranks disagree on the collective: {why}"),
            CommError::Operands { op, why } => write!(f, "{op}: {why}"),
            CommError::Transport(m) => write!(f, "communication failed: {m}"),
        }
    }
}

impl std::error::Error for CommError {}

/// One rank's view of a group of ranks that run the same program. Every
/// rank calls the same collectives in the same order with operands of the
/// same dtype and shape; the results are equal on every rank (sums are
/// taken in rank order, so they are bit for bit the same; half precision is
/// combined in f32 and rounded once). [`check_collectives`] checks an
/// implementation against these rules.
pub trait Communicator: Send + Sync + fmt::Debug {
    /// This rank, from 0.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// The elementwise reduction of every rank's `x`.
    fn all_reduce(&self, x: &Array, op: Reduction) -> Result<Array, CommError>;
    /// [`Communicator::all_reduce`] of each of `xs`, in one collective:
    /// every rank gives arrays of one dtype, as many as the others and of the
    /// same shapes, and each result has the bits of its array's all-reduce.
    /// The default reduces their concatenation and slices it; a transport
    /// may read and write the arrays in place, saving those two copies.
    fn all_reduce_many(&self, xs: &[&Array], op: Reduction) -> Result<Vec<Array>, CommError> {
        concat_reduce(self, xs, op)
    }
    /// [`Communicator::all_reduce_many`] of arrays given up: a transport may
    /// write each result over its array where no one else holds the
    /// buffer, sparing the stores into a new one. The default reduces them
    /// by reference.
    fn all_reduce_owned(&self, xs: Vec<Array>, op: Reduction) -> Result<Vec<Array>, CommError> {
        self.all_reduce_many(&xs.iter().collect::<Vec<_>>(), op)
    }
    /// Rank `root`'s `x`, on every rank.
    fn broadcast(&self, x: &Array, root: usize) -> Result<Array, CommError>;
    /// Every rank's `x` concatenated along `axis`, in rank order.
    fn all_gather(&self, x: &Array, axis: usize) -> Result<Array, CommError>;
    /// The sum of every rank's `x`, of which this rank keeps its part: the
    /// `rank`-th of `size` equal slices along `axis`.
    fn reduce_scatter(&self, x: &Array, axis: usize) -> Result<Array, CommError>;
    /// Returns when every rank has called it.
    fn barrier(&self) -> Result<(), CommError>;
}

/// [`Communicator::all_reduce_many`] through one all-reduce of the arrays'
/// concatenation.
fn concat_reduce<C: Communicator + ?Sized>(comm: &C, xs: &[&Array], op: Reduction) -> Result<Vec<Array>, CommError> {
    check_one_dtype(xs)?;
    if let [x] = xs {
        return Ok(vec![comm.all_reduce(x, op)?]);
    }
    let flat: Vec<Array> = xs.iter().map(|x| x.reshape(&[x.size()])).collect();
    let reduced = comm.all_reduce(&crate::array::concat(&flat.iter().collect::<Vec<_>>(), 0), op)?;
    let mut at = 0;
    Ok(xs
        .iter()
        .map(|x| {
            at += x.size();
            crate::array::slice(&reduced, &[at - x.size()], &[at]).reshape(x.shape())
        })
        .collect())
}

/// An error unless `xs` share one dtype, as one collective's arrays must.
fn check_one_dtype(xs: &[&Array]) -> Result<(), CommError> {
    match xs.iter().find(|x| x.dtype() != xs[0].dtype()) {
        Some(x) => Err(CommError::Operands {
            op: "all_reduce".into(),
            why: format!("one collective's arrays must share a dtype; got {} and {}", xs[0].dtype(), x.dtype()),
        }),
        None => Ok(()),
    }
}

fn check_root(op: &str, root: usize, size: usize) -> Result<(), CommError> {
    if root >= size {
        return Err(CommError::Operands { op: op.into(), why: format!("root {root} is no rank of a group of {size}") });
    }
    Ok(())
}

/// The largest bucket [`all_reduce`] sends at once (PyTorch's
/// DistributedDataParallel buckets 25 MB).
pub const BUCKET_BYTES: usize = 25 << 20;

/// The leaves of `tree` reduced across ranks. Leaves of one dtype travel
/// together, flattened into buckets of up to [`BUCKET_BYTES`]: one message
/// per bucket rather than one per leaf, the model's size in all.
///
/// # Errors
/// As the communicator's; the tree is left as it was.
pub fn all_reduce<T: Tree>(comm: &dyn Communicator, tree: &T, op: Reduction) -> Result<T, CommError> {
    let arrays: Vec<Array> = tree.leaves().iter().map(Tensor::to_array).collect();
    let out = reduce_in_buckets(comm, arrays, op)?;
    Ok(tree.with_leaves(out.into_iter().map(Tensor::from_array).collect()))
}

/// [`all_reduce`] of a tree given up, as a model's gradients are once
/// computed: the transport may write the results over the leaves' buffers
/// that nothing else holds (MPI ranks on one machine do), sparing the
/// stores into new arrays of the model's size.
///
/// # Errors
/// As the communicator's; the tree is lost then.
///
/// ```
/// use ferrax::prelude::*;
/// use ferrax::distributed::{all_reduce_owned, Communicator, Reduction, ThreadGroup};
///
/// let ranks: Vec<Vec<Tensor>> = std::thread::scope(|s| {
///     let handles: Vec<_> = ThreadGroup::new(2).into_iter().map(|comm| s.spawn(move || {
///         let grads = vec![Tensor::full(&[3], comm.rank() as f64 + 1.0, DType::F32)];
///         all_reduce_owned(&comm, grads, Reduction::Mean).unwrap()
///     })).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(ranks[0][0].to_vec::<f32>(), vec![1.5; 3]);
/// assert_eq!(ranks[1][0].to_vec::<f32>(), vec![1.5; 3]);
/// ```
pub fn all_reduce_owned<T: Tree>(comm: &dyn Communicator, tree: T, op: Reduction) -> Result<T, CommError> {
    let (shell, leaves) = take_leaves(tree);
    let out = reduce_in_buckets(comm, leaves.into_iter().map(Tensor::into_array).collect(), op)?;
    Ok(shell.with_leaves(out.into_iter().map(Tensor::from_array).collect()))
}

/// The tree's structure (its leaves scalar placeholders) and its leaves,
/// of which it keeps no other handle.
fn take_leaves<T: Tree>(tree: T) -> (T, Vec<Tensor>) {
    let leaves = tree.leaves();
    let shell = tree.with_leaves(vec![Tensor::zeros(&[], DType::F32); leaves.len()]);
    (shell, leaves)
}

/// Each array reduced across ranks, one [`Communicator::all_reduce_owned`]
/// per bucket of [`buckets`].
pub(crate) fn reduce_in_buckets(
    comm: &dyn Communicator,
    xs: Vec<Array>,
    op: Reduction,
) -> Result<Vec<Array>, CommError> {
    let groups = buckets(&xs.iter().map(|a| (a.dtype(), a.size())).collect::<Vec<_>>());
    let mut xs: Vec<Option<Array>> = xs.into_iter().map(Some).collect();
    let mut out: Vec<Option<Array>> = vec![None; xs.len()];
    for bucket in groups {
        let given = bucket.iter().map(|&i| xs[i].take().expect("an array is in one bucket")).collect();
        for (&i, r) in bucket.iter().zip(comm.all_reduce_owned(given, op)?) {
            out[i] = Some(r);
        }
    }
    Ok(out.into_iter().map(|a| a.expect("every array is in a bucket")).collect())
}

/// The indices of tensors of these dtypes and element counts grouped into
/// one message each: those of one dtype together, in order, in consecutive
/// runs of up to [`BUCKET_BYTES`] (a larger tensor alone).
pub(crate) fn buckets(leaves: &[(DType, usize)]) -> Vec<Vec<usize>> {
    let mut dtypes: Vec<DType> = leaves.iter().map(|l| l.0).collect();
    dtypes.sort();
    dtypes.dedup();
    let mut out = Vec::new();
    for dtype in dtypes {
        let cap = BUCKET_BYTES / dtype.size_of();
        let (mut bucket, mut filled): (Vec<usize>, usize) = (Vec::new(), 0);
        for (i, &(_, n)) in leaves.iter().enumerate().filter(|(_, l)| l.0 == dtype) {
            if !bucket.is_empty() && filled + n > cap {
                out.push(std::mem::take(&mut bucket));
                filled = 0;
            }
            bucket.push(i);
            filled += n;
        }
        out.push(bucket);
    }
    out
}

/// Rank `root`'s tree, on every rank (its structure must be every rank's).
pub fn broadcast<T: Tree>(comm: &dyn Communicator, tree: &T, root: usize) -> Result<T, CommError> {
    let leaves: Result<Vec<Tensor>, CommError> =
        tree.leaves().iter().map(|t| comm.broadcast(&t.to_array(), root).map(Tensor::from_array)).collect();
    Ok(tree.with_leaves(leaves?))
}

/// Each leaf of every rank concatenated along `axis`, in rank order.
pub fn all_gather<T: Tree>(comm: &dyn Communicator, tree: &T, axis: usize) -> Result<T, CommError> {
    let leaves: Result<Vec<Tensor>, CommError> =
        tree.leaves().iter().map(|t| comm.all_gather(&t.to_array(), axis).map(Tensor::from_array)).collect();
    Ok(tree.with_leaves(leaves?))
}

/// Each leaf summed across ranks, this rank keeping its slice along `axis`.
pub fn reduce_scatter<T: Tree>(comm: &dyn Communicator, tree: &T, axis: usize) -> Result<T, CommError> {
    let leaves: Result<Vec<Tensor>, CommError> =
        tree.leaves().iter().map(|t| comm.reduce_scatter(&t.to_array(), axis).map(Tensor::from_array)).collect();
    Ok(tree.with_leaves(leaves?))
}

/// Returns when every rank has called it.
pub fn barrier(comm: &dyn Communicator) -> Result<(), CommError> {
    comm.barrier()
}

/// A communicator shared by the primitives that use it.
pub type SharedComm = Arc<dyn Communicator>;

#[cfg(test)]
mod tests {
    use super::{buckets, DType};

    #[test]
    fn buckets_group_one_dtype_in_runs_up_to_the_cap() {
        // f32's cap is 25 MiB / 4 = 6.5M elements: two 4M tensors do not share one.
        let m = 4 << 20;
        let leaves = [(DType::F32, m), (DType::F64, 10), (DType::F32, m), (DType::F32, 1), (DType::F64, 5)];
        assert_eq!(buckets(&leaves), vec![vec![0], vec![2, 3], vec![1, 4]]);
        assert!(buckets(&[]).is_empty());
    }
}
