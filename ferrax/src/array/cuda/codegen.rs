//! CUDA C source for every kernel the CUDA backend launches, generated from
//! the op vocabulary ([`UnaryOp`], [`BinaryOp`], …) and compiled at run time
//! by NVRTC. Each kernel is one self-contained translation unit (the prelude
//! and one `extern "C"` function named by [`Kernel::name`]), so a kernel that
//! does not compile names itself, and [`every_kernel`] lets a test compile
//! them all on a machine without a GPU.
//!
//! The formulas follow the CPU kernels' semantics, not C's: NaN-propagating
//! max and min with `max(-0, +0) = +0`, numpy's floor division, wrapping
//! integer arithmetic, Rust's saturating float-to-integer `as`, half
//! precision rounded once from f64 (round to odd through f32).

use std::fmt::Write;

use super::super::fused::{FusedOp, FusedProgram, Operand};
use super::super::{BinaryOp, CompareOp, DType, ReduceOp, UnaryOp};
pub use super::norm::{row_kernel, RowKernel};
use super::prelude::PRELUDE;

/// Axes an indexing kernel handles; arrays of more axes are collapsed
/// (adjacent axes merged where every operand allows) before launching.
pub const MAX_RANK: usize = 8;

/// One kernel: the name of its entry point and its whole source.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// The `extern "C"` function to launch.
    pub name: String,
    /// The translation unit, prelude included.
    pub source: String,
}

impl Kernel {
    pub(super) fn new(name: String, body: &str) -> Kernel {
        Kernel { source: format!("{PRELUDE}\n{}", body.replace("KNAME", &name)), name }
    }
}

/// The C type holding an element of `dtype` (the 16-bit floats as their bits).
pub fn c_type(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 | DType::BF16 => "unsigned short",
        DType::F32 => "float",
        DType::F64 => "double",
        DType::I64 => "i64",
        DType::Bool => "bool",
    }
}

/// The unsigned C type of `bytes` bytes, for kernels that only move elements.
fn bits_type(bytes: usize) -> &'static str {
    match bytes {
        1 => "unsigned char",
        2 => "unsigned short",
        4 => "unsigned int",
        8 => "u64",
        _ => unreachable!("no dtype is {bytes} bytes wide"),
    }
}

pub(super) fn suffix(dtype: DType) -> String {
    dtype.to_string()
}

/// The dtypes the arithmetic kernels are generated for; the backend computes
/// f16 and bf16 in f32, as the CPU backend does.
pub const NUMERIC: [DType; 3] = [DType::F32, DType::F64, DType::I64];
/// Every dtype.
pub const ALL_DTYPES: [DType; 6] = [DType::F16, DType::BF16, DType::F32, DType::F64, DType::I64, DType::Bool];

/// The expression computing `op` of `x` (a value of C type `T`).
pub(super) fn unary_expr(op: UnaryOp, x: &str) -> String {
    use UnaryOp::*;
    let f = match op {
        Neg => return format!("(-{x})"),
        Abs => "fabs",
        Sign => "sign_of",
        Relu => "relu",
        PowI(n) => return format!("fx_powi({x}, {n})"),
        Sin => "sin",
        Cos => "cos",
        Tan => "tan",
        Asin => "asin",
        Acos => "acos",
        Atan => "atan",
        Sinh => "sinh",
        Cosh => "cosh",
        Tanh => "tanh",
        Asinh => "asinh",
        Acosh => "acosh",
        Atanh => "atanh",
        Exp => "exp",
        Exp2 => "exp2",
        ExpM1 => "expm1",
        Ln => "log",
        Ln1p => "log1p",
        Log2 => "log2",
        Log10 => "log10",
        Sqrt => "sqrt",
        Logistic => "logistic",
        Erf => "erf",
        Erfc => "erfc",
        Erfinv => "erfinv",
        Gelu => "gelu",
        GeluGrad => "gelu_grad",
        GeluTanh => "gelu_tanh",
        GeluTanhGrad => "gelu_tanh_grad",
        Softplus => "softplus",
        Floor => "floor",
        Ceil => "ceil",
        Round => "rint",
        Trunc => "trunc",
    };
    format!("{f}({x})")
}

