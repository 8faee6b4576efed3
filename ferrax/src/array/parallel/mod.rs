//! When kernels split their work across threads.
//!
//! Kernels split through the [`team`], whose helpers spin between jobs: a
//! hand-off costs 0.1–0.5 µs when the kernels follow one another, against
//! 6.5 µs for a `rayon::join` from outside rayon's pool (a throwaway probe
//! on a 2-vCPU Xeon). What limits the split then is the data: a piece run
//! by the other core first pulls its inputs from this core's cache. Work is
//! counted as elements × a per-element cost, in units of one cheap op (an
//! f32 add). Measured with `cargo bench --bench kernels -- threshold` (one
//! thread against the team, f32), on the same Xeon:
//!
//! | elements | add, 1 thread | add, split | exp, 1 thread | exp, split |
//! |---|---|---|---|---|
//! | 16K | 2.5 µs | 2.4 µs | 5.3 µs | 4.4 µs |
//! | 32K | 4.8 µs | 8.8 µs | | |
//! | 64K | 8.6 µs | 11.4 µs | 23.6 µs | 18.3 µs |
//! | 128K | 17.3 µs | 18.3 µs | 48.3 µs | 38.8 µs |
//! | 256K | 54.5 µs | 32.9 µs | 125 µs | 60 µs |
//!
//! So add, bound by memory, breaks even at about 128K elements, and exp,
//! ten times the work per element, gains from about 16K.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub mod team;

/// Work (elements × cost) above which a kernel is split across threads.
pub const PAR_WORK: usize = 1 << 17;

/// Per-element cost of a cheap op (add, compare, copy).
pub const CHEAP: usize = 1;
/// Per-element cost of a transcendental op (exp, sin, tanh, ln): f32 exp
/// measured at 0.69 ns per element, ten times an add.
pub const COSTLY: usize = 10;

static THREAD_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The threads a kernel may use: rayon's (`RAYON_NUM_THREADS`, or the
/// cores; 1 inside a one-thread rayon pool), at most [`limit_threads`]'s.
#[inline]
pub fn threads() -> usize {
    rayon::current_num_threads().min(THREAD_LIMIT.load(Relaxed)).max(1)
}

/// Lets kernels use at most `n` threads from now on. Several processes on
/// one machine (ranks of an MPI job) each split their kernels over all the
/// cores otherwise, and their helper threads, spinning between kernels,
/// take the cores from the other processes' work: as with PyTorch under
/// `torchrun`, each process should keep to its share of the cores.
pub fn limit_threads(n: usize) {
    THREAD_LIMIT.store(n.max(1), Relaxed);
}

/// Whether `n` elements at `cost` each are worth splitting across threads.
#[inline]
pub fn worth_splitting(n: usize, cost: usize) -> bool {
    n.saturating_mul(cost) >= PAR_WORK && threads() > 1
}

/// A chunk length that gives each thread a few pieces of at least `PAR_WORK / cost` elements.
pub fn chunk_len(n: usize, cost: usize) -> usize {
    let pieces = threads() * 4;
    (n / pieces).max(PAR_WORK / 2 / cost.max(1)).max(1)
}

/// Fills `out` by calling `fill(start, chunk)` on consecutive chunks, in
/// parallel when the work is large enough.
pub fn fill_chunks<U: Send>(out: &mut [U], cost: usize, fill: impl Fn(usize, &mut [U]) + Sync) {
    let n = out.len();
    if worth_splitting(n, cost) {
        let c = chunk_len(n, cost);
        team::for_chunks(out, c, fill);
    } else {
        fill(0, out);
    }
}

/// Calls `fill(i, unit)` on the consecutive units of `unit_len` elements
/// of `out` (planes, rows, blocks: the last may be shorter), several units
/// to a piece, in parallel when `out.len()` elements at `cost` are worth it.
pub fn fill_units<U: Send>(out: &mut [U], unit_len: usize, cost: usize, fill: impl Fn(usize, &mut [U]) + Sync) {
    let n = out.len();
    let unit_len = unit_len.max(1);
    let each = |start: usize, part: &mut [U]| {
        for (j, unit) in part.chunks_mut(unit_len).enumerate() {
            fill(start / unit_len + j, unit);
        }
    };
    if worth_splitting(n, cost) && n > unit_len {
        team::for_chunks(out, chunk_len(n, cost).div_ceil(unit_len) * unit_len, each);
    } else {
        each(0, out);
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
    fill_chunks(&mut out.spare_capacity_mut()[..n], cost, fill);
    // SAFETY: `fill` initialised all `n` elements (its contract).
    unsafe { out.set_len(n) };
    out
}
