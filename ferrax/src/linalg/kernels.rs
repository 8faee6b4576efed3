//! The factorisations and solves on arrays — eigh of 7 to 32 rows, QR
//! above 32 rows or columns and SVD above 24 from the `faer` crate; eigh
//! above 32 rows from faer's reduction to tridiagonal form and `array`'s
//! divide and conquer; LU, Cholesky, triangular solves, smaller eigh, QR
//! and SVD from `array`'s kernels — each over the last two axes, looped
//! over the leading (batch) axes, in f32 or f64. QR, eigh and SVD split a
//! batch of small matrices over the threads ([`over_batch`]).
//! A factorisation that fails (a matrix that is not positive definite, an
//! eigensolver that does not converge) gives NaNs, as JAX's do.

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::evd::{self, tridiag};
use faer::linalg::householder;
use faer::linalg::qr::no_pivoting::factor as qr_factor;
use faer::linalg::svd;
use faer::traits::RealField;
use faer::{Conj, Mat, MatMut, MatRef, Par};
use std::ops::Range;
use std::sync::Mutex;

use crate::array::parallel::{chunk_len, team, worth_splitting};
use crate::array::{
    broadcast_to, cholesky_in_place, householder_qr, largest, lu_in_place, pool, solve_triangular, transpose_plane,
    tridiagonal_eigh, tridiagonalize, Array, Buffer, Element, Field, JacobiEigh, JacobiSvd, Sqrt,
};

/// The batch count and the matrix dimensions of `[.., r, c]`.
fn dims(shape: &[usize]) -> (usize, usize, usize) {
    let n = shape.len();
    let (r, c) = (shape[n - 2], shape[n - 1]);
    (shape[..n - 2].iter().product(), r, c)
}

/// Appends the row-major elements of a faer matrix view to `out`.
fn rows_of<T: RealField + Element>(m: MatRef<'_, T>, out: &mut Vec<T>) {
    let at = out.len();
    out.resize(at + m.nrows() * m.ncols(), T::zero_impl());
    write_rows(m, &mut out[at..]);
}

/// Writes the row-major elements of a faer matrix view to `out` (of its
/// size). A column-major view (the factors faer returns) is turned in
/// tiles ([`transpose_plane`]); reading it element by element along its
/// rows touched a new cache line at every element.
fn write_rows<T: RealField + Element>(m: MatRef<'_, T>, out: &mut [T]) {
    let (r, c) = (m.nrows(), m.ncols());
    assert_eq!(out.len(), r * c, "linalg: a {r} × {c} factor's destination");
    if r > 0 && c > 0 && m.row_stride() == 1 && m.col_stride() >= r as isize {
        let cs = m.col_stride() as usize;
        // SAFETY: the view's elements lie within `(c - 1) · cs + r` of its
        // first, which it borrows for this call.
        let src = unsafe { std::slice::from_raw_parts(m.as_ptr(), (c - 1) * cs + r) };
        transpose_plane(src, cs, r, c, out, c);
        return;
    }
    for (i, row) in out.chunks_exact_mut(c.max(1)).enumerate().take(r) {
        for (j, v) in row.iter_mut().enumerate() {
            *v = m[(i, j)];
        }
    }
}

/// The factor of each empty matrix of `a` that is `r × c`, square (a
/// complete factor: the identity) or empty (a reduced one), of `a`'s dtype.
fn identities(a: &Array, r: usize, c: usize) -> Array {
    debug_assert!(r == c || r * c == 0, "linalg: an empty matrix's {r} × {c} factor");
    let shape = [&a.shape()[..a.rank() - 2], &[r, c]].concat();
    if r == c {
        broadcast_to(&Array::eye(r, a.dtype()), &shape)
    } else {
        Array::zeros(&shape, a.dtype())
    }
}

/// Runs `$body` with `$v` bound to the typed elements of `$a` (f32 or f64).
macro_rules! by_float {
    ($a:expr, $v:ident => $body:expr) => {
        match $a.buffer() {
            Buffer::F32($v) => $body,
            Buffer::F64($v) => $body,
            _ => unreachable!("linalg kernels are called on float arrays (the shape rules check)"),
        }
    };
}

/// The parallelism of faer's factorisations of `n` rows: below 512,
/// handing panels to the second thread costs more than it saves (when the
/// LU and Cholesky factorisations were faer's too, an LU of 256² took 650
/// µs threaded, nearly half of it in the scheduler, and 300 µs alone; a
/// Cholesky factorisation of 256², 440 against 390 µs; a symmetric
/// eigendecomposition of 256², 5.5–5.9 against 5.1 ms, an SVD
/// 11.5 against 9.3–9.7 ms). At 1024² the threads win.
fn threads_for(n: usize) -> Par {
    if n >= 512 {
        Par::rayon(0)
    } else {
        Par::Seq
    }
}