fn unary_int_expr(op: UnaryOp, x: &str) -> String {
    match op {
        UnaryOp::Neg => format!("wsub(0, {x})"),
        UnaryOp::Abs => format!("({x} < 0 ? wsub(0, {x}) : {x})"),
        UnaryOp::Sign => format!("sign_of({x})"),
        UnaryOp::Relu => format!("({x} > 0 ? {x} : 0)"),
        _ => unreachable!("{op} takes floats only"),
    }
}

fn binary_expr(op: BinaryOp, dtype: DType, a: &str, b: &str) -> String {
    use BinaryOp::*;
    if dtype == DType::I64 {
        return match op {
            Add => format!("wadd({a}, {b})"),
            Sub => format!("wsub({a}, {b})"),
            Mul => format!("wmul({a}, {b})"),
            Rem => format!("irem({a}, {b})"),
            FloorDiv => format!("ifloor_div({a}, {b})"),
            Max => format!("max_nan({a}, {b})"),
            Min => format!("min_nan({a}, {b})"),
            Div | Pow | Atan2 => unreachable!("{op} takes floats only"),
        };
    }
    match op {
        Add => format!("({a} + {b})"),
        Sub => format!("({a} - {b})"),
        Mul => format!("({a} * {b})"),
        Div => format!("({a} / {b})"),
        Rem => format!("fmod({a}, {b})"),
        FloorDiv => format!("floor_div({a}, {b})"),
        Max => format!("max_nan({a}, {b})"),
        Min => format!("min_nan({a}, {b})"),
        Pow => format!("pow({a}, {b})"),
        Atan2 => format!("atan2({a}, {b})"),
    }
}

fn compare_expr(op: CompareOp, a: &str, b: &str) -> String {
    let c = match op {
        CompareOp::Gt => ">",
        CompareOp::Lt => "<",
        CompareOp::Ge => ">=",
        CompareOp::Le => "<=",
        CompareOp::Eq => "==",
        CompareOp::Ne => "!=",
    };
    format!("({a} {c} {b})")
}

fn op_tag(op: impl std::fmt::Display) -> String {
    op.to_string().replace(['(', ')'], "").replace('-', "m")
}

/// `out[i] = op(x[i])` over contiguous arrays of `dtype` (f32, f64, or i64
/// for the ops that take integers).
pub fn unary(op: UnaryOp, dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let e = if dtype == DType::I64 { unary_int_expr(op, "x[i]") } else { unary_expr(op, "x[i]") };
    let body = format!(
        "extern \"C\" __global__ void KNAME(const {t}* x, {t}* out, i64 n) {{ GRID_LOOP(i, n) out[i] = {e}; }}"
    );
    Kernel::new(format!("unary_{}_{}", op_tag(op), suffix(dtype)), &body)
}

/// `out[i] = op(a[.], b[.])`, the operands broadcast by the strides of `Dims`.
pub fn binary(op: BinaryOp, dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let e = binary_expr(op, dtype, "a[off(d, 0, i)]", "b[off(d, 1, i)]");
    let body = format!(
        "extern \"C\" __global__ void KNAME(const {t}* a, const {t}* b, {t}* out, i64 n, Dims d) {{ GRID_LOOP(i, n) out[i] = {e}; }}"
    );
    Kernel::new(format!("binary_{}_{}", op_tag(op), suffix(dtype)), &body)
}

/// `out[i] = a[.] op b[.]`, a bool, broadcasting.
pub fn compare(op: CompareOp, dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let e = compare_expr(op, "a[off(d, 0, i)]", "b[off(d, 1, i)]");
    let body = format!(
        "extern \"C\" __global__ void KNAME(const {t}* a, const {t}* b, bool* out, i64 n, Dims d) {{ GRID_LOOP(i, n) out[i] = {e}; }}"
    );
    Kernel::new(format!("compare_{}_{}", op_tag(op), suffix(dtype)), &body)
}

/// `out[i] = c[.] ? a[.] : b[.]` over elements of `bytes` bytes, broadcasting.
pub fn select(bytes: usize) -> Kernel {
    let t = bits_type(bytes);
    let body = format!(
        "extern \"C\" __global__ void KNAME(const bool* c, const {t}* a, const {t}* b, {t}* out, i64 n, Dims d) {{ \
         GRID_LOOP(i, n) out[i] = c[off(d, 0, i)] ? a[off(d, 1, i)] : b[off(d, 2, i)]; }}"
    );
    Kernel::new(format!("select_{bytes}"), &body)
}

