//! Convolution and pooling: values against PyTorch (literals below, each
//! with the snippet that produced it) and against a direct loop, on every
//! kind of geometry; the derivative rules are in the tables of prims.rs.

mod common;

use common::{assert_close, assert_slices_close, panic_message};
use ferrax::array::{ConvGeometry, Rng};
use ferrax::prelude::*;
use ferrax::prims::{ConvOptions, Padding};

/// `sin(0.37 · arange(n))`-style inputs, as the PyTorch snippets build them.
fn wave(shape: &[usize], scale: f64, cos: bool) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|i| if cos { (i as f64 * scale).cos() } else { (i as f64 * scale).sin() }).collect();
    Tensor::from_vec(v, shape)
}

#[test]
fn conv2d_with_stride_padding_dilation_and_groups_matches_pytorch() {
    // x = (arange(2*4*6*5).reshape(2,4,6,5) * 0.29).sin(); w = (arange(6*2*3*2).reshape(6,2,3,2) * 0.71).cos()
    // F.conv2d(x, w, stride=(2,1), padding=(1,2), dilation=(1,2), groups=2)
    let x = wave(&[2, 4, 6, 5], 0.29, false);
    let w = wave(&[6, 2, 3, 2], 0.71, true);
    let opts = ConvOptions::new().stride(&[2, 1]).padding(Padding::Explicit(vec![(1, 1), (2, 2)])).dilation(&[1, 2]);
    let y = x.conv(&w, &opts.groups(2));
    assert_eq!(y.shape(), &[2, 6, 3, 7]);
    let want = [
        -0.2810397142878833,
        -0.6748953166600358,
        -1.8683793636559003,
        -2.3983164345679824,
        -2.7279647062765346,
        -1.3878778944834622,
    ];
    assert_slices_close(&y.to_vec::<f64>()[..6], &want, 1e-12);
    assert!((y.sum().item() - 0.8245412397815327).abs() < 1e-11);
}

#[test]
fn conv_transpose_matches_pytorch() {
    // x = (arange(36).reshape(1,4,3,3) * 0.37).sin(); w = (arange(24).reshape(4,1,3,2) * 0.91).cos()
    // F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, groups=2)
    let x = wave(&[1, 4, 3, 3], 0.37, false);
    let w = wave(&[4, 1, 3, 2], 0.91, true);
    let y = x.conv_transpose(&w, &ConvOptions::new().stride(&[2]).padding(Padding::symmetric(1)).groups(2), &[1]);
    assert_eq!(y.shape(), &[1, 2, 6, 5]);
    let want = [
        0.061756810743105975,
        -0.37687642618153216,
        -0.15671178111077344,
        -0.6010471576742777,
        -0.35397016855950864,
        -0.2536456335853505,
        0.5037424546885001,
        0.002927117187863093,
    ];
    assert_slices_close(&y.to_vec::<f64>()[..8], &want, 1e-12);
    assert!((y.sum().item() - -5.64165256181177).abs() < 1e-11);
}

#[test]
fn pooling_matches_pytorch() {
    // a = (arange(50).reshape(2,5,5) * 0.53).sin()
    let a = wave(&[2, 5, 5], 0.53, false);
    // F.max_pool2d(a, 3, 2, padding=1)
    let max = a.max_pool(&[3, 3], &[2], &Padding::symmetric(1));
    let want_max = [
        0.5055333412048469,
        0.9998156151342908,
        0.9998156151342908,
        0.9953937772576199,
        0.8103668559113548,
        0.907298722017184,
        0.9953937772576199,
        0.8103668559113548,
        0.15302577191607933,
        0.9368910801201381,
        0.9851015087414937,
        0.7630140137137015,
        0.7111612229059799,
        0.9609580328727364,
        0.9689995092304419,
        0.7111612229059799,
        0.3024469294260107,
        0.742810656248557,
    ];
    assert_eq!(max.shape(), &[2, 3, 3]);
    assert_slices_close(&max.to_vec::<f64>(), &want_max, 0.0);
    // F.avg_pool2d(a, (2,3), (2,1), padding=1, count_include_pad=False)
    let avg = a.avg_pool(&[2, 3], &[2, 1], &Padding::symmetric(1), false);
    let want_avg = [
        0.25276667060242347,
        0.4592962745166111,
        0.7925681462280414,
        0.9083705263440511,
        0.9263780483435835,
        -0.2091165821756002,
    ];
    assert_slices_close(&avg.to_vec::<f64>()[..6], &want_avg, 1e-14);
    // F.adaptive_avg_pool2d(a, (2,3))
    let ada = a.adaptive_avg_pool(&[2, 3]);
    let want_ada = [
        -0.055155497916258976,
        0.12441039954772237,
        0.2402472989264536,
        -0.22968203587839384,
        -0.09313881474954598,
        0.091114592733614,
        0.10834048475326667,
        0.2194785318367201,
        0.2181891051235756,
        -0.12329576770966895,
        0.061391431762139126,
        0.21463098335689557,
    ];
    assert_slices_close(&ada.to_vec::<f64>(), &want_ada, 1e-14);
}

