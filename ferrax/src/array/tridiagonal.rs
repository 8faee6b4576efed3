//! The eigenvalues and eigenvectors of a symmetric tridiagonal matrix by
//! divide and conquer: Cuppen's method with Gu and Eisenstat's
//! eigenvectors, as LAPACK's `stedc`.
//!
//! The matrix is split in two halves less a rank-one correction, each half
//! is solved (recursively; blocks of up to [`LEAF`] rows by the implicit QL
//! iteration), and the two are merged: the eigenproblem of `D + ρ z zᵀ`,
//! whose eigenvalues are the roots of the secular equation `1/ρ + Σ zⱼ² /
//! (dⱼ − λ) = 0`, one between each pair of neighbouring `dⱼ`. Entries of `z`
//! too small to matter, and pairs of `dⱼ` too close to tell apart, are
//! deflated first; the vector `ẑ` for which the computed roots are exact is
//! recovered from them (Löwner's formula), so the eigenvectors `ẑⱼ / (dⱼ −
//! λᵢ)` are orthogonal to working precision however close the roots; and
//! the halves' eigenvectors are multiplied by them in one matrix product.
//!
//! Everything here is `O(n²)` but that product, which is why it beats the
//! QR iteration (`O(n³)` rotations, one column pair at a time) from a few
//! dozen rows on.

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

use super::jacobi::largest;
use super::matmul::{pieces_for, product, Strided};
use super::norm::{sum_of, Sqrt};
use super::parallel::team;
use super::pool;
use super::simd::{dispatch, vectorized, Isa, Kernel};
use super::triangular::Field;
use super::Num;

/// Blocks of up to this many rows are solved by the QL iteration.
const LEAF: usize = 32;

/// From this many rows the two halves are solved on two threads.
const PARALLEL_HALVES: usize = 128;

/// QL iterations per eigenvalue before giving up (LAPACK's `steqr` allows 30).
const MAX_QL: usize = 30;

/// Iterations of the secular equation's solver for one root (random
/// matrices of 256 rows took 2.9 on average); after half of them each step
/// bisects the bracket, and a root not found by the end declines the
/// matrix.
const MAX_SECULAR: usize = 200;

/// The eigendecomposition `T = Q diag(λ) Qᵀ` of the symmetric tridiagonal
/// `T` with diagonal `d` (`n` elements) and off-diagonal `e` (its first
/// `n − 1`). On return `d` holds the eigenvalues in ascending order and `q`
/// (`n × n`, column-major) the eigenvectors as its columns. Returns false,
/// with `d` and `q` unspecified, where an element is not finite or an
/// iteration did not converge.
///
/// # Panics
/// When `e` is shorter than `n − 1` or `q` than `n²`.
pub(crate) fn tridiagonal_eigh<T: Field + Sqrt>(d: &mut [T], e: &[T], q: &mut [T]) -> bool {
    let n = d.len();
    assert!(e.len() + 1 >= n && q.len() >= n * n, "tridiagonal_eigh: buffers too short for {n} rows");
    if n == 0 {
        return true;
    }
    let Some(big) = largest(d.iter().chain(&e[..n - 1]).copied()) else { return false };
    // Squares of the entries must neither overflow nor all underflow; in
    // range, nothing is scaled, so that a diagonal matrix's eigenvalues
    // come out exactly.
    let one = <T as Num>::ONE;
    let scaled = big > <T as Num>::ZERO && (big > (one / T::TINY).sqrt() || big < (T::TINY / T::EPS).sqrt());
    let scale = if scaled { big } else { one };
    let mut sub: Vec<T> = e[..n - 1].iter().map(|&x| x / scale).collect();
    sub.push(<T as Num>::ZERO);
    d.iter_mut().for_each(|x| *x = *x / scale);
    // The merges' scratch: five matrices of the largest merge's size.
    let mut scratch = pool::filled(5 * n * n, <T as Num>::ZERO);
    let ok = solve(d, &sub, &mut q[..n * n], &mut scratch);
    pool::give_back(scratch);
    d.iter_mut().for_each(|x| *x = *x * scale);
    ok
}

