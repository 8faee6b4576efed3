//! Elementwise kernels: maps, broadcasting binary and ternary operations.

use std::mem::MaybeUninit;

use smallvec::{smallvec, SmallVec};

use super::parallel::{self, build};
use super::simd::{dispatch, vectorized, Isa, Kernel};
use super::{strides, Array, Element};

/// The shape two shapes broadcast to under numpy's rules, or `None`.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// `f` applied to every element, split across threads when large.
pub fn map<T: Element, U: Element>(x: &[T], cost: usize, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    // SAFETY: each chunk is written in full by the zip over its own length.
    unsafe {
        build(x.len(), cost, |start, out: &mut [MaybeUninit<U>]| {
            let src = &x[start..start + out.len()];
            vectorized(|| {
                for (o, &v) in out.iter_mut().zip(src) {
                    o.write(f(v));
                }
            })
        })
    }
}

/// How N operands, each broadcast to one output shape, are walked: the
/// output's dimensions with adjacent ones merged wherever every operand is
/// contiguous (or broadcast) across both, and each operand's stride per
/// merged dimension (0 where it is broadcast).
pub(super) struct Plan<const N: usize> {
    dims: Vec<usize>,
    strides: [Vec<usize>; N],
}

impl<const N: usize> Plan<N> {
    pub(super) fn new(out: &[usize], shapes: [&[usize]; N]) -> Plan<N> {
        let rank = out.len();
        let full: [Vec<usize>; N] = std::array::from_fn(|k| {
            let s = shapes[k];
            let st = strides(s);
            (0..rank)
                .map(|d| {
                    if d + s.len() < rank {
                        0
                    } else {
                        let j = d + s.len() - rank;
                        if s[j] == 1 {
                            0
                        } else {
                            st[j]
                        }
                    }
                })
                .collect()
        });
        let mut dims: Vec<usize> = Vec::with_capacity(rank);
        let mut strides: [Vec<usize>; N] = std::array::from_fn(|_| Vec::with_capacity(rank));
        for d in 0..rank {
            if out[d] == 1 {
                continue;
            }
            let merge = !dims.is_empty() && (0..N).all(|k| *strides[k].last().unwrap() == full[k][d] * out[d]);
            if merge {
                *dims.last_mut().unwrap() *= out[d];
                for k in 0..N {
                    *strides[k].last_mut().unwrap() = full[k][d];
                }
            } else {
                dims.push(out[d]);
                for k in 0..N {
                    strides[k].push(full[k][d]);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            for s in strides.iter_mut() {
                s.push(0);
            }
        }
        Plan { dims, strides }
    }

    /// Calls `seg(out_start, offsets, len, inner_strides)` for each run of
    /// consecutive output elements in `start..end` that lie in one innermost row.
    #[inline(always)]
    pub(super) fn segments(&self, start: usize, end: usize, mut seg: impl FnMut(usize, [usize; N], usize, [usize; N])) {
        let inner_strides = self.inner_strides();
        for (pos, offs, len) in self.runs(start, end) {
            seg(pos, offs, len, inner_strides);
        }
    }

    /// Each operand's stride along the innermost (merged) dimension.
    #[inline(always)]
    pub(super) fn inner_strides(&self) -> [usize; N] {
        let last = self.dims.len() - 1;
        std::array::from_fn(|k| self.strides[k][last])
    }

    /// The runs of [`Plan::segments`] as an iterator of `(out_start,
    /// offsets, len)`, for loops that must not go through a closure (see
    /// `ZipChunk`).
    pub(super) fn runs(&self, start: usize, end: usize) -> Runs<'_, N> {
        let last = self.dims.len() - 1;
        let inner = self.dims[last];
        // The outer multi-index of the first row, and the offsets of its start
        // (on the stack for up to 8 merged outer dimensions: a chunk of a
        // fused program calls this once per operand and tile).
        let mut idx: SmallVec<[usize; 8]> = smallvec![0; last];
        let mut row_offs = [0usize; N];
        if start >= end {
            // Nothing to walk (an empty output may have a zero extent to divide by).
            return Runs { plan: self, idx, row_offs, pos: start, col: 0, end };
        }
        let mut r = start / inner;
        for d in (0..last).rev() {
            idx[d] = r % self.dims[d];
            r /= self.dims[d];
            for (o, st) in row_offs.iter_mut().zip(&self.strides) {
                *o += idx[d] * st[d];
            }
        }
        Runs { plan: self, idx, row_offs, pos: start, col: start % inner, end }
    }
}

/// The iterator of [`Plan::runs`]. The outer index is found by division
/// once, then counted up row by row: with short rows (a `[rows, 1]` operand
/// broadcast over 64 columns) the divisions cost more than the row's
/// arithmetic.
pub(super) struct Runs<'a, const N: usize> {
    plan: &'a Plan<N>,
    idx: SmallVec<[usize; 8]>,
    row_offs: [usize; N],
    pos: usize,
    col: usize,
    end: usize,
}

