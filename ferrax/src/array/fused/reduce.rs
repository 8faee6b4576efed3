//! A fused program that ends with a reduction: run row by row over the
//! reduced trailing axes, each row's reduction taken as its tiles are
//! computed, in the order of the eager reduction.

use rayon::prelude::*;

use super::{
    chunk_len, worth_splitting, FloatRuns, FusedProgram, FusedReduce, Place, SendPtr, Source, Workspace, TILE,
};
use crate::array::reduce::sum_slice;
use crate::array::{Array, ReduceOp};

impl FusedProgram {
    /// Every step over the whole shape, row by row of the reduced axes, and
    /// the reduction of each row. A sum follows `sum_slice`'s pairwise tree,
    /// computing the program on each of its nodes of up to a tile, so every
    /// row's sum has the eager bits; the other reductions fold in order.
    pub(super) fn run_reducing<T: FloatRuns>(
        &self,
        r: FusedReduce,
        sources: &[Source<T>],
        dest: &[SendPtr<T>],
        shape: &[usize],
    ) -> Array {
        assert!(r.axes <= shape.len(), "fused program: reducing {} axes of {shape:?}", r.axes);
        let split = shape.len() - r.axes;
        let (rows, row): (usize, usize) = (shape[..split].iter().product(), shape[split..].iter().product());
        let mut out: Vec<T> = vec![T::ZERO; rows];
        let width = TILE.min(row.max(1));
        if rows == 1 {
            out[0] = self.reduce_par(r, sources, dest, 0, row);
        } else if worth_splitting(rows * row, self.cost) {
            let c = chunk_len(rows * row, self.cost).div_ceil(row.max(1));
            out.par_chunks_mut(c).enumerate().for_each(|(i, o)| {
                let mut ws = self.workspace(sources, width);
                for (k, v) in o.iter_mut().enumerate() {
                    *v = self.reduce_row(&mut ws, r, sources, dest, (i * c + k) * row, row);
                }
            });
        } else {
            let mut ws = self.workspace(sources, width);
            for (k, v) in out.iter_mut().enumerate() {
                *v = self.reduce_row(&mut ws, r, sources, dest, k * row, row);
            }
        }
        Array::from_vec(out, &shape[..split])
    }

    /// One long row's reduction, its sum's pairwise tree split across threads
    /// near the root (the tree, and so the bits, are the same).
    fn reduce_par<T: FloatRuns>(
        &self,
        r: FusedReduce,
        sources: &[Source<T>],
        dest: &[SendPtr<T>],
        start: usize,
        len: usize,
    ) -> T {
        if r.op == ReduceOp::Sum && len > 4 * TILE && worth_splitting(len, self.cost) {
            let mid = (len / 2).next_multiple_of(8);
            let (a, b) = rayon::join(
                || self.reduce_par(r, sources, dest, start, mid),
                || self.reduce_par(r, sources, dest, start + mid, len - mid),
            );
            return a.wadd(b);
        }
        let mut ws = self.workspace(sources, TILE.min(len.max(1)));
        self.reduce_row(&mut ws, r, sources, dest, start, len)
    }

    /// The reduction of elements `start..start + len`, computing the program over them.
    fn reduce_row<T: FloatRuns>(
        &self,
        ws: &mut Workspace<T>,
        r: FusedReduce,
        sources: &[Source<T>],
        dest: &[SendPtr<T>],
        start: usize,
        len: usize,
    ) -> T {
        let (init, fold): (T, fn(T, T) -> T) = match r.op {
            ReduceOp::Sum => return self.sum_tree(ws, r.step, sources, dest, start, len),
            ReduceOp::Prod => (T::ONE, T::wmul),
            ReduceOp::Max => (T::MIN_VALUE, T::max_nan),
            ReduceOp::Min => (T::MAX_VALUE, T::min_nan),
        };
        let (mut acc, mut done) = (init, 0);
        while done < len {
            let m = ws.width.min(len - done);
            self.tile(ws, sources, start + done, m, dest);
            acc = self.values(ws, r.step, start + done, m, dest).iter().fold(acc, |a, &b| fold(a, b));
            done += m;
        }
        acc
    }

    /// `sum_slice` of step `step`'s values over `start..start + len`: its
    /// splits down to nodes of a tile, where the program runs and
    /// `sum_slice` finishes the node as it would within the whole row.
    fn sum_tree<T: FloatRuns>(
        &self,
        ws: &mut Workspace<T>,
        step: usize,
        sources: &[Source<T>],
        dest: &[SendPtr<T>],
        start: usize,
        len: usize,
    ) -> T {
        if len > ws.width {
            let mid = (len / 2).next_multiple_of(8);
            let left = self.sum_tree(ws, step, sources, dest, start, mid);
            return left.wadd(self.sum_tree(ws, step, sources, dest, start + mid, len - mid));
        }
        self.tile(ws, sources, start, len, dest);
        sum_slice(self.values(ws, step, start, len, dest))
    }

    /// Step `step`'s values in the tile just computed at `s..s + m`.
    fn values<'w, T: FloatRuns>(
        &self,
        ws: &'w Workspace<T>,
        step: usize,
        s: usize,
        m: usize,
        dest: &[SendPtr<T>],
    ) -> &'w [T] {
        match self.places[step] {
            Place::Reg(r) => &ws.regs[r * ws.width..][..m],
            // SAFETY: the tile just wrote these elements of the output.
            Place::Out(k) => unsafe { std::slice::from_raw_parts(dest[k].0.add(s), m) },
        }
    }
}
