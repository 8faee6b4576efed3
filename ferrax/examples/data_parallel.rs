//! W3 (100 full-batch SGD steps of the 784-512-512-10 MLP, batch 256, f32)
//! on N data-parallel ranks, each taking 256/N rows: the time of a step,
//! the share of it spent in the gradients' all-reduce, and the bytes each
//! rank hands to it per step against the model's size. The ranks are
//! threads, or the processes of an MPI job when built with `mpi` and
//! started by `mpirun`.
//!
//! ```sh
//! cargo run --release --example data_parallel -- 2
//! RAYON_NUM_THREADS=1 cargo run --release --example data_parallel -- 2   # one core a rank
//! ISOLATE=1 cargo run --release --example data_parallel -- 2   # a barrier before each all-reduce
//! cargo build --release --features mpi --example data_parallel
//! mpirun --oversubscribe -np 2 target/release/examples/data_parallel   # 2 processes
//! ```
//!
//! With `ISOLATE` set, the ranks meet at a barrier before each all-reduce,
//! so its time is the reduction's own and not the wait for a slower rank.
//! `LINK_GBPS=g` adds to each all-reduce the time a ring all-reduce of
//! its bytes would wait on a network link of `g` GB/s, a wait that takes no
//! core, as ranks on several machines have.
//!
//! Three ways of taking a step are timed in turn, three rounds each: the
//! gradients summed after the backward pass (the all-reduce's share is
//! metered there), summed bucket by bucket during it
//! (`DataParallel::with_overlap`, buckets of `BUCKET_KB`, 256 by default),
//! and the shard's gradient alone with no communication. A step's time
//! less the last is what communication adds to it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrax::array::Array;
use ferrax::distributed::{CommError, Communicator, DataParallel, Reduction, SharedComm, ThreadGroup};
use ferrax::prelude::*;

