//! Small datasets for examples and tests: parsing, seeded splits,
//! standardisation and minibatches.

use std::fmt;

use crate::array::{DType, Rng};
use crate::core::Tensor;

/// Features and integer labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `[examples, features]`.
    pub x: Tensor,
    /// `[examples]`, i64 class indices.
    pub y: Tensor,
}

/// A data file could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for DataError {}

/// Parses the UCI handwritten digits CSV (as scikit-learn ships it): each
/// line 64 pixel values 0–16 and a label 0–9. Features become f32 in
/// `[0, 16]`.
pub fn parse_digits_csv(text: &str) -> Result<Dataset, DataError> {
    const PIXELS: usize = 64;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let err = |message: String| DataError { line: i + 1, message };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != PIXELS + 1 {
            return Err(err(format!("expected {} comma-separated values, found {}", PIXELS + 1, fields.len())));
        }
        for f in &fields[..PIXELS] {
            let v: f64 = f.parse().map_err(|_| err(format!("pixel value '{f}' is not a number")))?;
            if !(0.0..=16.0).contains(&v) {
                return Err(err(format!("pixel value {v} is outside 0..=16")));
            }
            x.push(v as f32);
        }
        let label: f64 =
            fields[PIXELS].parse().map_err(|_| err(format!("label '{}' is not a number", fields[PIXELS])))?;
        if label.fract() != 0.0 || !(0.0..=9.0).contains(&label) {
            return Err(err(format!("label {label} is not a digit 0..9")));
        }
        y.push(label as i64);
    }
    if y.is_empty() {
        return Err(DataError { line: 0, message: "no examples".into() });
    }
    let n = y.len();
    Ok(Dataset { x: Tensor::from_vec(x, &[n, PIXELS]), y: Tensor::from_vec(y, &[n]) })
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.shape()[0]
    }

    /// `true` with no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The examples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        let i = Tensor::from_vec(idx.iter().map(|&k| k as i64).collect(), &[idx.len()]);
        Dataset { x: self.x.index_select(0, &i), y: self.y.index_select(0, &i) }
    }

    /// A seeded shuffle split: `(train, test)` with `test_fraction` of the examples in `test`.
    ///
    /// # Panics
    /// When `test_fraction` is not in `(0, 1)`.
    #[track_caller]
    pub fn split(&self, test_fraction: f64, seed: u64) -> (Dataset, Dataset) {
        assert!(
            test_fraction > 0.0 && test_fraction < 1.0,
            "split: test_fraction must be in (0, 1), got {test_fraction}"
        );
        let order = permutation(self.len(), seed);
        let n_test = ((self.len() as f64) * test_fraction).round() as usize;
        (self.select(&order[n_test..]), self.select(&order[..n_test]))
    }

    /// Minibatches of `size` examples in a seeded random order (the last may be smaller).
    pub fn batches(&self, size: usize, seed: u64) -> Vec<Dataset> {
        let order = permutation(self.len(), seed);
        order.chunks(size.max(1)).map(|c| self.select(c)).collect()
    }
}

/// A seeded random permutation of `0..n` (Fisher–Yates).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.below(i + 1));
    }
    p
}

/// Per-feature standardisation, fitted on training data.
#[derive(Clone, Debug)]
pub struct Standardizer {
    /// Per-feature mean.
    pub mean: Tensor,
    /// Per-feature standard deviation (1 for constant features).
    pub std: Tensor,
}

impl Standardizer {
    /// The mean and standard deviation of each column of `x` `[examples,
    /// features]`; constant columns get a deviation of 1 so they map to 0.
    pub fn fit(x: &Tensor) -> Standardizer {
        let mean = x.mean_axes(&[0], false);
        let std = x.var_axes(&[0], false).sqrt();
        let is_zero = std.le(&Tensor::full(&[], 1e-12, std.dtype()));
        let std = is_zero.select(&Tensor::ones(&[], std.dtype()), &std);
        Standardizer { mean, std }
    }

    /// `(x - mean) / std`.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        (x - &self.mean) / &self.std
    }
}

/// Fraction of rows of `logits` whose argmax is the label.
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> f64 {
    logits.argmax(1).eq(labels).to_dtype(DType::F64).mean().item()
}

/// Minibatches of a [`Dataset`] epoch after epoch: shuffled with a seed
/// (a new order each epoch), of a fixed size, the last smaller one kept or
/// dropped, each epoch's batches built on a thread one step ahead of the
/// training loop.
///
/// ```
/// use ferrax::prelude::*;
/// use ferrax::data::{Dataset, Loader};
///
/// let data = Dataset { x: Tensor::randn(&[10, 3], DType::F32, 0), y: Tensor::arange(10, DType::I64) };
/// let loader = Loader::new(data, 4).shuffle(7).drop_last(true);
/// assert_eq!(loader.batches_per_epoch(), 2);
/// let sizes: Vec<usize> = loader.epoch(0).map(|b| b.len()).collect();
/// assert_eq!(sizes, vec![4, 4]);
/// ```
#[derive(Clone, Debug)]
pub struct Loader {
    data: Dataset,
    batch: usize,
    seed: Option<u64>,
    drop_last: bool,
}

impl Loader {
    /// Batches of `batch` examples (at least 1) in the dataset's order.
    pub fn new(data: Dataset, batch: usize) -> Loader {
        Loader { data, batch: batch.max(1), seed: None, drop_last: false }
    }

    /// Shuffles each epoch, epoch `e` with the order drawn from `seed + e`.
    pub fn shuffle(mut self, seed: u64) -> Loader {
        self.seed = Some(seed);
        self
    }

    /// Whether a last batch smaller than the others is left out.
    pub fn drop_last(mut self, drop: bool) -> Loader {
        self.drop_last = drop;
        self
    }

    /// The number of batches an epoch gives.
    pub fn batches_per_epoch(&self) -> usize {
        if self.drop_last {
            self.data.len() / self.batch
        } else {
            self.data.len().div_ceil(self.batch)
        }
    }

    /// Epoch `epoch`'s batches, built on a thread that keeps one ready
    /// ahead; dropping the iterator early stops the thread.
    pub fn epoch(&self, epoch: usize) -> Batches {
        let order = match self.seed {
            Some(seed) => permutation(self.data.len(), seed.wrapping_add(epoch as u64)),
            None => (0..self.data.len()).collect(),
        };
        let (data, batch, count) = (self.data.clone(), self.batch, self.batches_per_epoch());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let worker = std::thread::spawn(move || {
            for chunk in order.chunks(batch).take(count) {
                if tx.send(data.select(chunk)).is_err() {
                    return; // the loop stopped early
                }
            }
        });
        Batches { rx: Some(rx), worker: Some(worker) }
    }
}

/// One epoch of a [`Loader`], as an iterator of batches.
#[derive(Debug)]
pub struct Batches {
    rx: Option<std::sync::mpsc::Receiver<Dataset>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Iterator for Batches {
    type Item = Dataset;

    fn next(&mut self) -> Option<Dataset> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the channel first makes a blocked send fail, so the join ends.
        self.rx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