/// [`tridiagonal_eigh`] of a scaled matrix (`e` has `n` or `n − 1`
/// elements; `scratch` at least `5 n²`).
fn solve<T: Field + Sqrt>(d: &mut [T], e: &[T], q: &mut [T], scratch: &mut [T]) -> bool {
    let n = d.len();
    if n <= LEAF {
        return ql(d, e, q);
    }
    // T = diag(T₁, T₂) + β (e_{m−1} + e_m)(e_{m−1} + e_m)ᵀ, with β taken
    // off the two diagonal elements it adds to.
    let m = n / 2;
    let beta = e[m - 1];
    let rho = beta.abs();
    d[m - 1] = d[m - 1] - rho;
    d[m] = d[m] - rho;
    // The halves' eigenvectors go to the start of `q`, which the merge
    // reads before it writes; each half has its own part of the scratch.
    let halves = {
        let (d1, d2) = d.split_at_mut(m);
        let (q1, q2) = q.split_at_mut(m * m);
        let (s1, s2) = scratch.split_at_mut(5 * m * m);
        let mut halves = [(d1, &e[..m - 1], q1, s1), (d2, &e[m..], &mut q2[..(n - m) * (n - m)], s2)];
        if n >= PARALLEL_HALVES {
            // On two threads where the team is free (a kernel inside a
            // piece of the team's runs alone).
            let halves = halves.map(Mutex::new);
            let solved = [AtomicBool::new(false), AtomicBool::new(false)];
            team::run(2, &|h| {
                let mut half = halves[h].lock().unwrap_or_else(|e| e.into_inner());
                let (d, e, q, s) = &mut *half;
                solved[h].store(solve(d, e, q, s), Relaxed);
            });
            solved.iter().all(|s| s.load(Relaxed))
        } else {
            halves.iter_mut().all(|(d, e, q, s)| solve(d, e, q, s))
        }
    };
    halves && merge(d, m, q, rho, beta < <T as Num>::ZERO, scratch)
}

/// `√(a² + b²)` without overflow or underflow on the way.
fn hypot<T: Field + Sqrt>(a: T, b: T) -> T {
    let (a, b) = (a.abs(), b.abs());
    let (big, small) = if a > b { (a, b) } else { (b, a) };
    if big == <T as Num>::ZERO {
        return big;
    }
    let r = small / big;
    big * (<T as Num>::ONE + r * r).sqrt()
}

