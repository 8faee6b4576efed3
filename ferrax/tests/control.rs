//! Control flow: every transformation of `scan`, `fori_loop`, `while_loop`,
//! `cond` and `switch` against the Rust loop or branch it stands for —
//! values bit for bit where the arithmetic is the same, derivatives by
//! finite differences in both modes to order 2, `vmap` against a loop over
//! the batch, and nesting in each other and in `jit`.

use ferrax::control::{fori_loop_traced, scan_with, ScanOptions};
use ferrax::numeric::{check_grads_with, Mode};
use ferrax::prelude::*;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, seed)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    (a - b).abs().max().item()
}

/// An Elman cell: the carry is the hidden state, `x` one input row, the
/// output the state passed through a readout.
fn cell(p: &[Tensor], h: &Tensor, x: &Tensor) -> (Tensor, Tensor) {
    let h = (x.matmul(&p[0]) + h.matmul(&p[1]) + &p[2]).tanh();
    let y = h.matmul(&p[3]).sin();
    (h.clone(), y)
}

fn params(seed: u64) -> Vec<Tensor> {
    vec![
        randn(&[3, 4], seed) * 0.5,
        randn(&[4, 4], seed + 1) * 0.5,
        randn(&[4], seed + 2) * 0.1,
        randn(&[4, 2], seed + 3),
    ]
}

/// The RNN as a scan, returning the final state and the stacked outputs.
fn rnn_scan(p: &[Tensor], h0: &Tensor, xs: &Tensor) -> (Tensor, Tensor) {
    scan(|h: &Tensor, x: &Tensor| cell(p, h, x), h0, xs)
}

/// The same RNN as a Rust loop.
fn rnn_loop(p: &[Tensor], h0: &Tensor, xs: &Tensor) -> (Tensor, Tensor) {
    let mut h = h0.clone();
    let mut ys = Vec::new();
    for t in 0..xs.shape()[0] {
        let (next, y) = cell(p, &h, &xs.slice(0, t, t + 1).squeeze(0));
        h = next;
        ys.push(y);
    }
    (h, Tensor::stack(&ys, 0))
}

#[test]
fn scan_equals_the_loop_bit_for_bit() {
    let (p, h0, xs) = (params(0), randn(&[4], 10), randn(&[6, 3], 11));
    let (h, ys) = rnn_scan(&p, &h0, &xs);
    let (h2, ys2) = rnn_loop(&p, &h0, &xs);
    assert_eq!(h.to_vec::<f64>(), h2.to_vec::<f64>());
    assert_eq!(ys.to_vec::<f64>(), ys2.to_vec::<f64>());
    assert_eq!(ys.shape(), &[6, 2]);
}

#[test]
fn scan_gradients_match_the_loop_and_finite_differences() {
    let (p, h0, xs) = (params(1), randn(&[4], 12), randn(&[5, 3], 13));
    let loss_scan = |a: &(Vec<Tensor>, Tensor, Tensor)| {
        let (h, ys) = rnn_scan(&a.0, &a.1, &a.2);
        (h.sum() + ys.square().sum()) * 0.5
    };
    let loss_loop = |a: &(Vec<Tensor>, Tensor, Tensor)| {
        let (h, ys) = rnn_loop(&a.0, &a.1, &a.2);
        (h.sum() + ys.square().sum()) * 0.5
    };
    let at = (p, h0, xs);
    let (g1, g2) = (grad(loss_scan)(&at), grad(loss_loop)(&at));
    for (a, b) in g1.leaves().iter().zip(g2.leaves()) {
        assert!(max_diff(a, &b) < 1e-13, "grad through scan differs from the loop's by {}", max_diff(a, &b));
    }
    // Both modes, to order 2, on the outputs themselves.
    check_grads_with(
        |a: &(Vec<Tensor>, Tensor, Tensor)| rnn_scan(&a.0, &a.1, &a.2),
        &at,
        2,
        &[Mode::Forward, Mode::Reverse],
        None,
    )
    .unwrap();
}

