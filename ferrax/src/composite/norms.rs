//! Vector and matrix norms, with subgradients where the norm has a kink.

use crate::core::Tensor;
use crate::prims::promote::inexact;
use crate::prims::reduce::keep_dims_shape;

use super::norm;

/// Which matrix norm [`Tensor::matrix_norm`] computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MatrixNorm {
    /// Frobenius: the square root of the sum of squares.
    Fro,
    /// The largest column sum of absolute values (`ord = 1`).
    MaxColumnSum,
    /// The smallest column sum of absolute values (`ord = -1`).
    MinColumnSum,
    /// The largest row sum of absolute values (`ord = inf`).
    MaxRowSum,
    /// The smallest row sum of absolute values (`ord = -inf`).
    MinRowSum,
    /// The largest singular value (`ord = 2`), from the SVD.
    Spectral,
    /// The smallest singular value (`ord = -2`), from the SVD.
    MinSingular,
    /// The sum of the singular values (`ord = 'nuc'`), from the SVD.
    Nuclear,
}

impl Tensor {
    /// The 2-norm of all elements, `√Σ x²` (jax.numpy's `linalg.norm` with
    /// no arguments). At 0 its derivative is 0 — a subgradient — where JAX
    /// gives NaN: a deliberate difference, so that a loss with a norm
    /// penalty trains through a zero vector.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// assert_eq!(Tensor::from_vec(vec![3.0, 4.0], &[2]).norm().item(), 5.0);
    /// let g = grad(|x: &Tensor| x.norm())(&Tensor::zeros(&[3], DType::F64));
    /// assert_eq!(g.to_vec::<f64>(), vec![0.0; 3]);
    /// ```
    #[track_caller]
    pub fn norm(&self) -> Tensor {
        let all: Vec<usize> = (0..self.rank()).collect();
        self.vector_norm(2.0, &all, false)
    }

    /// The vector `ord`-norm over `axes` (jax.numpy's `linalg.vector_norm`):
    /// `(Σ |x|^ord)^(1/ord)` for finite nonzero `ord`; the largest (`inf`) or
    /// smallest (`-inf`) absolute value; the count of nonzeros for `ord = 0`.
    /// Where the norm is 0 the derivative is 0 (see [`Tensor::norm`]); the
    /// 1-norm's derivative at a zero element is 1 (as `abs`'s), and ties of
    /// the inf-norm share it evenly.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![3.0, -4.0], &[2]);
    /// assert_eq!(x.vector_norm(1.0, &[0], false).item(), 7.0);
    /// assert_eq!(x.vector_norm(f64::INFINITY, &[0], false).item(), 4.0);
    /// ```
    ///
    /// # Panics
    /// When an axis is out of range or `ord` is NaN.
    #[track_caller]
    pub fn vector_norm(&self, ord: f64, axes: &[usize], keep_dims: bool) -> Tensor {
        if ord.is_nan() {
            panic!("vector_norm: ord is NaN; pass a number, f64::INFINITY or f64::NEG_INFINITY");
        }
        let x = inexact(self);
        let axes = norm(axes);
        let a = x.abs();
        let out = if ord == f64::INFINITY {
            a.reduce_max(&axes)
        } else if ord == f64::NEG_INFINITY {
            a.reduce_min(&axes)
        } else if ord == 0.0 {
            a.ne(&a.zeros_scalar()).to_dtype(x.dtype()).reduce_sum(&axes)
        } else if ord == 1.0 {
            a.reduce_sum(&axes)
        } else if ord == 2.0 {
            safe_root((&x * &x).reduce_sum(&axes), 2.0)
        } else {
            safe_root(a.powf(ord).reduce_sum(&axes), ord)
        };
        if keep_dims {
            out.reshape(&keep_dims_shape(x.shape(), &axes))
        } else {
            out
        }
    }

    /// A norm of the matrices in the last two axes (jax.numpy's
    /// `linalg.matrix_norm`). The spectral and nuclear norms need the SVD
    /// and are not here yet.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// # use ferrax::composite::MatrixNorm;
    /// let m = Tensor::from_vec(vec![1.0, -2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(m.matrix_norm(MatrixNorm::MaxColumnSum, false).item(), 6.0);
    /// assert_eq!(m.matrix_norm(MatrixNorm::MaxRowSum, false).item(), 7.0);
    /// ```
    ///
    /// # Panics
    /// When the tensor has fewer than two axes.
    #[track_caller]
    pub fn matrix_norm(&self, ord: MatrixNorm, keep_dims: bool) -> Tensor {
        let r = self.rank();
        if r < 2 {
            panic!("matrix_norm: expected a matrix (at least 2 axes), got shape {:?}", self.shape());
        }
        let (rows, cols) = (r - 2, r - 1);
        let x = inexact(self);
        let out = match ord {
            MatrixNorm::Fro => x.vector_norm(2.0, &[rows, cols], false),
            MatrixNorm::MaxColumnSum => x.abs().reduce_sum(&[rows]).reduce_max(&[rows]),
            MatrixNorm::MinColumnSum => x.abs().reduce_sum(&[rows]).reduce_min(&[rows]),
            MatrixNorm::MaxRowSum => x.abs().reduce_sum(&[cols]).reduce_max(&[rows]),
            MatrixNorm::MinRowSum => x.abs().reduce_sum(&[cols]).reduce_min(&[rows]),
            MatrixNorm::Spectral | MatrixNorm::MinSingular | MatrixNorm::Nuclear => {
                let s = crate::linalg::svd(&x, false).1;
                let last = s.rank() - 1;
                match ord {
                    MatrixNorm::Spectral => s.reduce_max(&[last]),
                    MatrixNorm::MinSingular => s.reduce_min(&[last]),
                    _ => s.reduce_sum(&[last]),
                }
            }
        };
        if keep_dims {
            out.reshape(&keep_dims_shape(x.shape(), &[rows, cols]))
        } else {
            out
        }
    }
}

/// `s^(1/p)` for `s >= 0`, with derivative 0 where `s` is 0 (instead of
/// `0 · ∞`): the root is taken of 1 there, and its result discarded.
fn safe_root(s: Tensor, p: f64) -> Tensor {
    let zero = s.eq(&s.zeros_scalar());
    let safe = zero.select(&Tensor::ones(&[], s.dtype()), &s);
    let root = if p == 2.0 { safe.sqrt() } else { safe.powf(1.0 / p) };
    zero.select(&s.zeros_scalar(), &root)
}
