//! The CUDA backend: each [`Backend`] method as launches of generated
//! kernels (or cuBLAS) on the GPU's stream.

use std::fmt;
use std::sync::Arc;

use cudarc::cublas::sys as cublas_sys;
use cudarc::driver::{CudaFunction, DeviceRepr, LaunchConfig, PushKernelArg};

use super::codegen::{self, KernelKey, RowKernel};
use super::conv::{self, Columns, ConvDims, WindowDims};
use super::dims::{concat_plan, layout_plan, row_major, Dims};
use super::{device_buffer, gpu_or_panic, upload, Gpu};
use crate::array::backend::{Backend, Cpu, Device};
use crate::array::fused::{FusedOp, FusedProgram};
use crate::array::ops::{BinaryOp, CompareOp, LayoutOp, ReduceOp, UnaryOp};
use crate::array::{broadcast_shapes, Array, ConvGeometry, DType, IndexMode};

pub(super) fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 1 << 16) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 }
}

/// One kernel launch: its arguments as device addresses and values.
pub(super) struct Launch<'a> {
    gpu: &'a Gpu,
    what: &'a dyn fmt::Debug,
    args: cudarc::driver::LaunchArgs<'a>,
}

impl<'a> Launch<'a> {
    pub(super) fn new(gpu: &'a Gpu, f: &'a CudaFunction, what: &'a dyn fmt::Debug) -> Launch<'a> {
        Launch { gpu, what, args: gpu.stream.launch_builder(f) }
    }
    pub(super) fn arg<T: DeviceRepr>(mut self, v: &'a T) -> Self {
        self.args.arg(v);
        self
    }
    /// Each of `vs`, in order, as parameters.
    pub(super) fn args<T: DeviceRepr>(mut self, vs: &'a [T]) -> Self {
        for v in vs {
            self.args.arg(v);
        }
        self
    }
    pub(super) fn run(mut self, cfg: LaunchConfig) {
        // SAFETY: each kernel's parameters are pushed in its generated
        // signature's order and types; pointers address blocks sized for
        // the index space the kernel walks.
        unsafe { self.args.launch(cfg) }
            .unwrap_or_else(|e| panic!("cuda:{}: launching kernel {:?} failed: {e:?}", self.gpu.ordinal, self.what));
    }
}

/// The CUDA backend of GPU `ordinal`.
#[derive(Clone, Copy, Debug)]
pub struct Cuda(pub usize);

impl Cuda {
    fn gpu(&self, op: &str) -> Arc<Gpu> {
        gpu_or_panic(self.0, op)
    }

    /// A computation the CPU kernels do: on host copies of the operands,
    /// the result put on this GPU.
    fn on_host(&self, op: &str, f: impl FnOnce(&Cpu) -> Array) -> Array {
        upload(&self.gpu(op), &f(&Cpu))
    }

    /// Half-precision operands widened to f32 on the device (the CPU backend's
    /// rule: compute in f32, round once).
    fn wide(&self, x: Array) -> Array {
        if x.dtype().is_half() {
            self.convert(&x, DType::F32)
        } else {
            x
        }
    }

    fn narrow(&self, y: Array, dtype: DType) -> Array {
        if dtype.is_half() && y.dtype() == DType::F32 {
            self.convert(&y, dtype)
        } else {
            y
        }
    }

    /// `[outer, len, inner]` kernels (strided reductions, arg reductions, scans).
    fn run_3d(&self, g: &Arc<Gpu>, key: KernelKey, x: &Array, out: &Array, axis: usize) {
        let s = x.shape();
        let (outer, len, inner) = (
            s[..axis].iter().product::<usize>() as i64,
            s[axis] as i64,
            s[axis + 1..].iter().product::<usize>() as i64,
        );
        let (xp, op) = (device_buffer(x).ptr(), device_buffer(out).ptr());
        let f = g.function(key);
        Launch::new(g, &f, &key)
            .arg(&xp)
            .arg(&op)
            .arg(&outer)
            .arg(&len)
            .arg(&inner)
            .run(grid((outer * inner) as usize));
    }

