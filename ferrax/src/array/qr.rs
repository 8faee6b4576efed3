//! The Householder QR factorisation of a small row-major matrix, unblocked
//! (LAPACK's `geqr2` and `org2r`): for matrices of a few dozen rows a
//! blocked library factorisation spends more on its set-up than on the
//! arithmetic. Each reflector is applied to the rows below it as a product
//! `w = vᵀ A` and an update `A −= τ v w`, both along contiguous rows.

use std::ops::Range;

use super::norm::Sqrt;
use super::simd::{self, madd, Isa, Kernel};
use super::triangular::Field;
use super::Num;

/// Factors the row-major `m × n` matrix `a` in place and writes `Q` into
/// the row-major `m × q_cols` `q` (`q_cols` is `min(m, n)`, or `m` for the
/// complete factorisation). Afterwards `a` holds `R` on and above its
/// diagonal (in its first `min(m, n)` rows) and the reflectors below it.
/// The reflectors are LAPACK's (`larfg`): `H = I − τ v vᵀ` with `v₀ = 1`
/// maps `x` to `β e₀` with `β = −sign(x₀) ‖x‖`, and is the identity (τ =
/// 0) when `x` is already a multiple of `e₀`, so `R`'s diagonal takes the
/// signs LAPACK's does. `w` is scratch of at least `m + max(n, q_cols)`
/// elements, `taus` of `min(m, n)`.
///
/// # Panics
/// When a buffer is shorter than its matrix.
pub(crate) fn householder_qr<T: Field + Sqrt>(
    a: &mut [T],
    m: usize,
    n: usize,
    q: &mut [T],
    q_cols: usize,
    w: &mut [T],
    taus: &mut [T],
) {
    let k = m.min(n);
    assert!(a.len() >= m * n && q.len() >= m * q_cols, "householder_qr: a {m} × {n} matrix and a {m} × {q_cols} Q");
    assert!(w.len() >= m + n.max(q_cols) && taus.len() >= k, "householder_qr: scratch for {m} × {n} and {q_cols}");
    simd::dispatch(Qr { a, m, n, q, q_cols, w, taus });
}

/// [`householder_qr`]'s loops, compiled for each SIMD level.
struct Qr<'a, T> {
    a: &'a mut [T],
    m: usize,
    n: usize,
    q: &'a mut [T],
    q_cols: usize,
    w: &'a mut [T],
    taus: &'a mut [T],
}

impl<T: Field + Sqrt> Kernel for Qr<'_, T> {
    type Out = ();

    #[inline(always)]
    fn run<I: Isa>(self) {
        let Qr { a, m, n, q, q_cols, w, taus } = self;
        let (v, w) = w.split_at_mut(m);
        for j in 0..m.min(n) {
            taus[j] = reflector::<I, T>(a, n, j, m);
            gather(a, n, j, &mut v[..m - j]);
            reflect::<I, T>(&v[..m - j], taus[j], a, n, j, j + 1..n, w);
        }
        // Q = H₀ H₁ … H_{k−1} I, the last reflector applied first, so that
        // `H_j` meets only rows and columns from `j` on (`org2r`).
        q[..m * q_cols].fill(<T as Num>::ZERO);
        for i in 0..m.min(q_cols) {
            q[i * q_cols + i] = <T as Num>::ONE;
        }
        for j in (0..m.min(n)).rev() {
            gather(a, n, j, &mut v[..m - j]);
            reflect::<I, T>(&v[..m - j], taus[j], q, q_cols, j, j..q_cols, w);
        }
    }
}

/// Makes the reflector of column `j` from row `j` down: writes `β` at
/// `(j, j)` and `v` (without its leading 1) below it, and returns `τ`.
#[inline(always)]
pub(super) fn reflector<I: Isa, T: Field + Sqrt>(a: &mut [T], n: usize, j: usize, m: usize) -> T {
    let alpha = a[j * n + j];
    // ‖x below the diagonal‖, scaled by its largest element so that squares
    // neither overflow nor underflow (as `nrm2` takes care to).
    let mut big = <T as Num>::ZERO;
    for i in j + 1..m {
        big = big.max_nan(a[i * n + j].abs());
    }
    if big == <T as Num>::ZERO {
        return <T as Num>::ZERO; // already a multiple of e₀ (`larfg`'s τ = 0)
    }
    let big = big.max_nan(alpha.abs());
    let inv = <T as Num>::ONE / big;
    let mut sum = (alpha * inv) * (alpha * inv);
    for i in j + 1..m {
        let s = a[i * n + j] * inv;
        sum = madd::<I, T>(s, s, sum);
    }
    let norm = big * sum.sqrt();
    let beta = if alpha.is_nan_like() || alpha >= <T as Num>::ZERO { norm.neg() } else { norm };
    let scale = <T as Num>::ONE / (alpha - beta);
    for i in j + 1..m {
        a[i * n + j] = a[i * n + j] * scale;
    }
    a[j * n + j] = beta;
    (beta - alpha) / beta
}

/// The reflector stored in column `j` of `a` below the diagonal, with its
/// leading one, into `v` (rows `j..m`).
#[inline(always)]
fn gather<T: Field>(a: &[T], n: usize, j: usize, v: &mut [T]) {
    v[0] = <T as Num>::ONE;
    for (i, x) in v.iter_mut().enumerate().skip(1) {
        *x = a[(j + i) * n + j];
    }
}