/// `dst[.] = src[.]` over the index space of `Dims`' shape, each side with
/// its own strides and base offset (`st[0]`/`base[0]` the source,
/// `st[1]`/`base[1]` the destination): broadcasts, permutations, slices,
/// reversals (negative strides), padding and concatenation.
pub fn copy(bytes: usize) -> Kernel {
    let t = bits_type(bytes);
    let body = format!(
        "extern \"C\" __global__ void KNAME(const {t}* src, {t}* dst, i64 n, Dims d) {{ \
         GRID_LOOP(i, n) dst[off(d, 1, i)] = src[off(d, 0, i)]; }}"
    );
    Kernel::new(format!("copy_{bytes}"), &body)
}

/// `out[i] = v` for the low `bytes` bytes of `v`: how a one-element host
/// array reaches the GPU, as a kernel parameter, so that the copy neither
/// waits for the stream nor makes it wait (a copy from pageable host memory does both).
pub fn fill(bytes: usize) -> Kernel {
    let t = bits_type(bytes);
    let body =
        format!("extern \"C\" __global__ void KNAME({t}* out, u64 v, i64 n) {{ GRID_LOOP(i, n) out[i] = ({t})v; }}");
    Kernel::new(format!("fill_{bytes}"), &body)
}

/// The C expression converting `x` of dtype `from` to dtype `to` as
/// [`Array::to_dtype`](super::super::Array::to_dtype) does.
fn convert_expr(from: DType, to: DType, x: &str) -> String {
    use DType::*;
    // Every value as f64 (exact for every dtype but i64, which rounds once, as on the CPU).
    let as_f64 = match from {
        F16 => format!("f2d(h2f({x}))"),
        BF16 => format!("f2d(b2f({x}))"),
        F32 => format!("f2d({x})"),
        F64 => x.to_string(),
        I64 => format!("(double){x}"),
        Bool => format!("({x} ? 1.0 : 0.0)"),
    };
    match (from, to) {
        (F32, F16) => format!("f2h({x})"),
        (F32, BF16) => format!("f2b({x})"),
        (F16, F32) => format!("h2f({x})"),
        (BF16, F32) => format!("b2f({x})"),
        (I64, I64) | (Bool, Bool) => x.to_string(),
        (_, F16) => format!("f2h(d2f_odd({as_f64}))"),
        (_, BF16) => format!("f2b(d2f_odd({as_f64}))"),
        (_, F32) => format!("d2f({as_f64})"),
        (_, F64) => as_f64,
        (_, I64) => format!("d2i({as_f64})"),
        (_, Bool) => format!("({as_f64} != 0.0)"),
    }
}

/// `out[i] = x[i]` converted from `from` to `to`, contiguous.
pub fn convert(from: DType, to: DType) -> Kernel {
    let (a, b) = (c_type(from), c_type(to));
    let e = convert_expr(from, to, "x[i]");
    let body = format!(
        "extern \"C\" __global__ void KNAME(const {a}* x, {b}* out, i64 n) {{ GRID_LOOP(i, n) out[i] = {e}; }}"
    );
    Kernel::new(format!("convert_{}_{}", suffix(from), suffix(to)), &body)
}

pub(super) fn reduce_identity(op: ReduceOp, dtype: DType) -> &'static str {
    match (op, dtype == DType::I64) {
        (ReduceOp::Sum, _) => "0",
        (ReduceOp::Prod, _) => "1",
        (ReduceOp::Max, false) => "(-__int_as_float(0x7f800000))",
        (ReduceOp::Min, false) => "__int_as_float(0x7f800000)",
        (ReduceOp::Max, true) => "(-9223372036854775807LL - 1)",
        (ReduceOp::Min, true) => "9223372036854775807LL",
    }
}

pub(super) fn reduce_expr(op: ReduceOp, dtype: DType, a: &str, b: &str) -> String {
    match op {
        ReduceOp::Sum => binary_expr(BinaryOp::Add, dtype, a, b),
        ReduceOp::Prod => binary_expr(BinaryOp::Mul, dtype, a, b),
        ReduceOp::Max => format!("max_nan({a}, {b})"),
        ReduceOp::Min => format!("min_nan({a}, {b})"),
    }
}

