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
}

/// Levels with a fused multiply-add (AVX2 and AVX-512 here).
pub struct Fused;
/// Levels without one.
pub struct Unfused;

impl Isa for Fused {
    const FMA: bool = true;
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
}
