//! Reductions over axes, and argmax / argmin.

use crate::array::{self, Array, Aval, DType};
use crate::core::{bind, Lin, Primitive, Tensor};

use super::batching::phys;
use super::{expect_axis, expect_numeric};

/// Checks reduction axes and returns the shape without them.
#[track_caller]
fn reduced_aval(op: &str, a: &Aval, axes: &[usize]) -> Aval {
    expect_numeric(op, a);
    for &ax in axes {
        expect_axis(op, ax, &a.shape);
    }
    let shape = a.shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
    Aval { dtype: a.dtype, shape }
}

/// A reduction's axes in a batched operand whose batch axis is at `axes[0]`,
/// and where the batch axis lands in the result: it stays in place, moved
/// left by the reduced axes before it.
fn reduce_axes(logical: &[usize], axes: &[Option<usize>]) -> (Vec<usize>, usize) {
    let bd = axes[0].expect("the only operand is batched");
    let physical = logical.iter().map(|&a| phys(a, bd)).collect();
    (physical, bd - logical.iter().filter(|&&a| a < bd).count())
}

/// `shape` with the reduced `axes` kept as size 1, so a reduced value broadcasts back.
pub(crate) fn keep_dims_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect()
}

/// Defines a reduction primitive over `axes` (removed from the shape): its
/// kernel, its jvp and, for the linear one, its transpose.
macro_rules! reduction {
    (
        $(#[$doc:meta])* $Prim:ident, $name:literal, $op:literal, kernel: $kernel:path,
        jvp: |$x:ident, $t:ident, $ans:ident, $axes:ident| $jvp:expr
        $(, transpose: |$ct:ident, $ins:ident, $taxes:ident| $transpose:expr)?
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $Prim {
            /// The axes reduced over.
            pub axes: Vec<usize>,
        }

        impl Primitive for $Prim {
            fn name(&self) -> &'static str {
                $name
            }
            #[track_caller]
            fn shape(&self, ins: &[&Aval]) -> Aval {
                reduced_aval($op, ins[0], &self.axes)
            }
            fn eval(&self, ins: &[&Array]) -> Array {
                $kernel(ins[0], &self.axes)
            }
            fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
                let (axes, bd) = reduce_axes(&self.axes, axes);
                (bind($Prim { axes }, &x[..1]), Some(bd))
            }
            #[allow(unused_variables)]
            fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
                let ($x, $t, $ans, $axes) = (&x[0], t[0].as_ref()?, ans, &self.axes[..]);
                Some($jvp)
            }
            $(
                fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
                    let ($ct, $ins, $taxes) = (ct, ins, &self.axes[..]);
                    $transpose
                }
            )?
        }
    };
}

reduction!(
    /// The `reduce_sum` primitive: sums over `axes`, removing them.
    ReduceSum, "reduce_sum", "sum", kernel: array::reduce_sum,
    jvp: |x, t, ans, axes| t.reduce_sum(axes),
    transpose: |ct, ins, axes| {
        let x = ins[0].aval();
        vec![Some(ct.reshape(&keep_dims_shape(&x.shape, axes)).broadcast_to(&x.shape))]
    }
);

reduction!(
    /// The `reduce_max` primitive: maximum over `axes`, removing them (NaN
    /// propagates; ties share the derivative evenly).
    ReduceMax, "reduce_max", "max", kernel: array::reduce_max,
    jvp: |x, t, ans, axes| extreme_jvp(x, t, ans, axes)
);

reduction!(
    /// The `reduce_min` primitive: minimum over `axes`, removing them.
    ReduceMin, "reduce_min", "min", kernel: array::reduce_min,
    jvp: |x, t, ans, axes| extreme_jvp(x, t, ans, axes)
);

reduction!(
    /// The `reduce_prod` primitive: product over `axes`, removing them; 1
    /// over an empty axis. Its derivative is exact where inputs are zero.
    ReduceProd, "reduce_prod", "prod", kernel: array::reduce_prod,
    jvp: |x, t, ans, axes| prod_jvp(x, t, axes)
);

/// The derivative of a max or min reduction: the tangent averaged over the
/// positions that attain the extreme, so ties share it evenly (NaN where
/// the extreme is NaN, as JAX).
fn extreme_jvp(x: &Tensor, t: &Tensor, ans: &Tensor, axes: &[usize]) -> Tensor {
    let ans_kept = ans.reshape(&keep_dims_shape(x.shape(), axes));
    let hit = x.eq(&ans_kept).to_dtype(x.dtype());
    (t * &hit).reduce_sum(axes) / hit.reduce_sum(axes)
}

