//! Control flow that transformations see: [`scan`], [`fori_loop`],
//! [`while_loop`], [`cond`] and [`switch`], in the style of JAX's `lax`.
//!
//! Under `jvp` and `grad` a Rust `for` or `if` works because values are
//! concrete; under `vmap` and `jit` it does not (a loop is unrolled into
//! the program, an `if` on a traced value cannot be decided). These
//! functions stage their bodies once, on abstract values, into primitives
//! that hold them as sub-programs, so every transformation applies: a
//! thousand-step `scan` is one equation of a jitted program, its gradient
//! a second scan run backwards, its `vmap` one scan of a batched body.
//!
//! Bodies may use tensors they capture from the enclosing code, including
//! values an enclosing transformation is differentiating or batching: those
//! become operands of the primitive (closure conversion, as in JAX).
//!
//! | function | forward mode | reverse mode | `vmap` |
//! |---|---|---|---|
//! | [`scan`], [`fori_loop`] | ✓ | ✓, keeping each step's residuals | ✓ |
//! | [`while_loop`], [`fori_loop_traced`] | ✓ | refused (use [`fori_loop`] or [`scan`]) | ✓, until every member is done |
//! | [`cond`], [`switch`] | ✓ | ✓ | ✓, a batched index selects |

mod body;
mod branch;
mod scan;
mod while_loop;

use crate::array::{Aval, DType};
use crate::core::{bind_all, Tensor};
use crate::tree::Tree;

use super::custom::avals_of;
use body::stage_user;
use scan::Scan;

pub use branch::{cond, switch};
pub use while_loop::{fori_loop_traced, while_loop};

/// How [`scan_with`] runs: the number of steps when there are no `xs`,
/// and the direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// The number of steps; required when `xs` has no leaves, and must
    /// agree with their leading axis when it has.
    pub length: Option<usize>,
    /// Scan from the last row of `xs` to the first, stacking `ys` in the
    /// rows they came from (JAX's `reverse=True`).
    pub reverse: bool,
    /// Steps per iteration of the staged loop: the body is applied this many
    /// times in a row per iteration (0 and 1 mean once), so that the
    /// program optimiser sees several steps together. Results are the same.
    pub unroll: usize,
}

/// Loops `f` over the leading axis of every leaf of `xs`, threading a
/// carry: `f(&carry, &x_t)` returns the next carry and this step's output
/// `y_t`; the result is the last carry and every `y_t` stacked along a new
/// leading axis — JAX's `lax.scan`:
///
/// ```text
/// carry = init
/// for t in 0..length { (carry, ys[t]) = f(&carry, &xs[t]) }
/// (carry, ys)
/// ```
///
/// `f` is traced once, on abstract values, into one primitive; the carry
/// must keep its structure, shapes and dtypes. Reverse mode stores each
/// step's residuals and runs the body's transpose backwards; wrap `f` in
/// [`checkpoint`](crate::transforms::checkpoint) to store only the carry
/// and recompute each step's inside instead.
/// Forward mode (`jvp`, `jacfwd`) takes the same split into a scan that
/// keeps each step's residuals and a scan of the linear part, so it holds
/// them too, where JAX's forward mode runs one scan of values and tangents
/// together: the results are the same, the memory is linear in the steps.
///
/// ```
/// # use ferrax::prelude::*;
/// // A cumulative sum and a running maximum.
/// let xs = Tensor::from_vec(vec![1.0, 3.0, 2.0], &[3]);
/// let (total, sums) = scan(|c: &Tensor, x: &Tensor| { let s = c + x; (s.clone(), s) }, &Tensor::scalar(0.0), &xs);
/// assert_eq!((total.item(), sums.to_vec::<f64>()), (6.0, vec![1.0, 4.0, 6.0]));
/// // Its gradient with respect to the inputs:
/// let g = grad(|xs: &Tensor| scan(|c: &Tensor, x: &Tensor| (c * x, c.clone()), &Tensor::scalar(1.0), xs).0)(&xs);
/// assert_eq!(g.to_vec::<f64>(), vec![6.0, 2.0, 3.0]);
/// ```
///
/// # Panics
/// When `xs`' leaves have different leading sizes (or none), or `f`
/// returns a carry of another structure, shape or dtype than `init`.
#[track_caller]
pub fn scan<C: Tree, X: Tree, Y: Tree>(f: impl Fn(&C, &X) -> (C, Y), init: &C, xs: &X) -> (C, Y) {
    scan_with(f, init, xs, ScanOptions::default())
}

