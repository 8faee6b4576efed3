//! The arithmetic of collectives on the ranks' arrays, the same on every
//! rank and for every transport that gathers the operands.

use std::mem::MaybeUninit;

use crate::array::parallel::{build, fill_chunks, CHEAP};
use crate::array::{Array, Buffer, DType, Num};

use super::{CommError, Reduction};

/// A computation over the elementwise arithmetic of a reduction: how two
/// ranks' elements combine, and what becomes of their fold.
pub(super) trait Fold<T> {
    type Out;
    fn run(self, combine: impl Fn(T, T) -> T + Copy + Sync, finish: impl Fn(T) -> T + Copy + Sync) -> Self::Out;
}

/// Runs `f` with the arithmetic of `op` over `size` ranks, each compiled
/// for its own: a mean divides the sum by the number of ranks, so that
/// every transport gives the same bits.
pub(super) fn fold_with<T: Num, F: Fold<T>>(op: Reduction, size: usize, f: F) -> F::Out {
    match op {
        Reduction::Sum => f.run(T::wadd, |s| s),
        // Multiplying by 1/n rounds as dividing by n does when n is a
        // power of two, and costs a fraction of a division.
        Reduction::Mean if size.is_power_of_two() => {
            let inverse = T::from_f64(1.0 / size as f64);
            f.run(T::wadd, move |s| s * inverse)
        }
        Reduction::Mean => {
            let n = T::from_f64(size as f64);
            f.run(T::wadd, move |s| s / n)
        }
        Reduction::Max => f.run(T::max_nan, |s| s),
    }
}

fn mismatch(op: &str, all: &[Array]) -> Option<CommError> {
    let first = all[0].aval();
    all.iter().position(|a| a.aval() != first).map(|r| CommError::Operands {
        op: op.into(),
        why: format!("rank 0 gives {first} but rank {r} gives {}", all[r].aval()),
    })
}

/// The elementwise reduction of the arrays, in rank order, in one pass
/// over them, written over the first where no one else holds it.
pub(super) fn reduce(all: Vec<Array>, op: Reduction) -> Result<Array, CommError> {
    if let Some(e) = mismatch("all_reduce", &all) {
        return Err(e);
    }
    let (dtype, shape) = (all[0].dtype(), all[0].shape().to_vec());
    if dtype == DType::Bool || (op == Reduction::Mean && !dtype.is_float()) {
        return Err(CommError::Operands {
            op: "all_reduce".into(),
            why: format!("cannot take the {op:?} of {dtype} arrays"),
        });
    }
    let size = all.len();
    // Half precision is combined in f32 and rounded once, as MPI's ranks do.
    let wide: Vec<Array> = all.into_iter().map(|a| if dtype.is_half() { a.to_dtype(DType::F32) } else { a }).collect();
    let buf = match wide[0].dtype() {
        DType::F32 => Buffer::F32(fold_with(op, size, InRankOrder(wide))),
        DType::F64 => Buffer::F64(fold_with(op, size, InRankOrder(wide))),
        DType::I64 => Buffer::I64(fold_with(op, size, InRankOrder(wide))),
        _ => unreachable!("half precision is widened and bool refused above"),
    };
    Ok(Array::new(&shape, buf).to_dtype(dtype))
}

/// The ranks' arrays, to fold in rank order.
struct InRankOrder(Vec<Array>);

impl<T: Num> Fold<T> for InRankOrder {
    type Out = Vec<T>;
    fn run(self, combine: impl Fn(T, T) -> T + Copy + Sync, finish: impl Fn(T) -> T + Copy + Sync) -> Vec<T> {
        let mut arrays = self.0.into_iter();
        let first = arrays.next().expect("a group has a rank");
        let rest: Vec<Array> = arrays.collect();
        let rest: Vec<&[T]> = rest.iter().map(|a| a.as_slice::<T>()).collect();
        let cost = CHEAP * (rest.len() + 1);
        let fold = |start: usize, chunk: &mut [T]| {
            for other in &rest {
                for (a, &b) in chunk.iter_mut().zip(&other[start..]) {
                    *a = combine(*a, b);
                }
            }
            chunk.iter_mut().for_each(|a| *a = finish(*a));
        };
        match first.into_unique_vec::<T>() {
            Ok(mut v) => {
                fill_chunks(&mut v, cost, fold);
                v
            }
            Err(first) => {
                let first = first.as_slice::<T>();
                // SAFETY: every chunk is written by the copy before it is read.
                unsafe {
                    build(first.len(), cost, |start, chunk: &mut [MaybeUninit<T>]| {
                        let chunk = chunk_init(chunk, &first[start..start + chunk.len()]);
                        fold(start, chunk);
                    })
                }
            }
        }
    }
}

/// `chunk` initialised with `from`'s elements.
fn chunk_init<'a, T: Copy>(chunk: &'a mut [MaybeUninit<T>], from: &[T]) -> &'a mut [T] {
    for (c, &x) in chunk.iter_mut().zip(from) {
        c.write(x);
    }
    // SAFETY: every element was written just above (`from` is as long).
    unsafe { &mut *(chunk as *mut [MaybeUninit<T>] as *mut [T]) }
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
