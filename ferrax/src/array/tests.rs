//! Kernels against straightforward reference loops, on the shapes that
//! break kernels: empty, 0-d, 1×N, lengths that are not multiples of the
//! SIMD width, and arrays large enough to be split across threads.

use super::*;

/// Shapes for elementwise tests; the last ones exceed the parallel threshold.
fn shapes() -> Vec<Vec<usize>> {
    vec![
        vec![],
        vec![0],
        vec![1],
        vec![7],
        vec![1, 17],
        vec![17, 1],
        vec![3, 0, 2],
        vec![2, 3, 5],
        vec![33, 31],
        vec![3, 70_001],
    ]
}

fn random(shape: &[usize], seed: u64) -> Array {
    let mut rng = Rng::new(seed);
    Array::from_f64_fn(shape, DType::F64, |_| rng.normal())
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// The element of `x` that broadcasting maps to output index `idx`.
fn bcast_get(x: &Array, idx: &[usize]) -> f64 {
    let lead = idx.len() - x.rank();
    let src: Vec<usize> = x.shape().iter().enumerate().map(|(d, &n)| if n == 1 { 0 } else { idx[lead + d] }).collect();
    x.get_f64(ravel(&src, x.shape()))
}

fn assert_close(got: &Array, want: &[f64], tol: f64) {
    let g = got.to_vec::<f64>();
    assert_eq!(g.len(), want.len(), "length");
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        let same = a == b || (a.is_nan() && b.is_nan());
        assert!(same || (a - b).abs() <= tol * (1.0 + b.abs()), "element {i}: got {a}, want {b}");
    }
}

#[test]
fn unary_map_matches_loop_on_every_shape_and_dtype() {
    for shape in shapes() {
        let x = random(&shape, 1);
        let want: Vec<f64> = x.to_vec::<f64>().iter().map(|v| v.sin()).collect();
        assert_close(&UnaryOp::Sin.cpu(&x), &want, 0.0);
        let x32 = x.to_dtype(DType::F32);
        let want32: Vec<f64> = x32.to_vec::<f32>().iter().map(|v| v.sin() as f64).collect();
        let got32 = UnaryOp::Sin.cpu(&x32);
        assert_eq!(got32.dtype(), DType::F32);
        assert_close(&got32, &want32, 0.0);
        assert_eq!(got32.shape(), &shape[..]);
    }
}

#[test]
fn binary_broadcasting_matches_loop() {
    let pairs: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![], vec![]),
        (vec![], vec![5]),
        (vec![5], vec![]),
        (vec![0], vec![1]),
        (vec![3, 0], vec![3, 1]),
        (vec![1, 17], vec![17, 1]),
        (vec![2, 3, 5], vec![5]),
        (vec![2, 3, 5], vec![3, 1]),
        (vec![2, 1, 5], vec![1, 3, 1]),
        (vec![4, 1, 3, 1], vec![2, 1, 7]),
        (vec![300, 700], vec![700]),
        (vec![300, 1], vec![1, 700]),
        (vec![3, 70_001], vec![3, 70_001]),
    ];
    for (sa, sb) in pairs {
        let (a, b) = (random(&sa, 2), random(&sb, 3));
        let out = broadcast_shapes(&sa, &sb).unwrap();
        let n: usize = out.iter().product();
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let idx = unravel(i, &out);
                bcast_get(&a, &idx) - 2.0 * bcast_get(&b, &idx)
            })
            .collect();
        let got = zip_num!("t", &a, &b, &out, 1, <T> |x, y| x - (y + y));
        assert_eq!(got.shape(), &out[..], "{sa:?} with {sb:?}");
        assert_close(&got, &want, 0.0);
        let cmp = zip_to!("t", &a, &b, &out, 1, bool, <T> |x, y| x < y);
        let want_cmp: Vec<f64> = (0..n)
            .map(|i| (bcast_get(&a, &unravel(i, &out)) < bcast_get(&b, &unravel(i, &out))) as u8 as f64)
            .collect();
        assert_close(&cmp, &want_cmp, 0.0);
    }
}

