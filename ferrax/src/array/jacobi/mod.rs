//! Jacobi rotations for small matrices: the singular value decomposition
//! by one-sided rotations ([`JacobiSvd`]) and the symmetric eigenvalue
//! decomposition by two-sided ones ([`JacobiEigh`]).
//!
//! For small matrices (up to 24 rows for the SVD and 6 for eigh, where
//! `linalg` measured them faster) these beat a reduction to bidiagonal or
//! tridiagonal form and its iteration, which spend more on set-up than on
//! the arithmetic; and they compute the small singular values and
//! eigenvalues to high relative accuracy (a diagonal matrix's eigenvalues
//! exactly). Each rotation makes one pair of columns orthogonal, or one
//! off-diagonal element zero; a sweep rotates every pair once, and the
//! sweeps go on until no pair needs it.

mod eigh;
mod svd;

pub(crate) use eigh::JacobiEigh;
pub(crate) use svd::JacobiSvd;

use crate::array::norm::Sqrt;
use crate::array::simd::{madd, Isa};
use crate::array::triangular::Field;
use crate::array::Num;

/// Sweeps over all pairs before giving up; random matrices of 16 and 32
/// columns took 7.7 and 9.0 on average (the last finding every pair
/// orthogonal).
pub(super) const MAX_SWEEPS: usize = 60;

/// The largest magnitude of `xs`, or `None` where one of them is NaN or
/// infinite (which the decompositions answer with NaNs).
pub(crate) fn largest<T: Field>(xs: impl Iterator<Item = T>) -> Option<T> {
    // `max_nan` keeps a NaN; an infinity is the largest.
    let big = xs.fold(<T as Num>::ZERO, |m, x| m.max_nan(x.abs()));
    (!big.is_nan_like() && big != <T as Num>::MAX_VALUE).then_some(big)
}

/// Rows of equal length in one buffer, each starting on a 64-byte
/// boundary and padded with zeros to a whole number of 64 bytes: the loops
/// over them take whole vectors, none of them split between two cache
/// lines, and have no tail.
pub(super) struct Rows<T> {
    buf: Vec<T>,
    /// Where the first row starts in `buf`.
    base: usize,
    /// Elements from one row to the next.
    pub(super) ld: usize,
}

impl<T: Field> Rows<T> {
    pub(super) fn new(count: usize, len: usize) -> Self {
        let per = 64 / std::mem::size_of::<T>();
        let ld = len.next_multiple_of(per).max(per);
        let buf = vec![<T as Num>::ZERO; count * ld + per];
        let base = buf.as_ptr().align_offset(64);
        Rows { base: if base < per { base } else { 0 }, buf, ld }
    }

    #[inline(always)]
    pub(super) fn row(&self, j: usize) -> &[T] {
        &self.buf[self.base + j * self.ld..][..self.ld]
    }

    #[inline(always)]
    pub(super) fn at(&mut self, i: usize, j: usize) -> &mut T {
        &mut self.buf[self.base + i * self.ld + j]
    }

    /// Writes rows `p` and `q` (their first `n` elements) into columns `p`
    /// and `q`.
    #[inline(always)]
    pub(super) fn columns_from_rows(&mut self, p: usize, q: usize, n: usize) {
        let ld = self.ld;
        let b = &mut self.buf[self.base..][..n * ld];
        for k in 0..n {
            let (x, y) = (b[p * ld + k], b[q * ld + k]);
            (b[k * ld + p], b[k * ld + q]) = (x, y);
        }
    }

    #[inline(always)]
    pub(super) fn row_mut(&mut self, j: usize) -> &mut [T] {
        &mut self.buf[self.base + j * self.ld..][..self.ld]
    }

    /// Rows `p < q`, both mutable.
    #[inline(always)]
    pub(super) fn pair(&mut self, p: usize, q: usize) -> (&mut [T], &mut [T]) {
        let (head, tail) = self.buf[self.base..].split_at_mut(q * self.ld);
        (&mut head[p * self.ld..][..self.ld], &mut tail[..self.ld])
    }
}

/// The pairs of columns of a sweep in a tournament's rounds: a round pairs
/// every column with another (with a bye where the count is odd), and
/// between rounds all but the first slot move on by one. The pairs of a
/// round share no column, so [`GROUP`] of them go through each stage
/// together and the chains of products, square roots and divisions of one
/// overlap the others'. On the AMD EPYC (Zen 4) of 2026-12-07, 256 SVDs of
/// 32² took 29 ms one pair at a time in the order `(0, 1), (0, 2), …`
/// and 20 ms in groups of four; 512 of them 50 ms in groups of two and 40
/// in groups of four (eight were no faster).
pub(super) struct Tournament {
    /// The columns in the slots of a round.
    ring: Vec<usize>,
    cols: usize,
    round: usize,
    /// The next slot of the round.
    at: usize,
}

