//! User-defined derivative rules — `custom_jvp`, `custom_vjp` — and
//! rematerialisation, `checkpoint`. Each wraps a function as primitives
//! whose rules call back into user code, so it composes with every
//! transformation like a built-in primitive.
//!
//! At each call the user's function and rules are staged on abstract
//! inputs, which gives the output structure and shapes (so the rules can be
//! checked at once, and no output has to be computed to learn its shape),
//! and *closure-converts* them as JAX does: values of enclosing
//! transformations that the closures captured (a batch of an enclosing
//! `vmap`, a parameter of an enclosing `grad`) become explicit operands, so
//! those transformations see them. A checkpointed function is
//! differentiated with respect to what it captured like any input; a custom
//! rule cannot say how its output depends on a captured value that is being
//! differentiated, so that case is refused with a message.
//!
//! Each output leaf is its own primitive application (several-output
//! primitives are the design issue's); a function with several outputs is
//! evaluated once per output.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use crate::array::{Array, Aval};
use crate::core::{bind, context, Lin, Primitive, Tensor};
use crate::graph::Graph;
use crate::prims::batching::batch_first;
use crate::tree::{Tree, TreeRef};

use super::jvp::jvp;
use super::linearize::vjp;
use super::staging::Staging;
use super::vmap::vmap;

/// A function of flat operands giving one output leaf.
type Fun = Arc<dyn Fn(&[Tensor]) -> Tensor + Send + Sync>;
/// A jvp rule: (all operands, tangents of the function's own inputs) to one output tangent.
type Rule = Arc<dyn Fn(&[Tensor], &[Tensor]) -> Tensor + Send + Sync>;
/// A function of flat operands giving every output leaf (and residuals).
type Funs = Arc<dyn Fn(&[Tensor]) -> Vec<Tensor> + Send + Sync>;
/// A backward rule: (residuals and captured values, output cotangent) to input cotangents.
type Bwd = Arc<dyn Fn(&[Tensor], &Tensor) -> Vec<Tensor> + Send + Sync>;

/// A user function staged on abstract inputs: its graph (captured tracers
/// hoisted to inputs after the others), the structure of its output, and
/// the tracers, to be passed back in.
struct Staged<O> {
    graph: Arc<Graph>,
    out: O,
    captured: Vec<Tensor>,
}

fn stage<O: Tree>(avals: &[Aval], f: impl FnOnce(Vec<Tensor>) -> O) -> Staged<O> {
    let staging = Staging::new();
    let ins: Vec<Tensor> = avals.iter().map(|a| staging.input(a.clone())).collect();
    let out = f(ins);
    let graph = staging.finish(&out.leaves());
    let placeholder = Tensor::scalar(0.0f64);
    let (graph, captured) = graph.hoist_traced_consts();
    Staged { graph: Arc::new(graph), out: out.map_leaves(|_| placeholder.clone()), captured }
}

impl<O> Staged<O> {
    fn out_avals(&self) -> Vec<Aval> {
        self.graph.outputs.iter().map(|&v| self.graph.avals[v].clone()).collect()
    }
}

/// `x`'s structure with these leaves, as the `&I` a user function takes.
fn call_with<I: TreeRef + ?Sized, R>(x: &I, leaves: Vec<Tensor>, f: impl FnOnce(&I) -> R) -> R {
    let owned = x.with_leaves_owned(leaves);
    f(Borrow::<I>::borrow(&owned))
}

fn avals_of(xs: &[Tensor]) -> Vec<Aval> {
    xs.iter().map(|x| x.aval().clone()).collect()
}

