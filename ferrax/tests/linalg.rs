//! `linalg`: factorisations reconstruct their input, solves leave small
//! residuals, derivatives match finite differences in both modes to order
//! 2 on random well-conditioned matrices, `vmap` equals a loop, and a
//! Gaussian process's marginal likelihood and gradient match JAX's.

use ferrax::linalg::{self, Triangular};
use ferrax::numeric::{check_grads_with, Mode};
use ferrax::prelude::*;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, seed)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    (a - b).abs().max().item()
}

/// A well-conditioned symmetric positive definite matrix (stacked when `batch` is nonempty).
fn spd(batch: &[usize], n: usize, seed: u64) -> Tensor {
    let mut shape = batch.to_vec();
    shape.extend([n, n]);
    let b = randn(&shape, seed);
    b.matmul(&b.t()) / n as f64 + Tensor::eye(n, DType::F64)
}

/// A well-conditioned general matrix.
fn general(batch: &[usize], n: usize, seed: u64) -> Tensor {
    let mut shape = batch.to_vec();
    shape.extend([n, n]);
    randn(&shape, seed) * 0.3 + Tensor::eye(n, DType::F64) * 2.0
}

fn both(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) {
    check_grads_with(f, x, 2, &[Mode::Forward, Mode::Reverse], None).unwrap();
}

#[test]
fn factorisations_reconstruct_their_inputs() {
    let a = spd(&[3], 5, 1);
    let l = linalg::cholesky(&a);
    assert!(max_diff(&l.matmul(&l.t()), &a) < 1e-14);
    assert_eq!(l.triu(1).abs().max().item(), 0.0);
    let g = general(&[2], 6, 2);
    let (lu, pivots, perm) = linalg::lu(&g);
    let (lower, upper) = (lu.tril(-1) + Tensor::eye(6, DType::F64), lu.triu(0));
    let pa = perm.one_hot(6, DType::F64).matmul(&g);
    assert!(max_diff(&lower.matmul(&upper), &pa) < 1e-14);
    assert_eq!(pivots.shape(), &[2, 6]);
    let (w, v) = linalg::eigh(&a);
    assert!(max_diff(&a.matmul(&v), &(&v * w.expand_dims(1))) < 1e-13);
    assert!(max_diff(&v.t().matmul(&v), &Tensor::eye(5, DType::F64).broadcast_to(&[3, 5, 5])) < 1e-14);
    let w0 = w.to_vec::<f64>();
    assert!(w0[..5].windows(2).all(|p| p[0] <= p[1]), "ascending");
    // f32 too.
    let a32 = a.to_dtype(DType::F32);
    let l32 = linalg::cholesky(&a32);
    assert!(max_diff(&l32.matmul(&l32.t()), &a32) < 1e-5);
    // Not positive definite: NaN, as in JAX.
    let bad = Tensor::from_vec(vec![1.0, 2.0, 2.0, 1.0], &[2, 2]);
    assert!(linalg::cholesky(&bad).to_vec::<f64>().iter().any(|x| x.is_nan()));
}

#[test]
fn solves_and_determinants() {
    let a = general(&[], 5, 3);
    let b = randn(&[5, 2], 4);
    let x = linalg::solve(&a, &b);
    assert!(max_diff(&a.matmul(&x), &b) < 1e-14);
    let v = randn(&[5], 5);
    assert!(max_diff(&a.matmul(&linalg::solve(&a, &v)), &v) < 1e-14);
    assert!(max_diff(&a.matmul(&linalg::inv(&a)), &Tensor::eye(5, DType::F64)) < 1e-14);
    // Batched a with an unbatched b broadcasts.
    let ab = general(&[3], 5, 6);
    let xb = linalg::solve(&ab, &b);
    assert!(max_diff(&ab.matmul(&xb), &b.broadcast_to(&[3, 5, 2])) < 1e-14);
    // Determinants against the 2x2 formula and the product of eigenvalues.
    let m = Tensor::from_vec(vec![0.0, 2.0, 3.0, 1.0], &[2, 2]);
    assert!((linalg::det(&m).item() - (0.0 * 1.0 - 2.0 * 3.0)).abs() < 1e-15);
    let (sign, logdet) = linalg::slogdet(&m);
    assert_eq!(sign.item(), -1.0);
    assert!((logdet.item() - 6f64.ln()).abs() < 1e-15);
    let s = spd(&[], 4, 7);
    let (w, _) = linalg::eigh(&s);
    assert!((linalg::det(&s).item() - w.prod().item()).abs() < 1e-12);
    // Cholesky solve.
    let l = linalg::cholesky(&s);
    let rhs = randn(&[4], 8);
    assert!(max_diff(&s.matmul(&linalg::cho_solve(&l, &rhs)), &rhs) < 1e-14);
    // Powers.
    assert!(max_diff(&linalg::matrix_power(&a, 3), &a.matmul(&a).matmul(&a)) < 1e-13);
    assert!(max_diff(&linalg::matrix_power(&a, -2).matmul(&a.matmul(&a)), &Tensor::eye(5, DType::F64)) < 1e-13);
    assert_eq!(linalg::matrix_power(&a, 0).to_vec::<f64>(), Tensor::eye(5, DType::F64).to_vec::<f64>());
}