/// `f(scratch, matrices)` over consecutive ranges of the batch `0..b` of
/// matrices of `n` rows, the results in order. Below 512 rows, where faer
/// factors each matrix on one thread ([`threads_for`]), the ranges are
/// spread over the team when the batch is worth it (`n³` a matrix), as
/// batched products are (LAPACK loops over a batch on one core). On two
/// threads, 1024 matrices of 16²: eigh 19.7 → 11.3 ms, SVD 40 → 21 ms,
/// QR 8.3 → 6.6 ms. LU, Cholesky and the triangular solves stay in one
/// loop: a few microseconds a matrix, bound by moving their copies, they
/// were no faster split (a solve of the same batch 1.5 → 2.0 ms).
/// `init` makes a thread's scratch once.
fn over_batch<R: Send, S>(
    b: usize,
    n: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, Range<usize>) -> R + Sync,
) -> Vec<R> {
    let cost = n.saturating_pow(3).max(1);
    if n >= 512 || b < 2 || !worth_splitting(b, cost) {
        return vec![f(&mut init(), 0..b)];
    }
    let per = chunk_len(b, cost);
    let slots: Vec<Mutex<Option<R>>> = (0..b.div_ceil(per)).map(|_| Mutex::new(None)).collect();
    team::run_with(slots.len(), init, |scratch, i| {
        let done = f(scratch, i * per..(b.min((i + 1) * per)));
        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(done);
    });
    slots.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every piece runs")).collect()
}

/// The pieces of [`over_batch`] in one buffer (the one piece itself when
/// the batch was not split).
fn joined<T: Element>(mut pieces: Vec<Vec<T>>) -> Vec<T> {
    if pieces.len() == 1 {
        return pieces.pop().expect("one piece");
    }
    let mut out = pool::with_capacity(pieces.iter().map(Vec::len).sum());
    for p in pieces {
        out.extend_from_slice(&p);
    }
    out
}

fn nan<T: RealField + Copy>() -> T {
    T::nan_impl()
}

/// The lower Cholesky factor of each matrix (only its lower triangle is
/// read); NaNs for a matrix that is not positive definite.
pub(crate) fn cholesky(a: &Array) -> Array {
    fn go<T: Field + Sqrt>(v: &[T], n: usize) -> Vec<T> {
        let mut out = copy_of(v);
        for m in out.chunks_exact_mut(n * n) {
            if !cholesky_in_place(m, n) {
                m.fill(T::from_f64(f64::NAN));
            }
        }
        out
    }
    let (_, n, _) = dims(a.shape());
    if n == 0 {
        return a.clone();
    }
    by_float!(a, v => Array::from_vec(go(v, n), a.shape()))
}

/// A copy of `v` in a buffer from the pool: a fresh allocation of a large
/// matrix per call was faulted in page by page (a third of an eager 256²
/// factorisation).
fn copy_of<T: Element>(v: &[T]) -> Vec<T> {
    let mut out = pool::with_capacity(v.len());
    out.extend_from_slice(v);
    out
}

/// `op(A)⁻¹ B` for triangular `A` (`lower` or upper; `transpose`d; with a
/// unit diagonal when `unit`), `B` of shape `[.., n, k]` with `A`'s batch.
pub(crate) fn triangular_solve(a: &Array, b: &Array, lower: bool, transpose: bool, unit: bool) -> Array {
    fn go<T: Field>(a: &[T], b: &[T], n: usize, k: usize, lower: bool, transpose: bool, unit: bool) -> Vec<T> {
        let mut out = b.to_vec();
        if n == 0 || k == 0 {
            return out;
        }
        for (m, rhs) in a.chunks_exact(n * n).zip(out.chunks_exact_mut(n * k)) {
            solve_triangular(m, n, lower, transpose, unit, rhs, k);
        }
        out
    }
    let (_, n, _) = dims(a.shape());
    let k = b.shape()[b.rank() - 1];
    let buf = match (a.buffer(), b.buffer()) {
        (Buffer::F32(x), Buffer::F32(y)) => Buffer::F32(go(x, y, n, k, lower, transpose, unit)),
        (Buffer::F64(x), Buffer::F64(y)) => Buffer::F64(go(x, y, n, k, lower, transpose, unit)),
        _ => unreachable!("triangular_solve's shape rule checks the dtypes"),
    };
    Array::new(b.shape(), buf)
}