/// Threads per block of [`reduce_rows`].
pub const REDUCE_THREADS: u32 = 256;

/// `out[r * parts + p] = op` of part `p` of row `r` of `x` (`[rows, len]`,
/// contiguous; each row cut into `parts` runs of equal length but the
/// last): one block of [`REDUCE_THREADS`] threads per part, combined
/// through shared memory.
pub fn reduce_rows(op: ReduceOp, dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let id = reduce_identity(op, dtype);
    let acc = reduce_expr(op, dtype, "acc", "x[r * len + j]");
    let body = format!(
        r#"{block}extern "C" __global__ void KNAME(const {t}* x, {t}* out, i64 rows, i64 len, i64 parts) {{
    __shared__ {t} s[{REDUCE_THREADS}];
    i64 chunk = (len + parts - 1) / parts;
    for (i64 b = blockIdx.x; b < rows * parts; b += gridDim.x) {{
        i64 r = b / parts, lo = (b % parts) * chunk;
        i64 hi = lo + chunk < len ? lo + chunk : len;
        {t} acc = {id};
        for (i64 j = lo + threadIdx.x; j < hi; j += blockDim.x) acc = {acc};
        acc = KNAME_{op}(acc, s);
        if (threadIdx.x == 0) out[b] = acc;
    }}
}}"#,
        block = block_reduce(op, dtype),
    );
    Kernel::new(format!("reduce_rows_{}_{}", op, suffix(dtype)), &body)
}

/// A device function `KNAME_<op>(acc, s)`: the block-wide `op` of each
/// thread's partial `acc`, combined as a tree through the shared array `s`
/// (one slot per thread), the result given to every thread. The one order
/// in which [`reduce_rows`] and the row kernels of softmax and
/// standardisation combine a block's partials.
pub(super) fn block_reduce(op: ReduceOp, dtype: DType) -> String {
    let t = c_type(dtype);
    let merge = reduce_expr(op, dtype, "s[threadIdx.x]", "s[threadIdx.x + w]");
    format!(
        r#"__device__ {t} KNAME_{op}({t} acc, {t}* s) {{
    s[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {{
        if (threadIdx.x < w) s[threadIdx.x] = {merge};
        __syncthreads();
    }}
    {t} r = s[0];
    __syncthreads();
    return r;
}}
"#
    )
}

/// `out[o, c] = op(x[o, 0..len, c])`: one thread per output, walking the
/// reduced axis in order (adjacent threads read adjacent elements).
pub fn reduce_strided(op: ReduceOp, dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let id = reduce_identity(op, dtype);
    let acc = reduce_expr(op, dtype, "acc", "x[base + k * inner]");
    let body = format!(
        r#"extern "C" __global__ void KNAME(const {t}* x, {t}* out, i64 outer, i64 len, i64 inner) {{
    GRID_LOOP(i, outer * inner) {{
        i64 base = (i / inner) * len * inner + i % inner;
        {t} acc = {id};
        for (i64 k = 0; k < len; ++k) acc = {acc};
        out[i] = acc;
    }}
}}"#
    );
    Kernel::new(format!("reduce_strided_{}_{}", op, suffix(dtype)), &body)
}

/// The first position of the extreme along the middle axis of
/// `[outer, len, inner]`, a NaN counting as the extreme: the CPU's loop.
pub fn arg_reduce(op: ReduceOp, dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let cmp = if op == ReduceOp::Max { ">" } else { "<" };
    let body = format!(
        r#"extern "C" __global__ void KNAME(const {t}* x, i64* out, i64 outer, i64 len, i64 inner) {{
    GRID_LOOP(i, outer * inner) {{
        i64 base = (i / inner) * len * inner + i % inner;
        i64 best = 0;
        {t} bv = x[base];
        for (i64 k = 1; k < len; ++k) {{
            {t} v = x[base + k * inner];
            if (bv != bv) break;
            if (v {cmp} bv || v != v) {{ best = k; bv = v; }}
        }}
        out[i] = best;
    }}
}}"#
    );
    Kernel::new(format!("arg_{}_{}", op, suffix(dtype)), &body)
}

