//! Chains of cheap steps run with the running value in vector registers.
//!
//! A pass over a tile costs a load and a store of every vector whatever it
//! computes, so a program of cheap steps (adds, products, negations, relu)
//! run one pass per step is bound by them: on the AMD EPYC (Zen 4) of
//! 2026-12-07, eight such steps on 2^20 f32 took 580 µs on one thread
//! where one loop computing them all took 100 µs. A chain runs a step and
//! the cheap steps after it that alone read its value as one pass: each
//! block of elements is loaded once into eight AVX2 registers (sixteen of
//! AVX-512's 32), every link is applied to them (a link's other operand, a
//! program input or an earlier step, is loaded beside, or held in a
//! register when it is a constant), and the block is stored once. The
//! same eight steps took 270 µs, and 160 µs with the sixteen registers,
//! the constants in registers, a relu of two instructions instead of
//! three and the tiles aligned to cache lines (`Pass::run_chunk`). Each
//! link is its op's formula with the eager kernel's bits: IEEE arithmetic,
//! and the NaN-propagating `max_nan`/`min_nan` with their choice of signed
//! zero and of NaN, written out with compares and blends.
//!
//! Without AVX2 (and for the elements after the last whole block) the
//! links run one after another, in place.

use std::mem::MaybeUninit;

use super::FloatRuns;
use crate::array::{BinaryOp, UnaryOp};

/// A cheap op applied to the running value of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Link {
    /// `op(value)`: one of negation, absolute value, relu, square ([`Link::takes_unary`]).
    Unary(UnaryOp),
    /// `op(value, operand)`, or `op(operand, value)` when the flag is set
    /// (the operands in the step's order).
    Binary(BinaryOp, bool),
}

impl Link {
    /// Whether a chain takes the unary `op` as a link.
    pub(crate) fn takes_unary(op: UnaryOp) -> bool {
        matches!(op, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu | UnaryOp::PowI(2))
    }

    /// Whether a chain takes the binary `op` as a link.
    pub(crate) fn takes_binary(op: BinaryOp) -> bool {
        use BinaryOp::*;
        matches!(op, Add | Sub | Mul | Div | Max | Min)
    }
}

/// A link as a tile runs it: the op, and the first of its operand's
/// elements (null for a unary link).
#[derive(Clone, Copy)]
pub(crate) struct Act<T> {
    pub(crate) link: Link,
    pub(crate) arg: *const T,
    /// The value of every element of the operand, where it is one (a
    /// constant): the register chains then hold it in a register instead of
    /// loading it beside each vector.
    pub(crate) splat: Option<T>,
}

/// `acts` applied in turn to the `m` values at `start`, the results
/// written to `out`. Each block of elements is read, from `start` and every
/// operand, before it is written, so `start` or an operand may be `out`
/// itself: the value a step wrote there, or an input the output overwrites.
///
/// # Safety
/// `start` and every binary act's `arg` are readable for `m` elements,
/// `out` is writable for `m`; each of them is `out` or does not overlap it.
pub(super) unsafe fn run<T: FloatRuns>(start: *const T, acts: &[Act<T>], out: *mut T, m: usize) {
    // SAFETY: the caller's; `blocks` reads and writes the first `done` elements.
    let done = unsafe { T::blocks(start, acts, out, m) };
    if done < m {
        let rest: smallvec::SmallVec<[Act<T>; 16]> =
            acts.iter().map(|a| Act { arg: a.arg.wrapping_add(done), ..*a }).collect();
        // SAFETY: the caller's, for the elements after the first `done`.
        unsafe { one_by_one(start.add(done), &rest, out.add(done), m - done) }
    }
}

/// Elements of a block of [`one_by_one`] where an operand is the output: 4
/// or 8 KiB on the stack, a tile.
const SCRATCH: usize = 1024;

