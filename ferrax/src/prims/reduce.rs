//! Reductions over axes, and argmax / argmin.

use crate::array::{backend_of, Array, Aval, DType, ReduceOp};
use crate::core::{bind, Kind, Lin, Param, Params, SingleOutput, Tensor};

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

/// The `reduce` primitive: `op` over `axes` (sorted, distinct), which are
/// removed; named `reduce_sum`, `reduce_prod`, `reduce_max`, `reduce_min`.
/// Max and min propagate NaN and share the derivative evenly between ties;
/// the product's derivative is exact where the input has zeros; the sum is
/// linear.
#[derive(Clone, Debug)]
pub struct Reduce {
    /// Which reduction.
    pub op: ReduceOp,
    /// The axes reduced over.
    pub axes: Vec<usize>,
}

impl SingleOutput for Reduce {
    fn name(&self) -> &'static str {
        match self.op {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Prod => "reduce_prod",
            ReduceOp::Max => "reduce_max",
            ReduceOp::Min => "reduce_min",
        }
    }
    fn params(&self) -> Params {
        vec![("axes", Param::List(self.axes.clone()))]
    }
    fn kind(&self) -> Kind {
        Kind::Reduce(self.op)
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        reduced_aval(self.op.name(), ins[0], &self.axes)
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).reduce(self.op, ins[0], &self.axes)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        let (axes, bd) = reduce_axes(&self.axes, axes);
        (bind(Reduce { op: self.op, axes }, &x[..1]), Some(bd))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
        let (x, t, axes) = (&x[0], t[0].as_ref()?, &self.axes[..]);
        Some(match self.op {
            ReduceOp::Sum => t.reduce_sum(axes),
            ReduceOp::Prod => prod_jvp(x, t, axes),
            ReduceOp::Max | ReduceOp::Min => extreme_jvp(x, t, ans, axes),
        })
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        match self.op {
            ReduceOp::Sum => {
                let x = ins[0].aval();
                vec![Some(ct.reshape(&keep_dims_shape(&x.shape, &self.axes)).broadcast_to(&x.shape))]
            }
            ReduceOp::Prod | ReduceOp::Max | ReduceOp::Min => {
                panic!("{}", crate::core::context::nonlinear_message(SingleOutput::name(self)))
            }
        }
    }
}

/// The derivative of a max or min reduction: the tangent averaged over the
/// positions that attain the extreme, so ties share it evenly (NaN where
/// the extreme is NaN, as JAX).
fn extreme_jvp(x: &Tensor, t: &Tensor, ans: &Tensor, axes: &[usize]) -> Tensor {
    let ans_kept = ans.reshape(&keep_dims_shape(x.shape(), axes));
    let hit = x.eq(&ans_kept).to_dtype(x.dtype());
    (t * &hit).reduce_sum(axes) / hit.reduce_sum(axes)
}

/// The derivative of a product, as JAX computes it: the jvp of a balanced
/// tree of pairwise products over the reduced elements. Each factor's
/// tangent is multiplied by the product of the others, never divided by
/// itself, so zeros in the input are exact; and the tree keeps the rounding
/// of long products small.
fn prod_jvp(x: &Tensor, t: &Tensor, axes: &[usize]) -> Tensor {
    let rest: Vec<usize> = (0..x.rank()).filter(|d| !axes.contains(d)).collect();
    let perm: Vec<usize> = axes.iter().chain(&rest).copied().collect();
    let n: usize = axes.iter().map(|&a| x.shape()[a]).product();
    let mut shape = vec![n];
    shape.extend(rest.iter().map(|&d| x.shape()[d]));
    let (mut x, mut t) = (x.permute(&perm).reshape(&shape), t.permute(&perm).reshape(&shape));
    if n == 0 {
        return Tensor::zeros(&shape[1..], x.dtype());
    }
    while x.shape()[0] > 1 {
        let len = x.shape()[0];
        let half = len.div_ceil(2);
        let (x1, t1) = (x.slice(0, 0, half), t.slice(0, 0, half));
        let (mut x2, mut t2) = (x.slice(0, half, len), t.slice(0, half, len));
        if len % 2 == 1 {
            // The odd one out is paired with 1 (tangent 0).
            let mut one_shape = x2.shape().to_vec();
            one_shape[0] = 1;
            x2 = Tensor::concat(&[x2, Tensor::ones(&one_shape, x.dtype())], 0);
            t2 = t2.pad(&vec![0; t2.rank()], &pad_first(t2.rank()));
        }
        t = &t1 * &x2 + &x1 * &t2;
        x = &x1 * &x2;
    }
    t.squeeze(0)
}

/// One element of padding on the first axis and none on the others.
fn pad_first(rank: usize) -> Vec<usize> {
    (0..rank).map(|d| usize::from(d == 0)).collect()
}

