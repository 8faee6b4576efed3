//! Where a kernel reads and writes: the `Dims` parameter of the generated
//! kernels (an index space and a stride set per operand), and the layout
//! changes and concatenations planned as strided copies. Pure index
//! arithmetic, tested against the CPU's layout kernels without a GPU.

use cudarc::driver::DeviceRepr;

use super::codegen::MAX_RANK;
use crate::array::{strides, LayoutOp};

/// The indexing parameters of a kernel, laid out as the prelude's `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Dims {
    pub(super) rank: i32,
    pad: i32,
    pub(super) shape: [i64; MAX_RANK],
    pub(super) st: [[i64; MAX_RANK]; 4],
    pub(super) base: [i64; 4],
}

// SAFETY: `Dims` is plain data with the C layout of the prelude's struct.
unsafe impl DeviceRepr for Dims {}

impl Dims {
    /// Contiguous operands of the output's shape: offsets are the index.
    pub(super) fn flat() -> Dims {
        Dims { rank: -1, ..Dims::default() }
    }

    /// The index space `shape` with one stride set per operand (and base
    /// offsets), axes of extent 1 dropped and adjacent axes merged where
    /// every operand allows; `None` when more than [`MAX_RANK`] axes remain.
    pub(super) fn new(shape: &[usize], operands: &[Vec<i64>], base: &[i64]) -> Option<Dims> {
        let mut axes: Vec<(i64, Vec<i64>)> = Vec::new();
        for (a, &n) in shape.iter().enumerate() {
            if n == 1 {
                continue;
            }
            let st: Vec<i64> = operands.iter().map(|s| s[a]).collect();
            if let Some((pn, pst)) = axes.last_mut() {
                if pst.iter().zip(&st).all(|(p, s)| *p == s * n as i64) {
                    *pn *= n as i64;
                    *pst = st;
                    continue;
                }
            }
            axes.push((n as i64, st));
        }
        if axes.len() > MAX_RANK {
            return None;
        }
        let mut d = Dims { rank: axes.len() as i32, ..Dims::default() };
        for (a, (n, st)) in axes.iter().enumerate() {
            d.shape[a] = *n;
            for (k, s) in st.iter().enumerate() {
                d.st[k][a] = *s;
            }
        }
        d.base[..base.len()].copy_from_slice(base);
        Some(d)
    }

    /// Operands broadcast to `out` (numpy's rule): their strides, 0 along broadcast axes.
    pub(super) fn broadcast(out: &[usize], operands: &[&[usize]]) -> Option<Dims> {
        if operands.iter().all(|s| crate::array::same_shape(s, out)) {
            return Some(Dims::flat());
        }
        let sts: Vec<Vec<i64>> = operands.iter().map(|s| broadcast_strides(s, out)).collect();
        Dims::new(out, &sts, &[])
    }
}

/// The strides of a row-major array of `shape` read as `out` (broadcasting).
pub(super) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<i64> {
    let own = strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len()).map(|a| if a < lead || shape[a - lead] == 1 { 0 } else { own[a - lead] as i64 }).collect()
}

pub(super) fn row_major(shape: &[usize]) -> Vec<i64> {
    strides(shape).into_iter().map(|s| s as i64).collect()
}

/// A layout change as one strided copy into a fresh array.
#[derive(Debug)]
pub(super) struct CopyPlan {
    /// The result's shape.
    pub(super) out_shape: Vec<usize>,
    /// The copy over its index space: source `st[0]`/`base[0]`, destination
    /// `st[1]`/`base[1]`; `None` when more than [`MAX_RANK`] axes remain.
    pub(super) dims: Option<Dims>,
    /// Elements copied (the index space's size).
    pub(super) n: usize,
    /// Whether the result is zeroed first (padding: the copy fills the inside).
    pub(super) zeroed: bool,
}

