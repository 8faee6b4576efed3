//! Kernels that move data without arithmetic: permute, broadcast, slice,
//! pad and concatenate.

use std::mem::MaybeUninit;

use smallvec::{smallvec, SmallVec};

use super::parallel;
use super::simd::{self, Isa, Kernel};
use super::{map_buffer, pool, strides, Array, Element};

/// Copies the elements of a strided view of `src` into a new row-major
/// vector of `shape`: element `i` of the output (multi-index `ix`) is
/// `src[base + Σ ix[d] * src_strides[d]]`.
fn strided_copy<T: Element>(src: &[T], base: usize, src_strides: &[usize], shape: &[usize]) -> Vec<T> {
    // Merge adjacent output dimensions that are contiguous in the source too.
    let mut dims: Vec<usize> = Vec::new();
    let mut st: Vec<usize> = Vec::new();
    for (&d, &s) in shape.iter().zip(src_strides) {
        if d == 1 {
            continue;
        }
        match (dims.last_mut(), st.last_mut()) {
            (Some(ld), Some(ls)) if *ls == s * d => {
                *ld *= d;
                *ls = s;
            }
            _ => {
                dims.push(d);
                st.push(s);
            }
        }
    }
    let n: usize = shape.iter().product();
    if dims.is_empty() {
        return if n == 0 { Vec::new() } else { vec![src[base]] };
    }
    let last = dims.len() - 1;
    if dims.len() >= 2 && st[last] != 1 && st[last - 1] == 1 && dims[last] >= 16 && dims[last - 1] >= 16 {
        return transpose_tiles(src, base, &dims, &st, n);
    }
    let inner = dims[last];
    let s_in = st[last];
    // SAFETY: each chunk's rows tile it, and every row is written in full.
    unsafe {
        parallel::build(n, parallel::CHEAP, |start, chunk: &mut [MaybeUninit<T>]| {
            if chunk.is_empty() {
                return; // an empty output, whose extents may be zero
            }
            let end = start + chunk.len();
            // The outer index of the first row by division, then counted up
            // row by row (rows may be a few elements long: a head's 16).
            let (mut row, mut col) = (start / inner, start % inner);
            let mut idx: SmallVec<[usize; 8]> = smallvec![0; last];
            let mut off = base;
            for d in (0..last).rev() {
                idx[d] = row % dims[d];
                row /= dims[d];
                off += idx[d] * st[d];
            }
            let mut pos = start;
            while pos < end {
                let len = (inner - col).min(end - pos);
                let from = off + col * s_in;
                let dst = &mut chunk[pos - start..pos - start + len];
                if s_in == 1 {
                    dst.copy_from_slice(as_uninit(&src[from..from + len]));
                } else if s_in == 0 {
                    dst.fill(MaybeUninit::new(src[from]));
                } else {
                    for (i, o) in dst.iter_mut().enumerate() {
                        o.write(src[from + i * s_in]);
                    }
                }
                pos += len;
                col = 0;
                for d in (0..last).rev() {
                    idx[d] += 1;
                    off += st[d];
                    if idx[d] < dims[d] {
                        break;
                    }
                    off -= dims[d] * st[d];
                    idx[d] = 0;
                }
            }
        })
    }
}

/// `x` seen as a slice of possibly uninitialised elements (as it may always be).
fn as_uninit<T>(x: &[T]) -> &[MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has `T`'s layout, and reading initialised
    // values through it is sound.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) }
}

/// The side of the square tiles a transpose copies at a time.
const TILE: usize = 32;

/// The strided copy for views whose last two dimensions are a transpose
/// (source stride 1 on the second-to-last): copied in square tiles so both
/// the reads and the writes stay within a few cache lines.
fn transpose_tiles<T: Element>(src: &[T], base: usize, dims: &[usize], st: &[usize], n: usize) -> Vec<T> {
    let k = dims.len();
    let (rows, cols) = (dims[k - 2], dims[k - 1]);
    debug_assert_eq!(st[k - 2], 1, "transpose_tiles: the source runs along the rows");
    let s_col = st[k - 1];
    let mut out = pool::filled(n, T::default());
    let plane = rows * cols;
    let outer_dims = &dims[..k - 2];
    let outer_st = &st[..k - 2];
    if n / plane.max(1) > 1 {
        parallel::fill_units(&mut out, plane, parallel::CHEAP, |p, dst| {
            let mut off = base;
            let mut r = p;
            for d in (0..outer_dims.len()).rev() {
                off += (r % outer_dims[d]) * outer_st[d];
                r /= outer_dims[d];
            }
            simd::dispatch(Plane { src, off, rows, cols, s_col, dst, ds: cols });
        });
    } else {
        transpose_plane(&src[base..], s_col, rows, cols, &mut out, cols);
    }
    out
}