/// The running reduction along the middle axis of `[outer, len, inner]`,
/// from the end when `reverse`: one thread per `(outer, inner)`, in order.
pub fn scan(op: ReduceOp, dtype: DType, reverse: bool) -> Kernel {
    let t = c_type(dtype);
    let comb = reduce_expr(op, dtype, "acc", "x[p]");
    let (start, step) = if reverse { ("len - 1", "--k") } else { ("0", "++k") };
    let cond = if reverse { "k >= 0" } else { "k < len" };
    let body = format!(
        r#"extern "C" __global__ void KNAME(const {t}* x, {t}* out, i64 outer, i64 len, i64 inner) {{
    GRID_LOOP(i, outer * inner) {{
        i64 base = (i / inner) * len * inner + i % inner;
        {t} acc = 0;
        bool first = true;
        for (i64 k = {start}; {cond}; {step}) {{
            i64 p = base + k * inner;
            acc = first ? x[p] : {comb};
            first = false;
            out[p] = acc;
        }}
    }}
}}"#
    );
    let dir = if reverse { "rev" } else { "fwd" };
    Kernel::new(format!("scan_{}_{dir}_{}", op, suffix(dtype)), &body)
}

/// The value a `Fill` gather reads outside the axis, as C.
fn fill_value(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "(unsigned short)0x7e00",
        DType::BF16 => "(unsigned short)0x7fc0",
        DType::F32 => "__int_as_float(0x7fc00000)",
        DType::F64 => "__longlong_as_double(0x7ff8000000000000LL)",
        DType::I64 => "(-9223372036854775807LL - 1)",
        DType::Bool => "true",
    }
}

/// `out[o, j, c] = x[o, idx[j], c]`, an index outside the axis resolved by
/// the mode (`mode`: 0 fill, 1 fill with zero, 2 clip).
pub fn gather(dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let fill = fill_value(dtype);
    let body = format!(
        r#"extern "C" __global__ void KNAME(const {t}* x, const i64* idx, {t}* out, i64 outer, i64 len, i64 inner, i64 nidx, int mode) {{
    GRID_LOOP(i, outer * nidx * inner) {{
        i64 c = i % inner, j = (i / inner) % nidx, o = i / (inner * nidx);
        i64 r = resolve(idx[j], len, mode == 2);
        out[i] = r >= 0 ? x[(o * len + r) * inner + c] : (mode == 1 ? ({t})0 : {fill});
    }}
}}"#
    );
    Kernel::new(format!("gather_{}", suffix(dtype)), &body)
}

/// `out[o, idx[j], c] += upd[o, j, c]` with atomic additions (so repeated
/// indices accumulate, in an unspecified order for floats).
pub fn scatter_add(dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let add =
        if dtype == DType::I64 { "atomicAdd((u64*)&out[dst], (u64)upd[i])" } else { "atomicAdd(&out[dst], upd[i])" };
    let body = format!(
        r#"extern "C" __global__ void KNAME({t}* out, const i64* idx, const {t}* upd, i64 outer, i64 len, i64 inner, i64 nidx, int mode) {{
    GRID_LOOP(i, outer * nidx * inner) {{
        i64 c = i % inner, j = (i / inner) % nidx, o = i / (inner * nidx);
        i64 r = resolve(idx[j], len, mode == 2);
        if (r < 0) continue;
        i64 dst = (o * len + r) * inner + c;
        {add};
    }}
}}"#
    );
    Kernel::new(format!("scatter_add_{}", suffix(dtype)), &body)
}

/// `col [G, N, P, Cg, K]` from `x [N, C, S..]`: each output position's
/// window of each group's channels, zero over padding and dilation gaps
/// (the columns of a convolution as a matrix product).
pub fn im2col(dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let body = format!(
        "extern \"C\" __global__ void KNAME(const {t}* x, {t}* col, i64 total, ConvDims g) {{ \
         GRID_LOOP(i, total) {{ i64 s = conv_source(g, i); col[i] = s >= 0 ? x[s] : ({t})0; }} }}"
    );
    Kernel::new(format!("im2col_{}", suffix(dtype)), &body)
}

