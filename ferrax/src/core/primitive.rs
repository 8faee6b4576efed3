//! The `Primitive` trait: one implementation per primitive holds all of its rules.

use std::fmt::Debug;

use crate::array::{Array, Aval};

use super::Tensor;

/// How an input of a primitive appears in a linear (tangent) program being
/// transposed: either a known value, or a linear input whose cotangent is wanted.
#[derive(Clone, Debug)]
pub enum Lin {
    /// A value the linear function does not depend on linearly (a residual).
    Const(Tensor),
    /// An input the output is linear in; only its abstract value is known.
    Linear(Aval),
}

impl Lin {
    /// The abstract value of this input.
    pub fn aval(&self) -> &Aval {
        match self {
            Lin::Const(t) => t.aval(),
            Lin::Linear(a) => a,
        }
    }

    /// The constant, or `None` for a linear input.
    pub fn value(&self) -> Option<&Tensor> {
        match self {
            Lin::Const(t) => Some(t),
            Lin::Linear(_) => None,
        }
    }

    /// `true` for a linear input.
    pub fn is_linear(&self) -> bool {
        matches!(self, Lin::Linear(_))
    }
}

/// A primitive operation: the unit every tensor operation is made of.
///
/// Each primitive is one type (holding its parameters, like `ReduceSum {
/// axes }`) whose impl holds all of its rules, so adding one touches one place.
/// Rules are written with [`Tensor`] operations, so every rule is itself
/// traceable: that is what lets transformations nest.
pub trait Primitive: Debug + Send + Sync + 'static {
    /// The primitive's name, as it appears in graphs and error messages.
    fn name(&self) -> &'static str;

    /// Abstract evaluation: the output's dtype and shape from the inputs'.
    /// Misuse (incompatible shapes, wrong dtypes) panics here with a message
    /// that names the operation, the shapes or dtypes, and the fix.
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval;

    /// Computes on concrete arrays. Called only after `shape` accepted the inputs.
    fn eval(&self, ins: &[&Array]) -> Array;

    /// Forward-mode rule: the output tangent, given the primal inputs `x`,
    /// their tangents `t` (`None` is a symbolic zero; at least one is
    /// `Some`) and the primal output `ans`. Must be linear in `t`. Returns
    /// `None` when the tangent is identically zero (integer outputs,
    /// `stop_gradient`, piecewise-constant functions).
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor>;

    /// Vectorisation rule: the primitive applied to inputs that carry an
    /// extra batch axis (`axes[i]`: where input `i` has it; `None`: the input
    /// is the same for the whole batch, at least one is `Some`) of length
    /// `size`. Returns the batched output and where its batch axis is (or
    /// `None` if the output does not vary across the batch). Rules may move
    /// batch axes wherever is convenient; unbatched inputs are broadcast only
    /// where a rule needs it.
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>);

    /// Reverse-mode rule, for primitives that can appear linearly in a
    /// tangent program: given the output cotangent `ct` and the inputs
    /// (constants, or linear inputs known only by shape), the cotangent of
    /// each linear input (`None`: zero, or a constant input). Written with
    /// `Tensor` operations, so transposition is itself traceable.
    ///
    /// The default is for nonlinear primitives, which never appear in a
    /// tangent program: their jvp multiplies the tangent by a constant.
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let _ = (ct, ins);
        panic!("{}", super::context::nonlinear_message(self.name()))
    }
}
