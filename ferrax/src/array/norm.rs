//! Standardisation over trailing axes, `y = (x - mean) / √(var + eps)` row
//! by row, and its tangent map, each as one pass per row: layer
//! normalisation built from reductions and broadcasting binary operations
//! reads and writes its rows about a dozen times forward and twice that
//! backward, where these read a row (of 64 to a few thousand elements,
//! which stays in the L1 cache) twice and write it once.
//!
//! The statistics are two-pass (the mean, then the mean square of the
//! centred values), as the composite definition computes them, and summed
//! in 8 running accumulators, a block of rows at a time.
//!
//! Softmax over trailing axes and its tangent map run on the same rows.

use std::mem::MaybeUninit;

use super::reduce::{max_run, sum_run};
use super::simd::{dispatch, Isa, Kernel};
use super::{parallel, pool, Array, Buffer, Element, FastMath, Float, Num};

/// The work per element of [`standardize`] and of its tangent, in
/// [`parallel`](super::parallel)'s units: two and three passes over a
/// row that is in the L1 cache, each about a cheap op.
const STANDARDIZE_COST: usize = 2;
const TANGENT_COST: usize = 3;
/// Softmax's: an exponential per element (a costly op) and three cheap passes.
const SOFTMAX_COST: usize = parallel::COSTLY + 3;

/// `x` standardised over runs of `n` trailing elements: `[.., n]` rows.
pub fn standardize(x: &Array, n: usize, eps: f64) -> Array {
    let buf = match x.buffer() {
        Buffer::F32(v) => Buffer::F32(rows(v, None, n, STANDARDIZE_COST, Forward(eps as f32))),
        Buffer::F64(v) => Buffer::F64(rows(v, None, n, STANDARDIZE_COST, Forward(eps))),
        _ => unreachable!("standardize: the backend widens half precision to f32"),
    };
    Array::new(x.shape(), buf)
}

/// The tangent of [`standardize`] at `x` applied to `t` (the same shape):
/// `r (t - mean(t) - y mean(y t))` per row, with `y` the standardised row
/// and `r` its reciprocal standard deviation. The map is symmetric, so it
/// is its own transpose.
pub fn standardize_tangent(t: &Array, x: &Array, n: usize, eps: f64) -> Array {
    let buf = match (t.buffer(), x.buffer()) {
        (Buffer::F32(tv), Buffer::F32(xv)) => Buffer::F32(rows(xv, Some(tv), n, TANGENT_COST, Tangent(eps as f32))),
        (Buffer::F64(tv), Buffer::F64(xv)) => Buffer::F64(rows(xv, Some(tv), n, TANGENT_COST, Tangent(eps))),
        _ => unreachable!("standardize_tangent: the backend widens half precision to f32"),
    };
    Array::new(x.shape(), buf)
}

/// Softmax over runs of `n` trailing elements: `e / Σe` with `e = exp(x -
/// max x)`, as the composite computes it (the same maximum, exponential,
/// pairwise sum and reciprocal, so the same bits), in one pass per row.
pub fn softmax(x: &Array, n: usize) -> Array {
    let buf = match x.buffer() {
        Buffer::F32(v) => Buffer::F32(rows(v, None, n, SOFTMAX_COST, Softmax)),
        Buffer::F64(v) => Buffer::F64(rows(v, None, n, SOFTMAX_COST, Softmax)),
        _ => unreachable!("softmax: the backend widens half precision to f32"),
    };
    Array::new(x.shape(), buf)
}

/// The tangent of [`softmax`] at the point whose softmax is `y`, applied
/// to `t`: `y (t - Σ y t)` per run. Symmetric, so it is its own transpose.
pub fn softmax_tangent(t: &Array, y: &Array, n: usize) -> Array {
    let buf = match (t.buffer(), y.buffer()) {
        (Buffer::F32(tv), Buffer::F32(yv)) => Buffer::F32(rows(yv, Some(tv), n, TANGENT_COST, SoftmaxTangent)),
        (Buffer::F64(tv), Buffer::F64(yv)) => Buffer::F64(rows(yv, Some(tv), n, TANGENT_COST, SoftmaxTangent)),
        _ => unreachable!("softmax_tangent: the backend widens half precision to f32"),
    };
    Array::new(y.shape(), buf)
}