/// The transpose of [`im2col`]: each column element added into the input
/// position it was read from (atomically: windows overlap).
pub fn col2im(dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let body = format!(
        "extern \"C\" __global__ void KNAME(const {t}* col, {t}* dx, i64 total, ConvDims g) {{ \
         GRID_LOOP(i, total) {{ i64 s = conv_source(g, i); if (s >= 0) atomicAdd(&dx[s], col[i]); }} }}"
    );
    Kernel::new(format!("col2im_{}", suffix(dtype)), &body)
}

/// The flat index into `x` of the first extreme of each pooling window
/// (`op` is `Max` or `Min`; a NaN counts as the extreme), taps in
/// row-major order and those over the padding skipped: the CPU's search.
pub fn window_arg(op: ReduceOp, dtype: DType) -> Kernel {
    let t = c_type(dtype);
    let cmp = if op == ReduceOp::Max { ">" } else { "<" };
    let body = format!(
        r#"extern "C" __global__ void KNAME(const {t}* x, i64* out, i64 total, WindowDims w) {{
    GRID_LOOP(i, total) {{
        i64 best = -1;
        {t} bv = 0;
        for (i64 kf = 0; kf < w.taps; ++kf) {{
            i64 flat = 0, rest_o = i, rest_k = kf;
            bool inside = true;
            // Axis by axis from the last: the output's and the tap's positions.
            i64 scale = 1;
            for (int a = w.rank - 1; a >= 0; --a) {{
                i64 o = rest_o % w.out[a], k = rest_k % w.win[a];
                rest_o /= w.out[a]; rest_k /= w.win[a];
                i64 p = o * w.stride[a] + k - w.lo[a];
                if (p < 0 || p >= w.shape[a]) {{ inside = false; break; }}
                flat += p * scale;
                scale *= w.shape[a];
            }}
            if (!inside) continue;
            {t} v = x[flat];
            if (best < 0 || v {cmp} bv || (v != v && bv == bv)) {{ best = flat; bv = v; }}
        }}
        out[i] = best;
    }}
}}"#
    );
    Kernel::new(format!("window_arg_{}_{}", op, suffix(dtype)), &body)
}

/// The longest run [`sort`] sorts on the GPU (a block's shared memory
/// holds it); longer runs are sorted on the host.
pub const SORT_MAX: usize = 2048;

/// Each run along the middle axis of `[outer, len, inner]` sorted, and the
/// positions that sort it: the CPU's stable order (NaN greatest, so last
/// ascending and first descending; equal values in their order), by a
/// bitonic network over (value, position) pairs in shared memory, which
/// ties make a strict order. One block per run; `p` is a power of two ≥ len.
pub fn sort(dtype: DType, descending: bool) -> Kernel {
    let t = c_type(dtype);
    let (first, second) = if descending { ("vb", "va") } else { ("va", "vb") };
    let body = format!(
        r#"extern "C" __global__ void KNAME(const {t}* x, {t}* values, i64* order, i64 outer, i64 len, i64 inner, i64 p) {{
    __shared__ {t} sv[{SORT_MAX}];
    __shared__ i64 si[{SORT_MAX}];
    for (i64 row = blockIdx.x; row < outer * inner; row += gridDim.x) {{
        i64 o = row / inner, c = row % inner;
        for (i64 k = threadIdx.x; k < p; k += blockDim.x) {{
            si[k] = k;
            sv[k] = k < len ? x[(o * len + k) * inner + c] : ({t})0;
        }}
        __syncthreads();
        for (i64 size = 2; size <= p; size <<= 1) {{
            for (i64 j = size >> 1; j > 0; j >>= 1) {{
                for (i64 a = threadIdx.x; a < p; a += blockDim.x) {{
                    i64 b = a ^ j;
                    if (b <= a) continue;
                    // Whether the element at b comes before the one at a; positions past
                    // the run come after every element of it.
                    i64 ia = si[a], ib = si[b];
                    bool b_first;
                    if ((ia >= len) != (ib >= len)) b_first = ia >= len;
                    else if (ia >= len) b_first = ib < ia;
                    else {{
                        {t} va = sv[a], vb = sv[b];
                        int cmp = total_cmp({second}, {first});
                        b_first = cmp < 0 || (cmp == 0 && ib < ia);
                    }}
                    bool up = (a & size) == 0;
                    if (up == b_first) {{
                        {t} tv = sv[a]; sv[a] = sv[b]; sv[b] = tv;
                        si[a] = ib; si[b] = ia;
                    }}
                }}
                __syncthreads();
            }}
        }}
        for (i64 k = threadIdx.x; k < len; k += blockDim.x) {{
            values[(o * len + k) * inner + c] = sv[k];
            order[(o * len + k) * inner + c] = si[k];
        }}
        __syncthreads();
    }}
}}"#
    );
    let dir = if descending { "desc" } else { "asc" };
    Kernel::new(format!("sort_{dir}_{}", suffix(dtype)), &body)
}