/// `op` on an array of `shape` as a strided copy.
pub(super) fn layout_plan(op: &LayoutOp, shape: &[usize]) -> CopyPlan {
    let own = row_major(shape);
    let size = |s: &[usize]| s.iter().product::<usize>();
    let (out_shape, src, base): (Vec<usize>, Vec<i64>, i64) = match op {
        LayoutOp::Broadcast(to) => (to.clone(), broadcast_strides(shape, to), 0),
        LayoutOp::Permute(perm) => {
            (perm.iter().map(|&p| shape[p]).collect(), perm.iter().map(|&p| own[p]).collect(), 0)
        }
        LayoutOp::Slice { starts, ends } => (
            starts.iter().zip(ends).map(|(s, e)| e - s).collect(),
            own.clone(),
            starts.iter().zip(&own).map(|(&s, st)| s as i64 * st).sum(),
        ),
        LayoutOp::Rev(axes) => {
            let mut st = own.clone();
            let mut base = 0;
            for &a in axes {
                base += (shape[a] as i64 - 1).max(0) * own[a];
                st[a] = -own[a];
            }
            (shape.to_vec(), st, base)
        }
        LayoutOp::Pad { lo, hi } => {
            let out: Vec<usize> = shape.iter().zip(lo.iter().zip(hi)).map(|(n, (l, h))| n + l + h).collect();
            let dst = row_major(&out);
            let base = lo.iter().zip(&dst).map(|(&l, s)| l as i64 * s).sum();
            let dims = Dims::new(shape, &[own, dst], &[0, base]);
            return CopyPlan { out_shape: out, dims, n: size(shape), zeroed: true };
        }
    };
    let dims = Dims::new(&out_shape, &[src, row_major(&out_shape)], &[base, 0]);
    CopyPlan { n: size(&out_shape), out_shape, dims, zeroed: false }
}

