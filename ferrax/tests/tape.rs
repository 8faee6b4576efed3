//! The PyTorch-style tape, custom derivative rules and checkpointing.

mod common;
use common::{assert_close, panic_message};
use ferrax::prelude::*;

fn f(x: &Tensor, w: &Tensor) -> Tensor {
    x.matmul(w).tanh() * x.sum()
}

#[test]
fn backward_on_scalars_and_non_scalars_equals_vjp() {
    let x0 = Tensor::randn(&[2, 3], DType::F64, 1);
    let w0 = Tensor::randn(&[3, 4], DType::F64, 2);
    let v = Tensor::randn(&[2, 4], DType::F64, 3);
    let tape = Tape::new();
    let x = tape.requires_grad(&x0);
    let w = tape.requires_grad(&w0);
    let y = f(&x, &w);
    assert!(y.requires_grad());
    y.backward_with(&v);
    let (_, pullback) = vjp(|p: &(Tensor, Tensor)| f(&p.0, &p.1), &(x0.clone(), w0.clone()));
    let (gx, gw) = pullback(&v);
    assert_close(&x.grad().unwrap(), &gx, 1e-14);
    assert_close(&w.grad().unwrap(), &gw, 1e-14);
    assert_close(&tape.grad(&w).unwrap(), &gw, 1e-14);
    // a scalar: y.backward() is the gradient of y
    tape.zero_grad();
    assert!(x.grad().is_none());
    let s = f(&x, &w).sum();
    s.backward();
    let g = grad(|p: &(Tensor, Tensor)| f(&p.0, &p.1).sum())(&(x0, w0));
    assert_close(&x.grad().unwrap(), &g.0, 1e-14);
    assert_eq!(s.item(), f(&x.detach(), &w.detach()).sum().item(), "values read through the tape are primal values");
}

#[test]
fn gradients_accumulate_until_zeroed_and_second_passes_are_exact() {
    let tape = Tape::new();
    let x = tape.requires_grad(&Tensor::from_vec(vec![1.0, 2.0], &[2]));
    let y = (&x * &x * &x).sum(); // dy/dx = 3x²
    y.backward();
    y.backward(); // the same recording twice: exact both times
    assert_eq!(x.grad().unwrap().to_vec::<f64>(), vec![6.0, 24.0]);
    let z = (&x * 2.0).sum();
    z.backward();
    assert_eq!(x.grad().unwrap().to_vec::<f64>(), vec![8.0, 26.0]);
    tape.zero_grad();
    z.backward();
    assert_eq!(x.grad().unwrap().to_vec::<f64>(), vec![2.0, 2.0]);
}

#[test]
fn tape_errors_are_explained() {
    let msg = panic_message(|| {
        let tape = Tape::new();
        let x = tape.requires_grad(&Tensor::ones(&[3], DType::F64));
        (&x * 2.0).backward();
    });
    assert!(msg.contains("grad can be implicitly created only for scalar outputs"), "{msg}");
    let msg = panic_message(|| Tensor::scalar(1.0).backward());
    assert!(msg.contains("does not require grad"), "{msg}");
    let msg = panic_message(|| {
        let tape = Tape::new();
        let x = tape.requires_grad(&Tensor::ones(&[3], DType::F64));
        (&x * 2.0).backward_with(&Tensor::ones(&[2], DType::F64));
    });
    assert!(msg.contains("the gradient argument is f64[2] but the tensor is f64[3]"), "{msg}");
    let msg = panic_message(|| {
        let tape = Tape::new();
        drop(tape.requires_grad(&Tensor::arange(3, DType::I64)));
    });
    assert!(msg.contains("requires_grad: only float tensors have gradients, got i64"), "{msg}");
    // A tracer used after its tape is gone panics instead of computing.
    let escaped = {
        let tape = Tape::new();
        tape.requires_grad(&Tensor::scalar(1.0))
    };
    let msg = panic_message(move || drop(escaped.sin()));
    assert!(msg.contains("escaped tracer"), "{msg}");
}

#[test]
fn no_grad_stops_recording() {
    let tape = Tape::new();
    let x = tape.requires_grad(&Tensor::scalar(3.0));
    let before = tape.recorded();
    let y = no_grad(|| &x * &x);
    assert!(!y.requires_grad());
    assert_eq!(y.item(), 9.0);
    assert_eq!(tape.recorded(), before);
    let z = &x * &y; // y is a constant: dz/dx = y = 9
    z.backward();
    assert_eq!(x.grad().unwrap().item(), 9.0);
}

#[test]
fn tapes_mix_with_functional_transformations() {
    // grad of a function that uses a tape inside: the tape's backward pass is traced by grad.
    let inner = |x: &Tensor| {
        let tape = Tape::new();
        let t = tape.requires_grad(x);
        (t.powi(3)).sum().backward();
        t.grad().unwrap().sum() // d/dx Σ x³ = 3x², summed
    };
    let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    assert_eq!(inner(&x).item(), 15.0);
    assert_eq!(grad(inner)(&x).to_vec::<f64>(), vec![6.0, 12.0]);
    // a tape inside vmap: per-example gradients
    let xs = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    let per = vmap(|x: &Tensor| {
        let tape = Tape::new();
        let t = tape.requires_grad(x);
        t.sin().backward();
        t.grad().unwrap()
    })(&xs);
    assert_close(&per, &xs.cos(), 1e-15);
}

/// `log(1 + e^x)` with a custom derivative that stays finite where the naive one is NaN.
fn log1pexp() -> impl Fn(&[Tensor]) -> Tensor {
    custom_jvp(|x: &[Tensor]| (x[0].exp() + 1.0).ln(), |x: &[Tensor], t: &[Tensor]| &t[0] * x[0].sigmoid())
}

