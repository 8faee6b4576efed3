//! Linear algebra with derivatives, as `jax.numpy.linalg` and
//! `jax.scipy.linalg`: factorisations, solves and determinants over the
//! last two axes, batched over any leading ones, in f32 and f64.
//!
//! Four primitives carry the derivative rules — [`cholesky`],
//! [`triangular_solve`], [`lu`] and [`eigh`] — and the rest is composed of
//! them: [`solve`] and [`inv`] from the LU factors, [`det`] and
//! [`slogdet`] from `U`'s diagonal, [`cho_solve`] from two triangular
//! solves. So every function here has forward and reverse derivatives of
//! every order, batches under `vmap` and stages under `jit`. QR, eigh and
//! SVD are the `faer` crate's (pure Rust); the LU and Cholesky
//! factorisations and triangular solves are blocked on `matmul`'s GEMM
//! (the `gemm` crate) in place on row-major storage, where faer's took
//! half as long again (a triangular solve of a 1024² matrix against 1024
//! columns; a 1024² Cholesky factorisation) and 1.7 times as long (a 1024²
//! solve, LU included).
//!
//! ```
//! # use ferrax::prelude::*;
//! use ferrax::linalg;
//! let a = Tensor::from_vec(vec![4.0, 1.0, 1.0, 3.0], &[2, 2]);
//! let b = Tensor::from_vec(vec![1.0, 2.0], &[2]);
//! let x = linalg::solve(&a, &b);
//! assert!((a.matmul(&x) - &b).abs().max().item() < 1e-15);
//! // d/dA of sum(A⁻¹ b) is −A⁻ᵀ 1 xᵀ.
//! let g = grad(|a: &Tensor| linalg::solve(a, &b).sum())(&a);
//! let want = -linalg::solve(&a.t(), &Tensor::ones(&[2], DType::F64)).expand_dims(1).matmul(&x.expand_dims(0));
//! assert!((g - want).abs().max().item() < 1e-15);
//! ```

mod kernels;
mod prims;

use crate::array::DType;
use crate::core::{bind, bind_all, Tensor};

pub use prims::{Cholesky, Eigh, Lu, LuSolve, Qr, Svd, TriangularSolve};

use prims::{expect_square, mt};

/// `(a + aᵀ) / 2`: what the symmetric factorisations see (exact for a
/// symmetric `a`), so that their derivatives are those of a symmetric input.
fn symmetrize(a: &Tensor) -> Tensor {
    (a + mt(a)) * 0.5
}

/// The lower Cholesky factor `L` of symmetric positive definite matrices:
/// `A = L Lᵀ` (`jnp.linalg.cholesky`). `A` is symmetrised first, as JAX
/// does; where it is not positive definite the result is NaN.
///
/// ```
/// # use ferrax::prelude::*;
/// let a = Tensor::from_vec(vec![4.0, 2.0, 2.0, 3.0], &[2, 2]);
/// let l = ferrax::linalg::cholesky(&a);
/// let want = Tensor::from_vec(vec![2.0, 0.0, 1.0, 2f64.sqrt()], &[2, 2]);
/// assert!((l - want).abs().max().item() < 1e-15); // faer's last bit may differ from LAPACK's
/// ```
///
/// # Panics
/// When `a` is not a float tensor of square matrices.
#[track_caller]
pub fn cholesky(a: &Tensor) -> Tensor {
    expect_square("cholesky", a.aval());
    bind(Cholesky, &[symmetrize(a)])
}

/// Where the triangular matrix of [`triangular_solve`] is and how it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Triangular {
    /// Solve `op(A) X = B` (true) or `X op(A) = B` (false).
    pub left_side: bool,
    /// `A` is lower triangular (else upper); the other triangle is not read.
    pub lower: bool,
    /// `op(A) = Aᵀ` (else `A`).
    pub transpose_a: bool,
    /// `A`'s diagonal is taken as ones (not read).
    pub unit_diagonal: bool,
}

impl Default for Triangular {
    /// A lower triangular `A` on the left: `A X = B`.
    fn default() -> Triangular {
        Triangular { left_side: true, lower: true, transpose_a: false, unit_diagonal: false }
    }
}

