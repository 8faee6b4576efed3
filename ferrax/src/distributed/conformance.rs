//! A check of a [`Communicator`] against the rules its docs state, for the
//! transports ferrax ships and for one a user writes (NCCL, a cluster's own).

use crate::array::{Array, DType};
use crate::core::Tensor;

use super::{CommError, Communicator, Reduction};

/// Rank `rank`'s operand of `len` elements for check `case`: random
/// quarters, with -0 or +0 (by the rank's parity) at 1 and NaN on the last
/// rank at 2, so that maxima meet both zeros and a NaN. Every rank makes
/// every rank's, to compute the expected result itself.
fn operand(rank: usize, size: usize, case: u64, len: usize, dtype: DType) -> Tensor {
    let mut v = Tensor::randn(&[len], DType::F64, 1000 * case + rank as u64).to_vec::<f64>();
    v.iter_mut().for_each(|x| *x = (*x * 50.0).round() / 4.0);
    if dtype.is_float() && len > 2 {
        v[1] = if rank % 2 == 0 { -0.0 } else { 0.0 };
        v[2] = if rank + 1 == size { f64::NAN } else { 1.0 };
    }
    if dtype == DType::Bool {
        return Tensor::from_vec(v.iter().map(|&x| x > 0.0).collect::<Vec<_>>(), &[len]);
    }
    Tensor::from_vec(v, &[len]).to_dtype(dtype)
}

/// The rank-order fold of every rank's operand that `all_reduce` promises:
/// half precision in f32, rounded once; a mean divides the sum.
fn fold(size: usize, case: u64, len: usize, dtype: DType, op: Reduction) -> Tensor {
    let wide = if dtype.is_half() { DType::F32 } else { dtype };
    let mut acc = operand(0, size, case, len, dtype).to_dtype(wide);
    for r in 1..size {
        let x = operand(r, size, case, len, dtype).to_dtype(wide);
        acc = if op == Reduction::Max { acc.maximum(&x) } else { acc + x };
    }
    if op == Reduction::Mean {
        acc = acc / size as f64;
    }
    acc.to_dtype(dtype)
}

/// `Ok` when `got` holds `want`'s dtype, shape and bits (NaNs included).
fn same(what: &str, got: &Array, want: &Tensor) -> Result<(), String> {
    if got.dtype() != want.dtype() || got.shape() != want.shape() {
        return Err(format!("{what} gave {}, not {}", got.aval(), want.to_array().aval()));
    }
    let got = Tensor::from_array(got.clone()).to_dtype(DType::F64).to_vec::<f64>();
    let want = want.to_dtype(DType::F64).to_vec::<f64>();
    match (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        Some(i) => Err(format!("{what} gave {} at {i}, not {}", got[i], want[i])),
        None => Ok(()),
    }
}