/// [`scan`] with options: a length without `xs` (pass `&()`), the reverse
/// direction, unrolling.
///
/// ```
/// # use ferrax::prelude::*;
/// use ferrax::control::{scan_with, ScanOptions};
/// // Powers of 2, with no xs.
/// let opts = ScanOptions { length: Some(4), ..Default::default() };
/// let (_, ys) = scan_with(|c: &Tensor, _: &()| (c * 2.0, c.clone()), &Tensor::scalar(1.0), &(), opts);
/// assert_eq!(ys.to_vec::<f64>(), vec![1.0, 2.0, 4.0, 8.0]);
/// ```
///
/// # Panics
/// As [`scan`]; also when `length` disagrees with `xs`, or neither gives one.
#[track_caller]
pub fn scan_with<C: Tree, X: Tree, Y: Tree>(
    f: impl Fn(&C, &X) -> (C, Y),
    init: &C,
    xs: &X,
    opts: ScanOptions,
) -> (C, Y) {
    scan_dyn(&f, init, xs, opts)
}

/// [`scan_with`] on a body behind a reference, so that unrolling (which
/// scans a body calling this one) instantiates nothing new.
#[track_caller]
fn scan_dyn<C: Tree, X: Tree, Y: Tree>(f: &dyn Fn(&C, &X) -> (C, Y), init: &C, xs: &X, opts: ScanOptions) -> (C, Y) {
    let init_l = init.leaves();
    let xs_l = xs.leaves();
    let length = scan_length(&xs_l, opts.length);
    let unroll = opts.unroll.max(1);
    if unroll > 1 && length >= unroll {
        return unrolled(f, init, xs, length, unroll, opts.reverse);
    }
    let nk = init_l.len();
    let mut in_avals = avals_of(&init_l);
    in_avals.extend(xs_l.iter().map(|x| Aval::new(x.dtype(), &x.shape()[1..])));
    let mut y_tree = None;
    let (graph, captured) = stage_user(&in_avals, |ins| {
        let carry = init.with_leaves(ins[..nk].to_vec());
        let x = xs.with_leaves(ins[nk..].to_vec());
        let (next, y) = f(&carry, &x);
        let next = next.leaves();
        check_carry("scan", &init_l, &next);
        let ys = y.leaves();
        y_tree = Some(y);
        next.into_iter().chain(ys).collect()
    });
    let prim = Scan::new(graph, captured.len(), nk, length, opts.reverse);
    let operands: Vec<Tensor> = captured.into_iter().chain(init_l).chain(xs_l).collect();
    let mut outs = bind_all(prim, &operands).into_vec();
    let ys = outs.split_off(nk);
    (init.with_leaves(outs), y_tree.expect("staged").with_leaves(ys))
}

/// The number of steps of a scan over `xs`.
#[track_caller]
fn scan_length(xs: &[Tensor], length: Option<usize>) -> usize {
    let mut n = length;
    for (i, x) in xs.iter().enumerate() {
        let Some(&rows) = x.shape().first() else {
            panic!("scan: xs leaf {i} is 0-d; every leaf of xs is scanned along its leading axis, so give it one")
        };
        match n {
            Some(m) if m != rows => panic!(
                "scan: xs leaf {i} has {rows} rows but {}; give every leaf of xs the same leading size{}",
                if length.is_some() { format!("length is {m}") } else { format!("an earlier leaf has {m}") },
                if length.is_some() { ", or leave length out" } else { "" }
            ),
            _ => n = Some(rows),
        }
    }
    n.unwrap_or_else(|| {
        panic!("scan: xs has no leaves, so the number of steps is unknown; pass ScanOptions {{ length: Some(n), .. }}")
    })
}

/// Panics unless a body's new carry has the leaves, shapes and dtypes of the old.
#[track_caller]
fn check_carry(who: &str, init: &[Tensor], next: &[Tensor]) {
    let show = |xs: &[Tensor]| xs.iter().map(|x| x.aval().to_string()).collect::<Vec<_>>().join(", ");
    if init.len() != next.len() || init.iter().zip(next).any(|(a, b)| a.aval() != b.aval()) {
        panic!(
            "{who}: the body returned a carry ({}) that differs from the initial carry ({}); the carry must keep \
             its structure, shapes and dtypes from step to step (convert with to_dtype, or reshape)",
            show(next),
            show(init)
        );
    }
}

