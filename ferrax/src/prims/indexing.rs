//! Primitives that select data by index: gather (`index_select`) and its
//! transpose, scatter-add. Negative indices wrap once; out-of-range ones
//! follow an [`IndexMode`] — the same eagerly and under every
//! transformation, which is what the batch rules below take care of.

use smallvec::smallvec;

use crate::array::{backend_of, scatter_add_owned, scatter_add_to_zeros, Array, Aval, DType, Device, IndexMode};
use crate::core::{bind, bind_all, Kind, Lin, Outs, Param, Params, Primitive, SingleOutput, Tensor};

use super::{batching, constant, expect_axis, if_linear, or_zero};

/// The `gather` primitive: entries of input 0 along `axis` picked by the
/// i64 indices of input 1 (numpy's `take`). Output shape
/// `x[..axis] ++ idx ++ x[axis+1..]`. Negative indices wrap once; indices
/// still outside the axis are handled by `mode`.
#[derive(Clone, Debug)]
pub struct Gather {
    /// The axis indexed.
    pub axis: usize,
    /// What an out-of-range index reads.
    pub mode: IndexMode,
}

impl SingleOutput for Gather {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn params(&self) -> Params {
        vec![("axis", Param::Usize(self.axis)), ("mode", Param::Name(self.mode.name()))]
    }
    fn kind(&self) -> Kind {
        Kind::Index
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let (x, idx) = (ins[0], ins[1]);
        expect_axis("index_select", self.axis, &x.shape);
        if idx.dtype != DType::I64 {
            panic!("index_select: indices must be i64, got {}; convert them with .to_dtype(DType::I64)", idx.dtype);
        }
        let shape = x.shape[..self.axis].iter().chain(&idx.shape).chain(&x.shape[self.axis + 1..]).copied().collect();
        Aval { dtype: x.dtype, shape }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).gather(ins[0], self.axis, ins[1], self.mode)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let (src, idx) = (&x[0], &x[1]);
        match (axes[0], axes[1]) {
            // One index set for every batch member: gather past the batch axis.
            (Some(bd), None) => {
                let front = batching::move_axis(src, bd, 0);
                (front.index_select_with(self.axis + 1, idx, self.mode), Some(0))
            }
            // One source, a batch of index sets: the indices' batch axis lands at `axis`.
            (None, Some(bi)) => {
                (src.index_select_with(self.axis, &batching::move_axis(idx, bi, 0), self.mode), Some(self.axis))
            }
            // Both batched: fold the batch into the gathered axis, each
            // member's indices resolved within its own block first.
            _ => {
                let (src, len) = fold_batch_into_axis(src, axes[0], self.axis, size);
                let idx = offset_indices(idx, axes[1], size, len, self.mode);
                (src.index_select_with(self.axis, &idx, self.mode), Some(self.axis))
            }
        }
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        // An index that reads the fill value reads a constant: its tangent is 0.
        let mode = if self.mode == IndexMode::Clip { IndexMode::Clip } else { IndexMode::FillZero };
        Some(t[0].as_ref()?.index_select_with(self.axis, &x[1], mode))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let idx = constant("gather", &ins[1]);
        let x = ins[0].aval();
        // A concrete cotangent (an eager backward pass) is scattered onto a
        // zeroed buffer, with the bits of the operation below but without an
        // array of zeros made and then copied: two passes over a max pool's
        // input, 16 MB for a batch of 128 images of 32 channels at 32×32.
        if let (Some(c), Some(i)) = (ct.array(), idx.array()) {
            if c.device() == Device::Cpu && i.device() == Device::Cpu {
                return vec![Some(Tensor::from(scatter_add_to_zeros(&x.shape, self.axis, i, c, self.mode))), None];
            }
        }
        vec![Some(Tensor::zeros(&x.shape, x.dtype).scatter_add_with(self.axis, idx, ct, self.mode)), None]
    }
}

/// The `scatter_add` primitive: input 0 (the operand) plus input 2 (the
/// updates) added at the positions that the i64 indices of input 1 pick
/// along `axis`; repeated indices accumulate, negative ones wrap once, and
/// out-of-range ones are dropped (or clamped, by `mode`). The transpose of
/// [`Gather`].
#[derive(Clone, Debug)]
pub struct ScatterAdd {
    /// The axis indexed.
    pub axis: usize,
    /// What an out-of-range index does: dropped, unless `Clip`.
    pub mode: IndexMode,
}

