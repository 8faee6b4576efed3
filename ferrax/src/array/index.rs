//! Indexing kernels: gather (`index_select`) and its transpose, scatter-add.

use super::{map_buffer, Array, Element};

/// What an index outside its axis does, after a negative index has been
/// wrapped once (`-1` is the last position), as JAX's modes do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IndexMode {
    /// A gather reads a fill value — NaN for floats, `i64::MIN` for
    /// integers, `true` for bool (JAX's `jnp.take`) — and a scatter drops
    /// the update.
    #[default]
    Fill,
    /// As `Fill`, but a gather reads zero: the tangent and the transpose of
    /// a gather or scatter, where a dropped value contributes nothing.
    FillZero,
    /// The index is clamped to the nearest position, after a negative one
    /// has counted from the end — as JAX's `x[i]` indexing does; the
    /// gradient goes to the position read. (jnp.take's `mode="clip"` clamps
    /// without counting from the end first: -1 reads position 0 there.)
    Clip,
}

impl IndexMode {
    /// The mode's name: `fill`, `fill_zero`, `clip`.
    pub fn name(self) -> &'static str {
        match self {
            IndexMode::Fill => "fill",
            IndexMode::FillZero => "fill_zero",
            IndexMode::Clip => "clip",
        }
    }

    /// The position `i` addresses in an axis of length `len`, or `None` when
    /// it addresses nothing.
    #[inline]
    pub fn resolve(self, i: i64, len: usize) -> Option<usize> {
        let n = len as i64;
        let i = if i < 0 { i.wrapping_add(n) } else { i };
        if (0..n).contains(&i) {
            Some(i as usize)
        } else if self == IndexMode::Clip && n > 0 {
            Some(i.clamp(0, n - 1) as usize)
        } else {
            None
        }
    }
}

/// `x` viewed as `[outer, len, inner]` around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

/// The value a `Fill` gather reads where an index addresses nothing.
trait FillValue: Element {
    const FILL: Self;
}

impl FillValue for half::f16 {
    const FILL: half::f16 = half::f16::NAN;
}
impl FillValue for half::bf16 {
    const FILL: half::bf16 = half::bf16::NAN;
}
impl FillValue for f32 {
    const FILL: f32 = f32::NAN;
}
impl FillValue for f64 {
    const FILL: f64 = f64::NAN;
}
impl FillValue for i64 {
    const FILL: i64 = i64::MIN;
}
impl FillValue for bool {
    const FILL: bool = true;
}

/// Picks entries of `x` along `axis` by the i64 indices in `idx` (any
/// shape). The result's shape is `x[..axis] ++ idx ++ x[axis+1..]`. Indices
/// outside the axis are handled by `mode`; none is an error.
pub fn gather(x: &Array, axis: usize, idx: &Array, mode: IndexMode) -> Array {
    let ix = idx.as_slice::<i64>();
    let (outer, len, inner) = around(x.shape(), axis);
    let shape: Vec<usize> =
        x.shape()[..axis].iter().chain(idx.shape()).chain(&x.shape()[axis + 1..]).copied().collect();
    let buf = map_buffer!(x.buffer(), v => gather_typed(v, outer, len, inner, ix, mode));
    Array::new(&shape, buf)
}

fn gather_typed<T: FillValue>(v: &[T], outer: usize, len: usize, inner: usize, ix: &[i64], mode: IndexMode) -> Vec<T> {
    let fill = if mode == IndexMode::FillZero { T::default() } else { T::FILL };
    let mut out = super::pool::with_capacity(outer * ix.len() * inner);
    if inner == 1 {
        // Single elements (a gather of a flattened array): a load each, not a copy call.
        for o in 0..outer {
            let row = &v[o * len..][..len];
            out.extend(ix.iter().map(|&i| mode.resolve(i, len).map_or(fill, |i| row[i])));
        }
        return out;
    }
    for o in 0..outer {
        for &i in ix {
            match mode.resolve(i, len) {
                Some(i) => {
                    let start = (o * len + i) * inner;
                    out.extend_from_slice(&v[start..start + inner]);
                }
                None => out.extend(std::iter::repeat_n(fill, inner)),
            }
        }
    }
    out
}

