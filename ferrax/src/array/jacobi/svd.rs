//! The singular value decomposition of a small matrix by one-sided Jacobi
//! rotations (Hestenes; LAPACK's `gesvj` without its preconditioning).
//!
//! The columns of `A` are rotated in pairs, each rotation making one pair
//! orthogonal, `W = A V` with `V` the product of the rotations, until every
//! pair is orthogonal to working precision; then `σⱼ = ‖wⱼ‖`,
//! `uⱼ = wⱼ / σⱼ` and `A = U Σ Vᵀ`. The columns are kept as contiguous
//! rows (`Aᵀ`, or `A` itself when it is wide: the decomposition of `Aᵀ`
//! gives `A`'s with `U` and `V` swapped), so each step reads two rows.

use super::{dot, largest, rotate, rotation, Rows, Tournament, GROUP, MAX_SWEEPS};
use crate::array::norm::Sqrt;
use crate::array::simd::{self, madd, Isa, Kernel};
use crate::array::triangular::Field;
use crate::array::Num;

/// A thread's buffers for the decompositions of `m × n` matrices.
pub(crate) struct JacobiSvd<T> {
    m: usize,
    n: usize,
    /// The rotated columns `wⱼ`, one a row.
    w: Rows<T>,
    /// The columns of `V`, one a row.
    v: Rows<T>,
    /// The squared norms of the columns while they turn, then the
    /// singular values.
    sigma: Vec<T>,
    /// The columns by singular value, largest first.
    order: Vec<usize>,
    /// The order of the pairs.
    pairs: Tournament,
    /// A candidate column while a basis is completed.
    spare: Vec<T>,
}

impl<T: Field + Sqrt> JacobiSvd<T> {
    /// Buffers for `m × n` matrices.
    pub(crate) fn new(m: usize, n: usize) -> Self {
        let (cols, len) = (m.min(n), m.max(n));
        let w = Rows::new(cols, len);
        let spare = vec![<T as Num>::ZERO; w.ld];
        JacobiSvd {
            m,
            n,
            w,
            v: Rows::new(cols, cols),
            sigma: vec![<T as Num>::ZERO; cols],
            order: vec![0; cols],
            pairs: Tournament::new(cols),
            spare,
        }
    }

    /// The thin decomposition of the row-major `m × n` matrix `a`: `U`
    /// (`m × k`, `k = min(m, n)`), the singular values, descending, and
    /// `Vᵀ` (`k × n`), row-major. A matrix with a NaN or an infinity, or
    /// one whose rotations did not converge, gives NaNs, as a failed LAPACK
    /// decomposition does in JAX. Returns false, and writes nothing, where
    /// a column's norm is below `√(TINY / ε)` times the largest element
    /// (`diag(1, 10⁻²⁰⁰)`): its square underflows, and its singular value
    /// would come out 0, so the matrix is left to a method that scales its
    /// norms.
    ///
    /// # Panics
    /// When a buffer's length is not its matrix's.
    #[must_use]
    pub(crate) fn factor(&mut self, a: &[T], u: &mut [T], s: &mut [T], vt: &mut [T]) -> bool {
        let (m, n) = (self.m, self.n);
        let k = m.min(n);
        assert!(
            a.len() == m * n && u.len() == m * k && s.len() == k && vt.len() == k * n,
            "jacobi_svd: a {m} × {n} matrix into {} + {} + {} elements",
            u.len(),
            s.len(),
            vt.len()
        );
        match simd::dispatch(Sweeps { svd: self, a }) {
            Outcome::Done => {}
            Outcome::OutOfRange => return false,
            Outcome::Failed => {
                let nan = T::from_f64(f64::NAN);
                for x in u.iter_mut().chain(s.iter_mut()).chain(vt.iter_mut()) {
                    *x = nan;
                }
                return true;
            }
        }
        // The columns of the matrix decomposed are `A`'s (tall) or `Aᵀ`'s
        // (wide); its `U` and `V` are `A`'s `U` and `V`, or `V` and `U`.
        let tall = m >= n;
        for (j, &c) in self.order.iter().enumerate() {
            s[j] = self.sigma[c];
            let (dir, vec) = (self.w.row(c), self.v.row(c));
            let (u_col, vt_row) = if tall { (dir, vec) } else { (vec, dir) };
            for (i, &x) in u_col[..m].iter().enumerate() {
                u[i * k + j] = x;
            }
            vt[j * n..][..n].copy_from_slice(&vt_row[..n]);
        }
        true
    }
}

