//! Data parallelism: every rank holds the parameters, takes its share of
//! each batch, and the gradients are summed across ranks so that every
//! rank takes the same optimiser step.

use std::ops::Range;

use crate::array::DType;
use crate::core::Tensor;
use crate::optim::Optimizer;
use crate::transforms::value_and_grad;
use crate::tree::Tree;

use super::{broadcast, psum, psum_tree_owned, CommError, SharedComm};

/// Data-parallel training over a group (PyTorch's
/// DistributedDataParallel, JAX's `pmap` with `psum`).
///
/// ```
/// use std::sync::Arc;
/// use ferrax::prelude::*;
/// use ferrax::distributed::{DataParallel, ThreadGroup};
/// use ferrax::optim::{Optimizer, Sgd};
///
/// let x = Tensor::randn(&[8, 3], DType::F64, 0);
/// let y = x.sum_axes(&[1], true);
/// let loss = |w: &Tensor, x: &Tensor, y: &Tensor| (x.matmul(w) - y).square().mean();
/// let ws: Vec<Tensor> = std::thread::scope(|s| {
///     let ranks: Vec<_> = ThreadGroup::new(2).into_iter().map(|comm| {
///         let (x, y) = (x.clone(), y.clone());
///         s.spawn(move || {
///             let dp = DataParallel::new(Arc::new(comm));
///             let mut w = dp.sync(&Tensor::zeros(&[3, 1], DType::F64)).unwrap();
///             let mut state = Sgd::new(0.1).init(&w);
///             for _ in 0..300 {
///                 (w, state, _) = dp.step(&Sgd::new(0.1), loss, &w, &state, &x, &y);
///             }
///             w
///         })
///     }).collect();
///     ranks.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// // Both ranks hold the same weights, those of training on the whole batch.
/// assert_eq!(ws[0].to_vec::<f64>(), ws[1].to_vec::<f64>());
/// assert!((&ws[0] - Tensor::ones(&[3, 1], DType::F64)).abs().max().item() < 0.05);
/// ```
#[derive(Clone, Debug)]
pub struct DataParallel {
    comm: SharedComm,
}

impl DataParallel {
    /// Training over the group `comm` belongs to.
    pub fn new(comm: SharedComm) -> DataParallel {
        DataParallel { comm }
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// The group.
    pub fn comm(&self) -> &SharedComm {
        &self.comm
    }

    /// Rank 0's value of `tree` on every rank: the parameters (and the
    /// optimiser state) at the start, so that the ranks begin equal.
    pub fn sync<T: Tree>(&self, tree: &T) -> Result<T, CommError> {
        broadcast(&*self.comm, tree, 0)
    }

    /// The rows of a batch of `n` this rank takes: contiguous, the first
    /// `n % size` ranks one more than the others.
    pub fn shard_range(&self, n: usize) -> Range<usize> {
        let (size, rank) = (self.size(), self.rank());
        let (base, extra) = (n / size, n % size);
        let start = rank * base + rank.min(extra);
        start..start + base + usize::from(rank < extra)
    }

    /// This rank's rows (along axis 0) of a batch every rank holds.
    pub fn shard(&self, x: &Tensor) -> Tensor {
        let r = self.shard_range(x.shape()[0]);
        x.slice(0, r.start, r.end)
    }

    /// The loss and gradients of the whole batch `(x, y)`, each rank
    /// computing those of its shard: `loss(params, x_shard, y_shard)` must
    /// be a mean over the shard's rows. Each rank's gradients are weighted
    /// by its share of the rows and summed across ranks with [`psum`], one
    /// message per bucket of leaves, so the result is the full batch's on
    /// every rank (to the rounding of the sums' order). Being made of
    /// primitives, it runs under `jit` and inside `scan`.
    ///
    /// # Panics
    /// When a rank fails to take part (the communication error's message).
    pub fn value_and_grad<P: Tree>(
        &self,
        loss: impl Fn(&P, &Tensor, &Tensor) -> Tensor,
        params: &P,
        x: &Tensor,
        y: &Tensor,
    ) -> (Tensor, P) {
        let rows = self.shard_range(x.shape()[0]);
        let weight = rows.len() as f64 / x.shape()[0].max(1) as f64;
        let (value, grads) = if rows.is_empty() {
            // No rows here: nothing to add, but the collectives still run.
            let zeros = params.leaves().iter().map(|p| p.zeros_like()).collect();
            (Tensor::zeros(&[], DType::F64), params.with_leaves(zeros))
        } else {
            let (xs, ys) = (self.shard(x), self.shard(y));
            // The loss weighted, not the gradients: the backward pass starts
            // from the weight instead of 1, which costs no pass over them.
            let local = value_and_grad(|p: &P| loss(p, &xs, &ys) * weight);
            local(params)
        };
        // The gradients travel as they are, those of one dtype in buckets of
        // up to `BUCKET_BYTES`: a model's size in a few messages, summed
        // over their own buffers where the transport can.
        let summed = psum_tree_owned(grads, &self.comm);
        let value = psum(&value.to_dtype(DType::F64), &self.comm);
        (value, summed)
    }

    /// One step of `opt` on the batch `(x, y)`: the gradients of
    /// [`DataParallel::value_and_grad`], then the same update on every
    /// rank. Returns the parameters, the optimiser state and the batch's
    /// loss (f64).
    pub fn step<P: Tree, O: Optimizer>(
        &self,
        opt: &O,
        loss: impl Fn(&P, &Tensor, &Tensor) -> Tensor,
        params: &P,
        state: &O::State<P>,
        x: &Tensor,
        y: &Tensor,
    ) -> (P, O::State<P>, Tensor) {
        let (value, grads) = self.value_and_grad(loss, params, x, y);
        let (params, state) = opt.update(params, &grads, state);
        (params, state, value)
    }
}
