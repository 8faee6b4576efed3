//! Concrete n-dimensional arrays and the CPU kernels that compute on them.
//!
//! This layer knows nothing of tracing or differentiation: an [`Array`] is a
//! dtype, a shape and a row-major buffer shared behind an `Arc`. Every kernel
//! is generic over the element type and has a contiguous fast path; kernels
//! over large arrays split their work across threads (see [`parallel`]).

mod backend;
mod cholesky;
mod conv;
#[cfg(feature = "cuda")]
pub mod cuda;
mod element;
pub(crate) mod elementwise;
mod format;
pub mod fused;
mod index;
mod layout;
mod lu;
mod math;
mod matmul;
mod norm;
pub(crate) use norm::Sqrt;
mod jacobi;
mod ops;
pub mod parallel;
pub mod pool;
mod qr;
mod random;
mod reduce;
pub mod simd;
mod sort;
mod special;
mod triangular;
mod tridiagonal;

use std::fmt;
use std::sync::Arc;

pub use backend::{backend, backend_of, placed, Backend, Cpu, Device};
pub(crate) use cholesky::cholesky_in_place;
pub use conv::{conv, conv_input_grad, conv_kernel_grad, dilate, window_arg_extreme, ConvGeometry};
pub use element::{Element, Float, Num};
pub use elementwise::broadcast_shapes;
pub(crate) use elementwise::{map_num, zip_num, zip_to};
pub use index::{gather, scatter_add, scatter_add_owned, scatter_add_to_zeros, IndexMode};
pub(crate) use jacobi::{largest, JacobiEigh, JacobiSvd};
pub(crate) use layout::transpose_plane;
pub use layout::{broadcast_to, concat, pad, permute, rev, slice};
pub(crate) use lu::lu_in_place;
pub use math::FastMath;
pub use matmul::matmul;
pub use ops::{BinaryOp, CompareOp, LayoutOp, ReduceOp, UnaryOp};
pub(crate) use qr::householder_qr;
pub use random::Rng;
pub use reduce::{arg_extreme, cumsum, cumulative, reduce_max, reduce_min, reduce_prod, reduce_shape, reduce_sum};
pub use sort::{argsort, sort};
pub use special::Special;
pub(crate) use triangular::{solve_triangular, Field};
pub(crate) use tridiagonal::{tridiagonal_eigh, tridiagonalize};

/// The element type of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// 16-bit IEEE float (`half::f16`): 11 bits of precision, largest 65504.
    F16,
    /// bfloat16 (`half::bf16`): f32's range with 8 bits of precision.
    BF16,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 64-bit signed integer.
    I64,
    /// Boolean.
    Bool,
}

impl DType {
    /// `true` for the floats (`F16`, `BF16`, `F32`, `F64`): the dtypes
    /// that carry derivatives.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    /// `true` for the 16-bit floats, which are stored in 16 bits and
    /// computed in f32 (each operation's result rounded to 16 bits).
    pub fn is_half(self) -> bool {
        matches!(self, DType::F16 | DType::BF16)
    }

    /// Size of one element in bytes.
    pub fn size_of(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::Bool => 1,
        }
    }

    /// The dtype two operands of a binary operation are converted to before
    /// it runs: the least upper bound in JAX's promotion lattice,
    /// `bool < i64 < {f16, bf16} < f32 < f64`, in which f16 and bf16 meet
    /// at f32. So `i64` with `f32` is `f32` (as in JAX, unlike numpy's
    /// `f64`), and `f16` with `bf16` is `f32`.
    ///
    /// ```
    /// # use ferrax::DType;
    /// assert_eq!(DType::I64.promote(DType::F32), DType::F32);
    /// assert_eq!(DType::F32.promote(DType::F64), DType::F64);
    /// assert_eq!(DType::Bool.promote(DType::I64), DType::I64);
    /// assert_eq!(DType::F16.promote(DType::BF16), DType::F32);
    /// assert_eq!(DType::I64.promote(DType::BF16), DType::BF16);
    /// ```
    pub fn promote(self, other: DType) -> DType {
        if (self == DType::F16 && other == DType::BF16) || (self == DType::BF16 && other == DType::F16) {
            return DType::F32;
        }
        if self.lattice_rank() >= other.lattice_rank() {
            self
        } else {
            other
        }
    }

    fn lattice_rank(self) -> u8 {
        match self {
            DType::Bool => 0,
            DType::I64 => 1,
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 3,
            DType::F64 => 4,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::Bool => "bool",
        })
    }
}