/// The `arg_reduce` primitive: the index (i64) of the first maximum (`op`
/// = `Max`, named `argmax`) or minimum (`argmin`) along `axis`; a NaN
/// counts as the extreme.
#[derive(Clone, Debug)]
pub struct ArgReduce {
    /// `Max` or `Min`.
    pub op: ReduceOp,
    /// The axis searched.
    pub axis: usize,
}

impl SingleOutput for ArgReduce {
    fn name(&self) -> &'static str {
        match self.op {
            ReduceOp::Min => "argmin",
            ReduceOp::Max | ReduceOp::Sum | ReduceOp::Prod => "argmax",
        }
    }
    fn params(&self) -> Params {
        vec![("axis", Param::Usize(self.axis))]
    }
    fn kind(&self) -> Kind {
        Kind::ArgReduce(self.op)
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let name = SingleOutput::name(self);
        if !matches!(self.op, ReduceOp::Max | ReduceOp::Min) {
            panic!("arg_reduce: {} has no position of an extreme; use Max or Min", self.op);
        }
        let mut out = reduced_aval(name, ins[0], &[self.axis]);
        if ins[0].shape[self.axis] == 0 {
            panic!("{name}: axis {} of shape {:?} is empty; there is no extreme", self.axis, ins[0].shape);
        }
        out.dtype = DType::I64;
        out
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).arg_reduce(self.op, ins[0], self.axis)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        let (axes, bd) = reduce_axes(&[self.axis], axes);
        (bind(ArgReduce { op: self.op, axis: axes[0] }, &x[..1]), Some(bd))
    }
    fn jvp(&self, _x: &[Tensor], _t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        None // integer output
    }
}

impl Tensor {
    /// Sum over `axes`, which are removed from the shape (the primitive
    /// behind [`Tensor::sum_axes`]). A bool tensor is counted: its sum is i64.
    ///
    /// # Panics
    /// When an axis is out of range.
    #[track_caller]
    pub fn reduce_sum(&self, axes: &[usize]) -> Tensor {
        let x = if self.dtype() == DType::Bool { self.to_dtype(DType::I64) } else { self.clone() };
        if axes.is_empty() {
            return x;
        }
        bind(Reduce { op: ReduceOp::Sum, axes: axes.to_vec() }, &[x])
    }

    /// Product over `axes`, which are removed from the shape; a bool tensor
    /// is multiplied as i64. The derivative is exact with zeros in the input.
    ///
    /// # Panics
    /// When an axis is out of range.
    #[track_caller]
    pub fn reduce_prod(&self, axes: &[usize]) -> Tensor {
        let x = if self.dtype() == DType::Bool { self.to_dtype(DType::I64) } else { self.clone() };
        if axes.is_empty() {
            return x;
        }
        bind(Reduce { op: ReduceOp::Prod, axes: axes.to_vec() }, &[x])
    }

    /// Maximum over `axes`, which are removed from the shape. Over an empty
    /// axis it is the identity, -∞ (`i64::MIN`), where JAX raises: a
    /// deliberate difference, so that `logsumexp` and `softmax`, built on it,
    /// are defined for empty axes as JAX's are.
    ///
    /// # Panics
    /// When an axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn reduce_max(&self, axes: &[usize]) -> Tensor {
        if axes.is_empty() {
            return self.clone();
        }
        bind(Reduce { op: ReduceOp::Max, axes: axes.to_vec() }, std::slice::from_ref(self))
    }

    /// Minimum over `axes`, which are removed from the shape; +∞
    /// (`i64::MAX`) over an empty axis, as [`Tensor::reduce_max`].
    ///
    /// # Panics
    /// When an axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn reduce_min(&self, axes: &[usize]) -> Tensor {
        if axes.is_empty() {
            return self.clone();
        }
        bind(Reduce { op: ReduceOp::Min, axes: axes.to_vec() }, std::slice::from_ref(self))
    }

    /// Index of the first maximum along `axis` (removed from the shape), as
    /// i64; a NaN counts as the maximum.
    ///
    /// # Panics
    /// When the axis is out of range or empty.
    #[track_caller]
    pub fn argmax(&self, axis: usize) -> Tensor {
        bind(ArgReduce { op: ReduceOp::Max, axis }, std::slice::from_ref(self))
    }

    /// Index of the first minimum along `axis` (removed from the shape), as
    /// i64; a NaN counts as the minimum.
    ///
    /// # Panics
    /// When the axis is out of range or empty.
    #[track_caller]
    pub fn argmin(&self, axis: usize) -> Tensor {
        bind(ArgReduce { op: ReduceOp::Min, axis }, std::slice::from_ref(self))
    }
}
