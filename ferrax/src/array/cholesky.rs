//! The Cholesky factorisation `A = L Lᵀ` in place on a row-major matrix,
//! blocked as LAPACK's recursive `potrf2` is: `L₁₁ = chol(A₁₁)`, then
//! `L₂₁ = A₂₁ L₁₁⁻ᵀ` (a triangular solve against a transposed copy of `A₂₁`),
//! `A₂₂ −= L₂₁ L₂₁ᵀ` (products on the GEMM, its lower triangle only) and
//! `L₂₂ = chol(A₂₂)`. Blocks of [`BLOCK`] rows are factored by dot
//! products along their rows.
//!
//! Row-major storage means no transposes in or out, and only the lower
//! triangle is read.

use super::layout::transpose_plane;
use super::matmul::{halve, pieces_for, subtract_product, Strided};
use super::norm::Sqrt;
use super::pool;
use super::triangular::{solve_lower_in, Field};

/// Blocks of at most this many rows are factored element by element.
const BLOCK: usize = 32;

/// Below this many rows the lower-triangular update `C −= A Aᵀ` is one
/// product over the whole square (its upper half is wasted work, but
/// smaller products run slower).
const SQUARE: usize = 128;

/// Factors the `n × n` row-major `a` in place from its lower triangle:
/// `L` below and on the diagonal, zeros above. Returns false, with `a`
/// partly overwritten, when a pivot is not positive (`A` is not positive
/// definite, or holds a NaN), as LAPACK's `potrf` reports.
///
/// # Panics
/// When `a` is shorter than `n × n`.
pub(crate) fn cholesky_in_place<T: Field + Sqrt>(a: &mut [T], n: usize) -> bool {
    assert!(a.len() >= n * n, "cholesky: a {n} × {n} matrix with {} elements", a.len());
    // SAFETY: `a` holds the n × n matrix, rows n apart.
    let ok = unsafe { factor(a.as_mut_ptr(), n, n) };
    for (i, row) in a.chunks_exact_mut(n.max(1)).take(n).enumerate() {
        row[i + 1..].fill(T::default());
    }
    ok
}

/// Factors the `n × n` block at `a` (rows `ld` apart) from its lower
/// triangle; its upper triangle may be overwritten.
///
/// # Safety
/// The block lies within one writable allocation.
unsafe fn factor<T: Field + Sqrt>(a: *mut T, n: usize, ld: usize) -> bool {
    if n <= BLOCK {
        // SAFETY: the caller's.
        return unsafe { unblocked(a, n, ld) };
    }
    let h = halve(n);
    let at = |i: usize, j: usize| a.wrapping_add(i * ld + j);
    // SAFETY (each step): the blocks named lie within the caller's; `A₂₁`
    // (rows h.., columns ..h, the `span` elements from its first to its
    // last, of which only its own are written) is disjoint from `L₁₁`, `t`
    // and `A₂₂`, and no other reference to the matrix is live.
    unsafe {
        if !factor(a, h, ld) {
            return false;
        }
        // L₁₁ L₂₁ᵀ = A₂₁ᵀ, solved in a transposed copy of A₂₁ (the solve
        // wants its right-hand side's rows contiguous), written back.
        let (m, span) = (n - h, (n - h - 1) * ld + h);
        let mut t = pool::filled(h * m, T::default());
        transpose_plane(std::slice::from_raw_parts(at(h, 0), span), ld, h, m, &mut t, m);
        solve_lower_in(h, a, ld, false, t.as_mut_ptr(), m, m);
        transpose_plane(&t, m, m, h, std::slice::from_raw_parts_mut(at(h, 0), span), ld);
        pool::give_back(t);
        lower_update(m, h, at(h, h), ld, at(h, 0));
        factor(at(h, h), n - h, ld)
    }
}