/// How [`Sweeps`] ended.
enum Outcome {
    /// `sigma`, `order` and the rows of `w` and `v` hold the decomposition.
    Done,
    /// A NaN or an infinity in the matrix, or no convergence.
    Failed,
    /// A column too small to square ([`JacobiSvd::factor`]).
    OutOfRange,
}

/// The rotations and the normalisation of [`JacobiSvd::factor`], compiled
/// for each SIMD level.
struct Sweeps<'a, T> {
    svd: &'a mut JacobiSvd<T>,
    a: &'a [T],
}

impl<T: Field + Sqrt> Kernel for Sweeps<'_, T> {
    type Out = Outcome;

    #[inline(always)]
    fn run<I: Isa>(self) -> Outcome {
        let Sweeps { svd, a } = self;
        let (m, n) = (svd.m, svd.n);
        let (cols, len) = (m.min(n), m.max(n));
        let (zero, one) = (<T as Num>::ZERO, <T as Num>::ONE);
        // Divided by the largest magnitude, so that the squares of the
        // column norms neither overflow nor underflow (a division, where
        // multiplying by the reciprocal of an f32 past 2¹²⁶ would take a
        // subnormal factor). A subnormal largest magnitude is first
        // multiplied by `1 / TINY`, a power of two: exactly.
        let Some(big) = largest(a.iter().copied()) else { return Outcome::Failed };
        let pre = if big < T::TINY { one / T::TINY } else { one };
        let (div, unscale) = if big > zero { (big * pre, big) } else { (one, one) };
        let (w, v) = (&mut svd.w, &mut svd.v);
        for j in 0..cols {
            let row = w.row_mut(j);
            if m >= n {
                for (i, x) in row[..len].iter_mut().enumerate() {
                    *x = a[i * n + j] * pre / div;
                }
            } else {
                for (x, &y) in row.iter_mut().zip(&a[j * n..][..n]) {
                    *x = y * pre / div;
                }
            }
            let row = v.row_mut(j);
            row.fill(zero);
            row[j] = one;
        }
        // A pair is orthogonal enough when `|wₚ·w_q| ≤ tol ‖wₚ‖ ‖w_q‖`
        // (`gesvj`'s `√m ε`). A matrix with a column whose squared norm
        // is below `small` (after the scaling, `σ₁ ≥ 1`) is left to
        // another method; a column that the rotations make that small is
        // taken for zero: it turns no more, and its singular value is 0
        // (an error far below `ε σ₁`), where its few significant bits
        // would have given `U` a column that is not of unit length.
        let tol = Test::new(T::EPS * T::from_f64((len as f64).sqrt()));
        // The squared norms, from the columns before each sweep and updated
        // by each rotation within it.
        let norms = &mut svd.sigma;
        squared_norms::<I, T>(w, norms);
        if (0..cols).any(|j| norms[j] <= tol.small && w.row(j).iter().any(|&x| x != zero)) {
            return Outcome::OutOfRange;
        }
        let guard = T::EPS.sqrt();
        let mut converged = false;
        for _ in 0..MAX_SWEEPS {
            let mut rotated = false;
            let mut buf = [(0, 0); GROUP];
            while let Some(group) = svd.pairs.next(&mut buf) {
                let mut gammas = [zero; GROUP];
                for (g, &(p, q)) in gammas.iter_mut().zip(group) {
                    *g = dot::<I, T>(w.row(p), w.row(q));
                }
                let mut turns = [None; GROUP];
                for ((turn, &gamma), &(p, q)) in turns.iter_mut().zip(&gammas).zip(group) {
                    let (alpha, beta) = (norms[p], norms[q]);
                    if !tol.orthogonal(alpha, beta, gamma) {
                        *turn = Some(rotation(alpha, beta, gamma));
                    }
                }
                for ((&(p, q), turn), &gamma) in group.iter().zip(turns).zip(&gammas) {
                    let Some((c, s, t)) = turn else { continue };
                    rotated = true;
                    let (wp, wq) = w.pair(p, q);
                    rotate::<I, T>(wp, wq, c, s);
                    // The squared norms after the rotation; where one fell
                    // by more than half its digits, from the column itself
                    // (`gesvj`'s guard).
                    let (alpha, beta) = (norms[p], norms[q]);
                    let (a, b) = (alpha - t * gamma, beta + t * gamma);
                    norms[p] = if a > alpha * guard { a } else { dot::<I, T>(wp, wp) };
                    norms[q] = if b > beta * guard { b } else { dot::<I, T>(wq, wq) };
                    let (vp, vq) = v.pair(p, q);
                    rotate::<I, T>(vp, vq, c, s);
                }
            }
            if !rotated {
                converged = true;
                break;
            }
            squared_norms::<I, T>(w, norms);
        }
        if !converged {
            return Outcome::Failed;
        }
        // The last sweep turned nothing: `norms` are the columns' own.
        for (j, sigma) in norms.iter_mut().enumerate() {
            let (wj, square) = (w.row_mut(j), *sigma);
            if square > tol.small {
                let norm = square.sqrt();
                *sigma = norm * unscale;
                let r = one / norm;
                wj.iter_mut().for_each(|x| *x = *x * r);
            } else {
                *sigma = zero;
            }
        }
        let sigma = &svd.sigma;
        svd.order.iter_mut().enumerate().for_each(|(j, o)| *o = j);
        svd.order.sort_unstable_by(|&i, &j| sigma[j].partial_cmp(&sigma[i]).unwrap_or(std::cmp::Ordering::Equal));
        complete::<I, T>(w, len, &svd.order, sigma, &mut svd.spare);
        Outcome::Done
    }
}

