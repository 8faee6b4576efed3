//! Reductions over any set of axes, argmax and cumulative sums.

use super::layout::permute;
use super::parallel::{self, fill_chunks};
use super::simd::{dispatch, Isa, Kernel};
use super::{Array, Buffer, DType, Num, ReduceOp};

/// The three-run form `[outer, reduced, inner]` of a shape whose reduced axes are contiguous.
#[derive(Clone, Copy)]
struct Runs {
    outer: usize,
    reduced: usize,
    inner: usize,
}

/// Collapses `shape` around `axes` (sorted, unique) when those axes form one
/// contiguous block of dimensions (ignoring size-1 dimensions).
fn runs(shape: &[usize], axes: &[usize]) -> Option<Runs> {
    let significant: Vec<usize> = axes.iter().copied().filter(|&a| shape[a] != 1).collect();
    let (lo, hi) = match (significant.first(), significant.last()) {
        (Some(&lo), Some(&hi)) => (lo, hi),
        _ => return Some(Runs { outer: shape.iter().product(), reduced: 1, inner: 1 }),
    };
    let gap = (lo..=hi).any(|d| shape[d] != 1 && !significant.contains(&d));
    if gap {
        return None;
    }
    Some(Runs {
        outer: shape[..lo].iter().product(),
        reduced: shape[lo..=hi].iter().product(),
        inner: shape[hi + 1..].iter().product(),
    })
}

/// Sum of a slice by pairwise blocks of eight running accumulators: it
/// vectorises, and its rounding error grows with log(n) rather than n.
pub(super) fn sum_slice<T: Num>(x: &[T]) -> T {
    if x.len() > SUM_BLOCK {
        let mid = (x.len() / 2).next_multiple_of(8);
        return sum_slice(&x[..mid]).wadd(sum_slice(&x[mid..]));
    }
    sum_block(x)
}

/// The longest run [`sum_slice`] sums without splitting it in halves.
const SUM_BLOCK: usize = 256;

/// [`sum_slice`] of at most [`SUM_BLOCK`] elements, inlined where it is
/// called (`sum_slice` itself, being recursive, is not).
#[inline(always)]
fn sum_block<T: Num>(x: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = acc[i].wadd(c[i]);
        }
    }
    let mut s = (acc[0].wadd(acc[1]).wadd(acc[2].wadd(acc[3]))).wadd(acc[4].wadd(acc[5]).wadd(acc[6].wadd(acc[7])));
    for &v in rest {
        s = s.wadd(v);
    }
    s
}

/// A reduction as [`reduce_runs`] applies it: a trait rather than
/// closures, so that its loops are inlined into the SIMD build (a closure
/// is a function of its own, which LLVM may leave out of line, compiled
/// for the baseline).
trait Fold<T>: Sync {
    /// The value of an empty reduction.
    const INIT: T;
    /// The reduction of a contiguous run.
    fn row(&self, x: &[T]) -> T;
    /// One element folded into an accumulator.
    fn step(&self, acc: T, v: T) -> T;
}

struct Sum;
struct Prod;
struct Max;
struct Min;

/// [`sum_slice`] of a run, its leaf inlined where the run is short.
#[inline(always)]
pub(super) fn sum_run<T: Num>(x: &[T]) -> T {
    if x.len() <= SUM_BLOCK {
        sum_block(x)
    } else {
        sum_slice(x)
    }
}

/// The maximum of a run, NaN propagating (what `reduce_max` gives for it).
#[inline(always)]
pub(super) fn max_run<T: Num>(x: &[T]) -> T {
    extreme(x, T::MIN_VALUE, |v, a| v > a, T::max_nan)
}

impl<T: Num> Fold<T> for Sum {
    const INIT: T = T::ZERO;
    #[inline(always)]
    fn row(&self, x: &[T]) -> T {
        sum_run(x)
    }
    #[inline(always)]
    fn step(&self, acc: T, v: T) -> T {
        acc.wadd(v)
    }
}

impl<T: Num> Fold<T> for Prod {
    const INIT: T = T::ONE;
    #[inline(always)]
    fn row(&self, x: &[T]) -> T {
        x.iter().fold(T::ONE, |a, &b| a.wmul(b))
    }
    #[inline(always)]
    fn step(&self, acc: T, v: T) -> T {
        acc.wmul(v)
    }
}

