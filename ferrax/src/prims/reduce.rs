//! Reductions over axes, argmax and cumulative sums.

use crate::array::{Array, Aval, DType};
use crate::core::{bind, Lin, Primitive, Tensor};

use super::batching::phys;
use super::{expect_axis, expect_numeric};

/// Checks reduction axes and returns the shape without them.
#[track_caller]
fn reduced_aval(op: &str, a: &Aval, axes: &[usize]) -> Aval {
    expect_numeric(op, a);
    for &ax in axes {
        expect_axis(op, ax, &a.shape);
    }
    let shape = a.shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
    Aval { dtype: a.dtype, shape }
}

/// A reduction's axes in a batched operand whose batch axis is at `axes[0]`,
/// and where the batch axis lands in the result: it stays in place, moved
/// left by the reduced axes before it.
fn reduce_axes(logical: &[usize], axes: &[Option<usize>]) -> (Vec<usize>, usize) {
    let bd = axes[0].expect("the only operand is batched");
    let physical = logical.iter().map(|&a| phys(a, bd)).collect();
    (physical, bd - logical.iter().filter(|&&a| a < bd).count())
}

/// `shape` with the reduced `axes` kept as size 1, so a reduced value broadcasts back.
pub(crate) fn keep_dims_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect()
}

/// The `reduce_sum` primitive: sums over `axes`, removing them.
#[derive(Clone, Debug)]
pub struct ReduceSum {
    /// The axes summed over.
    pub axes: Vec<usize>,
}

impl Primitive for ReduceSum {
    fn name(&self) -> &'static str {
        "reduce_sum"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        reduced_aval("sum", ins[0], &self.axes)
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        crate::array::reduce_sum(ins[0], &self.axes)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        let (axes, bd) = reduce_axes(&self.axes, axes);
        (bind(ReduceSum { axes }, &x[..1]), Some(bd))
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(t[0].as_ref()?.reduce_sum(&self.axes))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let x = ins[0].aval();
        vec![Some(ct.reshape(&keep_dims_shape(&x.shape, &self.axes)).broadcast_to(&x.shape))]
    }
}

/// The derivative of a max or min reduction: the tangent averaged over the
/// positions that attain the extreme, so ties share it evenly.
fn extreme_jvp(x: &Tensor, t: &Tensor, ans: &Tensor, axes: &[usize]) -> Tensor {
    let ans_kept = ans.reshape(&keep_dims_shape(x.shape(), axes));
    let hit = x.eq(&ans_kept).to_dtype(x.dtype());
    (t * &hit).reduce_sum(axes) / hit.reduce_sum(axes)
}

/// The `reduce_max` primitive: maximum over `axes`, removing them.
#[derive(Clone, Debug)]
pub struct ReduceMax {
    /// The axes reduced over.
    pub axes: Vec<usize>,
}

impl Primitive for ReduceMax {
    fn name(&self) -> &'static str {
        "reduce_max"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        reduced_aval("max", ins[0], &self.axes)
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        crate::array::reduce_max(ins[0], &self.axes)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        let (axes, bd) = reduce_axes(&self.axes, axes);
        (bind(ReduceMax { axes }, &x[..1]), Some(bd))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
        Some(extreme_jvp(&x[0], t[0].as_ref()?, ans, &self.axes))
    }
}

/// The `reduce_min` primitive: minimum over `axes`, removing them.
#[derive(Clone, Debug)]
pub struct ReduceMin {
    /// The axes reduced over.
    pub axes: Vec<usize>,
}

impl Primitive for ReduceMin {
    fn name(&self) -> &'static str {
        "reduce_min"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        reduced_aval("min", ins[0], &self.axes)
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        crate::array::reduce_min(ins[0], &self.axes)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        let (axes, bd) = reduce_axes(&self.axes, axes);
        (bind(ReduceMin { axes }, &x[..1]), Some(bd))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
        Some(extreme_jvp(&x[0], t[0].as_ref()?, ans, &self.axes))
    }
}

/// The `argmax` primitive: index (i64) of the first maximum along `axis`.
#[derive(Clone, Debug)]
pub struct Argmax {
    /// The axis searched.
    pub axis: usize,
}

impl Primitive for Argmax {
    fn name(&self) -> &'static str {
        "argmax"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let mut out = reduced_aval("argmax", ins[0], &[self.axis]);
        if ins[0].shape[self.axis] == 0 {
            panic!("argmax: axis {} of shape {:?} is empty; there is no maximum", self.axis, ins[0].shape);
        }
        out.dtype = DType::I64;
        out
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        crate::array::argmax(ins[0], self.axis)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        let (axes, bd) = reduce_axes(&[self.axis], axes);
        (bind(Argmax { axis: axes[0] }, &x[..1]), Some(bd))
    }
    fn jvp(&self, _x: &[Tensor], _t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        None // integer output
    }
}

/// The `cumsum` primitive: running sum along `axis` (from the end when `reverse`).
#[derive(Clone, Debug)]
pub struct Cumsum {
    /// The axis summed along.
    pub axis: usize,
    /// Sum from the end backwards.
    pub reverse: bool,
}

impl Primitive for Cumsum {
    fn name(&self) -> &'static str {
        "cumsum"
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        expect_numeric("cumsum", ins[0]);
        expect_axis("cumsum", self.axis, &ins[0].shape);
        ins[0].clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        crate::array::cumsum(ins[0], self.axis, self.reverse)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        let bd = axes[0].expect("the only operand is batched");
        (bind(Cumsum { axis: phys(self.axis, bd), reverse: self.reverse }, &x[..1]), Some(bd))
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some(bind(self.clone(), &[t[0].clone()?]))
    }
    fn transpose(&self, ct: &Tensor, _ins: &[Lin]) -> Vec<Option<Tensor>> {
        // Each input element feeds the sums at and after it: the transpose sums from the other end.
        vec![Some(bind(Cumsum { axis: self.axis, reverse: !self.reverse }, std::slice::from_ref(ct)))]
    }
}

impl Tensor {
    /// Sum over `axes`, which are removed from the shape (the primitive
    /// behind [`Tensor::sum_axes`]).
    ///
    /// # Panics
    /// When an axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn reduce_sum(&self, axes: &[usize]) -> Tensor {
        if axes.is_empty() {
            return self.clone();
        }
        bind(ReduceSum { axes: axes.to_vec() }, std::slice::from_ref(self))
    }

    /// Maximum over `axes`, which are removed from the shape.
    ///
    /// # Panics
    /// When an axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn reduce_max(&self, axes: &[usize]) -> Tensor {
        if axes.is_empty() {
            return self.clone();
        }
        bind(ReduceMax { axes: axes.to_vec() }, std::slice::from_ref(self))
    }

    /// Minimum over `axes`, which are removed from the shape.
    ///
    /// # Panics
    /// When an axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn reduce_min(&self, axes: &[usize]) -> Tensor {
        if axes.is_empty() {
            return self.clone();
        }
        bind(ReduceMin { axes: axes.to_vec() }, std::slice::from_ref(self))
    }

    /// Index of the first maximum along `axis` (removed from the shape), as i64.
    ///
    /// # Panics
    /// When the axis is out of range or empty.
    #[track_caller]
    pub fn argmax(&self, axis: usize) -> Tensor {
        bind(Argmax { axis }, std::slice::from_ref(self))
    }

    /// Running sum along `axis`: element `i` is the sum of elements `0..=i`.
    ///
    /// # Panics
    /// When the axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn cumsum(&self, axis: usize) -> Tensor {
        bind(Cumsum { axis, reverse: false }, std::slice::from_ref(self))
    }
}