impl SingleOutput for ScatterAdd {
    fn name(&self) -> &'static str {
        "scatter_add"
    }
    fn params(&self) -> Params {
        vec![("axis", Param::Usize(self.axis)), ("mode", Param::Name(self.mode.name()))]
    }
    fn kind(&self) -> Kind {
        Kind::Index
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let (x, idx, upd) = (ins[0], ins[1], ins[2]);
        expect_axis("scatter_add", self.axis, &x.shape);
        if idx.dtype != DType::I64 {
            panic!("scatter_add: indices must be i64, got {}; convert them with .to_dtype(DType::I64)", idx.dtype);
        }
        let want: Vec<usize> =
            x.shape[..self.axis].iter().chain(&idx.shape).chain(&x.shape[self.axis + 1..]).copied().collect();
        if upd.shape != want || upd.dtype != x.dtype {
            panic!(
                "scatter_add: updates must be {}{want:?} (operand {} with the indices' shape {:?} at axis {}), got {}",
                x.dtype, x, idx.shape, self.axis, upd
            );
        }
        x.clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).scatter_add(ins[0], self.axis, ins[1], ins[2], self.mode)
    }
    fn eval_owned(&self, ins: Vec<Array>) -> Array {
        if ins.iter().any(|a| a.device() != Device::Cpu) {
            let refs: Vec<&Array> = ins.iter().collect();
            return SingleOutput::eval(self, &refs);
        }
        let Ok([operand, idx, updates]) = <[Array; 3]>::try_from(ins) else {
            unreachable!("scatter_add: the shape rule admits three operands")
        };
        scatter_add_owned(operand, self.axis, &idx, &updates, self.mode)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        // Fold the batch into the scattered axis, with each member's indices
        // resolved and offset into its own block, and scatter once.
        let (operand, len) = fold_batch_into_axis(&x[0], axes[0], self.axis, size);
        let idx = offset_indices(&x[1], axes[1], size, len, self.mode);
        let upd = batching::batch_first(&x[2], axes[2], size);
        let upd = batching::move_axis(&upd, 0, self.axis);
        let out = operand.scatter_add_with(self.axis, &idx, &upd, self.mode);
        let mut shape = x[0].shape().to_vec();
        if let Some(bd) = axes[0] {
            shape.remove(bd);
        }
        shape.insert(self.axis, size);
        (out.reshape(&shape), Some(self.axis))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
        let t_op = or_zero(t[0].as_ref(), &x[0]).broadcast_to(ans.shape());
        let t_upd = t[2].clone().unwrap_or_else(|| x[2].zeros_like());
        Some(bind(self.clone(), &[t_op, x[1].clone(), t_upd]))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let idx = constant("scatter_add", &ins[1]);
        // A dropped update contributed nothing: its cotangent is 0.
        let mode = if self.mode == IndexMode::Clip { IndexMode::Clip } else { IndexMode::FillZero };
        vec![
            if_linear(&ins[0], |_| ct.clone()),
            None,
            if_linear(&ins[2], |_| ct.index_select_with(self.axis, idx, mode)),
        ]
    }
}

/// The `argsort` primitive: the indices (i64) that sort `axis` stably —
/// NaN last, `-0.0` equal to `0.0` — largest first when `descending`.
#[derive(Clone, Debug)]
pub struct Argsort {
    /// The axis sorted along.
    pub axis: usize,
    /// Largest first (ties still in their original order).
    pub descending: bool,
}

impl SingleOutput for Argsort {
    fn name(&self) -> &'static str {
        "argsort"
    }
    fn params(&self) -> Params {
        vec![("axis", Param::Usize(self.axis)), ("descending", Param::Bool(self.descending))]
    }
    fn kind(&self) -> Kind {
        Kind::Index
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        expect_axis("argsort", self.axis, &ins[0].shape);
        Aval { dtype: DType::I64, shape: ins[0].shape.clone() }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).sort(ins[0], self.axis, self.descending).1
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        let bd = axes[0].expect("the only operand is batched");
        let prim = Argsort { axis: batching::phys(self.axis, bd), descending: self.descending };
        (bind(prim, &x[..1]), Some(bd))
    }
    fn jvp(&self, _x: &[Tensor], _t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        None // integer output
    }
}

