//! Primitives that move or select data: broadcast, reshape, permute,
//! slice, pad, concat, gather, scatter-add; and dtype conversion and
//! `stop_gradient`.

use crate::array::{self, same_shape, Array, Aval, DType};
use crate::core::{bind, Lin, Primitive, Tensor};

use super::{batching, constant, expect_axis, if_linear, or_zero, unbroadcast};

/// The `broadcast` primitive: numpy-style broadcast to `shape` (new leading
/// axes, size-1 axes stretched).
#[derive(Clone, Debug)]
pub struct Broadcast {
    /// The target shape.
    pub shape: Vec<usize>,
}

impl Primitive for Broadcast {
    fn name(&self) -> &'static str {
        "broadcast"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let from = &ins[0].shape;
        let ok = from.len() <= self.shape.len()
            && from.iter().rev().zip(self.shape.iter().rev()).all(|(&f, &t)| f == t || f == 1);
        if !ok {
            panic!(
                "broadcast_to: cannot broadcast shape {from:?} to {:?}; each dimension must equal \
                 the target's or be 1, aligned from the right",
                self.shape
            );
        }
        Aval { dtype: ins[0].dtype, shape: self.shape.clone() }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        array::broadcast_to(ins[0], &self.shape)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        // Batch axis first, then size-1 axes for the ranks the broadcast adds.
        let front = batching::batch_first(&x[0], axes[0], size);
        let logical = &front.shape()[1..];
        let mut shape = vec![size];
        shape.extend(std::iter::repeat_n(1, self.shape.len() - logical.len()));
        shape.extend_from_slice(logical);
        let mut target = vec![size];
        target.extend_from_slice(&self.shape);
        (front.reshape(&shape).broadcast_to(&target), Some(0))
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(t[0].as_ref()?.broadcast_to(&self.shape))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        vec![Some(unbroadcast(ct, &ins[0].aval().shape))]
    }
}

/// The `reshape` primitive: the same elements in row-major order, another shape.
#[derive(Clone, Debug)]
pub struct Reshape {
    /// The new shape.
    pub shape: Vec<usize>,
}

impl Primitive for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let n: usize = self.shape.iter().product();
        if n != ins[0].size() {
            panic!(
                "reshape: cannot reshape {:?} ({} elements) to {:?} ({n} elements); the sizes must match",
                ins[0].shape,
                ins[0].size(),
                self.shape
            );
        }
        Aval { dtype: ins[0].dtype, shape: self.shape.clone() }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        ins[0].reshape(&self.shape)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        // A batch axis at either end survives a reshape of the rest without a copy.
        if axes[0] == Some(x[0].rank() - 1) && x[0].rank() > 1 {
            let mut shape = self.shape.clone();
            shape.push(size);
            return (x[0].reshape(&shape), Some(self.shape.len()));
        }
        let mut shape = vec![size];
        shape.extend_from_slice(&self.shape);
        (batching::batch_first(&x[0], axes[0], size).reshape(&shape), Some(0))
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(t[0].as_ref()?.reshape(&self.shape))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        vec![Some(ct.reshape(&ins[0].aval().shape))]
    }
}

/// The `permute` primitive: output axis `i` is input axis `perm[i]`.
#[derive(Clone, Debug)]
pub struct Permute {
    /// Output axis `i` is input axis `perm[i]`.
    pub perm: Vec<usize>,
}

impl Primitive for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let rank = ins[0].rank();
        let mut seen = vec![false; rank];
        let valid =
            self.perm.len() == rank && self.perm.iter().all(|&p| p < rank && !std::mem::replace(&mut seen[p], true));
        if !valid {
            panic!("permute: {:?} is not a permutation of the {rank} axes of shape {:?}", self.perm, ins[0].shape);
        }
        Aval { dtype: ins[0].dtype, shape: self.perm.iter().map(|&p| ins[0].shape[p]).collect() }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        array::permute(ins[0], &self.perm)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let perm: Vec<usize> = std::iter::once(0).chain(self.perm.iter().map(|p| p + 1)).collect();
        (batching::batch_first(&x[0], axes[0], size).permute(&perm), Some(0))
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(t[0].as_ref()?.permute(&self.perm))
    }
    fn transpose(&self, ct: &Tensor, _ins: &[Lin]) -> Vec<Option<Tensor>> {
        let mut inverse = vec![0; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            inverse[p] = i;
        }
        vec![Some(ct.permute(&inverse))]
    }
}

