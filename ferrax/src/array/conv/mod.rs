//! Convolution by im2col and GEMM, by shifted views, or directly (see
//! `direct`; a kernel gradient with the channels last, `channels_last`), and
//! the window search of max pooling.
//!
//! A convolution of one image with one group of filters is one matrix
//! product: the filters `[O, C·K]` times the columns `[C·K, P]`, where each
//! column holds the input values under the window at one output position
//! (zero where the window leaves the padded input or falls between the
//! points of a dilated input). Building the columns is a copy of lines: the
//! innermost loop runs along the last axis of whichever of the output or
//! the window is longer, so that the gradient of a kernel (a convolution
//! whose "window" is the whole output) copies long lines too. The columns
//! of several small images sit side by side, so that one product covers
//! them (an 8×8 image alone gives a product only 64 columns wide).

use std::ops::Range;

use super::parallel::{self, team};

use super::matmul::num_like::Scalar;
use super::matmul::{product, Strided};
use super::{Array, Buffer, Element};

mod channels_last;
mod direct;
mod filter_vectors;
mod grads;
mod shifted;
mod window;

pub use grads::{conv_input_grad, conv_kernel_grad};
pub use window::window_arg_extreme;

use shifted::{conv_shifted, Shifted};

/// Where a window sits along each spatial axis: the stride between
/// consecutive outputs, the padding before and after (negative: cropping),
/// the dilation of the input (`lhs`: `d - 1` zeros between its points, a
/// transposed convolution's stride) and of the window (`rhs`: atrous).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    /// Step between consecutive output positions, per spatial axis.
    pub strides: Vec<usize>,
    /// Padding `(before, after)` per spatial axis; negative crops.
    pub padding: Vec<(i64, i64)>,
    /// Input dilation per spatial axis (1: none).
    pub lhs_dilation: Vec<usize>,
    /// Window (kernel) dilation per spatial axis (1: none).
    pub rhs_dilation: Vec<usize>,
}

impl ConvGeometry {
    /// Stride 1, no padding, no dilation, over `rank` spatial axes.
    pub fn unit(rank: usize) -> ConvGeometry {
        ConvGeometry {
            strides: vec![1; rank],
            padding: vec![(0, 0); rank],
            lhs_dilation: vec![1; rank],
            rhs_dilation: vec![1; rank],
        }
    }

    /// The number of spatial axes.
    pub fn rank(&self) -> usize {
        self.strides.len()
    }

    /// The output's spatial shape for an input of spatial shape `input` and
    /// a window of shape `window` (0 where the window does not fit once).
    pub fn out_shape(&self, input: &[usize], window: &[usize]) -> Vec<usize> {
        (0..self.rank())
            .map(|i| {
                let dilated = dilate(input[i], self.lhs_dilation[i]) as i64 + self.padding[i].0 + self.padding[i].1;
                let span = dilate(window[i], self.rhs_dilation[i]) as i64;
                if window[i] == 0 || dilated < span {
                    0
                } else {
                    ((dilated - span) / self.strides[i] as i64 + 1) as usize
                }
            })
            .collect()
    }
}

/// The extent of `n` points with `d - 1` zeros between neighbours.
pub fn dilate(n: usize, d: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n - 1) * d + 1
    }
}

/// The spatial sizes of one convolution: input, window, output.
pub(super) struct Spatial<'a> {
    input: &'a [usize],
    window: &'a [usize],
    out: Vec<usize>,
    geo: &'a ConvGeometry,
}

impl Spatial<'_> {
    /// The input index along axis `i` that output position `p` and window
    /// position `k` read, or `None` for padding or a dilation gap.
    #[inline]
    fn source(&self, i: usize, p: usize, k: usize) -> Option<usize> {
        let t = (p * self.geo.strides[i] + k * self.geo.rhs_dilation[i]) as i64 - self.geo.padding[i].0;
        let ld = self.geo.lhs_dilation[i] as i64;
        if t < 0 || t % ld != 0 || t / ld >= self.input[i] as i64 {
            None
        } else {
            Some((t / ld) as usize)
        }
    }
}

