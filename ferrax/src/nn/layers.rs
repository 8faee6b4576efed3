//! Dense layers and multilayer perceptrons.

use crate::array::DType;
use crate::core::Tensor;
use crate::Tree;

use super::Init;

/// `y = x W + b` for `x` of shape `[.., in]`.
#[derive(Clone, Debug, Tree)]
pub struct Linear {
    /// Weights, `[in, out]`.
    pub w: Tensor,
    /// Bias, `[out]`.
    pub b: Tensor,
}

impl Linear {
    /// A layer with weights drawn by `init` from `seed` and a zero bias.
    pub fn new(fan_in: usize, fan_out: usize, init: Init, dtype: DType, seed: u64) -> Linear {
        Linear { w: init.sample(fan_in, fan_out, dtype, seed), b: Tensor::zeros(&[fan_out], dtype) }
    }

    /// `x W + b`.
    ///
    /// # Panics
    /// When the last axis of `x` is not the layer's input width, or dtypes differ.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.w) + &self.b
    }
}

/// A nonlinearity between layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// GELU, exact (`x Φ(x)`, PyTorch's default).
    Gelu,
    /// GELU, tanh approximation (JAX's default).
    GeluTanh,
    /// `ln(1 + e^x)`.
    Softplus,
    /// SiLU (swish): `x σ(x)`.
    Silu,
    /// No nonlinearity.
    Identity,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Gelu => x.gelu(),
            Activation::GeluTanh => x.gelu_tanh(),
            Activation::Softplus => x.softplus(),
            Activation::Silu => x.silu(),
            Activation::Identity => x.clone(),
        }
    }

    /// The initialiser that suits it: He for ReLU-like, Glorot otherwise.
    pub fn suggested_init(self) -> Init {
        match self {
            Activation::Relu | Activation::Gelu | Activation::GeluTanh | Activation::Silu => Init::HeNormal,
            _ => Init::GlorotUniform,
        }
    }

    /// The activation named `name` (`relu`, `tanh`, `sigmoid`, `gelu`,
    /// `gelu_tanh`, `softplus`, `silu`, `identity`).
    pub fn parse(name: &str) -> Option<Activation> {
        Some(match name {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "gelu" => Activation::Gelu,
            "gelu_tanh" => Activation::GeluTanh,
            "softplus" => Activation::Softplus,
            "silu" => Activation::Silu,
            "identity" => Activation::Identity,
            _ => return None,
        })
    }
}

/// A multilayer perceptron: dense layers with an activation between them
/// and none after the last (it returns logits).
#[derive(Clone, Debug, Tree)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<Linear>,
    /// The nonlinearity after every layer but the last.
    #[tree(skip)]
    pub activation: Activation,
}

impl Mlp {
    /// An MLP with the given widths (`[in, hidden.., out]`), each layer
    /// initialised as suits `activation`, layer `i` from seed `seed + i`.
    ///
    /// # Panics
    /// With fewer than two widths.
    #[track_caller]
    pub fn new(widths: &[usize], activation: Activation, dtype: DType, seed: u64) -> Mlp {
        assert!(widths.len() >= 2, "Mlp::new: give at least the input and output widths, got {widths:?}");
        let init = activation.suggested_init();
        let layers =
            widths.windows(2).enumerate().map(|(i, w)| Linear::new(w[0], w[1], init, dtype, seed + i as u64)).collect();
        Mlp { layers, activation }
    }

    /// The logits for inputs `x` of shape `[batch, in]`.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h);
            if i + 1 < self.layers.len() {
                h = self.activation.apply(&h);
            }
        }
        h
    }

    /// The number of scalar parameters.
    pub fn parameter_count(&self) -> usize {
        self.leaves().iter().map(Tensor::size).sum()
    }
}
