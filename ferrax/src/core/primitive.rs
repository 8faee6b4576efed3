//! The `Primitive` trait: one implementation per primitive holds all of its rules.

use std::fmt::{self, Debug};

use smallvec::SmallVec;

use crate::array::{Array, Aval, BinaryOp, CompareOp, DType, ReduceOp, UnaryOp};

use super::Tensor;

/// The outputs of one primitive application: a vector that holds up to two
/// without allocating. Nearly every primitive has one output and the hot
/// path of eager and traced evaluation must not pay a heap allocation per
/// operation for the few (`sort`) that have two.
pub type Outs<T> = SmallVec<[T; 2]>;

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

/// A parameter value of a primitive, as data: printable, comparable and
/// hashable, so graphs can be printed and compared without reading `Debug`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    /// A flag.
    Bool(bool),
    /// An integer (an exponent, an offset).
    Int(i64),
    /// A count or an axis.
    Usize(usize),
    /// Axes, a shape, a permutation, offsets.
    List(Vec<usize>),
    /// A dtype.
    DType(DType),
    /// A named choice: an op (`gt`), a mode (`fill`).
    Name(&'static str),
    /// The identity of a user function (custom rules): equal only for the same closure.
    Id(usize),
    /// Signed integers (paddings, which may crop).
    Ints(Vec<i64>),
    /// A float (an epsilon), held as its bits so that parameters compare
    /// and hash: `Param::Float(eps.to_bits())`.
    Float(u64),
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Bool(b) => write!(f, "{b}"),
            Param::Int(i) => write!(f, "{i}"),
            Param::Usize(u) => write!(f, "{u}"),
            Param::List(v) => write!(f, "{v:?}"),
            Param::DType(d) => write!(f, "{d}"),
            Param::Name(n) => f.write_str(n),
            Param::Id(i) => write!(f, "#{i:x}"),
            Param::Ints(v) => write!(f, "{v:?}"),
            Param::Float(bits) => write!(f, "{}", f64::from_bits(*bits)),
        }
    }
}

/// A primitive's parameters: named values, in a fixed order.
pub type Params = Vec<(&'static str, Param)>;

/// What a primitive computes, for passes that treat families alike (a
/// fusion pass groups elementwise ops; a backend generates their kernels).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An elementwise function of one operand.
    Unary(UnaryOp),
    /// An elementwise function of two operands.
    Binary(BinaryOp),
    /// An elementwise comparison.
    Compare(CompareOp),
    /// `cond ? a : b`, elementwise.
    Select,
    /// An elementwise dtype conversion.
    Convert(DType),
    /// A reduction over axes.
    Reduce(ReduceOp),
    /// The position of an extreme along an axis.
    ArgReduce(ReduceOp),
    /// A running reduction along an axis.
    Scan(ReduceOp),
    /// Moves elements without arithmetic (broadcast, reshape, permute, slice, pad, rev, concat).
    Layout,
    /// A contraction (matrix products).
    Contraction,
    /// Selects or places elements by index (gather, scatter, sort).
    Index,
    /// Calls user code (custom rules, checkpoints).
    Call,
    /// Nothing a pass may assume (`stop_gradient`: the identity, but not to differentiation).
    Opaque,
}

/// A primitive operation: the unit every tensor operation is made of.
///
/// Each primitive is one type (holding its parameters, like `Reduce { op,
/// axes }`) whose impl holds all of its rules, so adding one touches one
/// place. Rules are written with [`Tensor`] operations, so every rule is
/// itself traceable: that is what lets transformations nest. A primitive
/// has one output or several (`sort` gives values and indices); those with
/// one implement [`SingleOutput`] instead, which is the same contract with
/// one output, and get this trait from it.
pub trait Primitive: Debug + Send + Sync + 'static {
    /// The primitive's name, as it appears in graphs and error messages.
    fn name(&self) -> &'static str;

    /// The parameters, as data (the graph printer shows them; equal
    /// primitives have equal names and parameters).
    fn params(&self) -> Params;

    /// What family the primitive belongs to.
    fn kind(&self) -> Kind;

    /// Abstract evaluation: each output's dtype and shape from the inputs'.
    /// Misuse (incompatible shapes, wrong dtypes) panics here with a message
    /// that names the operation, the shapes or dtypes, and the fix.
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Outs<Aval>;

    /// Computes every output on concrete arrays. Called only after `shape`
    /// accepted the inputs.
    fn eval(&self, ins: &[&Array]) -> Outs<Array>;

    /// [`Primitive::eval`] on operands given up, so that an implementation
    /// may write an output over an operand's buffer that no one else holds
    /// ([`Array::into_unique_vec`]). The interpreter of `jit` calls it with
    /// the operands that die at the equation; the default evaluates by reference.
    fn eval_owned(&self, ins: Vec<Array>) -> Outs<Array> {
        let refs: SmallVec<[&Array; 4]> = ins.iter().collect();
        self.eval(&refs)
    }

    /// Forward-mode rule: each output's tangent, given the primal inputs
    /// `x`, their tangents `t` (`None` is a symbolic zero; at least one is
    /// `Some`) and the primal outputs `ans`. Must be linear in `t`. `None`
    /// for an output whose tangent is identically zero (integer outputs,
    /// `stop_gradient`, piecewise-constant functions).
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &[Tensor]) -> Outs<Option<Tensor>>;

    /// Forward mode's outputs computed together with what the `jvp` rule
    /// will need from the same pass: for a loop, each step's residuals,
    /// which a rule called after `eval` would have to compute by running
    /// the loop again. When this returns `Some(v)`, `v` starts with the
    /// outputs and the rule receives all of `v` as its `ans`. The default,
    /// `None`, evaluates the primitive and passes its outputs alone.
    fn jvp_outputs(&self, x: &[Tensor], t: &[Option<Tensor>]) -> Option<Vec<Tensor>> {
        let _ = (x, t);
        None
    }

    /// Vectorisation rule: the primitive applied to inputs that carry an
    /// extra batch axis (`axes[i]`: where input `i` has it; `None`: the input
    /// is the same for the whole batch, at least one is `Some`) of length
    /// `size`. Returns the batched outputs and where each one's batch axis is
    /// (or `None` for an output that does not vary across the batch). Rules
    /// may move batch axes wherever is convenient; unbatched inputs are
    /// broadcast only where a rule needs it.
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>);

    /// Reverse-mode rule, for primitives that can appear linearly in a
    /// tangent program: given the outputs' cotangents (`None`: zero) and the
    /// inputs (constants, or linear inputs known only by shape), the
    /// cotangent of each linear input (`None`: zero, or a constant input).
    /// Written with `Tensor` operations, so transposition is itself traceable.
    ///
    /// The default is for nonlinear primitives, which never appear in a
    /// tangent program: their jvp multiplies the tangent by a constant.
    fn transpose(&self, cts: &[Option<Tensor>], ins: &[Lin]) -> Vec<Option<Tensor>> {
        let _ = (cts, ins);
        panic!("{}", super::context::nonlinear_message(self.name()))
    }

    /// The program a primitive that stands for other equations runs (a
    /// fused kernel's chain), so graphs print it and passes can look inside.
    fn subgraph(&self) -> Option<&crate::graph::Graph> {
        None
    }

    /// Every program evaluating this primitive runs, when that is all it
    /// runs (a loop's condition and body, each branch of a switch, a fused
    /// chain, a nested jit's program), so that a pass can vouch for what an
    /// evaluation does; `None` (the default) when it may run other code,
    /// such as a user's closure.
    fn programs(&self) -> Option<Vec<&crate::graph::Graph>> {
        None
    }
}

