//! The symmetric eigenvalue decomposition of a small matrix by two-sided
//! Jacobi rotations (cyclic Jacobi, in a tournament's order).
//!
//! Each rotation `A ← Jᵀ A J` makes one off-diagonal pair `a_pq = a_qp`
//! zero; the sweeps go on until every one is negligible beside its
//! diagonal (`|a_pq| ≤ tol √|a_pp a_qq|`); then the diagonal holds the
//! eigenvalues and `V`, the product of the rotations, the eigenvectors.
//! `Jᵀ A` is a rotation of rows `p` and `q`, contiguous; `A J` is then the
//! same numbers written into columns `p` and `q` (`A` stays symmetric), and
//! the 2 × 2 block is set from its formulas.

use super::{largest, rotate, rotation, Rows, Tournament, GROUP, MAX_SWEEPS};
use crate::array::norm::Sqrt;
use crate::array::simd::{self, Isa, Kernel};
use crate::array::triangular::Field;
use crate::array::Num;

/// A thread's buffers for the decompositions of `n × n` matrices.
pub(crate) struct JacobiEigh<T> {
    n: usize,
    /// The matrix as it turns, both triangles.
    a: Rows<T>,
    /// The eigenvectors, one a row.
    v: Rows<T>,
    /// The eigenvalues by size, smallest first.
    order: Vec<usize>,
    diag: Vec<T>,
    /// The order of the pairs.
    pairs: Tournament,
}

impl<T: Field + Sqrt> JacobiEigh<T> {
    /// Buffers for `n × n` matrices.
    pub(crate) fn new(n: usize) -> Self {
        JacobiEigh {
            n,
            a: Rows::new(n, n),
            v: Rows::new(n, n),
            order: vec![0; n],
            diag: vec![<T as Num>::ZERO; n],
            pairs: Tournament::new(n),
        }
    }

    /// The eigenvalues, ascending, and the eigenvectors (the columns of the
    /// row-major `n × n` `vecs`, in the same order) of the symmetric
    /// matrix whose lower triangle is that of the row-major `a`. A NaN or
    /// an infinity there, or rotations that do not converge, give NaNs, as
    /// a failed LAPACK decomposition does in JAX.
    ///
    /// # Panics
    /// When a buffer's length is not its matrix's.
    pub(crate) fn factor(&mut self, a: &[T], w: &mut [T], vecs: &mut [T]) {
        let n = self.n;
        assert!(
            a.len() == n * n && w.len() == n && vecs.len() == n * n,
            "jacobi_eigh: a {n} × {n} matrix into {} + {} elements",
            w.len(),
            vecs.len()
        );
        if !simd::dispatch(Sweeps { eigh: self, a }) {
            let nan = T::from_f64(f64::NAN);
            w.iter_mut().chain(vecs.iter_mut()).for_each(|x| *x = nan);
            return;
        }
        for (j, &c) in self.order.iter().enumerate() {
            w[j] = self.diag[c];
            for (i, &x) in self.v.row(c)[..n].iter().enumerate() {
                vecs[i * n + j] = x;
            }
        }
    }
}

/// The rotations of [`JacobiEigh::factor`], compiled for each SIMD level;
/// false where the matrix holds a NaN or an infinity or the sweeps did not
/// converge.
struct Sweeps<'a, T> {
    eigh: &'a mut JacobiEigh<T>,
    a: &'a [T],
}