/// [`run`] as one pass per link: the first from `start` into `out`, the
/// others over `out` in place; where `start` or an operand is `out`, over a
/// copy of each block, so that the operand is read before it is written.
///
/// # Safety
/// As [`run`].
unsafe fn one_by_one<T: FloatRuns>(start: *const T, acts: &[Act<T>], out: *mut T, m: usize) {
    let pass = |a: &Act<T>, at: usize, v: &mut [T]| match a.link {
        Link::Unary(op) => T::unary_assign(op, v),
        Link::Binary(op, swap) => {
            // SAFETY: the operand is readable here and is not written until the block is stored.
            let y = unsafe { std::slice::from_raw_parts(a.arg.add(at), v.len()) };
            T::binary_assign(op, swap, v, y)
        }
    };
    let out_c = out.cast_const();
    if let (true, Some((first, rest))) = (start != out_c && acts.iter().all(|a| a.arg != out_c), acts.split_first()) {
        // SAFETY: `start` and the operands are readable and are not `out`, which is writable.
        let (x, o) = unsafe {
            (std::slice::from_raw_parts(start, m), std::slice::from_raw_parts_mut(out.cast::<MaybeUninit<T>>(), m))
        };
        // SAFETY: a binary link's operand, readable as above.
        let y = || unsafe { std::slice::from_raw_parts(first.arg, m) };
        match first.link {
            Link::Unary(op) => T::unary(op, x, o),
            Link::Binary(op, false) => T::binary(op, x, y(), o),
            Link::Binary(op, true) => T::binary(op, y(), x, o),
        }
        // SAFETY: `out` now holds `m` values.
        let v = unsafe { std::slice::from_raw_parts_mut(out, m) };
        return rest.iter().for_each(|a| pass(a, 0, v));
    }
    let mut scratch = [T::ZERO; SCRATCH];
    let mut i = 0;
    while i < m {
        let len = SCRATCH.min(m - i);
        let v = &mut scratch[..len];
        // SAFETY: the block is readable at `start`, and `scratch` is ours.
        unsafe { std::ptr::copy_nonoverlapping(start.add(i), v.as_mut_ptr(), len) };
        acts.iter().for_each(|a| pass(a, i, v));
        // SAFETY: the block is writable at `out`, and `scratch` is ours.
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), out.add(i), len) };
        i += len;
    }
}

/// Whole blocks of a chain with vector registers, where the CPU has them.
pub(crate) trait Blocks: Sized {
    /// Runs the chain over the leading whole blocks of the `m` elements and
    /// returns how many elements that was (0 where there is no vector path).
    ///
    /// # Safety
    /// As [`run`].
    unsafe fn blocks(start: *const Self, acts: &[Act<Self>], out: *mut Self, m: usize) -> usize;
}

macro_rules! blocks_for {
    ($t:ty, $path:ident) => {
        impl Blocks for $t {
            #[allow(unused_variables)]
            unsafe fn blocks(start: *const $t, acts: &[Act<$t>], out: *mut $t, m: usize) -> usize {
                #[cfg(target_arch = "x86_64")]
                match crate::array::simd::level() {
                    // SAFETY: the caller's; AVX-512 (with VL) was detected.
                    crate::array::simd::Level::Avx512 => {
                        return unsafe { x86::$path::blocks_wide(start, acts, out, m) }
                    }
                    // SAFETY: the caller's; AVX2 and FMA were detected.
                    crate::array::simd::Level::Avx2 => return unsafe { x86::$path::blocks(start, acts, out, m) },
                    crate::array::simd::Level::Scalar => {}
                }
                0
            }
        }
    };
}
blocks_for!(f32, f32x8);
blocks_for!(f64, f64x4);

