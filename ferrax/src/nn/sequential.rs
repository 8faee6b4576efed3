//! `Sequential`: layers applied one after the other, for the common case
//! of a feed-forward network.

use crate::core::Tensor;
use crate::tree::Tree;

use super::{Activation, Conv, GroupNorm, LayerNorm, Linear, Pool, RmsNorm};

/// One stage of a [`Sequential`]. `BatchNorm`, whose running statistics
/// are state, is applied by hand around a `Sequential`.
#[derive(Clone, Debug)]
pub enum Layer {
    /// A dense layer on the last axis.
    Linear(Linear),
    /// A convolution on `[N, C, spatial..]`.
    Conv(Conv),
    /// A pooling of the trailing axes.
    Pool(Pool),
    /// An elementwise nonlinearity.
    Activation(Activation),
    /// Every axis after the first joined into one (`[N, ..] -> [N, features]`).
    Flatten,
    /// Layer normalisation.
    LayerNorm(LayerNorm),
    /// RMS normalisation.
    RmsNorm(RmsNorm),
    /// Group normalisation.
    GroupNorm(GroupNorm),
    /// Inverted dropout at this rate while training ([`Sequential::forward_train`]);
    /// the identity in [`Sequential::forward`].
    Dropout(f64),
}

impl Layer {
    /// The layer applied to `x`.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Layer::Linear(l) => l.forward(x),
            Layer::Conv(c) => c.forward(x),
            Layer::Pool(p) => p.forward(x),
            Layer::Activation(a) => a.apply(x),
            Layer::Flatten => {
                let n = x.shape().first().copied().unwrap_or(1);
                x.reshape(&[n, x.size() / n.max(1)])
            }
            Layer::LayerNorm(l) => l.forward(x),
            Layer::RmsNorm(l) => l.forward(x),
            Layer::GroupNorm(l) => l.forward(x),
            Layer::Dropout(_) => x.clone(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Layer::Linear(_) => "linear",
            Layer::Conv(_) => "conv",
            Layer::Pool(_) => "pool",
            Layer::Activation(_) => "activation",
            Layer::Flatten => "flatten",
            Layer::LayerNorm(_) => "layer_norm",
            Layer::RmsNorm(_) => "rms_norm",
            Layer::GroupNorm(_) => "group_norm",
            Layer::Dropout(_) => "dropout",
        }
    }
}

/// The parameters of the layer inside; the variant, and a parameter-free
/// layer's settings, are part of the structure (`statics_into`), so `jit`
/// tells two different networks apart.
impl Tree for Layer {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        match self {
            Layer::Linear(l) => l.flatten_into(out),
            Layer::Conv(c) => c.flatten_into(out),
            Layer::LayerNorm(l) => l.flatten_into(out),
            Layer::RmsNorm(l) => l.flatten_into(out),
            Layer::GroupNorm(l) => l.flatten_into(out),
            Layer::Pool(_) | Layer::Activation(_) | Layer::Flatten | Layer::Dropout(_) => {}
        }
    }
    fn paths_into(&self, prefix: &str, out: &mut Vec<String>) {
        let prefix = format!("{prefix}{}.", self.name());
        match self {
            Layer::Linear(l) => l.paths_into(&prefix, out),
            Layer::Conv(c) => c.paths_into(&prefix, out),
            Layer::LayerNorm(l) => l.paths_into(&prefix, out),
            Layer::RmsNorm(l) => l.paths_into(&prefix, out),
            Layer::GroupNorm(l) => l.paths_into(&prefix, out),
            Layer::Pool(_) | Layer::Activation(_) | Layer::Flatten | Layer::Dropout(_) => {}
        }
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        match self {
            Layer::Linear(l) => Layer::Linear(l.rebuild(leaves)),
            Layer::Conv(c) => Layer::Conv(c.rebuild(leaves)),
            Layer::LayerNorm(l) => Layer::LayerNorm(l.rebuild(leaves)),
            Layer::RmsNorm(l) => Layer::RmsNorm(l.rebuild(leaves)),
            Layer::GroupNorm(l) => Layer::GroupNorm(l.rebuild(leaves)),
            other => other.clone(),
        }
    }
    fn statics_into(&self, out: &mut Vec<String>) {
        match self {
            Layer::Linear(l) => l.statics_into(out),
            Layer::Conv(c) => c.statics_into(out),
            Layer::LayerNorm(l) => l.statics_into(out),
            Layer::RmsNorm(l) => l.statics_into(out),
            Layer::GroupNorm(l) => l.statics_into(out),
            Layer::Pool(p) => out.push(format!("{p:?}")),
            Layer::Activation(a) => out.push(format!("{a:?}")),
            Layer::Dropout(rate) => out.push(format!("{rate:?}")),
            Layer::Flatten => {}
        }
        out.push(self.name().to_string());
    }
}

/// Layers applied in order (PyTorch's `nn.Sequential`); a [`Tree`] of their
/// parameters, so `grad` of a loss returns a `Sequential`.
///
/// ```
/// use ferrax::prelude::*;
/// use ferrax::nn::{softmax_cross_entropy, Activation, Conv, Init, Layer, Linear, Pool, Sequential};
/// use ferrax::prims::{ConvOptions, Padding};
///
/// let net = Sequential::new(vec![
///     Layer::Conv(Conv::new(1, 4, &[3, 3], ConvOptions::new().padding(Padding::Same), DType::F32, 0)),
///     Layer::Activation(Activation::Relu),
///     Layer::Pool(Pool::max(&[2, 2])),
///     Layer::Flatten,
///     Layer::Linear(Linear::new(4 * 4 * 4, 10, Init::GlorotUniform, DType::F32, 1)),
/// ]);
/// let x = Tensor::randn(&[5, 1, 8, 8], DType::F32, 2);
/// let y = Tensor::from_vec(vec![0i64, 1, 2, 3, 4], &[5]);
/// let g: Sequential = grad(|n: &Sequential| softmax_cross_entropy(&n.forward(&x), &y))(&net);
/// assert_eq!(g.leaf_paths(), vec!["layers.0.conv.w", "layers.0.conv.b", "layers.4.linear.w", "layers.4.linear.b"]);
/// ```
#[derive(Clone, Debug, crate::Tree)]
pub struct Sequential {
    /// The layers, input first.
    pub layers: Vec<Layer>,
}

impl Sequential {
    /// The layers as given.
    pub fn new(layers: Vec<Layer>) -> Sequential {
        Sequential { layers }
    }

    /// `x` through every layer, for evaluation: dropout is the identity.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.layers.iter().fold(x.clone(), |h, l| l.forward(&h))
    }

    /// `x` through every layer, for training: each `Dropout` draws its mask
    /// from `seed` and its position, so pass a new seed each step.
    ///
    /// # Panics
    /// As the layers' `forward`, and when a dropout rate is not in `[0, 1)`.
    #[track_caller]
    pub fn forward_train(&self, x: &Tensor, seed: u64) -> Tensor {
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = match l {
                Layer::Dropout(rate) => {
                    super::dropout(&h, *rate, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i as u64))
                }
                other => other.forward(&h),
            };
        }
        h
    }
}
