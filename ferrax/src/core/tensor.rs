//! Building tensors from data and reading data back.

use std::fmt;

use crate::array::{Array, DType, Device, Element, Rng};

use super::trace::escaped_message;
use super::{is_live, Repr, Tensor, TracerKind};

/// Data from outside the program did not fit the shape asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// The shape asked for.
    pub shape: Vec<usize>,
    /// Elements that shape holds.
    pub expected: usize,
    /// Elements given.
    pub got: usize,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shape {:?} holds {} elements but {} were given", self.shape, self.expected, self.got)
    }
}

impl std::error::Error for ShapeError {}

impl From<Array> for Tensor {
    fn from(a: Array) -> Tensor {
        Tensor::from_array(a)
    }
}

impl From<f64> for Tensor {
    fn from(v: f64) -> Tensor {
        Tensor::scalar(v)
    }
}

impl From<f32> for Tensor {
    fn from(v: f32) -> Tensor {
        Tensor::scalar(v)
    }
}

impl Tensor {
    /// A tensor from row-major data; the dtype follows the element type.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.shape(), &[2, 2]);
    /// ```
    ///
    /// # Panics
    /// When `data.len()` is not the number of elements of `shape`; use
    /// [`Tensor::try_from_vec`] for data from outside the program.
    #[track_caller]
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Tensor {
        match Tensor::try_from_vec(data, shape) {
            Ok(t) => t,
            Err(e) => panic!("Tensor::from_vec: {e}; pass a shape whose product is the data's length"),
        }
    }

    /// Like [`Tensor::from_vec`], returning an error when the length does not match.
    pub fn try_from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor, ShapeError> {
        let expected: usize = shape.iter().product();
        if data.len() != expected {
            return Err(ShapeError { shape: shape.to_vec(), expected, got: data.len() });
        }
        Ok(Tensor::from_array(Array::from_vec(data, shape)))
    }

    /// A 0-d tensor.
    pub fn scalar<T: Element>(v: T) -> Tensor {
        Tensor::from_array(Array::scalar(v))
    }

    /// A tensor filled with `value` (cast to `dtype` as by `as`).
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Tensor {
        Tensor::from_array(Array::full(shape, value, dtype))
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 0.0, dtype)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    /// Zeros of this tensor's shape and dtype (a concrete value, never traced).
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape(), self.dtype())
    }

    /// The `n × n` identity matrix.
    pub fn eye(n: usize, dtype: DType) -> Tensor {
        Tensor::from_array(Array::eye(n, dtype))
    }

    /// `0, 1, …, n-1`.
    pub fn arange(n: usize, dtype: DType) -> Tensor {
        Tensor::from_array(Array::from_f64_fn(&[n], dtype, |i| i as f64))
    }

    /// `n` evenly spaced values from `start` to `stop` inclusive.
    pub fn linspace(start: f64, stop: f64, n: usize, dtype: DType) -> Tensor {
        let step = if n > 1 { (stop - start) / (n - 1) as f64 } else { 0.0 };
        Tensor::from_array(Array::from_f64_fn(&[n], dtype, |i| start + step * i as f64))
    }

    /// Standard normal samples, reproducible from `seed`.
    pub fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        Tensor::from_array(Array::from_f64_fn(shape, dtype, |_| rng.normal()))
    }

    /// Uniform samples in `[lo, hi)`, reproducible from `seed`.
    pub fn rand_uniform(shape: &[usize], lo: f64, hi: f64, dtype: DType, seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        Tensor::from_array(Array::from_f64_fn(shape, dtype, |_| rng.uniform_in(lo, hi)))
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.aval().shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.aval().dtype
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.aval().rank()
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        self.aval().size()
    }

    /// The device the tensor's values live on. A tracer reports the device
    /// of the value it stands for; a value being staged (`make_graph`, the
    /// tangents of `linearize`) has none yet and reports the default device,
    /// where the staged program runs today.
    pub fn device(&self) -> Device {
        match &*self.0 {
            Repr::Array(a) => a.device(),
            Repr::Tracer(t) => match &t.kind {
                TracerKind::Jvp { primal, .. } => primal.device(),
                TracerKind::Batch { value, .. } => value.device(),
                TracerKind::Staged { .. } => Device::default(),
            },
        }
    }

    /// `true` for a traced value.
    pub fn is_tracer(&self) -> bool {
        matches!(&*self.0, Repr::Tracer(_))
    }

    /// The concrete value. Under `jvp` and `grad` this is the primal value,
    /// so ordinary Rust control flow on values works there.
    ///
    /// # Panics
    /// Under `vmap`, where the tensor stands for a whole batch, and under
    /// staging transformations (`make_graph`, the tangent side of
    /// `linearize`), where values are not known while tracing; and for a
    /// tracer that escaped its transformation.
    #[track_caller]
    pub fn to_array(&self) -> Array {
        let mut cur = self;
        loop {
            match &*cur.0 {
                Repr::Array(a) => return a.clone(),
                Repr::Tracer(t) => {
                    if !is_live(t.frame) {
                        panic!("{}", escaped_message(t.kind.name(), t.frame));
                    }
                    match &t.kind {
                        TracerKind::Jvp { primal, .. } => cur = primal,
                        TracerKind::Batch { .. } => panic!(
                            "cannot read the values of a tensor inside vmap: it stands for a whole \
                             batch of values. Use tensor operations instead (select or cond for \
                             branches, while_loop for a loop that runs until a test fails), or read \
                             the values outside vmap."
                        ),
                        TracerKind::Staged { .. } => panic!(
                            "cannot read the values of a tensor while it is being staged (a body of \
                             scan, fori_loop, while_loop, cond or switch; make_graph; the tangents of \
                             linearize and vjp): only its shape {} is known. Use tensor operations \
                             instead (select or cond for branches, while_loop for a loop that runs \
                             until a test fails).",
                            t.aval
                        ),
                    }
                }
            }
        }
    }

    /// The elements in row-major order, converted to `T` as by `as`.
    ///
    /// # Panics
    /// As [`Tensor::to_array`].
    #[track_caller]
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        self.to_array().to_vec()
    }

    /// The single element as `f64`.
    ///
    /// # Panics
    /// When the tensor has more or fewer than one element; as [`Tensor::to_array`].
    #[track_caller]
    pub fn item(&self) -> f64 {
        let a = self.to_array();
        assert!(
            a.size() == 1,
            "item: expected a tensor with one element, got shape {:?}; reduce it first (sum, mean) or use to_vec",
            a.shape()
        );
        a.get_f64(0)
    }
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Repr::Array(a) => fmt::Display::fmt(a, f),
            Repr::Tracer(t) => write!(f, "Traced<{}>({})", t.kind.name(), t.aval),
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Repr::Array(a) => {
                write!(f, "Tensor({}, ", a.aval())?;
                fmt::Display::fmt(a, f)?;
                f.write_str(")")
            }
            Repr::Tracer(t) => write!(f, "Traced<{}, level {}>({})", t.kind.name(), t.frame.level, t.aval),
        }
    }
}
