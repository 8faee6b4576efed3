//! The generated kernels, built for the host by the system's C++ compiler
//! and run as one thread (a grid of one block of one thread, so every
//! grid-stride loop walks all the elements), against the CPU backend: the
//! kernels' formulas — NaN and signed zeros, integer wrapping, rounding
//! and NaN payloads of conversions, index modes, scans, arg reductions —
//! checked without a GPU. A shim gives the host what CUDA has built in;
//! the prelude's two PTX instructions have host versions under
//! `#ifndef __CUDA_ARCH__`. Skipped, saying why, without a C++ compiler.

use std::sync::OnceLock;

use super::codegen::{self, Kernel, KernelKey};
use super::dims::Dims;
use super::prelude::PRELUDE;
use crate::array::{backend, broadcast_shapes, with_buffer, Array, BinaryOp, CompareOp, DType, Device, IndexMode};
use crate::array::{ReduceOp, Rng, Storage, UnaryOp};

const SHIM: &str = r#"
#include <cmath>
#include <cstring>
#include <cfenv>
using namespace std;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
struct FxDim3 { unsigned x, y, z; };
static const FxDim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
static inline void __syncthreads() {}
static inline float __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
static inline float __uint_as_float(unsigned v) { float f; memcpy(&f, &v, 4); return f; }
static inline unsigned __float_as_uint(float v) { unsigned u; memcpy(&u, &v, 4); return u; }
static inline long long __double_as_longlong(double v) { long long u; memcpy(&u, &v, 8); return u; }
static inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }
static inline float __double2float_rz(double x) {
    int mode = fegetround(); fesetround(FE_TOWARDZERO);
    volatile double vx = x; volatile float f = (float)vx;
    fesetround(mode); return f;
}
static inline float host_h2f(unsigned short h) { _Float16 v; memcpy(&v, &h, 2); return (float)v; }
static inline unsigned short host_f2h(float f) { _Float16 v = (_Float16)f; unsigned short h; memcpy(&h, &v, 2); return h; }
static inline float atomicAdd(float* p, float v) { float o = *p; *p = o + v; return o; }
static inline double atomicAdd(double* p, double v) { double o = *p; *p = o + v; return o; }
static inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { unsigned long long o = *p; *p = o + v; return o; }
// CUDA's erfcxf, which C lacks: e^(x²) erfc(x) in double, and its
// asymptotic series where e^(x²) would overflow.
static inline float erfcxf(float x) {
    double d = x;
    if (d < 25) return (float)(exp(d * d) * erfc(d));
    return (float)(1 / (d * sqrt(M_PI)) * (1 - 1 / (2 * d * d) + 3 / (4 * d * d * d * d)));
}
// CUDA's erfinv, which C lacks: Newton's method on erf, in double.
template <typename T> static inline T erfinv(T y) {
    if (y != y || y < -1 || y > 1) return (T)NAN;
    if (y == 1) return (T)INFINITY;
    if (y == -1) return (T)-INFINITY;
    double x = 0, yd = y;
    for (int i = 0; i < 100; ++i) {
        double e = erf(x) - yd;
        double step = e / (2.0 / sqrt(M_PI) * exp(-x * x));
        x -= step;
        if (fabs(step) <= 1e-17 * (1 + fabs(x))) break;
    }
    return (T)x;
}
"#;

/// The host library of every kernel, or why there is none.
fn library() -> Result<&'static libloading::Library, String> {
    static LIB: OnceLock<Result<libloading::Library, String>> = OnceLock::new();
    LIB.get_or_init(|| build("kernels", &codegen::every_kernel())).as_ref().map_err(Clone::clone)
}