/// The LU factorisation with partial pivoting of each square matrix: `L`
/// (unit diagonal, below it) and `U` packed in one matrix, LAPACK's pivots
/// (row `i` was swapped with row `pivots[i]`, in turn) and the permutation
/// (`P A = L U` with `(P A)[i] = A[perm[i]]`), both i64.
pub(crate) fn lu(a: &Array) -> (Array, Array, Array) {
    fn go<T: Field>(v: &[T], b: usize, n: usize) -> (Vec<T>, Vec<i64>, Vec<i64>) {
        let (mut pivots, mut perms) = (Vec::with_capacity(b * n), Vec::with_capacity(b * n));
        let mut packed = copy_of(v);
        let mut swaps = vec![0usize; n];
        if n == 0 {
            return (packed, pivots, perms);
        }
        for m in packed.chunks_exact_mut(n * n) {
            lu_in_place(m, n, &mut swaps);
            pivots.extend(swaps.iter().map(|&p| p as i64));
            // The permutation the swaps make, in order.
            let mut perm: Vec<usize> = (0..n).collect();
            for (i, &p) in swaps.iter().enumerate() {
                perm.swap(i, p);
            }
            perms.extend(perm.iter().map(|&p| p as i64));
        }
        (packed, pivots, perms)
    }
    let (b, n, _) = dims(a.shape());
    let batch = &a.shape()[..a.rank() - 1];
    let (packed, pivots, perm) = by_float!(a, v => {
        let (p, piv, perm) = go(v, b, n);
        (Array::from_vec(p, a.shape()), piv, perm)
    });
    (packed, Array::from_vec(pivots, batch), Array::from_vec(perm, batch))
}

/// Up to this many rows eigh is [`JacobiEigh`]'s; above, faer's
/// tridiagonal reduction and divide and conquer. On the AMD EPYC (Zen 4)
/// of 2026-12-07, on two threads, 8192 eigendecompositions of 2² took
/// 0.86 ms against faer's 2.8, of 3² 3.2–3.3 against 5.1, 4096 of 4² 2.3
/// against 3.7, of 6² 6.2 against 7.2; at 8² faer's won (2048: 6.0 against
/// 6.8 ms), and at 16² by 1.8×.
const SMALL_EIGH: usize = 6;

/// Up to this many rows eigh is faer's whole (its tridiagonal QR
/// iteration); above, a reduction to tridiagonal form (see
/// [`BLOCKED_REDUCTION`]) and faer's reflectors around
/// [`tridiagonal_eigh`]'s divide and conquer. On the
/// AMD EPYC (Zen 4) of 2026-12-07, on two threads, 2048 matrices of 8²
/// took 5.3 ms faer's way against 5.7, 1024 of 16² 10.0–10.5 against
/// 10.8–10.9, 256 of 32² were level (9.4–9.6 ms), and from 64² the
/// divide and conquer won: 64 of 64² 8.1–8.2 against 8.9 ms, one of 256²
/// 4.1–4.3 against 5.8–6.1, of 1024² 123–126 against 131–134 ms.
const SMALL_TRIDIAGONAL: usize = 32;

/// From this many rows the reduction to tridiagonal form is
/// [`tridiagonalize`]'s, blocked; below, faer's unblocked one. Blocking
/// pays once the matrix outgrows L2 and each column's pass over it comes
/// from farther away: on the AMD EPYC (Zen 4) of 2026-12-07, on two
/// threads, eigh of 1024² took 95–98 ms against 125–137, of 2048² 707–712
/// against 909–911, and 512² was level or faster (18–22 against 21–22);
/// at 256² and 384² the two were level, and below faer's, with no
/// products to set up for each column, won (64 of 64², 7.0–7.6 against
/// 7.6–8.9 ms; 16 of 128², 6.9 against 7.2–8.6).
const BLOCKED_REDUCTION: usize = 256;

/// faer's whole symmetric eigendecomposition, with its scratch for
/// matrices of one size.
struct FaerEigh<T: RealField> {
    par: Par,
    buffer: MemBuffer,
    u: Mat<T>,
    s: Diag<T>,
}

impl<T: RealField + Field> FaerEigh<T> {
    fn new(n: usize, par: Par) -> Self {
        let scratch = evd::self_adjoint_evd_scratch::<T>(n, evd::ComputeEigenvectors::Yes, par, Default::default());
        FaerEigh { par, buffer: MemBuffer::new(scratch), u: Mat::zeros(n, n), s: Diag::zeros(n) }
    }