/// Calls `term(input index, kernel index, output index)` for every product
/// `x[input] · w[kernel]` that the definition of the convolution sums into
/// `y[output]`, each loop written out: the reference the kernels are checked against.
fn products(xs: &[usize], ws: &[usize], g: &ConvGeometry, groups: usize, mut term: impl FnMut(usize, usize, usize)) {
    let d = xs.len() - 2;
    let out = g.out_shape(&xs[2..], &ws[2..]);
    let (cg, og) = (xs[1] / groups, ws[0] / groups);
    let kn: usize = ws[2..].iter().product();
    let pn: usize = out.iter().product();
    let unravel = |mut f: usize, shape: &[usize]| -> Vec<usize> {
        let mut idx = vec![0; shape.len()];
        for i in (0..shape.len()).rev() {
            idx[i] = f % shape[i];
            f /= shape[i];
        }
        idx
    };
    for n in 0..xs[0] {
        for o in 0..ws[0] {
            for pf in 0..pn {
                let p = unravel(pf, &out);
                for c in 0..cg {
                    for kf in 0..kn {
                        let k = unravel(kf, &ws[2..]);
                        let mut off = n * xs[1] + (o / og) * cg + c;
                        let mut inside = true;
                        for i in 0..d {
                            let t = (p[i] * g.strides[i] + k[i] * g.rhs_dilation[i]) as i64 - g.padding[i].0;
                            let ld = g.lhs_dilation[i] as i64;
                            if t < 0 || t % ld != 0 || t / ld >= xs[2 + i] as i64 {
                                inside = false;
                                break;
                            }
                            off = off * xs[2 + i] + (t / ld) as usize;
                        }
                        if inside {
                            term(off, (o * cg + c) * kn + kf, (n * ws[0] + o) * pn + pf);
                        }
                    }
                }
            }
        }
    }
}

/// The convolution by its definition.
fn direct(x: &Tensor, w: &Tensor, g: &ConvGeometry, groups: usize) -> Vec<f64> {
    let (xv, wv) = (x.to_vec::<f64>(), w.to_vec::<f64>());
    let size: usize = g.out_shape(&x.shape()[2..], &w.shape()[2..]).iter().product();
    let mut y = vec![0.0; x.shape()[0] * w.shape()[0] * size];
    products(x.shape(), w.shape(), g, groups, |i, k, o| y[o] += xv[i] * wv[k]);
    y
}

/// The input's gradient by its definition: each product sends the
/// cotangent times the tap's weight to the input value it read.
fn direct_input_grad(xs: &[usize], w: &Tensor, ct: &Tensor, g: &ConvGeometry, groups: usize) -> Vec<f64> {
    let (wv, cv) = (w.to_vec::<f64>(), ct.to_vec::<f64>());
    let mut dx = vec![0.0; xs.iter().product()];
    products(xs, w.shape(), g, groups, |i, k, o| dx[i] += cv[o] * wv[k]);
    dx
}

/// The kernel's gradient by its definition: Σ over images and outputs of
/// the cotangent times the input value each tap reads.
fn direct_kernel_grad(x: &Tensor, ct: &Tensor, ws: &[usize], g: &ConvGeometry, groups: usize) -> Vec<f64> {
    let (xv, cv) = (x.to_vec::<f64>(), ct.to_vec::<f64>());
    let mut dw = vec![0.0; ws.iter().product()];
    products(x.shape(), ws, g, groups, |i, k, o| dw[k] += cv[o] * xv[i]);
    dw
}

