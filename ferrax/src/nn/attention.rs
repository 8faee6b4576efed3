//! Embeddings and attention.

use crate::array::{Array, DType, Rng};
use crate::core::Tensor;
use crate::Tree;

use super::{Init, Linear};

/// A lookup table of `vocabulary` vectors of width `dim` (PyTorch's
/// `nn.Embedding`): its gradient is a scatter-add into the rows used.
#[derive(Clone, Debug, Tree)]
pub struct Embedding {
    /// The table, `[vocabulary, dim]`.
    pub table: Tensor,
}

impl Embedding {
    /// A table drawn from the standard normal (PyTorch's default) from `seed`.
    pub fn new(vocabulary: usize, dim: usize, dtype: DType, seed: u64) -> Embedding {
        let mut rng = Rng::new(seed);
        Embedding { table: Tensor::from_array(Array::from_f64_fn(&[vocabulary, dim], dtype, |_| rng.normal())) }
    }

    /// The rows for the i64 indices `ids` of any shape: `[ids.., dim]`. An
    /// index outside the table reads NaN (see [`Tensor::index_select`]).
    #[track_caller]
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        self.table.index_select(0, ids)
    }
}

/// Attention weights `softmax(q kᵀ / √d)` applied to `v`: `q [.., Lq, d]`,
/// `k [.., Lk, d]`, `v [.., Lk, dv]` give `[.., Lq, dv]`. `mask` (bool,
/// broadcasting to `[.., Lq, Lk]`) is true where a query may attend;
/// `causal` also hides from query `i` the keys after position `i` (the
/// top-left-aligned triangle of PyTorch's `is_causal` and JAX's). Masked scores
/// become the dtype's lowest finite value rather than −∞, as in JAX, so a
/// query with every key masked attends uniformly instead of giving NaN.
/// The softmax subtracts each row's maximum, so large scores do not overflow.
///
/// ```
/// # use ferrax::prelude::*;
/// # use ferrax::nn::scaled_dot_product_attention;
/// let q = Tensor::randn(&[2, 4, 8], DType::F64, 0);
/// let out = scaled_dot_product_attention(&q, &q, &q, None, true);
/// assert_eq!(out.shape(), &[2, 4, 8]);
/// ```
///
/// # Panics
/// When the shapes do not fit or the mask is not bool.
#[track_caller]
pub fn scaled_dot_product_attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, causal: bool) -> Tensor {
    let (r, d) = (q.rank(), *q.shape().last().unwrap_or(&0));
    if r < 2 || k.rank() != r || v.rank() != r || k.shape()[r - 1] != d || k.shape()[r - 2] != v.shape()[r - 2] {
        panic!(
            "scaled_dot_product_attention: expected q [.., Lq, d], k [.., Lk, d], v [.., Lk, dv], got {:?}, {:?}, {:?}",
            q.shape(),
            k.shape(),
            v.shape()
        );
    }
    let (lq, lk) = (q.shape()[r - 2], k.shape()[r - 2]);
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    // The scale goes on the smaller of q and the scores, as a product.
    let scale = 1.0 / (d as f64).sqrt();
    let scores = if d <= lk { (q * scale).matmul(&k.permute(&perm)) } else { q.matmul(&k.permute(&perm)) * scale };
    let mut keep: Option<Tensor> = mask.map(|m| {
        if m.dtype() != DType::Bool {
            panic!("scaled_dot_product_attention: the mask must be bool (true: attend), got {}", m.dtype());
        }
        m.clone()
    });
    if causal {
        let allowed: Vec<bool> = (0..lq * lk).map(|i| i % lk <= i / lk).collect();
        let tri = Tensor::from_vec(allowed, &[lq, lk]);
        keep = Some(match keep {
            Some(m) => m.select(&tri, &Tensor::from_vec(vec![false], &[])),
            None => tri,
        });
    }
    let scores = match keep {
        Some(m) => {
            let lowest = if scores.dtype() == DType::F32 { f32::MIN as f64 } else { f64::MIN };
            let lowest = Tensor::full(&[], lowest, scores.dtype());
            m.select(&scores, &lowest)
        }
        None => scores,
    };
    scores.softmax(r - 1).matmul(v)
}