/// The squared norms of the rows of `w` into `norms`. (A function, not a
/// closure in [`Sweeps::run`]: a closure is compiled without the kernel's
/// instruction set.)
#[inline(always)]
fn squared_norms<I: Isa, T: Field>(w: &Rows<T>, norms: &mut [T]) {
    for (j, x) in norms.iter_mut().enumerate() {
        *x = dot::<I, T>(w.row(j), w.row(j));
    }
}

/// The test of whether a pair of columns is orthogonal.
#[derive(Clone, Copy)]
struct Test<T> {
    tol: T,
    /// `tol²`.
    square: T,
    /// Products of squared norms above this are far from underflowing.
    safe: T,
    /// Squared norms taken for zero (`TINY / ε`).
    small: T,
}

impl<T: Field + Sqrt> Test<T> {
    fn new(tol: T) -> Self {
        Test { tol, square: tol * tol, safe: T::TINY / (tol * tol), small: T::TINY / T::EPS }
    }

    /// Whether columns with the Gram matrix `[α γ; γ β]` are orthogonal
    /// (`|γ| ≤ tol √(α β)`), or one of them is taken for zero. Squared,
    /// without the square roots, where `α β` is far from underflowing.
    #[inline(always)]
    fn orthogonal(self, alpha: T, beta: T, gamma: T) -> bool {
        let ab = alpha * beta;
        if ab > self.safe {
            gamma * gamma <= self.square * ab
        } else {
            alpha <= self.small || beta <= self.small || gamma.abs() <= self.tol * alpha.sqrt() * beta.sqrt()
        }
    }
}

/// Gives the columns whose singular value is zero (their `w` is no
/// direction) unit vectors orthogonal to every other column, in `order`:
/// of the first `len` coordinate axes, the one with the most left after
/// its components along the columns before it are taken out (twice, for
/// orthogonality to working precision).
fn complete<I: Isa, T: Field + Sqrt>(w: &mut Rows<T>, len: usize, order: &[usize], sigma: &[T], spare: &mut [T]) {
    let zero = <T as Num>::ZERO;
    for (j, &c) in order.iter().enumerate() {
        if sigma[c] != zero {
            continue;
        }
        let mut best = (<T as Num>::ONE.neg(), 0);
        for axis in 0..len {
            let left = project_out::<I, T>(w, &order[..j], axis, spare);
            if left > best.0 {
                best = (left, axis);
            }
        }
        let left = project_out::<I, T>(w, &order[..j], best.1, spare);
        let r = <T as Num>::ONE / left.sqrt();
        for (x, &y) in w.row_mut(c).iter_mut().zip(spare.iter()) {
            *x = y * r;
        }
    }
}

