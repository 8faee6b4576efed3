//! Collectives on a group of threads: their results, their failures (a
//! rank that dies, hangs or calls another collective), their derivatives,
//! and data-parallel training equal to training on the whole batch.

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use ferrax::array::Array;
use ferrax::distributed::{
    all_gather_tensor, check_collectives, psum, psum_scatter, psum_tree, psum_tree_owned, CommError, Communicator,
    DataParallel, Reduction, SharedComm, ThreadGroup,
};
use ferrax::nn::{softmax_cross_entropy, Activation, Mlp};
use ferrax::optim::{Adam, Optimizer};
use ferrax::prelude::*;

/// Runs `f` on every rank of a group of `n` threads; the results in rank order.
fn on_ranks<R: Send>(n: usize, timeout: Duration, f: impl Fn(SharedComm) -> R + Sync) -> Vec<R> {
    std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::with_timeout(n, timeout)
            .into_iter()
            .map(|c| {
                let f = &f;
                s.spawn(move || f(Arc::new(c)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a rank panicked")).collect()
    })
}

fn long() -> Duration {
    Duration::from_secs(30)
}

#[test]
fn collectives_keep_the_communicator_rules_bit_for_bit() {
    for n in 1..=3 {
        for outcome in on_ranks(n, long(), |c| check_collectives(&*c, true)) {
            outcome.unwrap_or_else(|e| panic!("{n} ranks: {e}"));
        }
    }
}

#[test]
fn collectives_combine_every_ranks_operand() {
    let out = on_ranks(3, long(), |c| {
        let r = c.rank() as f64;
        let x = Tensor::from_vec(vec![r, 10.0 * r, -r, 1.0, 2.0, 3.0], &[3, 2]).to_array();
        let sum = c.all_reduce(&x, Reduction::Sum).unwrap();
        let mean = c.all_reduce(&x, Reduction::Mean).unwrap();
        let max = c.all_reduce(&x, Reduction::Max).unwrap();
        let root = c.broadcast(&x, 2).unwrap();
        let gathered = c.all_gather(&x, 1).unwrap();
        let scattered = c.reduce_scatter(&x, 0).unwrap();
        c.barrier().unwrap();
        // A tree of two dtypes: each leaf summed, whatever bucket it travels in.
        let tree = (Tensor::from_array(x.clone()), Tensor::from_vec(vec![c.rank() as i64, 1], &[2]));
        let (t0, t1) = ferrax::distributed::all_reduce(&*c, &tree, Reduction::Sum).unwrap();
        assert!(t0.to_array().bit_eq(&sum));
        assert_eq!(t1.to_vec::<i64>(), [3, 3]);
        (sum, mean, max, root, gathered, scattered)
    });
    for (rank, (sum, mean, max, root, gathered, scattered)) in out.iter().enumerate() {
        let v = |a: &ferrax::array::Array| Tensor::from_array(a.clone()).to_vec::<f64>();
        assert_eq!(v(sum), [3.0, 30.0, -3.0, 3.0, 6.0, 9.0]);
        assert_eq!(v(mean), [1.0, 10.0, -1.0, 1.0, 2.0, 3.0]);
        assert_eq!(v(max), [2.0, 20.0, 0.0, 1.0, 2.0, 3.0]);
        assert_eq!(v(root), [2.0, 20.0, -2.0, 1.0, 2.0, 3.0]);
        assert_eq!(gathered.shape(), &[3, 6]);
        assert_eq!(&v(gathered)[..6], [0.0, 0.0, 1.0, 10.0, 2.0, 20.0]);
        // Rank r keeps row r of the sum.
        assert_eq!(v(scattered), v(sum)[2 * rank..2 * rank + 2]);
    }
}

#[test]
fn a_rank_that_panics_breaks_the_group_at_once() {
    let t0 = Instant::now();
    let out: Vec<Result<(), CommError>> = std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::with_timeout(3, long())
            .into_iter()
            .map(|c| {
                s.spawn(move || {
                    if c.rank() == 1 {
                        panic!("rank 1 fails before the collective");
                    }
                    c.all_reduce(&Tensor::scalar(1.0).to_array(), Reduction::Sum).map(|_| ())
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    assert_eq!(out.len(), 2);
    for r in out {
        let e = r.unwrap_err();
        assert!(matches!(e, CommError::Broken { .. }) && e.to_string().contains("rank 1 panicked"), "{e}");
    }
    assert!(t0.elapsed() < Duration::from_secs(10), "the others waited for the timeout");
}

#[test]
fn a_rank_that_hangs_times_out_every_other_rank() {
    let out = on_ranks(2, Duration::from_millis(300), |c| {
        if c.rank() == 0 {
            std::thread::sleep(Duration::from_millis(1500));
            return c.barrier();
        }
        c.barrier()
    });
    let e = out[1].as_ref().unwrap_err();
    assert!(matches!(e, CommError::Timeout { .. }) && e.to_string().contains("ranks [0]"), "{e}");
    assert!(out[0].is_err(), "the late rank finds the group broken");
}

#[test]
fn ranks_that_call_different_collectives_are_told() {
    let out = on_ranks(2, long(), |c| {
        let x = Tensor::scalar(1.0).to_array();
        if c.rank() == 0 {
            c.all_reduce(&x, Reduction::Sum).map(|_| ())
        } else {
            std::thread::sleep(Duration::from_millis(50));
            c.broadcast(&x, 0).map(|_| ())
        }
    });
    // Whichever arrives second is told which two collectives met; the
    // other finds the group broken for that reason.
    let (a, b) = (out[0].as_ref().unwrap_err().to_string(), out[1].as_ref().unwrap_err().to_string());
    for m in [&a, &b] {
        assert!(m.contains("all_reduce") && m.contains("broadcast") && m.contains("while another rank called"), "{m}");
    }
}

/// A large jitted program, and a large eager backward pass, run on rayon's
/// workers, but not one that waits on the other ranks: with more ranks than
/// workers, the ranks whose programs got no worker would never arrive.
#[test]
fn collectives_on_more_ranks_than_workers_complete() {
    let out = on_ranks(5, Duration::from_secs(10), |c| {
        let x = Tensor::full(&[512, 512], 1.0 + c.rank() as f64, DType::F32);
        let f = jit(|x: &Tensor| psum(&x.tanh(), &c).sum());
        // The collective inside a loop's body, under a nested jit.
        let g = jit(|x: &Tensor| fori_loop(0, 2, |_, x: &Tensor| jit(|x: &Tensor| psum(x, &c) * 0.5)(x), x).sum());
        // The backward pass of an eager gradient holds the collective too.
        let dx = grad(|x: &Tensor| psum(&(x * 0.5), &c).sum())(&x);
        assert_eq!(dx.to_vec::<f32>(), vec![2.5; 512 * 512]);
        (f(&x).item(), g(&x).item())
    });
    let want: f64 = (1..=5).map(|r| (r as f32).tanh() as f64).sum::<f64>() * 512.0 * 512.0;
    // Each step sums the ranks' values (15 at first, then 5 · 7.5) and halves them.
    let looped = 5.0 * 7.5 / 2.0 * 512.0 * 512.0;
    for (total, again) in out {
        assert!((total - want).abs() < 1e-3 * want, "{total} against {want}");
        assert_eq!(again, looped);
    }
}

#[test]
fn psum_differentiates_as_the_sum_of_the_ranks_losses() {
    let n = 3;
    let out = on_ranks(n, long(), |c| {
        let x = Tensor::from_vec(vec![1.0 + c.rank() as f64, -2.0 * c.rank() as f64], &[2]);
        let loss = |x: &Tensor| psum(x, &c).square().sum();
        let g = grad(loss)(&x);
        let (_, jv) = jvp(|x: &Tensor| psum(x, &c), &x, &Tensor::ones(&[2], DType::F64));
        let batched = vmap(|row: &Tensor| psum(row, &c))(&Tensor::stack(&[x.clone(), &x * 2.0], 0));
        let jitted = jit(|x: &Tensor| grad(|x: &Tensor| psum(x, &c).square().sum())(x))(&x);
        (g, jv, batched, jitted)
    });
    // S = Σ x_r = [6, -6]; the total loss n·Σ S² has gradient 2nS for every rank's x.
    for (g, jv, batched, jitted) in &out {
        assert_eq!(g.to_vec::<f64>(), [2.0 * 3.0 * 6.0, 2.0 * 3.0 * -6.0]);
        assert_eq!(jitted.to_vec::<f64>(), g.to_vec::<f64>());
        assert_eq!(jv.to_vec::<f64>(), [n as f64; 2]);
        assert_eq!(batched.to_vec::<f64>(), [6.0, -6.0, 12.0, -12.0]);
    }
}

/// Several leaves summed in one collective follow the rules of each alone:
/// a zero tangent or cotangent stays out of the collective, other leaves
/// keep their own batch axes, and leaves of two dtypes go in two buckets.
#[test]
fn psum_of_a_tree_differentiates_and_batches_leaf_by_leaf() {
    let out = on_ranks(2, long(), |c| {
        let r = c.rank() as f64;
        let a = Tensor::from_vec(vec![1.0 + r, 2.0 * r], &[2]);
        let b = Tensor::from_vec(vec![r, 1.0, -r], &[3, 1]).to_dtype(DType::F32);
        let summed = psum_tree(&(a.clone(), b.clone()), &c);
        // b enters the loss only through stop_gradient: its cotangent is zero.
        let loss = |a: &Tensor| {
            let (sa, sb) = psum_tree(&(a * 1.0, b.stop_gradient()), &c);
            sa.square().sum() + sb.to_dtype(DType::F64).sum()
        };
        let g = grad(loss)(&a);
        let jitted = jit(|a: &Tensor| grad(loss)(a))(&a);
        let (_, jv) =
            jvp(|a: &Tensor| psum_tree(&vec![a.clone(), a * 2.0], &c)[1].clone(), &a, &Tensor::ones(&[2], DType::F64));
        // The first leaf batched along its axis 1, the second not at all.
        let rows = Tensor::stack(&[a.clone(), &a * 10.0], 1);
        let batched = vmap_axes(|x: &Tensor| psum_tree(&(x.clone(), a.clone()), &c).0, &[Some(1)], &[0])(&rows);
        // Given up: the same sums; `a`, still held here, keeps its values.
        let owned = psum_tree_owned((a.clone(), b.clone()), &c);
        assert_eq!(a.to_vec::<f64>(), [1.0 + r, 2.0 * r]);
        let owned_loss = |a: &Tensor| psum_tree_owned(vec![a * 1.0], &c)[0].square().sum();
        let owned_grads = (grad(owned_loss)(&a), jit(|a: &Tensor| grad(owned_loss)(a))(&a));
        (summed, g, jitted, jv, batched, owned, owned_grads)
    });
    for ((sa, sb), g, jitted, jv, batched, owned, owned_grads) in &out {
        assert_eq!(owned.0.to_vec::<f64>(), sa.to_vec::<f64>());
        assert_eq!(owned.1.to_vec::<f32>(), sb.to_vec::<f32>());
        // The loss Σ_ranks Σ S² has gradient 2·size·S = 4S.
        assert_eq!(owned_grads.0.to_vec::<f64>(), [12.0, 8.0]);
        assert_eq!(owned_grads.1.to_vec::<f64>(), [12.0, 8.0]);
        assert_eq!(sa.to_vec::<f64>(), [3.0, 2.0]);
        assert_eq!((sb.dtype(), sb.shape()), (DType::F32, &[3usize, 1][..]));
        assert_eq!(sb.to_vec::<f32>(), [1.0, 2.0, -1.0]);
        // The total loss 2·Σ S² has gradient 4S for every rank's a.
        assert_eq!(g.to_vec::<f64>(), [12.0, 8.0]);
        assert_eq!(jitted.to_vec::<f64>(), [12.0, 8.0]);
        assert_eq!(jv.to_vec::<f64>(), [4.0, 4.0]);
        assert_eq!(batched.to_vec::<f64>(), [3.0, 2.0, 30.0, 20.0]);
    }
}

#[test]
fn an_all_reduce_of_arrays_shaped_otherwise_is_refused_on_every_rank() {
    let out = on_ranks(2, long(), |c| {
        // Five elements in all on both ranks, cut differently.
        let (m, n) = if c.rank() == 0 { (2, 3) } else { (3, 2) };
        let (x, y) = (Tensor::zeros(&[m], DType::F32).to_array(), Tensor::zeros(&[n], DType::F32).to_array());
        c.all_reduce_many(&[&x, &y], Reduction::Sum)
    });
    for r in out {
        assert!(matches!(r, Err(CommError::Operands { .. })), "{r:?}");
    }
}

#[test]
fn all_gather_transposes_to_a_reduce_scatter() {
    let out = on_ranks(2, long(), |c| {
        let r = c.rank() as f64;
        let x = Tensor::from_vec(vec![1.0 + r, 2.0 + r], &[2]);
        // Rank r weighs the gathered [x_0, x_1] by w_r.
        let w = Tensor::from_vec(vec![1.0 + r, 10.0 + r, 100.0 + r, 1000.0 + r], &[4]);
        let g = grad(|x: &Tensor| (all_gather_tensor(x, &c, 0) * &w).sum())(&x);
        // Rank r weighs its slice of the summed w by v_r.
        let v = Tensor::from_vec(vec![r + 1.0, r + 5.0], &[2]);
        let back = grad(|w: &Tensor| (psum_scatter(w, &c, 0) * &v).sum())(&w);
        // Batched: each member gathers (and sums) on its own, the batch axis
        // anywhere.
        let rows = Tensor::stack(&[x.clone(), &x * 10.0, &x * 100.0], 1);
        let gathered = vmap_axes(|x: &Tensor| all_gather_tensor(x, &c, 0), &[Some(1)], &[0])(&rows);
        let scattered = vmap(|w: &Tensor| psum_scatter(w, &c, 0))(&Tensor::stack(&[w.clone(), &w * 2.0], 0));
        (g, back, gathered, scattered)
    });
    // dL/dx_s = Σ_r w_r[chunk s]: [1+2, 10+11] for rank 0, [100+101, 1000+1001] for rank 1.
    assert_eq!(out[0].0.to_vec::<f64>(), [3.0, 21.0]);
    assert_eq!(out[1].0.to_vec::<f64>(), [201.0, 2001.0]);
    assert_eq!(out[0].3.to_vec::<f64>(), [3.0, 21.0, 6.0, 42.0]);
    // The reduce-scatter's transpose gathers each rank's cotangent: [v_0, v_1].
    for (_, back, gathered, scattered) in &out {
        assert_eq!(back.to_vec::<f64>(), [1.0, 5.0, 2.0, 6.0]);
        // Member k of the batch is [x_0, x_1] · 10^k.
        assert_eq!(gathered.shape(), &[3, 4]);
        assert_eq!(gathered.to_vec::<f64>()[..4], [1.0, 2.0, 2.0, 3.0]);
        assert_eq!(gathered.to_vec::<f64>()[8..], [100.0, 200.0, 200.0, 300.0]);
        assert_eq!(scattered.shape(), &[2, 2]);
    }
    // The sum of w_0 and w_1 is [1+2, 10+11, 100+101, 1000+1001]; rank 1 keeps its second half.
    assert_eq!(out[1].3.to_vec::<f64>(), [201.0, 2001.0, 402.0, 4002.0]);
}

/// N ranks with batch/N each take the steps one rank takes on the whole batch.
#[test]
fn data_parallel_training_equals_one_rank_on_the_whole_batch() {
    let x = Tensor::randn(&[64, 6], DType::F64, 0);
    let y = Tensor::from_vec((0..64).map(|i| (i * 7 % 5) as i64).collect::<Vec<_>>(), &[64]);
    let model = Mlp::new(&[6, 16, 5], Activation::Tanh, DType::F64, 1);
    let loss = |m: &Mlp, x: &Tensor, y: &Tensor| softmax_cross_entropy(&m.forward(x), y);
    let opt = Adam::new(1e-2);
    let mut reference = (model.clone(), opt.init(&model));
    for _ in 0..20 {
        let g = grad(|m: &Mlp| loss(m, &x, &y))(&reference.0);
        reference = opt.update(&reference.0, &g, &reference.1);
    }
    for n in [1, 2, 4] {
        let finals = on_ranks(n, long(), |c| {
            let dp = DataParallel::new(c);
            // Rank 0's initial weights reach everyone.
            let start =
                if dp.rank() == 0 { model.clone() } else { Mlp::new(&[6, 16, 5], Activation::Tanh, DType::F64, 99) };
            let mut m = dp.sync(&start).unwrap();
            let mut s = opt.init(&m);
            for _ in 0..20 {
                (m, s, _) = dp.step(&opt, loss, &m, &s, &x, &y);
            }
            m
        });
        for m in &finals {
            for (a, b) in m.leaves().iter().zip(reference.0.leaves()) {
                // The shards' gradients are summed in another order than the
                // whole batch's: a few roundings of f64 over 20 steps.
                let err = (a - &b).abs().max().item();
                assert!(err < 1e-12, "{n} ranks: {err}");
            }
        }
        for m in &finals[1..] {
            assert!(m.leaves().iter().zip(finals[0].leaves()).all(|(a, b)| a.to_array().bit_eq(&b.to_array())));
        }
    }
}

/// A rank's communicator that notes which thread called each
/// `all_reduce_owned` and the sizes of its arrays.
#[derive(Debug)]
struct Noting {
    inner: SharedComm,
    calls: Mutex<Vec<(ThreadId, Vec<usize>)>>,
}

impl Communicator for Noting {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn all_reduce(&self, x: &Array, op: Reduction) -> Result<Array, CommError> {
        self.inner.all_reduce(x, op)
    }
    fn all_reduce_owned(&self, xs: Vec<Array>, op: Reduction) -> Result<Vec<Array>, CommError> {
        let sizes = xs.iter().map(Array::size).collect();
        self.calls.lock().unwrap().push((std::thread::current().id(), sizes));
        self.inner.all_reduce_owned(xs, op)
    }
    fn broadcast(&self, x: &Array, root: usize) -> Result<Array, CommError> {
        self.inner.broadcast(x, root)
    }
    fn all_gather(&self, x: &Array, axis: usize) -> Result<Array, CommError> {
        self.inner.all_gather(x, axis)
    }
    fn reduce_scatter(&self, x: &Array, axis: usize) -> Result<Array, CommError> {
        self.inner.reduce_scatter(x, axis)
    }
    fn barrier(&self) -> Result<(), CommError> {
        self.inner.barrier()
    }
}

/// Training steps on every rank with and without the all-reduces
/// overlapping the backward pass: (parameters, losses) of each.
fn overlapped_and_not(
    n: usize,
    rows: usize,
    loss: impl Fn(&Mlp, &Tensor, &Tensor, &SharedComm) -> Tensor + Sync,
) -> Vec<[(Mlp, Vec<f64>); 2]> {
    let x = Tensor::randn(&[rows, 6], DType::F32, 3);
    let y = Tensor::from_vec((0..rows).map(|i| (i * 3 % 5) as i64).collect::<Vec<_>>(), &[rows]);
    let opt = Adam::new(1e-2);
    on_ranks(n, long(), |c| {
        [false, true].map(|overlap| {
            let dp = DataParallel::new(c.clone()).with_overlap(overlap).with_bucket_bytes(256);
            let mut m = Mlp::new(&[6, 16, 8, 5], Activation::Tanh, DType::F32, 1);
            let mut s = opt.init(&m);
            let mut losses = Vec::new();
            for _ in 0..5 {
                let l;
                (m, s, l) = dp.step(&opt, |m: &Mlp, x: &Tensor, y: &Tensor| loss(m, x, y, &c), &m, &s, &x, &y);
                losses.push(l.item());
            }
            (m, losses)
        })
    })
}

fn assert_same_bits(runs: &[[(Mlp, Vec<f64>); 2]], what: &str) {
    for (rank, [(plain, plain_losses), (overlapped, losses)]) in runs.iter().enumerate() {
        assert_eq!(plain_losses, losses, "{what}, rank {rank}: losses");
        for (a, b) in plain.leaves().iter().zip(overlapped.leaves()) {
            assert!(a.to_array().bit_eq(&b.to_array()), "{what}, rank {rank}: parameters differ");
        }
    }
}

/// Summing the gradients bucket by bucket while the backward pass goes on
/// gives the bits of summing them after it: uneven shards, a rank with no
/// rows, one rank alone.
#[test]
fn overlapped_all_reduces_give_the_bits_of_those_after_the_pass() {
    let loss = |m: &Mlp, x: &Tensor, y: &Tensor, _: &SharedComm| softmax_cross_entropy(&m.forward(x), y);
    for (n, rows) in [(1, 8), (2, 8), (3, 7), (3, 2)] {
        assert_same_bits(&overlapped_and_not(n, rows, loss), &format!("{n} ranks, {rows} rows"));
    }
}

/// A loss that communicates itself (its backward pass sums across ranks)
/// has its gradients summed after the pass, so the two threads never both
/// call collectives.
#[test]
fn a_loss_that_communicates_is_summed_after_its_backward_pass() {
    let loss = |m: &Mlp, x: &Tensor, y: &Tensor, c: &SharedComm| {
        // The first layer's weights summed across ranks: its transpose, a
        // sum across ranks too, is the backward pass's last step.
        let w = psum(&m.layers[0].w, c) / c.size() as f64;
        let h = (x.matmul(&w) + &m.layers[0].b).tanh();
        let rest = Mlp { layers: m.layers[1..].to_vec(), activation: Activation::Tanh };
        softmax_cross_entropy(&rest.forward(&h), y)
    };
    assert_same_bits(&overlapped_and_not(2, 8, loss), "psum inside the loss");
}

/// The buckets go to the communication thread in reverse order of the
/// leaves, the first and the others capped, as the backward pass finishes them.
#[test]
fn overlapped_buckets_leave_from_another_thread_last_layer_first() {
    let x = Tensor::randn(&[8, 6], DType::F32, 3);
    let y = Tensor::from_vec((0..8).map(|i| (i % 5) as i64).collect::<Vec<_>>(), &[8]);
    let model = Mlp::new(&[6, 16, 8, 5], Activation::Tanh, DType::F32, 1);
    let loss = |m: &Mlp, x: &Tensor, y: &Tensor| softmax_cross_entropy(&m.forward(x), y);
    let calls = on_ranks(2, long(), |c| {
        let noting = Arc::new(Noting { inner: c, calls: Mutex::new(Vec::new()) });
        let dp = DataParallel::new(noting.clone()).with_overlap(true).with_bucket_bytes(256);
        dp.value_and_grad(loss, &model, &x, &y);
        let calls = std::mem::take(&mut *noting.calls.lock().unwrap());
        (std::thread::current().id(), calls)
    });
    for (me, mut calls) in calls {
        // The loss is summed last, by the rank's thread, after the buckets.
        assert_eq!(calls.pop(), Some((me, vec![1])));
        assert!(calls.iter().all(|(t, _)| *t != me), "the rank's own thread summed a bucket");
        // Leaves (w, b) by layer; reversed, in f32: b3 20 B + w3 160 B + b2
        // 32 B fit 256 B; w2 (512 B) goes alone, then b1, then w1.
        let sizes: Vec<Vec<usize>> = calls.into_iter().map(|(_, s)| s).collect();
        assert_eq!(sizes, [vec![5, 40, 8], vec![128], vec![16], vec![96]]);
    }
}

#[test]
fn a_data_parallel_step_runs_under_jit_with_uneven_shards() {
    let x = Tensor::randn(&[7, 3], DType::F64, 2);
    let y = x.sum_axes(&[1], true);
    let loss = |w: &Tensor, x: &Tensor, y: &Tensor| (x.matmul(w) - y).square().mean();
    let w = Tensor::zeros(&[3, 1], DType::F64);
    let (want_loss, want) = value_and_grad(|w: &Tensor| loss(w, &x, &y))(&w);
    // Traced, an overlapping trainer sums after the pass.
    let out = on_ranks(3, long(), |c| {
        [false, true].map(|overlap| {
            let dp = DataParallel::new(c.clone()).with_overlap(overlap);
            let f = jit(|w: &Tensor| dp.value_and_grad(loss, w, &x, &y));
            f(&w)
        })
    });
    for (l, g) in out.into_iter().flatten() {
        assert!((l.item() - want_loss.item()).abs() < 1e-14);
        assert!((&g - &want).abs().max().item() < 1e-14);
    }
}