#[test]
fn select_broadcasts_all_three() {
    let cond = Array::from_vec(vec![true, false, true], &[3, 1]);
    let a = random(&[1, 4], 4);
    let b = random(&[3, 4], 5);
    let got = elementwise::select_any(&cond, &a, &b, &[3, 4]);
    let want: Vec<f64> = (0..12)
        .map(|i| {
            let idx = unravel(i, &[3, 4]);
            if bcast_get(&cond, &idx) != 0.0 {
                bcast_get(&a, &idx)
            } else {
                bcast_get(&b, &idx)
            }
        })
        .collect();
    assert_close(&got, &want, 0.0);
}

#[test]
fn select_matches_the_definition_for_every_broadcast_pattern() {
    // Random shapes where each operand is contiguous or broadcast along each
    // axis, so every combination of inner strides (1 or 0 for each of the
    // three) is met, in f32 and f64; the last cases are split across threads.
    let mut rng = Rng::new(12);
    for case in 0..300 {
        let rank = 1 + case % 4;
        let big = case >= 290;
        let out: Vec<usize> = (0..rank).map(|d| if big && d == 0 { 4000 } else { 1 + rng.below(5) }).collect();
        let mut operand = || -> Vec<usize> {
            let keep = rng.below(rank + 1);
            out[rank - keep..].iter().map(|&d| if rng.below(2) == 0 { 1 } else { d }).collect()
        };
        let (sc, sa, sb) = (operand(), operand(), operand());
        let mut bits = Rng::new(case as u64);
        let cond = Array::from_vec((0..sc.iter().product::<usize>()).map(|_| bits.below(2) == 1).collect(), &sc);
        let (a, b) = (random(&sa, 2 * case as u64), random(&sb, 2 * case as u64 + 1));
        let n: usize = out.iter().product();
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let idx = unravel(i, &out);
                let lead = rank - sc.len();
                let src: Vec<usize> =
                    sc.iter().enumerate().map(|(d, &m)| if m == 1 { 0 } else { idx[lead + d] }).collect();
                let c = cond.as_slice::<bool>()[ravel(&src, &sc)];
                if c {
                    bcast_get(&a, &idx)
                } else {
                    bcast_get(&b, &idx)
                }
            })
            .collect();
        for dtype in [DType::F64, DType::F32] {
            let got = elementwise::select_any(&cond, &a.to_dtype(dtype), &b.to_dtype(dtype), &out);
            assert_eq!(got.shape(), &out[..], "case {case}");
            let want: Vec<f64> = want.iter().map(|&w| if dtype == DType::F32 { w as f32 as f64 } else { w }).collect();
            assert_close(&got, &want, 0.0);
        }
    }
}

/// Every subset of the axes of `shape`.
fn axis_subsets(rank: usize) -> Vec<Vec<usize>> {
    (0..1usize << rank).map(|m| (0..rank).filter(|a| m >> a & 1 == 1).collect()).collect()
}

fn reference_reduce(x: &Array, axes: &[usize], init: f64, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let out_shape = reduce_shape(x.shape(), axes);
    let mut out = vec![init; out_shape.iter().product()];
    for i in 0..x.size() {
        let idx = unravel(i, x.shape());
        let kept: Vec<usize> = idx.iter().enumerate().filter(|(d, _)| !axes.contains(d)).map(|(_, &v)| v).collect();
        let o = ravel(&kept, &out_shape);
        out[o] = f(out[o], x.get_f64(i));
    }
    out
}

#[test]
fn reductions_over_every_axis_subset_match_loops() {
    for shape in
        [vec![], vec![0], vec![5], vec![1, 9], vec![2, 3, 4], vec![3, 1, 2, 5], vec![2, 0, 3], vec![4, 3, 70_000]]
    {
        let x = random(&shape, 6);
        for axes in axis_subsets(shape.len()) {
            let n: usize = axes.iter().map(|&a| shape[a]).product();
            let sum = reduce_sum(&x, &axes);
            assert_eq!(sum.shape(), &reduce_shape(&shape, &axes)[..]);
            // Pairwise summation reorders additions: allow rounding of n terms.
            assert_close(&sum, &reference_reduce(&x, &axes, 0.0, |a, b| a + b), 1e-15 * n as f64);
            assert_close(&reduce_max(&x, &axes), &reference_reduce(&x, &axes, f64::NEG_INFINITY, f64::max), 0.0);
            assert_close(&reduce_min(&x, &axes), &reference_reduce(&x, &axes, f64::INFINITY, f64::min), 0.0);
            let xi = x.to_dtype(DType::I64);
            let isum = reduce_sum(&(Array::from_f64_fn(&shape, DType::I64, |i| i as f64 % 7.0)), &axes);
            let iref =
                reference_reduce(&Array::from_f64_fn(&shape, DType::I64, |i| i as f64 % 7.0), &axes, 0.0, |a, b| a + b);
            assert_close(&isum, &iref, 0.0);
            assert_eq!(reduce_max(&xi, &axes).dtype(), DType::I64);
        }
    }
}

