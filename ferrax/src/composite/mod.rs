//! Tensor functions built from primitives. They have no derivative rules of
//! their own: differentiation sees only the primitives they are made of.

mod einsum;
mod indexing;
mod math;
mod norms;
mod pool;

pub use einsum::einsum;
pub use norms::MatrixNorm;

use crate::array::DType;
use crate::core::Tensor;
use crate::prims::promote::inexact;
use crate::prims::reduce::keep_dims_shape;

/// Sorted, de-duplicated axes.
fn norm(axes: &[usize]) -> Vec<usize> {
    let mut a = axes.to_vec();
    a.sort_unstable();
    a.dedup();
    a
}

impl Tensor {
    /// Sum of all elements, as a 0-d tensor.
    #[track_caller]
    pub fn sum(&self) -> Tensor {
        let all: Vec<usize> = (0..self.rank()).collect();
        self.reduce_sum(&all)
    }

    /// Sum over `axes`; with `keep_dims` they stay as size-1 axes.
    ///
    /// # Panics
    /// When an axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn sum_axes(&self, axes: &[usize], keep_dims: bool) -> Tensor {
        let axes = norm(axes);
        let s = self.reduce_sum(&axes);
        if keep_dims {
            s.reshape(&keep_dims_shape(self.shape(), &axes))
        } else {
            s
        }
    }

    /// Mean of all elements, as a 0-d tensor (f64 for an integer or bool tensor).
    #[track_caller]
    pub fn mean(&self) -> Tensor {
        let all: Vec<usize> = (0..self.rank()).collect();
        self.mean_axes(&all, false)
    }

    /// Mean over `axes`; with `keep_dims` they stay as size-1 axes. The
    /// mean of an integer or bool tensor is f64; of an empty axis, NaN.
    ///
    /// # Panics
    /// When an axis is out of range.
    #[track_caller]
    pub fn mean_axes(&self, axes: &[usize], keep_dims: bool) -> Tensor {
        let axes = norm(axes);
        let count: usize = axes.iter().map(|&a| self.shape().get(a).copied().unwrap_or(1)).product();
        inexact(self).sum_axes(&axes, keep_dims) / count as f64
    }

    /// Maximum over `axes`; with `keep_dims` they stay as size-1 axes.
    /// Ties share the derivative evenly. Over an empty axis it is -∞ (or
    /// the integer type's least value), [`Tensor::reduce_max`]'s identity,
    /// where JAX raises.
    ///
    /// # Panics
    /// When an axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn max_axes(&self, axes: &[usize], keep_dims: bool) -> Tensor {
        let axes = norm(axes);
        let m = self.reduce_max(&axes);
        if keep_dims {
            m.reshape(&keep_dims_shape(self.shape(), &axes))
        } else {
            m
        }
    }

    /// Minimum over `axes`; with `keep_dims` they stay as size-1 axes. Over
    /// an empty axis it is +∞ (or the integer type's greatest value), where
    /// JAX raises.
    ///
    /// # Panics
    /// When an axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn min_axes(&self, axes: &[usize], keep_dims: bool) -> Tensor {
        let axes = norm(axes);
        let m = self.reduce_min(&axes);
        if keep_dims {
            m.reshape(&keep_dims_shape(self.shape(), &axes))
        } else {
            m
        }
    }

    /// Maximum of all elements, as a 0-d tensor (-∞ when there are none,
    /// as [`Tensor::max_axes`]).
    #[track_caller]
    pub fn max(&self) -> Tensor {
        let all: Vec<usize> = (0..self.rank()).collect();
        self.reduce_max(&all)
    }

    /// Minimum of all elements, as a 0-d tensor (+∞ when there are none).
    #[track_caller]
    pub fn min(&self) -> Tensor {
        let all: Vec<usize> = (0..self.rank()).collect();
        self.reduce_min(&all)
    }

    /// `ln(Σ exp(x))` over `axes`, computed without overflow: the maximum is
    /// subtracted first (as a constant, which leaves the derivative exact).
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![1000.0, 1001.0, 1002.0], &[3]);
    /// assert!((x.logsumexp_axes(&[0], false).item() - 1002.40760596).abs() < 1e-6);
    /// ```
    ///
    /// # Panics
    /// When an axis is out of range or the tensor is not a float tensor.
    #[track_caller]
    pub fn logsumexp_axes(&self, axes: &[usize], keep_dims: bool) -> Tensor {
        let x = inexact(self);
        let axes = &norm(axes);
        // The shift is a constant to differentiation; taking the maximum of a
        // stopped value keeps max's own derivative rule from running at all.
        let m = x.stop_gradient().max_axes(axes, true);
        // A slice of all -inf (or an infinite maximum) must not produce inf - inf.
        let finite = m.abs().lt(&Tensor::full(&[], f64::INFINITY, x.dtype()));
        let m = finite.select(&m, &m.zeros_scalar());
        let s = (&x - &m).exp().sum_axes(axes, true).ln() + &m;
        if keep_dims {
            s
        } else {
            s.reshape(&crate::array::reduce_shape(x.shape(), axes))
        }
    }

    /// `ln(Σ exp(x))` over all elements.
    #[track_caller]
    pub fn logsumexp(&self) -> Tensor {
        let all: Vec<usize> = (0..self.rank()).collect();
        self.logsumexp_axes(&all, false)
    }

    /// Softmax along `axis`: `exp(x) / Σ exp(x)`, computed without overflow.
    ///
    /// The exponentials are multiplied by the reciprocal of their sum, as
    /// PyTorch's CPU kernel does; JAX divides by the sum, so the two can
    /// differ in the last bit. The product makes the backward pass cheaper.
    ///
    /// # Panics
    /// When the axis is out of range or the tensor is not a float tensor.
    #[track_caller]
    pub fn softmax(&self, axis: usize) -> Tensor {
        let x = inexact(self);
        if axis + 1 == x.rank() {
            // One primitive, a kernel a pass (and the same values as below).
            return crate::prims::Softmax { axes: 1 }.apply(&x);
        }
        let e = (&x - x.stop_gradient().max_axes(&[axis], true)).exp();
        // Times the reciprocal of the sum, as PyTorch's kernels do: one
        // division per row, and a backward pass through a product rather
        // than a quotient (whose denominator's rule costs three passes).
        &e * e.sum_axes(&[axis], true).recip()
    }

    /// `ln(softmax(x))` along `axis`, computed as `x - logsumexp(x)`.
    ///
    /// # Panics
    /// When the axis is out of range or the tensor is not a float tensor.
    #[track_caller]
    pub fn log_softmax(&self, axis: usize) -> Tensor {
        let x = inexact(self);
        &x - x.logsumexp_axes(&[axis], true)
    }

    /// The logistic sigmoid `1 / (1 + e^-x)`.
    #[track_caller]
    pub fn sigmoid(&self) -> Tensor {
        self.logistic()
    }

    /// SiLU (swish), `x σ(x)`.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// assert_eq!(Tensor::scalar(0.0).silu().item(), 0.0);
    /// ```
    #[track_caller]
    pub fn silu(&self) -> Tensor {
        let x = inexact(self);
        &x * x.logistic()
    }

    /// `x * x`.
    #[track_caller]
    pub fn square(&self) -> Tensor {
        self * self
    }

    /// `1 / x`.
    #[track_caller]
    pub fn recip(&self) -> Tensor {
        1.0 / self
    }

    /// `self && other`, elementwise, for bool tensors (broadcasting): what a
    /// loop's condition combines its tests with.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let a = Tensor::from_vec(vec![true, true, false], &[3]);
    /// let b = Tensor::from_vec(vec![true, false, false], &[3]);
    /// assert_eq!(a.logical_and(&b).to_vec::<bool>(), vec![true, false, false]);
    /// assert_eq!(a.logical_or(&b).to_vec::<bool>(), vec![true, true, false]);
    /// assert_eq!(a.logical_not().to_vec::<bool>(), vec![false, false, true]);
    /// ```
    ///
    /// # Panics
    /// When either operand is not bool, or the shapes do not broadcast.
    #[track_caller]
    pub fn logical_and(&self, other: &Tensor) -> Tensor {
        expect_bools("logical_and", self, other);
        self.select(other, &Tensor::scalar(false))
    }

    /// `self || other`, elementwise, for bool tensors (broadcasting).
    ///
    /// # Panics
    /// When either operand is not bool, or the shapes do not broadcast.
    #[track_caller]
    pub fn logical_or(&self, other: &Tensor) -> Tensor {
        expect_bools("logical_or", self, other);
        self.select(&Tensor::scalar(true), other)
    }

    /// `!self`, elementwise, for a bool tensor.
    ///
    /// # Panics
    /// When the tensor is not bool.
    #[track_caller]
    pub fn logical_not(&self) -> Tensor {
        expect_bools("logical_not", self, self);
        self.select(&Tensor::scalar(false), &Tensor::scalar(true))
    }

    /// One-hot rows: an integer tensor of class indices `[..]` becomes
    /// `[.., classes]` of `dtype`, with a 1 at each index.
    ///
    /// # Panics
    /// When the tensor is not i64.
    #[track_caller]
    pub fn one_hot(&self, classes: usize, dtype: DType) -> Tensor {
        assert!(
            self.dtype() == DType::I64,
            "one_hot: expected i64 class indices, got {}; convert them with .to_dtype(DType::I64)",
            self.dtype()
        );
        self.expand_dims(self.rank()).eq(&Tensor::arange(classes, DType::I64)).to_dtype(dtype)
    }
}

#[track_caller]
fn expect_bools(op: &str, a: &Tensor, b: &Tensor) {
    if a.dtype() != DType::Bool || b.dtype() != DType::Bool {
        panic!(
            "{op}: needs bool tensors, got {} and {}; compare first (gt, eq, ...) to get bools",
            a.dtype(),
            b.dtype()
        );
    }
}