/// Output leaf `k` of `graph` evaluated on `args` (with `bind`, so enclosing
/// transformations trace it).
fn leaf_of(graph: &Graph, args: &[Tensor], k: usize) -> Tensor {
    graph.eval(args).swap_remove(k)
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

/// `aval` with a leading batch axis of `size`.
fn batched_aval(aval: &Aval, size: usize) -> Aval {
    let mut shape = vec![size];
    shape.extend_from_slice(&aval.shape);
    Aval { dtype: aval.dtype, shape }
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

/// The primitive behind output leaf `k` of a [`custom_jvp`] function.
/// Operands: the function's own inputs (`n_x`), then what it and its rule captured.
#[derive(Clone)]
struct CustomJvp {
    f: Fun,
    rule: Rule,
    n_x: usize,
    out: Aval,
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
    fn shape(&self, _ins: &[&Aval]) -> Aval {
        self.out.clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        let xs: Vec<Tensor> = ins.iter().map(|a| Tensor::from_array((*a).clone())).collect();
        (self.f)(&xs).to_array()
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        refuse_differentiated_captures("custom_jvp", t, self.n_x);
        let tx = dense(&x[..self.n_x], &t[..self.n_x]);
        let _rule = context::in_user_rule("custom_jvp");
        Some((self.rule)(x, &tx))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let rule = self.rule.clone();
        let batched = CustomJvp {
            f: vmapped(&self.f),
            rule: Arc::new(move |xs: &[Tensor], ts: &[Tensor]| {
                vmap(|p: &(Vec<Tensor>, Vec<Tensor>)| rule(&p.0, &p.1))(&(xs.to_vec(), ts.to_vec()))
            }),
            n_x: self.n_x,
            out: batched_aval(&self.out, size),
        };
        (bind(batched, &all_batched_first(x, axes, size)), Some(0))
    }
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
/// traced on abstract values at each call (so they may not read tensor
/// values; use `select` for branches); a tangent of the wrong shape is
/// reported then.
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
    move |x: &I| {
        let xs = x.ref_leaves();
        let avals = avals_of(&xs);
        let n_x = xs.len();
        let sf = stage(&avals, |ins| call_with(x, ins, &f));
        let both: Vec<Aval> = avals.iter().chain(&avals).cloned().collect();
        let sr = stage(&both, |mut ins| {
            let ts = ins.split_off(n_x);
            let _rule = context::in_user_rule("custom_jvp");
            call_with(x, ins, |x| call_with(x, ts, |t| rule(x, t)))
        });
        let out_avals = sf.out_avals();
        check_rule_avals("custom_jvp", "tangent", &sr.out_avals(), &out_avals, "output");
        let n_f = sf.captured.len();
        let mut operands = xs;
        operands.extend(sf.captured.iter().cloned());
        operands.extend(sr.captured.iter().cloned());
        let outs = out_avals
            .into_iter()
            .enumerate()
            .map(|(k, out)| {
                let (gf, gr) = (sf.graph.clone(), sr.graph.clone());
                let prim = CustomJvp {
                    f: Arc::new(move |args: &[Tensor]| leaf_of(&gf, &args[..n_x + n_f], k)),
                    rule: Arc::new(move |args: &[Tensor], tx: &[Tensor]| {
                        let rule_args: Vec<Tensor> =
                            args[..n_x].iter().chain(tx).chain(&args[n_x + n_f..]).cloned().collect();
                        leaf_of(&gr, &rule_args, k)
                    }),
                    n_x,
                    out,
                };
                bind(prim, &operands)
            })
            .collect();
        sf.out.with_leaves(outs)
    }
}

/// The primitive behind output leaf `k` of a [`custom_vjp`] function.
/// Operands: the function's own inputs (`n_x`), what `f` captured, what
/// `fwd` captured (`n_fwd`), what `bwd` captured (`n_bwd`).
#[derive(Clone)]
struct CustomVjp {
    /// The function's output leaf `k`.
    f: Fun,
    /// `fwd` on `[x, fwd's captures]`: every output leaf, then the residuals.
    fwd: Funs,
    /// `bwd` on `[residuals, bwd's captures]` and leaf `k`'s cotangent.
    bwd: Bwd,
    n_x: usize,
    n_f: usize,
    n_fwd: usize,
    n_out: usize,
    k: usize,
    out: Aval,
}

impl fmt::Debug for CustomVjp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomVjp")
    }
}

impl CustomVjp {
    fn fwd_args(&self, x: &[Tensor]) -> Vec<Tensor> {
        let fwd_start = self.n_x + self.n_f;
        x[..self.n_x].iter().chain(&x[fwd_start..fwd_start + self.n_fwd]).cloned().collect()
    }
}

