//! The window search of max and min pooling: the flat index of each
//! window's first extreme, which pooling gathers through.

use std::ops::Range;

use super::super::simd::{self, Isa, Kernel};
use super::super::{parallel, Array, Buffer, Num, ReduceOp};
use super::unravel;

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

fn arg_extreme_typed<T: Num>(
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
    let takes = |v: T, best: T| match op {
        ReduceOp::Min => better::<T, false>(v, best),
        _ => better::<T, true>(v, best),
    };
    let nd = oshape.len();
    let istrides = super::super::strides(ishape);
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
    let search = |plane: usize, dst: &mut [i64], scratch: &mut (Vec<T>, Vec<u32>)| {
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
                    if takes(v, best.0) {
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
                        if best.is_none_or(|(b, _)| takes(v, b)) {
                            best = Some((v, flat));
                        }
                    }
                }
                best.expect("checked by the shape rule: every window holds an element")
            };
            *d = (base + best.1) as i64;
        }
    };
    // From the pool: a fresh buffer costs a page fault per 4 KiB (8 MB for
    // a 2×2 pooling of 128 images of 32 channels at 32×32).
    let mut idx = super::super::pool::filled(planes * out_plane, 0i64);
    if out_plane == 0 {
        return idx;
    }
    let work = idx.len() * wn;
    if parallel::worth_splitting(work, parallel::CHEAP * 4) && planes > 1 {
        let scratch = || (Vec::new(), Vec::new());
        parallel::team::for_chunks_with(&mut idx, out_plane, scratch, |s, start, d| search(start / out_plane, d, s));
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
fn search_2d<T: Num, const MAX: bool>(
    src: &[T],
    base: usize,
    ishape: &[usize],
    oshape: &[usize],
    win: &[usize],
    [sh, sw, ph, pw]: [usize; 4],
    taps: &[usize],
    dst: &mut [i64],
    (best, arg): &mut (Vec<T>, Vec<u32>),
) {
    let (h, w) = (ishape[0], ishape[1]);
    let ow_n = oshape[1];
    // The columns whose windows lie inside the input: [c0, c1).
    let c0 = pw.div_ceil(sw).min(ow_n);
    let c1 = if w + pw >= win[1] { ((w + pw - win[1]) / sw + 1).min(ow_n) } else { 0 }.max(c0);
    best.resize(c1 - c0, T::default());
    arg.resize(c1 - c0, 0);
    // The rows whose windows lie inside the input: [r0, r1).
    let oh_n = oshape[0];
    let r0 = ph.div_ceil(sh).min(oh_n);
    let r1 = if h + ph >= win[0] { ((h + ph - win[0]) / sh + 1).min(oh_n) } else { 0 }.max(r0);
    let border = |oh: usize, ow: usize| -> i64 {
        let (row, col) = ((oh * sh) as i64 - ph as i64, (ow * sw) as i64 - pw as i64);
        let mut b: Option<(T, usize)> = None;
        for i in 0..win[0] {
            for j in 0..win[1] {
                let (r, c) = (row + i as i64, col + j as i64);
                if r >= 0 && (r as usize) < h && c >= 0 && (c as usize) < w {
                    let at = r as usize * w + c as usize;
                    if b.is_none_or(|(v, _)| better::<T, MAX>(src[at], v)) {
                        b = Some((src[at], at));
                    }
                }
            }
        }
        (base + b.expect("checked by the shape rule: every window holds an element").1) as i64
    };
    for oh in (0..r0).chain(r1..oh_n) {
        for ow in 0..ow_n {
            dst[oh * ow_n + ow] = border(oh, ow);
        }
    }
    if c0 < c1 {
        let interior = Interior::<T, MAX> {
            src,
            base,
            rows: r0..r1,
            cols: c0..c1,
            ow_n,
            row_step: sh * w,
            first: (r0 * sh - ph) * w + c0 * sw - pw,
            sw,
            taps,
            dst: &mut *dst,
            best: &mut best[..],
            arg: &mut arg[..],
        };
        simd::dispatch(interior);
    }
    for oh in r0..r1 {
        for ow in (0..c0).chain(c1..ow_n) {
            dst[oh * ow_n + ow] = border(oh, ow);
        }
    }
}

/// Whether `v` replaces the running extreme `best` of a window: strictly
/// larger (`MAX`) or smaller, or a NaN where `best` is none, so that the
/// first extreme wins and NaN counts as the extreme. `|` and `&`, not `||`
/// and `&&`: the search loops compile it to selects, not branches.
#[inline(always)]
fn better<T: Num, const MAX: bool>(v: T, best: T) -> bool {
    (if MAX { v > best } else { v < best }) | (v.is_nan_like() & !best.is_nan_like())
}

/// The windows of one plane that lie inside the input, output rows `rows`
/// by columns `cols`: the first at `first` in the plane, the next along a
/// row `sw` further and the next row's `row_step` further. Each window's
/// extreme is found tap by tap over a row's windows, with `best` and `arg`
/// (one per column) holding the running extremes and their taps' numbers;
/// a later tap is taken only when strictly better, so the first extreme
/// wins, as in the definition. The loops over windows are branch-free
/// selects, which vectorise (with the stride known at compile time for the
/// common strides 1 and 2).
struct Interior<'a, T, const MAX: bool> {
    src: &'a [T],
    base: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    ow_n: usize,
    row_step: usize,
    first: usize,
    sw: usize,
    taps: &'a [usize],
    dst: &'a mut [i64],
    best: &'a mut [T],
    arg: &'a mut [u32],
}

