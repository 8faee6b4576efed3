//! Direct 3×3 convolution ("same" padding) with vectors across filters:
//! the work laid out as oneDNN lays it, so that taps falling on the padding
//! are skipped rather than multiplied by zero.
//!
//! The other direct loops (see `direct`) put output positions in a vector's
//! lanes, so a tap that reads the padding for some lanes of a vector reads
//! it as zeros for all of them, and an 8×8 image with padding 1 spends a
//! sixth of its products on padding (22 of every 24 rows and columns a tap
//! reads are the image's). Here a block holds 8 positions along an output
//! row by two vectors of filters in registers; each step broadcasts one
//! input value per position and multiplies it by a vector of filters'
//! weights, so a position whose tap falls on the padding is a product left
//! out: the first and last rows skip a row of taps, and the first and last
//! positions of a row a column of them.

use std::ops::Range;

use super::super::matmul::num_like::Scalar;
use super::super::parallel::{self, team};
use super::super::simd::{self, madd, Isa, Kernel, MulAdd};
use super::super::{pool, Element};
use super::direct::lanes;
use super::{Shared, Spatial, PAR_FLOPS};

/// Output positions per block: a run of 8 along a row (the loop over them
/// is written out for 8 in [`taps`]).
const P: usize = 8;
/// Vectors of filters per block (with `P`, 16 accumulators).
const F: usize = 2;

/// Input channels from which the loop pays: each step is one channel, and
/// a block runs through every channel for each of its 9 taps.
const MIN_CHANNELS: usize = 16;

/// The longest side of an output the loop computes with any number of
/// filters: where skipping the padding's products (a sixth of them at 8×8)
/// outweighs what the loop costs beside the others. Xeon, 2 threads, batch
/// 128, 3×3: 64→128 channels at 8×8 forward 3.50–3.63 → 2.98–3.28 ms,
/// input gradient 3.50–3.69 → 2.99–3.25 ms.
const SMALL_SIDE: usize = 8;

/// The longest side of an output the loop computes with whole blocks of
/// filters (a twelfth of the products skipped at 16×16). Xeon, 2 threads,
/// batch 128, 32→64 channels at 16×16: forward 2.92–3.00 → 2.69–2.78 ms,
/// input gradient 3.19–3.25 → 2.69–2.82 ms, and 64→64 5.4–5.8 → 5.4 ms; but
/// with 16 filters (a block half empty) 32→16 took 1.3 against 0.8 ms, and
/// at 32×32 it won or lost by a few percent.
const MAX_SIDE: usize = 16;

/// Whether [`conv_filter_vectors`] computes the convolution of `c`
/// channels by `filters` filters in `groups` over `sp`, in elements of
/// `size` bytes: a 2-d 3×3 window at unit strides and dilations with
/// padding 1 on every side (the output the input's size), one group, rows
/// of whole blocks, sides up to [`SMALL_SIDE`] (or [`MAX_SIDE`] with whole
/// blocks of filters), and AVX-512 (whose 32 registers hold a block).
pub(super) fn applies(sp: &Spatial, size: usize, c: usize, filters: usize, groups: usize) -> bool {
    let g = sp.geo;
    let Some(lanes) = lanes(size) else { return false };
    let whole = filters % (F * lanes) == 0;
    sp.window == [3, 3]
        && g.strides.iter().chain(&g.lhs_dilation).chain(&g.rhs_dilation).all(|&s| s == 1)
        && g.padding.iter().all(|&p| p == (1, 1))
        && groups == 1
        && c >= MIN_CHANNELS
        && sp.out[1] % P == 0
        && sp.out.iter().all(|&s| s > 0 && s <= if whole { MAX_SIDE } else { SMALL_SIDE })
}

/// How the weights given make the convolution's filters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Filters {
    /// `w [o, c, 3, 3]`: filter `f` is `w[f]`.
    AsGiven,
    /// `w [c, o, 3, 3]`, a convolution's whose input gradient this is:
    /// filter `f` reads channel `i` with `w[i, f]` turned by half a turn
    /// (the transposed convolution), so that nothing is permuted first.
    Transposed,
}

