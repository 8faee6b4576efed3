//! Unit-stride convolutions without columns: products of the filters with
//! shifted views of the padded input.

use std::ops::Range;

use super::super::parallel;

use super::super::matmul::num_like::Scalar;
use super::super::matmul::{product, Strided};
use super::super::{pool, strides, Element, Num};
use super::{image_tasks, run_tasks, unravel, Shared, Spatial, GRID_ELEMENTS, PAR_FLOPS};

/// The shift-and-multiply layout of a convolution with unit strides and no
/// input dilation. With a batch of images padded into one buffer, channel
/// by channel (`[cg, images, padded..]`), each tap of the window reads the
/// same grid of positions shifted by one offset, so the convolution is one
/// product per tap (`W[:, :, tap] · X[:, offset..]`) over all the images at
/// once, with no columns built. The grid runs "virtually" over the padded
/// rows' full width and across image boundaries (those extra positions are
/// dropped), which keeps one stride per operand.
pub(super) struct Shifted {
    /// The row-major strides of the padded spatial shape.
    strides: Vec<usize>,
    /// Each tap's offset into a padded image.
    pub(super) taps: Vec<usize>,
    /// Positions of one image's virtual grid: its output rows over the padded width.
    virt: usize,
    /// Elements of one padded image (one channel).
    pub(super) plane: usize,
    /// Zeros after the last image, for the taps that run past it.
    slack: usize,
    /// The offsets of the window's positions over its leading axes (its
    /// last axis is stacked into the products' inner dimension).
    lead: Vec<usize>,
    /// The window's extent and dilation along its last axis.
    last: (usize, usize),
}

impl Shifted {
    /// The layout, or `None` when the geometry needs columns (strides,
    /// input dilation, cropping).
    pub(super) fn new(sp: &Spatial) -> Option<Shifted> {
        let g = sp.geo;
        if g.strides.iter().chain(&g.lhs_dilation).any(|&s| s != 1)
            || g.padding.iter().any(|&(lo, hi)| lo < 0 || hi < 0)
        {
            return None;
        }
        let d = sp.input.len();
        let padded: Vec<usize> =
            (0..d).map(|i| sp.input[i] + g.padding[i].0 as usize + g.padding[i].1 as usize).collect();
        let strides = strides(&padded);
        let plane: usize = padded.iter().product();
        let ks: usize = sp.window.iter().product();
        let mut k = vec![0; d];
        let taps: Vec<usize> = (0..ks)
            .map(|t| {
                unravel(t, sp.window, &mut k);
                (0..d).map(|i| k[i] * g.rhs_dilation[i] * strides[i]).sum()
            })
            .collect();
        let virt = sp.out[0] * strides[0];
        let slack = (taps.iter().max().copied().unwrap_or(0) + virt).saturating_sub(plane);
        let kl = sp.window[d - 1];
        let lead = taps.iter().step_by(kl.max(1)).copied().collect();
        Some(Shifted { strides, taps, virt, plane, slack, lead, last: (kl, g.rhs_dilation[d - 1]) })
    }

    /// The grid's columns for `images` images.
    pub(super) fn columns(&self, images: usize) -> usize {
        (images - 1) * self.plane + self.virt
    }

    /// The length of one stacked row for `images` images: the grid and the
    /// reach of the leading taps.
    fn stacked_len(&self, images: usize) -> usize {
        self.columns(images) + self.lead.iter().max().copied().unwrap_or(0)
    }

    /// `xp` (padded, `[cg, images, padded..]`) stacked along the window's
    /// last axis: row `(c, j)` is channel `c` shifted by tap `j`, so that
    /// one product per leading tap has an inner dimension of `cg · kl`.
    fn stack<T: Element>(&self, xp: &[T], cg: usize, images: usize, dst: &mut Vec<T>) {
        let (kl, rd) = self.last;
        let len = self.stacked_len(images);
        dst.clear();
        dst.reserve(cg * kl * len);
        for c in 0..cg {
            for j in 0..kl {
                dst.extend_from_slice(&xp[c * images * self.plane + j * rd..][..len]);
            }
        }
    }

    /// The filters `w [o, cg, K..]` repacked per leading tap as `[lead, o, cg · kl]`.
    fn pack_filters<T: Element>(&self, w: &[T], o: usize, cg: usize) -> Vec<T> {
        let (kl, ks) = (self.last.0, self.taps.len());
        let mut packed = Vec::with_capacity(w.len());
        for t in 0..self.lead.len() {
            for oi in 0..o {
                for c in 0..cg {
                    packed.extend_from_slice(&w[(oi * cg + c) * ks + t * kl..][..kl]);
                }
            }
        }
        packed
    }

