//! Custom derivative rules and checkpointing: trees in and out, closures
//! over values of enclosing transformations, forward over reverse, and
//! errors that name the user's rule.

mod common;
use common::{assert_close, panic_message};
use ferrax::numeric::{check_grads_with, Mode};
use ferrax::prelude::*;

fn sin_with_vjp() -> impl Fn(&[Tensor]) -> Tensor {
    custom_vjp(
        |x: &[Tensor]| x[0].sin(),
        |x: &[Tensor]| (x[0].sin(), vec![x[0].cos()]),
        |res: &[Tensor], ct: &Tensor| vec![&res[0] * ct],
    )
}

#[test]
fn hessians_and_hvps_differentiate_custom_vjp_forward_over_reverse() {
    // As in JAX: the forward pass is differentiated through fwd, the backward through bwd.
    let f = sin_with_vjp();
    let x = Tensor::from_vec(vec![0.3, 0.7, -1.2], &[3]);
    let loss = |x: &Tensor| (f(std::slice::from_ref(x)) * x).sum();
    let plain = |x: &Tensor| (x.sin() * x).sum();
    assert_close(&hessian(loss)(&x), &hessian(plain)(&x), 1e-15);
    let v = Tensor::from_vec(vec![1.0, -2.0, 0.5], &[3]);
    assert_close(&hvp(loss, &x, &v), &hvp(plain, &x, &v), 1e-15);
    // grad of grad: the same second derivative, reverse over reverse
    let gg = grad(|x: &Tensor| grad(loss)(x).sum())(&x);
    assert_close(&gg, &grad(|x: &Tensor| grad(plain)(x).sum())(&x), 1e-15);
    // and a checkpoint inside a hessian
    let block = checkpoint(|x: &[Tensor]| x[0].tanh() * &x[0]);
    let h = hessian(|x: &Tensor| block(std::slice::from_ref(x)).sum())(&x);
    assert_close(&h, &hessian(|x: &Tensor| (x.tanh() * x).sum())(&x), 1e-14);
}

#[test]
fn plain_forward_mode_inside_forward_over_reverse_still_refuses_a_custom_vjp() {
    // A jvp started inside another frame's primal computation (here by
    // re-running a checkpoint forward) is plain forward mode: it must refuse
    // the custom vjp, not differentiate its forward function silently.
    let ste = custom_vjp(
        |x: &[Tensor]| x[0].round(),
        |x: &[Tensor]| (x[0].round(), vec![]),
        |_r: &[Tensor], ct: &Tensor| vec![ct.clone()],
    );
    let block = checkpoint(move |x: &[Tensor]| ste(x));
    let msg = panic_message(std::panic::AssertUnwindSafe(|| {
        let v = Tensor::scalar(1.0);
        let out = jvp(|x: &Tensor| jvp(|y: &Tensor| block(std::slice::from_ref(y)), x, &v).1, &Tensor::scalar(0.3), &v);
        drop(out)
    }));
    assert!(msg.contains("custom_vjp: a function with a custom vjp has no forward-mode derivative"), "{msg}");
}

#[test]
fn rules_take_and_return_trees() {
    // f(a, b) = (a·b, sin a) with its product rule, as a pair in and a pair out.
    let f = custom_jvp(
        |p: &(Tensor, Tensor)| (&p.0 * &p.1, p.0.sin()),
        |p: &(Tensor, Tensor), t: &(Tensor, Tensor)| (&t.0 * &p.1 + &p.0 * &t.1, &t.0 * p.0.cos()),
    );
    let x = (Tensor::from_vec(vec![0.5, 2.0], &[2]), Tensor::from_vec(vec![3.0, -1.0], &[2]));
    let plain = |p: &(Tensor, Tensor)| (&p.0 * &p.1, p.0.sin());
    let v = (Tensor::from_vec(vec![1.0, 0.5], &[2]), Tensor::from_vec(vec![-1.0, 2.0], &[2]));
    let (got, want) = (jvp(&f, &x, &v), jvp(plain, &x, &v));
    for (g, w) in [(&got.1 .0, &want.1 .0), (&got.1 .1, &want.1 .1), (&got.0 .0, &want.0 .0)] {
        assert_close(g, w, 1e-15);
    }
    let scalar = |p: &(Tensor, Tensor)| {
        let (a, b) = f(p);
        (a * 2.0 + b).sum()
    };
    let g = grad(scalar)(&x);
    let gp = grad(|p: &(Tensor, Tensor)| (&p.0 * &p.1 * 2.0 + p.0.sin()).sum())(&x);
    assert_close(&g.0, &gp.0, 1e-15);
    assert_close(&g.1, &gp.1, 1e-15);
    check_grads(scalar, &x, 2).unwrap();

    // custom_vjp with a tree of residuals and a pair of outputs
    let g2 = custom_vjp(
        |p: &(Tensor, Tensor)| (&p.0 * &p.1, p.1.exp()),
        |p: &(Tensor, Tensor)| ((&p.0 * &p.1, p.1.exp()), (p.0.clone(), p.1.clone(), p.1.exp())),
        |r: &(Tensor, Tensor, Tensor), ct: &(Tensor, Tensor)| (&ct.0 * &r.1, &ct.0 * &r.0 + &ct.1 * &r.2),
    );
    let loss = |p: &(Tensor, Tensor)| {
        let (a, b) = g2(p);
        (a + b * 0.5).sum()
    };
    let gp = grad(|p: &(Tensor, Tensor)| (&p.0 * &p.1 + p.1.exp() * 0.5).sum())(&x);
    let g = grad(loss)(&x);
    assert_close(&g.0, &gp.0, 1e-15);
    assert_close(&g.1, &gp.1, 1e-15);
    // (reverse mode only: a custom vjp has no forward-mode derivative)
    check_grads_with(loss, &x, 1, &[Mode::Reverse], None).unwrap();
}