/// `C −= A Aᵀ` on the lower triangle of the `n × n` block `c` (and
/// perhaps some of its upper), `a` being `n × k`, both with rows `ld`
/// apart: LAPACK's `syrk`, by halves down to [`SQUARE`] rows.
///
/// # Safety
/// The blocks lie within one allocation, `c` writable and apart from `a`.
unsafe fn lower_update<T: Field>(n: usize, k: usize, c: *mut T, ld: usize, a: *const T) {
    let a_t = |a: *const T| Strided::transposed(a, ld);
    if n <= SQUARE {
        // SAFETY: the caller's.
        return unsafe {
            subtract_product(n, n, k, Strided::rows(c, ld), Strided::rows(a, ld), a_t(a), pieces_for(2 * n * n * k))
        };
    }
    let h = halve(n);
    let (c21, c22, a2) = (c.wrapping_add(h * ld), c.wrapping_add(h * ld + h), a.wrapping_add(h * ld));
    // SAFETY: the caller's, on the blocks C₁₁, C₂₁ (against A₂ A₁ᵀ) and C₂₂.
    unsafe {
        lower_update(h, k, c, ld, a);
        subtract_product(
            n - h,
            h,
            k,
            Strided::rows(c21, ld),
            Strided::rows(a2, ld),
            a_t(a),
            pieces_for(2 * (n - h) * h * k),
        );
        lower_update(n - h, k, c22, ld, a2);
    }
}

/// Factors a small block row by row, each element of `L` from the dot
/// product of the two rows before it (LAPACK's `potf2`, which also scales
/// by the reciprocal of the pivot).
///
/// # Safety
/// As for [`factor`].
unsafe fn unblocked<T: Field + Sqrt>(a: *mut T, n: usize, ld: usize) -> bool {
    for j in 0..n {
        // SAFETY: rows i, j < n and columns ≤ j of the caller's block.
        unsafe {
            let row_j = std::slice::from_raw_parts_mut(a.add(j * ld), j + 1);
            let d = row_j[j] - dot(&row_j[..j], &row_j[..j]);
            // A NaN pivot fails too, as in LAPACK.
            if d.partial_cmp(&T::default()) != Some(std::cmp::Ordering::Greater) {
                return false;
            }
            let l = d.sqrt();
            row_j[j] = l;
            let r = <T as super::Num>::ONE / l;
            for i in j + 1..n {
                let row_i = std::slice::from_raw_parts_mut(a.add(i * ld), j + 1);
                row_i[j] = (row_i[j] - dot(&row_i[..j], &row_j[..j])) * r;
            }
        }
    }
    true
}

fn dot<T: Field>(x: &[T], y: &[T]) -> T {
    x.iter().zip(y).fold(T::default(), |s, (&p, &q)| s + p * q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Rng;

    /// `L Lᵀ` against `A` at sizes on both sides of the blocks and of the
    /// square update, in f64 and f32; the upper triangle is neither read
    /// (NaNs there change nothing) nor left nonzero; a matrix that is not
    /// positive definite, or holds a NaN below the diagonal, is reported.
    #[test]
    fn factors_reproduce_their_matrices() {
        let mut rng = Rng::new(5);
        for &n in &[1, 2, 31, 33, 100, 130, 300] {
            let g: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    a[i * n + j] = (0..n).map(|k| g[i * n + k] * g[j * n + k]).sum::<f64>() / n as f64
                        + if i == j { 1.0 } else { 0.0 };
                }
            }
            let mut f = a.clone();
            for i in 0..n {
                f[i * n + i + 1..(i + 1) * n].fill(f64::NAN);
            }
            assert!(cholesky_in_place(&mut f, n), "n {n}: positive definite");
            let mut worst = 0.0f64;
            for i in 0..n {
                assert!(f[i * n + i + 1..(i + 1) * n].iter().all(|&v| v == 0.0), "n {n}: row {i} above the diagonal");
                for j in 0..=i {
                    let llt: f64 = (0..=j).map(|k| f[i * n + k] * f[j * n + k]).sum();
                    worst = worst.max((llt - a[i * n + j]).abs());
                }
            }
            assert!(worst < 1e-12, "n {n}: |L Lᵀ − A| up to {worst:e}");
            let mut f32s: Vec<f32> = a.iter().map(|&v| v as f32).collect();
            assert!(cholesky_in_place(&mut f32s, n));
            let diff = f32s.iter().zip(&f).map(|(p, q)| (*p as f64 - q).abs()).fold(0.0, f64::max);
            assert!(diff < 1e-4, "f32, n {n}: factors within {diff:e}");
            let mut not_pd = a.clone();
            not_pd[(n - 1) * n + n - 1] = -1.0;
            assert!(!cholesky_in_place(&mut not_pd, n), "n {n}: a negative last pivot");
            let mut with_nan = a.clone();
            with_nan[(n - 1) * n] = f64::NAN;
            assert!(!cholesky_in_place(&mut with_nan, n), "n {n}: a NaN in the lower triangle");
        }
    }
}