#[test]
fn f32_sum_is_pairwise_accurate() {
    // A sequential f32 sum of a million 0.1s drifts by about 1%; pairwise stays within a few ulps per level.
    let x = Array::from_vec(vec![0.1f32; 1 << 20], &[1 << 20]);
    let s = reduce_sum(&x, &[0]).get_f64(0);
    assert!((s - 104857.6).abs() < 0.05, "{s}");
}

#[test]
fn max_propagates_nan_and_argmax_takes_first() {
    let x = Array::from_vec(vec![1.0, f64::NAN, 3.0, 3.0, 0.0, 2.0], &[2, 3]);
    let m = reduce_max(&x, &[1]).to_vec::<f64>();
    assert!(m[0].is_nan());
    assert_eq!(m[1], 3.0);
    assert_eq!(arg_extreme(&x, 1, ReduceOp::Max).to_vec::<i64>(), vec![1, 0]);
    let y = Array::from_vec(vec![1.0, 5.0, 5.0, 0.0, 9.0, 2.0], &[3, 2]);
    assert_eq!(arg_extreme(&y, 0, ReduceOp::Max).to_vec::<i64>(), vec![2, 0]);
    assert_eq!(arg_extreme(&y, 1, ReduceOp::Max).to_vec::<i64>(), vec![1, 0, 0]);
}

#[test]
fn extremes_follow_nan_and_signed_zero_rules_on_every_row_length() {
    // Rows of every length around the eight lanes, drawn from values that
    // make the exact rules matter: NaN anywhere, +0 and -0 together,
    // infinities. Each row against an element-by-element fold of the exact
    // rule, bit for bit (so -0 and +0 differ), in f64, f32 and i64.
    let pool = [0.0, -0.0, 1.5, -2.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -0.5];
    let mut rng = Rng::new(13);
    for len in 0..40 {
        for trial in 0..30 {
            // Some rows without NaN, some of zeros only, some of anything.
            let kinds = [6, 2, 8][trial % 3];
            let row: Vec<f64> = (0..len).map(|_| pool[rng.below(kinds)]).collect();
            let x = Array::from_vec(row.clone(), &[1, len]);
            for dtype in [DType::F64, DType::F32] {
                let x = x.to_dtype(dtype);
                let vals = x.to_vec::<f64>();
                let want_max = vals.iter().fold(f64::NEG_INFINITY, |a, &v| a.max_nan(v));
                let want_min = vals.iter().fold(f64::INFINITY, |a, &v| a.min_nan(v));
                let (got_max, got_min) = (reduce_max(&x, &[1]).get_f64(0), reduce_min(&x, &[1]).get_f64(0));
                let same = |g: f64, w: f64| g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
                assert!(same(got_max, want_max), "max of {row:?} ({dtype}): {got_max} want {want_max}");
                assert!(same(got_min, want_min), "min of {row:?} ({dtype}): {got_min} want {want_min}");
            }
            let ints: Vec<i64> = (0..len).map(|_| rng.below(7) as i64 - 3).collect();
            let xi = Array::from_vec(ints.clone(), &[1, len]);
            assert_eq!(reduce_max(&xi, &[1]).to_vec::<i64>()[0], ints.iter().copied().fold(i64::MIN, i64::max));
            assert_eq!(reduce_min(&xi, &[1]).to_vec::<i64>()[0], ints.iter().copied().fold(i64::MAX, i64::min));
        }
    }
}

#[test]
fn cumsum_forward_and_reverse_match_loops() {
    for (shape, axis) in [(vec![5], 0), (vec![3, 4], 0), (vec![3, 4], 1), (vec![2, 3, 4], 1), (vec![2, 0, 3], 2)] {
        let x = random(&shape, 7);
        for reverse in [false, true] {
            let got = cumsum(&x, axis, reverse);
            let want: Vec<f64> = (0..x.size())
                .map(|i| {
                    let idx = unravel(i, &shape);
                    let range: Vec<usize> =
                        if reverse { (idx[axis]..shape[axis]).collect() } else { (0..=idx[axis]).collect() };
                    range
                        .into_iter()
                        .map(|k| {
                            let mut j = idx.clone();
                            j[axis] = k;
                            x.get_f64(ravel(&j, &shape))
                        })
                        .sum()
                })
                .collect();
            assert_close(&got, &want, 1e-14);
        }
    }
}

