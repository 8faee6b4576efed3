//! The fork-join team that runs the kernels' split work.
//!
//! Handing a kernel's pieces to rayon's pool from a thread whose partner
//! has gone to sleep costs a wake-up, and the caller waits asleep too: on a
//! virtual machine each is an interrupt to a halted vCPU, and a
//! `rayon::join` from outside the pool measured 6.5 µs. A transformer's
//! training step is hundreds of kernels of 10–500 µs each, and their
//! splits paid that again and again, or did not split at all.
//! The team's helpers instead spin for a while after each job (as OpenMP's
//! threads do), so a kernel that follows another finds them awake and the
//! hand-off costs an atomic store and a cache line's trip between cores.
//! After `SPIN` without work a helper sleeps on a condition variable, so
//! an idle program holds no core.
//!
//! One job runs at a time. A caller that finds the team busy (another
//! thread's kernel, or a kernel called from inside a piece) runs its pieces
//! itself, which is always correct and never waits on the team.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a helper keeps looking for work after its last job before it
/// sleeps. Long enough to span the gaps between a model's kernels (a few
/// µs to a few hundred), short enough that a pause in the program frees
/// the core soon: libgomp's default spin is of the same order.
const SPIN: Duration = Duration::from_micros(300);

/// One job: `pieces` calls of `f`, claimed one by one by whoever is free.
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    pieces: usize,
    /// How many more helpers may join (see [`super::limit_threads`]).
    seats: AtomicUsize,
    next: AtomicUsize,
    done: AtomicUsize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Job<'_> {
    /// Claims and runs pieces until none is left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, SeqCst);
            if i >= self.pieces {
                return;
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| (self.f)(i))) {
                self.panic.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(p);
            }
            self.done.fetch_add(1, SeqCst);
        }
    }
}

struct Team {
    /// The job on offer, or null. Points at a `Job` on the caller's stack,
    /// which outlives every use: the caller withdraws it and then waits for
    /// `users` to reach zero before returning.
    slot: AtomicPtr<Job<'static>>,
    /// Counts the jobs offered; a helper joins each job once.
    epoch: AtomicUsize,
    /// Helpers holding a reference to the job in `slot`.
    users: AtomicUsize,
    /// Set while one caller owns the team.
    busy: AtomicBool,
    /// Helpers asleep, or about to check `slot` once more before sleeping.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    helpers: usize,
}

fn team() -> &'static Team {
    static TEAM: OnceLock<&'static Team> = OnceLock::new();
    TEAM.get_or_init(|| {
        // rayon's global pool's size, even when first called inside a
        // smaller pool.
        let threads = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let helpers = threads - 1;
        let team: &'static Team = Box::leak(Box::new(Team {
            slot: AtomicPtr::new(ptr::null_mut()),
            epoch: AtomicUsize::new(0),
            users: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            helpers,
        }));
        for i in 0..helpers {
            std::thread::Builder::new()
                .name(format!("ferrax-team-{i}"))
                .spawn(move || team.help())
                .expect("ferrax: could not start a kernel thread");
        }
        team
    })
}

impl Team {
    fn help(&self) {
        let mut idle_since = Instant::now();
        let mut spins = 0u32;
        let mut seen = 0;
        loop {
            let epoch = self.epoch.load(SeqCst);
            if epoch != seen {
                seen = epoch;
                self.take_part();
                idle_since = Instant::now();
                spins = 0;
                continue;
            }
            spins += 1;
            if spins % 64 != 0 {
                std::hint::spin_loop();
                continue;
            }
            if idle_since.elapsed() < SPIN {
                // Let a runnable thread (linear algebra on rayon's pool,
                // another process) have the core rather than spin beside it.
                std::thread::yield_now();
                continue;
            }
            // Announce the sleep before the last look at `epoch`: a caller
            // counts its job before reading `sleepers`, so either this look
            // sees the job or the caller sees the sleeper and signals
            // (both under `lock`, so the signal cannot fall between the
            // look and the wait).
            let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.sleepers.fetch_add(1, SeqCst);
            let guard = if self.epoch.load(SeqCst) == seen {
                self.wake.wait(guard).unwrap_or_else(|e| e.into_inner())
            } else {
                guard
            };
            self.sleepers.fetch_sub(1, SeqCst);
            drop(guard);
            idle_since = Instant::now();
            spins = 0;
        }
    }

    /// Works on the job on offer, if any.
    fn take_part(&self) {
        self.users.fetch_add(1, SeqCst);
        // Only a job still on offer after registering as a user is safe to
        // touch: its caller waits for `users` to drop before returning.
        let job = self.slot.load(SeqCst);
        // SAFETY: see `slot`; the job lives until `users` is back to 0.
        if let Some(job) = unsafe { job.as_ref() } {
            if job.seats.fetch_update(SeqCst, SeqCst, |s| s.checked_sub(1)).is_ok() {
                job.work();
            }
        }
        self.users.fetch_sub(1, SeqCst);
    }
}

