//! User-defined derivative rules — `custom_jvp`, `custom_vjp` — and
//! rematerialisation, `checkpoint`. Each wraps a function as one primitive
//! (with one output per leaf of the function's output) whose rules call back
//! into user code, so it composes with every transformation like a built-in
//! primitive.
//!
//! The user's function and rules are staged on abstract inputs, once per
//! input signature (shapes and dtypes): that gives the output structure and
//! shapes without computing anything, lets the rules be checked at once,
//! and *closure-converts* them as JAX does — values of enclosing
//! transformations that the closures captured (a batch of an enclosing
//! `vmap`, a parameter of an enclosing `grad`) become explicit operands, so
//! those transformations see them. A call that captured such values is
//! staged anew each time (the values change); others reuse the staging. A
//! checkpointed function is differentiated with respect to what it captured
//! like any input; a custom rule cannot say how its output depends on a
//! captured value that is being differentiated, so that case is refused.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::array::{Array, Aval};
use crate::core::{bind_all, context, Kind, Lin, Outs, Param, Params, Primitive, Tensor};
use crate::graph::Graph;
use crate::prims::batching::batch_first;
use crate::tree::{Tree, TreeRef};

use super::jvp::jvp;
use super::linearize::vjp;
use super::staging::Staging;
use super::vmap::vmap;

/// A function of flat operands giving flat outputs.
pub(super) type Fun = Arc<dyn Fn(&[Tensor]) -> Vec<Tensor> + Send + Sync>;
/// A jvp rule: (all operands, tangents of the function's own inputs) to the output tangents.
type Rule = Arc<dyn Fn(&[Tensor], &[Tensor]) -> Vec<Tensor> + Send + Sync>;

/// A user function staged on abstract inputs: its graph (captured tracers
/// hoisted to inputs after the others), the structure of its output, and
/// the tracers, to be passed back in.
pub(super) struct Staged<O> {
    pub(super) graph: Arc<Graph>,
    pub(super) out: O,
    pub(super) captured: Vec<Tensor>,
}

pub(super) fn stage<O: Tree>(avals: &[Aval], f: impl FnOnce(Vec<Tensor>) -> O) -> Staged<O> {
    let staging = Staging::new();
    let ins: Vec<Tensor> = avals.iter().map(|a| staging.input(a.clone())).collect();
    let out = f(ins);
    let graph = staging.finish(&out.leaves());
    let placeholder = Tensor::scalar(0.0f64);
    let (graph, captured) = graph.hoist_traced_consts();
    Staged { graph: Arc::new(graph), out: out.map_leaves(|_| placeholder.clone()), captured }
}

impl<O> Staged<O> {
    pub(super) fn out_avals(&self) -> Vec<Aval> {
        self.graph.output_avals()
    }
}

/// `x`'s structure with these leaves, as the `&I` a user function takes.
pub(super) fn call_with<I: TreeRef + ?Sized, R>(x: &I, leaves: Vec<Tensor>, f: impl FnOnce(&I) -> R) -> R {
    let owned = x.with_leaves_owned(leaves);
    f(Borrow::<I>::borrow(&owned))
}

pub(super) fn avals_of(xs: &[Tensor]) -> Vec<Aval> {
    xs.iter().map(|x| x.aval().clone()).collect()
}

/// The graph as a function of its inputs (evaluated with `bind`, so
/// enclosing transformations trace it).
pub(super) fn as_fun(graph: &Arc<Graph>) -> Fun {
    let g = graph.clone();
    Arc::new(move |args: &[Tensor]| g.eval(args))
}

/// `f` mapped over axis 0 of every input (all inputs are batched there).
fn vmapped(f: &Fun) -> Fun {
    let f = f.clone();
    Arc::new(move |xs: &[Tensor]| vmap(|xs: &Vec<Tensor>| f(xs))(&xs.to_vec()))
}

