//! The hierarchical timing wheel itself: see the [module docs](super) for the design and a worked
//! example.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

/// "No link" marker for the intrusive lists (slot indexes and bucket indexes).
const NIL: u32 = u32::MAX;
/// Expiration of a bucket that holds no task (and so is not in the queue).
const NO_EXPIRATION: u64 = u64::MAX;
/// Deadlines are clamped to this (about 146 million years of milliseconds) so that rounding a
/// deadline up to a tick and adding a wheel's interval to its clock can never overflow.
pub const MAX_DEADLINE_MS: u64 = 1 << 62;
/// The bucket that holds tasks already due when inserted (deadline <= the clock): they fire at the
/// next [`TimingWheel::advance`] whatever its `now`.
const DUE: u32 = 0;

/// Handle of a task inserted into a [`TimingWheel`], used to [`cancel`](TimingWheel::cancel) it.
///
/// A slot index plus the generation of that slot when the task was inserted. Slots are reused once
/// a task fires or is cancelled and each reuse bumps the generation, so a stale id (its task
/// already fired or was cancelled) never matches the task that now occupies the slot. (The
/// generation is 32 bits and wraps: a stale id could alias only after 2^32 reuses of one slot.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

/// One slab slot: either a pending task linked into exactly one bucket, or a free slot linked
/// into the free list through `next`.
struct Slot<T> {
    generation: u32,
    /// `Some` while a task is pending in this slot.
    payload: Option<T>,
    /// The task's deadline (clamped to [`MAX_DEADLINE_MS`]).
    deadline: u64,
    prev: u32,
    next: u32,
    /// Index into `TimingWheel::buckets` of the bucket the task is linked into.
    bucket: u32,
}

/// A doubly-linked list of slab slots sharing one expiration (Kafka's `TimerTaskList`).
#[derive(Clone, Copy)]
struct Bucket {
    head: u32,
    tail: u32,
    /// The time at which the bucket is flushed, or [`NO_EXPIRATION`] when empty.
    expiration: u64,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        head: NIL,
        tail: NIL,
        expiration: NO_EXPIRATION,
    };
}

/// One wheel of the hierarchy (level 0 is the finest).
#[derive(Clone, Copy, Debug)]
struct Level {
    /// Span of one bucket of this level: `tick_ms * wheel_size^level` (saturating).
    tick: u64,
    /// Span of the whole level: `tick * wheel_size` (saturating).
    interval: u64,
    /// The level's clock: a multiple of `tick`, never decreasing.
    current_time: u64,
}

