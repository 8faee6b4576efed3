//! Triangular solves, `op(A) X = B` in place of `B`, blocked so that
//! nearly all of the work is matrix products on the `gemm` crate (as
//! `matmul`'s are).
//!
//! The triangle is halved recursively: with `A = [A₁₁ 0; A₂₁ A₂₂]` (lower),
//! `X₁ = A₁₁⁻¹ B₁`, then `B₂ −= A₂₁ X₁` (a product), then `X₂ = A₂₂⁻¹ B₂`;
//! an upper triangle goes from the bottom up. Blocks of [`LEAF`] rows are
//! solved by substitution, a few columns of `B` at a time held in
//! registers. At `n` rows and `k` columns the products carry all but
//! about `n · LEAF · k` of the `n² k` flops. LAPACK's `trsm` is blocked the
//! same way and divides by the diagonal as this does.

use std::ops::Range;

use super::matmul::num_like::Scalar;
use super::matmul::{halve, pieces_for, subtract_product, Strided};
use super::parallel;
use super::simd::{self, madd, Isa, Kernel, MulAdd};
use super::Num;

/// Blocks of at most this many rows are solved by substitution.
const LEAF: usize = 64;

/// The bytes of a row of `B` one substitution carries in registers: four
/// AVX-512 vectors or eight AVX2 ones, enough independent sums to cover
/// the latency of the multiply-adds (with 16 f64 columns, two vectors, the
/// chains of dependent multiply-adds left the leaves at a quarter of the
/// FMA units' rate).
const ROW_BYTES: usize = 256;

/// The elements a solve or factorisation works on: the float types of `matmul`.
pub(crate) trait Field: Num + Scalar + MulAdd {
    /// The smallest positive normal number (LAPACK's `sfmin`).
    const TINY: Self;
    /// The distance from one to the next larger number (LAPACK's `eps` is half of it).
    const EPS: Self;
}
impl Field for f32 {
    const TINY: Self = f32::MIN_POSITIVE;
    const EPS: Self = f32::EPSILON;
}
impl Field for f64 {
    const TINY: Self = f64::MIN_POSITIVE;
    const EPS: Self = f64::EPSILON;
}

/// Solves `op(A) X = B` for `X`, written over `b`. `a` is `n × n`
/// row-major, triangular below its diagonal (`lower`) or above it, and
/// `op(A)` is `Aᵀ` when `transpose`; only that triangle is read, and its
/// diagonal only when not `unit` (taken as ones). `b` is `n × k` row-major.
/// A zero on the diagonal gives infinities and NaNs, as LAPACK's `trsm`.
///
/// # Panics
/// When `a` or `b` is shorter than its matrix.
pub(crate) fn solve_triangular<T: Field>(
    a: &[T],
    n: usize,
    lower: bool,
    transpose: bool,
    unit: bool,
    b: &mut [T],
    k: usize,
) {
    assert!(a.len() >= n * n && b.len() >= n * k, "triangular solve: {n} × {n} matrix against {n} × {k}");
    if n == 0 || k == 0 {
        return;
    }
    let m = if transpose { Strided::transposed(a.as_ptr(), n) } else { Strided::rows(a.as_ptr(), n) };
    // Transposing moves the triangle to the other side of the diagonal.
    let tri = Tri { m, lower: lower != transpose, unit };
    // SAFETY: the view covers `a`'s n × n elements (either way round),
    // `b` holds n × k, and they are distinct borrows.
    unsafe { solve_block(n, tri, b.as_mut_ptr(), k, k) }
}

/// [`solve_triangular`] for a lower triangle (unit or not) and a
/// right-hand side inside larger matrices, the steps of the blocked LU and
/// Cholesky factorisations: `a` is `n × n` row-major with rows `lda`
/// apart, `b` is `n × k` row-major with rows `ldb` apart.
///
/// # Safety
/// Both blocks lie within their allocations; `b`'s is writable and does
/// not overlap `a`'s.
pub(crate) unsafe fn solve_lower_in<T: Field>(
    n: usize,
    a: *const T,
    lda: usize,
    unit: bool,
    b: *mut T,
    k: usize,
    ldb: usize,
) {
    let tri = Tri { m: Strided::rows(a, lda), lower: true, unit };
    // SAFETY: the caller's.
    unsafe { solve_block(n, tri, b, k, ldb) }
}

