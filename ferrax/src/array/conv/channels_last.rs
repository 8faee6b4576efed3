//! The kernel gradient of a unit-stride convolution with the input's
//! channels last.
//!
//! The gradient of weight `(o, c, tap)` is the sum over output positions
//! `p` of `ct[o, p] · x[c, p + tap]`. With the padded input stored
//! `[positions, channels]`, the values of consecutive channels at one
//! position are one vector, so a block of the gradient — a few filters by
//! a few (tap, vector of channels) columns — is a sum of outer products of
//! the filters' cotangents (broadcast) with those vectors. The loop walks
//! the output's lines with two pointers and no index arrays, and its sums
//! are the gradient's values themselves: no lane-wise partial sums to add
//! up at the end, so the number of filters and channels is not bounded by
//! a cache, and images whose lines are shorter than a vector (8×8) run as
//! well as any.

use std::ops::Range;

use super::super::layout::Plane;
use super::super::simd::{self, madd, Isa, Kernel, MulAdd};
use super::super::Num;
use super::direct::lanes;
use super::shifted::Shifted;
use super::{unravel, Spatial};

/// Filters per block: each a broadcast of its cotangent per position.
const KO: usize = 4;

/// Bytes of a chunk's input and cotangent: every block of the gradient
/// reads all of a chunk's, so a chunk should stay in a core's L2 cache.
const CHUNK_BYTES: usize = 256 << 10;

/// Where the channels-last loop applies: unit strides, no cropping, and a
/// whole number of AVX-512 vectors of channels per group.
pub(super) struct ChannelsLast {
    sh: Shifted,
    /// Channels a group, a multiple of the lanes.
    cg: usize,
    /// Each input line's start in an image, its start in the padded image,
    /// and its length (see [`Shifted::input_lines`]).
    input: Vec<(usize, usize, usize)>,
}

impl ChannelsLast {
    /// The layout for `cg` channels a group of `size`-byte floats, or
    /// `None` where the loop does not apply.
    pub(super) fn new(sp: &Spatial, size: usize, cg: usize) -> Option<ChannelsLast> {
        let l = lanes(size)?;
        if cg == 0 || cg % l != 0 {
            return None;
        }
        let sh = Shifted::new(sp)?;
        let mut input = Vec::new();
        sh.input_lines(sp, |from, at, line| input.push((from, at, line)));
        Some(ChannelsLast { sh, cg, input })
    }

    /// The images `imgs` of group `gi` of `x [N, c, S..]`, zero-padded and
    /// with channels last, `[images, padded.., cg]`, into `buf`: the part
    /// of it returned, which starts on a cache line (see
    /// [`simd::zeros_on_line`]; the loop reads each vector of it once per
    /// block, and 64→128 channels at 8×8 took a fifth longer straddling).
    fn fill<'b, T: Num>(
        &self,
        x: &[T],
        c: usize,
        gi: usize,
        imgs: &Range<usize>,
        sp: &Spatial,
        buf: &'b mut Vec<T>,
    ) -> &'b [T] {
        let (cg, plane) = (self.cg, self.sh.plane);
        let ss: usize = sp.input.iter().product();
        let dst = simd::zeros_on_line(buf, imgs.len() * plane * cg);
        for (j, ni) in imgs.clone().enumerate() {
            let src = &x[(ni * c + gi * cg) * ss..][..cg * ss];
            let image = &mut dst[j * plane * cg..][..plane * cg];
            simd::dispatch(Transpose { src, ss, lines: &self.input, dst: image, cg });
        }
        dst
    }
}

/// One image's channels `[cg, ss]` written channels last at the padded
/// positions of its lines: each line a transposed plane (see [`Plane`]).
struct Transpose<'a, T> {
    src: &'a [T],
    ss: usize,
    /// Each input line's start, its start in the padded image, and its length.
    lines: &'a [(usize, usize, usize)],
    /// `[padded positions, cg]`.
    dst: &'a mut [T],
    cg: usize,
}

impl<T: Num> Kernel for Transpose<'_, T> {
    type Out = ();

    #[inline(always)]
    fn run<I: Isa>(self) {
        let Transpose { src, ss, lines, dst, cg } = self;
        for &(from, at, line) in lines {
            let dst = &mut dst[at * cg..(at + line) * cg];
            Plane { src, off: from, rows: line, cols: cg, s_col: ss, dst, ds: cg }.run::<I>();
        }
    }
}