#[test]
fn every_triangular_solve_variant() {
    let a = general(&[2], 4, 9);
    for left_side in [true, false] {
        for lower in [true, false] {
            for transpose_a in [true, false] {
                for unit_diagonal in [true, false] {
                    let how = Triangular { left_side, lower, transpose_a, unit_diagonal };
                    let b = randn(&[2, 4, 4], 10);
                    let x = linalg::triangular_solve(&a, &b, how);
                    let mut t = if lower { a.tril(0) } else { a.triu(0) };
                    if unit_diagonal {
                        t = if lower { t.tril(-1) } else { t.triu(1) } + Tensor::eye(4, DType::F64);
                    }
                    let op = if transpose_a { t.t() } else { t };
                    let back = if left_side { op.matmul(&x) } else { x.matmul(&op) };
                    assert!(max_diff(&back, &b) < 1e-13, "{how:?}");
                    check_grads_with(
                        |p: &(Tensor, Tensor)| linalg::triangular_solve(&p.0, &p.1, how),
                        &(a.clone(), b.clone()),
                        2,
                        &[Mode::Forward, Mode::Reverse],
                        None,
                    )
                    .unwrap();
                }
            }
        }
    }
}

#[test]
fn derivatives_match_finite_differences() {
    let s = spd(&[], 4, 11);
    both(linalg::cholesky, &s);
    let a = general(&[], 4, 12);
    let b = randn(&[4, 2], 13);
    both(|a: &Tensor| linalg::solve(a, &b), &a);
    both(|b: &Tensor| linalg::solve(&a, b), &b);
    both(linalg::inv, &a);
    both(linalg::det, &a);
    both(|a: &Tensor| linalg::slogdet(a).1, &a);
    both(|a: &Tensor| linalg::lu(a).0, &a);
    both(|s: &Tensor| linalg::cho_solve(&linalg::cholesky(s), &b), &s);
    both(|a: &Tensor| linalg::matrix_power(a, 3), &a);
    // eigh: the eigenvalues, and a function of the eigenvectors that does not
    // depend on their signs.
    both(|s: &Tensor| linalg::eigh(s).0, &s);
    both(
        |s: &Tensor| {
            let (w, v) = linalg::eigh(s);
            (&v * w.exp().expand_dims(0)).matmul(&v.t())
        },
        &s,
    );
    // A batched input.
    both(|a: &Tensor| linalg::solve(a, &b), &general(&[2], 4, 14));
}

#[test]
fn vmap_equals_a_loop_and_jit_equals_eager() {
    let a = general(&[3], 4, 15);
    let b = randn(&[3, 4], 16);
    let xs = vmap(|p: &(Tensor, Tensor)| linalg::solve(&p.0, &p.1))(&(a.clone(), b.clone()));
    let dets = vmap(linalg::det)(&a);
    let chols = vmap(linalg::cholesky)(&(a.matmul(&a.t())));
    for i in 0..3 {
        let (ai, bi) = (a.slice(0, i, i + 1).squeeze(0), b.slice(0, i, i + 1).squeeze(0));
        assert!(max_diff(&xs.slice(0, i, i + 1).squeeze(0), &linalg::solve(&ai, &bi)) < 1e-15);
        assert!((dets.slice(0, i, i + 1).item() - linalg::det(&ai).item()).abs() < 1e-14);
        let c = linalg::cholesky(&ai.matmul(&ai.t()));
        assert!(max_diff(&chols.slice(0, i, i + 1).squeeze(0), &c) < 1e-15);
    }
    // Per-example gradients, and jit.
    let g = vmap(grad(|a: &Tensor| linalg::slogdet(a).1))(&a);
    for i in 0..3 {
        let ai = a.slice(0, i, i + 1).squeeze(0);
        // d ln|det A| / dA = A⁻ᵀ.
        assert!(max_diff(&g.slice(0, i, i + 1).squeeze(0), &linalg::inv(&ai).t()) < 1e-13);
    }
    let f = |a: &Tensor| linalg::eigh(&a.matmul(&a.t())).0.sum() + linalg::det(a).sum();
    assert_eq!(jit(grad(f))(&a).to_vec::<f64>(), grad(f)(&a).to_vec::<f64>());
}