/// `f(row of t, row of x, row of the output)` over the rows of `n` (`t`'s
/// rows empty when there is no `t`), split across threads when the work is
/// large enough.
fn rows<T: Element>(x: &[T], t: Option<&[T]>, n: usize, cost: usize, f: impl RowOp<T>) -> Vec<T> {
    if n == 0 {
        return vec![T::default(); x.len()];
    }
    let each = |start: usize, o: &mut [MaybeUninit<T>]| {
        let x = &x[start..start + o.len()];
        let t = t.map(|t| &t[start..start + o.len()]);
        dispatch(Rows { n, t, x, out: o, f: &f })
    };
    let mut out: Vec<T> = pool::with_capacity(x.len());
    let spare = &mut out.spare_capacity_mut()[..x.len()];
    if parallel::worth_splitting(x.len(), cost) {
        let per = parallel::chunk_len(x.len(), cost).div_ceil(n) * n;
        parallel::team::for_chunks(spare, per, each);
    } else {
        each(0, spare);
    }
    // SAFETY: every row of every chunk was written by its `RowOp`.
    unsafe { out.set_len(x.len()) };
    out
}

/// The loop of [`rows`] over one chunk, as a [`Kernel`] so that it is
/// compiled for the SIMD level (a closure this big handed to
/// `vectorized` is compiled for the baseline instead).
struct Rows<'a, T, F> {
    n: usize,
    t: Option<&'a [T]>,
    x: &'a [T],
    out: &'a mut [MaybeUninit<T>],
    f: &'a F,
}

/// Rows handled together. Their statistics come first, row after row, so
/// that the latencies of independent reductions overlap, and the block's
/// reciprocal square roots are one vector operation; then their outputs.
/// One row at a time, each row's output waited on its own sum, square
/// root and division: rows of 64 took three times as long.
const BLOCK: usize = 16;

impl<T: Element, F: RowOp<T>> Kernel for Rows<'_, T, F> {
    type Out = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        let Rows { n, t, x, out, f } = self;
        let per = BLOCK * n;
        for (i, (o, x)) in out.chunks_mut(per).zip(x.chunks(per)).enumerate() {
            f.block::<I>(n, t.map_or(&[][..], |t| &t[i * per..i * per + x.len()]), x, o);
        }
    }
}

/// The running accumulators of the sums: a vector of 8 f32 lanes (16
/// measured slower on rows of 64: their in-order total is twice as deep).
const LANES: usize = 8;

/// Σ `f(a[i], b[i])` in [`LANES`] running accumulators (also the
/// tridiagonal divide and conquer's dot products).
#[inline(always)]
pub(super) fn sum_of<T: Num>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
    let mut p = [T::ZERO; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (a, b) in ca.zip(cb) {
        for j in 0..LANES {
            p[j] = p[j] + f(a[j], b[j]);
        }
    }
    // Added in order: a pairwise tree here makes LLVM's vectoriser split
    // the loop above into pairs of lanes instead of one vector register.
    let mut s = T::ZERO;
    for v in p {
        s = s + v;
    }
    for (&a, &b) in ra.iter().zip(rb) {
        s = s + f(a, b);
    }
    s
}

/// The means and reciprocal standard deviations of the rows of `x` (at most [`BLOCK`]).
#[inline(always)]
fn moments<T: Float + Sqrt>(x: &[T], n: usize, eps: T) -> ([T; BLOCK], [T; BLOCK]) {
    let len = T::from_f64(n as f64);
    let (mut mean, mut var) = ([T::ZERO; BLOCK], [T::ONE; BLOCK]);
    for (m, row) in mean.iter_mut().zip(x.chunks_exact(n)) {
        *m = sum_of(row, row, |v, _| v) / len;
    }
    for ((v, &m), row) in var.iter_mut().zip(&mean).zip(x.chunks_exact(n)) {
        *v = sum_of(row, row, |v, _| (v - m) * (v - m)) / len;
    }
    (mean, std::array::from_fn(|i| T::ONE / (var[i] + eps).sqrt()))
}