#[test]
fn permute_matches_loop_including_tiled_transposes() {
    for (shape, perm) in [
        (vec![], vec![]),
        (vec![4], vec![0]),
        (vec![2, 3], vec![1, 0]),
        (vec![2, 3, 4], vec![2, 0, 1]),
        (vec![2, 3, 4], vec![0, 2, 1]),
        (vec![65, 33], vec![1, 0]),
        (vec![3, 40, 50], vec![0, 2, 1]),
        (vec![300, 301], vec![1, 0]),
        (vec![1, 7, 1, 5], vec![3, 2, 1, 0]),
        (vec![0, 3], vec![1, 0]),
        // Large enough to be split across threads mid-row, with rows too
        // short to tile: contiguous rows of 23, and strided rows of 13.
        (vec![37, 29, 13, 23], vec![2, 0, 1, 3]),
        (vec![37, 29, 23, 13], vec![1, 3, 0, 2]),
        // Planes turned by shuffled sub-tiles (8×8 f32, 4×4 f64), with
        // ragged edges: an attention's heads, and 35×21 planes.
        (vec![3, 4, 16, 32], vec![0, 1, 3, 2]),
        (vec![5, 35, 21], vec![0, 2, 1]),
        (vec![2, 21, 3, 35], vec![3, 0, 2, 1]),
        // Source rows 2 KiB apart in f32 (4 KiB in f64), which are copied
        // along the source; destination rows that far apart; both.
        (vec![70, 512], vec![1, 0]),
        (vec![512, 70], vec![1, 0]),
        (vec![512, 512], vec![1, 0]),
    ] {
        for dtype in [DType::F64, DType::F32, DType::Bool] {
            let x = random(&shape, 8).to_dtype(dtype);
            let got = permute(&x, &perm);
            let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            assert_eq!(got.shape(), &out_shape[..]);
            let want: Vec<f64> = (0..x.size())
                .map(|i| {
                    let o = unravel(i, &out_shape);
                    let mut src = vec![0; shape.len()];
                    for (d, &p) in perm.iter().enumerate() {
                        src[p] = o[d];
                    }
                    x.get_f64(ravel(&src, &shape))
                })
                .collect();
            assert_close(&got, &want, 0.0);
        }
    }
}

#[test]
fn broadcast_slice_pad_concat_match_loops() {
    let x = random(&[3, 1, 4], 9);
    let b = broadcast_to(&x, &[2, 3, 5, 4]);
    let want: Vec<f64> = (0..b.size()).map(|i| bcast_get(&x, &unravel(i, &[2, 3, 5, 4]))).collect();
    assert_close(&b, &want, 0.0);

    let y = random(&[4, 5, 6], 10);
    let s = slice(&y, &[1, 0, 2], &[3, 5, 5]);
    assert_eq!(s.shape(), &[2, 5, 3]);
    let want: Vec<f64> = (0..s.size())
        .map(|i| {
            let o = unravel(i, &[2, 5, 3]);
            y.get_f64(ravel(&[o[0] + 1, o[1], o[2] + 2], &[4, 5, 6]))
        })
        .collect();
    assert_close(&s, &want, 0.0);

    let p = pad(&y, &[1, 0, 2], &[0, 3, 1]);
    assert_eq!(p.shape(), &[5, 8, 9]);
    let want: Vec<f64> = (0..p.size())
        .map(|i| {
            let o = unravel(i, &[5, 8, 9]);
            let inside = o[0] >= 1 && o[1] < 5 && o[2] >= 2 && o[2] < 8;
            if inside {
                y.get_f64(ravel(&[o[0] - 1, o[1], o[2] - 2], &[4, 5, 6]))
            } else {
                0.0
            }
        })
        .collect();
    assert_close(&p, &want, 0.0);
    assert_eq!(pad(&Array::zeros(&[0, 2], DType::F64), &[1, 0], &[0, 1]).shape(), &[1, 3]);

    let (a, c) = (random(&[2, 1, 3], 11), random(&[2, 4, 3], 12));
    let cat = concat(&[&a, &c], 1);
    assert_eq!(cat.shape(), &[2, 5, 3]);
    let want: Vec<f64> = (0..cat.size())
        .map(|i| {
            let o = unravel(i, &[2, 5, 3]);
            if o[1] < 1 {
                a.get_f64(ravel(&o, &[2, 1, 3]))
            } else {
                c.get_f64(ravel(&[o[0], o[1] - 1, o[2]], &[2, 4, 3]))
            }
        })
        .collect();
    assert_close(&cat, &want, 0.0);
}