impl Primitive for CustomVjp {
    fn name(&self) -> &'static str {
        "custom_vjp"
    }
    fn shape(&self, _ins: &[&Aval]) -> Aval {
        self.out.clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        let xs: Vec<Tensor> = ins.iter().map(|a| Tensor::from_array((*a).clone())).collect();
        (self.f)(&xs).to_array()
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        refuse_differentiated_captures("custom_vjp", t, self.n_x);
        let tx = dense(&x[..self.n_x], &t[..self.n_x]);
        let fwd_args = self.fwd_args(x);
        if context::is_inner_primal() {
            // This frame computes a primal for a higher JVP frame (forward
            // over reverse: hessian, hvp, grad of grad). Only the higher
            // frame's tangents are transposed through `bwd`; here, as in
            // JAX, `fwd` is ordinary code and is differentiated as such.
            let (fwd, k, n_x) = (self.fwd.clone(), self.k, self.n_x);
            let rest = fwd_args[n_x..].to_vec();
            let of_x = move |xs: &Vec<Tensor>| fwd(&[xs.clone(), rest.clone()].concat()).swap_remove(k);
            return Some(jvp(of_x, &fwd_args[..n_x].to_vec(), &tx).1);
        }
        // The tangent is a linear primitive over the residuals whose only
        // use is to be transposed: its transpose is the user's backward rule.
        let residuals = (self.fwd)(&fwd_args).split_off(self.n_out);
        let bwd_start = self.n_x + self.n_f + self.n_fwd;
        let mut args = residuals;
        args.extend(x[bwd_start..].iter().cloned());
        let n_const = args.len();
        args.extend(tx);
        Some(bind(CustomVjpTangent { bwd: self.bwd.clone(), n_const, out: self.out.clone() }, &args))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let fwd = self.fwd.clone();
        let batched = CustomVjp {
            f: vmapped(&self.f),
            fwd: Arc::new(move |xs: &[Tensor]| vmap(|xs: &Vec<Tensor>| fwd(xs))(&xs.to_vec())),
            bwd: vmapped_bwd(&self.bwd),
            out: batched_aval(&self.out, size),
            ..self.clone()
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

/// The tangent of a [`CustomVjp`] call: `[residuals and bwd's captures
/// (n_const), tangents..]` to the output tangent, defined only through its
/// transpose.
#[derive(Clone)]
struct CustomVjpTangent {
    bwd: Bwd,
    n_const: usize,
    out: Aval,
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
        let batched =
            CustomVjpTangent { bwd: vmapped_bwd(&self.bwd), n_const: self.n_const, out: batched_aval(&self.out, size) };
        (bind(batched, &all_batched_first(x, axes, size)), Some(0))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let consts: Vec<Tensor> = ins[..self.n_const]
            .iter()
            .map(|l| l.value().cloned().expect("custom_vjp residuals are constants of the tangent program"))
            .collect();
        let cts = (self.bwd)(&consts, ct);
        std::iter::repeat_n(None, self.n_const).chain(cts.into_iter().map(Some)).collect()
    }
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
/// When `bwd`'s cotangents do not match the input's leaves, shapes and
/// dtypes (checked at each call, by tracing `bwd`); when an enclosing
/// transformation differentiates a value the functions captured.
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
    move |x: &I| {
        let xs = x.ref_leaves();
        let avals = avals_of(&xs);
        let n_x = xs.len();
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
        let (res_template, out_template) = (&sfwd.out.1, &sf.out);
        let n_res = res_avals.len();
        let sb = stage(&bwd_in, |mut ins| {
            let cts = ins.split_off(n_res);
            let res = res_template.with_leaves(ins);
            let ct = out_template.with_leaves(cts);
            bwd(Borrow::<R>::borrow(&res), &ct)
        });
        check_rule_avals("custom_vjp", "cotangent", &sb.out_avals(), &avals, "input");
        let (n_f, n_fwd) = (sf.captured.len(), sfwd.captured.len());
        let mut operands = xs;
        operands.extend(sf.captured.iter().cloned());
        operands.extend(sfwd.captured.iter().cloned());
        operands.extend(sb.captured.iter().cloned());
        let zeros: Vec<Tensor> = out_avals.iter().map(|a| Tensor::zeros(&a.shape, a.dtype)).collect();
        let outs = out_avals
            .iter()
            .enumerate()
            .map(|(k, out)| {
                let (gf, gfwd, gb) = (sf.graph.clone(), sfwd.graph.clone(), sb.graph.clone());
                let zeros = zeros.clone();
                let prim = CustomVjp {
                    f: Arc::new(move |args: &[Tensor]| leaf_of(&gf, &args[..n_x + n_f], k)),
                    fwd: Arc::new(move |args: &[Tensor]| gfwd.eval(args)),
                    // Leaf k's cotangent, zeros for the others: bwd is linear in it,
                    // so the backward pass sums the leaves' contributions.
                    bwd: Arc::new(move |consts: &[Tensor], ct: &Tensor| {
                        let (res, captured) = consts.split_at(n_res);
                        let mut cts = zeros.clone();
                        cts[k] = ct.clone();
                        let args: Vec<Tensor> = res.iter().chain(&cts).chain(captured).cloned().collect();
                        gb.eval(&args)
                    }),
                    n_x,
                    n_f,
                    n_fwd,
                    n_out,
                    k,
                    out: out.clone(),
                };
                bind(prim, &operands)
            })
            .collect();
        sf.out.with_leaves(outs)
    }
}

fn list(avals: &[Aval]) -> String {
    let parts: Vec<String> = avals.iter().map(Aval::to_string).collect();
    format!("({})", parts.join(", "))
}

/// The primitive behind output leaf `k` of a [`checkpoint`]ed function;
/// operands are its inputs and then what it captured, all differentiable.
#[derive(Clone)]
struct Checkpoint {
    f: Fun,
    out: Aval,
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
    fn shape(&self, _ins: &[&Aval]) -> Aval {
        self.out.clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        let xs: Vec<Tensor> = ins.iter().map(|a| Tensor::from_array((*a).clone())).collect();
        (self.f)(&xs).to_array()
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        // Residuals: the inputs alone. The inside is recomputed by whoever
        // evaluates or transposes the tangent.
        let mut args = x.to_vec();
        args.extend(dense(x, t));
        Some(bind(CheckpointTangent { f: self.f.clone(), out: self.out.clone() }, &args))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let batched = Checkpoint { f: vmapped(&self.f), out: batched_aval(&self.out, size) };
        (bind(batched, &all_batched_first(x, axes, size)), Some(0))
    }
}

/// `[x.., x_dot..]` to the tangent of a checkpointed function: linear in
/// `x_dot`, computed by re-running the function inside a jvp (forward) or vjp
/// (transpose).
#[derive(Clone)]
struct CheckpointTangent {
    f: Fun,
    out: Aval,
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
    fn shape(&self, _ins: &[&Aval]) -> Aval {
        self.out.clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        let xs: Vec<Tensor> = ins.iter().map(|a| Tensor::from_array((*a).clone())).collect();
        (self.as_fun())(&xs).to_array()
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        // Second order: differentiate the recomputation itself, checkpointed again.
        let mut args = x.to_vec();
        args.extend(dense(x, t));
        Some(bind(CheckpointTangent { f: self.as_fun(), out: self.out.clone() }, &args))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let batched = CheckpointTangent { f: vmapped(&self.f), out: batched_aval(&self.out, size) };
        (bind(batched, &all_batched_first(x, axes, size)), Some(0))
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
/// what `f` does, but its pullback keeps only `f`'s inputs (and what it
/// captured) and recomputes the inside during the backward pass — trading
/// compute for the memory of `f`'s intermediate values. Same derivatives in
/// every mode, also with respect to values `f` captured from an enclosing
/// transformation.
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
    move |x: &I| {
        let xs = x.ref_leaves();
        let sf = stage(&avals_of(&xs), |ins| call_with(x, ins, &f));
        let mut operands = xs;
        operands.extend(sf.captured.iter().cloned());
        let outs = sf
            .out_avals()
            .into_iter()
            .enumerate()
            .map(|(k, out)| {
                let g = sf.graph.clone();
                bind(Checkpoint { f: Arc::new(move |args: &[Tensor]| leaf_of(&g, args, k)), out }, &operands)
            })
            .collect();
        sf.out.with_leaves(outs)
    }
}
