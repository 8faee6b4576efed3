//! User-defined derivative rules — `custom_jvp`, `custom_vjp` — and
//! rematerialisation, `checkpoint`. Each wraps a function as a primitive
//! whose rules call back into user code, so it composes with every
//! transformation like a built-in primitive.
//!
//! The wrapped functions must receive everything they are differentiated
//! with respect to as their input: a traced value captured from outside
//! (a parameter of an enclosing `grad`, say) would be invisible to the rule,
//! so it is detected and refused with a panic rather than silently treated
//! as a constant.

use std::fmt;
use std::sync::Arc;

use crate::array::{Array, Aval};
use crate::core::{bind, Lin, Primitive, Tensor};
use crate::prims::batching::batch_first;

use super::jvp::jvp;
use super::linearize::vjp;
use super::staging::make_graph;
use super::vmap::vmap;

type Fun = Arc<dyn Fn(&[Tensor]) -> Tensor + Send + Sync>;
type Rule = Arc<dyn Fn(&[Tensor], &[Tensor]) -> Tensor + Send + Sync>;
type Fwd = Arc<dyn Fn(&[Tensor]) -> (Tensor, Vec<Tensor>) + Send + Sync>;
type Bwd = Arc<dyn Fn(&[Tensor], &Tensor) -> Vec<Tensor> + Send + Sync>;

/// The output aval of `f` on inputs of these avals, by staging it.
fn abstract_eval(f: &Fun, ins: &[&Aval]) -> Aval {
    let placeholders: Vec<Tensor> = ins.iter().map(|a| Tensor::zeros(&a.shape, a.dtype)).collect();
    let graph = make_graph(|xs: &Vec<Tensor>| f(xs), &placeholders);
    graph.avals[graph.outputs[0]].clone()
}

/// `f` on concrete arrays; its output must not be a tracer.
#[track_caller]
fn eval_concrete(what: &str, f: &Fun, ins: &[&Array]) -> Array {
    let xs: Vec<Tensor> = ins.iter().map(|a| Tensor::from_array((*a).clone())).collect();
    let y = f(&xs);
    assert!(
        !y.is_tracer(),
        "{what}: the function captured a traced value from outside (a parameter of an enclosing \
         transformation); pass it as an input instead, or its derivative would be lost"
    );
    y.to_array()
}

/// `f` mapped over axis 0 of every input (all inputs are batched there).
fn vmapped(f: &Fun) -> Fun {
    let f = f.clone();
    Arc::new(move |xs: &[Tensor]| vmap(|xs: &Vec<Tensor>| f(xs))(&xs.to_vec()))
}

/// Every input with its batch axis first (unbatched ones broadcast).
fn all_batched_first(x: &[Tensor], axes: &[Option<usize>], size: usize) -> Vec<Tensor> {
    x.iter().zip(axes).map(|(v, &a)| batch_first(v, a, size)).collect()
}

/// Tangents with symbolic zeros made explicit.
fn dense(x: &[Tensor], t: &[Option<Tensor>]) -> Vec<Tensor> {
    x.iter().zip(t).map(|(x, t)| t.clone().unwrap_or_else(|| x.zeros_like())).collect()
}

/// The primitive behind [`custom_jvp`].
#[derive(Clone)]
struct CustomJvp {
    f: Fun,
    rule: Rule,
}

impl fmt::Debug for CustomJvp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomJvp")
    }
}

impl Primitive for CustomJvp {
    fn name(&self) -> &'static str {
        "custom_jvp"
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        abstract_eval(&self.f, ins)
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        eval_concrete("custom_jvp", &self.f, ins)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        Some((self.rule)(x, &dense(x, t)))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let rule = self.rule.clone();
        let batched = CustomJvp {
            f: vmapped(&self.f),
            rule: Arc::new(move |xs: &[Tensor], ts: &[Tensor]| {
                vmap(|p: &(Vec<Tensor>, Vec<Tensor>)| rule(&p.0, &p.1))(&(xs.to_vec(), ts.to_vec()))
            }),
        };
        (bind(batched, &all_batched_first(x, axes, size)), Some(0))
    }
}

/// `f` with a derivative rule of your own: `rule(x, x_dot)` returns the
/// output tangent. Used in forward mode directly and in reverse mode by
/// transposition — so the rule must be **linear in `x_dot`** (built from
/// `x_dot` with additions, multiplications by values that do not depend on
/// `x_dot`, sums, reshapes…). Composes with `vmap`.
///
/// For numerical stability (a safe derivative for a formula whose naive
/// derivative overflows) or a surrogate gradient. The inputs are a list of
/// tensors; the output is one tensor.
///
/// ```
/// # use ferrax::prelude::*;
/// // log(1 + e^x) whose naive derivative e^x / (1 + e^x) overflows to NaN at large x
/// let log1pexp = custom_jvp(
///     |x: &[Tensor]| x[0].softplus(),
///     |x: &[Tensor], t: &[Tensor]| &t[0] * x[0].sigmoid(),
/// );
/// let g = grad(|x: &Tensor| log1pexp(std::slice::from_ref(x)))(&Tensor::scalar(1000.0));
/// assert_eq!(g.item(), 1.0);
/// ```
pub fn custom_jvp(
    f: impl Fn(&[Tensor]) -> Tensor + Send + Sync + 'static,
    rule: impl Fn(&[Tensor], &[Tensor]) -> Tensor + Send + Sync + 'static,
) -> impl Fn(&[Tensor]) -> Tensor {
    let prim = CustomJvp { f: Arc::new(f), rule: Arc::new(rule) };
    move |x: &[Tensor]| bind(prim.clone(), x)
}

