//! Data parallelism: every rank holds the parameters, takes its share of
//! each batch, and the gradients are summed across ranks so that every
//! rank takes the same optimiser step.

use std::ops::Range;
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;

use crate::array::{Array, DType};
use crate::core::{Kind, Tensor};
use crate::graph::Graph;
use crate::optim::Optimizer;
use crate::transforms::{value_and_grad, value_and_grad_streamed};
use crate::tree::Tree;

use super::prims::COLLECTIVES;
use super::{broadcast, psum, psum_tree_owned, CommError, Reduction, SharedComm, BUCKET_BYTES};

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
    overlap: bool,
    bucket_bytes: usize,
    /// Started by the first overlapped step, shared by the clones.
    comm_thread: Arc<OnceLock<CommThread>>,
}

/// The first bucket's cap when the all-reduces overlap the backward pass
/// (PyTorch's DistributedDataParallel starts with 1 MB too): the last
/// layers' gradients leave early, while the rest are computed.
pub const FIRST_BUCKET_BYTES: usize = 1 << 20;

impl DataParallel {
    /// Training over the group `comm` belongs to, the gradients summed
    /// after the backward pass in buckets of up to [`BUCKET_BYTES`].
    pub fn new(comm: SharedComm) -> DataParallel {
        DataParallel { comm, overlap: false, bucket_bytes: BUCKET_BYTES, comm_thread: Arc::default() }
    }

    /// Whether the gradients' all-reduces overlap the backward pass, as
    /// PyTorch's DistributedDataParallel does: the gradients are split into
    /// buckets in reverse order of the parameters' leaves (the first of
    /// [`FIRST_BUCKET_BYTES`], the others of [`DataParallel::with_bucket_bytes`]),
    /// and a bucket is summed on a communication thread as soon as the
    /// backward pass has finished every gradient in it (and the buckets
    /// before it), while the pass goes on to the earlier layers. The
    /// results are the same bits either way: every sum is taken in rank
    /// order.
    ///
    /// It applies where the structure allows: evaluated eagerly (traced,
    /// under `jit` or another transformation, the gradients are summed
    /// after the pass), and when the loss calls no collective itself nor
    /// any user rule that might (those would communicate from two threads at
    /// once; the gradients are then summed after the pass, still on the
    /// communication thread). It pays where communication waits on a
    /// network; ranks that share a machine's cores give the thread's work
    /// to the backward pass's cores (see the README's figures).
    pub fn with_overlap(mut self, overlap: bool) -> DataParallel {
        self.overlap = overlap;
        self
    }