/// Multi-head attention (Vaswani et al., 2017), PyTorch's
/// `nn.MultiheadAttention` with `batch_first`: inputs `[B, L, dim]`,
/// `heads` heads of width `dim / heads`, projections with biases.
#[derive(Clone, Debug, Tree)]
pub struct MultiHeadAttention {
    /// Query projection.
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Output projection.
    pub o: Linear,
    /// The number of heads.
    #[tree(skip)]
    pub heads: usize,
}

impl MultiHeadAttention {
    /// Projections of `dim` features in `heads` heads, Glorot-initialised from `seed`.
    ///
    /// # Panics
    /// When `dim` does not divide by `heads`.
    #[track_caller]
    pub fn new(dim: usize, heads: usize, dtype: DType, seed: u64) -> MultiHeadAttention {
        assert!(heads > 0 && dim % heads == 0, "MultiHeadAttention::new: {dim} features in {heads} heads");
        let lin = |i: u64| Linear::new(dim, dim, Init::GlorotUniform, dtype, seed + i);
        MultiHeadAttention { q: lin(0), k: lin(1), v: lin(2), o: lin(3), heads }
    }

    /// Attention of the queries `x [B, Lq, dim]` over `context [B, Lk, dim]`
    /// (pass `x` again for self-attention); `mask` and `causal` as in
    /// [`scaled_dot_product_attention`] (a `[B, 1, 1, Lk]` mask hides padding).
    #[track_caller]
    pub fn forward(&self, x: &Tensor, context: &Tensor, mask: Option<&Tensor>, causal: bool) -> Tensor {
        let (b, lq, dim) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let h = self.heads;
        let split = |t: Tensor| {
            let l = t.shape()[1];
            t.reshape(&[b, l, h, dim / h]).permute(&[0, 2, 1, 3])
        };
        let (q, k, v) = (split(self.q.forward(x)), split(self.k.forward(context)), split(self.v.forward(context)));
        let heads = scaled_dot_product_attention(&q, &k, &v, mask, causal);
        self.o.forward(&heads.permute(&[0, 2, 1, 3]).reshape(&[b, lq, dim]))
    }
}

/// A pre-norm transformer block (GPT-2's): `x + attn(ln1(x))`, then
/// `x + fc2(gelu(fc1(ln2(x))))` with a hidden width of `4 · dim`.
#[derive(Clone, Debug, Tree)]
pub struct TransformerBlock {
    /// Normalisation before attention.
    pub ln1: super::LayerNorm,
    /// Self-attention.
    pub attn: MultiHeadAttention,
    /// Normalisation before the MLP.
    pub ln2: super::LayerNorm,
    /// The MLP's expansion.
    pub fc1: Linear,
    /// The MLP's projection back.
    pub fc2: Linear,
}

impl TransformerBlock {
    /// A block of width `dim` with `heads` heads, drawn from `seed`.
    ///
    /// # Panics
    /// When `dim` does not divide by `heads`.
    #[track_caller]
    pub fn new(dim: usize, heads: usize, dtype: DType, seed: u64) -> TransformerBlock {
        TransformerBlock {
            ln1: super::LayerNorm::new(&[dim], dtype),
            attn: MultiHeadAttention::new(dim, heads, dtype, seed),
            ln2: super::LayerNorm::new(&[dim], dtype),
            fc1: Linear::new(dim, 4 * dim, Init::GlorotUniform, dtype, seed + 10),
            fc2: Linear::new(4 * dim, dim, Init::GlorotUniform, dtype, seed + 11),
        }
    }