/// The primitive behind [`custom_vjp`].
#[derive(Clone)]
struct CustomVjp {
    f: Fun,
    fwd: Fwd,
    bwd: Bwd,
}

impl fmt::Debug for CustomVjp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomVjp")
    }
}

impl Primitive for CustomVjp {
    fn name(&self) -> &'static str {
        "custom_vjp"
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        abstract_eval(&self.f, ins)
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        eval_concrete("custom_vjp", &self.f, ins)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
        // The tangent is a linear primitive over the residuals whose only
        // use is to be transposed: its transpose is the user's backward rule.
        let (_, residuals) = (self.fwd)(x);
        let n_res = residuals.len();
        let mut args = residuals;
        args.extend(dense(x, t));
        let out = Aval { dtype: ans.dtype(), shape: ans.shape().to_vec() };
        Some(bind(CustomVjpTangent { bwd: self.bwd.clone(), n_res, out }, &args))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let fwd = self.fwd.clone();
        let batched = CustomVjp {
            f: vmapped(&self.f),
            fwd: Arc::new(move |xs: &[Tensor]| vmap(|xs: &Vec<Tensor>| fwd(xs))(&xs.to_vec())),
            bwd: vmapped_bwd(&self.bwd),
        };
        (bind(batched, &all_batched_first(x, axes, size)), Some(0))
    }
}

/// A backward rule mapped over axis 0 of its residuals and cotangent.
fn vmapped_bwd(bwd: &Bwd) -> Bwd {
    let bwd = bwd.clone();
    Arc::new(move |res: &[Tensor], ct: &Tensor| {
        vmap(|p: &(Vec<Tensor>, Tensor)| bwd(&p.0, &p.1))(&(res.to_vec(), ct.clone()))
    })
}

/// The tangent of a [`CustomVjp`] call: `[residuals.., tangents..]` to the
/// output tangent, defined only through its transpose.
#[derive(Clone)]
struct CustomVjpTangent {
    bwd: Bwd,
    n_res: usize,
    out: Aval,
}

impl fmt::Debug for CustomVjpTangent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomVjpTangent {{ residuals: {} }}", self.n_res)
    }
}

const NO_FORWARD_MODE: &str = "custom_vjp: a function with a custom vjp has no forward-mode derivative \
     (jvp, jacfwd, linearize's evaluation, hvp); differentiate it in reverse mode (vjp, grad, jacrev), or \
     give it a custom_jvp rule instead, which serves both modes";

impl Primitive for CustomVjpTangent {
    fn name(&self) -> &'static str {
        "custom_vjp_tangent"
    }
    fn shape(&self, _ins: &[&Aval]) -> Aval {
        self.out.clone()
    }
    fn eval(&self, _ins: &[&Array]) -> Array {
        panic!("{NO_FORWARD_MODE}")
    }
    fn jvp(&self, _x: &[Tensor], _t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        panic!("{NO_FORWARD_MODE}")
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let mut out = self.out.clone();
        out.shape.insert(0, size);
        let batched = CustomVjpTangent { bwd: vmapped_bwd(&self.bwd), n_res: self.n_res, out };
        (bind(batched, &all_batched_first(x, axes, size)), Some(0))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let residuals: Vec<Tensor> = ins[..self.n_res]
            .iter()
            .map(|l| l.value().cloned().expect("custom_vjp residuals are constants of the tangent program"))
            .collect();
        let cts = (self.bwd)(&residuals, ct);
        let n_in = ins.len() - self.n_res;
        assert!(cts.len() == n_in, "custom_vjp: the backward rule returned {} cotangents for {n_in} inputs", cts.len());
        for (i, (c, lin)) in cts.iter().zip(&ins[self.n_res..]).enumerate() {
            assert!(
                c.aval() == lin.aval(),
                "custom_vjp: the backward rule's cotangent {i} is {} but input {i} is {}",
                c.aval(),
                lin.aval()
            );
        }
        std::iter::repeat_n(None, self.n_res).chain(cts.into_iter().map(Some)).collect()
    }
}