impl<T: Num> Fold<T> for Max {
    const INIT: T = T::MIN_VALUE;
    #[inline(always)]
    fn row(&self, x: &[T]) -> T {
        max_run(x)
    }
    #[inline(always)]
    fn step(&self, acc: T, v: T) -> T {
        acc.max_nan(v)
    }
}

impl<T: Num> Fold<T> for Min {
    const INIT: T = T::MAX_VALUE;
    #[inline(always)]
    fn row(&self, x: &[T]) -> T {
        extreme(x, T::MAX_VALUE, |v, a| v < a, T::min_nan)
    }
    #[inline(always)]
    fn step(&self, acc: T, v: T) -> T {
        acc.min_nan(v)
    }
}

/// Reduces the `[outer, reduced, inner]` view of `x` along its middle run.
fn reduce_runs<T: Num, F: Fold<T>>(x: &[T], r: Runs, fold: F) -> Vec<T> {
    let n_out = r.outer * r.inner;
    let mut out = super::pool::filled(n_out, F::INIT);
    if r.reduced == 0 {
        return out;
    }
    let cost = r.reduced.max(1);
    fill_chunks(&mut out, cost, |start, out| dispatch(RunsChunk { x, r, start, out, fold: &fold }));
    out
}

/// One chunk of [`reduce_runs`]'s outputs, as a [`Kernel`] so that its
/// loops are compiled for the SIMD level.
struct RunsChunk<'a, T, F> {
    x: &'a [T],
    r: Runs,
    start: usize,
    out: &'a mut [T],
    fold: &'a F,
}

impl<T: Num, F: Fold<T>> Kernel for RunsChunk<'_, T, F> {
    type Out = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        let RunsChunk { x, r, start, out, fold } = self;
        if r.inner == 1 {
            let rows = x[start * r.reduced..].chunks_exact(r.reduced);
            for (o, run) in out.iter_mut().zip(rows) {
                *o = fold.row(run);
            }
            return;
        }
        // Accumulate whole inner rows so the inner loop runs over contiguous memory.
        let block = r.reduced * r.inner;
        let mut pos = start;
        let end = start + out.len();
        while pos < end {
            let (o, j) = (pos / r.inner, pos % r.inner);
            let len = (r.inner - j).min(end - pos);
            let acc = &mut out[pos - start..pos - start + len];
            for k in 0..r.reduced {
                let src = &x[o * block + k * r.inner + j..][..len];
                for (a, &v) in acc.iter_mut().zip(src) {
                    *a = fold.step(*a, v);
                }
            }
            pos += len;
        }
    }
}

/// The extreme of a run: the element that `better` prefers over every
/// other, in eight interleaved lanes by plain comparisons (which vectorise:
/// folding `max_nan` element by element ran at 1 ns per element). A run
/// with a NaN, or whose extreme is zero (+0 against -0), is folded again by
/// `exact`, the rule with NaN and signed zeros.
#[inline(always)]
fn extreme<T: Num>(x: &[T], init: T, better: impl Fn(T, T) -> bool, exact: impl Fn(T, T) -> T) -> T {
    let pick = |a: T, v: T| if better(v, a) { v } else { a };
    let (mut acc, mut nan) = ([init; 8], [false; 8]);
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            nan[i] |= c[i].is_nan_like();
            acc[i] = pick(acc[i], c[i]);
        }
    }
    // In order: a pairwise tree here makes LLVM split the loop above into
    // pairs of lanes rather than one vector register.
    let mut m = init;
    for a in acc {
        m = pick(m, a);
    }
    let mut odd = nan.iter().any(|&b| b);
    for &v in rest {
        odd |= v.is_nan_like();
        m = pick(m, v);
    }
    if odd || m == T::ZERO {
        return x.iter().fold(init, |a, &v| exact(a, v));
    }
    m
}

/// Sorted, de-duplicated axes, checked against the rank.
fn norm_axes(name: &str, shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let mut a = axes.to_vec();
    a.sort_unstable();
    a.dedup();
    if let Some(&bad) = a.iter().find(|&&ax| ax >= shape.len()) {
        panic!("{name}: axis {bad} is out of range for shape {shape:?}");
    }
    a
}

