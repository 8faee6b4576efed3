//! Direct convolution: the shifted layout's products (see [`Shifted`])
//! computed by one register-blocked loop instead of a GEMM per tap, and the
//! kernel's gradient by another; 2-d images with short lines are stacked
//! first (see [`Stacked`]).
//!
//! Each tap of a unit-stride window reads the padded input at one fixed
//! offset from the output position, so the convolution is a product whose
//! right operand is never built: row `(c, tap)` of it is the padded channel
//! `c` read from that tap's offset. The loop keeps a block of `OB` filters
//! by `V` vectors of output positions in registers while it runs through
//! every channel and tap, and writes each output once into its place,
//! where a GEMM per tap adds a grid in and out once per tap, and nothing
//! is packed on the input's side.

use std::ops::Range;

use super::super::matmul::num_like::Scalar;
use super::super::parallel::{self, team};
use super::super::simd::{self, madd, Isa, Kernel, Level, MulAdd};
use super::super::{pool, Element, Num};
use super::shifted::{copy_line, Shifted};
use super::{image_tasks, run_tasks, Shared, Spatial, PAR_FLOPS};

/// Output channels per block: each is a broadcast weight per step.
pub(super) const OB: usize = 8;

/// Whether vectors of 16 f32 or 8 f64 positions cover each line of an
/// output `out` in elements of `size` bytes exactly, on AVX-512 (whose 32
/// vector registers hold a block of the direct loops), so that no lane
/// computes a position that is dropped.
pub(super) fn whole_lines(out: &[usize], size: usize) -> bool {
    lanes(size).is_some_and(|l| out.last().is_some_and(|&w| w > 0 && w % l == 0))
}

/// [`whole_lines`], or a 2-d output whose images are whole vectors (see
/// [`Stacked`]). Other outputs keep the products: a virtual grid over the
/// padded width costs 25% more arithmetic at 8×8.
fn whole_images(out: &[usize], size: usize) -> bool {
    let image = |l: usize| out.len() == 2 && out[0] * out[1] > 0 && out[0] * out[1] % l == 0;
    whole_lines(out, size) || lanes(size).is_some_and(image)
}

/// The lanes of an AVX-512 vector of `size`-byte floats, where the direct
/// loops run: on AVX-512, for f32 and f64.
pub(super) fn lanes(size: usize) -> Option<usize> {
    (simd::level() == Level::Avx512 && (size == 4 || size == 8)).then(|| 64 / size)
}

/// Where a task's input lies for the direct loops: each image of each
/// channel in a buffer of `plane` elements, which tap `t` reads at
/// `taps[t]` past a position's start.
pub(super) struct Layout {
    sh: Shifted,
    /// Images whose lines are shorter than a vector: see [`Stacked`].
    stacked: Option<Stacked>,
    taps: Vec<usize>,
    plane: usize,
}

/// A 2-d image padded along its first axis and, for each column of the
/// window, its columns shifted by that column's offset and cut to the
/// output's width: `[kw, padded rows, out width]`. Output position `p`
/// (row-major over the output) then reads tap `(ky, kx)` at `p + kx ·
/// slab + ky · dilation · width`, so a vector runs across rows, and an
/// 8×8 output is four vectors of 16 with nothing wasted.
struct Stacked {
    /// Padded rows, the output's width, and the rows and columns before the image.
    rows: usize,
    width: usize,
    top: usize,
    left: usize,
    /// The window's columns and their dilation.
    kw: usize,
    dilation: usize,
}

impl Layout {
    /// The layout of a convolution in elements of `size` bytes, or `None`
    /// where the direct loops do not apply (see [`whole_images`]).
    pub(super) fn new(sp: &Spatial, size: usize) -> Option<Layout> {
        let sh = Shifted::new(sp)?;
        if !whole_images(&sp.out, size) {
            return None;
        }
        if whole_lines(&sp.out, size) {
            let (taps, plane) = (sh.taps.clone(), sh.plane);
            return Some(Layout { sh, stacked: None, taps, plane });
        }
        let (g, width) = (sp.geo, sp.out[1]);
        let st = Stacked {
            rows: sp.input[0] + (g.padding[0].0 + g.padding[0].1) as usize,
            width,
            top: g.padding[0].0 as usize,
            left: g.padding[1].0 as usize,
            kw: sp.window[1],
            dilation: g.rhs_dilation[1],
        };
        let slab = st.rows * width;
        let taps =
            (0..sp.window[0] * st.kw).map(|t| (t % st.kw) * slab + (t / st.kw) * g.rhs_dilation[0] * width).collect();
        let plane = st.kw * slab;
        Some(Layout { sh, stacked: Some(st), taps, plane })
    }