#[test]
fn conv_equals_the_definition_on_random_geometries() {
    let mut rng = Rng::new(5);
    for case in 0..60 {
        let d = 1 + case % 3;
        let groups = 1 + rng.below(3);
        // From case 40 on, enough channels for the shifted products (at unit strides).
        let wide = case >= 40;
        let cg = if wide { 8 + rng.below(3) } else { 1 + rng.below(3) };
        let (og, n) = (1 + rng.below(2), 1 + rng.below(2));
        let mut xs = vec![n, cg * groups];
        let mut ws = vec![og * groups, cg];
        let mut g = ConvGeometry::unit(d);
        for i in 0..d {
            xs.push(1 + rng.below(if d == 3 { 4 } else { 7 }));
            ws.push(1 + rng.below(3));
            g.rhs_dilation[i] = 1 + rng.below(2);
            if wide && case % 2 == 0 {
                g.padding[i] = (rng.below(3) as i64, rng.below(3) as i64);
            } else {
                g.strides[i] = 1 + rng.below(3);
                g.lhs_dilation[i] = 1 + rng.below(2);
                g.padding[i] = (rng.below(4) as i64 - 1, rng.below(4) as i64 - 1);
            }
        }
        let x = Tensor::randn(&xs, DType::F64, case as u64);
        let w = Tensor::randn(&ws, DType::F64, 100 + case as u64);
        let y = x.conv_general(&w, &g, groups);
        let want = direct(&x, &w, &g, groups);
        assert_eq!(y.size(), want.len(), "case {case}: {xs:?} {ws:?} {g:?}");
        assert_slices_close(&y.to_vec::<f64>(), &want, 1e-12);
        // f32 agrees to its rounding (products summed over at most 3·3·3·3 terms).
        let y32 = x.to_dtype(DType::F32).conv_general(&w.to_dtype(DType::F32), &g, groups);
        assert_close(&y32.to_dtype(DType::F64), &y, 1e-4);
        // The kernel's gradient (its own kernel) against its definition.
        let ct = Tensor::randn(y.shape(), DType::F64, 200 + case as u64);
        let (_, pullback) = vjp(|w: &Tensor| x.conv_general(w, &g, groups), &w);
        assert_slices_close(&pullback(&ct).to_vec::<f64>(), &direct_kernel_grad(&x, &ct, &ws, &g, groups), 1e-11);
        // And the input's (a transposed convolution: col2im when strided or dilated).
        let (_, pullback) = vjp(|x: &Tensor| x.conv_general(&w, &g, groups), &x);
        assert_slices_close(&pullback(&ct).to_vec::<f64>(), &direct_input_grad(&xs, &w, &ct, &g, groups), 1e-11);
    }
}

#[test]
fn columns_of_several_images_per_product_equal_the_definition() {
    // Many small images and enough filters per group (>= 32) that the
    // columns of several images go into one product; strides, cropping
    // and dilation take the 2-d copy's other paths. With more than twice
    // as many filters as channels, the input's gradient is col2im's.
    let geometries = [
        ConvGeometry { padding: vec![(1, 2), (0, 1)], ..ConvGeometry::unit(2) },
        ConvGeometry {
            strides: vec![2, 1],
            padding: vec![(-1, 1), (2, 0)],
            rhs_dilation: vec![1, 2],
            ..ConvGeometry::unit(2)
        },
        ConvGeometry { padding: vec![(1, 1), (1, 1)], ..ConvGeometry::unit(2) },
        // Unit strides with cropping and a dilated window: the input's
        // gradient by col2im (og >= 2 cg), whose lines are clipped per tap.
        ConvGeometry { padding: vec![(-1, 2), (2, -1)], rhs_dilation: vec![2, 1], ..ConvGeometry::unit(2) },
        // And without cropping, through a padded plane the dilated taps reach.
        ConvGeometry { padding: vec![(1, 1), (2, 0)], rhs_dilation: vec![2, 2], ..ConvGeometry::unit(2) },
    ];
    for (i, g) in geometries.iter().enumerate() {
        let (groups, cg, og) = (2, 9, 33);
        let x = Tensor::randn(&[7, groups * cg, 5, 8], DType::F64, 10 + i as u64);
        let w = Tensor::randn(&[groups * og, cg, 3, 2], DType::F64, 20 + i as u64);
        let y = x.conv_general(&w, g, groups);
        assert_slices_close(&y.to_vec::<f64>(), &direct(&x, &w, g, groups), 1e-12);
        let ct = Tensor::randn(y.shape(), DType::F64, 30 + i as u64);
        let (_, pullback) = vjp(|w: &Tensor| x.conv_general(w, g, groups), &w);
        assert_slices_close(&pullback(&ct).to_vec::<f64>(), &direct_kernel_grad(&x, &ct, w.shape(), g, groups), 1e-11);
        let (_, pullback) = vjp(|x: &Tensor| x.conv_general(&w, g, groups), &x);
        let input_grad = pullback(&ct);
        assert_slices_close(&input_grad.to_vec::<f64>(), &direct_input_grad(x.shape(), &w, &ct, g, groups), 1e-11);
        // f32 takes the same paths, with the line lengths the copy knows (8);
        // its input gradient goes through col2im where f64's 8-wide lines
        // are whole vectors for the direct loop.
        let (x32, w32) = (x.to_dtype(DType::F32), w.to_dtype(DType::F32));
        assert_close(&x32.conv_general(&w32, g, groups).to_dtype(DType::F64), &y, 1e-4);
        let (_, pullback) = vjp(|x: &Tensor| x.conv_general(&w32, g, groups), &x32);
        assert_close(&pullback(&ct.to_dtype(DType::F32)).to_dtype(DType::F64), &input_grad, 1e-4);
    }
}