/// `batched` (a primitive over inputs batched on axis 0) applied to `x`
/// with every batch axis moved first (unbatched inputs broadcast); every
/// output is batched on axis 0. The batch rule of the primitives here.
pub(super) fn bind_batched_first<P: Primitive + 'static>(
    batched: P,
    x: &[Tensor],
    axes: &[Option<usize>],
    size: usize,
) -> (Outs<Tensor>, Outs<Option<usize>>) {
    let inputs: Vec<Tensor> = x.iter().zip(axes).map(|(v, &a)| batch_first(v, a, size)).collect();
    let outs = bind_all(batched, &inputs);
    let n = outs.len();
    (outs, smallvec::smallvec![Some(0); n])
}

/// The tangents of a call of `f` (outputs `outs`) at `x` with tangents `t`,
/// as a [`CheckpointTangent`]: linear in `t`, recomputing `f` when evaluated
/// or transposed. The jvp rule of the checkpointed and jitted calls.
pub(super) fn checkpoint_tangents(f: Fun, outs: &[Aval], x: &[Tensor], t: &[Option<Tensor>]) -> Outs<Option<Tensor>> {
    let mut args = x.to_vec();
    args.extend(dense(x, t));
    bind_all(CheckpointTangent { f, outs: outs.to_vec() }, &args).into_iter().map(Some).collect()
}

/// The tangents of a call of `graph` (outputs `outs`), as
/// [`checkpoint_tangents`]: the jvp rule of primitives that stand for a
/// graph of others (fused kernels).
pub(crate) fn call_tangents(
    graph: &Arc<Graph>,
    outs: &[Aval],
    x: &[Tensor],
    t: &[Option<Tensor>],
) -> Outs<Option<Tensor>> {
    checkpoint_tangents(as_fun(graph), outs, x, t)
}

/// `graph` applied to batched operands by mapping its equations: the batch
/// rule of primitives that stand for a graph of others. Every output is
/// batched on axis 0.
pub(crate) fn call_batched(
    graph: &Arc<Graph>,
    x: &[Tensor],
    axes: &[Option<usize>],
    size: usize,
) -> (Outs<Tensor>, Outs<Option<usize>>) {
    let inputs: Vec<Tensor> = x.iter().zip(axes).map(|(v, &a)| batch_first(v, a, size)).collect();
    let outs: Outs<Tensor> = vmapped(&as_fun(graph))(&inputs).into_iter().collect();
    let n = outs.len();
    (outs, smallvec::smallvec![Some(0); n])
}

/// Tangents with symbolic zeros made explicit.
pub(super) fn dense(x: &[Tensor], t: &[Option<Tensor>]) -> Vec<Tensor> {
    x.iter().zip(t).map(|(x, t)| t.clone().unwrap_or_else(|| x.zeros_like())).collect()
}

/// Every aval with a leading batch axis of `size`.
pub(super) fn batched_avals(avals: &[Aval], size: usize) -> Vec<Aval> {
    avals
        .iter()
        .map(|a| {
            let mut shape = vec![size];
            shape.extend_from_slice(&a.shape);
            Aval { dtype: a.dtype, shape }
        })
        .collect()
}

/// Concrete arrays as tensors.
pub(super) fn tensors(ins: &[&Array]) -> Vec<Tensor> {
    ins.iter().map(|a| Tensor::from_array((*a).clone())).collect()
}

/// Every output concrete: the user's function may not return a value it
/// captured from an enclosing transformation without passing it in.
pub(super) fn arrays(who: &str, outs: Vec<Tensor>) -> Outs<Array> {
    outs.iter()
        .map(|y| y.array().cloned().unwrap_or_else(|| panic!("{who}: internal error: a traced output")))
        .collect()
}