/// Checks `comm`'s collectives on every rank of its group (every rank
/// calls it at once), against results each rank computes itself:
/// - `all_reduce` of every reduction and dtype, bit for bit against the
///   fold of the ranks' operands in rank order (half precision folded in
///   f32; ±0 and NaN under the maximum), for lengths from 0 to 40 000;
/// - `all_reduce_many` of five arrays of different shapes (an empty one and
///   a scalar among them), each result as `all_reduce` of its array;
/// - `all_reduce_owned` of the same arrays, two given up and three also
///   held by the caller, which must find those three as they were;
/// - `broadcast`, `all_gather` and `reduce_scatter` of every dtype they take;
/// - with `checks_operands`, that an all-reduce of operands of different
///   lengths fails with [`CommError::Operands`] on every rank, and so does
///   an `all_reduce_many` of arrays of different lengths in all, or of
///   different dtypes.
///
/// # Errors
/// The first collective whose result differs, or which failed.
///
/// ```
/// use std::sync::Arc;
/// use ferrax::distributed::{check_collectives, ThreadGroup};
///
/// std::thread::scope(|s| {
///     for comm in ThreadGroup::new(2) {
///         s.spawn(move || check_collectives(&comm, true).unwrap());
///     }
/// });
/// ```
pub fn check_collectives(comm: &dyn Communicator, checks_operands: bool) -> Result<(), String> {
    let (rank, size) = (comm.rank(), comm.size());
    let failed = |what: String| move |e: CommError| format!("{what}: {e}");
    let mut case = 0;
    for len in [0, 1, 7, 1001, 40_000, 3] {
        for dtype in [DType::F32, DType::F64, DType::I64, DType::F16, DType::BF16] {
            for op in [Reduction::Sum, Reduction::Mean, Reduction::Max] {
                if op == Reduction::Mean && !dtype.is_float() {
                    continue;
                }
                case += 1;
                let what = format!("all_reduce {op:?} of {len} {dtype}");
                let x = operand(rank, size, case, len, dtype).to_array();
                let got = comm.all_reduce(&x, op).map_err(failed(what.clone()))?;
                same(&what, &got, &fold(size, case, len, dtype, op))?;
            }
        }
    }
    let shapes: [&[usize]; 5] = [&[2, 3], &[0], &[1001], &[7, 1, 5], &[]];
    for dtype in [DType::F32, DType::F64, DType::I64, DType::F16, DType::BF16] {
        for op in [Reduction::Sum, Reduction::Mean, Reduction::Max] {
            if op == Reduction::Mean && !dtype.is_float() {
                continue;
            }
            let what = format!("all_reduce_many {op:?} of {dtype} arrays of shapes {shapes:?}");
            let first = case + 1;
            let xs: Vec<Array> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| operand(rank, size, first + i as u64, s.iter().product(), dtype).reshape(s).to_array())
                .collect();
            case += shapes.len() as u64;
            let got = comm.all_reduce_many(&xs.iter().collect::<Vec<_>>(), op).map_err(failed(what.clone()))?;
            if got.len() != shapes.len() {
                return Err(format!("{what} gave {} arrays", got.len()));
            }
            for (i, (got, s)) in got.iter().zip(shapes).enumerate() {
                let want = fold(size, first + i as u64, s.iter().product(), dtype, op).reshape(s);
                same(&format!("{what}, array {i}"), got, &want)?;
            }
            // The same operands given up, but for three the caller keeps:
            // those must not be written over.
            let what = what.replace("all_reduce_many", "all_reduce_owned");
            let operand_of = |i: usize| operand(rank, size, first + i as u64, shapes[i].iter().product(), dtype);
            let kept: Vec<(usize, Array)> = [1, 3, 4].map(|i| (i, xs[i].clone())).into();
            drop(xs);
            let given = (0..shapes.len())
                .map(|i| match kept.iter().find(|k| k.0 == i) {
                    Some((_, x)) => x.clone(),
                    None => operand_of(i).reshape(shapes[i]).to_array(),
                })
                .collect();
            let got = comm.all_reduce_owned(given, op).map_err(failed(what.clone()))?;
            if got.len() != shapes.len() {
                return Err(format!("{what} gave {} arrays", got.len()));
            }
            for (i, (got, s)) in got.iter().zip(shapes).enumerate() {
                let want = fold(size, first + i as u64, s.iter().product(), dtype, op).reshape(s);
                same(&format!("{what}, array {i}"), got, &want)?;
            }
            for (i, x) in &kept {
                same(&format!("{what}: the caller's array {i} afterwards"), x, &operand_of(*i).reshape(shapes[*i]))?;
            }
        }
    }
    for dtype in [DType::F32, DType::F64, DType::I64, DType::F16, DType::BF16, DType::Bool] {
        case += 1;
        let what = format!("broadcast of {dtype}");
        let x = operand(rank, size, case, 5, dtype).to_array();
        let got = comm.broadcast(&x, size - 1).map_err(failed(what.clone()))?;
        same(&what, &got, &operand(size - 1, size, case, 5, dtype))?;

        let what = format!("all_gather of {dtype}");
        let got = comm.all_gather(&x, 0).map_err(failed(what.clone()))?;
        let all: Vec<Tensor> = (0..size).map(|r| operand(r, size, case, 5, dtype)).collect();
        same(&what, &got, &Tensor::concat(&all, 0))?;

        if dtype == DType::Bool {
            continue;
        }
        let what = format!("reduce_scatter of {dtype}");
        let x = operand(rank, size, case, 3 * size, dtype).to_array();
        let got = comm.reduce_scatter(&x, 0).map_err(failed(what.clone()))?;
        let sum = fold(size, case, 3 * size, dtype, Reduction::Sum);
        same(&what, &got, &sum.slice(0, 3 * rank, 3 * rank + 3))?;
    }
    if checks_operands && size > 1 {
        let x = Tensor::zeros(&[5 + rank], DType::F32).to_array();
        match comm.all_reduce(&x, Reduction::Sum) {
            Err(CommError::Operands { .. }) => {}
            other => return Err(format!("all_reduce of unequal lengths gave {other:?}")),
        }
        let y = Tensor::zeros(&[3], DType::F32).to_array();
        match comm.all_reduce_many(&[&y, &x], Reduction::Sum) {
            Err(CommError::Operands { .. }) => {}
            other => return Err(format!("all_reduce_many of unequal lengths gave {other:?}")),
        }
    }
    let (a, b) = (Tensor::zeros(&[3], DType::F32).to_array(), Tensor::zeros(&[3], DType::F64).to_array());
    match comm.all_reduce_many(&[&a, &b], Reduction::Sum) {
        Err(CommError::Operands { .. }) => {}
        other => return Err(format!("all_reduce_many of f32 and f64 arrays gave {other:?}")),
    }
    Ok(())
}
