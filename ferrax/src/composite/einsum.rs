//! `einsum`: Einstein summation, lowered to diagonals, sums, transposes and
//! batched matrix products, so it differentiates and batches like them.

use crate::core::Tensor;
use crate::prims::promote::promote_all;

/// A term: one operand's labels, one per axis. Ellipsis axes get private
/// labels (`'\u{E000}' + k` for the k-th from the right), which sort after
/// every letter and never collide with one.
type Term = Vec<char>;

const ELLIPSIS_BASE: u32 = 0xE000;

fn ellipsis_label(k: usize) -> char {
    char::from_u32(ELLIPSIS_BASE + k as u32).expect("a private-use code point")
}

fn is_ellipsis_label(c: char) -> bool {
    (c as u32) >= ELLIPSIS_BASE
}

/// The labels of `spec` for an operand of `rank` axes, `...` expanded.
#[track_caller]
fn parse_term(spec: &str, rank: usize, which: &str) -> Term {
    let spec = spec.trim();
    let (before, after, dots) = match spec.find("...") {
        Some(p) => (&spec[..p], &spec[p + 3..], true),
        None => (spec, "", false),
    };
    if let Some(c) = before.chars().chain(after.chars()).find(|c| !c.is_ascii_alphabetic()) {
        panic!("einsum: {which} subscripts {spec:?} contain {c:?}; use letters and at most one '...'");
    }
    let (lead, tail): (Vec<char>, Vec<char>) = (before.chars().collect(), after.chars().collect());
    let named = lead.len() + tail.len();
    if !dots {
        if named != rank {
            panic!("einsum: {which} subscripts {spec:?} name {named} axes but the operand has {rank}");
        }
        return lead;
    }
    if named > rank {
        panic!("einsum: {which} subscripts {spec:?} name {named} axes but the operand has only {rank}");
    }
    let n_dots = rank - named;
    let mut term = lead;
    term.extend((0..n_dots).rev().map(ellipsis_label));
    term.extend(tail);
    term
}

