//! Convolution by im2col and GEMM, and the window search of max pooling.
//!
//! A convolution of one image with one group of filters is one matrix
//! product: the filters `[O, C·K]` times the columns `[C·K, P]`, where each
//! column holds the input values under the window at one output position
//! (zero where the window leaves the padded input or falls between the
//! points of a dilated input). Building the columns is a copy of lines: the
//! innermost loop runs along the last axis of whichever of the output or
//! the window is longer, so that the gradient of a kernel (a convolution
//! whose "window" is the whole output) copies long lines too.

use rayon::prelude::*;

use super::matmul::num_like::Scalar;
use super::matmul::{product, Strided};
use super::{Array, Buffer, Element};

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

fn conv_typed<T: Element + Scalar>(
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
    let mut out: Vec<T> = super::pool::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    let chunk = og * ps;
    let tasks = n * groups;
    let flops = 2 * og * rows * ps;
    let threads = rayon::current_num_threads();
    let parallel = tasks >= threads && threads > 1 && tasks * flops >= PAR_FLOPS;
    // Shifts need enough channels per tap to make each product worthwhile,
    // and a task per thread (they do not split one product).
    if let Some(sh) = Shifted::new(sp).filter(|_| cg >= SHIFT_MIN_CHANNELS) {
        return conv_shifted(&sh, sp, x, w, n, c, o, groups);
    }
    // One task: image `t / groups`, group `t % groups`, into `dst` (`og * ps` elements).
    let run = |t: usize, dst: *mut T, bufs: &mut (Vec<T>, Vec<T>), par: gemm::Parallelism| {
        let (ni, gi) = (t / groups, t % groups);
        let src = &x[(ni * c + gi * cg) * ss..][..cg * ss];
        let filters = &w[gi * og * rows..][..og * rows];
        let col = &mut bufs.0;
        // Every element is written below: resize only when the size changes.
        if col.len() != rows * ps {
            col.clear();
            col.resize(rows * ps, T::default());
        }
        let by_window = sp.window.last() > sp.out.last();
        im2col(src, col, cg, sp, by_window);
        let col = if by_window { Strided::transposed(col.as_ptr(), rows) } else { Strided::rows(col.as_ptr(), ps) };
        // SAFETY: `filters` is [og, rows] row-major, `col` views the rows * ps
        // elements of the columns [rows, ps], `dst` points at og * ps
        // writable elements that alias neither, and is only written.
        unsafe { product(og, ps, rows, Strided::rows(dst, ps), Strided::rows(filters.as_ptr(), rows), col, false, par) }
    };
    if parallel {
        spare.par_chunks_mut(chunk).enumerate().for_each_init(
            || (Vec::new(), Vec::new()),
            |bufs, (t, dst)| run(t, dst.as_mut_ptr().cast(), bufs, gemm::Parallelism::None),
        );
    } else {
        let par = if flops >= PAR_FLOPS { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
        let mut bufs = (Vec::new(), Vec::new());
        for (t, dst) in spare.chunks_mut(chunk).enumerate() {
            run(t, dst.as_mut_ptr().cast(), &mut bufs, par);
        }
    }
    // SAFETY: every chunk of `chunk` elements was written by one gemm.
    unsafe { out.set_len(len) };
    out
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
/// `row * ps + column`, or at `column * rows + row` when `by_window` (then
/// the innermost loop runs along the window's last axis).
pub(super) fn im2col<T: Element>(src: &[T], col: &mut [T], cg: usize, sp: &Spatial, by_window: bool) {
    let nd = sp.input.len();
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
    let geo = sp.geo;
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
                    let dst = &mut col[row * ps + pf * p_last..][..p_last];
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
