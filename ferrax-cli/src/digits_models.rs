//! The networks `ferrax train` trains on the digits: the MLP, and a small CNN.

use ferrax::nn::{Activation, Conv, Init, Linear, Mlp, Pool};
use ferrax::prelude::*;
use ferrax::prims::{ConvOptions, Padding};

/// What the training loop needs of a network over the flattened 8x8 digits.
pub trait Classifier: Tree + Clone + Send + Sync + 'static {
    /// Logits `[batch, 10]` for pixels `[batch, 64]`.
    fn logits(&self, x: &Tensor) -> Tensor;
}

impl Classifier for Mlp {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward(x)
    }
}

/// The digits CNN: 3x3 convolutions (padding 1) of `c1` and `c2` channels
/// with an activation after each, a 2x2 max-pool, and a linear layer from
/// the `c2 x 4 x 4` features to the 10 classes.
#[derive(Clone, Debug, Tree)]
pub struct DigitsCnn {
    conv1: Conv,
    conv2: Conv,
    head: Linear,
    #[tree(skip)]
    activation: Activation,
}

impl DigitsCnn {
    pub fn new(c1: usize, c2: usize, activation: Activation, seed: u64) -> DigitsCnn {
        let same = ConvOptions::new().padding(Padding::Same);
        DigitsCnn {
            conv1: Conv::new(1, c1, &[3, 3], same.clone(), DType::F32, seed),
            conv2: Conv::new(c1, c2, &[3, 3], same, DType::F32, seed + 1),
            head: Linear::new(c2 * 16, 10, Init::GlorotUniform, DType::F32, seed + 2),
            activation,
        }
    }
}

impl Classifier for DigitsCnn {
    fn logits(&self, x: &Tensor) -> Tensor {
        let n = x.shape()[0];
        let h = self.activation.apply(&self.conv1.forward(&x.reshape(&[n, 1, 8, 8])));
        let h = Pool::max(&[2, 2]).forward(&self.activation.apply(&self.conv2.forward(&h)));
        self.head.forward(&h.reshape(&[n, h.size() / n.max(1)]))
    }
}