/// The shape left after removing `axes`.
pub fn reduce_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
}

/// A copy of `x` with the kept axes first and the reduced ones last, so the
/// reduced axes form one contiguous run.
fn reduced_last(x: &Array, axes: &[usize]) -> (Array, Runs) {
    let kept: Vec<usize> = (0..x.rank()).filter(|a| !axes.contains(a)).collect();
    let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
    let p = permute(x, &perm);
    let reduced = axes.iter().map(|&a| x.shape()[a]).product();
    let outer = kept.iter().map(|&a| x.shape()[a]).product();
    (p, Runs { outer, reduced, inner: 1 })
}

fn reduce_num<T: Num>(x: &Array, axes: &[usize], fold: impl Fold<T>) -> Vec<T> {
    match runs(x.shape(), axes) {
        Some(r) => reduce_runs(x.as_slice::<T>(), r, fold),
        None => {
            let (p, r) = reduced_last(x, axes);
            reduce_runs(p.as_slice::<T>(), r, fold)
        }
    }
}

macro_rules! numeric_dispatch {
    ($name:expr, $x:expr, <$T:ident> $body:expr) => {
        match $x.dtype() {
            DType::F32 => {
                type $T = f32;
                Buffer::F32($body)
            }
            DType::F64 => {
                type $T = f64;
                Buffer::F64($body)
            }
            DType::I64 => {
                type $T = i64;
                Buffer::I64($body)
            }
            DType::Bool => panic!("{}: expected a numeric array, got bool", $name),
            DType::F16 | DType::BF16 => unreachable!("{}: the backend computes half-precision arrays in f32", $name),
        }
    };
}

/// Sum over `axes` (removed from the shape).
pub fn reduce_sum(x: &Array, axes: &[usize]) -> Array {
    let axes = norm_axes("reduce_sum", x.shape(), axes);
    let buf = numeric_dispatch!("reduce_sum", x, <T> reduce_num::<T>(x, &axes, Sum));
    Array::new(&reduce_shape(x.shape(), &axes), buf)
}

/// Product over `axes` (removed from the shape); 1 over an empty axis.
pub fn reduce_prod(x: &Array, axes: &[usize]) -> Array {
    let axes = norm_axes("reduce_prod", x.shape(), axes);
    let buf = numeric_dispatch!("reduce_prod", x, <T> reduce_num::<T>(x, &axes, Prod));
    Array::new(&reduce_shape(x.shape(), &axes), buf)
}

/// Maximum over `axes`; NaN propagates. Reducing an empty axis gives -inf (i64::MIN).
pub fn reduce_max(x: &Array, axes: &[usize]) -> Array {
    let axes = norm_axes("reduce_max", x.shape(), axes);
    let buf = numeric_dispatch!("reduce_max", x, <T> reduce_num::<T>(x, &axes, Max));
    Array::new(&reduce_shape(x.shape(), &axes), buf)
}

/// Minimum over `axes`; NaN propagates. Reducing an empty axis gives +inf (i64::MAX).
pub fn reduce_min(x: &Array, axes: &[usize]) -> Array {
    let axes = norm_axes("reduce_min", x.shape(), axes);
    let buf = numeric_dispatch!("reduce_min", x, <T> reduce_num::<T>(x, &axes, Min));
    Array::new(&reduce_shape(x.shape(), &axes), buf)
}

/// The index of the element that `better` prefers over every earlier one,
/// in each run: the first NaN, or else the first extreme (numpy's rule).
fn arg_extreme_typed<T: Num>(x: &[T], r: Runs, better: impl Fn(T, T) -> bool + Sync) -> Vec<i64> {
    let mut out = vec![0i64; r.outer * r.inner];
    fill_chunks(&mut out, r.reduced.max(1), |start, chunk| {
        for (i, o) in chunk.iter_mut().enumerate() {
            let (a, c) = ((start + i) / r.inner, (start + i) % r.inner);
            let base = a * r.reduced * r.inner + c;
            let mut best = 0;
            let mut best_v = x[base];
            for k in 1..r.reduced {
                let v = x[base + k * r.inner];
                if best_v.is_nan_like() {
                    break;
                }
                if better(v, best_v) || v.is_nan_like() {
                    best = k;
                    best_v = v;
                }
            }
            *o = best as i64;
        }
    });
    out
}