/// An abstract value: what is known of an array without its data. Shape
/// rules and traced values work with these.
#[derive(Clone, Debug, Eq)]
pub struct Aval {
    /// The element type.
    pub dtype: DType,
    /// The dimensions, outermost first.
    pub shape: Vec<usize>,
}

impl PartialEq for Aval {
    fn eq(&self, other: &Aval) -> bool {
        self.dtype == other.dtype && same_shape(&self.shape, &other.shape)
    }
}

impl std::hash::Hash for Aval {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.dtype.hash(state);
        self.shape.hash(state);
    }
}

impl Aval {
    /// An abstract value of `dtype` and `shape`.
    pub fn new(dtype: DType, shape: &[usize]) -> Aval {
        Aval { dtype, shape: shape.to_vec() }
    }

    /// Number of elements (1 for a 0-d value).
    pub fn size(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

impl fmt::Display for Aval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.dtype, self.shape)
    }
}

/// The storage of an array: one typed vector, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    /// f16 elements.
    F16(Vec<half::f16>),
    /// bf16 elements.
    BF16(Vec<half::bf16>),
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
    /// i64 elements.
    I64(Vec<i64>),
    /// bool elements.
    Bool(Vec<bool>),
}

impl Buffer {
    fn dtype(&self) -> DType {
        match self {
            Buffer::F16(_) => DType::F16,
            Buffer::BF16(_) => DType::BF16,
            Buffer::F32(_) => DType::F32,
            Buffer::F64(_) => DType::F64,
            Buffer::I64(_) => DType::I64,
            Buffer::Bool(_) => DType::Bool,
        }
    }

    fn len(&self) -> usize {
        match self {
            Buffer::F16(v) => v.len(),
            Buffer::BF16(v) => v.len(),
            Buffer::F32(v) => v.len(),
            Buffer::F64(v) => v.len(),
            Buffer::I64(v) => v.len(),
            Buffer::Bool(v) => v.len(),
        }
    }
}

/// Where an array's elements are: one variant per [`Device`].
#[derive(Debug)]
pub enum Storage {
    /// In host memory.
    Cpu(Buffer),
    /// In a GPU's memory (the `cuda` feature).
    #[cfg(feature = "cuda")]
    Cuda(cuda::DeviceBuffer),
}

impl Drop for Storage {
    fn drop(&mut self) {
        match self {
            Storage::Cpu(buf) => pool::recycle(std::mem::replace(buf, Buffer::Bool(Vec::new()))),
            // The device buffer gives its block to its GPU's cache when it drops.
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => {}
        }
    }
}

/// A concrete n-dimensional array: dtype, shape and row-major data on a device.
///
/// Cloning is cheap (the data is shared); arrays are immutable.
#[derive(Clone)]
pub struct Array {
    aval: Aval,
    storage: Arc<Storage>,
}

/// Applies `$body` to the typed vector inside a buffer, whatever its dtype.
macro_rules! with_buffer {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            $crate::array::Buffer::F16($v) => $body,
            $crate::array::Buffer::BF16($v) => $body,
            $crate::array::Buffer::F32($v) => $body,
            $crate::array::Buffer::F64($v) => $body,
            $crate::array::Buffer::I64($v) => $body,
            $crate::array::Buffer::Bool($v) => $body,
        }
    };
}

pub(crate) use with_buffer;