/// Rows of fewer windows than this are searched window by window.
const SHORT_ROW: usize = 8;

impl<T: Num, const MAX: bool> Kernel for Interior<'_, T, MAX> {
    type Out = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        let t = self.taps;
        let pairs = t.len() == 4 && t[0] == 0 && t[1] == 1 && t[3] == t[2] + 1;
        match self.sw {
            2 if pairs && self.cols.len() >= SHORT_ROW => self.pairs(),
            1 => self.scan::<1>(),
            2 => self.scan::<2>(),
            _ => self.scan::<0>(),
        }
    }
}

impl<T: Num, const MAX: bool> Interior<'_, T, MAX> {
    /// 2×2 windows two apart along a row (taps `[0, 1, r, r + 1]`, the
    /// common max pool): each window's four values read as a pair from
    /// each of its two rows and its extreme picked by selects in tap
    /// order, one pass per output row with no running extremes in memory
    /// (2 threads, a 2×2 pool of 128 images of 32 channels at 32×32:
    /// 2.1–2.3 → 1.2–1.4 ms; of 64 channels at 16×16: 2.3 → 1.2–1.3 ms).
    #[inline(always)]
    fn pairs(self) {
        let Interior { src, base, rows, cols, ow_n, row_step, first, taps, dst, .. } = self;
        let (n, below) = (cols.len(), taps[2]);
        for (r, oh) in rows.enumerate() {
            let origin = first + r * row_step;
            // Window i reads top[2i..2i + 2] and bottom[2i..2i + 2].
            let (top, bottom) = (&src[origin..][..2 * n], &src[origin + below..][..2 * n]);
            let out = &mut dst[oh * ow_n + cols.start..][..n];
            let at = (base + origin) as i64;
            let (right, below, corner) = (1, below as i64, below as i64 + 1);
            for (i, ((d, t), b)) in out.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)).enumerate() {
                let (mut best, mut off) = (t[0], 0);
                for (v, o) in [(t[1], right), (b[0], below), (b[1], corner)] {
                    let take = better::<T, MAX>(v, best);
                    best = if take { v } else { best };
                    off = if take { o } else { off };
                }
                *d = at + 2 * i as i64 + off;
            }
        }
    }

    /// The search with windows `SW` apart along a row (0: `self.sw`, known at run time).
    #[inline(always)]
    fn scan<const SW: usize>(self) {
        let Interior { src, base, rows, cols, ow_n, row_step, first, sw, taps, dst, best, arg } = self;
        let step = if SW == 0 { sw } else { SW };
        let n = cols.len();
        let (best, arg) = (&mut best[..n], &mut arg[..n]);
        for (r, oh) in rows.enumerate() {
            let origin = first + r * row_step;
            let out = &mut dst[oh * ow_n + cols.start..][..n];
            if n < SHORT_ROW {
                // Too few windows for the vector loops: one window at a
                // time, its extreme held in a register across the taps.
                let last = origin + (n - 1) * step + taps[taps.len() - 1];
                let row = &src[..=last];
                for (i, d) in out.iter_mut().enumerate() {
                    let at = origin + i * step;
                    // SAFETY: at + tap <= last < row.len() for every tap.
                    let mut b = unsafe { *row.get_unchecked(at + taps[0]) };
                    let mut a = 0;
                    for (t, &tap) in taps.iter().enumerate().skip(1) {
                        // SAFETY: as above.
                        let v = unsafe { *row.get_unchecked(at + tap) };
                        let take = better::<T, MAX>(v, b);
                        b = if take { v } else { b };
                        a = if take { t } else { a };
                    }
                    *d = (base + at + taps[a]) as i64;
                }
                continue;
            }
            for (t, &tap) in taps.iter().enumerate() {
                // Window i's element at this tap is line[i * step].
                let line = &src[origin + tap..][..(n - 1) * step + 1];
                if t == 0 {
                    for (i, (b, a)) in best.iter_mut().zip(arg.iter_mut()).enumerate() {
                        // SAFETY: i < n, so i * step <= (n - 1) * step < line.len().
                        *b = unsafe { *line.get_unchecked(i * step) };
                        *a = 0;
                    }
                    continue;
                }
                for (i, (b, a)) in best.iter_mut().zip(arg.iter_mut()).enumerate() {
                    // SAFETY: as above.
                    let v = unsafe { *line.get_unchecked(i * step) };
                    let take = better::<T, MAX>(v, *b);
                    *b = if take { v } else { *b };
                    *a = if take { t as u32 } else { *a };
                }
            }
            for (i, (d, &a)) in out.iter_mut().zip(arg.iter()).enumerate() {
                *d = (base + origin + i * step + taps[a as usize]) as i64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::{Array, Buffer, ReduceOp, Rng};
    use super::window_arg_extreme;

    /// The first extreme of each window, by the definition: every output
    /// position, every tap in row-major order, padding skipped.
    fn by_definition(
        x: &[f64],
        shape: &[usize],
        op: ReduceOp,
        win: &[usize],
        st: &[usize],
        pad: &[(usize, usize)],
    ) -> Vec<i64> {
        let r = shape.len();
        let out: Vec<usize> = (0..r).map(|i| (shape[i] + pad[i].0 + pad[i].1 - win[i]) / st[i] + 1).collect();
        let (n_out, n_win): (usize, usize) = (out.iter().product(), win.iter().product());
        let mut got = Vec::new();
        for q in 0..n_out {
            let mut best: Option<(f64, usize)> = None;
            for k in 0..n_win {
                let (mut qq, mut kk, mut flat, mut inside) = (q, k, 0usize, true);
                let mut at = vec![0i64; r];
                for i in (0..r).rev() {
                    at[i] = ((qq % out[i]) * st[i] + kk % win[i]) as i64 - pad[i].0 as i64;
                    (qq, kk) = (qq / out[i], kk / win[i]);
                }
                for i in 0..r {
                    inside &= at[i] >= 0 && (at[i] as usize) < shape[i];
                    flat = flat * shape[i] + at[i].max(0) as usize;
                }
                if !inside {
                    continue;
                }
                let v = x[flat];
                let better = |b: f64| match op {
                    ReduceOp::Min => v < b || (v.is_nan() && !b.is_nan()),
                    _ => v > b || (v.is_nan() && !b.is_nan()),
                };
                if best.is_none_or(|(b, _)| better(b)) {
                    best = Some((v, flat));
                }
            }
            got.push(best.expect("a window holds an element").1 as i64);
        }
        got
    }

    #[test]
    fn window_search_matches_the_definition_with_ties_and_nans() {
        let mut rng = Rng::new(7);
        for case in 0..400 {
            // [N, C, H, W] with 2-d windows; every fourth case tiles (pooling
            // by k with stride k); the last hundred are 2×2 windows two
            // apart along rows (the paired loop, padded or not, tiled or not).
            let pairs = case >= 300;
            let (kh, kw) = if pairs { (2, 2) } else { (1 + rng.below(3), 1 + rng.below(3)) };
            let tiled = case % 4 == 0;
            let (sh, sw) = match (tiled, pairs) {
                (true, _) => (kh, kw),
                (false, true) => (1 + rng.below(3), 2),
                (false, false) => (1 + rng.below(3), 1 + rng.below(3)),
            };
            let pad =
                if tiled { [(0, 0); 2] } else { [(rng.below(kh), rng.below(kh)), (rng.below(kw), rng.below(kw))] };
            let h = if tiled { kh * (1 + rng.below(4)) } else { kh + rng.below(6) };
            // Some rows long enough for the vector loops' full width.
            let w = kw + if case % 3 == 0 { rng.below(48) } else { rng.below(9) };
            let shape = [1 + rng.below(3), 1 + rng.below(3), h, w];
            let n: usize = shape.iter().product();
            // Few distinct values, so that windows tie; some NaNs.
            let x: Vec<f64> = (0..n).map(|_| if rng.below(10) == 0 { f64::NAN } else { rng.below(4) as f64 }).collect();
            let (window, strides) = ([1, 1, kh, kw], [1, 1, sh, sw]);
            let padding = [(0, 0), (0, 0), pad[0], pad[1]];
            // The values are small integers and NaN: exact in f32 too.
            let x32 = Buffer::F32(x.iter().map(|&v| v as f32).collect());
            for op in [ReduceOp::Max, ReduceOp::Min] {
                let want = by_definition(&x, &shape, op, &window, &strides, &padding);
                for buf in [Buffer::F64(x.clone()), x32.clone()] {
                    let got = window_arg_extreme(&Array::new(&shape, buf), op, &window, &strides, &padding);
                    assert_eq!(
                        got.to_vec::<i64>(),
                        want,
                        "case {case}: {shape:?} window {window:?} strides {strides:?} padding {padding:?} {op:?} {:?}",
                        got.dtype()
                    );
                }
            }
        }
    }
}
