//! The all-reduce of ranks that share one machine, through memory they
//! share (MPI-3's `MPI_Win_allocate_shared`).
//!
//! The operand (several arrays are taken as their concatenation, each
//! part read from and written to the arrays where it lies, without
//! concatenating them) is cut into one part per rank, and rank r combines
//! part r:
//! 1. each rank copies the parts the others combine into its slot of a
//!    shared window, and waits for all at a barrier;
//! 2. rank r combines part r of every operand in rank order (its own from
//!    its array, the others' from their slots), writing the result into its
//!    output and over part r of the next rank's slot (r + 1, wrapping),
//!    which it has just read, so that the store finds the lines in its own
//!    cache; then it waits at a second barrier;
//! 3. each rank copies the other parts of the result from the slots they
//!    were written to.
//!
//! Every rank so moves about its operand's size through the shared memory
//! and adds a 1/size share, and the results are the same bits everywhere.
//! An array given up ([`Operand::Owned`]) is its own output: the result is
//! written over it, which spares the stores into a second array of a
//! model's size (W3's all-reduce on two processes: 0.39-0.42 ms into new
//! arrays, 0.36-0.37 ms in place).
//! MPI's own all-reduce between the processes of one machine copies the
//! data through its transport's fragments and took about 1.3 to 1.5 times
//! as long for a model's gradients (`examples/mpi_check.rs w3`, two
//! processes on 2 cores).
//!
//! Each rank's slot comes in two sets used in turn. A rank may put its next
//! operand while a slower rank still copies the last results out (and the
//! parts' bounds move with the operand's length and dtype); it puts into
//! the same set again only after the next call's first barrier, which no
//! rank passes before it has copied the results out.

use std::ffi::c_void;
use std::ops::Range;
use std::os::raw::c_int;
use std::ptr::null_mut;

use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives as _};

use crate::array::{DType, Element};

use super::mpi::Watch;
use super::{CommError, Reduction};

/// The bytes before each slot's data: its [`Header`], padded so that the
/// data stay aligned for any element and on a cache line of their own.
const HEADER: usize = 64;

/// Elements combined at once, small enough to stay in the L1 cache while
/// every rank's slot is added in.
const BLOCK: usize = 2048;

/// One array of an all-reduce.
pub(super) enum Operand<'a, T> {
    /// Read where it lies; the result goes to a new vector.
    Borrowed(&'a [T]),
    /// Given up: the result is written over it.
    Owned(Vec<T>),
}

/// What each rank says of its operand, so that the ranks find out together
/// when theirs do not agree (and never read past another rank's data).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    len: u64,
    dtype: u32,
    op: u32,
    /// A hash of the operands' shapes, so that ranks whose arrays hold as
    /// many elements in all but are cut or shaped differently are told.
    layout: u64,
}

impl Header {
    fn describe(&self) -> String {
        let dtype = [DType::F32, DType::F64, DType::I64, DType::F16, DType::BF16]
            .into_iter()
            .find(|&d| d as u32 == self.dtype)
            .map_or("another dtype".to_string(), |d| d.to_string());
        let op = [Reduction::Sum, Reduction::Mean, Reduction::Max]
            .into_iter()
            .find(|&o| o as u32 == self.op)
            .map_or("another reduction".to_string(), |o| format!("{o:?}"));
        format!("the {op} of {} {dtype} elements", self.len)
    }

    /// Whether the all-reduce takes this reduction.
    pub(super) fn reduces_by(&self, op: Reduction) -> bool {
        self.op == op as u32
    }

    /// The header of an all-reduce of arrays of these shapes.
    pub(super) fn new<'a>(dtype: DType, op: Reduction, shapes: impl Iterator<Item = &'a [usize]>) -> Header {
        // FNV-1a over each shape's rank and extents.
        let (mut len, mut layout) = (0u64, 0xcbf2_9ce4_8422_2325u64);
        for shape in shapes {
            len += shape.iter().product::<usize>() as u64;
            for &d in std::iter::once(&shape.len()).chain(shape) {
                layout = (layout ^ d as u64).wrapping_mul(0x100_0000_01b3);
            }
        }
        Header { len, dtype: dtype as u32, op: op as u32, layout }
    }
}