#[test]
fn scan_options_reverse_length_and_unroll() {
    let xs = randn(&[7, 2], 3);
    let body = |c: &Tensor, x: &Tensor| (c * 0.9 + x.sin(), c * x);
    let init = randn(&[2], 4);
    let plain = scan(body, &init, &xs);
    for unroll in [2, 3, 7, 10] {
        let opts = ScanOptions { unroll, ..Default::default() };
        let u = scan_with(body, &init, &xs, opts);
        assert_eq!(u.0.to_vec::<f64>(), plain.0.to_vec::<f64>(), "unroll {unroll}");
        assert_eq!(u.1.to_vec::<f64>(), plain.1.to_vec::<f64>(), "unroll {unroll}");
    }
    // Reverse: the loop from the last row, ys in their rows.
    let rev = scan_with(body, &init, &xs, ScanOptions { reverse: true, ..Default::default() });
    let mut c = init.clone();
    let mut ys = vec![Tensor::scalar(0.0); 7];
    for t in (0..7).rev() {
        let (n, y) = body(&c, &xs.slice(0, t, t + 1).squeeze(0));
        c = n;
        ys[t] = y;
    }
    assert_eq!(rev.0.to_vec::<f64>(), c.to_vec::<f64>());
    assert_eq!(rev.1.to_vec::<f64>(), Tensor::stack(&ys, 0).to_vec::<f64>());
    for unroll in [2, 3] {
        let u = scan_with(body, &init, &xs, ScanOptions { reverse: true, unroll, ..Default::default() });
        assert_eq!(u.1.to_vec::<f64>(), rev.1.to_vec::<f64>(), "reverse, unroll {unroll}");
    }
    check_grads_with(
        |a: &(Tensor, Tensor)| {
            scan_with(body, &a.0, &a.1, ScanOptions { reverse: true, unroll: 3, ..Default::default() })
        },
        &(init, xs),
        2,
        &[Mode::Forward, Mode::Reverse],
        None,
    )
    .unwrap();
    // No xs: a length.
    let (_, pows) = scan_with(
        |c: &Tensor, _: &()| (c * 3.0, c.clone()),
        &Tensor::scalar(1.0),
        &(),
        ScanOptions { length: Some(4), ..Default::default() },
    );
    assert_eq!(pows.to_vec::<f64>(), vec![1.0, 3.0, 9.0, 27.0]);
}

#[test]
fn vmap_of_scan_equals_a_loop_over_the_batch() {
    let p = params(2);
    let h0s = randn(&[3, 4], 20);
    let xss = randn(&[3, 5, 3], 21);
    // Batched state and inputs; the parameters shared.
    let (hb, yb) = vmap(|a: &(Tensor, Tensor)| rnn_scan(&p, &a.0, &a.1))(&(h0s.clone(), xss.clone()));
    for b in 0..3 {
        let (h, y) = rnn_loop(&p, &h0s.slice(0, b, b + 1).squeeze(0), &xss.slice(0, b, b + 1).squeeze(0));
        assert!(max_diff(&hb.slice(0, b, b + 1).squeeze(0), &h) < 1e-14);
        assert!(max_diff(&yb.slice(0, b, b + 1).squeeze(0), &y) < 1e-14);
    }
    // Only the inputs batched: the state becomes batched by the first step.
    let h0 = randn(&[4], 22);
    let yb = vmap(|xs: &Tensor| rnn_scan(&p, &h0, xs).1)(&xss);
    for b in 0..3 {
        let (_, y) = rnn_loop(&p, &h0, &xss.slice(0, b, b + 1).squeeze(0));
        assert!(max_diff(&yb.slice(0, b, b + 1).squeeze(0), &y) < 1e-14);
    }
    // Per-example gradients of the parameters: vmap of grad through the scan.
    let xs = randn(&[5, 3], 23);
    let scales = Tensor::from_vec(vec![0.5, 1.0, 2.0], &[3]);
    let per = vmap(|s: &Tensor| grad(|p: &Vec<Tensor>| rnn_scan(p, &h0, &(&xs * s)).1.sum())(&p))(&scales);
    for b in 0..3 {
        let s = scales.slice(0, b, b + 1).squeeze(0);
        let g = grad(|p: &Vec<Tensor>| rnn_loop(p, &h0, &(&xs * &s)).1.sum())(&p);
        for (a, e) in per.iter().zip(&g) {
            assert!(max_diff(&a.slice(0, b, b + 1).squeeze(0), e) < 1e-13);
        }
    }
}