    /// Whether the images are stacked (see [`Stacked`]). The kernel
    /// gradient does not take those: it reads three slabs an image for one
    /// vector's worth of positions, and measured slower than the products
    /// (32→32 at 8×8: 1.0 against 0.67 ms).
    pub(super) fn stacked(&self) -> bool {
        self.stacked.is_some()
    }

    /// The images `imgs` of group `gi` of `x [N, c, S..]` in this layout,
    /// `[cg, images, plane]`, into `dst`.
    #[allow(clippy::too_many_arguments)]
    fn fill<T: Element>(
        &self,
        x: &[T],
        c: usize,
        cg: usize,
        gi: usize,
        imgs: &Range<usize>,
        sp: &Spatial,
        dst: &mut Vec<T>,
    ) {
        let Some(st) = &self.stacked else {
            return self.sh.pad(x, c, cg, gi, imgs, sp, dst);
        };
        let (h, w) = (sp.input[0], sp.input[1]);
        dst.clear();
        dst.resize(cg * imgs.len() * self.plane, T::default());
        for ci in 0..cg {
            for (j, ni) in imgs.clone().enumerate() {
                let src = &x[(ni * c + gi * cg + ci) * h * w..][..h * w];
                let image = &mut dst[(ci * imgs.len() + j) * self.plane..][..self.plane];
                for (kx, slab) in image.chunks_exact_mut(st.rows * st.width).enumerate() {
                    // Output column xo reads input column xo + shift.
                    let shift = (kx * st.dilation) as i64 - st.left as i64;
                    let from = (-shift).clamp(0, st.width as i64) as usize;
                    let to = (w as i64 - shift).clamp(from as i64, st.width as i64) as usize;
                    for y in 0..h {
                        let line = &mut slab[(y + st.top) * st.width..][..st.width];
                        let at = (y * w) as i64 + from as i64 + shift;
                        copy_line(&mut line[from..to], &src[at as usize..][..to - from]);
                    }
                }
            }
        }
    }

    /// The vectors of `L` output positions of the images `imgs` of a task:
    /// where each starts in the task's buffer of one channel, and where it
    /// starts in channel `first` of an output `[N, o, P..]`.
    fn task_vectors<const L: usize>(
        &self,
        sp: &Spatial,
        imgs: &Range<usize>,
        (o, first): (usize, usize),
        starts: &mut Vec<usize>,
        at: &mut Vec<usize>,
    ) {
        let ps: usize = sp.out.iter().product();
        starts.clear();
        at.clear();
        for (j, ni) in imgs.clone().enumerate() {
            let mut push = |from: usize, to: usize| {
                starts.push(j * self.plane + from);
                at.push((ni * o + first) * ps + to);
            };
            if self.stacked.is_some() {
                // An image's positions run on across its rows.
                (0..ps).step_by(L).for_each(|p| push(p, p));
            } else {
                self.sh.lines(sp, |from, to, line| (0..line).step_by(L).for_each(|k| push(from + k, to + k)));
            }
        }
    }
}

/// [`conv`](super::conv) directly, for `f32` (blocks of 48 positions) and
/// `f64` (24): three AVX-512 vectors per output channel, 24 accumulators.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_direct<T: Element + Scalar + MulAdd>(
    lay: &Layout,
    sp: &Spatial,
    x: &[T],
    w: &[T],
    n: usize,
    c: usize,
    o: usize,
    groups: usize,
) -> Vec<T> {
    if std::mem::size_of::<T>() == 4 {
        blocked::<T, 16>(lay, sp, x, w, (n, c, o, groups))
    } else {
        blocked::<T, 8>(lay, sp, x, w, (n, c, o, groups))
    }
}

