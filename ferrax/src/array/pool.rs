//! Reuse of large array buffers.
//!
//! Eager code allocates a fresh output for every operation. For buffers of
//! more than a few pages the C allocator hands memory back to the kernel on
//! free and takes it again on the next allocation, and every page of it is
//! then faulted in and zeroed anew: on a W5 Hessian that was a fifth of the
//! time (`perf`: `exc_page_fault`, `clear_page_erms`). Buffers of at least
//! [`MIN_BYTES`] are therefore allocated with a capacity rounded up to a size
//! class (four per octave, so at most a quarter is unused) and, when their
//! array is dropped, kept here for the next allocation of the same class —
//! up to [`MAX_BYTES`] in all, beyond which they are freed as before.
//! [`trim`] frees what is kept.
//!
//! Buffers of a few kilobytes are pooled too. glibc serves a request of a
//! kilobyte or more by first merging every small block freed since (a
//! tensor's bookkeeping frees many): on an eager Hessian-vector product
//! of 200 f64 unknowns, `malloc_consolidate` and its kin were a tenth of
//! the time, and with [`MIN_BYTES`] 1 KiB instead of 64 KiB it took
//! 48–50 µs against 52 (AMD EPYC Zen 4, 2026-12-08).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use super::{with_buffer, Buffer, DType, Element};

/// Buffers smaller than this come from the allocator and go back to it.
pub const MIN_BYTES: usize = 1 << 10;
/// The most memory the pool keeps.
pub const MAX_BYTES: usize = 256 << 20;

