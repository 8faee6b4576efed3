//! Reverse mode: `linearize` stages the tangent side of a JVP into a linear
//! graph; `vjp` transposes that graph; `grad` is `vjp` with cotangent 1.
//!
//! The derivative rules are the primitives' `jvp` rules and nothing else, so
//! forward and reverse mode cannot disagree.

use std::panic::Location;

use crate::array::Aval;
use crate::core::Tensor;
use crate::graph::{backward_pass, backward_pass_each, Graph};
use crate::tree::Tree;

use super::jvp::jvp;
use super::staging::Staging;

/// A function's linearisation at a point: the linear graph of its tangent
/// computation, with the structure of its inputs and outputs.
struct Linear<I, O> {
    graph: Graph,
    /// Input structure (leaves are placeholders, not the primal values).
    in_tree: I,
    /// Avals of the input leaves; only float leaves are graph inputs.
    in_avals: Vec<Aval>,
    /// Output structure (placeholder leaves).
    out_tree: O,
    out_avals: Vec<Aval>,
    /// Where the transformation was applied, for messages.
    at: &'static Location<'static>,
}

fn placeholder_tree<T: Tree>(t: &T) -> T {
    let p = Tensor::scalar(0.0f64);
    t.map_leaves(|_| p.clone())
}

#[track_caller]
fn linearize_impl<I: Tree, O: Tree>(f: impl FnOnce(&I) -> O, x: &I) -> (O, Linear<I, O>) {
    let at = Location::caller();
    let xs = x.leaves();
    let staging = Staging::new();
    // Integer and bool leaves carry no tangent: jvp ignores what is passed for them.
    let tangents: Vec<Tensor> =
        xs.iter().map(|l| if l.dtype().is_float() { staging.input(l.aval().clone()) } else { l.clone() }).collect();
    let (y, y_dot) = jvp(f, x, &x.with_leaves(tangents));
    let graph = staging.finish(&y_dot.leaves());
    let lin = Linear {
        graph,
        in_tree: placeholder_tree(x),
        in_avals: xs.iter().map(|l| l.aval().clone()).collect(),
        out_tree: placeholder_tree(&y),
        out_avals: y.leaves().iter().map(|l| l.aval().clone()).collect(),
        at,
    };
    (y, lin)
}

impl<I: Tree, O: Tree> Linear<I, O> {
    fn apply(&self, x_dot: &I) -> O {
        let ts = x_dot.leaves();
        check_avals(("linearized function", "linearize", self.at), "tangent", "input", &ts, &self.in_avals);
        let float_ts: Vec<Tensor> =
            ts.into_iter().zip(&self.in_avals).filter(|(_, a)| a.dtype.is_float()).map(|(t, _)| t).collect();
        self.out_tree.with_leaves(self.graph.eval(&float_ts))
    }

    fn transpose(&self, ct: &O) -> I {
        let cts = ct.leaves();
        check_avals(("pullback", "vjp", self.at), "cotangent", "output", &cts, &self.out_avals);
        let cts: Vec<Option<Tensor>> = cts.into_iter().map(Some).collect();
        let mut in_cts = backward_pass(&self.graph, &cts).into_iter();
        let leaves = self
            .in_avals
            .iter()
            .map(|a| {
                let ct = if a.dtype.is_float() { in_cts.next().flatten() } else { None };
                ct.unwrap_or_else(|| Tensor::zeros(&a.shape, a.dtype))
            })
            .collect();
        self.in_tree.with_leaves(leaves)
    }
}

/// Checks the leaves given to a linearized function or pullback; `who` is
/// (the function, the transformation that made it, where it was applied).
fn check_avals(who: (&str, &str, &Location), what: &str, of: &str, got: &[Tensor], want: &[Aval]) {
    let (name, made_by, at) = who;
    if got.len() != want.len() {
        panic!(
            "{name}: expected {} {what} leaves (one per {of} leaf), got {} ({made_by} applied at {at})",
            want.len(),
            got.len()
        );
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g.aval() != w && w.dtype.is_float() {
            panic!(
                "{name}: {what} {i} is {} but its {of} is {w}; pass a {what} of the {of}'s shape and dtype \
                 ({made_by} applied at {at})",
                g.aval()
            );
        }
    }
}

