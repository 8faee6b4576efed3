//! The reduction of a symmetric matrix to tridiagonal form, `A = Q T Qᵀ`,
//! blocked as LAPACK's `sytrd` (lower triangle): the reflectors are made a
//! panel of [`PANEL`] columns at a time, and the rest of the matrix takes
//! the panel's rank-`2 PANEL` update `A −= V Wᵀ + W Vᵀ` in matrix products.
//!
//! Each reflector needs `A v` for the part of the matrix not yet reduced,
//! which is the bulk of the work: half the arithmetic, and a pass over the
//! matrix for every column. An unblocked reduction (faer's, which this
//! replaced) also writes that part back after every column, with the
//! previous reflector's rank-two update folded into the same pass; here it
//! is only read (one pass reading each stored element once, for `A v` and
//! `Aᵀ v` at once), and the writes come once a panel, from `gemm`. On an
//! AMD EPYC (Zen 4), two threads, the reduction of 1024² in f64 took
//! 58–108 ms faer's way and 45 ms here: 22 in `A v`, 12 in the updates,
//! 5 in the panels' short products. That pass runs at 46 GB/s on one
//! thread once its loop is written in AVX2 registers ([`x86`]).

use std::ops::Range;
use std::sync::Mutex;

use super::super::matmul::{pieces_for, product, subtract_product, Strided};
use super::super::norm::Sqrt;
use super::super::parallel::{self, team};
use super::super::qr::reflector;
use super::super::simd::{self, load, madd, Isa, Kernel};
use super::super::triangular::Field;
use super::super::Num;

/// Columns reduced between two updates of the rest of the matrix
/// (LAPACK's block size for `sytrd`).
const PANEL: usize = 32;

/// Columns of the rest of the matrix updated by one product: its upper
/// triangle within each block is computed and thrown away, a share of
/// about `BLOCK / (2 rows)` of the update.
const BLOCK: usize = 64;

/// Stored elements of the unreduced part from which `A v` is split over
/// the kernel team: about 2 MiB of f64, enough to pay for a fork and join
/// at every column.
const PARALLEL_ELEMENTS: usize = 1 << 18;

/// Reduces the symmetric `n × n` matrix whose lower triangle `a` holds
/// (by columns, `n` apart; the upper triangle is not read, and is left
/// garbage) to `T = Qᵀ A Q`, with `Q = H₀ H₁ … H_{n−2}`. Afterwards `T`'s
/// diagonal is on `a`'s, its subdiagonal on `a`'s, and the reflectors
/// below that: `H_j = I − τ_j v vᵀ` with `v` zero above row `j + 1`, one
/// there, and `a[j + 2.., j]` below (LAPACK's layout, and `larfg`'s
/// reflectors, as [`householder_qr`](super::super::householder_qr)'s).
/// `taus` gets the `n − 1` factors `τ_j`.
///
/// # Panics
/// When `a` is shorter than `n²` or `taus` than `n − 1`.
pub(crate) fn tridiagonalize<T: Field + Sqrt>(a: &mut [T], n: usize, taus: &mut [T]) {
    assert!(a.len() >= n * n && taus.len() + 1 >= n, "tridiagonalize: a {n} × {n} matrix and {n} − 1 factors");
    let zero = <T as Num>::ZERO;
    let mut s = Scratch { w: vec![zero; n * PANEL], small: vec![zero; 2 * PANEL], sums: Vec::new(), vwv: Vec::new() };
    let mut betas = [zero; PANEL];
    let mut j = 0;
    while j < n {
        let b = PANEL.min(n - j);
        panel(a, n, j, b, &mut taus[..n - 1], &mut betas, &mut s);
        if j + b < n {
            update(a, n, j, b, &mut s);
        }
        // The reflectors kept their leading ones on the subdiagonal for the
        // products; it takes `T`'s elements back.
        for (i, &beta) in betas[..b].iter().enumerate().filter(|&(i, _)| j + i + 1 < n) {
            a[(j + i) * n + j + i + 1] = beta;
        }
        j += b;
    }
}