#[test]
fn direct_convolutions_equal_the_definition() {
    // Output lines of whole AVX-512 vectors (16 f32, 8 f64), or 2-d images
    // of whole vectors, take the direct loop on a CPU with AVX-512
    // (elsewhere the products, held to the same definition): blocks of 8 filters with a partial last one (13, 3),
    // padding on one side, a dilated window, groups, 1-d and 3-d windows,
    // and one image big enough that its task splits its vectors. Input
    // gradients with at least 8 channels a group go through the flipped
    // kernel's direct convolution; kernel gradients go direct too.
    struct Case {
        x: Vec<usize>,
        w: Vec<usize>,
        geo: ConvGeometry,
        groups: usize,
    }
    let pad = |p: &[(i64, i64)]| ConvGeometry { padding: p.to_vec(), ..ConvGeometry::unit(p.len()) };
    let cases = [
        Case { x: vec![3, 17, 6, 16], w: vec![13, 17, 3, 3], geo: pad(&[(1, 1), (1, 1)]), groups: 1 },
        Case { x: vec![2, 3, 5, 32], w: vec![8, 3, 3, 3], geo: pad(&[(2, 0), (0, 2)]), groups: 1 },
        Case {
            x: vec![2, 16, 7, 20],
            w: vec![6, 8, 3, 3],
            geo: ConvGeometry { rhs_dilation: vec![1, 2], ..pad(&[(1, 1), (0, 0)]) },
            groups: 2,
        },
        Case { x: vec![1, 16, 32, 32], w: vec![24, 16, 3, 3], geo: pad(&[(1, 1), (1, 1)]), groups: 1 },
        Case { x: vec![4, 9, 48], w: vec![10, 9, 5], geo: pad(&[(2, 2)]), groups: 1 },
        Case { x: vec![2, 8, 3, 4, 16], w: vec![9, 8, 2, 3, 3], geo: pad(&[(0, 1), (1, 1), (1, 1)]), groups: 1 },
        // Lines shorter than a vector, whole images of them: the stacked
        // layout (8×8 in f32; 6×4 and 4×4 in f64, whose 8×8 is whole lines).
        // (Fewer than 16 channels: with more, 8×8 takes vectors across filters.)
        Case { x: vec![3, 12, 8, 8], w: vec![20, 12, 3, 3], geo: pad(&[(1, 1), (1, 1)]), groups: 1 },
        Case { x: vec![2, 18, 6, 4], w: vec![10, 9, 3, 3], geo: pad(&[(1, 1), (1, 1)]), groups: 2 },
        Case {
            x: vec![2, 8, 5, 6],
            w: vec![12, 8, 2, 3],
            geo: ConvGeometry { rhs_dilation: vec![1, 2], ..pad(&[(0, 0), (2, 0)]) },
            groups: 1,
        },
        // Kernel gradients with the channels last (whole vectors of
        // channels a group): two vectors a block, lines of 7 (a tile's
        // tail), 9 filters (a partial block); a 1-d window of 5 taps (a
        // partial block of taps) with tiles along lines of 40.
        Case { x: vec![2, 32, 5, 7], w: vec![9, 32, 3, 3], geo: pad(&[(1, 0), (2, 1)]), groups: 1 },
        Case { x: vec![3, 64, 40], w: vec![6, 32, 5], geo: pad(&[(2, 2)]), groups: 2 },
        // ... one tap a block by four vectors of channels (64 a group in
        // f32, 32 in f64) where a window's side columns read a sixteenth of
        // every line or more from the padding, and those positions are left
        // out: 8×8 with 10 filters, rows padded on one side (the first tap
        // column reads from the third position), a 1-d window, two groups.
        Case { x: vec![2, 64, 8, 8], w: vec![10, 64, 3, 3], geo: pad(&[(1, 1), (1, 1)]), groups: 1 },
        Case { x: vec![3, 64, 5, 6], w: vec![6, 64, 3, 3], geo: pad(&[(1, 1), (2, 0)]), groups: 1 },
        Case { x: vec![2, 64, 6], w: vec![5, 64, 3], geo: pad(&[(1, 1)]), groups: 1 },
        Case { x: vec![2, 128, 4, 4], w: vec![8, 64, 3, 3], geo: pad(&[(1, 1), (1, 1)]), groups: 2 },
        // 3×3 windows padded by 1 over rows of 8, up to 8 rows, with 16
        // channels or more: vectors across filters, forward and (with 16
        // filters or more) the input's gradient, whose filters are the
        // forward's turned. Partial blocks of filters (40 and 20 filters in
        // blocks of 32 for f32, 16 for f64), a one-row image, odd heights.
        Case { x: vec![2, 20, 8, 8], w: vec![40, 20, 3, 3], geo: pad(&[(1, 1), (1, 1)]), groups: 1 },
        Case { x: vec![3, 16, 1, 8], w: vec![17, 16, 3, 3], geo: pad(&[(1, 1), (1, 1)]), groups: 1 },
        Case { x: vec![1, 24, 5, 8], w: vec![48, 24, 3, 3], geo: pad(&[(1, 1), (1, 1)]), groups: 1 },
        // Up to 16×16 with whole blocks of filters (32 f32, 16 f64), rows of
        // two blocks (each leaving out one end's column of taps); f32's
        // input gradient of 16 channels takes the other loops.
        Case { x: vec![2, 16, 16, 16], w: vec![32, 16, 3, 3], geo: pad(&[(1, 1), (1, 1)]), groups: 1 },
        Case { x: vec![2, 32, 12, 16], w: vec![32, 32, 3, 3], geo: pad(&[(1, 1), (1, 1)]), groups: 1 },
    ];
    for (i, case) in cases.iter().enumerate() {
        let seed = 40 + 3 * i as u64;
        for dtype in [DType::F32, DType::F64] {
            // Inputs rounded to the dtype, so the definition sees the same numbers.
            let x = Tensor::randn(&case.x, DType::F64, seed).to_dtype(dtype);
            let w = Tensor::randn(&case.w, DType::F64, seed + 1).to_dtype(dtype);
            let (xd, wd) = (x.to_dtype(DType::F64), w.to_dtype(DType::F64));
            // f32: sums of up to 153 products of unit normals, each rounded
            // to 2^-24 of a partial sum of order 10 at worst.
            let tol = if dtype == DType::F32 { 2e-5 } else { 1e-12 };
            let (g, groups) = (&case.geo, case.groups);
            let (y, pullback) = vjp(|x: &Tensor| x.conv_general(&w, g, groups), &x);
            assert_slices_close(&y.to_dtype(DType::F64).to_vec::<f64>(), &direct(&xd, &wd, g, groups), tol);
            let ct = Tensor::randn(y.shape(), DType::F64, seed + 2).to_dtype(dtype);
            let dx = pullback(&ct).to_dtype(DType::F64).to_vec::<f64>();
            let ctd = ct.to_dtype(DType::F64);
            assert_slices_close(&dx, &direct_input_grad(x.shape(), &wd, &ctd, g, groups), tol);
            let (_, pullback) = vjp(|w: &Tensor| x.conv_general(w, g, groups), &w);
            let dw = pullback(&ct).to_dtype(DType::F64).to_vec::<f64>();
            // f32: sums over up to 1024 positions of products of unit
            // normals, in lanes of 16 and pairwise across them.
            let tol = if dtype == DType::F32 { 1e-4 } else { 1e-11 };
            assert_slices_close(&dw, &direct_kernel_grad(&xd, &ctd, w.shape(), g, groups), tol);
        }
    }
}