/// `x [n, c, H, W]` convolved with the `o` filters `w` makes (see
/// [`Filters`] and [`applies`]).
pub(super) fn conv_filter_vectors<T: Element + Scalar + MulAdd>(
    sp: &Spatial,
    x: &[T],
    w: &[T],
    (n, c, o): (usize, usize, usize),
    filters: Filters,
) -> Vec<T> {
    let mut buf = Vec::new();
    if std::mem::size_of::<T>() == 4 {
        blocked::<T, 16>(sp, x, pack(w, o, c, 16 * F, filters, &mut buf), (n, c, o))
    } else {
        blocked::<T, 8>(sp, x, pack(w, o, c, 8 * F, filters, &mut buf), (n, c, o))
    }
}

/// The `o` filters of `c` channels that `w` makes (see [`Filters`]) as
/// `[blocks, 9, c, fb]`: for each block of `fb` filters and each tap, a
/// row of the block's weights per channel, the last block's missing
/// filters zero; in `buf`, from a cache line (see [`simd::zeros_on_line`]).
fn pack<'b, T: Element + Scalar>(
    w: &[T],
    o: usize,
    c: usize,
    fb: usize,
    filters: Filters,
    buf: &'b mut Vec<T>,
) -> &'b [T] {
    let packed = simd::zeros_on_line(buf, o.div_ceil(fb) * 9 * c * fb);
    for oi in 0..o {
        let (b, f) = (oi / fb, oi % fb);
        for ci in 0..c {
            for t in 0..9 {
                packed[((b * 9 + t) * c + ci) * fb + f] = match filters {
                    Filters::AsGiven => w[(oi * c + ci) * 9 + t],
                    Filters::Transposed => w[(ci * o + oi) * 9 + 8 - t],
                };
            }
        }
    }
    packed
}

/// [`conv_filter_vectors`] with the filters packed.
fn blocked<T: Element + Scalar + MulAdd, const L: usize>(
    sp: &Spatial,
    x: &[T],
    packed: &[T],
    (n, c, o): (usize, usize, usize),
) -> Vec<T> {
    let (h, wd) = (sp.out[0], sp.out[1]);
    let plane = h * wd;
    let fb = F * L;
    let blocks = o.div_ceil(fb);
    let len = n * o * plane;
    let mut out: Vec<T> = pool::with_capacity(len);
    let dst = Shared(out.as_mut_ptr());
    // One task per image and block of filters; neighbouring tasks share
    // the image (2–4% faster than sharing the block, 64→128 channels at
    // 8×8 on 2 threads).
    let task = |i: usize| {
        let (b, ni) = (i % blocks, i / blocks);
        simd::dispatch(Image::<T, L> {
            x: &x[ni * c * plane..][..c * plane],
            w: &packed[b * 9 * c * fb..][..9 * c * fb],
            c,
            h,
            wd,
            filters: (o - b * fb).min(fb),
            dst,
            at: (ni * o + b * fb) * plane,
        })
    };
    if 2 * len * c * 9 >= PAR_FLOPS && parallel::threads() > 1 {
        // Tasks claimed one at a time: splitting them into a contiguous
        // run per thread measured 10-20% slower.
        team::run(blocks * n, &task);
    } else {
        (0..blocks * n).for_each(task);
    }
    // SAFETY: the tasks cover every (image, filter), each writing all of
    // its outputs.
    unsafe { out.set_len(len) };
    out
}

/// One image's convolution with one block of filters.
struct Image<'a, T, const L: usize> {
    /// The image, `[c, h, wd]`.
    x: &'a [T],
    /// The block's packed weights, `[9, c, F·L]`.
    w: &'a [T],
    c: usize,
    h: usize,
    wd: usize,
    /// The block's filters that exist (the last block may have fewer).
    filters: usize,
    dst: Shared<T>,
    /// Where the block's first filter's plane starts in the output.
    at: usize,
}

/// A block's sums: `P` positions by `F` vectors of filters.
type Block<T, const L: usize> = [[[T; L]; F]; P];