#[test]
fn scan_under_jit_and_jit_inside_scan() {
    let p = params(3);
    let (h0, xs) = (randn(&[4], 30), randn(&[8, 3], 31));
    let f = |a: &(Tensor, Tensor)| rnn_scan(&p, &a.0, &a.1).1.sum();
    let jitted = jit(grad(f));
    let eager = grad(f)(&(h0.clone(), xs.clone()));
    let fast = jitted(&(h0.clone(), xs.clone()));
    assert!(max_diff(&eager.0, &fast.0) < 1e-14 && max_diff(&eager.1, &fast.1) < 1e-14);
    // One scan equation in the program, not eight unrolled steps.
    let g = make_graph(|a: &(Tensor, Tensor)| rnn_scan(&p, &a.0, &a.1), &(h0.clone(), xs.clone()));
    assert_eq!(g.eqns.iter().filter(|e| e.prim.name() == "scan").count(), 1);
    assert!(g.eqns.len() < 4, "{g}");
    // A jitted body.
    let step = jit(|a: &(Tensor, Tensor)| cell(&p, &a.0, &a.1));
    let (h, ys) = scan(|h: &Tensor, x: &Tensor| step(&(h.clone(), x.clone())), &h0, &xs);
    let (h2, ys2) = rnn_loop(&p, &h0, &xs);
    assert!(max_diff(&h, &h2) < 1e-15 && max_diff(&ys, &ys2) < 1e-15);
}

#[test]
fn nested_scans_and_checkpointed_bodies() {
    let xs = randn(&[4, 3, 2], 40);
    let inner = |c: &Tensor, x: &Tensor| (c * x.cos() + x, c.sum());
    let outer = |a: &(Tensor, Tensor)| {
        scan(
            |c: &Tensor, x: &Tensor| {
                let (c2, ys) = scan(inner, c, x);
                (c2.tanh(), ys.sum())
            },
            &a.0,
            &a.1,
        )
    };
    let init = randn(&[2], 41);
    check_grads_with(outer, &(init.clone(), xs.clone()), 2, &[Mode::Forward, Mode::Reverse], None).unwrap();
    // A checkpointed body gives the same gradient.
    let body = checkpoint(|a: &(Tensor, Tensor)| (a.0.sin() * &a.1, a.0.sum()));
    let plain = |a: &(Tensor, Tensor)| (a.0.sin() * &a.1, a.0.sum());
    let f1 = |x: &Tensor| scan(|c: &Tensor, x: &Tensor| body(&(c.clone(), x.clone())), &init, x).0.sum();
    let f2 = |x: &Tensor| scan(|c: &Tensor, x: &Tensor| plain(&(c.clone(), x.clone())), &init, x).0.sum();
    let xs = randn(&[6, 2], 42);
    assert!(max_diff(&grad(f1)(&xs), &grad(f2)(&xs)) < 1e-14);
}

#[test]
fn fori_loop_is_differentiable_both_ways() {
    // x_{i+1} = x_i + sin(i · x_i) / 10, four steps.
    let f = |x: &Tensor| fori_loop(0, 4, |i, x: &Tensor| x + (x * i.to_dtype(DType::F64)).sin() * 0.1, x);
    let x = randn(&[3], 50);
    let mut y = x.clone();
    for i in 0..4 {
        y = &y + (&y * i as f64).sin() * 0.1;
    }
    assert_eq!(f(&x).to_vec::<f64>(), y.to_vec::<f64>());
    check_grads_with(f, &x, 2, &[Mode::Forward, Mode::Reverse], None).unwrap();
    // Hessian (forward over reverse) matches the unrolled loop's.
    let unrolled = |x: &Tensor| {
        let mut y = x.clone();
        for i in 0..4 {
            y = &y + (&y * i as f64).sin() * 0.1;
        }
        y.square().sum()
    };
    let h1 = hessian(|x: &Tensor| f(x).square().sum())(&x);
    let h2 = hessian(unrolled)(&x);
    assert!(max_diff(&h1, &h2) < 1e-13);
    // Empty and reversed bounds run no step.
    assert_eq!(fori_loop(3, 3, |_, c: &Tensor| c * 2.0, &x).to_vec::<f64>(), x.to_vec::<f64>());
    assert_eq!(fori_loop(5, 2, |_, c: &Tensor| c * 2.0, &x).to_vec::<f64>(), x.to_vec::<f64>());
}