#[test]
fn misuse_is_named() {
    let msg =
        |r: std::thread::Result<()>| r.err().and_then(|p| p.downcast_ref::<String>().cloned()).unwrap_or_default();
    let m = msg(std::panic::catch_unwind(|| {
        linalg::cholesky(&Tensor::zeros(&[2, 3], DType::F64));
    }));
    assert!(m.contains("cholesky") && m.contains("square"), "{m}");
    let m = msg(std::panic::catch_unwind(|| {
        linalg::solve(&Tensor::eye(3, DType::F64), &Tensor::zeros(&[4], DType::F64));
    }));
    assert!(m.contains("solve") && m.contains("3 columns"), "{m}");
    let m = msg(std::panic::catch_unwind(|| {
        linalg::det(&Tensor::eye(3, DType::I64));
    }));
    assert!(m.contains("det") && m.contains("float"), "{m}");
}

/// Sizes where the copies between row- and column-major orders go by
/// several tiles with ragged edges (130), with rows a power of two apart
/// (256), and split across threads (400); f32 at 512.
#[test]
fn large_factorisations_reconstruct_their_inputs() {
    for n in [130, 256, 400] {
        // Each entry of a product sums n terms of about 1: n ulps of slack.
        let tol = n as f64 * 1e-15;
        let a = spd(&[], n, 40 + n as u64);
        let l = linalg::cholesky(&a);
        assert!(max_diff(&l.matmul(&l.t()), &a) < tol, "cholesky {n}");
        assert_eq!(l.triu(1).abs().max().item(), 0.0, "cholesky {n}");
        // Eigenvalues in the disc of radius 1 about 2 (the circular law).
        let g = randn(&[n, n], 41 + n as u64) / (n as f64).sqrt() + Tensor::eye(n, DType::F64) * 2.0;
        let (lu, _, perm) = linalg::lu(&g);
        let (lower, upper) = (lu.tril(-1) + Tensor::eye(n, DType::F64), lu.triu(0));
        let pa = perm.one_hot(n, DType::F64).matmul(&g);
        assert!(max_diff(&lower.matmul(&upper), &pa) < tol, "lu {n}");
        let b = randn(&[n, 3], 42);
        let x = linalg::solve(&g, &b);
        assert!(max_diff(&g.matmul(&x), &b) < tol, "solve {n}");
        if n == 130 {
            let (w, v) = linalg::eigh(&a);
            assert!(max_diff(&a.matmul(&v), &(&v * w.expand_dims(0))) < 10.0 * tol, "eigh {n}");
            let (u, s, vt) = linalg::svd(&g, false);
            assert!(max_diff(&(&u * s.expand_dims(0)).matmul(&vt), &g) < 10.0 * tol, "svd {n}");
        }
    }
    let a = spd(&[], 512, 43).to_dtype(DType::F32);
    let l = linalg::cholesky(&a);
    assert!(max_diff(&l.matmul(&l.t()), &a) < 512.0 * 1e-6, "cholesky f32");
}

/// SVDs through the library's divide and conquer (leaves of 32 rows): tall,
/// wide and square, random and with singular values in clusters of three
/// equal ones (which its deflation takes). `U Σ Vᵀ` reproduces `A` to
/// `10 n ε σ₁` and the factors are orthonormal to `10 n ε`, the backward
/// errors of a Householder bidiagonalisation and of the solver, with a
/// factor 10 for the constant; the values are descending and nonnegative.
#[test]
fn larger_svds_are_factorisations() {
    let clustered = |n: usize| {
        let (q1, _) = linalg::qr(&randn(&[n, n], 70), false);
        let (q2, _) = linalg::qr(&randn(&[n, n], 71), false);
        let s: Vec<f64> = (0..n).map(|i| (i / 3) as f64 + 1.0).collect();
        (&q1 * Tensor::from_vec(s, &[n]).expand_dims(0)).matmul(&q2.t())
    };
    let cases = [
        randn(&[100, 100], 72),
        randn(&[130, 70], 73),
        randn(&[70, 130], 74),
        randn(&[300, 300], 75),
        clustered(90),
        clustered(200),
    ];
    for a in &cases {
        let (m, n) = (a.shape()[0], a.shape()[1]);
        let k = m.min(n);
        let (u, s, vt) = linalg::svd(a, false);
        let sv = s.to_vec::<f64>();
        let eps = m.max(n) as f64 * f64::EPSILON;
        assert!(sv.windows(2).all(|w| w[0] >= w[1]) && sv[k - 1] >= 0.0, "{m}×{n}: values not descending");
        let back = (&u * s.expand_dims(0)).matmul(&vt);
        assert!(max_diff(&back, a) < 10.0 * eps * sv[0], "{m}×{n}: U Σ Vᵀ off by {:e}", max_diff(&back, a));
        let eye = Tensor::eye(k, DType::F64);
        assert!(max_diff(&u.t().matmul(&u), &eye) < 10.0 * eps, "{m}×{n}: Uᵀ U");
        assert!(max_diff(&vt.matmul(&vt.t()), &eye) < 10.0 * eps, "{m}×{n}: V Vᵀ");
    }
}