/// The `sort` primitive: two outputs, the elements sorted along `axis` —
/// stably, NaN last, `-0.0` equal to `0.0`, largest first when
/// `descending` — and the indices (i64) that sort them. Each tangent moves
/// with its element.
#[derive(Clone, Debug)]
pub struct Sort {
    /// The axis sorted along.
    pub axis: usize,
    /// Largest first (ties still in their original order).
    pub descending: bool,
}

impl Primitive for Sort {
    fn name(&self) -> &'static str {
        "sort"
    }
    fn params(&self) -> Params {
        vec![("axis", Param::Usize(self.axis)), ("descending", Param::Bool(self.descending))]
    }
    fn kind(&self) -> Kind {
        Kind::Index
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Outs<Aval> {
        expect_axis("sort", self.axis, &ins[0].shape);
        smallvec![ins[0].clone(), Aval { dtype: DType::I64, shape: ins[0].shape.clone() }]
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        let (values, indices) = backend_of(ins).sort(ins[0], self.axis, self.descending);
        smallvec![values, indices]
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        let bd = axes[0].expect("the only operand is batched");
        let prim = Sort { axis: batching::phys(self.axis, bd), descending: self.descending };
        (bind_all(prim, &x[..1]), smallvec![Some(bd), Some(bd)])
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], ans: &[Tensor]) -> Outs<Option<Tensor>> {
        let moved = t[0].as_ref().map(|t| t.take_along_axis(&ans[1], self.axis));
        smallvec![moved, None]
    }
}

/// `x` (batched at `axis`, or broadcast when unbatched) with the batch axis
/// merged into axis `at` of the logical shape: `[.., size * len, ..]`, member
/// `b` owning positions `b * len .. (b + 1) * len`. Returns it and `len`.
fn fold_batch_into_axis(x: &Tensor, axis: Option<usize>, at: usize, size: usize) -> (Tensor, usize) {
    let front = batching::batch_first(x, axis, size);
    let moved = batching::move_axis(&front, 0, at);
    let mut shape = moved.shape().to_vec();
    let len = shape[at + 1];
    shape[at] = size * len;
    shape.remove(at + 1);
    (moved.reshape(&shape), len)
}

/// A batch of index sets (batch axis first; unbatched ones broadcast) made
/// to address a folded axis: member `b`'s indices are resolved within its
/// own block of `len` (negative ones wrapped, out-of-range ones clamped by
/// `Clip`) and shifted by `b * len`; an index that addresses nothing becomes
/// `size * len`, which lies past every block, so it reads the fill value or
/// is dropped exactly as it would be without vmap.
fn offset_indices(idx: &Tensor, axis: Option<usize>, size: usize, len: usize, mode: IndexMode) -> Tensor {
    let idx = batching::batch_first(idx, axis, size);
    let mut shape = vec![1; idx.rank()];
    shape[0] = size;
    let offsets = (Tensor::arange(size, DType::I64) * len as i64).reshape(&shape);
    let (pos, valid) = resolve_indices(&idx, len, mode);
    valid.select(&(pos + offsets), &Tensor::scalar((size * len) as i64))
}

/// Indices into an axis of length `len` resolved as the kernels do (see
/// [`IndexMode::resolve`]): the position each addresses, and whether it
/// addresses one at all.
pub(crate) fn resolve_indices(idx: &Tensor, len: usize, mode: IndexMode) -> (Tensor, Tensor) {
    let n = Tensor::scalar(len as i64);
    let zero = Tensor::scalar(0i64);
    let wrapped = idx.lt(&zero).select(&(idx + &n), idx);
    if mode == IndexMode::Clip && len > 0 {
        let pos = wrapped.maximum(&zero).minimum(&Tensor::scalar(len as i64 - 1));
        let valid = Tensor::full(&[], 1.0, DType::Bool);
        (pos, valid)
    } else {
        let valid = wrapped.ge(&zero).select(&wrapped.lt(&n), &Tensor::full(&[], 0.0, DType::Bool));
        (wrapped, valid)
    }
}