#[test]
fn while_loop_forward_mode_vmap_and_refused_reverse() {
    // Halve until below 1: the number of steps depends on the value.
    let halve = |x: &Tensor| while_loop(|c: &Tensor| c.gt(&Tensor::scalar(1.0)), |c: &Tensor| c * 0.5, x);
    assert_eq!(halve(&Tensor::scalar(5.0)).item(), 0.625);
    let (y, dy) = jvp(halve, &Tensor::scalar(5.0), &Tensor::scalar(1.0));
    assert_eq!((y.item(), dy.item()), (0.625, 0.125));
    let ys = vmap(halve)(&Tensor::from_vec(vec![5.0, 0.5, 100.0], &[3]));
    assert_eq!(ys.to_vec::<f64>(), vec![0.625, 0.5, 0.78125]);
    let d = jacfwd(|x: &Tensor| vmap(halve)(x))(&Tensor::from_vec(vec![5.0, 0.5, 100.0], &[3]));
    assert_eq!(d.to_vec::<f64>(), vec![0.125, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0078125]);
    let refused = std::panic::catch_unwind(|| grad(halve)(&Tensor::scalar(5.0)));
    let msg = refused.err().and_then(|p| p.downcast_ref::<String>().cloned()).unwrap_or_default();
    assert!(msg.contains("while_loop") && msg.contains("fori_loop"), "{msg}");
    // Traced bounds: each member of a batch runs its own number of steps.
    let ns = Tensor::from_vec(vec![0i64, 2, 5], &[3]);
    let sums = vmap(|n: &Tensor| {
        fori_loop_traced(
            &Tensor::scalar(0i64),
            n,
            |i: &Tensor, c: &Tensor| c + i.to_dtype(DType::F64),
            &Tensor::scalar(0.0),
        )
    })(&ns);
    assert_eq!(sums.to_vec::<f64>(), vec![0.0, 1.0, 10.0]);
    // Forward mode to second order.
    let f = |x: &Tensor| {
        while_loop(
            |c: &(Tensor, Tensor)| c.0.lt(&Tensor::scalar(3i64)),
            |c: &(Tensor, Tensor)| (&c.0 + &Tensor::scalar(1i64), c.1.sin() + &c.1),
            &(Tensor::scalar(0i64), x.clone()),
        )
        .1
    };
    check_grads_with(f, &randn(&[3], 60), 2, &[Mode::Forward], None).unwrap();
}

#[test]
fn cond_and_switch_in_every_mode() {
    let f = |x: &Tensor| cond(&x.sum().gt(&Tensor::scalar(0.0)), |x: &Tensor| x.sin() * x, |x: &Tensor| x.exp(), x);
    for seed in [70, 71, 72] {
        let x = randn(&[3], seed);
        let want = if x.sum().item() > 0.0 { x.sin() * &x } else { x.exp() };
        assert_eq!(f(&x).to_vec::<f64>(), want.to_vec::<f64>());
        check_grads_with(f, &x, 2, &[Mode::Forward, Mode::Reverse], None).unwrap();
    }
    // A batched predicate selects per member.
    let xs = randn(&[5, 3], 73);
    let ys = vmap(f)(&xs);
    for b in 0..5 {
        let x = xs.slice(0, b, b + 1).squeeze(0);
        assert!(max_diff(&ys.slice(0, b, b + 1).squeeze(0), &f(&x)) < 1e-15);
    }
    let gs = vmap(grad(|x: &Tensor| f(x).sum()))(&xs);
    for b in 0..5 {
        let x = xs.slice(0, b, b + 1).squeeze(0);
        assert!(max_diff(&gs.slice(0, b, b + 1).squeeze(0), &grad(|x: &Tensor| f(x).sum())(&x)) < 1e-15);
    }
    // Switch with a captured parameter that grad differentiates.
    let w = randn(&[3], 74);
    let g = |w: &Tensor, i: i64| {
        let branches: [&dyn Fn(&Tensor) -> Tensor; 3] =
            [&|x| (x * w).sum(), &|x| (x * w).sin().sum(), &|x| w.square().sum() + x.sum()];
        switch(&Tensor::scalar(i), &branches, &randn(&[3], 75))
    };
    for i in 0..3 {
        check_grads_with(|w: &Tensor| g(w, i), &w, 2, &[Mode::Forward, Mode::Reverse], None).unwrap();
    }
    // Under jit the branch is chosen at run time.
    let jf = jit(f);
    for seed in [76, 77] {
        let x = randn(&[3], seed);
        assert_eq!(jf(&x).to_vec::<f64>(), f(&x).to_vec::<f64>());
    }
}

