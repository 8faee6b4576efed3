//! The two gradients of a convolution as kernels of their own: the
//! kernel's (a product per image over the forward pass's columns) and the
//! input's (a transposed convolution; col2im when strided).

use std::ops::Range;

use super::super::parallel::{self, team};

use super::super::matmul::num_like::Scalar;
use super::super::matmul::{product, Strided};
use super::super::simd::{vectorized, MulAdd};
use super::super::{permute, pool, rev, Array, Buffer, Num};
use super::channels_last::{kernel_grad_last, ChannelsLast};
use super::direct::{kernel_grad_direct, kernel_grad_fits, Layout};
use super::filter_vectors::{self, Filters};
use super::shifted::{kernel_grad_shifted, Shifted};
use super::{column_batch, conv, dilate, im2col, prefer_shifts, unravel, ConvGeometry, Spatial, PAR_FLOPS};

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

fn kernel_grad_typed<T: Num + Scalar + MulAdd>(
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
    // Channels last where a group's channels are whole vectors (Xeon, 2
    // threads, batch 128: 32→64 at 16×16 4.2–4.4 → 3.2–3.6 ms; 64→128 at
    // 8×8 and 64→64 at 16×16 level with the products, 3.6–4.0 and 7.3–7.9
    // ms), else lane-wise sums over whole output lines (3→32 at 32×32: 2.0
    // → 0.91 ms), else the products.
    let last = ChannelsLast::new(sp, std::mem::size_of::<T>(), cg);
    let direct = Layout::new(sp, std::mem::size_of::<T>()).filter(|l| !l.stacked() && kernel_grad_fits(og, rows));
    let shifted = Shifted::new(sp).filter(|_| prefer_shifts(cg, og, rows * ps * std::mem::size_of::<T>()));
    let nb = column_batch(n, rows * ps * std::mem::size_of::<T>(), parallel::threads());
    // Σ over the images `range` into `acc` [o, rows], a batch of images'
    // columns side by side at a time.
    let sum_images = |range: Range<usize>, acc: &mut [T]| {
        if let Some(lay) = &last {
            return kernel_grad_last(lay, sp, x, ct, range, (c, o, groups), acc);
        }
        if let Some(lay) = &direct {
            return kernel_grad_direct(lay, sp, x, ct, range, (c, o, groups), acc);
        }
        if let Some(sh) = &shifted {
            return kernel_grad_shifted(sh, sp, x, ct, range, (c, o, groups), acc);
        }
        let (mut col, mut lhs) = (Vec::new(), Vec::new());
        // The group's gradient transposed, [rows, og]: the GEMM crate runs
        // column-major, and reads the columns' transpose several times
        // faster into a column-major destination (conv 32→32 on 32×32
        // images: 36 against 187 GFLOP/s).
        let mut acc_t = vec![T::default(); rows * og];
        for gi in 0..groups {
            acc_t.fill(T::default());
            for s in range.clone().step_by(nb) {
                let imgs = s..(s + nb).min(range.end);
                let cols = imgs.len() * ps;
                col.resize(rows * cols, T::default());
                for (j, ni) in imgs.clone().enumerate() {
                    im2col(&x[(ni * c + gi * cg) * ss..][..cg * ss], &mut col[j * ps..], cg, sp, false, cols);
                }
                // The cotangent of the images, [og, cols]: in place for one image.
                let lhs = if imgs.len() == 1 {
                    &ct[(imgs.start * o + gi * og) * ps..][..og * ps]
                } else {
                    lhs.resize(og * cols, T::default());
                    for (j, ni) in imgs.clone().enumerate() {
                        for oi in 0..og {
                            lhs[oi * cols + j * ps..][..ps].copy_from_slice(&ct[(ni * o + gi * og + oi) * ps..][..ps]);
                        }
                    }
                    &lhs[..]
                };
                // SAFETY: acc_t is [og, rows] column-major, lhs [og, cols]
                // row-major, and col [rows, cols] row-major read as its
                // transpose [cols, rows]; the three do not overlap.
                unsafe {
                    let (dst, col) =
                        (Strided::transposed(acc_t.as_mut_ptr(), og), Strided::transposed(col.as_ptr(), cols));
                    product(og, rows, cols, dst, Strided::rows(lhs.as_ptr(), cols), col, true, 1)
                }
            }
            let dst = &mut acc[gi * og * rows..][..og * rows];
            for (r, line) in acc_t.chunks_exact(og).enumerate() {
                for (oi, &v) in line.iter().enumerate() {
                    dst[oi * rows + r] = dst[oi * rows + r] + v;
                }
            }
        }
    };
    let threads = parallel::threads().min(n);
    let flops = 2 * n * o * rows * ps;
    if threads <= 1 || flops < PAR_FLOPS {
        let mut acc = vec![T::default(); len];
        sum_images(0..n, &mut acc);
        return acc;
    }
    let per = n.div_ceil(threads);
    let mut partials: Vec<Vec<T>> = vec![Vec::new(); threads];
    team::for_chunks(&mut partials, 1, |t, acc| {
        acc[0] = vec![T::default(); len];
        sum_images(t * per..((t + 1) * per).min(n), &mut acc[0]);
    });
    let mut total = partials[0].clone();
    for p in &partials[1..] {
        for (a, b) in total.iter_mut().zip(p) {
            *a = *a + *b;
        }
    }
    total
}

