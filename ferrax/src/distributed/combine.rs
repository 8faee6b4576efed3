//! The arithmetic of collectives on the ranks' arrays, the same on every
//! rank and for every transport that gathers the operands.

use crate::array::{backend, Array, BinaryOp, DType, Device};

use super::{CommError, Reduction};

fn mismatch(op: &str, all: &[Array]) -> Option<CommError> {
    let first = all[0].aval();
    all.iter().position(|a| a.aval() != first).map(|r| CommError::Operands {
        op: op.into(),
        why: format!("rank 0 gives {first} but rank {r} gives {}", all[r].aval()),
    })
}

/// The elementwise reduction of the arrays, in rank order.
pub(super) fn reduce(all: &[Array], op: Reduction) -> Result<Array, CommError> {
    if let Some(e) = mismatch("all_reduce", all) {
        return Err(e);
    }
    let cpu = backend(Device::Cpu);
    let dtype = all[0].dtype();
    let binary = match op {
        Reduction::Sum | Reduction::Mean => BinaryOp::Add,
        Reduction::Max => BinaryOp::Max,
    };
    if dtype == DType::Bool || (op == Reduction::Mean && !dtype.is_float()) {
        return Err(CommError::Operands {
            op: "all_reduce".into(),
            why: format!("cannot take the {op:?} of {dtype} arrays"),
        });
    }
    // Half precision is combined in f32 and rounded once, as MPI's ranks do.
    let wide = |a: &Array| if dtype.is_half() { a.to_dtype(DType::F32) } else { a.clone() };
    let mut acc = wide(&all[0]);
    for a in &all[1..] {
        acc = cpu.binary(binary, &acc, &wide(a));
    }
    if op == Reduction::Mean {
        let n = Array::full(&[], all.len() as f64, acc.dtype());
        acc = cpu.binary(BinaryOp::Div, &acc, &n);
    }
    Ok(acc.to_dtype(dtype))
}

/// The arrays concatenated along `axis`.
pub(super) fn gather(all: &[Array], axis: usize) -> Result<Array, CommError> {
    if let Some(e) = mismatch("all_gather", all) {
        return Err(e);
    }
    if axis >= all[0].rank() {
        return Err(CommError::Operands {
            op: "all_gather".into(),
            why: format!("axis {axis} is out of range for {}", all[0].aval()),
        });
    }
    Ok(crate::array::concat(&all.iter().collect::<Vec<_>>(), axis))
}

/// The `rank`-th of `size` equal slices of `x` along `axis`.
pub(super) fn scatter(x: &Array, axis: usize, rank: usize, size: usize) -> Result<Array, CommError> {
    let n = x.shape().get(axis).copied();
    let Some(n) = n.filter(|n| n % size == 0) else {
        return Err(CommError::Operands {
            op: "reduce_scatter".into(),
            why: format!("axis {axis} of {} does not split into {size} equal parts", x.aval()),
        });
    };
    let part = n / size;
    let mut starts = vec![0; x.rank()];
    let mut ends = x.shape().to_vec();
    starts[axis] = rank * part;
    ends[axis] = (rank + 1) * part;
    Ok(crate::array::slice(x, &starts, &ends))
}