#[test]
fn misuse_is_named() {
    let msg =
        |r: std::thread::Result<()>| r.err().and_then(|p| p.downcast_ref::<String>().cloned()).unwrap_or_default();
    let m = msg(std::panic::catch_unwind(|| {
        scan(
            |c: &Tensor, x: &Tensor| (c.sum(), x.clone()),
            &Tensor::zeros(&[2], DType::F64),
            &Tensor::zeros(&[3, 2], DType::F64),
        );
    }));
    assert!(m.contains("scan") && m.contains("carry"), "{m}");
    let m = msg(std::panic::catch_unwind(|| {
        scan(
            |c: &Tensor, x: &(Tensor, Tensor)| (c.clone(), x.0.clone()),
            &Tensor::scalar(0.0),
            &(Tensor::zeros(&[3], DType::F64), Tensor::zeros(&[4], DType::F64)),
        );
    }));
    assert!(m.contains("rows"), "{m}");
    let m = msg(std::panic::catch_unwind(|| {
        cond(&Tensor::scalar(true), |x: &Tensor| x.clone(), |x: &Tensor| x.sum(), &Tensor::zeros(&[2], DType::F64));
    }));
    assert!(m.contains("branch 1"), "{m}");
    let m = msg(std::panic::catch_unwind(|| {
        while_loop(|c: &Tensor| c.clone(), |c: &Tensor| c * 2.0, &Tensor::scalar(1.0));
    }));
    assert!(m.contains("0-d bool"), "{m}");
}