/// A hierarchical timing wheel (after Kafka's `TimingWheel` + `SystemTimer`), single-threaded.
///
/// Tasks carry a payload `T` and a deadline in milliseconds. Insert and cancel are O(1); advancing
/// the clock costs O(log b) per non-empty bucket it reaches (b = non-empty buckets), plus O(1) per
/// task fired or moved down to a finer wheel, and never visits empty buckets.
///
/// # Structure
/// * Level `l` has `wheel_size` buckets of span `tick_l = tick_ms * wheel_size^l` and covers
///   `interval_l = tick_l * wheel_size`; level `l + 1` (the *overflow wheel*) has
///   `tick_{l+1} = interval_l` and is created on demand, the first time a deadline lies beyond all
///   existing levels. Levels are never removed (there are at most ~62/log2(wheel_size) of them).
/// * Every pending task lives in exactly one bucket: an intrusive doubly-linked list over the
///   slab of tasks, so cancelling unlinks it in O(1) through its [`TimerId`].
/// * A binary heap orders the non-empty buckets by expiration (Kafka's `DelayQueue`), so the
///   clock jumps from one non-empty bucket to the next instead of ticking through empty slots.
///
/// # Invariants
/// 1. Every level's `current_time` is a multiple of its tick and equals the wheel clock rounded
///    down to that tick; the clock (`now`) never decreases.
/// 2. A task with deadline `d <= now` is in the *due* list; otherwise let `e = ceil(d / tick_ms) *
///    tick_ms` (so `d <= e < d + tick_ms`). It is in the lowest level `l` with
///    `e < current_time_l + interval_l`, in bucket `(e / tick_l) % wheel_size`, whose expiration
///    is `floor(e / tick_l) * tick_l`. Because `current_time_l <= expiration < current_time_l +
///    interval_l`, the `wheel_size` buckets of a level never alias two different expirations.
/// 3. A bucket is non-empty iff its expiration is not `NO_EXPIRATION`; each non-empty bucket has a
///    heap entry `(expiration, bucket)`. Heap entries whose expiration no longer matches their
///    bucket are stale and skipped; after every public operation the heap's top entry, if any,
///    is not stale (so [`next_deadline`](Self::next_deadline) can peek).
/// 4. When the clock reaches a bucket's expiration the bucket is flushed: each task is
///    re-inserted relative to the new clock, landing in a finer level or firing if
///    `e <= current_time_0` (Kafka's "reinsert on bucket flush").
///
/// Consequences: a task never fires before `now >= deadline` (it fires when `now >= e >= d`), and
/// it fires at the first [`advance`](Self::advance) whose `now >= e`, i.e. within one tick of its
/// deadline (`e < d + tick_ms`). Tasks already due fire at the next advance. Tasks whose
/// deadlines round to the same tick fire in insertion order; otherwise in deadline order.
pub struct TimingWheel<T> {
    tick_ms: u64,
    wheel_size: usize,
    /// The wheel clock: the largest `now` seen (or `start_ms`).
    now: u64,
    levels: Vec<Level>,
    /// `buckets[0]` is the due list; level `l`'s bucket `i` is `buckets[1 + l * wheel_size + i]`.
    buckets: Vec<Bucket>,
    queue: BinaryHeap<Reverse<(u64, u32)>>,
    slots: Vec<Slot<T>>,
    free_head: u32,
    len: usize,
}

impl<T> fmt::Debug for TimingWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimingWheel")
            .field("tick_ms", &self.tick_ms)
            .field("wheel_size", &self.wheel_size)
            .field("now", &self.now)
            .field("levels", &self.levels)
            .field("len", &self.len)
            .field("next_deadline", &self.next_deadline())
            .finish()
    }
}

impl<T> TimingWheel<T> {
    /// A wheel whose finest level has `wheel_size` buckets of `tick_ms` milliseconds each, with its
    /// clock at `start_ms`. Kafka's purgatory uses `tick_ms = 1, wheel_size = 20`.
    ///
    /// # Panics
    /// If `tick_ms == 0`, `wheel_size < 2` or `wheel_size > 2^20` (programming errors).
    pub fn new(tick_ms: u64, wheel_size: usize, start_ms: u64) -> TimingWheel<T> {
        assert!(tick_ms > 0, "TimingWheel tick_ms must be > 0");
        assert!(
            (2..=1 << 20).contains(&wheel_size),
            "TimingWheel wheel_size must be in 2..=2^20"
        );
        let now = start_ms.min(MAX_DEADLINE_MS);
        let mut wheel = TimingWheel {
            tick_ms,
            wheel_size,
            now,
            levels: Vec::new(),
            buckets: vec![Bucket::EMPTY],
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            free_head: NIL,
            len: 0,
        };
        wheel.add_level(tick_ms);
        wheel
    }

    /// The finest tick in milliseconds.
    pub fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    /// The number of buckets per level.
    pub fn wheel_size(&self) -> usize {
        self.wheel_size
    }

    /// The wheel clock: the latest `now` passed to [`advance`](Self::advance) (or the start time).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The number of pending (inserted, not yet fired or cancelled) tasks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no task is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of levels created so far (1 + overflow wheels).
    pub fn levels(&self) -> usize {
        self.levels.len()
    }

    /// Whether `id` names a task that is still pending.
    pub fn contains(&self, id: TimerId) -> bool {
        self.slots
            .get(id.index as usize)
            .is_some_and(|s| s.generation == id.generation && s.payload.is_some())
    }

