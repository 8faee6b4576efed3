//! The Tensor API: construction, arithmetic, compositions, printing, and
//! the error messages of misuse.

mod common;
use common::{assert_slices_close, panic_message};
use std::collections::BTreeMap;

use ferrax::prelude::*;

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape)
}

/// The message of the panic `f` raises.

#[test]
fn construction_and_inspection() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    assert_eq!(x.shape(), &[2, 3]);
    assert_eq!(x.dtype(), DType::F32);
    assert_eq!(x.rank(), 2);
    assert_eq!(x.size(), 6);
    assert_eq!(x.to_vec::<f64>(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(Tensor::scalar(2.5).item(), 2.5);
    assert_eq!(Tensor::eye(2, DType::F64).to_vec::<f64>(), vec![1.0, 0.0, 0.0, 1.0]);
    assert_eq!(Tensor::arange(4, DType::I64).to_vec::<i64>(), vec![0, 1, 2, 3]);
    assert_eq!(Tensor::full(&[2], 7.0, DType::F32).to_vec::<f32>(), vec![7.0, 7.0]);
    assert_eq!(Tensor::ones(&[3], DType::F64).sum().item(), 3.0);
    assert_eq!(Tensor::zeros(&[0, 3], DType::F64).size(), 0);
    let r1 = Tensor::randn(&[1000], DType::F64, 42);
    assert_eq!(r1.to_vec::<f64>(), Tensor::randn(&[1000], DType::F64, 42).to_vec::<f64>());
    assert!(r1.mean().item().abs() < 0.1);
    assert!((r1.var_axes(&[0], false).item() - 1.0).abs() < 0.15);
}

#[test]
fn from_vec_errors() {
    let msg = panic_message(|| {
        Tensor::from_vec(vec![1.0, 2.0, 3.0], &[2, 2]);
    });
    assert!(msg.contains("shape [2, 2] holds 4 elements but 3 were given"), "{msg}");
    let err = Tensor::try_from_vec(vec![1.0, 2.0, 3.0], &[2, 2]).unwrap_err();
    assert_eq!((err.expected, err.got), (4, 3));
    assert!(Tensor::try_from_vec(vec![1.0, 2.0], &[2]).is_ok());
}

#[test]
fn arithmetic_with_tensors_refs_and_scalars_broadcasts() {
    let a = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let b = t(&[10.0, 20.0, 30.0], &[3]);
    assert_eq!((&a + &b).to_vec::<f64>(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    assert_eq!((a.clone() - b.clone()).shape(), &[2, 3]);
    assert_eq!((&a * 2.0).to_vec::<f64>(), vec![2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
    assert_eq!((2.0 * &a).to_vec::<f64>(), (&a * 2.0).to_vec::<f64>());
    assert_eq!((1.0 / t(&[4.0], &[1])).to_vec::<f64>(), vec![0.25]);
    assert_eq!((10.0 - &b).to_vec::<f64>(), vec![0.0, -10.0, -20.0]);
    assert_eq!((-&b).to_vec::<f64>(), vec![-10.0, -20.0, -30.0]);
    assert_eq!((&a / b.clone()).shape(), &[2, 3]);
    // Integer `/` is true division, as in JAX and numpy; floor_div and rem are the integer forms.
    let i = Tensor::from_vec(vec![7i64, -7], &[2]);
    assert_eq!((&i / 2).dtype(), DType::F64);
    assert_eq!((&i / 2).to_vec::<f64>(), vec![3.5, -3.5]);
    assert_eq!(i.floor_div(&Tensor::scalar(2i64)).to_vec::<i64>(), vec![3, -4]);
    // Promoted together first, then made a float: f32 / i64 is f32, as f32 * i64 is.
    let f = Tensor::from_vec(vec![1.0f32, 3.0], &[2]);
    assert_eq!((&f / &i).dtype(), DType::F32);
    assert_eq!(f.pow(&i).dtype(), DType::F32);
    assert_eq!(f.atan2(&i).dtype(), DType::F32);
    assert_eq!((Tensor::from_vec(vec![true, false], &[2]).sum() / &i).dtype(), DType::F64);
    assert_eq!((&i % 2).to_vec::<i64>(), vec![1, -1]);
    assert_eq!(a.maximum(&t(&[3.5], &[1])).to_vec::<f64>(), vec![3.5, 3.5, 3.5, 4.0, 5.0, 6.0]);
    assert_eq!(a.minimum(&t(&[3.5], &[1])).to_vec::<f64>(), vec![1.0, 2.0, 3.0, 3.5, 3.5, 3.5]);
    let c = a.gt(&t(&[2.5], &[]));
    assert_eq!(c.dtype(), DType::Bool);
    assert_eq!(c.select(&a, &(-&a)).to_vec::<f64>(), vec![-1.0, -2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(a.powf(2.0).to_vec::<f64>(), a.square().to_vec::<f64>());
    assert_eq!(t(&[2.0], &[1]).powi(-1).item(), 0.5);
}

#[test]
fn elementwise_functions_use_rust_semantics() {
    let x = t(&[-1.5, -0.0, 0.0, 0.7], &[4]);
    for (got, f) in [
        (x.sin(), f64::sin as fn(f64) -> f64),
        (x.cos(), f64::cos),
        (x.tan(), f64::tan),
        (x.exp(), f64::exp),
        (x.exp_m1(), f64::exp_m1),
        (x.tanh(), f64::tanh),
        (x.sinh(), f64::sinh),
        (x.cosh(), f64::cosh),
        (x.abs(), f64::abs),
        (x.abs().sqrt(), |v: f64| v.abs().sqrt()),
        ((&x + 2.0).ln(), |v: f64| (v + 2.0).ln()),
        (x.ln_1p(), f64::ln_1p),
    ] {
        let want: Vec<f64> = x.to_vec::<f64>().into_iter().map(f).collect();
        assert_slices_close(&got.to_vec::<f64>(), &want, 1e-15);
    }
    // numpy's sign: 0 at ±0
    assert_eq!(x.signum().to_vec::<f64>(), vec![-1.0, -0.0, 0.0, 1.0]);
    assert_slices_close(&x.sigmoid().to_vec::<f64>(), &[0.182425523806356, 0.5, 0.5, 0.668187772168166], 1e-14);
    assert_eq!(x.relu().to_vec::<f64>(), vec![0.0, 0.0, 0.0, 0.7]);
    // softplus never overflows and is exact at the extremes
    let s = t(&[-800.0, 0.0, 800.0], &[3]).softplus().to_vec::<f64>();
    assert_slices_close(&s, &[0.0, std::f64::consts::LN_2, 800.0], 1e-15);
    assert_eq!(t(&[-1000.0], &[1]).sigmoid().item(), 0.0);
    assert_eq!(t(&[1000.0], &[1]).sigmoid().item(), 1.0);
}

#[test]
fn reductions_and_stable_compositions() {
    let x = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    assert_eq!(x.sum().item(), 21.0);
    assert_eq!(x.sum_axes(&[0], false).to_vec::<f64>(), vec![5.0, 7.0, 9.0]);
    assert_eq!(x.sum_axes(&[1], true).shape(), &[2, 1]);
    assert_eq!(x.mean().item(), 3.5);
    assert_eq!(x.mean_axes(&[1], false).to_vec::<f64>(), vec![2.0, 5.0]);
    assert_eq!(x.max_axes(&[0], false).to_vec::<f64>(), vec![4.0, 5.0, 6.0]);
    assert_eq!(x.min_axes(&[0, 1], true).shape(), &[1, 1]);
    assert_eq!(x.max().item(), 6.0);
    assert_eq!(x.min().item(), 1.0);
    assert_eq!(x.argmax(1).to_vec::<i64>(), vec![2, 2]);
    assert_eq!(x.cumsum(1).to_vec::<f64>(), vec![1.0, 3.0, 6.0, 4.0, 9.0, 15.0]);
    let big = t(&[1000.0, 1001.0, 1002.0], &[3]);
    let lse = big.logsumexp_axes(&[0], false).item();
    assert!(lse.is_finite() && (lse - 1002.4076059644444).abs() < 1e-10, "{lse}");
    assert!((big.logsumexp().item() - lse).abs() < 1e-12);
    let neg_inf = t(&[f64::NEG_INFINITY, f64::NEG_INFINITY], &[2]);
    assert_eq!(neg_inf.logsumexp().item(), f64::NEG_INFINITY);
    let sm = big.softmax(0).to_vec::<f64>();
    assert_slices_close(&sm, &[0.09003057317038046, 0.24472847105479764, 0.6652409557748219], 1e-14);
    let lsm = x.log_softmax(1);
    assert_slices_close(&lsm.exp().sum_axes(&[1], false).to_vec::<f64>(), &[1.0, 1.0], 1e-15);
    let labels = Tensor::from_vec(vec![2i64, 0], &[2]);
    assert_eq!(labels.one_hot(3, DType::F32).to_vec::<f32>(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
}

#[test]
fn shape_operations() {
    let x = Tensor::arange(24, DType::F64).reshape(&[2, 3, 4]);
    assert_eq!(x.permute(&[2, 0, 1]).shape(), &[4, 2, 3]);
    assert_eq!(x.t().shape(), &[2, 4, 3]);
    assert_eq!(x.expand_dims(0).shape(), &[1, 2, 3, 4]);
    assert_eq!(x.expand_dims(3).squeeze(3).shape(), &[2, 3, 4]);
    assert_eq!(x.slice(2, 1, 3).to_vec::<f64>()[..4], [1.0, 2.0, 5.0, 6.0]);
    assert_eq!(x.broadcast_to(&[5, 2, 3, 4]).shape(), &[5, 2, 3, 4]);
    let a = t(&[1.0, 2.0], &[2, 1]);
    let b = t(&[3.0, 4.0, 5.0, 6.0], &[2, 2]);
    assert_eq!(Tensor::concat(&[a.clone(), b.clone()], 1).to_vec::<f64>(), vec![1.0, 3.0, 4.0, 2.0, 5.0, 6.0]);
    let s = Tensor::stack(&[a.clone(), a.clone()], 0);
    assert_eq!(s.shape(), &[2, 2, 1]);
    assert_eq!(a.pad(&[1, 0], &[0, 1]).to_vec::<f64>(), vec![0.0, 0.0, 1.0, 0.0, 2.0, 0.0]);
    let idx = Tensor::from_vec(vec![1i64, 1, 0], &[3]);
    assert_eq!(b.index_select(0, &idx).to_vec::<f64>(), vec![5.0, 6.0, 5.0, 6.0, 3.0, 4.0]);
    let acc = Tensor::zeros(&[2, 2], DType::F64).scatter_add(0, &idx, &Tensor::ones(&[3, 2], DType::F64));
    assert_eq!(acc.to_vec::<f64>(), vec![1.0, 1.0, 2.0, 2.0]);
    assert_eq!(x.to_dtype(DType::F32).dtype(), DType::F32);
}

#[test]
fn matmul_follows_numpy() {
    let a = Tensor::arange(6, DType::F64).reshape(&[2, 3]);
    let b = Tensor::arange(12, DType::F64).reshape(&[3, 4]);
    assert_eq!(a.matmul(&b).to_vec::<f64>(), vec![20.0, 23.0, 26.0, 29.0, 56.0, 68.0, 80.0, 92.0]);
    let v = Tensor::ones(&[3], DType::F64);
    assert_eq!(a.matmul(&v).to_vec::<f64>(), vec![3.0, 12.0]);
    assert_eq!(v.matmul(&b).to_vec::<f64>(), vec![12.0, 15.0, 18.0, 21.0]);
    assert_eq!(v.matmul(&v).shape(), &[] as &[usize]);
    let batched = Tensor::randn(&[5, 2, 3], DType::F64, 1);
    assert_eq!(batched.matmul(&b).shape(), &[5, 2, 4]);
    let bb = Tensor::randn(&[2, 1, 3, 4], DType::F64, 2);
    let out = batched.matmul(&bb);
    assert_eq!(out.shape(), &[2, 5, 2, 4]);
    // each batch entry equals the 2-D product
    let one = batched.slice(0, 3, 4).reshape(&[2, 3]).matmul(&bb.slice(0, 1, 2).reshape(&[3, 4]));
    let from_batch = out.slice(0, 1, 2).slice(1, 3, 4).reshape(&[2, 4]);
    assert_slices_close(&one.to_vec::<f64>(), &from_batch.to_vec::<f64>(), 1e-14);
}

#[test]
fn misuse_panics_name_the_op_shapes_and_fix() {
    type Misuse = Box<dyn FnOnce() + std::panic::UnwindSafe>;
    let cases: Vec<(Misuse, &str)> = vec![
        (
            Box::new(|| drop(Tensor::ones(&[2, 3], DType::F64) + Tensor::ones(&[4], DType::F64))),
            "add: cannot broadcast shapes [2, 3] and [4]",
        ),
        (
            Box::new(|| drop(Tensor::ones(&[2, 3], DType::F64).matmul(&Tensor::ones(&[4, 5], DType::F64)))),
            "matmul: inner dimensions differ: [2, 3] @ [4, 5]",
        ),
        (
            Box::new(|| drop(Tensor::ones(&[2, 3], DType::F64).reshape(&[4]))),
            "reshape: cannot reshape [2, 3] (6 elements) to [4]",
        ),
        (
            Box::new(|| drop(Tensor::ones(&[2, 3], DType::F64).sum_axes(&[2], false))),
            "sum: axis 2 is out of range for shape [2, 3]",
        ),
        (Box::new(|| drop(Tensor::ones(&[2, 3], DType::F64).permute(&[0, 0]))), "permute: [0, 0] is not a permutation"),
        (
            Box::new(|| drop(Tensor::ones(&[2, 3], DType::F64).slice(1, 2, 5))),
            "slice: the block [0, 2]..[2, 5] does not lie within shape [2, 3]",
        ),
        (
            Box::new(|| drop(Tensor::ones(&[2, 3], DType::F64).broadcast_to(&[3, 3]))),
            "broadcast_to: cannot broadcast shape [2, 3] to [3, 3]",
        ),
        (
            Box::new(|| {
                let _ = Tensor::ones(&[3], DType::F64).item();
            }),
            "item: expected a tensor with one element, got shape [3]",
        ),
        (
            Box::new(|| drop(Tensor::ones(&[2, 2], DType::I64).matmul(&Tensor::ones(&[2, 2], DType::I64)))),
            "matmul: products of i64 matrices are not supported",
        ),
        (
            Box::new(|| drop(Tensor::ones(&[3], DType::F64).index_select(0, &Tensor::ones(&[1], DType::F64)))),
            "index_select: indices must be i64, got f64",
        ),
        (
            Box::new(|| {
                drop(
                    Tensor::ones(&[3], DType::F64)
                        .select(&Tensor::ones(&[3], DType::F64), &Tensor::ones(&[3], DType::F64)),
                )
            }),
            "select: the condition must be a bool tensor, got f64",
        ),
        (
            Box::new(|| {
                drop(Tensor::concat(&[Tensor::ones(&[2, 3], DType::F64), Tensor::ones(&[3, 3], DType::F64)], 1))
            }),
            "concat: cannot join f64[2, 3] with f64[3, 3] along axis 1",
        ),
        (Box::new(|| drop(Tensor::zeros(&[0], DType::F64).argmax(0))), "argmax: axis 0 of shape [0] is empty"),
    ];
    for (f, want) in cases {
        let msg = panic_message(f);
        assert!(msg.contains(want), "expected {want:?} in {msg:?}");
    }
}

#[test]
fn display_and_debug_print_like_numpy() {
    let x = t(&[1.0, 2.5, -3.0, 4.0], &[2, 2]);
    assert_eq!(x.to_string(), "[[ 1.   2.5]\n [-3.   4. ]]");
    assert_eq!(format!("{:?}", Tensor::scalar(1.5f32)), "Tensor(f32[], 1.5)");
    let big = Tensor::arange(3000, DType::F64).reshape(&[3, 1000]);
    let s = big.to_string();
    assert!(s.contains("...") && s.lines().count() == 3, "{s}");
    let (_, printed) = jvp(|x: &Tensor| Tensor::scalar(x.to_string().len() as f64), &x, &x);
    assert_eq!(printed.item(), 0.0, "a jvp tracer prints as a traced value");
}

#[test]
fn trees_flatten_and_rebuild_every_container() {
    let a = Tensor::scalar(1.0);
    let mut map = BTreeMap::new();
    map.insert("w".to_string(), vec![a.clone(), a.clone()]);
    map.insert("b".to_string(), vec![a.clone()]);
    let tree = (a.clone(), [a.clone(), a.clone()], Some(map), None::<Tensor>, vec![(a.clone(), a.clone())], ());
    let leaves = tree.leaves();
    // the scalar, the array of 2, the map's 3, nothing for None, the pair
    assert_eq!(leaves.len(), 8);
    let numbered: Vec<Tensor> = (0..leaves.len()).map(|i| Tensor::scalar(i as f64)).collect();
    let rebuilt = tree.with_leaves(numbered);
    assert_eq!(rebuilt.0.item(), 0.0);
    assert_eq!(rebuilt.1[1].item(), 2.0);
    let m = rebuilt.2.as_ref().unwrap();
    // BTreeMap flattens in key order: "b" before "w"
    assert_eq!(m["b"][0].item(), 3.0);
    assert_eq!(m["w"][1].item(), 5.0);
    assert_eq!(rebuilt.4[0].1.item(), 7.0);
    let doubled = rebuilt.map_leaves(|l| l * 2.0);
    assert_eq!(doubled.4[0].0.item(), 12.0);
}

#[test]
fn tensors_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tensor>();
    let x = Tensor::randn(&[100], DType::F64, 3);
    let y = std::thread::spawn(move || x.sin().sum().item()).join().unwrap();
    assert!(y.is_finite());
}