/// Empty matrices factor as in JAX: `Q` and the complete SVD's factors are
/// identities, the reduced ones empty, with no singular values; `pinv` and
/// the gradients through both have the transposed and the input's shapes.
#[test]
fn empty_matrices_factor_as_in_jax() {
    for (lead, m, n) in [(vec![], 3, 0), (vec![], 0, 3), (vec![], 0, 0), (vec![2], 4, 0), (vec![0], 3, 3)] {
        let shape = [lead.clone(), vec![m, n]].concat();
        let with = |r: usize, c: usize| [lead.clone(), vec![r, c]].concat();
        let eye = |k: usize| Tensor::eye(k, DType::F64).broadcast_to(&with(k, k));
        let a = Tensor::zeros(&shape, DType::F64);
        let k = m.min(n);
        let (q, r) = linalg::qr(&a, false);
        assert_eq!((q.shape(), r.shape()), (&with(m, k)[..], &with(k, n)[..]), "{shape:?}");
        let (q, r) = linalg::qr(&a, true);
        assert_eq!(r.shape(), &with(m, n)[..]);
        if k == 0 {
            assert_eq!(q.to_vec::<f64>(), eye(m).to_vec::<f64>(), "{shape:?}: complete Q");
        }
        let (u, s, vt) = linalg::svd(&a, false);
        assert_eq!(
            (u.shape(), s.shape(), vt.shape()),
            (&with(m, k)[..], &[lead.clone(), vec![k]].concat()[..], &with(k, n)[..])
        );
        let (u, _, vt) = linalg::svd(&a, true);
        assert_eq!(
            (u.to_vec::<f64>(), vt.to_vec::<f64>()),
            (eye(m).to_vec::<f64>(), eye(n).to_vec::<f64>()),
            "{shape:?}"
        );
        assert_eq!(linalg::pinv(&a, None).shape(), &with(n, m)[..]);
        if lead.is_empty() {
            assert_eq!(linalg::lstsq(&a, &Tensor::ones(&[m], DType::F64), None).shape(), &[n]);
        }
        let g = grad(|a: &Tensor| linalg::svd(a, false).1.sum() + linalg::qr(a, false).1.sum())(&a);
        assert_eq!(g.shape(), &shape[..]);
    }
    let f32s = linalg::svd(&Tensor::zeros(&[3, 0], DType::F32), true).0;
    assert_eq!((f32s.dtype(), f32s.to_vec::<f32>()), (DType::F32, Tensor::eye(3, DType::F32).to_vec::<f32>()));
}

/// SVDs of up to 24 rows and columns are one-sided Jacobi's, larger ones
/// the library's: a matrix padded with zero rows or columns past 24 has
/// the same singular values and, padded the same way, the same
/// `uᵢ vᵢᵀ` (free of the sign each factor may take). The singular values
/// agree to `n ε σ₁` (each side's backward error); `uᵢ vᵢᵀ` to
/// `n ε σ₁ / gapᵢ`, the perturbation bound of a singular vector whose
/// value is `gapᵢ` from the others, times 100.
#[test]
fn small_svds_agree_with_the_library() {
    for (m, n, seed) in [(24, 24, 60), (20, 5, 61), (5, 20, 62), (2, 2, 63), (13, 13, 64)] {
        let a = randn(&[m, n], seed);
        let (rows, cols) = if m >= n { (25 - m, 0) } else { (0, 25 - n) };
        let padded = a.pad(&[0, 0], &[rows, cols]);
        let (u, s, vt) = linalg::svd(&a, false);
        let (pu, ps, pvt) = linalg::svd(&padded, false);
        let (sv, psv) = (s.to_vec::<f64>(), ps.to_vec::<f64>());
        let eps = m.max(n) as f64 * f64::EPSILON * sv[0];
        assert!(sv.iter().zip(&psv).all(|(x, y)| (x - y).abs() < eps), "{m}×{n}: {sv:?} against {psv:?}");
        let (pu, pvt) = (pu.slice(0, 0, m), pvt.slice(1, 0, n));
        for i in 0..m.min(n) {
            let gap = (0..m.min(n)).filter(|&j| j != i).map(|j| (sv[i] - sv[j]).abs()).fold(f64::INFINITY, f64::min);
            let outer = |u: &Tensor, vt: &Tensor| u.slice(1, i, i + 1).matmul(&vt.slice(0, i, i + 1));
            let diff = max_diff(&outer(&u, &vt), &outer(&pu, &pvt));
            assert!(diff < 100.0 * eps / gap.min(sv[0]), "{m}×{n}: u{i} v{i}ᵀ differs by {diff:e} (gap {gap:e})");
        }
    }
    // A column too small to square is left to the library: σ₃ is 10⁻²⁰⁰ to a few ulps, not 0.
    let graded = Tensor::from_vec(vec![1.0, 0.0, 0.0, 0.0, 1e-200, 0.0, 0.0, 0.0, 3.0], &[3, 3]);
    let s = linalg::svd(&graded, false).1.to_vec::<f64>();
    assert!(s[..2] == [3.0, 1.0] && (s[2] / 1e-200 - 1.0).abs() < 4.0 * f64::EPSILON, "{s:?}");
}

