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

use std::ops::Range;

use rayon::prelude::*;

use super::matmul::num_like::Scalar;
use super::{Array, Buffer, Element, ReduceOp};

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
struct Spatial<'a> {
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
const PAR_FLOPS: usize = 1 << 22;

/// Channels per group from which a unit-stride convolution multiplies
/// shifted views of the padded input instead of building columns: each tap
/// is then a product with an inner dimension of this many channels. With
/// 3 input channels (an image's first layer) the columns win.
const SHIFT_MIN_CHANNELS: usize = 8;

/// The grid size a batch of shifted products aims at (see `Shifted::batch`).
const GRID_ELEMENTS: usize = 1 << 14;

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
        // (column stride, row stride) of the columns matrix [rows, ps].
        let (col_cs, col_rs) = if by_window { (rows as isize, 1) } else { (1, ps as isize) };
        // SAFETY: `filters` is [og, rows] row-major, `col` is [rows, ps] with
        // the strides above and holds rows * ps elements, `dst` points at
        // og * ps writable elements that alias neither; with `read_dst`
        // false gemm only writes `dst`.
        unsafe {
            gemm::gemm(
                og,
                ps,
                rows,
                dst,
                1,
                ps as isize,
                false,
                filters.as_ptr(),
                1,
                rows as isize,
                col.as_ptr(),
                col_cs,
                col_rs,
                T::ZERO,
                T::ONE,
                false,
                false,
                false,
                par,
            );
        }
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
fn unravel(mut flat: usize, shape: &[usize], idx: &mut [usize]) {
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
}

