//! Type promotion at the API, as JAX does it.
//!
//! Primitives take operands of one dtype; the public operations convert
//! their operands first. Two tensors meet at the least upper bound of their
//! dtypes ([`DType::promote`]). A Rust number is *weakly typed*: it takes
//! the tensor's dtype when that can hold its kind (`x_f32 * 2.0` stays f32,
//! `x_i64 + 1` stays i64) and otherwise the default of its kind (`x_i64 *
//! 0.5` is f64, `mask + 1` is i64). Float-only functions (`sin`, `ln`, …)
//! and true division promote integer and bool operands to f64.
//!
//! One deliberate difference from JAX: results are never weakly typed.
//! JAX keeps `ints * 2.0` weak, so adding an f32 tensor afterwards gives
//! f32; here `ints * 2.0` is an ordinary f64 tensor and the sum is f64.
//! Convert explicitly (`.to_dtype(DType::F32)`) where that matters.

use crate::array::DType;
use crate::core::Tensor;

/// A Rust number mixed into tensor arithmetic: weakly typed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// An integer, as from `x + 1`.
    Int(i64),
    /// A float, as from `x * 0.5`.
    Float(f64),
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Scalar {
        Scalar::Float(v)
    }
}

impl From<i64> for Scalar {
    fn from(v: i64) -> Scalar {
        Scalar::Int(v)
    }
}

impl Scalar {
    /// The dtype an operation of this number with a tensor of `dtype` runs in.
    pub fn result_dtype(self, dtype: DType) -> DType {
        match self {
            Scalar::Int(_) if dtype == DType::Bool => DType::I64,
            Scalar::Float(_) if !dtype.is_float() => DType::F64,
            _ => dtype,
        }
    }

    /// The number as a 0-d tensor of `dtype`.
    pub fn to_tensor(self, dtype: DType) -> Tensor {
        match self {
            // Through i64, so integers beyond 2^53 keep every digit.
            Scalar::Int(v) => Tensor::scalar(v).to_dtype(dtype),
            Scalar::Float(v) => Tensor::full(&[], v, dtype),
        }
    }
}

/// `x` and the number `s`, both in the dtype their operation runs in.
#[track_caller]
pub(crate) fn with_scalar(x: &Tensor, s: Scalar) -> (Tensor, Tensor) {
    let dtype = s.result_dtype(x.dtype());
    (x.to_dtype(dtype), s.to_tensor(dtype))
}

/// Both operands converted to their promoted dtype.
#[track_caller]
pub(crate) fn promote_pair(a: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
    let dtype = a.dtype().promote(b.dtype());
    (a.to_dtype(dtype), b.to_dtype(dtype))
}

/// Every operand converted to the dtype they all promote to.
#[track_caller]
pub(crate) fn promote_all(xs: &[Tensor]) -> Vec<Tensor> {
    let Some(first) = xs.first() else { return Vec::new() };
    let dtype = xs.iter().fold(first.dtype(), |d, x| d.promote(x.dtype()));
    xs.iter().map(|x| x.to_dtype(dtype)).collect()
}

/// `x` itself when it is a float tensor, else converted to f64 (JAX's
/// promotion of integer and bool operands of inexact functions).
#[track_caller]
pub(crate) fn inexact(x: &Tensor) -> Tensor {
    if x.dtype().is_float() {
        x.clone()
    } else {
        x.to_dtype(DType::F64)
    }
}