    /// The eigenvalues and row-major eigenvectors of `a` (from its lower
    /// triangle) appended to `w` and `vecs`: NaNs where faer fails, and
    /// at once for a NaN or infinity in the triangle, on which faer's
    /// iteration runs to its limit before it fails (two seconds at 300
    /// rows).
    fn append(&mut self, a: MatRef<'_, T>, w: &mut Vec<T>, vecs: &mut Vec<T>) {
        let n = a.nrows();
        let FaerEigh { par, buffer, u, s } = self;
        u.fill(T::zero_impl());
        let finite = largest((0..n).flat_map(|j| (j..n).map(move |i| a[(i, j)]))).is_some();
        let stack = MemStack::new(buffer);
        if finite && evd::self_adjoint_evd(a, s.as_mut(), Some(u.as_mut()), *par, stack, Default::default()).is_ok() {
            let s = s.column_vector();
            w.extend((0..n).map(|i| s[i]));
            rows_of(u.as_ref(), vecs);
        } else {
            w.extend(std::iter::repeat_n(nan::<T>(), n));
            vecs.extend(std::iter::repeat_n(nan::<T>(), n * n));
        }
    }
}

/// The reflectors of [`tridiagonalize`] (stored in `trid` below its
/// subdiagonal, `H = I − τ v vᵀ`) in faer's blocked form: blocks of
/// `factors.nrows()` reflectors, each with the triangular factor of its
/// product, whose diagonal holds faer's `1 / τ` (infinite for the identity,
/// as faer's own reduction gives). faer's reduction ends with the same
/// loop over `upgrade_householder_factor`, public but left out of faer's
/// documentation (the version is pinned in Cargo.lock).
fn block_factors<T: RealField + Field>(trid: MatRef<'_, T>, taus: &[T], mut factors: MatMut<'_, T>, par: Par) {
    let n = trid.nrows() - 1;
    let essentials = trid.submatrix(1, 0, n, n);
    let mut j = 0;
    while j < n {
        let b = factors.nrows().min(n - j);
        let mut h = factors.as_mut().submatrix_mut(0, j, b, b);
        for (k, &tau) in taus[j..j + b].iter().enumerate() {
            h[(k, k)] = T::one_impl() / tau;
        }
        householder::upgrade_householder_factor(h.as_mut(), essentials.submatrix(j, j, n - j, b), b, 1, par);
        j += b;
    }
}