/// Arrays of `shapes` joined along `axis`: the result's shape and, per
/// array, the copy placing it (`None` past [`MAX_RANK`] axes).
pub(super) fn concat_plan(shapes: &[&[usize]], axis: usize) -> (Vec<usize>, Vec<Option<Dims>>) {
    let mut out = shapes[0].to_vec();
    out[axis] = shapes.iter().map(|s| s[axis]).sum();
    let dst = row_major(&out);
    let mut at = 0;
    let mut copies = Vec::new();
    for s in shapes {
        copies.push(Dims::new(s, &[row_major(s), dst.clone()], &[0, at as i64 * dst[axis]]));
        at += s[axis];
    }
    (out, copies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::{backend, broadcast_shapes, Array, BinaryOp, Device, Rng};

    /// The prelude's `off`, in Rust.
    fn off(d: &Dims, k: usize, mut i: i64) -> i64 {
        if d.rank < 0 {
            return i;
        }
        let mut o = d.base[k];
        for a in (0..d.rank as usize).rev() {
            let s = d.shape[a];
            o += (i % s) * d.st[k][a];
            i /= s;
        }
        o
    }

    /// The copy kernel, in Rust: `dst[off(1, i)] = src[off(0, i)]`.
    fn copy(d: &Dims, n: usize, src: &[i64], dst: &mut [i64]) {
        for i in 0..n as i64 {
            dst[off(d, 1, i) as usize] = src[off(d, 0, i) as usize];
        }
    }

    fn iota(shape: &[usize]) -> Array {
        let n: usize = shape.iter().product();
        Array::from_vec((1..=n as i64).collect(), shape)
    }

    fn random_shape(rng: &mut Rng, rank: usize) -> Vec<usize> {
        (0..rank).map(|_| [0, 1, 1, 2, 3, 4][rng.below(6)]).collect()
    }

    /// Every layout change, planned as the GPU runs it and copied by the
    /// kernel's index arithmetic, gives the CPU's elements: random shapes
    /// of rank 0 to 6 with empty and size-1 axes, and ranks past `MAX_RANK`.
    #[test]
    fn layout_changes_as_strided_copies_match_the_cpu() {
        let mut rng = Rng::new(7);
        let cpu = backend(Device::Cpu);
        for trial in 0..3000 {
            let rank = [0, 1, 2, 3, 4, 6, 10][trial % 7];
            let shape = random_shape(&mut rng, rank);
            let x = iota(&shape);
            let op = match rng.below(5) {
                0 => {
                    let extra = rng.below(3);
                    let mut to: Vec<usize> = random_shape(&mut rng, extra);
                    to.extend(shape.iter().map(|&n| if n == 1 { 1 + rng.below(3) } else { n }));
                    LayoutOp::Broadcast(to)
                }
                1 => {
                    let mut perm: Vec<usize> = (0..rank).collect();
                    for i in (1..rank).rev() {
                        perm.swap(i, rng.below(i + 1));
                    }
                    LayoutOp::Permute(perm)
                }
                2 => {
                    let starts: Vec<usize> = shape.iter().map(|&n| rng.below(n + 1)).collect();
                    let ends = starts.iter().zip(&shape).map(|(&s, &n)| s + rng.below(n - s + 1)).collect();
                    LayoutOp::Slice { starts, ends }
                }
                3 => LayoutOp::Rev((0..rank).filter(|_| rng.below(2) == 1).collect()),
                _ => LayoutOp::Pad {
                    lo: (0..rank).map(|_| rng.below(3)).collect(),
                    hi: (0..rank).map(|_| rng.below(3)).collect(),
                },
            };
            let want = cpu.layout(&op, &x);
            let plan = layout_plan(&op, &shape);
            assert_eq!(plan.out_shape, want.shape(), "{op:?} of {shape:?}");
            let Some(dims) = plan.dims else {
                assert!(rank > MAX_RANK, "{op:?} of {shape:?} found no copy");
                continue;
            };
            let mut got = vec![0i64; want.size()];
            copy(&dims, plan.n, x.as_slice(), &mut got);
            assert_eq!(got, want.as_slice::<i64>(), "{op:?} of {shape:?} (zeroed first: {})", plan.zeroed);
        }
    }

    #[test]
    fn concatenations_as_strided_copies_match_the_cpu() {
        let mut rng = Rng::new(8);
        for trial in 0..1000 {
            let rank = 1 + trial % 5;
            let shape = random_shape(&mut rng, rank);
            let axis = rng.below(rank);
            let parts: Vec<Array> = (0..1 + rng.below(3))
                .map(|_| {
                    let mut s = shape.clone();
                    s[axis] = rng.below(4);
                    iota(&s)
                })
                .collect();
            let want = crate::array::concat(&parts.iter().collect::<Vec<_>>(), axis);
            let shapes: Vec<&[usize]> = parts.iter().map(Array::shape).collect();
            let (out, copies) = concat_plan(&shapes, axis);
            assert_eq!(out, want.shape());
            let mut got = vec![0i64; want.size()];
            for (p, d) in parts.iter().zip(copies) {
                copy(&d.expect("ranks within MAX_RANK"), p.size(), p.as_slice(), &mut got);
            }
            assert_eq!(got, want.as_slice::<i64>(), "{shapes:?} along {axis}");
        }
    }

    /// Operands read through `Dims::broadcast` give numpy's broadcasting.
    #[test]
    fn broadcast_operands_are_read_as_numpy_broadcasts() {
        let mut rng = Rng::new(9);
        let cpu = backend(Device::Cpu);
        for _ in 0..2000 {
            let rank = rng.below(6);
            let out = random_shape(&mut rng, rank);
            let operand = |rng: &mut Rng| -> Vec<usize> {
                let drop = rng.below(rank + 1);
                out[drop..].iter().map(|&n| if rng.below(3) == 0 { 1 } else { n }).collect()
            };
            let (sa, sb) = (operand(&mut rng), operand(&mut rng));
            let (a, b) = (iota(&sa), iota(&sb));
            let shape = broadcast_shapes(&sa, &sb).expect("both broadcast to out");
            let want = cpu.binary(BinaryOp::Mul, &a, &b);
            let d = Dims::broadcast(&shape, &[&sa, &sb]).expect("few axes");
            let n: usize = shape.iter().product();
            let got: Vec<i64> = (0..n as i64)
                .map(|i| a.as_slice::<i64>()[off(&d, 0, i) as usize] * b.as_slice::<i64>()[off(&d, 1, i) as usize])
                .collect();
            assert_eq!(got, want.as_slice::<i64>(), "{sa:?} * {sb:?}");
        }
    }
}