/// The gradient of a convolution's input: `[N, C, input..]` from the
/// output's cotangent `ct [N, O, P..]` and the kernel `w [O, C / groups,
/// K..]` — a transposed convolution. With unit strides and no input
/// dilation it is the convolution of `ct` with the flipped kernel (and the
/// fast paths of [`conv`]), unless the kernel widens the channels in two
/// dimensions (`prefer_col2im`); otherwise, per image and group, the
/// columns `wᵀ · ct` are added back onto the input positions they came from
/// (col2im), which does no arithmetic on the zeros a dilated `ct` would hold.
pub fn conv_input_grad(ct: &Array, w: &Array, geo: &ConvGeometry, groups: usize, input: &[usize]) -> Array {
    let (cs, ws) = (ct.shape(), w.shape());
    let d = geo.rank();
    let (n, o, cg, k) = (cs[0], cs[1], ws[1], &ws[2..]);
    let og = o / groups;
    let column_bytes = cg * k.iter().product::<usize>() * cs[2..].iter().product::<usize>() * ct.dtype().size_of();
    // The padding of ct that gives `input` back: negative where the
    // forward pass padded more than the window's reach.
    let padding: Vec<(i64, i64)> = (0..d)
        .map(|i| {
            let span = dilate(k[i], geo.rhs_dilation[i]) as i64;
            let lo = span - 1 - geo.padding[i].0;
            (lo, input[i] as i64 + span - 1 - cs[2 + i] as i64 - lo)
        })
        .collect();
    let t = ConvGeometry { padding, ..geo.clone() };
    let turned = Spatial { input, window: k, out: input.to_vec(), geo: &t };
    if filter_vectors::applies(&turned, ct.dtype().size_of(), o, cg, groups) {
        // The transposed convolution directly, its filters read from `w` as they are.
        let mut shape = vec![n, cg];
        shape.extend(input);
        let buf = match (ct.buffer(), w.buffer()) {
            (Buffer::F32(a), Buffer::F32(b)) => {
                Buffer::F32(filter_vectors::conv_filter_vectors(&turned, a, b, (n, o, cg), Filters::Transposed))
            }
            (Buffer::F64(a), Buffer::F64(b)) => {
                Buffer::F64(filter_vectors::conv_filter_vectors(&turned, a, b, (n, o, cg), Filters::Transposed))
            }
            _ => unreachable!("conv_input_grad: the shape rule admits two float arrays of one dtype"),
        };
        return Array::new(&shape, buf);
    }
    // The flipped kernel's convolution computed directly beat col2im
    // (32→64 channels at 16×16: 3.6 against 4.0 ms) unless its output
    // channels fill less than a block (3→32: 2.0 against 1.1 ms); direct
    // needs no cropping.
    let direct = cg >= super::direct::OB
        && t.padding.iter().all(|&(lo, hi)| lo >= 0 && hi >= 0)
        && super::direct::whole_lines(input, ct.dtype().size_of());
    if unit_steps(geo) && (direct || !(d == 2 && prefer_col2im(cg, og, column_bytes))) {
        // ct ⋆ flip(w) with its channels swapped within each group, padded to give `input`.
        let mut grouped = vec![groups, og, cg];
        grouped.extend(k);
        let mut perm: Vec<usize> = (0..grouped.len()).collect();
        perm.swap(1, 2);
        let swapped = permute(&w.reshape(&grouped), &perm);
        let mut shape = vec![groups * cg, og];
        shape.extend(k);
        let flipped = rev(&swapped.reshape(&shape), &(2..2 + d).collect::<Vec<_>>());
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

/// Unit strides and no input dilation: the geometry whose transpose is a
/// convolution of the same kind.
fn unit_steps(geo: &ConvGeometry) -> bool {
    geo.strides.iter().chain(&geo.lhs_dilation).all(|&s| s == 1)
}

/// Whether the input gradient of a unit-stride 2-d convolution with `cg`
/// input and `og` output channels per group is better as `wᵀ · ct` added
/// back by col2im than as the convolution of `ct` with the flipped kernel,
/// whose product has only `cg` rows against an inner dimension of `og`
/// times the window. `column_bytes` is one image's columns. Measured on an
/// Intel Xeon, 2 threads (3×3 kernels, padding 1, f32, batch 128, three
/// alternating runs): col2im won wherever `og ≥ 2 cg`: 3→32 at 32×32
/// (1.6–1.7 against 2.9–3.3 ms), 32→64 at 16×16 (5.6–5.8 against 5.8–6.5
/// ms), 64→128 at 8×8 (4.7–4.8 against 5.4–5.8 ms), 16→64 at 32×32
/// (10.3–10.6 against 12.4–13.2 ms), and 64→128 at 32×32 (batch 32, 2.4 MB
/// of columns an image: 20.5 against 25 ms); it lost with as many channels
/// out as in (16→16 at 32×32: 4.4–4.7 against 3.5–3.8 ms).
fn prefer_col2im(cg: usize, og: usize, column_bytes: usize) -> bool {
    og >= 2 * cg && og >= 16 && column_bytes <= super::COLUMN_MAX_BYTES
}

fn input_grad_typed<T: Num + Scalar>(
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
    let mut out = pool::filled(n * groups * cg * ss, T::default());
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
            let (out, filters) = (Strided::rows(col.as_mut_ptr(), ps), Strided::transposed(filters.as_ptr(), rows));
            product(rows, ps, og, out, filters, Strided::rows(cot.as_ptr(), ps), false, 1)
        }
        col2im(col, dst, cg, sp);
    };
    let flops = 2 * n * o * rows * ps;
    if n * groups > 1 && flops >= PAR_FLOPS && parallel::threads() > 1 {
        team::for_chunks_with(&mut out, cg * ss, Vec::new, |col, start, dst| run(start / (cg * ss), dst, col));
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
fn col2im<T: Num>(col: &[T], dst: &mut [T], cg: usize, sp: &Spatial) {
    let geo = sp.geo;
    if sp.input.len() == 2 && unit_steps(geo) {
        return col2im_2d_unit(col, dst, cg, sp);
    }
    let nd = sp.input.len();
    let last = nd - 1;
    let ss: usize = sp.input.iter().product();
    let ps: usize = sp.out.iter().product();
    let ks: usize = sp.window.iter().product();
    let line_len = sp.input[last];
    let p_last = sp.out[last];
    let outer = ps / p_last.max(1);
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
                if step == 1 && ld == 1 {
                    // The positions that land inside the line are one run.
                    let (lo, hi) = landing(start, line_len, p_last);
                    if hi > lo {
                        let at = (start + lo as i64) as usize;
                        for (a, &v) in line[at..at + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *a = *a + v;
                        }
                    }
                    continue;
                }
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

/// The output positions `o` in `0..out` whose input position `o + shift`
/// lies in `0..len`: `lo..hi`, empty when none does.
fn landing(shift: i64, len: usize, out: usize) -> (usize, usize) {
    let lo = (-shift).clamp(0, out as i64);
    (lo as usize, (len as i64 - shift).clamp(lo, out as i64) as usize)
}

/// [`col2im`] over two spatial axes with unit strides and no input
/// dilation. Without cropping, a channel is summed in a padded plane (in
/// the L1 cache), onto which every tap adds whole rows of the output's
/// width, and its inside is added onto `dst` once; with cropping, each
/// tap's lines are clipped to the plane once per tap.
fn col2im_2d_unit<T: Num>(col: &[T], dst: &mut [T], cg: usize, sp: &Spatial) {
    let (h, w, oh, ow) = (sp.input[0], sp.input[1], sp.out[0], sp.out[1]);
    let (kh, kw) = (sp.window[0], sp.window[1]);
    let g = sp.geo;
    let (dh, dw) = (g.rhs_dilation[0], g.rhs_dilation[1]);
    let ps = oh * ow;
    if let [(t, b), (l, r)] = g.padding[..] {
        if t >= 0 && b >= 0 && l >= 0 && r >= 0 {
            let (t, l) = (t as usize, l as usize);
            // With unit strides the taps reach exactly the padded plane.
            let wp = w + l + r as usize;
            let mut padded = vec![T::default(); (h + t + b as usize) * wp];
            for (ci, plane) in dst.chunks_exact_mut(h * w).take(cg).enumerate() {
                padded.fill(T::default());
                for a in 0..kh {
                    for bi in 0..kw {
                        let rows = &col[((ci * kh + a) * kw + bi) * ps..][..ps];
                        let at = a * dh * wp + bi * dw;
                        // Inlined into the dispatch, so that the adds take its vector width.
                        vectorized(
                            #[inline(always)]
                            || add_rows(&mut padded, (at, wp), rows, (0, ow), (oh, ow)),
                        );
                    }
                }
                add_rows(plane, (0, w), &padded, (t * wp + l, wp), (h, w));
            }
            return;
        }
    }
    for (ci, plane) in dst.chunks_exact_mut(h * w).take(cg).enumerate() {
        for a in 0..kh {
            let sy = (a * dh) as i64 - g.padding[0].0;
            let (y0, y1) = landing(sy, h, oh);
            for b in 0..kw {
                let sx = (b * dw) as i64 - g.padding[1].0;
                let (x0, x1) = landing(sx, w, ow);
                if x1 == x0 || y1 == y0 {
                    continue;
                }
                let row = &col[((ci * kh + a) * kw + b) * ps..][..ps];
                let at = (y0 as i64 + sy) as usize * w + (x0 as i64 + sx) as usize;
                add_rows(plane, (at, w), row, (y0 * ow + x0, ow), (y1 - y0, x1 - x0));
            }
        }
    }
}

/// Adds `rows` rows of `len` elements of `src`, starting at `from.0` and
/// `from.1` apart, onto those of `dst` at `to`. Rows of whole multiples of
/// 8 go eight elements at a time as arrays read and written whole, one
/// vector add each: a loop over a row of 8 (an 8×8 image's) spent ten times
/// the add's instructions choosing a vector width and checking that the
/// rows do not overlap (the input gradient of 64→128 channels at 8×8 on 2
/// threads, alternating builds: 3.75–4.52 → 3.51–3.77 ms).
#[inline(always)]
fn add_rows<T: Num>(dst: &mut [T], to: (usize, usize), src: &[T], from: (usize, usize), (rows, len): (usize, usize)) {
    if rows == 0 || len == 0 {
        return;
    }
    let last = |(at, stride): (usize, usize)| at + (rows - 1) * stride + len;
    assert!(last(to) <= dst.len() && last(from) <= src.len(), "col2im: rows out of bounds");
    if len % 8 != 0 {
        for y in 0..rows {
            let (d, s) = (&mut dst[to.0 + y * to.1..][..len], &src[from.0 + y * from.1..][..len]);
            for (d, &v) in d.iter_mut().zip(s) {
                *d = *d + v;
            }
        }
        return;
    }
    let (dp, sp) = (dst.as_mut_ptr(), src.as_ptr());
    for y in 0..rows {
        let (d, s) = (to.0 + y * to.1, from.0 + y * from.1);
        let mut x = 0;
        while x < len {
            // SAFETY: within the bounds asserted above; `dst` and `src` are
            // distinct slices.
            unsafe {
                let at = dp.add(d + x) as *mut [T; 8];
                let mut a = at.read_unaligned();
                for (a, b) in a.iter_mut().zip((sp.add(s + x) as *const [T; 8]).read_unaligned()) {
                    *a = *a + b;
                }
                at.write_unaligned(a);
            }
            x += 8;
        }
    }
}
