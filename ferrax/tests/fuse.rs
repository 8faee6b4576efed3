//! Elementwise fusion (`Graph::fused`, which `jit` runs): every value bit
//! for bit as the unfused graph, on chains with broadcasts, comparisons,
//! selects, several outputs and values read outside the chain.

use ferrax::graph::Graph;
use ferrax::prelude::*;

/// The bits of each value, signed zeros included; every NaN as one: Rust
/// leaves a NaN result's sign and payload unspecified (LLVM may swap a
/// sum's operands, and with them which NaN comes out), so a fused chain
/// and the eager kernel agree only that it is NaN.
fn bits(t: &Tensor) -> Vec<u64> {
    t.to_vec::<f64>().iter().map(|v| if v.is_nan() { f64::NAN.to_bits() } else { v.to_bits() }).collect()
}

/// The fused graph of `f` at `x`, after checking that it computes what the
/// unfused graph does, bit for bit.
fn fused_equal(f: impl Fn(&Vec<Tensor>) -> Tensor, x: &[Tensor]) -> Graph {
    let g = make_graph(|x: &Vec<Tensor>| f(x), &x.to_vec()).optimized();
    let fused = g.fused();
    fused.check().expect("the fused graph is well formed");
    let (want, got) = (g.eval(x), fused.eval(x));
    for (w, g) in want.iter().zip(&got) {
        assert_eq!((w.shape(), w.dtype()), (g.shape(), g.dtype()));
        assert_eq!(bits(w), bits(g), "fused graph differs:\n{fused}");
    }
    fused
}

fn count(g: &Graph, name: &str) -> usize {
    g.eqns.iter().filter(|e| e.prim.name() == name).count()
}

fn data(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    (Tensor::randn(shape, DType::F64, seed) * 3.0).to_dtype(dtype)
}

#[test]
fn activations_fuse_into_one_kernel_and_give_the_same_bits() {
    for dtype in [DType::F32, DType::F64] {
        // Sizes below a tile, across tiles, and large enough to split across threads.
        for n in [1, 7, 1000, 5000, 1 << 20] {
            let x = vec![data(&[n], dtype, n as u64)];
            let g = fused_equal(|x| x[0].gelu_tanh(), &x);
            assert_eq!(g.eqns.len(), 1, "gelu is one chain:\n{g}");
            let g = fused_equal(|x| x[0].softplus() * &x[0].logistic(), &x);
            assert_eq!(g.eqns.len(), 1, "softplus times logistic is one chain:\n{g}");
        }
    }
}

#[test]
fn broadcast_operands_are_read_in_place() {
    // A bias along rows, a column, and a scalar, all into one [64, 300] chain.
    let x = vec![data(&[64, 300], DType::F32, 1), data(&[300], DType::F32, 2), data(&[64, 1], DType::F32, 3)];
    let g = fused_equal(|p| ((&p[0] + &p[1]).tanh() * &p[2] + 1.0).exp(), &x);
    assert_eq!(g.eqns.len(), 1, "{g}");
}

#[test]
fn comparisons_and_selects_fuse_and_masks_escape_as_bools() {
    let x = vec![data(&[513], DType::F64, 4), data(&[513], DType::F64, 5)];
    // relu written with a select, a leaky slope, and a mask that is also returned.
    let g = fused_equal(
        |p| {
            let pos = p[0].gt(&p[1]);
            let y = pos.select(&p[0], &(&p[0] * 0.01)).sin();
            y + pos.to_dtype(DType::F64)
        },
        &x,
    );
    assert_eq!(count(&g, "fused"), 1, "{g}");
}

#[test]
fn values_read_outside_a_chain_are_its_outputs_and_order_is_kept() {
    let x = vec![data(&[4, 8], DType::F64, 6), data(&[8, 8], DType::F64, 7)];
    // `h` feeds a matrix product and continues the chain; the sum of `y`
    // comes back into a later chain, which must run after it.
    let g = fused_equal(
        |p| {
            let h = (&p[0] * 2.0).tanh();
            let y = (&h * &h).exp();
            let s = y.sum();
            (h.matmul(&p[1]).sin() + &y) * s
        },
        &x,
    );
    assert!(count(&g, "fused") >= 2, "{g}");
    assert_eq!(count(&g, "matmul"), 1);
}

