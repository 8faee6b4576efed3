//! Matrix products.

use crate::array::{backend_of, broadcast_shapes, Array, Aval};
use crate::core::{bind, Kind, Lin, Param, Params, SingleOutput, Tensor};

use super::promote::promote_pair;
use super::{add_tangents, batching, constant, expect_float, expect_same_dtype, if_linear};

/// The `matmul` primitive: batched `op(a) @ op(b)` where `op` transposes
/// the last two axes of an operand whose flag is set. Both operands have
/// rank ≥ 2 and equal batch dimensions; numpy's broadcasting and vector
/// promotion happen in [`Tensor::matmul`] before this primitive is bound.
#[derive(Clone, Copy, Debug, Default)]
pub struct Matmul {
    /// Transpose the last two axes of the left operand.
    pub ta: bool,
    /// Transpose the last two axes of the right operand.
    pub tb: bool,
}

impl Matmul {
    /// `(rows, cols)` of `op(x)` for a stored matrix of shape `s`.
    fn dims(s: &[usize], transposed: bool) -> (usize, usize) {
        let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
        if transposed {
            (c, r)
        } else {
            (r, c)
        }
    }
}

impl SingleOutput for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn params(&self) -> Params {
        vec![("ta", Param::Bool(self.ta)), ("tb", Param::Bool(self.tb))]
    }
    fn kind(&self) -> Kind {
        Kind::Contraction
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let (a, b) = (ins[0], ins[1]);
        expect_same_dtype("matmul", a, b);
        expect_float("matmul", a);
        if a.rank() < 2 || a.rank() != b.rank() || a.shape[..a.rank() - 2] != b.shape[..b.rank() - 2] {
            panic!(
                "matmul: the primitive needs operands of rank >= 2 with equal batch dimensions, got {:?} and {:?}; \
                 Tensor::matmul broadcasts for you",
                a.shape, b.shape
            );
        }
        let (m, k) = Matmul::dims(&a.shape, self.ta);
        let (k2, n) = Matmul::dims(&b.shape, self.tb);
        if k != k2 {
            panic!("matmul: inner dimensions differ: {:?} @ {:?}", a.shape, b.shape);
        }
        let mut shape = a.shape[..a.rank() - 2].to_vec();
        shape.extend([m, n]);
        Aval { dtype: a.dtype, shape }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).matmul(ins[0], ins[1], self.ta, self.tb)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let (a, b) = (&x[0], &x[1]);
        let mm = |a: &Tensor, b: &Tensor| bind(*self, &[a.clone(), b.clone()]);
        let vector = |v: &Tensor, bd: usize, len_at: usize| v.rank() == 3 && v.shape()[batching::phys(len_at, bd)] == 1;
        match (axes[0], axes[1]) {
            // One matrix times a batch of column vectors: the batch of
            // results is (vectorᵀ · op(a)ᵀ) stacked, one product with the
            // vectors as rows and no copy. (A [k, 1] or [1, k] vector has the
            // same layout either way round.)
            (None, Some(bd)) if a.rank() == 2 && vector(b, bd, if self.tb { 0 } else { 1 }) => {
                let rows = batching::move_axis(b, bd, 0);
                let k: usize = rows.shape()[1..].iter().product();
                let out = bind(Matmul { ta: false, tb: !self.ta }, &[rows.reshape(&[size, k]), a.clone()]);
                let m = out.shape()[1];
                (out.reshape(&[size, m, 1]), Some(0))
            }
            // A batch of row vectors times one matrix: likewise, the rows stack.
            (Some(bd), None) if b.rank() == 2 && vector(a, bd, if self.ta { 1 } else { 0 }) => {
                let rows = batching::move_axis(a, bd, 0);
                let k: usize = rows.shape()[1..].iter().product();
                let out = bind(Matmul { ta: false, tb: self.tb }, &[rows.reshape(&[size, k]), b.clone()]);
                let n = out.shape()[1];
                (out.reshape(&[size, 1, n]), Some(0))
            }
            // A batch of left operands against one right operand: stack the
            // batch into the rows of one product instead of repeating `b`.
            (Some(bd), None) if !self.ta => {
                let rank = a.rank() - 1; // logical rank
                let moved = batching::move_axis(a, bd, rank - 2); // [batch.., B, m, k]
                let mut rows = moved.shape().to_vec();
                let (bsz, m) = (rows.remove(rank - 2), rows[rank - 2]);
                rows[rank - 2] = bsz * m;
                let out = mm(&moved.reshape(&rows), b); // [batch.., B*m, n]
                let mut shape = out.shape().to_vec();
                shape[rank - 2] = m;
                shape.insert(rank - 2, bsz);
                (out.reshape(&shape), Some(rank - 2))
            }
            // One left operand against a batch of right operands: stack the batch into the columns.
            (None, Some(bd)) if !self.tb => {
                let rank = b.rank() - 1;
                let moved = batching::move_axis(b, bd, rank - 1); // [batch.., k, B, n]
                let mut cols = moved.shape().to_vec();
                let (bsz, n) = (cols.remove(rank - 1), cols[rank - 1]);
                cols[rank - 1] = bsz * n;
                let out = mm(a, &moved.reshape(&cols)); // [batch.., m, B*n]
                let mut shape = out.shape().to_vec();
                shape[rank - 1] = n;
                shape.insert(rank - 1, bsz);
                (out.reshape(&shape), Some(rank - 1))
            }
            // Otherwise the batch becomes a leading batch dimension of both.
            _ => {
                let a = batching::batch_first(a, axes[0], size);
                let b = batching::batch_first(b, axes[1], size);
                (mm(&a, &b), Some(0))
            }
        }
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        let (a, b) = (&x[0], &x[1]);
        let da = t[0].as_ref().map(|ta| bind(*self, &[ta.clone(), b.clone()]));
        let db = t[1].as_ref().map(|tb| bind(*self, &[a.clone(), tb.clone()]));
        add_tangents(da, db)
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        // C = op(A) op(B); each cotangent is a product of `ct` with the other
        // (constant) operand, written with transpose flags instead of copies.
        let Matmul { ta, tb } = *self;
        let mm = |ta, tb, x: &Tensor, y: &Tensor| bind(Matmul { ta, tb }, &[x.clone(), y.clone()]);
        let ct_a = if_linear(&ins[0], |_| {
            let b = constant("matmul", &ins[1]);
            if ta {
                mm(tb, true, b, ct)
            } else {
                mm(false, !tb, ct, b)
            }
        });
        let ct_b = if_linear(&ins[1], |_| {
            let a = constant("matmul", &ins[0]);
            if tb {
                mm(true, ta, ct, a)
            } else {
                mm(!ta, false, a, ct)
            }
        });
        vec![ct_a, ct_b]
    }
}