impl<const N: usize> Iterator for Runs<'_, N> {
    type Item = (usize, [usize; N], usize);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        let plan = self.plan;
        let last = plan.dims.len() - 1;
        let inner = plan.dims[last];
        let len = (inner - self.col).min(self.end - self.pos);
        let offs: [usize; N] = std::array::from_fn(|k| self.row_offs[k] + self.col * plan.strides[k][last]);
        let item = (self.pos, offs, len);
        self.pos += len;
        self.col = 0;
        // The next row: count the index up, carrying into outer axes.
        for d in (0..last).rev() {
            self.idx[d] += 1;
            for (o, st) in self.row_offs.iter_mut().zip(&plan.strides) {
                *o += st[d];
            }
            if self.idx[d] < plan.dims[d] {
                break;
            }
            for (o, st) in self.row_offs.iter_mut().zip(&plan.strides) {
                *o -= plan.dims[d] * st[d];
            }
            self.idx[d] = 0;
        }
        Some(item)
    }
}

/// `f(a, b)` elementwise with numpy broadcasting into `out_shape`.
pub fn zip<T: Element, U: Element>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
    cost: usize,
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U> {
    let n: usize = out_shape.iter().product();
    // Equal sizes need no broadcasting plan (and scalar work no allocation for one).
    let plan = (a.len() != n || b.len() != n).then(|| Plan::new(out_shape, [a_shape, b_shape]));
    // SAFETY: the segments of a chunk tile it exactly, and each is written in full.
    unsafe {
        build(n, cost, |s, out: &mut [MaybeUninit<U>]| {
            let len = out.len();
            let Some(plan) = &plan else {
                return vectorized(|| zip_run(&mut *out, &a[s..s + len], &b[s..s + len], &f));
            };
            // One dispatch for the whole chunk: rows may be a few elements long.
            dispatch(ZipChunk { plan, a, b, f: &f, start: s, out })
        })
    }
}

/// One chunk of a broadcasting [`zip`], as a [`Kernel`]: the walk over its
/// rows is compiled for the SIMD level with the rows' loops inside it (a
/// closure handed to [`vectorized`] that big is compiled for the baseline
/// instead, since it is not inlined into the level's function).
struct ZipChunk<'a, T, U, F> {
    plan: &'a Plan<2>,
    a: &'a [T],
    b: &'a [T],
    f: &'a F,
    start: usize,
    out: &'a mut [MaybeUninit<U>],
}

impl<T: Element, U: Element, F: Fn(T, T) -> U> Kernel for ZipChunk<'_, T, U, F> {
    type Out = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        let ZipChunk { plan, a, b, f, start: s, out } = self;
        let [sa, sb] = plan.inner_strides();
        for (pos, [oa, ob], len) in plan.runs(s, s + out.len()) {
            let out = &mut out[pos - s..pos - s + len];
            match (sa, sb) {
                (1, 1) => zip_run(out, &a[oa..oa + len], &b[ob..ob + len], f),
                // A broadcast operand is one value held in a register: zipping
                // with `repeat_n` instead keeps a counter the loop does not
                // vectorise through (23 against 6.5 µs on [1024,64] - [1024,1]).
                (1, 0) => {
                    let y = b[ob];
                    for (o, &x) in out.iter_mut().zip(&a[oa..oa + len]) {
                        o.write(f(x, y));
                    }
                }
                (0, 1) => {
                    let x = a[oa];
                    for (o, &y) in out.iter_mut().zip(&b[ob..ob + len]) {
                        o.write(f(x, y));
                    }
                }
                _ => {
                    for (i, o) in out.iter_mut().enumerate() {
                        o.write(f(a[oa + i * sa], b[ob + i * sb]));
                    }
                }
            }
        }
    }
}

/// The inner loop of [`zip`]: one contiguous run.
#[inline(always)]
fn zip_run<'a, T: Element, U: Element>(
    out: &mut [MaybeUninit<U>],
    a: impl IntoIterator<Item = &'a T>,
    b: impl IntoIterator<Item = &'a T>,
    f: &impl Fn(T, T) -> U,
) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        o.write(f(x, y));
    }
}