/// The coordinate axis `axis` less its components along the unit rows
/// `done` of `w`, twice, into `out`; returns its squared norm.
fn project_out<I: Isa, T: Field>(w: &Rows<T>, done: &[usize], axis: usize, out: &mut [T]) -> T {
    out.fill(<T as Num>::ZERO);
    out[axis] = <T as Num>::ONE;
    for _ in 0..2 {
        for &d in done {
            let row = w.row(d);
            let along = dot::<I, T>(row, out);
            for (o, &x) in out.iter_mut().zip(row) {
                *o = madd::<I, T>(along.neg(), x, *o);
            }
        }
    }
    dot::<I, T>(out, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Rng;

    /// `(U, s, Vᵀ)` of the row-major `m × n` `a`.
    fn svd<T: Field + Sqrt>(a: &[T], m: usize, n: usize) -> (Vec<T>, Vec<T>, Vec<T>) {
        let k = m.min(n);
        let zero = <T as Num>::ZERO;
        let (mut u, mut s, mut vt) = (vec![zero; m * k], vec![zero; k], vec![zero; k * n]);
        assert!(JacobiSvd::new(m, n).factor(a, &mut u, &mut s, &mut vt), "{m}×{n}: out of range");
        (u, s, vt)
    }

    /// The largest `|U Σ Vᵀ − A|`, `|UᵀU − I|` and `|V Vᵀ − I|` (thin).
    fn errors(a: &[f64], m: usize, n: usize, (u, s, vt): &(Vec<f64>, Vec<f64>, Vec<f64>)) -> (f64, f64, f64) {
        let k = m.min(n);
        let (mut rebuilt, mut u_orth, mut v_orth) = (0f64, 0f64, 0f64);
        for i in 0..m {
            for j in 0..n {
                let x: f64 = (0..k).map(|l| u[i * k + l] * s[l] * vt[l * n + j]).sum();
                rebuilt = rebuilt.max((x - a[i * n + j]).abs());
            }
        }
        for i in 0..k {
            for j in 0..k {
                let eye = if i == j { 1.0 } else { 0.0 };
                let uu: f64 = (0..m).map(|l| u[l * k + i] * u[l * k + j]).sum();
                let vv: f64 = (0..n).map(|l| vt[i * n + l] * vt[j * n + l]).sum();
                u_orth = u_orth.max((uu - eye).abs());
                v_orth = v_orth.max((vv - eye).abs());
            }
        }
        (rebuilt, u_orth, v_orth)
    }

    /// Tall, square and wide matrices on both sides of the lanes, in f64
    /// and f32: `U Σ Vᵀ` is `A` to `2 max(m, n) ε σ₁` (the backward error
    /// of the rotations, each `O(ε)` in the norm) and `U`, `V` are
    /// orthonormal to `2 max(m, n) ε` (the stopping test allows `√max(m, n)
    /// ε` a pair); the singular values descend and their squares sum to
    /// `‖A‖²_F`.
    #[test]
    fn factors_reproduce_their_matrices() {
        let mut rng = Rng::new(11);
        for (m, n) in [(1, 1), (1, 5), (5, 1), (2, 2), (7, 3), (3, 7), (16, 16), (17, 9), (9, 17), (40, 40)] {
            let a: Vec<f64> = (0..m * n).map(|_| rng.normal()).collect();
            let f = svd(&a, m, n);
            let size = 2.0 * m.max(n) as f64;
            let (rebuilt, u_orth, v_orth) = errors(&a, m, n, &f);
            let (tol, big) = (size * f64::EPSILON, f.1[0]);
            assert!(rebuilt < tol * big && u_orth < tol && v_orth < tol, "{m}×{n}: {rebuilt:e} {u_orth:e} {v_orth:e}");
            assert!(f.1.windows(2).all(|p| p[0] >= p[1]), "{m}×{n}: {:?}", f.1);
            let frobenius: f64 = a.iter().map(|x| x * x).sum();
            let squares: f64 = f.1.iter().map(|x| x * x).sum();
            assert!((frobenius - squares).abs() < 1e-12 * frobenius);
            let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
            let (u, s, vt) = svd(&a32, m, n);
            let wide = |x: Vec<f32>| x.into_iter().map(f64::from).collect::<Vec<_>>();
            let f32s = (wide(u), wide(s), wide(vt));
            let (rebuilt, u_orth, v_orth) = errors(&a, m, n, &f32s);
            let tol = size * f64::from(f32::EPSILON);
            assert!(
                rebuilt < tol * big && u_orth < tol && v_orth < tol,
                "{m}×{n} f32: {rebuilt:e} {u_orth:e} {v_orth:e}"
            );
        }
    }

    /// Rank-deficient matrices (a zero matrix, repeated columns, a zero
    /// row) still give orthonormal `U` and `V`, the zero matrix's singular
    /// values exactly zero and a rank-2 matrix's third below `ε σ₁`; huge and tiny
    /// matrices neither overflow nor underflow, and one whose column
    /// would is declined; empty matrices give empty factors; a NaN or an
    /// infinity gives NaNs.
    #[test]
    fn rank_deficient_extreme_and_invalid_matrices() {
        let zero = vec![0.0; 12];
        let f = svd(&zero, 4, 3);
        assert_eq!(f.1, vec![0.0; 3]);
        let (_, u_orth, v_orth) = errors(&zero, 4, 3, &f);
        assert!(u_orth < 1e-15 && v_orth < 1e-15);
        // Columns 0 and 2 equal, row 1 zero: rank 2.
        let a = [1.0, 2.0, 1.0, 0.0, 0.0, 0.0, 3.0, -1.0, 3.0, 2.0, 5.0, 2.0];
        let at: Vec<f64> = (0..12).map(|i| a[(i % 4) * 3 + i / 4]).collect();
        for (a, m, n) in [(&a[..], 4, 3), (&at[..], 3, 4)] {
            let f = svd(a, m, n);
            let (rebuilt, u_orth, v_orth) = errors(a, m, n, &f);
            assert!(rebuilt < 1e-14 && u_orth < 1e-14 && v_orth < 1e-14, "{m}×{n}: {rebuilt:e} {u_orth:e} {v_orth:e}");
            assert!(f.1[2] < 1e-15 * f.1[0], "{m}×{n}: {:?}", f.1);
        }
        for scale in [1e300, 1e-300, 1e-310] {
            let b: Vec<f64> = a.iter().map(|x| x * scale).collect();
            let (u, s, vt) = svd(&b, 4, 3);
            let s1: Vec<f64> = s.iter().map(|x| x / scale).collect();
            let (rebuilt, u_orth, v_orth) = errors(&a, 4, 3, &(u, s1, vt));
            assert!(
                rebuilt < 1e-9 && u_orth < 1e-14 && v_orth < 1e-14,
                "×{scale:e}: {rebuilt:e} {u_orth:e} {v_orth:e}"
            );
        }
        let graded = [1.0, 0.0, 0.0, 1e-200];
        let (mut u, mut s, mut vt) = ([0.0; 4], [0.0; 2], [0.0; 4]);
        assert!(!JacobiSvd::new(2, 2).factor(&graded, &mut u, &mut s, &mut vt), "10⁻²⁰⁰ squared underflows");
        assert_eq!((u, s, vt), ([0.0; 4], [0.0; 2], [0.0; 4]));
        for (m, n) in [(0, 3), (3, 0), (0, 0)] {
            let (u, s, vt) = svd::<f64>(&[], m, n);
            assert!(u.is_empty() && s.is_empty() && vt.is_empty());
        }
        for bad in [f64::NAN, f64::INFINITY] {
            let mut b = a.to_vec();
            b[4] = bad;
            let (u, s, vt) = svd(&b, 4, 3);
            assert!(u.iter().chain(&s).chain(&vt).all(|x| x.is_nan()));
        }
    }

    /// Known singular values: a diagonal matrix's are its magnitudes,
    /// sorted; a rotation times `diag(3, 2)` has 3 and 2.
    #[test]
    fn known_singular_values() {
        let (_, s, _) = svd(&[0.0, 0.0, 0.0, 0.0, -5.0, 0.0, 0.0, 0.0, 2.0], 3, 3);
        assert_eq!(s, vec![5.0, 2.0, 0.0]);
        let (c, sn) = (0.6, 0.8);
        let (_, s, _) = svd(&[3.0 * c, -2.0 * sn, 3.0 * sn, 2.0 * c], 2, 2);
        assert!((s[0] - 3.0).abs() < 1e-15 && (s[1] - 2.0).abs() < 1e-15, "{s:?}");
    }
}