impl<T: Field + Sqrt> Kernel for Sweeps<'_, T> {
    type Out = bool;

    #[inline(always)]
    fn run<I: Isa>(self) -> bool {
        let Sweeps { eigh, a: x } = self;
        let n = eigh.n;
        let (zero, one) = (<T as Num>::ZERO, <T as Num>::ONE);
        let Some(big) = largest((0..n).flat_map(|i| x[i * n..][..=i].iter().copied())) else { return false };
        let (a, v) = (&mut eigh.a, &mut eigh.v);
        for i in 0..n {
            for j in 0..=i {
                let e = x[i * n + j];
                (*a.at(i, j), *a.at(j, i)) = (e, e);
            }
            let row = v.row_mut(i);
            row.fill(zero);
            row[i] = one;
        }
        // An off-diagonal element is negligible at `tol` times the
        // geometric mean of its diagonal's (relative accuracy, as the
        // SVD's test), or at `ε²` times the largest element, below which
        // it moves no eigenvalue by more than `ε²‖A‖` (so that the sweeps
        // end where a diagonal element is zero).
        let tol = T::EPS * T::from_f64((n as f64).sqrt());
        let floor = T::EPS * T::EPS * big;
        let mut converged = false;
        for _ in 0..MAX_SWEEPS {
            let mut rotated = false;
            let mut buf = [(0, 0); GROUP];
            while let Some(group) = eigh.pairs.next(&mut buf) {
                let mut turns = [None; GROUP];
                for (turn, &(p, q)) in turns.iter_mut().zip(group) {
                    let (app, aqq, apq) = (*a.at(p, p), *a.at(q, q), *a.at(p, q));
                    let off = apq.abs();
                    if off > floor && off > tol * app.abs().sqrt() * aqq.abs().sqrt() {
                        *turn = Some((rotation(app, aqq, apq), app, aqq, apq));
                    }
                }
                for (&(p, q), turn) in group.iter().zip(turns) {
                    let Some(((c, s, t), app, aqq, apq)) = turn else { continue };
                    rotated = true;
                    let (ap, aq) = a.pair(p, q);
                    rotate::<I, T>(ap, aq, c, s);
                    a.columns_from_rows(p, q, n);
                    (*a.at(p, p), *a.at(q, q)) = (app - t * apq, aqq + t * apq);
                    (*a.at(p, q), *a.at(q, p)) = (zero, zero);
                    let (vp, vq) = v.pair(p, q);
                    rotate::<I, T>(vp, vq, c, s);
                }
            }
            if !rotated {
                converged = true;
                break;
            }
        }
        if !converged {
            return false;
        }
        for (i, d) in eigh.diag.iter_mut().enumerate() {
            *d = *a.at(i, i);
        }
        let diag = &eigh.diag;
        eigh.order.iter_mut().enumerate().for_each(|(j, o)| *o = j);
        eigh.order.sort_unstable_by(|&i, &j| diag[i].partial_cmp(&diag[j]).unwrap_or(std::cmp::Ordering::Equal));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Rng;

    /// `(w, V)` of the row-major `n × n` `a`'s lower triangle.
    fn eigh<T: Field + Sqrt>(a: &[T], n: usize) -> (Vec<T>, Vec<T>) {
        let (mut w, mut v) = (vec![<T as Num>::ZERO; n], vec![<T as Num>::ZERO; n * n]);
        JacobiEigh::new(n).factor(a, &mut w, &mut v);
        (w, v)
    }

    /// The largest `|A V − V Λ|` and `|VᵀV − I|`.
    fn errors(a: &[f64], n: usize, w: &[f64], v: &[f64]) -> (f64, f64) {
        let (mut residual, mut orth) = (0f64, 0f64);
        for i in 0..n {
            for j in 0..n {
                let av: f64 = (0..n).map(|k| a[i * n + k] * v[k * n + j]).sum();
                residual = residual.max((av - v[i * n + j] * w[j]).abs());
                let vv: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
                orth = orth.max((vv - if i == j { 1.0 } else { 0.0 }).abs());
            }
        }
        (residual, orth)
    }

    /// Symmetric matrices, definite and indefinite, on both sides of the
    /// padding of a row, in f64 and f32: `A V = V Λ` to `2 n ε ‖A‖` (the
    /// backward error of the rotations), `V` orthonormal to `2 n ε`, the
    /// eigenvalues ascending with the trace's sum; only the lower triangle
    /// is read.
    #[test]
    fn factors_reproduce_their_matrices() {
        let mut rng = Rng::new(12);
        for n in [1, 2, 3, 7, 8, 9, 16, 17, 24] {
            let g: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    a[i * n + j] = g[i * n + j] + g[j * n + i];
                }
            }
            let mut lower = a.clone();
            for i in 0..n {
                for j in i + 1..n {
                    lower[i * n + j] = f64::NAN;
                }
            }
            let (w, v) = eigh(&lower, n);
            let norm = w.iter().fold(0f64, |m, x| m.max(x.abs()));
            let tol = 2.0 * n as f64 * f64::EPSILON;
            let (residual, orth) = errors(&a, n, &w, &v);
            assert!(residual < tol * norm && orth < tol, "{n}: {residual:e} {orth:e}");
            assert!(w.windows(2).all(|p| p[0] <= p[1]), "{n}: {w:?}");
            let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
            assert!((w.iter().sum::<f64>() - trace).abs() < tol * norm * n as f64);
            let a32: Vec<f32> = lower.iter().map(|&x| x as f32).collect();
            let (w32, v32) = eigh(&a32, n);
            let wide = |x: Vec<f32>| x.into_iter().map(f64::from).collect::<Vec<_>>();
            let (residual, orth) = errors(&a, n, &wide(w32), &wide(v32));
            let tol = 2.0 * n as f64 * f64::from(f32::EPSILON);
            assert!(residual < tol * norm && orth < tol, "{n} f32: {residual:e} {orth:e}");
        }
    }

    /// A diagonal matrix's eigenvalues are its diagonal, exactly, and its
    /// eigenvectors the axes; a graded one's small eigenvalue keeps its
    /// digits; `[[0, 1], [1, 0]]` gives ±1; a matrix with a repeated
    /// eigenvalue still gives orthonormal vectors; empty matrices give
    /// empty factors; a NaN or an infinity in the lower triangle gives NaNs.
    #[test]
    fn exact_graded_repeated_and_invalid_matrices() {
        let (w, v) = eigh(&[3.0, 0.0, 0.0, 0.0, -1e-10, 0.0, 0.0, 0.0, 1e300], 3);
        assert_eq!((w, v), (vec![-1e-10, 3.0, 1e300], vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]));
        // det = 2·10⁻²⁰ − 10⁻²⁰ (to the rounding of the stored values), λ₁ = 1.
        let graded = [1.0, 1e-10, 1e-10, 2e-20];
        let (w, _) = eigh(&graded, 2);
        assert!((w[0] / 1e-20 - 1.0).abs() < 4.0 * f64::EPSILON, "{w:?}");
        let (w, v) = eigh(&[0.0, 1.0, 1.0, 0.0], 2);
        assert_eq!(w, vec![-1.0, 1.0]);
        assert!((v[0].abs() - 0.5f64.sqrt()).abs() <= f64::EPSILON && v[0] + v[2] == 0.0, "{v:?}");
        // 2 I + e eᵀ has eigenvalues 2, 2, 2 + n.
        let n = 3;
        let a: Vec<f64> = (0..n * n).map(|i| if i % (n + 1) == 0 { 3.0 } else { 1.0 }).collect();
        let (w, v) = eigh(&a, n);
        let (residual, orth) = errors(&a, n, &w, &v);
        assert!(residual < 1e-15 * 5.0 && orth < 1e-15, "{w:?} {residual:e} {orth:e}");
        assert!((w[0] - 2.0).abs() < 1e-15 && (w[2] - 5.0).abs() < 1e-14, "{w:?}");
        let (w, v) = eigh::<f64>(&[], 0);
        assert!(w.is_empty() && v.is_empty());
        for bad in [f64::NAN, f64::INFINITY] {
            let (w, v) = eigh(&[1.0, 0.0, bad, 1.0], 2);
            assert!(w.iter().chain(&v).all(|x| x.is_nan()));
        }
    }
}
