//! Reverse mode: linearize, vjp, grad and value_and_grad; their nesting
//! with each other and with jvp; the graphs they stage.

mod common;
use common::{assert_close, panic_message};
use ferrax::array::Rng;
use ferrax::prelude::*;

fn s(v: f64) -> Tensor {
    Tensor::scalar(v)
}

fn worked(x: &(Tensor, Tensor)) -> Tensor {
    x.0.ln() + &x.0 * &x.1 - x.1.sin()
}

#[test]
fn worked_example_by_grad_vjp_and_linearize() {
    let at = (s(2.0), s(5.0));
    let want = (5.5, 2.0 - 5f64.cos());
    let (d1, d2) = grad(worked)(&at);
    assert_eq!((d1.item(), d2.item()), want);
    let (y, pullback) = vjp(worked, &at);
    let (b1, b2) = pullback(&s(1.0));
    assert_eq!((b1.item(), b2.item()), want);
    let (y2, f_lin) = linearize(worked, &at);
    assert_eq!(f_lin(&(s(1.0), s(0.0))).item(), want.0);
    assert_eq!(f_lin(&(s(0.0), s(1.0))).item(), want.1);
    let (v, (g1, _)) = value_and_grad(worked)(&at);
    assert_eq!(format!("{:.3} {:.3} {:.3}", y.item(), d1.item(), d2.item()), "11.652 5.500 1.716");
    assert_eq!((y.item(), y2.item(), v.item(), g1.item()), (y.item(), y.item(), y.item(), 5.5));
}

#[test]
fn no_perturbation_confusion_in_reverse_mode() {
    // d/dx [x · d/dy (x + y) at y=1] at x=1 is 1
    let f = |x: &Tensor| x * grad(|y: &Tensor| x + y)(&s(1.0));
    assert_eq!(grad(f)(&s(1.0)).item(), 1.0);
    // d/dx [d/dy y(x − y) at y=x] = d/dx (x − 2x) = −1
    let g = |x: &Tensor| grad(|y: &Tensor| y * (x - y))(x);
    assert_eq!(grad(g)(&s(1.0)).item(), -1.0);
}

#[test]
fn higher_order_derivatives_compose() {
    let x = s(0.7);
    let d1 = grad(|x: &Tensor| x.sin());
    let d2 = grad(move |x: &Tensor| d1(x));
    let d3 = grad(move |x: &Tensor| d2(x));
    assert!((d3(&x).item() + 0.7f64.cos()).abs() < 1e-15, "third derivative of sin is -cos");
    // grad of grad of grad of x^5 at 2: 60 x^2 = 240
    let g3 = grad(|x: &Tensor| grad(|x: &Tensor| grad(|x: &Tensor| x.powi(5))(x))(x));
    assert_eq!(g3(&s(2.0)).item(), 240.0);
}

/// A smooth function of a vector, and its Hessian in closed form.
fn quartic(x: &Tensor) -> Tensor {
    (x.powi(4) * 0.25).sum() + (x.sin() * x.slice(0, 0, 1)).sum()
}

#[test]
fn hessian_vector_products_every_way() {
    let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], &[3]);
    let v = Tensor::from_vec(vec![1.0, 0.5, -2.0], &[3]);
    // forward over reverse
    let fwd_rev = jvp(|x: &Tensor| grad(quartic)(x), &x, &v).1;
    // reverse over forward: grad of the directional derivative
    let rev_fwd = grad(|x: &Tensor| jvp(quartic, x, &v).1)(&x);
    // reverse over reverse: grad of <grad f, v>
    let rev_rev = grad(|x: &Tensor| (grad(quartic)(x) * &v).sum())(&x);
    // numerical: central difference of the gradient
    let numeric = numerical_jvp(|x: &Tensor| grad(quartic)(x), &x, &v);
    for other in [&rev_fwd, &rev_rev] {
        assert_close(other, &fwd_rev, 1e-13);
    }
    assert_close(&numeric, &fwd_rev, 1e-7);
    // vjp inside jvp: the jvp of a pullback
    let (_, pb_dot) = jvp(|x: &Tensor| vjp(quartic, x).1(&s(1.0)), &x, &v);
    assert_close(&pb_dot, &fwd_rev, 1e-13);
}

/// A 2-layer MLP with a softmax cross-entropy loss over integer labels.
fn mlp_loss(p: &[Tensor], x: &Tensor, labels: &Tensor) -> Tensor {
    let h = (x.matmul(&p[0]) + &p[1]).tanh();
    let logits = h.matmul(&p[2]) + &p[3];
    let y = labels.one_hot(logits.shape()[1], logits.dtype());
    -(logits.log_softmax(1) * y).sum_axes(&[1], false).mean()
}

