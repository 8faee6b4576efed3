//! LU factorisation with partial pivoting, `P A = L U`, in place on a
//! row-major matrix, blocked as LAPACK's recursive `getrf2` is: the
//! left half of the columns is factored, its row swaps applied to the
//! right half, `U₁₂ = L₁₁⁻¹ A₁₂` solved and `A₂₂ −= L₂₁ U₁₂` subtracted
//! (both on the GEMM, see [`super::triangular`]), and the right half's
//! trailing block factored in turn. Panels of [`PANEL`] columns are
//! factored column by column in a column-major copy.
//!
//! Row-major storage makes the row swaps contiguous copies, and the
//! matrix need not be transposed for the factorisation and back.

use super::matmul::{halve, pieces_for, subtract_product, Strided};
use super::simd::{self, madd, Isa, Kernel};
use super::triangular::{solve_lower_in, Field};

/// Panels of at most this many columns are factored column by column.
const PANEL: usize = 16;

/// Factors the `n × n` row-major `a` in place: `L` (unit diagonal, below
/// it) and `U` packed, as LAPACK's `getrf` leaves them, and `pivots[i]`
/// the row that row `i` was swapped with, in turn. As LAPACK, a column
/// whose largest candidate is zero is left unscaled (the factor is then
/// singular, with a zero on `U`'s diagonal).
///
/// # Panics
/// When `a` or `pivots` is shorter than `n × n` or `n`.
pub(crate) fn lu_in_place<T: Field>(a: &mut [T], n: usize, pivots: &mut [usize]) {
    assert!(a.len() >= n * n && pivots.len() >= n, "lu: a {n} × {n} matrix with {} elements", a.len());
    let mut scratch = Vec::with_capacity(n * PANEL.min(n));
    // SAFETY: `a` holds the n × n matrix, rows n apart.
    unsafe { factor(a.as_mut_ptr(), n, n, n, &mut pivots[..n], &mut scratch) }
}

/// Factors the `m × cols` block at `a` (rows `ld` apart, `m ≥ cols`),
/// with `pivots` (one per column) numbered from the block's first row;
/// `scratch` holds the panels' copies.
///
/// # Safety
/// The block lies within one writable allocation.
unsafe fn factor<T: Field>(a: *mut T, m: usize, cols: usize, ld: usize, pivots: &mut [usize], scratch: &mut Vec<T>) {
    if cols <= PANEL {
        // SAFETY: the caller's.
        return unsafe { panel(a, m, cols, ld, pivots, scratch) };
    }
    let h = halve(cols);
    let (left, right) = pivots.split_at_mut(h);
    let at = |i: usize, j: usize| a.wrapping_add(i * ld + j);
    // SAFETY (each step): the blocks named lie within the caller's; the
    // product's destination (rows h.., columns h..) overlaps neither of
    // its operands (columns ..h, and rows ..h).
    unsafe {
        factor(a, m, h, ld, left, scratch);
        swap_rows(at(0, h), cols - h, ld, left);
        solve_lower_in(h, a, ld, true, at(0, h), cols - h, ld);
        subtract_product(
            m - h,
            cols - h,
            h,
            Strided::rows(at(h, h), ld),
            Strided::rows(at(h, 0).cast_const(), ld),
            Strided::rows(at(0, h).cast_const(), ld),
            pieces_for(2 * (m - h) * (cols - h) * h),
        );
        factor(at(h, h), m - h, cols - h, ld, right, scratch);
        swap_rows(at(h, 0), h, ld, right);
    }
    for p in right {
        *p += h;
    }
}

/// Swaps row `i` with row `pivots[i]` (≥ i), in turn, over `width`
/// columns of the rows `ld` apart at `a`.
///
/// # Safety
/// The rows named lie within one writable allocation.
unsafe fn swap_rows<T: Copy>(a: *mut T, width: usize, ld: usize, pivots: &[usize]) {
    for (i, &p) in pivots.iter().enumerate() {
        if p != i {
            // SAFETY: rows i < p, `width` ≤ ld elements each, do not overlap.
            unsafe { std::ptr::swap_nonoverlapping(a.add(i * ld), a.add(p * ld), width) };
        }
    }
}