/// Einstein summation over `operands`, as numpy's and JAX's `einsum`:
/// `"ij,jk->ik"` is a matrix product, `"ii->"` a trace, `"bij,bjk->bik"` a
/// batched product, `"...ij,...jk"` the same over any leading axes. Without
/// `->`, the output is the labels that appear once, in alphabetical order
/// (after the `...` axes). Labels repeated within one operand take its
/// diagonal; labels absent from the output are summed. Each pair of
/// operands, left to right, becomes one batched matrix product.
///
/// ```
/// # use ferrax::prelude::*;
/// let a = Tensor::arange(6, DType::F64).reshape(&[2, 3]);
/// let b = Tensor::arange(12, DType::F64).reshape(&[3, 4]);
/// assert_eq!(ferrax::einsum("ij,jk->ik", &[a.clone(), b.clone()]).to_vec::<f64>(), a.matmul(&b).to_vec::<f64>());
/// let m = Tensor::arange(9, DType::F64).reshape(&[3, 3]);
/// assert_eq!(ferrax::einsum("ii", &[m]).item(), 12.0);
/// ```
///
/// # Panics
/// When the subscripts are malformed, name another number of axes than an
/// operand has, or give one label two sizes; when two operands are
/// multiplied and they are integer or bool (as [`Tensor::matmul`]).
#[track_caller]
pub fn einsum(subscripts: &str, operands: &[Tensor]) -> Tensor {
    let (inputs, output) = match subscripts.split_once("->") {
        Some((i, o)) => (i, Some(o)),
        None => (subscripts, None),
    };
    let specs: Vec<&str> = inputs.split(',').collect();
    if specs.len() != operands.len() {
        panic!("einsum: {subscripts:?} has {} operand terms but {} operands were given", specs.len(), operands.len());
    }
    let operands = promote_all(operands);
    let mut terms: Vec<Term> = Vec::new();
    for (i, (spec, x)) in specs.iter().zip(&operands).enumerate() {
        terms.push(parse_term(spec, x.rank(), &format!("operand {i}'s")));
    }
    let max_dots = terms.iter().map(|t| t.iter().filter(|c| is_ellipsis_label(**c)).count()).max().unwrap_or(0);
    let out: Term = match output {
        Some(o) => {
            let o = o.trim();
            let term =
                parse_term(o, o.replace("...", "").len() + if o.contains("...") { max_dots } else { 0 }, "output");
            let mut seen = std::collections::HashSet::new();
            if let Some(c) = term.iter().find(|c| !seen.insert(**c)) {
                panic!("einsum: output label {c:?} appears twice in {subscripts:?}");
            }
            if let Some(c) = term.iter().find(|c| !terms.iter().any(|t| t.contains(c))) {
                panic!("einsum: output label {c:?} of {subscripts:?} appears in no operand");
            }
            term
        }
        None => {
            let mut once: Vec<char> = Vec::new();
            for c in terms.iter().flatten() {
                let count: usize = terms.iter().map(|t| t.iter().filter(|d| *d == c).count()).sum();
                if count == 1 && !is_ellipsis_label(*c) {
                    once.push(*c);
                }
            }
            once.sort_unstable();
            let mut term: Term = (0..max_dots).rev().map(ellipsis_label).collect();
            term.extend(once);
            term
        }
    };
    check_sizes(subscripts, &terms, &operands);

    // Diagonals first, so every operand names each of its labels once.
    let mut work: Vec<(Tensor, Term)> = operands.into_iter().zip(terms).map(|(x, t)| take_diagonals(x, t)).collect();
    // Contract left to right; a label is summed as soon as nothing later needs it.
    let (mut acc, mut acc_term) = work.remove(0);
    let mut rest = work;
    loop {
        let needed_later: Vec<char> =
            rest.iter().flat_map(|(_, t)| t.iter().copied()).chain(out.iter().copied()).collect();
        (acc, acc_term) = sum_unneeded(acc, acc_term, &needed_later);
        if rest.is_empty() {
            break;
        }
        let (b, b_term) = rest.remove(0);
        let later: Vec<char> = rest.iter().flat_map(|(_, t)| t.iter().copied()).chain(out.iter().copied()).collect();
        let (b, b_term) = sum_unneeded(b, b_term, &[later.clone(), acc_term.clone()].concat());
        (acc, acc_term) = contract(acc, acc_term, b, b_term, &later);
    }
    // Order the kept axes as the output asks.
    let perm: Vec<usize> = out.iter().map(|c| acc_term.iter().position(|d| d == c).expect("kept")).collect();
    acc.permute(&perm)
}

/// Every label has one size across the operands (ellipsis labels may be 1
/// and broadcast, as numpy's broadcasting allows).
#[track_caller]
fn check_sizes(subscripts: &str, terms: &[Term], operands: &[Tensor]) {
    let mut size: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
    for (t, x) in terms.iter().zip(operands) {
        for (c, &n) in t.iter().zip(x.shape()) {
            match size.get(c) {
                Some(&m) if m != n && !(is_ellipsis_label(*c) && (m == 1 || n == 1)) => {
                    let name =
                        if is_ellipsis_label(*c) { "an axis of '...'".to_string() } else { format!("label {c:?}") };
                    panic!("einsum: {name} has size {m} in one operand and {n} in another in {subscripts:?}");
                }
                Some(&m) if m != 1 => {}
                _ => {
                    size.insert(*c, n);
                }
            }
        }
    }
}

/// `x` with each label that appears more than once in its term replaced by
/// one axis: the diagonal over those axes.
fn take_diagonals(mut x: Tensor, mut term: Term) -> (Tensor, Term) {
    while let Some((p, q)) = first_repeat(&term) {
        // Move the pair last, take the diagonal, which lands as the last axis.
        let rank = term.len();
        let mut perm: Vec<usize> = (0..rank).filter(|&d| d != p && d != q).collect();
        perm.extend([p, q]);
        let label = term[p];
        x = x.permute(&perm).diagonal(0);
        term = perm[..rank - 2].iter().map(|&d| term[d]).collect();
        term.push(label);
    }
    (x, term)
}

