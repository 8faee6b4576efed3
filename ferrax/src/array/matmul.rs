//! Batched matrix products through the `gemm` crate (AVX-512/AVX2/NEON
//! kernels chosen at run time).

use super::{Array, Buffer, Element};

mod skinny;
#[cfg(test)]
mod tests;

/// From this many flops a product is split between the kernel team's
/// threads (`parallel::team`), by blocks of rows or columns. Single thread
/// against split, f32 on a 2-vCPU Xeon (10th percentile of 400 calls, a
/// throwaway probe): [256,64]·[64,64], 2.1e6 flops, 11.5 µs against 7.6 µs;
/// [1024,64]·[64,64] 46 against 23 µs; [64,1024]·[1024,64] 51 against 22 µs;
/// [128,64]·[64,64], 1e6 flops, 6.6 against 6.3 µs. Large products split
/// the same way beat the `gemm` crate's own rayon parallelism in the same
/// probe: [512,512]·[512,512] 0.93 against 0.97–1.36 ms, and W2's
/// [256,512]·[512,512] 0.49–0.57 against 0.69–0.73 ms.
const TEAM_FLOPS: usize = 1 << 21;

/// The operand layout of one product: `C[m,n] = op(A) op(B)`, where `op`
/// transposes a stored matrix when its flag is set.
#[derive(Clone, Copy, Debug)]
pub struct MatmulDims {
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub ta: bool,
    pub tb: bool,
}

/// Batched `op(a) @ op(b)`: `a` is `[batch.., m, k]` (`[batch.., k, m]` when
/// `ta`), `b` is `[batch.., k, n]` (`[batch.., n, k]` when `tb`), with equal
/// batch dimensions. The caller has checked the shapes.
pub fn matmul(a: &Array, b: &Array, ta: bool, tb: bool) -> Array {
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k) = if ta { (a.shape()[ra - 1], a.shape()[ra - 2]) } else { (a.shape()[ra - 2], a.shape()[ra - 1]) };
    let n = if tb { b.shape()[rb - 2] } else { b.shape()[rb - 1] };
    let batch_shape = &a.shape()[..ra - 2];
    let d = MatmulDims { batch: batch_shape.iter().product(), m, k, n, ta, tb };
    let mut shape = batch_shape.to_vec();
    shape.extend([m, n]);
    let buf = match (a.buffer(), b.buffer()) {
        (Buffer::F32(x), Buffer::F32(y)) => Buffer::F32(gemm_batched(x, y, d)),
        (Buffer::F64(x), Buffer::F64(y)) => Buffer::F64(gemm_batched(x, y, d)),
        _ => panic!("matmul: expected two float arrays of one dtype, got {} and {}", a.dtype(), b.dtype()),
    };
    Array::new(&shape, buf)
}

fn gemm_batched<T: Element + num_like::Scalar>(a: &[T], b: &[T], d: MatmulDims) -> Vec<T> {
    let len = d.batch * d.m * d.n;
    if d.m == 0 || d.n == 0 || d.k == 0 {
        return vec![T::default(); len]; // an empty inner dimension sums nothing: zeros
    }
    // Not zeroed first: `gemm` with `read_dst = false` writes every element
    // of its output without reading it, and zeroing cost 2% of W2.
    let mut out: Vec<T> = super::pool::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    let (sa, sb, sc) = (d.m * d.k, d.k * d.n, d.m * d.n);
    let flops = 2 * d.m * d.n * d.k;
    let threads = super::parallel::threads();
    if d.batch > 1 && flops < TEAM_FLOPS && d.batch * flops >= TEAM_FLOPS && threads > 1 {
        super::parallel::team::for_chunks(spare, sc, |start, c| {
            let i = start / sc;
            gemm_split(&a[i * sa..][..sa], &b[i * sb..][..sb], c.as_mut_ptr().cast(), d, 1)
        });
    } else {
        let pieces = pieces_for(flops);
        for (i, c) in spare.chunks_mut(sc).enumerate() {
            gemm_split(&a[i * sa..][..sa], &b[i * sb..][..sb], c.as_mut_ptr().cast(), d, pieces);
        }
    }
    // SAFETY: every chunk of `sc` elements was written by one `gemm_split`.
    unsafe { out.set_len(len) };
    out
}