/// `x [N, C, S..]` convolved with `w [O, C/groups, K..]` (cross-correlation,
/// as in every deep-learning framework): `[N, O, P..]`. Shapes, dtypes and
/// the group count have been checked by the primitive's shape rule.
pub fn conv(x: &Array, w: &Array, geo: &ConvGeometry, groups: usize) -> Array {
    let (xs, ws) = (x.shape(), w.shape());
    let sp = Spatial { input: &xs[2..], window: &ws[2..], out: geo.out_shape(&xs[2..], &ws[2..]), geo };
    let mut shape = vec![xs[0], ws[0]];
    shape.extend(&sp.out);
    let buf = match (x.buffer(), w.buffer()) {
        (Buffer::F32(a), Buffer::F32(b)) => Buffer::F32(conv_typed(a, b, xs[0], xs[1], ws[0], groups, &sp)),
        (Buffer::F64(a), Buffer::F64(b)) => Buffer::F64(conv_typed(a, b, xs[0], xs[1], ws[0], groups, &sp)),
        _ => unreachable!("conv: the shape rule admits two float arrays of one dtype"),
    };
    Array::new(&shape, buf)
}

/// Below this many flops a product runs on one thread (see matmul.rs).
pub(super) const PAR_FLOPS: usize = 1 << 22;

/// Channels per group from which a unit-stride convolution multiplies
/// shifted views of the padded input instead of building columns: each tap
/// is then a product with an inner dimension of this many channels. With
/// 3 input channels (an image's first layer) the columns win.
pub(super) const SHIFT_MIN_CHANNELS: usize = 8;

/// The grid size a batch of shifted products aims at (see `Shifted::batch`).
pub(super) const GRID_ELEMENTS: usize = 1 << 14;

fn conv_typed<T: Element + Scalar + super::simd::MulAdd>(
    x: &[T],
    w: &[T],
    n: usize,
    c: usize,
    o: usize,
    groups: usize,
    sp: &Spatial,
) -> Vec<T> {
    let (cg, og) = (c / groups, o / groups);
    let ps: usize = sp.out.iter().product();
    let ks: usize = sp.window.iter().product();
    let ss: usize = sp.input.iter().product();
    let rows = cg * ks;
    let len = n * o * ps;
    if len == 0 || rows == 0 {
        return vec![T::default(); len];
    }
    if filter_vectors::applies(sp, std::mem::size_of::<T>(), c, o, groups) {
        return filter_vectors::conv_filter_vectors(sp, x, w, (n, c, o), filter_vectors::Filters::AsGiven);
    }
    if let Some(lay) = direct::Layout::new(sp, std::mem::size_of::<T>()) {
        return direct::conv_direct(&lay, sp, x, w, n, c, o, groups);
    }
    if let Some(sh) = Shifted::new(sp).filter(|_| prefer_shifts(cg, og, rows * ps * std::mem::size_of::<T>())) {
        return conv_shifted(&sh, sp, x, w, n, c, o, groups);
    }
    let threads = parallel::threads();
    let nb = column_batch(n, rows * ps * std::mem::size_of::<T>(), threads);
    let tasks = image_tasks(groups, n, nb);
    let flops = 2 * n * o * rows * ps;
    let parallel = tasks.len() > 1 && threads > 1 && flops >= PAR_FLOPS;
    // One large task splits its product instead.
    let pieces = if !parallel && flops >= PAR_FLOPS { threads } else { 1 };
    let mut out: Vec<T> = super::pool::with_capacity(len);
    let dst = Shared(out.as_mut_ptr());
    // The innermost copy of the columns runs along the longer of the
    // output's and the window's last axes.
    let by_window = sp.window.last() > sp.out.last();
    // One task: the images `imgs` with the filters of group `gi`, as one
    // product of the filters and the images' columns side by side.
    let run = |bufs: &mut (Vec<T>, Vec<T>), (gi, imgs): &(usize, Range<usize>)| {
        let (col, grid) = bufs;
        let cols = imgs.len() * ps;
        // Every element is written below: resize only when the size changes.
        if col.len() != rows * cols {
            col.clear();
            col.resize(rows * cols, T::default());
        }
        for (j, ni) in imgs.clone().enumerate() {
            let src = &x[(ni * c + gi * cg) * ss..][..cg * ss];
            if by_window {
                im2col(src, &mut col[j * ps * rows..][..ps * rows], cg, sp, true, 0);
            } else {
                im2col(src, &mut col[j * ps..], cg, sp, false, cols);
            }
        }
        let filters = Strided::rows(w[gi * og * rows..][..og * rows].as_ptr(), rows);
        let col = if by_window { Strided::transposed(col.as_ptr(), rows) } else { Strided::rows(col.as_ptr(), cols) };
        if imgs.len() == 1 {
            // SAFETY: `filters` is [og, rows] and `col` [rows, ps]; the
            // destination, image `imgs.start`'s channels of group `gi`, is
            // [og, ps] inside `len`, this task's alone and only written.
            unsafe {
                let at = dst.at((imgs.start * o + gi * og) * ps);
                product(og, ps, rows, Strided::rows(at, ps), filters, col, false, pieces)
            }
            return;
        }
        grid.resize(og * cols, T::default());
        // SAFETY: `grid` holds og * cols elements; `filters` is [og, rows];
        // `col` views [rows, cols]; nothing aliases.
        unsafe { product(og, cols, rows, Strided::rows(grid.as_mut_ptr(), cols), filters, col, false, pieces) }
        for (j, ni) in imgs.clone().enumerate() {
            for oi in 0..og {
                // SAFETY: image `ni`, channel `gi * og + oi` of the output is this task's alone, inside `len`.
                unsafe {
                    let at = dst.at((ni * o + gi * og + oi) * ps);
                    std::ptr::copy_nonoverlapping(grid[oi * cols + j * ps..].as_ptr(), at, ps);
                }
            }
        }
    };
    run_tasks(&tasks, parallel, run);
    // SAFETY: the tasks cover every (image, group), and each wrote all its outputs.
    unsafe { out.set_len(len) };
    out
}

