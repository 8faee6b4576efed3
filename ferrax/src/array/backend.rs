//! The device seam: where arrays live, and the one trait through which
//! primitives reach the kernels of a device.
//!
//! Every method takes op values ([`UnaryOp`], [`ReduceOp`], [`LayoutOp`], …),
//! never one method per operation, so a backend implements a table, not a
//! growing list. The CPU backend is the kernels of this module's siblings.
//! Placement follows JAX: a computation runs on the device of its inputs,
//! and inputs on two different devices are an error naming both.

use std::fmt;

use super::fused::FusedProgram;
use super::ops::{convert_cpu, select_cpu, BinaryOp, CompareOp, LayoutOp, ReduceOp, UnaryOp};
use super::{broadcast_shapes, Array, ConvGeometry, DType, IndexMode};

/// A device arrays can live on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Device {
    /// The host's processors.
    #[default]
    Cpu,
    /// NVIDIA GPU number `n` (ferrax built with the `cuda` feature; see
    /// `ferrax::cuda::available`).
    Cuda(usize),
}

impl Device {
    /// The first GPU, `cuda:0`, when ferrax was built with the `cuda`
    /// feature and a GPU can be used here; else `None`.
    ///
    /// ```
    /// # use ferrax::Device;
    /// let device = Device::first_gpu().unwrap_or(Device::Cpu);
    /// ```
    pub fn first_gpu() -> Option<Device> {
        #[cfg(feature = "cuda")]
        if super::cuda::available() {
            return Some(Device::Cuda(0));
        }
        None
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The kernels of one device. Inputs have been checked by the primitives'
/// shape rules: dtypes agree where they must, shapes broadcast, axes exist.
pub trait Backend: Send + Sync {
    /// The device whose arrays this backend computes on.
    fn device(&self) -> Device;
    /// An elementwise function of one array.
    fn unary(&self, op: UnaryOp, x: &Array) -> Array;
    /// An elementwise function of two arrays of one dtype, broadcasting.
    fn binary(&self, op: BinaryOp, a: &Array, b: &Array) -> Array;
    /// An elementwise comparison, broadcasting, giving bool.
    fn compare(&self, op: CompareOp, a: &Array, b: &Array) -> Array;
    /// `cond ? a : b`, all three broadcasting.
    fn select(&self, cond: &Array, a: &Array, b: &Array) -> Array;
    /// The elements converted to `dtype` (`as` semantics).
    fn convert(&self, x: &Array, dtype: DType) -> Array;
    /// A reduction over `axes` (sorted, distinct), which are removed.
    fn reduce(&self, op: ReduceOp, x: &Array, axes: &[usize]) -> Array;
    /// The index of the first extreme along `axis` (`op` is `Max` or `Min`), as i64.
    fn arg_reduce(&self, op: ReduceOp, x: &Array, axis: usize) -> Array;
    /// The running reduction along `axis`, from the end when `reverse`.
    fn scan(&self, op: ReduceOp, x: &Array, axis: usize, reverse: bool) -> Array;
    /// A change of layout.
    fn layout(&self, op: &LayoutOp, x: &Array) -> Array;
    /// The arrays joined along `axis`.
    fn concat(&self, xs: &[&Array], axis: usize) -> Array;
    /// Entries of `x` along `axis` picked by i64 indices.
    fn gather(&self, x: &Array, axis: usize, idx: &Array, mode: IndexMode) -> Array;
    /// `x` with `updates` added at the positions the indices pick.
    fn scatter_add(&self, x: &Array, axis: usize, idx: &Array, updates: &Array, mode: IndexMode) -> Array;
    /// The runs along `axis` sorted, stably (NaN last), and the indices (i64)
    /// that sort them; largest first when `descending`.
    fn sort(&self, x: &Array, axis: usize, descending: bool) -> (Array, Array);
    /// Batched `op(a) @ op(b)`, `op` transposing the last two axes where flagged.
    fn matmul(&self, a: &Array, b: &Array, ta: bool, tb: bool) -> Array;
    /// `x [N, C, S..]` cross-correlated with `w [O, C / groups, K..]`, the
    /// window placed by `geo`: `[N, O, P..]`.
    fn conv(&self, x: &Array, w: &Array, geo: &ConvGeometry, groups: usize) -> Array;
    /// The kernel's gradient of [`Backend::conv`]: `[O, C / groups, window..]`
    /// from the input `x [N, C, S..]` and the output's cotangent `ct [N, O, P..]`.
    fn conv_kernel_grad(&self, x: &Array, ct: &Array, window: &[usize], geo: &ConvGeometry, groups: usize) -> Array;
    /// The input's gradient of [`Backend::conv`]: `[N, C, input..]` from the
    /// output's cotangent `ct [N, O, P..]` and the kernel `w [O, C / groups, K..]`.
    fn conv_input_grad(&self, ct: &Array, w: &Array, geo: &ConvGeometry, groups: usize, input: &[usize]) -> Array;
    /// The i64 flat index of the first extreme (`op` is `Max` or `Min`) in
    /// each window; one window extent, stride and padding per axis of `x`.
    fn window_arg_extreme(
        &self,
        x: &Array,
        op: ReduceOp,
        window: &[usize],
        strides: &[usize],
        padding: &[(usize, usize)],
    ) -> Array;
    /// `x` standardised over runs of `n` trailing elements: `(x - mean)
    /// / √(var + eps)` per run, the statistics two-pass (the mean, then the
    /// mean square of the centred values). A backend without a kernel of its
    /// own computes it with its reductions and elementwise operations, on
    /// the device.
    fn standardize(&self, x: &Array, n: usize, eps: f64) -> Array {
        standardize_by_ops(self, x, n, eps)
    }
    /// The tangent map of [`Backend::standardize`] at `x` applied to `t`:
    /// `r (t - mean(t) - y mean(y t))` per run, `y` the standardised run and
    /// `r` its reciprocal standard deviation (a symmetric map: its own
    /// transpose). By the backend's own operations unless it has a kernel.
    fn standardize_tangent(&self, t: &Array, x: &Array, n: usize, eps: f64) -> Array {
        standardize_tangent_by_ops(self, t, x, n, eps)
    }
    /// Softmax over runs of `n` trailing elements, `e / Σe` with `e = exp(x
    /// - max x)` per run. By the backend's own operations unless it has a kernel.
    fn softmax(&self, x: &Array, n: usize) -> Array {
        softmax_by_ops(self, x, n)
    }
    /// The tangent map of [`Backend::softmax`] at the point whose softmax is
    /// `y`, applied to `t`: `y (t - Σ y t)` per run (symmetric: its own
    /// transpose). By the backend's own operations unless it has a kernel.
    fn softmax_tangent(&self, t: &Array, y: &Array, n: usize) -> Array {
        softmax_tangent_by_ops(self, t, y, n)
    }
    /// A fused elementwise program (jit's fusion pass) on `ins`, arrays of
    /// `dtype` (or bool conditions) broadcasting to `shape`. The CPU runs
    /// it over cache-sized tiles; a GPU as one generated kernel.
    fn fused(&self, program: &FusedProgram, ins: &[&Array], dtype: DType, shape: &[usize]) -> Vec<Array> {
        program.run(ins, dtype, shape)
    }
}

/// [`Backend::standardize`] by `b`'s reductions and elementwise operations.
pub(super) fn standardize_by_ops<B: Backend + ?Sized>(b: &B, x: &Array, n: usize, eps: f64) -> Array {
    standardized_rows(b, x, n, eps).map_or_else(|| x.clone(), |(y, _)| y.reshape(x.shape()))
}

/// [`Backend::standardize_tangent`] by `b`'s reductions and elementwise operations.
pub(super) fn standardize_tangent_by_ops<B: Backend + ?Sized>(
    b: &B,
    t: &Array,
    x: &Array,
    n: usize,
    eps: f64,
) -> Array {
    let Some((y, r)) = standardized_rows(b, x, n, eps) else { return t.clone() };
    let t = t.reshape(y.shape());
    let yt_mean = run_mean(b, &b.binary(BinaryOp::Mul, &y, &t));
    let centered = b.binary(BinaryOp::Sub, &t, &run_mean(b, &t));
    let out = b.binary(BinaryOp::Sub, &centered, &b.binary(BinaryOp::Mul, &y, &yt_mean));
    b.binary(BinaryOp::Mul, &out, &r).reshape(x.shape())
}

/// `x` viewed as `[rows, n]`, its runs standardised as the CPU kernel does
/// it (two-pass statistics), and each run's reciprocal standard deviation
/// (`[rows, 1]`); `None` when there is nothing to standardise.
fn standardized_rows<B: Backend + ?Sized>(b: &B, x: &Array, n: usize, eps: f64) -> Option<(Array, Array)> {
    if x.size() == 0 || n == 0 {
        return None;
    }
    let xv = x.reshape(&[x.size() / n, n]);
    let centered = b.binary(BinaryOp::Sub, &xv, &run_mean(b, &xv));
    let var = run_mean(b, &b.binary(BinaryOp::Mul, &centered, &centered));
    let std = b.unary(UnaryOp::Sqrt, &b.binary(BinaryOp::Add, &var, &scalar_on(b, eps, x.dtype())));
    let r = b.binary(BinaryOp::Div, &scalar_on(b, 1.0, x.dtype()), &std);
    Some((b.binary(BinaryOp::Mul, &centered, &r), r))
}

/// [`Backend::softmax`] by `b`'s reductions and elementwise operations.
pub(super) fn softmax_by_ops<B: Backend + ?Sized>(b: &B, x: &Array, n: usize) -> Array {
    if x.size() == 0 || n == 0 {
        return x.clone();
    }
    let rows = x.size() / n;
    let xv = x.reshape(&[rows, n]);
    let m = b.reduce(ReduceOp::Max, &xv, &[1]).reshape(&[rows, 1]);
    let e = b.unary(UnaryOp::Exp, &b.binary(BinaryOp::Sub, &xv, &m));
    let s = b.reduce(ReduceOp::Sum, &e, &[1]).reshape(&[rows, 1]);
    let r = b.binary(BinaryOp::Div, &scalar_on(b, 1.0, x.dtype()), &s);
    b.binary(BinaryOp::Mul, &e, &r).reshape(x.shape())
}

/// [`Backend::softmax_tangent`] by `b`'s reductions and elementwise operations.
pub(super) fn softmax_tangent_by_ops<B: Backend + ?Sized>(b: &B, t: &Array, y: &Array, n: usize) -> Array {
    if y.size() == 0 || n == 0 {
        return t.clone();
    }
    let rows = y.size() / n;
    let (tv, yv) = (t.reshape(&[rows, n]), y.reshape(&[rows, n]));
    let s = b.reduce(ReduceOp::Sum, &b.binary(BinaryOp::Mul, &yv, &tv), &[1]).reshape(&[rows, 1]);
    b.binary(BinaryOp::Mul, &yv, &b.binary(BinaryOp::Sub, &tv, &s)).reshape(y.shape())
}

/// The mean of each row of a `[rows, n]` array, as `[rows, 1]`.
fn run_mean<B: Backend + ?Sized>(b: &B, x: &Array) -> Array {
    let (rows, n) = (x.shape()[0], x.shape()[1]);
    let sum = b.reduce(ReduceOp::Sum, x, &[1]).reshape(&[rows, 1]);
    b.binary(BinaryOp::Div, &sum, &scalar_on(b, n as f64, x.dtype()))
}

/// A 0-d array of `dtype` holding `v`, on `b`'s device.
fn scalar_on<B: Backend + ?Sized>(b: &B, v: f64, dtype: DType) -> Array {
    Array::full(&[], v, dtype).to_device(b.device())
}

/// The CPU kernels.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

/// Half-precision arrays are stored in 16 bits and computed in f32: each
/// operation widens its operands (exactly), runs the f32 kernel — whose
/// sums and matrix products accumulate in f32 — and rounds its result once
/// to the operands' dtype. Storage-only operations (layout, concatenation,
/// gathers, selection) move the 16-bit elements as they are.
impl Backend for Cpu {
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn unary(&self, op: UnaryOp, x: &Array) -> Array {
        narrow(op.cpu(&wide(x)), x.dtype())
    }
    fn binary(&self, op: BinaryOp, a: &Array, b: &Array) -> Array {
        narrow(op.cpu(&wide(a), &wide(b), &out_shape(op.name(), a, b)), a.dtype())
    }
    fn compare(&self, op: CompareOp, a: &Array, b: &Array) -> Array {
        op.cpu(&wide(a), &wide(b), &out_shape(op.name(), a, b))
    }
    fn select(&self, cond: &Array, a: &Array, b: &Array) -> Array {
        let ab = out_shape("select", a, b);
        let out = broadcast_shapes(cond.shape(), &ab).expect("checked by the shape rule");
        select_cpu(cond, a, b, &out)
    }
    fn convert(&self, x: &Array, dtype: DType) -> Array {
        convert_cpu(x, dtype)
    }
    fn reduce(&self, op: ReduceOp, x: &Array, axes: &[usize]) -> Array {
        let w = wide(x);
        let y = match op {
            ReduceOp::Sum => super::reduce::reduce_sum(&w, axes),
            ReduceOp::Prod => super::reduce::reduce_prod(&w, axes),
            ReduceOp::Max => super::reduce::reduce_max(&w, axes),
            ReduceOp::Min => super::reduce::reduce_min(&w, axes),
        };
        narrow(y, x.dtype())
    }
    fn arg_reduce(&self, op: ReduceOp, x: &Array, axis: usize) -> Array {
        super::reduce::arg_extreme(&wide(x), axis, op)
    }
    fn standardize(&self, x: &Array, n: usize, eps: f64) -> Array {
        narrow(super::norm::standardize(&wide(x), n, eps), x.dtype())
    }
    fn standardize_tangent(&self, t: &Array, x: &Array, n: usize, eps: f64) -> Array {
        narrow(super::norm::standardize_tangent(&wide(t), &wide(x), n, eps), x.dtype())
    }
    fn softmax(&self, x: &Array, n: usize) -> Array {
        narrow(super::norm::softmax(&wide(x), n), x.dtype())
    }
    fn softmax_tangent(&self, t: &Array, y: &Array, n: usize) -> Array {
        narrow(super::norm::softmax_tangent(&wide(t), &wide(y), n), y.dtype())
    }
    fn scan(&self, op: ReduceOp, x: &Array, axis: usize, reverse: bool) -> Array {
        narrow(super::reduce::cumulative(&wide(x), axis, reverse, op), x.dtype())
    }
    fn layout(&self, op: &LayoutOp, x: &Array) -> Array {
        op.cpu(x)
    }
    fn concat(&self, xs: &[&Array], axis: usize) -> Array {
        super::layout::concat(xs, axis)
    }
    fn gather(&self, x: &Array, axis: usize, idx: &Array, mode: IndexMode) -> Array {
        super::index::gather(x, axis, idx, mode)
    }
    fn scatter_add(&self, x: &Array, axis: usize, idx: &Array, updates: &Array, mode: IndexMode) -> Array {
        narrow(super::index::scatter_add(&wide(x), axis, idx, &wide(updates), mode), x.dtype())
    }
    fn sort(&self, x: &Array, axis: usize, descending: bool) -> (Array, Array) {
        let (values, order) = super::sort::sort(&wide(x), axis, descending);
        (narrow(values, x.dtype()), order)
    }
    fn matmul(&self, a: &Array, b: &Array, ta: bool, tb: bool) -> Array {
        narrow(super::matmul::matmul(&wide(a), &wide(b), ta, tb), a.dtype())
    }
    fn conv(&self, x: &Array, w: &Array, geo: &ConvGeometry, groups: usize) -> Array {
        narrow(super::conv::conv(&wide(x), &wide(w), geo, groups), x.dtype())
    }
    fn conv_kernel_grad(&self, x: &Array, ct: &Array, window: &[usize], geo: &ConvGeometry, groups: usize) -> Array {
        narrow(super::conv::conv_kernel_grad(&wide(x), &wide(ct), window, geo, groups), x.dtype())
    }
    fn conv_input_grad(&self, ct: &Array, w: &Array, geo: &ConvGeometry, groups: usize, input: &[usize]) -> Array {
        narrow(super::conv::conv_input_grad(&wide(ct), &wide(w), geo, groups, input), ct.dtype())
    }
    fn window_arg_extreme(
        &self,
        x: &Array,
        op: ReduceOp,
        window: &[usize],
        strides: &[usize],
        padding: &[(usize, usize)],
    ) -> Array {
        super::conv::window_arg_extreme(&wide(x), op, window, strides, padding)
    }
}

/// `x` widened to f32 when it is half precision (exactly: every f16 and
/// bf16 value is an f32), else `x` itself.
fn wide(x: &Array) -> std::borrow::Cow<'_, Array> {
    if x.dtype().is_half() {
        std::borrow::Cow::Owned(x.to_dtype(DType::F32))
    } else {
        std::borrow::Cow::Borrowed(x)
    }
}

/// The f32 result of a widened operation rounded back to the operands'
/// half-precision dtype; anything else as it is.
fn narrow(y: Array, operands: DType) -> Array {
    if operands.is_half() && y.dtype() == DType::F32 {
        y.to_dtype(operands)
    } else {
        y
    }
}

fn out_shape(op: &str, a: &Array, b: &Array) -> Vec<usize> {
    match broadcast_shapes(a.shape(), b.shape()) {
        Some(s) => s,
        None => unreachable!("{op}: the shape rule admits only broadcastable operands"),
    }
}

/// The backend of a device.
///
/// # Panics
/// For a GPU when ferrax was built without the `cuda` feature.
#[track_caller]
pub fn backend(device: Device) -> &'static dyn Backend {
    match device {
        Device::Cpu => &Cpu,
        #[cfg(feature = "cuda")]
        Device::Cuda(n) => {
            static GPUS: [super::cuda::Cuda; 64] = {
                let mut gpus = [super::cuda::Cuda(0); 64];
                let mut i = 0;
                while i < 64 {
                    gpus[i] = super::cuda::Cuda(i);
                    i += 1;
                }
                gpus
            };
            match GPUS.get(n) {
                Some(g) => g,
                None => panic!("cuda:{n}: ferrax addresses GPUs 0 to 63"),
            }
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(n) => {
            panic!("cuda:{n}: ferrax was built without GPU support; build with `--features cuda`")
        }
    }
}

/// `y`, an output of the primitive named `prim` computed for an operation
/// placed on `device`, moved there when its kernels left it on the host
/// (linear algebra, which runs on the host whatever the device, and values
/// a primitive makes on the host). The one primitive whose result belongs
/// elsewhere, `device_put`, is not placed.
pub fn placed(prim: &str, y: Array, device: Device) -> Array {
    if device == Device::Cpu || y.device() == device || prim == "device_put" {
        y
    } else {
        y.to_device(device)
    }
}

/// The backend a computation on `ins` runs on, JAX's placement rule: the
/// device of the inputs on a GPU, which host arrays (constants, values made
/// on the host) follow; the CPU when all are on the host.
///
/// # Panics
/// When the inputs live on two different GPUs; the message names both.
#[track_caller]
pub fn backend_of(ins: &[&Array]) -> &'static dyn Backend {
    let mut device = Device::Cpu;
    for a in ins {
        match (device, a.device()) {
            (_, Device::Cpu) => {}
            (Device::Cpu, d) => device = d,
            (d, e) if d != e => {
                panic!("an operation mixes arrays on {d} and on {e}; move them to one device first with device_put")
            }
            _ => {}
        }
    }
    backend(device)
}
