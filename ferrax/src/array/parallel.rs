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
