//! Indexing built from `gather`: `take_along_axis`, and the sorting family
//! on top of it.

use crate::array::{broadcast_shapes, DType, IndexMode};
use crate::core::Tensor;
use crate::prims::batching::move_axis;
use crate::prims::indexing::resolve_indices;

impl Tensor {
    /// Picks along `axis` by indices shaped like `self` except along that
    /// axis (numpy's and JAX's `take_along_axis`; the other axes
    /// broadcast): `out[.., j, ..] = self[.., idx[.., j, ..], ..]`. Negative
    /// indices count from the end; an index still outside the axis reads NaN
    /// (`i64::MIN`, `true`), in every context, as [`Tensor::index_select`].
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// let picked = x.take_along_axis(&Tensor::from_vec(vec![1i64, 0], &[2, 1]), 1);
    /// assert_eq!(picked.to_vec::<f64>(), vec![2.0, 3.0]);
    /// ```
    ///
    /// # Panics
    /// When the ranks differ, the axis is out of range, the indices are not
    /// i64, or the other axes do not broadcast.
    #[track_caller]
    pub fn take_along_axis(&self, idx: &Tensor, axis: usize) -> Tensor {
        self.take_along_axis_with(idx, axis, IndexMode::Fill)
    }

    /// [`Tensor::take_along_axis`] with a chosen treatment of out-of-range indices.
    ///
    /// # Panics
    /// As [`Tensor::take_along_axis`].
    #[track_caller]
    pub fn take_along_axis_with(&self, idx: &Tensor, axis: usize, mode: IndexMode) -> Tensor {
        let (s, t) = (self.shape(), idx.shape());
        if s.len() != t.len() || axis >= s.len() {
            panic!(
                "take_along_axis: indices {t:?} and array {s:?} must have the same rank, with axis {axis} within it"
            );
        }
        if idx.dtype() != DType::I64 {
            panic!(
                "take_along_axis: indices must be i64, got {}; convert them with .to_dtype(DType::I64)",
                idx.dtype()
            );
        }
        let (mut xs, mut is) = (s.to_vec(), t.to_vec());
        for d in (0..s.len()).filter(|&d| d != axis) {
            let Some(common) = broadcast_shapes(&[s[d]], &[t[d]]) else {
                panic!("take_along_axis: indices {t:?} do not broadcast against array {s:?} outside axis {axis}");
            };
            (xs[d], is[d]) = (common[0], common[0]);
        }
        let last = s.len() - 1;
        let x = move_axis(&self.broadcast_to(&xs), axis, last);
        let idx = move_axis(&idx.broadcast_to(&is), axis, last);
        let (n, m) = (xs[axis], is[axis]);
        let rows: usize = xs.iter().enumerate().filter(|&(d, _)| d != axis).map(|(_, &len)| len).product();
        // Each row's indices address its own block of the flattened array.
        let (pos, valid) = resolve_indices(&idx.reshape(&[rows, m]), n, mode);
        let starts = (Tensor::arange(rows, DType::I64) * n as i64).reshape(&[rows, 1]);
        let flat = valid.select(&(pos + starts), &Tensor::scalar((rows * n) as i64));
        let picked = x.reshape(&[rows * n]).index_select_with(0, &flat, mode);
        let mut shape = idx.shape().to_vec();
        shape[last] = m;
        move_axis(&picked.reshape(&shape), last, axis)
    }
}

impl Tensor {
    /// The elements sorted along `axis`, ascending (NaN last). Its
    /// derivative moves each tangent with its element; equal elements keep
    /// their order, so ties are resolved as JAX's stable sort resolves them.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![3.0, 1.0, 2.0], &[3]);
    /// assert_eq!(x.sort(0).to_vec::<f64>(), vec![1.0, 2.0, 3.0]);
    /// ```
    ///
    /// # Panics
    /// When the axis is out of range.
    #[track_caller]
    pub fn sort(&self, axis: usize) -> Tensor {
        self.sort_with_indices(axis).0
    }

