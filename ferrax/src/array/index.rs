//! Indexing kernels: gather (`index_select`) and its transpose, scatter-add.

use super::{map_buffer, Array, Element};

/// Checks every index against the axis length; an index out of range is a
/// programmer error that must not turn into a wrong number.
fn check_indices(name: &str, idx: &[i64], len: usize) {
    if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= len) {
        panic!("{name}: index {bad} is out of range for an axis of length {len}");
    }
}

/// `x` viewed as `[outer, len, inner]` around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

/// Picks entries of `x` along `axis` by the i64 indices in `idx` (any
/// shape). The result's shape is `x[..axis] ++ idx ++ x[axis+1..]`.
///
/// # Panics
/// When an index is negative or not less than the axis length.
pub fn gather(x: &Array, axis: usize, idx: &Array) -> Array {
    let ix = idx.as_slice::<i64>();
    let (outer, len, inner) = around(x.shape(), axis);
    check_indices("index_select", ix, len);
    let shape: Vec<usize> =
        x.shape()[..axis].iter().chain(idx.shape()).chain(&x.shape()[axis + 1..]).copied().collect();
    let buf = map_buffer!(x.buffer(), v => gather_typed(v, outer, len, inner, ix));
    Array::new(&shape, buf)
}

fn gather_typed<T: Element>(v: &[T], outer: usize, len: usize, inner: usize, ix: &[i64]) -> Vec<T> {
    let mut out = Vec::with_capacity(outer * ix.len() * inner);
    for o in 0..outer {
        for &i in ix {
            let start = (o * len + i as usize) * inner;
            out.extend_from_slice(&v[start..start + inner]);
        }
    }
    out
}

/// `operand` with `updates` added at the positions `idx` selects along
/// `axis`; repeated indices accumulate. `updates` has the shape
/// `operand[..axis] ++ idx ++ operand[axis+1..]`, as [`gather`] produces.
///
/// # Panics
/// When an index is out of range.
pub fn scatter_add(operand: &Array, axis: usize, idx: &Array, updates: &Array) -> Array {
    let ix = idx.as_slice::<i64>();
    let (outer, len, inner) = around(operand.shape(), axis);
    check_indices("scatter_add", ix, len);
    let buf = map_buffer!(operand.buffer(), v => scatter_typed(v, updates, outer, len, inner, ix));
    Array::new(operand.shape(), buf)
}

fn scatter_typed<T: Element + AddAssign>(
    v: &[T],
    updates: &Array,
    outer: usize,
    len: usize,
    inner: usize,
    ix: &[i64],
) -> Vec<T> {
    let u = updates.as_slice::<T>();
    let mut out = v.to_vec();
    for o in 0..outer {
        for (j, &i) in ix.iter().enumerate() {
            let dst = (o * len + i as usize) * inner;
            let src = (o * ix.len() + j) * inner;
            for k in 0..inner {
                out[dst + k].add_assign(u[src + k]);
            }
        }
    }
    out
}

/// In-place addition for every element type; for bool it is logical or.
pub trait AddAssign: Copy {
    fn add_assign(&mut self, other: Self);
}

macro_rules! add_assign {
    ($($t:ty),*) => {$(
        impl AddAssign for $t {
            #[inline]
            fn add_assign(&mut self, other: Self) {
                *self += other;
            }
        }
    )*};
}
add_assign!(f32, f64, i64);

impl AddAssign for bool {
    fn add_assign(&mut self, other: Self) {
        *self |= other;
    }
}