impl<T: Scalar + MulAdd, const L: usize> Kernel for Image<'_, T, L> {
    type Out = ();

    #[inline(always)]
    fn run<I: Isa>(self) {
        let (c, h, wd) = (self.c, self.h, self.wd);
        let plane = h * wd;
        assert!(self.x.len() == c * plane && self.w.len() == 9 * c * F * L, "filter-vector conv: operand sizes");
        assert!(wd % P == 0 && self.filters <= F * L, "filter-vector conv: rows of whole blocks");
        for oy in 0..h {
            // Input row oy + ky - 1 exists for these taps.
            let kys = usize::from(oy == 0)..3 - usize::from(oy + 1 == h);
            for xb in (0..wd).step_by(P) {
                let sums = match (xb == 0, xb + P == wd) {
                    (true, true) => self.block::<I, true, true>(kys.clone(), oy, xb),
                    (true, false) => self.block::<I, true, false>(kys.clone(), oy, xb),
                    (false, true) => self.block::<I, false, true>(kys.clone(), oy, xb),
                    (false, false) => self.block::<I, false, false>(kys.clone(), oy, xb),
                };
                self.store::<I>(&sums, self.at + oy * wd + xb);
            }
        }
    }
}

impl<T: Scalar + MulAdd, const L: usize> Image<'_, T, L> {
    /// The sums of the block at `xb` along output row `oy` over the rows
    /// of taps `kys`; `FIRST` and `LAST` say whether the block starts or
    /// ends its row, where a column of taps falls on the padding. The taps
    /// are written out so that the sums stay in registers from the first
    /// to the last (stored between taps, they cost a tenth of the loop's
    /// time).
    #[inline(always)]
    fn block<I: Isa, const FIRST: bool, const LAST: bool>(
        &self,
        kys: Range<usize>,
        oy: usize,
        xb: usize,
    ) -> Block<T, L> {
        let (c, wd) = (self.c, self.wd);
        let plane = self.h * wd;
        let mut sums = [[[T::ZERO; L]; F]; P];
        for ky in kys {
            // Position p reads column xb + p + kx - 1 of row oy + ky - 1:
            // `col + kx` is where p + 1 reads.
            let col = (oy + ky - 1) * wd + xb;
            let w = |kx: usize| &self.w[(ky * 3 + kx) * c * F * L..][..c * F * L];
            taps::<I, T, L>(&mut sums, self.x, col, plane, w(0), usize::from(FIRST), P);
            taps::<I, T, L>(&mut sums, self.x, col + 1, plane, w(1), 0, P);
            taps::<I, T, L>(&mut sums, self.x, col + 2, plane, w(2), 0, P - usize::from(LAST));
        }
        sums
    }

    /// Writes a block's sums, `[P positions, F·L filters]`, into the
    /// output's planes at `at`: filter `f`'s positions at `at + f · plane`,
    /// turned a square tile at a time.
    #[inline(always)]
    fn store<I: Isa>(&self, acc: &Block<T, L>, at: usize) {
        let plane = self.h * self.wd;
        let r = simd::tile_rows(std::mem::size_of::<T>());
        let src = acc.as_ptr() as *const T;
        for f in (0..self.filters).step_by(r) {
            for p in (0..P).step_by(r) {
                // SAFETY: the tile's rows are inside `acc` ([P, F·L]); its
                // destination, filters f.. and positions p.. of the block's
                // row, is inside the output and this task's alone.
                unsafe {
                    let (from, to) = (src.add(p * F * L + f), self.dst.at(at + f * plane + p));
                    if f + r <= self.filters && r <= P {
                        simd::transpose_tile::<I, T>(from, F * L, to, plane);
                    } else {
                        for i in 0..(self.filters - f).min(r) {
                            for j in 0..r.min(P - p) {
                                *to.add(i * plane + j) = *from.add(j * F * L + i);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One tap of a block, for every channel: positions `lo..hi` (the others'
/// tap falls on the padding) add the input value at `col + p - 1` of each
/// channel times the channel's weights `w [c, F·L]`. The caller's `lo` and
/// `hi` are constants, so each position's test is folded away.
#[inline(always)]
fn taps<I: Isa, T: Scalar + MulAdd, const L: usize>(
    acc: &mut Block<T, L>,
    x: &[T],
    col: usize,
    plane: usize,
    w: &[T],
    lo: usize,
    hi: usize,
) {
    let c = w.len() / (F * L);
    // The last value read, by the last channel's position hi - 1.
    assert!(hi <= P && (c - 1) * plane + col + hi - 1 <= x.len(), "filter-vector conv: a tap reads past the image");
    assert!(lo >= 1 || col >= 1, "filter-vector conv: a tap reads before the image");
    // The sums in a local, which LLVM keeps in registers through the loop
    // (through the reference, it stored every one at every step).
    let mut sums = *acc;
    for ci in 0..c {
        // SAFETY: the channel's row of weights is inside `w`, which holds c of them.
        let wv = unsafe { *(w.as_ptr().add(ci * F * L) as *const [[T; L]; F]) };
        let row = ci * plane + col;
        // Written out position by position: as a loop, LLVM vectorised it
        // across the positions, gathering and scattering the sums.
        macro_rules! positions {
            ($($p:literal)*) => {$(
                if lo <= $p && $p < hi {
                    // SAFETY: row + p - 1 lies between the assertions' bounds.
                    let v = unsafe { *x.get_unchecked(row + $p - 1) };
                    madd_row::<I, T, L>(&mut sums[$p], v, &wv);
                }
            )*};
        }
        positions!(0 1 2 3 4 5 6 7);
    }
    *acc = sums;
}

/// `a += v · w` over a block's filters.
#[inline(always)]
fn madd_row<I: Isa, T: MulAdd, const L: usize>(a: &mut [[T; L]; F], v: T, w: &[[T; L]; F]) {
    for (af, wf) in a.iter_mut().zip(w) {
        for (al, &wl) in af.iter_mut().zip(wf) {
            *al = madd::<I, T>(v, wl, *al);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConvGeometry;
    use super::*;

    /// Rows of two and three blocks (the second beyond what `applies`
    /// admits, and 40 filters a partial block at 16 wide): the first,
    /// middle and last blocks of a row leave out different columns of
    /// taps. Both ways of reading the filters, f32 and f64, against the
    /// definition.
    #[test]
    fn rows_of_several_blocks_equal_the_definition() {
        let (n, c, o) = (2, 16, 40);
        for (h, wd) in [(3, 16), (2, 24)] {
            let geo = ConvGeometry { padding: vec![(1, 1); 2], ..ConvGeometry::unit(2) };
            let sp = Spatial { input: &[h, wd], window: &[3, 3], out: vec![h, wd], geo: &geo };
            let value = |i: usize, s: usize| ((i * 2654435761 + s) % 1000) as f64 / 500.0 - 1.0;
            let x: Vec<f64> = (0..n * c * h * wd).map(|i| value(i, 1)).collect();
            for filters in [Filters::AsGiven, Filters::Transposed] {
                let w: Vec<f64> = (0..o * c * 9).map(|i| value(i, 7)).collect();
                // Filter f's weight for channel i and tap t.
                let weight = |f: usize, i: usize, t: usize| match filters {
                    Filters::AsGiven => w[(f * c + i) * 9 + t],
                    Filters::Transposed => w[(i * o + f) * 9 + 8 - t],
                };
                let mut want = vec![0.0; n * o * h * wd];
                for ni in 0..n {
                    for f in 0..o {
                        for (y, xo, t) in (0..h * wd * 9).map(|k| (k / (wd * 9), k / 9 % wd, k % 9)) {
                            let (yi, xi) = ((y + t / 3) as i64 - 1, (xo + t % 3) as i64 - 1);
                            if (0..h as i64).contains(&yi) && (0..wd as i64).contains(&xi) {
                                let at = (yi as usize) * wd + xi as usize;
                                want[((ni * o + f) * h + y) * wd + xo] +=
                                    (0..c).map(|i| x[(ni * c + i) * h * wd + at] * weight(f, i, t)).sum::<f64>();
                            }
                        }
                    }
                }
                let got = conv_filter_vectors(&sp, &x, &w, (n, c, o), filters);
                for (g, e) in got.iter().zip(&want) {
                    assert!((g - e).abs() <= 1e-12 * (1.0 + e.abs()), "f64 {h}×{wd}: {g} against {e}");
                }
                let (x32, w32): (Vec<f32>, Vec<f32>) =
                    (x.iter().map(|&v| v as f32).collect(), w.iter().map(|&v| v as f32).collect());
                let got = conv_filter_vectors(&sp, &x32, &w32, (n, c, o), filters);
                // f32: sums of 144 products of values below 1 in magnitude.
                for (g, e) in got.iter().zip(&want) {
                    assert!((*g as f64 - e).abs() <= 2e-5 * (1.0 + e.abs()), "f32 {h}×{wd}: {g} against {e}");
                }
            }
        }
    }
}