/// [`scan_with`] with the body applied `k` times per iteration: `xs`
/// regrouped into rows of `k`, and the steps that do not fill a row scanned
/// on their own.
fn unrolled<C: Tree, X: Tree, Y: Tree>(
    f: &dyn Fn(&C, &X) -> (C, Y),
    init: &C,
    xs: &X,
    length: usize,
    k: usize,
    reverse: bool,
) -> (C, Y) {
    let (whole, rest) = (length / k * k, length % k);
    let part = |x: &Tensor, lo: usize, hi: usize| x.slice(0, lo, hi);
    // The whole rows are the first forwards and the last backwards.
    let (main_at, rest_at) = if reverse { (rest, 0) } else { (0, whole) };
    let main_xs = xs.map_leaves(|x| {
        let mut shape = vec![whole / k, k];
        shape.extend_from_slice(&x.shape()[1..]);
        part(x, main_at, main_at + whole).reshape(&shape)
    });
    let opts = ScanOptions { length: Some(whole / k), reverse, unroll: 1 };
    let block = |c: &C, x: &X| {
        let mut carry = c.with_leaves(c.leaves());
        let mut ys = Vec::with_capacity(k);
        for j in 0..k {
            let j = if reverse { k - 1 - j } else { j };
            let (next, y) = f(&carry, &x.map_leaves(|l| l.slice(0, j, j + 1).squeeze(0)));
            carry = next;
            ys.push(y);
        }
        if reverse {
            ys.reverse();
        }
        let leaves: Vec<Vec<Tensor>> = ys.iter().map(Tree::leaves).collect();
        let stacked: Vec<Tensor> = (0..leaves[0].len())
            .map(|i| Tensor::stack(&leaves.iter().map(|l| l[i].clone()).collect::<Vec<_>>(), 0))
            .collect();
        (carry, ys[0].with_leaves(stacked))
    };
    let run_rest = |c: &C| {
        let rest_xs = xs.map_leaves(|x| part(x, rest_at, rest_at + rest));
        scan_dyn(f, c, &rest_xs, ScanOptions { length: Some(rest), reverse, unroll: 1 })
    };
    // The whole rows run first either way: backwards they are the last rows.
    let (c, ys_main) = scan_dyn(&block, init, &main_xs, opts);
    let (carry, ys_rest) = if rest > 0 {
        let (c, ys) = run_rest(&c);
        (c, Some(ys))
    } else {
        (c, None)
    };
    let flat = ys_main.map_leaves(|y| {
        let mut shape = vec![whole];
        shape.extend_from_slice(&y.shape()[2..]);
        y.reshape(&shape)
    });
    match ys_rest {
        None => (carry, flat),
        Some(r) => {
            let leaves: Vec<Tensor> = flat
                .leaves()
                .iter()
                .zip(r.leaves())
                .map(
                    |(m, r)| {
                        if reverse {
                            Tensor::concat(&[r, m.clone()], 0)
                        } else {
                            Tensor::concat(&[m.clone(), r], 0)
                        }
                    },
                )
                .collect();
            (carry, flat.with_leaves(leaves))
        }
    }
}

/// `body(i, carry)` for `i` from `lower` up to `upper` (exclusive),
/// threading the carry — JAX's `lax.fori_loop` with static bounds. The
/// index is a 0-d i64 tensor. The loop is a [`scan`], so every
/// transformation applies, reverse mode included.
///
/// ```
/// # use ferrax::prelude::*;
/// // x ↦ x·2^5 by doubling, and its derivative.
/// let f = |x: &Tensor| fori_loop(0, 5, |_, c: &Tensor| c * 2.0, x);
/// assert_eq!(f(&Tensor::scalar(1.5)).item(), 48.0);
/// assert_eq!(grad(f)(&Tensor::scalar(1.5)).item(), 32.0);
/// ```
///
/// # Panics
/// When `body` returns a carry of another structure, shape or dtype than `init`.
#[track_caller]
pub fn fori_loop<C: Tree>(lower: i64, upper: i64, body: impl Fn(&Tensor, &C) -> C, init: &C) -> C {
    let steps = (lower..upper.max(lower)).collect::<Vec<i64>>();
    let n = steps.len();
    let index = Tensor::from_vec(steps, &[n]);
    scan(|c: &C, i: &Tensor| (body(i, c), ()), init, &index).0
}

/// A tensor of integers as i64.
fn as_index(x: &Tensor, who: &str) -> Tensor {
    assert!(
        x.size() == 1 && x.rank() == 0,
        "{who}: the index must be a 0-d tensor, got shape {:?}; reduce it or index it first",
        x.shape()
    );
    match x.dtype() {
        DType::I64 => x.clone(),
        DType::Bool => x.to_dtype(DType::I64),
        d => panic!("{who}: the index is {d}; pass an integer or bool tensor (convert with to_dtype(DType::I64))"),
    }
}
