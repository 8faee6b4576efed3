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

use crate::array::{Array, Buffer, DType};

use super::{check_root, CommError, Communicator, Reduction, DEFAULT_TIMEOUT};

/// This process's rank in its MPI job.
///
/// MPI is initialised for serialised calls from any thread, and every call
/// goes through one lock. A watchdog thread ends the process when a
/// collective has waited longer than the timeout, so a rank that dies or
/// hangs ends the job (mpirun stops the other ranks) instead of leaving
/// them waiting forever; MPI itself has no timeouts.
pub struct MpiComm {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    lock: Mutex<()>,
    /// When the collective in progress started (ms since `epoch`), or 0.
    started: Arc<AtomicU64>,
    epoch: Instant,
    /// Finalises MPI when the communicator is dropped.
    _universe: Universe,
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
        Ok(MpiComm { world, rank, size, lock: Mutex::new(()), started, epoch, _universe: universe })
    }

    /// Runs one MPI call under the lock, watched by the watchdog.
    fn call<R>(&self, f: impl FnOnce(&SimpleCommunicator) -> R) -> R {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.started.store(self.epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
        let out = f(&self.world);
        self.started.store(0, Ordering::Relaxed);
        out
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

impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce(&self, x: &Array, op: Reduction) -> Result<Array, CommError> {
        let dtype = x.dtype();
        if dtype == DType::Bool || (op == Reduction::Mean && !dtype.is_float()) {
            return Err(CommError::Operands {
                op: "all_reduce".into(),
                why: format!("cannot take the {op:?} of {dtype}"),
            });
        }
        // Half precision is summed in f32, as the kernels compute it.
        let wide = if dtype.is_half() { x.to_dtype(DType::F32) } else { x.clone() };
        let system = || match op {
            Reduction::Sum | Reduction::Mean => SystemOperation::sum(),
            Reduction::Max => SystemOperation::max(),
        };
        // The result's buffer from the pool: a fresh one of a model's size
        // would fault its pages in again at every step.
        let buf = match wide.buffer() {
            Buffer::F32(v) => {
                let mut out = crate::array::pool::filled(v.len(), 0f32);
                self.call(|w| w.all_reduce_into(&v[..], &mut out[..], system()));
                Buffer::F32(out)
            }
            Buffer::F64(v) => {
                let mut out = crate::array::pool::filled(v.len(), 0f64);
                self.call(|w| w.all_reduce_into(&v[..], &mut out[..], system()));
                Buffer::F64(out)
            }
            Buffer::I64(v) => {
                let mut out = crate::array::pool::filled(v.len(), 0i64);
                self.call(|w| w.all_reduce_into(&v[..], &mut out[..], system()));
                Buffer::I64(out)
            }
            _ => unreachable!("widened above"),
        };
        let mut out = Array::new(x.shape(), buf);
        if op == Reduction::Mean {
            let n = Array::full(&[], self.size as f64, out.dtype());
            out = crate::array::backend(crate::array::Device::Cpu).binary(crate::array::BinaryOp::Div, &out, &n);
        }
        Ok(out.to_dtype(dtype))
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