/// `dst[i · ds + j] = src[i + j · s_col]` for `i < rows`, `j < cols` (a
/// [`Plane`]), split by bands of rows across threads when large enough.
pub(crate) fn transpose_plane<T: Element>(src: &[T], s_col: usize, rows: usize, cols: usize, dst: &mut [T], ds: usize) {
    let len = (rows * ds).min(dst.len());
    let dst = &mut dst[..len];
    parallel::fill_units(dst, TILE * ds, parallel::CHEAP, |t, dst| {
        let i0 = t * TILE;
        simd::dispatch(Plane { src, off: i0, rows: TILE.min(rows - i0), cols, s_col, dst, ds });
    });
}

/// A transpose of a plane whose source runs along its rows,
/// `dst[i · ds + j] = src[off + i + j · s_col]`, in tiles of [`TILE`],
/// whose square sub-tiles of [`simd::tile_rows`] are turned by vector
/// shuffles (the keys of an attention's heads transposed, [32, 4, 16, 32]
/// f32 on 2 threads: 43–47 → 17–19 µs), the rest element by element. Also
/// the copy of a convolution's input to channels last, a line at a time.
pub(super) struct Plane<'a, T> {
    pub(super) src: &'a [T],
    pub(super) off: usize,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) s_col: usize,
    pub(super) dst: &'a mut [T],
    /// The destination's row stride, `cols` or more.
    pub(super) ds: usize,
}

impl<T: Element> Kernel for Plane<'_, T> {
    type Out = ();

    #[inline(always)]
    fn run<I: Isa>(self) {
        let Plane { src, off, rows, cols, s_col, dst, ds } = self;
        let r = simd::tile_rows(std::mem::size_of::<T>());
        if rows > 0 && cols > 0 {
            assert!(ds >= cols && dst.len() >= (rows - 1) * ds + cols, "transpose: the plane's destination is short");
            assert!(off + (rows - 1) + (cols - 1) * s_col < src.len(), "transpose: the plane reads past its source");
        }
        let along_source = aliases::<T>(s_col) && !aliases::<T>(ds);
        for i0 in (0..rows).step_by(TILE) {
            for j0 in (0..cols).step_by(TILE) {
                let (i1, j1) = ((i0 + TILE).min(rows), (j0 + TILE).min(cols));
                // The whole sub-tiles, shuffled: rows i..i + r, columns j..j + r.
                let (wi, wj) = ((i1 - i0) / r * r, (j1 - j0) / r * r);
                let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
                let sub = |i: usize, j: usize| {
                    // SAFETY: the source's sub-tile (columns j.. as its rows,
                    // s_col apart) lies within the plane's last element
                    // (asserted); the destination's rows i..i + r of cols
                    // elements, ds apart, lie within its length.
                    unsafe {
                        simd::transpose_tile::<I, T>(sp.add(off + i + j * s_col), s_col, dp.add(i * ds + j), ds);
                    }
                };
                if along_source {
                    for j in (j0..j0 + wj).step_by(r) {
                        for i in (i0..i0 + wi).step_by(r) {
                            sub(i, j);
                        }
                    }
                } else {
                    for i in (i0..i0 + wi).step_by(r) {
                        for j in (j0..j0 + wj).step_by(r) {
                            sub(i, j);
                        }
                    }
                }
                for i in i0..i1 {
                    let skip = if i < i0 + wi { j0 + wj } else { j0 };
                    for j in skip..j1 {
                        dst[i * ds + j] = src[off + i + j * s_col];
                    }
                }
            }
        }
    }
}

/// Whether lines `stride` elements apart fall in the same few cache sets.
fn aliases<T>(stride: usize) -> bool {
    (stride * std::mem::size_of::<T>()) % 2048 == 0
}

/// Reorders the axes: output axis `i` is input axis `perm[i]`.
pub fn permute(x: &Array, perm: &[usize]) -> Array {
    let st = strides(x.shape());
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let src_st: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
    let buf = map_buffer!(x.buffer(), v => strided_copy(v, 0, &src_st, &shape));
    Array::new(&shape, buf)
}