#[test]
fn control_flow_nested_in_each_other_and_in_jit() {
    let w = randn(&[3], 80);
    // A cond inside a scan inside a jit, differentiated both ways.
    let f = |a: &(Tensor, Tensor)| {
        let (w, xs) = a;
        scan(
            |c: &Tensor, x: &Tensor| {
                let next =
                    cond(&x.sum().gt(&Tensor::scalar(0.0)), |c: &Tensor| (c * w).sin(), |c: &Tensor| c * x.cos(), c);
                (next.clone(), next.sum())
            },
            &Tensor::ones(&[3], DType::F64),
            xs,
        )
    };
    let unrolled = |a: &(Tensor, Tensor)| {
        let (w, xs) = a;
        let mut c = Tensor::ones(&[3], DType::F64);
        let mut ys = Vec::new();
        for t in 0..xs.shape()[0] {
            let x = xs.slice(0, t, t + 1).squeeze(0);
            c = if x.sum().item() > 0.0 { (&c * w).sin() } else { &c * x.cos() };
            ys.push(c.sum());
        }
        (c, Tensor::stack(&ys, 0))
    };
    let at = (w.clone(), randn(&[6, 3], 81));
    check_grads_with(f, &at, 2, &[Mode::Forward, Mode::Reverse], None).unwrap();
    let loss = |a: &(Tensor, Tensor)| f(a).1.square().sum();
    let loss_unrolled = |a: &(Tensor, Tensor)| unrolled(a).1.square().sum();
    let g = jit(grad(loss))(&at);
    let want = grad(loss_unrolled)(&at);
    assert!(max_diff(&g.0, &want.0) < 1e-13 && max_diff(&g.1, &want.1) < 1e-13);
    // jacrev and jacfwd agree.
    let jr = jacrev(|w: &Tensor| f(&(w.clone(), at.1.clone())).1)(&w);
    let jf = jacfwd(|w: &Tensor| f(&(w.clone(), at.1.clone())).1)(&w);
    assert!(max_diff(&jr, &jf) < 1e-13);
    // A scan inside a cond, and a while_loop inside a scan (forward mode).
    let g2 = |x: &Tensor| {
        cond(
            &x.sum().lt(&Tensor::scalar(0.0)),
            |x: &Tensor| fori_loop(0, 3, |_, c: &Tensor| c.sin() + x, x),
            |x: &Tensor| x.square(),
            x,
        )
    };
    for seed in [82, 83] {
        check_grads_with(g2, &randn(&[2], seed), 2, &[Mode::Forward, Mode::Reverse], None).unwrap();
    }
    let g3 = |x: &Tensor| {
        scan(
            |c: &Tensor, x: &Tensor| {
                let y = while_loop(
                    |v: &Tensor| v.sum().lt(&Tensor::scalar(10.0)),
                    |v: &Tensor| v * 1.5 + 0.1,
                    &(c + x).exp(),
                );
                (y.tanh(), y.sum())
            },
            x,
            &randn(&[4, 2], 84),
        )
    };
    check_grads_with(g3, &randn(&[2], 85), 2, &[Mode::Forward], None).unwrap();
    // jit of vmap of a while_loop, and vmap of jit of a scan.
    let halve = |x: &Tensor| while_loop(|c: &Tensor| c.gt(&Tensor::scalar(1.0)), |c: &Tensor| c * 0.5, x);
    let xs = Tensor::from_vec(vec![5.0, 0.5, 100.0, 3.0], &[4]);
    assert_eq!(jit(vmap(halve))(&xs).to_vec::<f64>(), vmap(halve)(&xs).to_vec::<f64>());
    let cumsum = jit(|x: &Tensor| scan(|c: &Tensor, x: &Tensor| (c + x, c + x), &Tensor::scalar(0.0), x).1);
    let m = randn(&[3, 5], 86);
    let rows = vmap(&cumsum)(&m);
    for b in 0..3 {
        let r = m.slice(0, b, b + 1).squeeze(0);
        assert_eq!(rows.slice(0, b, b + 1).squeeze(0).to_vec::<f64>(), cumsum(&r).to_vec::<f64>());
    }
}

#[test]
fn scan_on_the_tape_and_with_tree_carries() {
    // The PyTorch-style tape records a scan as one operation.
    let (p, h0, xs) = (params(4), randn(&[4], 90), randn(&[5, 3], 91));
    let tape = Tape::new();
    let tp: Vec<Tensor> = p.iter().map(|t| tape.requires_grad(t)).collect();
    let (_, ys) = rnn_scan(&tp, &h0, &xs);
    ys.sum().backward();
    let want = grad(|p: &Vec<Tensor>| rnn_loop(p, &h0, &xs).1.sum())(&p);
    for (t, g) in tp.iter().zip(&want) {
        assert!(max_diff(&t.grad().unwrap(), g) < 1e-13);
    }
    // A carry that is a tuple with an integer counter; xs a tuple too.
    let body = |c: &(Tensor, Tensor), x: &(Tensor, Tensor)| {
        let n = &c.0 + &Tensor::scalar(1i64);
        let s = &c.1 * &x.0 + x.1.sin() * n.to_dtype(DType::F64);
        ((n, s.clone()), (s.sum(), c.0.clone()))
    };
    let xs = (randn(&[4, 2], 92), randn(&[4, 2], 93));
    let init = (Tensor::scalar(0i64), randn(&[2], 94));
    let ((n, s), (sums, counts)) = scan(body, &init, &xs);
    assert_eq!(n.to_vec::<i64>(), vec![4]);
    assert_eq!(counts.to_vec::<i64>(), vec![0, 1, 2, 3]);
    assert_eq!(sums.shape(), &[4]);
    assert_eq!(s.shape(), &[2]);
    let f = |a: &(Tensor, Tensor)| scan(body, &(Tensor::scalar(0i64), a.0.clone()), &(a.1.clone(), xs.1.clone())).0 .1;
    check_grads_with(f, &(init.1.clone(), xs.0.clone()), 2, &[Mode::Forward, Mode::Reverse], None).unwrap();
    // vmap over the tuple's float leaf only.
    let batch = randn(&[3, 2], 95);
    let vb = vmap(|s0: &Tensor| scan(body, &(Tensor::scalar(0i64), s0.clone()), &xs).0 .1)(&batch);
    for b in 0..3 {
        let s0 = batch.slice(0, b, b + 1).squeeze(0);
        let one = scan(body, &(Tensor::scalar(0i64), s0), &xs).0 .1;
        assert!(max_diff(&vb.slice(0, b, b + 1).squeeze(0), &one) < 1e-15);
    }
}