/// Like [`with_buffer`], wrapping the `Vec` the body returns back into a buffer of the same dtype.
macro_rules! map_buffer {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            $crate::array::Buffer::F16($v) => $crate::array::Buffer::F16($body),
            $crate::array::Buffer::BF16($v) => $crate::array::Buffer::BF16($body),
            $crate::array::Buffer::F32($v) => $crate::array::Buffer::F32($body),
            $crate::array::Buffer::F64($v) => $crate::array::Buffer::F64($body),
            $crate::array::Buffer::I64($v) => $crate::array::Buffer::I64($body),
            $crate::array::Buffer::Bool($v) => $crate::array::Buffer::Bool($body),
        }
    };
}
pub(crate) use map_buffer;

impl Array {
    /// An array from a buffer and a shape.
    ///
    /// # Panics
    /// When the buffer's length is not the product of `shape`.
    #[track_caller]
    pub fn new(shape: &[usize], data: Buffer) -> Array {
        let size: usize = shape.iter().product();
        assert!(
            data.len() == size,
            "Array::new: shape {shape:?} holds {size} elements but the data has {}",
            data.len()
        );
        Array { aval: Aval { dtype: data.dtype(), shape: shape.to_vec() }, storage: Arc::new(Storage::Cpu(data)) }
    }

    /// An array from a typed vector and a shape.
    ///
    /// # Panics
    /// When `v.len()` is not the product of `shape`.
    #[track_caller]
    pub fn from_vec<T: Element>(v: Vec<T>, shape: &[usize]) -> Array {
        Array::new(shape, T::into_buffer(v))
    }

    /// A 0-d array.
    pub fn scalar<T: Element>(v: T) -> Array {
        Array::from_vec(vec![v], &[])
    }

    /// An array of `dtype` and `shape` filled with `value` (cast as by `as`).
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Array {
        let n: usize = shape.iter().product();
        let buf = match dtype {
            DType::F16 => Buffer::F16(pool::filled(n, element::f16_from_f64(value))),
            DType::BF16 => Buffer::BF16(pool::filled(n, element::bf16_from_f64(value))),
            DType::F32 => Buffer::F32(pool::filled(n, value as f32)),
            DType::F64 => Buffer::F64(pool::filled(n, value)),
            DType::I64 => Buffer::I64(pool::filled(n, value as i64)),
            DType::Bool => Buffer::Bool(pool::filled(n, value != 0.0)),
        };
        Array::new(shape, buf)
    }

    /// The elements as a vector of `T`, taken without a copy when this
    /// array is the only owner of its buffer and holds `T`; else the array back.
    pub fn into_unique_vec<T: Element>(mut self) -> Result<Vec<T>, Array> {
        if T::DTYPE != self.dtype() {
            return Err(self);
        }
        match Arc::get_mut(&mut self.storage) {
            Some(Storage::Cpu(buf)) => {
                let buf = std::mem::replace(buf, Buffer::Bool(Vec::new()));
                Ok(T::from_buffer(buf).expect("the dtype was checked"))
            }
            _ => Err(self),
        }
    }

    /// An array of zeros.
    pub fn zeros(shape: &[usize], dtype: DType) -> Array {
        Array::full(shape, 0.0, dtype)
    }

    /// The `n × n` identity.
    pub fn eye(n: usize, dtype: DType) -> Array {
        let mut buf = Array::zeros(&[n, n], dtype);
        let Some(Storage::Cpu(data)) = Arc::get_mut(&mut buf.storage) else {
            unreachable!("a fresh host array is not shared")
        };
        for i in 0..n {
            match data {
                Buffer::F16(v) => v[i * n + i] = half::f16::ONE,
                Buffer::BF16(v) => v[i * n + i] = half::bf16::ONE,
                Buffer::F32(v) => v[i * n + i] = 1.0,
                Buffer::F64(v) => v[i * n + i] = 1.0,
                Buffer::I64(v) => v[i * n + i] = 1,
                Buffer::Bool(v) => v[i * n + i] = true,
            }
        }
        buf
    }