/// One product into `c`, which points at `m * n` writable elements (not
/// necessarily initialised: they are written, never read), in `pieces`.
fn gemm_split<T: num_like::Scalar + Sync>(a: &[T], b: &[T], c: *mut T, d: MatmulDims, pieces: usize) {
    // op(A) [m, k] and op(B) [k, n] as views of their row-major storage.
    let a = if d.ta { Strided::transposed(a.as_ptr(), d.m) } else { Strided::rows(a.as_ptr(), d.k) };
    let b = if d.tb { Strided::transposed(b.as_ptr(), d.k) } else { Strided::rows(b.as_ptr(), d.n) };
    // SAFETY: the slices hold exactly batch-free m*k and k*n elements (the
    // caller's slicing) and `c` points at m*n; the views address only
    // inside them; `c` does not alias `a` or `b`, and is only written.
    unsafe { product(d.m, d.n, d.k, Strided::rows(c, d.n), a, b, false, pieces) }
}

/// A view that the team's threads use for disjoint parts of one product.
#[derive(Clone, Copy)]
struct Part<T>(Strided<*mut T>);
// SAFETY: each piece of `product` writes its own rows or columns.
unsafe impl<T> Sync for Part<T> {}
/// An operand the team's threads read.
#[derive(Clone, Copy)]
struct Operand<T>(Strided<*const T>);
// SAFETY: operands are only read while the product runs.
unsafe impl<T> Sync for Operand<T> {}

/// `dst [m, n] = a [m, k] · b [k, n]` through the `gemm` crate, or `dst +=`
/// with `accumulate`; without it `dst` is only written, so it need not be
/// initialised. With `pieces` > 1 the product is split into that many
/// blocks of rows of `dst` (or of columns, when `dst` is wider than tall)
/// for the kernel team's threads.
///
/// # Safety
/// Each view addresses only elements of its own allocation over its extent
/// (`dst` m×n, `a` m×k, `b` k×n); `dst` is writable (and initialised when
/// `accumulate`) and overlaps neither operand.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn product<T: num_like::Scalar>(
    m: usize,
    n: usize,
    k: usize,
    dst: Strided<*mut T>,
    a: Strided<*const T>,
    b: Strided<*const T>,
    accumulate: bool,
    pieces: usize,
) {
    // SAFETY: the caller's.
    unsafe { scaled_product(m, n, k, dst, a, b, accumulate, T::ONE, pieces) }
}

/// `dst [m, n] -= a [m, k] · b [k, n]`, as [`product`] with `accumulate`
/// (the update of a blocked triangular solve).
///
/// # Safety
/// As for [`product`]; `dst` is initialised.
pub(crate) unsafe fn subtract_product<T: num_like::Scalar>(
    m: usize,
    n: usize,
    k: usize,
    dst: Strided<*mut T>,
    a: Strided<*const T>,
    b: Strided<*const T>,
    pieces: usize,
) {
    // SAFETY: the caller's.
    unsafe { scaled_product(m, n, k, dst, a, b, true, T::MINUS_ONE, pieces) }
}

/// The threads a product of `flops` is worth splitting over.
pub(crate) fn pieces_for(flops: usize) -> usize {
    if flops >= TEAM_FLOPS {
        super::parallel::threads()
    } else {
        1
    }
}

/// Where a recursive factorisation or solve splits `n` rows (or columns)
/// in two: near the middle, on a multiple of 8, so that the products
/// between the halves work on whole register tiles. Below `n` once `n`
/// is over 8.
pub(crate) fn halve(n: usize) -> usize {
    (n / 2).next_multiple_of(8)
}