#[test]
fn gather_and_scatter_add_are_adjoint_loops() {
    let x = random(&[3, 5, 2], 13);
    let idx = Array::from_vec(vec![4i64, 0, 4, 2], &[2, 2]);
    let g = gather(&x, 1, &idx, IndexMode::Fill);
    assert_eq!(g.shape(), &[3, 2, 2, 2]);
    let iv = idx.to_vec::<i64>();
    let want: Vec<f64> = (0..g.size())
        .map(|i| {
            let o = unravel(i, &[3, 2, 2, 2]);
            let k = iv[o[1] * 2 + o[2]] as usize;
            x.get_f64(ravel(&[o[0], k, o[3]], &[3, 5, 2]))
        })
        .collect();
    assert_close(&g, &want, 0.0);

    let upd = random(&[3, 2, 2, 2], 14);
    let s = scatter_add(&x, 1, &idx, &upd, IndexMode::Fill);
    let mut want = x.to_vec::<f64>();
    for i in 0..upd.size() {
        let o = unravel(i, &[3, 2, 2, 2]);
        let k = iv[o[1] * 2 + o[2]] as usize;
        want[ravel(&[o[0], k, o[3]], &[3, 5, 2])] += upd.get_f64(i);
    }
    assert_close(&s, &want, 1e-15);

    // Along the last axis (single elements, the flat loop), indices repeated.
    let x = random(&[3, 5], 15);
    let idx = Array::from_vec(vec![1i64, 4, 1, -1, 0, 1], &[6]);
    let upd = random(&[3, 6], 16);
    let s = scatter_add(&x, 1, &idx, &upd, IndexMode::Fill);
    let mut want = x.to_vec::<f64>();
    for r in 0..3 {
        for (j, &k) in idx.to_vec::<i64>().iter().enumerate() {
            want[r * 5 + k.rem_euclid(5) as usize] += upd.get_f64(r * 6 + j);
        }
    }
    assert_close(&s, &want, 1e-15);
    // Nothing to scatter, or no axis to scatter into.
    let none = Array::from_vec(Vec::<i64>::new(), &[0]);
    assert_close(&scatter_add(&x, 1, &none, &random(&[3, 0], 17), IndexMode::Fill), &x.to_vec::<f64>(), 0.0);
    let empty = Array::zeros(&[3, 0], DType::F64);
    assert_eq!(scatter_add(&empty, 1, &idx, &upd, IndexMode::Clip).shape(), &[3, 0]);
}

#[test]
fn out_of_range_indices_follow_the_mode() {
    let x = Array::from_vec(vec![0.0, 1.0, 2.0, 3.0, 4.0], &[5]);
    let idx = Array::from_vec(vec![-1i64, 5, -6, 2], &[4]);
    let fill = gather(&x, 0, &idx, IndexMode::Fill).to_vec::<f64>();
    assert_eq!((fill[0], fill[3]), (4.0, 2.0));
    assert!(fill[1].is_nan() && fill[2].is_nan());
    assert_eq!(gather(&x, 0, &idx, IndexMode::FillZero).to_vec::<f64>(), vec![4.0, 0.0, 0.0, 2.0]);
    assert_eq!(gather(&x, 0, &idx, IndexMode::Clip).to_vec::<f64>(), vec![4.0, 4.0, 0.0, 2.0]);
    let ints = Array::from_vec(vec![7i64, 8], &[2]);
    assert_eq!(gather(&ints, 0, &Array::from_vec(vec![2i64], &[1]), IndexMode::Fill).to_vec::<i64>(), vec![i64::MIN]);
    let ones = Array::full(&[4], 1.0, DType::F64);
    let dropped = scatter_add(&Array::zeros(&[5], DType::F64), 0, &idx, &ones, IndexMode::Fill);
    assert_eq!(dropped.to_vec::<f64>(), vec![0.0, 0.0, 1.0, 0.0, 1.0]);
    let clipped = scatter_add(&Array::zeros(&[5], DType::F64), 0, &idx, &ones, IndexMode::Clip);
    assert_eq!(clipped.to_vec::<f64>(), vec![1.0, 0.0, 1.0, 0.0, 2.0]);
    // An empty axis has no position to clamp to.
    let empty = gather(&Array::zeros(&[0], DType::F64), 0, &Array::from_vec(vec![0i64], &[1]), IndexMode::Clip);
    assert!(empty.to_vec::<f64>()[0].is_nan());
}