/// A shared window over the ranks of one machine, for all-reduces.
pub(super) struct NodeWindow {
    node: SimpleCommunicator,
    win: ffi::MPI_Win,
    /// Each rank's segment: two slots, each a [`Header`] then `capacity`
    /// bytes of data.
    segments: Vec<*mut u8>,
    /// The bytes of data a slot holds.
    capacity: usize,
    /// The all-reduces through this window, the current one included
    /// (since it was last allocated): their parity picks the set.
    calls: usize,
}

impl NodeWindow {
    /// A window over `node`, every rank of which must call this.
    pub(super) fn new(node: SimpleCommunicator, watch: &Watch) -> Result<NodeWindow, CommError> {
        // SAFETY: reads a constant rsmpi's C shim defines.
        let mut w =
            NodeWindow { node, win: unsafe { ffi::RSMPI_WIN_NULL }, segments: Vec::new(), capacity: 0, calls: 0 };
        w.allocate(watch, 1 << 16)?;
        Ok(w)
    }

    /// Replaces the window with one whose slots hold `capacity` bytes.
    fn allocate(&mut self, watch: &Watch, capacity: usize) -> Result<(), CommError> {
        self.free(watch);
        let capacity = capacity.next_multiple_of(HEADER);
        // MPI aligns a segment to 8 bytes only: each rank starts its slots
        // at the next multiple of `HEADER`, which is the same offset in every
        // process as the shared pages are mapped at page boundaries.
        let segment = 2 * (HEADER + capacity) + HEADER;
        let mut base: *mut u8 = null_mut();
        // SAFETY: as in `new`.
        let mut win = unsafe { ffi::RSMPI_WIN_NULL };
        // SAFETY: every rank of `node` makes this call with its own segment
        // size; MPI writes the base address and the window handle.
        let rc = watch.run(|| unsafe {
            ffi::MPI_Win_allocate_shared(
                segment as ffi::MPI_Aint,
                1,
                ffi::RSMPI_INFO_NULL,
                self.node.as_raw(),
                &mut base as *mut *mut u8 as *mut c_void,
                &mut win,
            )
        });
        check(rc, "MPI_Win_allocate_shared")?;
        self.win = win;
        for rank in 0..self.node.size() {
            let (mut size, mut unit, mut at): (ffi::MPI_Aint, c_int, *mut u8) = (0, 0, null_mut());
            // SAFETY: `win` is a shared window of `node`, of which `rank` is a rank.
            let rc = unsafe {
                ffi::MPI_Win_shared_query(win, rank, &mut size, &mut unit, &mut at as *mut *mut u8 as *mut c_void)
            };
            check(rc, "MPI_Win_shared_query")?;
            if (size as usize) < segment {
                return Err(CommError::Transport(format!(
                    "rank {rank}'s shared segment is {size} bytes; expected {segment}"
                )));
            }
            self.segments.push(at.wrapping_add(at.align_offset(HEADER)));
        }
        // One passive epoch for the window's life: the barriers and
        // `MPI_Win_sync` order the loads and stores.
        // SAFETY: `win` is a window just made, not yet locked.
        check(unsafe { ffi::MPI_Win_lock_all(ffi::MPI_MODE_NOCHECK as c_int, win) }, "MPI_Win_lock_all")?;
        self.capacity = capacity;
        // A call that grows the window goes on in set 0.
        self.calls = 0;
        Ok(())
    }

    /// Frees the window, after a barrier so that no rank is still reading.
    fn free(&mut self, watch: &Watch) {
        if self.segments.is_empty() {
            return;
        }
        watch.run(|| self.node.barrier());
        self.release();
    }

    fn release(&mut self) {
        if self.segments.is_empty() {
            return;
        }
        // SAFETY: the window is locked by `allocate` and freed once: `segments`
        // is emptied with it.
        unsafe {
            ffi::MPI_Win_unlock_all(self.win);
            ffi::MPI_Win_free(&mut self.win);
        }
        self.segments.clear();
    }

    /// Rank `rank`'s slot in the current call's set.
    fn slot(&self, rank: usize) -> *mut u8 {
        // SAFETY: a segment holds two slots of `HEADER + capacity` bytes.
        unsafe { self.segments[rank].add(self.calls % 2 * (HEADER + self.capacity)) }
    }

    fn header(&self, rank: usize) -> Header {
        // SAFETY: the header is written before the barrier that precedes
        // any read of another rank's, and the slot is aligned to `HEADER`.
        unsafe { std::ptr::read_volatile(self.slot(rank) as *const Header) }
    }

