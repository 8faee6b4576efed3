//! Forward mode: jvp on the worked example, nesting without perturbation
//! confusion, trees, symbolic zeros, and escaped tracers.

mod common;
use common::panic_message;
use ferrax::prelude::*;

fn s(v: f64) -> Tensor {
    Tensor::scalar(v)
}

fn worked(x: &(Tensor, Tensor)) -> Tensor {
    x.0.ln() + &x.0 * &x.1 - x.1.sin()
}

#[test]
fn worked_example_by_forward_mode() {
    let at = (s(2.0), s(5.0));
    let (y, d1) = jvp(worked, &at, &(s(1.0), s(0.0)));
    let (_, d2) = jvp(worked, &at, &(s(0.0), s(1.0)));
    assert!((y.item() - 11.652071455).abs() < 1e-9);
    assert!((d1.item() - 5.5).abs() < 1e-15);
    assert!((d2.item() - (2.0 - 5f64.cos())).abs() < 1e-15);
    assert_eq!(format!("{:.3} {:.3} {:.3}", y.item(), d1.item(), d2.item()), "11.652 5.500 1.716");
}

#[test]
fn nested_jvp_has_no_perturbation_confusion() {
    // d/dx [x · d/dy (x + y)] at x = 1 is 1: the inner derivative is 1, whatever x is.
    let f = |x: &Tensor| {
        let inner = jvp(|y: &Tensor| x + y, &s(1.0), &s(1.0)).1;
        x * inner
    };
    let (_, d) = jvp(f, &s(1.0), &s(1.0));
    assert_eq!(d.item(), 1.0);
}

#[test]
fn jvp_of_jvp_gives_second_derivatives() {
    // d²/dx² sin(x) = -sin(x); d³/dx³ = -cos(x)
    let x = s(0.7);
    let first = |x: &Tensor| jvp(|x: &Tensor| x.sin(), x, &s(1.0)).1;
    let second = |x: &Tensor| jvp(first, x, &s(1.0)).1;
    let third = jvp(second, &x, &s(1.0)).1;
    assert!((second(&x).item() + 0.7f64.sin()).abs() < 1e-15);
    assert!((third.item() + 0.7f64.cos()).abs() < 1e-15);
    // Mixed partials of x²y: ∂²/∂x∂y = 2x
    let f = |v: &(Tensor, Tensor)| &v.0 * &v.0 * &v.1;
    let dfdy = |v: &(Tensor, Tensor)| jvp(f, v, &(s(0.0), s(1.0))).1;
    let d2 = jvp(dfdy, &(s(3.0), s(5.0)), &(s(1.0), s(0.0))).1;
    assert_eq!(d2.item(), 6.0);
}

#[test]
fn jvp_over_trees_keeps_structure() {
    let f = |p: &Vec<Tensor>| (p[0].sin(), vec![&p[0] * &p[1], p[1].exp()]);
    let x = vec![Tensor::from_vec(vec![0.1, 0.2], &[2]), Tensor::from_vec(vec![1.0, 2.0], &[2])];
    let v = vec![Tensor::ones(&[2], DType::F64), Tensor::zeros(&[2], DType::F64)];
    let ((y0, ys), (t0, ts)) = jvp(f, &x, &v);
    assert_eq!(y0.shape(), &[2]);
    assert_eq!(ys.len(), 2);
    assert_eq!(t0.to_vec::<f64>(), vec![0.1f64.cos(), 0.2f64.cos()]);
    assert_eq!(ts[0].to_vec::<f64>(), vec![1.0, 2.0]);
    assert_eq!(ts[1].to_vec::<f64>(), vec![0.0, 0.0]);
}

#[test]
fn outputs_independent_of_inputs_get_zero_tangents() {
    let (y, t) = jvp(|_x: &Tensor| Tensor::ones(&[3], DType::F64), &s(2.0), &s(1.0));
    assert_eq!(y.to_vec::<f64>(), vec![1.0; 3]);
    assert_eq!(t.to_vec::<f64>(), vec![0.0; 3]);
    // Integer inputs carry no tangent; integer outputs get zero tangents.
    let n = Tensor::from_vec(vec![3i64], &[1]);
    let (_, t) =
        jvp(|x: &(Tensor, Tensor)| &x.0 * x.1.to_dtype(DType::F64), &(s(2.0), n.clone()), &(s(1.0), n.clone()));
    assert_eq!(t.to_vec::<f64>(), vec![3.0]);
}