/// The eigenvalues (ascending) and eigenvectors (columns) of each symmetric
/// matrix, from its lower triangle.
pub(crate) fn eigh(a: &Array) -> (Array, Array) {
    fn go<T: RealField + Field + Sqrt>(v: &[T], b: usize, n: usize) -> (Vec<T>, Vec<T>) {
        if n <= SMALL_EIGH {
            let piece = |jacobi: &mut JacobiEigh<T>, mats: Range<usize>| {
                let (mut ws, mut vecs) =
                    (pool::filled(mats.len() * n, T::default()), pool::filled(mats.len() * n * n, T::default()));
                for (i, at) in mats.enumerate() {
                    jacobi.factor(&v[at * n * n..][..n * n], &mut ws[i * n..][..n], &mut vecs[i * n * n..][..n * n]);
                }
                (ws, vecs)
            };
            let (w, vecs): (Vec<_>, Vec<_>) = over_batch(b, n, || JacobiEigh::new(n), piece).into_iter().unzip();
            return (joined(w), joined(vecs));
        }
        let par = threads_for(n);
        if n <= SMALL_TRIDIAGONAL {
            let pieces = over_batch(
                b,
                n,
                || FaerEigh::new(n, par),
                |faer, mats| {
                    let (mut w, mut vecs) =
                        (Vec::with_capacity(mats.len() * n), Vec::with_capacity(mats.len() * n * n));
                    for m in v[mats.start * n * n..].chunks_exact(n * n).take(mats.len()) {
                        faer.append(MatRef::from_row_major_slice(m, n, n), &mut w, &mut vecs);
                    }
                    (w, vecs)
                },
            );
            let (w, vecs): (Vec<_>, Vec<_>) = pieces.into_iter().unzip();
            return (joined(w), joined(vecs));
        }
        let block = qr_factor::recommended_block_size::<T>(n, n);
        let init = || {
            let scratch = StackReq::any_of(&[
                tridiag::tridiag_in_place_scratch::<T>(n, par, Default::default()),
                householder::apply_block_householder_sequence_on_the_left_in_place_scratch::<T>(n - 1, block, n),
            ]);
            (MemBuffer::new(scratch), Mat::<T>::zeros(block, n - 1))
        };
        let pieces = over_batch(b, n, init, |(buffer, reflectors), mats| {
            let (mut w, mut vecs) = (Vec::with_capacity(mats.len() * n), Vec::with_capacity(mats.len() * n * n));
            // From the pool: fresh pages of this size are faulted in and
            // zeroed anew at every call.
            let (mut t, mut q) = (pool::filled(n * n, T::zero_impl()), pool::filled(n * n, T::zero_impl()));
            let (mut e, mut taus) = (vec![T::zero_impl(); n - 1], vec![T::zero_impl(); n - 1]);
            for m in v[mats.start * n * n..].chunks_exact(n * n).take(mats.len()) {
                // The lower triangle is read.
                let a = MatRef::from_row_major_slice(m, n, n);
                MatMut::from_column_major_slice_mut(&mut t, n, n).copy_from_triangular_lower(a);
                if n >= BLOCKED_REDUCTION {
                    tridiagonalize(&mut t, n, &mut taus);
                    block_factors(MatRef::from_column_major_slice(&t, n, n), &taus, reflectors.as_mut(), par);
                } else {
                    tridiag::tridiag_in_place(
                        MatMut::from_column_major_slice_mut(&mut t, n, n),
                        reflectors.as_mut(),
                        par,
                        MemStack::new(buffer),
                        Default::default(),
                    );
                }
                let trid = MatRef::from_column_major_slice(&t, n, n);
                let at = w.len();
                w.extend((0..n).map(|i| trid[(i, i)]));
                e.iter_mut().enumerate().for_each(|(i, x)| *x = trid[(i + 1, i)]);
                if !tridiagonal_eigh(&mut w[at..], &e, &mut q) {
                    w.truncate(at);
                    FaerEigh::new(n, par).append(a, &mut w, &mut vecs);
                    continue;
                }
                let mut u = MatMut::from_column_major_slice_mut(&mut q, n, n);
                householder::apply_block_householder_sequence_on_the_left_in_place_with_conj(
                    trid.submatrix(1, 0, n - 1, n - 1),
                    reflectors.as_ref(),
                    Conj::No,
                    u.as_mut().subrows_mut(1, n - 1),
                    par,
                    MemStack::new(buffer),
                );
                rows_of(u.as_ref(), &mut vecs);
            }
            pool::give_back(t);
            pool::give_back(q);
            (w, vecs)
        });
        let (w, vecs): (Vec<_>, Vec<_>) = pieces.into_iter().unzip();
        (joined(w), joined(vecs))
    }
    let (b, n, _) = dims(a.shape());
    by_float!(a, v => {
        let (w, vecs) = go(v, b, n);
        (Array::from_vec(w, &a.shape()[..a.rank() - 1]), Array::from_vec(vecs, a.shape()))
    })
}

/// Up to this many rows and columns QR is [`householder_qr`]'s, unblocked;
/// above, faer's blocked factorisation. On the AMD EPYC (Zen 4) of
/// 2026-12-07, 1024 QRs of 16² took 3.4–4.0 ms against faer's 5.9–6.9,
/// one of 32² 15–20 µs against 24; at 48² the two were level, at 64²
/// and above faer's blocks win.
const SMALL_QR: usize = 32;

/// One matrix's QR factorisation: its elements in, `Q` and `R` out.
type QrOfOne<'a, T> = dyn FnMut(&[T], &mut [T], &mut [T]) + 'a;

