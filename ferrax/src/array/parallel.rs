//! When kernels split their work across threads.
//!
//! Handing work to rayon's pool and waiting for it costs about 10 µs on the
//! 2-core reference machine, so only kernels with more than about 25 µs of
//! single-thread work are split. Work is counted as elements × a per-element
//! cost, in units of one cheap op (an f32 add: about 0.07 ns per element when
//! the data is in cache). Measured with `cargo bench --bench kernels --
//! threshold`: one thread against the pool, add and exp at 4K–256K f32
//! elements. f32 exp broke even at 32K elements (22 µs both ways) and won
//! from 64K (34 µs against 45 µs); add, bound by memory, broke even only at
//! 256K (18–20 µs both ways).

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Work (elements × cost) above which a kernel is split across threads.
pub const PAR_WORK: usize = 1 << 18;

/// Per-element cost of a cheap op (add, compare, copy).
pub const CHEAP: usize = 1;
/// Per-element cost of a transcendental op (exp, sin, tanh, ln): f32 exp
/// measured at 0.69 ns per element, ten times an add.
pub const COSTLY: usize = 10;

/// Whether `n` elements at `cost` each are worth splitting across threads.
#[inline]
pub fn worth_splitting(n: usize, cost: usize) -> bool {
    n.saturating_mul(cost) >= PAR_WORK && rayon::current_num_threads() > 1
}

/// A chunk length that gives each thread a few pieces of at least `PAR_WORK / cost` elements.
pub fn chunk_len(n: usize, cost: usize) -> usize {
    let pieces = rayon::current_num_threads() * 4;
    (n / pieces).max(PAR_WORK / cost.max(1)).max(1)
}

/// Runs `f` on one of rayon's worker threads while the calling thread
/// waits, unless the caller is a worker already or the pool has one thread.
///
/// Each kernel that splits its work hands it to the pool and waits; a
/// caller outside the pool then competes for the cores with the pool's
/// threads, which spin for a while after every split looking for more. On
/// two cores that cost gpt_step (a transformer's training step of many
/// small kernels) about 15%. Run from a worker, the caller's own thread
/// takes part in the splits and the others find its work to steal.
///
/// `f` must not wait on other threads that need the pool (a collective of
/// a [`ThreadGroup`](crate::distributed::ThreadGroup) whose ranks run on
/// it): with every worker waiting, nothing would run their work.
///
/// ```
/// use ferrax::prelude::*;
/// let x = Tensor::randn(&[512, 512], DType::F32, 0);
/// let y = ferrax::array::parallel::on_workers(|| x.matmul(&x).tanh().sum());
/// assert!(y.item().is_finite());
/// ```
pub fn on_workers<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() || rayon::current_num_threads() < 2 {
        return f();
    }
    let mut out = None;
    // From outside the pool, `scope` runs its body on a worker and blocks
    // the caller until it returns; a panic in `f` is raised here.
    rayon::scope(|_| out = Some(f()));
    out.expect("the scope ran its body")
}

/// Fills `out` by calling `fill(start, chunk)` on consecutive chunks, in
/// parallel when the work is large enough.
pub fn fill_chunks<U: Send>(out: &mut [U], cost: usize, fill: impl Fn(usize, &mut [U]) + Sync) {
    let n = out.len();
    if worth_splitting(n, cost) {
        let c = chunk_len(n, cost);
        out.par_chunks_mut(c).enumerate().for_each(|(i, chunk)| fill(i * c, chunk));
    } else {
        fill(0, out);
    }
}

/// A vector of `n` values written by `fill(start, chunk)`; chunks are
/// filled in parallel when the work is large enough. The memory is not
/// zeroed first: for the large outputs of elementwise kernels that first
/// pass would cost as much as the kernel.
///
/// # Safety
/// `fill` must write every element of every chunk it is given.
pub unsafe fn build<U: super::Element>(
    n: usize,
    cost: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync,
) -> Vec<U> {
    let mut out: Vec<U> = super::pool::with_capacity(n);
    let spare = &mut out.spare_capacity_mut()[..n];
    if worth_splitting(n, cost) {
        let c = chunk_len(n, cost);
        spare.par_chunks_mut(c).enumerate().for_each(|(i, chunk)| fill(i * c, chunk));
    } else {
        fill(0, spare);
    }
    // SAFETY: `fill` initialised all `n` elements (its contract).
    unsafe { out.set_len(n) };
    out
}