    /// The `k` largest elements along the last axis, largest first, and
    /// their indices (JAX's `lax.top_k`); equal elements in index order.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let (values, indices) = Tensor::from_vec(vec![1.0, 3.0, 3.0, 2.0], &[4]).top_k(2);
    /// assert_eq!(values.to_vec::<f64>(), vec![3.0, 3.0]);
    /// assert_eq!(indices.to_vec::<i64>(), vec![1, 2]);
    /// ```
    ///
    /// # Panics
    /// When the tensor is 0-d or `k` exceeds the last axis.
    #[track_caller]
    pub fn top_k(&self, k: usize) -> (Tensor, Tensor) {
        let Some(&n) = self.shape().last() else {
            panic!("top_k: expected at least one axis, got a 0-d tensor");
        };
        if k > n {
            panic!("top_k: k = {k} exceeds the last axis of shape {:?}", self.shape());
        }
        let last = self.rank() - 1;
        let (values, indices) = self.sort_descending_with_indices(last);
        (values.slice(last, 0, k), indices.slice(last, 0, k))
    }

    /// The elements shifted by `shift` positions along `axis`, wrapping
    /// around (jax.numpy's `roll`; a negative shift goes the other way).
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::arange(5, DType::F64);
    /// assert_eq!(x.roll(2, 0).to_vec::<f64>(), vec![3.0, 4.0, 0.0, 1.0, 2.0]);
    /// ```
    ///
    /// # Panics
    /// When the axis is out of range.
    #[track_caller]
    pub fn roll(&self, shift: isize, axis: usize) -> Tensor {
        let n = axis_len("roll", self, axis);
        if n == 0 {
            return self.clone();
        }
        let s = shift.rem_euclid(n as isize) as usize;
        if s == 0 {
            return self.clone();
        }
        Tensor::concat(&[self.slice(axis, n - s, n), self.slice(axis, 0, n - s)], axis)
    }

    /// `self` repeated `reps[d]` times along each axis (jax.numpy's `tile`;
    /// when `reps` and the rank differ, the shorter is padded with leading 1s).
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert_eq!(x.tile(&[2]).to_vec::<f64>(), vec![1.0, 2.0, 1.0, 2.0]);
    /// assert_eq!(x.tile(&[2, 1]).shape(), &[2, 2]);
    /// ```
    #[track_caller]
    pub fn tile(&self, reps: &[usize]) -> Tensor {
        let rank = self.rank().max(reps.len());
        let lead =
            |v: &[usize]| -> Vec<usize> { std::iter::repeat_n(1, rank - v.len()).chain(v.iter().copied()).collect() };
        let (shape, reps) = (lead(self.shape()), lead(reps));
        // [r0, s0, r1, s1, …]: each axis preceded by its copies.
        let spread: Vec<usize> = shape.iter().flat_map(|&s| [1, s]).collect();
        let target: Vec<usize> = shape.iter().zip(&reps).flat_map(|(&s, &r)| [r, s]).collect();
        let out: Vec<usize> = shape.iter().zip(&reps).map(|(&s, &r)| s * r).collect();
        self.reshape(&spread).broadcast_to(&target).reshape(&out)
    }

    /// Each element repeated `repeats` times along `axis`, in place
    /// (jax.numpy's `repeat` with one count).
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert_eq!(x.repeat(2, 0).to_vec::<f64>(), vec![1.0, 1.0, 2.0, 2.0]);
    /// ```
    ///
    /// # Panics
    /// When the axis is out of range.
    #[track_caller]
    pub fn repeat(&self, repeats: usize, axis: usize) -> Tensor {
        let n = axis_len("repeat", self, axis);
        let mut spread = self.shape().to_vec();
        spread.insert(axis + 1, 1);
        let mut target = spread.clone();
        target[axis + 1] = repeats;
        let mut out = self.shape().to_vec();
        out[axis] = n * repeats;
        self.reshape(&spread).broadcast_to(&target).reshape(&out)
    }