/// The `slice` primitive: the block `starts[d]..ends[d]` of every axis.
#[derive(Clone, Debug)]
pub struct Slice {
    /// First index kept, per axis.
    pub starts: Vec<usize>,
    /// One past the last index kept, per axis.
    pub ends: Vec<usize>,
}

impl Primitive for Slice {
    fn name(&self) -> &'static str {
        "slice"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let s = &ins[0].shape;
        let valid = self.starts.len() == s.len()
            && self.ends.len() == s.len()
            && (0..s.len()).all(|d| self.starts[d] <= self.ends[d] && self.ends[d] <= s[d]);
        if !valid {
            panic!(
                "slice: the block {:?}..{:?} does not lie within shape {s:?}; each start must be \
                 at most its end, and each end at most the dimension",
                self.starts, self.ends
            );
        }
        Aval { dtype: ins[0].dtype, shape: self.starts.iter().zip(&self.ends).map(|(a, b)| b - a).collect() }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        array::slice(ins[0], &self.starts, &self.ends)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let bd = axes[0].expect("the only operand is batched");
        let (mut starts, mut ends) = (self.starts.clone(), self.ends.clone());
        starts.insert(bd, 0);
        ends.insert(bd, size);
        (bind(Slice { starts, ends }, &x[..1]), Some(bd))
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(bind(self.clone(), &[t[0].clone()?]))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let shape = &ins[0].aval().shape;
        let hi: Vec<usize> = self.ends.iter().zip(shape).map(|(e, d)| d - e).collect();
        vec![Some(ct.pad(&self.starts, &hi))]
    }
}

/// The `pad` primitive: `lo[d]` zeros before and `hi[d]` zeros after each axis.
#[derive(Clone, Debug)]
pub struct Pad {
    /// Zeros before, per axis.
    pub lo: Vec<usize>,
    /// Zeros after, per axis.
    pub hi: Vec<usize>,
}

impl Primitive for Pad {
    fn name(&self) -> &'static str {
        "pad"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let s = &ins[0].shape;
        if self.lo.len() != s.len() || self.hi.len() != s.len() {
            panic!(
                "pad: shape {s:?} has {} axes but {} and {} padding amounts were given",
                s.len(),
                self.lo.len(),
                self.hi.len()
            );
        }
        Aval { dtype: ins[0].dtype, shape: (0..s.len()).map(|d| self.lo[d] + s[d] + self.hi[d]).collect() }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        array::pad(ins[0], &self.lo, &self.hi)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        let bd = axes[0].expect("the only operand is batched");
        let (mut lo, mut hi) = (self.lo.clone(), self.hi.clone());
        lo.insert(bd, 0);
        hi.insert(bd, 0);
        (bind(Pad { lo, hi }, &x[..1]), Some(bd))
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(bind(self.clone(), &[t[0].clone()?]))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let shape = &ins[0].aval().shape;
        let ends: Vec<usize> = self.lo.iter().zip(shape).map(|(l, d)| l + d).collect();
        vec![Some(ct.slice_block(&self.lo, &ends))]
    }
}

/// The `concat` primitive: joins its inputs along `axis`.
#[derive(Clone, Debug)]
pub struct Concat {
    /// The axis joined along.
    pub axis: usize,
}

impl Primitive for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let first = ins.first().unwrap_or_else(|| panic!("concat: needs at least one tensor"));
        expect_axis("concat", self.axis, &first.shape);
        for a in ins {
            let same_rest =
                a.rank() == first.rank() && (0..a.rank()).all(|d| d == self.axis || a.shape[d] == first.shape[d]);
            if a.dtype != first.dtype || !same_rest {
                panic!(
                    "concat: cannot join {} with {} along axis {}; dtypes and all other dimensions must agree",
                    first, a, self.axis
                );
            }
        }
        let mut shape = first.shape.clone();
        shape[self.axis] = ins.iter().map(|a| a.shape[self.axis]).sum();
        Aval { dtype: first.dtype, shape }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        array::concat(ins, self.axis)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let xs: Vec<Tensor> = x.iter().zip(axes).map(|(v, &a)| batching::batch_first(v, a, size)).collect();
        (bind(Concat { axis: self.axis + 1 }, &xs), Some(0))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        let ts: Vec<Tensor> = x.iter().zip(t).map(|(x, t)| t.clone().unwrap_or_else(|| x.zeros_like())).collect();
        Some(bind(self.clone(), &ts))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let mut at = 0;
        ins.iter()
            .map(|lin| {
                let len = lin.aval().shape[self.axis];
                at += len;
                if_linear(lin, |_| ct.slice(self.axis, at - len, at))
            })
            .collect()
    }
}

