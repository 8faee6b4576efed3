//! `jit`: results equal to eager ones bit for bit, one trace per signature,
//! and every transformation composed with it in both orders.

use ferrax::prelude::*;
use ferrax::transforms::{Jit, JitStats};

// `&Vec`, not a slice: the function's input is the tree `Vec<Tensor>`.
#[allow(clippy::ptr_arg)]
fn mlp_loss(p: &Vec<Tensor>) -> Tensor {
    let x = Tensor::from_vec((0..12).map(|i| (i as f64 * 0.37).sin()).collect(), &[4, 3]);
    let h = (x.matmul(&p[0]) + &p[1]).tanh();
    (h.matmul(&p[2]).logsumexp_axes(&[1], false) - h.sum_axes(&[1], false)).mean()
}

fn params() -> Vec<Tensor> {
    vec![
        Tensor::randn(&[3, 5], DType::F64, 1) * 0.5,
        Tensor::randn(&[5], DType::F64, 2) * 0.1,
        Tensor::randn(&[5, 2], DType::F64, 3) * 0.5,
    ]
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    a.shape() == b.shape() && a.dtype() == b.dtype() && a.to_vec::<f64>() == b.to_vec::<f64>()
}

/// `same`, with NaNs equal when their bits are.
fn same_bits(a: &Tensor, b: &Tensor) -> bool {
    let bits = |t: &Tensor| t.to_vec::<f64>().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    a.shape() == b.shape() && a.dtype() == b.dtype() && bits(a) == bits(b)
}

fn all_same(a: &[Tensor], b: &[Tensor]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

#[test]
fn results_are_bit_for_bit_and_traced_once_per_signature() {
    let f = Jit::new(mlp_loss);
    let p = params();
    assert!(same(&f.call(&p), &mlp_loss(&p)));
    let q: Vec<Tensor> = p.iter().map(|t| t * 1.5).collect();
    assert!(same(&f.call(&q), &mlp_loss(&q)));
    assert_eq!(f.stats(), JitStats { traces: 1, hits: 1 });
    // Another shape is another signature.
    let wide = vec![
        Tensor::randn(&[3, 7], DType::F64, 4),
        Tensor::zeros(&[7], DType::F64),
        Tensor::randn(&[7, 2], DType::F64, 5),
    ];
    assert!(same(&f.call(&wide), &mlp_loss(&wide)));
    assert_eq!(f.stats(), JitStats { traces: 2, hits: 1 });
}

#[test]
fn the_program_is_simplified() {
    let f = Jit::new(|x: &Tensor| {
        let _unused = x.exp().sum();
        x.sin() * x.sin()
    });
    let x = Tensor::from_vec(vec![0.3, 0.6], &[2]);
    // What is left is one elementwise chain: one fused equation.
    let program = f.lower(&x);
    assert_eq!(program.eqns.len(), 1, "{program}");
    let chain = program.eqns[0].prim.subgraph().expect("a fused chain").to_string();
    assert_eq!(chain, "{ lambda a:f64[2] .\n    b:f64[2] = sin a\n    c:f64[2] = mul b b\n  in (c) }");
    assert!(same(&f.call(&x), &(x.sin() * x.sin())));
}

#[test]
fn jit_of_grad_and_grad_of_jit_equal_grad() {
    let p = params();
    let want = grad(mlp_loss)(&p);
    assert!(all_same(&jit(grad(mlp_loss))(&p), &want), "jit(grad(f))");
    // grad of a jitted function recomputes through the program: equal up to rounding order.
    let got = grad(jit(mlp_loss))(&p);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs().max().item() < 1e-15, "grad(jit(f))");
    }
    let (v, g) = jit(value_and_grad(mlp_loss))(&p);
    assert!(same(&v, &mlp_loss(&p)) && all_same(&g, &want));
}

#[test]
fn gradients_of_a_jitted_function_check_to_second_order() {
    let f = jit(|x: &Tensor| (x.sin() * x.exp()).sum() + x.tanh().square().sum());
    let x = Tensor::from_vec(vec![0.3, -0.7, 1.1], &[3]);
    check_grads(&f, &x, 2).unwrap();
    let h = hessian(&f)(&x);
    let eager = hessian(|x: &Tensor| (x.sin() * x.exp()).sum() + x.tanh().square().sum())(&x);
    assert!((h - eager).abs().max().item() < 1e-13);
    let jf = jacfwd(jit(|x: &Tensor| x.sin() * x))(&x);
    let jr = jacrev(|x: &Tensor| x.sin() * x)(&x);
    assert!((jf - jr).abs().max().item() < 1e-15);
}