    /// Rank `rank`'s slot's data, as elements of `T`.
    fn data<T>(&self, rank: usize) -> *mut T {
        // SAFETY: a slot's data follow its header.
        unsafe { self.slot(rank).add(HEADER) as *mut T }
    }

    /// Puts this rank's header in its slot, and, when they fit, the parts
    /// of its data the other ranks combine, each where it is in the
    /// concatenation of `xs`.
    fn put<T: Element>(&self, header: Header, xs: &[*const T], lens: &[usize]) {
        let (rank, size) = (self.node.rank() as usize, self.segments.len());
        let slot = self.slot(rank);
        let n = header.len as usize;
        // SAFETY: this rank's own slot, whose header and other parts no rank
        // reads before the next barrier (see the module's docs); the data fit.
        unsafe {
            std::ptr::write_volatile(slot as *mut Header, header);
            if n * std::mem::size_of::<T>() <= self.capacity {
                let data = self.data::<T>(rank);
                for r in (0..size).filter(|&r| r != rank) {
                    for (i, local, at) in spans(lens, part(r, size, n)) {
                        std::ptr::copy_nonoverlapping(xs[i].add(local.start), data.add(at), local.len());
                    }
                }
            }
        }
    }

    /// Waits for every rank, with its stores visible to the others.
    fn sync(&self, watch: &Watch) {
        watch.run(|| {
            // SAFETY: the window is allocated and locked.
            unsafe { ffi::MPI_Win_sync(self.win) };
            self.node.barrier();
            // SAFETY: as above.
            unsafe { ffi::MPI_Win_sync(self.win) };
        });
    }

    /// Every rank's arrays `xs` combined elementwise by `combine` in rank
    /// order, each result passed through `finish`: `finish(((x0 ∘ x1) ∘ x2) ...)`
    /// for each array, written over it where it is owned. `header`
    /// describes the arrays ([`Header::new`]).
    pub(super) fn all_reduce<T: Element>(
        &mut self,
        watch: &Watch,
        header: Header,
        xs: Vec<Operand<'_, T>>,
        combine: impl Fn(T, T) -> T + Copy,
        finish: impl Fn(T) -> T + Copy,
    ) -> Result<Vec<Vec<T>>, CommError> {
        // Every array is reached through these pointers alone from here on:
        // an owned one is read and then written through the same pointer.
        // (Moving an owned vector into `outs` leaves its elements where they are.)
        let (mut lens, mut sources, mut outs) = (Vec::new(), Vec::new(), Vec::new());
        for x in xs {
            match x {
                Operand::Borrowed(s) => {
                    lens.push(s.len());
                    sources.push(s.as_ptr());
                    outs.push(crate::array::pool::with_capacity(s.len()));
                }
                Operand::Owned(mut v) => {
                    lens.push(v.len());
                    sources.push(v.as_mut_ptr() as *const T);
                    outs.push(v);
                }
            }
        }
        let bases: Vec<*mut T> = outs.iter_mut().map(|o| o.as_mut_ptr()).collect();
        // Every rank counts every call, whatever its outcome, so the ranks
        // use the same set.
        self.calls += 1;
        self.put(header, &sources, &lens);
        self.sync(watch);
        let (rank, size) = (self.node.rank() as usize, self.segments.len());
        if let Some(other) = (0..size).find(|&r| self.header(r) != header) {
            let theirs = self.header(other);
            let (mine, theirs) = if (Header { layout: header.layout, ..theirs }) == header {
                (format!("{} in arrays of some shapes", header.describe()), "arrays of other shapes".into())
            } else {
                (header.describe(), theirs.describe())
            };
            return Err(CommError::Operands {
                op: "all_reduce".into(),
                why: format!("rank {rank} gives {mine} but rank {other} gives {theirs}"),
            });
        }
        let n = header.len as usize;
        let bytes = n * std::mem::size_of::<T>();
        if bytes > self.capacity {
            // Every rank saw the same headers, so all of them grow.
            self.allocate(watch, bytes.max(2 * self.capacity))?;
            self.put(header, &sources, &lens);
            self.sync(watch);
        }
        // Where the result of part `r` goes and is read from.
        let results = |r: usize| (r + 1) % size;
        // SAFETY: the other ranks put part `rank` of their operands before
        // the barrier and write no more of their slots before the next
        // call's; part `rank` of every slot is read by this rank alone, which
        // writes the result over part `rank` of one of them after reading
        // it, and no one reads that before the next barrier. Each output has
        // room for its array's length, and a span lies within its array; an
        // owned array's block is read before its result is written.
        unsafe {
            for (i, local, at) in spans(&lens, part(rank, size, n)) {
                let from: Vec<*const T> = (0..size)
                    .map(
                        |r| if r == rank { sources[i].add(local.start) } else { self.data::<T>(r).add(at) as *const T },
                    )
                    .collect();
                let (out, shared) = (bases[i].add(local.start), self.data::<T>(results(rank)).add(at));
                combine_into(out, shared, &from, local.len(), combine, finish);
            }
        }
        self.sync(watch);
        for r in (0..size).filter(|&r| r != rank) {
            for (i, local, at) in spans(&lens, part(r, size, n)) {
                // SAFETY: rank r combined its part before the barrier, and
                // the slot it wrote to is written again only after the next
                // call's first barrier.
                unsafe {
                    let from = self.data::<T>(results(r)).add(at);
                    std::ptr::copy_nonoverlapping(from, bases[i].add(local.start), local.len())
                };
            }
        }
        for (out, len) in outs.iter_mut().zip(lens) {
            // SAFETY: the parts cover the concatenation, every span of it
            // written above (an owned array has its length already).
            unsafe { out.set_len(len) };
        }
        Ok(outs)
    }
}