/// The `gather` primitive: entries of input 0 along `axis` picked by the
/// i64 indices of input 1 (numpy's `take`). Output shape
/// `x[..axis] ++ idx ++ x[axis+1..]`.
#[derive(Clone, Debug)]
pub struct Gather {
    /// The axis indexed.
    pub axis: usize,
}

impl Primitive for Gather {
    fn name(&self) -> &'static str {
        "gather"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let (x, idx) = (ins[0], ins[1]);
        expect_axis("index_select", self.axis, &x.shape);
        if idx.dtype != DType::I64 {
            panic!("index_select: indices must be i64, got {}; convert them with .to_dtype(DType::I64)", idx.dtype);
        }
        let shape = x.shape[..self.axis].iter().chain(&idx.shape).chain(&x.shape[self.axis + 1..]).copied().collect();
        Aval { dtype: x.dtype, shape }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        array::gather(ins[0], self.axis, ins[1])
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let (src, idx) = (&x[0], &x[1]);
        match (axes[0], axes[1]) {
            // One index set for every batch member: gather past the batch axis.
            (Some(bd), None) => {
                let front = batching::move_axis(src, bd, 0);
                (front.index_select(self.axis + 1, idx), Some(0))
            }
            // One source, a batch of index sets: the indices' batch axis lands at `axis`.
            (None, Some(bi)) => (src.index_select(self.axis, &batching::move_axis(idx, bi, 0)), Some(self.axis)),
            // Both batched: fold the batch into the gathered axis and offset each member's indices.
            _ => {
                let (src, len) = fold_batch_into_axis(src, axes[0], self.axis, size);
                let idx = offset_indices(idx, axes[1], size, len);
                (src.index_select(self.axis, &idx), Some(self.axis))
            }
        }
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(t[0].as_ref()?.index_select(self.axis, &x[1]))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let idx = constant("gather", &ins[1]);
        let x = ins[0].aval();
        vec![Some(Tensor::zeros(&x.shape, x.dtype).scatter_add(self.axis, idx, ct)), None]
    }
}

/// The `scatter_add` primitive: input 0 (the operand) plus input 2 (the
/// updates) added at the positions that the i64 indices of input 1 pick
/// along `axis`; repeated indices accumulate. The transpose of [`Gather`].
#[derive(Clone, Debug)]
pub struct ScatterAdd {
    /// The axis indexed.
    pub axis: usize,
}

impl Primitive for ScatterAdd {
    fn name(&self) -> &'static str {
        "scatter_add"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let (x, idx, upd) = (ins[0], ins[1], ins[2]);
        expect_axis("scatter_add", self.axis, &x.shape);
        if idx.dtype != DType::I64 {
            panic!("scatter_add: indices must be i64, got {}; convert them with .to_dtype(DType::I64)", idx.dtype);
        }
        let want: Vec<usize> =
            x.shape[..self.axis].iter().chain(&idx.shape).chain(&x.shape[self.axis + 1..]).copied().collect();
        if upd.shape != want || upd.dtype != x.dtype {
            panic!(
                "scatter_add: updates must be {}{want:?} (operand {} with the indices' shape {:?} at axis {}), got {}",
                x.dtype, x, idx.shape, self.axis, upd
            );
        }
        x.clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        array::scatter_add(ins[0], self.axis, ins[1], ins[2])
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        // Fold the batch into the scattered axis, with each member's indices
        // offset into its own block, and scatter once.
        let (operand, len) = fold_batch_into_axis(&x[0], axes[0], self.axis, size);
        let idx = offset_indices(&x[1], axes[1], size, len);
        let upd = batching::batch_first(&x[2], axes[2], size);
        let upd = batching::move_axis(&upd, 0, self.axis);
        let out = operand.scatter_add(self.axis, &idx, &upd);
        let mut shape = x[0].shape().to_vec();
        if let Some(bd) = axes[0] {
            shape.remove(bd);
        }
        shape.insert(self.axis, size);
        (out.reshape(&shape), Some(self.axis))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
        let t_op = or_zero(t[0].as_ref(), &x[0]).broadcast_to(ans.shape());
        let t_upd = t[2].clone().unwrap_or_else(|| x[2].zeros_like());
        Some(bind(self.clone(), &[t_op, x[1].clone(), t_upd]))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let idx = constant("scatter_add", &ins[1]);
        vec![if_linear(&ins[0], |_| ct.clone()), None, if_linear(&ins[2], |_| ct.index_select(self.axis, idx))]
    }
}