/// The implicit QL iteration with Wilkinson's shift (LAPACK's `steqr`,
/// EISPACK's `tql2`), eigenvalues sorted ascending with their vectors.
fn ql<T: Field + Sqrt>(d: &mut [T], e: &[T], z: &mut [T]) -> bool {
    let n = d.len();
    let (zero, one, two) = (<T as Num>::ZERO, <T as Num>::ONE, T::from_f64(2.0));
    let mut e: Vec<T> = (0..n).map(|i| if i + 1 < n { e[i] } else { zero }).collect();
    z.fill(zero);
    (0..n).for_each(|i| z[i * n + i] = one);
    for l in 0..n {
        let mut iterations = 0;
        loop {
            // The first negligible off-diagonal element at or after `l`.
            let mut m = l;
            while m + 1 < n {
                let dd = d[m].abs() + d[m + 1].abs();
                if e[m].abs() <= T::EPS * dd || e[m].abs() <= T::TINY {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iterations += 1;
            if iterations > MAX_QL {
                return false;
            }
            let g = (d[l + 1] - d[l]) / (two * e[l]);
            let r = hypot(g, one);
            let r = if g < zero { r.neg() } else { r };
            let mut g = d[m] - d[l] + e[l] / (g + r);
            let (mut s, mut c, mut p) = (one, one, zero);
            let mut i = m;
            let mut underflow = false;
            while i > l {
                i -= 1;
                let f = s * e[i];
                let b = c * e[i];
                let r = hypot(f, g);
                e[i + 1] = r;
                if r == zero {
                    // The rotation underflowed: the block splits here.
                    d[i + 1] = d[i + 1] - p;
                    e[m] = zero;
                    underflow = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                let r = (d[i] - g) * s + two * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                let (left, right) = z.split_at_mut((i + 1) * n);
                rotate_columns(&mut left[i * n..], &mut right[..n], c, s);
            }
            if underflow {
                continue;
            }
            d[l] = d[l] - p;
            e[l] = g;
            e[m] = zero;
        }
    }
    // Selection sort: at most `n − 1` swaps of columns.
    for i in 0..n {
        let k = (i..n).fold(i, |k, j| if d[j] < d[k] { j } else { k });
        if k != i {
            d.swap(i, k);
            let (left, right) = z.split_at_mut(k * n);
            left[i * n..(i + 1) * n].swap_with_slice(&mut right[..n]);
        }
    }
    true
}

/// `(x, y) ← (c x − s y, s x + c y)` for two columns `x` (the first `y.len()`
/// of `x`) and `y`: the QL iteration's plane rotation of columns `i` and `i + 1`.
fn rotate_columns<T: Field>(x: &mut [T], y: &mut [T], c: T, s: T) {
    vectorized(|| {
        for (x, y) in x.iter_mut().zip(y.iter_mut()) {
            let (a, b) = (*x, *y);
            *y = s * a + c * b;
            *x = c * a - s * b;
        }
    })
}

/// Merges the eigendecompositions of the two halves into that of
/// `diag(T₁, T₂) + ρ u uᵀ` with `u = e_{m−1} ± e_m` (minus where
/// `negative`). `d` holds their eigenvalues, first the `m` of `T₁`, then
/// `T₂`'s, and `q` begins with their eigenvectors (column-major, `Q₁`
/// then `Q₂`); the merged ones are written over them.
fn merge<T: Field + Sqrt>(d: &mut [T], m: usize, q: &mut [T], rho: T, negative: bool, scratch: &mut [T]) -> bool {
    let n = d.len();
    let m2 = n - m;
    let zero = <T as Num>::ZERO;
    let (q1, q2) = q.split_at(m * m);
    let (qh, rest) = scratch.split_at_mut(n * n);
    let (qk, rest) = rest.split_at_mut(n * n);
    let (qv, rest) = rest.split_at_mut(n * n);
    let (delta, vp) = rest.split_at_mut(n * n);
    // z = diag(Q₁, Q₂)ᵀ u / ‖u‖ and ρ ‖u‖²: the last row of Q₁ and ± the first of Q₂.
    let half = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
    let z = |j: usize| {
        if j < m {
            q1[j * m + m - 1] * half
        } else {
            let v = q2[(j - m) * m2] * half;
            if negative {
                v.neg()
            } else {
                v
            }
        }
    };
    let rho = rho + rho;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| d[a].partial_cmp(&d[b]).unwrap_or(Ordering::Equal));
    let mut dd: Vec<T> = order.iter().map(|&j| d[j]).collect();
    let mut zz: Vec<T> = order.iter().map(|&j| z(j)).collect();
    // Which rows of each column may be nonzero: Q₁'s, Q₂'s, or both once
    // a deflating rotation mixed a column of each.
    const TOP: u8 = 0;
    const BOTH: u8 = 1;
    const BOTTOM: u8 = 2;
    let mut rows: Vec<u8> = order.iter().map(|&j| if j < m { TOP } else { BOTTOM }).collect();
    // The columns of diag(Q₁, Q₂) in that order.
    for (c, &j) in order.iter().enumerate() {
        let col = &mut qh[c * n..(c + 1) * n];
        if j < m {
            col[..m].copy_from_slice(&q1[j * m..(j + 1) * m]);
            col[m..].fill(zero);
        } else {
            col[..m].fill(zero);
            col[m..].copy_from_slice(&q2[(j - m) * m2..(j - m + 1) * m2]);
        }
    }
    // Deflation (LAPACK's `laed2`): a component of z too small to move
    // its eigenvalue, or two eigenvalues so close that a rotation of their
    // vectors zeroes one component and leaves an off-diagonal element
    // below the tolerance.
    let Some(big) = largest(dd.iter().chain(&zz).copied()) else { return false };
    let tol = T::from_f64(8.0) * T::EPS * big;
    let (mut keep, mut gone) = (Vec::with_capacity(n), Vec::new());
    let mut prev: Option<usize> = None;
    for j in 0..n {
        if rho * zz[j].abs() <= tol {
            gone.push(j);
            continue;
        }
        if let Some(p) = prev {
            let tau = hypot(zz[j], zz[p]);
            let (c, s) = (zz[j] / tau, zz[p].neg() / tau);
            if ((dd[j] - dd[p]) * c * s).abs() <= tol {
                zz[j] = tau;
                zz[p] = zero;
                let (left, right) = qh.split_at_mut(j * n);
                rotate_columns(&mut left[p * n..(p + 1) * n], &mut right[..n], c, s.neg());
                let dp = dd[p] * c * c + dd[j] * s * s;
                dd[j] = dd[p] * s * s + dd[j] * c * c;
                dd[p] = dp;
                if rows[p] != rows[j] {
                    rows[j] = BOTH;
                }
                gone.push(p);
            } else {
                keep.push(p);
            }
        }
        prev = Some(j);
    }
    keep.extend(prev);
    let k = keep.len();
    let dk: Vec<T> = keep.iter().map(|&j| dd[j]).collect();
    let zk: Vec<T> = keep.iter().map(|&j| zz[j]).collect();
    let mut lambda = vec![zero; k];
    let v = &mut delta[..k * k];
    if !dispatch(Secular { d: &dk, z: &zk, rho, lambda: &mut lambda, v }) {
        return false;
    }
    // The product diag(Q₁, Q₂)ₖ V with the kept columns ordered by their
    // rows (V's rows to match): Q₁'s rows need only the columns with
    // rows there, Q₂'s likewise, about half the arithmetic of the whole.
    let mut by_rows: Vec<usize> = (0..k).collect();
    by_rows.sort_by_key(|&r| rows[keep[r]]);
    let top = by_rows.iter().filter(|&&r| rows[keep[r]] == TOP).count();
    let upper = k - by_rows.iter().filter(|&&r| rows[keep[r]] == BOTTOM).count();
    let (qk, qv, v, vp) = (&mut qk[..n * k], &mut qv[..n * k], &delta[..k * k], &mut vp[..k * k]);
    for (c, &r) in by_rows.iter().enumerate() {
        qk[c * n..(c + 1) * n].copy_from_slice(&qh[keep[r] * n..(keep[r] + 1) * n]);
    }
    for (to, from) in vp.chunks_exact_mut(k.max(1)).zip(v.chunks_exact(k.max(1))) {
        to.iter_mut().zip(&by_rows).for_each(|(x, &r)| *x = from[r]);
    }
    // Rows `first..first + len` of the product over kept columns `inner`.
    let mut part = |first: usize, len: usize, inner: Range<usize>| {
        let dst = Strided { at: qv[first..].as_mut_ptr(), col: n as isize, row: 1 };
        if inner.is_empty() {
            (0..k).for_each(|c| qv[c * n + first..][..len].fill(zero));
            return;
        }
        let a = Strided { at: qk[inner.start * n + first..].as_ptr(), col: n as isize, row: 1 };
        let b = Strided { at: vp[inner.start..].as_ptr(), col: k as isize, row: 1 };
        // SAFETY: `qv` and `qk` are `n × k` and `vp` is `k × k`, all
        // column-major and disjoint; the rows and columns are within them.
        unsafe { product(len, k, inner.len(), dst, a, b, false, pieces_for(2 * len * k * inner.len())) };
    };
    if k > 0 {
        part(0, m, 0..upper);
        part(m, m2, top..k);
    }
    // All eigenvalues, ascending, each with where its vector is.
    let mut all: Vec<(T, &[T])> = lambda.iter().zip(qv.chunks_exact(n)).map(|(&l, c)| (l, c)).collect();
    all.extend(gone.iter().map(|&j| (dd[j], &qh[j * n..(j + 1) * n])));
    all.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    for (r, (value, col)) in all.into_iter().enumerate() {
        d[r] = value;
        q[r * n..(r + 1) * n].copy_from_slice(col);
    }
    true
}

/// The secular problem `diag(d) + ρ z zᵀ` (`d` ascending and distinct
/// enough, `ρ > 0`, no `zⱼ` zero): its eigenvalues to `lambda`, and its
/// eigenvectors to the columns of the `k × k` `v`. False where a root did
/// not converge.
struct Secular<'a, T> {
    d: &'a [T],
    z: &'a [T],
    rho: T,
    lambda: &'a mut [T],
    v: &'a mut [T],
}

impl<T: Field + Sqrt> Kernel for Secular<'_, T> {
    type Out = bool;

    #[inline(always)]
    fn run<I: Isa>(self) -> bool {
        let Secular { d, z, rho, lambda, v } = self;
        let k = d.len();
        let zero = <T as Num>::ZERO;
        if k == 0 {
            return true;
        }
        // Column i of `v` first holds dⱼ − λᵢ.
        for (i, (l, col)) in lambda.iter_mut().zip(v.chunks_exact_mut(k)).enumerate() {
            match secular_root(d, z, rho, i, col) {
                Some(root) => *l = root,
                None => return false,
            }
        }
        if v.contains(&zero) {
            return false;
        }
        // ẑ for which the λᵢ are the exact eigenvalues of diag(d) + ρ ẑ ẑᵀ
        // (Löwner): ẑⱼ² = −δⱼⱼ / ρ · Πᵢ≠ⱼ δⱼᵢ / (dⱼ − dᵢ), with δⱼᵢ = dⱼ − λᵢ;
        // a column at a time, over every j (j = i too, 0/0, then put back).
        let mut zh: Vec<T> = (0..k).map(|j| v[j * k + j].neg() / rho).collect();
        for (i, col) in v.chunks_exact(k).enumerate() {
            let (own, di) = (zh[i], d[i]);
            for ((w, &x), &dj) in zh.iter_mut().zip(col).zip(d) {
                *w = *w * (x / (dj - di));
            }
            zh[i] = own;
        }
        for (w, &zj) in zh.iter_mut().zip(z) {
            let r = w.abs().sqrt();
            *w = if zj < zero { r.neg() } else { r };
        }
        // The eigenvectors ẑⱼ / δⱼᵢ, normalised.
        for col in v.chunks_exact_mut(k) {
            col.iter_mut().zip(&zh).for_each(|(x, &z)| *x = z / *x);
            let inv = <T as Num>::ONE / sum_of_squares(col).sqrt();
            col.iter_mut().for_each(|x| *x = *x * inv);
        }
        true
    }
}