/// `cond ? a : b` elementwise with numpy broadcasting of all three.
pub fn select<T: Element>(cond: &Array, a: &Array, b: &Array, out_shape: &[usize]) -> Array {
    let (c, x, y) = (cond.as_slice::<bool>(), a.as_slice::<T>(), b.as_slice::<T>());
    let n: usize = out_shape.iter().product();
    let plan = Plan::new(out_shape, [cond.shape(), a.shape(), b.shape()]);
    // SAFETY: the segments of a chunk tile it exactly, and each is written in full.
    let out = unsafe {
        build(n, parallel::CHEAP, |s, out: &mut [MaybeUninit<T>]| {
            dispatch(SelectChunk { plan: &plan, c, x, y, start: s, out })
        })
    };
    Array::from_vec(out, out_shape)
}

/// One chunk of a [`select`], compiled for the SIMD level as [`ZipChunk`] is.
struct SelectChunk<'a, T> {
    plan: &'a Plan<3>,
    c: &'a [bool],
    x: &'a [T],
    y: &'a [T],
    start: usize,
    out: &'a mut [MaybeUninit<T>],
}

impl<T: Element> Kernel for SelectChunk<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        let SelectChunk { plan, c, x, y, start: s, out } = self;
        let strides @ [sc, sx, sy] = plan.inner_strides();
        for (pos, [oc, ox, oy], len) in plan.runs(s, s + out.len()) {
            let out = &mut out[pos - s..pos - s + len];
            // Each operand's innermost stride is 1 (contiguous) or 0 (broadcast,
            // one value in a register): one loop per combination.
            let (cs, xs, ys) = (&c[oc..oc + len * sc], &x[ox..ox + len * sx], &y[oy..oy + len * sy]);
            let (c0, x0, y0) = (c[oc], x[ox], y[oy]);
            match strides {
                [1, 1, 1] => select_run(out, cs, xs, ys),
                [1, 1, 0] => select_run(out, cs, xs, y0),
                [1, 0, 1] => select_run(out, cs, x0, ys),
                [1, 0, 0] => select_run(out, cs, x0, y0),
                [0, 1, 1] => select_run(out, c0, xs, ys),
                [0, 1, 0] => select_run(out, c0, xs, y0),
                [0, 0, 1] => select_run(out, c0, x0, ys),
                _ => select_run(out, c0, x0, y0),
            }
        }
    }
}

/// An operand of [`select_run`]: a run of values, or one value broadcast.
trait Lane<T: Copy>: Copy {
    /// Whether `at` is defined for every index below `n`.
    fn covers(self, n: usize) -> bool;
    fn at(self, i: usize) -> T;
}

impl<T: Copy> Lane<T> for &[T] {
    #[inline(always)]
    fn covers(self, n: usize) -> bool {
        self.len() >= n
    }
    #[inline(always)]
    fn at(self, i: usize) -> T {
        self[i]
    }
}

impl<T: Copy> Lane<T> for T {
    #[inline(always)]
    fn covers(self, _: usize) -> bool {
        true
    }
    #[inline(always)]
    fn at(self, _: usize) -> T {
        self
    }
}

/// The inner loop of [`select`] for one combination of operand strides.
#[inline(always)]
fn select_run<T: Element>(out: &mut [MaybeUninit<T>], c: impl Lane<bool>, x: impl Lane<T>, y: impl Lane<T>) {
    let n = out.len();
    // Checked once here, so the loop's indexing carries no bounds checks and vectorises.
    assert!(c.covers(n) && x.covers(n) && y.covers(n));
    for (i, o) in out.iter_mut().enumerate() {
        // Both sides loaded unconditionally, so the choice is a blend, not a branch.
        let (a, b) = (x.at(i), y.at(i));
        o.write(if c.at(i) { a } else { b });
    }
}

/// An elementwise function over the numeric types (f32, f64, i64), with the
/// element type's name bound to `$T` so the body can use `Num` methods.
macro_rules! map_num {
    ($name:expr, $x:expr, $cost:expr, <$T:ident> |$v:ident| $body:expr) => {{
        let x: &$crate::array::Array = $x;
        fn go<$T: $crate::array::Num>(d: &[$T]) -> Vec<$T> {
            $crate::array::elementwise::map(d, $cost, |$v: $T| $body)
        }
        let buf = match x.buffer() {
            $crate::array::Buffer::F32(d) => $crate::array::Buffer::F32(go(d)),
            $crate::array::Buffer::F64(d) => $crate::array::Buffer::F64(go(d)),
            $crate::array::Buffer::I64(d) => $crate::array::Buffer::I64(go(d)),
            $crate::array::Buffer::Bool(_) => panic!("{}: expected a numeric array, got bool", $name),
            $crate::array::Buffer::F16(_) | $crate::array::Buffer::BF16(_) => {
                unreachable!("{}: the backend computes half-precision arrays in f32", $name)
            }
        };
        $crate::array::Array::new(x.shape(), buf)
    }};
}
pub(crate) use map_num;