/// The QR factorisation of each `[m, n]` matrix: `Q` `[m, k]` with
/// orthonormal columns and upper triangular `R` `[k, n]`, `k = min(m, n)`
/// (`full`: `Q` `[m, m]` and `R` `[m, n]`). A matrix with a NaN or
/// infinity is [`householder_qr`]'s at any size.
pub(crate) fn qr(a: &Array, full: bool) -> (Array, Array) {
    fn go<T: RealField + Field + Sqrt>(v: &[T], b: usize, m: usize, n: usize, full: bool) -> (Vec<T>, Vec<T>) {
        let k = m.min(n);
        let (q_cols, r_rows) = if full { (m, m) } else { (k, k) };
        // A piece's `Q`s and `R`s, each matrix's by `one`.
        let each = |mats: Range<usize>, one: &mut QrOfOne<'_, T>| {
            let (mut qs, mut rs) = (
                pool::filled(mats.len() * m * q_cols, T::zero_impl()),
                pool::filled(mats.len() * r_rows * n, T::zero_impl()),
            );
            for (i, at) in mats.enumerate() {
                let x = &v[at * m * n..][..m * n];
                one(x, &mut qs[i * m * q_cols..][..m * q_cols], &mut rs[i * r_rows * n..][..r_rows * n]);
            }
            (qs, rs)
        };
        let small_scratch = m * n + m + n.max(q_cols) + k;
        let pieces = if m.max(n) <= SMALL_QR {
            let scratch = || vec![T::zero_impl(); small_scratch];
            over_batch(b, m.max(n), scratch, |s, mats| each(mats, &mut |x, q, r| small(s, m, n, x, q, r)))
        } else {
            // Below 512 rows on one thread: faer's threaded QR of 256² took
            // 4.5 ms, alone 1.4 ms.
            let par = threads_for(m.max(n));
            let block = qr_factor::recommended_block_size::<T>(m, n);
            let init = || Scratch {
                buffer: MemBuffer::new(StackReq::any_of(&[
                    qr_factor::qr_in_place_scratch::<T>(m, n, block, par, Default::default()),
                    householder::apply_block_householder_sequence_on_the_left_in_place_scratch::<T>(m, block, q_cols),
                ])),
                f: Mat::<T>::zeros(m, n),
                coeff: Mat::<T>::zeros(block, k),
                basis: Mat::<T>::zeros(m, k),
                q: Mat::<T>::zeros(m, q_cols),
            };
            over_batch(b, m.max(n), init, |s, mats| {
                each(mats, &mut |x, q, r| {
                    // faer's column norms pass over a NaN, so its `Q` would
                    // come out finite. The unblocked factorisation carries
                    // the NaN into every later column, as LAPACK's does.
                    if largest(x.iter().copied()).is_some() {
                        factor(s, x, q, r)
                    } else {
                        small(&mut vec![T::zero_impl(); small_scratch], m, n, x, q, r)
                    }
                })
            })
        };
        let (qs, rs): (Vec<_>, Vec<_>) = pieces.into_iter().unzip();
        (joined(qs), joined(rs))
    }
    /// The factors of the small `[m, n]` matrix `x` by [`householder_qr`]
    /// into `q_out` and `r_out`, with `scratch` for the matrix, the
    /// reflectors' products and their τ.
    fn small<T: Field + Sqrt>(scratch: &mut [T], m: usize, n: usize, x: &[T], q_out: &mut [T], r_out: &mut [T]) {
        let (k, q_cols) = (m.min(n), q_out.len() / m.max(1));
        let (work, rest) = scratch.split_at_mut(m * n);
        let (w, taus) = rest.split_at_mut(m + n.max(q_cols));
        work.copy_from_slice(x);
        householder_qr(work, m, n, q_out, q_cols, w, taus);
        r_out[..k * n].copy_from_slice(&work[..k * n]);
        upper_of(r_out, n, k);
    }
    /// `R` from the first `k` rows of a factored matrix of `n` columns
    /// (below its diagonal, the reflectors); its rows after those stay zero.
    fn upper_of<T: Element>(r_out: &mut [T], n: usize, k: usize) {
        for (i, row) in r_out.chunks_exact_mut(n.max(1)).enumerate().take(k) {
            row[..i.min(n)].fill(T::default());
        }
    }
    /// A thread's matrices and buffer for faer's factorisations.
    struct Scratch<T> {
        buffer: MemBuffer,
        f: Mat<T>,
        coeff: Mat<T>,
        basis: Mat<T>,
        q: Mat<T>,
    }
    /// The factors of the `[m, n]` matrix `x` by faer into `q_out` and `r_out`.
    fn factor<T: RealField + Element>(scratch: &mut Scratch<T>, x: &[T], q_out: &mut [T], r_out: &mut [T]) {
        let Scratch { buffer, f, coeff, basis, q } = scratch;
        let (m, n, k) = (f.nrows(), f.ncols(), coeff.ncols());
        let par = threads_for(m.max(n));
        f.copy_from(MatRef::from_row_major_slice(x, m, n));
        qr_factor::qr_in_place(f.as_mut(), coeff.as_mut(), par, MemStack::new(buffer), Default::default());
        // The reflectors are below the diagonal, with implicit ones on it.
        for j in 0..k {
            let (col, from) = (basis.col_as_slice_mut(j), f.col_as_slice(j));
            col[..j].fill(T::zero_impl());
            col[j] = T::one_impl();
            col[j + 1..].copy_from_slice(&from[j + 1..]);
        }
        q.fill(T::zero_impl());
        q.diagonal_mut().fill(T::one_impl());
        householder::apply_block_householder_sequence_on_the_left_in_place_with_conj(
            basis.as_ref(),
            coeff.as_ref(),
            Conj::No,
            q.as_mut(),
            par,
            MemStack::new(buffer),
        );
        write_rows(q.as_ref(), q_out);
        write_rows(f.as_ref().subrows(0, k), &mut r_out[..k * n]);
        upper_of(r_out, n, k);
    }
    let (b, m, n) = dims(a.shape());
    let k = if full { m } else { m.min(n) };
    let lead = &a.shape()[..a.rank() - 2];
    let shape = |r: usize, c: usize| [lead, &[r, c]].concat();
    if m == 0 || n == 0 {
        // No reflectors: `Q` is the identity (empty when reduced), `R` zero.
        return (identities(a, m, k), Array::zeros(&shape(k, n), a.dtype()));
    }
    by_float!(a, v => {
        let (q, r) = go(v, b, m, n, full);
        (Array::from_vec(q, &shape(m, k)), Array::from_vec(r, &shape(k, n)))
    })
}