/// Newton's method for Kepler's equation E − e·sin E = M, at least one step.
fn kepler(m: &Tensor) -> Tensor {
    let e = 0.6;
    let step = |s: &(Tensor, Tensor)| {
        let x = &s.0;
        (x - (x - x.sin() * e - m) / (1.0 - x.cos() * e), &s.1 + &Tensor::scalar(1i64))
    };
    let go = |s: &(Tensor, Tensor)| {
        let residual = (&s.0 - s.0.sin() * e - m).abs();
        s.1.eq(&Tensor::scalar(0i64)).logical_or(&residual.gt(&Tensor::scalar(1e-14)))
    };
    while_loop(go, step, &(m.clone(), Tensor::scalar(0i64))).0
}

#[test]
fn newton_vmapped_matches_the_implicit_derivative() {
    let ms = Tensor::linspace(0.0, 6.0, 41, DType::F64);
    let es = jit(vmap(kepler))(&ms);
    assert!((&es - es.sin() * 0.6 - &ms).abs().max().item() < 1e-13);
    for i in [0, 7, 20, 33] {
        let m = ms.slice(0, i, i + 1).squeeze(0);
        assert_eq!(kepler(&m).item(), es.slice(0, i, i + 1).item(), "member {i}: vmap equals one solve");
    }
    let (_, de) = jvp(vmap(kepler), &ms, &Tensor::ones(&[41], DType::F64));
    let implicit = (1.0 - es.cos() * 0.6).recip();
    assert!(((&de - &implicit) / &implicit).abs().max().item() < 1e-10);
}

#[test]
fn rk4_in_fori_loop_differentiates_by_its_parameters() {
    // A damped oscillator x'' = -k x - c x', 60 RK4 steps; the loss is the final position squared.
    let field = |p: &Tensor, s: &Tensor| {
        let (x, v) = (s.slice(0, 0, 1), s.slice(0, 1, 2));
        let (k, c) = (p.slice(0, 0, 1), p.slice(0, 1, 2));
        Tensor::concat(&[v.clone(), -(&k * &x) - &c * &v], 0)
    };
    let dt = 0.05;
    let rk4 = |p: &Tensor, s: &Tensor| {
        let k1 = field(p, s);
        let k2 = field(p, &(s + &k1 * (dt / 2.0)));
        let k3 = field(p, &(s + &k2 * (dt / 2.0)));
        let k4 = field(p, &(s + &k3 * dt));
        s + (k1 + k2 * 2.0 + k3 * 2.0 + k4) * (dt / 6.0)
    };
    let s0 = Tensor::from_vec(vec![1.0, 0.0], &[2]);
    let loss = |p: &Tensor| fori_loop(0, 60, |_, s: &Tensor| rk4(p, s), &s0).slice(0, 0, 1).square().sum();
    let p = Tensor::from_vec(vec![4.0, 0.3], &[2]);
    let unrolled = |p: &Tensor| {
        let mut s = s0.clone();
        for _ in 0..60 {
            s = rk4(p, &s);
        }
        s.slice(0, 0, 1).square().sum()
    };
    assert_eq!(loss(&p).item(), unrolled(&p).item());
    let g = grad(loss)(&p);
    assert!(max_diff(&g, &grad(unrolled)(&p)) < 1e-13);
    let fd = numerical_grad(loss, &p);
    assert!(max_diff(&g, &fd) < 1e-8, "{g:?} vs {fd:?}");
    check_grads_with(loss, &p, 2, &[Mode::Forward, Mode::Reverse], None).unwrap();
}