impl Tournament {
    pub(super) fn new(cols: usize) -> Self {
        Tournament { ring: (0..cols + cols % 2).collect(), cols, round: 0, at: 0 }
    }

    /// The next group of pairs `(p, q)`, `p < q`, of the sweep, at most
    /// [`GROUP`] and all of one round, written into `group`; `None` at the
    /// end of a sweep, and the next call starts the next. (A loop calling
    /// this, rather than a closure called with each group: a closure is
    /// compiled apart from the SIMD kernel that calls it, without its
    /// instruction set, and its multiply-adds were calls.)
    #[inline(always)]
    pub(super) fn next<'g>(&mut self, group: &'g mut [(usize, usize); GROUP]) -> Option<&'g [(usize, usize)]> {
        let slots = self.ring.len();
        let mut size = 0;
        loop {
            if self.round + 1 >= slots {
                if size == 0 {
                    self.round = 0;
                    return None;
                }
                return Some(&group[..size]);
            }
            if self.at == slots / 2 {
                // After the last round the slots are as before the first.
                self.ring[1..].rotate_right(1);
                (self.round, self.at) = (self.round + 1, 0);
                if size > 0 {
                    return Some(&group[..size]);
                }
                continue;
            }
            if size == GROUP {
                return Some(&group[..size]);
            }
            let (x, y) = (self.ring[self.at], self.ring[slots - 1 - self.at]);
            self.at += 1;
            if x.max(y) < self.cols {
                group[size] = (x.min(y), x.max(y));
                size += 1;
            }
        }
    }
}

/// Pairs of a round that go through the products, the rotations and their
/// application together.
pub(super) const GROUP: usize = 4;

/// Lanes of the running sums of [`dot`]: a vector of f64 at AVX-512, two
/// at AVX2, a whole row of [`Rows`] padding.
const LANES: usize = 8;

/// `x·y` (of whole [`LANES`]) in `LANES` running sums, added in order at
/// the end (as `norm`'s sums are: a pairwise tree there made LLVM split
/// the loop into vectors of two lanes).
#[inline(always)]
pub(super) fn dot<I: Isa, T: Field>(x: &[T], y: &[T]) -> T {
    let mut acc = [<T as Num>::ZERO; LANES];
    for (a, b) in x.chunks_exact(LANES).zip(y.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] = madd::<I, T>(a[l], b[l], acc[l]);
        }
    }
    let mut sum = <T as Num>::ZERO;
    for v in acc {
        sum = sum + v;
    }
    sum
}

/// The rotation `[c s; −s c]` that makes columns with the Gram matrix
/// `[α γ; γ β]` orthogonal (takes the symmetric `[α γ; γ β]` to a
/// diagonal one, `Jᵀ [α γ; γ β] J`), and `t = s / c`: the root of `t² +
/// 2ζt − 1 = 0`, `ζ = (β − α) / 2γ`, of least magnitude (the rotation by
/// at most π/4); the diagonal becomes `α − tγ`, `β + tγ`. With `d = β − α`,
/// `g = 2γ` and `e = d ± √(d² + g²)` (the sign `d`'s), `t = g / e`, so `c =
/// |e| / h` and `s = ±g / h` with `h = √(e² + g²)`: two square roots and a
/// division on the way to `c` and `s`, where `t` first, then `c`, takes two
/// of each. `d` and `g` too small or too large to square are scaled first
/// (`c` and `s` do not change).
#[inline(always)]
pub(super) fn rotation<T: Field + Sqrt>(alpha: T, beta: T, gamma: T) -> (T, T, T) {
    let zero = <T as Num>::ZERO;
    let (mut d, mut g) = (beta - alpha, gamma + gamma);
    let big = d.abs().max_nan(g.abs());
    let root = T::TINY.sqrt();
    if big < root || big * root > <T as Num>::ONE {
        (d, g) = (d / big, g / big);
    }
    let r = (d * d + g * g).sqrt();
    let e = if d < zero { d - r } else { d + r };
    let inv = <T as Num>::ONE / (e * e + g * g).sqrt();
    let s = if e < zero { g.neg() } else { g };
    (e.abs() * inv, s * inv, g / e)
}

/// `(x, y) ← (c x − s y, s x + c y)`.
#[inline(always)]
pub(super) fn rotate<I: Isa, T: Field>(x: &mut [T], y: &mut [T], c: T, s: T) {
    for (a, b) in x.iter_mut().zip(y.iter_mut()) {
        let (p, q) = (*a, *b);
        *a = madd::<I, T>(c, p, (s * q).neg());
        *b = madd::<I, T>(s, p, c * q);
    }
}
