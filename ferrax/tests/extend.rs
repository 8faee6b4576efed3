//! A primitive defined outside the crate, in one place: the `SingleOutput`
//! contract is all a new operation needs for every transformation to
//! handle it. The example is a fused `swish` (x·σ(x)), the kind of kernel a
//! user adds to save a pass over memory.

use std::collections::HashSet;
use std::sync::Arc;

use ferrax::array::{backend_of, Array, BinaryOp, UnaryOp};
use ferrax::core::{bind, Kind, Params, Primitive, SingleOutput};
use ferrax::prelude::*;

/// `x · σ(x)`, elementwise, as one primitive.
#[derive(Debug)]
struct Swish;

impl SingleOutput for Swish {
    fn name(&self) -> &'static str {
        "swish"
    }
    fn params(&self) -> Params {
        Vec::new()
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        assert!(ins[0].dtype.is_float(), "swish: needs a float input, got {}", ins[0]);
        ins[0].clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        let backend = backend_of(ins);
        backend.binary(BinaryOp::Mul, ins[0], &backend.unary(UnaryOp::Logistic, ins[0]))
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        // d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x))), written with tensor
        // operations so the rule itself differentiates.
        let s = x[0].sigmoid();
        let slope = &s * ((-&s + 1.0) * &x[0] + 1.0);
        t[0].as_ref().map(|t| t * slope)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], _size: usize) -> (Tensor, Option<usize>) {
        // Elementwise: the batch axis passes through.
        (swish(&x[0]), axes[0])
    }
}

fn swish(x: &Tensor) -> Tensor {
    bind(Swish, std::slice::from_ref(x))
}

fn reference(x: &Tensor) -> Tensor {
    x * x.sigmoid()
}

fn close(a: &Tensor, b: &Tensor) {
    let err = (a - b).abs().max().item();
    // Both sides round each of a handful of operations once; 1e-12 is
    // a few hundred ulps of values of order one in f64.
    assert!(err < 1e-12, "differs by {err}:\n{}\n{}", a, b);
}

#[test]
fn a_primitive_defined_in_one_place_evaluates() {
    let x = Tensor::randn(&[3, 4], DType::F64, 1) * 3.0;
    close(&swish(&x), &reference(&x));
}

#[test]
fn its_derivatives_agree_with_finite_differences_to_second_order() {
    let x = Tensor::randn(&[5], DType::F64, 2) * 2.0;
    check_grads(|x: &Tensor| swish(x), &x, 2).unwrap();
    check_grads(|x: &Tensor| swish(&swish(x)).sum(), &x, 2).unwrap();
}

#[test]
fn every_transformation_handles_it() {
    let x = Tensor::randn(&[4], DType::F64, 3);
    close(&grad(|x: &Tensor| swish(x).sum())(&x), &grad(|x: &Tensor| reference(x).sum())(&x));
    close(&jacfwd(swish)(&x), &jacrev(reference)(&x));
    close(&hessian(|x: &Tensor| swish(x).sum())(&x), &hessian(|x: &Tensor| reference(x).sum())(&x));
    let xs = Tensor::randn(&[3, 4], DType::F64, 4);
    close(
        &vmap(|x: &Tensor| grad(|x: &Tensor| swish(x).sum())(x))(&xs),
        &(&xs.sigmoid() * (((-xs.sigmoid()) + 1.0) * &xs + 1.0)),
    );
    let (y, f_jvp) = linearize(swish, &x);
    close(&y, &reference(&x));
    close(&f_jvp(&Tensor::ones(&[4], DType::F64)), &jvp(reference, &x, &Tensor::ones(&[4], DType::F64)).1);
}

#[test]
fn graphs_show_it_by_name_and_passes_can_compare_it() {
    let g = make_graph(|x: &Tensor| swish(&swish(x)), &Tensor::zeros(&[2], DType::F32));
    let text = g.to_string();
    assert_eq!(text.matches("swish").count(), 2, "{text}");
    let a: Arc<dyn Primitive> = Arc::new(Swish);
    let b: Arc<dyn Primitive> = Arc::new(Swish);
    assert!(*a == *b);
    let set: HashSet<&dyn Primitive> = [&*a, &*b].into_iter().collect();
    assert_eq!(set.len(), 1);
}

#[test]
#[should_panic(expected = "swish: needs a float input")]
fn its_shape_rule_guards_it() {
    swish(&Tensor::from_vec(vec![1i64, 2], &[2]));
}