    /// Builds an array of `dtype` from values given as `f64` (cast as by `as`).
    pub fn from_f64_fn(shape: &[usize], dtype: DType, mut f: impl FnMut(usize) -> f64) -> Array {
        let n: usize = shape.iter().product();
        let buf = match dtype {
            DType::F16 => Buffer::F16((0..n).map(|i| element::f16_from_f64(f(i))).collect()),
            DType::BF16 => Buffer::BF16((0..n).map(|i| element::bf16_from_f64(f(i))).collect()),
            DType::F32 => Buffer::F32((0..n).map(|i| f(i) as f32).collect()),
            DType::F64 => Buffer::F64((0..n).map(f).collect()),
            DType::I64 => Buffer::I64((0..n).map(|i| f(i) as i64).collect()),
            DType::Bool => Buffer::Bool((0..n).map(|i| f(i) != 0.0).collect()),
        };
        Array::new(shape, buf)
    }

    /// The abstract value: dtype and shape.
    pub fn aval(&self) -> &Aval {
        &self.aval
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.aval.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.aval.dtype
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        self.aval.size()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.aval.shape.len()
    }

    /// The elements, in host memory. An array on a GPU is copied to the
    /// host at the first call and the copy kept (as JAX's arrays keep theirs).
    pub fn buffer(&self) -> &Buffer {
        match &*self.storage {
            Storage::Cpu(b) => b,
            #[cfg(feature = "cuda")]
            Storage::Cuda(d) => d.host(),
        }
    }

    /// Where the elements are.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The storage, when this array is its only owner.
    #[cfg(feature = "cuda")]
    pub(crate) fn storage_mut(&mut self) -> Option<&mut Storage> {
        Arc::get_mut(&mut self.storage)
    }

    /// An array over storage made by a backend.
    #[cfg(feature = "cuda")]
    pub(crate) fn from_storage(shape: &[usize], dtype: DType, storage: Storage) -> Array {
        Array { aval: Aval { dtype, shape: shape.to_vec() }, storage: Arc::new(storage) }
    }

    /// The device the array lives on.
    pub fn device(&self) -> Device {
        match &*self.storage {
            Storage::Cpu(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            Storage::Cuda(d) => d.device(),
        }
    }

    /// The array on `device`: itself (shared, not copied) when it is there already.
    ///
    /// # Panics
    /// When the device cannot be used (no GPU, or ferrax built without the
    /// `cuda` feature); [`Array::try_to_device`] returns the reason instead.
    #[track_caller]
    pub fn to_device(&self, device: Device) -> Array {
        match self.try_to_device(device) {
            Ok(a) => a,
            Err(why) => panic!("device_put: cannot move an array to {device}: {why}"),
        }
    }

    /// The array on `device`, or why it cannot be put there.
    pub fn try_to_device(&self, device: Device) -> Result<Array, DeviceError> {
        if self.device() == device {
            return Ok(self.clone());
        }
        #[cfg(feature = "cuda")]
        {
            cuda::to_device(self, device).map_err(DeviceError::Cuda)
        }
        #[cfg(not(feature = "cuda"))]
        {
            Err(DeviceError::NotBuilt(device))
        }
    }

    /// The data as a typed slice.
    ///
    /// # Panics
    /// When the array's dtype is not `T`'s.
    #[track_caller]
    pub fn as_slice<T: Element>(&self) -> &[T] {
        match T::slice(self.buffer()) {
            Some(s) => s,
            None => panic!(
                "as_slice: the array holds {} but {} was asked for; convert it with to_dtype first",
                self.dtype(),
                T::DTYPE
            ),
        }
    }

    /// The elements converted to `T` by `as`-cast semantics.
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        if let Some(s) = T::slice(self.buffer()) {
            return s.to_vec();
        }
        with_buffer!(self.buffer(), v => v.iter().map(|x| T::from_f64(x.to_f64())).collect())
    }

    /// The element at flat index `i`, as `f64`.
    pub fn get_f64(&self, i: usize) -> f64 {
        with_buffer!(self.buffer(), v => v[i].to_f64())
    }

    /// The same data with another shape of the same size (no copy).
    ///
    /// # Panics
    /// When the sizes differ.
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Array {
        let n: usize = shape.iter().product();
        assert!(
            n == self.size(),
            "reshape: cannot reshape {:?} ({} elements) to {shape:?} ({n} elements)",
            self.shape(),
            self.size()
        );
        Array { aval: Aval { dtype: self.dtype(), shape: shape.to_vec() }, storage: self.storage.clone() }
    }