#[test]
fn large_convolutions_split_across_threads_give_the_same_result() {
    // Big enough for the threaded path (tasks over images) and the
    // window-major columns of a kernel gradient (output longer than window).
    let x = Tensor::randn(&[4, 8, 24, 24], DType::F64, 1);
    let w = Tensor::randn(&[16, 8, 3, 3], DType::F64, 2);
    let g = ConvGeometry { padding: vec![(1, 1); 2], ..ConvGeometry::unit(2) };
    assert_slices_close(&x.conv_general(&w, &g, 1).to_vec::<f64>(), &direct(&x, &w, &g, 1), 1e-11);
    let (_, pullback) = vjp(|w: &Tensor| x.conv_general(w, &g, 1).square().sum(), &w);
    let gw = pullback(&Tensor::scalar(1.0));
    let eps = 1e-6;
    let mut rng = Rng::new(3);
    for _ in 0..5 {
        let i = rng.below(w.size());
        let mut bump = vec![0.0; w.size()];
        bump[i] = eps;
        let dw = Tensor::from_vec(bump, w.shape());
        let f = |w: &Tensor| x.conv_general(w, &g, 1).square().sum().item();
        let fd = (f(&(&w + &dw)) - f(&(&w - &dw))) / (2.0 * eps);
        let got = gw.to_vec::<f64>()[i];
        assert!((got - fd).abs() < 1e-5 * fd.abs().max(1.0), "{got} vs {fd}");
    }
}