/// Applies `I − τ v vᵀ` to the rows `j..j + v.len()` and columns `cols`
/// of the row-major `t` (rows `ld` apart): `w = vᵀ T`, then `T −= τ v w`.
#[inline(always)]
fn reflect<I: Isa, T: Field>(v: &[T], tau: T, t: &mut [T], ld: usize, j: usize, cols: Range<usize>, w: &mut [T]) {
    if tau == <T as Num>::ZERO || cols.is_empty() {
        return;
    }
    let w = &mut w[..cols.len()];
    w.fill(<T as Num>::ZERO);
    let row = |i: usize| (j + i) * ld + cols.start..(j + i) * ld + cols.end;
    for (i, &vi) in v.iter().enumerate() {
        accumulate::<I, T>(w, vi, &t[row(i)]);
    }
    for c in w.iter_mut() {
        *c = *c * tau;
    }
    for (i, &vi) in v.iter().enumerate() {
        accumulate::<I, T>(&mut t[row(i)], vi.neg(), w);
    }
}

/// `acc += v x`, element by element.
#[inline(always)]
fn accumulate<I: Isa, T: Field>(acc: &mut [T], v: T, x: &[T]) {
    for (s, &x) in acc.iter_mut().zip(x) {
        *s = madd::<I, T>(v, x, *s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Rng;

    /// `(Q, R)` of the row-major `m × n` `a`, `Q` with `q_cols` columns.
    fn qr<T: Field + Sqrt>(a: &[T], m: usize, n: usize, q_cols: usize) -> (Vec<T>, Vec<T>) {
        let (mut r, mut q) = (a.to_vec(), vec![<T as Num>::ZERO; m * q_cols]);
        let (mut w, mut taus) = (vec![<T as Num>::ZERO; m + n.max(q_cols)], vec![<T as Num>::ZERO; m.min(n)]);
        householder_qr(&mut r, m, n, &mut q, q_cols, &mut w, &mut taus);
        for i in 0..m {
            for j in 0..n.min(i) {
                r[i * n + j] = <T as Num>::ZERO;
            }
        }
        (q, r)
    }

    /// `Q R` against `A` and `Qᵀ Q` against `I`, thin and complete, tall,
    /// square and wide, on both sides of a SIMD register's width, in f64
    /// and f32 (the errors of Householder QR are a small multiple of
    /// `n ε ‖A‖`).
    #[test]
    fn factors_reproduce_their_matrices() {
        let mut rng = Rng::new(3);
        for (m, n) in [(1, 1), (5, 3), (3, 5), (16, 16), (17, 9), (9, 17), (32, 32)] {
            let a: Vec<f64> = (0..m * n).map(|_| rng.normal()).collect();
            let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
            for q_cols in [m.min(n), m] {
                let r_rows = if q_cols == m { m } else { m.min(n) };
                let (q, r) = qr(&a, m, n, q_cols);
                let (q32, r32) = qr(&a32, m, n, q_cols);
                for i in 0..m {
                    for j in 0..n {
                        let qr: f64 = (0..r_rows.min(q_cols)).map(|k| q[i * q_cols + k] * r[k * n + j]).sum();
                        assert!((qr - a[i * n + j]).abs() < 1e-13, "{m}×{n}: (QR)[{i},{j}] = {qr}");
                        let qr32: f32 = (0..r_rows.min(q_cols)).map(|k| q32[i * q_cols + k] * r32[k * n + j]).sum();
                        assert!((qr32 - a32[i * n + j]).abs() < 1e-5, "{m}×{n} f32: (QR)[{i},{j}] = {qr32}");
                    }
                }
                for i in 0..q_cols {
                    for j in 0..q_cols {
                        let dot: f64 = (0..m).map(|k| q[k * q_cols + i] * q[k * q_cols + j]).sum();
                        let want = if i == j { 1.0 } else { 0.0 };
                        assert!((dot - want).abs() < 1e-14, "{m}×{n}: (QᵀQ)[{i},{j}] = {dot}");
                    }
                }
            }
        }
    }

    /// LAPACK's reflectors: `[3, 4]ᵀ` gives `Q = [−0.6, −0.8]ᵀ`, `R = [−5]`
    /// (numpy's and JAX's answer); a column that is already a multiple of
    /// `e₀` is left alone, its sign too; a NaN spreads to the factors
    /// rather than disappearing; huge and tiny columns do not overflow or
    /// underflow.
    #[test]
    fn reflectors_are_lapacks() {
        let close = |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-15);
        let (q, r) = qr(&[3.0, 4.0], 2, 1, 1);
        assert!(close(&q, &[-0.6, -0.8]) && close(&r, &[-5.0, 0.0]), "{q:?} {r:?}");
        let (q, r) = qr(&[-2.0, 1.0, 0.0, 3.0], 2, 2, 2);
        assert_eq!((q, r), (vec![1.0, 0.0, 0.0, 1.0], vec![-2.0, 1.0, 0.0, 3.0]));
        let (q, r) = qr(&[1.0, f64::NAN, 2.0, 1.0], 2, 2, 2);
        assert!(q.iter().chain(&r).any(|x| x.is_nan()));
        for s in [1e300, 1e-300] {
            let (q, r) = qr(&[3.0 * s, 4.0 * s], 2, 1, 1);
            assert!((q[0] + 0.6).abs() < 1e-15 && (q[1] + 0.8).abs() < 1e-15 && (r[0] / s + 5.0).abs() < 1e-14);
        }
        let (q, r) = qr(&[3e30f32, 4e30], 2, 1, 1);
        assert!((q[0] + 0.6).abs() < 1e-6 && (r[0] / 1e30 + 5.0).abs() < 1e-5, "f32 squares overflow: {q:?} {r:?}");
    }
}