#[test]
fn single_operations_and_integer_chains_are_left_alone() {
    let x = vec![data(&[16], DType::F64, 8)];
    let g = fused_equal(|p| p[0].sin().matmul(&p[0]), &x);
    assert_eq!(count(&g, "fused"), 0, "one elementwise op is not a chain:\n{g}");
    // With a reduction after it, it is: the sines are never an array.
    let g = fused_equal(|p| p[0].sin().sum(), &x);
    assert_eq!(count(&g, "fused"), 1, "{g}");
    let i = vec![Tensor::from_vec(vec![3i64, -4, 5], &[3])];
    let g = fused_equal(|p| (&p[0] * 2i64 + 1i64).abs(), &i);
    assert_eq!(count(&g, "fused"), 0, "integer chains run as before:\n{g}");
}

#[test]
fn a_fused_graph_differentiates_and_vectorises_like_the_original() {
    let x = data(&[6], DType::F64, 9);
    let f = |x: &Tensor| (x.sin() * x + 1.0).tanh().sum();
    let fused = make_graph(f, &x).optimized().fused();
    assert_eq!(count(&fused, "fused"), 1);
    let run = |x: &Tensor| fused.eval(std::slice::from_ref(x))[0].clone();
    assert_eq!(bits(&run(&x)), bits(&f(&x)));
    let (g_fused, g_plain) = (grad(run)(&x), grad(f)(&x));
    assert!((&g_fused - &g_plain).abs().max().item() < 1e-15);
    let h_fused = hessian(run)(&x);
    assert!((&h_fused - hessian(f)(&x)).abs().max().item() < 1e-13);
    let xs = data(&[3, 6], DType::F64, 10);
    assert_eq!(bits(&vmap(run)(&xs)), bits(&vmap(f)(&xs)));
}

#[test]
fn the_printed_program_shows_each_chain_inside_its_equation() {
    let g = make_graph(|x: &Tensor| x.sin().exp(), &Tensor::zeros(&[3], DType::F64)).fused();
    let text = g.to_string();
    assert!(text.contains("= fused[eqns=2"), "{text}");
    assert!(text.contains("b:f64[3] = sin a") && text.contains("c:f64[3] = exp b"), "{text}");
}

#[test]
fn jit_writes_a_chain_over_intermediates_that_die_and_gives_the_eager_bits() {
    // The transpose's result dies at the chain, which writes over it; x is
    // the caller's and stays as it was. Large enough to split across threads.
    let x = data(&[1024, 1024], DType::F32, 9);
    let before = bits(&x);
    let f = |x: &Tensor| {
        let y = x.t();
        let z = (&y * 0.5).sin() * (&y + 1.0).exp().ln_1p();
        // y is read for the last time by z's step: z may be written over it.
        (z.clone(), (z * 2.0).tanh())
    };
    let fast = jit(f);
    for _ in 0..2 {
        let (a, b) = fast(&x);
        let (want_a, want_b) = f(&x);
        assert_eq!(bits(&a), bits(&want_a));
        assert_eq!(bits(&b), bits(&want_b));
    }
    assert_eq!(bits(&x), before, "the input is not written");
}