    /// Element `i` along `axis` repeated `counts[i]` times (jax.numpy's
    /// `repeat` with one count per element).
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    /// assert_eq!(x.repeat_each(&[0, 2, 1], 0).to_vec::<f64>(), vec![2.0, 2.0, 3.0]);
    /// ```
    ///
    /// # Panics
    /// When the axis is out of range or there is not one count per element.
    #[track_caller]
    pub fn repeat_each(&self, counts: &[usize], axis: usize) -> Tensor {
        let n = axis_len("repeat_each", self, axis);
        if counts.len() != n {
            panic!("repeat_each: {} counts for an axis of length {n} in shape {:?}", counts.len(), self.shape());
        }
        let idx: Vec<i64> = counts.iter().enumerate().flat_map(|(i, &c)| std::iter::repeat_n(i as i64, c)).collect();
        let len = idx.len();
        self.index_select(axis, &Tensor::from_vec(idx, &[len]))
    }

    /// `parts` equal pieces along `axis` (jax.numpy's `split` with a count).
    ///
    /// # Panics
    /// When the axis is out of range or its length is not a multiple of `parts`.
    #[track_caller]
    pub fn split(&self, parts: usize, axis: usize) -> Vec<Tensor> {
        let n = axis_len("split", self, axis);
        if parts == 0 || n % parts != 0 {
            panic!(
                "split: axis {axis} of shape {:?} has length {n}, which does not split into {parts} equal parts; \
                 use split_at_indices for unequal pieces",
                self.shape()
            );
        }
        let step = n / parts;
        (0..parts).map(|p| self.slice(axis, p * step, (p + 1) * step)).collect()
    }

    /// The pieces between the given positions along `axis` (jax.numpy's
    /// `split` with indices): `[..i0], [i0..i1], …, [ik..]`. Positions past
    /// the end give empty pieces, as numpy's do.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let parts = Tensor::arange(6, DType::F64).split_at_indices(&[1, 4], 0);
    /// assert_eq!(parts.iter().map(|p| p.size()).collect::<Vec<_>>(), vec![1, 3, 2]);
    /// ```
    ///
    /// # Panics
    /// When the axis is out of range.
    #[track_caller]
    pub fn split_at_indices(&self, indices: &[usize], axis: usize) -> Vec<Tensor> {
        let n = axis_len("split_at_indices", self, axis);
        let mut bounds = vec![0];
        bounds.extend(indices.iter().map(|&i| i.min(n)));
        bounds.push(n);
        bounds.windows(2).map(|w| self.slice(axis, w[0], w[1].max(w[0]))).collect()
    }

    /// The `offset`-th diagonal of the matrices in the last two axes, as the
    /// last axis (jax.numpy's `diagonal` with `axis1 = -2, axis2 = -1`): a
    /// positive offset is above the main diagonal.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let m = Tensor::arange(12, DType::F64).reshape(&[3, 4]);
    /// assert_eq!(m.diagonal(0).to_vec::<f64>(), vec![0.0, 5.0, 10.0]);
    /// assert_eq!(m.diagonal(-1).to_vec::<f64>(), vec![4.0, 9.0]);
    /// ```
    ///
    /// # Panics
    /// When the tensor has fewer than two axes.
    #[track_caller]
    pub fn diagonal(&self, offset: isize) -> Tensor {
        let (r, c) = matrix_dims("diagonal", self);
        let first_row = (-offset).max(0) as usize;
        let end_row = (c as isize - offset).clamp(0, r as isize) as usize;
        let len = end_row.saturating_sub(first_row);
        let flat_at: Vec<i64> =
            (first_row..first_row + len).map(|i| (i * c) as i64 + i as i64 + offset as i64).collect();
        let mut flat = self.shape()[..self.rank() - 2].to_vec();
        flat.push(r * c);
        self.reshape(&flat).index_select(flat.len() - 1, &Tensor::from_vec(flat_at, &[len]))
    }