/// A triangular matrix, which triangle of the view `m` holds it, and
/// whether its diagonal is taken as ones.
#[derive(Clone, Copy)]
struct Tri<T> {
    m: Strided<*const T>,
    lower: bool,
    unit: bool,
}

impl<T: Copy> Tri<T> {
    /// The block starting at (i, j).
    fn from(self, i: usize, j: usize) -> Tri<T> {
        let at = self.m.at.wrapping_offset(i as isize * self.m.row + j as isize * self.m.col);
        Tri { m: Strided { at, ..self.m }, ..self }
    }

    /// # Safety
    /// (i, j) lies within the matrix.
    #[inline(always)]
    unsafe fn get(self, i: usize, j: usize) -> T {
        // SAFETY: the caller's.
        unsafe { *self.m.at.offset(i as isize * self.m.row + j as isize * self.m.col) }
    }
}

/// Solves the `n`-row block `a` against the `n × k` row-major `b` (rows
/// `ldb` apart).
///
/// # Safety
/// `a` addresses an `n × n` matrix; `b` addresses `n × k` writable
/// elements that do not overlap it.
unsafe fn solve_block<T: Field>(n: usize, a: Tri<T>, b: *mut T, k: usize, ldb: usize) {
    if n <= LEAF {
        // SAFETY: the caller's.
        return unsafe { substitute(n, a, b, k, ldb) };
    }
    let h = halve(n);
    // Lower: rows ..h are solved first; upper: rows h.. first.
    let ((first, m1), (second, m2)) = if a.lower { ((0, h), (h, n - h)) } else { ((h, n - h), (0, h)) };
    let rows = |at: usize| b.wrapping_add(at * ldb);
    // SAFETY (the three calls): the blocks lie within the caller's
    // matrices; rows `first..` and `second..` of `b` are disjoint, so the
    // product's destination overlaps neither operand.
    unsafe {
        solve_block(m1, a.from(first, first), rows(first), k, ldb);
        subtract_product(
            m2,
            k,
            m1,
            Strided::rows(rows(second), ldb),
            a.from(second, first).m,
            Strided::rows(rows(first).cast_const(), ldb),
            pieces_for(2 * m1 * m2 * k),
        );
        solve_block(m2, a.from(second, second), rows(second), k, ldb);
    }
}

/// A raw pointer the team's threads use for disjoint columns of `B`.
#[derive(Clone, Copy)]
struct Columns<T>(*mut T);
// SAFETY: each piece of a substitution writes only its own columns.
unsafe impl<T> Sync for Columns<T> {}
unsafe impl<T> Send for Columns<T> {}
/// The triangle, read by every piece.
#[derive(Clone, Copy)]
struct Shared<T>(Tri<T>);
// SAFETY: only read while the substitution runs.
unsafe impl<T> Sync for Shared<T> {}

/// Solves a block of at most [`LEAF`] rows by substitution, its columns
/// split between the team's threads when there are enough of them.
///
/// # Safety
/// As for [`solve_block`].
unsafe fn substitute<T: Field>(n: usize, a: Tri<T>, b: *mut T, k: usize, ldb: usize) {
    let cols = ROW_BYTES / std::mem::size_of::<T>();
    // Counted as four times a product's flops: the substitution runs at
    // about a quarter of a product's speed.
    let pieces = pieces_for(4 * n * n * k).min(k / cols).max(1);
    let step = k.div_ceil(pieces).next_multiple_of(cols);
    let (b, a) = (Columns(b), Shared(a));
    let (b, a) = (&b, &a);
    parallel::team::run(k.div_ceil(step), &|p| {
        let cols = p * step..((p + 1) * step).min(k);
        simd::dispatch(Substitution { n, a: a.0, b: b.0, ldb, cols });
    });
}

/// Substitution over the columns `cols` of `b`.
struct Substitution<T> {
    n: usize,
    a: Tri<T>,
    b: *mut T,
    /// The distance between `b`'s rows.
    ldb: usize,
    cols: Range<usize>,
}

impl<T: Field> Kernel for Substitution<T> {
    type Out = ();

    #[inline(always)]
    fn run<I: Isa>(self) {
        let mut c = self.cols.start;
        if std::mem::size_of::<T>() == 4 {
            while c + ROW_BYTES / 4 <= self.cols.end {
                self.columns::<I, { ROW_BYTES / 4 }>(c);
                c += ROW_BYTES / 4;
            }
        }
        while c + ROW_BYTES / 8 <= self.cols.end {
            self.columns::<I, { ROW_BYTES / 8 }>(c);
            c += ROW_BYTES / 8;
        }
        while c < self.cols.end {
            self.columns::<I, 1>(c);
            c += 1;
        }
    }
}