/// Adds to `acc [o, cg, K..]` the kernel gradient of the images `imgs`
/// with the input's channels last (see [`ChannelsLast`]).
pub(super) fn kernel_grad_last<T: Num + MulAdd>(
    lay: &ChannelsLast,
    sp: &Spatial,
    x: &[T],
    ct: &[T],
    imgs: Range<usize>,
    shape: (usize, usize, usize),
    acc: &mut [T],
) {
    // Where a window's first and last columns read enough of every line
    // from the padding (a twelfth of the products at 8×8, 3×3, padding 1),
    // blocks of one tap by four vectors of channels, which leave those
    // positions out: 64→128 channels at 8×8, batch 128, 2 threads,
    // 2.63–2.84 → 2.46–2.53 ms, 128→256 at 4×4 3.8 → 2.6 ms; at 16×16 they
    // measured 2% slower. Otherwise two vectors of channels a block where
    // they divide the group's, by three taps.
    let size = std::mem::size_of::<T>();
    let lanes = 64 / size;
    let ks = lay.sh.taps.len();
    let line = sp.out[sp.out.len() - 1];
    let read: usize = live_spans(sp, ks, 1).iter().map(Range::len).sum();
    if lay.cg % (4 * lanes) == 0 && 16 * (ks * line - read) >= ks * line {
        return match size {
            4 => last::<T, 16, 4, 1>(lay, sp, x, ct, imgs, shape, acc),
            _ => last::<T, 8, 4, 1>(lay, sp, x, ct, imgs, shape, acc),
        };
    }
    match (size, lay.cg % (2 * lanes) == 0) {
        (4, true) => last::<T, 16, 2, 3>(lay, sp, x, ct, imgs, shape, acc),
        (4, false) => last::<T, 16, 1, 6>(lay, sp, x, ct, imgs, shape, acc),
        (_, true) => last::<T, 8, 2, 3>(lay, sp, x, ct, imgs, shape, acc),
        (_, false) => last::<T, 8, 1, 6>(lay, sp, x, ct, imgs, shape, acc),
    }
}

/// The loop with blocks of `KO` filters by `KT` taps by `KC` vectors of `L` channels.
fn last<T: Num + MulAdd, const L: usize, const KC: usize, const KT: usize>(
    lay: &ChannelsLast,
    sp: &Spatial,
    x: &[T],
    ct: &[T],
    imgs: Range<usize>,
    (c, o, groups): (usize, usize, usize),
    acc: &mut [T],
) {
    let (cg, og) = (lay.cg, o / groups);
    let ks = lay.sh.taps.len();
    let ps: usize = sp.out.iter().product();
    let (filters, taps) = (og.next_multiple_of(KO), ks.next_multiple_of(KT));
    // The blocks' extra filters and taps read the first's, and are dropped.
    let fo: Vec<usize> = (0..filters).map(|f| if f < og { f * ps } else { 0 }).collect();
    let to: Vec<usize> = (0..taps).map(|t| if t < ks { lay.sh.taps[t] * cg } else { 0 }).collect();
    let size = std::mem::size_of::<T>();
    let per_image = (lay.sh.plane * cg + og * ps) * size;
    let nb = (CHUNK_BYTES / per_image.max(1)).clamp(1, imgs.len().max(1));
    // [filters, taps, cg]: the gradient with channels last.
    let mut sums = vec![T::ZERO; filters * taps * cg];
    // Whether each block of taps reads anything but padding along each of
    // an image's output lines: a line whose row (or plane) every tap of the
    // block finds in the padding adds nothing, and is skipped (at 8×8 with
    // padding 1, the first and last lines for a window's first and last
    // rows: a twelfth of the products).
    let live = live_lines(sp, ks, KT);
    let spans = live_spans(sp, ks, KT);
    let (mut xp, mut lines) = (Vec::new(), vec![Vec::new(); taps / KT]);
    for gi in 0..groups {
        sums.fill(T::ZERO);
        for s in imgs.clone().step_by(nb) {
            let part = s..(s + nb).min(imgs.end);
            let xs = lay.fill(x, c, gi, &part, sp, &mut xp);
            lines.iter_mut().for_each(Vec::clear);
            let mut width = 0;
            for (j, ni) in part.clone().enumerate() {
                let mut l = 0;
                lay.sh.lines(sp, |from, to, line| {
                    width = line;
                    for (q, lines) in lines.iter_mut().enumerate() {
                        if live[q][l] {
                            lines.push(((j * lay.sh.plane + from) * cg, (ni * o + gi * og) * ps + to));
                        }
                    }
                    l += 1;
                });
            }
            simd::dispatch(LastMicro::<T, L, KC, KT> {
                x: xs,
                ct,
                lines: &lines,
                width,
                spans: &spans,
                cg,
                fo: &fo,
                to: &to,
                sums: &mut sums,
            });
        }
        for oi in 0..og {
            for ci in 0..cg {
                let dst = &mut acc[((gi * og + oi) * cg + ci) * ks..][..ks];
                for (t, d) in dst.iter_mut().enumerate() {
                    *d = *d + sums[(oi * taps + t) * cg + ci];
                }
            }
        }
    }
}

