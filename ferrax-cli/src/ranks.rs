//! Where `ferrax train`'s data-parallel ranks come from: threads of this
//! process (`--ranks N`), or the processes of an MPI job (`mpirun -np N`).

use std::sync::Arc;

use ferrax::distributed::{DataParallel, ThreadGroup};

use crate::output::{failed, Failure};

/// Trains one rank, given its group (`None`: alone).
pub type TrainOn<'a> = dyn Fn(Option<DataParallel>) -> Result<(), Failure> + Sync + 'a;

/// Trains on `ranks` threads (or directly, for one). A rank that fails
/// breaks the group, so the others stop at their next collective instead
/// of waiting; the first failure is the result.
pub fn train_on_threads(ranks: usize, train_on: &TrainOn) -> Result<(), Failure> {
    if ranks == 1 {
        return train_on(None);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::new(ranks)
            .into_iter()
            .map(|comm| s.spawn(move || train_on(Some(DataParallel::new(Arc::new(comm))))))
            .collect();
        let results: Vec<Result<(), Failure>> = handles
            .into_iter()
            .enumerate()
            .map(|(rank, h)| {
                h.join().unwrap_or_else(|p| {
                    let why =
                        p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
                    Err(failed(format!("rank {rank} stopped: {}", why.unwrap_or_else(|| "it panicked".into()))))
                })
            })
            .collect();
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    })
}

/// The number of processes when this one was started by an MPI launcher
/// with more than one (`mpirun -np N`).
pub fn mpi_job_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
        .filter(|&n| n > 1)
}

/// Trains as one rank of the MPI job.
#[cfg(feature = "mpi")]
pub fn train_on_mpi(_size: usize, train_on: &TrainOn) -> Result<(), Failure> {
    let comm = ferrax::distributed::MpiComm::init().map_err(|e| failed(format!("mpirun: {e}")))?;
    train_on(Some(DataParallel::new(Arc::new(comm))))
}

/// Without the `mpi` feature, N processes would each train alone and
/// write the same files: refused.
#[cfg(not(feature = "mpi"))]
pub fn train_on_mpi(size: usize, _train_on: &TrainOn) -> Result<(), Failure> {
    Err(crate::output::usage(format!(
        "started by mpirun as one of {size} processes, but this ferrax was built without MPI; build it with \
         `cargo build --release -p ferrax-cli --features mpi`"
    )))
}