/// Fills the columns matrix of one image (`src`: `[cg, S..]`), element
/// `(row = (channel, window position), column = output position)` at
/// `row * ps + column`, or at `column * rows + row` when `by_window` (then
/// the innermost loop runs along the window's last axis).
fn im2col<T: Element>(src: &[T], col: &mut [T], cg: usize, sp: &Spatial, by_window: bool) {
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

/// The flat index (into `x`) of the first largest (`Max`) or smallest
/// (`Min`) element of each window, NaN counting as the extreme as in
/// `reduce_max`. `window`, `strides` and `padding` have one entry per axis
/// of `x`; the shape rule has checked that every window holds an element.
pub fn window_arg_extreme(
    x: &Array,
    op: ReduceOp,
    window: &[usize],
    strides: &[usize],
    padding: &[(usize, usize)],
) -> Array {
    let shape = x.shape();
    let out: Vec<usize> = (0..shape.len())
        .map(|i| match (shape[i] + padding[i].0 + padding[i].1).checked_sub(window[i]) {
            Some(room) => room / strides[i] + 1,
            None => 0, // only for an empty input (the shape rule)
        })
        .collect();
    let idx = match x.buffer() {
        Buffer::F32(v) => arg_extreme_typed(v, shape, &out, op, window, strides, padding),
        Buffer::F64(v) => arg_extreme_typed(v, shape, &out, op, window, strides, padding),
        _ => unreachable!("window_argmax: the shape rule admits floats only"),
    };
    Array::new(&out, Buffer::I64(idx))
}

fn arg_extreme_typed<T: super::Num>(
    x: &[T],
    shape: &[usize],
    out: &[usize],
    op: ReduceOp,
    window: &[usize],
    strides: &[usize],
    padding: &[(usize, usize)],
) -> Vec<i64> {
    let r = shape.len();
    // Leading axes the window does not touch are planes searched independently.
    let planes_rank = (0..r).take_while(|&i| window[i] == 1 && strides[i] == 1 && padding[i] == (0, 0)).count();
    let planes: usize = shape[..planes_rank].iter().product();
    let (in_plane, out_plane): (usize, usize) =
        (shape[planes_rank..].iter().product(), out[planes_rank..].iter().product());
    let (ishape, oshape, win) = (&shape[planes_rank..], &out[planes_rank..], &window[planes_rank..]);
    let wn: usize = win.iter().product();
    let better = |v: T, best: T| match op {
        ReduceOp::Min => v < best || (v.is_nan_like() && !best.is_nan_like()),
        _ => v > best || (v.is_nan_like() && !best.is_nan_like()),
    };
    let nd = oshape.len();
    let istrides = super::strides(ishape);
    // The window's taps as offsets from its origin in a plane, for windows
    // wholly inside the input (nearly all of them).
    let mut k = vec![0; nd];
    let taps: Vec<usize> = (0..wn)
        .map(|kf| {
            unravel(kf, win, &mut k);
            (0..nd).map(|i| k[i] * istrides[i]).sum()
        })
        .collect();
    // `scratch`: a row's running extremes and their positions, reused across planes.
    let search = |plane: usize, dst: &mut [i64], scratch: &mut (Vec<T>, Vec<usize>)| {
        let base = plane * in_plane;
        let src = &x[base..][..in_plane];
        if nd == 2 {
            let geometry =
                [strides[planes_rank], strides[planes_rank + 1], padding[planes_rank].0, padding[planes_rank + 1].0];
            return match op {
                ReduceOp::Min => search_2d::<T, false>(src, base, ishape, oshape, win, geometry, &taps, dst, scratch),
                _ => search_2d::<T, true>(src, base, ishape, oshape, win, geometry, &taps, dst, scratch),
            };
        }
        let (mut o, mut k) = (vec![0; nd], vec![0; nd]);
        for (q, d) in dst.iter_mut().enumerate() {
            // The output's position, advanced as an odometer.
            if q > 0 {
                let mut i = nd;
                while i > 0 {
                    i -= 1;
                    o[i] += 1;
                    if o[i] < oshape[i] {
                        break;
                    }
                    o[i] = 0;
                }
            }
            let mut origin = 0i64;
            let mut interior = true;
            for i in 0..nd {
                let a = planes_rank + i;
                let t = (o[i] * strides[a]) as i64 - padding[a].0 as i64;
                interior &= t >= 0 && t as usize + win[i] <= ishape[i];
                origin += t * istrides[i] as i64;
            }
            let best = if interior {
                let at = origin as usize;
                let mut best = (src[at + taps[0]], at + taps[0]);
                for &tap in &taps[1..] {
                    let v = src[at + tap];
                    if better(v, best.0) {
                        best = (v, at + tap);
                    }
                }
                best
            } else {
                let mut best: Option<(T, usize)> = None;
                for kf in 0..wn {
                    unravel(kf, win, &mut k);
                    let mut flat = 0;
                    let mut inside = true;
                    for i in 0..nd {
                        let a = planes_rank + i;
                        let t = (o[i] * strides[a] + k[i]) as i64 - padding[a].0 as i64;
                        if t < 0 || t >= ishape[i] as i64 {
                            inside = false;
                            break;
                        }
                        flat = flat * ishape[i] + t as usize;
                    }
                    if inside {
                        let v = src[flat];
                        if best.is_none_or(|(b, _)| better(v, b)) {
                            best = Some((v, flat));
                        }
                    }
                }
                best.expect("checked by the shape rule: every window holds an element")
            };
            *d = (base + best.1) as i64;
        }
    };
    let mut idx = vec![0i64; planes * out_plane];
    if out_plane == 0 {
        return idx;
    }
    let work = idx.len() * wn;
    if super::parallel::worth_splitting(work, super::parallel::CHEAP * 4) && planes > 1 {
        idx.par_chunks_mut(out_plane)
            .enumerate()
            .for_each_init(|| (Vec::new(), Vec::new()), |scratch, (p, d)| search(p, d, scratch));
    } else {
        let mut scratch = (Vec::new(), Vec::new());
        for (p, d) in idx.chunks_mut(out_plane).enumerate() {
            search(p, d, &mut scratch);
        }
    }
    idx
}

/// [`window_arg_extreme`] of one plane of a 2-d pooling, the loops
/// specialised: rows and columns whose windows lie inside the input read
/// `taps` from the window's origin; the others check each tap.
/// `geometry` is (row stride, column stride, padding before rows, before columns).
#[allow(clippy::too_many_arguments)]
fn search_2d<T: super::Num, const MAX: bool>(
    src: &[T],
    base: usize,
    ishape: &[usize],
    oshape: &[usize],
    win: &[usize],
    [sh, sw, ph, pw]: [usize; 4],
    taps: &[usize],
    dst: &mut [i64],
    (best, arg): &mut (Vec<T>, Vec<usize>),
) {
    let better = |v: T, best: T| if MAX { v > best } else { v < best } || (v.is_nan_like() && !best.is_nan_like());
    let (h, w) = (ishape[0], ishape[1]);
    let ow_n = oshape[1];
    // The columns whose windows lie inside the input: [c0, c1).
    let c0 = pw.div_ceil(sw).min(ow_n);
    let c1 = if w + pw >= win[1] { ((w + pw - win[1]) / sw + 1).min(ow_n) } else { 0 }.max(c0);
    best.resize(c1 - c0, T::default());
    arg.resize(c1 - c0, 0);
    for oh in 0..oshape[0] {
        let row = (oh * sh) as i64 - ph as i64;
        let out = &mut dst[oh * ow_n..][..ow_n];
        let border = |ow: usize| -> i64 {
            let col = (ow * sw) as i64 - pw as i64;
            let mut b: Option<(T, usize)> = None;
            for i in 0..win[0] {
                for j in 0..win[1] {
                    let (r, c) = (row + i as i64, col + j as i64);
                    if r >= 0 && (r as usize) < h && c >= 0 && (c as usize) < w {
                        let at = r as usize * w + c as usize;
                        if b.is_none_or(|(v, _)| better(src[at], v)) {
                            b = Some((src[at], at));
                        }
                    }
                }
            }
            (base + b.expect("checked by the shape rule: every window holds an element").1) as i64
        };
        if !(row >= 0 && row as usize + win[0] <= h) {
            for (ow, d) in out.iter_mut().enumerate() {
                *d = border(ow);
            }
            continue;
        }
        // Inside: tap by tap over the row's windows, with selects rather
        // than branches (random data would mispredict every other one).
        let origin = |ow: usize| row as usize * w + ow * sw - pw;
        for (i, ow) in (c0..c1).enumerate() {
            arg[i] = origin(ow) + taps[0];
            best[i] = src[arg[i]];
        }
        for &tap in &taps[1..] {
            for (i, ow) in (c0..c1).enumerate() {
                let at = origin(ow) + tap;
                let (v, b) = (src[at], best[i]);
                // `|` and `&`, not `||` and `&&`: no branch to mispredict.
                let take = (if MAX { v > b } else { v < b }) | (v.is_nan_like() & !b.is_nan_like());
                // A mask rather than `if`, which compiles to a branch here.
                let mask = (take as usize).wrapping_neg();
                arg[i] = (at & mask) | (arg[i] & !mask);
                best[i] = src[arg[i]];
            }
        }
        for ow in (0..c0).chain(c1..ow_n) {
            out[ow] = border(ow);
        }
        for (d, &a) in out[c0..c1].iter_mut().zip(arg.iter()) {
            *d = (base + a) as i64;
        }
    }
}

/// The gradient of a convolution's kernel: `[O, C / groups, K..]` from the
/// input `x [N, C, S..]` and the output's cotangent `ct [N, O, P..]`, as
/// `Σₙ ct[n] · columns(x[n])ᵀ` group by group — products whose inner
/// dimension is the output's size, over the columns the forward pass
/// builds. Images are split across threads, each summing into its own
/// kernel-sized accumulator.
pub fn conv_kernel_grad(x: &Array, ct: &Array, window: &[usize], geo: &ConvGeometry, groups: usize) -> Array {
    let (xs, cs) = (x.shape(), ct.shape());
    let sp = Spatial { input: &xs[2..], window, out: cs[2..].to_vec(), geo };
    let mut shape = vec![cs[1], xs[1] / groups];
    shape.extend(window);
    let buf = match (x.buffer(), ct.buffer()) {
        (Buffer::F32(a), Buffer::F32(b)) => Buffer::F32(kernel_grad_typed(a, b, xs[0], xs[1], cs[1], groups, &sp)),
        (Buffer::F64(a), Buffer::F64(b)) => Buffer::F64(kernel_grad_typed(a, b, xs[0], xs[1], cs[1], groups, &sp)),
        _ => unreachable!("conv_kernel_grad: the shape rule admits two float arrays of one dtype"),
    };
    Array::new(&shape, buf)
}

fn kernel_grad_typed<T: super::Num + Scalar>(
    x: &[T],
    ct: &[T],
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
    let len = o * rows;
    if len == 0 || n == 0 || ps == 0 {
        return vec![T::default(); len];
    }
    let shifted = Shifted::new(sp).filter(|_| cg >= SHIFT_MIN_CHANNELS);
    // Σ over the images `range` into `acc` [o, rows].
    let sum_images = |range: std::ops::Range<usize>, acc: &mut [T]| {
        if let Some(sh) = &shifted {
            return kernel_grad_shifted(sh, sp, x, ct, range, (c, o, groups), acc);
        }
        let mut col = vec![T::default(); rows * ps];
        for ni in range {
            for gi in 0..groups {
                im2col(&x[(ni * c + gi * cg) * ss..][..cg * ss], &mut col, cg, sp, false);
                let lhs = &ct[(ni * o + gi * og) * ps..][..og * ps];
                let dst = &mut acc[gi * og * rows..][..og * rows];
                // SAFETY: dst is [og, rows] row-major, lhs [og, ps] row-major,
                // and col [rows, ps] row-major read as its transpose [ps, rows];
                // the three do not overlap.
                unsafe {
                    gemm::gemm(
                        og,
                        rows,
                        ps,
                        dst.as_mut_ptr(),
                        1,
                        rows as isize,
                        true,
                        lhs.as_ptr(),
                        1,
                        ps as isize,
                        col.as_ptr(),
                        ps as isize,
                        1,
                        <T as Scalar>::ONE,
                        <T as Scalar>::ONE,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        }
    };
    let threads = rayon::current_num_threads().min(n);
    let flops = 2 * n * o * rows * ps;
    if threads <= 1 || flops < PAR_FLOPS {
        let mut acc = vec![T::default(); len];
        sum_images(0..n, &mut acc);
        return acc;
    }
    let per = n.div_ceil(threads);
    let partials: Vec<Vec<T>> = (0..threads)
        .into_par_iter()
        .map(|t| {
            let mut acc = vec![T::default(); len];
            sum_images(t * per..((t + 1) * per).min(n), &mut acc);
            acc
        })
        .collect();
    let mut total = partials[0].clone();
    for p in &partials[1..] {
        for (a, b) in total.iter_mut().zip(p) {
            *a = *a + *b;
        }
    }
    total
}

/// The shift-and-multiply layout of a convolution with unit strides and no
/// input dilation. With a batch of images padded into one buffer, channel
/// by channel (`[cg, images, padded..]`), each tap of the window reads the
/// same grid of positions shifted by one offset, so the convolution is one
/// product per tap (`W[:, :, tap] · X[:, offset..]`) over all the images at
/// once, with no columns built. The grid runs "virtually" over the padded
/// rows' full width and across image boundaries (those extra positions are
/// dropped), which keeps one stride per operand.
struct Shifted {
    /// The padded spatial shape.
    padded: Vec<usize>,
    /// Each tap's offset into a padded image.
    taps: Vec<usize>,
    /// Positions of one image's virtual grid: its output rows over the padded width.
    virt: usize,
    /// Elements of one padded image (one channel).
    plane: usize,
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
    fn new(sp: &Spatial) -> Option<Shifted> {
        let g = sp.geo;
        if g.strides.iter().chain(&g.lhs_dilation).any(|&s| s != 1)
            || g.padding.iter().any(|&(lo, hi)| lo < 0 || hi < 0)
        {
            return None;
        }
        let d = sp.input.len();
        let padded: Vec<usize> =
            (0..d).map(|i| sp.input[i] + g.padding[i].0 as usize + g.padding[i].1 as usize).collect();
        let strides = super::strides(&padded);
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
        Some(Shifted { padded, taps, virt, plane, slack, lead, last: (kl, g.rhs_dilation[d - 1]) })
    }

    /// The grid's columns for `images` images.
    fn columns(&self, images: usize) -> usize {
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
    fn batch(&self, n: usize, channels: usize) -> usize {
        let per_image = self.plane * channels.max(1);
        n.div_ceil(rayon::current_num_threads()).min(GRID_ELEMENTS / per_image.max(1)).max(1)
    }

    /// The images `imgs` of group `gi` of `x [N, c, S..]` written into `dst`
    /// zero-padded, as `[cg, images, padded..]` and the slack.
    #[allow(clippy::too_many_arguments)]
    fn pad<T: Element>(
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
        let d = sp.input.len();
        let (ss, line) = (sp.input.iter().product::<usize>(), sp.input[d - 1]);
        let lines = ss / line.max(1);
        let strides = super::strides(&self.padded);
        let mut idx = vec![0; d];
        for l in 0..lines {
            unravel(l * line, sp.input, &mut idx);
            let at: usize = (0..d).map(|i| (idx[i] + sp.geo.padding[i].0 as usize) * strides[i]).sum();
            for ci in 0..cg {
                for (j, ni) in imgs.clone().enumerate() {
                    let src = &x[((ni * c + gi * cg + ci) * lines + l) * line..][..line];
                    dst[(ci * nb + j) * self.plane + at..][..line].copy_from_slice(src);
                }
            }
        }
    }

    /// Calls `f(virtual offset, output offset, length)` for each output line of one image.
    fn lines(&self, sp: &Spatial, mut f: impl FnMut(usize, usize, usize)) {
        let d = sp.out.len();
        let line = sp.out[d - 1];
        let lines: usize = sp.out[..d - 1].iter().product();
        let strides = super::strides(&self.padded);
        let mut idx = vec![0; d];
        for l in 0..lines {
            unravel(l * line, &sp.out, &mut idx);
            let at: usize = (0..d).map(|i| idx[i] * strides[i]).sum();
            f(at, l * line, line);
        }
    }
}

/// A pointer that tasks writing disjoint parts of one output share.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: every task writes its own elements (disjoint images and groups).
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The element `i` places past the start (a method, so that closures
    /// capture the whole `Shared` rather than its raw pointer).
    ///
    /// # Safety
    /// `i` is within the allocation.
    unsafe fn at(self, i: usize) -> *mut T {
        // SAFETY: the caller's.
        unsafe { self.0.add(i) }
    }
}

/// [`conv`] by shifts (see [`Shifted`]): tasks of (group, batch of images).
#[allow(clippy::too_many_arguments)]
fn conv_shifted<T: Element + Scalar>(
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
    let tasks: Vec<(usize, Range<usize>)> =
        (0..groups).flat_map(|gi| (0..n).step_by(nb).map(move |s| (gi, s..(s + nb).min(n)))).collect();
    let mut out: Vec<T> = super::pool::with_capacity(len);
    let dst = Shared(out.as_mut_ptr());
    let flops = 2 * n * o * cg * ks * sh.plane;
    let par =
        if tasks.len() == 1 && flops >= PAR_FLOPS { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
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
            // SAFETY: `grid` holds og * cols elements; `filters` is [og, kk]
            // row-major; the stacked view [kk, cols] at `off` with strides
            // (1, row) ends within `stacked` (row = cols + the largest
            // offset); nothing aliases.
            unsafe {
                gemm::gemm(
                    og,
                    cols,
                    kk,
                    grid.as_mut_ptr(),
                    1,
                    cols as isize,
                    t > 0,
                    filters.as_ptr(),
                    1,
                    kk as isize,
                    stacked.as_ptr().add(off),
                    1,
                    row as isize,
                    <T as Scalar>::ONE,
                    <T as Scalar>::ONE,
                    false,
                    false,
                    false,
                    par,
                );
            }
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
    if tasks.len() > 1 && flops >= PAR_FLOPS {
        tasks.par_iter().for_each_init(|| (Vec::new(), Vec::new(), Vec::new()), run);
    } else {
        let mut bufs = (Vec::new(), Vec::new(), Vec::new());
        tasks.iter().for_each(|t| run(&mut bufs, t));
    }
    // SAFETY: the tasks cover every (image, group), and each wrote all its outputs.
    unsafe { out.set_len(len) };
    out
}

/// Adds to `acc [o, cg, K..]` the kernel gradient of the images `imgs` by
/// shifts: per group, the cotangent spread onto the virtual grid (zeros at
/// its extra positions) times each tap's view of the padded input.
#[allow(clippy::too_many_arguments)]
fn kernel_grad_shifted<T: super::Num + Scalar>(
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
        // The group's gradient per leading tap, [lead, og, kk], unpacked at the end.
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
                // SAFETY: `dst` is [og, kk] row-major; `grid` is [og, cols]
                // row-major; the stacked view [cols, kk] at `off` (strides
                // (row, 1)) ends within `stacked`; nothing aliases.
                unsafe {
                    gemm::gemm(
                        og,
                        kk,
                        cols,
                        dst.as_mut_ptr(),
                        1,
                        kk as isize,
                        true,
                        grid.as_ptr(),
                        1,
                        cols as isize,
                        stacked.as_ptr().add(off),
                        row as isize,
                        1,
                        <T as Scalar>::ONE,
                        <T as Scalar>::ONE,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        }
        let kl = sh.last.0;
        let acc_g = &mut acc[gi * og * cg * ks..][..og * cg * ks];
        for t in 0..sh.lead.len() {
            for oi in 0..og {
                for ci in 0..cg {
                    let from = &packed[(t * og + oi) * kk + ci * kl..][..kl];
                    for (a, &v) in acc_g[(oi * cg + ci) * ks + t * kl..][..kl].iter_mut().zip(from) {
                        *a = *a + v;
                    }
                }
            }
        }
    }
}

/// The gradient of a convolution's input: `[N, C, input..]` from the
/// output's cotangent `ct [N, O, P..]` and the kernel `w [O, C / groups,
/// K..]` — a transposed convolution. With unit strides and no input
/// dilation it is the convolution of `ct` with the flipped kernel (and the
/// fast paths of [`conv`]); otherwise, per image and group, the columns
/// `wᵀ · ct` are added back onto the input positions they came from
/// (col2im), which does no arithmetic on the zeros a dilated `ct` would hold.
pub fn conv_input_grad(ct: &Array, w: &Array, geo: &ConvGeometry, groups: usize, input: &[usize]) -> Array {
    let (cs, ws) = (ct.shape(), w.shape());
    let d = geo.rank();
    let (n, o, cg, k) = (cs[0], cs[1], ws[1], &ws[2..]);
    if geo.strides.iter().chain(&geo.lhs_dilation).all(|&s| s == 1) {
        // ct ⋆ flip(w) with its channels swapped within each group, padded to give `input`.
        let og = o / groups;
        let mut grouped = vec![groups, og, cg];
        grouped.extend(k);
        let mut perm: Vec<usize> = (0..grouped.len()).collect();
        perm.swap(1, 2);
        let swapped = super::permute(&w.reshape(&grouped), &perm);
        let mut shape = vec![groups * cg, og];
        shape.extend(k);
        let flipped = super::rev(&swapped.reshape(&shape), &(2..2 + d).collect::<Vec<_>>());
        let padding = (0..d)
            .map(|i| {
                let span = dilate(k[i], geo.rhs_dilation[i]) as i64;
                let lo = span - 1 - geo.padding[i].0;
                (lo, input[i] as i64 + span - 1 - cs[2 + i] as i64 - lo)
            })
            .collect();
        let t = ConvGeometry { padding, ..geo.clone() };
        return conv(ct, &flipped, &t, groups);
    }
    let sp = Spatial { input, window: k, out: cs[2..].to_vec(), geo };
    let mut shape = vec![n, cg * groups];
    shape.extend(input);
    let buf = match (ct.buffer(), w.buffer()) {
        (Buffer::F32(a), Buffer::F32(b)) => Buffer::F32(input_grad_typed(a, b, n, o, cg, groups, &sp)),
        (Buffer::F64(a), Buffer::F64(b)) => Buffer::F64(input_grad_typed(a, b, n, o, cg, groups, &sp)),
        _ => unreachable!("conv_input_grad: the shape rule admits two float arrays of one dtype"),
    };
    Array::new(&shape, buf)
}

fn input_grad_typed<T: super::Num + Scalar>(
    ct: &[T],
    w: &[T],
    n: usize,
    o: usize,
    cg: usize,
    groups: usize,
    sp: &Spatial,
) -> Vec<T> {
    let og = o / groups;
    let ps: usize = sp.out.iter().product();
    let ks: usize = sp.window.iter().product();
    let ss: usize = sp.input.iter().product();
    let rows = cg * ks;
    let mut out = super::pool::filled(n * groups * cg * ss, T::default());
    if out.is_empty() || ps == 0 || og == 0 {
        return out;
    }
    // One task: image `t / groups`, group `t % groups`, into `dst` [cg, S..].
    let run = |t: usize, dst: &mut [T], col: &mut Vec<T>| {
        let (ni, gi) = (t / groups, t % groups);
        col.resize(rows * ps, T::default());
        let filters = &w[gi * og * rows..][..og * rows];
        let cot = &ct[(ni * o + gi * og) * ps..][..og * ps];
        // SAFETY: `col` is [rows, ps] row-major; `filters` [og, rows] read
        // as its transpose [rows, og]; `cot` is [og, ps]; nothing aliases.
        unsafe {
            gemm::gemm(
                rows,
                ps,
                og,
                col.as_mut_ptr(),
                1,
                ps as isize,
                false,
                filters.as_ptr(),
                rows as isize,
                1,
                cot.as_ptr(),
                1,
                ps as isize,
                <T as Scalar>::ZERO,
                <T as Scalar>::ONE,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        col2im(col, dst, cg, sp);
    };
    let flops = 2 * n * o * rows * ps;
    if n * groups > 1 && flops >= PAR_FLOPS && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(cg * ss).enumerate().for_each_init(Vec::new, |col, (t, dst)| run(t, dst, col));
    } else {
        let mut col = Vec::new();
        for (t, dst) in out.chunks_mut(cg * ss).enumerate() {
            run(t, dst, &mut col);
        }
    }
    out
}

/// The reverse of [`im2col`] (its row-major layout): each column element
/// added onto the input position it was read from.
fn col2im<T: super::Num>(col: &[T], dst: &mut [T], cg: usize, sp: &Spatial) {
    let nd = sp.input.len();
    let last = nd - 1;
    let ss: usize = sp.input.iter().product();
    let ps: usize = sp.out.iter().product();
    let ks: usize = sp.window.iter().product();
    let line_len = sp.input[last];
    let p_last = sp.out[last];
    let outer = ps / p_last.max(1);
    let geo = sp.geo;
    let (mut p, mut k) = (vec![0; nd], vec![0; nd]);
    for ci in 0..cg {
        for kf in 0..ks {
            unravel(kf, sp.window, &mut k);
            let row = ci * ks + kf;
            let start = (k[last] * geo.rhs_dilation[last]) as i64 - geo.padding[last].0;
            for pf in 0..outer {
                unravel(pf * p_last, &sp.out, &mut p);
                let mut off = 0;
                let mut inside = true;
                for i in 0..last {
                    match sp.source(i, p[i], k[i]) {
                        Some(s) => off = off * sp.input[i] + s,
                        None => {
                            inside = false;
                            break;
                        }
                    }
                }
                if !inside {
                    continue;
                }
                let line = &mut dst[ci * ss + off * line_len..][..line_len];
                let src = &col[row * ps + pf * p_last..][..p_last];
                let (step, ld) = (geo.strides[last] as i64, geo.lhs_dilation[last] as i64);
                for (j, &v) in src.iter().enumerate() {
                    let t = start + j as i64 * step;
                    if t >= 0 && t % ld == 0 && t / ld < line_len as i64 {
                        let at = (t / ld) as usize;
                        line[at] = line[at] + v;
                    }
                }
            }
        }
    }
}