    /// When the driver should next call [`advance`](Self::advance): the earliest expiration of a
    /// non-empty bucket, or the current clock if some task is already due; `None` if no task is
    /// pending. For coarse (overflow) buckets this is a lower bound: advancing to it may only move
    /// tasks down to finer wheels, after which `next_deadline` reports a later time.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.buckets[DUE as usize].head != NIL {
            return Some(self.now);
        }
        self.queue.peek().map(|Reverse((exp, _))| *exp)
    }

    /// Schedules `payload` to fire once the clock reaches `deadline_ms`. O(1) (amortized, plus
    /// O(log b) when the task is the first in its bucket). A deadline not after the clock fires at
    /// the next [`advance`](Self::advance). Deadlines beyond [`MAX_DEADLINE_MS`] are clamped.
    ///
    /// # Panics
    /// If `u32::MAX - 1` tasks are already pending (like `Vec` capacity overflow).
    pub fn insert(&mut self, deadline_ms: u64, payload: T) -> TimerId {
        let deadline = deadline_ms.min(MAX_DEADLINE_MS);
        let index = self.alloc_slot(deadline, payload);
        self.len += 1;
        if deadline <= self.now {
            self.link(DUE, index);
        } else {
            // Cannot be due at level 0: e >= deadline > now >= current_time_0.
            let placed = self.place(index);
            debug_assert!(placed);
        }
        TimerId {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    /// Removes a pending task and returns its payload; `None` if it already fired, was already
    /// cancelled, or `id` is stale (its slot since reused). O(1).
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation || slot.payload.is_none() {
            return None;
        }
        let bucket = slot.bucket;
        self.unlink(id.index);
        if self.buckets[bucket as usize].head == NIL {
            // The bucket emptied: its heap entry is now stale (invariant 3).
            self.buckets[bucket as usize].expiration = NO_EXPIRATION;
            self.drop_stale_top();
        }
        self.len -= 1;
        self.free_slot(id.index)
    }

    /// Moves the clock to `now_ms` and calls `fire` with the payload of every task whose deadline
    /// is `<= now_ms` (in deadline order, up to tick granularity). Tasks in overflow wheels whose
    /// bucket is reached are moved down to finer wheels. Returns the number fired. A `now_ms`
    /// earlier than the clock does not move it back (already-due tasks still fire).
    pub fn advance(&mut self, now_ms: u64, fire: &mut impl FnMut(T)) -> usize {
        let now = now_ms.min(MAX_DEADLINE_MS).max(self.now);
        let mut fired = 0;
        // Tasks inserted already due.
        let mut cur = self.take_list(DUE);
        while cur != NIL {
            let next = self.slots[cur as usize].next;
            self.fire_slot(cur, fire);
            fired += 1;
            cur = next;
        }
        while let Some(&Reverse((exp, bucket))) = self.queue.peek() {
            if self.buckets[bucket as usize].expiration != exp {
                self.queue.pop(); // stale
                continue;
            }
            if exp > now {
                break;
            }
            self.queue.pop();
            self.advance_levels(exp);
            let mut cur = self.take_list(bucket);
            while cur != NIL {
                let next = self.slots[cur as usize].next;
                if !self.place(cur) {
                    self.fire_slot(cur, fire);
                    fired += 1;
                }
                cur = next;
            }
        }
        self.advance_levels(now);
        self.now = now;
        fired
    }

    /// Like [`advance`](Self::advance), collecting the fired payloads.
    pub fn expire(&mut self, now_ms: u64) -> Vec<T> {
        let mut out = Vec::new();
        self.advance(now_ms, &mut |t| out.push(t));
        out
    }

    // ---- internals ----

    fn add_level(&mut self, tick: u64) {
        let interval = tick.saturating_mul(self.wheel_size as u64);
        let current_time = self.now - self.now % tick;
        self.levels.push(Level {
            tick,
            interval,
            current_time,
        });
        self.buckets
            .extend(std::iter::repeat_n(Bucket::EMPTY, self.wheel_size));
    }

    /// Invariant 1: round every level's clock down to its tick (monotonic).
    fn advance_levels(&mut self, time: u64) {
        for level in &mut self.levels {
            if time >= level.current_time.saturating_add(level.tick) {
                level.current_time = time - time % level.tick;
            }
        }
    }

    /// Links slot `index` into the bucket its deadline belongs to (invariant 2), creating overflow
    /// levels as needed. Returns `false` (linking nothing) if the task is due at level 0.
    fn place(&mut self, index: u32) -> bool {
        let d = self.slots[index as usize].deadline;
        // e = d rounded up to the finest tick; cannot overflow as d <= MAX_DEADLINE_MS.
        let e = d.div_ceil(self.tick_ms) * self.tick_ms;
        if e <= self.levels[0].current_time {
            return false;
        }
        let mut l = 0;
        loop {
            if l == self.levels.len() {
                let tick = self.levels[l - 1].interval;
                self.add_level(tick);
            }
            let level = self.levels[l];
            if e < level.current_time.saturating_add(level.interval) {
                let virtual_id = e / level.tick;
                let expiration = virtual_id * level.tick;
                let slot = (virtual_id % self.wheel_size as u64) as usize;
                let bucket = (1 + l * self.wheel_size + slot) as u32;
                let b = &mut self.buckets[bucket as usize];
                if b.expiration != expiration {
                    debug_assert!(b.head == NIL, "bucket aliasing two expirations");
                    b.expiration = expiration;
                    self.queue.push(Reverse((expiration, bucket)));
                }
                self.link(bucket, index);
                return true;
            }
            l += 1;
        }
    }

    fn alloc_slot(&mut self, deadline: u64, payload: T) -> u32 {
        if self.free_head != NIL {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            self.free_head = slot.next;
            slot.payload = Some(payload);
            slot.deadline = deadline;
            slot.prev = NIL;
            slot.next = NIL;
            slot.bucket = NIL;
            index
        } else {
            let index = self.slots.len();
            assert!(index < NIL as usize, "TimingWheel: too many pending tasks");
            self.slots.push(Slot {
                generation: 0,
                payload: Some(payload),
                deadline,
                prev: NIL,
                next: NIL,
                bucket: NIL,
            });
            index as u32
        }
    }

    /// Takes the payload out of an unlinked slot and puts the slot on the free list.
    fn free_slot(&mut self, index: u32) -> Option<T> {
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.prev = NIL;
        slot.bucket = NIL;
        slot.next = self.free_head;
        self.free_head = index;
        slot.payload.take()
    }

    /// Fires a slot already detached from its bucket (by [`take_list`](Self::take_list)).
    fn fire_slot(&mut self, index: u32, fire: &mut impl FnMut(T)) {
        self.len -= 1;
        if let Some(payload) = self.free_slot(index) {
            fire(payload);
        }
    }

    /// Appends slot `index` to `bucket`'s list.
    fn link(&mut self, bucket: u32, index: u32) {
        let tail = self.buckets[bucket as usize].tail;
        {
            let slot = &mut self.slots[index as usize];
            slot.bucket = bucket;
            slot.prev = tail;
            slot.next = NIL;
        }
        if tail == NIL {
            self.buckets[bucket as usize].head = index;
        } else {
            self.slots[tail as usize].next = index;
        }
        self.buckets[bucket as usize].tail = index;
    }

    /// Removes slot `index` from its bucket's list.
    fn unlink(&mut self, index: u32) {
        let (bucket, prev, next) = {
            let s = &self.slots[index as usize];
            (s.bucket, s.prev, s.next)
        };
        if prev == NIL {
            self.buckets[bucket as usize].head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.buckets[bucket as usize].tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    /// Empties `bucket` and returns the head of its former list (still chained through `next`).
    fn take_list(&mut self, bucket: u32) -> u32 {
        let b = &mut self.buckets[bucket as usize];
        let head = b.head;
        *b = Bucket::EMPTY;
        head
    }

    /// Restores invariant 3's "top is not stale" after a bucket was emptied by a cancel.
    fn drop_stale_top(&mut self) {
        while let Some(&Reverse((exp, bucket))) = self.queue.peek() {
            if self.buckets[bucket as usize].expiration == exp {
                break;
            }
            self.queue.pop();
        }
    }
}