/// Panics when a captured value (an operand past the function's own
/// `n_own`) carries a tangent of the frame differentiating this call.
#[track_caller]
fn refuse_differentiated_captures(who: &str, t: &[Option<Tensor>], n_own: usize) {
    if t[n_own..].iter().any(Option::is_some) {
        panic!(
            "{who}: the function or one of its rules captured a value that an enclosing transformation is \
             differentiating (a parameter of an enclosing grad or jvp); a custom rule cannot say how its \
             output depends on it. Pass that value as an input of the function instead"
        );
    }
}

#[track_caller]
fn check_rule_avals(who: &str, what: &str, got: &[Aval], want: &[Aval], of: &str) {
    if got.len() != want.len() {
        panic!("{who}: your rule returned {} {what}s for {} {of}s; return one per {of} leaf", got.len(), want.len());
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w && w.dtype.is_float() {
            panic!(
                "{who}: your rule returned a {what} {g} for {of} {i}, which is {w}; a {what} must have the \
                 shape and dtype of its {of}"
            );
        }
    }
}

/// The identity of a user function, for primitive equality: the address of its shared closure.
pub(super) fn id_of<T: ?Sized>(f: &Arc<T>) -> usize {
    Arc::as_ptr(f) as *const () as usize
}

/// Stagings per input signature, kept only when nothing traced was captured.
struct Cache<T>(Mutex<HashMap<Signature, Arc<T>>>);

/// What a staging is cached by: the input leaves' avals and their paths.
type Signature = (Vec<Aval>, Vec<String>);

impl<T> Cache<T> {
    fn new() -> Cache<T> {
        Cache(Mutex::new(HashMap::new()))
    }

    /// The staging for inputs with these leaves' `avals` and the structure
    /// of `x`: cached, or made by `make` (and cached when `reusable` says so).
    fn get<I: TreeRef + ?Sized>(
        &self,
        x: &I,
        avals: &[Aval],
        make: impl FnOnce() -> T,
        reusable: impl Fn(&T) -> bool,
    ) -> Arc<T> {
        let key = (avals.to_vec(), structure(x));
        if let Some(hit) = self.0.lock().expect("no panic while holding the cache").get(&key) {
            return hit.clone();
        }
        let made = Arc::new(make());
        if reusable(&made) {
            self.0.lock().expect("no panic while holding the cache").insert(key, made.clone());
        }
        made
    }
}

/// The paths of `x`'s leaves (its structure: a map's keys, a struct's
/// fields). Two inputs with the same leaves in other structures must not
/// share a staged program: the function may read them by name.
pub(super) fn structure<I: TreeRef + ?Sized>(x: &I) -> Vec<String> {
    x.ref_leaf_paths()
}

/// The primitive behind a [`custom_jvp`] function: one output per leaf.
/// Operands: the function's own inputs (`n_x`), then what it and its rule captured.
#[derive(Clone)]
struct CustomJvp {
    f: Fun,
    rule: Rule,
    n_x: usize,
    outs: Vec<Aval>,
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
    fn params(&self) -> Params {
        vec![("fun", Param::Id(id_of(&self.f))), ("rule", Param::Id(id_of(&self.rule)))]
    }
    fn kind(&self) -> Kind {
        Kind::Call
    }
    fn shape(&self, _ins: &[&Aval]) -> Outs<Aval> {
        self.outs.iter().cloned().collect()
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        arrays("custom_jvp", (self.f)(&tensors(ins)))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &[Tensor]) -> Outs<Option<Tensor>> {
        refuse_differentiated_captures("custom_jvp", t, self.n_x);
        let tx = dense(&x[..self.n_x], &t[..self.n_x]);
        let _rule = context::in_user_rule("custom_jvp");
        (self.rule)(x, &tx).into_iter().map(Some).collect()
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        let rule = self.rule.clone();
        let batched = CustomJvp {
            f: vmapped(&self.f),
            rule: Arc::new(move |xs: &[Tensor], ts: &[Tensor]| {
                vmap(|p: &(Vec<Tensor>, Vec<Tensor>)| rule(&p.0, &p.1))(&(xs.to_vec(), ts.to_vec()))
            }),
            n_x: self.n_x,
            outs: batched_avals(&self.outs, size),
        };
        bind_batched_first(batched, x, axes, size)
    }
}