/// Root `i` of `1/ρ + Σⱼ zⱼ² / (dⱼ − λ) = 0` (`d` ascending, `ρ > 0`, no
/// `zⱼ` zero): the one in `(dᵢ, dᵢ₊₁)`, or in `(d_{k−1}, d_{k−1} + ρ ‖z‖²)`
/// for the last. Writes `dⱼ − λ` to `delta`, each from the nearer of the
/// two poles (where the root is written as `pole + τ`), so that the
/// differences keep their relative accuracy.
///
/// The steps are LAPACK's `laed4` "middle way": the terms of the poles at
/// or below `dᵢ`, and those above, are each replaced by one pole at the
/// nearer end and a constant, matching value and slope, and the root of
/// that is the next guess; a guess outside the bracket the signs so far
/// allow is replaced by its midpoint.
#[inline(always)]
fn secular_root<T: Field + Sqrt>(d: &[T], z: &[T], rho: T, i: usize, delta: &mut [T]) -> Option<T> {
    let k = d.len();
    let (zero, one, two) = (<T as Num>::ZERO, <T as Num>::ONE, T::from_f64(2.0));
    let inv_rho = one / rho;
    let last = i + 1 == k;
    let (base, mut lo, mut hi, mut tau);
    if last {
        (base, lo, hi) = (d[i], zero, rho * sum_of_squares(z));
        tau = hi / two;
    } else {
        // The function at the midpoint says which half holds the root, and
        // which pole the root is measured from; and the root of its two
        // nearest poles' terms plus the others' value there (`laed4`'s
        // first guess) is a start within a few digits.
        let gap = d[i + 1] - d[i];
        let mid = gap / two;
        quotients(d, z, d[i], mid, delta);
        let at_mid = dot(z, delta);
        let (zi, zn) = (z[i] * z[i], z[i + 1] * z[i + 1]);
        let c = inv_rho + at_mid - zi / mid.neg() - zn / (gap - mid);
        // c τ² − a τ + b = 0 for the two poles at `base + (di, dn)`.
        let (di, dn);
        if inv_rho + at_mid >= zero {
            (base, lo, hi, di, dn) = (d[i], zero, mid, zero, gap);
        } else {
            (base, lo, hi, di, dn) = (d[i + 1], mid - gap, zero, gap.neg(), zero);
        }
        let a = c * (di + dn) + zi + zn;
        let b = c * di * dn + zi * dn + zn * di;
        let disc = (a * a - T::from_f64(4.0) * b * c).abs().sqrt();
        let q = (if a < zero { a - disc } else { a + disc }) / two;
        let guesses = [if c == zero { b / a } else { q / c }, b / q];
        tau = guesses.into_iter().find(|&t| t > lo && t < hi).unwrap_or((lo + hi) / two);
    }
    let mut converged = false;
    for iteration in 0..MAX_SECULAR {
        quotients(d, z, base, tau, delta);
        let (t, u) = delta.split_at(i + 1);
        let (psi, dpsi, below) = (dot(&z[..=i], t), sum_of_squares(t), abs_dot(&z[..=i], t));
        let (phi, dphi, above) = (dot(&z[i + 1..], u), sum_of_squares(u), abs_dot(&z[i + 1..], u));
        let size = below + above;
        let w = inv_rho + psi + phi;
        // The error of evaluating `w` (as `laed4` bounds it).
        let error = T::EPS * (T::from_f64(8.0) * size + two * inv_rho + T::from_f64(3.0) * tau.abs() * (dpsi + dphi));
        if w.abs() <= error {
            converged = true;
            break;
        }
        if w < zero {
            lo = tau;
        } else {
            hi = tau;
        }
        let a = (d[i] - base) - tau;
        let mut eta = if last {
            let c = w - a * dpsi;
            a + a * a * dpsi / c
        } else {
            let b = (d[i + 1] - base) - tau;
            let c = w - a * dpsi - b * dphi;
            let aa = (a + b) * w - a * b * (dpsi + dphi);
            let bb = a * b * w;
            let disc = (aa * aa - T::from_f64(4.0) * bb * c).abs().sqrt();
            if c == zero {
                bb / aa
            } else if aa <= zero {
                (aa - disc) / (two * c)
            } else {
                two * bb / (aa + disc)
            }
        };
        // A step away from the root, or none (NaN), is replaced by Newton's.
        let toward = w * eta < zero;
        if !toward {
            eta = w.neg() / (dpsi + dphi);
        }
        let mut next = tau + eta;
        if iteration >= MAX_SECULAR / 2 || !(next > lo && next < hi) {
            next = (lo + hi) / two;
        }
        if next == tau || next == lo || next == hi {
            // No other number left to try.
            converged = true;
            break;
        }
        tau = next;
    }
    if !converged {
        return None;
    }
    for (x, &dj) in delta.iter_mut().zip(d) {
        *x = (dj - base) - tau;
    }
    Some(base + tau)
}

/// `t[j] = zⱼ / δⱼ` with `δⱼ = (dⱼ − base) − τ`: the terms of the secular
/// function are `zⱼ tⱼ`, their slopes `tⱼ²`.
#[inline(always)]
fn quotients<T: Field>(d: &[T], z: &[T], base: T, tau: T, t: &mut [T]) {
    for ((t, &dj), &zj) in t.iter_mut().zip(d).zip(z) {
        *t = zj / ((dj - base) - tau);
    }
}

/// `Σ xᵢ yᵢ`.
#[inline(always)]
fn dot<T: Field>(x: &[T], y: &[T]) -> T {
    sum_of(x, y, |a, b| a * b)
}

/// `Σ |xᵢ yᵢ|`.
#[inline(always)]
fn abs_dot<T: Field>(x: &[T], y: &[T]) -> T {
    sum_of(x, y, |a, b| (a * b).abs())
}

/// `Σ xᵢ²`.
#[inline(always)]
fn sum_of_squares<T: Field>(x: &[T]) -> T {
    sum_of(x, x, |a, _| a * a)
}

mod reduce;

pub(crate) use reduce::tridiagonalize;

#[cfg(test)]
mod tests;