#[test]
fn adam_steps_in_a_jitted_scan_equal_the_rust_loop() {
    use ferrax::optim::{Adam, AdamState, Optimizer};
    // Least squares on 4 batches; Adam's step count is traced inside the scan.
    let xs = Tensor::randn(&[4, 8, 3], DType::F32, 100);
    let ys = Tensor::randn(&[4, 8], DType::F32, 101);
    let w0 = Tensor::randn(&[3], DType::F32, 102);
    let opt = Adam::new(0.05);
    let step = move |(w, s): &(Tensor, AdamState<Tensor>), (x, y): &(Tensor, Tensor)| {
        let (loss, g) = value_and_grad(|w: &Tensor| (x.matmul(w) - y).square().mean())(w);
        (opt.update(w, &g, s), loss)
    };
    let epoch =
        jit(move |a: &((Tensor, AdamState<Tensor>), Tensor, Tensor)| scan(step, &a.0, &(a.1.clone(), a.2.clone())));
    let ((w, s), losses) = epoch(&((w0.clone(), opt.init(&w0)), xs.clone(), ys.clone()));
    let (mut w2, mut s2) = (w0.clone(), opt.init(&w0));
    for b in 0..4 {
        let x = xs.slice(0, b, b + 1).squeeze(0);
        let y = ys.slice(0, b, b + 1).squeeze(0);
        let ((nw, ns), loss) = step(&(w2, s2), &(x, y));
        assert_eq!(loss.item(), losses.slice(0, b, b + 1).item());
        (w2, s2) = (nw, ns);
    }
    assert_eq!(w.to_vec::<f32>(), w2.to_vec::<f32>());
    assert_eq!(s.step.to_vec::<i64>(), vec![4]);
    assert_eq!(s.v.to_vec::<f32>(), s2.v.to_vec::<f32>());
}

#[test]
fn empty_scans_and_branches_on_batched_operands() {
    // Zero steps: the carry passes through, ys are empty, gradients flow to the init only.
    let xs = Tensor::zeros(&[0, 3], DType::F64);
    let f = |c: &Tensor| scan(|c: &Tensor, x: &Tensor| (c * x, c.sum()), c, &xs);
    let init = randn(&[3], 110);
    let (c, ys) = f(&init);
    assert_eq!((c.to_vec::<f64>(), ys.shape()), (init.to_vec::<f64>(), &[0][..]));
    assert_eq!(grad(|c: &Tensor| f(c).0.sum())(&init).to_vec::<f64>(), vec![1.0; 3]);
    // An unbatched index with batched operands runs one branch on the batch.
    let branches: [&dyn Fn(&Tensor) -> Tensor; 2] = [&|x| x.sin(), &|x| x * x];
    let xs = randn(&[4, 2], 111);
    for i in 0..2 {
        let ys = vmap(|x: &Tensor| switch(&Tensor::scalar(i), &branches, x))(&xs);
        let want = if i == 0 { xs.sin() } else { &xs * &xs };
        assert_eq!(ys.to_vec::<f64>(), want.to_vec::<f64>());
    }
    // Both batched, and differentiated.
    let idx = Tensor::from_vec(vec![0i64, 1, 1, 0], &[4]);
    let g = vmap(|a: &(Tensor, Tensor)| grad(|x: &Tensor| switch(&a.0, &branches, x).sum())(&a.1))(&(idx, xs.clone()));
    for b in 0..4 {
        let x = xs.slice(0, b, b + 1).squeeze(0);
        let want = if b == 1 || b == 2 { &x * 2.0 } else { x.cos() };
        assert!(max_diff(&g.slice(0, b, b + 1).squeeze(0), &want) < 1e-15);
    }
}