    /// The sum of the `offset`-th diagonal of the matrices in the last two axes.
    ///
    /// # Panics
    /// When the tensor has fewer than two axes.
    #[track_caller]
    pub fn trace(&self, offset: isize) -> Tensor {
        let d = self.diagonal(offset);
        d.sum_axes(&[d.rank() - 1], false)
    }

    /// For a 1-d tensor, the square matrix with it on the `offset`-th
    /// diagonal and zeros elsewhere; for a 2-d one, its `offset`-th diagonal
    /// (jax.numpy's `diag`).
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let m = Tensor::from_vec(vec![1.0, 2.0], &[2]).diag(0);
    /// assert_eq!(m.to_vec::<f64>(), vec![1.0, 0.0, 0.0, 2.0]);
    /// ```
    ///
    /// # Panics
    /// When the tensor is neither 1-d nor 2-d.
    #[track_caller]
    pub fn diag(&self, offset: isize) -> Tensor {
        match self.rank() {
            1 => {
                let n = self.shape()[0];
                let k = offset.unsigned_abs();
                let m = n + k;
                // Row i holds v[i] (offset >= 0) or column j holds v[j] (offset < 0).
                let v = self.pad(&[0], &[k]);
                let v = if offset >= 0 { v.reshape(&[m, 1]) } else { v.reshape(&[1, m]) };
                band_mask(m, m, |i, j| j as isize - i as isize == offset).select(&v, &self.zeros_scalar())
            }
            2 => self.diagonal(offset),
            _ => panic!("diag: expected a 1-d or 2-d tensor, got shape {:?}; use diagonal for stacks", self.shape()),
        }
    }

    /// The lower triangle of the matrices in the last two axes: elements on
    /// and below the `offset`-th diagonal, zeros above (jax.numpy's `tril`).
    ///
    /// # Panics
    /// When the tensor has fewer than two axes.
    #[track_caller]
    pub fn tril(&self, offset: isize) -> Tensor {
        let (r, c) = matrix_dims("tril", self);
        band_mask(r, c, |i, j| j as isize - i as isize <= offset).select(self, &self.zeros_scalar())
    }

    /// The upper triangle: elements on and above the `offset`-th diagonal,
    /// zeros below (jax.numpy's `triu`).
    ///
    /// # Panics
    /// When the tensor has fewer than two axes.
    #[track_caller]
    pub fn triu(&self, offset: isize) -> Tensor {
        let (r, c) = matrix_dims("triu", self);
        band_mask(r, c, |i, j| j as isize - i as isize >= offset).select(self, &self.zeros_scalar())
    }
}

/// The length of `axis`, or a panic naming `op`.
#[track_caller]
fn axis_len(op: &str, x: &Tensor, axis: usize) -> usize {
    match x.shape().get(axis) {
        Some(&n) => n,
        None => panic!("{op}: axis {axis} is out of range for shape {:?} (rank {})", x.shape(), x.rank()),
    }
}

/// The last two dimensions, or a panic naming `op`.
#[track_caller]
fn matrix_dims(op: &str, x: &Tensor) -> (usize, usize) {
    match x.shape() {
        [.., r, c] => (*r, *c),
        s => panic!("{op}: expected a matrix (at least 2 axes), got shape {s:?}"),
    }
}

/// An `r × c` bool mask, true where `keep(i, j)`.
fn band_mask(r: usize, c: usize, keep: impl Fn(usize, usize) -> bool) -> Tensor {
    // Row by row: a division and remainder per element took milliseconds
    // at 1024², more than the select the mask is for.
    let mut v = vec![false; r * c];
    for (i, row) in v.chunks_exact_mut(c.max(1)).enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = keep(i, j);
        }
    }
    Tensor::from_vec(v, &[r, c])
}