/// [`product`] with the product scaled by `scale` before it is written or added.
///
/// # Safety
/// As for [`product`].
#[allow(clippy::too_many_arguments)]
unsafe fn scaled_product<T: num_like::Scalar>(
    m: usize,
    n: usize,
    k: usize,
    dst: Strided<*mut T>,
    a: Strided<*const T>,
    b: Strided<*const T>,
    accumulate: bool,
    scale: T,
    pieces: usize,
) {
    if pieces <= 1 || m == 0 || n == 0 {
        // SAFETY: the caller's.
        return unsafe { gemm_call(m, n, k, dst, a, b, accumulate, scale) };
    }
    let by_rows = m >= n;
    let len = if by_rows { m } else { n };
    // Blocks of whole register tiles (16 rows or columns covers the
    // kernels' tiles for both dtypes on every ISA).
    let step = len.div_ceil(pieces).next_multiple_of(16);
    let (dst, a, b) = (Part(dst), Operand(a), Operand(b));
    let (dst, a, b) = (&dst, &a, &b);
    super::parallel::team::run(len.div_ceil(step), &|p| {
        let (lo, hi) = (p * step, ((p + 1) * step).min(len));
        let (dst, a, b) = (dst.0, a.0, b.0);
        // SAFETY: the caller's, on the block of rows (or columns) `lo..hi`
        // of `dst`, which no other piece writes.
        unsafe {
            if by_rows {
                let a = Strided { at: a.at.offset(lo as isize * a.row), ..a };
                let dst = Strided { at: dst.at.offset(lo as isize * dst.row), ..dst };
                gemm_call(hi - lo, n, k, dst, a, b, accumulate, scale)
            } else {
                let b = Strided { at: b.at.offset(lo as isize * b.col), ..b };
                let dst = Strided { at: dst.at.offset(lo as isize * dst.col), ..dst };
                gemm_call(m, hi - lo, k, dst, a, b, accumulate, scale)
            }
        }
    });
}

/// A matrix operand of [`product`]: the address of its element (0, 0) and
/// the distances, in elements, between neighbouring columns and rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strided<P> {
    pub at: P,
    pub col: isize,
    pub row: isize,
}

impl<P> Strided<P> {
    /// A row-major matrix `width` elements wide.
    pub(crate) fn rows(at: P, width: usize) -> Strided<P> {
        Strided { at, col: 1, row: width as isize }
    }

    /// The transpose of a row-major matrix `width` elements wide.
    pub(crate) fn transposed(at: P, width: usize) -> Strided<P> {
        Strided { at, col: width as isize, row: 1 }
    }
}

/// One `gemm` call on this thread: [`scaled_product`] in one piece.
///
/// # Safety
/// As for [`product`].
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_call<T: num_like::Scalar>(
    m: usize,
    n: usize,
    k: usize,
    dst: Strided<*mut T>,
    a: Strided<*const T>,
    b: Strided<*const T>,
    accumulate: bool,
    scale: T,
) {
    // SAFETY: the caller's.
    if unsafe { skinny::product(m, n, k, dst, a, b, accumulate, scale) } {
        return;
    }
    let keep = if accumulate { T::ONE } else { T::ZERO };
    // SAFETY: the caller's.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.at,
            dst.col,
            dst.row,
            accumulate,
            a.at,
            a.col,
            a.row,
            b.at,
            b.col,
            b.row,
            keep,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

pub(crate) mod num_like {
    /// The float types `gemm` multiplies.
    pub trait Scalar:
        Copy
        + Send
        + Sync
        + 'static
        + std::ops::Add<Output = Self>
        + std::ops::Mul<Output = Self>
        + crate::array::simd::MulAdd
    {
        const ZERO: Self;
        const ONE: Self;
        const MINUS_ONE: Self;
    }
    impl Scalar for f32 {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
        const MINUS_ONE: Self = -1.0;
    }
    impl Scalar for f64 {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
        const MINUS_ONE: Self = -1.0;
    }
}