#[test]
fn mlp_cross_entropy_gradients_match_finite_differences() {
    let x = Tensor::randn(&[8, 5], DType::F64, 1);
    let labels = Tensor::from_vec(vec![0i64, 2, 1, 2, 0, 1, 1, 0], &[8]);
    let params = vec![
        Tensor::randn(&[5, 6], DType::F64, 2) * 0.5,
        Tensor::randn(&[6], DType::F64, 3) * 0.1,
        Tensor::randn(&[6, 3], DType::F64, 4) * 0.5,
        Tensor::randn(&[3], DType::F64, 5) * 0.1,
    ];
    let f = |p: &Vec<Tensor>| mlp_loss(p, &x, &labels);
    let g = grad(f)(&params);
    for (i, leaf) in params.iter().enumerate() {
        let numeric = numerical_grad(
            |w: &Tensor| {
                let mut p = params.clone();
                p[i] = w.clone();
                f(&p)
            },
            leaf,
        );
        assert_close(&g[i], &numeric, 1e-7);
    }
    check_grads(f, &params, 2).unwrap();
}

/// A random program over a few live values of shape `[n, n]`: each step
/// applies a random operation (unary on a safe domain, binary with
/// broadcasting, a reduction, a scan, a sort, indexing or a shape op) to
/// random earlier values.
fn random_program(seed: u64, n: usize) -> impl Fn(&Vec<Tensor>) -> Tensor {
    move |xs: &Vec<Tensor>| {
        let mut rng = Rng::new(seed);
        let mut live: Vec<Tensor> = xs.clone();
        for _ in 0..8 {
            let a = live[rng.below(live.len())].clone();
            let b = live[rng.below(live.len())].clone();
            let next = match rng.below(30) {
                0 => a.sin(),
                1 => a.tanh(),
                2 => (a.square() + 1.0).ln(),
                3 => (a.square() + 0.5).sqrt(),
                4 => a.logistic() * &b,
                5 => &a + &b,
                6 => &a - &b.exp_m1(),
                7 => &a * &b,
                8 => &a / (b.square() + 1.0),
                9 => a.maximum(&(&b * 0.5)),
                10 => a.sum_axes(&[1], true) * &b,
                11 => a.t().matmul(&b).mean_axes(&[0], true).broadcast_to(&[n, n]),
                12 => a.cumsum(0) * 0.1,
                13 => a.softmax(1) + b.softplus(),
                14 => a.tanh().cumprod(1),
                15 => a.cummax(0) - b.cummin(1),
                16 => a.sort(1) * &b,
                17 => a.take_along_axis(&b.argsort(0), 0),
                18 => a.flip(&[1]) + b.roll(1, 0),
                19 => a.atan() * b.erf(),
                20 => a.asinh() + b.tanh().atanh(),
                21 => a.logaddexp(&b),
                22 => a.tanh().prod_axes(&[0], true) * &b,
                23 => einsum("ij,jk->ik", &[a.tanh(), b.tanh()]),
                24 => a.tril(0) + b.triu(1),
                25 => a.clamp(-0.5, 0.5) * &b,
                26 => a.atan2(&(b.square() + 1.0)),
                27 => a.gelu() + b.log_sigmoid(),
                28 => a.index_select(1, &Tensor::from_vec(vec![n as i64 - 1, -1], &[2])).sum_axes(&[1], true) * &b,
                _ => a.tanh().norm() * &b,
            };
            live.push(next);
        }
        live.last().unwrap().clone()
    }
}

/// Sizes of the random programs' square inputs: ordinary, a single element,
/// and empty (size-0 axes through every operation).
const PROGRAM_SIZES: [usize; 3] = [3, 1, 0];