/// For each block of `kt` of the window's `ks` taps, whether each output
/// line of an image reads anything but padding with one of them: some axis
/// before the last gives a tap an input row (or plane) there.
fn live_lines(sp: &Spatial, ks: usize, kt: usize) -> Vec<Vec<bool>> {
    let d = sp.out.len();
    let line = sp.out[d - 1];
    let lines: usize = sp.out[..d - 1].iter().product();
    let (mut p, mut k) = (vec![0; d], vec![0; d]);
    (0..ks.div_ceil(kt))
        .map(|q| {
            (0..lines)
                .map(|l| {
                    unravel(l * line, &sp.out, &mut p);
                    (q * kt..((q + 1) * kt).min(ks)).any(|t| {
                        unravel(t, sp.window, &mut k);
                        (0..d - 1).all(|i| sp.source(i, p[i], k[i]).is_some())
                    })
                })
                .collect()
        })
        .collect()
}

/// For each block of `kt` of the window's `ks` taps, the positions of an
/// output line from which one of them reads the image along its last axis:
/// a block of taps at the window's first or last column reads the padding
/// from one end of every line.
fn live_spans(sp: &Spatial, ks: usize, kt: usize) -> Vec<Range<usize>> {
    let d = sp.out.len();
    let line = sp.out[d - 1];
    let mut k = vec![0; d];
    (0..ks.div_ceil(kt))
        .map(|q| {
            let (mut lo, mut hi) = (line, 0);
            for t in q * kt..((q + 1) * kt).min(ks) {
                unravel(t, sp.window, &mut k);
                for p in (0..line).filter(|&p| sp.source(d - 1, p, k[d - 1]).is_some()) {
                    (lo, hi) = (lo.min(p), hi.max(p + 1));
                }
            }
            lo..hi.max(lo)
        })
        .collect()
}

/// The gradient's sums over the lines of one chunk.
struct LastMicro<'a, T, const L: usize, const KC: usize, const KT: usize> {
    /// The chunk's input with channels last, `cg` elements a position.
    x: &'a [T],
    /// The output's cotangent.
    ct: &'a [T],
    /// For each block of `KT` taps, the output lines it reads (see
    /// [`live_lines`]): each line's first position in `x` and in `ct` (for
    /// the group's first filter). And the lines' length.
    lines: &'a [Vec<(usize, usize)>],
    width: usize,
    /// For each block of taps, the positions of a line it reads the image
    /// from (see [`live_spans`]); the others read padding.
    spans: &'a [Range<usize>],
    cg: usize,
    /// The offsets of the filters in `ct` (a multiple of `KO`) and of the
    /// taps in `x` (a multiple of `KT`).
    fo: &'a [usize],
    to: &'a [usize],
    /// `[fo.len(), to.len(), cg]`, added into.
    sums: &'a mut [T],
}

