//! The C every generated kernel begins with: the indexing parameters of
//! elementwise, convolution and pooling kernels, strided offsets,
//! half-precision conversions, and the CPU's semantics of the operations
//! C defines differently (NaN-propagating max and min, numpy's floor
//! division, wrapping integers, Rust's saturating float-to-integer `as`).

/// Shared by every kernel: the indexing parameters (mirrored by
/// `cuda::Dims`), strided offsets, half-precision conversions and the
/// CPU's semantics of the operations C defines differently.
pub(super) const PRELUDE: &str = r#"
typedef long long i64;
typedef unsigned long long u64;
#define MAXR 8
struct Dims { int rank; int pad; i64 shape[MAXR]; i64 st[4][MAXR]; i64 base[4]; };
// A convolution's sizes (mirrored by `cuda::conv::ConvDims`): up to 3 spatial axes.
struct ConvDims {
    int rank; int pad;
    i64 n, c, groups, cg, p_total, k_total;
    i64 in[3], out[3], win[3], stride[3], lo[3], ldil[3], rdil[3];
};
// A pooling window over every axis of x (mirrored by `cuda::conv::WindowDims`).
struct WindowDims { int rank; int pad; i64 shape[MAXR]; i64 out[MAXR]; i64 win[MAXR]; i64 stride[MAXR]; i64 lo[MAXR]; i64 taps; };
// The offset in x [N, C, S..] that column element i of [G, N, P, Cg, K] reads, or -1
// for padding or a gap of the input's dilation.
__device__ __forceinline__ i64 conv_source(const ConvDims& g, i64 i) {
    i64 k = i % g.k_total; i /= g.k_total;
    i64 cg = i % g.cg; i /= g.cg;
    i64 p = i % g.p_total; i /= g.p_total;
    i64 n = i % g.n; i64 grp = i / g.n;
    i64 off = (n * g.c + grp * g.cg + cg);
    for (int a = 0; a < g.rank; ++a) {
        // Row-major unravelling: axis a's index is the quotient by the later axes' product.
        i64 pl = 1, kl = 1;
        for (int b = a + 1; b < g.rank; ++b) { pl *= g.out[b]; kl *= g.win[b]; }
        i64 pa = (p / pl) % g.out[a], ka = (k / kl) % g.win[a];
        i64 t = pa * g.stride[a] + ka * g.rdil[a] - g.lo[a];
        if (t < 0 || t % g.ldil[a] != 0 || t / g.ldil[a] >= g.in[a]) return -1;
        off = off * g.in[a] + t / g.ldil[a];
    }
    return off;
}
// The element offset of flat output index i in operand k (rank < 0: contiguous).
__device__ __forceinline__ i64 off(const Dims& d, int k, i64 i) {
    if (d.rank < 0) return i;
    i64 o = d.base[k];
    for (int a = d.rank - 1; a >= 0; --a) { i64 s = d.shape[a]; o += (i % s) * d.st[k][a]; i /= s; }
    return o;
}
#define GRID_LOOP(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)
// Conversions between floats keep a NaN's sign and payload as x86 does (the
// GPU's own instructions give one canonical NaN), so they match the CPU's bits.
__device__ __forceinline__ float h2f(unsigned short h) {
    if ((h & 0x7fffu) > 0x7c00u) return __uint_as_float(((unsigned)(h & 0x8000u) << 16) | 0x7fc00000u | ((unsigned)(h & 0x3ffu) << 13));
#ifdef __CUDA_ARCH__
    float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
#else
    return host_h2f(h);  // the tests' host build of the kernels
#endif
}
__device__ __forceinline__ unsigned short f2h(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)(((u >> 16) & 0x8000u) | 0x7e00u | ((u >> 13) & 0x3ffu));
#ifdef __CUDA_ARCH__
    unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
#else
    return host_f2h(f);