    /// The elements converted to `dtype`; a cheap clone when it already is.
    pub fn to_dtype(&self, dtype: DType) -> Array {
        if dtype == self.dtype() {
            return self.clone();
        }
        // Between f32 and the 16-bit floats, which the backend does around
        // every half-precision operation: `half`'s slice conversions (F16C
        // instructions where present) round once, as the path through f64 does.
        use half::slice::HalfFloatSliceExt;
        let buf = match (self.buffer(), dtype) {
            (Buffer::F32(v), DType::F16) => {
                let mut out = pool::filled(v.len(), half::f16::ZERO);
                out.convert_from_f32_slice(v);
                Some(Buffer::F16(out))
            }
            (Buffer::F32(v), DType::BF16) => {
                let mut out = pool::filled(v.len(), half::bf16::ZERO);
                out.convert_from_f32_slice(v);
                Some(Buffer::BF16(out))
            }
            (Buffer::F16(v), DType::F32) => {
                let mut out = pool::filled(v.len(), 0f32);
                v.convert_to_f32_slice(&mut out);
                Some(Buffer::F32(out))
            }
            (Buffer::BF16(v), DType::F32) => {
                let mut out = pool::filled(v.len(), 0f32);
                v.convert_to_f32_slice(&mut out);
                Some(Buffer::F32(out))
            }
            _ => None,
        };
        if let Some(buf) = buf {
            return Array::new(self.shape(), buf);
        }
        // Through f64, which holds every value of the other dtypes exactly,
        // so each conversion rounds once.
        let buf = with_buffer!(self.buffer(), v => match dtype {
            DType::F16 => Buffer::F16(v.iter().map(|x| element::f16_from_f64(x.to_f64())).collect()),
            DType::BF16 => Buffer::BF16(v.iter().map(|x| element::bf16_from_f64(x.to_f64())).collect()),
            DType::F32 => Buffer::F32(v.iter().map(|x| f32::from_f64(x.to_f64())).collect()),
            DType::F64 => Buffer::F64(v.iter().map(|x| x.to_f64()).collect()),
            DType::I64 => Buffer::I64(v.iter().map(|x| i64::from_f64(x.to_f64())).collect()),
            DType::Bool => Buffer::Bool(v.iter().map(|x| x.to_f64() != 0.0).collect()),
        });
        Array::new(self.shape(), buf)
    }

    /// `true` when both have the same dtype, shape and bit-identical elements
    /// (NaN equals NaN of the same payload).
    pub fn bit_eq(&self, other: &Array) -> bool {
        if self.aval != other.aval {
            return false;
        }
        match (self.buffer(), other.buffer()) {
            (Buffer::F32(a), Buffer::F32(b)) => a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            (Buffer::F64(a), Buffer::F64(b)) => a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            (Buffer::F16(a), Buffer::F16(b)) => a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            (Buffer::BF16(a), Buffer::BF16(b)) => a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            (a, b) => a == b,
        }
    }
}

/// Why an array could not be put on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// ferrax was built without the feature of this device (`cuda`).
    NotBuilt(Device),
    /// CUDA could not be used.
    #[cfg(feature = "cuda")]
    Cuda(cuda::CudaError),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::NotBuilt(d) => {
                write!(f, "ferrax was built without GPU support; build with `--features cuda` to use {d}")
            }
            #[cfg(feature = "cuda")]
            DeviceError::Cuda(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DeviceError {}

/// `a == b` for shapes, as a plain loop: slice equality calls `memcmp`,
/// whose fixed cost dominates scalar-sized operations; and glibc's AVX-512
/// `memcmp` reads through a masked load even for zero bytes, which at an
/// empty `Vec`'s dangling address (a scalar's shape) takes a
/// fault-suppression assist of hundreds of cycles (W1 under jit spent a
/// fifth of its time there comparing cache keys).
#[inline]
pub fn same_shape(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Row-major strides (in elements) of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

#[cfg(test)]
mod tests;
