//! Normalisation layers. Each normalises over some axes with a stable
//! variance (the mean of squared deviations, never `E[x²] − E[x]²`) and
//! applies a learned scale and shift per feature.

use crate::array::DType;
use crate::core::Tensor;
use crate::Tree;

/// `(x − mean) / √(var + eps)` over `axes`: one primitive (a kernel per
/// pass, forward and backward) when they are the trailing axes, as for
/// layer and group normalisation.
fn standardize(x: &Tensor, axes: &[usize], eps: f64) -> Tensor {
    let r = x.rank();
    if !axes.is_empty() && axes.iter().enumerate().all(|(i, &a)| a == r - axes.len() + i) {
        return crate::prims::Standardize { axes: axes.len(), eps }.apply(&crate::prims::promote::inexact(x));
    }
    standardize_with_stats(x, axes, eps).0
}

/// [`standardize`], and the (biased) mean and variance it used, their
/// reduced axes kept for broadcasting.
fn standardize_with_stats(x: &Tensor, axes: &[usize], eps: f64) -> (Tensor, Tensor, Tensor) {
    let mean = x.mean_axes(axes, true);
    let centered = x - &mean;
    let var = centered.square().mean_axes(axes, true);
    // Times the reciprocal standard deviation (PyTorch's `rstd`): the
    // quotient's rule would cost three passes over `x` for the denominator.
    (centered * (&var + eps).sqrt().recip(), mean, var)
}

/// `[1, features, 1, ..]`: a per-channel parameter shaped to broadcast over `[N, C, spatial..]`.
fn per_channel(p: &Tensor, rank: usize) -> Tensor {
    let mut shape = vec![1; rank];
    shape[1] = p.size();
    p.reshape(&shape)
}

/// Layer normalisation (Ba et al., 2016) over the trailing axes of the
/// parameters' shape, as PyTorch's `LayerNorm(normalized_shape)`.
#[derive(Clone, Debug, Tree)]
pub struct LayerNorm {
    /// Scale, ones at first.
    pub gamma: Tensor,
    /// Shift, zeros at first.
    pub beta: Tensor,
    /// Added to the variance.
    #[tree(skip)]
    pub eps: f64,
}

impl LayerNorm {
    /// Normalisation over trailing axes of `shape` (PyTorch's default eps, 1e-5).
    pub fn new(shape: &[usize], dtype: DType) -> LayerNorm {
        LayerNorm { gamma: Tensor::ones(shape, dtype), beta: Tensor::zeros(shape, dtype), eps: 1e-5 }
    }

    /// Normalises `x [.., shape..]` over its trailing `shape.len()` axes.
    ///
    /// # Panics
    /// When the trailing axes are not the parameters' shape.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let k = self.gamma.rank();
        if x.rank() < k || x.shape()[x.rank() - k..] != *self.gamma.shape() {
            panic!("LayerNorm: expected trailing axes {:?}, got an input {:?}", self.gamma.shape(), x.shape());
        }
        let axes: Vec<usize> = (x.rank() - k..x.rank()).collect();
        standardize(x, &axes, self.eps) * &self.gamma + &self.beta
    }
}

/// Root-mean-square normalisation (Zhang & Sennrich, 2019): `x / √(mean x² + eps) · scale`
/// over the last axis, with no centring and no shift.
#[derive(Clone, Debug, Tree)]
pub struct RmsNorm {
    /// Scale per feature, ones at first.
    pub scale: Tensor,
    /// Added to the mean square.
    #[tree(skip)]
    pub eps: f64,
}

impl RmsNorm {
    /// Normalisation of `features`-wide vectors (eps 1e-6).
    pub fn new(features: usize, dtype: DType) -> RmsNorm {
        RmsNorm { scale: Tensor::ones(&[features], dtype), eps: 1e-6 }
    }

    /// Normalises `x [.., features]` over its last axis.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let last = x.rank().saturating_sub(1);
        let ms = x.square().mean_axes(&[last], true);
        x * (ms + self.eps).sqrt().recip() * &self.scale
    }
}

/// Group normalisation (Wu & He, 2018): the channels of each example split
/// into `groups`, each normalised over its channels and spatial positions;
/// then a per-channel scale and shift. `groups = 1` is layer normalisation
/// over `[C, spatial..]`; `groups = C` is instance normalisation.
#[derive(Clone, Debug, Tree)]
pub struct GroupNorm {
    /// Scale per channel.
    pub gamma: Tensor,
    /// Shift per channel.
    pub beta: Tensor,
    /// The number of groups.
    #[tree(skip)]
    pub groups: usize,
    /// Added to the variance.
    #[tree(skip)]
    pub eps: f64,
}