impl Tensor {
    /// Matrix product with numpy's semantics: a 1-D operand is a vector
    /// (a row on the left, a column on the right, its axis removed from the
    /// result); leading batch dimensions broadcast.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// let v = Tensor::from_vec(vec![1.0, 1.0], &[2]);
    /// assert_eq!(a.matmul(&v).to_vec::<f64>(), vec![3.0, 7.0]);
    /// ```
    ///
    /// The operands are promoted to a common dtype first.
    ///
    /// # Panics
    /// When an operand is 0-d, the inner dimensions differ, the batch
    /// dimensions do not broadcast, or the operands are integer or bool.
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let (this, other) = promote_pair(self, other);
        if !this.dtype().is_float() {
            panic!(
                "matmul: products of {} matrices are not supported (JAX computes them; ferrax's GEMM is \
                 for floats); convert the operands with .to_dtype(DType::F64)",
                this.dtype()
            );
        }
        let (sa, sb) = (this.shape(), other.shape());
        if sa.is_empty() || sb.is_empty() {
            panic!("matmul: operands must have at least one axis, got {sa:?} @ {sb:?}; use * for scalars");
        }
        let a = if sa.len() == 1 { this.reshape(&[1, sa[0]]) } else { this.clone() };
        let b = if sb.len() == 1 { other.reshape(&[sb[0], 1]) } else { other.clone() };
        let (ra, rb) = (a.rank(), b.rank());
        let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
        let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
        if k != k2 {
            panic!("matmul: inner dimensions differ: {sa:?} @ {sb:?}");
        }
        let Some(batch) = broadcast_shapes(&a.shape()[..ra - 2], &b.shape()[..rb - 2]) else {
            panic!("matmul: batch dimensions do not broadcast: {sa:?} @ {sb:?}");
        };
        let out = if rb == 2 && ra > 2 {
            // A stack of rows times one matrix is one big product: no need to copy `b` per batch.
            let rows: usize = batch.iter().product::<usize>() * m;
            let flat = bind(Matmul::default(), &[a.reshape(&[rows, k]), b]);
            let mut shape = batch.clone();
            shape.extend([m, n]);
            flat.reshape(&shape)
        } else {
            let mut a_shape = batch.clone();
            a_shape.extend([m, k]);
            let mut b_shape = batch.clone();
            b_shape.extend([k, n]);
            bind(Matmul::default(), &[a.broadcast_to(&a_shape), b.broadcast_to(&b_shape)])
        };
        // Drop the axes that vector promotion added.
        let mut shape = out.shape().to_vec();
        if sb.len() == 1 {
            shape.pop();
        }
        if sa.len() == 1 {
            shape.remove(shape.len() - if sb.len() == 1 { 1 } else { 2 });
        }
        out.reshape(&shape)
    }
}