    /// `dst` (on the device) gets `src`'s elements through `dims`.
    fn copy(&self, g: &Arc<Gpu>, src: &Array, dst: &Array, n: usize, dims: Dims) {
        if n == 0 {
            return;
        }
        let key = KernelKey::Copy(src.dtype().size_of());
        let (sp, dp, n64) = (device_buffer(src).ptr(), device_buffer(dst).ptr(), n as i64);
        let f = g.function(key);
        Launch::new(g, &f, &key).arg(&sp).arg(&dp).arg(&n64).arg(&dims).run(grid(n));
    }

    /// Moves `x`'s axes so that `axes` come last, in order.
    fn axes_last(&self, x: &Array, axes: &[usize]) -> Array {
        let mut perm: Vec<usize> = (0..x.rank()).filter(|a| !axes.contains(a)).collect();
        perm.extend_from_slice(axes);
        self.layout(&LayoutOp::Permute(perm), x)
    }

    /// Runs a fused elementwise program as one kernel.
    pub(crate) fn fused(&self, program: &FusedProgram, ins: &[&Array], dtype: DType, shape: &[usize]) -> Vec<Array> {
        let g = self.gpu("fused");
        let compute = if dtype.is_half() { DType::F32 } else { dtype };
        let ins: Vec<Array> = ins
            .iter()
            .map(|x| {
                let x = g.here(x, "fused");
                if x.dtype() == dtype {
                    self.wide(x)
                } else {
                    x
                }
            })
            .collect();
        // A reduction of a comparison's mask is not one the jit forms; the CPU runs it if it comes.
        let reduces_mask =
            program.reduction().is_some_and(|r| matches!(program.steps()[r.step].op, FusedOp::Compare(_)));
        let strided: Vec<&[usize]> = ins.iter().take(4).map(|x| x.shape()).collect();
        let dims = Dims::broadcast(shape, &strided);
        let wide_shapes = ins.iter().skip(4).all(|x| crate::array::same_shape(x.shape(), shape));
        let Some(dims) = dims.filter(|_| wide_shapes && !reduces_mask) else {
            return Cpu
                .fused(program, &ins.iter().collect::<Vec<_>>(), compute, shape)
                .into_iter()
                .map(|y| upload(&g, &y))
                .map(|y| self.narrow(y, dtype))
                .collect();
        };
        let in_dtypes: Vec<DType> = ins.iter().map(Array::dtype).collect();
        let k = codegen::fused(program, compute, ins.len(), &in_dtypes);
        let mut out_dtypes = program.output_dtypes(compute);
        if program.reduction().is_some() {
            out_dtypes.pop();
            out_dtypes.push(compute); // the reduced step's values, full size
        }
        let outs: Vec<Array> = out_dtypes.iter().map(|&d| g.empty(d, shape)).collect();
        let n: usize = shape.iter().product();
        let ptrs: Vec<u64> = ins.iter().chain(&outs).map(|a| device_buffer(a).ptr()).collect();
        let n64 = n as i64;
        if n > 0 {
            let f = g.fused_function(&k);
            Launch::new(&g, &f, &k.name).args(&ptrs).arg(&n64).arg(&dims).run(grid(n));
        }
        let mut outs = outs;
        if let Some(r) = program.reduction() {
            let full = outs.pop().expect("the reduced values are the last output");
            let axes: Vec<usize> = (shape.len() - r.axes..shape.len()).collect();
            outs.push(self.reduce(r.op, &full, &axes));
        }
        outs.into_iter().map(|y| self.narrow(y, dtype)).collect()
    }