impl Tensor {
    /// The elements sorted along `axis` and the indices that sort them
    /// (stably, NaN last), from one primitive with two outputs.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let (v, i) = Tensor::from_vec(vec![3.0, 1.0, 2.0], &[3]).sort_with_indices(0);
    /// assert_eq!((v.to_vec::<f64>(), i.to_vec::<i64>()), (vec![1.0, 2.0, 3.0], vec![1, 2, 0]));
    /// ```
    ///
    /// # Panics
    /// When the axis is out of range.
    #[track_caller]
    pub fn sort_with_indices(&self, axis: usize) -> (Tensor, Tensor) {
        let mut outs = bind_all(Sort { axis, descending: false }, std::slice::from_ref(self));
        let indices = outs.pop().expect("two outputs");
        (outs.pop().expect("two outputs"), indices)
    }

    /// [`Tensor::sort_with_indices`], largest first.
    ///
    /// # Panics
    /// When the axis is out of range.
    #[track_caller]
    pub fn sort_descending_with_indices(&self, axis: usize) -> (Tensor, Tensor) {
        let mut outs = bind_all(Sort { axis, descending: true }, std::slice::from_ref(self));
        let indices = outs.pop().expect("two outputs");
        (outs.pop().expect("two outputs"), indices)
    }

    /// The indices that sort `self` along `axis`, stably (equal elements
    /// keep their order; NaN sorts last).
    ///
    /// # Panics
    /// When the axis is out of range.
    #[track_caller]
    pub fn argsort(&self, axis: usize) -> Tensor {
        bind(Argsort { axis, descending: false }, std::slice::from_ref(self))
    }

    /// [`Tensor::argsort`], largest first (equal elements still in order).
    ///
    /// # Panics
    /// When the axis is out of range.
    #[track_caller]
    pub fn argsort_descending(&self, axis: usize) -> Tensor {
        bind(Argsort { axis, descending: true }, std::slice::from_ref(self))
    }

    /// Picks entries along `axis` by i64 indices of any shape (numpy's and
    /// JAX's `take`): the result's shape is `self[..axis] ++ idx ++
    /// self[axis+1..]`. A negative index counts from the end; an index still
    /// outside the axis reads NaN (`i64::MIN` for integers, `true` for bool)
    /// — the same with and without `vmap`, as in JAX. For clamping instead,
    /// see [`Tensor::index_select_with`].
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// let x = Tensor::from_vec(vec![10.0, 20.0, 30.0], &[3]);
    /// let got = x.index_select(0, &Tensor::from_vec(vec![-1i64, 0, 3], &[3])).to_vec::<f64>();
    /// assert_eq!(got[..2], [30.0, 10.0]);
    /// assert!(got[2].is_nan());
    /// ```
    ///
    /// # Panics
    /// When the axis is out of range or the indices are not i64.
    #[track_caller]
    pub fn index_select(&self, axis: usize, idx: &Tensor) -> Tensor {
        self.index_select_with(axis, idx, IndexMode::Fill)
    }

    /// [`Tensor::index_select`] with a chosen treatment of out-of-range indices.
    ///
    /// # Panics
    /// When the axis is out of range or the indices are not i64.
    #[track_caller]
    pub fn index_select_with(&self, axis: usize, idx: &Tensor, mode: IndexMode) -> Tensor {
        bind(Gather { axis, mode }, &[self.clone(), idx.clone()])
    }

    /// `self` plus `updates` added at the entries along `axis` that `idx`
    /// picks; repeated indices accumulate. `updates` has the shape
    /// `index_select(axis, idx)` would give. A negative index counts from the
    /// end; an update at an index still outside the axis is dropped (JAX's
    /// `.at[idx].add`), the same with and without `vmap`.
    ///
    /// # Panics
    /// When the shapes or dtypes do not fit.
    #[track_caller]
    pub fn scatter_add(&self, axis: usize, idx: &Tensor, updates: &Tensor) -> Tensor {
        self.scatter_add_with(axis, idx, updates, IndexMode::Fill)
    }

    /// [`Tensor::scatter_add`] with a chosen treatment of out-of-range
    /// indices (`Clip` adds at the nearest position; the others drop).
    ///
    /// # Panics
    /// When the shapes or dtypes do not fit.
    #[track_caller]
    pub fn scatter_add_with(&self, axis: usize, idx: &Tensor, updates: &Tensor, mode: IndexMode) -> Tensor {
        bind(ScatterAdd { axis, mode }, &[self.clone(), idx.clone(), updates.clone()])
    }
}
