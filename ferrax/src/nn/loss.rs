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
/// # Panics
/// When the labels are not i64 or the shapes disagree; on evaluation, when a
/// label is outside `0..classes`.
#[track_caller]
pub fn softmax_cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    assert!(
        logits.rank() == 2 && labels.rank() == 1 && labels.shape()[0] == logits.shape()[0],
        "softmax_cross_entropy: expected logits [batch, classes] and labels [batch], got {:?} and {:?}",
        logits.shape(),
        labels.shape()
    );
    assert!(
        labels.dtype() == DType::I64,
        "softmax_cross_entropy: labels must be i64 class indices, got {}; convert them with .to_dtype(DType::I64)",
        labels.dtype()
    );
    let (n, c) = (logits.shape()[0], logits.shape()[1]);
    if let Some(a) = labels.array() {
        if let Some(bad) = a.as_slice::<i64>().iter().find(|&&l| l < 0 || l as usize >= c) {
            panic!("softmax_cross_entropy: label {bad} is out of range for {c} classes");
        }
    }
    // Row i's label sits at flat position i·c + label.
    let flat = Tensor::arange(n, DType::I64) * c as f64 + labels;
    let picked = logits.log_softmax(1).reshape(&[n * c]).index_select(0, &flat);
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