/// eigh above 32 rows is ferrax's divide and conquer between a reduction
/// to tridiagonal form (faer's below 256 rows, ferrax's blocked one from
/// there) and faer's reflectors. Against faer's whole eigendecomposition
/// (which solves the tridiagonal problem its own way): the eigenvalues
/// agree to `n ε ‖A‖` (each side's backward error is a small multiple of
/// `ε ‖A‖`), and `AV = VΛ`, `VᵀV = I` hold to `n ε ‖A‖` and `n ε` — on
/// random matrices of 33 (one merge), 100, 300 and 760 rows (the blocked
/// reduction's `A v` split over threads from 724), in f32 too, and on one
/// whose eigenvalues are 1, 2 and 3 forty times each
/// (most of each merge deflates, by rotations of vectors from both halves).
/// A NaN or infinity gives NaNs; derivatives match finite differences in
/// both modes.
#[test]
fn divide_and_conquer_eighs_agree_with_faer() {
    fn compare(a: &Tensor, eps: f64) {
        let n = a.shape()[0];
        let (w, v) = linalg::eigh(a);
        let x = a.to_dtype(DType::F64).to_vec::<f64>();
        let theirs = faer::Mat::from_fn(n, n, |i, j| x[i * n + j]).self_adjoint_eigenvalues(faer::Side::Lower).unwrap();
        let ours = w.to_dtype(DType::F64).to_vec::<f64>();
        let norm = theirs.iter().fold(0.0f64, |m, l| m.max(l.abs()));
        let bound = n as f64 * eps * norm;
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!((a - b).abs() <= bound, "n = {n}: λ{i} {a} against faer's {b} (bound {bound:e})");
        }
        assert!(max_diff(&a.matmul(&v), &(&v * w.expand_dims(0))) <= bound, "n = {n}: AV − VΛ");
        let eye = Tensor::eye(n, a.dtype());
        assert!(max_diff(&v.t().matmul(&v), &eye) <= n as f64 * eps, "n = {n}: VᵀV − I");
    }
    for (n, seed) in [(33, 90), (100, 91), (300, 92), (760, 96)] {
        let g = randn(&[n, n], seed);
        let a = (&g + g.t()) / 2.0;
        compare(&a, f64::EPSILON);
        if n == 100 || n == 300 {
            compare(&a.to_dtype(DType::F32), f32::EPSILON as f64);
        }
    }
    let (q, _) = linalg::qr(&randn(&[120, 120], 93), false);
    let lambda: Vec<f64> = (0..120).map(|i| (i % 3) as f64 + 1.0).collect();
    let a = (&q * Tensor::from_vec(lambda, &[120]).expand_dims(0)).matmul(&q.t());
    compare(&((&a + a.t()) / 2.0), f64::EPSILON);
    // A NaN or an infinity in the matrix gives NaNs, as faer's failure
    // does, after either reduction.
    for n in [40, 300] {
        let mut x = randn(&[n, n], 95).to_vec::<f64>();
        for bad in [f64::NAN, f64::INFINITY] {
            x[n + 1] = bad;
            let (w, v) = linalg::eigh(&Tensor::from_vec(x.clone(), &[n, n]));
            assert!(w.to_vec::<f64>().iter().chain(&v.to_vec::<f64>()).all(|x| x.is_nan()), "{n} rows, {bad}");
        }
    }
    let g = randn(&[34, 34], 94);
    let s = (&g + g.t()) / 2.0;
    both(|s: &Tensor| linalg::eigh(s).0, &s);
    both(
        |s: &Tensor| {
            let (w, v) = linalg::eigh(s);
            (&v * w.tanh().expand_dims(0)).matmul(&v.t())
        },
        &s,
    );
}