/// What a [`custom_jvp`] call stages: the function and the rule.
struct JvpStaging<O> {
    f: Staged<O>,
    rule: Staged<O>,
}

/// `f` with a derivative rule of your own: `rule(x, x_dot)` returns the
/// output tangent (a tree shaped like `f`'s output). Used in forward mode
/// directly and in reverse mode by transposition — so the rule must be
/// **linear in `x_dot`** (built from `x_dot` with additions, multiplications
/// by values computed from `x`, sums, reshapes…); one that is not is
/// reported, naming the operation, when reverse mode meets it. Composes
/// with `vmap` and to any order.
///
/// For numerical stability (a safe derivative for a formula whose naive
/// derivative overflows) or a surrogate gradient. The inputs are any
/// [`Tree`] or a slice of tensors; the output any tree. `f` and `rule` are
/// traced on abstract values once per input signature (so they may not
/// read tensor values — use `select` for branches — and a closure should
/// compute the same function at each call, as under JAX's `jit`); a tangent
/// of the wrong shape is reported then.
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
///
/// # Panics
/// When the rule's tangents do not match the output's leaves, shapes and
/// dtypes; when an enclosing transformation differentiates a value the
/// function or rule captured.
pub fn custom_jvp<I, O>(
    f: impl Fn(&I) -> O + Send + Sync + 'static,
    rule: impl Fn(&I, &I) -> O + Send + Sync + 'static,
) -> impl Fn(&I) -> O
where
    I: TreeRef + ?Sized,
    O: Tree,
{
    let cache: Cache<JvpStaging<O>> = Cache::new();
    move |x: &I| {
        let xs = x.ref_leaves();
        let avals = avals_of(&xs);
        let n_x = xs.len();
        let staged = cache.get(
            x,
            &avals,
            || {
                let f = stage(&avals, |ins| call_with(x, ins, &f));
                let both: Vec<Aval> = avals.iter().chain(&avals).cloned().collect();
                let rule = stage(&both, |mut ins| {
                    let ts = ins.split_off(n_x);
                    let _rule = context::in_user_rule("custom_jvp");
                    call_with(x, ins, |x| call_with(x, ts, |t| rule(x, t)))
                });
                check_rule_avals("custom_jvp", "tangent", &rule.out_avals(), &f.out_avals(), "output");
                JvpStaging { f, rule }
            },
            |s| s.f.captured.is_empty() && s.rule.captured.is_empty(),
        );
        let n_f = staged.f.captured.len();
        let mut operands = xs;
        operands.extend(staged.f.captured.iter().cloned());
        operands.extend(staged.rule.captured.iter().cloned());
        let (gf, gr) = (staged.f.graph.clone(), staged.rule.graph.clone());
        let prim = CustomJvp {
            // f's graph takes [x, f's captures]; the rule's the rest.
            f: Arc::new(move |args: &[Tensor]| gf.eval(&args[..n_x + n_f])),
            rule: Arc::new(move |args: &[Tensor], tx: &[Tensor]| {
                let rule_args: Vec<Tensor> = args[..n_x].iter().chain(tx).chain(&args[n_x + n_f..]).cloned().collect();
                gr.eval(&rule_args)
            }),
            n_x,
            outs: staged.f.out_avals(),
        };
        staged.f.out.with_leaves(bind_all(prim, &operands).into_vec())
    }
}