/// Whether a unit-stride convolution multiplies shifted views (see
/// [`Shifted`]) rather than columns, for `cg` input and `og` output
/// channels per group and `column_bytes` of columns an image. Columns cost
/// a copy of `K` times the input, which pays when each column element
/// meets enough filters (`og`) and an image's columns are not far larger
/// than the cache. Measured on `conv` forward and both gradients, 3×3
/// kernels: columns won on 64→128 channels at 8×8 (9.4 against 13.1 ms),
/// 32→32 at 32×32, 64→64 at 56×56 and 256→256 at 14×14; shifts won on
/// 8→8 at 32×32 (0.59 against 0.93 ms) and 32→32 at 128×128 (23 against 35
/// ms, 19 MB of columns an image).
pub(super) fn prefer_shifts(cg: usize, og: usize, column_bytes: usize) -> bool {
    cg >= SHIFT_MIN_CHANNELS && (og < COLUMN_MIN_FILTERS || column_bytes > COLUMN_MAX_BYTES)
}

/// Filters per group from which columns beat shifts (see [`prefer_shifts`]).
const COLUMN_MIN_FILTERS: usize = 32;

/// An image's columns above this many bytes favour shifts (see [`prefer_shifts`]).
pub(super) const COLUMN_MAX_BYTES: usize = 8 << 20;

/// The bytes of columns one task builds: enough images side by side for a
/// product with a long row, few enough that the columns stay in the L2
/// cache from being written to being packed by the GEMM.
pub(super) const COLUMN_BYTES: usize = 1 << 19;

/// Images per task for columns of `per_image` bytes an image: about
/// [`COLUMN_BYTES`] of them, and at least one task per thread.
pub(super) fn column_batch(n: usize, per_image: usize, threads: usize) -> usize {
    (COLUMN_BYTES / per_image.max(1)).clamp(1, n.div_ceil(threads.max(1)).max(1))
}

/// The tasks of a convolution: each group with each batch of `nb` images.
pub(super) fn image_tasks(groups: usize, n: usize, nb: usize) -> Vec<(usize, Range<usize>)> {
    (0..groups).flat_map(|gi| (0..n).step_by(nb).map(move |s| (gi, s..(s + nb).min(n)))).collect()
}

/// Runs `run` on every task, with buffers `S` that each thread reuses
/// across its tasks; on the thread team when `parallel`.
pub(super) fn run_tasks<S: Default>(
    tasks: &[(usize, Range<usize>)],
    parallel: bool,
    run: impl Fn(&mut S, &(usize, Range<usize>)) + Sync,
) {
    if parallel {
        team::run_with(tasks.len(), S::default, |bufs, i| run(bufs, &tasks[i]));
    } else {
        let mut bufs = S::default();
        tasks.iter().for_each(|t| run(&mut bufs, t));
    }
}

/// A pointer that tasks writing disjoint parts of one output share.
#[derive(Clone, Copy)]
pub(super) struct Shared<T>(pub(super) *mut T);
// SAFETY: every task writes its own elements (disjoint images and groups).
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The element `i` places past the start (a method, so that closures
    /// capture the whole `Shared` rather than its raw pointer).
    ///
    /// # Safety
    /// `i` is within the allocation.
    pub(super) unsafe fn at(self, i: usize) -> *mut T {
        // SAFETY: the caller's.
        unsafe { self.0.add(i) }
    }
}

