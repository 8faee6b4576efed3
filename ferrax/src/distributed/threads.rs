//! A group of ranks that are threads of one process: for tests, and for
//! the cores of one machine.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::array::Array;

use super::{combine, CommError, Communicator, Reduction};

/// How long a collective waits for the other ranks by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Makes the ranks of an in-process group: give one [`ThreadComm`] to each
/// thread.
///
/// ```
/// use ferrax::prelude::*;
/// use ferrax::distributed::{Communicator, ThreadGroup, Reduction};
/// let sums: Vec<f64> = std::thread::scope(|s| {
///     let handles: Vec<_> = ThreadGroup::new(3)
///         .into_iter()
///         .map(|comm| s.spawn(move || {
///             let x = Tensor::scalar(comm.rank() as f64 + 1.0);
///             comm.all_reduce(&x.to_array(), Reduction::Sum).unwrap().get_f64(0)
///         }))
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(sums, [6.0, 6.0, 6.0]);
/// ```
pub struct ThreadGroup;

impl ThreadGroup {
    /// `size` ranks whose collectives wait at most [`DEFAULT_TIMEOUT`].
    ///
    /// # Panics
    /// When `size` is 0.
    #[track_caller]
    #[allow(clippy::new_ret_no_self)]
    pub fn new(size: usize) -> Vec<ThreadComm> {
        ThreadGroup::with_timeout(size, DEFAULT_TIMEOUT)
    }

    /// `size` ranks whose collectives wait at most `timeout` for the others.
    ///
    /// # Panics
    /// When `size` is 0.
    #[track_caller]
    pub fn with_timeout(size: usize, timeout: Duration) -> Vec<ThreadComm> {
        assert!(size > 0, "ThreadGroup: a group needs at least one rank");
        let shared = Arc::new(Shared {
            size,
            timeout,
            state: Mutex::new(State { slots: vec![None; size], ..State::default() }),
            changed: Condvar::new(),
        });
        (0..size).map(|rank| ThreadComm { rank, shared: shared.clone() }).collect()
    }
}

struct Shared {
    size: usize,
    timeout: Duration,
    state: Mutex<State>,
    changed: Condvar,
}

/// One collective at a time: every rank puts its operand in its slot; the
/// last to arrive computes the collective's result from them (once, for
/// every rank: an all-reduce's sum is taken by one rank over all cores,
/// not by every rank over its share of them) as a snapshot that every rank
/// reads, and the last to read clears the round for the next.
#[derive(Default)]
struct State {
    /// The collective of the round, named by the first rank to arrive.
    op: Option<String>,
    /// Each rank's operands.
    slots: Vec<Option<Vec<Array>>>,
    arrived: usize,
    snapshot: Option<Arc<Result<Vec<Array>, CommError>>>,
    taken: usize,
    /// Why the group can no longer communicate.
    broken: Option<String>,
}

/// One rank of a [`ThreadGroup`].
pub struct ThreadComm {
    rank: usize,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ThreadComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThreadComm(rank {} of {})", self.rank, self.shared.size)
    }
}

/// A rank that ends while others may still call a collective breaks the
/// group, so they fail at once instead of waiting out the timeout.
impl Drop for ThreadComm {
    fn drop(&mut self) {
        let mut st = self.lock();
        if st.broken.is_none() {
            let how = if std::thread::panicking() { "panicked" } else { "left the group" };
            st.broken = Some(format!("rank {} {how}", self.rank));
        }
        self.shared.changed.notify_all();
    }
}