#[test]
fn a_final_reduction_over_trailing_axes_joins_the_chain_with_the_eager_bits() {
    type Reduction = fn(&Tensor, &[usize]) -> Tensor;
    let reductions: [(&str, Reduction); 4] = [
        ("reduce_sum", |t, a| t.reduce_sum(a)),
        ("reduce_max", |t, a| t.reduce_max(a)),
        ("reduce_min", |t, a| t.reduce_min(a)),
        ("reduce_prod", |t, a| (t * 1e-3 + 1.0).reduce_prod(a)),
    ];
    for dtype in [DType::F32, DType::F64] {
        // Rows shorter than a tile, across tiles, a long single row split across threads, empty rows.
        for shape in [vec![7], vec![3, 5], vec![4, 1000], vec![2, 3, 700], vec![1 << 20], vec![5, 0], vec![3, 1]] {
            let x = vec![data(&shape, dtype, shape.iter().product::<usize>() as u64)];
            let rank = shape.len();
            for axes in [(rank - 1..rank).collect::<Vec<_>>(), (0..rank).collect()] {
                for (name, reduce) in reductions {
                    let g = fused_equal(|x| reduce(&(x[0].sin() * 0.5 + &x[0]).tanh(), &axes), &x);
                    assert_eq!(g.eqns.len(), 1, "{name} over {axes:?} of {shape:?} joins the chain:\n{g}");
                    // The chain's value read outside too: an output beside the reduction.
                    let g = fused_equal(
                        |x| {
                            let y = (x[0].sin() * 0.5 + &x[0]).tanh();
                            let r = reduce(&y, &axes);
                            let back: Vec<usize> =
                                (0..rank).map(|d| if axes.contains(&d) { 1 } else { y.shape()[d] }).collect();
                            r.reshape(&back) * 2.0 + &y
                        },
                        &x,
                    );
                    assert_eq!(count(&g, name), 0, "{name} joins the chain:\n{g}");
                }
            }
        }
    }
    // Leading axes are reduced by the reduction kernel, after the chain.
    let x = vec![data(&[4, 6], DType::F64, 1)];
    let g = fused_equal(|x| x[0].exp().ln_1p().reduce_sum(&[0]), &x);
    assert_eq!((count(&g, "fused"), count(&g, "reduce_sum")), (1, 1), "{g}");
}

#[test]
fn gradients_through_a_fused_reduction_match_eager_ones() {
    let f = |x: &Tensor| (x.sin() * x).softplus().sum();
    let x = data(&[3000], DType::F64, 4);
    let fast = jit(value_and_grad(f));
    let (v, g) = fast(&x);
    let (ve, ge) = value_and_grad(f)(&x);
    assert_eq!(bits(&v), bits(&ve));
    assert_eq!(bits(&g), bits(&ge));
    assert_eq!(bits(&grad(jit(f))(&x)), bits(&ge));
    let h = hessian(jit(f))(&data(&[5], DType::F64, 5));
    assert_eq!(bits(&h), bits(&hessian(f)(&data(&[5], DType::F64, 5))));
    // Mapped over a batch, the reduction stays per example.
    let xs = data(&[4, 300], DType::F64, 6);
    let batched = vmap(jit(f))(&xs);
    let rows: Vec<Tensor> = (0..4).map(|i| f(&xs.slice(0, i, i + 1).reshape(&[300]))).collect();
    assert_eq!(bits(&batched), bits(&Tensor::stack(&rows, 0)));
}

#[test]
fn chains_of_cheap_steps_keep_the_bits_of_signed_zeros_and_nans() {
    for dtype in [DType::F32, DType::F64] {
        for n in [3, 1000, 5000] {
            // Zeros of both signs, infinities and NaNs among the values.
            let special = Tensor::from_vec(vec![0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN], &[5]);
            let x = vec![Tensor::concat(&[special, data(&[n], DType::F64, n as u64)], 0).to_dtype(dtype)];
            let g = fused_equal(
                |p| {
                    let x = &p[0];
                    let a = (x - 0.25).abs().relu(); // one chain: sub, abs, relu
                    let b = -(&a * &a) + (x / 3.0).abs(); // a read twice: a chain of its own
                    let c = (x.maximum(&b)).powi(2) - (-x.abs()).relu(); // max then square; abs, neg, relu
                    (&c + &a).relu() * x.minimum(&a).neg()
                },
                &x,
            );
            assert_eq!(count(&g, "fused"), 1, "{g}");
        }
    }
}
