//! Pooling: reductions over sliding windows of the trailing axes.
//!
//! A window maximum (or minimum) is a gather at the indices the
//! `window_argmax` primitive finds, so its gradient scatters to the chosen
//! elements (select-and-scatter) and every higher derivative follows from
//! gather's rules; a window sum is a depthwise convolution with a kernel of
//! ones, whose transpose is the transposed convolution.

use crate::array::{ConvGeometry, ReduceOp};
use crate::core::{bind, Tensor};
use crate::prims::{Padding, WindowArgExtreme};

/// The per-axis geometry of pooling `rank` trailing axes of `shape`.
struct Pool {
    window: Vec<usize>,
    strides: Vec<usize>,
    padding: Vec<(usize, usize)>,
}

impl Pool {
    #[track_caller]
    fn new(op: &str, shape: &[usize], window: &[usize], strides: &[usize], padding: &Padding) -> Pool {
        let d = window.len();
        if d == 0 || d > shape.len() {
            panic!("{op}: the window {window:?} must span 1 to {} trailing axes of {shape:?}", shape.len());
        }
        let strides = match strides.len() {
            0 => window.to_vec(),
            1 => vec![strides[0]; d],
            n if n == d => strides.to_vec(),
            n => panic!("{op}: {n} strides for a window of {d} axes; give one, or one per axis"),
        };
        let input = &shape[shape.len() - d..];
        let mut pairs = Vec::with_capacity(d);
        for (lo, hi) in padding.pairs(op, input, window, &strides) {
            match (usize::try_from(lo), usize::try_from(hi)) {
                (Ok(lo), Ok(hi)) => pairs.push((lo, hi)),
                _ => panic!("{op}: padding {padding:?} must be non-negative: a pooled window cannot crop"),
            }
        }
        Pool { window: window.to_vec(), strides, padding: pairs }
    }

    /// The geometry over every axis of a tensor of rank `rank`: the leading axes untouched.
    fn full(&self, rank: usize) -> (Vec<usize>, Vec<usize>, Vec<(usize, usize)>) {
        let lead = rank - self.window.len();
        (
            [vec![1; lead], self.window.clone()].concat(),
            [vec![1; lead], self.strides.clone()].concat(),
            [vec![(0, 0); lead], self.padding.clone()].concat(),
        )
    }
}

impl Tensor {
    /// A reduction (`Sum`, `Max` or `Min`) over windows sliding along the
    /// trailing `window.len()` axes (JAX's `lax.reduce_window`): `strides`
    /// empty means the window's extent (PyTorch's pooling default), one
    /// entry means every axis. Padding adds positions that a sum counts as
    /// zero and an extreme never picks; each pad must be smaller than the window.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// # use ferrax::array::ReduceOp;
    /// # use ferrax::prims::Padding;
    /// let x = Tensor::from_vec(vec![1.0, 5.0, 2.0, 4.0, 3.0, 0.0], &[6]);
    /// assert_eq!(x.reduce_window(ReduceOp::Max, &[2], &[], &Padding::Valid).to_vec::<f64>(), vec![5.0, 4.0, 3.0]);
    /// assert_eq!(x.reduce_window(ReduceOp::Sum, &[3], &[1], &Padding::Valid).to_vec::<f64>(), vec![8.0, 11.0, 9.0, 7.0]);
    /// ```
    ///
    /// # Panics
    /// When the window does not fit, the tensor is not float, or `op` is `Prod`.
    #[track_caller]
    pub fn reduce_window(&self, op: ReduceOp, window: &[usize], strides: &[usize], padding: &Padding) -> Tensor {
        let pool = Pool::new("reduce_window", self.shape(), window, strides, padding);
        match op {
            ReduceOp::Max | ReduceOp::Min => {
                let (window, strides, padding) = pool.full(self.rank());
                let idx = bind(WindowArgExtreme { op, window, strides, padding }, std::slice::from_ref(self));
                self.reshape(&[self.size()]).index_select(0, &idx)
            }
            ReduceOp::Sum => window_sum(self, &pool),
            ReduceOp::Prod => {
                panic!("reduce_window: products over windows are not supported; use ln, a Sum window and exp")
            }
        }
    }

