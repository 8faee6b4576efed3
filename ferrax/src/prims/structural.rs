//! Primitives that move data: broadcast, reshape, permute, slice, pad,
//! rev, concat; and dtype conversion and `stop_gradient`.

use crate::array::{backend_of, same_shape, Array, Aval, DType, Device, LayoutOp};
use crate::core::{bind, Kind, Lin, Param, Params, SingleOutput, Tensor};

use super::promote::promote_all;
use super::{batching, expect_axis, if_linear, unbroadcast};

/// The `broadcast` primitive: numpy-style broadcast to `shape` (new leading
/// axes, size-1 axes stretched).
#[derive(Clone, Debug)]
pub struct Broadcast {
    /// The target shape.
    pub shape: Vec<usize>,
}

impl SingleOutput for Broadcast {
    fn name(&self) -> &'static str {
        "broadcast"
    }
    fn params(&self) -> Params {
        vec![("shape", Param::List(self.shape.clone()))]
    }
    fn kind(&self) -> Kind {
        Kind::Layout
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
        backend_of(ins).layout(&LayoutOp::Broadcast(self.shape.clone()), ins[0])
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

impl SingleOutput for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn params(&self) -> Params {
        vec![("shape", Param::List(self.shape.clone()))]
    }
    fn kind(&self) -> Kind {
        Kind::Layout
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

impl SingleOutput for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn params(&self) -> Params {
        vec![("perm", Param::List(self.perm.clone()))]
    }
    fn kind(&self) -> Kind {
        Kind::Layout
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
        backend_of(ins).layout(&LayoutOp::Permute(self.perm.clone()), ins[0])
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

impl SingleOutput for Slice {
    fn name(&self) -> &'static str {
        "slice"
    }
    fn params(&self) -> Params {
        vec![("starts", Param::List(self.starts.clone())), ("ends", Param::List(self.ends.clone()))]
    }
    fn kind(&self) -> Kind {
        Kind::Layout
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
        backend_of(ins).layout(&LayoutOp::Slice { starts: self.starts.clone(), ends: self.ends.clone() }, ins[0])
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

impl SingleOutput for Pad {
    fn name(&self) -> &'static str {
        "pad"
    }
    fn params(&self) -> Params {
        vec![("lo", Param::List(self.lo.clone())), ("hi", Param::List(self.hi.clone()))]
    }
    fn kind(&self) -> Kind {
        Kind::Layout
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
        backend_of(ins).layout(&LayoutOp::Pad { lo: self.lo.clone(), hi: self.hi.clone() }, ins[0])
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

/// The `rev` primitive: the elements in reverse order along each of `axes`.
#[derive(Clone, Debug)]
pub struct Rev {
    /// The axes reversed.
    pub axes: Vec<usize>,
}

impl SingleOutput for Rev {
    fn name(&self) -> &'static str {
        "rev"
    }
    fn params(&self) -> Params {
        vec![("axes", Param::List(self.axes.clone()))]
    }
    fn kind(&self) -> Kind {
        Kind::Layout
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        for &a in &self.axes {
            expect_axis("flip", a, &ins[0].shape);
        }
        ins[0].clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).layout(&LayoutOp::Rev(self.axes.clone()), ins[0])
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        let bd = axes[0].expect("the only operand is batched");
        let shifted = self.axes.iter().map(|&a| batching::phys(a, bd)).collect();
        (bind(Rev { axes: shifted }, &x[..1]), Some(bd))
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(bind(self.clone(), &[t[0].clone()?]))
    }
    fn transpose(&self, ct: &Tensor, _ins: &[Lin]) -> Vec<Option<Tensor>> {
        vec![Some(bind(self.clone(), std::slice::from_ref(ct)))]
    }
}

/// The `concat` primitive: joins its inputs along `axis`.
#[derive(Clone, Debug)]
pub struct Concat {
    /// The axis joined along.
    pub axis: usize,
}

impl SingleOutput for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn params(&self) -> Params {
        vec![("axis", Param::Usize(self.axis))]
    }
    fn kind(&self) -> Kind {
        Kind::Layout
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let Some(first) = ins.first() else { panic!("concat: needs at least one tensor") };
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
        backend_of(ins).concat(ins, self.axis)
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

/// The `convert` primitive: elements cast to `dtype` (`as` semantics).
#[derive(Clone, Debug)]
pub struct Convert {
    /// The target dtype.
    pub dtype: DType,
}

impl SingleOutput for Convert {
    fn name(&self) -> &'static str {
        "convert"
    }
    fn params(&self) -> Params {
        vec![("dtype", Param::DType(self.dtype))]
    }
    fn kind(&self) -> Kind {
        Kind::Convert(self.dtype)
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        Aval { dtype: self.dtype, shape: ins[0].shape.clone() }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).convert(ins[0], self.dtype)
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

/// The `device_put` primitive: the same values on `device` (JAX's
/// `device_put`); the identity to every derivative, whose cotangent goes
/// back to the device the input was on.
#[derive(Clone, Copy, Debug)]
pub struct DevicePut {
    /// Where the result lives.
    pub device: Device,
}

impl SingleOutput for DevicePut {
    fn name(&self) -> &'static str {
        "device_put"
    }
    fn params(&self) -> Params {
        match self.device {
            Device::Cpu => vec![("device", Param::Name("cpu"))],
            Device::Cuda(n) => vec![("device", Param::Name("cuda")), ("ordinal", Param::Usize(n))],
        }
    }
    fn kind(&self) -> Kind {
        Kind::Layout
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        ins[0].clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        ins[0].to_device(self.device)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        batching::unary(self, x, axes)
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(bind(*self, &[t[0].clone()?]))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let from = ins[0].value().map_or(Device::default(), Tensor::device);
        vec![Some(bind(DevicePut { device: from }, std::slice::from_ref(ct)))]
    }
}

/// The `stop_gradient` primitive: the identity, with a zero derivative.
#[derive(Clone, Copy, Debug)]
pub struct StopGradient;

impl SingleOutput for StopGradient {
    fn name(&self) -> &'static str {
        "stop_gradient"
    }
    fn params(&self) -> Params {
        Vec::new()
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
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

    /// Swaps the last two axes (the matrix transpose, batched). A 1-d or
    /// 0-d tensor is returned unchanged, as numpy's `.T` does.
    #[track_caller]
    pub fn t(&self) -> Tensor {
        let r = self.rank();
        if r < 2 {
            return self.clone();
        }
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

    /// The elements in reverse order along each of `axes` (jax.numpy's `flip`).
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::arange(3, DType::F64);
    /// assert_eq!(x.flip(&[0]).to_vec::<f64>(), vec![2.0, 1.0, 0.0]);
    /// ```
    ///
    /// # Panics
    /// When an axis is out of range.
    #[track_caller]
    pub fn flip(&self, axes: &[usize]) -> Tensor {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        if axes.iter().all(|&a| a < self.rank() && self.shape()[a] <= 1) {
            return self.clone();
        }
        bind(Rev { axes }, std::slice::from_ref(self))
    }

    /// Joins tensors along an existing axis, promoting them to a common dtype.
    ///
    /// # Panics
    /// When `xs` is empty, or the other dimensions differ.
    #[track_caller]
    pub fn concat(xs: &[Tensor], axis: usize) -> Tensor {
        if xs.is_empty() {
            panic!("concat: needs at least one tensor");
        }
        if xs.len() == 1 {
            expect_axis("concat", axis, xs[0].shape());
            return xs[0].clone();
        }
        bind(Concat { axis }, &promote_all(xs))
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

    /// The elements converted to `dtype` (`as` semantics: floats to
    /// integers truncate toward zero; nonzero is `true`).
    #[track_caller]
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if self.dtype() == dtype {
            return self.clone();
        }
        bind(Convert { dtype }, std::slice::from_ref(self))
    }

    /// The same values on `device` (see [`device_put`](crate::device_put)).
    #[track_caller]
    pub fn to_device(&self, device: Device) -> Tensor {
        if !self.is_tracer() && self.device() == device {
            return self.clone();
        }
        bind(DevicePut { device }, std::slice::from_ref(self))
    }

    /// The same value, treated as a constant by differentiation.
    pub fn stop_gradient(&self) -> Tensor {
        bind(StopGradient, std::slice::from_ref(self))
    }
}