/// `f(x)` and its linearisation at `x`: a function that maps a tangent of
/// the input to the tangent of the output (`J · x_dot`), evaluating a
/// staged linear program instead of re-running `f`.
///
/// ```
/// # use ferrax::prelude::*;
/// let (y, f_lin) = linearize(|x: &Tensor| x.sin(), &Tensor::scalar(0.0));
/// assert_eq!(y.item(), 0.0);
/// assert_eq!(f_lin(&Tensor::scalar(2.0)).item(), 2.0); // cos(0) · 2
/// ```
///
/// # Panics
/// The returned function panics when a tangent's shape or dtype differs from its input's.
#[track_caller]
pub fn linearize<I: Tree, O: Tree>(f: impl FnOnce(&I) -> O, x: &I) -> (O, impl Fn(&I) -> O) {
    let (y, lin) = linearize_impl(f, x);
    (y, move |x_dot: &I| lin.apply(x_dot))
}

/// `f(x)` and its pullback: a function from a cotangent of the output
/// (`y_bar`, shaped like `f(x)`) to the cotangent of the input (`Jᵀ y_bar`,
/// shaped like `x`). This is what PyTorch's `y.backward(y_bar)` computes.
///
/// The pullback holds only the residuals of the forward pass (the values
/// its derivative rules need), not the whole computation.
///
/// ```
/// # use ferrax::prelude::*;
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let (y, pullback) = vjp(|x: &Tensor| x * x, &x);
/// let x_bar = pullback(&Tensor::from_vec(vec![1.0, 10.0], &[2]));
/// assert_eq!(x_bar.to_vec::<f64>(), vec![2.0, 40.0]);
/// # let _ = y;
/// ```
///
/// # Panics
/// The pullback panics when a cotangent's shape or dtype differs from its output's.
#[track_caller]
pub fn vjp<I: Tree, O: Tree>(f: impl FnOnce(&I) -> O, x: &I) -> (O, impl Fn(&O) -> I) {
    let (y, lin) = linearize_impl(f, x);
    (y, move |ct: &O| lin.transpose(ct))
}

fn check_float_inputs<I: Tree>(x: &I, who: &str, at: &Location) {
    for (i, l) in x.leaves().iter().enumerate() {
        if !l.dtype().is_float() {
            panic!(
                "{who}: input leaf {i} is {}; gradients are taken with respect to float inputs only \
                 (convert it with .to_dtype(DType::F64), or capture it in the closure instead) ({who} applied at {at})",
                l.dtype()
            );
        }
    }
}

fn check_scalar_output(y: &Tensor, who: &str, at: &Location) {
    if y.size() != 1 {
        panic!(
            "{who}: the function must return a scalar, but it returned shape {:?}; reduce it with .sum() or \
             .mean(), or use vjp or jacrev for the derivative of a non-scalar output ({who} applied at {at})",
            y.shape()
        );
    }
    if !y.dtype().is_float() {
        panic!("{who}: the function returned a {} value, which has no gradient ({who} applied at {at})", y.dtype());
    }
}

fn value_and_grad_impl<I: Tree>(f: &impl Fn(&I) -> Tensor, x: &I, who: &str, at: &Location) -> (Tensor, I) {
    let (y, g) = value_and_grad_each(f, x, (who, at), |_| false, &mut |_, _| {});
    (y, g.expect("not streamed"))
}

/// The value of the scalar `f` at `x`, with its gradient handed leaf by
/// leaf to `ready(leaf, gradient)` as the backward pass finishes each (see
/// [`backward_pass_each`]), the last leaves used first, when `stream`
/// accepts the linear graph; otherwise the gradient comes back whole, as
/// [`value_and_grad`]'s. `ready` is called once for every leaf of `x` when
/// it is called at all.
#[track_caller]
pub(crate) fn value_and_grad_streamed<I: Tree>(
    f: impl FnOnce(&I) -> Tensor,
    x: &I,
    stream: impl FnOnce(&Graph) -> bool,
    ready: &mut dyn FnMut(usize, Tensor),
) -> (Tensor, Option<I>) {
    value_and_grad_each(f, x, ("value_and_grad", Location::caller()), stream, ready)
}