/// A multiplicative hash for the pool's keys (addresses and capacities,
/// which nobody outside chooses): the lock is held across every lookup, and
/// with buffers of a kilobyte pooled, std's SipHash was a visible part of
/// an eager Hessian-vector product.
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        // A product's low bits depend on the key's low bits alone (zero in
        // an aligned address), and the table indexes by them.
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.write_u64(b.into()));
    }

    fn write_u64(&mut self, x: u64) {
        // Fibonacci hashing: the odd constant nearest 2^64 / φ.
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

type Mixed = BuildHasherDefault<Mix>;

#[derive(Default)]
struct Pool {
    /// Free buffers by (dtype, capacity in elements); their length is 0.
    free: HashMap<(DType, usize), Vec<Buffer>, Mixed>,
    bytes: usize,
    /// The addresses of the buffers the pool allocated, free or in use. Only
    /// those are kept when dropped: a buffer from elsewhere whose capacity
    /// happens to be a size class would otherwise be kept where no
    /// allocation of the pool asks for it, and the pool would fill up with
    /// memory nobody takes.
    ours: HashSet<usize, Mixed>,
}

impl Pool {
    /// A kept buffer of `dtype` with capacity `cap`, if there is one.
    fn take(&mut self, dtype: DType, cap: usize) -> Option<Buffer> {
        let buf = self.free.get_mut(&(dtype, cap))?.pop()?;
        self.bytes -= bytes_of(&buf);
        Some(buf)
    }

    /// Keeps `buf` if the pool allocated it and there is room.
    fn put(&mut self, mut buf: Buffer) {
        let (cap, bytes, addr) = (capacity_of(&buf), bytes_of(&buf), address_of(&buf));
        if !self.ours.contains(&addr) || cap == 0 || class(cap, bytes / cap) != Some(cap) {
            return; // not allocated here (or reallocated since): freed
        }
        if self.bytes + bytes > MAX_BYTES {
            self.ours.remove(&addr);
            return; // no room: freed
        }
        with_buffer!(&mut buf, v => v.clear());
        self.bytes += bytes;
        self.free.entry((buf.dtype(), cap)).or_default().push(buf);
    }
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<Pool>> {
    // A panic while the lock was held cannot leave the map inconsistent
    // (every update is one insert or remove), so a poisoned lock is usable.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The smallest size class of at least `n` elements of `size` bytes, or
/// `None` when such a buffer is too small to pool.
fn class(n: usize, size: usize) -> Option<usize> {
    if n.saturating_mul(size) < MIN_BYTES {
        return None;
    }
    // Four classes per octave: 2^k times 1, 1.25, 1.5 and 1.75.
    let top = usize::BITS - 1 - n.leading_zeros();
    let quarter = 1usize << (top - 2);
    Some(n.div_ceil(quarter) * quarter)
}

fn bytes_of(buf: &Buffer) -> usize {
    fn of<T>(v: &Vec<T>) -> usize {
        v.capacity() * std::mem::size_of::<T>()
    }
    with_buffer!(buf, v => of(v))
}

fn address_of(buf: &Buffer) -> usize {
    with_buffer!(buf, v => v.as_ptr() as usize)
}

fn capacity_of(buf: &Buffer) -> usize {
    with_buffer!(buf, v => v.capacity())
}

/// An empty vector with room for at least `n` elements, reused where the
/// pool has one of its size class.
pub fn with_capacity<T: Element>(n: usize) -> Vec<T> {
    let Some(cap) = class(n, std::mem::size_of::<T>()) else { return Vec::with_capacity(n) };
    let mut guard = lock();
    let pool = guard.get_or_insert_with(Pool::default);
    if let Some(v) = pool.take(T::DTYPE, cap).and_then(T::from_buffer) {
        return v;
    }
    let v = Vec::with_capacity(cap);
    pool.ours.insert(v.as_ptr() as usize);
    v
}

/// A vector of `n` copies of `value`, its memory reused where possible.
pub fn filled<T: Element>(n: usize, value: T) -> Vec<T> {
    let mut v = with_capacity(n);
    v.resize(n, value);
    v
}

/// Hands a vector from [`with_capacity`] or [`filled`] back for reuse, for
/// scratch space that never becomes an array's buffer.
pub(crate) fn give_back<T: Element>(v: Vec<T>) {
    recycle(T::into_buffer(v));
}

/// Keeps `buf` for reuse when it is of a pooled size class and there is room.
pub(super) fn recycle(buf: Buffer) {
    if bytes_of(&buf) < MIN_BYTES {
        return; // too small to be kept: skip the lock
    }
    lock().get_or_insert_with(Pool::default).put(buf);
}

/// Frees every buffer the pool keeps; returns how many bytes that was.
///
/// ```
/// let kept = ferrax::array::pool::trim();
/// assert_eq!(ferrax::array::pool::trim(), 0);
/// # let _ = kept;
/// ```
pub fn trim() -> usize {
    let mut guard = lock();
    let Some(pool) = guard.as_mut() else { return 0 };
    let bytes = pool.bytes;
    for buf in pool.free.drain().flat_map(|(_, list)| list) {
        pool.ours.remove(&address_of(&buf));
    }
    pool.bytes = 0;
    bytes
}

/// How many bytes the pool keeps now.
pub fn kept_bytes() -> usize {
    lock().as_ref().map_or(0, |pool| pool.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_by_at_most_a_quarter() {
        assert_eq!(class(100, 4), None);
        for n in [16_384usize, 16_385, 20_000, 65_536, 100_000, 1 << 20, (1 << 20) + 1] {
            let c = class(n, 4).unwrap();
            assert!(c >= n && c - n <= n / 4 + 1, "{n} -> {c}");
            assert_eq!(class(c, 4), Some(c), "a class is its own class");
        }
    }

    #[test]
    fn a_kept_buffer_is_reused_by_its_class_only() {
        let mut pool = Pool::default();
        let n = 3 * (1 << 17) + 5;
        let cap = class(n, 8).unwrap();
        let mut v: Vec<f64> = Vec::with_capacity(cap);
        v.resize(n, 1.5);
        let ptr = v.as_ptr();
        pool.put(Buffer::F64(v.clone()));
        assert_eq!(pool.bytes, 0, "a buffer the pool did not allocate is not kept");
        pool.ours.insert(ptr as usize);
        pool.put(Buffer::F64(v));
        assert_eq!(pool.bytes, cap * 8);
        assert!(pool.take(DType::F32, cap).is_none(), "another dtype does not take it");
        let again = pool.take(DType::F64, cap).unwrap();
        assert_eq!(pool.bytes, 0);
        let again = f64::from_buffer(again).unwrap();
        assert_eq!((again.as_ptr(), again.len()), (ptr, 0), "the same memory, empty");
        // Nothing is kept past the cap, and the pool forgets what it frees.
        pool.bytes = MAX_BYTES - 8;
        pool.put(Buffer::F64(again));
        assert_eq!(pool.bytes, MAX_BYTES - 8);
        assert!(pool.ours.is_empty());
    }
}