/// The primitive behind a [`custom_vjp`] function. Its outputs are the
/// function's output leaves (`n_out`) and then the residuals: one run of
/// `fwd` gives both, so differentiating a call never runs the forward pass
/// twice. Operands: the function's own inputs (`n_x`), what `fwd`
/// captured, then what `bwd` captured (`n_bwd`).
#[derive(Clone)]
struct CustomVjp {
    /// `fwd` on `[x, fwd's captures]`: every output leaf, then the residuals.
    fwd: Fun,
    /// `bwd` on `[residuals, bwd's captures]` and the outputs' cotangents.
    bwd: Rule,
    n_x: usize,
    n_bwd: usize,
    n_out: usize,
    /// The avals of the outputs and then of the residuals.
    outs: Vec<Aval>,
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
    fn params(&self) -> Params {
        vec![("fwd", Param::Id(id_of(&self.fwd))), ("bwd", Param::Id(id_of(&self.bwd)))]
    }
    fn kind(&self) -> Kind {
        Kind::Call
    }
    fn shape(&self, _ins: &[&Aval]) -> Outs<Aval> {
        self.outs.iter().cloned().collect()
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        let x = tensors(ins);
        arrays("custom_vjp", (self.fwd)(&x[..x.len() - self.n_bwd]))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &[Tensor]) -> Outs<Option<Tensor>> {
        refuse_differentiated_captures("custom_vjp", t, self.n_x);
        let tx = dense(&x[..self.n_x], &t[..self.n_x]);
        let fwd_args = &x[..x.len() - self.n_bwd];
        if context::is_inner_primal() {
            // This frame computes a primal for a higher JVP frame (forward
            // over reverse: hessian, hvp, grad of grad). Only the higher
            // frame's tangents are transposed through `bwd`; here, as in
            // JAX, `fwd` is ordinary code and is differentiated as such.
            let (fwd, n_x) = (self.fwd.clone(), self.n_x);
            let rest = fwd_args[n_x..].to_vec();
            let of_x = move |xs: &Vec<Tensor>| fwd(&[xs.clone(), rest.clone()].concat());
            return jvp(of_x, &fwd_args[..n_x].to_vec(), &tx).1.into_iter().map(Some).collect();
        }
        // The outputs' tangent is a linear primitive over the residuals
        // (this call's own outputs: no second forward pass) whose only use
        // is to be transposed: its transpose is the user's backward rule.
        let mut args: Vec<Tensor> = ans[self.n_out..].to_vec();
        args.extend(x[x.len() - self.n_bwd..].iter().cloned());
        let n_const = args.len();
        args.extend(tx);
        let tangent = CustomVjpTangent { bwd: self.bwd.clone(), n_const, outs: self.outs[..self.n_out].to_vec() };
        let mut tangents: Outs<Option<Tensor>> = bind_all(tangent, &args).into_iter().map(Some).collect();
        // The residuals are constants to the derivative.
        tangents.extend(std::iter::repeat_n(None, self.outs.len() - self.n_out));
        tangents
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        let batched = CustomVjp {
            fwd: vmapped(&self.fwd),
            bwd: vmapped_bwd(&self.bwd),
            outs: batched_avals(&self.outs, size),
            ..self.clone()
        };
        bind_batched_first(batched, x, axes, size)
    }
}

/// A backward rule mapped over axis 0 of its residuals and cotangents.
fn vmapped_bwd(bwd: &Rule) -> Rule {
    let bwd = bwd.clone();
    Arc::new(move |res: &[Tensor], cts: &[Tensor]| {
        vmap(|p: &(Vec<Tensor>, Vec<Tensor>)| bwd(&p.0, &p.1))(&(res.to_vec(), cts.to_vec()))
    })
}

/// The tangent of a [`CustomVjp`] call: `[residuals and bwd's captures
/// (n_const), tangents..]` to the outputs' tangents, defined only through
/// its transpose.
#[derive(Clone)]
struct CustomVjpTangent {
    bwd: Rule,
    n_const: usize,
    outs: Vec<Aval>,
}

impl fmt::Debug for CustomVjpTangent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomVjpTangent {{ residuals: {} }}", self.n_const)
    }
}