/// Buffers reused from panel to panel.
struct Scratch<T> {
    /// The panel's `W`: `n` rows by [`PANEL`] columns, `n` apart.
    w: Vec<T>,
    /// The two short products of a reflector with the panel.
    small: Vec<T>,
    /// The partial `A v` of the team's threads after the first.
    sums: Vec<T>,
    /// `[V W V]` for the update, whose first and last `2 b` columns are
    /// `[V W]` and `[W V]`.
    vwv: Vec<T>,
}

/// Reduces columns `j..j + b` of `a`, writing `τ` to `taus`, `T`'s
/// subdiagonal to `betas` and `W` (rows `j + 1..`) to `s.w`, so that the
/// matrix from row and column `j + b` on is `A − V Wᵀ − W Vᵀ` once the
/// panel's reflectors are applied. LAPACK's `latrd`: each column is first
/// brought up to date with the panel's earlier reflectors, then made into
/// the next reflector, whose `w = τ (A − V Wᵀ − W Vᵀ) v` is corrected to
/// `w − ½ τ (wᵀ v) v`. The reflectors' leading ones stay on the
/// subdiagonal.
fn panel<T: Field + Sqrt>(
    a: &mut [T],
    n: usize,
    j: usize,
    b: usize,
    taus: &mut [T],
    betas: &mut [T],
    s: &mut Scratch<T>,
) {
    let (one, zero) = (<T as Num>::ONE, <T as Num>::ZERO);
    let at = |r: usize, col: usize| col * n + r;
    let ld = n as isize;
    let by_columns = |p: *const T| Strided { at: p, col: ld, row: 1 };
    let by_rows = |p: *const T| Strided { at: p, col: 1, row: ld };
    let vector = |p: *const T| Strided { at: p, col: 1, row: 1 };
    let out = |p: *mut T| Strided { at: p, col: 1, row: 1 };
    for (i, beta) in betas[..b].iter_mut().enumerate() {
        let c = j + i;
        if i > 0 {
            // A[c.., c] −= V[c.., :i] W[c, :i]ᵀ + W[c.., :i] V[c, :i]ᵀ
            let dst = out(a[at(c, c)..].as_mut_ptr());
            let (v, w) = (a[at(c, j)..].as_ptr(), s.w[c..].as_ptr());
            // SAFETY: the views are inside `a` and `w` over their extents
            // (rows c..n, i columns); column c of `a` is not among the
            // earlier columns j..c that `v` reads.
            unsafe {
                subtract_product(n - c, 1, i, dst, by_columns(v), by_rows(w), 1);
                subtract_product(n - c, 1, i, dst, by_columns(w), by_rows(v), 1);
            }
        }
        if c + 1 == n {
            break;
        }
        let m = n - c - 1;
        let (head, rest) = a.split_at_mut(at(0, c + 1));
        // As a column of a one-column row-major matrix.
        let tau = reflector::<simd::Unfused, T>(&mut head[at(c + 1, c)..], 1, 0, m);
        taus[c] = tau;
        *beta = std::mem::replace(&mut head[at(c + 1, c)], one);
        let head = &*head;
        let v = &head[at(c + 1, c)..][..m];
        let (left, right) = s.w.split_at_mut(i * n);
        let wi = &mut right[c + 1..][..m];
        // w = A₂₂ v, A₂₂ the part not yet reduced (from column c + 1 on).
        symv(&rest[c + 1..], n, m, v, wi, &mut s.sums);
        if i > 0 {
            let (t1, t2) = s.small.split_at_mut(PANEL);
            let (w_prev, v_prev) = (left[c + 1..].as_ptr(), head[at(c + 1, j)..].as_ptr());
            // SAFETY: every view is inside its buffer over its extent (m
            // rows, i panel columns); `wi`, column i of `w`, is apart from
            // the earlier columns in `left`, and `t1`, `t2` are scratch.
            unsafe {
                // w −= V (Wᵀ v) + W (Vᵀ v)
                product(i, 1, m, out(t1.as_mut_ptr()), by_rows(w_prev), vector(v.as_ptr()), false, 1);
                product(i, 1, m, out(t2.as_mut_ptr()), by_rows(v_prev), vector(v.as_ptr()), false, 1);
                let wi = out(wi.as_mut_ptr());
                subtract_product(m, 1, i, wi, by_columns(v_prev), vector(t1.as_ptr()), 1);
                subtract_product(m, 1, i, wi, by_columns(w_prev), vector(t2.as_ptr()), 1);
            }
        }
        let mut dot = zero;
        for (x, &y) in wi.iter_mut().zip(v) {
            *x = tau * *x;
            dot = madd::<simd::Unfused, T>(*x, y, dot);
        }
        let alpha = (zero - tau * dot) / (one + one);
        for (x, &y) in wi.iter_mut().zip(v) {
            *x = madd::<simd::Unfused, T>(alpha, y, *x);
        }
    }
}

