//! Products with at most [`MAX_WIDTH`] columns (or rows) on one side:
//! matrix–vector products and their few-column kin, which reverse mode and
//! `jvp` make of every `A @ x`.
//!
//! The `gemm` crate packs the long operand for such a product, or walks it
//! one column at a time: `[300, 200] · [200, 1]` in f64 took 7.4 µs and
//! `[300, 200] · [200, 2]` 21.6 µs on an AMD EPYC (Zen 4), a third and a
//! tenth of what streaming the 480 kB matrix once allows. Here the long
//! operand is read once, in whole vectors, straight from where it lies:
//!
//! - when its rows are contiguous, each output element is a dot product,
//!   taken for a block of rows and every column at once in vector lanes;
//! - when its columns are contiguous, the result is summed in chunks of
//!   rows that stay in L1, eight columns of the long operand (four for
//!   two to four outputs) added in at a time, each scaled by its element
//!   of the short operand;
//! - except that two to four rows times a matrix stored by rows of at most
//!   [`GEMM_BYTES`] are left to `gemm`, whose register tiles win there.

use super::{num_like::Scalar, Strided};
use crate::array::simd::{self, load, madd, Isa, Kernel};

/// The widest short side taken here; wider products go to `gemm`, whose
/// packing then pays for itself.
pub(super) const MAX_WIDTH: usize = 4;

/// `dst [m, n] = scale · a [m, k] · b [k, n]`, or `dst +=` that with
/// `accumulate` (without it `dst` is only written), when `n` or `m` is at
/// most [`MAX_WIDTH`] and the long operand has contiguous rows or columns.
/// Returns false, touching nothing, for any other product.
///
/// # Safety
/// As for `matmul::product`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product<T: Scalar>(
    m: usize,
    n: usize,
    k: usize,
    dst: Strided<*mut T>,
    a: Strided<*const T>,
    b: Strided<*const T>,
    accumulate: bool,
    scale: T,
) -> bool {
    if m == 0 || n == 0 {
        return true;
    }
    let out = Out { dst, accumulate, scale };
    // Cᵀ = Bᵀ Aᵀ: a product short in rows is the same product with rows
    // and columns swapped in every view.
    let swapped = Out { dst: swap(dst), ..out };
    // SAFETY: the caller's; the swapped views address the same elements.
    unsafe {
        n <= MAX_WIDTH && narrow(m, n, k, out, a, b, false)
            || m <= MAX_WIDTH && narrow(n, m, k, swapped, swap(b), swap(a), true)
    }
}

/// The shortest dot products taken here: each costs a sum across a
/// vector's lanes, which `gemm`'s kernels for short rows avoid (100 000 ×
/// 2 · 2 × 1 in f32 took 244 µs here against 43 µs there).
const MIN_DOT: usize = 32;

/// The fewest columns of `a` taken by column updates: each product adds
/// into its partial sums in memory, where `gemm` has kernels for one or
/// two (100 000 × 2 · 2 × 1, `a` by columns, in f32: 26 µs here against
/// 14 µs there).
const MIN_COLUMNS: usize = 8;

/// The largest matrix stored by rows (a thread's share of its columns)
/// that two to four rows multiply in `gemm` rather than by column updates
/// here. That is `gemm`'s own case: its register tiles hold the result
/// over all of `k`, where the column updates pass it through L1. On an AMD
/// EPYC (Zen 4), 4 × 512 · 512 × 512 in f32 took 10–13 µs there against
/// 19–24 µs here, and 4 × 300 · 300 × 200 in f64 9 against 11; from 2 MiB
/// a thread (1024² in f32, 700² in f64, two threads) the column updates,
/// reading the matrix once, were level or faster. Columns of a matrix
/// times two to four vectors, the transposed layout, stay here at any size
/// (W5's `Aᵀ [g ġ]`: 5.9 µs against 19 µs in `gemm`).
const GEMM_BYTES: usize = 1 << 20;

/// The distance, in elements, from element (0, 0) of `v` to element (i, j).
fn offset<P>(v: &Strided<P>, i: usize, j: usize) -> isize {
    i as isize * v.row + j as isize * v.col
}