/// The multi-index of `flat` in a row-major array of `shape`, into `idx`.
#[inline]
pub(super) fn unravel(mut flat: usize, shape: &[usize], idx: &mut [usize]) {
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
}

/// Fills the columns matrix of one image (`src`: `[cg, S..]`), element
/// `(row = (channel, window position), column = output position)` at
/// `row * ld + column` (`ld ≥ ps`, so that the columns of several images
/// can sit side by side), or at `column * rows + row` when `by_window` (then
/// the innermost loop runs along the window's last axis, and `ld` is unused).
pub(super) fn im2col<T: Element>(src: &[T], col: &mut [T], cg: usize, sp: &Spatial, by_window: bool, ld: usize) {
    let nd = sp.input.len();
    let geo = sp.geo;
    if !by_window && nd == 2 && geo.lhs_dilation == [1, 1] {
        return im2col_2d(src, col, cg, sp, ld);
    }
    let last = nd - 1;
    let ss: usize = sp.input.iter().product();
    let ps: usize = sp.out.iter().product();
    let ks: usize = sp.window.iter().product();
    let rows = cg * ks;
    let line_len = sp.input[last];
    let (mut p, mut k) = (vec![0; nd], vec![0; nd]);
    // The offset in one channel of the line that (p, k) reads along the
    // leading axes, or None when the window is off the input there.
    let lead = |p: &[usize], k: &[usize]| -> Option<usize> {
        let mut off = 0;
        for i in 0..last {
            off = off * sp.input[i] + sp.source(i, p[i], k[i])?;
        }
        Some(off * line_len)
    };
    if !by_window {
        let p_last = sp.out[last];
        let outer = ps / p_last.max(1);
        for ci in 0..cg {
            for kf in 0..ks {
                unravel(kf, sp.window, &mut k);
                let row = ci * ks + kf;
                let start = (k[last] * geo.rhs_dilation[last]) as i64 - geo.padding[last].0;
                for pf in 0..outer {
                    unravel(pf * p_last, &sp.out, &mut p);
                    let dst = &mut col[row * ld + pf * p_last..][..p_last];
                    match lead(&p, &k) {
                        Some(off) => {
                            let line = &src[ci * ss + off..][..line_len];
                            fill_line(dst, line, start, geo.strides[last], geo.lhs_dilation[last]);
                        }
                        None => dst.fill(T::default()),
                    }
                }
            }
        }
    } else {
        let k_last = sp.window[last];
        let outer = ks / k_last.max(1);
        for pf in 0..ps {
            unravel(pf, &sp.out, &mut p);
            let start = (p[last] * geo.strides[last]) as i64 - geo.padding[last].0;
            for ci in 0..cg {
                for kf in 0..outer {
                    unravel(kf * k_last, sp.window, &mut k);
                    let dst = &mut col[pf * rows + ci * ks + kf * k_last..][..k_last];
                    match lead(&p, &k) {
                        Some(off) => {
                            let line = &src[ci * ss + off..][..line_len];
                            fill_line(dst, line, start, geo.rhs_dilation[last], geo.lhs_dilation[last]);
                        }
                        None => dst.fill(T::default()),
                    }
                }
            }
        }
    }
}