/// The rest of the matrix, from row and column `t = j + b` on, less the
/// panel's `V Wᵀ + W Vᵀ`: one product `[V W] [W V]ᵀ` of depth `2 b` for
/// each block of [`BLOCK`] columns, from the block's diagonal down.
fn update<T: Field>(a: &mut [T], n: usize, j: usize, b: usize, s: &mut Scratch<T>) {
    let t = j + b;
    let rows = n - t;
    s.vwv.resize(3 * b * rows, <T as Num>::ZERO);
    for k in 0..b {
        let v = &a[(j + k) * n + t..][..rows];
        s.vwv[k * rows..][..rows].copy_from_slice(v);
        s.vwv[(b + k) * rows..][..rows].copy_from_slice(&s.w[k * n + t..][..rows]);
        s.vwv[(2 * b + k) * rows..][..rows].copy_from_slice(v);
    }
    let (x, y) = (&s.vwv[..], &s.vwv[b * rows..]);
    let ld = rows as isize;
    let mut c0 = t;
    while c0 < n {
        let width = BLOCK.min(n - c0);
        let (o, h) = (c0 - t, n - c0);
        let dst = Strided { at: a[c0 * n + c0..].as_mut_ptr(), col: n as isize, row: 1 };
        let x = Strided { at: x[o..].as_ptr(), col: ld, row: 1 };
        let y = Strided { at: y[o..].as_ptr(), col: 1, row: ld };
        // SAFETY: `dst` is rows c0..n of columns c0..c0 + width of `a`;
        // `x` is rows o.. of the 2b columns of `[V W]`, `y` those rows of
        // `[W V]`, transposed; both in scratch apart from `a`, and
        // `[W V]` ends where `[V W V]` does.
        unsafe { subtract_product(h, width, 2 * b, dst, x, y, pieces_for(4 * b * h * width)) };
        c0 += width;
    }
}

/// `y = A x` for the symmetric `m × m` matrix whose lower triangle `a`
/// holds (columns `ld` apart), each stored element read once. Over the
/// team's threads from [`PARALLEL_ELEMENTS`] on, each thread taking
/// columns that hold an equal share of the triangle and summing into its
/// own `y` (after the first, in `sums`).
fn symv<T: Field>(a: &[T], ld: usize, m: usize, x: &[T], y: &mut [T], sums: &mut Vec<T>) {
    let zero = <T as Num>::ZERO;
    y.fill(zero);
    let pieces = if m * m / 2 >= PARALLEL_ELEMENTS { parallel::threads() } else { 1 };
    if pieces <= 1 {
        return simd::dispatch(Symv { a, ld, cols: 0..m, x, y });
    }
    // The columns before `c` hold `c m − c² / 2` elements.
    let bound = |k: usize| m - (m as f64 * (1.0 - k as f64 / pieces as f64).sqrt()) as usize;
    sums.clear();
    sums.resize((pieces - 1) * m, zero);
    let parts: Vec<Mutex<&mut [T]>> = std::iter::once(y).chain(sums.chunks_mut(m)).map(Mutex::new).collect();
    team::run(pieces, &|k| {
        let mut y = parts[k].lock().unwrap_or_else(|e| e.into_inner());
        simd::dispatch(Symv { a, ld, cols: bound(k)..bound(k + 1), x, y: &mut y });
    });
    let mut parts = parts.into_iter().map(|p| p.into_inner().unwrap_or_else(|e| e.into_inner()));
    let y = parts.next().expect("the first thread's sums");
    for (k, part) in (1..).zip(parts) {
        let lo = bound(k);
        for (y, &p) in y[lo..].iter_mut().zip(&part[lo..]) {
            *y = *y + p;
        }
    }
}

