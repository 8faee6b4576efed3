//! Functions composed of primitives: each checked against finite
//! differences in both modes to second order, and under vmap against a
//! loop, on random inputs from its domain.

mod common;
use common::assert_close;
use ferrax::array::Rng;
use ferrax::numeric::{check_grads_with, Mode};
use ferrax::prelude::*;

type Fun = fn(&Tensor) -> Tensor;

/// `(name, input shape, distinct elements?, function)`: distinct inputs keep
/// the sorting and ordering functions away from ties, where they have kinks.
fn table() -> Vec<(&'static str, Vec<usize>, bool, Fun)> {
    vec![
        ("take_along_axis", vec![3, 4], false, |x| {
            x.take_along_axis(&Tensor::from_vec(vec![3i64, 0, -1, 1, 1, 2], &[3, 2]), 1)
        }),
        ("sort", vec![3, 4], true, |x| x.sort(1)),
        ("sort", vec![5], true, |x| x.sort(0)),
        ("top_k", vec![2, 5], true, |x| x.top_k(3).0),
        ("roll", vec![3, 4], false, |x| x.roll(-5, 1)),
        ("tile", vec![2, 3], false, |x| x.tile(&[2, 1, 2])),
        ("repeat", vec![2, 3], false, |x| x.repeat(2, 1)),
        ("repeat_each", vec![3, 2], false, |x| x.repeat_each(&[2, 0, 1], 0)),
        ("split", vec![4, 3], false, |x| &x.split(2, 0)[1] * 2.0),
        ("split_at_indices", vec![5], false, |x| x.split_at_indices(&[1, 3], 0)[1].clone()),
        ("diag", vec![3], false, |x| x.diag(1)),
        ("diag", vec![4], false, |x| x.diag(-2)),
        ("diagonal", vec![2, 3, 4], false, |x| x.diagonal(1)),
        ("diagonal", vec![4, 3], false, |x| x.diagonal(-1)),
        ("trace", vec![3, 3], false, |x| x.trace(0)),
        ("tril", vec![3, 4], false, |x| x.tril(1)),
        ("triu", vec![2, 3, 3], false, |x| x.triu(-1)),
        ("flip", vec![2, 3], false, |x| x.flip(&[1])),
        ("einsum", vec![3, 3], false, |x| einsum("ij,jk->ik", &[x.clone(), x.sin()])),
        ("einsum", vec![3, 3], false, |x| einsum("ii->i", std::slice::from_ref(x))),
        ("einsum", vec![2, 3], false, |x| einsum("bi,bj->bij", &[x.clone(), x.cos()])),
        ("einsum", vec![2, 2], false, |x| einsum("...ij,jk", &[x.reshape(&[1, 2, 2]), x.clone()])),
        ("vector_norm", vec![5], false, |x| x.norm()),
        ("vector_norm", vec![2, 4], false, |x| x.vector_norm(3.0, &[1], false)),
        ("vector_norm", vec![2, 4], true, |x| x.vector_norm(f64::INFINITY, &[0], true)),
        ("vector_norm", vec![6], true, |x| x.vector_norm(1.0, &[0], false)),
        ("matrix_norm", vec![3, 3], true, |x| x.matrix_norm(MatrixNorm::MaxColumnSum, false)),
        ("matrix_norm", vec![2, 3, 3], false, |x| x.matrix_norm(MatrixNorm::Fro, true)),
        ("var", vec![3, 4], false, |x| x.var_axes_ddof(&[1], 1, false)),
        ("std", vec![3, 4], false, |x| x.std_axes(&[0], true)),
        ("clamp", vec![6], true, |x| x.clamp(-0.5, 0.5)),
        ("logaddexp", vec![4], false, |x| x.logaddexp(&x.sin())),
        ("log_sigmoid", vec![4], false, |x| x.log_sigmoid()),
        ("gelu", vec![4], false, |x| x.gelu()),
        ("gelu_tanh", vec![4], false, |x| x.gelu_tanh()),
        ("prod", vec![2, 5], false, |x| x.prod_axes(&[1], false)),
        ("logsumexp", vec![2, 5], false, |x| x.logsumexp_axes(&[0], false)),
        ("softmax", vec![2, 5], false, |x| x.softmax(1)),
        ("where_", vec![5], true, |x| where_(&x.gt(&Tensor::scalar(0.0)), x, &x.sin())),
        ("one_hot", vec![3], false, |x| {
            x * Tensor::from_vec(vec![2i64, 0, 1], &[3]).one_hot(3, DType::F64).sum_axes(&[1], false)
        }),
    ]
}