#[test]
fn forward_and_reverse_modes_agree_on_random_programs() {
    // <u, J v> computed by jvp and by vjp: two uses of the same rules, which
    // must agree to rounding on every program.
    let mut non_finite = 0;
    for seed in 0..300 {
        let n = PROGRAM_SIZES[seed as usize % 3];
        let f = random_program(seed, n);
        let x = vec![Tensor::randn(&[n, n], DType::F64, seed), Tensor::randn(&[n, n], DType::F64, seed + 1000)];
        let v = vec![Tensor::randn(&[n, n], DType::F64, seed + 2000), Tensor::randn(&[n, n], DType::F64, seed + 3000)];
        let (y, jv) = jvp(&f, &x, &v);
        let u = Tensor::randn(y.shape(), DType::F64, seed + 4000);
        let (y2, pullback) = vjp(&f, &x);
        let (p1, p2) = (y.to_vec::<f64>(), y2.to_vec::<f64>());
        assert!(p1.iter().zip(&p2).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())), "seed {seed}: same primal");
        let lhs = (&u * &jv).sum().item();
        let ct = pullback(&u);
        let rhs = (&ct[0] * &v[0]).sum().item() + (&ct[1] * &v[1]).sum().item();
        let scale = (u.abs() * jv.abs()).sum().item() + 1e-300;
        let ok = (lhs - rhs).abs() <= 1e-12 * scale.max(1.0) || (lhs.is_nan() && rhs.is_nan());
        assert!(ok, "seed {seed} (n = {n}): <u,Jv> = {lhs}, <J^T u,v> = {rhs}");
        non_finite += usize::from(!lhs.is_finite());
    }
    // The identity says nothing where it is NaN = NaN: those must stay rare.
    assert!(non_finite < 15, "{non_finite} of 300 programs have non-finite derivatives");
}

#[test]
fn grad_misuse_panics_clearly() {
    let msg = panic_message(|| drop(grad(|x: &Tensor| x * 2.0)(&Tensor::ones(&[3], DType::F64))));
    assert!(msg.contains("grad: the function must return a scalar, but it returned shape [3]"), "{msg}");
    assert!(msg.contains(".sum()") && msg.contains("vjp") && msg.contains("jacrev"), "{msg}");
    let msg = panic_message(|| drop(grad(|x: &Tensor| x.to_dtype(DType::F64).sum())(&Tensor::arange(3, DType::I64))));
    assert!(msg.contains("grad: input leaf 0 is i64"), "{msg}");
    let msg = panic_message(|| {
        let (_, pullback) = vjp(|x: &Tensor| x.sin(), &Tensor::ones(&[3], DType::F64));
        drop(pullback(&Tensor::ones(&[2], DType::F64)));
    });
    assert!(msg.contains("pullback: cotangent 0 is f64[2] but its output is f64[3]"), "{msg}");
}

#[test]
fn pullbacks_are_reusable_and_linear() {
    let x = Tensor::randn(&[4], DType::F64, 1);
    let (_, pullback) = vjp(|x: &Tensor| x.exp() * x.sin(), &x);
    let (a, b) = (Tensor::randn(&[4], DType::F64, 2), Tensor::randn(&[4], DType::F64, 3));
    let sum = pullback(&(&a + &b));
    assert_close(&sum, &(pullback(&a) + pullback(&b)), 1e-14);
    let (_, f_lin) = linearize(|x: &Tensor| x.exp() * x.sin(), &x);
    assert_close(&f_lin(&a), &jvp(|x: &Tensor| x.exp() * x.sin(), &x, &a).1, 1e-14);
}

#[test]
fn integer_inputs_and_unused_outputs_get_zero_cotangents() {
    let f = |v: &(Tensor, Tensor)| (v.0.sin() * v.1.to_dtype(DType::F64), v.0.zeros_like());
    let x = (Tensor::scalar(0.5), Tensor::from_vec(vec![3i64], &[]));
    let (_, pullback) = vjp(f, &x);
    let (gx, gn) = pullback(&(s(1.0), s(1.0)));
    assert_eq!(gx.item(), 3.0 * 0.5f64.cos());
    assert_eq!((gn.dtype(), gn.item()), (DType::I64, 0.0));
}

#[test]
fn make_graph_prints_the_computation_and_its_gradient() {
    let at = (s(2.0), s(5.0));
    let g = make_graph(worked, &at);
    g.check().unwrap();
    let text = g.to_string();
    assert_eq!(
        text,
        "{ lambda a:f64[] b:f64[] .\n    c:f64[] = ln a\n    d:f64[] = mul a b\n    e:f64[] = add c d\n    \
         f:f64[] = sin b\n    g:f64[] = sub e f\n  in (g) }"
    );
    // The gradient's graph holds the forward pass and the transposed tangent program.
    let gg = make_graph(grad(worked), &at);
    gg.check().unwrap();
    let printed = gg.to_string();
    assert!(printed.contains("cos b"), "{printed}");
    assert!(printed.contains("div"), "{printed}");
    assert_eq!(gg.outputs.len(), 2);
    let dot = gg.to_dot();
    assert!(dot.starts_with("digraph") && dot.contains("->"));
    // Evaluating the staged gradient graph gives the gradient.
    let out = gg.eval(&[s(2.0), s(5.0)]);
    assert_eq!(out[0].item(), 5.5);
}