#[cfg(target_arch = "x86_64")]
mod x86 {
    /// Applies the binary link `$op` (operands swapped when `$swap`) to
    /// every vector `acc[k]` of the running value, with `$y(k)` the
    /// operand's vector. (One `match` on a flat code for the sixteen links
    /// instead of these two was 10% slower.)
    macro_rules! binary_link {
        ($op:expr, $swap:expr, $acc:ident, |$k:ident| $y:expr, $add:ident, $sub:ident, $mul:ident, $div:ident) => {{
            let y = |$k: usize| $y;
            match ($op, $swap) {
                (BinaryOp::Add, false) => (0..$acc.len()).for_each(|k| $acc[k] = $add($acc[k], y(k))),
                (BinaryOp::Add, true) => (0..$acc.len()).for_each(|k| $acc[k] = $add(y(k), $acc[k])),
                (BinaryOp::Sub, false) => (0..$acc.len()).for_each(|k| $acc[k] = $sub($acc[k], y(k))),
                (BinaryOp::Sub, true) => (0..$acc.len()).for_each(|k| $acc[k] = $sub(y(k), $acc[k])),
                (BinaryOp::Mul, false) => (0..$acc.len()).for_each(|k| $acc[k] = $mul($acc[k], y(k))),
                (BinaryOp::Mul, true) => (0..$acc.len()).for_each(|k| $acc[k] = $mul(y(k), $acc[k])),
                (BinaryOp::Div, false) => (0..$acc.len()).for_each(|k| $acc[k] = $div($acc[k], y(k))),
                (BinaryOp::Div, true) => (0..$acc.len()).for_each(|k| $acc[k] = $div(y(k), $acc[k])),
                (BinaryOp::Max, false) => (0..$acc.len()).for_each(|k| $acc[k] = max_nan($acc[k], y(k))),
                (BinaryOp::Max, true) => (0..$acc.len()).for_each(|k| $acc[k] = max_nan(y(k), $acc[k])),
                (BinaryOp::Min, false) => (0..$acc.len()).for_each(|k| $acc[k] = min_nan($acc[k], y(k))),
                (BinaryOp::Min, true) => (0..$acc.len()).for_each(|k| $acc[k] = min_nan(y(k), $acc[k])),
                (op, _) => unreachable!("{op:?} is not a link of a chain"),
            }
        }};
    }