#[test]
fn closures_over_vmapped_values_are_converted_not_refused() {
    let ys = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    // custom_jvp whose function and rule both capture a batched value
    let per = vmap(|y: &Tensor| {
        let (y1, y2) = (y.clone(), y.clone());
        let f = custom_jvp(
            move |x: &[Tensor]| (&x[0] * &y1).sin(),
            move |x: &[Tensor], t: &[Tensor]| &t[0] * &y2 * (&x[0] * &y2).cos(),
        );
        let g = grad(|x: &Tensor| f(std::slice::from_ref(x)))(&Tensor::scalar(0.5));
        g
    })(&ys);
    assert_close(&per, &(&ys * (&ys * 0.5).cos()), 1e-15);
    // custom_vjp whose backward rule captures it
    let per = vmap(|y: &Tensor| {
        let (y1, y2, y3) = (y.clone(), y.clone(), y.clone());
        let f = custom_vjp(
            move |x: &[Tensor]| &x[0] * &y1,
            move |x: &[Tensor]| (&x[0] * &y2, vec![]),
            move |_r: &[Tensor], ct: &Tensor| vec![ct * &y3],
        );
        let g = grad(|x: &Tensor| f(std::slice::from_ref(x)))(&Tensor::scalar(0.5));
        g
    })(&ys);
    assert_close(&per, &ys, 0.0);
    // checkpoint capturing a parameter of an enclosing grad: differentiated like an input
    let w = Tensor::scalar(3.0);
    let g = grad(|w: &Tensor| {
        let w = w.clone();
        let f = checkpoint(move |x: &[Tensor]| (&x[0] * &w).sin());
        f(&[Tensor::scalar(2.0)])
    })(&w);
    assert_close(&g, &(Tensor::scalar(6.0).cos() * 2.0), 1e-15);
}

#[test]
fn misused_rules_are_reported_as_the_users() {
    // a differentiated capture
    let msg = panic_message(|| {
        drop(grad(|w: &Tensor| {
            let w = w.clone();
            let f = custom_jvp(move |x: &[Tensor]| &x[0] * &w, |_x: &[Tensor], t: &[Tensor]| t[0].clone());
            f(&[Tensor::scalar(2.0)])
        })(&Tensor::scalar(3.0)))
    });
    assert!(msg.contains("custom_jvp: the function or one of its rules captured a value that an enclosing"), "{msg}");
    // a tangent of the wrong shape
    let msg = panic_message(|| {
        let f = custom_jvp(|x: &[Tensor]| x[0].sum(), |_x: &[Tensor], t: &[Tensor]| t[0].clone());
        drop(f(&[Tensor::ones(&[3], DType::F64)]))
    });
    assert!(msg.contains("custom_jvp: your rule returned a tangent f64[3] for output 0, which is f64[]"), "{msg}");
    // a rule that is not linear in its tangent, found by reverse mode
    let msg = panic_message(|| {
        let f = custom_jvp(|x: &[Tensor]| x[0].sin(), |x: &[Tensor], t: &[Tensor]| t[0].sin() * x[0].cos());
        let g = grad(|x: &Tensor| f(std::slice::from_ref(x)))(&Tensor::scalar(1.0));
        drop(g)
    });
    assert!(msg.contains("custom_jvp: your derivative rule is not linear in its tangent: it applies `sin`"), "{msg}");
    // … also when it multiplies two tangents, or divides by one
    for (rule, op) in [
        (
            Box::new(|_x: &[Tensor], t: &[Tensor]| &t[0] * &t[0])
                as Box<dyn Fn(&[Tensor], &[Tensor]) -> Tensor + Send + Sync>,
            "`mul` with both operands",
        ),
        (Box::new(|x: &[Tensor], t: &[Tensor]| &x[0] / &t[0]), "`div` with the divisor"),
    ] {
        let msg = panic_message(std::panic::AssertUnwindSafe(|| {
            let f = custom_jvp(|x: &[Tensor]| x[0].sin(), rule);
            let g = grad(|x: &Tensor| f(std::slice::from_ref(x)))(&Tensor::scalar(1.0));
            drop(g)
        }));
        assert!(
            msg.contains(&format!("custom_jvp: your derivative rule is not linear in its tangent: it applies {op}")),
            "{msg}"
        );
    }
    // a backward rule with the wrong number or shape of cotangents
    let msg = panic_message(|| {
        let f = custom_vjp(
            |x: &[Tensor]| &x[0] * &x[1],
            |x: &[Tensor]| (&x[0] * &x[1], vec![]),
            |_r: &[Tensor], ct: &Tensor| vec![ct.clone()],
        );
        drop(f(&[Tensor::scalar(1.0), Tensor::scalar(2.0)]))
    });
    assert!(msg.contains("custom_vjp: your rule returned 1 cotangents for 2 inputs"), "{msg}");
    let msg = panic_message(|| {
        let f = custom_vjp(
            |x: &[Tensor]| x[0].sum(),
            |x: &[Tensor]| (x[0].sum(), vec![]),
            |_r: &[Tensor], ct: &Tensor| vec![ct.clone()],
        );
        drop(f(&[Tensor::ones(&[2], DType::F64)]))
    });
    assert!(msg.contains("custom_vjp: your rule returned a cotangent f64[] for input 0, which is f64[2]"), "{msg}");
    // plain forward mode through a custom vjp
    let msg = panic_message(|| {
        let f = sin_with_vjp();
        let out = jvp(|x: &Tensor| f(std::slice::from_ref(x)), &Tensor::scalar(0.3), &Tensor::scalar(1.0));
        drop(out)
    });
    assert!(msg.contains("custom_vjp: a function with a custom vjp has no forward-mode derivative"), "{msg}");
}

