//! Elementwise and reducing functions composed of primitives: clamping,
//! products and moments, stable log-sum forms, GELU, and norms.

use crate::array::DType;
use crate::core::Tensor;
use crate::prims::promote::{inexact, promote_pair};
use crate::prims::reduce::keep_dims_shape;

use super::norm;

impl Tensor {
    /// Each element limited to `[min, max]`: `minimum(maximum(x, min), max)`,
    /// as jax.numpy's `clip` (so at a bound the derivative is ½, and NaN
    /// stays NaN). An inherent method, so `Ord::clamp` never shadows it.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![-2.0, 0.5, 3.0], &[3]);
    /// assert_eq!(x.clamp(0.0, 1.0).to_vec::<f64>(), vec![0.0, 0.5, 1.0]);
    /// ```
    #[track_caller]
    pub fn clamp(&self, min: f64, max: f64) -> Tensor {
        let (lo, hi) = (Tensor::scalar(min), Tensor::scalar(max));
        let dtype = if self.dtype().is_float() { self.dtype() } else { DType::F64 };
        self.clip(&lo.to_dtype(dtype), &hi.to_dtype(dtype))
    }

    /// [`Tensor::clamp`] with tensor bounds that broadcast against `self`.
    ///
    /// # Panics
    /// When the shapes do not broadcast.
    #[track_caller]
    pub fn clip(&self, min: &Tensor, max: &Tensor) -> Tensor {
        self.maximum(min).minimum(max)
    }

    /// Product of all elements, as a 0-d tensor (1 for an empty tensor).
    #[track_caller]
    pub fn prod(&self) -> Tensor {
        let all: Vec<usize> = (0..self.rank()).collect();
        self.reduce_prod(&all)
    }

    /// Product over `axes`; with `keep_dims` they stay as size-1 axes. The
    /// derivative is exact with zeros in the input.
    ///
    /// # Panics
    /// When an axis is out of range.
    #[track_caller]
    pub fn prod_axes(&self, axes: &[usize], keep_dims: bool) -> Tensor {
        let axes = norm(axes);
        let p = self.reduce_prod(&axes);
        if keep_dims {
            p.reshape(&keep_dims_shape(self.shape(), &axes))
        } else {
            p
        }
    }

    /// Variance over `axes` (population variance, dividing by the count).
    ///
    /// # Panics
    /// When an axis is out of range.
    #[track_caller]
    pub fn var_axes(&self, axes: &[usize], keep_dims: bool) -> Tensor {
        self.var_axes_ddof(axes, 0, keep_dims)
    }

    /// Variance over `axes`, dividing by `count - ddof` (`ddof = 1` is the
    /// unbiased sample variance); NaN when `ddof` is at least the count.
    ///
    /// # Panics
    /// When an axis is out of range.
    #[track_caller]
    pub fn var_axes_ddof(&self, axes: &[usize], ddof: usize, keep_dims: bool) -> Tensor {
        let x = inexact(self);
        let axes = norm(axes);
        let count: usize = axes.iter().map(|&a| x.shape().get(a).copied().unwrap_or(1)).product();
        let centred = &x - x.mean_axes(&axes, true);
        // No degrees of freedom left: NaN, as JAX (numpy divides by zero and gives inf).
        let dof = if count > ddof { (count - ddof) as f64 } else { f64::NAN };
        (&centred * &centred).sum_axes(&axes, keep_dims) / dof
    }

    /// Variance of all elements.
    #[track_caller]
    pub fn var(&self) -> Tensor {
        let all: Vec<usize> = (0..self.rank()).collect();
        self.var_axes(&all, false)
    }

    /// Standard deviation over `axes` (the square root of [`Tensor::var_axes`]).
    ///
    /// # Panics
    /// When an axis is out of range.
    #[track_caller]
    pub fn std_axes(&self, axes: &[usize], keep_dims: bool) -> Tensor {
        self.var_axes(axes, keep_dims).sqrt()
    }

    /// Standard deviation over `axes`, dividing by `count - ddof`.
    ///
    /// # Panics
    /// When an axis is out of range.
    #[track_caller]
    pub fn std_axes_ddof(&self, axes: &[usize], ddof: usize, keep_dims: bool) -> Tensor {
        self.var_axes_ddof(axes, ddof, keep_dims).sqrt()
    }

    /// Standard deviation of all elements.
    #[track_caller]
    pub fn std(&self) -> Tensor {
        self.var().sqrt()
    }

    /// `ln(e^self + e^other)`, elementwise, without overflow: the larger
    /// argument plus `ln_1p(e^-|self - other|)`. Its derivative is the
    /// softmax weight of each argument, ½ each where they are equal. Where
    /// one argument is +∞ the derivative with respect to the other is 0
    /// (JAX's rule gives `e^b` there, from replacing ∞ by 0 inside it).
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let a = Tensor::from_vec(vec![1000.0, f64::NEG_INFINITY], &[2]);
    /// let got = a.logaddexp(&Tensor::from_vec(vec![1000.0, f64::NEG_INFINITY], &[2]));
    /// assert_eq!(got.to_vec::<f64>(), vec![1000.0 + std::f64::consts::LN_2, f64::NEG_INFINITY]);
    /// ```
    ///
    /// # Panics
    /// When the shapes do not broadcast.
    #[track_caller]
    pub fn logaddexp(&self, other: &Tensor) -> Tensor {
        let (a, b) = promote_pair(self, other);
        let (a, b) = (inexact(&a), inexact(&b));
        let d = &a - &b;
        // The branch at d = 0 and abs'(0) = 1 make the two halves ½ each.
        let larger = d.ge(&d.zeros_scalar()).select(&a, &b);
        let stable = larger + (-d.abs()).exp().ln_1p();
        // d is NaN for infinities of one sign (and for NaN inputs): a + b is then the answer.
        d.ne(&d).select(&(&a + &b), &stable)
    }

    /// `ln σ(x) = -softplus(-x)`, elementwise, without overflow.
    #[track_caller]
    pub fn log_sigmoid(&self) -> Tensor {
        -(-inexact(self)).softplus()
    }
}