    /// The AVX2 chain for one element type: `$v` holds `$lanes` of `$t`,
    /// and the intrinsics are the type's (`_ps` or `_pd`).
    macro_rules! avx2_chain {
        ($name:ident, $t:ty, $v:ty, $lanes:expr, $load:ident, $store:ident, $set1:ident, $zero:ident,
         $add:ident, $sub:ident, $mul:ident, $div:ident, $max:ident, $min:ident,
         $and:ident, $or:ident, $andnot:ident, $xor:ident, $cmp:ident, $blend:ident) => {
            pub(super) mod $name {
                use super::super::{Act, Link};
                use crate::array::{BinaryOp, UnaryOp};
                use std::arch::x86_64::*;

                /// `max_nan(x, y)`: NaN wins (`x`'s first), and of two
                /// equal values the bitwise and (so `+0` over `-0`).
                #[target_feature(enable = "avx2,fma")]
                #[inline]
                unsafe fn max_nan(x: $v, y: $v) -> $v {
                    // `max(y, x)` is `y` where `y > x`, else `x`.
                    let r = $blend($max(y, x), $and(x, y), $cmp::<_CMP_EQ_OQ>(x, y));
                    let r = $blend(r, y, $cmp::<_CMP_UNORD_Q>(y, y));
                    $blend(r, x, $cmp::<_CMP_UNORD_Q>(x, x))
                }

                /// `min_nan(x, y)`: NaN wins, and of two equal values the
                /// bitwise or (so `-0` over `+0`).
                #[target_feature(enable = "avx2,fma")]
                #[inline]
                unsafe fn min_nan(x: $v, y: $v) -> $v {
                    let r = $blend($min(y, x), $or(x, y), $cmp::<_CMP_EQ_OQ>(x, y));
                    let r = $blend(r, y, $cmp::<_CMP_UNORD_Q>(y, y));
                    $blend(r, x, $cmp::<_CMP_UNORD_Q>(x, x))
                }

                /// The leading whole blocks of [`run`](super::super::run),
                /// the running value in eight of AVX2's sixteen registers,
                /// the others for operands and masks. Four were 2.1×
                /// slower (the dispatch of each link is per block), twelve
                /// and sixteen spilled.
                ///
                /// # Safety
                /// As `run`'s; and AVX2 with FMA is there.
                #[target_feature(enable = "avx2,fma")]
                pub(in super::super) unsafe fn blocks(
                    start: *const $t,
                    acts: &[Act<$t>],
                    out: *mut $t,
                    m: usize,
                ) -> usize {
                    // SAFETY: the caller's.
                    unsafe { registers::<8>(start, acts, out, m) }
                }

                /// [`blocks`] with AVX-512's 32 registers of the same width
                /// (VL), sixteen of them for the running value: half the
                /// dispatches per element. (Eight under these features
                /// ran `cheap8` three times slower: LLVM kept the eight on
                /// the stack, moved as four 512-bit pairs.)
                ///
                /// # Safety
                /// As `run`'s; and AVX-512 F and VL with FMA are there.
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                pub(in super::super) unsafe fn blocks_wide(
                    start: *const $t,
                    acts: &[Act<$t>],
                    out: *mut $t,
                    m: usize,
                ) -> usize {
                    // SAFETY: the caller's.
                    unsafe { registers::<16>(start, acts, out, m) }
                }

                /// Blocks of `K` vectors.
                ///
                /// # Safety
                /// As `run`'s, and the caller's target features include AVX2 and FMA.
                #[inline(always)]
                unsafe fn registers<const K: usize>(
                    start: *const $t,
                    acts: &[Act<$t>],
                    out: *mut $t,
                    m: usize,
                ) -> usize {
                    let b = K * $lanes;
                    let mut i = 0;
                    // SAFETY: every load and store is of a vector within
                    // the first `m` elements of its run (`i + b <= m`).
                    unsafe {
                        let (sign, zero) = ($set1(-0.0), $zero());
                        while i + b <= m {
                            let mut acc = [zero; K];
                            for k in 0..K {
                                acc[k] = $load(start.add(i + k * $lanes));
                            }
                            for a in acts {
                                match a.link {
                                    Link::Unary(UnaryOp::Neg) => {
                                        for v in &mut acc {
                                            *v = $xor(*v, sign)
                                        }
                                    }
                                    Link::Unary(UnaryOp::Abs) => {
                                        for v in &mut acc {
                                            *v = $andnot(sign, *v)
                                        }
                                    }
                                    // `max_nan(v, 0)`: `v` where it is above 0 or NaN, else `+0`,
                                    // as a mask (`!(v <= 0)`) and `v` under it.
                                    Link::Unary(UnaryOp::Relu) => {
                                        for v in &mut acc {
                                            *v = $and($cmp::<_CMP_NLE_UQ>(*v, zero), *v);
                                        }
                                    }
                                    Link::Unary(UnaryOp::PowI(2)) => {
                                        for v in &mut acc {
                                            *v = $mul(*v, *v)
                                        }
                                    }
                                    Link::Unary(op) => unreachable!("{op:?} is not a link of a chain"),
                                    Link::Binary(op, swap) => {
                                        if let Some(c) = a.splat {
                                            let c = $set1(c);
                                            binary_link!(op, swap, acc, |_k| c, $add, $sub, $mul, $div)
                                        } else {
                                            // Each operand vector is loaded as it is used: loaded
                                            // all first, they took eight more registers, and the
                                            // running value was spilled.
                                            let p = a.arg.add(i);
                                            binary_link!(
                                                op,
                                                swap,
                                                acc,
                                                |k| $load(p.add(k * $lanes)),
                                                $add,
                                                $sub,
                                                $mul,
                                                $div
                                            )
                                        }
                                    }
                                }
                            }
                            for k in 0..K {
                                $store(out.add(i + k * $lanes), acc[k]);
                            }
                            i += b;
                        }
                    }
                    i
                }
            }
        };
    }

    avx2_chain!(
        f32x8,
        f32,
        __m256,
        8,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_setzero_ps,
        _mm256_add_ps,
        _mm256_sub_ps,
        _mm256_mul_ps,
        _mm256_div_ps,
        _mm256_max_ps,
        _mm256_min_ps,
        _mm256_and_ps,
        _mm256_or_ps,
        _mm256_andnot_ps,
        _mm256_xor_ps,
        _mm256_cmp_ps,
        _mm256_blendv_ps
    );
    avx2_chain!(
        f64x4,
        f64,
        __m256d,
        4,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_set1_pd,
        _mm256_setzero_pd,
        _mm256_add_pd,
        _mm256_sub_pd,
        _mm256_mul_pd,
        _mm256_div_pd,
        _mm256_max_pd,
        _mm256_min_pd,
        _mm256_and_pd,
        _mm256_or_pd,
        _mm256_andnot_pd,
        _mm256_xor_pd,
        _mm256_cmp_pd,
        _mm256_blendv_pd
    );
}