/// eigh of up to 6 rows is two-sided Jacobi's, larger a reduction to
/// tridiagonal form and its QL iteration or divide and conquer: a
/// symmetric `n × n` matrix bordered to 7 × 7 by rows and columns that are
/// zero but for diagonals 100, 101, … has its eigenvalues and those, and
/// its eigenvectors with zeros appended. The eigenvalues agree to
/// `7 ε ‖B‖` (the bordered matrix's backward error), each `v vᵀ` to that
/// over the eigenvalue's gap, times 100.
#[test]
fn small_eighs_agree_with_the_library() {
    for (n, seed) in [(6, 70), (3, 71), (2, 72)] {
        let g = randn(&[n, n], seed);
        let a = &g + g.t();
        let mut big = a.pad(&[0, 0], &[7 - n, 7 - n]).to_vec::<f64>();
        for i in n..7 {
            big[i * 8] = 100.0 + (i - n) as f64;
        }
        let bordered = Tensor::from_vec(big, &[7, 7]);
        let (w, v) = linalg::eigh(&a);
        let (bw, bv) = linalg::eigh(&bordered);
        let (wv, bwv) = (w.to_vec::<f64>(), bw.to_vec::<f64>());
        // The bound of the larger decomposition: 7 ε ‖B‖.
        let norm = bwv.iter().fold(0f64, |m, x| m.max(x.abs()));
        let eps = 7.0 * f64::EPSILON * norm;
        let border = (n..7).all(|i| (bwv[i] - (100 + i - n) as f64).abs() < eps);
        assert!(wv.iter().zip(&bwv).all(|(x, y)| (x - y).abs() < eps) && border, "{wv:?} {bwv:?}");
        let bv = bv.slice(0, 0, n).slice(1, 0, n);
        for i in 0..n {
            let gap = (0..n).filter(|&j| j != i).map(|j| (wv[i] - wv[j]).abs()).fold(f64::INFINITY, f64::min);
            let outer = |v: &Tensor| v.slice(1, i, i + 1).matmul(&v.slice(1, i, i + 1).t());
            let diff = max_diff(&outer(&v), &outer(&bv));
            assert!(diff < 100.0 * eps / gap.min(norm), "{n}: v{i} v{i}ᵀ differs by {diff:e} (gap {gap:e})");
        }
    }
}

/// Sizes past faer's block of reflectors: several blocks, tall and wide.
#[test]
fn qr_of_blocked_matrices() {
    for (m, n) in [(150, 70), (70, 150), (9, 1), (1, 9)] {
        let a = randn(&[m, n], 31 + m as u64);
        for full in [false, true] {
            let (q, r) = linalg::qr(&a, full);
            let k = if full { m } else { m.min(n) };
            assert_eq!((q.shape(), r.shape()), (&[m, k][..], &[k, n][..]));
            assert!(max_diff(&q.matmul(&r), &a) < 1e-12, "{m}x{n} full {full}");
            assert!(max_diff(&q.t().matmul(&q), &Tensor::eye(k, DType::F64)) < 1e-13, "{m}x{n} full {full}");
            assert_eq!(r.tril(-1).abs().max().item(), 0.0);
        }
    }
}

/// A NaN or infinity in column `c` makes every column of `Q` from `c` on
/// NaN, and `R` on and above the diagonal from row `c` and in column `c`
/// (an infinity can stay infinite in `R`'s column `c`), as LAPACK's
/// unblocked `geqr2` gives: numpy's QR of 40² with a NaN at (1, 1) has 1560
/// NaNs in `Q` and 781 in `R`. The columns before `c` stay finite. Both the
/// unblocked sizes and faer's.
#[test]
fn qr_carries_a_nan_into_the_later_columns() {
    for (m, n) in [(20, 20), (40, 40), (300, 300), (50, 30), (30, 50)] {
        let mut x = randn(&[m, n], 96 + m as u64).to_vec::<f64>();
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            x[n + 1] = bad;
            let (q, r) = linalg::qr(&Tensor::from_vec(x.clone(), &[m, n]), false);
            let (q, r, k) = (q.to_vec::<f64>(), r.to_vec::<f64>(), m.min(n));
            for i in 0..m {
                for j in 0..k {
                    assert_eq!(!q[i * k + j].is_finite(), j >= 1, "{m}x{n} {bad}: Q at ({i}, {j})");
                }
            }
            for i in 0..k {
                for j in i..n {
                    let nan = j == 1 || i >= 1;
                    assert_eq!(!r[i * n + j].is_finite(), nan, "{m}x{n} {bad}: R at ({i}, {j})");
                }
            }
        }
    }
}