/// The filters of one group `w [og, cg, K..]` as `[og / OB, cg, K, OB]`,
/// the last block filled with zeros.
fn pack<T: Element + Scalar>(w: &[T], og: usize, cg: usize, ks: usize) -> Vec<T> {
    let mut packed = vec![T::ZERO; og.div_ceil(OB) * cg * ks * OB];
    for oi in 0..og {
        let (b, i) = (oi / OB, oi % OB);
        for ci in 0..cg {
            for t in 0..ks {
                packed[((b * cg + ci) * ks + t) * OB + i] = w[(oi * cg + ci) * ks + t];
            }
        }
    }
    packed
}

/// Vectors per block of positions, each of `L` lanes.
const V: usize = 3;

fn blocked<T: Element + Scalar + MulAdd, const L: usize>(
    lay: &Layout,
    sp: &Spatial,
    x: &[T],
    w: &[T],
    (n, c, o, groups): (usize, usize, usize, usize),
) -> Vec<T> {
    let (cg, og) = (c / groups, o / groups);
    let ks = lay.taps.len();
    let ps: usize = sp.out.iter().product();
    let len = n * o * ps;
    // Images per task: enough for blocks of vectors with few repeated
    // (one 8×8 image is 4 vectors), and a task for each thread.
    let nb = (8 * V * L).div_ceil(ps).clamp(1, n.div_ceil(parallel::threads()).max(1));
    let tasks = image_tasks(groups, n, nb);
    let mut out: Vec<T> = pool::with_capacity(len);
    let dst = Shared(out.as_mut_ptr());
    let flops = 2 * n * o * cg * ks * ps;
    let packed: Vec<Vec<T>> = (0..groups).map(|gi| pack(&w[gi * og * cg * ks..][..og * cg * ks], og, cg, ks)).collect();
    let run = |bufs: &mut (Vec<T>, Vec<usize>, Vec<usize>), (gi, imgs): &(usize, Range<usize>)| {
        let (xp, starts, targets) = bufs;
        lay.fill(x, c, cg, *gi, imgs, sp, xp);
        lay.task_vectors::<L>(sp, imgs, (o, *gi * og), starts, targets);
        // Blocks of V vectors: the last block repeats a vector.
        while starts.len() % V != 0 {
            starts.push(starts[starts.len() - 1]);
            targets.push(targets[targets.len() - 1]);
        }
        // One large task splits its blocks of vectors instead.
        let pieces = if tasks.len() == 1 && flops >= PAR_FLOPS { parallel::threads() } else { 1 };
        let per = (starts.len() / V).div_ceil(pieces) * V;
        let (xp, starts, targets) = (&*xp, &*starts, &*targets);
        team::run(pieces, &|p| {
            let r = (p * per).min(starts.len())..((p + 1) * per).min(starts.len());
            simd::dispatch(Micro::<T, L> {
                xp,
                cs: imgs.len() * lay.plane,
                taps: &lay.taps,
                w: &packed[*gi],
                cg,
                og,
                starts: &starts[r.clone()],
                targets: &targets[r],
                ps,
                dst,
                len,
            })
        });
    };
    run_tasks(&tasks, tasks.len() > 1 && flops >= PAR_FLOPS, run);
    // SAFETY: the tasks cover every (image, group), and each wrote all its outputs.
    unsafe { out.set_len(len) };
    out
}

/// The output channels of one group for the vectors of one task.
struct Micro<'a, T, const L: usize> {
    /// The task's input in its [`Layout`], `cs` elements a channel.
    xp: &'a [T],
    cs: usize,
    taps: &'a [usize],
    /// The packed filters (see [`pack`]).
    w: &'a [T],
    cg: usize,
    og: usize,
    /// A multiple of `V` vector starts in `xp`'s first channel, and where
    /// each vector's first channel goes in the output.
    starts: &'a [usize],
    targets: &'a [usize],
    /// Positions of an output channel.
    ps: usize,
    dst: Shared<T>,
    /// The output's length.
    len: usize,
}

