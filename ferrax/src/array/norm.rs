//! Standardisation over trailing axes, `y = (x - mean) / √(var + eps)` row
//! by row, and its tangent map, each as one pass per row: layer
//! normalisation built from reductions and broadcasting binary operations
//! reads and writes its rows about a dozen times forward and twice that
//! backward, where these read a row (of 64 to a few thousand elements,
//! which stays in the L1 cache) twice and write it once.
//!
//! The statistics are two-pass (the mean, then the mean square of the
//! centred values), as the composite definition computes them, and summed
//! in eight running accumulators.

use rayon::prelude::*;

use super::simd::{dispatch, Isa, Kernel};
use super::{parallel, Array, Buffer, Element, Float};

/// The work per element of [`standardize`] and of its tangent, in
/// [`parallel`](super::parallel)'s units: two and three passes over a
/// row that is in the L1 cache, each about a cheap op.
const STANDARDIZE_COST: usize = 2;
const TANGENT_COST: usize = 3;

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

/// `f(row of t, row of x, row of the output)` over the rows of `n` (`t`'s
/// rows empty when there is no `t`), split across threads when the work is
/// large enough.
fn rows<T: Element>(x: &[T], t: Option<&[T]>, n: usize, cost: usize, f: impl RowOp<T>) -> Vec<T> {
    let mut out = vec![T::default(); x.len()];
    if n == 0 {
        return out;
    }
    let each = |start: usize, o: &mut [T]| {
        let x = &x[start..start + o.len()];
        let t = t.map(|t| &t[start..start + o.len()]);
        dispatch(Rows { n, t, x, out: o, f: &f })
    };
    if parallel::worth_splitting(x.len(), cost) {
        let per = parallel::chunk_len(x.len(), cost).div_ceil(n) * n;
        out.par_chunks_mut(per).enumerate().for_each(|(i, o)| each(i * per, o));
    } else {
        each(0, &mut out);
    }
    out
}

/// The loop of [`rows`] over one chunk, as a [`Kernel`] so that it is
/// compiled for the SIMD level (a closure this big handed to
/// `vectorized` is compiled for the baseline instead).
struct Rows<'a, T, F> {
    n: usize,
    t: Option<&'a [T]>,
    x: &'a [T],
    out: &'a mut [T],
    f: &'a F,
}

impl<T: Element, F: RowOp<T>> Kernel for Rows<'_, T, F> {
    type Out = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        let Rows { n, t, x, out, f } = self;
        for (i, (o, x)) in out.chunks_exact_mut(n).zip(x.chunks_exact(n)).enumerate() {
            f.row(t.map_or(&[][..], |t| &t[i * n..(i + 1) * n]), x, o);
        }
    }
}

/// Σ `f(a[i], b[i])` in eight running accumulators, so that it vectorises.
#[inline(always)]
fn sum_of<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
    let mut acc = [T::ZERO; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (a, b) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] = acc[j] + f(a[j], b[j]);
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (&a, &b) in ra.iter().zip(rb) {
        s = s + f(a, b);
    }
    s
}

/// The mean and the reciprocal standard deviation of a row.
#[inline(always)]
fn moments<T: Float + Sqrt>(x: &[T], eps: T) -> (T, T) {
    let n = T::from_f64(x.len() as f64);
    let mean = sum_of(x, x, |v, _| v) / n;
    let var = sum_of(x, x, |v, _| (v - mean) * (v - mean)) / n;
    (mean, T::ONE / (var + eps).sqrt())
}

/// What [`rows`] does to each row: a trait rather than a closure, so that
/// its loops are inlined into the SIMD build.
trait RowOp<T>: Sync {
    /// Writes `out` from a row of `x` (and of `t`, empty when there is none).
    fn row(&self, t: &[T], x: &[T], out: &mut [T]);
}

/// [`standardize`]'s rows, with eps.
struct Forward<T>(T);
/// [`standardize_tangent`]'s rows, with eps.
struct Tangent<T>(T);

impl<T: Float + Sqrt> RowOp<T> for Forward<T> {
    #[inline(always)]
    fn row(&self, _: &[T], x: &[T], out: &mut [T]) {
        standardize_row(x, out, self.0)
    }
}

impl<T: Float + Sqrt> RowOp<T> for Tangent<T> {
    #[inline(always)]
    fn row(&self, t: &[T], x: &[T], out: &mut [T]) {
        tangent_row(t, x, out, self.0)
    }
}

#[inline(always)]
fn standardize_row<T: Float + Sqrt>(x: &[T], out: &mut [T], eps: T) {
    let (mean, r) = moments(x, eps);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v - mean) * r;
    }
}

#[inline(always)]
fn tangent_row<T: Float + Sqrt>(t: &[T], x: &[T], out: &mut [T], eps: T) {
    let (mean, r) = moments(x, eps);
    let n = T::from_f64(x.len() as f64);
    let t_mean = sum_of(t, t, |v, _| v) / n;
    let yt_mean = sum_of(x, t, |xi, ti| (xi - mean) * ti) * r / n;
    for ((o, &ti), &xi) in out.iter_mut().zip(t).zip(x) {
        *o = r * (ti - t_mean - (xi - mean) * r * yt_mean);
    }
}

/// The square root of the two float types.
pub(super) trait Sqrt {
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