#[test]
fn conv_transpose_is_the_input_gradient_of_conv() {
    let x = Tensor::randn(&[2, 4, 7, 6], DType::F64, 1);
    let w = Tensor::randn(&[6, 2, 3, 3], DType::F64, 2);
    let opts = ConvOptions::new().stride(&[2]).padding(Padding::symmetric(1)).groups(2);
    let (y, pullback) = vjp(|x: &Tensor| x.conv(&w, &opts), &x);
    let ct = Tensor::randn(y.shape(), DType::F64, 3);
    // The same kernel, read by conv_transpose as [C_in = 6, C_out / G = 2, ..];
    // output_padding restores the rows the stride dropped.
    let extra = [(7 + 2 - 3) % 2, (6 + 2 - 3) % 2];
    let got = ct.conv_transpose(&w, &opts, &extra);
    assert_close(&got, &pullback(&ct), 1e-12);
}

#[test]
fn misuse_names_the_op_and_the_shapes() {
    let x = Tensor::zeros(&[1, 3, 5, 5], DType::F32);
    let msg = panic_message(|| {
        x.conv(&Tensor::zeros(&[4, 2, 3, 3], DType::F32), &ConvOptions::new());
    });
    assert!(msg.contains("conv") && msg.contains("[1, 3, 5, 5]") && msg.contains("[4, 2, 3, 3]"), "{msg}");
    let msg = panic_message(|| {
        x.conv(&Tensor::zeros(&[4, 3, 3], DType::F32), &ConvOptions::new());
    });
    assert!(msg.contains("conv") && msg.contains("rank"), "{msg}");
    let msg = panic_message(|| {
        x.max_pool(&[3, 3], &[], &Padding::symmetric(3));
    });
    assert!(msg.contains("window_argmax") && msg.contains("padding"), "{msg}");
    let msg = panic_message(|| {
        x.conv(&Tensor::zeros(&[4, 3, 3, 3], DType::F32), &ConvOptions::new().stride(&[1, 1, 1]));
    });
    assert!(msg.contains("stride has 3 entries for 2 spatial axes"), "{msg}");
    // A zero stride is named by the shape rule, also with "same" padding (which divides by it).
    let msg = panic_message(|| {
        x.conv(&Tensor::zeros(&[4, 3, 3, 3], DType::F32), &ConvOptions::new().stride(&[0]).padding(Padding::Same));
    });
    assert!(msg.contains("conv") && msg.contains("strides and dilations >= 1"), "{msg}");
    let msg = panic_message(|| {
        x.max_pool(&[2, 2], &[], &Padding::Explicit(vec![(-1, 0)]));
    });
    assert!(msg.contains("must be non-negative"), "{msg}");
    let msg = panic_message(|| {
        let x = Tensor::zeros(&[1, 2, 2, 2], DType::F64);
        x.conv_transpose(
            &Tensor::ones(&[2, 1, 2, 2], DType::F64),
            &ConvOptions::new().padding(Padding::symmetric(5)),
            &[],
        );
    });
    assert!(msg.contains("conv_transpose") && msg.contains("crops more than the output"), "{msg}");
    // An empty output (a window larger than the input) has gradients of zeros, not a panic.
    let (x, w) = (Tensor::randn(&[2, 3, 2, 2], DType::F64, 0), Tensor::randn(&[4, 3, 3, 3], DType::F64, 1));
    assert_eq!(x.conv(&w, &ConvOptions::new()).shape(), &[2, 4, 0, 0]);
    let g = grad(|a: &(Tensor, Tensor)| a.0.conv(&a.1, &ConvOptions::new()).sum())(&(x, w));
    assert_eq!((g.0.abs().sum().item(), g.1.abs().sum().item()), (0.0, 0.0));
}