#[test]
fn qr_svd_pinv_and_lstsq() {
    for (m, n) in [(5, 3), (4, 4), (3, 5)] {
        let a = randn(&[2, m, n], 20 + m as u64);
        let (q, r) = linalg::qr(&a, false);
        let k = m.min(n);
        assert_eq!((q.shape(), r.shape()), (&[2, m, k][..], &[2, k, n][..]));
        assert!(max_diff(&q.matmul(&r), &a) < 1e-14);
        assert!(max_diff(&q.t().matmul(&q), &Tensor::eye(k, DType::F64).broadcast_to(&[2, k, k])) < 1e-14);
        assert_eq!(r.tril(-1).abs().max().item(), 0.0);
        let (qf, rf) = linalg::qr(&a, true);
        assert_eq!(qf.shape(), &[2, m, m]);
        assert!(max_diff(&qf.matmul(&rf), &a) < 1e-14);
        let (u, s, vt) = linalg::svd(&a, false);
        assert!(max_diff(&(&u * s.expand_dims(1)).matmul(&vt), &a) < 1e-13);
        let sv = s.to_vec::<f64>();
        assert!(sv[..k].windows(2).all(|p| p[0] >= p[1]), "descending");
        let (uf, _, vtf) = linalg::svd(&a, true);
        assert_eq!((uf.shape(), vtf.shape()), (&[2, m, m][..], &[2, n, n][..]));
        // Penrose's conditions.
        let p = linalg::pinv(&a, None);
        assert!(max_diff(&a.matmul(&p).matmul(&a), &a) < 1e-13);
        assert!(max_diff(&p.matmul(&a).matmul(&p), &p) < 1e-13);
        // Derivatives: of the factors where JAX defines them, and of sign-free functions of U and V.
        let one = a.slice(0, 0, 1).squeeze(0);
        if m >= n {
            check_grads_with(|a: &Tensor| linalg::qr(a, false), &one, 2, &[Mode::Forward, Mode::Reverse], None)
                .unwrap();
        }
        both(|a: &Tensor| linalg::svd(a, false).1, &one);
        both(
            |a: &Tensor| {
                let (u, s, vt) = linalg::svd(a, false);
                (&u * s.sqrt().expand_dims(0)).matmul(&vt)
            },
            &one,
        );
        both(|a: &Tensor| linalg::pinv(a, None), &one);
    }
    // Least squares: the normal equations hold; an exact system is solved.
    let a = randn(&[6, 3], 30);
    let b = randn(&[6], 31);
    let x = linalg::lstsq(&a, &b, None);
    assert!(a.t().matmul(&(a.matmul(&x) - &b)).abs().max().item() < 1e-13);
    let x_true = randn(&[3], 32);
    assert!(max_diff(&linalg::lstsq(&a, &a.matmul(&x_true), None), &x_true) < 1e-13);
    both(|b: &Tensor| linalg::lstsq(&a, b, None), &b);
}

/// A Gaussian process's negative log marginal likelihood on 10 points,
/// with a squared-exponential kernel, as a function of (ln σ, ln ℓ, ln noise).
fn gp_nll(theta: &Tensor) -> Tensor {
    let x = Tensor::linspace(0.0, 5.0, 10, DType::F64);
    let y = x.sin() + (&x * 3.0).cos() * 0.1;
    let p = theta.exp();
    let (s, l, noise) = (p.slice(0, 0, 1), p.slice(0, 1, 2), p.slice(0, 2, 3));
    let d = x.expand_dims(1) - x.expand_dims(0);
    let k = s.square() * (-d.square() / (l.square() * 2.0)).exp() + noise.square() * Tensor::eye(10, DType::F64);
    let chol = linalg::cholesky(&k);
    let alpha = linalg::triangular_solve(&chol, &y.expand_dims(1), Triangular::default());
    alpha.square().sum() * 0.5 + chol.diagonal(0).ln().sum() + 5.0 * (2.0 * std::f64::consts::PI).ln()
}

