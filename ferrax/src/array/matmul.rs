//! Batched matrix products through the `gemm` crate (AVX-512/AVX2/NEON
//! kernels chosen at run time).

use rayon::prelude::*;

use super::{Array, Buffer, Element};

/// Below this many flops per product one thread runs it. In isolation,
/// `gemm` with its rayon parallelism lost at 100³ (2e6 flops: 25 µs against
/// 9.5 µs on one thread) and won narrowly from 128³ (4e6 flops: 15 µs
/// against 17 µs); but among a model's other operations, waking the second
/// thread for mid-size products cost more than it saved: the transformer
/// step `gpt_step` (products of 8e6 flops, [1024, 64]·[64, 64]) took 13.2–14.2
/// ms with the limit at 2^22 and 11.6–12.2 ms at 2^24, in alternating runs,
/// while W2, W4, W5, W6 and the CNN steps moved within their noise.
const PAR_FLOPS: usize = 1 << 24;

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
    if d.batch > 1 && flops < PAR_FLOPS && d.batch * flops >= PAR_FLOPS {
        spare.par_chunks_mut(sc).enumerate().for_each(|(i, c)| {
            gemm_one(&a[i * sa..][..sa], &b[i * sb..][..sb], c.as_mut_ptr().cast(), d, gemm::Parallelism::None)
        });
    } else {
        let par = if flops >= PAR_FLOPS { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
        for (i, c) in spare.chunks_mut(sc).enumerate() {
            gemm_one(&a[i * sa..][..sa], &b[i * sb..][..sb], c.as_mut_ptr().cast(), d, par);
        }
    }
    // SAFETY: every chunk of `sc` elements was written by one `gemm_one`.
    unsafe { out.set_len(len) };
    out
}

/// One product into `c`, which points at `m * n` writable elements (not
/// necessarily initialised: they are written, never read).
fn gemm_one<T: num_like::Scalar>(a: &[T], b: &[T], c: *mut T, d: MatmulDims, par: gemm::Parallelism) {
    // op(A) [m, k] and op(B) [k, n] as views of their row-major storage.
    let a = if d.ta { Strided::transposed(a.as_ptr(), d.m) } else { Strided::rows(a.as_ptr(), d.k) };
    let b = if d.tb { Strided::transposed(b.as_ptr(), d.k) } else { Strided::rows(b.as_ptr(), d.n) };
    // SAFETY: the slices hold exactly batch-free m*k and k*n elements (the
    // caller's slicing) and `c` points at m*n; the views address only inside
    // them; `c` does not alias `a` or `b`, and is only written.
    unsafe { product(d.m, d.n, d.k, Strided::rows(c, d.n), a, b, false, par) }
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

/// `dst [m, n] = a [m, k] · b [k, n]` through the `gemm` crate, or `dst +=`
/// with `accumulate`; without it `dst` is only written, so it need not be
/// initialised.
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
    par: gemm::Parallelism,
) {
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
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

pub(crate) mod num_like {
    /// The float types `gemm` multiplies.
    pub trait Scalar: Copy + 'static {
        const ZERO: Self;
        const ONE: Self;
    }
    impl Scalar for f32 {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
    }
    impl Scalar for f64 {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
    }
}
