//! Sorting kernels.

use std::cmp::Ordering;

use super::{Array, Buffer, Element};

/// The order sorting uses: NaN above everything (so NaNs sort to the end,
/// as in JAX), `-0.0` equal to `0.0`.
fn total<T: Element>(a: &T, b: &T) -> Ordering {
    match a.partial_cmp(b) {
        Some(o) => o,
        // Only NaN is unordered: it is the greatest.
        None => is_nan(a).cmp(&is_nan(b)),
    }
}

/// NaN is the one value not ordered against itself.
fn is_nan<T: PartialOrd>(v: &T) -> bool {
    v.partial_cmp(v).is_none()
}

/// Each run along `axis` sorted, stably, and the indices that sort it (see [`argsort`]).
pub fn sort(x: &Array, axis: usize, descending: bool) -> (Array, Array) {
    let idx = argsort(x, axis, descending);
    let shape = x.shape();
    let (outer, len, inner) =
        (shape[..axis].iter().product::<usize>(), shape[axis], shape[axis + 1..].iter().product::<usize>());
    let order = idx.as_slice::<i64>();
    let buf = super::map_buffer!(x.buffer(), v => take_typed(v, order, outer, len, inner));
    (Array::new(shape, buf), idx)
}

/// `v` rearranged along its middle axis by `order` (positions within each run).
fn take_typed<T: Element>(v: &[T], order: &[i64], outer: usize, len: usize, inner: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    for o in 0..outer {
        for k in 0..len {
            for c in 0..inner {
                let at = (o * len + k) * inner + c;
                out.push(v[(o * len + order[at] as usize) * inner + c]);
            }
        }
    }
    out
}

/// The indices that sort each run along `axis`, stably (equal elements keep
/// their order); with `descending`, largest first, equal ones still in order.
pub fn argsort(x: &Array, axis: usize, descending: bool) -> Array {
    let shape = x.shape();
    let (outer, len, inner) =
        (shape[..axis].iter().product::<usize>(), shape[axis], shape[axis + 1..].iter().product::<usize>());
    let v = match x.buffer() {
        Buffer::F16(d) => argsort_typed(d, outer, len, inner, descending),
        Buffer::BF16(d) => argsort_typed(d, outer, len, inner, descending),
        Buffer::F32(d) => argsort_typed(d, outer, len, inner, descending),
        Buffer::F64(d) => argsort_typed(d, outer, len, inner, descending),
        Buffer::I64(d) => argsort_typed(d, outer, len, inner, descending),
        Buffer::Bool(d) => argsort_typed(d, outer, len, inner, descending),
    };
    Array::from_vec(v, shape)
}

fn argsort_typed<T: Element>(x: &[T], outer: usize, len: usize, inner: usize, descending: bool) -> Vec<i64> {
    let mut out = vec![0i64; x.len()];
    let mut order: Vec<usize> = Vec::with_capacity(len);
    for o in 0..outer {
        for c in 0..inner {
            let at = |k: usize| &x[(o * len + k) * inner + c];
            order.clear();
            order.extend(0..len);
            if descending {
                order.sort_by(|&a, &b| total(at(b), at(a)));
            } else {
                order.sort_by(|&a, &b| total(at(a), at(b)));
            }
            for (k, &i) in order.iter().enumerate() {
                out[(o * len + k) * inner + c] = i as i64;
            }
        }
    }
    out
}