impl GroupNorm {
    /// `groups` groups over `channels` channels (eps 1e-5).
    ///
    /// # Panics
    /// When the channels do not divide by the groups.
    #[track_caller]
    pub fn new(groups: usize, channels: usize, dtype: DType) -> GroupNorm {
        assert!(groups > 0 && channels % groups == 0, "GroupNorm::new: {channels} channels in {groups} groups");
        GroupNorm {
            gamma: Tensor::ones(&[channels], dtype),
            beta: Tensor::zeros(&[channels], dtype),
            groups,
            eps: 1e-5,
        }
    }

    /// Normalises `x [N, C, spatial..]`.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (n, c) = (x.shape()[0], x.shape()[1]);
        if c != self.gamma.size() {
            panic!("GroupNorm: expected {} channels, got an input {:?}", self.gamma.size(), x.shape());
        }
        let grouped = x.reshape(&[n, self.groups, x.size() / (n * self.groups).max(1)]);
        let y = standardize(&grouped, &[2], self.eps).reshape(x.shape());
        y * per_channel(&self.gamma, x.rank()) + per_channel(&self.beta, x.rank())
    }
}

/// Batch normalisation (Ioffe & Szegedy, 2015) over `[N, C, spatial..]`
/// (or `[N, C]`): per channel, over the batch and positions. Its running
/// statistics are explicit state ([`BatchStats`]): training returns the
/// updated statistics beside the output, and evaluation reads them.
#[derive(Clone, Debug, Tree)]
pub struct BatchNorm {
    /// Scale per channel.
    pub gamma: Tensor,
    /// Shift per channel.
    pub beta: Tensor,
    /// Added to the variance.
    #[tree(skip)]
    pub eps: f64,
    /// The weight of the new batch in the running averages (PyTorch's 0.1).
    #[tree(skip)]
    pub momentum: f64,
}

/// The running mean and variance of a [`BatchNorm`], per channel.
#[derive(Clone, Debug, Tree)]
pub struct BatchStats {
    /// Running mean.
    pub mean: Tensor,
    /// Running (unbiased) variance.
    pub var: Tensor,
}

impl BatchNorm {
    /// Normalisation of `channels` channels with its initial statistics
    /// (mean 0, variance 1), PyTorch's defaults (eps 1e-5, momentum 0.1).
    pub fn new(channels: usize, dtype: DType) -> (BatchNorm, BatchStats) {
        let layer = BatchNorm {
            gamma: Tensor::ones(&[channels], dtype),
            beta: Tensor::zeros(&[channels], dtype),
            eps: 1e-5,
            momentum: 0.1,
        };
        (layer, BatchStats { mean: Tensor::zeros(&[channels], dtype), var: Tensor::ones(&[channels], dtype) })
    }

    /// Training mode: normalises with the batch's own statistics and
    /// returns the running statistics moved towards them (the variance
    /// unbiased, as PyTorch keeps it). The statistics do not carry gradients.
    #[track_caller]
    pub fn forward_train(&self, x: &Tensor, stats: &BatchStats) -> (Tensor, BatchStats) {
        let axes: Vec<usize> = (0..x.rank()).filter(|&a| a != 1).collect();
        let count: usize = axes.iter().map(|&a| x.shape()[a]).product();
        let (y, mean, var) = standardize_with_stats(x, &axes, self.eps);
        let out = y * per_channel(&self.gamma, x.rank()) + per_channel(&self.beta, x.rank());
        // The running statistics reuse the batch's, without their gradients.
        let channels = [self.gamma.size()];
        let mean = mean.stop_gradient().reshape(&channels);
        let var = var.stop_gradient().reshape(&channels) * (count as f64 / (count.max(2) - 1) as f64);
        let m = self.momentum;
        let next = BatchStats { mean: &stats.mean * (1.0 - m) + mean * m, var: &stats.var * (1.0 - m) + var * m };
        (out, next)
    }

    /// Evaluation mode: normalises with the running statistics.
    #[track_caller]
    pub fn forward_eval(&self, x: &Tensor, stats: &BatchStats) -> Tensor {
        let r = x.rank();
        let scale = &self.gamma / (&stats.var + self.eps).sqrt();
        (x - per_channel(&stats.mean, r)) * per_channel(&scale, r) + per_channel(&self.beta, r)
    }
}
