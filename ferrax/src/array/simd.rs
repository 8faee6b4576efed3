//! Running a kernel's loop with the widest vector instructions the CPU has.
//!
//! The crate is compiled for the baseline x86-64 target (SSE2), so the
//! compiler vectorises loops four f32 lanes wide. [`vectorized`] re-enters
//! the loop body through a function compiled with AVX2+FMA or AVX-512, chosen
//! at run time, so the same portable Rust loop runs 8 or 16 lanes wide where
//! the machine allows. Kernels whose arithmetic should differ by level (a
//! fused multiply-add where there is one) implement [`Kernel`] and go
//! through [`dispatch`].
//!
//! The level is detected once. `FERRAX_SIMD=avx512|avx2|scalar` caps it
//! (read once, at the first kernel): to test each path on one machine, or to
//! rule out a miscompiled path when a result looks wrong. A level the CPU
//! lacks is never chosen; an unknown value is reported once on stderr and
//! ignored.

use std::sync::OnceLock;

/// The instruction sets kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The baseline target: SSE2 on x86-64, whatever the target has elsewhere.
    Scalar,
    /// AVX2 with FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F, VL and DQ with FMA (x86-64-v4).
    Avx512,
}

impl Level {
    /// The name `FERRAX_SIMD` takes.
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }
}

/// The best level this CPU supports.
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Level::Avx2;
        }
    }
    Level::Scalar
}

/// The level kernels run at: [`detected`], capped by `FERRAX_SIMD`.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let best = detected();
        match std::env::var("FERRAX_SIMD") {
            Ok(v) => match [Level::Scalar, Level::Avx2, Level::Avx512].into_iter().find(|l| l.name() == v.trim()) {
                Some(cap) => best.min(cap),
                None => {
                    eprintln!("ferrax: FERRAX_SIMD={v:?} is not one of avx512, avx2, scalar; using {}", best.name());
                    best
                }
            },
            Err(_) => best,
        }
    })
}

/// Arithmetic whose best form depends on the level.
pub trait Isa {
    /// Whether `mul_add` is one instruction (else it is a slow library call,
    /// and `a * b + c` rounded twice is used instead).
    const FMA: bool;
    /// Whether AVX's 256-bit shuffles are there (see [`transpose_tile`]);
    /// false unless a level says so.
    const AVX: bool = false;
}

/// Levels with a fused multiply-add (AVX2 and AVX-512 here).
pub struct Fused;
/// Levels without one.
pub struct Unfused;

// Fused runs only at the x86-64 levels, which all have AVX.
impl Isa for Fused {
    const FMA: bool = true;
    const AVX: bool = cfg!(target_arch = "x86_64");
}
impl Isa for Unfused {
    const FMA: bool = false;
}

/// `a * b + c`, fused where the level has the instruction.
#[inline(always)]
pub fn madd<I: Isa, T: MulAdd>(a: T, b: T, c: T) -> T {
    if I::FMA {
        a.fused(b, c)
    } else {
        a.unfused(b, c)
    }
}

/// The rows (and columns) of a tile [`transpose_tile`] turns: one 32-byte
/// vector of `size`-byte elements.
pub const fn tile_rows(size: usize) -> usize {
    32 / size
}

/// Writes the square tile of [`tile_rows`] rows at `src`, `ss` elements
/// apart, transposed at `dst`, rows `ds` apart. Elements of 4 and 8 bytes
/// take 24 and 8 AVX shuffles where the level has them (against a load and
/// a store per element, which made the channels-last copy of a
/// convolution's input a tenth of its kernel gradient); the bits move
/// unchanged.
///
/// # Safety
/// The tile's rows are readable at `src` and writable at `dst`, and do not
/// overlap.
#[inline(always)]
pub unsafe fn transpose_tile<I: Isa, T: Copy>(src: *const T, ss: usize, dst: *mut T, ds: usize) {
    let r = tile_rows(std::mem::size_of::<T>());
    #[cfg(target_arch = "x86_64")]
    if I::AVX && r == 8 {
        // SAFETY: the caller's; AVX is there (I::AVX).
        return unsafe { x86::transpose8(src.cast(), ss, dst.cast(), ds) };
    } else if I::AVX && r == 4 {
        // SAFETY: as above.
        return unsafe { x86::transpose4(src.cast(), ss, dst.cast(), ds) };
    }
    for i in 0..r {
        for j in 0..r {
            // SAFETY: the caller's.
            unsafe { *dst.add(j * ds + i) = *src.add(i * ss + j) };
        }
    }
}

