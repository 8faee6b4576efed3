//! Weight initialisers, seeded.

use crate::array::{Array, DType, Rng};
use crate::core::Tensor;

/// How to draw a weight matrix `[fan_in, fan_out]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Uniform in `±√(6 / (fan_in + fan_out))` (Glorot & Bengio, 2010): for tanh and sigmoid.
    GlorotUniform,
    /// Normal with variance `2 / (fan_in + fan_out)`.
    GlorotNormal,
    /// Normal with variance `2 / fan_in` (He et al., 2015): for ReLU.
    HeNormal,
    /// Uniform in `±√(6 / fan_in)`.
    HeUniform,
    /// Normal with this standard deviation.
    Normal(f64),
}

impl Init {
    /// A `[fan_in, fan_out]` weight matrix drawn from `seed`.
    pub fn sample(self, fan_in: usize, fan_out: usize, dtype: DType, seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        let (fi, fo) = (fan_in as f64, fan_out as f64);
        let shape = [fan_in, fan_out];
        let a = match self {
            Init::GlorotUniform => {
                let r = (6.0 / (fi + fo)).sqrt();
                Array::from_f64_fn(&shape, dtype, |_| rng.uniform_in(-r, r))
            }
            Init::GlorotNormal => {
                let s = (2.0 / (fi + fo)).sqrt();
                Array::from_f64_fn(&shape, dtype, |_| s * rng.normal())
            }
            Init::HeNormal => {
                let s = (2.0 / fi).sqrt();
                Array::from_f64_fn(&shape, dtype, |_| s * rng.normal())
            }
            Init::HeUniform => {
                let r = (6.0 / fi).sqrt();
                Array::from_f64_fn(&shape, dtype, |_| rng.uniform_in(-r, r))
            }
            Init::Normal(s) => Array::from_f64_fn(&shape, dtype, |_| s * rng.normal()),
        };
        Tensor::from_array(a)
    }
}