impl Drop for NodeWindow {
    fn drop(&mut self) {
        self.release();
    }
}

/// The pieces of the concatenation of arrays of lengths `lens` that lie in
/// `range`: for each, the array, the range within it and where it starts
/// in the concatenation.
fn spans(lens: &[usize], range: Range<usize>) -> impl Iterator<Item = (usize, Range<usize>, usize)> + '_ {
    let mut start = 0;
    lens.iter().enumerate().filter_map(move |(i, &len)| {
        let (lo, hi) = (start, start + len);
        start = hi;
        let (a, b) = (range.start.max(lo), range.end.min(hi));
        (a < b).then(|| (i, a - lo..b - lo, a))
    })
}

/// The `rank`-th of `size` near-equal parts of `0..n`.
fn part(rank: usize, size: usize, n: usize) -> Range<usize> {
    let share = n.div_ceil(size);
    (rank * share).min(n)..((rank + 1) * share).min(n)
}

/// `out[i] = shared[i] = finish(combine(...combine(sources[0][i], sources[1][i])..., sources[k][i]))`
/// for `i < len`, a block at a time in a buffer of the L1 cache, so that
/// `out` may be one of the sources.
///
/// # Safety
/// Every source must be valid for reading `len` elements, `out` and
/// `shared` for writing them; each of `out` and `shared` either overlaps no
/// source or is the very elements of one.
unsafe fn combine_into<T: Copy>(
    out: *mut T,
    shared: *mut T,
    sources: &[*const T],
    len: usize,
    combine: impl Fn(T, T) -> T + Copy,
    finish: impl Fn(T) -> T + Copy,
) {
    let (&first, rest) = sources.split_first().expect("a group has a rank");
    let mut block: Vec<T> = Vec::with_capacity(BLOCK.min(len));
    for start in (0..len).step_by(BLOCK) {
        let m = BLOCK.min(len - start);
        block.clear();
        // SAFETY: in bounds, as the caller promises.
        unsafe {
            block.extend_from_slice(std::slice::from_raw_parts(first.add(start), m));
            for &other in rest {
                for (a, &o) in block.iter_mut().zip(std::slice::from_raw_parts(other.add(start), m)) {
                    *a = combine(*a, o);
                }
            }
        }
        for a in block.iter_mut() {
            *a = finish(*a);
        }
        // SAFETY: as above; the sources' block has been read.
        unsafe {
            std::ptr::copy_nonoverlapping(block.as_ptr(), shared.add(start), m);
            std::ptr::copy_nonoverlapping(block.as_ptr(), out.add(start), m);
        }
    }
}

fn check(rc: c_int, call: &str) -> Result<(), CommError> {
    if rc == ffi::MPI_SUCCESS as c_int {
        Ok(())
    } else {
        Err(CommError::Transport(format!("{call} failed with MPI error {rc}")))
    }
}