impl<T: Scalar + MulAdd, const L: usize> Kernel for Micro<'_, T, L> {
    type Out = ();

    #[inline(always)]
    fn run<I: Isa>(self) {
        let ks = self.taps.len();
        let reach = self.taps.iter().max().copied().unwrap_or(0) + L;
        let wl = self.cg * ks * OB;
        let blocks = self.og.div_ceil(OB);
        assert!(self.w.len() >= blocks * wl, "direct conv: packed filters too short");
        for (s, d) in self.starts.chunks_exact(V).zip(self.targets.chunks_exact(V)) {
            let s: [usize; V] = s.try_into().expect("V starts");
            let last = s.iter().max().copied().unwrap_or(0) + (self.cg - 1) * self.cs + reach;
            assert!(last <= self.xp.len(), "direct conv: a vector reads past the padded input");
            assert!(
                d.iter().all(|&t| t + (self.og - 1) * self.ps + L <= self.len),
                "direct conv: a vector writes past the output"
            );
            let xs = s.map(|sv| self.xp[sv..].as_ptr());
            for b in 0..blocks {
                let wb = self.w[b * wl..].as_ptr();
                let mut acc = [[[T::ZERO; L]; V]; OB];
                for ci in 0..self.cg {
                    for (t, &off) in self.taps.iter().enumerate() {
                        let at = ci * self.cs + off;
                        // SAFETY: `at + L` is within `reach` of channel
                        // `ci`, inside `xp` by the assertion above; the
                        // filters hold `wl` elements a block.
                        let (xr, wt) = unsafe {
                            (
                                xs.map(|x| *(x.add(at) as *const [T; L])),
                                &*(wb.add((ci * ks + t) * OB) as *const [T; OB]),
                            )
                        };
                        step::<I, T, L>(&mut acc, wt, &xr);
                    }
                }
                for (i, a) in acc.iter().enumerate().take(self.og - b * OB) {
                    for (v, &dv) in d.iter().enumerate() {
                        // SAFETY: channel `b·OB + i < og` of the vector's
                        // line, inside `len` by the assertion above; these
                        // positions are this task's alone.
                        unsafe {
                            let at = self.dst.at(dv + (b * OB + i) * self.ps);
                            std::ptr::copy_nonoverlapping(a[v].as_ptr(), at, L);
                        }
                    }
                }
            }
        }
    }
}

/// One channel and tap of the block: `acc[i] += w[i] · x`.
#[inline(always)]
fn step<I: Isa, T: MulAdd, const L: usize>(acc: &mut [[[T; L]; V]; OB], w: &[T; OB], x: &[[T; L]; V]) {
    for (a, &wi) in acc.iter_mut().zip(w) {
        for (av, xv) in a.iter_mut().zip(x) {
            for (aj, &xj) in av.iter_mut().zip(xv) {
                *aj = madd::<I, T>(wi, xj, *aj);
            }
        }
    }
}

/// Filters and window rows (channel, tap) per block of the kernel
/// gradient: 24 accumulators.
const KO: usize = 4;
const KR: usize = 6;

/// Vectors of positions a block of the kernel gradient runs through
/// before it adds its sums into the partial gradient: about 16 KB of the
/// cotangent's rows and as much of the input's, which stay in the L1
/// cache while the window rows change.
const CHUNK: usize = 64;

/// The most bytes of lane-wise partial sums the direct kernel gradient
/// keeps: they are added into once per chunk, and measured slower than the
/// products once they leave a core's L2 cache (2 MB on the Xeon measured):
/// 32→64 channels at 16×16 (1.2 MB) tied, 64→32 (1.2 MB) won 3.9 against
/// 4.5 ms, 64→64 (2.4 MB) lost 7.8–8.1 against 6.9–7.1 ms.
const PARTIAL_MAX_BYTES: usize = 3 << 19;

/// Whether [`kernel_grad_direct`] suits `og` filters and `rows` window
/// rows (channels × taps) a group, given a [`Layout`] that is not stacked.
pub(super) fn kernel_grad_fits(og: usize, rows: usize) -> bool {
    // A vector of lanes is 64 bytes for f32 and f64 alike.
    og.next_multiple_of(KO) * rows.next_multiple_of(KR) * 64 <= PARTIAL_MAX_BYTES
}