#[test]
fn vmap_and_jit_compose_both_ways() {
    let f = |x: &Tensor| (x.matmul(&x.t()) + x.sum()).tanh();
    let xs = Tensor::randn(&[4, 3, 2], DType::F64, 7);
    let want = vmap(f)(&xs);
    assert!(same(&jit(vmap(f))(&xs), &want), "jit(vmap(f))");
    assert!(same(&vmap(jit(f))(&xs), &want), "vmap(jit(f))");
    assert!(same(&jit(jit(f))(&xs.slice(0, 0, 1).squeeze(0)), &f(&xs.slice(0, 0, 1).squeeze(0))), "jit(jit(f))");
    // Per-example gradients through a jitted loss.
    let loss = jit(|p: &(Tensor, Tensor)| (p.0.matmul(&p.1)).tanh().sum());
    let w = Tensor::randn(&[2], DType::F64, 8);
    let per_example = vmap_axes(
        |a: &(Tensor, Tensor)| grad(|w: &Tensor| loss(&(a.0.clone(), w.clone())))(&a.1),
        &[Some(0), None],
        &[0],
    );
    let eager =
        vmap_axes(|a: &(Tensor, Tensor)| grad(|w: &Tensor| a.0.matmul(w).tanh().sum())(&a.1), &[Some(0), None], &[0]);
    let (got, want) = (per_example(&(xs.clone(), w.clone())), eager(&(xs, w)));
    assert!((got - want).abs().max().item() < 1e-15);
}

#[test]
fn captured_tensors_are_constants_and_captured_tracers_are_operands() {
    let a = Tensor::from_vec(vec![2.0, 3.0], &[2]);
    let f = Jit::new(|x: &Tensor| x * &a);
    let x = Tensor::from_vec(vec![1.0, -1.0], &[2]);
    assert_eq!(f.call(&x).to_vec::<f64>(), vec![2.0, -3.0]);
    // Inside grad, the jitted function closes over the differentiated value.
    let g = grad(|w: &Tensor| jit(|x: &Tensor| (x * w).sin().sum())(&x))(&a);
    let want = grad(|w: &Tensor| (&x * w).sin().sum())(&a);
    assert!((g - want).abs().max().item() < 1e-15);
}

#[test]
fn custom_rules_and_checkpoint_inside_jit() {
    let softclip = custom_jvp(|x: &Tensor| x.tanh(), |x: &Tensor, t: &Tensor| t * (1.0 - x.tanh().square()));
    let block = checkpoint(|x: &Tensor| x.sin().exp());
    let f = |x: &Tensor| (softclip(x) + block(x)).sum();
    let x = Tensor::from_vec(vec![0.2, 0.9], &[2]);
    assert!(same(&jit(f)(&x), &f(&x)));
    assert!(all_same(&[jit(grad(f))(&x)], &[grad(f)(&x)]));
}

#[test]
fn reading_a_traced_value_panics_and_the_next_call_works() {
    let bad = jit(|x: &Tensor| if x.sum().item() > 0.0 { x.sin() } else { x.cos() });
    let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bad(&x))).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("jit: tracing the function failed") && msg.contains("where_"), "{msg}");
    // Nothing is left behind: eager code, other jitted functions and transformations work.
    assert_eq!((x.sin() * 2.0).to_vec::<f64>(), vec![2.0 * 1f64.sin(), 2.0 * 2f64.sin()]);
    let good = jit(|x: &Tensor| where_(&x.sum().gt(&Tensor::scalar(0.0)), &x.sin(), &x.cos()));
    assert!(same(&good(&x), &x.sin()));
    assert!(same(&grad(|x: &Tensor| good(x).sum())(&x), &x.cos()));
}

#[test]
fn a_jitted_function_is_shared_between_threads() {
    let f = std::sync::Arc::new(Jit::new(mlp_loss));
    let p = params();
    let want = mlp_loss(&p);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (f, p, want) = (f.clone(), p.clone(), want.clone());
            s.spawn(move || {
                for _ in 0..10 {
                    assert!(same(&f.call(&p), &want));
                }
            });
        }
    });
    let stats = f.stats();
    assert_eq!(stats.traces + stats.hits, 40);
    assert!(stats.traces <= 4, "at most one trace per thread racing for the first call: {stats:?}");
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&jit(mlp_loss));
}