fn first_repeat(term: &Term) -> Option<(usize, usize)> {
    (0..term.len()).find_map(|p| (p + 1..term.len()).find(|&q| term[q] == term[p]).map(|q| (p, q)))
}

/// `x` summed over the labels of its term not in `keep`.
fn sum_unneeded(x: Tensor, term: Term, keep: &[char]) -> (Tensor, Term) {
    let axes: Vec<usize> = (0..term.len()).filter(|&d| !keep.contains(&term[d])).collect();
    if axes.is_empty() {
        return (x, term);
    }
    let kept = term.iter().enumerate().filter(|(d, _)| !axes.contains(d)).map(|(_, &c)| c).collect();
    (x.sum_axes(&axes, false), kept)
}

/// The product of two operands as one batched matrix product: labels in
/// both and needed later are batch axes, labels in both and not needed
/// later are contracted, the rest are the rows (of `a`) and columns (of `b`).
fn contract(a: Tensor, at: Term, b: Tensor, bt: Term, later: &[char]) -> (Tensor, Term) {
    let shared: Vec<char> = at.iter().filter(|c| bt.contains(c)).copied().collect();
    let batch: Vec<char> = shared.iter().filter(|c| later.contains(c)).copied().collect();
    let summed: Vec<char> = shared.iter().filter(|c| !later.contains(c)).copied().collect();
    let rows: Vec<char> = at.iter().filter(|c| !shared.contains(c)).copied().collect();
    let cols: Vec<char> = bt.iter().filter(|c| !shared.contains(c)).copied().collect();
    let size = |x: &Tensor, t: &Term, c: char| x.shape()[t.iter().position(|d| *d == c).expect("present")];
    // Batch sizes broadcast (only '...' axes can differ, one of them being 1).
    let batch_sizes: Vec<usize> = batch.iter().map(|&c| size(&a, &at, c).max(size(&b, &bt, c))).collect();
    let arrange = |x: &Tensor, t: &Term, order: &[&[char]]| -> Tensor {
        let perm: Vec<usize> =
            order.iter().flat_map(|g| g.iter()).map(|c| t.iter().position(|d| d == c).expect("present")).collect();
        x.permute(&perm)
    };
    let a = arrange(&a, &at, &[&batch, &rows, &summed]);
    let b = arrange(&b, &bt, &[&batch, &summed, &cols]);
    let nb = batch.len();
    let m = product_of(&a, nb, rows.len());
    let k = product_of(&a, nb + rows.len(), summed.len());
    let n = product_of(&b, nb + summed.len(), cols.len());
    let mut a_shape: Vec<usize> = batch_sizes.clone();
    a_shape.extend([m, k]);
    let mut b_shape: Vec<usize> = batch_sizes.clone();
    b_shape.extend([k, n]);
    let a3 = a.broadcast_to(&with_batch(&a, nb, &batch_sizes)).reshape(&a_shape);
    let b3 = b.broadcast_to(&with_batch(&b, nb, &batch_sizes)).reshape(&b_shape);
    let out = a3.matmul(&b3);
    let mut shape = batch_sizes;
    shape.extend(&a.shape()[nb..nb + rows.len()]);
    shape.extend(&b.shape()[nb + summed.len()..]);
    let term: Term = batch.iter().chain(&rows).chain(&cols).copied().collect();
    (out.reshape(&shape), term)
}

/// The product of `len` dimensions of `x` from `start`.
fn product_of(x: &Tensor, start: usize, len: usize) -> usize {
    x.shape()[start..start + len].iter().product()
}

/// `x`'s shape with its first `nb` (batch) dimensions replaced by `sizes`.
fn with_batch(x: &Tensor, nb: usize, sizes: &[usize]) -> Vec<usize> {
    sizes.iter().chain(&x.shape()[nb..]).copied().collect()
}