/// A broadcasting binary op over the numeric types, result of the same type:
/// `zip_num!(name, a, b, out_shape, cost, <T> |x, y| x + y)`.
macro_rules! zip_num {
    ($name:expr, $a:expr, $b:expr, $out:expr, $cost:expr, <$T:ident> |$x:ident, $y:ident| $body:expr) => {{
        let (a, b): (&$crate::array::Array, &$crate::array::Array) = ($a, $b);
        fn go<$T: $crate::array::Num>(a: &[$T], sa: &[usize], b: &[$T], sb: &[usize], out: &[usize]) -> Vec<$T> {
            $crate::array::elementwise::zip(a, sa, b, sb, out, $cost, |$x: $T, $y: $T| $body)
        }
        let out: &[usize] = $out;
        let buf = match (a.buffer(), b.buffer()) {
            ($crate::array::Buffer::F32(x), $crate::array::Buffer::F32(y)) => {
                $crate::array::Buffer::F32(go(x, a.shape(), y, b.shape(), out))
            }
            ($crate::array::Buffer::F64(x), $crate::array::Buffer::F64(y)) => {
                $crate::array::Buffer::F64(go(x, a.shape(), y, b.shape(), out))
            }
            ($crate::array::Buffer::I64(x), $crate::array::Buffer::I64(y)) => {
                $crate::array::Buffer::I64(go(x, a.shape(), y, b.shape(), out))
            }
            _ => panic!("{}: expected two numeric arrays of one dtype, got {} and {}", $name, a.dtype(), b.dtype()),
        };
        $crate::array::Array::new(out, buf)
    }};
}
pub(crate) use zip_num;

/// A broadcasting binary op over any two arrays of one dtype, into another
/// element type `$U`: `zip_to!(name, a, b, out, cost, bool, <T> |x, y| x < y)`.
macro_rules! zip_to {
    ($name:expr, $a:expr, $b:expr, $out:expr, $cost:expr, $U:ty, <$T:ident> |$x:ident, $y:ident| $body:expr) => {{
        let (a, b): (&$crate::array::Array, &$crate::array::Array) = ($a, $b);
        fn go<$T: $crate::array::Element>(a: &[$T], sa: &[usize], b: &[$T], sb: &[usize], out: &[usize]) -> Vec<$U> {
            $crate::array::elementwise::zip(a, sa, b, sb, out, $cost, |$x: $T, $y: $T| $body)
        }
        let out: &[usize] = $out;
        let v = match (a.buffer(), b.buffer()) {
            ($crate::array::Buffer::F32(x), $crate::array::Buffer::F32(y)) => go(x, a.shape(), y, b.shape(), out),
            ($crate::array::Buffer::F64(x), $crate::array::Buffer::F64(y)) => go(x, a.shape(), y, b.shape(), out),
            ($crate::array::Buffer::I64(x), $crate::array::Buffer::I64(y)) => go(x, a.shape(), y, b.shape(), out),
            ($crate::array::Buffer::Bool(x), $crate::array::Buffer::Bool(y)) => go(x, a.shape(), y, b.shape(), out),
            _ => panic!("{}: expected two arrays of one dtype, got {} and {}", $name, a.dtype(), b.dtype()),
        };
        $crate::array::Array::from_vec(v, out)
    }};
}
pub(crate) use zip_to;

/// `cond ? a : b` with broadcasting, for arrays of any one dtype.
pub fn select_any(cond: &Array, a: &Array, b: &Array, out_shape: &[usize]) -> Array {
    match a.dtype() {
        super::DType::F16 => select::<half::f16>(cond, a, b, out_shape),
        super::DType::BF16 => select::<half::bf16>(cond, a, b, out_shape),
        super::DType::F32 => select::<f32>(cond, a, b, out_shape),
        super::DType::F64 => select::<f64>(cond, a, b, out_shape),
        super::DType::I64 => select::<i64>(cond, a, b, out_shape),
        super::DType::Bool => select::<bool>(cond, a, b, out_shape),
    }
}