/// [`im2col`] of a 2-d image without input dilation. The image is first
/// zero-padded, channel by channel, so that every line of the columns is
/// one copy of `ow` elements with no bounds to find: on small images (8×8
/// and less) the lines are too short for anything per line but the copy.
fn im2col_2d<T: Element>(src: &[T], col: &mut [T], cg: usize, sp: &Spatial, ld: usize) {
    let (h, w) = (sp.input[0], sp.input[1]);
    let (oh, ow) = (sp.out[0], sp.out[1]);
    let (kh, kw) = (sp.window[0], sp.window[1]);
    let g = sp.geo;
    let pad = |i: usize| (g.padding[i].0.max(0) as usize, g.padding[i].1.max(0) as usize);
    let ((pt, pb), (pl, pr)) = (pad(0), pad(1));
    let (hp, wp) = (h + pt + pb, w + pl + pr);
    // Cropping (negative padding) moves the origin into the image.
    let (ct, cl) = ((-g.padding[0].0).max(0) as usize, (-g.padding[1].0).max(0) as usize);
    let mut padded = vec![T::default(); cg * hp * wp];
    for ci in 0..cg {
        for r in 0..h {
            padded[(ci * hp + pt + r) * wp + pl..][..w].copy_from_slice(&src[(ci * h + r) * w..][..w]);
        }
    }
    let (sh, sw) = (g.strides[0], g.strides[1]);
    let (dh, dw) = (g.rhs_dilation[0], g.rhs_dilation[1]);
    for ci in 0..cg {
        let plane = &padded[ci * hp * wp..][..hp * wp];
        for i in 0..kh {
            for j in 0..kw {
                let row = &mut col[(ci * kh * kw + i * kw + j) * ld..][..oh * ow];
                let at = (ct + i * dh) * wp + cl + j * dw;
                let last = at + (oh.max(1) - 1) * sh * wp + (ow.max(1) - 1) * sw;
                assert!(last < plane.len(), "im2col: the window reads inside the padded image");
                // SAFETY: line p reads plane[at + p * sh * wp + q * sw] for
                // q < ow, whose largest index, `last`, is in bounds.
                unsafe { copy_lines(row, plane.as_ptr().add(at), sh * wp, sw, ow) };
            }
        }
    }
}

/// Fills `dst` line by line (`ow` elements each) from lines of `src`
/// `stride` apart, reading every `step`-th element; the common short line
/// lengths are copied with their length known at compile time, as a call
/// to `memcpy` costs more than 8 floats.
///
/// # Safety
/// `src` is readable over every element read.
#[inline]
unsafe fn copy_lines<T: Copy>(dst: &mut [T], src: *const T, stride: usize, step: usize, ow: usize) {
    /// # Safety
    /// As for `copy_lines`, with `ow == L`.
    #[inline(always)]
    unsafe fn fixed<T: Copy, const L: usize>(dst: &mut [T], src: *const T, stride: usize) {
        for (p, line) in dst.chunks_exact_mut(L).enumerate() {
            // SAFETY: the caller's.
            let from = unsafe { std::ptr::read_unaligned(src.add(p * stride).cast::<[T; L]>()) };
            let line: &mut [T; L] = line.try_into().expect("chunks of L");
            *line = from;
        }
    }
    // SAFETY (each arm): the caller's.
    unsafe {
        match (step, ow) {
            (1, 4) => fixed::<T, 4>(dst, src, stride),
            (1, 8) => fixed::<T, 8>(dst, src, stride),
            (1, 16) => fixed::<T, 16>(dst, src, stride),
            (1, _) => {
                for (p, line) in dst.chunks_exact_mut(ow).enumerate() {
                    std::ptr::copy_nonoverlapping(src.add(p * stride), line.as_mut_ptr(), ow);
                }
            }
            _ => {
                for (p, line) in dst.chunks_exact_mut(ow).enumerate() {
                    for (q, d) in line.iter_mut().enumerate() {
                        *d = *src.add(p * stride + q * step);
                    }
                }
            }
        }
    }
}

/// `dst[j] = line'[start + j * step]`, where `line'` is `line` dilated by
/// `ld` (zeros between its points) and zero outside.
#[inline]
fn fill_line<T: Element>(dst: &mut [T], line: &[T], start: i64, step: usize, ld: usize) {
    let (n, step_i) = (line.len() as i64, step as i64);
    if ld != 1 {
        let ld = ld as i64;
        for (j, d) in dst.iter_mut().enumerate() {
            let t = start + j as i64 * step_i;
            *d = if t >= 0 && t % ld == 0 && t / ld < n { line[(t / ld) as usize] } else { T::default() };
        }
        return;
    }
    let len = dst.len() as i64;
    // The j with 0 <= start + j*step < n form one run [lo, hi).
    let lo = if start >= 0 { 0 } else { (-start + step_i - 1) / step_i }.min(len);
    let hi = if start >= n { 0 } else { ((n - 1 - start) / step_i + 1).min(len) }.max(lo);
    let (lo, hi) = (lo as usize, hi as usize);
    dst[..lo].fill(T::default());
    dst[hi..].fill(T::default());
    if hi == lo {
        return; // the whole line is padding (and `first` below would be off the line)
    }
    let first = (start + lo as i64 * step_i) as usize;
    if step == 1 {
        dst[lo..hi].copy_from_slice(&line[first..first + (hi - lo)]);
    } else {
        for (d, s) in dst[lo..hi].iter_mut().zip(line[first..].iter().step_by(step)) {
            *d = *s;
        }
    }
}