    /// The cap of a bucket of gradients summed in one collective (after
    /// the first bucket, when they overlap the backward pass): a larger
    /// tensor travels alone. [`BUCKET_BYTES`] by default.
    ///
    /// # Panics
    /// When `bytes` is 0.
    pub fn with_bucket_bytes(mut self, bytes: usize) -> DataParallel {
        assert!(bytes > 0, "DataParallel::with_bucket_bytes: a bucket holds at least one byte; got 0");
        self.bucket_bytes = bytes;
        self
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
    /// primitives, it runs under `jit` and inside `scan`. With
    /// [`DataParallel::with_overlap`], the sums start during the backward
    /// pass.
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
        let eager = !(x.is_tracer() || y.is_tracer() || params.leaves().iter().any(Tensor::is_tracer));
        if self.overlap && eager {
            return self.overlapped(loss, params, x, y, weight);
        }
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

    /// [`DataParallel::value_and_grad`] with each bucket of gradients summed
    /// on a communication thread once the backward pass has finished it.
    fn overlapped<P: Tree>(
        &self,
        loss: impl Fn(&P, &Tensor, &Tensor) -> Tensor,
        params: &P,
        x: &Tensor,
        y: &Tensor,
        weight: f64,
    ) -> (Tensor, P) {
        let leaves = params.leaves();
        let plan = Buckets::new(&leaves, self.bucket_bytes);
        let (reply, replies) = mpsc::channel();
        let mut sender = Sender::new(&plan, self.comm_thread.get_or_init(CommThread::start), &self.comm, reply);
        let value = if self.shard_range(x.shape()[0]).is_empty() {
            // No rows here: nothing to add, but the collectives still run.
            for (i, p) in leaves.iter().enumerate() {
                sender.ready(i, p.zeros_like());
            }
            Tensor::zeros(&[], DType::F64)
        } else {
            let (xs, ys) = (self.shard(x), self.shard(y));
            let f = |p: &P| loss(p, &xs, &ys) * weight;
            let (value, whole) =
                value_and_grad_streamed(f, params, |g| !may_communicate(g), &mut |i, g| sender.ready(i, g));
            // A graph that communicates itself: its gradients, once
            // computed, go after the pass.
            for (i, g) in whole.map(|g| g.leaves()).into_iter().flatten().enumerate() {
                sender.ready(i, g);
            }
            value
        };
        drop(sender);
        // The thread answers each bucket in the order it was sent; a
        // closed channel means it died.
        let summed: Result<Vec<Vec<Array>>, CommError> = (0..plan.buckets.len())
            .map(|_| replies.recv().unwrap_or_else(|_| panic!("DataParallel: the communication thread died")))
            .collect();
        let summed = summed.unwrap_or_else(|e| panic!("{e}"));
        let mut out: Vec<Option<Tensor>> = vec![None; leaves.len()];
        for (bucket, arrays) in plan.buckets.iter().zip(summed) {
            for (&i, a) in bucket.iter().zip(arrays) {
                out[i] = Some(Tensor::from_array(crate::array::placed("psum", a, leaves[i].device())));
            }
        }
        let grads = params.with_leaves(out.into_iter().map(|g| g.expect("every leaf is in a bucket")).collect());
        (psum(&value.to_dtype(DType::F64), &self.comm), grads)
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

/// Which leaves travel together when the gradients' all-reduces overlap
/// the backward pass: runs of the leaves in reverse order (the last layers'
/// gradients are finished first), of one dtype, the first up to
/// [`FIRST_BUCKET_BYTES`] and the rest up to the given cap (a larger leaf
/// alone). The same on every rank: it depends on the parameters' shapes only.
struct Buckets {
    buckets: Vec<Vec<usize>>,
    /// The bucket of each leaf.
    of: Vec<usize>,
}

impl Buckets {
    fn new(leaves: &[Tensor], cap: usize) -> Buckets {
        let mut buckets: Vec<Vec<usize>> = Vec::new();
        let mut of = vec![0; leaves.len()];
        let mut filled = 0;
        for i in (0..leaves.len()).rev() {
            let bytes = leaves[i].size() * leaves[i].dtype().size_of();
            let limit = if buckets.len() <= 1 { cap.min(FIRST_BUCKET_BYTES) } else { cap };
            let fits = buckets.last().is_some_and(|b| {
                let first = leaves[b[0]].dtype();
                first == leaves[i].dtype() && filled + bytes <= limit
            });
            if !fits {
                buckets.push(Vec::new());
                filled = 0;
            }
            buckets.last_mut().expect("a bucket was just pushed").push(i);
            filled += bytes;
            of[i] = buckets.len() - 1;
        }
        Buckets { buckets, of }
    }
}

/// A bucket's result, or why its all-reduce failed.
type Reply = Result<Vec<Array>, CommError>;

/// An all-reduce (a sum) for the communication thread: the group, the
/// bucket, and where to send the result.
type Job = (SharedComm, Vec<Array>, mpsc::Sender<Reply>);

/// The thread an overlapping trainer's all-reduces run on, one job after
/// another in the order they come. It stays, asleep between steps, for the
/// trainer's life: a thread started for each step would first wait for a
/// core behind the busy ones (Linux's scheduler debits a new thread, and
/// favours one that wakes), by as long as the backward pass took.
/// It holds no communicator between jobs, so the last one is dropped by
/// the caller's thread (MPI finishes on the thread that began it).
#[derive(Debug)]
struct CommThread {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl CommThread {
    fn start() -> CommThread {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("ferrax-comm".into())
            .spawn(move || {
                for (comm, bucket, reply) in queue {
                    // The caller gone (it panicked) needs no answer.
                    let _ = reply.send(comm.all_reduce_owned(bucket, Reduction::Sum));
                }
            })
            .expect("DataParallel: starting the communication thread");
        CommThread { jobs: Some(jobs), thread: Some(thread) }
    }
}

impl Drop for CommThread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Collects the gradients as the backward pass finishes them and hands
/// each bucket to the communication thread once it and those before it
/// are complete, so that every rank sends the buckets in the plan's order,
/// whatever order its backward pass finishes them in, and the collectives
/// pair up.
struct Sender<'a> {
    plan: &'a Buckets,
    thread: &'a CommThread,
    comm: &'a SharedComm,
    reply: mpsc::Sender<Reply>,
    slots: Vec<Option<Array>>,
    missing: Vec<usize>,
    next: usize,
}

impl<'a> Sender<'a> {
    fn new(plan: &'a Buckets, thread: &'a CommThread, comm: &'a SharedComm, reply: mpsc::Sender<Reply>) -> Sender<'a> {
        Sender {
            plan,
            thread,
            comm,
            reply,
            slots: vec![None; plan.of.len()],
            missing: plan.buckets.iter().map(Vec::len).collect(),
            next: 0,
        }
    }

    fn ready(&mut self, leaf: usize, grad: Tensor) {
        assert!(!grad.is_tracer(), "DataParallel: a gradient was traced while its loss was evaluated eagerly");
        self.slots[leaf] = Some(grad.into_array());
        self.missing[self.plan.of[leaf]] -= 1;
        while self.next < self.missing.len() && self.missing[self.next] == 0 {
            let bucket =
                self.plan.buckets[self.next].iter().map(|&i| self.slots[i].take().expect("finished")).collect();
            let jobs = self.thread.jobs.as_ref().expect("the thread takes jobs until dropped");
            // A closed queue means the thread died; the missing reply says so.
            let _ = jobs.send((self.comm.clone(), bucket, self.reply.clone()));
            self.next += 1;
        }
    }
}

/// Whether evaluating `graph` may call a collective: one of the
/// collectives' primitives, or a user's rule, which may run any code.
fn may_communicate(graph: &Graph) -> bool {
    graph.eqns.iter().any(|e| {
        COLLECTIVES.contains(&e.prim.name())
            || match e.prim.programs() {
                Some(programs) => programs.into_iter().any(may_communicate),
                None => matches!(e.prim.kind(), Kind::Call),
            }
    })
}