    /// Images per product: as many as keep the grid (or the padded input)
    /// within about 64K elements, so that it stays in the L2 cache across
    /// the taps' products, which each read and write all of it. Larger
    /// batches measured slower (conv3_fb: 14.9 ms one image at a time,
    /// 16.7 ms with a thread's share of the batch at once).
    pub(super) fn batch(&self, n: usize, channels: usize) -> usize {
        let per_image = self.plane * channels.max(1);
        n.div_ceil(parallel::threads()).min(GRID_ELEMENTS / per_image.max(1)).max(1)
    }

    /// The images `imgs` of group `gi` of `x [N, c, S..]` written into `dst`
    /// zero-padded, as `[cg, images, padded..]` and the slack.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn pad<T: Element>(
        &self,
        x: &[T],
        c: usize,
        cg: usize,
        gi: usize,
        imgs: &Range<usize>,
        sp: &Spatial,
        dst: &mut Vec<T>,
    ) {
        let nb = imgs.len();
        dst.clear();
        dst.resize(cg * nb * self.plane + self.slack, T::default());
        let ss: usize = sp.input.iter().product();
        self.input_lines(sp, |from, at, line| {
            for ci in 0..cg {
                for (j, ni) in imgs.clone().enumerate() {
                    let src = &x[(ni * c + gi * cg + ci) * ss + from..][..line];
                    copy_line(&mut dst[(ci * nb + j) * self.plane + at..][..line], src);
                }
            }
        });
    }

    /// Calls `f(input offset, padded offset, length)` for each line of one
    /// input image: where it starts in the image and in the padded image.
    pub(super) fn input_lines(&self, sp: &Spatial, mut f: impl FnMut(usize, usize, usize)) {
        let d = sp.input.len();
        let line = sp.input[d - 1];
        let lines = sp.input.iter().product::<usize>() / line.max(1);
        let mut idx = vec![0; d];
        for l in 0..lines {
            unravel(l * line, sp.input, &mut idx);
            let at: usize = (0..d).map(|i| (idx[i] + sp.geo.padding[i].0 as usize) * self.strides[i]).sum();
            f(l * line, at, line);
        }
    }

    /// Calls `f(virtual offset, output offset, length)` for each output line of one image.
    pub(super) fn lines(&self, sp: &Spatial, mut f: impl FnMut(usize, usize, usize)) {
        let d = sp.out.len();
        let line = sp.out[d - 1];
        let lines: usize = sp.out[..d - 1].iter().product();
        let strides = &self.strides;
        let mut idx = vec![0; d];
        for l in 0..lines {
            unravel(l * line, &sp.out, &mut idx);
            let at: usize = (0..d).map(|i| idx[i] * strides[i]).sum();
            f(at, l * line, line);
        }
    }
}

/// [`conv`](super::conv) by shifts (see [`Shifted`]): tasks of (group, batch of images).
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_shifted<T: Element + Scalar>(
    sh: &Shifted,
    sp: &Spatial,
    x: &[T],
    w: &[T],
    n: usize,
    c: usize,
    o: usize,
    groups: usize,
) -> Vec<T> {
    let (cg, og) = (c / groups, o / groups);
    let ks = sh.taps.len();
    let ps: usize = sp.out.iter().product();
    let len = n * o * ps;
    let nb = sh.batch(n, cg.max(og));
    let tasks = image_tasks(groups, n, nb);
    let mut out: Vec<T> = pool::with_capacity(len);
    let dst = Shared(out.as_mut_ptr());
    let flops = 2 * n * o * cg * ks * sh.plane;
    // One large task splits its products instead.
    let pieces = if tasks.len() == 1 && flops >= PAR_FLOPS { parallel::threads() } else { 1 };
    let kk = cg * sh.last.0;
    let packed: Vec<Vec<T>> =
        (0..groups).map(|gi| sh.pack_filters(&w[gi * og * cg * ks..][..og * cg * ks], og, cg)).collect();
    let run = |bufs: &mut (Vec<T>, Vec<T>, Vec<T>), (gi, imgs): &(usize, Range<usize>)| {
        let (xp, stacked, grid) = bufs;
        sh.pad(x, c, cg, *gi, imgs, sp, xp);
        sh.stack(xp, cg, imgs.len(), stacked);
        let (cols, row) = (sh.columns(imgs.len()), sh.stacked_len(imgs.len()));
        grid.resize(og * cols, T::default());
        for (t, &off) in sh.lead.iter().enumerate() {
            let filters = &packed[*gi][t * og * kk..][..og * kk];
            let (dst, input) =
                (Strided::rows(grid.as_mut_ptr(), cols), Strided::rows(stacked.as_ptr().wrapping_add(off), row));
            // SAFETY: `grid` holds og * cols elements; `filters` is [og, kk]
            // row-major; the stacked view [kk, cols] at `off` with strides
            // (1, row) ends within `stacked` (row = cols + the largest
            // offset); nothing aliases; the first tap writes `grid`, the
            // others add to it.
            unsafe { product(og, cols, kk, dst, Strided::rows(filters.as_ptr(), kk), input, t > 0, pieces) }
        }
        for (j, ni) in imgs.clone().enumerate() {
            sh.lines(sp, |from, to, line| {
                for oi in 0..og {
                    let src = &grid[oi * cols + j * sh.plane + from..][..line];
                    // SAFETY: image `ni`, channel `gi * og + oi` of the output is this task's alone, inside `len`.
                    unsafe {
                        let at = dst.at((ni * o + gi * og + oi) * ps + to);
                        std::ptr::copy_nonoverlapping(src.as_ptr(), at, line);
                    }
                }
            });
        }
    };
    run_tasks(&tasks, tasks.len() > 1 && flops >= PAR_FLOPS, run);
    // SAFETY: the tasks cover every (image, group), and each wrote all its outputs.
    unsafe { out.set_len(len) };
    out
}