const NO_FORWARD_MODE: &str = "custom_vjp: a function with a custom vjp has no forward-mode derivative \
     (jvp, jacfwd, linearize's evaluation); differentiate it in reverse mode (vjp, grad, jacrev, and \
     forward-over-reverse: hessian, hvp), or give it a custom_jvp rule instead, which serves both modes";

impl Primitive for CustomVjpTangent {
    fn name(&self) -> &'static str {
        "custom_vjp_tangent"
    }
    fn params(&self) -> Params {
        vec![("bwd", Param::Id(id_of(&self.bwd))), ("residuals", Param::Usize(self.n_const))]
    }
    fn kind(&self) -> Kind {
        Kind::Call
    }
    fn shape(&self, _ins: &[&Aval]) -> Outs<Aval> {
        self.outs.iter().cloned().collect()
    }
    fn eval(&self, _ins: &[&Array]) -> Outs<Array> {
        panic!("{NO_FORWARD_MODE}")
    }
    fn jvp(&self, _x: &[Tensor], _t: &[Option<Tensor>], _ans: &[Tensor]) -> Outs<Option<Tensor>> {
        panic!("{NO_FORWARD_MODE}")
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        let batched = CustomVjpTangent {
            bwd: vmapped_bwd(&self.bwd),
            n_const: self.n_const,
            outs: batched_avals(&self.outs, size),
        };
        bind_batched_first(batched, x, axes, size)
    }
    fn transpose(&self, cts: &[Option<Tensor>], ins: &[Lin]) -> Vec<Option<Tensor>> {
        let consts: Vec<Tensor> = ins[..self.n_const]
            .iter()
            .map(|l| l.value().cloned().expect("custom_vjp residuals are constants of the tangent program"))
            .collect();
        let cts: Vec<Tensor> = cts
            .iter()
            .zip(&self.outs)
            .map(|(ct, a)| ct.clone().unwrap_or_else(|| Tensor::zeros(&a.shape, a.dtype)))
            .collect();
        let in_cts = (self.bwd)(&consts, &cts);
        std::iter::repeat_n(None, self.n_const).chain(in_cts.into_iter().map(Some)).collect()
    }
}

/// What a [`custom_vjp`] call stages: the function (for its output's
/// structure, checked against `fwd`'s), `fwd` and `bwd`.
struct VjpStaging<O, R> {
    f: Staged<O>,
    fwd: Staged<(O, R)>,
    bwd: Staged<Vec<Tensor>>,
    n_res: usize,
}