impl<T: Field> Substitution<T> {
    /// Columns `c..c + W`, held in registers from a row's first term to its
    /// division.
    #[inline(always)]
    fn columns<I: Isa, const W: usize>(&self, c: usize) {
        let (n, a, ldb) = (self.n, self.a, self.ldb);
        for step in 0..n {
            let i = if a.lower { step } else { n - 1 - step };
            let solved = if a.lower { 0..i } else { i + 1..n };
            // SAFETY: rows i and j < n, columns c..c + W ≤ k of `b` (the
            // caller's range), and (i, j) within the n × n triangle.
            unsafe {
                let mut x: [T; W] = std::array::from_fn(|w| *self.b.add(i * ldb + c + w));
                for j in solved {
                    let l = a.get(i, j).neg();
                    let xj = self.b.add(j * ldb + c);
                    for (w, x) in x.iter_mut().enumerate() {
                        *x = madd::<I, T>(l, *xj.add(w), *x);
                    }
                }
                if !a.unit {
                    let d = a.get(i, i);
                    for x in &mut x {
                        *x = *x / d;
                    }
                }
                for (w, x) in x.into_iter().enumerate() {
                    *self.b.add(i * ldb + c + w) = x;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Rng;

    /// `op(A) X` for the triangle the solve reads (a unit diagonal where
    /// asked), in f64, by the definition.
    #[allow(clippy::too_many_arguments)]
    fn apply(a: &[f64], n: usize, lower: bool, transpose: bool, unit: bool, x: &[f64], k: usize) -> Vec<f64> {
        let at = |i: usize, j: usize| {
            let (r, c) = if transpose { (j, i) } else { (i, j) };
            let inside = if lower { c <= r } else { c >= r };
            match (inside, r == c && unit) {
                (_, true) => 1.0,
                (true, false) => a[r * n + c],
                (false, false) => 0.0,
            }
        };
        let mut out = vec![0.0; n * k];
        for i in 0..n {
            for j in 0..n {
                for c in 0..k {
                    out[i * k + c] += at(i, j) * x[j * k + c];
                }
            }
        }
        out
    }

    /// Every variant, at sizes on both sides of the leaf and of the
    /// column block, reproduces its right-hand side: `op(A) X = B` to the
    /// rounding of a well-conditioned triangle (diagonal 2 to 3, the rest
    /// small), and the other triangle is never read (it holds NaNs).
    #[test]
    fn solves_reproduce_their_right_hand_sides() {
        let mut rng = Rng::new(7);
        for &(n, k) in &[(1, 1), (5, 3), (32, 32), (33, 65), (70, 1), (100, 40), (257, 130)] {
            for lower in [true, false] {
                for transpose in [false, true] {
                    for unit in [false, true] {
                        let mut a = vec![f64::NAN; n * n];
                        for i in 0..n {
                            for j in 0..n {
                                if (lower && j <= i) || (!lower && j >= i) {
                                    a[i * n + j] =
                                        if i == j { 2.0 + rng.uniform() } else { (rng.uniform() - 0.5) / n as f64 };
                                }
                            }
                        }
                        if unit {
                            (0..n).for_each(|i| a[i * n + i] = f64::NAN);
                        }
                        let b: Vec<f64> = (0..n * k).map(|_| rng.uniform() - 0.5).collect();
                        let mut x = b.clone();
                        solve_triangular(&a, n, lower, transpose, unit, &mut x, k);
                        let back = apply(&a, n, lower, transpose, unit, &x, k);
                        let err = back.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
                        assert!(
                            err < 1e-14,
                            "n {n}, k {k}, lower {lower}, transpose {transpose}, unit {unit}: {err:e}"
                        );
                        let mut x32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
                        let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                        solve_triangular(&a32, n, lower, transpose, unit, &mut x32, k);
                        let err = x32.iter().zip(&x).map(|(p, q)| (*p as f64 - q).abs()).fold(0.0, f64::max);
                        assert!(err < 1e-5, "f32, n {n}, k {k}: {err:e}");
                    }
                }
            }
        }
    }
}