/// `f` with a reverse-mode rule of your own: `fwd(x)` returns the output
/// and the residuals the backward rule needs; `bwd(residuals, ct)` returns
/// one cotangent per input. Works under `vjp`, `grad`, `jacrev` and `vmap`;
/// forward mode (`jvp`) panics, as a vjp rule says nothing about it — use
/// [`custom_jvp`] for both modes.
///
/// ```
/// # use ferrax::prelude::*;
/// // A straight-through estimator: round in the forward pass, identity gradient.
/// let round_ste = custom_vjp(
///     |x: &[Tensor]| (&x[0] * 4.0).to_dtype(DType::I64).to_dtype(DType::F64) / 4.0,
///     |x: &[Tensor]| ((&x[0] * 4.0).to_dtype(DType::I64).to_dtype(DType::F64) / 4.0, vec![]),
///     |_res: &[Tensor], ct: &Tensor| vec![ct.clone()],
/// );
/// let g = grad(|x: &Tensor| round_ste(std::slice::from_ref(x)) * 3.0)(&Tensor::scalar(0.3));
/// assert_eq!(g.item(), 3.0);
/// ```
pub fn custom_vjp(
    f: impl Fn(&[Tensor]) -> Tensor + Send + Sync + 'static,
    fwd: impl Fn(&[Tensor]) -> (Tensor, Vec<Tensor>) + Send + Sync + 'static,
    bwd: impl Fn(&[Tensor], &Tensor) -> Vec<Tensor> + Send + Sync + 'static,
) -> impl Fn(&[Tensor]) -> Tensor {
    let prim = CustomVjp { f: Arc::new(f), fwd: Arc::new(fwd), bwd: Arc::new(bwd) };
    move |x: &[Tensor]| bind(prim.clone(), x)
}

/// The primitive behind [`checkpoint`].
#[derive(Clone)]
struct Checkpoint {
    f: Fun,
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Checkpoint")
    }
}

impl Primitive for Checkpoint {
    fn name(&self) -> &'static str {
        "checkpoint"
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        abstract_eval(&self.f, ins)
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        eval_concrete("checkpoint", &self.f, ins)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        // Residuals: the inputs alone. The inside is recomputed by whoever
        // evaluates or transposes the tangent.
        let mut args = x.to_vec();
        args.extend(dense(x, t));
        Some(bind(CheckpointTangent { f: self.f.clone() }, &args))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        (bind(Checkpoint { f: vmapped(&self.f) }, &all_batched_first(x, axes, size)), Some(0))
    }
}

/// `[x.., x_dot..]` to the tangent of a checkpointed function: linear in
/// `x_dot`, computed by re-running the function inside a jvp (forward) or vjp
/// (transpose).
#[derive(Clone)]
struct CheckpointTangent {
    f: Fun,
}

impl fmt::Debug for CheckpointTangent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CheckpointTangent")
    }
}

impl CheckpointTangent {
    /// `(x, x_dot) ↦ J(x) x_dot` as a function of all its inputs.
    fn as_fun(&self) -> Fun {
        let f = self.f.clone();
        Arc::new(move |args: &[Tensor]| {
            let n = args.len() / 2;
            jvp(|x: &Vec<Tensor>| f(x), &args[..n].to_vec(), &args[n..].to_vec()).1
        })
    }
}

impl Primitive for CheckpointTangent {
    fn name(&self) -> &'static str {
        "checkpoint_tangent"
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        abstract_eval(&self.f, &ins[..ins.len() / 2])
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        eval_concrete("checkpoint", &self.as_fun(), ins)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        // Second order: differentiate the recomputation itself, checkpointed again.
        let mut args = x.to_vec();
        args.extend(dense(x, t));
        Some(bind(CheckpointTangent { f: self.as_fun() }, &args))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        (bind(CheckpointTangent { f: vmapped(&self.f) }, &all_batched_first(x, axes, size)), Some(0))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let n = ins.len() / 2;
        let x: Vec<Tensor> =
            ins[..n].iter().map(|l| l.value().cloned().expect("checkpoint inputs are residuals")).collect();
        let f = self.f.clone();
        let (_, pullback) = vjp(|x: &Vec<Tensor>| f(x), &x);
        std::iter::repeat_n(None, n).chain(pullback(ct).into_iter().map(Some)).collect()
    }
}

/// Rematerialisation (gradient checkpointing): `checkpoint(f)` computes
/// what `f` does, but its pullback keeps only `f`'s inputs and recomputes
/// the inside during the backward pass — trading compute for the memory of
/// `f`'s intermediate values. Same derivatives in every mode.
///
/// ```
/// # use ferrax::prelude::*;
/// let block = checkpoint(|x: &[Tensor]| x[0].tanh().matmul(&x[1]).tanh());
/// let w = Tensor::randn(&[4, 4], DType::F64, 0);
/// let x = Tensor::randn(&[2, 4], DType::F64, 1);
/// let g = grad(|w: &Tensor| block(&[x.clone(), w.clone()]).sum())(&w);
/// let plain = grad(|w: &Tensor| x.tanh().matmul(w).tanh().sum())(&w);
/// assert!((g - plain).abs().max().item() < 1e-14);
/// ```
pub fn checkpoint(f: impl Fn(&[Tensor]) -> Tensor + Send + Sync + 'static) -> impl Fn(&[Tensor]) -> Tensor {
    let prim = Checkpoint { f: Arc::new(f) };
    move |x: &[Tensor]| bind(prim.clone(), x)
}