#[test]
fn custom_jvp_changes_the_derivative_in_both_modes_and_under_vmap() {
    let f = log1pexp();
    let naive = |x: &Tensor| (x.exp() + 1.0).ln();
    let big = Tensor::scalar(800.0);
    assert!(grad(naive)(&big).item().is_nan(), "the naive derivative overflows: inf/inf");
    let fwd = jvp(|x: &Tensor| f(std::slice::from_ref(x)), &big, &Tensor::scalar(1.0)).1;
    let rev = grad(|x: &Tensor| f(std::slice::from_ref(x)))(&big);
    assert_eq!((fwd.item(), rev.item()), (1.0, 1.0));
    // elsewhere it agrees with finite differences, to second order, both modes
    let x = Tensor::from_vec(vec![-2.0, 0.3, 1.5], &[3]);
    check_grads(|x: &Tensor| f(std::slice::from_ref(x)), &x, 2).unwrap();
    // under vmap
    let xs = Tensor::from_vec(vec![-1.0, 0.0, 700.0], &[3]);
    let per = vmap(|x: &Tensor| grad(|x: &Tensor| f(std::slice::from_ref(x)))(x))(&xs);
    assert_close(&per, &xs.sigmoid(), 1e-15);
}

/// A straight-through estimator: round to quarters forward, identity backward.
fn round_ste() -> impl Fn(&[Tensor]) -> Tensor {
    let round = |x: &Tensor| (x * 4.0 + 0.5).to_dtype(DType::I64).to_dtype(x.dtype()) / 4.0;
    custom_vjp(
        move |x: &[Tensor]| round(&x[0]),
        move |x: &[Tensor]| (round(&x[0]), vec![]),
        |_: &[Tensor], ct: &Tensor| vec![ct.clone()],
    )
}

#[test]
fn custom_vjp_gives_a_surrogate_gradient_and_refuses_forward_mode() {
    let ste = round_ste();
    let x = Tensor::from_vec(vec![0.1, 0.3, 0.6], &[3]);
    assert_eq!(ste(std::slice::from_ref(&x)).to_vec::<f64>(), vec![0.0, 0.25, 0.5]);
    let g = grad(|x: &Tensor| (ste(std::slice::from_ref(x)) * x).sum())(&x);
    // d/dx [round(x) · x] with round' := 1 is x + round(x)
    assert_close(&g, &(&x + Tensor::from_vec(vec![0.0, 0.25, 0.5], &[3])), 1e-15);
    // under vmap (per-example), and jacrev
    let per = vmap(|x: &Tensor| grad(|x: &Tensor| ste(std::slice::from_ref(x)) * 2.0)(x))(&x);
    assert_eq!(per.to_vec::<f64>(), vec![2.0; 3]);
    let j = jacrev(|x: &Tensor| ste(std::slice::from_ref(x)))(&x);
    assert_close(&j, &Tensor::eye(3, DType::F64), 0.0);
    // residuals reach the backward rule
    let scaled = custom_vjp(
        |x: &[Tensor]| x[0].sin(),
        |x: &[Tensor]| (x[0].sin(), vec![x[0].cos()]),
        |res: &[Tensor], ct: &Tensor| vec![ct * &res[0]],
    );
    assert_close(&grad(|x: &Tensor| scaled(std::slice::from_ref(x)).sum())(&x), &x.cos(), 1e-15);
    let msg = panic_message(std::panic::AssertUnwindSafe(|| {
        drop(jvp(|x: &Tensor| ste(std::slice::from_ref(x)), &Tensor::scalar(0.3), &Tensor::scalar(1.0)))
    }));
    assert!(msg.contains("custom_vjp: a function with a custom vjp has no forward-mode derivative"), "{msg}");
}

fn deep(params: &[Tensor], x: &Tensor) -> Tensor {
    params.iter().fold(x.clone(), |h, w| h.matmul(w).tanh())
}

#[test]
fn checkpoint_gives_the_same_derivatives_in_every_mode() {
    let ws: Vec<Tensor> = (0..4).map(|i| Tensor::randn(&[5, 5], DType::F64, i) * 0.5).collect();
    let x = Tensor::randn(&[3, 5], DType::F64, 9);
    let block = checkpoint(|a: &[Tensor]| a[0].matmul(&a[1]).tanh().matmul(&a[2]).tanh());
    let with = |p: &Vec<Tensor>| deep(&p[2..], &block(&[x.clone(), p[0].clone(), p[1].clone()])).sum();
    let without = |p: &Vec<Tensor>| deep(p, &x).sum();
    let (g1, g2) = (grad(with)(&ws), grad(without)(&ws));
    for (a, b) in g1.iter().zip(&g2) {
        assert_close(a, b, 1e-13);
    }
    let v: Vec<Tensor> = (0..4).map(|i| Tensor::randn(&[5, 5], DType::F64, 20 + i)).collect();
    assert_close(&jvp(with, &ws, &v).1, &jvp(without, &ws, &v).1, 1e-13);
    // second order through the checkpoint
    let h1 = jvp(|p: &Vec<Tensor>| grad(with)(p), &ws, &v).1;
    let h2 = jvp(|p: &Vec<Tensor>| grad(without)(p), &ws, &v).1;
    for (a, b) in h1.iter().zip(&h2) {
        assert_close(a, b, 1e-12);
    }
    check_grads(with, &ws, 2).unwrap();
    // under vmap
    let xs = Tensor::randn(&[4, 3, 5], DType::F64, 10);
    let per = vmap(|x: &Tensor| block(&[x.clone(), ws[0].clone(), ws[1].clone()]))(&xs);
    let direct = xs.matmul(&ws[0]).tanh().matmul(&ws[1]).tanh();
    assert_close(&per, &direct, 1e-14);
}