/// Solves `op(A) X = B` (or `X op(A) = B`) for triangular `A`
/// (`jax.lax.linalg.triangular_solve`). `B` is `[.., n, k]` on the left
/// (`[.., k, n]` on the right); leading axes broadcast.
///
/// ```
/// # use ferrax::prelude::*;
/// use ferrax::linalg::{triangular_solve, Triangular};
/// let l = Tensor::from_vec(vec![2.0, 0.0, 1.0, 4.0], &[2, 2]);
/// let b = Tensor::from_vec(vec![2.0, 9.0], &[2, 1]);
/// let x = triangular_solve(&l, &b, Triangular::default());
/// assert_eq!(x.to_vec::<f64>(), vec![1.0, 2.0]);
/// ```
///
/// # Panics
/// When `A` is not square, the dtypes differ, or `B`'s shape does not fit.
#[track_caller]
pub fn triangular_solve(a: &Tensor, b: &Tensor, how: Triangular) -> Tensor {
    expect_square("triangular_solve", a.aval());
    assert!(
        b.rank() >= 2,
        "triangular_solve: b must be a matrix [.., n, k] (left) or [.., k, n] (right), got shape {:?}; use \
         expand_dims for a vector",
        b.shape()
    );
    let (a, b) = broadcast_batch(a, b);
    let prim = TriangularSolve { lower: how.lower, transpose: how.transpose_a, unit: how.unit_diagonal };
    if how.left_side {
        bind(prim, &[a, b])
    } else {
        // X op(A) = B  ⇔  op(A)ᵀ Xᵀ = Bᵀ.
        mt(&bind(TriangularSolve { transpose: !prim.transpose, ..prim }, &[a, mt(&b)]))
    }
}

/// `a` and `b` with their leading (batch) axes broadcast to one shape.
fn broadcast_batch(a: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
    let (ra, rb) = (a.rank() - 2, b.rank() - 2);
    let batch = crate::prims::broadcast_or_panic("linalg", &a.shape()[..ra], &b.shape()[..rb]);
    let full = |x: &Tensor, r: usize| {
        let mut shape = batch.clone();
        shape.extend_from_slice(&x.shape()[r..]);
        if shape == x.shape() {
            x.clone()
        } else {
            x.broadcast_to(&shape)
        }
    };
    (full(a, ra), full(b, rb))
}

/// The LU factorisation with partial pivoting (`jax.lax.linalg.lu`):
/// `(lu, pivots, perm)` with `P A = L U`, `L` (unit diagonal) below the
/// diagonal of `lu` and `U` on and above it, LAPACK's row swaps in
/// `pivots` and `(P A)[i] = A[perm[i]]`.
///
/// # Panics
/// When `a` is not a float tensor of square matrices.
#[track_caller]
pub fn lu(a: &Tensor) -> (Tensor, Tensor, Tensor) {
    expect_square("lu", a.aval());
    let outs = bind_all(Lu, std::slice::from_ref(a));
    (outs[0].clone(), outs[1].clone(), outs[2].clone())
}

/// Solves `A x = b` from `A`'s [`lu`] factors (`jax.scipy.linalg.lu_solve`):
/// `b` is `[.., n]` (a vector when 1-d) or `[.., n, k]`.
#[track_caller]
pub fn lu_solve(lu: &Tensor, perm: &Tensor, b: &Tensor) -> Tensor {
    let (b, vector) = as_matrix("lu_solve", lu, b);
    let n = lu.shape()[lu.rank() - 1];
    let p = perm.one_hot(n, lu.dtype());
    let (p, b) = broadcast_batch(&p, &b);
    let pb = p.matmul(&b);
    let (lu, pb) = broadcast_batch(lu, &pb);
    let y = bind(TriangularSolve { lower: true, transpose: false, unit: true }, &[lu.clone(), pb]);
    let x = bind(TriangularSolve { lower: false, transpose: false, unit: false }, &[lu, y]);
    as_given(x, vector)
}

/// A solution back in the form of its right-hand side: a vector when `b` was one.
fn as_given(x: Tensor, vector: bool) -> Tensor {
    if vector {
        x.squeeze(x.rank() - 1)
    } else {
        x
    }
}

/// `b` as a stack of column blocks, and whether it was a vector (1-d).
#[track_caller]
fn as_matrix(op: &str, a: &Tensor, b: &Tensor) -> (Tensor, bool) {
    let n = a.shape()[a.rank() - 1];
    assert!(b.dtype() == a.dtype(), "{op}: a is {} but b is {}; convert one with to_dtype", a.dtype(), b.dtype());
    if b.rank() == 1 {
        assert!(b.shape()[0] == n, "{op}: a has {n} columns but b has shape {:?}", b.shape());
        return (b.expand_dims(1), true);
    }
    assert!(
        b.shape()[b.rank() - 2] == n,
        "{op}: a has {n} columns but b has shape {:?}; b is [n] or [.., n, k]",
        b.shape()
    );
    (b.clone(), false)
}

/// Solves `A x = b` for square `A` (`jnp.linalg.solve`): `b` is a vector
/// `[n]` or a stack `[.., n, k]`; leading axes broadcast. One LU
/// factorisation; derivatives in both arguments, of every order, reuse its
/// factors ([`LuSolve`], as JAX's `custom_linear_solve`).
///
/// # Panics
/// When `A` is not square or the shapes or dtypes do not fit.
#[track_caller]
pub fn solve(a: &Tensor, b: &Tensor) -> Tensor {
    expect_square("solve", a.aval());
    let (b, vector) = as_matrix("solve", a, b);
    let (a, b) = broadcast_batch(a, &b);
    // The factors solve; `a` itself carries the derivative (LuSolve).
    let (lu, _, perm) = lu(&a.stop_gradient());
    let x = bind(LuSolve { transpose: false }, &[lu, perm, a, b]);
    as_given(x, vector)
}

