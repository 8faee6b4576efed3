//! The primitives. Each is one type whose `impl Primitive` holds all of its
//! rules; families share a file. The public `Tensor` method that binds a
//! primitive lives beside it.
//!
//! Conventions at kinks follow JAX: `abs'(0) = 1`, ties of `maximum`,
//! `minimum` and `reduce_max`/`reduce_min` split the derivative evenly, and
//! `d/dx x^y` at `(0, 0)` is NaN.

pub mod batching;
pub mod binary;
pub mod conv;
pub mod indexing;
pub mod linalg;
pub mod norm;
pub mod promote;
pub mod reduce;
pub mod registry;
pub mod scan;
pub mod structural;
pub mod unary;

use crate::array::{broadcast_shapes, Aval, DType};
use crate::core::{Lin, Tensor};

pub use binary::{where_, Add, Atan2, CmpOp, Compare, Div, FloorDiv, Max, Min, Mul, Pow, Rem, Select, Sub};
pub use conv::{Conv, ConvInputGrad, ConvKernelGrad, ConvOptions, Padding, WindowArgExtreme};
pub use indexing::{Argsort, Gather, ScatterAdd, Sort};
pub use linalg::Matmul;
pub use norm::{Softmax, SoftmaxTangent, Standardize, StandardizeTangent};
pub use promote::Scalar;
pub use reduce::{ArgReduce, Reduce};
pub use registry::all;
pub use scan::{associative_scan, Scan};
pub use structural::{Broadcast, Concat, Convert, DevicePut, Pad, Permute, Reshape, Rev, Slice, StopGradient};
pub use unary::{
    Abs, Acos, Acosh, Asin, Asinh, Atan, Atanh, Ceil, Cos, Cosh, Erf, Erfc, Erfinv, Exp, Exp2, ExpM1, Floor, Gelu,
    GeluGrad, GeluTanh, GeluTanhGrad, Ln, Ln1p, Log10, Log2, Logistic, Neg, PowI, Relu, Round, Signum, Sin, Sinh,
    Softplus, Sqrt, Tan, Tanh, Trunc,
};

/// Panics unless `a` is a float dtype.
#[track_caller]
pub(crate) fn expect_float(op: &str, a: &Aval) {
    if !a.dtype.is_float() {
        panic!("{op}: expected a float tensor, got {}; convert it with .to_dtype(DType::F64)", a.dtype);
    }
}

/// Panics unless `a` is numeric (not bool).
#[track_caller]
pub(crate) fn expect_numeric(op: &str, a: &Aval) {
    if a.dtype == DType::Bool {
        panic!("{op}: expected a numeric tensor, got bool; convert it with .to_dtype(DType::F64)");
    }
}

/// Panics unless both avals share a dtype.
#[track_caller]
pub(crate) fn expect_same_dtype(op: &str, a: &Aval, b: &Aval) {
    if a.dtype != b.dtype {
        panic!("{op}: dtypes differ: {} and {}; convert one with .to_dtype(DType::{:?})", a.dtype, b.dtype, a.dtype);
    }
}

/// The broadcast shape of `a` and `b`, or a panic naming both.
#[track_caller]
pub(crate) fn broadcast_or_panic(op: &str, a: &[usize], b: &[usize]) -> Vec<usize> {
    // A `match`, not `unwrap_or_else`: a panic inside a closure would report
    // this file instead of the caller's line.
    match broadcast_shapes(a, b) {
        Some(shape) => shape,
        None => panic!(
            "{op}: cannot broadcast shapes {a:?} and {b:?}; dimensions must be equal or 1, \
             aligned from the right (reshape or expand_dims one of them)"
        ),
    }
}

/// Panics unless an axis is within `rank`.
#[track_caller]
pub(crate) fn expect_axis(op: &str, axis: usize, shape: &[usize]) {
    if axis >= shape.len() {
        panic!("{op}: axis {axis} is out of range for shape {shape:?} (rank {})", shape.len());
    }
}

/// The sum of two optional tangents, `None` being zero.
pub(crate) fn add_tangents(a: Option<Tensor>, b: Option<Tensor>) -> Option<Tensor> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A tangent broadcast to the output's shape when it is not already.
pub(crate) fn to_shape(t: Tensor, shape: &[usize]) -> Tensor {
    if crate::array::same_shape(t.shape(), shape) {
        t
    } else {
        t.broadcast_to(shape)
    }
}

/// A cotangent of a broadcast result summed back to the shape of the input
/// that was broadcast: over the leading axes it lacked and the axes where it
/// had size 1.
pub(crate) fn unbroadcast(ct: &Tensor, shape: &[usize]) -> Tensor {
    if crate::array::same_shape(ct.shape(), shape) {
        return ct.clone();
    }
    let lead = ct.rank() - shape.len();
    let axes: Vec<usize> =
        (0..ct.rank()).filter(|&d| d < lead || (shape[d - lead] == 1 && ct.shape()[d] != 1)).collect();
    ct.reduce_sum(&axes).reshape(shape)
}

/// The cotangent for input `lin` when it is linear (`None` for a constant).
pub(crate) fn if_linear(lin: &Lin, ct: impl FnOnce(&Aval) -> Tensor) -> Option<Tensor> {
    match lin {
        Lin::Linear(aval) => Some(ct(aval)),
        Lin::Const(_) => None,
    }
}

/// The value of an input that a transpose rule needs to be constant.
#[track_caller]
pub(crate) fn constant<'a>(op: &str, lin: &'a Lin) -> &'a Tensor {
    match lin.value() {
        Some(v) => v,
        None => panic!("{}", crate::core::context::not_linear_in_operand(op, "both operands")),
    }
}

/// A tangent, or a scalar zero of `like`'s dtype standing for a symbolic zero.
pub(crate) fn or_zero(t: Option<&Tensor>, like: &Tensor) -> Tensor {
    t.cloned().unwrap_or_else(|| Tensor::zeros(&[], like.dtype()))
}
