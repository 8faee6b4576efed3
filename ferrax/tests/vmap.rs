//! vmap and the Jacobians built on it: composition with every other
//! transformation, errors, and the closed forms they must reproduce.

mod common;
use common::{assert_close, panic_message};
use ferrax::prelude::*;

/// `f` applied to each slice along axis 0, stacked.
fn looped(f: impl Fn(&Tensor) -> Tensor, xs: &Tensor) -> Tensor {
    let members: Vec<Tensor> = (0..xs.shape()[0]).map(|i| f(&xs.slice(0, i, i + 1).squeeze(0))).collect();
    Tensor::stack(&members, 0)
}

fn net(x: &Tensor) -> Tensor {
    let w = Tensor::randn(&[4, 3], DType::F64, 11);
    x.matmul(&w).tanh().softmax(0)
}

#[test]
fn vmap_equals_a_loop_and_nests() {
    let xs = Tensor::randn(&[5, 4], DType::F64, 1);
    assert_close(&vmap(net)(&xs), &looped(net, &xs), 1e-14);
    // vmap of vmap over a [2, 5, 4] stack
    let xss = Tensor::randn(&[2, 5, 4], DType::F64, 2);
    let inner = vmap(net);
    let nested = vmap(move |x: &Tensor| inner(x))(&xss);
    assert_close(&nested, &looped(|x| looped(net, x), &xss), 1e-14);
}

#[test]
fn vmap_axes_maps_chosen_axes_and_shares_the_rest() {
    let xs = Tensor::randn(&[4, 6], DType::F64, 3); // map axis 1 (negative: -1)
    let w = Tensor::randn(&[4], DType::F64, 4);
    let f = |p: &(Tensor, Tensor)| (&p.0 * &p.1).sum();
    let got = vmap_axes(f, &[Some(-1), None], &[0])(&(xs.clone(), w.clone()));
    let want = xs.t().matmul(&w);
    assert_close(&got, &want, 1e-14);
    // out_axes moves the batch to the end of a [3]-shaped output
    let g = |x: &Tensor| Tensor::stack(&[x.sum(), x.max(), x.min()], 0);
    let ys = vmap_axes(g, &[Some(0)], &[-1])(&xs);
    assert_eq!(ys.shape(), &[3, 4]);
    // an output that ignores the mapped input is broadcast to the batch
    let ones = vmap(|_x: &Tensor| Tensor::ones(&[2], DType::F64))(&xs);
    assert_eq!(ones.shape(), &[4, 2]);
}

#[test]
fn vmap_errors_name_the_leaves() {
    let a = Tensor::ones(&[3, 2], DType::F64);
    let b = Tensor::ones(&[4, 2], DType::F64);
    let msg = panic_message(|| drop(vmap(|p: &(Tensor, Tensor)| &p.0 + &p.1)(&(a.clone(), b.clone()))));
    assert!(
        msg.contains(
            "vmap: mapped sizes differ: input leaf 0 has size 3 along axis 0, input leaf 1 has size 4 along axis 0"
        ),
        "{msg}"
    );
    let msg = panic_message(|| drop(vmap(|x: &Tensor| x.sin())(&Tensor::scalar(1.0))));
    assert!(msg.contains("vmap: cannot map over axis 0 of input leaf 0, which is 0-d"), "{msg}");
    let msg = panic_message(|| drop(vmap_axes(|x: &Tensor| x.sin(), &[Some(0), None], &[0])(&a)));
    assert!(msg.contains("vmap: in_axes has 2 entries but the input has 1 leaves"), "{msg}");
    let msg = panic_message(|| drop(vmap(|x: &Tensor| Tensor::scalar(x.sum().item()))(&a)));
    assert!(msg.contains("cannot read the values of a tensor inside vmap"), "{msg}");
}

/// Per-example logistic loss: softplus(z) − y z with z = x·w + b.
fn logistic_loss(p: &(Tensor, Tensor), x: &Tensor, y: &Tensor) -> Tensor {
    let z = x.matmul(&p.0) + &p.1;
    (z.softplus() - y * &z).sum()
}