/// The inverse of square matrices (`jnp.linalg.inv`), as [`solve`] with the identity.
#[track_caller]
pub fn inv(a: &Tensor) -> Tensor {
    expect_square("inv", a.aval());
    let n = a.shape()[a.rank() - 1];
    solve(a, &Tensor::eye(n, a.dtype()).broadcast_to(a.shape()))
}

/// `(sign, ln|det A|)` (`jnp.linalg.slogdet`), from the LU factors: the
/// sign of the permutation times the signs of `U`'s diagonal, and the sum
/// of the logarithms of its magnitudes. `(0, −∞)` for a singular matrix.
#[track_caller]
pub fn slogdet(a: &Tensor) -> (Tensor, Tensor) {
    expect_square("slogdet", a.aval());
    let (lu, pivots, _) = lu(a);
    let diag = lu.diagonal(0);
    let last = diag.rank() - 1;
    let sign = swaps_sign(&pivots, a.dtype()) * diag.signum().prod_axes(&[last], false);
    (sign, diag.abs().ln().sum_axes(&[last], false))
}

/// The sign of the permutation made by LAPACK-style row swaps: −1 for an odd number of swaps.
fn swaps_sign(pivots: &Tensor, dtype: DType) -> Tensor {
    let (n, last) = (pivots.shape()[pivots.rank() - 1], pivots.rank() - 1);
    let swaps = pivots.ne(&Tensor::arange(n, DType::I64)).to_dtype(DType::I64).sum_axes(&[last], false);
    1.0 - swaps.rem(&Tensor::scalar(2i64)).to_dtype(dtype) * 2.0
}

/// The determinant of square matrices (`jnp.linalg.det`): the product of
/// `U`'s diagonal with the permutation's sign. Its derivative comes from
/// the LU factorisation's, so at an exactly singular matrix it is NaN; JAX
/// gives the (finite) adjugate there through a rule of its own.
#[track_caller]
pub fn det(a: &Tensor) -> Tensor {
    expect_square("det", a.aval());
    let (lu, pivots, _) = lu(a);
    let diag = lu.diagonal(0);
    let last = diag.rank() - 1;
    swaps_sign(&pivots, a.dtype()) * diag.prod_axes(&[last], false)
}

/// Solves `A x = b` from `A`'s lower Cholesky factor `L`
/// (`jax.scipy.linalg.cho_solve`): two triangular solves. `b` is `[n]` or `[.., n, k]`.
#[track_caller]
pub fn cho_solve(l: &Tensor, b: &Tensor) -> Tensor {
    expect_square("cho_solve", l.aval());
    let (b, vector) = as_matrix("cho_solve", l, b);
    let (l, b) = broadcast_batch(l, &b);
    let y = bind(TriangularSolve { lower: true, transpose: false, unit: false }, &[l.clone(), b]);
    let x = bind(TriangularSolve { lower: true, transpose: true, unit: false }, &[l, y]);
    as_given(x, vector)
}

/// The eigenvalues (ascending) and eigenvectors (columns) of symmetric
/// matrices (`jnp.linalg.eigh`): `A = V diag(w) Vᵀ`. `A` is symmetrised
/// first. The derivative is the standard one; where two eigenvalues are
/// equal the eigenvectors are not unique and their derivative is infinite
/// or NaN, as in JAX (the eigenvalues' derivative stays finite).
///
/// ```
/// # use ferrax::prelude::*;
/// let a = Tensor::from_vec(vec![2.0, 1.0, 1.0, 2.0], &[2, 2]);
/// let (w, v) = ferrax::linalg::eigh(&a);
/// assert!((w - Tensor::from_vec(vec![1.0, 3.0], &[2])).abs().max().item() < 1e-15);
/// assert!((v.matmul(&v.t()) - Tensor::eye(2, DType::F64)).abs().max().item() < 1e-15);
/// ```
#[track_caller]
pub fn eigh(a: &Tensor) -> (Tensor, Tensor) {
    expect_square("eigh", a.aval());
    let outs = bind_all(Eigh, &[symmetrize(a)]);
    (outs[0].clone(), outs[1].clone())
}

