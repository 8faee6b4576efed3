//! The data-parallel check across MPI processes (the `mpi` feature):
//!
//! ```sh
//! cargo build --release --features mpi --example mpi_check
//! mpirun --oversubscribe -np 2 target/release/examples/mpi_check        # the check
//! mpirun --oversubscribe -np 2 target/release/examples/mpi_check w3     # W3's all-reduce cost
//! mpirun --oversubscribe -np 2 -x ISOLATE=1 target/release/examples/mpi_check w3   # without the waits
//! mpirun --oversubscribe -np 2 -x CONCAT=1 target/release/examples/mpi_check w3    # one concatenated array
//! mpirun --oversubscribe -np 2 -x BORROW=1 target/release/examples/mpi_check w3    # results in new arrays
//! mpirun --oversubscribe -np 2 target/release/examples/mpi_check die    # a rank dies: the job ends
//! mpirun --oversubscribe -np 2 --mca coll_tuned_use_dynamic_rules 1 \
//!     --mca coll_tuned_allreduce_algorithm 4 target/release/examples/mpi_check w3   # the ring all-reduce
//! ```
//!
//! Every rank checks the collectives' results, then trains an MLP for 20
//! Adam steps on its shard of each batch and compares the parameters with
//! one process training on the whole batch (which every rank also
//! computes), and with the gradients' sums overlapping the backward pass
//! (which must give the same bits). It exits with status 1 on a mismatch.

use std::sync::Arc;
use std::time::Instant;

use ferrax::distributed::{check_collectives, DataParallel, MpiComm, Reduction, SharedComm};
use ferrax::nn::{softmax_cross_entropy, Activation, Mlp};
use ferrax::optim::{Adam, Optimizer};
use ferrax::prelude::*;

fn check(comm: &SharedComm, shares_memory: bool) -> Result<(), String> {
    // MPI's own all-reduce does not check that the ranks' operands agree.
    check_collectives(&**comm, shares_memory)?;
    let (rank, size) = (comm.rank(), comm.size());
    if shares_memory {
        // As many elements in all, cut into arrays differently on each rank.
        let (x, y) = (Tensor::zeros(&[2 + rank], DType::F32), Tensor::zeros(&[9 - rank], DType::F32));
        match comm.all_reduce_many(&[&x.to_array(), &y.to_array()], Reduction::Sum) {
            Err(ferrax::distributed::CommError::Operands { .. }) => {}
            other => return Err(format!("all_reduce_many of arrays shaped otherwise gave {other:?}")),
        }
        // An array given up that nothing else holds is reduced in place.
        let x = Tensor::randn(&[1001], DType::F32, 7).to_array();
        let at = x.as_slice::<f32>().as_ptr();
        let got = comm.all_reduce_owned(vec![x], Reduction::Sum).map_err(|e| e.to_string())?;
        if got[0].as_slice::<f32>().as_ptr() != at {
            return Err("all_reduce_owned of an array nothing else holds wrote its result elsewhere".into());
        }
    }
    let n = size as f64;
    // Gradients through psum, as in JAX: every rank's x gets 2·size·Σx.
    let g = grad(|x: &Tensor| ferrax::distributed::psum(x, comm).square().sum())(&Tensor::scalar(1.0 + rank as f64));
    let s: f64 = (0..size).map(|r| 1.0 + r as f64).sum();
    if (g.item() - 2.0 * n * s).abs() > 1e-12 {
        return Err(format!("grad through psum gave {g}, not {}", 2.0 * n * s));
    }

    let x = Tensor::randn(&[64, 6], DType::F64, 0);
    let y = Tensor::from_vec((0..64).map(|i| (i * 7 % 5) as i64).collect::<Vec<_>>(), &[64]);
    let loss = |m: &Mlp, x: &Tensor, y: &Tensor| softmax_cross_entropy(&m.forward(x), y);
    let opt = Adam::new(1e-2);
    let model = Mlp::new(&[6, 16, 5], Activation::Tanh, DType::F64, 1);
    let mut reference = (model.clone(), opt.init(&model));
    for _ in 0..20 {
        let g = grad(|m: &Mlp| loss(m, &x, &y))(&reference.0);
        reference = opt.update(&reference.0, &g, &reference.1);
    }
    let dp = DataParallel::new(comm.clone());
    let start = if rank == 0 { model } else { Mlp::new(&[6, 16, 5], Activation::Tanh, DType::F64, 99) };
    let start = dp.sync(&start).map_err(|e| e.to_string())?;
    // The gradients summed after the backward pass, then bucket by bucket
    // during it (small buckets, so that there are several).
    let overlapped = dp.clone().with_overlap(true).with_bucket_bytes(256);
    let mut finals = Vec::new();
    for dp in [&dp, &overlapped] {
        let (mut m, mut s) = (start.clone(), opt.init(&start));
        for _ in 0..20 {
            (m, s, _) = dp.step(&opt, loss, &m, &s, &x, &y);
        }
        finals.push(m);
    }
    for (a, b) in finals[0].leaves().iter().zip(reference.0.leaves()) {
        let err = (a - &b).abs().max().item();
        if err > 1e-12 {
            return Err(format!("{size} processes differ from one by {err} after 20 steps"));
        }
    }
    if !finals[0].leaves().iter().zip(finals[1].leaves()).all(|(a, b)| a.to_array().bit_eq(&b.to_array())) {
        return Err("gradients summed during the backward pass differ from those summed after it".into());
    }
    Ok(())
}

