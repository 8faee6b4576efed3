//! Layers, activations, losses and initialisers, in JAX's functional
//! style: parameters are a [`Tree`](crate::tree::Tree) and a model is a
//! function of them, so `grad` of a loss gives gradients with the model's
//! own structure.
//!
//! ```
//! use ferrax::prelude::*;
//! use ferrax::nn::{softmax_cross_entropy, Activation, Mlp};
//!
//! let model = Mlp::new(&[4, 8, 3], Activation::Relu, DType::F32, 0);
//! let x = Tensor::randn(&[5, 4], DType::F32, 1);
//! let labels = Tensor::from_vec(vec![0i64, 2, 1, 1, 0], &[5]);
//! let grads: Mlp = grad(|m: &Mlp| softmax_cross_entropy(&m.forward(&x), &labels))(&model);
//! assert_eq!(grads.layers[0].w.shape(), &[4, 8]);
//! ```

mod attention;
mod conv;
mod init;
mod layers;
mod loss;
mod norm;
mod sequential;
mod torch;

pub use attention::{scaled_dot_product_attention, Embedding, Gpt, MultiHeadAttention, TransformerBlock};
pub use conv::{Conv, Pool, PoolKind};
pub use init::Init;
pub use layers::{Activation, Linear, Mlp};
pub use loss::{binary_cross_entropy_with_logits, mse, softmax_cross_entropy};
pub use norm::{BatchNorm, BatchStats, GroupNorm, LayerNorm, RmsNorm};
pub use sequential::{Layer, Sequential};
pub use torch::{
    from_torch_state_dict, load_torch_safetensors, load_torch_safetensors_with, save_torch_safetensors,
    torch_state_dict, TorchModule, TorchName,
};

use crate::array::{DType, Rng};
use crate::core::Tensor;

/// Inverted dropout: each element is zeroed with probability `rate` and
/// the survivors scaled by `1 / (1 - rate)`, so the expectation is
/// unchanged. The mask is drawn from `seed`: pass a new seed each step, and
/// do not call it at evaluation time.
///
/// # Panics
/// When `rate` is not in `[0, 1)`.
#[track_caller]
pub fn dropout(x: &Tensor, rate: f64, seed: u64) -> Tensor {
    assert!((0.0..1.0).contains(&rate), "dropout: the rate must be in [0, 1), got {rate}");
    if rate == 0.0 {
        return x.clone();
    }
    let mut rng = Rng::new(seed);
    let keep: Vec<bool> = (0..x.size()).map(|_| rng.uniform() >= rate).collect();
    let mask = Tensor::from_vec(keep, x.shape()).to_dtype(x.dtype());
    x * mask / (1.0 - rate)
}

/// The dtype every parameter of a new layer gets unless chosen.
pub const DEFAULT_DTYPE: DType = DType::F32;