/// `f` with a reverse-mode rule of your own: `fwd(x)` returns the output
/// and the residuals the backward rule needs (any tree, or a `Vec` of
/// tensors); `bwd(residuals, ct)` returns the cotangent of the input (a
/// tree shaped like it). Works under `vjp`, `grad`, `jacrev`, `vmap`, and
/// forward over reverse (`hessian`, `hvp`), where — as in JAX — the
/// forward pass is differentiated through `fwd` and the backward pass
/// through `bwd`. Plain forward mode (`jvp`) panics, as a vjp rule says
/// nothing about it — use [`custom_jvp`] for both modes.
///
/// Calls run `fwd` (and keep its residuals for a backward pass), never `f`
/// and `fwd` both: `f` is traced only to check that `fwd` returns its
/// output. All three are traced once per input signature, as in
/// [`custom_jvp`].
///
/// ```
/// # use ferrax::prelude::*;
/// // A straight-through estimator: round in the forward pass, identity gradient.
/// let round_ste = custom_vjp(
///     |x: &[Tensor]| (&x[0] * 4.0).round() / 4.0,
///     |x: &[Tensor]| ((&x[0] * 4.0).round() / 4.0, vec![]),
///     |_res: &[Tensor], ct: &Tensor| vec![ct.clone()],
/// );
/// let g = grad(|x: &Tensor| round_ste(std::slice::from_ref(x)) * 3.0)(&Tensor::scalar(0.3));
/// assert_eq!(g.item(), 3.0);
/// ```
///
/// # Panics
/// When `fwd` does not return `f`'s output, or `bwd`'s cotangents do not
/// match the input's leaves, shapes and dtypes (checked when traced); when
/// an enclosing transformation differentiates a value the functions captured.
pub fn custom_vjp<I, O, R>(
    f: impl Fn(&I) -> O + Send + Sync + 'static,
    fwd: impl Fn(&I) -> (O, R::Owned) + Send + Sync + 'static,
    bwd: impl Fn(&R, &O) -> I::Owned + Send + Sync + 'static,
) -> impl Fn(&I) -> O
where
    I: TreeRef + ?Sized,
    O: Tree,
    R: TreeRef + ?Sized,
{
    let cache: Cache<VjpStaging<O, R::Owned>> = Cache::new();
    move |x: &I| {
        let xs = x.ref_leaves();
        let avals = avals_of(&xs);
        let n_x = xs.len();
        let staged = cache.get(
            x,
            &avals,
            || {
                let sf = stage(&avals, |ins| call_with(x, ins, &f));
                let sfwd = stage(&avals, |ins| call_with(x, ins, &fwd));
                let out_avals = sf.out_avals();
                let n_out = out_avals.len();
                let fwd_avals = sfwd.out_avals();
                let (fwd_out, res_avals) = fwd_avals.split_at(n_out.min(fwd_avals.len()));
                if fwd_out != out_avals.as_slice() {
                    panic!(
                        "custom_vjp: fwd returned outputs {} but the function returns {}; fwd must return the \
                         function's output as the first element of its pair",
                        list(fwd_out),
                        list(&out_avals)
                    );
                }
                let bwd_in: Vec<Aval> = res_avals.iter().chain(&out_avals).cloned().collect();
                let n_res = res_avals.len();
                let (res_template, out_template) = (&sfwd.out.1, &sf.out);
                let sb = stage(&bwd_in, |mut ins| {
                    let cts = ins.split_off(n_res);
                    let res = res_template.with_leaves(ins);
                    let ct = out_template.with_leaves(cts);
                    bwd(Borrow::<R>::borrow(&res), &ct).ref_leaves()
                });
                check_rule_avals("custom_vjp", "cotangent", &sb.out_avals(), &avals, "input");
                VjpStaging { f: sf, fwd: sfwd, bwd: sb, n_res }
            },
            |s| s.fwd.captured.is_empty() && s.bwd.captured.is_empty(),
        );
        let n_out = staged.f.out_avals().len();
        let mut operands = xs;
        operands.extend(staged.fwd.captured.iter().cloned());
        operands.extend(staged.bwd.captured.iter().cloned());
        let (gb, n_res) = (staged.bwd.graph.clone(), staged.n_res);
        let prim = CustomVjp {
            fwd: as_fun(&staged.fwd.graph),
            // bwd's graph takes [residuals, cotangents, its captures].
            bwd: Arc::new(move |consts: &[Tensor], cts: &[Tensor]| {
                let (res, captured) = consts.split_at(n_res);
                let args: Vec<Tensor> = res.iter().chain(cts).chain(captured).cloned().collect();
                gb.eval(&args)
            }),
            n_x,
            n_bwd: staged.bwd.captured.len(),
            n_out,
            outs: staged.fwd.out_avals(),
        };
        let mut outs = bind_all(prim, &operands);
        outs.truncate(n_out);
        staged.f.out.with_leaves(outs.into_vec())
    }
}

fn list(avals: &[Aval]) -> String {
    let parts: Vec<String> = avals.iter().map(Aval::to_string).collect();
    format!("({})", parts.join(", "))
}