impl<T: Num + MulAdd, const L: usize, const KC: usize, const KT: usize> Kernel for LastMicro<'_, T, L, KC, KT> {
    type Out = ();

    #[inline(always)]
    fn run<I: Isa>(self) {
        let (cg, w) = (self.cg, self.width);
        let taps = self.to.len();
        if w == 0 || self.lines.iter().all(Vec::is_empty) {
            return;
        }
        let max = |v: &[usize]| v.iter().max().copied().unwrap_or(0);
        let last_x = self.lines.iter().flatten().map(|l| l.0).max().unwrap_or(0) + (w - 1) * cg + max(self.to) + cg;
        let last_ct = self.lines.iter().flatten().map(|l| l.1).max().unwrap_or(0) + (w - 1) + max(self.fo) + 1;
        assert_eq!(self.lines.len(), taps / KT, "channels-last kernel gradient: lines for each block of taps");
        assert!(
            self.spans.len() == taps / KT && self.spans.iter().all(|s| s.end <= w),
            "channels-last kernel gradient: a span for each block of taps, within a line"
        );
        assert!(cg % (KC * L) == 0, "channels-last kernel gradient: channels not whole blocks");
        assert!(last_x <= self.x.len(), "channels-last kernel gradient: a position reads past the input");
        assert!(last_ct <= self.ct.len(), "channels-last kernel gradient: a position reads past the cotangent");
        assert_eq!(self.sums.len(), self.fo.len() * taps * cg, "channels-last kernel gradient: sums");
        let (x, ct) = (self.x.as_ptr(), self.ct.as_ptr());
        // The filters innermost: the input a block reads (its taps and
        // channels at every position of the chunk) stays in the L1 cache
        // across them, while the filters' cotangents are one broadcast a
        // position.
        for (q, to) in self.to.chunks_exact(KT).enumerate() {
            let to: &[usize; KT] = to.try_into().expect("KT taps");
            for cb in (0..cg).step_by(KC * L) {
                for (b, fo) in self.fo.chunks_exact(KO).enumerate() {
                    let fo: &[usize; KO] = fo.try_into().expect("KO filters");
                    let mut acc = [[[[T::ZERO; L]; KC]; KT]; KO];
                    let (lo, len) = (self.spans[q].start, self.spans[q].len());
                    for &(xl, cl) in &self.lines[q] {
                        let (cl, xl) = (cl + lo, xl + lo * cg + cb);
                        for p in 0..len {
                            // SAFETY: position p of the line, its taps and
                            // its channel block lie within `last_x`, and its
                            // filters within `last_ct` (asserted above).
                            unsafe { step::<I, T, L, KC, KT>(&mut acc, ct.add(cl + p), fo, x.add(xl + p * cg), to) };
                        }
                    }
                    // SAFETY: filter b·KO + i, tap q·KT + k and channels
                    // cb..cb + KC·L address `sums`, whose length was asserted.
                    unsafe {
                        let at = self.sums.as_mut_ptr().add((b * KO * taps + q * KT) * cg + cb);
                        flush::<T, L, KC, KT>(acc, at, taps * cg, cg);
                    }
                }
            }
        }
    }
}

/// One position of the block: `acc[i][k] += c[fo[i]] · x[to[k]..]`.
///
/// # Safety
/// Those values are readable: `KC · L` of them at each `x + to[k]`.
#[inline(always)]
unsafe fn step<I: Isa, T: MulAdd + Num, const L: usize, const KC: usize, const KT: usize>(
    acc: &mut [[[[T; L]; KC]; KT]; KO],
    c: *const T,
    fo: &[usize; KO],
    x: *const T,
    to: &[usize; KT],
) {
    let mut xv = [[[T::ZERO; L]; KC]; KT];
    for (v, &t) in xv.iter_mut().zip(to) {
        for (h, vh) in v.iter_mut().enumerate() {
            // SAFETY: the caller's.
            *vh = unsafe { *(x.add(t + h * L) as *const [T; L]) };
        }
    }
    // SAFETY: the caller's.
    let cv: [T; KO] = fo.map(|f| unsafe { *c.add(f) });
    for (a, &cw) in acc.iter_mut().zip(&cv) {
        for (ak, xk) in a.iter_mut().zip(&xv) {
            for (ah, xh) in ak.iter_mut().zip(xk) {
                for (al, &xl) in ah.iter_mut().zip(xh) {
                    *al = madd::<I, T>(cw, xl, *al);
                }
            }
        }
    }
}

/// Adds the block's sums: `acc[i][k][h]` to the `L` values at `p + i ·
/// filter + k · tap + h · L`. The block comes by value, so that it is read
/// only at constant places and stays in registers in the loop that sums it.
///
/// # Safety
/// Those values are writable.
#[inline(always)]
unsafe fn flush<T: Num, const L: usize, const KC: usize, const KT: usize>(
    acc: [[[[T; L]; KC]; KT]; KO],
    p: *mut T,
    filter: usize,
    tap: usize,
) {
    for (i, a) in acc.iter().enumerate() {
        for (k, ak) in a.iter().enumerate() {
            for (h, ah) in ak.iter().enumerate() {
                let at = p.wrapping_add(i * filter + k * tap + h * L) as *mut [T; L];
                // SAFETY: the caller's.
                let mut sum = unsafe { *at };
                for (d, &v) in sum.iter_mut().zip(ah) {
                    *d = *d + v;
                }
                // SAFETY: the caller's.
                unsafe { *at = sum };
            }
        }
    }
}