/// Calls `f(0)`, …, `f(pieces - 1)`, spread over the calling thread and
/// the team's helpers, and returns when all have returned. A panic in a
/// piece is raised here once every piece has finished.
pub fn run(pieces: usize, f: &(dyn Fn(usize) + Sync)) {
    let team = team();
    let threads = super::threads();
    let seats = AtomicUsize::new(threads - 1);
    let job = Job { f, pieces, seats, next: AtomicUsize::new(0), done: AtomicUsize::new(0), panic: Mutex::new(None) };
    if pieces < 2
        || team.helpers == 0
        || threads < 2
        || team.busy.compare_exchange(false, true, SeqCst, SeqCst).is_err()
    {
        job.work();
    } else {
        // SAFETY: the lifetime is erased only while the job is on offer; it
        // is withdrawn and its users drained below, before `job` is dropped.
        let erased = unsafe { std::mem::transmute::<*const Job<'_>, *mut Job<'static>>(&job) };
        team.slot.store(erased, SeqCst);
        team.epoch.fetch_add(1, SeqCst);
        if team.sleepers.load(SeqCst) > 0 {
            let _guard = team.lock.lock().unwrap_or_else(|e| e.into_inner());
            team.wake.notify_all();
        }
        job.work();
        wait_until(|| job.done.load(SeqCst) == pieces);
        team.slot.store(ptr::null_mut(), SeqCst);
        wait_until(|| team.users.load(SeqCst) == 0);
        team.busy.store(false, SeqCst);
    }
    if let Some(p) = job.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        resume_unwind(p);
    }
}

/// Spins until `done()`, yielding the core now and then: a helper that
/// holds the last piece may be waiting for this core.
fn wait_until(done: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !done() {
        spins = spins.wrapping_add(1);
        if spins % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// A raw pointer that pieces on several threads may use for disjoint parts.
struct Shared<U>(*mut U);
// SAFETY: each piece touches only its own chunk of the slice.
unsafe impl<U: Send> Sync for Shared<U> {}

/// Calls `f(&mut state, i)` for `i` in `0..pieces`, spread over the team
/// like [`run`], where each thread taking part makes its `state` once with
/// `init` (scratch buffers reused from piece to piece).
pub fn run_with<S>(pieces: usize, init: impl Fn() -> S + Sync, f: impl Fn(&mut S, usize) + Sync) {
    let next = AtomicUsize::new(0);
    let threads = (team().helpers + 1).min(super::threads()).min(pieces);
    run(threads, &|_| {
        let mut state = None;
        loop {
            let i = next.fetch_add(1, SeqCst);
            if i >= pieces {
                return;
            }
            f(state.get_or_insert_with(&init), i);
        }
    });
}

/// Calls `f(&mut state, start, chunk)` for consecutive chunks of `chunk`
/// elements of `out` (the last may be shorter), spread over the team, with
/// a `state` per thread as in [`run_with`].
pub fn for_chunks_with<U: Send, S>(
    out: &mut [U],
    chunk: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, &mut [U]) + Sync,
) {
    let n = out.len();
    let chunk = chunk.max(1);
    let base = Shared(out.as_mut_ptr());
    let base = &base;
    run_with(n.div_ceil(chunk), init, |state, i| {
        let start = i * chunk;
        let len = chunk.min(n - start);
        // SAFETY: pieces have distinct `i`, so their ranges are disjoint
        // parts of `out`, which is borrowed mutably for this call.
        let part = unsafe { std::slice::from_raw_parts_mut(base.0.add(start), len) };
        f(state, start, part)
    });
}

/// Calls `f(start, chunk)` for consecutive chunks of `chunk` elements of
/// `out` (the last may be shorter), spread over the team.
pub fn for_chunks<U: Send>(out: &mut [U], chunk: usize, f: impl Fn(usize, &mut [U]) + Sync) {
    for_chunks_with(out, chunk, || (), |_, start, part| f(start, part))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each piece runs exactly once, whether the team is free, busy with
    /// another thread's job, or called from inside one of its own pieces.
    #[test]
    fn every_piece_runs_once_from_any_caller() {
        let count = |pieces: usize| {
            let hits: Vec<AtomicUsize> = (0..pieces).map(|_| AtomicUsize::new(0)).collect();
            run(pieces, &|i| {
                hits[i].fetch_add(1, SeqCst);
                // A kernel inside a piece finds the team busy and runs alone.
                let mut inner = vec![0usize; 9];
                for_chunks(&mut inner, 2, |start, part| part.iter_mut().enumerate().for_each(|(k, v)| *v = start + k));
                assert_eq!(inner, (0..9).collect::<Vec<_>>());
            });
            assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "{pieces} pieces: {hits:?}");
        };
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || (0..200).for_each(|k| count((k + t) % 37)));
            }
        });
        // After a pause longer than the helpers' spin, they are woken.
        std::thread::sleep(SPIN * 4);
        count(64);
    }

    /// With kernels limited to one thread the caller runs every piece
    /// (other tests meanwhile run theirs alone too, which they allow).
    #[test]
    fn a_limit_of_one_thread_keeps_the_pieces_on_the_caller() {
        super::super::limit_threads(1);
        let me = std::thread::current().id();
        let elsewhere = AtomicUsize::new(0);
        run(64, &|_| {
            if std::thread::current().id() != me {
                elsewhere.fetch_add(1, SeqCst);
            }
            std::thread::sleep(Duration::from_micros(20));
        });
        assert!(!super::super::worth_splitting(usize::MAX, 1));
        super::super::limit_threads(usize::MAX);
        assert_eq!(elsewhere.load(SeqCst), 0);
    }

    #[test]
    fn a_panic_in_a_piece_reaches_the_caller_after_the_rest() {
        let done = AtomicUsize::new(0);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            run(16, &|i| {
                if i == 5 {
                    panic!("piece five");
                }
                done.fetch_add(1, SeqCst);
            })
        }));
        let message = caught.expect_err("the panic is raised").downcast::<&str>().map(|m| *m);
        assert_eq!(message.ok(), Some("piece five"));
        assert_eq!(done.load(SeqCst), 15);
        // The team is free again.
        let mut v = vec![0; 100];
        for_chunks(&mut v, 7, |start, part| part.iter_mut().for_each(|x| *x = start));
        assert_eq!(v[99], 98);
    }
}