/// The `convert` primitive: elements cast to `dtype` (`as` semantics).
#[derive(Clone, Debug)]
pub struct Convert {
    /// The target dtype.
    pub dtype: DType,
}

impl Primitive for Convert {
    fn name(&self) -> &'static str {
        "convert"
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        Aval { dtype: self.dtype, shape: ins[0].shape.clone() }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        ins[0].to_dtype(self.dtype)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        batching::unary(self, x, axes)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        // Only float-to-float conversions carry a derivative.
        if x[0].dtype().is_float() && self.dtype.is_float() {
            Some(t[0].as_ref()?.to_dtype(self.dtype))
        } else {
            None
        }
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        vec![Some(ct.to_dtype(ins[0].aval().dtype))]
    }
}

/// The `stop_gradient` primitive: the identity, with a zero derivative.
#[derive(Clone, Copy, Debug)]
pub struct StopGradient;

impl Primitive for StopGradient {
    fn name(&self) -> &'static str {
        "stop_gradient"
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        ins[0].clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        ins[0].clone()
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        batching::unary(self, x, axes)
    }
    fn jvp(&self, _x: &[Tensor], _t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        None
    }
}

/// `x` (batched at `axis`, or broadcast when unbatched) with the batch axis
/// merged into axis `at` of the logical shape: `[.., size * len, ..]`, member
/// `b` owning positions `b * len .. (b + 1) * len`. Returns it and `len`.
fn fold_batch_into_axis(x: &Tensor, axis: Option<usize>, at: usize, size: usize) -> (Tensor, usize) {
    let front = batching::batch_first(x, axis, size);
    let moved = batching::move_axis(&front, 0, at);
    let mut shape = moved.shape().to_vec();
    let len = shape[at + 1];
    shape[at] = size * len;
    shape.remove(at + 1);
    (moved.reshape(&shape), len)
}

/// A batch of index sets (batch axis first; unbatched ones broadcast) with
/// member `b`'s indices shifted by `b * len`, to address a folded axis.
fn offset_indices(idx: &Tensor, axis: Option<usize>, size: usize, len: usize) -> Tensor {
    let idx = batching::batch_first(idx, axis, size);
    let mut shape = vec![1; idx.rank()];
    shape[0] = size;
    let offsets = (Tensor::arange(size, DType::I64) * len as f64).reshape(&shape);
    idx + offsets
}