/// [`symv`]'s loop over columns `cols`, adding into `y` (rows from
/// `cols.start` on).
struct Symv<'a, T> {
    a: &'a [T],
    ld: usize,
    cols: Range<usize>,
    x: &'a [T],
    y: &'a mut [T],
}

impl<T: Field> Kernel for Symv<'_, T> {
    type Out = ();

    #[inline(always)]
    fn run<I: Isa>(mut self) {
        // The portable loop (the whole pass at the scalar level; the last
        // columns and rows beside [`x86::four`]) in lanes of one AVX-512
        // or AVX2 register.
        let wide = simd::level() == simd::Level::Avx512;
        match (std::mem::size_of::<T>(), wide) {
            (4, true) => self.columns::<I, 16>(),
            (4, false) => self.columns::<I, 8>(),
            (_, true) => self.columns::<I, 8>(),
            _ => self.columns::<I, 4>(),
        }
    }
}

impl<T: Field> Symv<'_, T> {
    #[inline(always)]
    fn columns<I: Isa, const W: usize>(&mut self) {
        let mut c = self.cols.start;
        while c + 4 <= self.cols.end {
            self.block::<I, 4, W>(c);
            c += 4;
        }
        for c in c..self.cols.end {
            self.block::<I, 1, W>(c);
        }
    }

    /// Columns `c..c + N`: their part of `A x` below them in `W` lanes
    /// (`y += A[.., c..c + N] x[c..c + N]` and the dot products of the
    /// columns with `x` in one pass), then the triangle on the diagonal.
    #[inline(always)]
    fn block<I: Isa, const N: usize, const W: usize>(&mut self, c: usize) {
        let zero = <T as Num>::ZERO;
        let (m, ld) = (self.x.len(), self.ld);
        let start = c + N;
        let xs: [T; N] = std::array::from_fn(|k| self.x[c + k]);
        let cols: [&[T]; N] = std::array::from_fn(|k| &self.a[(c + k) * ld..][..m]);
        let mut lanes = [[zero; W]; N];
        let mut r = start;
        #[cfg(target_arch = "x86_64")]
        if I::FMA && N == 4 {
            let col_at: [*const T; 4] = std::array::from_fn(|k| cols[k].as_ptr());
            let (x, y) = (self.x.as_ptr(), self.y[..m].as_mut_ptr());
            // SAFETY: rows start..m of `x`, `y` and the columns are in
            // bounds; FMA is there (the fused levels are AVX2 or AVX-512).
            let (done, sums) = unsafe { x86::four(col_at, x, y, [xs[0], xs[1], xs[2], xs[3]], start, m) };
            (0..N).for_each(|k| lanes[k][0] = sums[k]);
            r = done;
        }
        let full = r + (m - r) / W * W;
        let (x, y) = (self.x.as_ptr(), self.y[..m].as_mut_ptr());
        let col_at: [*const T; N] = std::array::from_fn(|k| cols[k].as_ptr());
        while r < full {
            // SAFETY: r + W ≤ m, and `x`, `y` and every column have m
            // elements.
            unsafe {
                let xv = load::<T, W>(x.add(r));
                let mut yv = load::<T, W>(y.add(r));
                for k in 0..N {
                    let v = load::<T, W>(col_at[k].add(r));
                    for l in 0..W {
                        yv[l] = madd::<I, T>(v[l], xs[k], yv[l]);
                        lanes[k][l] = madd::<I, T>(v[l], xv[l], lanes[k][l]);
                    }
                }
                y.add(r).cast::<[T; W]>().write_unaligned(yv);
            }
            r += W;
        }
        let mut dots: [T; N] = std::array::from_fn(|k| lanes[k].iter().fold(zero, |s, &l| s + l));
        for r in r..m {
            for (k, col) in cols.iter().enumerate() {
                self.y[r] = madd::<I, T>(col[r], xs[k], self.y[r]);
                dots[k] = madd::<I, T>(col[r], self.x[r], dots[k]);
            }
        }
        for (k, col) in cols.iter().enumerate() {
            let d = c + k;
            dots[k] = madd::<I, T>(col[d], self.x[d], dots[k]);
            for r in d + 1..start {
                self.y[r] = madd::<I, T>(col[r], xs[k], self.y[r]);
                dots[k] = madd::<I, T>(col[r], self.x[r], dots[k]);
            }
            self.y[d] = self.y[d] + dots[k];
        }
    }
}