/// A view of the transpose of `v`.
fn swap<P>(v: Strided<P>) -> Strided<P> {
    Strided { at: v.at, col: v.row, row: v.col }
}

/// Where results go: `dst = scale · r`, or `dst += scale · r`.
#[derive(Clone, Copy)]
struct Out<T> {
    dst: Strided<*mut T>,
    accumulate: bool,
    scale: T,
}

impl<T: Scalar> Out<T> {
    /// Writes the result `r` of element (i, j).
    ///
    /// # Safety
    /// (i, j) is inside the destination.
    #[inline(always)]
    unsafe fn put<I: Isa>(&self, i: usize, j: usize, r: T) {
        // SAFETY: the caller's.
        unsafe {
            let p = self.dst.at.offset(offset(&self.dst, i, j));
            *p = if self.accumulate { madd::<I, T>(self.scale, r, *p) } else { self.scale * r };
        }
    }
}

/// [`product`] for `n` ≤ [`MAX_WIDTH`]: false where `a`'s layout (or a
/// short `k`) leaves the product to `gemm`. `swapped` says that this is
/// the transposed form of a product short in rows.
///
/// # Safety
/// As for [`product`].
unsafe fn narrow<T: Scalar>(
    m: usize,
    n: usize,
    k: usize,
    out: Out<T>,
    a: Strided<*const T>,
    b: Strided<*const T>,
    swapped: bool,
) -> bool {
    if a.col == 1 && k >= MIN_DOT {
        // The dot products read each column of `b` as a run; a column that
        // is not one is copied first (n · k elements against m · n · k
        // multiplications).
        let mut packed = Vec::new();
        let (cols, ld) = if b.row == 1 {
            (b.at, b.col)
        } else {
            packed.reserve_exact(n * k);
            for j in 0..n {
                // SAFETY: (kk, j) is inside `b`.
                packed.extend((0..k).map(|kk| unsafe { *b.at.offset(offset(&b, kk, j)) }));
            }
            (packed.as_ptr(), k as isize)
        };
        simd::dispatch(Dots { m, n, k, a: a.at, lda: a.row, cols, ld, out });
    } else if a.row == 1 && k >= MIN_COLUMNS && (n == 1 || !swapped || m * k * size_of::<T>() > GEMM_BYTES) {
        simd::dispatch(Axpys { m, n, k, a: a.at, lda: a.col, b, out });
    } else {
        return false;
    }
    true
}

/// Calls `$self.rows::<I, N, BLOCK, W>()` for the product's width `N`
/// (1 to 4), with vectors of `W` lanes (64 bytes) and the block size for
/// that width from the first list under AVX-512, from the second
/// otherwise (where a 64-byte vector is two of AVX2's sixteen registers),
/// or the third for f64 there.
macro_rules! by_width {
    ($self:ident, $I:ident, $T:ident, $wide:tt, $narrow:tt, $narrow64:tt) => {{
        if std::mem::size_of::<$T>() == 4 {
            by_width!(@level $self, $I, 16, $wide, $narrow)
        } else {
            by_width!(@level $self, $I, 8, $wide, $narrow64)
        }
    }};
    (@level $self:ident, $I:ident, $W:literal, $wide:tt, $narrow:tt) => {
        if simd::level() == simd::Level::Avx512 {
            by_width!(@n $self, $I, $W, $wide)
        } else {
            by_width!(@n $self, $I, $W, $narrow)
        }
    };
    (@n $self:ident, $I:ident, $W:literal, [$b1:literal, $b2:literal, $b3:literal, $b4:literal]) => {
        match $self.n {
            1 => $self.rows::<$I, 1, $b1, $W>(),
            2 => $self.rows::<$I, 2, $b2, $W>(),
            3 => $self.rows::<$I, 3, $b3, $W>(),
            _ => $self.rows::<$I, 4, $b4, $W>(),
        }
    };
}