fn input(shape: &[usize], distinct: bool, seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut rng = Rng::new(seed);
    let v: Vec<f64> = if distinct {
        // A shuffle of -1.25, -0.75, -0.25, 0.25, …: at least 0.4 apart, and at
        // least 0.2 from 0 and from the clamp bounds.
        let mut ranks: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            ranks.swap(i, rng.below(i + 1));
        }
        ranks.iter().map(|&r| r as f64 * 0.5 - 1.25 + rng.uniform_in(-0.05, 0.05)).collect()
    } else {
        (0..n).map(|_| rng.normal()).collect()
    };
    Tensor::from_vec(v, shape)
}

#[test]
fn every_composite_passes_check_grads_in_both_modes() {
    let mut failures = Vec::new();
    for (k, (name, shape, distinct, f)) in table().into_iter().enumerate() {
        for dtype in [DType::F64, DType::F32] {
            let x = input(&shape, distinct, 10 + k as u64).to_dtype(dtype);
            if let Err(e) = check_grads_with(f, &x, 2, &[Mode::Forward, Mode::Reverse], None) {
                failures.push(format!("{name} {shape:?} {dtype}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_composite_batches_like_a_loop() {
    for (k, (name, shape, distinct, f)) in table().into_iter().enumerate() {
        let members: Vec<Tensor> = (0..3).map(|b| input(&shape, distinct, 100 * k as u64 + b)).collect();
        let xs = Tensor::stack(&members, 0);
        let want = Tensor::stack(&members.iter().map(f).collect::<Vec<_>>(), 0);
        let got = vmap(f)(&xs);
        assert_eq!(got.shape(), want.shape(), "{name}");
        assert_close(&got, &want, 1e-14);
        // and an empty batch
        let mut empty = vec![0];
        empty.extend_from_slice(&shape);
        let out = vmap(f)(&Tensor::zeros(&empty, DType::F64));
        assert_eq!(&out.shape()[1..], f(&members[0]).shape(), "{name} on an empty batch");
    }
}

#[test]
fn products_differentiate_exactly_through_zeros() {
    let x = Tensor::from_vec(vec![0.0, 2.0, 3.0, 0.0, 5.0, 1.5], &[2, 3]);
    // ∂/∂x_i Π x = Π_{j≠i} x_j, with zeros in the input: no division by them.
    let g = grad(|x: &Tensor| x.prod())(&x);
    assert_eq!(g.to_vec::<f64>(), vec![0.0; 6], "two zeros: every partial has a zero factor");
    let g = grad(|x: &Tensor| x.prod_axes(&[1], false).sum())(&x);
    assert_eq!(g.to_vec::<f64>(), vec![6.0, 0.0, 0.0, 7.5, 0.0, 0.0]);
    let g = grad(|x: &Tensor| x.cumprod(1).sum())(&x.slice(0, 0, 1));
    // cumprod [0, 2, 3] = [0, 0, 0]; d/dx0 = 1 + x1 + x1 x2 = 9
    assert_eq!(g.to_vec::<f64>(), vec![9.0, 0.0, 0.0]);
    check_grads(|x: &Tensor| x.prod(), &x, 2).unwrap();
}

#[test]
fn tree_stack_and_concatenate_work_leafwise() {
    let a = (Tensor::scalar(1.0), Tensor::ones(&[2], DType::F64));
    let b = (Tensor::scalar(2.0), Tensor::zeros(&[2], DType::F64));
    let s = ferrax::tree::stack(&[a.clone(), b.clone()], 0);
    assert_eq!((s.0.shape(), s.1.shape()), (&[2][..], &[2, 2][..]));
    let c = ferrax::tree::concatenate(&[vec![a.1.clone()], vec![b.1.clone()]], 0);
    assert_eq!(c[0].to_vec::<f64>(), vec![1.0, 1.0, 0.0, 0.0]);
    // A list of per-example trees becomes one tree of batches for vmap.
    let per: Vec<(Tensor, Tensor)> =
        (0..4).map(|i| (Tensor::scalar(i as f64), Tensor::ones(&[3], DType::F64))).collect();
    let batch = ferrax::tree::stack(&per, 0);
    let out = vmap(|p: &(Tensor, Tensor)| &p.1 * &p.0)(&batch);
    assert_eq!(out.sum().item(), 3.0 * (0.0 + 1.0 + 2.0 + 3.0));
}
