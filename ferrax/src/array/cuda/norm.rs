//! Softmax and standardisation (layer norm's core) over rows, each with its
//! tangent map, as one kernel each: a block of [`REDUCE_THREADS`] threads
//! per row, the row's statistics reduced through shared memory, then the
//! row written. Composed of the backend's reductions and elementwise
//! kernels (the `Backend` defaults) they took four to nine launches and as
//! many passes over the rows.
//!
//! Each row's sums follow [`reduce_rows`](super::codegen::reduce_rows)'s
//! order (a strided partial per thread, then the tree of
//! [`block_reduce`], which both generate), and the
//! elementwise steps are the ones the chain of kernels computes, in its
//! order and rounding (`1 / s` then a product, `sqrt(var + eps)`): the
//! results are the chain's where it reduces a row in one block.

use std::sync::Arc;

use cudarc::driver::LaunchConfig;

use super::backend::Launch;
use super::codegen::{
    block_reduce, c_type, reduce_expr, reduce_identity, suffix, unary_expr, Kernel, KernelKey, REDUCE_THREADS,
};
use super::{device_buffer, Gpu};
use crate::array::ops::{ReduceOp, UnaryOp};
use crate::array::{Array, DType};

/// Which of the four row kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowKernel {
    /// `y = e / Σe`, `e = exp(x - max x)`: `(x, y, rows, n)`.
    Softmax,
    /// `y (t - Σ y t)`: `(t, y, out, rows, n)`.
    SoftmaxTangent,
    /// `(x - mean) / √(var + eps)`: `(x, y, rows, n, eps)`.
    Standardize,
    /// `r (t - mean t - y mean(y t))`: `(t, x, out, rows, n, eps)`.
    StandardizeTangent,
}

impl RowKernel {
    /// Every row kernel.
    pub const ALL: [RowKernel; 4] =
        [RowKernel::Softmax, RowKernel::SoftmaxTangent, RowKernel::Standardize, RowKernel::StandardizeTangent];

    fn tag(self) -> &'static str {
        match self {
            RowKernel::Softmax => "softmax",
            RowKernel::SoftmaxTangent => "softmax_tangent",
            RowKernel::Standardize => "standardize",
            RowKernel::StandardizeTangent => "standardize_tangent",
        }
    }
}