/// Up to this many rows and columns the thin SVD (and the complete one of
/// a square matrix) is [`JacobiSvd`]'s; above, faer's bidiagonal
/// reduction and divide and conquer. On the AMD EPYC (Zen 4) of
/// 2026-12-07, on two threads, 8192 SVDs of 2² took 1.3 ms against faer's
/// 6.1, 2048 of 8² 5.5–5.9 against 10.0, 1024 of 12² 8.2 against 10.7, 512
/// of 20² 13.2–13.4 against 14.2; at 24² the two were level, at 28² and
/// above faer's won (256 of 32²: 19.2–19.9 against 16.9 ms).
const SMALL_SVD: usize = 24;

/// A piece of a batch's SVDs: the `U`s, and the singular values and `Vᵀ`s.
type SvdPiece<T> = (Vec<T>, (Vec<T>, Vec<T>));

/// The singular value decomposition of each `[m, n]` matrix: `U` `[m, k]`,
/// the singular values `[k]` (descending) and `Vᵀ` `[k, n]`, `k = min(m, n)`
/// (`full`: `U` `[m, m]` and `Vᵀ` `[n, n]`); NaNs where it does not converge.
pub(crate) fn svd(a: &Array, full: bool) -> (Array, Array, Array) {
    fn go<T: RealField + Field + Sqrt>(v: &[T], b: usize, m: usize, n: usize, full: bool) -> (Vec<T>, Vec<T>, Vec<T>) {
        let pieces =
            if m.max(n) <= SMALL_SVD && (!full || m == n) { by_jacobi(v, b, m, n) } else { by_faer(v, b, m, n, full) };
        let (us, (ss, vts)): (Vec<_>, (Vec<_>, Vec<_>)) = pieces.into_iter().unzip();
        (joined(us), joined(ss), joined(vts))
    }
    fn by_jacobi<T: RealField + Field + Sqrt>(v: &[T], b: usize, m: usize, n: usize) -> Vec<SvdPiece<T>> {
        let k = m.min(n);
        let piece = |jacobi: &mut JacobiSvd<T>, mats: Range<usize>| {
            let (mut us, mut ss, mut vts) = (
                pool::filled(mats.len() * m * k, T::default()),
                pool::filled(mats.len() * k, T::default()),
                pool::filled(mats.len() * k * n, T::default()),
            );
            for (i, at) in mats.enumerate() {
                let (u, s, vt) = (&mut us[i * m * k..][..m * k], &mut ss[i * k..][..k], &mut vts[i * k * n..][..k * n]);
                let x = &v[at * m * n..][..m * n];
                if !jacobi.factor(x, u, s, vt) {
                    // A matrix Jacobi declines (a column too small to
                    // square) is faer's, which scales its norms.
                    let (fu, (fs, fvt)) = by_faer(x, 1, m, n, false).swap_remove(0);
                    u.copy_from_slice(&fu);
                    s.copy_from_slice(&fs);
                    vt.copy_from_slice(&fvt);
                }
            }
            (us, (ss, vts))
        };
        over_batch(b, m.max(n), || JacobiSvd::new(m, n), piece)
    }
    fn by_faer<T: RealField + Element>(v: &[T], b: usize, m: usize, n: usize, full: bool) -> Vec<SvdPiece<T>> {
        let k = m.min(n);
        let (ku, kv) = if full { (m, n) } else { (k, k) };
        let par = threads_for(m.max(n));
        let vectors = if full { svd::ComputeSvdVectors::Full } else { svd::ComputeSvdVectors::Thin };
        let init = || {
            let buffer = MemBuffer::new(svd::svd_scratch::<T>(m, n, vectors, vectors, par, svd_params::<T>().into()));
            (buffer, Mat::<T>::zeros(m, ku), Mat::<T>::zeros(n, kv), Diag::<T>::zeros(k))
        };
        over_batch(b, m.max(n), init, |(buffer, u, vm, s), mats| {
            let (mut us, mut ss, mut vts) = (Vec::new(), Vec::new(), Vec::new());
            let size = m * n;
            for at in mats {
                let x = MatRef::from_row_major_slice(&v[at * size..][..size], m, n);
                u.fill(T::zero_impl());
                vm.fill(T::zero_impl());
                let stack = MemStack::new(buffer);
                match svd::svd(x, s.as_mut(), Some(u.as_mut()), Some(vm.as_mut()), par, stack, svd_params::<T>().into())
                {
                    Ok(()) => {
                        rows_of(u.as_ref(), &mut us);
                        let s = s.column_vector();
                        ss.extend((0..k).map(|i| s[i]));
                        rows_of(vm.transpose(), &mut vts);
                    }
                    Err(_) => {
                        us.extend(std::iter::repeat_n(nan::<T>(), m * ku));
                        ss.extend(std::iter::repeat_n(nan::<T>(), k));
                        vts.extend(std::iter::repeat_n(nan::<T>(), kv * n));
                    }
                }
            }
            (us, (ss, vts))
        })
    }
    /// faer's parameters with leaves of 32 rows for its divide and conquer
    /// (LAPACK's `bdsdc` takes 25; faer's default is 128, below which its
    /// QR iteration does the whole). On the AMD EPYC (Zen 4) of
    /// 2026-12-08, medians of 7: 48² level, 112² 1.41 ms against 1.70,
    /// 256² 10.2–10.3 against 10.6–10.7, 1024² 302–303 against 311–332.
    fn svd_params<T: RealField>() -> svd::SvdParams {
        svd::SvdParams { recursion_threshold: 32, ..<svd::SvdParams as faer::Auto<T>>::auto() }
    }
    let (b, m, n) = dims(a.shape());
    let k = m.min(n);
    let (ku, kv) = if full { (m, n) } else { (k, k) };
    let lead = &a.shape()[..a.rank() - 2];
    let shape = |dims: &[usize]| [lead, dims].concat();
    if k == 0 {
        // No singular values; complete factors are identities.
        return (identities(a, m, ku), Array::zeros(&shape(&[0]), a.dtype()), identities(a, kv, n));
    }
    by_float!(a, v => {
        let (u, s, vt) = go(v, b, m, n, full);
        (Array::from_vec(u, &shape(&[m, ku])), Array::from_vec(s, &shape(&[k])), Array::from_vec(vt, &shape(&[kv, n])))
    })
}