    /// A row kernel over runs of `n` trailing elements of `ins` (one dtype,
    /// half precision computed in f32), giving an array shaped as the last.
    fn rows(&self, kind: RowKernel, op: &str, ins: &[&Array], n: usize, eps: f64) -> Array {
        let g = self.gpu(op);
        let dtype = ins[0].dtype();
        let ins: Vec<Array> = ins.iter().map(|x| self.wide(g.here(x, op))).collect();
        let last = &ins[ins.len() - 1];
        let out = g.empty(last.dtype(), last.shape());
        super::norm::launch(&g, kind, &ins.iter().collect::<Vec<_>>(), &out, n, eps);
        self.narrow(out, dtype)
    }
}

impl Backend for Cuda {
    fn standardize(&self, x: &Array, n: usize, eps: f64) -> Array {
        self.rows(RowKernel::Standardize, "standardize", &[x], n, eps)
    }
    fn standardize_tangent(&self, t: &Array, x: &Array, n: usize, eps: f64) -> Array {
        // The kernel's operands are (t, x), its output shaped as both.
        self.rows(RowKernel::StandardizeTangent, "standardize_tangent", &[t, x], n, eps)
    }
    fn softmax(&self, x: &Array, n: usize) -> Array {
        self.rows(RowKernel::Softmax, "softmax", &[x], n, 0.0)
    }
    fn softmax_tangent(&self, t: &Array, y: &Array, n: usize) -> Array {
        self.rows(RowKernel::SoftmaxTangent, "softmax_tangent", &[t, y], n, 0.0)
    }
    fn device(&self) -> Device {
        Device::Cuda(self.0)
    }

    fn unary(&self, op: UnaryOp, x: &Array) -> Array {
        let g = self.gpu(op.name());
        let dtype = x.dtype();
        let x = self.wide(g.here(x, op.name()));
        if !matches!(x.dtype(), DType::F32 | DType::F64 | DType::I64)
            || (x.dtype() == DType::I64 && !op.takes_integers())
        {
            return self.on_host(op.name(), |c| c.unary(op, &x));
        }
        let out = g.empty(x.dtype(), x.shape());
        let n = x.size();
        if n > 0 {
            let key = KernelKey::Unary(op, x.dtype());
            let (xp, yp, n64) = (device_buffer(&x).ptr(), device_buffer(&out).ptr(), n as i64);
            let f = g.function(key);
            Launch::new(&g, &f, &key).arg(&xp).arg(&yp).arg(&n64).run(grid(n));
        }
        self.narrow(out, dtype)
    }

    fn binary(&self, op: BinaryOp, a: &Array, b: &Array) -> Array {
        let g = self.gpu(op.name());
        let dtype = a.dtype();
        let (a, b) = (self.wide(g.here(a, op.name())), self.wide(g.here(b, op.name())));
        let out_shape = broadcast_shapes(a.shape(), b.shape()).expect("checked by the shape rule");
        let dims = Dims::broadcast(&out_shape, &[a.shape(), b.shape()]);
        let supported =
            matches!(a.dtype(), DType::F32 | DType::F64) || (a.dtype() == DType::I64 && op.takes_integers());
        let Some(dims) = dims.filter(|_| supported) else {
            return self.narrow(self.on_host(op.name(), |c| c.binary(op, &a, &b)), dtype);
        };
        let out = g.empty(a.dtype(), &out_shape);
        let n = out.size();
        if n > 0 {
            pair_launch(&g, KernelKey::Binary(op, a.dtype()), [&a, &b, &out], dims);
        }
        self.narrow(out, dtype)
    }

    fn compare(&self, op: CompareOp, a: &Array, b: &Array) -> Array {
        let g = self.gpu(op.name());
        let (a, b) = (self.wide(g.here(a, op.name())), self.wide(g.here(b, op.name())));
        let out_shape = broadcast_shapes(a.shape(), b.shape()).expect("checked by the shape rule");
        let Some(dims) = Dims::broadcast(&out_shape, &[a.shape(), b.shape()]) else {
            return self.on_host(op.name(), |c| c.compare(op, &a, &b));
        };
        let out = g.empty(DType::Bool, &out_shape);
        let n = out.size();
        if n > 0 {
            pair_launch(&g, KernelKey::Compare(op, a.dtype()), [&a, &b, &out], dims);
        }
        out
    }