/// The derivative of a product, as JAX computes it: the jvp of a balanced
/// tree of pairwise products over the reduced elements. Each factor's
/// tangent is multiplied by the product of the others, never divided by
/// itself, so zeros in the input are exact; and the tree keeps the rounding
/// of long products small.
fn prod_jvp(x: &Tensor, t: &Tensor, axes: &[usize]) -> Tensor {
    let rest: Vec<usize> = (0..x.rank()).filter(|d| !axes.contains(d)).collect();
    let perm: Vec<usize> = axes.iter().chain(&rest).copied().collect();
    let n: usize = axes.iter().map(|&a| x.shape()[a]).product();
    let mut shape = vec![n];
    shape.extend(rest.iter().map(|&d| x.shape()[d]));
    let (mut x, mut t) = (x.permute(&perm).reshape(&shape), t.permute(&perm).reshape(&shape));
    if n == 0 {
        return Tensor::zeros(&shape[1..], x.dtype());
    }
    while x.shape()[0] > 1 {
        let len = x.shape()[0];
        let half = len.div_ceil(2);
        let (x1, t1) = (x.slice(0, 0, half), t.slice(0, 0, half));
        let (mut x2, mut t2) = (x.slice(0, half, len), t.slice(0, half, len));
        if len % 2 == 1 {
            // The odd one out is paired with 1 (tangent 0).
            let mut one_shape = x2.shape().to_vec();
            one_shape[0] = 1;
            x2 = Tensor::concat(&[x2, Tensor::ones(&one_shape, x.dtype())], 0);
            t2 = t2.pad(&vec![0; t2.rank()], &pad_first(t2.rank()));
        }
        t = &t1 * &x2 + &x1 * &t2;
        x = &x1 * &x2;
    }
    t.squeeze(0)
}

/// One element of padding on the first axis and none on the others.
fn pad_first(rank: usize) -> Vec<usize> {
    (0..rank).map(|d| usize::from(d == 0)).collect()
}

/// Defines an index-of-extreme primitive (i64 output, no derivative).
macro_rules! arg_reduction {
    ($(#[$doc:meta])* $Prim:ident, $name:literal, max: $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $Prim {
            /// The axis searched.
            pub axis: usize,
        }

        impl Primitive for $Prim {
            fn name(&self) -> &'static str {
                $name
            }
            #[track_caller]
            fn shape(&self, ins: &[&Aval]) -> Aval {
                let mut out = reduced_aval($name, ins[0], &[self.axis]);
                if ins[0].shape[self.axis] == 0 {
                    panic!("{}: axis {} of shape {:?} is empty; there is no extreme", $name, self.axis, ins[0].shape);
                }
                out.dtype = DType::I64;
                out
            }
            fn eval(&self, ins: &[&Array]) -> Array {
                array::arg_extreme(ins[0], self.axis, $max)
            }
            fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
                let (axes, bd) = reduce_axes(&[self.axis], axes);
                (bind($Prim { axis: axes[0] }, &x[..1]), Some(bd))
            }
            fn jvp(&self, _x: &[Tensor], _t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
                None // integer output
            }
        }
    };
}

arg_reduction!(
    /// The `argmax` primitive: index (i64) of the first maximum along `axis`
    /// (of the first NaN, where there is one).
    Argmax, "argmax", max: true
);

arg_reduction!(
    /// The `argmin` primitive: index (i64) of the first minimum along `axis`
    /// (of the first NaN, where there is one).
    Argmin, "argmin", max: false
);

impl Tensor {
    /// Sum over `axes`, which are removed from the shape (the primitive
    /// behind [`Tensor::sum_axes`]). A bool tensor is counted: its sum is i64.
    ///
    /// # Panics
    /// When an axis is out of range.
    #[track_caller]
    pub fn reduce_sum(&self, axes: &[usize]) -> Tensor {
        let x = if self.dtype() == DType::Bool { self.to_dtype(DType::I64) } else { self.clone() };
        if axes.is_empty() {
            return x;
        }
        bind(ReduceSum { axes: axes.to_vec() }, &[x])
    }

    /// Product over `axes`, which are removed from the shape; a bool tensor
    /// is multiplied as i64. The derivative is exact with zeros in the input.
    ///
    /// # Panics
    /// When an axis is out of range.
    #[track_caller]
    pub fn reduce_prod(&self, axes: &[usize]) -> Tensor {
        let x = if self.dtype() == DType::Bool { self.to_dtype(DType::I64) } else { self.clone() };
        if axes.is_empty() {
            return x;
        }
        bind(ReduceProd { axes: axes.to_vec() }, &[x])
    }

    /// Maximum over `axes`, which are removed from the shape. Over an empty
    /// axis it is the identity, -∞ (`i64::MIN`), where JAX raises: a
    /// deliberate difference, so that `logsumexp` and `softmax`, built on it,
    /// are defined for empty axes as JAX's are.
    ///
    /// # Panics
    /// When an axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn reduce_max(&self, axes: &[usize]) -> Tensor {
        if axes.is_empty() {
            return self.clone();
        }
        bind(ReduceMax { axes: axes.to_vec() }, std::slice::from_ref(self))
    }

    /// Minimum over `axes`, which are removed from the shape; +∞
    /// (`i64::MAX`) over an empty axis, as [`Tensor::reduce_max`].
    ///
    /// # Panics
    /// When an axis is out of range or the tensor is bool.
    #[track_caller]
    pub fn reduce_min(&self, axes: &[usize]) -> Tensor {
        if axes.is_empty() {
            return self.clone();
        }
        bind(ReduceMin { axes: axes.to_vec() }, std::slice::from_ref(self))
    }

    /// Index of the first maximum along `axis` (removed from the shape), as
    /// i64; a NaN counts as the maximum.
    ///
    /// # Panics
    /// When the axis is out of range or empty.
    #[track_caller]
    pub fn argmax(&self, axis: usize) -> Tensor {
        bind(Argmax { axis }, std::slice::from_ref(self))
    }

    /// Index of the first minimum along `axis` (removed from the shape), as
    /// i64; a NaN counts as the minimum.
    ///
    /// # Panics
    /// When the axis is out of range or empty.
    #[track_caller]
    pub fn argmin(&self, axis: usize) -> Tensor {
        bind(Argmin { axis }, std::slice::from_ref(self))
    }
}