#[test]
fn control_flow_on_values_works_under_jvp() {
    let f = |x: &Tensor| if x.item() > 0.0 { x.sin() } else { x * x };
    assert_eq!(jvp(f, &s(-3.0), &s(1.0)).1.item(), -6.0);
    assert_eq!(jvp(f, &s(0.5), &s(1.0)).1.item(), 0.5f64.cos());
}

#[test]
fn kink_conventions_follow_jax() {
    let d = |f: fn(&Tensor) -> Tensor, x: f64| jvp(f, &s(x), &s(1.0)).1.item();
    assert_eq!(d(|x| x.abs(), 0.0), 1.0);
    assert_eq!(d(|x| x.relu(), 0.0), 0.0);
    assert_eq!(d(|x| x.maximum(&Tensor::scalar(0.0)), 0.0), 0.5);
    assert_eq!(d(|x| x.softplus(), 0.0), 0.5);
    assert!(d(|x| x.pow(&Tensor::scalar(0.0)), 0.0).is_nan());
    assert_eq!(d(|x| x.powi(0), 0.0), 0.0);
    // ties in a max reduction share the derivative evenly
    let x = Tensor::from_vec(vec![1.0, 3.0, 3.0], &[3]);
    let (_, t) = jvp(|x: &Tensor| x.max(), &x, &Tensor::from_vec(vec![0.0, 1.0, 0.0], &[3]));
    assert_eq!(t.item(), 0.5);
}

#[test]
fn mismatched_tangents_panic() {
    let msg = panic_message(|| {
        drop(jvp(|x: &Tensor| x.sin(), &Tensor::ones(&[2], DType::F64), &Tensor::ones(&[3], DType::F64)))
    });
    assert!(msg.contains("jvp: tangent 0 is f64[3] but its primal is f64[2]"), "{msg}");
    let msg = panic_message(|| drop(jvp(|x: &Vec<Tensor>| x[0].sin(), &vec![s(1.0)], &vec![s(1.0), s(2.0)])));
    assert!(msg.contains("jvp: primals have 1 leaves but tangents have 2"), "{msg}");
}

#[test]
fn escaped_tracers_panic_instead_of_computing() {
    use std::sync::Mutex;
    let leaked: Mutex<Option<Tensor>> = Mutex::new(None);
    jvp(
        |x: &Tensor| {
            *leaked.lock().unwrap() = Some(x.clone());
            x.sin()
        },
        &s(1.0),
        &s(1.0),
    );
    let tracer = leaked.lock().unwrap().take().unwrap();
    let msg = panic_message(move || drop(tracer.sin()));
    assert!(msg.contains("escaped tracer: a value traced by jvp"), "{msg}");
}

#[test]
fn a_panic_inside_a_transformation_leaves_the_stack_clean() {
    let r = std::panic::catch_unwind(|| jvp(|x: &Tensor| x.reshape(&[7]), &s(1.0), &s(1.0)));
    assert!(r.is_err());
    // The next transformation starts from an empty stack and computes correctly.
    assert_eq!(jvp(|x: &Tensor| x * x, &s(3.0), &s(1.0)).1.item(), 6.0);
}

#[test]
fn jvp_agrees_with_numerical_jacobian_columns() {
    let f = |x: &Tensor| x.tanh().matmul(&Tensor::randn(&[4, 3], DType::F64, 9)).softmax(1);
    let x = Tensor::randn(&[2, 4], DType::F64, 8);
    let j = numerical_jacobian(f, &x); // [2, 3, 2, 4]
    for col in 0..8 {
        let e = Tensor::from_vec((0..8).map(|i| if i == col { 1.0 } else { 0.0 }).collect(), &[2, 4]);
        let (_, t) = jvp(f, &x, &e);
        let want = j.reshape(&[6, 8]).slice(1, col, col + 1).reshape(&[2, 3]);
        for (a, b) in t.to_vec::<f64>().iter().zip(want.to_vec::<f64>()) {
            assert!((a - b).abs() < 1e-8, "{a} vs {b}");
        }
    }
    let g = numerical_grad(|x: &Tensor| x.square().sum(), &x);
    for (a, b) in g.to_vec::<f64>().iter().zip(x.to_vec::<f64>()) {
        assert!((a - 2.0 * b).abs() < 1e-8);
    }
}