#[test]
fn static_arguments_steer_the_program_and_key_the_cache() {
    // The number of steps decides the program's length: a static argument.
    let euler = Jit::with_static(|y: &Tensor, steps: &usize| {
        let h = 1.0 / *steps as f64;
        (0..*steps).fold(y.clone(), |y, _| &y + &(y.sin() * h))
    });
    let y0 = Tensor::from_vec(vec![0.5, 1.0], &[2]);
    let eager = |steps: usize| (0..steps).fold(y0.clone(), |y, _| &y + &(y.sin() * (1.0 / steps as f64)));
    assert!(same(&euler.call_static(&y0, &4), &eager(4)));
    assert!(same(&euler.call_static(&y0, &10), &eager(10)));
    assert!(same(&euler.call_static(&y0, &4), &eager(4)));
    assert_eq!(euler.stats(), JitStats { traces: 2, hits: 1 });
    let program = euler.lower_static(&y0, &4);
    let unfused: usize = program.eqns.iter().map(|e| e.prim.subgraph().map_or(1, |g| g.eqns.len())).sum();
    assert_eq!(unfused, 12, "three equations per step:\n{program}");
    // Static arguments compose with differentiation of the traced ones.
    let f = jit_static(|y: &Tensor, steps: &usize| (0..*steps).fold(y.clone(), |y, _| &y + &(y.sin() * 0.1)).sum());
    let g = grad(|y: &Tensor| f(y, &3))(&y0);
    let want = grad(|y: &Tensor| (0..3).fold(y.clone(), |y, _| &y + &(y.sin() * 0.1)).sum())(&y0);
    assert!((g - want).abs().max().item() < 1e-15);
}

#[test]
fn inputs_of_another_structure_get_their_own_program() {
    use std::collections::BTreeMap;
    // Same leaves, other keys: the function reads them by name, so a shared program would be wrong.
    let f = Jit::new(|m: &BTreeMap<String, Tensor>| {
        let w = m.get("w").map(|w| w * 2.0).unwrap_or_else(|| Tensor::scalar(0.0));
        let b = m.get("b").cloned().unwrap_or_else(|| Tensor::scalar(100.0));
        w + b
    });
    let one = |k: &str, v: f64| BTreeMap::from([(k.to_string(), Tensor::scalar(v))]);
    assert_eq!(f.call(&one("w", 3.0)).item(), 106.0);
    assert_eq!(f.call(&one("b", 3.0)).item(), 3.0);
    assert_eq!(f.stats(), JitStats { traces: 2, hits: 0 });
}

#[test]
fn constants_are_folded_and_identities_removed_bit_for_bit() {
    let c = Tensor::from_vec(vec![0.5, 2.0], &[2]);
    let big = Tensor::ones(&[1 << 17], DType::F64);
    let f = Jit::new(|x: &Tensor| {
        let scale = c.exp() * 3.0; // known before the program runs: folded
        let y = -(-(x * 1.0)); // identities
        let y = y.reshape(&[2]).to_dtype(DType::F64);
        let kept = x + 0.0; // not an identity: -0 + 0 is +0
        let large = big.sum(); // its operand is large, but the sum is small: folded
        (y * scale + kept) * large
    });
    let x = Tensor::from_vec(vec![-0.0, 1.5], &[2]);
    let program = f.lower(&x).to_string();
    let eager = {
        let scale = c.exp() * 3.0;
        (-(-(&x * 1.0)) * scale + (&x + 0.0)) * big.sum()
    };
    assert!(same(&f.call(&x), &eager), "{program}");
    assert!(!program.contains("exp") && !program.contains("neg") && !program.contains("reshape"), "{program}");
    assert!(!program.contains("reduce_sum"), "the sum of a constant is folded:\n{program}");
    assert_eq!(program.matches("add").count(), 2, "x + 0 stays:\n{program}");
    assert_eq!(program.matches(" = mul").count(), 2, "x * 1 goes:\n{program}");
    // The sign of zero survives, as eagerly.
    assert!(f.call(&x).to_vec::<f64>()[0].is_sign_positive());
}

#[test]
fn quotients_by_one_differences_with_zero_first_powers_and_restoring_permutations_are_removed() {
    let f = Jit::new(|x: &Tensor| {
        let y = (x / 1.0 - 0.0).powi(1); // each the identity, bit for bit
        let back = y.t().t() + y.permute(&[1, 0]).permute(&[1, 0]);
        let rotated = x.reshape(&[2, 3, 1]).permute(&[1, 2, 0]).permute(&[1, 2, 0]); // not the identity
        (back, rotated, x - -0.0) // x - (-0) is x + 0: kept
    });
    let x = Tensor::from_vec(vec![-0.0, 1.5, -2.0, 3.0, f64::NAN, 7.0], &[2, 3]);
    let program = f.lower(&x).to_string();
    let (back, rotated, kept) = f.call(&x);
    let y = (&x / 1.0 - 0.0).powi(1);
    assert!(same_bits(&back, &(y.t().t() + y.permute(&[1, 0]).permute(&[1, 0]))), "{program}");
    assert!(same_bits(&rotated, &x.reshape(&[2, 3, 1]).permute(&[1, 2, 0]).permute(&[1, 2, 0])), "{program}");
    assert_eq!(rotated.shape(), &[1, 2, 3]);
    assert!(same_bits(&kept, &(&x - -0.0)), "{program}");
    assert!(back.to_vec::<f64>()[0].is_sign_negative(), "-0 / 1 - 0 + -0 stays -0");
    for gone in ["div", "powi"] {
        assert!(!program.contains(gone), "{gone} is an identity here:\n{program}");
    }
    assert_eq!(program.matches("permute").count(), 2, "only the rotation's permutes stay:\n{program}");
    assert_eq!(program.matches(" = sub").count(), 1, "x - 0 goes, x - (-0) stays:\n{program}");
}