#[test]
fn matmul_matches_loop_with_transposes_and_batches() {
    // The last three are split between threads (from 2^21 flops): by rows,
    // by columns, and whole products of a batch per piece; the blocks'
    // offsets are exercised whichever thread runs them.
    let cases = [
        (1, 1, 1, 1),
        (1, 3, 0, 2),
        (1, 0, 3, 2),
        (2, 3, 4, 5),
        (3, 17, 33, 9),
        (1, 64, 70, 130),
        (5, 2, 2, 2),
        (1, 150, 80, 90),
        (1, 40, 200, 170),
        (90, 12, 30, 50),
    ];
    for (batch, m, k, n) in cases {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a_shape = if ta { vec![batch, k, m] } else { vec![batch, m, k] };
            let b_shape = if tb { vec![batch, n, k] } else { vec![batch, k, n] };
            let (a, b) = (random(&a_shape, 15), random(&b_shape, 16));
            let got = matmul(&a, &b, ta, tb);
            assert_eq!(got.shape(), &[batch, m, n]);
            let mut want = vec![0.0; batch * m * n];
            for q in 0..batch {
                for i in 0..m {
                    for j in 0..n {
                        for p in 0..k {
                            let av =
                                if ta { a.get_f64(q * m * k + p * m + i) } else { a.get_f64(q * m * k + i * k + p) };
                            let bv =
                                if tb { b.get_f64(q * k * n + j * k + p) } else { b.get_f64(q * k * n + p * n + j) };
                            want[q * m * n + i * n + j] += av * bv;
                        }
                    }
                }
            }
            assert_close(&got, &want, 1e-12);
            let got32 = matmul(&a.to_dtype(DType::F32), &b.to_dtype(DType::F32), ta, tb);
            assert_close(&got32, &want, 1e-4 * (k as f64).sqrt().max(1.0));
        }
    }
}

#[test]
fn conversions_follow_as_casts() {
    let x = Array::from_vec(vec![-1.7, -0.2, 0.0, 2.9], &[4]);
    assert_eq!(x.to_dtype(DType::I64).to_vec::<i64>(), vec![-1, 0, 0, 2]);
    assert_eq!(x.to_dtype(DType::Bool).to_vec::<bool>(), vec![true, true, false, true]);
    assert_eq!(x.to_dtype(DType::F32).to_vec::<f32>(), vec![-1.7f32, -0.2, 0.0, 2.9]);
}

#[test]
fn display_follows_numpy() {
    let cases: Vec<(Array, &str)> = vec![
        (Array::scalar(2.5f64), "2.5"),
        (Array::from_vec(vec![1.0, 2.0, 3.0], &[3]), "[1. 2. 3.]"),
        (Array::from_vec(vec![1.5, 2.25, -3.0], &[3]), "[ 1.5   2.25 -3.  ]"),
        (Array::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]), "[[1. 2.]\n [3. 4.]]"),
        (Array::from_vec(vec![1e-5, 1.0, 1e5], &[3]), "[1.e-05 1.e+00 1.e+05]"),
        (Array::from_vec(vec![1i64, -20, 300], &[3]), "[  1 -20 300]"),
        (Array::from_vec(vec![true, false], &[2]), "[ true false]"),
        (Array::from_vec(vec![f64::NAN, f64::INFINITY, 1.0], &[3]), "[nan inf  1.]"),
        (Array::from_vec(Vec::<f64>::new(), &[0]), "[]"),
        (
            Array::from_vec((0..8).map(|i| i as f64).collect(), &[2, 2, 2]),
            "[[[0. 1.]\n  [2. 3.]]\n\n [[4. 5.]\n  [6. 7.]]]",
        ),
    ];
    for (a, want) in cases {
        assert_eq!(a.to_string(), want);
    }
    let big = Array::from_f64_fn(&[2000], DType::I64, |i| i as f64);
    assert_eq!(big.to_string(), "[   0    1    2 ... 1997 1998 1999]");
}