/// [`Symv`]'s four-column loop in AVX2 registers: left to the vectoriser,
/// the sums of the columns' dot products were laid across columns rather
/// than rows, shuffled at every step, and the pass ran at half the speed.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::any::TypeId;
    use std::arch::x86_64::*;

    use super::Field;

    /// `y += Σ_k cols[k] xs[k]` and the four sums `Σ cols[k] · x` over the
    /// rows from `start`, in whole steps of two vectors: returns where
    /// they stopped and the sums.
    ///
    /// # Safety
    /// `x`, `y` and the columns hold `m` elements; AVX2 and FMA are there.
    #[inline(always)]
    pub(super) unsafe fn four<T: Field>(
        cols: [*const T; 4],
        x: *const T,
        y: *mut T,
        xs: [T; 4],
        start: usize,
        m: usize,
    ) -> (usize, [T; 4]) {
        if TypeId::of::<T>() == TypeId::of::<f64>() {
            // SAFETY: T is f64; the caller's.
            let (r, sums) = unsafe {
                four_f64(cols.map(|p| p.cast()), x.cast(), y.cast(), std::mem::transmute_copy(&xs), start, m)
            };
            // SAFETY: T is f64.
            (r, unsafe { std::mem::transmute_copy(&sums) })
        } else {
            // SAFETY: T is f32, the only other `Field`.
            let (r, sums) = unsafe {
                four_f32(cols.map(|p| p.cast()), x.cast(), y.cast(), std::mem::transmute_copy(&xs), start, m)
            };
            // SAFETY: T is f32.
            (r, unsafe { std::mem::transmute_copy(&sums) })
        }
    }

    macro_rules! four {
        ($name:ident, $t:ty, $v:ty, $lanes:expr, $load:ident, $store:ident, $set1:ident, $zero:ident,
         $fmadd:ident, $add:ident) => {
            /// [`four`] for one element type.
            ///
            /// # Safety
            /// As [`four`]'s.
            #[target_feature(enable = "avx2,fma")]
            unsafe fn $name(
                cols: [*const $t; 4],
                x: *const $t,
                y: *mut $t,
                xs: [$t; 4],
                start: usize,
                m: usize,
            ) -> (usize, [$t; 4]) {
                const L: usize = $lanes;
                let b = xs.map(|v| $set1(v));
                // Two sets of sums, so that each waits on its own adds.
                let mut acc = [[$zero(); 4]; 2];
                let mut r = start;
                while r + 2 * L <= m {
                    for (h, acc) in acc.iter_mut().enumerate() {
                        let at = r + h * L;
                        // SAFETY: at + L ≤ m; the caller's.
                        unsafe {
                            let xv = $load(x.add(at));
                            let a = cols.map(|c| $load(c.add(at)));
                            let mut yv = $load(y.add(at));
                            for k in 0..4 {
                                acc[k] = $fmadd(a[k], xv, acc[k]);
                            }
                            yv = $fmadd(a[0], b[0], yv);
                            let t = $fmadd(a[2], b[2], $fmadd(a[3], b[3], $zero()));
                            yv = $fmadd(a[1], b[1], yv);
                            $store(y.add(at), $add(yv, t));
                        }
                    }
                    r += 2 * L;
                }
                let mut sums = [0.0; 4];
                for k in 0..4 {
                    let mut lanes = [0.0 as $t; L];
                    // SAFETY: `lanes` holds one vector.
                    unsafe { $store(lanes.as_mut_ptr(), $add(acc[0][k], acc[1][k])) };
                    sums[k] = lanes.iter().sum();
                }
                (r, sums)
            }
        };
    }
    four!(
        four_f64,
        f64,
        __m256d,
        4,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_set1_pd,
        _mm256_setzero_pd,
        _mm256_fmadd_pd,
        _mm256_add_pd
    );
    four!(
        four_f32,
        f32,
        __m256,
        8,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_setzero_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Rng;

    /// A random symmetric `n × n` matrix: its full square by columns `ld`
    /// apart, in f64, and the same rounded to `T` with NaN above the
    /// diagonal, which nothing may read.
    fn symmetric<T: Field>(n: usize, ld: usize, seed: u64) -> (Vec<f64>, Vec<T>) {
        let mut rng = Rng::new(seed);
        let mut full = vec![0.0; ld * n];
        for c in 0..n {
            for r in c..n {
                let x = T::from_f64(rng.normal()).to_f64();
                (full[c * ld + r], full[r * ld + c]) = (x, x);
            }
        }
        let lower = (0..ld * n).map(|i| T::from_f64(if i % ld < i / ld { f64::NAN } else { full[i] })).collect();
        (full, lower)
    }

    /// `A x` from the lower triangle: every SIMD level's loop and the
    /// portable one, over all the columns at once and split in two as the
    /// team splits them, against the product of the full square in f64, to
    /// `m ε Σ |A| |x|` per row.
    fn symv_matches<T: Field>(eps: f64) {
        for m in [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 40, 67, 300] {
            let ld = m + 3;
            let (full, a) = symmetric::<T>(m, ld, m as u64);
            let mut rng = Rng::new(100 + m as u64);
            let x: Vec<T> = (0..m).map(|_| T::from_f64(rng.normal())).collect();
            let mut runs: Vec<(&str, Vec<T>)> = Vec::new();
            let mut y = vec![<T as Num>::ZERO; m];
            simd::dispatch(Symv { a: &a, ld, cols: 0..m, x: &x, y: &mut y });
            runs.push(("this level's", y));
            let mut y = vec![<T as Num>::ZERO; m];
            Symv { a: &a, ld, cols: 0..m, x: &x, y: &mut y }.run::<simd::Unfused>();
            runs.push(("the portable", y));
            let (mut y, mut z) = (vec![<T as Num>::ZERO; m], vec![<T as Num>::ZERO; m]);
            let half = m / 3;
            simd::dispatch(Symv { a: &a, ld, cols: 0..half, x: &x, y: &mut y });
            simd::dispatch(Symv { a: &a, ld, cols: half..m, x: &x, y: &mut z });
            runs.push(("the split", y.iter().zip(&z).map(|(&p, &q)| p + q).collect()));
            for (name, y) in runs {
                for r in 0..m {
                    let row = (0..m).map(|c| (full[c * ld + r], x[c].to_f64()));
                    let (want, size) = row.fold((0.0, 0.0), |(s, t), (a, x)| (s + a * x, t + (a * x).abs()));
                    let bound = m as f64 * eps * size;
                    let got = y[r].to_f64();
                    assert!((got - want).abs() <= bound, "m = {m}, row {r}: {name} loop gave {got}, not {want}");
                }
            }
        }
    }

    #[test]
    fn symv_reads_the_lower_triangle_once_at_every_level() {
        symv_matches::<f64>(f64::EPSILON);
        symv_matches::<f32>(f32::EPSILON as f64);
    }

    /// `Qᵀ A Q` with `Q = H₀ … H_{n−2}` built from the reflectors, in f64:
    /// the tridiagonal `T` left in `a`, to `4 n ε ‖A‖` (the reduction's
    /// backward error is a small multiple of `n ε ‖A‖`), with `QᵀQ = I` to
    /// `4 n ε`. One and two panels and a part of one, in f64 and f32.
    fn reduction_holds<T: Field + Sqrt>(n: usize, eps: f64) {
        let (full, mut a) = symmetric::<T>(n, n, 7 + n as u64);
        let mut taus = vec![<T as Num>::ZERO; n.saturating_sub(1)];
        tridiagonalize(&mut a, n, &mut taus);
        let at = |r: usize, c: usize| a[c * n + r].to_f64();
        // Q by rows, the reflectors applied to I from the last.
        let mut q = vec![0.0; n * n];
        (0..n).for_each(|i| q[i * n + i] = 1.0);
        for j in (0..n.saturating_sub(1)).rev() {
            let v: Vec<f64> = (j + 1..n).map(|r| if r == j + 1 { 1.0 } else { at(r, j) }).collect();
            let tau = taus[j].to_f64();
            for c in 0..n {
                let s: f64 = v.iter().enumerate().map(|(i, vi)| vi * q[(j + 1 + i) * n + c]).sum();
                v.iter().enumerate().for_each(|(i, vi)| q[(j + 1 + i) * n + c] -= tau * vi * s);
            }
        }
        let norm = full.iter().fold(0.0f64, |m, x| m.max(x.abs())) * n as f64;
        let bound = 4.0 * n as f64 * eps;
        let aq: Vec<f64> = (0..n * n).map(|i| (0..n).map(|k| full[(i / n) * n + k] * q[k * n + i % n]).sum()).collect();
        for r in 0..n {
            for c in 0..n {
                let qaq: f64 = (0..n).map(|k| q[k * n + r] * aq[k * n + c]).sum();
                let want = match r.abs_diff(c) {
                    0 => at(r, r),
                    1 => at(r.max(c), r.min(c)),
                    _ => 0.0,
                };
                assert!((qaq - want).abs() <= bound * norm, "n = {n}: (QᵀAQ)[{r}, {c}] = {qaq}, T's {want}");
                let qq: f64 = (0..n).map(|k| q[k * n + r] * q[k * n + c]).sum();
                assert!((qq - f64::from(r == c)).abs() <= bound, "n = {n}: (QᵀQ)[{r}, {c}] = {qq}");
            }
        }
    }

    #[test]
    fn reduction_is_an_orthogonal_similarity() {
        for n in [0, 1, 2, 3, 5, 32, 33, 64, 70, 100] {
            reduction_holds::<f64>(n, f64::EPSILON);
        }
        reduction_holds::<f32>(100, f32::EPSILON as f64);
        // A diagonal matrix is already tridiagonal: every τ is 0 and the
        // diagonal stays as it was, exactly.
        let n = 40;
        let mut a: Vec<f64> = (0..n * n).map(|i| if i % n == i / n { i as f64 } else { 0.0 }).collect();
        let mut taus = vec![1.0; n - 1];
        tridiagonalize(&mut a, n, &mut taus);
        assert!(taus.iter().all(|&t| t == 0.0), "{taus:?}");
        assert!((0..n).all(|i| a[i * n + i] == (i * n + i) as f64 && (i + 1 == n || a[i * n + i + 1] == 0.0)));
    }
}
