//! Convolutions on the GPU as matrix products: each group's columns
//! gathered by a generated kernel (`im2col`), multiplied by cuBLAS, and
//! for the input's gradient the products' columns added back where they
//! were read (`col2im`). The composition is written over any backend and
//! any column kernels, so the CPU backend with the kernels built for the
//! host tests it without a GPU.

use cudarc::driver::DeviceRepr;

use super::codegen::MAX_RANK;
use crate::array::backend::Backend;
use crate::array::{Array, ConvGeometry, LayoutOp};

/// A convolution's sizes, laid out as the prelude's `ConvDims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ConvDims {
    rank: i32,
    pad: i32,
    n: i64,
    c: i64,
    groups: i64,
    cg: i64,
    p_total: i64,
    k_total: i64,
    input: [i64; 3],
    out: [i64; 3],
    win: [i64; 3],
    stride: [i64; 3],
    lo: [i64; 3],
    ldil: [i64; 3],
    rdil: [i64; 3],
}

// SAFETY: `ConvDims` is plain data with the C layout of the prelude's struct.
unsafe impl DeviceRepr for ConvDims {}

impl ConvDims {
    /// The sizes of convolving `x` (`[N, C, S..]`) with windows of `window`
    /// in `groups` groups; `None` past 3 spatial axes.
    fn new(x: &[usize], window: &[usize], geo: &ConvGeometry, groups: usize) -> Option<ConvDims> {
        let rank = geo.rank();
        if rank > 3 {
            return None;
        }
        let out = geo.out_shape(&x[2..], window);
        let mut d = ConvDims {
            rank: rank as i32,
            n: x[0] as i64,
            c: x[1] as i64,
            groups: groups as i64,
            cg: (x[1] / groups) as i64,
            p_total: out.iter().product::<usize>() as i64,
            k_total: window.iter().product::<usize>() as i64,
            ..ConvDims::default()
        };
        for a in 0..rank {
            d.input[a] = x[2 + a] as i64;
            d.out[a] = out[a] as i64;
            d.win[a] = window[a] as i64;
            d.stride[a] = geo.strides[a] as i64;
            d.lo[a] = geo.padding[a].0;
            d.ldil[a] = geo.lhs_dilation[a] as i64;
            d.rdil[a] = geo.rhs_dilation[a] as i64;
        }
        Some(d)
    }

    /// The columns' shape, `[G, N·P, Cg·K]`.
    pub(super) fn col_shape(&self) -> [usize; 3] {
        [self.groups as usize, (self.n * self.p_total) as usize, (self.cg * self.k_total) as usize]
    }

    fn out_shape(&self) -> Vec<usize> {
        self.out[..self.rank as usize].iter().map(|&n| n as usize).collect()
    }
}

/// A device's column kernels.
pub(super) trait Columns {
    /// `col [G, N·P, Cg·K]` of `x [N, C, S..]`.
    fn im2col(&self, x: &Array, g: &ConvDims) -> Array;
    /// `dx` of shape `x_shape` (`[N, C, S..]`) with every element of
    /// `col [G, N·P, Cg·K]` added where `im2col` read it.
    fn col2im(&self, col: &Array, g: &ConvDims, x_shape: &[usize]) -> Array;
}

fn permute(b: &dyn Backend, x: &Array, perm: &[usize]) -> Array {
    b.layout(&LayoutOp::Permute(perm.to_vec()), x)
}

/// `x [N, C, S..]` cross-correlated with `w [O, C/groups, K..]`: `[N, O, P..]`.
pub(super) fn conv(
    b: &dyn Backend,
    cols: &dyn Columns,
    x: &Array,
    w: &Array,
    geo: &ConvGeometry,
    groups: usize,
) -> Option<Array> {
    let g = ConvDims::new(x.shape(), &w.shape()[2..], geo, groups)?;
    let (n, o, p) = (g.n as usize, w.shape()[0], g.p_total as usize);
    let og = o / groups;
    let col = cols.im2col(x, &g);
    let wg = w.reshape(&[groups, og, g.cg as usize * g.k_total as usize]);
    // [G, N·P, Og] → [G, N, P, Og] → [N, G, Og, P] = [N, O, P..].
    let y = b.matmul(&col, &wg, false, true).reshape(&[groups, n, p, og]);
    let mut shape = vec![n, o];
    shape.extend(g.out_shape());
    Some(permute(b, &y, &[1, 0, 3, 2]).reshape(&shape))
}