/// `operand` with `updates` added at the positions `idx` selects along
/// `axis`; repeated indices accumulate. `updates` has the shape
/// `operand[..axis] ++ idx ++ operand[axis+1..]`, as [`gather`] produces.
/// Updates at indices outside the axis are dropped (or, with
/// [`IndexMode::Clip`], land on the nearest position).
pub fn scatter_add(operand: &Array, axis: usize, idx: &Array, updates: &Array, mode: IndexMode) -> Array {
    let ix = idx.as_slice::<i64>();
    let (outer, len, inner) = around(operand.shape(), axis);
    let buf = map_buffer!(operand.buffer(), v => {
        // From the pool: a fresh allocation of a large operand costs a page fault per 4 KiB.
        let mut out = super::pool::with_capacity(v.len());
        out.extend_from_slice(v);
        scatter_typed(out, updates.as_slice(), outer, len, inner, ix, mode)
    });
    Array::new(operand.shape(), buf)
}

/// [`scatter_add`] on an operand given up: the updates are added in place
/// when no one else holds its buffer (under `jit`, an operand that dies at
/// the scatter, such as the zeros a gather's transpose scatters onto).
pub fn scatter_add_owned(operand: Array, axis: usize, idx: &Array, updates: &Array, mode: IndexMode) -> Array {
    let ix = idx.as_slice::<i64>();
    let shape = operand.shape().to_vec();
    let (outer, len, inner) = around(&shape, axis);
    macro_rules! in_place {
        ($($t:ty),*) => {$(
            if operand.dtype() == <$t as Element>::DTYPE {
                return match operand.into_unique_vec::<$t>() {
                    Ok(v) => Array::from_vec(scatter_typed(v, updates.as_slice(), outer, len, inner, ix, mode), &shape),
                    Err(operand) => scatter_add(&operand, axis, idx, updates, mode),
                };
            }
        )*};
    }
    in_place!(f32, f64, i64);
    scatter_add(&operand, axis, idx, updates, mode)
}

/// [`scatter_add`] onto zeros of `shape` (the transpose of [`gather`]),
/// with the bits of an operand of zeros, without making and copying one.
pub fn scatter_add_to_zeros(shape: &[usize], axis: usize, idx: &Array, updates: &Array, mode: IndexMode) -> Array {
    let ix = idx.as_slice::<i64>();
    let (outer, len, inner) = around(shape, axis);
    let n = shape.iter().product();
    let buf = map_buffer!(updates.buffer(), u => {
        scatter_typed(super::pool::filled(n, Default::default()), u, outer, len, inner, ix, mode)
    });
    Array::new(shape, buf)
}

/// `out` (the operand's elements) with the updates added at their positions.
fn scatter_typed<T: Element + Accumulate>(
    mut out: Vec<T>,
    u: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    ix: &[i64],
    mode: IndexMode,
) -> Vec<T> {
    if len == 0 || ix.is_empty() {
        return out; // no position to add to, or nothing to add
    }
    if inner == 1 {
        // Single elements (the gradient of a flat gather, as max pooling's):
        // an addition each, with no loop over `inner` around it.
        for (dst, upd) in out.chunks_exact_mut(len).zip(u.chunks_exact(ix.len())) {
            for (&i, &x) in ix.iter().zip(upd) {
                if let Some(i) = mode.resolve(i, len) {
                    dst[i].accumulate(x);
                }
            }
        }
        return out;
    }
    for o in 0..outer {
        for (j, &i) in ix.iter().enumerate() {
            let Some(i) = mode.resolve(i, len) else { continue };
            let dst = (o * len + i) * inner;
            let src = (o * ix.len() + j) * inner;
            for k in 0..inner {
                out[dst + k].accumulate(u[src + k]);
            }
        }
    }
    out
}

/// How a scatter adds an update into an element, for every element type:
/// addition (wrapping for integers), and logical or for bool.
pub trait Accumulate: Copy {
    /// `self += other`.
    fn accumulate(&mut self, other: Self);
}

macro_rules! accumulate {
    ($($t:ty),*) => {$(
        impl Accumulate for $t {
            #[inline]
            fn accumulate(&mut self, other: Self) {
                *self = crate::array::Num::wadd(*self, other);
            }
        }
    )*};
}
accumulate!(f32, f64, i64);

// One rounding per addition; the backend widens half-precision scatters to
// f32, so this serves direct calls only.
macro_rules! accumulate_half {
    ($($t:ty),*) => {$(
        impl Accumulate for $t {
            #[inline]
            fn accumulate(&mut self, other: Self) {
                *self = <$t>::from_f32(self.to_f32() + other.to_f32());
            }
        }
    )*};
}
accumulate_half!(half::f16, half::bf16);

impl Accumulate for bool {
    fn accumulate(&mut self, other: Self) {
        *self |= other;
    }
}
