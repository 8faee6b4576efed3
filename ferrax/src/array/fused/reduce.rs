//! A fused program that ends with a reduction: run row by row over the
//! reduced trailing axes, each row's reduction taken as its tiles are
//! computed, in the order of the eager reduction.

use super::{chunk_len, team, worth_splitting, FloatRuns, FusedReduce, Pass, Place, Workspace, TILE};
use crate::array::reduce::sum_slice;
use crate::array::{Array, ReduceOp};

impl<T: FloatRuns> Pass<'_, T> {
    /// Every step over the whole shape, row by row of the reduced axes, and
    /// the reduction of each row. A sum follows `sum_slice`'s pairwise tree,
    /// computing the program on each of its nodes of up to a tile, so every
    /// row's sum has the eager bits; the other reductions fold in order.
    pub(super) fn run_reducing(&self, r: FusedReduce, shape: &[usize]) -> Array {
        let cost = self.program.cost;
        assert!(r.axes <= shape.len(), "fused program: reducing {} axes of {shape:?}", r.axes);
        let split = shape.len() - r.axes;
        let (rows, row): (usize, usize) = (shape[..split].iter().product(), shape[split..].iter().product());
        let mut out: Vec<T> = vec![T::ZERO; rows];
        let width = TILE.min(row.max(1));
        if rows == 1 {
            out[0] = self.reduce_par(r, 0, row);
        } else if worth_splitting(rows * row, cost) {
            let c = chunk_len(rows * row, cost).div_ceil(row.max(1));
            team::for_chunks(&mut out, c, |start, o| {
                let mut ws = self.workspace(width);
                for (k, v) in o.iter_mut().enumerate() {
                    *v = self.reduce_row(&mut ws, r, (start + k) * row, row);
                }
            });
        } else {
            let mut ws = self.workspace(width);
            for (k, v) in out.iter_mut().enumerate() {
                *v = self.reduce_row(&mut ws, r, k * row, row);
            }
        }
        Array::from_vec(out, &shape[..split])
    }

    /// One long row's reduction, its sum's pairwise tree split across threads
    /// near the root (the tree, and so the bits, are the same).
    fn reduce_par(&self, r: FusedReduce, start: usize, len: usize) -> T {
        if r.op == ReduceOp::Sum && len > 4 * TILE && worth_splitting(len, self.program.cost) {
            let mid = (len / 2).next_multiple_of(8);
            let mut halves = [T::ZERO; 2];
            // Below the root the team is busy, so each half's own halves
            // run on its thread, in the same tree.
            team::for_chunks(&mut halves, 1, |i, h| {
                h[0] = if i == 0 { self.reduce_par(r, start, mid) } else { self.reduce_par(r, start + mid, len - mid) }
            });
            return halves[0].wadd(halves[1]);
        }
        let mut ws = self.workspace(TILE.min(len.max(1)));
        self.reduce_row(&mut ws, r, start, len)
    }

    /// The reduction of elements `start..start + len`, computing the program over them.
    fn reduce_row(&self, ws: &mut Workspace<T>, r: FusedReduce, start: usize, len: usize) -> T {
        let (init, fold): (T, fn(T, T) -> T) = match r.op {
            ReduceOp::Sum => return self.sum_tree(ws, r.step, start, len),
            ReduceOp::Prod => (T::ONE, T::wmul),
            ReduceOp::Max => (T::MIN_VALUE, T::max_nan),
            ReduceOp::Min => (T::MAX_VALUE, T::min_nan),
        };
        let (mut acc, mut done) = (init, 0);
        while done < len {
            let m = ws.width.min(len - done);
            self.tile(ws, start + done, m);
            acc = self.values(ws, r.step, start + done, m).iter().fold(acc, |a, &b| fold(a, b));
            done += m;
        }
        acc
    }

    /// `sum_slice` of step `step`'s values over `start..start + len`: its
    /// splits down to nodes of a tile, where the program runs and
    /// `sum_slice` finishes the node as it would within the whole row.
    fn sum_tree(&self, ws: &mut Workspace<T>, step: usize, start: usize, len: usize) -> T {
        if len > ws.width {
            let mid = (len / 2).next_multiple_of(8);
            let left = self.sum_tree(ws, step, start, mid);
            return left.wadd(self.sum_tree(ws, step, start + mid, len - mid));
        }
        self.tile(ws, start, len);
        sum_slice(self.values(ws, step, start, len))
    }

    /// Step `step`'s values in the tile just computed at `s..s + m`.
    fn values<'w>(&self, ws: &'w Workspace<T>, step: usize, s: usize, m: usize) -> &'w [T] {
        match self.program.places[step] {
            Place::Reg(r) => &ws.regs[ws.reg0() + r * ws.width..][..m],
            // SAFETY: the tile just wrote these elements of the output.
            Place::Out(k) => unsafe { std::slice::from_raw_parts(self.dest[k].0.add(s), m) },
        }
    }
}