/// The gradient of [`conv`] with respect to the kernel: `[O, C/groups, window..]`.
pub(super) fn kernel_grad(
    b: &dyn Backend,
    cols: &dyn Columns,
    x: &Array,
    ct: &Array,
    window: &[usize],
    geo: &ConvGeometry,
    groups: usize,
) -> Option<Array> {
    let g = ConvDims::new(x.shape(), window, geo, groups)?;
    let (n, o, p) = (g.n as usize, ct.shape()[1], g.p_total as usize);
    let og = o / groups;
    let col = cols.im2col(x, &g);
    // [N, O, P..] → [N, G, Og, P] → [G, Og, N, P] = [G, Og, N·P].
    let ctg = permute(b, &ct.reshape(&[n, groups, og, p]), &[1, 2, 0, 3]).reshape(&[groups, og, n * p]);
    let mut shape = vec![o, g.cg as usize];
    shape.extend(window);
    Some(b.matmul(&ctg, &col, false, false).reshape(&shape))
}

/// The gradient of [`conv`] with respect to its input, of spatial shape `input`.
pub(super) fn input_grad(
    b: &dyn Backend,
    cols: &dyn Columns,
    ct: &Array,
    w: &Array,
    geo: &ConvGeometry,
    groups: usize,
    input: &[usize],
) -> Option<Array> {
    let mut x_shape = vec![ct.shape()[0], w.shape()[1] * groups];
    x_shape.extend(input);
    let g = ConvDims::new(&x_shape, &w.shape()[2..], geo, groups)?;
    let (n, o, p) = (g.n as usize, w.shape()[0], g.p_total as usize);
    let og = o / groups;
    // [N, O, P..] → [N, G, Og, P] → [G, N, P, Og] = [G, N·P, Og].
    let ctg = permute(b, &ct.reshape(&[n, groups, og, p]), &[1, 0, 3, 2]).reshape(&[groups, n * p, og]);
    let wg = w.reshape(&[groups, og, g.cg as usize * g.k_total as usize]);
    let col = b.matmul(&ctg, &wg, false, false);
    Some(cols.col2im(&col, &g, &x_shape))
}

/// A pooling window over every axis of an array, laid out as the prelude's `WindowDims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct WindowDims {
    rank: i32,
    pad: i32,
    shape: [i64; MAX_RANK],
    out: [i64; MAX_RANK],
    win: [i64; MAX_RANK],
    stride: [i64; MAX_RANK],
    lo: [i64; MAX_RANK],
    taps: i64,
}

// SAFETY: `WindowDims` is plain data with the C layout of the prelude's struct.
unsafe impl DeviceRepr for WindowDims {}

impl WindowDims {
    /// Windows of `window` placed by `strides` and `padding` over an array
    /// of `shape`, and the output's shape; `None` past [`MAX_RANK`] axes.
    pub(super) fn new(
        shape: &[usize],
        window: &[usize],
        strides: &[usize],
        padding: &[(usize, usize)],
    ) -> Option<(WindowDims, Vec<usize>)> {
        if shape.len() > MAX_RANK {
            return None;
        }
        let out: Vec<usize> = (0..shape.len())
            .map(|i| {
                (shape[i] + padding[i].0 + padding[i].1).checked_sub(window[i]).map_or(0, |room| room / strides[i] + 1)
            })
            .collect();
        let mut d = WindowDims {
            rank: shape.len() as i32,
            taps: window.iter().product::<usize>() as i64,
            ..WindowDims::default()
        };
        for a in 0..shape.len() {
            d.shape[a] = shape[a] as i64;
            d.out[a] = out[a] as i64;
            d.win[a] = window[a] as i64;
            d.stride[a] = strides[a] as i64;
            d.lo[a] = padding[a].0 as i64;
        }
        Some((d, out))
    }
}