/// The source of `kind` for rows of `dtype` (f32 or f64).
pub fn row_kernel(kind: RowKernel, dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let sum_id = reduce_identity(ReduceOp::Sum, dtype);
    let max_id = reduce_identity(ReduceOp::Max, dtype);
    let add = |a: &str, b: &str| reduce_expr(ReduceOp::Sum, dtype, a, b);
    // A loop over this thread's elements of the row.
    let each = "for (i64 j = threadIdx.x; j < n; j += blockDim.x)";
    let exp = |x: &str| unary_expr(UnaryOp::Exp, x);
    let sqrt = |x: &str| unary_expr(UnaryOp::Sqrt, x);
    // The row's mean, variance and reciprocal standard deviation, as the
    // chain computes them (two-pass statistics, divisions by n).
    let stats = format!(
        r#"{t} acc = {sum_id};
        {each} acc = {sum};
        {t} mean = KNAME_sum(acc, s) / ({t})n;
        acc = {sum_id};
        {each} acc = {sq};
        {t} var = KNAME_sum(acc, s) / ({t})n;
        {t} r = ({t})1 / {root};"#,
        sum = add("acc", "xr[j]"),
        sq = add("acc", "((xr[j] - mean) * (xr[j] - mean))"),
        root = sqrt(&format!("(var + ({t})eps)")),
    );
    let (params, body) = match kind {
        RowKernel::Softmax => (
            format!("const {t}* x, {t}* y, i64 rows, i64 n"),
            format!(
                r#"const {t}* xr = x + row * n;
        {t}* yr = y + row * n;
        {t} m = {max_id};
        {each} m = {max};
        m = KNAME_max(m, s);
        {t} acc = {sum_id};
        {each} acc = {sum};
        {t} inv = ({t})1 / KNAME_sum(acc, s);
        {each} yr[j] = ({e} * inv);"#,
                max = reduce_expr(ReduceOp::Max, dtype, "m", "xr[j]"),
                sum = add("acc", &exp("(xr[j] - m)")),
                e = exp("(xr[j] - m)"),
            ),
        ),
        RowKernel::SoftmaxTangent => (
            format!("const {t}* t, const {t}* y, {t}* out, i64 rows, i64 n"),
            format!(
                r#"const {t}* tr = t + row * n;
        const {t}* yr = y + row * n;
        {t}* o = out + row * n;
        {t} acc = {sum_id};
        {each} acc = {sum};
        {t} total = KNAME_sum(acc, s);
        {each} o[j] = (yr[j] * (tr[j] - total));"#,
                sum = add("acc", "(yr[j] * tr[j])"),
            ),
        ),
        RowKernel::Standardize => (
            format!("const {t}* x, {t}* y, i64 rows, i64 n, double eps"),
            format!(
                r#"const {t}* xr = x + row * n;
        {t}* yr = y + row * n;
        {stats}
        {each} yr[j] = ((xr[j] - mean) * r);"#
            ),
        ),
        RowKernel::StandardizeTangent => (
            format!("const {t}* t, const {t}* x, {t}* out, i64 rows, i64 n, double eps"),
            format!(
                r#"const {t}* tr = t + row * n;
        const {t}* xr = x + row * n;
        {t}* o = out + row * n;
        {stats}
        acc = {sum_id};
        {each} acc = {yt};
        {t} yt_mean = KNAME_sum(acc, s) / ({t})n;
        acc = {sum_id};
        {each} acc = {tsum};
        {t} t_mean = KNAME_sum(acc, s) / ({t})n;
        {each} o[j] = (((tr[j] - t_mean) - (((xr[j] - mean) * r) * yt_mean)) * r);"#,
                yt = add("acc", "(((xr[j] - mean) * r) * tr[j])"),
                tsum = add("acc", "tr[j]"),
            ),
        ),
    };
    let mut src = block_reduce(ReduceOp::Sum, dtype);
    if kind == RowKernel::Softmax {
        src.push_str(&block_reduce(ReduceOp::Max, dtype));
    }
    src.push_str(&format!(
        r#"extern "C" __global__ void KNAME({params}) {{
    __shared__ {t} s[{REDUCE_THREADS}];
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {{
        {body}
    }}
}}"#
    ));
    Kernel::new(format!("rows_{}_{}", kind.tag(), suffix(dtype)), &src)
}

/// Runs `kind` over the `rows` rows of `n` elements of its operands (f32
/// or f64, on `g`), writing `out`; `eps` for the standardisations.
pub(super) fn launch(g: &Arc<Gpu>, kind: RowKernel, ins: &[&Array], out: &Array, n: usize, eps: f64) {
    let rows = out.size() / n.max(1);
    if rows == 0 || n == 0 {
        return;
    }
    let key = KernelKey::Rows(kind, out.dtype());
    let f = g.function(key);
    let ptrs: Vec<_> = ins.iter().map(|a| device_buffer(a).ptr()).collect();
    let (yp, rows64, n64) = (device_buffer(out).ptr(), rows as i64, n as i64);
    let cfg = LaunchConfig {
        grid_dim: (rows.clamp(1, 65535) as u32, 1, 1),
        block_dim: (REDUCE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let launch = Launch::new(g, &f, &key).args(&ptrs).arg(&yp).arg(&rows64).arg(&n64);
    match kind {
        RowKernel::Standardize | RowKernel::StandardizeTangent => launch.arg(&eps).run(cfg),
        RowKernel::Softmax | RowKernel::SoftmaxTangent => launch.run(cfg),
    }
}