    fn select(&self, cond: &Array, a: &Array, b: &Array) -> Array {
        let g = self.gpu("select");
        let (c, a, b) = (g.here(cond, "select"), g.here(a, "select"), g.here(b, "select"));
        let ab = broadcast_shapes(a.shape(), b.shape()).expect("checked by the shape rule");
        let out_shape = broadcast_shapes(c.shape(), &ab).expect("checked by the shape rule");
        let Some(dims) = Dims::broadcast(&out_shape, &[c.shape(), a.shape(), b.shape()]) else {
            return self.on_host("select", |cpu| cpu.select(&c, &a, &b));
        };
        let out = g.empty(a.dtype(), &out_shape);
        let n = out.size();
        if n > 0 {
            let key = KernelKey::Select(a.dtype().size_of());
            let ptrs =
                [device_buffer(&c).ptr(), device_buffer(&a).ptr(), device_buffer(&b).ptr(), device_buffer(&out).ptr()];
            let n64 = n as i64;
            let f = g.function(key);
            Launch::new(&g, &f, &key).args(&ptrs).arg(&n64).arg(&dims).run(grid(n));
        }
        out
    }

    fn convert(&self, x: &Array, dtype: DType) -> Array {
        let g = self.gpu("convert");
        let x = g.here(x, "convert");
        if x.dtype() == dtype {
            return x;
        }
        let out = g.empty(dtype, x.shape());
        let n = x.size();
        if n > 0 {
            let key = KernelKey::Convert(x.dtype(), dtype);
            let (xp, yp, n64) = (device_buffer(&x).ptr(), device_buffer(&out).ptr(), n as i64);
            let f = g.function(key);
            Launch::new(&g, &f, &key).arg(&xp).arg(&yp).arg(&n64).run(grid(n));
        }
        out
    }

    fn reduce(&self, op: ReduceOp, x: &Array, axes: &[usize]) -> Array {
        let g = self.gpu(op.name());
        let dtype = x.dtype();
        let x = self.wide(g.here(x, op.name()));
        let out_shape: Vec<usize> =
            x.shape().iter().enumerate().filter(|(a, _)| !axes.contains(a)).map(|(_, &n)| n).collect();
        if !codegen::NUMERIC.contains(&x.dtype()) {
            return self.on_host(op.name(), |c| c.reduce(op, &x, axes));
        }
        let out = g.empty(x.dtype(), &out_shape);
        if out.size() == 0 {
            return self.narrow(out, dtype);
        }
        // Axes of extent 1 change nothing: without them the reduced axes are
        // as contiguous as they can be (as the CPU's runs are).
        let keep: Vec<usize> = (0..x.rank()).filter(|&a| x.shape()[a] != 1).collect();
        let shape: Vec<usize> = keep.iter().map(|&a| x.shape()[a]).collect();
        let axes: Vec<usize> = keep.iter().enumerate().filter(|(_, a)| axes.contains(a)).map(|(i, _)| i).collect();
        let x = x.reshape(&shape);
        if axes.is_empty() {
            return self.narrow(x.reshape(&out_shape), dtype);
        }
        let contiguous = axes.windows(2).all(|w| w[1] == w[0] + 1);
        let trailing = axes[axes.len() - 1] + 1 == x.rank();
        let len: usize = axes.iter().map(|&a| shape[a]).product();
        if contiguous && !trailing {
            // [outer, len, inner] with the reduced block in the middle: a thread per output.
            let outer: usize = shape[..axes[0]].iter().product();
            let merged = x.reshape(&[outer, len, out.size() / outer.max(1)]);
            self.run_3d(&g, KernelKey::ReduceStrided(op, x.dtype()), &merged, &out, 1);
            return self.narrow(out, dtype);
        }
        let rows_last = if contiguous { x } else { self.axes_last(&x, &axes) };
        let rows = out.size();
        // Few long rows: each split over many blocks, the partial results
        // reduced by a second pass, so a full reduction uses the whole GPU.
        let parts = if rows >= 256 { 1 } else { (len / 8192).clamp(1, 1024) };
        if parts > 1 {
            let partial = g.empty(rows_last.dtype(), &[rows, parts]);
            reduce_rows(&g, op, &rows_last, &partial, rows, len, parts);
            reduce_rows(&g, op, &partial, &out, rows, parts, 1);
        } else {
            reduce_rows(&g, op, &rows_last, &out, rows, len, 1);
        }
        self.narrow(out, dtype)
    }