#endif
}
__device__ __forceinline__ float d2f(double x) {
    if (x != x) {
        u64 b = (u64)__double_as_longlong(x);
        return __uint_as_float((unsigned)((b >> 32) & 0x80000000u) | 0x7fc00000u | (unsigned)((b >> 29) & 0x7fffffu));
    }
    return (float)x;
}
__device__ __forceinline__ double f2d(float x) {
    if (x != x) {
        unsigned b = __float_as_uint(x);
        return __longlong_as_double((i64)(((u64)(b & 0x80000000u) << 32) | 0x7ff8000000000000ULL | ((u64)(b & 0x7fffffu) << 29)));
    }
    return (double)x;
}
__device__ __forceinline__ float b2f(unsigned short b) { return __uint_as_float(((unsigned)b) << 16); }
__device__ __forceinline__ unsigned short f2b(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
// f64 to f32 rounded to odd, so that a second rounding to 16 bits rounds once.
__device__ __forceinline__ float d2f_odd(double x) {
    if (x != x) return d2f(x);
    float f = __double2float_rz(x);
    if (f == f && (double)f != x) f = __uint_as_float(__float_as_uint(f) | 1u);
    return f;
}
// Rust's `as` from float to i64: saturating, NaN to 0.
__device__ __forceinline__ i64 d2i(double x) {
    if (x != x) return 0;
    if (x >= 9223372036854775807.0) return 9223372036854775807LL;
    if (x <= -9223372036854775808.0) return (-9223372036854775807LL - 1);
    return (i64)x;
}
template <typename T> __device__ __forceinline__ T max_nan(T a, T b) {
    if (a != a || a > b) return a;
    if (b != b) return b;
    if (a == b) return signbit(a) ? b : a;
    return b;
}
template <typename T> __device__ __forceinline__ T min_nan(T a, T b) {
    if (a != a || a < b) return a;
    if (b != b) return b;
    if (a == b) return signbit(a) ? a : b;
    return b;
}
__device__ __forceinline__ i64 max_nan(i64 a, i64 b) { return a > b ? a : b; }
__device__ __forceinline__ i64 min_nan(i64 a, i64 b) { return a < b ? a : b; }
template <typename T> __device__ __forceinline__ T sign_of(T x) { return x > 0 ? (T)1 : (x < 0 ? (T)-1 : x); }
__device__ __forceinline__ i64 sign_of(i64 x) { return x > 0 ? 1 : (x < 0 ? -1 : 0); }
template <typename T> __device__ __forceinline__ T relu(T x) { return (x != x || x > 0) ? x : (T)0; }
// compiler-rt's __powidf2, which Rust's powi calls (not CUDA's powi).
template <typename T> __device__ __forceinline__ T fx_powi(T a, int b) {
    bool recip = b < 0;
    T r = 1;
    for (;;) { if (b & 1) r *= a; b /= 2; if (b == 0) break; a *= a; }
    return recip ? (T)1 / r : r;
}
template <typename T> __device__ __forceinline__ T logistic(T x) { return (T)1 / ((T)1 + exp(-x)); }
// GELU and its derivative, x Φ(x) and Φ(x) + x φ(x), with Φ(x) =
// erfc(-x/√2) / 2 as JAX writes it (1 + erf(x/√2) cancels in the negative
// tail). In f32, as the CPU's f32 kernel, the tail's exponent -x²/2 comes
// from x² (one rounding), here through erfc(z) = erfcx(z) e^(-z²): the
// rounding of x/√2, times x², would be the tail's relative error.
__device__ __forceinline__ double normal_cdf(double x) { return erfc(-x * 0.70710678118654752440) * 0.5; }
__device__ __forceinline__ float normal_cdf(float x) {
    float half_erfc = erfcxf(fabs(x) * 0.70710678118654752440f) * exp(x * x * -0.5f) * 0.5f;
    return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}
template <typename T> __device__ __forceinline__ T gelu(T x) { return x * normal_cdf(x); }
template <typename T> __device__ __forceinline__ T gelu_grad(T x) {
    return normal_cdf(x) + x * exp(x * x * (T)-0.5) * (T)0.39894228040143267794;
}
// GELU's tanh form: in f64 the composite's formula, x (1 + tanh u) / 2; in
// f32, as the CPU's f32 kernel, σ = (1 + tanh u) / 2 as the logistic
// function of 2u, which keeps its digits in the negative tail: with
// e = e^(-2|u|) (which never overflows; flushed to zero below e^-87, as on
// the CPU) and r = 1 / (1 + e), σ is r for u ≥ 0 and e r below, and
// σ (1 − σ) is e r².
__device__ __forceinline__ double gelu_tanh(double x) {
    double u = (x + x * (x * x) * 0.044715) * 0.79788456080286535588;
    return x * (tanh(u) + 1.0) * 0.5;
}
__device__ __forceinline__ double gelu_tanh_grad(double x) {
    double t = tanh((x + x * (x * x) * 0.044715) * 0.79788456080286535588);
    double du = (x * x * (3 * 0.044715) + 1.0) * 0.79788456080286535588;
    return (t + 1.0) * 0.5 + x * (1.0 - t * t) * du * 0.5;
}
__device__ __forceinline__ void gelu_logistic(float x, float* s, float* ds) {
    float u = (x + x * (x * x) * 0.044715f) * 0.79788456080286535588f;
    float a = -2.0f * fabs(u);
    float e = a < -87.0f ? 0.0f : exp(a), r = 1.0f / (1.0f + e);
    *s = u >= 0.0f ? r : e * r;
    *ds = e * r * r;
}
__device__ __forceinline__ float gelu_tanh(float x) {
    float s, ds;
    gelu_logistic(x, &s, &ds);
    return x * s;
}
__device__ __forceinline__ float gelu_tanh_grad(float x) {
    float s, ds;
    gelu_logistic(x, &s, &ds);
    float du = (x * x * (3.0f * 0.044715f) + 1.0f) * 0.79788456080286535588f;
    return s + x * ds * du * 2.0f;
}
template <typename T> __device__ __forceinline__ T softplus(T x) { return (x >= 0 ? x : (T)0) + log1p(exp(-fabs(x))); }
// numpy's npy_divmod.
template <typename T> __device__ __forceinline__ T floor_div(T a, T b) {
    T m = fmod(a, b);
    if (b == 0) return a / b;
    T div = (a - m) / b;
    if (m != 0 && ((b < 0) != (m < 0))) div -= 1;
    if (div != 0) { T f = floor(div); return div - f > (T)0.5 ? f + 1 : f; }
    return copysign((T)0, a / b);
}
__device__ __forceinline__ i64 wadd(i64 a, i64 b) { return (i64)((u64)a + (u64)b); }
__device__ __forceinline__ i64 wsub(i64 a, i64 b) { return (i64)((u64)a - (u64)b); }
__device__ __forceinline__ i64 wmul(i64 a, i64 b) { return (i64)((u64)a * (u64)b); }
__device__ __forceinline__ i64 irem(i64 a, i64 b) { return b == 0 ? a : (b == -1 ? 0 : a % b); }
__device__ __forceinline__ i64 ifloor_div(i64 a, i64 b) {
    i64 div = b == 0 ? -1 : (b == -1 ? wsub(0, a) : a / b);
    return (sign_of(a) != sign_of(b) && irem(a, b) != 0) ? wsub(div, 1) : div;
}
// Sorting's order: NaN greatest, -0 equal to +0.
template <typename T> __device__ __forceinline__ int total_cmp(T a, T b) {
    bool na = a != a, nb = b != b;
    if (na || nb) return (int)na - (int)nb;
    return a < b ? -1 : (a > b ? 1 : 0);
}
__device__ __forceinline__ i64 resolve(i64 i, i64 n, int clip) {
    i64 r = i < 0 ? wadd(i, n) : i;
    if (r >= 0 && r < n) return r;
    if (clip && n > 0) return r < 0 ? 0 : n - 1;
    return -1;
}
"#;