/// A communicator that counts the time and bytes of its all-reduces.
#[derive(Debug)]
struct Metered {
    inner: SharedComm,
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
        self.metered(bytes(&[x]), || self.inner.all_reduce(x, op))
    }
    fn all_reduce_many(&self, xs: &[&Array], op: Reduction) -> Result<Vec<Array>, CommError> {
        self.metered(bytes(xs), || self.inner.all_reduce_many(xs, op))
    }
    fn all_reduce_owned(&self, xs: Vec<Array>, op: Reduction) -> Result<Vec<Array>, CommError> {
        self.metered(bytes(&xs.iter().collect::<Vec<_>>()), || self.inner.all_reduce_owned(xs, op))
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

impl Metered {
    /// Runs an all-reduce of `bytes`, counting its time and bytes.
    fn metered<R>(&self, bytes: usize, reduce: impl FnOnce() -> R) -> R {
        if std::env::var_os("ISOLATE").is_some() {
            self.inner.barrier().unwrap();
        }
        let t = Instant::now();
        let out = reduce();
        if let Some(gbps) = std::env::var("LINK_GBPS").ok().and_then(|g| g.parse::<f64>().ok()) {
            // A network link of that many GB/s: a ring all-reduce sends and
            // receives about twice the bytes, and the wait costs no core.
            std::thread::sleep(Duration::from_secs_f64(2.0 * bytes as f64 / (gbps * 1e9)));
        }
        self.nanos.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        out
    }
}

fn bytes(xs: &[&Array]) -> usize {
    xs.iter().map(|x| x.size() * x.dtype().size_of()).sum()
}

fn mlp_loss(p: &[Tensor], x: &Tensor, y: &Tensor) -> Tensor {
    let h1 = (x.matmul(&p[0]) + &p[1]).tanh();
    let h2 = (h1.matmul(&p[2]) + &p[3]).tanh();
    let z = h2.matmul(&p[4]) + &p[5];
    (z.logsumexp_axes(&[1], false) - (y * &z).sum_axes(&[1], false)).mean()
}

/// How a step is taken.
#[derive(Clone, Copy, PartialEq)]
enum Way {
    After,
    Overlapped,
    Alone,
}

/// One rank's figures: each way's step times (s) by round, the metered
/// all-reduce time and bytes a step when summed after the pass, the last loss.
type Figures = ([Vec<f64>; 3], f64, u64, f64);

const STEPS: usize = 100;
const ROUNDS: usize = 3;

/// W3's parameters, inputs and one-hot labels.
fn w3() -> (Vec<Tensor>, Tensor, Tensor) {
    let f32 = DType::F32;
    let params = vec![
        Tensor::randn(&[784, 512], f32, 1) * 0.05,
        Tensor::zeros(&[512], f32),
        Tensor::randn(&[512, 512], f32, 2) * 0.05,
        Tensor::zeros(&[512], f32),
        Tensor::randn(&[512, 10], f32, 3) * 0.05,
        Tensor::zeros(&[10], f32),
    ];
    let x = Tensor::randn(&[256, 784], f32, 4);
    let y = Tensor::from_vec((0..256).map(|i| (i * 7 % 10) as i64).collect(), &[256]).one_hot(10, f32);
    (params, x, y)
}

/// Times the three ways on one rank.
fn rank(comm: SharedComm, bucket: usize) -> Figures {
    let (params, x, y) = w3();
    let metered = Arc::new(Metered { inner: comm, nanos: AtomicU64::new(0), bytes: AtomicU64::new(0) });
    let after = DataParallel::new(metered.clone());
    let overlapped = after.clone().with_overlap(true).with_bucket_bytes(bucket);
    let step = |way: Way, p: &Vec<Tensor>| {
        let (loss, g) = match way {
            Way::After => after.value_and_grad(|p: &Vec<Tensor>, x, y| mlp_loss(p, x, y), p, &x, &y),
            Way::Overlapped => overlapped.value_and_grad(|p: &Vec<Tensor>, x, y| mlp_loss(p, x, y), p, &x, &y),
            Way::Alone => {
                let (xs, ys) = (after.shard(&x), after.shard(&y));
                let local = value_and_grad(|p: &Vec<Tensor>| mlp_loss(p, &xs, &ys));
                local(p)
            }
        };
        (p.iter().zip(&g).map(|(p, g)| p - g * 0.1).collect::<Vec<Tensor>>(), loss)
    };
    let mut times: [Vec<f64>; 3] = Default::default();
    let (mut in_reduce, mut bytes, mut loss) = (0.0, 0, 0.0);
    for _ in 0..ROUNDS {
        for (w, way) in [Way::After, Way::Overlapped, Way::Alone].into_iter().enumerate() {
            let mut p = step(way, &params).0; // warm-up
            metered.barrier().unwrap();
            metered.nanos.store(0, Ordering::Relaxed);
            metered.bytes.store(0, Ordering::Relaxed);
            let t = Instant::now();
            let mut l = Tensor::scalar(0.0);
            for _ in 0..STEPS {
                (p, l) = step(way, &p);
            }
            times[w].push(t.elapsed().as_secs_f64() / STEPS as f64);
            if way == Way::After {
                in_reduce = metered.nanos.load(Ordering::Relaxed) as f64 * 1e-9 / STEPS as f64;
                bytes = metered.bytes.load(Ordering::Relaxed) / STEPS as u64;
                loss = l.item();
            }
        }
    }
    (times, in_reduce, bytes, loss)
}

fn main() {
    let bucket: usize = std::env::var("BUCKET_KB").ok().and_then(|b| b.parse().ok()).unwrap_or(256) << 10;
    // Under mpirun this process is one rank; otherwise threads are.
    #[cfg(feature = "mpi")]
    if ferrax::distributed::launched_by_mpi() {
        let comm: SharedComm = Arc::new(ferrax::distributed::MpiComm::init().expect("MPI starts"));
        let (me, size) = (comm.rank(), comm.size());
        let figures = rank(comm, bucket);
        report(&format!("{size} MPI processes"), &[(me, figures)]);
        return;
    }
    let ranks: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2);
    let results: Vec<(usize, Figures)> = std::thread::scope(|s| {
        let handles: Vec<_> =
            ThreadGroup::new(ranks).into_iter().map(|c| s.spawn(move || rank(Arc::new(c), bucket))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).enumerate().collect()
    });
    report(&format!("{ranks} thread ranks"), &results);
}

fn report(ranks: &str, results: &[(usize, Figures)]) {
    let model_bytes: usize = w3().0.iter().map(|p| p.size() * 4).sum();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap().trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "W3 on {ranks} ({cpu}, {} cores), {STEPS} steps, batch 256, {ROUNDS} rounds",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let ms = |v: &[f64]| v.iter().map(|t| format!("{:.2}", 1e3 * t)).collect::<Vec<_>>().join(" ");
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (rank, ([after, overlapped, alone], in_reduce, bytes, loss)) in results {
        let (a, o, l) = (median(after), median(overlapped), median(alone));
        println!(
            "rank {rank}: ms a step, summed after the pass {} (all-reduce {:.3} ms, {:.1}%), overlapped {}, alone {}; \
             communication adds {:.1}% after, {:.1}% overlapped (medians); {:.2} MB handed to the all-reduce a step \
             ({:.2} model sizes of {:.2} MB); loss after {STEPS} steps {loss:.6}",
            ms(after),
            1e3 * in_reduce,
            100.0 * in_reduce / a,
            ms(overlapped),
            ms(alone),
            100.0 * (a - l) / a,
            100.0 * (o - l) / o,
            *bytes as f64 / 1e6,
            *bytes as f64 / model_bytes as f64,
            model_bytes as f64 / 1e6,
        );
    }
}