/// `kernels` built into one host library named `name`.
fn build(name: &str, kernels: &[Kernel]) -> Result<libloading::Library, String> {
    let mut src = format!("{SHIM}\n{PRELUDE}\n");
    for k in kernels {
        src.push_str(&k.source[PRELUDE.len() + 1..]);
        src.push('\n');
    }
    let dir = std::env::temp_dir().join(format!("ferrax-emulate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (cpp, so) = (dir.join(format!("{name}.cpp")), dir.join(format!("{name}.so")));
    std::fs::write(&cpp, src).map_err(|e| e.to_string())?;
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let out = std::process::Command::new(&cxx)
        .args(["-std=c++17", "-O1", "-frounding-math", "-ffp-contract=off", "-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&cpp)
        .output()
        .map_err(|e| format!("no C++ compiler ({cxx}): {e}"))?;
    if !out.status.success() {
        panic!("the kernels do not build for the host:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    // SAFETY: the library is the kernels just built; its initialisers are the C++ runtime's.
    unsafe { libloading::Library::new(&so) }.map_err(|e| e.to_string())
}

macro_rules! kernel_fn {
    ($lib:expr, $key:expr, $ty:ty) => {{
        let k: Kernel = $key.kernel();
        // SAFETY: the symbol is the kernel of that name, whose C signature `$ty` mirrors.
        *unsafe { $lib.get::<$ty>(k.name.as_bytes()) }.unwrap_or_else(|e| panic!("{}: {e}", k.name))
    }};
}

type Ptr = *const u8;
type Mut = *mut u8;

fn ptr(a: &Array) -> Ptr {
    with_buffer!(a.buffer(), v => v.as_ptr().cast::<u8>())
}

/// An array of zeros and the address of its elements, for a kernel to write.
fn output(dtype: DType, shape: &[usize]) -> (Array, Mut) {
    let mut a = Array::zeros(shape, dtype);
    let p = match a.storage_mut() {
        Some(Storage::Cpu(b)) => with_buffer!(b, v => v.as_mut_ptr().cast::<u8>()),
        _ => unreachable!("a fresh host array"),
    };
    (a, p)
}

fn lib_or_skip() -> Option<&'static libloading::Library> {
    match library() {
        Ok(l) => Some(l),
        Err(why) => {
            eprintln!("skipped: the kernels cannot be built for the host: {why}");
            None
        }
    }
}

/// Values that find the corners: NaN, signed zeros, infinities, halves
/// (rounding ties), large and small magnitudes, then random ones.
fn samples(n: usize, seed: u64) -> Vec<f64> {
    let mut v = vec![
        f64::NAN,
        0.0,
        -0.0,
        f64::INFINITY,
        -f64::INFINITY,
        0.5,
        -0.5,
        1.5,
        2.5,
        -2.5,
        1.0,
        -1.0,
        3.0,
        1e30,
        -1e30,
        1e-30,
        7.0,
        -7.0,
        0.25,
        0.999,
    ];
    let mut rng = Rng::new(seed);
    v.truncate(n);
    while v.len() < n {
        let x = match rng.below(3) {
            0 => rng.normal() * 3.0,
            1 => rng.uniform_in(-1.0, 1.0),
            _ => rng.uniform_in(0.0, 40.0).round() - 20.0,
        };
        v.push(x);
    }
    v
}

/// `got` within `rtol` of `want` (relative to |want| + 1e-300), NaN where it is NaN.
fn close(what: &str, got: &Array, want: &Array, rtol: f64) {
    close_to_scale(what, got, want, rtol, 1e-300);
}

/// [`close`], relative to |want| or `floor`, whichever is larger.
fn close_to_scale(what: &str, got: &Array, want: &Array, rtol: f64, floor: f64) {
    assert_eq!((got.shape(), got.dtype()), (want.shape(), want.dtype()), "{what}");
    for (i, (g, w)) in got.to_vec::<f64>().iter().zip(want.to_vec::<f64>()).enumerate() {
        let ok = (g.is_nan() && w.is_nan())
            || g == &w
            || (g - w).abs() <= rtol * w.abs().max(floor)
            || (g.is_finite() && w.is_finite() && (g - w).abs() <= 1e-300);
        assert!(ok, "{what}: element {i} is {g} from the kernel and {w} on the CPU");
    }
}

#[test]
fn unary_kernels_compute_what_the_cpu_does() {
    let Some(lib) = lib_or_skip() else { return };
    let cpu = backend(Device::Cpu);
    type F = unsafe extern "C" fn(Ptr, Mut, i64);
    for dtype in [DType::F32, DType::F64] {
        let x = Array::from_vec(samples(400, 1), &[400]).to_dtype(dtype);
        for op in UnaryOp::ALL.into_iter().chain([UnaryOp::PowI(-3), UnaryOp::PowI(0), UnaryOp::PowI(7)]) {
            let f = kernel_fn!(lib, KernelKey::Unary(op, dtype), F);
            let (got, out) = output(dtype, x.shape());
            // SAFETY: 400 elements in and out, as the kernel walks.
            unsafe { f(ptr(&x), out, 400) };
            let want = cpu.unary(op, &x);
            // The math libraries differ in the last bits; ferrax's own fast
            // exp, tanh, ln and erf are within a few ulp; exact ops are exact.
            let exact = matches!(
                op,
                UnaryOp::Neg
                    | UnaryOp::Abs
                    | UnaryOp::Sign
                    | UnaryOp::Relu
                    | UnaryOp::Floor
                    | UnaryOp::Ceil
                    | UnaryOp::Round
                    | UnaryOp::Trunc
            );
            let rtol = if exact {
                0.0
            } else if dtype == DType::F32 {
                4e-6
            } else {
                1e-13
            };
            // GELU's derivatives are sums of terms near 1 that cancel where
            // GELU has its minimum (x ≈ -0.75): the libraries' last bits are
            // relative to the terms.
            let floor = if matches!(op, UnaryOp::GeluGrad | UnaryOp::GeluTanhGrad) { 1.0 } else { 1e-300 };
            close_to_scale(&format!("{op} in {dtype}"), &got, &want, rtol, floor);
        }
    }
    let x = Array::from_vec(vec![i64::MIN, -5, -1, 0, 1, 7, i64::MAX], &[7]);
    for op in UnaryOp::ALL.into_iter().filter(|op| op.takes_integers()) {
        let f = kernel_fn!(lib, KernelKey::Unary(op, DType::I64), F);
        let (got, out) = output(DType::I64, &[7]);
        // SAFETY: as above.
        unsafe { f(ptr(&x), out, 7) };
        assert!(got.bit_eq(&cpu.unary(op, &x)), "{op} of i64");
    }
}

#[test]
fn binary_and_compare_kernels_broadcast_and_compute_what_the_cpu_does() {
    let Some(lib) = lib_or_skip() else { return };
    let cpu = backend(Device::Cpu);
    type F = unsafe extern "C" fn(Ptr, Ptr, Mut, i64, Dims);
    let v = samples(20, 2);
    let ints: Vec<i64> = vec![i64::MIN, -7, -3, -1, 0, 1, 2, 3, 7, i64::MAX];
    for dtype in [DType::F32, DType::F64, DType::I64] {
        // Every pair of the corner values: a column against a row.
        let (a, b) = if dtype == DType::I64 {
            (Array::from_vec(ints.clone(), &[10, 1]), Array::from_vec(ints.clone(), &[1, 10]))
        } else {
            (Array::from_vec(v.clone(), &[20, 1]).to_dtype(dtype), Array::from_vec(v.clone(), &[1, 20]).to_dtype(dtype))
        };
        let shape = broadcast_shapes(a.shape(), b.shape()).expect("a column and a row");
        let n: usize = shape.iter().product();
        let dims = Dims::broadcast(&shape, &[a.shape(), b.shape()]).expect("two axes");
        for op in BinaryOp::ALL.into_iter().filter(|op| dtype != DType::I64 || op.takes_integers()) {
            let f = kernel_fn!(lib, KernelKey::Binary(op, dtype), F);
            let (got, out) = output(dtype, &shape);
            // SAFETY: the operands are read through `dims`, which addresses them; n outputs.
            unsafe { f(ptr(&a), ptr(&b), out, n as i64, dims) };
            let want = cpu.binary(op, &a, &b);
            let rtol = match (op, dtype) {
                (BinaryOp::Pow | BinaryOp::Atan2, DType::F32) => 4e-6,
                (BinaryOp::Pow | BinaryOp::Atan2, DType::F64) => 1e-13,
                _ => 0.0,
            };
            if rtol == 0.0 {
                assert!(got.bit_eq(&want), "{op} in {dtype}: {got:?} against the CPU's {want:?}");
            } else {
                close(&format!("{op} in {dtype}"), &got, &want, rtol);
            }
        }
        for op in CompareOp::ALL {
            let f = kernel_fn!(lib, KernelKey::Compare(op, dtype), F);
            let (got, out) = output(DType::Bool, &shape);
            // SAFETY: as above.
            unsafe { f(ptr(&a), ptr(&b), out, n as i64, dims) };
            assert!(got.bit_eq(&cpu.compare(op, &a, &b)), "{op} in {dtype}");
        }
    }
}

#[test]
fn conversions_give_the_cpus_bits() {
    let Some(lib) = lib_or_skip() else { return };
    type F = unsafe extern "C" fn(Ptr, Mut, i64);
    let mut v = samples(3000, 3);
    v.extend([
        65504.0,
        65520.0,
        65519.99,
        1e-8,
        6e-8,
        3e38,
        3.5e38,
        1e39,
        9.3e18,
        -9.3e18,
        1.0 + 2f64.powi(-11) + 2f64.powi(-40),
    ]);
    // A NaN with a payload and a negative NaN, which conversions keep.
    v.push(f64::from_bits(0x7ff8_0000_dead_beef));
    v.push(f64::from_bits(0xfff4_0000_0000_0001));
    let n = v.len();
    let all = [DType::F16, DType::BF16, DType::F32, DType::F64, DType::I64, DType::Bool];
    for from in all {
        let x = Array::from_vec(v.clone(), &[n]).to_dtype(from);
        for to in all.into_iter().filter(|&to| to != from) {
            let f = kernel_fn!(lib, KernelKey::Convert(from, to), F);
            let (got, out) = output(to, &[n]);
            // SAFETY: n elements in and out.
            unsafe { f(ptr(&x), out, n as i64) };
            let want = x.to_dtype(to);
            if let Some(i) = (0..n).find(|&i| got.get_f64(i).to_bits() != want.get_f64(i).to_bits()) {
                panic!(
                    "{from} -> {to}: element {i} ({}) gives {} against the CPU's {}",
                    x.get_f64(i),
                    got.get_f64(i),
                    want.get_f64(i)
                );
            }
            assert!(got.bit_eq(&want), "{from} -> {to}: the bits differ from the CPU's");
        }
    }
}

#[test]
fn reductions_scans_and_arg_reductions_compute_what_the_cpu_does() {
    let Some(lib) = lib_or_skip() else { return };
    let cpu = backend(Device::Cpu);
    type Rows = unsafe extern "C" fn(Ptr, Mut, i64, i64, i64);
    type Strided = unsafe extern "C" fn(Ptr, Mut, i64, i64, i64);
    let ops = [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min];
    for dtype in [DType::F32, DType::F64, DType::I64] {
        let mut v: Vec<f64> =
            samples(60, 4).into_iter().map(|x| if x.is_finite() { x.clamp(-9.0, 9.0) } else { x }).collect();
        if dtype == DType::I64 {
            v.iter_mut().for_each(|x| *x = if x.is_nan() { 3.0 } else { x.round() });
        }
        let x = Array::from_vec(v, &[3, 4, 5]).to_dtype(dtype);
        for op in ops {
            // Rows of the last axis, in one part and in three.
            for parts in [1i64, 3] {
                let f = kernel_fn!(lib, KernelKey::ReduceRows(op, dtype), Rows);
                let (partial, out) = output(dtype, &[12, parts as usize]);
                // SAFETY: 12 rows of 5 in; 12 × parts out.
                unsafe { f(ptr(&x), out, 12, 5, parts) };
                let got =
                    if parts == 1 { partial.reshape(&[3, 4]) } else { cpu.reduce(op, &partial, &[1]).reshape(&[3, 4]) };
                let rtol = if op == ReduceOp::Sum || op == ReduceOp::Prod { 1e-5 } else { 0.0 };
                close(&format!("{op} over rows of {dtype} in {parts} parts"), &got, &cpu.reduce(op, &x, &[2]), rtol);
            }
            // The middle axis: [3, 4, 5] reduced over 4.
            let f = kernel_fn!(lib, KernelKey::ReduceStrided(op, dtype), Strided);
            let (got, out) = output(dtype, &[3, 5]);
            // SAFETY: [outer 3, len 4, inner 5].
            unsafe { f(ptr(&x), out, 3, 4, 5) };
            close(&format!("{op} over the middle of {dtype}"), &got, &cpu.reduce(op, &x, &[1]), 0.0);
            for reverse in [false, true] {
                let f = kernel_fn!(lib, KernelKey::Scan(op, dtype, reverse), Strided);
                let (got, out) = output(dtype, &[3, 4, 5]);
                // SAFETY: [outer 3, len 4, inner 5], in and out.
                unsafe { f(ptr(&x), out, 3, 4, 5) };
                close(
                    &format!("cumulative {op} of {dtype}, reverse {reverse}"),
                    &got,
                    &cpu.scan(op, &x, 1, reverse),
                    0.0,
                );
            }
        }
        for op in [ReduceOp::Max, ReduceOp::Min] {
            let f = kernel_fn!(lib, KernelKey::ArgReduce(op, dtype), Strided);
            let (got, out) = output(DType::I64, &[3, 5]);
            // SAFETY: as above; i64 positions out.
            unsafe { f(ptr(&x), out, 3, 4, 5) };
            assert!(got.bit_eq(&cpu.arg_reduce(op, &x, 1)), "arg{op} of {dtype}");
        }
    }
}

#[test]
fn gathers_and_scatters_resolve_indices_as_the_cpu_does() {
    let Some(lib) = lib_or_skip() else { return };
    let cpu = backend(Device::Cpu);
    type G = unsafe extern "C" fn(Ptr, Ptr, Mut, i64, i64, i64, i64, i32);
    type S = unsafe extern "C" fn(Mut, Ptr, Ptr, i64, i64, i64, i64, i32);
    let idx = Array::from_vec(vec![0i64, 2, -1, -4, 3, 9, -9, 1, 1], &[9]);
    let modes = [(IndexMode::Fill, 0), (IndexMode::FillZero, 1), (IndexMode::Clip, 2)];
    for dtype in [DType::F16, DType::BF16, DType::F32, DType::F64, DType::I64, DType::Bool] {
        let x = Array::from_vec(samples(24, 5), &[2, 4, 3]).to_dtype(dtype);
        for (mode, code) in modes {
            let f = kernel_fn!(lib, KernelKey::Gather(dtype), G);
            let (got, out) = output(dtype, &[2, 9, 3]);
            // SAFETY: [outer 2, len 4, inner 3] gathered by 9 indices.
            unsafe { f(ptr(&x), ptr(&idx), out, 2, 4, 3, 9, code) };
            assert!(got.bit_eq(&cpu.gather(&x, 1, &idx, mode)), "gather of {dtype} with {mode:?}");
        }
    }
    for dtype in codegen::SCATTER {
        let x = Array::from_vec((0..24).map(f64::from).collect(), &[2, 4, 3]).to_dtype(dtype);
        let upd = Array::from_vec((0..54).map(|i| f64::from(i) * 0.5 + 1.0).collect(), &[2, 9, 3]).to_dtype(dtype);
        for (mode, code) in modes {
            let f = kernel_fn!(lib, KernelKey::ScatterAdd(dtype), S);
            let (got, out) = output(dtype, &[2, 4, 3]);
            // SAFETY: the output starts as x's copy; [2, 4, 3] by 9 indices.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr(&x), out, 24 * dtype.size_of());
                f(out, ptr(&idx), ptr(&upd), 2, 4, 3, 9, code);
            }
            assert!(got.bit_eq(&cpu.scatter_add(&x, 1, &idx, &upd, mode)), "scatter_add of {dtype} with {mode:?}");
        }
    }
}

#[test]
fn selects_and_fills_move_elements_of_every_width() {
    let Some(lib) = lib_or_skip() else { return };
    let cpu = backend(Device::Cpu);
    type Sel = unsafe extern "C" fn(Ptr, Ptr, Ptr, Mut, i64, Dims);
    type Fill = unsafe extern "C" fn(Mut, u64, i64);
    let cond = Array::from_vec(vec![true, false, true], &[3, 1]);
    for dtype in [DType::Bool, DType::F16, DType::F32, DType::F64] {
        let a = Array::from_vec(samples(4, 6), &[1, 4]).to_dtype(dtype);
        let b = Array::from_vec(samples(12, 7), &[3, 4]).to_dtype(dtype);
        let dims = Dims::broadcast(&[3, 4], &[cond.shape(), a.shape(), b.shape()]).expect("two axes");
        let f = kernel_fn!(lib, KernelKey::Select(dtype.size_of()), Sel);
        let (got, out) = output(dtype, &[3, 4]);
        // SAFETY: the operands are read through `dims`; 12 outputs.
        unsafe { f(ptr(&cond), ptr(&a), ptr(&b), out, 12, dims) };
        assert!(got.bit_eq(&cpu.select(&cond, &a, &b)), "select of {dtype}");
        let one = Array::from_vec(vec![-2.75], &[]).to_dtype(dtype);
        let mut bits = [0u8; 8];
        let size = dtype.size_of();
        // SAFETY: one element of `size` bytes.
        unsafe { std::ptr::copy_nonoverlapping(ptr(&one), bits.as_mut_ptr(), size) };
        let f = kernel_fn!(lib, KernelKey::Fill(size), Fill);
        let (got, out) = output(dtype, &[5]);
        // SAFETY: 5 elements out.
        unsafe { f(out, u64::from_le_bytes(bits), 5) };
        assert!(got.bit_eq(&cpu.layout(&crate::array::LayoutOp::Broadcast(vec![5]), &one)), "fill of {dtype}");
    }
}

/// A fused program as its one generated kernel: a chain over broadcast
/// inputs with a comparison, a select on a bool input, two outputs (one a
/// mask) and the values a reduction takes, against the CPU's tiles.
#[test]
fn fused_programs_compute_what_the_cpu_does() {
    use crate::array::fused::{FusedOp, FusedProgram, FusedStep, Operand};
    use Operand::{Input, Step};
    if lib_or_skip().is_none() {
        return;
    }
    let step = |op, args: &[Operand]| FusedStep { op, args: args.to_vec() };
    let steps = vec![
        step(FusedOp::Binary(BinaryOp::Add), &[Input(0), Input(1)]),
        step(FusedOp::Unary(UnaryOp::Tanh), &[Step(0)]),
        step(FusedOp::Binary(BinaryOp::Mul), &[Step(1), Input(2)]),
        step(FusedOp::Unary(UnaryOp::Neg), &[Step(2)]),
        step(FusedOp::Compare(CompareOp::Gt), &[Step(3), Input(1)]),
        step(FusedOp::Select, &[Step(4), Step(3), Input(0)]),
        step(FusedOp::Select, &[Input(3), Step(5), Step(2)]),
        step(FusedOp::Binary(BinaryOp::Max), &[Step(6), Input(2)]),
    ];
    let program = FusedProgram::new(steps, vec![7, 4]);
    for dtype in [DType::F32, DType::F64] {
        let shape = [6, 7];
        let ins = [
            Array::from_vec(samples(42, 11), &shape).to_dtype(dtype),
            Array::from_vec(samples(7, 12), &[7]).to_dtype(dtype),
            Array::from_vec(samples(6, 13), &[6, 1]).to_dtype(dtype),
            Array::from_vec((0..42).map(|i| i % 3 == 0).collect(), &shape),
        ];
        let in_dtypes: Vec<DType> = ins.iter().map(Array::dtype).collect();
        let kernel = codegen::fused(&program, dtype, ins.len(), &in_dtypes);
        let lib = build(&kernel.name, std::slice::from_ref(&kernel)).expect("the fused kernel builds for the host");
        type F = unsafe extern "C" fn(Ptr, Ptr, Ptr, Ptr, Mut, Mut, i64, Dims);
        // SAFETY: the kernel's signature is four inputs, two outputs, n and Dims.
        let f = *unsafe { lib.get::<F>(kernel.name.as_bytes()) }.expect("the kernel's symbol");
        let dims = Dims::broadcast(&shape, &ins.iter().map(Array::shape).collect::<Vec<_>>()).expect("two axes");
        let (values, out0) = output(dtype, &shape);
        let (mask, out1) = output(DType::Bool, &shape);
        // SAFETY: inputs read through `dims`, 42 elements of each output.
        unsafe { f(ptr(&ins[0]), ptr(&ins[1]), ptr(&ins[2]), ptr(&ins[3]), out0, out1, 42, dims) };
        let want = program.run(&ins.iter().collect::<Vec<_>>(), dtype, &shape);
        let rtol = if dtype == DType::F32 { 4e-6 } else { 1e-13 };
        close(&format!("fused values in {dtype}"), &values, &want[0], rtol);
        assert!(mask.bit_eq(&want[1]), "fused mask in {dtype}");
    }
}

/// The column kernels built for the host.
struct HostColumns(&'static libloading::Library);

impl super::conv::Columns for HostColumns {
    fn im2col(&self, x: &Array, g: &super::conv::ConvDims) -> Array {
        type F = unsafe extern "C" fn(Ptr, Mut, i64, super::conv::ConvDims);
        let f = kernel_fn!(self.0, KernelKey::Im2col(x.dtype()), F);
        let (col, out) = output(x.dtype(), &g.col_shape());
        // SAFETY: the columns hold every element the kernel writes; it reads x inside its shape.
        unsafe { f(ptr(x), out, col.size() as i64, *g) };
        col
    }
    fn col2im(&self, col: &Array, g: &super::conv::ConvDims, x_shape: &[usize]) -> Array {
        type F = unsafe extern "C" fn(Ptr, Mut, i64, super::conv::ConvDims);
        let f = kernel_fn!(self.0, KernelKey::Col2im(col.dtype()), F);
        let (dx, out) = output(col.dtype(), x_shape);
        // SAFETY: as above, the other way.
        unsafe { f(ptr(col), out, col.size() as i64, *g) };
        dx
    }
}

/// Convolutions as the GPU computes them (columns by the generated
/// kernels, products and layout changes by a backend), with the CPU
/// backend and the kernels built for the host, against the CPU's
/// convolutions and their gradients: random geometries of 1 to 3 spatial
/// axes, strides, padding that crops, both dilations and groups.
#[test]
fn convolutions_as_columns_and_products_match_the_cpu() {
    use crate::array::ConvGeometry;
    let Some(lib) = lib_or_skip() else { return };
    let cpu = backend(Device::Cpu);
    let cols = HostColumns(lib);
    let mut rng = Rng::new(21);
    let mut checked = 0;
    for trial in 0..400 {
        let rank = 1 + trial % 3;
        let (groups, cg, og, n) = (1 + rng.below(2), 1 + rng.below(3), 1 + rng.below(3), 1 + rng.below(2));
        let input: Vec<usize> = (0..rank).map(|_| 1 + rng.below(6)).collect();
        let window: Vec<usize> = (0..rank).map(|_| 1 + rng.below(3)).collect();
        let geo = ConvGeometry {
            strides: (0..rank).map(|_| 1 + rng.below(3)).collect(),
            padding: (0..rank).map(|_| (rng.below(4) as i64 - 1, rng.below(4) as i64 - 1)).collect(),
            lhs_dilation: (0..rank).map(|_| 1 + rng.below(2)).collect(),
            rhs_dilation: (0..rank).map(|_| 1 + rng.below(2)).collect(),
        };
        let out = geo.out_shape(&input, &window);
        let mut xs = vec![n, groups * cg];
        xs.extend(&input);
        let mut ws = vec![groups * og, cg];
        ws.extend(&window);
        let mut cs = vec![n, groups * og];
        cs.extend(&out);
        let data = |shape: &[usize], seed| {
            let len: usize = shape.iter().product();
            Array::from_vec(samples(len + 20, seed)[20..].to_vec(), shape)
        };
        let (x, w, ct) = (data(&xs, 100 + trial as u64), data(&ws, 200 + trial as u64), data(&cs, 300 + trial as u64));
        let what = format!("x {xs:?}, w {ws:?}, groups {groups}, {geo:?}");
        let got = super::conv::conv(cpu, &cols, &x, &w, &geo, groups).expect("at most 3 axes");
        close(&format!("conv of {what}"), &got, &cpu.conv(&x, &w, &geo, groups), 1e-12);
        let got = super::conv::kernel_grad(cpu, &cols, &x, &ct, &window, &geo, groups).expect("at most 3 axes");
        close(
            &format!("kernel gradient of {what}"),
            &got,
            &cpu.conv_kernel_grad(&x, &ct, &window, &geo, groups),
            1e-12,
        );
        let got = super::conv::input_grad(cpu, &cols, &ct, &w, &geo, groups, &input).expect("at most 3 axes");
        close(&format!("input gradient of {what}"), &got, &cpu.conv_input_grad(&ct, &w, &geo, groups, &input), 1e-12);
        checked += usize::from(out.iter().all(|&p| p > 0));
    }
    assert!(checked > 100, "only {checked} geometries had a non-empty output");
}

/// Pooling's window search as the GPU runs it, against the CPU's: random
/// shapes of 1 to 4 axes, windows, strides and padding, with NaNs and ties.
#[test]
fn window_searches_find_the_cpus_positions() {
    let Some(lib) = lib_or_skip() else { return };
    let cpu = backend(Device::Cpu);
    type F = unsafe extern "C" fn(Ptr, Mut, i64, super::conv::WindowDims);
    let mut rng = Rng::new(31);
    for trial in 0..600 {
        let rank = 1 + trial % 4;
        let shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(6)).collect();
        let window: Vec<usize> = shape.iter().map(|&n| 1 + rng.below(n.min(3))).collect();
        let strides: Vec<usize> = (0..rank).map(|_| 1 + rng.below(3)).collect();
        // Padding smaller than the window, so every window holds an element (the shape rule's promise).
        let padding: Vec<(usize, usize)> = window.iter().map(|&k| (rng.below(k), rng.below(k))).collect();
        let len: usize = shape.iter().product();
        // Few distinct values (ties) and some NaNs.
        let v: Vec<f64> = (0..len).map(|_| if rng.below(9) == 0 { f64::NAN } else { rng.below(4) as f64 }).collect();
        for dtype in [DType::F32, DType::F64] {
            let x = Array::from_vec(v.clone(), &shape).to_dtype(dtype);
            for op in [ReduceOp::Max, ReduceOp::Min] {
                let want = cpu.window_arg_extreme(&x, op, &window, &strides, &padding);
                let (dims, out_shape) =
                    super::conv::WindowDims::new(&shape, &window, &strides, &padding).expect("few axes");
                assert_eq!(out_shape, want.shape());
                let f = kernel_fn!(lib, KernelKey::WindowArg(op, dtype), F);
                let (got, out) = output(DType::I64, &out_shape);
                // SAFETY: one i64 per output position; the kernel reads x inside its shape.
                unsafe { f(ptr(&x), out, got.size() as i64, dims) };
                assert!(
                    got.bit_eq(&want),
                    "{op} windows {window:?} strides {strides:?} padding {padding:?} over {shape:?}: {:?} against {:?}",
                    got.as_slice::<i64>(),
                    want.as_slice::<i64>()
                );
            }
        }
    }
}

/// Sorting as the GPU does it (a bitonic network over value and position,
/// run here by one thread between the barriers), against the CPU's stable
/// sort: runs of 0 to 300 with ties, NaNs and signed zeros, both
/// directions, along a middle axis.
#[test]
fn sorts_give_the_cpus_stable_order() {
    let Some(lib) = lib_or_skip() else { return };
    let cpu = backend(Device::Cpu);
    type F = unsafe extern "C" fn(Ptr, Mut, Mut, i64, i64, i64, i64);
    let mut rng = Rng::new(41);
    for len in [0usize, 1, 2, 3, 5, 8, 13, 64, 100, 255, 300] {
        let (outer, inner) = (2, 3);
        let v: Vec<f64> = (0..outer * len * inner)
            .map(|_| match rng.below(10) {
                0 => f64::NAN,
                1 => -0.0,
                2 => 0.0,
                _ => rng.below(6) as f64 - 2.0,
            })
            .collect();
        for dtype in [DType::F32, DType::F64, DType::I64] {
            let x = Array::from_vec(
                v.iter().map(|x| if dtype == DType::I64 && x.is_nan() { 9.0 } else { *x }).collect(),
                &[outer, len, inner],
            )
            .to_dtype(dtype);
            for descending in [false, true] {
                let (want_v, want_i) = cpu.sort(&x, 1, descending);
                let f = kernel_fn!(lib, KernelKey::Sort(dtype, descending), F);
                let (values, vp) = output(dtype, x.shape());
                let (order, op) = output(DType::I64, x.shape());
                // SAFETY: [outer, len, inner] in and out; p a power of two ≥ len, within SORT_MAX.
                unsafe { f(ptr(&x), vp, op, outer as i64, len as i64, inner as i64, len.next_power_of_two() as i64) };
                assert!(
                    order.bit_eq(&want_i),
                    "{dtype} sort of {len}, descending {descending}: order {:?} against {:?}",
                    order.as_slice::<i64>(),
                    want_i.as_slice::<i64>()
                );
                assert!(values.bit_eq(&want_v), "{dtype} sort of {len}, descending {descending}: values");
            }
        }
    }
}

/// Softmax and standardisation over rows, and their tangent maps, as the
/// GPU's row kernels compute them, against the CPU's row kernels: rows of
/// 1 to 1000 elements (below, at and past a block's threads), with an
/// infinite, a NaN and a constant row; tolerances for the two sides'
/// different summation orders and exponentials.
#[test]
fn row_kernels_compute_what_the_cpu_does() {
    use super::codegen::RowKernel;
    let Some(lib) = lib_or_skip() else { return };
    let cpu = backend(Device::Cpu);
    type One = unsafe extern "C" fn(Ptr, Mut, i64, i64);
    type Two = unsafe extern "C" fn(Ptr, Ptr, Mut, i64, i64);
    type OneEps = unsafe extern "C" fn(Ptr, Mut, i64, i64, f64);
    type TwoEps = unsafe extern "C" fn(Ptr, Ptr, Mut, i64, i64, f64);
    let mut rng = Rng::new(53);
    for n in [1usize, 2, 3, 7, 64, 255, 256, 257, 1000] {
        let rows = 5;
        let mut v: Vec<f64> = (0..rows * n).map(|_| rng.normal() * 3.0).collect();
        // Row 1 holds an infinity and row 2 a NaN; row 3 is constant
        // (variance 0: the standardisation is 0 there, eps keeping it finite).
        v[n] = f64::NEG_INFINITY;
        v[2 * n + n / 2] = f64::NAN;
        v[3 * n..4 * n].fill(1.25);
        let t: Vec<f64> = (0..rows * n).map(|_| rng.normal()).collect();
        for dtype in [DType::F32, DType::F64] {
            let x = Array::from_vec(v.clone(), &[rows, n]).to_dtype(dtype);
            let tv = Array::from_vec(t.clone(), &[rows, n]).to_dtype(dtype);
            let y = cpu.softmax(&x, n);
            let (r, nn, eps) = (rows as i64, n as i64, 1e-5);
            let run = |kind: RowKernel| -> Array {
                let key = KernelKey::Rows(kind, dtype);
                let (got, out) = output(dtype, &[rows, n]);
                match kind {
                    RowKernel::Softmax => {
                        let f = kernel_fn!(lib, key, One);
                        // SAFETY: every operand holds rows × n elements, as the kernel walks.
                        unsafe { f(ptr(&x), out, r, nn) }
                    }
                    RowKernel::SoftmaxTangent => {
                        let f = kernel_fn!(lib, key, Two);
                        // SAFETY: as above.
                        unsafe { f(ptr(&tv), ptr(&y), out, r, nn) }
                    }
                    RowKernel::Standardize => {
                        let f = kernel_fn!(lib, key, OneEps);
                        // SAFETY: as above.
                        unsafe { f(ptr(&x), out, r, nn, eps) }
                    }
                    RowKernel::StandardizeTangent => {
                        let f = kernel_fn!(lib, key, TwoEps);
                        // SAFETY: as above.
                        unsafe { f(ptr(&tv), ptr(&x), out, r, nn, eps) }
                    }
                }
                got
            };
            let checks = [
                (RowKernel::Softmax, cpu.softmax(&x, n)),
                (RowKernel::SoftmaxTangent, cpu.softmax_tangent(&tv, &y, n)),
                (RowKernel::Standardize, cpu.standardize(&x, n, eps)),
                (RowKernel::StandardizeTangent, cpu.standardize_tangent(&tv, &x, n, eps)),
            ];
            // Sums of up to 1000 terms in two orders, and the tangents'
            // differences of such sums: relative to the values' scale.
            let tol = if dtype == DType::F64 { 1e-12 } else { 2e-4 };
            for (kind, want) in checks {
                let got = run(kind);
                for (i, (g, w)) in got.to_vec::<f64>().into_iter().zip(want.to_vec::<f64>()).enumerate() {
                    let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * (1.0 + w.abs());
                    assert!(ok, "{kind:?} {dtype} rows of {n}: element {i} is {g} from the kernel and {w} on the CPU");
                }
            }
        }
    }
}
