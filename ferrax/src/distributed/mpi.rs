//! The processes of an MPI job as a group (the `mpi` feature, through
//! rsmpi): `mpirun -np N program` starts N processes, each of which makes
//! its [`MpiComm`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use crate::array::{Array, Buffer, DType, Element};

use super::combine::{fold_with, Fold};
use super::shm::{Header, NodeWindow, Operand};
use super::{check_root, CommError, Communicator, Reduction, DEFAULT_TIMEOUT};

/// This process's rank in its MPI job.
///
/// MPI is initialised for serialised calls from any thread, and every call
/// goes through one lock. A watchdog thread ends the process when a
/// collective has waited longer than the timeout, so a rank that dies or
/// hangs ends the job (mpirun stops the other ranks) instead of leaving
/// them waiting forever; MPI itself has no timeouts.
///
/// When every rank runs on one machine, all-reduces go through memory the
/// processes share instead of MPI's own (set `FERRAX_MPI_SHM=0` to use
/// MPI's); across machines they are MPI's.
pub struct MpiComm {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    watch: Watch,
    /// The shared window of a job on one machine. Dropped before MPI is
    /// finalised, as fields drop in order.
    window: Mutex<Option<NodeWindow>>,
    /// Finalises MPI when the communicator is dropped.
    _universe: Universe,
}

/// The one lock every MPI call takes, and the clock the watchdog reads.
pub(super) struct Watch {
    lock: Mutex<()>,
    /// When the collective in progress started (ms since `epoch`), or 0.
    started: Arc<AtomicU64>,
    epoch: Instant,
}

impl Watch {
    /// Runs MPI calls under the lock, watched by the watchdog.
    pub(super) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.started.store(self.epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
        let out = f();
        self.started.store(0, Ordering::Relaxed);
        out
    }
}

// SAFETY: MPI is initialised with MPI_THREAD_SERIALIZED, which allows calls
// from any thread as long as no two run at once; every call takes `lock`.
unsafe impl Send for MpiComm {}
// SAFETY: as for Send: the lock serialises the calls made through `&self`.
unsafe impl Sync for MpiComm {}

impl std::fmt::Debug for MpiComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MpiComm(rank {} of {})", self.rank, self.size)
    }
}

/// Whether this process was started by an MPI launcher (Open MPI's or
/// MPICH's `mpirun`/`mpiexec`, Slurm's `srun`), judged by the environment
/// they set.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].iter().any(|v| std::env::var_os(v).is_some())
}

impl MpiComm {
    /// Initialises MPI and joins the job, with [`DEFAULT_TIMEOUT`].
    ///
    /// # Errors
    /// When MPI was initialised already, or cannot give serialised threading.
    pub fn init() -> Result<MpiComm, CommError> {
        MpiComm::with_timeout(DEFAULT_TIMEOUT)
    }

