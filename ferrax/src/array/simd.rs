//! Running a kernel's loop with the widest vector instructions the CPU has.
//!
//! The crate is compiled for the baseline x86-64 target (SSE2), so the
//! compiler vectorises loops four f32 lanes wide. [`vectorized`] re-enters
//! the loop body through a function compiled with AVX2+FMA or AVX-512, chosen
//! at run time, so the same portable Rust loop runs 8 or 16 lanes wide where
//! the machine allows.

/// Runs `body` compiled for the best available instruction set.
#[inline(always)]
pub fn vectorized<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features the function is compiled for were detected above.
            return unsafe { x86::avx512(body) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { x86::avx2(body) };
        }
    }
    body()
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
}
