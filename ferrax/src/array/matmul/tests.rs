//! `product` against a plain loop in f64, over the layouts and shapes that
//! reach `skinny` and those that it leaves to `gemm`.

use super::{num_like::Scalar, scaled_product, skinny, Strided};
use crate::array::Rng;

/// How a matrix lies in its buffer: by rows or by columns with a gap
/// between them, or with no contiguous direction.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lay {
    Rows,
    Cols,
    Scattered,
}

/// A `rows × cols` matrix laid out as `lay`, inside a buffer with spare
/// elements around it (which a product must leave alone).
struct Mat<T> {
    buf: Vec<T>,
    start: usize,
    col: isize,
    row: isize,
}

impl<T: Scalar + From<f32> + Into<f64>> Mat<T> {
    fn new(rows: usize, cols: usize, lay: Lay, rng: &mut Rng) -> Mat<T> {
        let (col, row) = match lay {
            Lay::Rows => (1, cols + 3),
            Lay::Cols => (rows + 2, 1),
            Lay::Scattered => (2, 2 * cols + 1),
        };
        let start = 5;
        let len = start + rows * row + cols * col + 5;
        let buf = (0..len).map(|_| T::from(rng.uniform_in(-1.0, 1.0) as f32)).collect();
        Mat { buf, start, col: col as isize, row: row as isize }
    }

    fn at(&self, i: usize, j: usize) -> usize {
        (self.start as isize + i as isize * self.row + j as isize * self.col) as usize
    }

    fn get(&self, i: usize, j: usize) -> f64 {
        self.buf[self.at(i, j)].into()
    }

    fn view(&self) -> Strided<*const T> {
        Strided { at: self.buf[self.start..].as_ptr(), col: self.col, row: self.row }
    }

    fn view_mut(&mut self) -> Strided<*mut T> {
        Strided { at: self.buf[self.start..].as_mut_ptr(), col: self.col, row: self.row }
    }
}

/// One product checked element by element against the loop, to
/// `(k + 2) ε` of the sum of magnitudes (each sum's rounding bound), with
/// every element outside the destination unchanged.
fn check<T: Scalar + From<f32> + Into<f64>>(
    (m, n, k): (usize, usize, usize),
    lays: [Lay; 3],
    accumulate: bool,
    eps: f64,
    rng: &mut Rng,
) -> bool {
    let a = Mat::<T>::new(m, k, lays[0], rng);
    let b = Mat::<T>::new(k, n, lays[1], rng);
    let mut dst = Mat::<T>::new(m, n, lays[2], rng);
    let before = dst.buf.clone();
    let scale = T::from(-0.75);
    let (av, bv, dv) = (a.view(), b.view(), dst.view_mut());
    // SAFETY: each view addresses only its own buffer, over its extent.
    let skinny = unsafe { skinny::product(m, n, k, dv, av, bv, accumulate, scale) };
    if !skinny {
        // SAFETY: as above; `skinny` declined, touching nothing.
        unsafe { scaled_product(m, n, k, dv, av, bv, accumulate, scale, 1) };
    }
    let mut inside = vec![false; dst.buf.len()];
    for i in 0..m {
        for j in 0..n {
            let at = dst.at(i, j);
            inside[at] = true;
            let (mut want, mut size) = (0.0, 0.0);
            for kk in 0..k {
                want += a.get(i, kk) * b.get(kk, j);
                size += (a.get(i, kk) * b.get(kk, j)).abs();
            }
            let old: f64 = before[at].into();
            want *= -0.75;
            size *= 0.75;
            if accumulate {
                want += old;
                size += old.abs();
            }
            let got = dst.get(i, j);
            let tol = (k + 2) as f64 * eps * size + f64::MIN_POSITIVE;
            assert!(
                (got - want).abs() <= tol,
                "{m}×{k} · {k}×{n}, {lays:?}, accumulate {accumulate}: ({i}, {j}) is {got}, want {want} (±{tol})"
            );
        }
    }
    for (at, (&v, &w)) in dst.buf.iter().zip(&before).enumerate() {
        if !inside[at] {
            assert_eq!(v.into(), w.into(), "{m}×{k} · {k}×{n}, {lays:?}: element {at} outside the result was written");
        }
    }
    skinny
}

const LAYS: [Lay; 3] = [Lay::Rows, Lay::Cols, Lay::Scattered];

/// Every layout of the three matrices, for `T`, over shapes with one side
/// of 0 to 5 (around [`skinny::MAX_WIDTH`]) and the other sides across the
/// kernels' blocks (8 and 16 lanes, blocks of 8 rows, `MIN_DOT`,
/// `MIN_COLUMNS`, groups of 8 columns). Returns how many products `skinny`
/// took.
fn sweep<T: Scalar + From<f32> + Into<f64>>(eps: f64) -> usize {
    let mut rng = Rng::new(7);
    let mut taken = 0;
    for short in 0..=5 {
        for long in [1, 7, 9, 33, 70] {
            for k in [0, 1, 7, 8, 9, 31, 32, 33, 47, 100] {
                for (la, lb, ld) in LAYS.iter().flat_map(|&a| LAYS.iter().flat_map(move |&b| LAYS.map(|d| (a, b, d)))) {
                    for accumulate in [false, true] {
                        for (m, n) in [(long, short), (short, long)] {
                            taken += check::<T>((m, n, k), [la, lb, ld], accumulate, eps, &mut rng) as usize;
                        }
                    }
                }
            }
        }
    }
    taken
}

#[test]
fn skinny_products_match_the_loop_in_every_layout() {
    let taken = sweep::<f64>(f64::EPSILON);
    // Nearly half of the shapes have a short side and a contiguous
    // long operand with enough k: the kernels must have taken them, or the
    // test would only be checking `gemm`.
    assert!(taken > 10_000, "skinny took {taken} products");
    assert_eq!(sweep::<f32>(f32::EPSILON as f64), taken);
}

/// The cases `skinny` must take, one per kernel and width: dots (a by
/// rows), column updates (a by columns), and both through the swap.
#[test]
fn skinny_takes_matrix_vector_products() {
    let mut rng = Rng::new(3);
    for n in 1..=4 {
        for (m, k) in [(300, 200), (200, 300)] {
            for (la, lb) in [(Lay::Rows, Lay::Cols), (Lay::Cols, Lay::Rows), (Lay::Rows, Lay::Scattered)] {
                assert!(
                    check::<f64>((m, n, k), [la, lb, Lay::Rows], false, f64::EPSILON, &mut rng),
                    "{m}×{k}·{k}×{n} {la:?}"
                );
                // The same product with its short side on the left; two
                // to four rows times a small matrix stored by rows are
                // `gemm`'s (`GEMM_BYTES`).
                let ours = n == 1 || la != Lay::Rows;
                assert_eq!(
                    check::<f64>((n, m, k), [lb, la, Lay::Cols], true, f64::EPSILON, &mut rng),
                    ours,
                    "{n}×{k}·{k}×{m} {lb:?}"
                );
            }
        }
    }
    // Past `GEMM_BYTES` (2.6 MB), rows times a matrix by rows are ours again.
    assert!(check::<f64>((2, 1100, 300), [Lay::Cols, Lay::Rows, Lay::Rows], false, f64::EPSILON, &mut rng));
    // Long enough to need several chunks of partial sums (16 kB each).
    assert!(check::<f32>((4100, 1, 40), [Lay::Cols, Lay::Rows, Lay::Rows], true, f32::EPSILON as f64, &mut rng));
    assert!(check::<f64>((600, 4, 40), [Lay::Cols, Lay::Rows, Lay::Cols], false, f64::EPSILON, &mut rng));
}