/// The dtypes [`scatter_add`] is generated for (those with an atomic add).
pub const SCATTER: [DType; 3] = [DType::F32, DType::F64, DType::I64];

/// One kernel for a whole fused elementwise program over arrays of `dtype`
/// (f32 or f64): each thread computes every step for its element in
/// registers and writes only the program's outputs (and, when the program
/// ends in a reduction, the reduced step's values to the last output
/// pointer, for a reduction kernel to take). Inputs are broadcast through
/// `Dims` (stride set `k` for input `k`, at most four inputs strided; more
/// inputs must have the output's shape).
pub fn fused(program: &FusedProgram, dtype: DType, n_inputs: usize, input_dtypes: &[DType]) -> Kernel {
    let t = c_type(dtype);
    let steps = program.steps();
    let mut outs: Vec<usize> = program.outputs().to_vec();
    if let Some(r) = program.reduction() {
        outs.push(r.step);
    }
    let mut params = Vec::new();
    for (k, d) in input_dtypes.iter().enumerate().take(n_inputs) {
        params.push(format!("const {}* in{k}", c_type(*d)));
    }
    for (k, &s) in outs.iter().enumerate() {
        let ty = if matches!(steps[s].op, FusedOp::Compare(_)) { "bool" } else { t };
        params.push(format!("{ty}* out{k}"));
    }
    params.push("i64 n".into());
    params.push("Dims d".into());
    let mut body = String::new();
    let _ = writeln!(body, "extern \"C\" __global__ void KNAME({}) {{\n  GRID_LOOP(i, n) {{", params.join(", "));
    let read = |a: &Operand| -> String {
        match *a {
            Operand::Input(k) if k < 4 => format!("in{k}[off(d, {k}, i)]"),
            Operand::Input(k) => format!("in{k}[i]"),
            Operand::Step(s) => format!("v{s}"),
        }
    };
    for (s, step) in steps.iter().enumerate() {
        let (ty, e) = match step.op {
            FusedOp::Unary(op) => (t, unary_expr(op, &read(&step.args[0]))),
            FusedOp::Binary(op) => (t, binary_expr(op, dtype, &read(&step.args[0]), &read(&step.args[1]))),
            FusedOp::Compare(op) => ("bool", compare_expr(op, &read(&step.args[0]), &read(&step.args[1]))),
            FusedOp::Select => {
                (t, format!("({} ? {} : {})", read(&step.args[0]), read(&step.args[1]), read(&step.args[2])))
            }
        };
        let _ = writeln!(body, "    {ty} v{s} = {e};");
    }
    for (k, s) in outs.iter().enumerate() {
        let _ = writeln!(body, "    out{k}[i] = v{s};");
    }
    body.push_str("  }\n}\n");
    // The source names its kernel by a hash of itself: programs differ in steps, not names.
    let digest = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut h);
        h.finish()
    };
    Kernel::new(format!("fused_{}_{digest:016x}", suffix(dtype)), &body)
}