/// The sum of `v`'s lanes by halves: three vector additions for eight
/// lanes where an in-order sum takes seven dependent ones. (`norm` adds in
/// order because a tree split the vectoriser's loop there; the lanes here
/// are explicit arrays, which stay whole: A x on W5's matrix went from
/// 5.7 to 5.3–5.5 µs.)
#[inline(always)]
fn total<T: Scalar, const W: usize>(mut v: [T; W]) -> T {
    let mut h = W;
    while h > 1 {
        h /= 2;
        for l in 0..h {
            v[l] = v[l] + v[l + h];
        }
    }
    v[0]
}

/// Dot products: row `i` of `a` (contiguous, rows `lda` apart) with
/// column `j` of `b` (contiguous at `cols`, columns `ld` apart).
struct Dots<T> {
    m: usize,
    n: usize,
    k: usize,
    a: *const T,
    lda: isize,
    cols: *const T,
    ld: isize,
    out: Out<T>,
}

impl<T: Scalar> Kernel for Dots<T> {
    type Out = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        // Blocks of rows that keep eight or more sums in flight (two FMA
        // units, four cycles each), as many as AVX-512's 32 registers hold
        // beside the loads; halved for AVX2's 16. Except one row of f64 at
        // a time there, for a matrix–vector product: with four (or two)
        // rows, the vectoriser packed the rows' elements into the vector
        // lanes, each gathered by shuffles, instead of each row's run of
        // elements (W5_hvp on an AMD EPYC Zen 1: 136 µs against 117; in
        // f32, W6 took 88 µs against 79 with one row, and keeps four).
        by_width!(self, I, T, [8, 8, 4, 4], [4, 2, 2, 1], [1, 2, 2, 1])
    }
}

impl<T: Scalar> Dots<T> {
    #[inline(always)]
    fn rows<I: Isa, const N: usize, const R: usize, const W: usize>(&self) {
        let mut i = 0;
        while i + R <= self.m {
            // SAFETY: rows i..i + R are inside `a` and `dst`.
            unsafe { self.block::<I, N, R, W>(i) };
            i += R;
        }
        for i in i..self.m {
            // SAFETY: row i is inside `a` and `dst`.
            unsafe { self.block::<I, N, 1, W>(i) };
        }
    }

    /// Rows `i..i + R` of the result.
    ///
    /// # Safety
    /// They are inside `a` and `dst`.
    #[inline(always)]
    unsafe fn block<I: Isa, const N: usize, const R: usize, const W: usize>(&self, i: usize) {
        let row = |r: usize| self.a.wrapping_offset((i + r) as isize * self.lda);
        let col = |j: usize| self.cols.wrapping_offset(j as isize * self.ld);
        let mut acc = [[[T::ZERO; W]; N]; R];
        let full = self.k / W * W;
        let mut kk = 0;
        while kk < full {
            // SAFETY: kk + W ≤ k elements of each row and column.
            let cv: [[T; W]; N] = std::array::from_fn(|j| unsafe { load(col(j).add(kk)) });
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: as above.
                let av: [T; W] = unsafe { load(row(r).add(kk)) };
                for (acc, cv) in acc.iter_mut().zip(&cv) {
                    for l in 0..W {
                        acc[l] = madd::<I, T>(av[l], cv[l], acc[l]);
                    }
                }
            }
            kk += W;
        }
        for (r, acc) in acc.into_iter().enumerate() {
            for (j, acc) in acc.into_iter().enumerate() {
                let mut s = total(acc);
                for kk in full..self.k {
                    // SAFETY: kk < k.
                    s = unsafe { madd::<I, T>(*row(r).add(kk), *col(j).add(kk), s) };
                }
                // SAFETY: the caller's.
                unsafe { self.out.put::<I>(i + r, j, s) };
            }
        }
    }
}

/// Column updates: columns of `a` (each contiguous, `lda` apart) times
/// elements of `b`, added into the result's columns.
///
/// The result is built in chunks of rows that stay in L1 (`part`), and
/// each chunk takes `G` columns of `a` at a time, so that every column is
/// read once, front to back. Keeping a block of rows in registers over all
/// of `k` instead read each column a few lines at a time, a page apart: a
/// 2048² f32 matrix stored by columns times a vector took 3.1 ms, against
/// 0.40–0.48 ms in `gemm` and 0.18 ms here.
struct Axpys<T> {
    m: usize,
    n: usize,
    k: usize,
    a: *const T,
    lda: isize,
    b: Strided<*const T>,
    out: Out<T>,
}