impl Tensor {
    /// Broadcasts to `shape` under numpy's rules.
    ///
    /// # Panics
    /// When the shapes are incompatible.
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        if same_shape(self.shape(), shape) {
            return self.clone();
        }
        bind(Broadcast { shape: shape.to_vec() }, std::slice::from_ref(self))
    }

    /// The same elements with another shape of the same size.
    ///
    /// # Panics
    /// When the sizes differ.
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        if same_shape(self.shape(), shape) {
            return self.clone();
        }
        bind(Reshape { shape: shape.to_vec() }, std::slice::from_ref(self))
    }

    /// Reorders the axes: output axis `i` is input axis `perm[i]`.
    ///
    /// # Panics
    /// When `perm` is not a permutation of the axes.
    #[track_caller]
    pub fn permute(&self, perm: &[usize]) -> Tensor {
        if perm.iter().enumerate().all(|(i, &p)| i == p) && perm.len() == self.rank() {
            return self.clone();
        }
        bind(Permute { perm: perm.to_vec() }, std::slice::from_ref(self))
    }

    /// Swaps the last two axes (the matrix transpose, batched).
    ///
    /// # Panics
    /// When the tensor has fewer than two axes.
    #[track_caller]
    pub fn t(&self) -> Tensor {
        let r = self.rank();
        assert!(r >= 2, "t: expected at least 2 axes, got shape {:?}; use reshape for vectors", self.shape());
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.permute(&perm)
    }

    /// Inserts an axis of size 1 at position `axis` (which may equal the rank).
    ///
    /// # Panics
    /// When `axis` is greater than the rank.
    #[track_caller]
    pub fn expand_dims(&self, axis: usize) -> Tensor {
        assert!(
            axis <= self.rank(),
            "expand_dims: axis {axis} is out of range for shape {:?} (at most {})",
            self.shape(),
            self.rank()
        );
        let mut shape = self.shape().to_vec();
        shape.insert(axis, 1);
        self.reshape(&shape)
    }

    /// Removes the axis `axis`, which must have size 1.
    ///
    /// # Panics
    /// When the axis is out of range or its size is not 1.
    #[track_caller]
    pub fn squeeze(&self, axis: usize) -> Tensor {
        expect_axis("squeeze", axis, self.shape());
        assert!(
            self.shape()[axis] == 1,
            "squeeze: axis {axis} of shape {:?} has size {}, not 1",
            self.shape(),
            self.shape()[axis]
        );
        let mut shape = self.shape().to_vec();
        shape.remove(axis);
        self.reshape(&shape)
    }

    /// Elements `start..end` along `axis`.
    ///
    /// # Panics
    /// When the axis is out of range or the range does not lie within it.
    #[track_caller]
    pub fn slice(&self, axis: usize, start: usize, end: usize) -> Tensor {
        expect_axis("slice", axis, self.shape());
        let mut starts = vec![0; self.rank()];
        let mut ends = self.shape().to_vec();
        starts[axis] = start;
        ends[axis] = end;
        self.slice_block(&starts, &ends)
    }

    /// The block `starts[d]..ends[d]` of every axis.
    ///
    /// # Panics
    /// When the block does not lie within the tensor.
    #[track_caller]
    pub fn slice_block(&self, starts: &[usize], ends: &[usize]) -> Tensor {
        if starts.iter().all(|&s| s == 0) && same_shape(ends, self.shape()) {
            return self.clone();
        }
        bind(Slice { starts: starts.to_vec(), ends: ends.to_vec() }, std::slice::from_ref(self))
    }

    /// Pads each axis `d` with `lo[d]` zeros before and `hi[d]` after.
    ///
    /// # Panics
    /// When `lo` or `hi` does not have one entry per axis.
    #[track_caller]
    pub fn pad(&self, lo: &[usize], hi: &[usize]) -> Tensor {
        if lo.iter().chain(hi).all(|&p| p == 0) && lo.len() == self.rank() && hi.len() == self.rank() {
            return self.clone();
        }
        bind(Pad { lo: lo.to_vec(), hi: hi.to_vec() }, std::slice::from_ref(self))
    }

    /// Joins tensors along an existing axis.
    ///
    /// # Panics
    /// When `xs` is empty, or the dtypes or other dimensions differ.
    #[track_caller]
    pub fn concat(xs: &[Tensor], axis: usize) -> Tensor {
        assert!(!xs.is_empty(), "concat: needs at least one tensor");
        if xs.len() == 1 {
            expect_axis("concat", axis, xs[0].shape());
            return xs[0].clone();
        }
        bind(Concat { axis }, xs)
    }

    /// Joins tensors of one shape along a new axis at position `axis`.
    ///
    /// # Panics
    /// When `xs` is empty, or the shapes or dtypes differ.
    #[track_caller]
    pub fn stack(xs: &[Tensor], axis: usize) -> Tensor {
        assert!(!xs.is_empty(), "stack: needs at least one tensor");
        for x in xs {
            assert!(
                x.shape() == xs[0].shape(),
                "stack: all tensors must have one shape, got {:?} and {:?}",
                xs[0].shape(),
                x.shape()
            );
        }
        let expanded: Vec<Tensor> = xs.iter().map(|x| x.expand_dims(axis)).collect();
        Tensor::concat(&expanded, axis)
    }

    /// Picks entries along `axis` by i64 indices of any shape (numpy's
    /// `take`): the result's shape is `self[..axis] ++ idx ++ self[axis+1..]`.
    ///
    /// # Panics
    /// When the indices are not i64, or (on evaluation) one is out of range.
    #[track_caller]
    pub fn index_select(&self, axis: usize, idx: &Tensor) -> Tensor {
        bind(Gather { axis }, &[self.clone(), idx.clone()])
    }

    /// `self` plus `updates` added at the entries along `axis` that `idx`
    /// picks; repeated indices accumulate. `updates` has the shape
    /// `index_select(axis, idx)` would give.
    ///
    /// # Panics
    /// When the shapes or dtypes do not fit, or (on evaluation) an index is out of range.
    #[track_caller]
    pub fn scatter_add(&self, axis: usize, idx: &Tensor, updates: &Tensor) -> Tensor {
        bind(ScatterAdd { axis }, &[self.clone(), idx.clone(), updates.clone()])
    }

    /// The elements converted to `dtype` (`as` semantics: floats to
    /// integers truncate toward zero; nonzero is `true`).
    #[track_caller]
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if self.dtype() == dtype {
            return self.clone();
        }
        bind(Convert { dtype }, std::slice::from_ref(self))
    }

    /// The same value, treated as a constant by differentiation.
    pub fn stop_gradient(&self) -> Tensor {
        bind(StopGradient, std::slice::from_ref(self))
    }
}