/// `Aⁿ` for square `A` and any integer `n` (`jnp.linalg.matrix_power`):
/// by repeated squaring; a negative power inverts first.
#[track_caller]
pub fn matrix_power(a: &Tensor, n: i64) -> Tensor {
    expect_square("matrix_power", a.aval());
    let size = a.shape()[a.rank() - 1];
    let mut base = if n < 0 { inv(a) } else { a.clone() };
    let mut e = n.unsigned_abs();
    let mut acc: Option<Tensor> = None;
    while e > 0 {
        if e & 1 == 1 {
            acc = Some(match acc {
                Some(m) => m.matmul(&base),
                None => base.clone(),
            });
        }
        e >>= 1;
        if e > 0 {
            base = base.matmul(&base);
        }
    }
    acc.unwrap_or_else(|| Tensor::eye(size, a.dtype()).broadcast_to(a.shape()))
}

/// The QR factorisation `A = Q R` of `[.., m, n]` matrices
/// (`jnp.linalg.qr`): reduced (`Q` `[m, k]`, `R` `[k, n]`, `k = min(m, n)`)
/// or, when `full`, complete (`Q` `[m, m]`, `R` `[m, n]`; the identity and
/// zeros when `n` is zero, as in JAX). A NaN or infinity in column `c`
/// makes `Q`'s columns from `c` on NaN, and `R`'s rows from `c` on and its
/// column `c` NaN or infinite, as LAPACK's factorisation does.
///
/// # Panics
/// When `a` is not a float tensor of matrices; when differentiated
/// with `m < n` (or complete and not square), as in JAX.
#[track_caller]
pub fn qr(a: &Tensor, full: bool) -> (Tensor, Tensor) {
    let outs = bind_all(Qr { full }, std::slice::from_ref(a));
    (outs[0].clone(), outs[1].clone())
}

/// The singular value decomposition `A = U diag(s) Vᵀ` of `[.., m, n]`
/// matrices (`jnp.linalg.svd`): `(u, s, vt)` with the singular values
/// descending; reduced (`k = min(m, n)`) or, when `full`, complete. The
/// derivative is JAX's: defined away from repeated and zero singular values
/// (where `U` and `V` are not unique), for the reduced factorisation or a
/// square complete one. An empty matrix (`m` or `n` zero) has no singular
/// values, and identities for its complete factors, as in JAX.
///
/// ```
/// # use ferrax::prelude::*;
/// let a = Tensor::from_vec(vec![3.0, 0.0, 0.0, -2.0, 0.0, 0.0], &[3, 2]);
/// let (u, s, vt) = ferrax::linalg::svd(&a, false);
/// assert_eq!(s.to_vec::<f64>(), vec![3.0, 2.0]);
/// assert!(((&u * s.expand_dims(0)).matmul(&vt) - &a).abs().max().item() < 1e-15);
/// ```
#[track_caller]
pub fn svd(a: &Tensor, full: bool) -> (Tensor, Tensor, Tensor) {
    let outs = bind_all(Svd { full }, std::slice::from_ref(a));
    (outs[0].clone(), outs[1].clone(), outs[2].clone())
}

/// The Moore–Penrose pseudo-inverse (`jnp.linalg.pinv`), from the reduced
/// SVD: singular values at most `rcond` times the largest are treated as
/// zero (`rcond` of `None`: `10 · max(m, n) · ε`, JAX's default).
#[track_caller]
pub fn pinv(a: &Tensor, rcond: Option<f64>) -> Tensor {
    let (m, n) = (a.shape()[a.rank() - 2], a.shape()[a.rank() - 1]);
    let eps = if a.dtype() == DType::F32 { f32::EPSILON as f64 } else { f64::EPSILON };
    let rcond = rcond.unwrap_or(10.0 * m.max(n) as f64 * eps);
    let (u, s, vt) = svd(a, false);
    let last = s.rank() - 1;
    let cutoff = s.max_axes(&[last], true) * rcond;
    let keep = s.gt(&cutoff);
    let safe = crate::where_(&keep, &s, &Tensor::ones(&[], s.dtype()));
    let s_inv = crate::where_(&keep, &safe.recip(), &Tensor::zeros(&[], s.dtype()));
    (mt(&vt) * s_inv.expand_dims(last)).matmul(&mt(&u))
}

/// The least-squares solution of `A x ≈ b` (`jnp.linalg.lstsq`'s `x`),
/// with minimal norm when `A` is rank deficient: `pinv(A) b`. `b` is `[m]`
/// or `[.., m, k]`.
#[track_caller]
pub fn lstsq(a: &Tensor, b: &Tensor, rcond: Option<f64>) -> Tensor {
    let m = a.shape()[a.rank() - 2];
    assert!(
        b.dtype() == a.dtype() && b.shape()[if b.rank() == 1 { 0 } else { b.rank() - 2 }] == m,
        "lstsq: a is {} but b is {}; b is [m] or [.., m, k] with a's dtype",
        a.aval(),
        b.aval()
    );
    pinv(a, rcond).matmul(b)
}
