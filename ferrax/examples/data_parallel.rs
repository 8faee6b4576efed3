//! W3 (100 full-batch SGD steps of the 784-512-512-10 MLP, batch 256, f32)
//! on N data-parallel ranks of threads, each taking 256/N rows: the time
//! of a step, the share of it spent in the gradients' all-reduce, and the
//! bytes each rank hands to it per step against the model's size.
//!
//! ```sh
//! cargo run --release --example data_parallel -- 2
//! RAYON_NUM_THREADS=1 cargo run --release --example data_parallel -- 2   # one core a rank
//! ISOLATE=1 cargo run --release --example data_parallel -- 2   # a barrier before each all-reduce
//! ```
//!
//! With `ISOLATE` set, the ranks meet at a barrier before each all-reduce,
//! so its time is the reduction's own and not the wait for a slower rank.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ferrax::array::Array;
use ferrax::distributed::{CommError, Communicator, DataParallel, Reduction, ThreadComm, ThreadGroup};
use ferrax::prelude::*;

/// A communicator that counts the time and bytes of its all-reduces.
#[derive(Debug)]
struct Metered {
    inner: ThreadComm,
    nanos: AtomicU64,
    bytes: AtomicU64,
}

impl Communicator for Metered {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn all_reduce(&self, x: &Array, op: Reduction) -> Result<Array, CommError> {
        if std::env::var_os("ISOLATE").is_some() {
            self.inner.barrier()?;
        }
        let t = Instant::now();
        let out = self.inner.all_reduce(x, op);
        self.nanos.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.bytes.fetch_add((x.size() * x.dtype().size_of()) as u64, Ordering::Relaxed);
        out
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

fn mlp_loss(p: &[Tensor], x: &Tensor, y: &Tensor) -> Tensor {
    let h1 = (x.matmul(&p[0]) + &p[1]).tanh();
    let h2 = (h1.matmul(&p[2]) + &p[3]).tanh();
    let z = h2.matmul(&p[4]) + &p[5];
    (z.logsumexp_axes(&[1], false) - (y * &z).sum_axes(&[1], false)).mean()
}

fn main() {
    let ranks: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2);
    let f32 = DType::F32;
    let params = vec![
        Tensor::randn(&[784, 512], f32, 1) * 0.05,
        Tensor::zeros(&[512], f32),
        Tensor::randn(&[512, 512], f32, 2) * 0.05,
        Tensor::zeros(&[512], f32),
        Tensor::randn(&[512, 10], f32, 3) * 0.05,
        Tensor::zeros(&[10], f32),
    ];
    let model_bytes: usize = params.iter().map(|p| p.size() * 4).sum();
    let x = Tensor::randn(&[256, 784], f32, 4);
    let y = Tensor::from_vec((0..256).map(|i| (i * 7 % 10) as i64).collect(), &[256]).one_hot(10, f32);
    let steps = 100;
    let results: Vec<(f64, f64, u64, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::new(ranks)
            .into_iter()
            .map(|inner| {
                let (params, x, y) = (params.clone(), x.clone(), y.clone());
                s.spawn(move || {
                    let metered = Arc::new(Metered { inner, nanos: AtomicU64::new(0), bytes: AtomicU64::new(0) });
                    let dp = DataParallel::new(metered.clone());
                    let step = |p: &Vec<Tensor>| {
                        let (loss, g) = dp.value_and_grad(|p: &Vec<Tensor>, x, y| mlp_loss(p, x, y), p, &x, &y);
                        (p.iter().zip(&g).map(|(p, g)| p - g * 0.1).collect::<Vec<Tensor>>(), loss)
                    };
                    let mut p = step(&params).0; // warm-up
                    metered.nanos.store(0, Ordering::Relaxed);
                    metered.bytes.store(0, Ordering::Relaxed);
                    let t = Instant::now();
                    let mut loss = Tensor::scalar(0.0);
                    for _ in 0..steps {
                        (p, loss) = step(&p);
                    }
                    let total = t.elapsed().as_secs_f64();
                    let in_reduce = metered.nanos.load(Ordering::Relaxed) as f64 * 1e-9;
                    (total, in_reduce, metered.bytes.load(Ordering::Relaxed), loss.item())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap().trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "W3 on {ranks} thread ranks ({cpu}, {} cores), {steps} steps, batch 256",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (rank, (total, in_reduce, bytes, loss)) in results.iter().enumerate() {
        println!(
            "rank {rank}: {:.2} ms a step, {:.3} ms of it in the all-reduce ({:.1}%); {:.2} MB handed to it a step \
             ({:.2} model sizes of {:.2} MB); loss after {steps} steps {loss:.6}",
            1e3 * total / steps as f64,
            1e3 * in_reduce / steps as f64,
            100.0 * in_reduce / total,
            *bytes as f64 / steps as f64 / 1e6,
            *bytes as f64 / steps as f64 / model_bytes as f64,
            model_bytes as f64 / 1e6,
        );
    }
}
