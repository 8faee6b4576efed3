use super::*;
use crate::array::Rng;

/// Decomposes the tridiagonal `(d, e)` in `T` and checks, in f64, that the
/// eigenvalues ascend, `T Q = Q Λ` to `bound · ‖T‖` and `QᵀQ = I` to
/// `bound`, where `bound` is `n ε` times `slack`. Returns the eigenvalues.
fn check<T: Field + Sqrt>(d: &[f64], e: &[f64], slack: f64) -> Vec<f64> {
    let n = d.len();
    let mut w: Vec<T> = d.iter().map(|&x| T::from_f64(x)).collect();
    let sub: Vec<T> = e.iter().map(|&x| T::from_f64(x)).collect();
    let mut q = vec![<T as Num>::ZERO; n * n];
    assert!(tridiagonal_eigh(&mut w, &sub, &mut q), "n = {n}: not converged");
    // The matrix as the solver saw it, rounded to T.
    let (d, e): (Vec<f64>, Vec<f64>) =
        (d.iter().map(|&x| T::from_f64(x).to_f64()).collect(), e.iter().map(|&x| T::from_f64(x).to_f64()).collect());
    let w: Vec<f64> = w.iter().map(|x| x.to_f64()).collect();
    let q: Vec<f64> = q.iter().map(|x| x.to_f64()).collect();
    let norm = d.iter().chain(&e).fold(0.0f64, |a, &x| a.max(x.abs())) * 3.0;
    let bound = slack * (n.max(1) as f64) * T::EPS.to_f64();
    for i in 1..n {
        assert!(w[i - 1] <= w[i], "n = {n}: eigenvalues not ascending at {i}: {} > {}", w[i - 1], w[i]);
    }
    for c in 0..n {
        let v = &q[c * n..(c + 1) * n];
        for r in 0..n {
            let mut tv = d[r] * v[r];
            if r > 0 {
                tv += e[r - 1] * v[r - 1];
            }
            if r + 1 < n {
                tv += e[r] * v[r + 1];
            }
            let err = (tv - w[c] * v[r]).abs();
            assert!(
                err <= bound * norm.max(f64::MIN_POSITIVE),
                "n = {n}: (TQ − QΛ)[{r}, {c}] = {err:e}, bound {:e}",
                bound * norm
            );
        }
        for c2 in 0..=c {
            let dot: f64 = v.iter().zip(&q[c2 * n..(c2 + 1) * n]).map(|(a, b)| a * b).sum();
            let want = if c == c2 { 1.0 } else { 0.0 };
            assert!((dot - want).abs() <= bound, "n = {n}: (QᵀQ)[{c}, {c2}] = {dot}");
        }
    }
    w
}

fn random(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut g = Rng::new(seed);
    let mut next = || g.uniform_in(-1.0, 1.0);
    ((0..n).map(|_| next()).collect(), (0..n.saturating_sub(1)).map(|_| next()).collect())
}

#[test]
fn random_matrices_on_both_sides_of_the_leaves() {
    for (i, n) in [1, 2, 3, 5, 17, 31, 32, 33, 40, 64, 65, 100, 129, 200, 257].into_iter().enumerate() {
        let (d, e) = random(n, 7 + i as u64);
        check::<f64>(&d, &e, 8.0);
        check::<f32>(&d, &e, 8.0);
    }
}

#[test]
fn known_eigenvalues_of_the_second_difference_matrix() {
    // diag 2, off-diagonal −1: λₖ = 2 − 2 cos(kπ / (n + 1)).
    for n in [10, 33, 150] {
        let w = check::<f64>(&vec![2.0; n], &vec![-1.0; n - 1], 8.0);
        for (k, &l) in w.iter().enumerate() {
            let want = 2.0 - 2.0 * ((k + 1) as f64 * std::f64::consts::PI / (n + 1) as f64).cos();
            assert!((l - want).abs() <= 8.0 * n as f64 * f64::EPSILON, "n = {n}: λ{k} = {l}, want {want}");
        }
    }
}

#[test]
fn close_and_repeated_eigenvalues_deflate() {
    // Wilkinson's W₂₁⁺ (pairs of eigenvalues agreeing to 15 digits), and
    // four copies glued by 10⁻¹⁰ (clusters of four).
    let w21: (Vec<f64>, Vec<f64>) = ((0..21).map(|i| (10.0 - i as f64).abs()).collect(), vec![1.0; 20]);
    check::<f64>(&w21.0, &w21.1, 8.0);
    let (mut d, mut e) = (Vec::new(), Vec::new());
    for g in 0..4 {
        if g > 0 {
            e.push(1e-10);
        }
        d.extend(&w21.0);
        e.extend(&w21.1);
    }
    check::<f64>(&d, &e, 8.0);
    check::<f32>(&d, &e, 8.0);
    // Equal diagonals and off-diagonals far below them: every vector deflates.
    check::<f64>(&vec![1.0; 90], &vec![1e-20; 89], 8.0);
    // One value repeated with unit couplings in blocks.
    let e: Vec<f64> = (0..99).map(|i| if i % 10 == 9 { 0.0 } else { 1.0 }).collect();
    check::<f64>(&vec![3.0; 100], &e, 8.0);
}

#[test]
fn diagonal_and_split_matrices() {
    let d: Vec<f64> = (0..70).map(|i| ((i * 37) % 70) as f64 - 20.5).collect();
    let w = check::<f64>(&d, &[0.0; 69], 1.0);
    let mut sorted = d.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(w, sorted, "a diagonal matrix's eigenvalues are its diagonal, exactly");
    // A zero where the matrix is split in two (ρ = 0), and negative couplings.
    let (d, mut e) = random(80, 3);
    e[39] = 0.0;
    e.iter_mut().step_by(3).for_each(|x| *x = -x.abs());
    check::<f64>(&d, &e, 8.0);
}

#[test]
fn extreme_scales_and_non_finite_input() {
    let (d, e) = random(60, 11);
    for s in [1e300, 1e-300, 1e-310] {
        let (ds, es): (Vec<f64>, Vec<f64>) = (d.iter().map(|x| x * s).collect(), e.iter().map(|x| x * s).collect());
        let w = check::<f64>(&ds, &es, 8.0);
        let w1 = check::<f64>(&d, &e, 8.0);
        for (a, b) in w.iter().zip(&w1) {
            assert!((a / s - b).abs() <= 1e-13, "scaled by {s:e}: {a:e} against {b}");
        }
    }
    assert!(tridiagonal_eigh::<f64>(&mut [], &[], &mut []));
    for bad in [f64::NAN, f64::INFINITY] {
        let (mut d, e) = random(40, 5);
        d[7] = bad;
        assert!(!tridiagonal_eigh(&mut d, &e, &mut vec![0.0; 1600]));
    }
}
