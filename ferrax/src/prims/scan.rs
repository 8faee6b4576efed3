//! Cumulative reductions — `cumsum`, `cumprod`, `cummax`, `cummin` — and
//! the associative scan their derivatives are made of.
//!
//! The kernels run each scan in one sequential pass. The derivatives of the
//! nonlinear ones are, as in JAX, the jvp of a parallel-prefix scan (the
//! Blelloch-style tree of `lax.associative_scan`) over (value, tangent)
//! pairs: exact where `cumprod` meets zeros, and splitting ties of
//! `cummax`/`cummin` exactly as JAX does.

use crate::array::{backend_of, Array, Aval, ReduceOp};
use crate::core::{bind, Kind, Lin, Param, Params, SingleOutput, Tensor};

use super::batching::phys;
use super::{expect_axis, expect_numeric};

/// The `scan` primitive: the running `op` along `axis`, from the end when
/// `reverse`; named `cumsum`, `cumprod`, `cummax`, `cummin`. The sum is
/// linear (its transpose sums from the other end); the others'
/// derivatives are the jvp of an associative scan.
#[derive(Clone, Debug)]
pub struct Scan {
    /// Which running reduction.
    pub op: ReduceOp,
    /// The axis scanned along.
    pub axis: usize,
    /// Scan from the end backwards.
    pub reverse: bool,
}

impl SingleOutput for Scan {
    fn name(&self) -> &'static str {
        match self.op {
            ReduceOp::Sum => "cumsum",
            ReduceOp::Prod => "cumprod",
            ReduceOp::Max => "cummax",
            ReduceOp::Min => "cummin",
        }
    }
    fn params(&self) -> Params {
        vec![("axis", Param::Usize(self.axis)), ("reverse", Param::Bool(self.reverse))]
    }
    fn kind(&self) -> Kind {
        Kind::Scan(self.op)
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let name = SingleOutput::name(self);
        expect_numeric(name, ins[0]);
        expect_axis(name, self.axis, &ins[0].shape);
        ins[0].clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).scan(self.op, ins[0], self.axis, self.reverse)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        let bd = axes[0].expect("the only operand is batched");
        (bind(Scan { axis: phys(self.axis, bd), ..self.clone() }, &x[..1]), Some(bd))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        let (x, t, (axis, reverse)) = (&x[0], t[0].as_ref()?, (self.axis, self.reverse));
        Some(match self.op {
            ReduceOp::Sum => bind(self.clone(), std::slice::from_ref(t)),
            ReduceOp::Prod => scan_tangent(x, t, axis, reverse, |a, ta, b, tb| (a * b, ta * b + a * tb)),
            ReduceOp::Max => scan_tangent(x, t, axis, reverse, |a, ta, b, tb| {
                let m = a.maximum(b);
                let tm = ta * balanced(a, b, &m) + tb * balanced(b, a, &m);
                (m, tm)
            }),
            ReduceOp::Min => scan_tangent(x, t, axis, reverse, |a, ta, b, tb| {
                let m = a.minimum(b);
                let tm = ta * balanced(a, b, &m) + tb * balanced(b, a, &m);
                (m, tm)
            }),
        })
    }
    fn transpose(&self, ct: &Tensor, _ins: &[Lin]) -> Vec<Option<Tensor>> {
        match self.op {
            // Each input element feeds the sums at and after it: the transpose sums from the other end.
            ReduceOp::Sum => {
                vec![Some(bind(Scan { reverse: !self.reverse, ..self.clone() }, std::slice::from_ref(ct)))]
            }
            ReduceOp::Prod | ReduceOp::Max | ReduceOp::Min => {
                panic!("{}", crate::core::context::nonlinear_message(SingleOutput::name(self)))
            }
        }
    }
}

/// `x`'s share of the derivative of `max(x, y)` or `min(x, y)` (see the
/// binary `max` primitive).
fn balanced(x: &Tensor, y: &Tensor, ans: &Tensor) -> Tensor {
    let dt = ans.dtype();
    x.eq(ans).to_dtype(dt) / (y.eq(ans).to_dtype(dt) + 1.0)
}

/// The tangent of a scan whose combining step (value and tangent of the
/// earlier element, then of the later one) is `step`.
fn scan_tangent(
    x: &Tensor,
    t: &Tensor,
    axis: usize,
    reverse: bool,
    step: impl Fn(&Tensor, &Tensor, &Tensor, &Tensor) -> (Tensor, Tensor),
) -> Tensor {
    let combine = |a: &[Tensor], b: &[Tensor]| {
        let (v, tv) = step(&a[0], &a[1], &b[0], &b[1]);
        vec![v, tv]
    };
    associative_scan_impl(&[x.clone(), t.clone()], axis, reverse, &combine).swap_remove(1)
}

type Combine<'a> = dyn Fn(&[Tensor], &[Tensor]) -> Vec<Tensor> + 'a;

/// The inclusive scan of `elems` (tensors scanned together, one shape)
/// along `axis` with an associative `combine(earlier, later)`, by the
/// recursion of JAX's `lax.associative_scan`: combine adjacent pairs, scan
/// the half-length result, then fill in the other half.
pub(crate) fn associative_scan_impl(elems: &[Tensor], axis: usize, reverse: bool, combine: &Combine) -> Vec<Tensor> {
    if reverse {
        let flipped: Vec<Tensor> = elems.iter().map(|e| e.flip(&[axis])).collect();
        return scan(&flipped, axis, combine).iter().map(|e| e.flip(&[axis])).collect();
    }
    scan(elems, axis, combine)
}