    fn arg_reduce(&self, op: ReduceOp, x: &Array, axis: usize) -> Array {
        let g = self.gpu(op.name());
        let x = self.wide(g.here(x, op.name()));
        if !codegen::NUMERIC.contains(&x.dtype()) || x.shape()[axis] == 0 {
            return self.on_host(op.name(), |c| c.arg_reduce(op, &x, axis));
        }
        let out_shape: Vec<usize> = x.shape().iter().enumerate().filter(|&(a, _)| a != axis).map(|(_, &n)| n).collect();
        let out = g.empty(DType::I64, &out_shape);
        if out.size() > 0 {
            self.run_3d(&g, KernelKey::ArgReduce(op, x.dtype()), &x, &out, axis);
        }
        out
    }

    fn scan(&self, op: ReduceOp, x: &Array, axis: usize, reverse: bool) -> Array {
        let g = self.gpu(op.name());
        let dtype = x.dtype();
        let x = self.wide(g.here(x, op.name()));
        if !codegen::NUMERIC.contains(&x.dtype()) {
            return self.on_host(op.name(), |c| c.scan(op, &x, axis, reverse));
        }
        let out = g.empty(x.dtype(), x.shape());
        if out.size() > 0 {
            self.run_3d(&g, KernelKey::Scan(op, x.dtype(), reverse), &x, &out, axis);
        }
        self.narrow(out, dtype)
    }

    fn layout(&self, op: &LayoutOp, x: &Array) -> Array {
        let g = self.gpu("layout");
        let x = g.here(x, "layout");
        let plan = layout_plan(op, x.shape());
        let Some(dims) = plan.dims else {
            return self.on_host("layout", |c| c.layout(op, &x));
        };
        let out = if plan.zeroed { g.zeros(x.dtype(), &plan.out_shape) } else { g.empty(x.dtype(), &plan.out_shape) };
        self.copy(&g, &x, &out, plan.n, dims);
        out
    }

    fn concat(&self, xs: &[&Array], axis: usize) -> Array {
        let g = self.gpu("concat");
        let xs: Vec<Array> = xs.iter().map(|x| g.here(x, "concat")).collect();
        let shapes: Vec<&[usize]> = xs.iter().map(Array::shape).collect();
        let (shape, copies) = concat_plan(&shapes, axis);
        if copies.iter().any(Option::is_none) {
            return self.on_host("concat", |c| c.concat(&xs.iter().collect::<Vec<_>>(), axis));
        }
        let out = g.empty(xs[0].dtype(), &shape);
        for (x, d) in xs.iter().zip(copies.into_iter().flatten()) {
            self.copy(&g, x, &out, x.size(), d);
        }
        out
    }

    fn gather(&self, x: &Array, axis: usize, idx: &Array, mode: IndexMode) -> Array {
        let g = self.gpu("gather");
        let (x, idx) = (g.here(x, "gather"), g.here(idx, "gather"));
        let s = x.shape();
        let shape: Vec<usize> = s[..axis].iter().chain(idx.shape()).chain(&s[axis + 1..]).copied().collect();
        let out = g.empty(x.dtype(), &shape);
        if out.size() > 0 {
            index_launch(&g, KernelKey::Gather(x.dtype()), [&x, &idx, &out], s, axis, idx.size(), mode, out.size());
        }
        out
    }

    fn scatter_add(&self, x: &Array, axis: usize, idx: &Array, updates: &Array, mode: IndexMode) -> Array {
        let g = self.gpu("scatter_add");
        let dtype = x.dtype();
        let (x, idx, updates) = (
            self.wide(g.here(x, "scatter_add")),
            g.here(idx, "scatter_add"),
            self.wide(g.here(updates, "scatter_add")),
        );
        if !codegen::SCATTER.contains(&x.dtype()) {
            return self.on_host("scatter_add", |c| c.scatter_add(&x, axis, &idx, &updates, mode));
        }
        // A copy of the operand, which the updates are added into.
        let out = g.empty(x.dtype(), x.shape());
        let own = row_major(x.shape());
        self.copy(&g, &x, &out, x.size(), Dims::new(x.shape(), &[own.clone(), own], &[0, 0]).unwrap_or(Dims::flat()));
        if updates.size() > 0 {
            let key = KernelKey::ScatterAdd(x.dtype());
            index_launch(&g, key, [&out, &idx, &updates], x.shape(), axis, idx.size(), mode, updates.size());
        }
        self.narrow(out, dtype)
    }