    /// The block applied to `x [B, L, dim]`; `causal` for a language model.
    #[track_caller]
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>, causal: bool) -> Tensor {
        let h = self.ln1.forward(x);
        let x = x + self.attn.forward(&h, &h, mask, causal);
        let h = self.fc1.forward(&self.ln2.forward(&x)).gelu();
        &x + self.fc2.forward(&h)
    }
}

/// A GPT-style language model: token and learned position embeddings,
/// pre-norm [`TransformerBlock`]s with causal attention, a final layer
/// normalisation and a linear read-out to the vocabulary.
///
/// ```
/// # use ferrax::prelude::*;
/// # use ferrax::nn::Gpt;
/// let gpt = Gpt::new(20, 16, 2, 1, 8, DType::F32, 0);
/// let ids = Tensor::from_vec(vec![1i64, 4, 2, 7, 3, 3], &[2, 3]);
/// assert_eq!(gpt.logits(&ids).shape(), &[2, 3, 20]);
/// let g: Gpt = grad(|m: &Gpt| m.loss(&ids, &ids))(&gpt);
/// assert_eq!(g.tokens.table.shape(), &[20, 16]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct Gpt {
    /// Token embeddings, `[vocabulary, dim]`.
    pub tokens: Embedding,
    /// Position embeddings, `[context, dim]`.
    pub positions: Tensor,
    /// The blocks, input first.
    pub blocks: Vec<TransformerBlock>,
    /// The final normalisation.
    pub ln: super::LayerNorm,
    /// The read-out to logits.
    pub head: Linear,
}

impl Gpt {
    /// A model over `vocabulary` tokens with `layers` blocks of width `dim`
    /// and `heads` heads, for sequences of up to `context` tokens; the
    /// embeddings drawn with standard deviation 0.02 (GPT-2's), from `seed`.
    ///
    /// # Panics
    /// When `dim` does not divide by `heads`.
    #[track_caller]
    pub fn new(
        vocabulary: usize,
        dim: usize,
        heads: usize,
        layers: usize,
        context: usize,
        dtype: DType,
        seed: u64,
    ) -> Gpt {
        Gpt {
            tokens: Embedding { table: Tensor::randn(&[vocabulary, dim], dtype, seed) * 0.02 },
            positions: Tensor::randn(&[context, dim], dtype, seed + 1) * 0.02,
            blocks: (0..layers)
                .map(|i| TransformerBlock::new(dim, heads, dtype, seed + 100 * (i as u64 + 1)))
                .collect(),
            ln: super::LayerNorm::new(&[dim], dtype),
            head: Linear::new(dim, vocabulary, Init::GlorotUniform, dtype, seed + 2),
        }
    }

    /// Logits `[B, T, vocabulary]` for token ids `[B, T]`, each position
    /// seeing only those before it.
    ///
    /// # Panics
    /// When `T` exceeds the context.
    #[track_caller]
    pub fn logits(&self, ids: &Tensor) -> Tensor {
        let (t, context) = (ids.shape()[1], self.positions.shape()[0]);
        if t > context {
            panic!("Gpt::logits: {t} tokens exceed the context of {context}; pass at most the last {context}");
        }
        let mut x = self.tokens.forward(ids) + self.positions.slice(0, 0, t);
        for b in &self.blocks {
            x = b.forward(&x, None, true);
        }
        self.head.forward(&self.ln.forward(&x))
    }

    /// The mean cross-entropy of predicting `targets [B, T]` (each input's next token) from `ids [B, T]`.
    #[track_caller]
    pub fn loss(&self, ids: &Tensor, targets: &Tensor) -> Tensor {
        let (b, t) = (ids.shape()[0], ids.shape()[1]);
        let logits = self.logits(ids);
        let v = logits.shape()[2];
        super::softmax_cross_entropy(&logits.reshape(&[b * t, v]), &targets.reshape(&[b * t]))
    }
}
