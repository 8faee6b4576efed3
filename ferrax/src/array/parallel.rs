//! When kernels split their work across threads.
//!
//! Forking onto rayon's pool costs a few microseconds, so only arrays large
//! enough to amortise that are split. The thresholds are in units of "work":
//! elements times a rough per-element cost, measured on the 2-core reference
//! machine with `cargo bench --bench kernels -- threshold` (see the issue
//! notes): below them one thread is faster or no slower.

use rayon::prelude::*;

/// Work (elements × cost) above which a kernel is split across threads.
pub const PAR_WORK: usize = 1 << 16;

/// Per-element cost of a cheap op (add, compare, copy).
pub const CHEAP: usize = 1;
/// Per-element cost of a transcendental op (exp, sin, tanh, ln).
pub const COSTLY: usize = 8;

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

/// A vector of `n` default values filled by [`fill_chunks`].
pub fn build<U: Send + Default + Clone>(n: usize, cost: usize, fill: impl Fn(usize, &mut [U]) + Sync) -> Vec<U> {
    let mut out = vec![U::default(); n];
    fill_chunks(&mut out, cost, fill);
    out
}