/// Index of the first maximum (`max`) or minimum along `axis` (removed from
/// the shape), as i64; a NaN counts as the extreme, as in numpy and JAX.
///
/// # Panics
/// When the axis is empty.
pub fn arg_extreme(x: &Array, axis: usize, op: ReduceOp) -> Array {
    let max = match op {
        ReduceOp::Max => true,
        ReduceOp::Min => false,
        other => panic!("arg_extreme: {other} has no position; use Max or Min"),
    };
    let name = if max { "argmax" } else { "argmin" };
    let axes = norm_axes(name, x.shape(), &[axis]);
    assert!(x.shape()[axis] > 0, "{name}: axis {axis} of shape {:?} is empty", x.shape());
    let r = runs(x.shape(), &axes).expect("one axis is always one run");
    fn go<T: Num>(d: &[T], r: Runs, max: bool) -> Vec<i64> {
        if max {
            arg_extreme_typed(d, r, |v, best| v > best)
        } else {
            arg_extreme_typed(d, r, |v, best| v < best)
        }
    }
    let v = match x.buffer() {
        Buffer::F32(d) => go(d, r, max),
        Buffer::F64(d) => go(d, r, max),
        Buffer::I64(d) => go(d, r, max),
        Buffer::Bool(_) => panic!("{name}: expected a numeric array, got bool"),
        Buffer::F16(_) | Buffer::BF16(_) => unreachable!("{name}: the backend computes half-precision arrays in f32"),
    };
    Array::from_vec(v, &reduce_shape(x.shape(), &axes))
}

fn cumulative_typed<T: Num>(x: &[T], r: Runs, reverse: bool, op: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut out = super::pool::filled(x.len(), T::ZERO);
    let block = r.reduced * r.inner;
    if block == 0 {
        return out;
    }
    let cost = parallel::CHEAP;
    let fill = |o: usize, dst: &mut [T]| {
        let src = &x[o * block..(o + 1) * block];
        let order: Box<dyn Iterator<Item = usize>> =
            if reverse { Box::new((0..r.reduced).rev()) } else { Box::new(0..r.reduced) };
        let mut prev: Option<usize> = None;
        for k in order {
            let row = k * r.inner;
            match prev {
                None => dst[row..row + r.inner].copy_from_slice(&src[row..row + r.inner]),
                Some(p) => {
                    for j in 0..r.inner {
                        dst[row + j] = op(dst[p + j], src[row + j]);
                    }
                }
            }
            prev = Some(row);
        }
    };
    parallel::fill_units(&mut out, block, cost, fill);
    out
}

/// A running reduction along `axis`; with `reverse`, from the end backwards.
pub fn cumulative(x: &Array, axis: usize, reverse: bool, op: ReduceOp) -> Array {
    let axes = norm_axes("cumulative", x.shape(), &[axis]);
    let r = Runs {
        outer: x.shape()[..axes[0]].iter().product(),
        reduced: x.shape()[axes[0]],
        inner: x.shape()[axes[0] + 1..].iter().product(),
    };
    fn go<T: Num>(x: &[T], r: Runs, reverse: bool, op: ReduceOp) -> Vec<T> {
        match op {
            ReduceOp::Sum => cumulative_typed(x, r, reverse, |a: T, b| a.wadd(b)),
            ReduceOp::Prod => cumulative_typed(x, r, reverse, |a: T, b| a.wmul(b)),
            ReduceOp::Max => cumulative_typed(x, r, reverse, |a: T, b| a.max_nan(b)),
            ReduceOp::Min => cumulative_typed(x, r, reverse, |a: T, b| a.min_nan(b)),
        }
    }
    let buf = numeric_dispatch!("cumulative", x, <T> go::<T>(x.as_slice(), r, reverse, op));
    Array::new(x.shape(), buf)
}

/// Cumulative sum along `axis`; with `reverse`, from the end backwards.
pub fn cumsum(x: &Array, axis: usize, reverse: bool) -> Array {
    cumulative(x, axis, reverse, ReduceOp::Sum)
}
