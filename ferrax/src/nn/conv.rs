//! Convolution and pooling layers over `[N, C, spatial..]` inputs.

use crate::array::{DType, Rng};
use crate::core::Tensor;
use crate::prims::{ConvOptions, Padding};
use crate::Tree;

/// A convolution layer with a bias: `Conv1d`, `Conv2d` or `Conv3d` by the
/// rank of its kernel (`kernel` of 1, 2 or 3 extents), PyTorch's layouts
/// (`w [out, in / groups, window..]`, input `[N, in, spatial..]`).
///
/// ```
/// # use ferrax::prelude::*;
/// # use ferrax::nn::Conv;
/// # use ferrax::prims::{ConvOptions, Padding};
/// let conv = Conv::new(3, 8, &[3, 3], ConvOptions::new().padding(Padding::Same), DType::F32, 0);
/// let y = conv.forward(&Tensor::randn(&[2, 3, 16, 16], DType::F32, 1));
/// assert_eq!(y.shape(), &[2, 8, 16, 16]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct Conv {
    /// The kernel, `[out, in / groups, window..]`.
    pub w: Tensor,
    /// The bias, `[out]`.
    pub b: Tensor,
    /// Stride, padding, dilation and groups.
    #[tree(skip)]
    pub options: ConvOptions,
}

impl Conv {
    /// A layer of `out` filters over `inp` channels with a window of
    /// extents `kernel`, its kernel and bias drawn as PyTorch's default
    /// (uniform in `±1/√fan_in`, `fan_in = in / groups · Π kernel`) from `seed`.
    ///
    /// # Panics
    /// When the channels do not divide by the groups.
    #[track_caller]
    pub fn new(inp: usize, out: usize, kernel: &[usize], options: ConvOptions, dtype: DType, seed: u64) -> Conv {
        let groups = options.groups.max(1);
        assert!(
            inp % groups == 0 && out % groups == 0,
            "Conv::new: {inp} input and {out} output channels must divide by the {groups} groups"
        );
        let fan_in = inp / groups * kernel.iter().product::<usize>();
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let shape = [&[out, inp / groups][..], kernel].concat();
        let mut rng = Rng::new(seed);
        let w = Tensor::from_array(crate::array::Array::from_f64_fn(&shape, dtype, |_| rng.uniform_in(-bound, bound)));
        let b = Tensor::from_array(crate::array::Array::from_f64_fn(&[out], dtype, |_| rng.uniform_in(-bound, bound)));
        Conv { w, b, options }
    }

    /// The convolution of `x [N, in, spatial..]` plus the bias.
    ///
    /// # Panics
    /// As [`Tensor::conv`].
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.conv(&self.w, &self.options);
        let mut bias_shape = vec![1; y.rank()];
        bias_shape[1] = self.b.size();
        y + self.b.reshape(&bias_shape)
    }
}

/// How a pooling layer reduces each window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest element (`max_pool`).
    Max,
    /// The mean; `count_padding` as [`Tensor::avg_pool`].
    Avg {
        /// Whether padded positions count in the divisor (PyTorch's default).
        count_padding: bool,
    },
}

/// A pooling layer over the trailing `window.len()` axes (`MaxPool2d`,
/// `AvgPool1d`, …); it has no parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Max or average.
    pub kind: PoolKind,
    /// The window's extents.
    pub window: Vec<usize>,
    /// The step between windows (empty: the window's extents).
    pub strides: Vec<usize>,
    /// Padding of the pooled axes.
    pub padding: Padding,
}

impl Pool {
    /// Max pooling with a window of `window` and stride equal to it.
    pub fn max(window: &[usize]) -> Pool {
        Pool { kind: PoolKind::Max, window: window.to_vec(), strides: vec![], padding: Padding::Valid }
    }

    /// Average pooling with a window of `window` and stride equal to it.
    pub fn avg(window: &[usize]) -> Pool {
        Pool {
            kind: PoolKind::Avg { count_padding: true },
            window: window.to_vec(),
            strides: vec![],
            padding: Padding::Valid,
        }
    }

    /// Pools `x`.
    ///
    /// # Panics
    /// As [`Tensor::reduce_window`].
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self.kind {
            PoolKind::Max => x.max_pool(&self.window, &self.strides, &self.padding),
            PoolKind::Avg { count_padding } => x.avg_pool(&self.window, &self.strides, &self.padding, count_padding),
        }
    }
}