/// What [`rows`] does to each block of rows: a trait rather than a
/// closure, so that its loops are inlined into the SIMD build.
trait RowOp<T>: Sync {
    /// Writes `out` from up to [`BLOCK`] rows of `n` of `x` (and of `t`, empty when there is none).
    fn block<I: Isa>(&self, n: usize, t: &[T], x: &[T], out: &mut [MaybeUninit<T>]);
}

/// [`standardize`]'s rows, with eps.
struct Forward<T>(T);
/// [`standardize_tangent`]'s rows, with eps.
struct Tangent<T>(T);

impl<T: Float + Sqrt> RowOp<T> for Forward<T> {
    #[inline(always)]
    fn block<I: Isa>(&self, n: usize, _: &[T], x: &[T], out: &mut [MaybeUninit<T>]) {
        let (mean, r) = moments(x, n, self.0);
        for (i, (o, x)) in out.chunks_exact_mut(n).zip(x.chunks_exact(n)).enumerate() {
            let (m, r) = (mean[i], r[i]);
            for (o, &v) in o.iter_mut().zip(x) {
                o.write((v - m) * r);
            }
        }
    }
}

impl<T: Float + Sqrt> RowOp<T> for Tangent<T> {
    #[inline(always)]
    fn block<I: Isa>(&self, n: usize, t: &[T], x: &[T], out: &mut [MaybeUninit<T>]) {
        let (mean, r) = moments(x, n, self.0);
        let len = T::from_f64(n as f64);
        let (mut t_mean, mut yt_mean) = ([T::ZERO; BLOCK], [T::ZERO; BLOCK]);
        for (i, (t, x)) in t.chunks_exact(n).zip(x.chunks_exact(n)).enumerate() {
            let m = mean[i];
            t_mean[i] = sum_of(t, t, |v, _| v) / len;
            yt_mean[i] = sum_of(x, t, |xi, ti| (xi - m) * ti) * r[i] / len;
        }
        for (i, ((o, t), x)) in out.chunks_exact_mut(n).zip(t.chunks_exact(n)).zip(x.chunks_exact(n)).enumerate() {
            let (m, r, tm, a) = (mean[i], r[i], t_mean[i], yt_mean[i]);
            for ((o, &ti), &xi) in o.iter_mut().zip(t).zip(x) {
                o.write(r * (ti - tm - (xi - m) * r * a));
            }
        }
    }
}

/// [`softmax`]'s rows.
struct Softmax;
/// [`softmax_tangent`]'s rows (`x` is the softmax `y`).
struct SoftmaxTangent;

impl<T: Float + FastMath> RowOp<T> for Softmax {
    #[inline(always)]
    fn block<I: Isa>(&self, n: usize, _: &[T], x: &[T], out: &mut [MaybeUninit<T>]) {
        for (o, x) in out.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
            let m = max_run(x);
            for (o, &v) in o.iter_mut().zip(x) {
                o.write((v - m).exp_in::<I>());
            }
            // SAFETY: every element of the row was written just above.
            let e = unsafe { &mut *(o as *mut [MaybeUninit<T>] as *mut [T]) };
            let r = T::ONE / sum_run(e);
            for v in e.iter_mut() {
                *v = *v * r;
            }
        }
    }
}

impl<T: Float> RowOp<T> for SoftmaxTangent {
    #[inline(always)]
    fn block<I: Isa>(&self, n: usize, t: &[T], y: &[T], out: &mut [MaybeUninit<T>]) {
        for ((o, t), y) in out.chunks_exact_mut(n).zip(t.chunks_exact(n)).zip(y.chunks_exact(n)) {
            let s = sum_of(y, t, |yi, ti| yi * ti);
            for ((o, &ti), &yi) in o.iter_mut().zip(t).zip(y) {
                o.write(yi * (ti - s));
            }
        }
    }
}

/// The square root of the two float types.
pub(crate) trait Sqrt {
    fn sqrt(self) -> Self;
}

impl Sqrt for f32 {
    #[inline(always)]
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
}

impl Sqrt for f64 {
    #[inline(always)]
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
}
