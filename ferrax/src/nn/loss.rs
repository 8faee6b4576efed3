//! Losses, each the mean over the batch, computed without overflow.

use crate::array::DType;
use crate::core::Tensor;

/// Mean squared error `mean((pred - target)²)`.
///
/// # Panics
/// When the shapes do not broadcast or the dtypes differ.
#[track_caller]
pub fn mse(pred: &Tensor, target: &Tensor) -> Tensor {
    (pred - target).square().mean()
}

/// Softmax cross-entropy of `logits` `[batch, classes]` against integer
/// class labels `[batch]`: the mean of `logsumexp(z) - z[label]`, from a
/// stable log-softmax and a gather of each row's label.
///
/// A label outside `0..classes` (after a negative one counts from the end)
/// makes the loss NaN, the same eagerly, under `vmap` and under `grad` —
/// as JAX's `take_along_axis` does; check labels where they are read.
///
/// # Panics
/// When the labels are not i64 or the shapes disagree.
#[track_caller]
pub fn softmax_cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    if logits.rank() != 2 || labels.rank() != 1 || labels.shape()[0] != logits.shape()[0] {
        panic!(
            "softmax_cross_entropy: expected logits [batch, classes] and labels [batch], got {:?} and {:?}",
            logits.shape(),
            labels.shape()
        );
    }
    if labels.dtype() != DType::I64 {
        panic!(
            "softmax_cross_entropy: labels must be i64 class indices, got {}; convert them with .to_dtype(DType::I64)",
            labels.dtype()
        );
    }
    let picked = logits.log_softmax(1).take_along_axis(&labels.expand_dims(1), 1);
    -picked.mean()
}

/// Binary cross-entropy of raw scores `logits` against targets in `[0, 1]`:
/// the mean of `softplus(z) - y z`, which is `-y ln σ(z) - (1-y) ln(1-σ(z))`
/// without ever forming σ(z).
///
/// # Panics
/// When the shapes do not broadcast or the dtypes differ.
#[track_caller]
pub fn binary_cross_entropy_with_logits(logits: &Tensor, targets: &Tensor) -> Tensor {
    (logits.softplus() - logits * targets).mean()
}