/// The bytes of one chunk of the result's rows, all columns.
const CHUNK_BYTES: usize = 16 << 10;

impl<T: Scalar> Kernel for Axpys<T> {
    type Out = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        // Columns of `a` taken at once: each vector of partial sums is
        // read and written once per `G` products.
        by_width!(self, I, T, [8, 4, 4, 4], [8, 4, 4, 4], [8, 4, 4, 4])
    }
}

impl<T: Scalar> Axpys<T> {
    #[inline(always)]
    fn rows<I: Isa, const N: usize, const G: usize, const W: usize>(&self) {
        let chunk = (CHUNK_BYTES / std::mem::size_of::<T>() / N / W).max(1) * W;
        let chunk = chunk.min(self.m);
        let mut part = Vec::with_capacity(chunk * N);
        for i0 in (0..self.m).step_by(chunk) {
            let rows = chunk.min(self.m - i0);
            part.clear();
            part.resize(chunk * N, T::ZERO);
            let mut kk = 0;
            while kk + G <= self.k {
                // SAFETY: rows i0 .. i0 + rows of columns kk .. kk + G are inside `a`.
                unsafe { self.columns::<I, N, G>(i0, rows, kk, &mut part, chunk) };
                kk += G;
            }
            for kk in kk..self.k {
                // SAFETY: as above, for column kk.
                unsafe { self.columns::<I, N, 1>(i0, rows, kk, &mut part, chunk) };
            }
            for j in 0..N {
                for (r, &s) in part[j * chunk..][..rows].iter().enumerate() {
                    // SAFETY: (i0 + r, j) is inside `dst`.
                    unsafe { self.out.put::<I>(i0 + r, j, s) };
                }
            }
        }
    }

    /// Element (kk, j) of `b`.
    ///
    /// # Safety
    /// It is inside `b`.
    #[inline(always)]
    unsafe fn elem(&self, kk: usize, j: usize) -> T {
        // SAFETY: the caller's.
        unsafe { *self.b.at.offset(offset(&self.b, kk, j)) }
    }

    /// Adds columns `kk .. kk + G` of `a`, rows `i0 .. i0 + rows`, times
    /// their elements of `b`, into the partial sums (column `j` at
    /// `part[j chunk ..]`). The loop over rows is left to the vectoriser:
    /// written over vectors of rows by hand, it was taken for a strided
    /// loop and compiled to gathers.
    ///
    /// # Safety
    /// Those rows and columns are inside `a`, and rows `kk .. kk + G` inside `b`.
    #[inline(always)]
    unsafe fn columns<I: Isa, const N: usize, const G: usize>(
        &self,
        i0: usize,
        rows: usize,
        kk: usize,
        part: &mut [T],
        chunk: usize,
    ) {
        // SAFETY: the caller's.
        let cols: [&[T]; G] = std::array::from_fn(|g| unsafe {
            std::slice::from_raw_parts(self.a.offset((kk + g) as isize * self.lda).add(i0), rows)
        });
        // SAFETY: the caller's.
        let bs: [[T; N]; G] = std::array::from_fn(|g| std::array::from_fn(|j| unsafe { self.elem(kk + g, j) }));
        let mut runs = part.chunks_exact_mut(chunk);
        let ps: [&mut [T]; N] = std::array::from_fn(|_| &mut runs.next().expect("a run per column")[..rows]);
        for i in 0..rows {
            // Every load before any store: LLVM otherwise reloads the
            // columns after each store into the partial sums.
            let a: [T; G] = std::array::from_fn(|g| cols[g][i]);
            let mut s: [T; N] = std::array::from_fn(|j| ps[j][i]);
            for (j, s) in s.iter_mut().enumerate() {
                for g in 0..G {
                    *s = madd::<I, T>(a[g], bs[g][j], *s);
                }
            }
            for j in 0..N {
                ps[j][i] = s[j];
            }
        }
    }
}