#[test]
fn functions_are_traced_once_per_signature() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static TRACED: AtomicUsize = AtomicUsize::new(0);
    let f = custom_jvp(
        |x: &[Tensor]| {
            TRACED.fetch_add(1, Ordering::Relaxed);
            x[0].sin()
        },
        |x: &[Tensor], t: &[Tensor]| &t[0] * x[0].cos(),
    );
    for _ in 0..3 {
        let _ = f(&[Tensor::ones(&[3], DType::F64)]);
        let _ = grad(|x: &Tensor| f(std::slice::from_ref(x)).sum())(&Tensor::ones(&[3], DType::F64));
    }
    assert_eq!(TRACED.load(Ordering::Relaxed), 1, "one signature, one trace");
    let _ = f(&[Tensor::ones(&[4], DType::F64)]);
    assert_eq!(TRACED.load(Ordering::Relaxed), 2, "a new signature is traced");
    // A function that captures a batched value is traced at each call: the value changes.
    let ys = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    for _ in 0..2 {
        let out = vmap(|y: &Tensor| {
            let y = y.clone();
            let g = checkpoint(move |x: &[Tensor]| &x[0] * &y);
            g(&[Tensor::scalar(3.0)])
        })(&ys);
        assert_eq!(out.to_vec::<f64>(), vec![3.0, 6.0]);
    }
}

#[test]
fn a_custom_vjp_runs_its_forward_pass_once_under_grad() {
    // The staged gradient shows every operation run: one custom_vjp (fwd,
    // giving the output and the residual cos x), and no second sin or cos.
    let f = sin_with_vjp();
    let g = make_graph(grad(|x: &Tensor| f(std::slice::from_ref(x)).sum()), &Tensor::ones(&[3], DType::F64));
    let count = |name: &str| g.eqns.iter().filter(|e| e.prim.name() == name).count();
    assert_eq!((count("custom_vjp"), count("sin"), count("cos")), (1, 0, 0), "{g}");
}

#[test]
fn inputs_of_another_structure_are_staged_again() {
    use std::collections::BTreeMap;
    // The same leaves under other keys: each function reads its input by
    // name, so a staging shared between the two structures would be wrong.
    fn read(m: &BTreeMap<String, Tensor>) -> Tensor {
        match m.get("w") {
            Some(w) => w * 2.0,
            None => m.values().next().unwrap() * 100.0,
        }
    }
    let one = |k: &str| BTreeMap::from([(k.to_string(), Tensor::scalar(3.0))]);
    let f = custom_jvp(read, |m: &BTreeMap<String, Tensor>, t: &BTreeMap<String, Tensor>| {
        let k = if m.contains_key("w") { 2.0 } else { 100.0 };
        t.values().next().unwrap() * k
    });
    let g = custom_vjp(
        read,
        |m: &BTreeMap<String, Tensor>| (read(m), m.clone()),
        |m: &BTreeMap<String, Tensor>, ct: &Tensor| {
            m.keys().map(|k| (k.clone(), ct * if k == "w" { 2.0 } else { 100.0 })).collect::<BTreeMap<_, _>>()
        },
    );
    let c = checkpoint(read);
    for h in [&f as &dyn Fn(&BTreeMap<String, Tensor>) -> Tensor, &g, &c] {
        assert_eq!(h(&one("w")).item(), 6.0);
        assert_eq!(h(&one("b")).item(), 300.0);
    }
    assert_eq!(grad(&f)(&one("b"))["b"].item(), 100.0);
    assert_eq!(grad(&g)(&one("b"))["b"].item(), 100.0);
    assert_eq!(grad(&c)(&one("w"))["w"].item(), 2.0);
}