#[test]
fn a_structs_non_tensor_fields_are_part_of_the_signature() {
    #[derive(Clone, Debug, PartialEq)]
    enum Act {
        Tanh,
        Relu,
    }
    struct Opaque(f64); // no Debug: told apart by type only
    impl Clone for Opaque {
        fn clone(&self) -> Opaque {
            Opaque(self.0)
        }
    }
    #[derive(Clone, ferrax::Tree)]
    struct Layer {
        w: Tensor,
        #[tree(skip)]
        act: Act,
        #[tree(skip)]
        scale: f64,
        #[tree(skip)]
        _opaque: Opaque,
    }
    let apply = |l: &Layer| {
        let y = &l.w * l.scale;
        match l.act {
            Act::Tanh => y.tanh(),
            Act::Relu => y.relu(),
        }
    };
    let f = Jit::new(apply);
    let w = Tensor::from_vec(vec![-1.0, 2.0], &[2]);
    let layer = |act, scale| Layer { w: w.clone(), act, scale, _opaque: Opaque(0.0) };
    for (act, scale) in [(Act::Tanh, 1.0), (Act::Relu, 1.0), (Act::Relu, 3.0), (Act::Tanh, 1.0)] {
        let l = layer(act, scale);
        assert_eq!(f.call(&l).to_vec::<f64>(), apply(&l).to_vec::<f64>());
    }
    assert_eq!(f.stats(), JitStats { traces: 3, hits: 1 });
    use ferrax::tree::TreeRef;
    assert_eq!(layer(Act::Relu, 2.0).ref_leaf_paths(), ["w.", "Relu", "2.0", std::any::type_name::<Opaque>()]);
}

#[test]
fn programs_of_scalars_run_in_the_compact_interpreter_with_the_eager_bits() {
    // Many ops, a comparison returned as a bool, a bool input as a condition,
    // an input returned as it is, constants.
    let f = |a: &(Tensor, Tensor, Tensor)| {
        let (x, y, flag) = (&a.0, &a.1, &a.2);
        let u = (x.sin() * y.exp() + x.ln_1p() - y.tanh()) / (x.square() + 1.0);
        let v = u.maximum(&y.sigmoid()).pow(&x.abs()) + x.atan2(y) - y.sqrt().minimum(&x.powi(3));
        let chosen = where_(flag, &v, &(-&u).relu());
        (chosen.clone(), chosen.gt(x), y.clone(), value_and_grad(|x: &Tensor| (x.cos() * x).exp())(x))
    };
    for dtype in [DType::F32, DType::F64] {
        let fast = Jit::new(f);
        let special = [0.5, -0.0, 0.0, 2.0, f64::NAN, f64::INFINITY, -3.0, 1e-30];
        for (i, &xv) in special.iter().enumerate() {
            let yv = special[(i + 3) % special.len()];
            let s = |v: f64| Tensor::scalar(v).to_dtype(dtype);
            let args = (s(xv), s(yv), Tensor::scalar(i % 2 == 0));
            let (got, want) = (fast.call(&args), f(&args));
            assert!(same_bits(&got.0, &want.0), "{dtype} x={xv} y={yv}: {} against {}", got.0, want.0);
            assert_eq!(got.1.to_vec::<bool>(), want.1.to_vec::<bool>());
            assert!(same_bits(&got.2, &want.2) && same_bits(&got.3 .0, &want.3 .0) && same_bits(&got.3 .1, &want.3 .1));
        }
        assert_eq!(fast.stats(), JitStats { traces: 1, hits: special.len() - 1 });
    }
    // Under a transformation the inputs are tracers: the call goes through bind.
    let g = |x: &Tensor| jit(|x: &Tensor| (x.sin() * x).exp())(x);
    let x = Tensor::scalar(0.7);
    assert!(same_bits(&grad(g)(&x), &grad(|x: &Tensor| (x.sin() * x).exp())(&x)));
}