/// The primitive behind a [`checkpoint`]ed function: one output per leaf;
/// operands are its inputs and then what it captured, all differentiable.
#[derive(Clone)]
struct Checkpoint {
    f: Fun,
    outs: Vec<Aval>,
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
    fn params(&self) -> Params {
        vec![("fun", Param::Id(id_of(&self.f)))]
    }
    fn kind(&self) -> Kind {
        Kind::Call
    }
    fn shape(&self, _ins: &[&Aval]) -> Outs<Aval> {
        self.outs.iter().cloned().collect()
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        arrays("checkpoint", (self.f)(&tensors(ins)))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &[Tensor]) -> Outs<Option<Tensor>> {
        // Residuals: the inputs alone. The inside is recomputed by whoever
        // evaluates or transposes the tangent.
        checkpoint_tangents(self.f.clone(), &self.outs, x, t)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        let batched = Checkpoint { f: vmapped(&self.f), outs: batched_avals(&self.outs, size) };
        bind_batched_first(batched, x, axes, size)
    }
}

/// `[x.., x_dot..]` to the tangents of a checkpointed function: linear in
/// `x_dot`, computed by re-running the function inside a jvp (forward) or vjp
/// (transpose).
#[derive(Clone)]
pub(super) struct CheckpointTangent {
    pub(super) f: Fun,
    pub(super) outs: Vec<Aval>,
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
    fn params(&self) -> Params {
        vec![("fun", Param::Id(id_of(&self.f)))]
    }
    fn kind(&self) -> Kind {
        Kind::Call
    }
    fn shape(&self, _ins: &[&Aval]) -> Outs<Aval> {
        self.outs.iter().cloned().collect()
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        arrays("checkpoint", (self.as_fun())(&tensors(ins)))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &[Tensor]) -> Outs<Option<Tensor>> {
        // Second order: differentiate the recomputation itself, checkpointed again.
        checkpoint_tangents(self.as_fun(), &self.outs, x, t)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        let batched = CheckpointTangent { f: vmapped(&self.f), outs: batched_avals(&self.outs, size) };
        bind_batched_first(batched, x, axes, size)
    }
    fn transpose(&self, cts: &[Option<Tensor>], ins: &[Lin]) -> Vec<Option<Tensor>> {
        let n = ins.len() / 2;
        let x: Vec<Tensor> =
            ins[..n].iter().map(|l| l.value().cloned().expect("checkpoint inputs are residuals")).collect();
        let cts: Vec<Tensor> = cts
            .iter()
            .zip(&self.outs)
            .map(|(ct, a)| ct.clone().unwrap_or_else(|| Tensor::zeros(&a.shape, a.dtype)))
            .collect();
        let f = self.f.clone();
        let (_, pullback) = vjp(|x: &Vec<Tensor>| f(x), &x);
        std::iter::repeat_n(None, n).chain(pullback(&cts).into_iter().map(Some)).collect()
    }
}

/// Rematerialisation (gradient checkpointing): `checkpoint(f)` computes
/// what `f` does, but its pullback keeps only `f`'s inputs (and what it
/// captured) and recomputes the inside during the backward pass — trading
/// compute for the memory of `f`'s intermediate values. Same derivatives in
/// every mode, also with respect to values `f` captured from an enclosing
/// transformation. `f` is traced once per input signature, as in [`custom_jvp`].
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
pub fn checkpoint<I, O>(f: impl Fn(&I) -> O + Send + Sync + 'static) -> impl Fn(&I) -> O
where
    I: TreeRef + ?Sized,
    O: Tree,
{
    let cache: Cache<Staged<O>> = Cache::new();
    move |x: &I| {
        let xs = x.ref_leaves();
        let avals = avals_of(&xs);
        let staged = cache.get(x, &avals, || stage(&avals, |ins| call_with(x, ins, &f)), |s| s.captured.is_empty());
        let mut operands = xs;
        operands.extend(staged.captured.iter().cloned());
        let prim = Checkpoint { f: as_fun(&staged.graph), outs: staged.out_avals() };
        staged.out.with_leaves(bind_all(prim, &operands).into_vec())
    }
}