    fn sort(&self, x: &Array, axis: usize, descending: bool) -> (Array, Array) {
        let g = self.gpu("sort");
        let xw = self.wide(g.here(x, "sort"));
        let s = xw.shape();
        let (outer, len, inner) =
            (s[..axis].iter().product::<usize>(), s[axis], s[axis + 1..].iter().product::<usize>());
        if !codegen::NUMERIC.contains(&xw.dtype()) || len > codegen::SORT_MAX {
            let (v, i) = Cpu.sort(x, axis, descending);
            return (upload(&g, &v), upload(&g, &i));
        }
        let (values, order) = (g.empty(xw.dtype(), s), g.empty(DType::I64, s));
        let rows = outer * inner;
        if rows * len > 0 {
            let key = KernelKey::Sort(xw.dtype(), descending);
            let p = [device_buffer(&xw).ptr(), device_buffer(&values).ptr(), device_buffer(&order).ptr()];
            let dims = [outer as i64, len as i64, inner as i64, len.next_power_of_two() as i64];
            let f = g.function(key);
            let cfg = LaunchConfig {
                grid_dim: (rows.clamp(1, 65535) as u32, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            Launch::new(&g, &f, &key).args(&p).args(&dims).run(cfg);
        }
        (self.narrow(values, x.dtype()), order)
    }

    fn matmul(&self, a: &Array, b: &Array, ta: bool, tb: bool) -> Array {
        let g = self.gpu("matmul");
        let (a, b) = (g.here(a, "matmul"), g.here(b, "matmul"));
        let Some((data, compute)) = gemm_types(a.dtype()) else {
            return self.on_host("matmul", |c| c.matmul(&a, &b, ta, tb));
        };
        let (ra, rb) = (a.rank(), b.rank());
        let (m, k) = if ta { (a.shape()[ra - 1], a.shape()[ra - 2]) } else { (a.shape()[ra - 2], a.shape()[ra - 1]) };
        let n = if tb { b.shape()[rb - 2] } else { b.shape()[rb - 1] };
        let batch: usize = a.shape()[..ra - 2].iter().product();
        let mut shape = a.shape()[..ra - 2].to_vec();
        shape.extend([m, n]);
        if k == 0 {
            return g.zeros(a.dtype(), &shape);
        }
        let out = g.empty(a.dtype(), &shape);
        if out.size() == 0 {
            return out;
        }
        let dims = [m, n, k, batch];
        assert!(
            dims.iter().all(|&d| d <= i32::MAX as usize),
            "matmul: {:?} @ {:?} exceeds cuBLAS's 32-bit dimensions",
            a.shape(),
            b.shape()
        );
        use cublas_sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ.
        let (op_b, ldb) = if tb { (CUBLAS_OP_T, k) } else { (CUBLAS_OP_N, n) };
        let (op_a, lda) = if ta { (CUBLAS_OP_T, m) } else { (CUBLAS_OP_N, k) };
        let (one64, zero64, one32, zero32) = (1f64, 0f64, 1f32, 0f32);
        let (alpha, beta): (*const std::ffi::c_void, *const std::ffi::c_void) = if a.dtype() == DType::F64 {
            ((&one64 as *const f64).cast(), (&zero64 as *const f64).cast())
        } else {
            ((&one32 as *const f32).cast(), (&zero32 as *const f32).cast())
        };
        let (ap, bp, cp) = (device_buffer(&a).ptr(), device_buffer(&b).ptr(), device_buffer(&out).ptr());
        g.bind("matmul");
        // SAFETY: the pointers address arrays of the extents passed; alpha and
        // beta outlive the call, which only queues the product on the stream.
        unsafe {
            cudarc::cublas::result::gemm_strided_batched_ex(
                *g.blas.handle(),
                op_b,
                op_a,
                n as i32,
                m as i32,
                k as i32,
                alpha,
                bp as *const std::ffi::c_void,
                data,
                ldb as i32,
                (k * n) as i64,
                ap as *const std::ffi::c_void,
                data,
                lda as i32,
                (m * k) as i64,
                beta,
                cp as *mut std::ffi::c_void,
                data,
                n as i32,
                (m * n) as i64,
                batch as i32,
                compute,
                cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .unwrap_or_else(|e| panic!("matmul on cuda:{}: cuBLAS failed: {e:?}", g.ordinal));
        out
    }

    fn conv(&self, x: &Array, w: &Array, geo: &ConvGeometry, groups: usize) -> Array {
        let g = self.gpu("conv");
        let (xw, ww) = (self.wide(g.here(x, "conv")), self.wide(g.here(w, "conv")));
        match conv::conv(self, &GpuColumns(&g), &xw, &ww, geo, groups) {
            Some(y) => self.narrow(y, x.dtype()),
            None => self.on_host("conv", |c| c.conv(x, w, geo, groups)),
        }
    }

    fn conv_kernel_grad(&self, x: &Array, ct: &Array, window: &[usize], geo: &ConvGeometry, groups: usize) -> Array {
        let g = self.gpu("conv");
        let (xw, cw) = (self.wide(g.here(x, "conv")), self.wide(g.here(ct, "conv")));
        match conv::kernel_grad(self, &GpuColumns(&g), &xw, &cw, window, geo, groups) {
            Some(y) => self.narrow(y, x.dtype()),
            None => self.on_host("conv", |c| c.conv_kernel_grad(x, ct, window, geo, groups)),
        }
    }

    fn conv_input_grad(&self, ct: &Array, w: &Array, geo: &ConvGeometry, groups: usize, input: &[usize]) -> Array {
        let g = self.gpu("conv");
        let (cw, ww) = (self.wide(g.here(ct, "conv")), self.wide(g.here(w, "conv")));
        match conv::input_grad(self, &GpuColumns(&g), &cw, &ww, geo, groups, input) {
            Some(y) => self.narrow(y, ct.dtype()),
            None => self.on_host("conv", |c| c.conv_input_grad(ct, w, geo, groups, input)),
        }
    }

    fn window_arg_extreme(
        &self,
        x: &Array,
        op: ReduceOp,
        window: &[usize],
        strides: &[usize],
        padding: &[(usize, usize)],
    ) -> Array {
        let g = self.gpu("reduce_window");
        let xw = self.wide(g.here(x, "reduce_window"));
        let planned = WindowDims::new(xw.shape(), window, strides, padding);
        let Some((dims, out_shape)) = planned.filter(|_| matches!(xw.dtype(), DType::F32 | DType::F64)) else {
            return self.on_host("reduce_window", |c| c.window_arg_extreme(x, op, window, strides, padding));
        };
        let out = g.empty(DType::I64, &out_shape);
        let total = out.size();
        if total > 0 {
            let key = KernelKey::WindowArg(op, xw.dtype());
            let (xp, yp, n) = (device_buffer(&xw).ptr(), device_buffer(&out).ptr(), total as i64);
            let f = g.function(key);
            Launch::new(&g, &f, &key).arg(&xp).arg(&yp).arg(&n).arg(&dims).run(grid(total));
        }
        out
    }

    fn fused(&self, program: &FusedProgram, ins: &[&Array], dtype: DType, shape: &[usize]) -> Vec<Array> {
        Cuda::fused(self, program, ins, dtype, shape)
    }
}

/// `out[r * parts + p]` = the reduction of part `p` of row `r` of `x`
/// (`[rows, len]`, contiguous, each row cut into `parts` runs).
fn reduce_rows(g: &Gpu, op: ReduceOp, x: &Array, out: &Array, rows: usize, len: usize, parts: usize) {
    let key = KernelKey::ReduceRows(op, x.dtype());
    let (xp, yp) = (device_buffer(x).ptr(), device_buffer(out).ptr());
    let (rows64, len64, parts64) = (rows as i64, len as i64, parts as i64);
    let f = g.function(key);
    let cfg = LaunchConfig {
        grid_dim: ((rows * parts).clamp(1, 65535) as u32, 1, 1),
        block_dim: (codegen::REDUCE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    Launch::new(g, &f, &key).arg(&xp).arg(&yp).arg(&rows64).arg(&len64).arg(&parts64).run(cfg);
}

/// A binary or comparison kernel (`key`) over `out`, reading `a` and `b` through `dims`.
fn pair_launch(g: &Gpu, key: KernelKey, [a, b, out]: [&Array; 3], dims: Dims) {
    let n = out.size();
    let (ap, bp, yp, n64) = (device_buffer(a).ptr(), device_buffer(b).ptr(), device_buffer(out).ptr(), n as i64);
    let f = g.function(key);
    Launch::new(g, &f, &key).arg(&ap).arg(&bp).arg(&yp).arg(&n64).arg(&dims).run(grid(n));
}

/// A gather or scatter-add kernel (`key`) launched over `n` elements: its
/// three arrays in the kernel's order, the operand's `[outer, len, inner]`
/// around `axis`, the number of indices and the index mode.
#[allow(clippy::too_many_arguments)]
fn index_launch(
    g: &Gpu,
    key: KernelKey,
    arrays: [&Array; 3],
    shape: &[usize],
    axis: usize,
    nidx: usize,
    mode: IndexMode,
    n: usize,
) {
    let p = arrays.map(|a| device_buffer(a).ptr());
    let dims = [
        shape[..axis].iter().product::<usize>() as i64,
        shape[axis] as i64,
        shape[axis + 1..].iter().product::<usize>() as i64,
        nidx as i64,
    ];
    let m = mode_code(mode);
    let f = g.function(key);
    Launch::new(g, &f, &key).args(&p).args(&dims).arg(&m).run(grid(n));
}

fn mode_code(mode: IndexMode) -> i32 {
    match mode {
        IndexMode::Fill => 0,
        IndexMode::FillZero => 1,
        IndexMode::Clip => 2,
    }
}

/// cuBLAS's element and compute types for a float dtype (the 16-bit ones
/// accumulate in f32 and round once, as on the CPU).
fn gemm_types(dtype: DType) -> Option<(cublas_sys::cudaDataType, cublas_sys::cublasComputeType_t)> {
    use cublas_sys::cublasComputeType_t::{CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_64F};
    use cublas_sys::cudaDataType::{CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F, CUDA_R_64F};
    Some(match dtype {
        DType::F16 => (CUDA_R_16F, CUBLAS_COMPUTE_32F),
        DType::BF16 => (CUDA_R_16BF, CUBLAS_COMPUTE_32F),
        DType::F32 => (CUDA_R_32F, CUBLAS_COMPUTE_32F),
        DType::F64 => (CUDA_R_64F, CUBLAS_COMPUTE_64F),
        DType::I64 | DType::Bool => return None,
    })
}

/// The column kernels on a GPU (f32 and f64: half precision is widened first).
struct GpuColumns<'a>(&'a Arc<Gpu>);

impl GpuColumns<'_> {
    fn launch(&self, key: KernelKey, from: &Array, to: &Array, g: &ConvDims) {
        let total = g.col_shape().iter().product::<usize>();
        if total == 0 {
            return;
        }
        let (fp, tp, n) = (device_buffer(from).ptr(), device_buffer(to).ptr(), total as i64);
        let f = self.0.function(key);
        Launch::new(self.0, &f, &key).arg(&fp).arg(&tp).arg(&n).arg(g).run(grid(total));
    }
}

impl Columns for GpuColumns<'_> {
    fn im2col(&self, x: &Array, g: &ConvDims) -> Array {
        let col = self.0.empty(x.dtype(), &g.col_shape());
        self.launch(KernelKey::Im2col(x.dtype()), x, &col, g);
        col
    }
    fn col2im(&self, col: &Array, g: &ConvDims, x_shape: &[usize]) -> Array {
        let dx = self.0.zeros(col.dtype(), x_shape);
        self.launch(KernelKey::Col2im(col.dtype()), col, &dx, g);
        dx
    }
}