/// Factors a panel of at most [`PANEL`] columns column by column, in a
/// column-major copy: down a column of the row-major matrix, every
/// element is on a line of its own, and with rows a power of two apart
/// the lines fall in the same few cache sets.
///
/// # Safety
/// As for [`factor`].
unsafe fn panel<T: Field>(a: *mut T, m: usize, cols: usize, ld: usize, pivots: &mut [usize], s: &mut Vec<T>) {
    s.clear();
    s.resize(m * cols, T::default());
    for i in 0..m {
        for j in 0..cols {
            // SAFETY: (i, j) is in the block.
            s[j * m + i] = unsafe { *a.add(i * ld + j) };
        }
    }
    simd::dispatch(Panel { s, m, cols, pivots });
    for i in 0..m {
        for j in 0..cols {
            // SAFETY: as above.
            unsafe { *a.add(i * ld + j) = s[j * m + i] };
        }
    }
}

/// The unblocked factorisation of a column-major `m × cols` panel.
struct Panel<'a, T> {
    s: &'a mut [T],
    m: usize,
    cols: usize,
    pivots: &'a mut [usize],
}

impl<T: Field> Kernel for Panel<'_, T> {
    type Out = ();

    #[inline(always)]
    fn run<I: Isa>(self) {
        let Panel { s, m, cols, pivots } = self;
        for j in 0..cols {
            // The first of the largest magnitudes (BLAS's `idamax`).
            let col = &s[j * m..(j + 1) * m];
            let mut p = j;
            for i in j + 1..m {
                if col[i].abs() > col[p].abs() {
                    p = i;
                }
            }
            pivots[j] = p;
            let d = col[p];
            if d == T::default() {
                continue;
            }
            if p != j {
                for c in 0..cols {
                    s.swap(c * m + j, c * m + p);
                }
            }
            let (done, rest) = s.split_at_mut((j + 1) * m);
            let col = &mut done[j * m + j + 1..];
            // LAPACK multiplies by the reciprocal unless it would overflow.
            if d.abs() >= T::TINY {
                let r = <T as super::Num>::ONE / d;
                col.iter_mut().for_each(|x| *x = *x * r);
            } else {
                col.iter_mut().for_each(|x| *x = *x / d);
            }
            for target in rest.chunks_exact_mut(m) {
                let u = target[j].neg();
                for (t, &l) in target[j + 1..].iter_mut().zip(&*col) {
                    *t = madd::<I, T>(l, u, *t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Rng;

    /// `P A` against `L U` from the packed factors, at sizes on both sides
    /// of a panel and of the recursion's splits, in f64 and f32; and a
    /// singular matrix keeps a zero on U's diagonal without NaNs.
    #[test]
    fn factors_reproduce_their_matrices() {
        let mut rng = Rng::new(3);
        for &n in &[1, 2, 7, 16, 17, 40, 100, 257] {
            let a: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
            let mut f = a.clone();
            let mut piv = vec![0; n];
            lu_in_place(&mut f, n, &mut piv);
            let mut pa = a.clone();
            for (i, &p) in piv.iter().enumerate() {
                assert!(p >= i && p < n, "n {n}: pivot {p} at {i}");
                for j in 0..n {
                    pa.swap(i * n + j, p * n + j);
                }
            }
            let mut worst = 0.0f64;
            for i in 0..n {
                for j in 0..n {
                    let lu: f64 = (0..=i.min(j)).map(|k| if k == i { 1.0 } else { f[i * n + k] } * f[k * n + j]).sum();
                    worst = worst.max((lu - pa[i * n + j]).abs());
                }
                // Partial pivoting keeps every multiplier within 1.
                assert!((0..i).all(|k| f[i * n + k].abs() <= 1.0), "n {n}: row {i} of L");
            }
            assert!(worst < 1e-12, "n {n}: |P A − L U| up to {worst:e}");
            let mut f32s: Vec<f32> = a.iter().map(|&v| v as f32).collect();
            let mut piv32 = vec![0; n];
            lu_in_place(&mut f32s, n, &mut piv32);
            let diff = f32s.iter().zip(&f).map(|(p, q)| (*p as f64 - q).abs()).fold(0.0, f64::max);
            assert!(
                piv32 == piv && diff < 1e-3,
                "f32, n {n}: pivots {} the same, factors within {diff:e}",
                piv32 == piv
            );
        }
        // Rank 1, rows power-of-two multiples of one row: the first step's
        // multipliers are exact, so every later candidate is exactly zero.
        let n = 40;
        let mut a: Vec<f64> = (0..n * n).map(|k| ((1 << (k / n % 4)) * (k % n + 1)) as f64).collect();
        let mut piv = vec![0; n];
        lu_in_place(&mut a, n, &mut piv);
        assert!(a.iter().all(|v| v.is_finite()), "a singular matrix's factors are finite");
        assert!((1..n).all(|i| a[i * n + i] == 0.0), "U's diagonal after the first is zero");
    }
}
