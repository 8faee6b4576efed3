//! Every primitive, with a sample instance: what the gradient-check and
//! vmap tables enumerate, so a primitive without a row is found without
//! reading source text.

use std::sync::Arc;

use crate::array::{CompareOp, DType, Device, IndexMode, ReduceOp};
use crate::core::Primitive;
use crate::linalg::{Cholesky, Eigh, Lu, LuSolve, Qr, Svd, TriangularSolve};

use super::binary::{Add, Atan2, Compare, Div, FloorDiv, Max, Min, Mul, Pow, Rem, Select, Sub};
use super::conv::{Conv, ConvInputGrad, ConvKernelGrad, WindowArgExtreme};
use super::indexing::{Argsort, Gather, ScatterAdd, Sort};
use super::linalg::Matmul;
use super::norm::{Softmax, SoftmaxTangent, Standardize, StandardizeTangent};
use super::reduce::{ArgReduce, Reduce};
use super::scan::Scan;
use super::structural::{Broadcast, Concat, Convert, DevicePut, Pad, Permute, Reshape, Rev, Slice, StopGradient};
use super::unary::{
    Abs, Acos, Acosh, Asin, Asinh, Atan, Atanh, Ceil, Cos, Cosh, Erf, Erfc, Erfinv, Exp, Exp2, ExpM1, Floor, Gelu,
    GeluGrad, GeluTanh, GeluTanhGrad, Ln, Ln1p, Log10, Log2, Logistic, Neg, PowI, Relu, Round, Signum, Sin, Sinh,
    Softplus, Sqrt, Tan, Tanh, Trunc,
};

/// One instance of every primitive of `prims` (one per op for the families
/// that take an op: each reduction, each comparison), with sample parameters.
pub fn all() -> Vec<Arc<dyn Primitive>> {
    let mut all: Vec<Arc<dyn Primitive>> = vec![
        Arc::new(Sin),
        Arc::new(Cos),
        Arc::new(Tan),
        Arc::new(Asin),
        Arc::new(Acos),
        Arc::new(Atan),
        Arc::new(Sinh),
        Arc::new(Cosh),
        Arc::new(Tanh),
        Arc::new(Asinh),
        Arc::new(Acosh),
        Arc::new(Atanh),
        Arc::new(Exp),
        Arc::new(Exp2),
        Arc::new(ExpM1),
        Arc::new(Ln),
        Arc::new(Ln1p),
        Arc::new(Log2),
        Arc::new(Log10),
        Arc::new(Sqrt),
        Arc::new(Logistic),
        Arc::new(Erf),
        Arc::new(Erfc),
        Arc::new(Erfinv),
        Arc::new(Gelu),
        Arc::new(GeluGrad),
        Arc::new(GeluTanh),
        Arc::new(GeluTanhGrad),
        Arc::new(Softplus),
        Arc::new(Floor),
        Arc::new(Ceil),
        Arc::new(Round),
        Arc::new(Trunc),
        Arc::new(Relu),
        Arc::new(Neg),
        Arc::new(Abs),
        Arc::new(Signum),
        Arc::new(PowI { n: 2 }),
        Arc::new(Add),
        Arc::new(Sub),
        Arc::new(Mul),
        Arc::new(Div),
        Arc::new(Rem),
        Arc::new(FloorDiv),
        Arc::new(Max),
        Arc::new(Min),
        Arc::new(Pow),
        Arc::new(Atan2),
        Arc::new(Select),
        Arc::new(Broadcast { shape: vec![2, 3] }),
        Arc::new(Reshape { shape: vec![6] }),
        Arc::new(Permute { perm: vec![1, 0] }),
        Arc::new(Slice { starts: vec![0], ends: vec![1] }),
        Arc::new(Pad { lo: vec![1], hi: vec![0] }),
        Arc::new(Rev { axes: vec![0] }),
        Arc::new(Concat { axis: 0 }),
        Arc::new(Convert { dtype: DType::F32 }),
        Arc::new(StopGradient),
        Arc::new(DevicePut { device: Device::Cpu }),
        Arc::new(Gather { axis: 0, mode: IndexMode::Fill }),
        Arc::new(ScatterAdd { axis: 0, mode: IndexMode::Fill }),
        Arc::new(Argsort { axis: 0, descending: false }),
        Arc::new(Sort { axis: 0, descending: false }),
        Arc::new(Matmul::default()),
        Arc::new(Cholesky),
        Arc::new(TriangularSolve { lower: true, transpose: false, unit: false }),
        Arc::new(Lu),
        Arc::new(LuSolve { transpose: false }),
        Arc::new(Eigh),
        Arc::new(Qr { full: false }),
        Arc::new(Svd { full: false }),
        Arc::new(Conv { geometry: crate::array::ConvGeometry::unit(2), groups: 1 }),
        Arc::new(Standardize { axes: 1, eps: 1e-5 }),
        Arc::new(StandardizeTangent { axes: 1, eps: 1e-5 }),
        Arc::new(Softmax { axes: 1 }),
        Arc::new(SoftmaxTangent { axes: 1 }),
        Arc::new(ConvKernelGrad { geometry: crate::array::ConvGeometry::unit(2), groups: 1, window: vec![3, 3] }),
        Arc::new(ConvInputGrad { geometry: crate::array::ConvGeometry::unit(2), groups: 1, input: vec![5, 5] }),
    ];
    for op in CompareOp::ALL {
        all.push(Arc::new(Compare { op }));
    }
    for op in ReduceOp::ALL {
        all.push(Arc::new(Reduce { op, axes: vec![0] }));
        all.push(Arc::new(Scan { op, axis: 0, reverse: false }));
    }
    for op in [ReduceOp::Max, ReduceOp::Min] {
        all.push(Arc::new(ArgReduce { op, axis: 0 }));
        all.push(Arc::new(WindowArgExtreme { op, window: vec![2], strides: vec![2], padding: vec![(0, 0)] }));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::{BinaryOp, UnaryOp};
    use crate::core::Kind;

    /// Every op of the vocabulary is some primitive's: an op added to the
    /// kernel table without a primitive (or the reverse) fails here.
    #[test]
    fn every_op_has_a_primitive() {
        let kinds: Vec<Kind> = all().iter().map(|p| p.kind()).collect();
        for op in UnaryOp::ALL {
            let found = kinds
                .iter()
                .any(|k| matches!(k, Kind::Unary(o) if std::mem::discriminant(o) == std::mem::discriminant(&op)));
            assert!(found, "{op:?} has no primitive in the registry");
        }
        for op in BinaryOp::ALL {
            assert!(kinds.contains(&Kind::Binary(op)), "{op:?} has no primitive in the registry");
        }
        for op in ReduceOp::ALL {
            assert!(kinds.contains(&Kind::Reduce(op)) && kinds.contains(&Kind::Scan(op)), "{op:?}");
        }
    }

    #[test]
    fn names_and_parameters_identify_primitives() {
        let all = all();
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert_eq!(**a == **b, i == j, "{} and {}", crate::core::label(&**a), crate::core::label(&**b));
            }
        }
    }
}