/// `A⁻¹ B` (or `A⁻ᵀ B` when `transpose`) from `A`'s packed LU factors and
/// permutation (`P A = L U`), `B` `[.., n, k]` with their batch axes.
pub(crate) fn lu_solve(lu: &Array, perm: &Array, b: &Array, transpose: bool) -> Array {
    fn go<T: Field>(lu: &[T], perm: &[i64], b: &[T], n: usize, k: usize, transpose: bool) -> Vec<T> {
        let mut out = vec![T::default(); b.len()];
        if n == 0 || k == 0 {
            return out;
        }
        let blocks = lu.chunks_exact(n * n).zip(perm.chunks_exact(n)).zip(b.chunks_exact(n * k));
        for (((f, p), rhs), x) in blocks.zip(out.chunks_exact_mut(n * k)) {
            if transpose {
                // Aᵀ x = b ⇔ Uᵀ Lᵀ (P x) = b.
                let mut y = rhs.to_vec();
                solve_triangular(f, n, false, true, false, &mut y, k);
                solve_triangular(f, n, true, true, true, &mut y, k);
                for (i, &pi) in p.iter().enumerate() {
                    x[pi as usize * k..][..k].copy_from_slice(&y[i * k..][..k]);
                }
            } else {
                // L U x = P b.
                for (i, &pi) in p.iter().enumerate() {
                    x[i * k..][..k].copy_from_slice(&rhs[pi as usize * k..][..k]);
                }
                solve_triangular(f, n, true, false, true, x, k);
                solve_triangular(f, n, false, false, false, x, k);
            }
        }
        out
    }
    let (_, n, _) = dims(lu.shape());
    let k = b.shape()[b.rank() - 1];
    let perm = perm.as_slice::<i64>();
    let buf = match (lu.buffer(), b.buffer()) {
        (Buffer::F32(f), Buffer::F32(y)) => Buffer::F32(go(f, perm, y, n, k, transpose)),
        (Buffer::F64(f), Buffer::F64(y)) => Buffer::F64(go(f, perm, y, n, k, transpose)),
        _ => unreachable!("the solve's shape rule checks the dtypes"),
    };
    Array::new(b.shape(), buf)
}