    /// Max pooling over the trailing `window.len()` axes (`[N, C, H, W]`
    /// with a window of 2 axes is PyTorch's `max_pool2d`). See [`Tensor::reduce_window`].
    ///
    /// # Panics
    /// As [`Tensor::reduce_window`].
    #[track_caller]
    pub fn max_pool(&self, window: &[usize], strides: &[usize], padding: &Padding) -> Tensor {
        self.reduce_window(ReduceOp::Max, window, strides, padding)
    }

    /// Average pooling over the trailing `window.len()` axes. With
    /// `count_padding` the divisor is always the window's size (PyTorch's
    /// default `count_include_pad=True`); without, only the input positions
    /// the window covers count.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// # use ferrax::prims::Padding;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[1, 4]);
    /// let y = x.avg_pool(&[2], &[], &Padding::symmetric(1), false);
    /// assert_eq!(y.to_vec::<f64>(), vec![1.0, 2.5, 4.0]);
    /// ```
    ///
    /// # Panics
    /// As [`Tensor::reduce_window`].
    #[track_caller]
    pub fn avg_pool(&self, window: &[usize], strides: &[usize], padding: &Padding, count_padding: bool) -> Tensor {
        let pool = Pool::new("avg_pool", self.shape(), window, strides, padding);
        let sum = window_sum(self, &pool);
        if count_padding || pool.padding.iter().all(|&p| p == (0, 0)) {
            return sum / window.iter().product::<usize>() as f64;
        }
        let spatial = &self.shape()[self.rank() - window.len()..];
        let counts = window_sum(&Tensor::ones(spatial, self.dtype()), &pool);
        sum / counts
    }

    /// Average pooling to a given output size over the trailing
    /// `out.len()` axes (PyTorch's `adaptive_avg_pool`): output `j` of an
    /// axis of size `S` averages the inputs `floor(j·S/out) .. ceil((j+1)·S/out)`.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0], &[5]);
    /// assert_eq!(x.adaptive_avg_pool(&[2]).to_vec::<f64>(), vec![2.0, 4.0]);
    /// ```
    ///
    /// # Panics
    /// When `out` has more axes than the tensor, or an output size is 0
    /// for a non-empty axis.
    #[track_caller]
    pub fn adaptive_avg_pool(&self, out: &[usize]) -> Tensor {
        let r = self.rank();
        if out.len() > r || out.contains(&0) {
            panic!(
                "adaptive_avg_pool: output sizes {out:?} must be >= 1 and at most one per axis of {:?}",
                self.shape()
            );
        }
        let mut x = crate::prims::promote::inexact(self);
        for (i, &o) in out.iter().enumerate() {
            let axis = r - out.len() + i;
            let s = x.shape()[axis];
            // Row j of the window matrix [o, s] is 1 over its window; the
            // sums are divided by the counts (as PyTorch does: no 1/len weights).
            let mut m = vec![0.0; o * s];
            let mut counts = vec![0.0; o];
            for j in 0..o {
                let (lo, hi) = (j * s / o, ((j + 1) * s).div_ceil(o));
                m[j * s + lo..j * s + hi].fill(1.0);
                counts[j] = (hi - lo) as f64;
            }
            let m = Tensor::from_vec(m, &[o, s]).to_dtype(x.dtype());
            let counts = Tensor::from_vec(counts, &[o]).to_dtype(x.dtype());
            let mut perm: Vec<usize> = (0..r).collect();
            perm.swap(axis, r - 1);
            x = (x.permute(&perm).matmul(&m.t()) / counts).permute(&perm);
        }
        x
    }
}

/// The sum over each window: every pooled plane convolved with a kernel of ones.
fn window_sum(x: &Tensor, pool: &Pool) -> Tensor {
    let d = pool.window.len();
    let (lead, spatial) = x.shape().split_at(x.rank() - d);
    let planes: usize = lead.iter().product();
    let x = crate::prims::promote::inexact(x);
    let planar = x.reshape(&[&[planes, 1][..], spatial].concat());
    let ones = Tensor::ones(&[&[1, 1][..], &pool.window].concat(), x.dtype());
    let geometry = ConvGeometry {
        strides: pool.strides.clone(),
        padding: pool.padding.iter().map(|&(lo, hi)| (lo as i64, hi as i64)).collect(),
        lhs_dilation: vec![1; d],
        rhs_dilation: vec![1; d],
    };
    let out = planar.conv_general(&ones, &geometry, 1);
    out.reshape(&[lead, &out.shape()[2..]].concat())
}