#[test]
fn per_example_gradients_by_vmap_of_grad_match_a_loop() {
    let (n, d) = (16, 5);
    let xs = Tensor::randn(&[n, d], DType::F64, 5);
    let ys = Tensor::from_vec((0..n).map(|i| (i % 2) as f64).collect(), &[n]);
    let params = (Tensor::randn(&[d], DType::F64, 6) * 0.5, Tensor::scalar(0.1));
    let per_example = vmap_axes(
        |a: &((Tensor, Tensor), Tensor, Tensor)| grad(|p: &(Tensor, Tensor)| logistic_loss(p, &a.1, &a.2))(&a.0),
        &[None, None, Some(0), Some(0)],
        &[0],
    );
    let (gw, gb) = per_example(&(params.clone(), xs.clone(), ys.clone()));
    assert_eq!((gw.shape(), gb.shape()), (&[n, d][..], &[n][..]));
    for i in 0..n {
        let (x, y) = (xs.slice(0, i, i + 1).squeeze(0), ys.slice(0, i, i + 1).squeeze(0));
        let (w1, b1) = grad(|p: &(Tensor, Tensor)| logistic_loss(p, &x, &y))(&params);
        assert_close(&gw.slice(0, i, i + 1).squeeze(0), &w1, 1e-14);
        assert_close(&gb.slice(0, i, i + 1).squeeze(0), &b1, 1e-14);
        // closed form: (σ(z) − y) x
        let z = (x.matmul(&params.0) + &params.1).item();
        let s = 1.0 / (1.0 + (-z).exp()) - y.item();
        assert_close(&w1, &(&x * s), 1e-13);
    }
}

#[test]
fn grad_of_vmap_jvp_of_vmap_and_vmap_of_a_pullback() {
    let xs = Tensor::randn(&[3, 4], DType::F64, 7);
    let v = Tensor::randn(&[3, 4], DType::F64, 8);
    let total = |xs: &Tensor| vmap(net)(xs).square().sum();
    // grad of a vmap equals the loop's gradient
    let g = grad(total)(&xs);
    let loop_total = |xs: &Tensor| looped(net, xs).square().sum();
    assert_close(&g, &grad(loop_total)(&xs), 1e-13);
    // jvp of a vmap
    assert_close(&jvp(vmap(net), &xs, &v).1, &jvp(|x: &Tensor| looped(net, x), &xs, &v).1, 1e-13);
    // vmap of a pullback: rows of the Jacobian
    let x = xs.slice(0, 0, 1).squeeze(0);
    let (_, pullback) = vjp(net, &x);
    let rows = vmap(&pullback)(&Tensor::eye(3, DType::F64));
    assert_close(&rows, &jacrev(net)(&x), 1e-14);
}

#[test]
fn jacfwd_jacrev_and_numerical_jacobian_agree() {
    type Fun = Box<dyn Fn(&Tensor) -> Tensor>;
    let fs: Vec<(&str, Fun)> = vec![
        ("net", Box::new(net)),
        ("cumsum-exp", Box::new(|x: &Tensor| x.exp().cumsum(0) / x.sum())),
        ("outer", Box::new(|x: &Tensor| x.reshape(&[4, 1]).matmul(&x.reshape(&[1, 4])).sin())),
        ("gather", Box::new(|x: &Tensor| x.index_select(0, &Tensor::from_vec(vec![3i64, 0, 3], &[3])) * x.sum())),
        ("lse", Box::new(|x: &Tensor| x.logsumexp())),
    ];
    let x = Tensor::from_vec(vec![0.3, -0.7, 1.1, 0.2], &[4]);
    for (name, f) in &fs {
        let jf = jacfwd(f)(&x);
        let jr = jacrev(f)(&x);
        let jn = numerical_jacobian(f, &x);
        assert_eq!(jf.shape(), jn.shape(), "{name}");
        assert_close(&jf, &jr, 1e-13);
        assert_close(&jf, &jn, 1e-7);
    }
    // Matrix inputs: shape out ++ in.
    let m = Tensor::randn(&[2, 3], DType::F64, 9);
    let j = jacrev(|m: &Tensor| m.tanh().sum_axes(&[1], false))(&m);
    assert_eq!(j.shape(), &[2, 2, 3]);
    assert_close(&j, &jacfwd(|m: &Tensor| m.tanh().sum_axes(&[1], false))(&m), 1e-14);
}