#[test]
fn the_graph_checker_rejects_inconsistent_graphs() {
    let mut g = make_graph(|x: &Tensor| x.sum_axes(&[0], false), &Tensor::ones(&[3, 2], DType::F64));
    assert!(g.check().is_ok());
    let out = g.eqns[0].outs[0];
    g.avals[out] = Aval::new(DType::F64, &[3]);
    let err = g.check().unwrap_err();
    assert!(err.to_string().contains("reduce_sum gives f64[2] but its output is declared f64[3]"), "{err}");
}

#[test]
fn control_flow_on_values_works_under_grad() {
    let f = |x: &Tensor| if x.item() > 0.0 { x.powi(3) } else { -x };
    assert_eq!(grad(f)(&s(2.0)).item(), 12.0);
    assert_eq!(grad(f)(&s(-2.0)).item(), -1.0);
}

#[test]
fn grads_of_trees_have_the_input_structure() {
    use std::collections::BTreeMap;
    let mut p = BTreeMap::new();
    p.insert("w".to_string(), Tensor::from_vec(vec![1.0, 2.0], &[2]));
    p.insert("b".to_string(), s(0.5));
    let g = grad(|p: &BTreeMap<String, Tensor>| (&p["w"] * &p["b"]).sum())(&p);
    assert_eq!(g["w"].to_vec::<f64>(), vec![0.5, 0.5]);
    assert_eq!(g["b"].item(), 3.0);
}

#[test]
fn vmap_of_random_programs_equals_a_loop() {
    for seed in 0..300 {
        let n = PROGRAM_SIZES[seed as usize % 3];
        let f = random_program(seed, n);
        let xs = vec![Tensor::randn(&[4, n, n], DType::F64, seed), Tensor::randn(&[4, n, n], DType::F64, seed + 500)];
        let batched = vmap(&f)(&xs);
        for b in 0..4 {
            let one: Vec<Tensor> = xs.iter().map(|x| x.slice(0, b, b + 1).squeeze(0)).collect();
            let want = f(&one);
            let got = batched.slice(0, b, b + 1).squeeze(0);
            assert_eq!(got.shape(), want.shape(), "seed {seed}, member {b}");
            for (p, q) in got.to_vec::<f64>().iter().zip(want.to_vec::<f64>()) {
                let same = (p - q).abs() <= 1e-12 * (1.0 + q.abs()) || (p.is_nan() && q.is_nan());
                assert!(same, "seed {seed} (n = {n}), member {b}: {p} vs {q}");
            }
        }
    }
}

#[test]
fn gradients_with_auxiliary_outputs() {
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    let y = Tensor::from_vec(vec![0.0, 1.0, 0.0], &[3]);
    let f = |w: &Tensor| {
        let pred = w * &x;
        let hits = pred.gt(&Tensor::scalar(2.5)).sum(); // an integer metric rides along
        ((&pred - &y).square().mean(), (pred, hits))
    };
    let w = Tensor::scalar(0.5);
    let ((loss, (pred, hits)), g) = value_and_grad_with_aux(f)(&w);
    assert_eq!(loss.item(), ((0.5f64).powi(2) + 0.0 + 1.5f64.powi(2)) / 3.0);
    assert_eq!(pred.to_vec::<f64>(), vec![0.5, 1.0, 1.5]);
    assert_eq!((hits.dtype(), hits.item()), (DType::I64, 0.0));
    // d/dw mean((w x - y)²) = mean(2 (w x - y) x)
    assert_eq!(g.item(), (2.0 * 0.5 * 1.0 + 0.0 + 2.0 * 1.5 * 3.0) / 3.0);
    let (g2, (pred2, _)) = grad_with_aux(f)(&w);
    assert_eq!((g2.item(), pred2.to_vec::<f64>()), (g.item(), pred.to_vec::<f64>()));
}

#[test]
fn graphs_print_parameters_and_several_outputs() {
    let g = make_graph(
        |x: &Tensor| {
            let (v, i) = x.sort_with_indices(0);
            v.sum_axes(&[0], false) + i.to_dtype(DType::F64).sum()
        },
        &Tensor::ones(&[3], DType::F64),
    );
    let text = g.to_string();
    assert!(text.contains("b:f64[3] c:i64[3] = sort[axis=0, descending=false] a"), "{text}");
    assert!(text.contains("reduce_sum[axes=[0]] b"), "{text}");
    assert!(text.contains("convert[dtype=f64] c"), "{text}");
    g.check().unwrap();
    // Primitives compare and hash by name and parameters.
    let (a, b) = (&g.eqns[1].prim, &g.eqns[3].prim);
    assert_eq!(a.name(), "reduce_sum");
    assert!(**a == **b && **a != *g.eqns[0].prim, "{}", ferrax::core::label(&**a));
}