/// The rules of a primitive with one output — most of them. Every type that
/// implements this is a [`Primitive`].
pub trait SingleOutput: Debug + Send + Sync + 'static {
    /// The primitive's name, as it appears in graphs and error messages.
    fn name(&self) -> &'static str;

    /// The parameters, as data.
    fn params(&self) -> Params;

    /// What family the primitive belongs to.
    fn kind(&self) -> Kind;

    /// The output's dtype and shape from the inputs' (see [`Primitive::shape`]).
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval;

    /// Computes on concrete arrays. Called only after `shape` accepted the inputs.
    fn eval(&self, ins: &[&Array]) -> Array;

    /// [`SingleOutput::eval`] on operands given up (see [`Primitive::eval_owned`]).
    fn eval_owned(&self, ins: Vec<Array>) -> Array {
        let refs: SmallVec<[&Array; 4]> = ins.iter().collect();
        SingleOutput::eval(self, &refs)
    }

    /// The output's tangent (see [`Primitive::jvp`]); `None` when it is zero.
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor>;

    /// The batched output and where its batch axis is (see [`Primitive::batch`]).
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>);

    /// The cotangents of the linear inputs from the output's cotangent (see
    /// [`Primitive::transpose`]). The default is for nonlinear primitives.
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let _ = (ct, ins);
        panic!("{}", super::context::nonlinear_message(self.name()))
    }
}

impl<P: SingleOutput> Primitive for P {
    fn name(&self) -> &'static str {
        SingleOutput::name(self)
    }
    fn params(&self) -> Params {
        SingleOutput::params(self)
    }
    fn kind(&self) -> Kind {
        SingleOutput::kind(self)
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Outs<Aval> {
        smallvec::smallvec![SingleOutput::shape(self, ins)]
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        smallvec::smallvec![SingleOutput::eval(self, ins)]
    }
    fn eval_owned(&self, ins: Vec<Array>) -> Outs<Array> {
        smallvec::smallvec![SingleOutput::eval_owned(self, ins)]
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &[Tensor]) -> Outs<Option<Tensor>> {
        smallvec::smallvec![SingleOutput::jvp(self, x, t, &ans[0])]
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        let (out, axis) = SingleOutput::batch(self, x, axes, size);
        (smallvec::smallvec![out], smallvec::smallvec![axis])
    }
    fn transpose(&self, cts: &[Option<Tensor>], ins: &[Lin]) -> Vec<Option<Tensor>> {
        match &cts[0] {
            Some(ct) => SingleOutput::transpose(self, ct, ins),
            None => vec![None; ins.len()],
        }
    }
}

/// Primitives are equal when their names and parameters are: what a graph
/// pass needs to merge equal equations, or a cache to key by a program.
impl PartialEq for dyn Primitive {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name() && self.params() == other.params()
    }
}

impl Eq for dyn Primitive {}

impl std::hash::Hash for dyn Primitive {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
        self.params().hash(state);
    }
}

/// A primitive's name with its parameters, as graphs print it: `name[k=v, …]`.
pub fn label(prim: &dyn Primitive) -> String {
    let params = prim.params();
    if params.is_empty() {
        return prim.name().to_string();
    }
    let parts: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}[{}]", prim.name(), parts.join(", "))
}