/// `len` zeros in `buf` starting on a 64-byte boundary, where an aligned
/// vector read from them never straddles two cache lines: `buf` is made a
/// line longer than `len` and the run begins at its first boundary. A
/// kernel that reads each vector of an operand many times loses a fifth of
/// its speed when they straddle, and an allocator aligns to 16 bytes only
/// (a large `Vec` begins 16 bytes into a page).
pub fn zeros_on_line<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    buf.clear();
    buf.resize(len + line_len::<T>(), T::default());
    let skip = to_line(buf.as_ptr());
    &mut buf[skip..][..len]
}

/// Elements of `T` in a 64-byte cache line: the spare a buffer needs so
/// that a run in it can start on a line.
pub const fn line_len<T>() -> usize {
    let size = std::mem::size_of::<T>();
    64 / if size == 0 { 1 } else { size }
}

/// The elements from `p` to the first 64-byte boundary at or after it
/// (at most [`line_len`]).
pub fn to_line<T>(p: *const T) -> usize {
    p.align_offset(64).min(line_len::<T>())
}

/// Reads `W` elements at `p`, aligned or not: a whole vector register of
/// lanes for the kernels that write their loops over `[T; W]` arrays.
///
/// # Safety
/// They are readable.
#[inline(always)]
pub unsafe fn load<T: Copy, const W: usize>(p: *const T) -> [T; W] {
    // SAFETY: the caller's.
    unsafe { p.cast::<[T; W]>().read_unaligned() }
}

/// The float types [`madd`] works on.
pub trait MulAdd: Copy {
    /// `self * b + c` rounded once.
    fn fused(self, b: Self, c: Self) -> Self;
    /// `self * b + c` rounded twice.
    fn unfused(self, b: Self, c: Self) -> Self;
}

macro_rules! mul_add {
    ($($t:ty),*) => {$(
        impl MulAdd for $t {
            #[inline(always)]
            fn fused(self, b: Self, c: Self) -> Self {
                self.mul_add(b, c)
            }
            #[inline(always)]
            fn unfused(self, b: Self, c: Self) -> Self {
                self * b + c
            }
        }
    )*};
}
mul_add!(f32, f64);

/// A loop compiled once per level: `run` is instantiated with the level's
/// [`Isa`] and inlined into a function compiled for its instruction set.
pub trait Kernel {
    /// What the loop returns.
    type Out;
    /// The loop. Implementations are `#[inline(always)]`, or the level's
    /// instructions do not reach them.
    fn run<I: Isa>(self) -> Self::Out;
}