fn w3(comm: &SharedComm) {
    let f32 = DType::F32;
    let p0 = vec![
        Tensor::randn(&[784, 512], f32, 1) * 0.05,
        Tensor::zeros(&[512], f32),
        Tensor::randn(&[512, 512], f32, 2) * 0.05,
        Tensor::zeros(&[512], f32),
        Tensor::randn(&[512, 10], f32, 3) * 0.05,
        Tensor::zeros(&[10], f32),
    ];
    let x = Tensor::randn(&[256, 784], f32, 4);
    let y = Tensor::from_vec((0..256).map(|i| (i * 7 % 10) as i64).collect(), &[256]).one_hot(10, f32);
    let loss = |p: &Vec<Tensor>, x: &Tensor, y: &Tensor| {
        let h1 = (x.matmul(&p[0]) + &p[1]).tanh();
        let h2 = (h1.matmul(&p[2]) + &p[3]).tanh();
        let z = h2.matmul(&p[4]) + &p[5];
        (z.logsumexp_axes(&[1], false) - (y * &z).sum_axes(&[1], false)).mean()
    };
    let dp = DataParallel::new(comm.clone());
    let steps = 100;
    let (mut in_reduce, mut p) = (0.0, p0.clone());
    let t = Instant::now();
    // CONCAT=1: the gradients concatenated into one array, all-reduced and
    // sliced back, as before the communicators reduced several arrays at once.
    let concat = std::env::var_os("CONCAT").is_some();
    // BORROW=1: the gradients reduced by reference, into new arrays.
    let borrow = std::env::var_os("BORROW").is_some();
    for _ in 0..steps {
        let g = grad(|p: &Vec<Tensor>| loss(p, &dp.shard(&x), &dp.shard(&y)))(&p);
        if std::env::var_os("ISOLATE").is_some() {
            // The reduction's own time, without the wait for a slower rank.
            comm.barrier().unwrap();
        }
        // From the gradients to their means, whatever it takes in between.
        let r = Instant::now();
        let mean = if concat {
            let flat: Vec<Tensor> = g.iter().map(|g| g.reshape(&[g.size()])).collect();
            let bucket = Tensor::concat(&flat, 0).to_array();
            let summed = Tensor::from_array(comm.all_reduce(&bucket, Reduction::Mean).unwrap());
            let mut at = 0;
            g.iter()
                .map(|g| {
                    at += g.size();
                    summed.slice(0, at - g.size(), at).reshape(g.shape())
                })
                .collect()
        } else if borrow {
            ferrax::distributed::all_reduce(&**comm, &g, Reduction::Mean).unwrap()
        } else {
            ferrax::distributed::all_reduce_owned(&**comm, g, Reduction::Mean).unwrap()
        };
        in_reduce += r.elapsed().as_secs_f64();
        p = p.iter().zip(&mean).map(|(p, g)| p - g * 0.1).collect();
    }
    let total = t.elapsed().as_secs_f64();
    let bytes: usize = p0.iter().map(|p| p.size() * 4).sum();
    println!(
        "rank {} of {}: {:.2} ms a step, {:.3} ms in the all-reduce ({:.1}%), {:.2} MB a step (one model size)",
        comm.rank(),
        comm.size(),
        1e3 * total / steps as f64,
        1e3 * in_reduce / steps as f64,
        100.0 * in_reduce / total,
        bytes as f64 / 1e6
    );
}

fn main() {
    let (comm, shares_memory): (SharedComm, bool) = match MpiComm::init() {
        Ok(c) => {
            let shares = c.shares_memory();
            (Arc::new(c), shares)
        }
        Err(e) => {
            eprintln!("mpi_check: {e}");
            std::process::exit(1);
        }
    };
    match std::env::args().nth(1).as_deref() {
        Some("w3") => return w3(&comm),
        // The last rank dies before the first collective: the job must end, not hang.
        Some("die") if comm.rank() + 1 == comm.size() => std::process::exit(3),
        _ => {}
    }
    match check(&comm, shares_memory) {
        Ok(()) => println!("rank {} of {}: collectives and data-parallel training agree", comm.rank(), comm.size()),
        Err(e) => {
            eprintln!("rank {} of {}: {e}", comm.rank(), comm.size());
            std::process::exit(1);
        }
    }
}