#[test]
fn jacobians_of_trees_are_per_leaf() {
    let p = (Tensor::from_vec(vec![1.0, 2.0], &[2]), Tensor::scalar(3.0));
    let f = |p: &(Tensor, Tensor)| &p.0 * &p.1;
    let (jw, jb) = jacrev(f)(&p);
    assert_eq!(jw.to_vec::<f64>(), vec![3.0, 0.0, 0.0, 3.0]);
    assert_eq!(jb.to_vec::<f64>(), vec![1.0, 2.0]);
    let (fw, fb) = jacfwd(f)(&p);
    assert_close(&fw, &jw, 0.0);
    assert_close(&fb, &jb, 0.0);
}

#[test]
fn hessian_of_a_quadratic_form_is_a_plus_a_transpose() {
    let a = Tensor::randn(&[4, 4], DType::F64, 10);
    let x = Tensor::randn(&[4], DType::F64, 11);
    let h = hessian(|x: &Tensor| x.matmul(&a.matmul(x)))(&x);
    assert_close(&h, &(&a + a.t()), 1e-14);
    let v = Tensor::randn(&[4], DType::F64, 12);
    assert_close(&hvp(|x: &Tensor| x.matmul(&a.matmul(x)), &x, &v), &(&a + a.t()).matmul(&v), 1e-14);
}

#[test]
fn softplus_hessian_matches_its_closed_form() {
    // W5's function: f(x) = Σ softplus(A x) + ½|x|²; H = Aᵀ diag(σ(Ax)(1−σ(Ax))) A + I.
    let a = Tensor::randn(&[6, 4], DType::F64, 13) * 0.5;
    let x = Tensor::randn(&[4], DType::F64, 14);
    let f = |x: &Tensor| a.matmul(x).softplus().sum() + x.square().sum() * 0.5;
    let s = a.matmul(&x).sigmoid();
    let d = &s * (1.0 - &s);
    let want = a.t().matmul(&(a.clone() * d.reshape(&[6, 1]))) + Tensor::eye(4, DType::F64);
    assert_close(&hessian(f)(&x), &want, 1e-13);
}

#[test]
fn gather_and_scatter_with_batched_indices() {
    let src = Tensor::randn(&[5, 2], DType::F64, 15);
    let idx = Tensor::from_vec(vec![0i64, 4, 4, 1, 2, 2], &[3, 2]); // a batch of 3 index pairs
    let got = vmap_axes(|p: &(Tensor, Tensor)| p.0.index_select(0, &p.1), &[None, Some(0)], &[0])(&(
        src.clone(),
        idx.clone(),
    ));
    let want =
        Tensor::stack(&(0..3).map(|b| src.index_select(0, &idx.slice(0, b, b + 1).squeeze(0))).collect::<Vec<_>>(), 0);
    assert_close(&got, &want, 0.0);
    // both batched
    let srcs = Tensor::randn(&[3, 5, 2], DType::F64, 16);
    let got = vmap(|p: &(Tensor, Tensor)| p.0.index_select(0, &p.1))(&(srcs.clone(), idx.clone()));
    for b in 0..3 {
        let one = srcs.slice(0, b, b + 1).squeeze(0).index_select(0, &idx.slice(0, b, b + 1).squeeze(0));
        assert_close(&got.slice(0, b, b + 1).squeeze(0), &one, 0.0);
    }
    // scatter-add with batched indices and updates
    let upd = Tensor::randn(&[3, 2, 2], DType::F64, 17);
    let base = Tensor::zeros(&[5, 2], DType::F64);
    let got = vmap_axes(|p: &(Tensor, Tensor, Tensor)| p.0.scatter_add(0, &p.1, &p.2), &[None, Some(0), Some(0)], &[0])(
        &(base.clone(), idx.clone(), upd.clone()),
    );
    for b in 0..3 {
        let one = base.scatter_add(0, &idx.slice(0, b, b + 1).squeeze(0), &upd.slice(0, b, b + 1).squeeze(0));
        assert_close(&got.slice(0, b, b + 1).squeeze(0), &one, 0.0);
    }
}