#[test]
fn small_integer_powers_give_the_bits_of_powi() {
    // The kernel writes x^2, x^3, x^4, x^-1, x^-2 as products; they must agree with `powi`.
    let values: Vec<f64> = (0..4000)
        .map(|i| ((i as f64) * 0.618_034).sin() * 10f64.powi(i % 40 - 20))
        .chain([0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::MIN_POSITIVE, 1e300, -1e-300])
        .collect();
    let x64 = Array::from_vec(values.clone(), &[values.len()]);
    let x32 = x64.to_dtype(DType::F32);
    for n in [2, 3, 4, -1, -2, 5, -3] {
        let got = UnaryOp::PowI(n).cpu(&x64);
        for (g, v) in got.as_slice::<f64>().iter().zip(&values) {
            assert!(g.to_bits() == v.powi(n).to_bits() || (g.is_nan() && v.powi(n).is_nan()), "{v}^{n}: {g}");
        }
        let got = UnaryOp::PowI(n).cpu(&x32);
        for (g, v) in got.as_slice::<f32>().iter().zip(x32.as_slice::<f32>()) {
            assert!(g.to_bits() == v.powi(n).to_bits() || (g.is_nan() && v.powi(n).is_nan()), "{v}^{n}: {g}");
        }
    }
}

#[test]
fn broadcast_segments_match_offsets_by_division() {
    // Each run of a broadcast walk, started anywhere (a thread's chunk
    // starts mid-row), against every element's offsets found by division.
    let mut rng = Rng::new(11);
    for case in 0..400 {
        let rank = 1 + case % 5;
        let out: Vec<usize> = (0..rank).map(|_| 1 + rng.below(4)).collect();
        let operand = |rng: &mut Rng| -> Vec<usize> {
            let keep = rng.below(rank + 1);
            out[rank - keep..].iter().map(|&d| if rng.below(3) == 0 { 1 } else { d }).collect()
        };
        let (sa, sb) = (operand(&mut rng), operand(&mut rng));
        let plan = elementwise::Plan::new(&out, [&sa[..], &sb[..]]);
        let n: usize = out.iter().product();
        let start = rng.below(n);
        let end = start + rng.below(n - start + 1);
        let mut seen = start;
        plan.segments(start, end, |pos, offs, len, inner| {
            assert_eq!(pos, seen, "case {case}: runs tile the range");
            for i in 0..len {
                let idx = unravel(pos + i, &out);
                for (k, shape) in [&sa, &sb].into_iter().enumerate() {
                    let lead = rank - shape.len();
                    let src: Vec<usize> =
                        shape.iter().enumerate().map(|(d, &m)| if m == 1 { 0 } else { idx[lead + d] }).collect();
                    assert_eq!(
                        offs[k] + i * inner[k],
                        ravel(&src, shape),
                        "case {case}: {out:?} {sa:?} {sb:?} at {}",
                        pos + i
                    );
                }
            }
            seen += len;
        });
        assert_eq!(seen, end.max(start), "case {case}");
    }
}

/// `(x - mean) / √(var + eps)` and its tangent along `t`, row by row, in f64
/// by the definition.
fn standardize_reference(x: &[f64], t: &[f64], n: usize, eps: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut y, mut dy) = (vec![], vec![]);
    for (row, trow) in x.chunks(n).zip(t.chunks(n)) {
        let mean = row.iter().sum::<f64>() / n as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let r = 1.0 / (var + eps).sqrt();
        let ys: Vec<f64> = row.iter().map(|v| (v - mean) * r).collect();
        let t_mean = trow.iter().sum::<f64>() / n as f64;
        let yt_mean = ys.iter().zip(trow).map(|(y, t)| y * t).sum::<f64>() / n as f64;
        dy.extend(ys.iter().zip(trow).map(|(y, t)| r * (t - t_mean - y * yt_mean)));
        y.extend(ys);
    }
    (y, dy)
}