/// Broadcasts to `shape` under numpy's rules (the caller has checked they hold).
pub fn broadcast_to(x: &Array, shape: &[usize]) -> Array {
    let st = strides(x.shape());
    let lead = shape.len() - x.rank();
    let src_st: Vec<usize> =
        (0..shape.len()).map(|d| if d < lead || x.shape()[d - lead] == 1 { 0 } else { st[d - lead] }).collect();
    let buf = map_buffer!(x.buffer(), v => strided_copy(v, 0, &src_st, shape));
    Array::new(shape, buf)
}

/// The block `starts[d]..ends[d]` of every axis.
pub fn slice(x: &Array, starts: &[usize], ends: &[usize]) -> Array {
    let st = strides(x.shape());
    let base: usize = starts.iter().zip(&st).map(|(s, t)| s * t).sum();
    let shape: Vec<usize> = starts.iter().zip(ends).map(|(s, e)| e - s).collect();
    let buf = map_buffer!(x.buffer(), v => strided_copy(v, base, &st, &shape));
    Array::new(&shape, buf)
}

/// Pads every axis with `lo[d]` zeros before and `hi[d]` after.
pub fn pad(x: &Array, lo: &[usize], hi: &[usize]) -> Array {
    let shape: Vec<usize> = (0..x.rank()).map(|d| lo[d] + x.shape()[d] + hi[d]).collect();
    let buf = map_buffer!(x.buffer(), v => pad_typed(v, x.shape(), lo, &shape));
    Array::new(&shape, buf)
}

fn pad_typed<T: Element>(v: &[T], in_shape: &[usize], lo: &[usize], shape: &[usize]) -> Vec<T> {
    let out_st = strides(shape);
    let mut out = pool::filled(shape.iter().product(), T::default());
    let inner = in_shape.last().copied().unwrap_or(1);
    if inner == 0 || v.is_empty() {
        return out;
    }
    let base: usize = lo.iter().zip(&out_st).map(|(l, s)| l * s).sum();
    for (r, src) in v.chunks_exact(inner).enumerate() {
        let mut off = base;
        let mut rem = r;
        for d in (0..in_shape.len().saturating_sub(1)).rev() {
            off += (rem % in_shape[d]) * out_st[d];
            rem /= in_shape[d];
        }
        out[off..off + inner].copy_from_slice(src);
    }
    out
}

/// Joins arrays of one dtype along `axis`; all other dimensions must agree.
pub fn concat(xs: &[&Array], axis: usize) -> Array {
    let mut shape = xs[0].shape().to_vec();
    shape[axis] = xs.iter().map(|x| x.shape()[axis]).sum();
    let buf = map_buffer!(xs[0].buffer(), first => concat_typed(first, xs, axis, &shape));
    Array::new(&shape, buf)
}

fn concat_typed<T: Element>(_first: &[T], xs: &[&Array], axis: usize, shape: &[usize]) -> Vec<T> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let out_block = shape[axis] * inner;
    let mut out = pool::filled(shape.iter().product(), T::default());
    let mut at = 0;
    for x in xs {
        let blk = x.shape()[axis] * inner;
        let v = x.as_slice::<T>();
        for o in 0..outer {
            out[o * out_block + at..][..blk].copy_from_slice(&v[o * blk..(o + 1) * blk]);
        }
        at += blk;
    }
    out
}

/// The elements in reverse order along each of `axes`.
pub fn rev(x: &Array, axes: &[usize]) -> Array {
    let buf = map_buffer!(x.buffer(), v => rev_typed(v, x.shape(), axes));
    Array::new(x.shape(), buf)
}

fn rev_typed<T: Element>(v: &[T], shape: &[usize], axes: &[usize]) -> Vec<T> {
    let n: usize = shape.iter().product();
    let Some((&inner, outer_dims)) = shape.split_last() else { return v.to_vec() };
    if n == 0 {
        return Vec::new();
    }
    let st = strides(shape);
    let last = shape.len() - 1;
    let flip_inner = axes.contains(&last);
    let mut out = pool::with_capacity(n);
    for row in 0..n / inner {
        // The source row: each reversed outer axis reads from the other end.
        let (mut off, mut r) = (0, row);
        for d in (0..outer_dims.len()).rev() {
            let i = r % shape[d];
            r /= shape[d];
            off += if axes.contains(&d) { shape[d] - 1 - i } else { i } * st[d];
        }
        let src = &v[off..off + inner];
        if flip_inner {
            out.extend(src.iter().rev());
        } else {
            out.extend_from_slice(src);
        }
    }
    out
}