/// A kernel the backend launches, named by what it computes: the key of
/// each GPU's cache of compiled kernels, so a launch looks its kernel up
/// without generating the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKey {
    /// [`unary`].
    Unary(UnaryOp, DType),
    /// [`binary`].
    Binary(BinaryOp, DType),
    /// [`compare`].
    Compare(CompareOp, DType),
    /// [`select`] over elements of this many bytes.
    Select(usize),
    /// [`copy`] of elements of this many bytes.
    Copy(usize),
    /// [`fill`] with elements of this many bytes.
    Fill(usize),
    /// [`convert`] from the first dtype to the second.
    Convert(DType, DType),
    /// [`reduce_rows`].
    ReduceRows(ReduceOp, DType),
    /// [`reduce_strided`].
    ReduceStrided(ReduceOp, DType),
    /// A row kernel of softmax or standardisation ([`row_kernel`]).
    Rows(RowKernel, DType),
    /// [`arg_reduce`].
    ArgReduce(ReduceOp, DType),
    /// [`scan`], reversed when the flag is set.
    Scan(ReduceOp, DType, bool),
    /// [`gather`].
    Gather(DType),
    /// [`scatter_add`].
    ScatterAdd(DType),
    /// [`im2col`].
    Im2col(DType),
    /// [`col2im`].
    Col2im(DType),
    /// [`window_arg`].
    WindowArg(ReduceOp, DType),
    /// [`sort`], descending when the flag is set.
    Sort(DType, bool),
}

impl KernelKey {
    /// The kernel's source.
    pub fn kernel(self) -> Kernel {
        use KernelKey::*;
        match self {
            Unary(op, d) => unary(op, d),
            Binary(op, d) => binary(op, d),
            Compare(op, d) => compare(op, d),
            Select(b) => select(b),
            Copy(b) => copy(b),
            Fill(b) => fill(b),
            Convert(a, b) => convert(a, b),
            ReduceRows(op, d) => reduce_rows(op, d),
            ReduceStrided(op, d) => reduce_strided(op, d),
            Rows(kind, d) => row_kernel(kind, d),
            ArgReduce(op, d) => arg_reduce(op, d),
            Scan(op, d, rev) => scan(op, d, rev),
            Gather(d) => gather(d),
            ScatterAdd(d) => scatter_add(d),
            Im2col(d) => im2col(d),
            Col2im(d) => col2im(d),
            WindowArg(op, d) => window_arg(op, d),
            Sort(d, descending) => sort(d, descending),
        }
    }
}

/// Every kernel the backend can launch outside fused programs (which are
/// generated per program), for compiling them all ahead of any GPU.
pub fn every_kernel() -> Vec<Kernel> {
    let mut ks = Vec::new();
    for dtype in [DType::F32, DType::F64] {
        for op in UnaryOp::ALL.into_iter().chain([UnaryOp::PowI(-3), UnaryOp::PowI(0), UnaryOp::PowI(7)]) {
            ks.push(unary(op, dtype));
        }
        for op in BinaryOp::ALL {
            ks.push(binary(op, dtype));
        }
    }
    ks.extend(UnaryOp::ALL.into_iter().filter(|op| op.takes_integers()).map(|op| unary(op, DType::I64)));
    ks.extend(BinaryOp::ALL.into_iter().filter(|op| op.takes_integers()).map(|op| binary(op, DType::I64)));
    for dtype in [DType::F32, DType::F64, DType::I64, DType::Bool] {
        ks.extend(CompareOp::ALL.into_iter().map(|op| compare(op, dtype)));
    }
    for bytes in [1, 2, 4, 8] {
        ks.push(select(bytes));
        ks.push(copy(bytes));
        ks.push(fill(bytes));
    }
    for from in ALL_DTYPES {
        for to in ALL_DTYPES {
            if from != to {
                ks.push(convert(from, to));
            }
        }
    }
    for dtype in NUMERIC {
        for op in [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min] {
            ks.push(reduce_rows(op, dtype));
            ks.push(reduce_strided(op, dtype));
            ks.push(scan(op, dtype, false));
            ks.push(scan(op, dtype, true));
        }
        ks.push(arg_reduce(ReduceOp::Max, dtype));
        ks.push(arg_reduce(ReduceOp::Min, dtype));
        ks.push(sort(dtype, false));
        ks.push(sort(dtype, true));
    }
    ks.extend(ALL_DTYPES.into_iter().map(gather));
    ks.extend(SCATTER.into_iter().map(scatter_add));
    for dtype in [DType::F32, DType::F64] {
        ks.push(im2col(dtype));
        ks.push(col2im(dtype));
        ks.push(window_arg(ReduceOp::Max, dtype));
        ks.push(window_arg(ReduceOp::Min, dtype));
        ks.extend(RowKernel::ALL.into_iter().map(|kind| row_kernel(kind, dtype)));
    }
    ks
}