/// Adds to `acc [o, cg, K..]` the kernel gradient of the images `imgs`
/// directly (see [`Layout`]): for each filter and
/// window row, the dot product of the cotangent's lines with the padded
/// input read from that tap's offset, summed lane-wise over vectors of
/// positions and across the lanes once at the end.
pub(super) fn kernel_grad_direct<T: Num + MulAdd>(
    lay: &Layout,
    sp: &Spatial,
    x: &[T],
    ct: &[T],
    imgs: Range<usize>,
    shape: (usize, usize, usize),
    acc: &mut [T],
) {
    if std::mem::size_of::<T>() == 4 {
        kernel_grad_blocked::<T, 16>(lay, sp, x, ct, imgs, shape, acc)
    } else {
        kernel_grad_blocked::<T, 8>(lay, sp, x, ct, imgs, shape, acc)
    }
}

fn kernel_grad_blocked<T: Num + MulAdd, const L: usize>(
    lay: &Layout,
    sp: &Spatial,
    x: &[T],
    ct: &[T],
    imgs: Range<usize>,
    (c, o, groups): (usize, usize, usize),
    acc: &mut [T],
) {
    let (cg, og) = (c / groups, o / groups);
    let ks = lay.taps.len();
    let ps: usize = sp.out.iter().product();
    let rows = cg * ks;
    let (filters, lines) = (og.next_multiple_of(KO), rows.next_multiple_of(KR));
    // Enough images at a time to fill a chunk of vectors.
    let nb = CHUNK.div_ceil(ps / L).clamp(1, imgs.len().max(1));
    // Lane-wise sums, [filters, lines, L]; the blocks' extra filters and
    // window rows read real values (the first's) and are dropped.
    let mut partial = vec![T::ZERO; filters * lines * L];
    let (mut xp, mut starts, mut cts) = (Vec::new(), Vec::new(), Vec::new());
    let co: Vec<usize> = (0..filters).map(|oi| if oi < og { oi * ps } else { 0 }).collect();
    for gi in 0..groups {
        partial.fill(T::ZERO);
        for s in imgs.clone().step_by(nb) {
            let part = s..(s + nb).min(imgs.end);
            lay.fill(x, c, cg, gi, &part, sp, &mut xp);
            lay.task_vectors::<L>(sp, &part, (o, gi * og), &mut starts, &mut cts);
            let cs = part.len() * lay.plane;
            let ro: Vec<usize> =
                (0..lines).map(|r| if r < rows { (r / ks) * cs + lay.taps[r % ks] } else { 0 }).collect();
            simd::dispatch(KernelMicro::<T, L> {
                xp: &xp,
                ct,
                starts: &starts,
                cts: &cts,
                ro: &ro,
                co: &co,
                partial: &mut partial,
            });
        }
        let dst = &mut acc[gi * og * rows..][..og * rows];
        for (oi, line) in dst.chunks_exact_mut(rows).enumerate() {
            for (r, a) in line.iter_mut().enumerate() {
                *a = *a + lane_sum::<T, L>(&partial[(oi * lines + r) * L..][..L]);
            }
        }
    }
}

/// The sum of `L` lanes, pairwise.
fn lane_sum<T: Num, const L: usize>(v: &[T]) -> T {
    let mut v: [T; L] = v.try_into().expect("L lanes");
    let mut n = L;
    while n > 1 {
        n /= 2;
        for i in 0..n {
            v[i] = v[i] + v[i + n];
        }
    }
    v[0]
}

/// The lane-wise kernel gradient of one task's vectors.
struct KernelMicro<'a, T, const L: usize> {
    /// The task's input in its [`Layout`].
    xp: &'a [T],
    /// The output's cotangent.
    ct: &'a [T],
    /// Each vector's start in `xp`'s first channel and in `ct`.
    starts: &'a [usize],
    cts: &'a [usize],
    /// The offsets of the window rows in `xp` (a multiple of `KR`) and of
    /// the filters in `ct` (a multiple of `KO`).
    ro: &'a [usize],
    co: &'a [usize],
    /// `[co.len(), ro.len(), L]`.
    partial: &'a mut [T],
}