#[test]
fn standardize_kernels_match_the_definition_across_blocks_and_lanes() {
    // Row lengths below, at and past the 8 accumulator lanes; row counts
    // that end a block of 16 rows early, exactly, or one past it; and one
    // array large enough to be split across threads mid-way through blocks.
    for &(rows, n) in &[(1, 1), (3, 5), (16, 8), (17, 64), (40, 3), (33, 100), (5, 1000), (4099, 64)] {
        let x = random(&[rows, n], 7 + n as u64);
        let t = random(&[rows, n], 8 + n as u64);
        let (y, dy) = standardize_reference(x.as_slice(), t.as_slice(), n, 0.01);
        // f64: two-pass sums in another order than the reference's, over at
        // most 1000 terms of order 1.
        assert_close(&norm::standardize(&x, n, 0.01), &y, 1e-12);
        assert_close(&norm::standardize_tangent(&t, &x, n, 0.01), &dy, 1e-12);
        // f32: rounding of inputs and sums, a few hundred ε on standardised values of order 1.
        let (x32, t32) = (x.to_dtype(DType::F32), t.to_dtype(DType::F32));
        let (y, dy) = standardize_reference(&x32.to_vec::<f64>(), &t32.to_vec::<f64>(), n, 0.01);
        assert_close(&norm::standardize(&x32, n, 0.01), &y, 3e-5);
        assert_close(&norm::standardize_tangent(&t32, &x32, n, 0.01), &dy, 3e-5);
    }
}

#[test]
fn standardisation_by_a_backends_own_ops_matches_the_kernels() {
    // What a backend without standardisation kernels (CUDA) runs, computed
    // here with the CPU's operations, against the CPU's fused kernels.
    for &(rows, n) in &[(1, 1), (7, 5), (33, 64), (4, 300)] {
        let x = random(&[rows, n], 21 + n as u64);
        let t = random(&[rows, n], 22 + n as u64);
        for dtype in [DType::F64, DType::F32] {
            let (x, t) = (x.to_dtype(dtype), t.to_dtype(dtype));
            // The same two-pass formulas summed in another order: f64 to
            // 1e-12, f32 to a few hundred ε on values of order 1.
            let tol = if dtype == DType::F64 { 1e-12 } else { 3e-5 };
            let y = backend::Cpu.standardize(&x, n, 0.01).to_vec::<f64>();
            assert_close(&backend::standardize_by_ops(&backend::Cpu, &x, n, 0.01), &y, tol);
            let dy = backend::Cpu.standardize_tangent(&t, &x, n, 0.01).to_vec::<f64>();
            assert_close(&backend::standardize_tangent_by_ops(&backend::Cpu, &t, &x, n, 0.01), &dy, tol);
        }
    }
    let empty = Array::from_vec(Vec::<f32>::new(), &[0, 4]);
    assert_eq!(backend::standardize_by_ops(&backend::Cpu, &empty, 4, 0.01).shape(), &[0, 4]);
}

#[test]
fn softmax_kernel_gives_the_composites_bits() {
    // The fused kernel and the chain of reductions and elementwise kernels
    // (what the composite and a backend without the kernel compute): the
    // same maximum, exponential, pairwise sum and reciprocal, so the same
    // bits, on rows shorter and longer than one summation block (256),
    // with -inf entries (a causal mask) and a row holding a NaN.
    for &(rows, n) in &[(1, 1), (5, 7), (40, 32), (3, 300), (2, 1000)] {
        let mut x = random(&[rows, n], 31 + n as u64).to_vec::<f64>();
        x[0] = f64::NEG_INFINITY;
        if rows > 2 {
            x[2 * n + 1] = f64::NAN;
        }
        let x = Array::from_vec(x, &[rows, n]);
        let t = random(&[rows, n], 32 + n as u64);
        for dtype in [DType::F64, DType::F32] {
            let (x, t) = (x.to_dtype(dtype), t.to_dtype(dtype));
            let got = backend::Cpu.softmax(&x, n).to_vec::<f64>();
            let want = backend::softmax_by_ops(&backend::Cpu, &x, n).to_vec::<f64>();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "{dtype} [{rows},{n}] {i}: {g} vs {w}"
                );
            }
            // The tangent sums y t in another order than the reduction: a few
            // ε on values of order 1 (y ≤ 1, |t| ≲ 4).
            let y = backend::Cpu.softmax(&x, n);
            let tol = if dtype == DType::F64 { 1e-13 } else { 1e-5 };
            let want = backend::softmax_tangent_by_ops(&backend::Cpu, &t, &y, n).to_vec::<f64>();
            assert_close(&backend::Cpu.softmax_tangent(&t, &y, n), &want, tol);
        }
    }
}