#[test]
fn pooling_and_convolution_vectorise_and_jit() {
    let x = Tensor::randn(&[3, 2, 6, 6], DType::F64, 4);
    let w = Tensor::randn(&[4, 2, 3, 3], DType::F64, 5);
    let f = |a: &(Tensor, Tensor)| {
        a.0.conv(&a.1, &ConvOptions::new().padding(Padding::Same)).relu().max_pool(&[2, 2], &[], &Padding::Valid).sum()
    };
    let g = grad(f);
    let eager = g(&(x.clone(), w.clone()));
    let jitted = jit(grad(f))(&(x.clone(), w.clone()));
    assert_close(&jitted.0, &eager.0, 1e-12);
    assert_close(&jitted.1, &eager.1, 1e-12);
    // Per-example gradients of the kernel: vmap over the batch equals a loop.
    let per = vmap_axes(
        |a: &(Tensor, Tensor)| grad(|w: &Tensor| f(&(a.0.expand_dims(0), w.clone())))(&a.1),
        &[Some(0), None],
        &[0],
    )(&(x.clone(), w.clone()));
    for i in 0..3 {
        let one = grad(|w: &Tensor| f(&(x.slice(0, i, i + 1), w.clone())))(&w);
        assert_close(&per.slice(0, i, i + 1).squeeze(0), &one, 1e-12);
    }
}

#[test]
fn layouts_by_dimension_numbers_match_jax() {
    // x = wave((2,5,6,3), 0.31) (NHWC); w = wave((3,2,3,4), 0.67, cos) (HWIO)
    // lax.conv_general_dilated(x, w, window_strides=(2,1), padding=((1,1),(0,1)), rhs_dilation=(1,2),
    //                          dimension_numbers=("NHWC","HWIO","NHWC"))
    let x = wave(&[2, 5, 6, 3], 0.31, false);
    let w = wave(&[3, 2, 3, 4], 0.67, true);
    let opts = ConvOptions::new().stride(&[2, 1]).padding(Padding::Explicit(vec![(1, 1), (0, 1)])).dilation(&[1, 2]);
    let y = x.conv_with_layout(&w, &opts, ("NHWC", "HWIO", "NHWC"));
    assert_eq!(y.shape(), &[2, 3, 5, 4]);
    let want = [
        -0.4636935623159182,
        -0.3847489835509788,
        -0.13945561614987176,
        0.16613231681692156,
        -0.3661025839490084,
        -0.5087527363442396,
    ];
    assert_slices_close(&y.to_vec::<f64>()[..6], &want, 1e-12);
    assert!((y.sum().item() - 1.1309563393929662).abs() < 1e-11);
    // The same convolution in NCHW, and a layout that names an axis twice.
    let nchw = x.permute(&[0, 3, 1, 2]).conv(&w.permute(&[3, 2, 0, 1]), &opts).permute(&[0, 2, 3, 1]);
    assert_close(&nchw, &y, 1e-14);
    let msg = panic_message(|| {
        x.conv_with_layout(&w, &opts, ("NHHC", "HWIO", "NHWC"));
    });
    assert!(msg.contains("conv_with_layout") && msg.contains("no single 'H'"), "{msg}");
}