/// Runs `kernel` compiled for the current [`level`].
#[inline(always)]
pub fn dispatch<K: Kernel>(kernel: K) -> K::Out {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` chooses AVX-512 only where it was detected.
        Level::Avx512 => unsafe { x86::avx512_kernel(kernel) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2 and FMA.
        Level::Avx2 => unsafe { x86::avx2_kernel(kernel) },
        _ => kernel.run::<Unfused>(),
    }
}

/// Runs `body` compiled for the current [`level`].
#[inline(always)]
pub fn vectorized<R>(body: impl FnOnce() -> R) -> R {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` chooses AVX-512 only where it was detected.
        Level::Avx512 => unsafe { x86::avx512(body) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2 and FMA.
        Level::Avx2 => unsafe { x86::avx2(body) },
        _ => body(),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
    pub unsafe fn avx512<R>(body: impl FnOnce() -> R) -> R {
        body()
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
        body()
    }

    // A kernel's `run` is called here directly, not through a closure: the
    // closure `|| kernel.run()` is a function of its own, which LLVM does
    // not inline into the level's function when it is large, and which is
    // then compiled for the baseline (SSE) with everything inlined into it.

    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
    pub unsafe fn avx512_kernel<K: super::Kernel>(kernel: K) -> K::Out {
        kernel.run::<super::Fused>()
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2_kernel<K: super::Kernel>(kernel: K) -> K::Out {
        kernel.run::<super::Fused>()
    }

    use std::arch::x86_64::*;

    /// An 8×8 tile of 4-byte elements (see `transpose_tile`): each pair of
    /// rows interleaved, then pairs of pairs, then the halves swapped.
    #[target_feature(enable = "avx")]
    #[inline]
    pub unsafe fn transpose8(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
        // SAFETY: the caller's: eight rows of eight readable at `src`.
        let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * ss)) });
        let t: [__m256; 8] = std::array::from_fn(|i| {
            let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
            if i % 2 == 0 {
                _mm256_unpacklo_ps(a, b)
            } else {
                _mm256_unpackhi_ps(a, b)
            }
        });
        // u[4h + k]: column k (lower half) and k + 4 (upper) of rows 4h..4h + 4.
        let u: [__m256; 8] = std::array::from_fn(|i| {
            let (h, k) = (i / 4, i % 4);
            let (a, b) = (t[4 * h + k / 2], t[4 * h + 2 + k / 2]);
            if k % 2 == 0 {
                _mm256_shuffle_ps::<0x44>(a, b)
            } else {
                _mm256_shuffle_ps::<0xEE>(a, b)
            }
        });
        for k in 0..4 {
            // SAFETY: the caller's: eight rows of eight writable at `dst`.
            unsafe {
                _mm256_storeu_ps(dst.add(k * ds), _mm256_permute2f128_ps::<0x20>(u[k], u[4 + k]));
                _mm256_storeu_ps(dst.add((k + 4) * ds), _mm256_permute2f128_ps::<0x31>(u[k], u[4 + k]));
            }
        }
    }

    /// A 4×4 tile of 8-byte elements (see `transpose_tile`).
    #[target_feature(enable = "avx")]
    #[inline]
    pub unsafe fn transpose4(src: *const f64, ss: usize, dst: *mut f64, ds: usize) {
        // SAFETY: the caller's: four rows of four readable at `src`.
        let r: [__m256d; 4] = std::array::from_fn(|i| unsafe { _mm256_loadu_pd(src.add(i * ss)) });
        let t = [
            _mm256_unpacklo_pd(r[0], r[1]),
            _mm256_unpackhi_pd(r[0], r[1]),
            _mm256_unpacklo_pd(r[2], r[3]),
            _mm256_unpackhi_pd(r[2], r[3]),
        ];
        // SAFETY: the caller's: four rows of four writable at `dst`.
        unsafe {
            _mm256_storeu_pd(dst, _mm256_permute2f128_pd::<0x20>(t[0], t[2]));
            _mm256_storeu_pd(dst.add(ds), _mm256_permute2f128_pd::<0x20>(t[1], t[3]));
            _mm256_storeu_pd(dst.add(2 * ds), _mm256_permute2f128_pd::<0x31>(t[0], t[2]));
            _mm256_storeu_pd(dst.add(3 * ds), _mm256_permute2f128_pd::<0x31>(t[1], t[3]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tile inside larger rows at both ends, so that a stride mix-up or a
    /// write outside the tile shows.
    fn check<I: Isa, T: Copy + PartialEq + std::fmt::Debug + From<u8>>() {
        let r = tile_rows(std::mem::size_of::<T>());
        let (ss, ds) = (r + 3, r + 5);
        let src: Vec<T> = (0..r * ss).map(|i| T::from(i as u8)).collect();
        let mut dst = vec![T::from(255); r * ds];
        // SAFETY: r rows of ss and ds elements, each at least r long.
        unsafe { transpose_tile::<I, T>(src.as_ptr(), ss, dst.as_mut_ptr(), ds) };
        for i in 0..r {
            for j in 0..ds {
                let want = if j < r { src[j * ss + i] } else { T::from(255) };
                assert_eq!(dst[i * ds + j], want, "row {i}, column {j}");
            }
        }
    }

    #[test]
    fn tiles_transpose_at_every_level() {
        check::<Unfused, f32>();
        check::<Unfused, f64>();
        if level() >= Level::Avx2 {
            check::<Fused, f32>();
            check::<Fused, f64>();
        }
    }

    #[test]
    fn zeros_start_on_a_line() {
        // Sizes on both sides of the allocator's mapping threshold, and a
        // buffer reused with stale values and a smaller length.
        let mut buf = Vec::new();
        for len in [1, 100, 40_000, 300_000, 7] {
            buf.iter_mut().for_each(|v: &mut f32| *v = 1.0);
            let run = zeros_on_line(&mut buf, len);
            assert_eq!((run.len(), run.as_ptr() as usize % 64), (len, 0), "f32 × {len}");
            assert!(run.iter().all(|&v| v == 0.0), "f32 × {len}: zeros");
            let mut wide: Vec<f64> = Vec::with_capacity(3);
            let run = zeros_on_line(&mut wide, len);
            assert_eq!((run.len(), run.as_ptr() as usize % 64), (len, 0), "f64 × {len}");
        }
    }
}