impl ThreadComm {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves the state as consistent as
        // `broken` says; the group reports it.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits on the condition variable until `done` or the deadline.
    fn wait<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        op: &str,
        deadline: Instant,
        done: impl Fn(&State) -> bool,
    ) -> Result<MutexGuard<'a, State>, CommError> {
        loop {
            // What is ready is taken even from a group that broke since: the
            // last round's result, when a rank has finished and left.
            if done(&st) {
                return Ok(st);
            }
            if let Some(why) = &st.broken {
                return Err(CommError::Broken { op: op.to_string(), rank: self.rank, why: why.clone() });
            }
            let now = Instant::now();
            if now >= deadline {
                let missing: Vec<usize> = (0..self.shared.size).filter(|&r| st.slots[r].is_none()).collect();
                let why = format!(
                    "rank {} waited {:.0?} in {op} for ranks {missing:?} (a rank died, hangs, or called another \
                     collective)",
                    self.rank, self.shared.timeout
                );
                st.broken = Some(why.clone());
                self.shared.changed.notify_all();
                return Err(CommError::Timeout { op: op.to_string(), rank: self.rank, why });
            }
            st = self.shared.changed.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// `finish` of every rank's operands (in rank order), computed by the
    /// last rank to give its operands, once all have.
    fn exchange(
        &self,
        op: &str,
        xs: Vec<Array>,
        finish: impl FnOnce(Vec<Vec<Array>>) -> Result<Vec<Array>, CommError>,
    ) -> Result<Arc<Result<Vec<Array>, CommError>>, CommError> {
        let deadline = Instant::now() + self.shared.timeout;
        // The previous round must be read by everyone before this one starts.
        let mut st = self.wait(self.lock(), op, deadline, |st| st.snapshot.is_none())?;
        // A broken group starts no round: the operands of the ranks that
        // failed may still be in their slots.
        if let Some(why) = &st.broken {
            return Err(CommError::Broken { op: op.to_string(), rank: self.rank, why: why.clone() });
        }
        match &st.op {
            Some(other) if other != op => {
                let why = format!("rank {} called {op} while another rank called {other}", self.rank);
                st.broken = Some(why.clone());
                self.shared.changed.notify_all();
                return Err(CommError::Mismatch { op: op.to_string(), rank: self.rank, why });
            }
            Some(_) => {}
            None => st.op = Some(op.to_string()),
        }
        st.slots[self.rank] = Some(xs);
        st.arrived += 1;
        if st.arrived == self.shared.size {
            let all = st.slots.iter_mut().map(|s| s.take().expect("every rank arrived")).collect();
            st.snapshot = Some(Arc::new(finish(all)));
            st.arrived = 0;
            self.shared.changed.notify_all();
        }
        let mut st = self.wait(st, op, deadline, |st| st.snapshot.is_some())?;
        let all = st.snapshot.clone().expect("waited for it");
        st.taken += 1;
        if st.taken == self.shared.size {
            (st.snapshot, st.taken, st.op) = (None, 0, None);
            self.shared.changed.notify_all();
        }
        Ok(all)
    }
}

impl Communicator for ThreadComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn all_reduce(&self, x: &Array, op: Reduction) -> Result<Array, CommError> {
        Ok(self.all_reduce_many(&[x], op)?.swap_remove(0))
    }
    fn all_reduce_many(&self, xs: &[&Array], op: Reduction) -> Result<Vec<Array>, CommError> {
        // Held by the caller as well, the arrays are read where they lie.
        self.all_reduce_owned(xs.iter().map(|&x| x.clone()).collect(), op)
    }
    fn all_reduce_owned(&self, xs: Vec<Array>, op: Reduction) -> Result<Vec<Array>, CommError> {
        super::check_one_dtype(&xs.iter().collect::<Vec<_>>())?;
        let out = self.exchange("all_reduce", xs, |all| {
            let count = all[0].len();
            if let Some(r) = all.iter().position(|xs| xs.len() != count) {
                return Err(CommError::Operands {
                    op: "all_reduce".into(),
                    why: format!("rank 0 gives {count} arrays but rank {r} gives {}", all[r].len()),
                });
            }
            // Each array moves on as it came, so that the first rank's, when
            // no one else holds it, takes the result.
            let mut ranks: Vec<_> = all.into_iter().map(Vec::into_iter).collect();
            (0..count)
                .map(|_| combine::reduce(ranks.iter_mut().map(|r| r.next().expect("counted")).collect(), op))
                .collect()
        })?;
        out.as_ref().clone()
    }
    fn broadcast(&self, x: &Array, root: usize) -> Result<Array, CommError> {
        super::check_root("broadcast", root, self.size())?;
        let out = self.exchange("broadcast", vec![x.clone()], |all| Ok(vec![firsts(all).swap_remove(root)]))?;
        Ok(out.as_ref().clone()?.swap_remove(0))
    }
    fn all_gather(&self, x: &Array, axis: usize) -> Result<Array, CommError> {
        let out = self.exchange("all_gather", vec![x.clone()], |all| Ok(vec![combine::gather(&firsts(all), axis)?]))?;
        Ok(out.as_ref().clone()?.swap_remove(0))
    }
    fn reduce_scatter(&self, x: &Array, axis: usize) -> Result<Array, CommError> {
        let out = self.exchange("reduce_scatter", vec![x.clone()], |all| {
            Ok(vec![combine::reduce(firsts(all), Reduction::Sum)?])
        })?;
        combine::scatter(&out.as_ref().clone()?[0], axis, self.rank, self.size())
    }
    fn barrier(&self) -> Result<(), CommError> {
        self.exchange("barrier", Vec::new(), |_| Ok(Vec::new()))?.as_ref().clone().map(|_| ())
    }
}

/// Each rank's operand, of a collective that takes one (ranks meet only
/// in a collective of the same name, so every rank gave one).
fn firsts(all: Vec<Vec<Array>>) -> Vec<Array> {
    all.into_iter().map(|mut xs| xs.swap_remove(0)).collect()
}