impl<T: Num + MulAdd, const L: usize> Kernel for KernelMicro<'_, T, L> {
    type Out = ();

    #[inline(always)]
    fn run<I: Isa>(self) {
        let lines = self.ro.len();
        let reach = |v: &[usize], r: &[usize]| v.iter().max().zip(r.iter().max()).map_or(0, |(a, b)| a + b + L);
        assert!(reach(self.starts, self.ro) <= self.xp.len(), "direct kernel gradient: a vector reads past the input");
        assert!(reach(self.cts, self.co) <= self.ct.len(), "direct kernel gradient: a vector reads past the cotangent");
        assert_eq!(self.partial.len(), self.co.len() * lines * L, "direct kernel gradient: partial sums");
        let (xp, ct) = (self.xp.as_ptr(), self.ct.as_ptr());
        for (vs, vc) in self.starts.chunks(CHUNK).zip(self.cts.chunks(CHUNK)) {
            for (b, co) in self.co.chunks_exact(KO).enumerate() {
                let co: &[usize; KO] = co.try_into().expect("KO filters");
                for (q, ro) in self.ro.chunks_exact(KR).enumerate() {
                    let ro: &[usize; KR] = ro.try_into().expect("KR rows");
                    let mut acc = [[[T::ZERO; L]; KR]; KO];
                    for (&s, &t) in vs.iter().zip(vc) {
                        // SAFETY: every start plus every row offset, and
                        // every cotangent start plus every filter offset,
                        // is at most L short of its buffer's end (the
                        // assertions above).
                        unsafe { kernel_step::<I, T, L>(&mut acc, ct.add(t), co, xp.add(s), ro) };
                    }
                    // SAFETY: filter b·KO + i < co.len() and row q·KR + k <
                    // lines address `partial`, whose length was asserted.
                    unsafe {
                        let at = self.partial.as_mut_ptr().add((b * KO * lines + q * KR) * L);
                        flush::<T, L>(acc, at, lines * L);
                    }
                }
            }
        }
    }
}

/// One vector of positions of the block: `acc[i][k] += c[i] · x[k]`,
/// lane by lane, for the `L` values at `c + co[i]` and `x + ro[k]`.
///
/// # Safety
/// Those values are readable.
#[inline(always)]
unsafe fn kernel_step<I: Isa, T: MulAdd + Num, const L: usize>(
    acc: &mut [[[T; L]; KR]; KO],
    c: *const T,
    co: &[usize; KO],
    x: *const T,
    ro: &[usize; KR],
) {
    let mut xv = [[T::ZERO; L]; KR];
    for (v, &r) in xv.iter_mut().zip(ro) {
        // SAFETY: the caller's.
        *v = unsafe { *(x.add(r) as *const [T; L]) };
    }
    let mut cv = [[T::ZERO; L]; KO];
    for (v, &o) in cv.iter_mut().zip(co) {
        // SAFETY: the caller's.
        *v = unsafe { *(c.add(o) as *const [T; L]) };
    }
    for (a, cv) in acc.iter_mut().zip(&cv) {
        for (ak, xv) in a.iter_mut().zip(&xv) {
            for ((al, &cl), &xl) in ak.iter_mut().zip(cv).zip(xv) {
                *al = madd::<I, T>(cl, xl, *al);
            }
        }
    }
}

/// Adds the block's sums to the partial gradient: `acc[i][k]` to the `L`
/// lanes at `p + i · stride + k · L`. The block comes by value, so that it
/// is read only at constant places and stays in registers in the loop that
/// sums it.
///
/// # Safety
/// Those lanes are writable.
#[inline(always)]
unsafe fn flush<T: Num, const L: usize>(acc: [[[T; L]; KR]; KO], p: *mut T, stride: usize) {
    for (i, a) in acc.iter().enumerate() {
        for (k, ak) in a.iter().enumerate() {
            // SAFETY: the caller's.
            let at = p.wrapping_add(i * stride + k * L) as *mut [T; L];
            // SAFETY: the caller's.
            let mut sum = unsafe { *at };
            for (d, &v) in sum.iter_mut().zip(ak) {
                *d = *d + v;
            }
            // SAFETY: the caller's.
            unsafe { *at = sum };
        }
    }
}