fn scan(elems: &[Tensor], axis: usize, combine: &Combine) -> Vec<Tensor> {
    let n = elems[0].shape()[axis];
    if n < 2 {
        return elems.to_vec();
    }
    let every_other = |from: usize| -> Vec<Tensor> { elems.iter().map(|e| strided(e, axis, from)).collect() };
    let (evens, odds) = (every_other(0), every_other(1));
    // Pairs (0, 1), (2, 3), …: an odd element out at the end is left for later.
    let pairs = odds[0].shape()[axis];
    let firsts: Vec<Tensor> = evens.iter().map(|e| e.slice(axis, 0, pairs)).collect();
    let reduced = combine(&firsts, &odds);
    // The scan at every odd position.
    let odd_scans = scan(&reduced, axis, combine);
    // Every even position after the first: the scan before it, combined with it.
    let rest: Vec<Tensor> = evens.iter().map(|e| e.slice(axis, 1, e.shape()[axis])).collect();
    let len = rest[0].shape()[axis];
    let before: Vec<Tensor> = odd_scans.iter().map(|e| e.slice(axis, 0, len)).collect();
    let even_rest = combine(&before, &rest);
    let even_scans: Vec<Tensor> =
        elems.iter().zip(&even_rest).map(|(e, r)| Tensor::concat(&[e.slice(axis, 0, 1), r.clone()], axis)).collect();
    even_scans.iter().zip(&odd_scans).map(|(e, o)| interleave(e, o, axis, n)).collect()
}

/// Elements `from, from + 2, …` of `x` along `axis`.
fn strided(x: &Tensor, axis: usize, from: usize) -> Tensor {
    let n = x.shape()[axis];
    let count = (n - from).div_ceil(2);
    let block = x.slice(axis, from, (from + 2 * count).min(n));
    // Pad to an even length, pair the elements up, keep the first of each pair.
    let mut hi = vec![0; x.rank()];
    hi[axis] = 2 * count - block.shape()[axis];
    let padded = block.pad(&vec![0; x.rank()], &hi);
    let mut paired = padded.shape().to_vec();
    paired[axis] = count;
    paired.insert(axis + 1, 2);
    padded.reshape(&paired).slice(axis + 1, 0, 1).squeeze(axis + 1)
}

/// `a` (positions 0, 2, …) and `b` (positions 1, 3, …) merged along `axis`
/// into `n` elements.
fn interleave(a: &Tensor, b: &Tensor, axis: usize, n: usize) -> Tensor {
    let mut hi = vec![0; b.rank()];
    hi[axis] = a.shape()[axis] - b.shape()[axis];
    let b = b.pad(&vec![0; b.rank()], &hi);
    let pairs = Tensor::stack(&[a.clone(), b], axis + 1);
    let mut shape = a.shape().to_vec();
    shape[axis] *= 2;
    pairs.reshape(&shape).slice(axis, 0, n)
}

/// The scan of `f` along `axis`, computed by a tree of `f` applications of
/// depth `log n` (JAX's `lax.associative_scan`): element `i` of the result
/// is `f(…f(f(x₀, x₁), x₂)…, xᵢ)`, for an associative `f`. With `reverse`,
/// the scan runs from the end. Differentiable like any composition.
///
/// ```
/// # use ferrax::prelude::*;
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4]);
/// let sums = ferrax::prims::scan::associative_scan(|a, b| a + b, &x, 0, false);
/// assert_eq!(sums.to_vec::<f64>(), vec![1.0, 3.0, 6.0, 10.0]);
/// ```
///
/// # Panics
/// When the axis is out of range.
#[track_caller]
pub fn associative_scan(f: impl Fn(&Tensor, &Tensor) -> Tensor, x: &Tensor, axis: usize, reverse: bool) -> Tensor {
    expect_axis("associative_scan", axis, x.shape());
    let combine = |a: &[Tensor], b: &[Tensor]| vec![f(&a[0], &b[0])];
    associative_scan_impl(std::slice::from_ref(x), axis, reverse, &combine).swap_remove(0)
}

impl Tensor {
    /// Running sum along `axis`: element `i` is the sum of elements `0..=i`
    /// (a bool tensor is counted, as i64).
    ///
    /// # Panics
    /// When the axis is out of range.
    #[track_caller]
    pub fn cumsum(&self, axis: usize) -> Tensor {
        let x = if self.dtype() == crate::array::DType::Bool {
            self.to_dtype(crate::array::DType::I64)
        } else {
            self.clone()
        };
        bind(Scan { op: ReduceOp::Sum, axis, reverse: false }, &[x])
    }

    /// Running product along `axis`; its derivative is exact where the input has zeros.
    ///
    /// # Panics
    /// When the axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn cumprod(&self, axis: usize) -> Tensor {
        bind(Scan { op: ReduceOp::Prod, axis, reverse: false }, std::slice::from_ref(self))
    }

    /// Running maximum along `axis` (NaN propagates).
    ///
    /// # Panics
    /// When the axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn cummax(&self, axis: usize) -> Tensor {
        bind(Scan { op: ReduceOp::Max, axis, reverse: false }, std::slice::from_ref(self))
    }

    /// Running minimum along `axis` (NaN propagates).
    ///
    /// # Panics
    /// When the axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn cummin(&self, axis: usize) -> Tensor {
        bind(Scan { op: ReduceOp::Min, axis, reverse: false }, std::slice::from_ref(self))
    }
}