#[test]
fn vmap_composes_with_make_graph() {
    let g = make_graph(vmap(|x: &Tensor| x.sin().sum()), &Tensor::ones(&[3, 4], DType::F64));
    g.check().unwrap();
    let text = g.to_string();
    assert!(text.contains("reduce_sum[axes=[1]]"), "{text}");
}

#[test]
fn jacobians_of_trees_nest_output_structure_over_input_structure() {
    // f(a, b) = (a ⊗ b summed over b's axis 1, sin(a)), a: [3], b: [2, 4]
    let f = |p: &(Tensor, Tensor)| ((p.1.sum_axes(&[1], false).expand_dims(1) * &p.0).sum_axes(&[0], false), p.0.sin());
    let x = (Tensor::randn(&[3], DType::F64, 1), Tensor::randn(&[2, 4], DType::F64, 2));
    let fwd = jacfwd(f)(&x);
    let rev = jacrev(f)(&x);
    // ((∂out0/∂a, ∂out0/∂b), (∂out1/∂a, ∂out1/∂b)), each of shape out.shape ++ in.shape
    let shapes = [
        (&fwd.0 .0, &rev.0 .0, vec![3, 3]),
        (&fwd.0 .1, &rev.0 .1, vec![3, 2, 4]),
        (&fwd.1 .0, &rev.1 .0, vec![3, 3]),
        (&fwd.1 .1, &rev.1 .1, vec![3, 2, 4]),
    ];
    for (a, b, shape) in shapes {
        assert_eq!(a.shape(), shape.as_slice());
        assert_close(a, b, 1e-14);
    }
    // closed forms: ∂ sin(a)/∂a = diag(cos a), ∂ sin(a)/∂b = 0
    assert_close(&fwd.1 .0, &(Tensor::eye(3, DType::F64) * x.0.cos()), 1e-15);
    assert_eq!(fwd.1 .1.abs().max().item(), 0.0);
    // against central differences, block by block
    let num_a = numerical_jacobian(|a: &Tensor| f(&(a.clone(), x.1.clone())).0, &x.0);
    let num_b = numerical_jacobian(|b: &Tensor| f(&(x.0.clone(), b.clone())).0, &x.1);
    assert_close(&fwd.0 .0, &num_a, 1e-8);
    assert_close(&fwd.0 .1, &num_b, 1e-8);
}

#[test]
fn hessians_of_trees_are_blocks_of_blocks() {
    // f(a, b) = Σ a² b + sin(b)·b, closed-form second derivatives
    let f = |p: &(Tensor, Tensor)| (&p.0 * &p.0 * &p.1 + p.1.sin() * &p.1).sum();
    let x = (Tensor::from_vec(vec![0.5, -1.0], &[2]), Tensor::from_vec(vec![2.0, 0.3], &[2]));
    let ((aa, ab), (ba, bb)) = hessian(f)(&x);
    let eye = Tensor::eye(2, DType::F64);
    assert_close(&aa, &(&eye * (&x.1 * 2.0)), 1e-15);
    assert_close(&ab, &(&eye * (&x.0 * 2.0)), 1e-15);
    assert_close(&ba, &ab, 1e-15);
    assert_close(&bb, &(&eye * (x.1.cos() * 2.0 - x.1.sin() * &x.1)), 1e-15);
}