    /// [`MpiComm::init`] whose collectives may wait `timeout`.
    pub fn with_timeout(timeout: Duration) -> Result<MpiComm, CommError> {
        let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| CommError::Transport("MPI was initialised already".into()))?;
        if threading < mpi::Threading::Serialized {
            return Err(CommError::Transport(format!(
                "the MPI library gives {threading:?} threading; ferrax needs Serialized"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let started = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let watched = started.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let at = watched.load(Ordering::Relaxed);
            if at != 0 && epoch.elapsed().as_millis() as u64 > at + timeout.as_millis() as u64 {
                eprintln!(
                    "ferrax: rank {rank} of {size}: a collective waited more than {timeout:.0?} for the other ranks \
                     (one died, hangs, or called another collective); ending this rank"
                );
                std::process::exit(70);
            }
        });
        let watch = Watch { lock: Mutex::new(()), started, epoch };
        // Ranks on one machine, ordered as in the world.
        let node = watch.run(|| world.split_shared(rank as i32));
        let on_node = node.size().max(1) as usize;
        if on_node > 1 && std::env::var_os("RAYON_NUM_THREADS").is_none() {
            // This process's share of the machine's cores for its kernels.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            crate::array::parallel::limit_threads(cores / on_node);
        }
        let shared =
            size > 1 && node.size() as usize == size && std::env::var("FERRAX_MPI_SHM").map_or(true, |v| v != "0");
        let window = if shared { Some(NodeWindow::new(node, &watch)?) } else { None };
        Ok(MpiComm { world, rank, size, watch, window: Mutex::new(window), _universe: universe })
    }

    /// Whether all-reduces go through memory the ranks share: when every
    /// rank runs on this machine, unless `FERRAX_MPI_SHM=0`.
    pub fn shares_memory(&self) -> bool {
        self.window.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Runs one MPI call under the lock, watched by the watchdog.
    fn call<R>(&self, f: impl FnOnce(&SimpleCommunicator) -> R) -> R {
        self.watch.run(|| f(&self.world))
    }

    /// `xs` reduced through the shared window, or (at most one array, as
    /// `all_reduce_many` hands several to `concat_reduce` without one) by
    /// MPI's all-reduce.
    fn reduce<T: Element + mpi::datatype::Equivalence>(
        &self,
        header: Header,
        xs: Vec<Operand<'_, T>>,
        combine: impl Fn(T, T) -> T + Copy,
        finish: impl Fn(T) -> T + Copy,
    ) -> Result<Vec<Vec<T>>, CommError> {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(window) = window.as_mut() {
            return window.all_reduce(&self.watch, header, xs, combine, finish);
        }
        let x: &[T] = match &xs[..] {
            [] => &[],
            [Operand::Borrowed(x)] => x,
            [Operand::Owned(x)] => x,
            _ => unreachable!("all_reduce_many concatenates several arrays without a shared window"),
        };
        let mut out = if header.reduces_by(Reduction::Max) {
            // MPI's maximum is not IEEE's (max(-0, +0) may be -0, and NaN is
            // lost or kept by order), so every rank gathers the operands and
            // folds them; a maximum is rare enough for its size · size bytes.
            let mut all = vec![T::default(); x.len() * self.size];
            self.call(|w| w.all_gather_into(x, &mut all[..]));
            let mut out = all[..x.len()].to_vec();
            for theirs in all.chunks(x.len().max(1)).skip(1) {
                out.iter_mut().zip(theirs).for_each(|(a, &b)| *a = combine(*a, b));
            }
            out
        } else {
            // The result's buffer from the pool: a fresh one of a model's
            // size would fault its pages in again at every step.
            let mut out = crate::array::pool::filled(x.len(), T::default());
            self.call(|w| w.all_reduce_into(x, &mut out[..], SystemOperation::sum()));
            out
        };
        out.iter_mut().for_each(|v| *v = finish(*v));
        Ok(if xs.is_empty() { Vec::new() } else { vec![out] })
    }
}

/// The same array with `axis` moved to the front, contiguous.
fn axis_first(x: &Array, axis: usize) -> Array {
    let mut perm: Vec<usize> = (0..x.rank()).collect();
    perm.remove(axis);
    perm.insert(0, axis);
    crate::array::permute(x, &perm)
}

/// The inverse of [`axis_first`] for an array whose first axis is `axis`'s.
fn axis_back(x: &Array, axis: usize) -> Array {
    let mut perm: Vec<usize> = (1..x.rank()).collect();
    perm.insert(axis, 0);
    crate::array::permute(x, &perm)
}

/// Applies `$body` with `$v` bound to the elements of `$a` as a type MPI
/// sends (half precision as its 16 bits, bool as bytes), rebuilding an
/// array of `$a`'s dtype from the `Vec` the body returns.
macro_rules! as_mpi {
    ($a:expr, $v:ident => $body:expr) => {{
        let a: &Array = $a;
        match a.buffer() {
            Buffer::F32($v) => Buffer::F32($body),
            Buffer::F64($v) => Buffer::F64($body),
            Buffer::I64($v) => Buffer::I64($body),
            Buffer::F16(h) => {
                let $v: Vec<u16> = h.iter().map(|x| x.to_bits()).collect();
                Buffer::F16($body.into_iter().map(half::f16::from_bits).collect())
            }
            Buffer::BF16(h) => {
                let $v: Vec<u16> = h.iter().map(|x| x.to_bits()).collect();
                Buffer::BF16($body.into_iter().map(half::bf16::from_bits).collect())
            }
            Buffer::Bool(b) => {
                let $v: Vec<u8> = b.iter().map(|&x| x as u8).collect();
                Buffer::Bool($body.into_iter().map(|x: u8| x != 0).collect())
            }
        }
    }};
}

/// An all-reduce's operands on their way to [`MpiComm::reduce`].
struct Through<'c, 'a, T> {
    comm: &'c MpiComm,
    header: Header,
    xs: Vec<Operand<'a, T>>,
}

impl<T: Element + mpi::datatype::Equivalence> Fold<T> for Through<'_, '_, T> {
    type Out = Result<Vec<Vec<T>>, CommError>;
    fn run(self, combine: impl Fn(T, T) -> T + Copy + Sync, finish: impl Fn(T) -> T + Copy + Sync) -> Self::Out {
        self.comm.reduce(self.header, self.xs, combine, finish)
    }
}

impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce(&self, x: &Array, op: Reduction) -> Result<Array, CommError> {
        Ok(self.all_reduce_many(&[x], op)?.swap_remove(0))
    }
    fn all_reduce_many(&self, xs: &[&Array], op: Reduction) -> Result<Vec<Array>, CommError> {
        // Held by the caller as well, the arrays are read where they lie.
        self.all_reduce_owned(xs.iter().map(|&x| x.clone()).collect(), op)
    }
    fn all_reduce_owned(&self, xs: Vec<Array>, op: Reduction) -> Result<Vec<Array>, CommError> {
        if xs.len() > 1 && !self.shares_memory() {
            return super::concat_reduce(self, &xs.iter().collect::<Vec<_>>(), op);
        }
        super::check_one_dtype(&xs.iter().collect::<Vec<_>>())?;
        // No arrays still meet the other ranks, which then learn of it.
        let dtype = xs.first().map_or(DType::F32, |x| x.dtype());
        if dtype == DType::Bool || (op == Reduction::Mean && !dtype.is_float()) {
            return Err(CommError::Operands {
                op: "all_reduce".into(),
                why: format!("cannot take the {op:?} of {dtype}"),
            });
        }
        let shapes: Vec<Vec<usize>> = xs.iter().map(|x| x.shape().to_vec()).collect();
        let header = Header::new(dtype, op, shapes.iter().map(|s| &s[..]));
        // Half precision is summed in f32, as the kernels compute it.
        let wide = xs.into_iter().map(|x| if dtype.is_half() { x.to_dtype(DType::F32) } else { x });
        macro_rules! reduce {
            ($variant:ident, $t:ty) => {{
                // An array no one else holds is reduced in place.
                let mut arrays: Vec<Result<Vec<$t>, Array>> = wide.map(Array::into_unique_vec::<$t>).collect();
                let operands = arrays
                    .iter_mut()
                    .map(|a| match a {
                        Ok(v) => Operand::Owned(std::mem::take(v)),
                        Err(a) => Operand::Borrowed(a.as_slice::<$t>()),
                    })
                    .collect();
                // Each reduction's loop compiled for its own arithmetic, the thread group's.
                let through = Through { comm: self, header, xs: operands };
                fold_with(op, self.size, through)?.into_iter().map(Buffer::$variant).collect::<Vec<_>>()
            }};
        }
        let bufs = match if dtype.is_half() { DType::F32 } else { dtype } {
            DType::F32 => reduce!(F32, f32),
            DType::F64 => reduce!(F64, f64),
            DType::I64 => reduce!(I64, i64),
            _ => unreachable!("half precision is widened and bool refused above"),
        };
        Ok(shapes.iter().zip(bufs).map(|(shape, b)| Array::new(shape, b).to_dtype(dtype)).collect())
    }
    fn broadcast(&self, x: &Array, root: usize) -> Result<Array, CommError> {
        check_root("broadcast", root, self.size)?;
        let buf = as_mpi!(x, v => {
            let mut v = v.to_vec();
            self.call(|w| w.process_at_rank(root as i32).broadcast_into(&mut v[..]));
            v
        });
        Ok(Array::new(x.shape(), buf))
    }
    fn all_gather(&self, x: &Array, axis: usize) -> Result<Array, CommError> {
        if axis >= x.rank() {
            return Err(CommError::Operands {
                op: "all_gather".into(),
                why: format!("axis {axis} is out of range for {}", x.aval()),
            });
        }
        let front = axis_first(x, axis);
        let buf = as_mpi!(&front, v => {
            let mut out = vec![Default::default(); v.len() * self.size];
            self.call(|w| w.all_gather_into(&v[..], &mut out[..]));
            out
        });
        let mut shape = front.shape().to_vec();
        shape[0] *= self.size;
        Ok(axis_back(&Array::new(&shape, buf), axis))
    }
    fn reduce_scatter(&self, x: &Array, axis: usize) -> Result<Array, CommError> {
        let n = x.shape().get(axis).copied().filter(|n| n % self.size == 0);
        let Some(n) = n else {
            return Err(CommError::Operands {
                op: "reduce_scatter".into(),
                why: format!("axis {axis} of {} does not split into {} equal parts", x.aval(), self.size),
            });
        };
        let dtype = x.dtype();
        let front = axis_first(&if dtype.is_half() { x.to_dtype(DType::F32) } else { x.clone() }, axis);
        let part = front.size() / self.size;
        let buf = match front.buffer() {
            Buffer::F32(v) => {
                let mut out = vec![0f32; part];
                self.call(|w| w.reduce_scatter_block_into(&v[..], &mut out[..], SystemOperation::sum()));
                Buffer::F32(out)
            }
            Buffer::F64(v) => {
                let mut out = vec![0f64; part];
                self.call(|w| w.reduce_scatter_block_into(&v[..], &mut out[..], SystemOperation::sum()));
                Buffer::F64(out)
            }
            Buffer::I64(v) => {
                let mut out = vec![0i64; part];
                self.call(|w| w.reduce_scatter_block_into(&v[..], &mut out[..], SystemOperation::sum()));
                Buffer::I64(out)
            }
            _ => return Err(CommError::Operands { op: "reduce_scatter".into(), why: format!("cannot sum {dtype}") }),
        };
        let mut shape = front.shape().to_vec();
        shape[0] = n / self.size;
        Ok(axis_back(&Array::new(&shape, buf), axis).to_dtype(dtype))
    }
    fn barrier(&self) -> Result<(), CommError> {
        self.call(|w| w.barrier());
        Ok(())
    }
}