#[test]
fn gaussian_process_likelihood_matches_jax() {
    // From JAX 0.10.2 (f64): jax.value_and_grad and jax.hessian of the same
    // function with jnp.linalg.cholesky and jax.scipy.linalg.solve_triangular.
    let theta = Tensor::from_vec(vec![0.1, -0.2, -1.0], &[3]);
    let (v, g) = value_and_grad(gp_nll)(&theta);
    assert!((v.item() - 7.968544228678894).abs() < 1e-12, "{}", v.item());
    let want = [4.34384174067857, -4.300557986147339, 3.8512802310820224];
    for (got, want) in g.to_vec::<f64>().iter().zip(want) {
        assert!((got - want).abs() < 1e-10, "{got} vs {want}");
    }
    let h = hessian(gp_nll)(&theta);
    let want = [
        4.908862832716322,
        -3.6559366246407214,
        -1.6133978569061571,
        -3.6559366246407246,
        3.2138966344941107,
        3.893465286727028,
        -1.613397856906156,
        3.8934652867270283,
        1.9276889375748132,
    ];
    for (got, want) in h.to_vec::<f64>().iter().zip(want) {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
}

#[test]
fn gauss_newton_fit_differentiates_by_its_data() {
    // y = a·exp(−b·t) + c, fitted by damped Gauss–Newton in a fori_loop; the
    // fit's Jacobian in the data by reverse mode through the loop and the
    // solves equals the implicit-function theorem's (∇²_θ L)⁻¹ Jᵀ.
    let t = Tensor::linspace(0.0, 3.0, 12, DType::F64);
    let model = |th: &Tensor| th.slice(0, 0, 1) * (-(th.slice(0, 1, 2) * &t)).exp() + th.slice(0, 2, 3);
    let fit = |y: &Tensor| {
        fori_loop(
            0,
            25,
            |_, th: &Tensor| {
                let j = jacfwd(|th: &Tensor| model(th))(th);
                let normal = j.t().matmul(&j) + Tensor::eye(3, DType::F64) * 1e-3;
                th - linalg::solve(&normal, &j.t().matmul(&(model(th) - y)))
            },
            &Tensor::from_vec(vec![1.0, 1.0, 0.0], &[3]),
        )
    };
    let y = model(&Tensor::from_vec(vec![2.0, 0.8, 0.3], &[3])) + randn(&[12], 40) * 0.02;
    let theta = fit(&y);
    let through = jacrev(fit)(&y);
    let h = hessian(|th: &Tensor| (model(th) - &y).square().sum() * 0.5)(&theta);
    let j = jacfwd(|th: &Tensor| model(th))(&theta);
    assert!(max_diff(&through, &linalg::solve(&h, &j.t())) < 1e-10);
}

#[test]
fn singular_value_norms() {
    // diag(3, -2) rotated: singular values 3 and 2.
    let c = (0.3f64).cos();
    let s = (0.3f64).sin();
    let rot = Tensor::from_vec(vec![c, -s, s, c], &[2, 2]);
    let a = rot.matmul(&Tensor::from_vec(vec![3.0, 0.0, 0.0, -2.0], &[2, 2])).matmul(&rot.t());
    let close = |x: Tensor, want: f64| assert!((x.item() - want).abs() < 1e-14, "{} vs {want}", x.item());
    close(a.matrix_norm(MatrixNorm::Spectral, false), 3.0);
    close(a.matrix_norm(MatrixNorm::MinSingular, false), 2.0);
    close(a.matrix_norm(MatrixNorm::Nuclear, false), 5.0);
    // The spectral norm's gradient is u₁ v₁ᵀ; derivatives to order 2 on a generic matrix.
    let m = randn(&[4, 3], 50);
    let (u, _, vt) = linalg::svd(&m, false);
    let g = grad(|m: &Tensor| m.matrix_norm(MatrixNorm::Spectral, false))(&m);
    assert!(max_diff(&g, &u.slice(1, 0, 1).matmul(&vt.slice(0, 0, 1))) < 1e-14);
    for ord in [MatrixNorm::Spectral, MatrixNorm::MinSingular, MatrixNorm::Nuclear] {
        both(|m: &Tensor| m.matrix_norm(ord, false), &m);
    }
    assert_eq!(randn(&[2, 3, 4], 51).matrix_norm(MatrixNorm::Nuclear, true).shape(), &[2, 1, 1]);
}

/// A batch of many small matrices is split over the threads by QR, eigh
/// and SVD; each matrix's factors are those of the matrix alone, bit for
/// bit, in order.
#[test]
fn batches_of_small_matrices_match_one_at_a_time() {
    // 300 matrices of 8 rows: 300 · 8³ is past the threshold for splitting.
    let b = 300;
    let (a, g, wide) = (spd(&[b], 8, 21), general(&[b], 8, 22), randn(&[b, 5, 8], 24));
    type Op<'a> = (&'a str, &'a Tensor, &'a dyn Fn(&Tensor) -> Vec<Tensor>);
    let ops: [Op; 4] = [
        ("eigh", &a, &|x| {
            let (w, v) = linalg::eigh(x);
            vec![w, v]
        }),
        ("qr", &wide, &|x| {
            let (q, r) = linalg::qr(x, true);
            vec![q, r]
        }),
        ("svd", &wide, &|x| {
            let (u, s, vt) = linalg::svd(x, false);
            vec![u, s, vt]
        }),
        ("svd_full", &g, &|x| {
            let (u, s, vt) = linalg::svd(x, true);
            vec![u, s, vt]
        }),
    ];
    for (name, x, f) in ops {
        let all: Vec<Vec<f64>> = f(x).iter().map(|t| t.to_vec::<f64>()).collect();
        let xs = x.to_vec::<f64>();
        let per = xs.len() / b;
        for i in 0..b {
            let alone = f(&Tensor::from_vec(xs[i * per..][..per].to_vec(), &x.shape()[1..]));
            for (k, (whole, one)) in all.iter().zip(alone).enumerate() {
                let one = one.to_vec::<f64>();
                let mine = &whole[i * one.len()..][..one.len()];
                let same = mine.iter().zip(&one).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same, "{name}: output {k} of matrix {i} differs from the matrix alone");
            }
        }
    }
}