/// Adds to `acc [o, cg, K..]` the kernel gradient of the images `imgs` by
/// shifts: per group, the cotangent spread onto the virtual grid (zeros at
/// its extra positions) times each tap's view of the padded input.
#[allow(clippy::too_many_arguments)]
pub(super) fn kernel_grad_shifted<T: Num + Scalar>(
    sh: &Shifted,
    sp: &Spatial,
    x: &[T],
    ct: &[T],
    imgs: Range<usize>,
    (c, o, groups): (usize, usize, usize),
    acc: &mut [T],
) {
    let (cg, og) = (c / groups, o / groups);
    let ks = sh.taps.len();
    let ps: usize = sp.out.iter().product();
    let nb = sh.batch(imgs.len(), cg.max(og));
    let kk = cg * sh.last.0;
    let (mut xp, mut stacked, mut grid) = (Vec::new(), Vec::new(), Vec::new());
    for gi in 0..groups {
        // The group's gradient per leading tap, [lead, kk, og] (each tap's
        // [og, kk] column-major, which the GEMM crate fills several times
        // faster from the stacked input's transpose), unpacked at the end.
        let mut packed = vec![T::default(); sh.lead.len() * og * kk];
        for s in imgs.clone().step_by(nb) {
            let part = s..(s + nb).min(imgs.end);
            sh.pad(x, c, cg, gi, &part, sp, &mut xp);
            sh.stack(&xp, cg, part.len(), &mut stacked);
            let (cols, row) = (sh.columns(part.len()), sh.stacked_len(part.len()));
            grid.clear();
            grid.resize(og * cols, T::default());
            for (j, ni) in part.clone().enumerate() {
                sh.lines(sp, |from, to, line| {
                    for oi in 0..og {
                        grid[oi * cols + j * sh.plane + from..][..line]
                            .copy_from_slice(&ct[(ni * o + gi * og + oi) * ps + to..][..line]);
                    }
                });
            }
            for (t, &off) in sh.lead.iter().enumerate() {
                let dst = &mut packed[t * og * kk..][..og * kk];
                let input = Strided::transposed(stacked.as_ptr().wrapping_add(off), row);
                // SAFETY: `dst` is [og, kk] column-major; `grid` is [og, cols]
                // row-major; the stacked view [cols, kk] at `off` (strides
                // (row, 1)) ends within `stacked`; nothing aliases.
                unsafe {
                    let dst = Strided::transposed(dst.as_mut_ptr(), og);
                    product(og, kk, cols, dst, Strided::rows(grid.as_ptr(), cols), input, true, 1)
                }
            }
        }
        let kl = sh.last.0;
        let acc_g = &mut acc[gi * og * cg * ks..][..og * cg * ks];
        for t in 0..sh.lead.len() {
            for oi in 0..og {
                for ci in 0..cg {
                    for (q, a) in acc_g[(oi * cg + ci) * ks + t * kl..][..kl].iter_mut().enumerate() {
                        *a = *a + packed[(t * kk + ci * kl + q) * og + oi];
                    }
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` inlined: an image's lines are a few vectors
/// long, and the call to `memmove` that `copy_from_slice` makes cost as
/// much as the copy (the padding of the 64-channel input gradient at 16×16
/// spent 9% of its time in `memmove`).
#[inline(always)]
pub(super) fn copy_line<T: Copy>(dst: &mut [T], src: &[T]) {
    let (mut d, mut s) = (dst.chunks_exact_mut(16), src.chunks_exact(16));
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(s);
    }
    let rest = d.into_remainder();
    if !rest.is_empty() {
        rest.copy_from_slice(s.remainder());
    }
}