/// [`value_and_grad_streamed`], `who` being the transformation and where
/// it was applied, for messages.
fn value_and_grad_each<I: Tree>(
    f: impl FnOnce(&I) -> Tensor,
    x: &I,
    (who, at): (&str, &Location),
    stream: impl FnOnce(&Graph) -> bool,
    ready: &mut dyn FnMut(usize, Tensor),
) -> (Tensor, Option<I>) {
    check_float_inputs(x, who, at);
    let (y, lin) = linearize_impl(f, x);
    check_scalar_output(&y, who, at);
    let seed = Tensor::ones(y.shape(), y.dtype());
    if !stream(&lin.graph) {
        let g = lin.transpose(&seed);
        return (y, Some(g));
    }
    // Every leaf is a float, so graph input p is leaf p.
    backward_pass_each(&lin.graph, &[Some(seed)], &mut |p, ct| {
        let a = &lin.in_avals[p];
        ready(p, ct.unwrap_or_else(|| Tensor::zeros(&a.shape, a.dtype)))
    });
    (y, None)
}

/// The gradient of a scalar function: `grad(f)(&x)` has the structure of `x`.
///
/// ```
/// # use ferrax::prelude::*;
/// let f = |x: &(Tensor, Tensor)| x.0.ln() + &x.0 * &x.1 - x.1.sin();
/// let (d1, d2) = grad(f)(&(Tensor::scalar(2.0), Tensor::scalar(5.0)));
/// assert_eq!(d1.item(), 5.5);
/// assert!((d2.item() - 1.716337814536774).abs() < 1e-15);
/// ```
///
/// # Panics
/// When `f` returns more than one element (the message points to `sum`,
/// `vjp` and `jacrev`), or an input leaf is not a float tensor.
#[track_caller]
pub fn grad<I: Tree>(f: impl Fn(&I) -> Tensor) -> impl Fn(&I) -> I {
    let at = Location::caller();
    move |x: &I| value_and_grad_impl(&f, x, "grad", at).1
}

/// The value and the gradient of a scalar function in one pass.
///
/// # Panics
/// As [`grad`].
#[track_caller]
pub fn value_and_grad<I: Tree>(f: impl Fn(&I) -> Tensor) -> impl Fn(&I) -> (Tensor, I) {
    let at = Location::caller();
    move |x: &I| value_and_grad_impl(&f, x, "value_and_grad", at)
}

/// [`value_and_grad`] for a function that also returns auxiliary data (JAX's
/// `has_aux=True`): `f` returns `(loss, aux)`; the result is
/// `((loss, aux), gradient)`. `aux` — metrics, predictions, new state — is
/// not differentiated.
///
/// ```
/// # use ferrax::prelude::*;
/// let f = |w: &Tensor| {
///     let pred = w * 3.0;
///     ((&pred - 1.0).square().sum(), pred)
/// };
/// let ((loss, pred), g) = value_and_grad_with_aux(f)(&Tensor::scalar(1.0));
/// assert_eq!((loss.item(), pred.item(), g.item()), (4.0, 3.0, 12.0));
/// ```
///
/// # Panics
/// As [`grad`].
#[track_caller]
pub fn value_and_grad_with_aux<I: Tree, A: Tree>(f: impl Fn(&I) -> (Tensor, A)) -> impl Fn(&I) -> ((Tensor, A), I) {
    let at = Location::caller();
    move |x: &I| with_aux_impl(&f, x, "value_and_grad_with_aux", at)
}

/// [`grad`] for a function that also returns auxiliary data: `f` returns
/// `(loss, aux)`; the result is `(gradient, aux)`, as JAX's `grad(f, has_aux=True)`.
///
/// # Panics
/// As [`grad`].
#[track_caller]
pub fn grad_with_aux<I: Tree, A: Tree>(f: impl Fn(&I) -> (Tensor, A)) -> impl Fn(&I) -> (I, A) {
    let at = Location::caller();
    move |x: &I| {
        let ((_, aux), g) = with_aux_impl(&f, x, "grad_with_aux", at);
        (g, aux)
    }
}

fn with_aux_impl<I: Tree, A: Tree>(
    f: &impl Fn(&I) -> (Tensor, A),
    x: &I,
    who: &str,
    at: &Location,
) -> ((Tensor, A), I) {
    check_float_inputs(x, who, at);
    let (out, pullback) = vjp(f, x);
    let (y, aux) = &out;
    check_scalar_output(y, who, at);
    let zero_aux = aux.map_leaves(Tensor::zeros_like);
    let g = pullback(&(Tensor::ones(y.shape(), y.dtype()), zero_aux));
    (out, g)
}
