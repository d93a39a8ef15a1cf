//! Timer benchmark: our hierarchical timing wheel vs a `BinaryHeap` with lazy cancellation vs
//! glommio's reactor timers, at 1M pending tasks.
//!
//! `cargo run --release --bin timer-bench [-- N]`
//!
//! For each structure: insert N tasks with random deadlines, cancel a random half (in random
//! order), then expire the rest. Memory is the growth of live heap bytes (a counting global
//! allocator) while inserting, divided by N; the caller's handle storage (a pre-allocated `Vec`
//! of ids / `Timer`s) is excluded. The wheel and the heap run on a simulated clock (deadlines
//! uniform in 1..=60 000 ms, expired by advancing 1 ms at a time); glommio's timers are real
//! (deadlines uniform in 3..5 s from now), so its expire phase first sleeps (unmeasured) until
//! every deadline has passed, then measures one reactor pass (a 1 ms glommio sleep, which runs
//! the reactor's timer processing) plus polling every remaining `Timer` to completion.

use shardlog::timer::{TimerId, TimingWheel};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Context;
use std::time::{Duration, Instant};

// ---------- counting allocator ----------

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to `System` and only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

// ---------- helpers ----------

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            xs.swap(i, j);
        }
    }
}

struct Row {
    name: String,
    insert: Duration,
    cancel: Duration,
    expire: Duration,
    expired: usize,
    bytes: usize,
    churn: Duration,
    bytes_after_churn: usize,
}

const HORIZON_MS: u64 = 60_000;

fn deadlines(n: usize, seed: u64) -> Vec<u64> {
    let mut rng = Rng(seed);
    (0..n).map(|_| 1 + rng.next() % HORIZON_MS).collect()
}

fn cancel_order(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng(seed).shuffle(&mut order);
    order.truncate(n / 2);
    order
}

/// The tasks left pending after the cancel phase (indexes into the id vector), and a churn plan:
/// `n / 2` steps of (insert one task with a fresh deadline, cancel a random pending task).
fn pending_after_cancel(n: usize, cancels: &[usize]) -> Vec<usize> {
    let mut cancelled = vec![false; n];
    for &i in cancels {
        cancelled[i] = true;
    }
    (0..n).filter(|&i| !cancelled[i]).collect()
}

// ---------- (a) timing wheel ----------

fn bench_wheel(n: usize, tick_ms: u64, wheel_size: usize) -> Row {
    let ds = deadlines(n, 1);
    let cancels = cancel_order(n, 2);
    let mut ids: Vec<TimerId> = Vec::with_capacity(n + n / 2);
    let before = live_bytes();
    let mut w: TimingWheel<u64> = TimingWheel::new(tick_ms, wheel_size, 0);
    let t = Instant::now();
    for (i, d) in ds.iter().enumerate() {
        ids.push(w.insert(*d, i as u64));
    }
    let insert = t.elapsed();
    let bytes = live_bytes() - before;

    let t = Instant::now();
    for &i in &cancels {
        black_box(w.cancel(ids[i]));
    }
    let cancel = t.elapsed();

    let mut pending = pending_after_cancel(n, &cancels);
    let mut rng = Rng(4);
    let t = Instant::now();
    for i in n..n + n / 2 {
        ids.push(w.insert(1 + rng.next() % HORIZON_MS, i as u64));
        pending.push(i);
        let victim = pending.swap_remove((rng.next() % pending.len() as u64) as usize);
        black_box(w.cancel(ids[victim]));
    }
    let churn = t.elapsed();
    let bytes_after_churn = live_bytes() - before;

    let t = Instant::now();
    let mut expired = 0usize;
    let mut sum = 0u64;
    for now in 1..=HORIZON_MS {
        expired += w.advance(now, &mut |p| sum = sum.wrapping_add(p));
    }
    let expire = t.elapsed();
    black_box(sum);
    assert!(w.is_empty());
    Row {
        name: format!("wheel {tick_ms}ms x {wheel_size}"),
        insert,
        cancel,
        expire,
        expired,
        bytes,
        churn,
        bytes_after_churn,
    }
}

// ---------- (b) binary heap with tombstones ----------

/// A min-heap of (deadline, slot, generation); cancel empties the slot and leaves the heap entry
/// as a tombstone, skipped when it reaches the top.
struct HeapTimer<T> {
    heap: BinaryHeap<Reverse<(u64, u32, u32)>>,
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
}

impl<T> HeapTimer<T> {
    fn new() -> Self {
        HeapTimer {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
    fn insert(&mut self, deadline: u64, payload: T) -> (u32, u32) {
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].1 = Some(payload);
                i
            }
            None => {
                self.slots.push((0, Some(payload)));
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.slots[idx as usize].0;
        self.heap.push(Reverse((deadline, idx, generation)));
        (idx, generation)
    }
    fn cancel(&mut self, (idx, generation): (u32, u32)) -> Option<T> {
        let slot = self.slots.get_mut(idx as usize)?;
        if slot.0 != generation {
            return None;
        }
        let p = slot.1.take()?;
        slot.0 = slot.0.wrapping_add(1);
        self.free.push(idx);
        Some(p)
    }
    fn advance(&mut self, now: u64, fire: &mut impl FnMut(T)) -> usize {
        let mut fired = 0;
        while let Some(&Reverse((deadline, idx, generation))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            let slot = &mut self.slots[idx as usize];
            if slot.0 == generation {
                if let Some(p) = slot.1.take() {
                    slot.0 = slot.0.wrapping_add(1);
                    self.free.push(idx);
                    fire(p);
                    fired += 1;
                }
            }
        }
        fired
    }
}

fn bench_heap(n: usize) -> Row {
    let ds = deadlines(n, 1);
    let cancels = cancel_order(n, 2);
    let mut ids: Vec<(u32, u32)> = Vec::with_capacity(n + n / 2);
    let before = live_bytes();
    let mut h: HeapTimer<u64> = HeapTimer::new();
    let t = Instant::now();
    for (i, d) in ds.iter().enumerate() {
        ids.push(h.insert(*d, i as u64));
    }
    let insert = t.elapsed();
    let bytes = live_bytes() - before;

    let t = Instant::now();
    for &i in &cancels {
        black_box(h.cancel(ids[i]));
    }
    let cancel = t.elapsed();

    let mut pending = pending_after_cancel(n, &cancels);
    let mut rng = Rng(4);
    let t = Instant::now();
    for i in n..n + n / 2 {
        ids.push(h.insert(1 + rng.next() % HORIZON_MS, i as u64));
        pending.push(i);
        let victim = pending.swap_remove((rng.next() % pending.len() as u64) as usize);
        black_box(h.cancel(ids[victim]));
    }
    let churn = t.elapsed();
    let bytes_after_churn = live_bytes() - before;

    let t = Instant::now();
    let mut expired = 0usize;
    let mut sum = 0u64;
    for now in 1..=HORIZON_MS {
        expired += h.advance(now, &mut |p| sum = sum.wrapping_add(p));
    }
    let expire = t.elapsed();
    black_box(sum);
    Row {
        name: "BinaryHeap+tombstones".into(),
        insert,
        cancel,
        expire,
        expired,
        bytes,
        churn,
        bytes_after_churn,
    }
}

// ---------- (c) glommio timers ----------

fn bench_glommio(n: usize) -> Row {
    let ex = match glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
    {
        Ok(ex) => ex,
        Err(e) => {
            eprintln!("glommio executor: {e}");
            std::process::exit(1);
        }
    };
    ex.run(async move {
        let mut rng = Rng(3);
        let ds: Vec<u64> = (0..n).map(|_| 3000 + rng.next() % 2000).collect();
        let cancels = cancel_order(n, 2);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut timers: Vec<Option<glommio::timer::Timer>> = Vec::with_capacity(n + n / 2);
        let mut pending = pending_after_cancel(n, &cancels);
        pending.reserve(n / 2);
        let before = live_bytes();
        let t = Instant::now();
        let mut ready_early = 0usize;
        for d in &ds {
            let mut timer = glommio::timer::Timer::new(Duration::from_millis(*d));
            // The first poll registers the timer with the reactor.
            if Pin::new(&mut timer).poll(&mut cx).is_ready() {
                ready_early += 1;
            }
            timers.push(Some(timer));
        }
        let insert = t.elapsed();
        let bytes = live_bytes() - before;
        assert_eq!(ready_early, 0, "insert phase took longer than 3 s");

        let t = Instant::now();
        for &i in &cancels {
            drop(timers[i].take()); // Drop deregisters from the reactor.
        }
        let cancel = t.elapsed();

        let t = Instant::now();
        for i in n..n + n / 2 {
            let d = 3000 + rng.next() % 2000;
            let mut timer = glommio::timer::Timer::new(Duration::from_millis(d));
            if Pin::new(&mut timer).poll(&mut cx).is_ready() {
                ready_early += 1;
            }
            timers.push(Some(timer));
            pending.push(i);
            let victim = pending.swap_remove((rng.next() % pending.len() as u64) as usize);
            drop(timers[victim].take());
        }
        let churn = t.elapsed();
        let bytes_after_churn = live_bytes() - before;
        assert_eq!(ready_early, 0, "churn phase took longer than 3 s");

        // Block (unmeasured) until every deadline (<= 5 s after its timer's creation) has passed,
        // without running the reactor.
        std::thread::sleep(Duration::from_millis(5100));
        let t = Instant::now();
        glommio::timer::sleep(Duration::from_millis(1)).await;
        let mut expired = 0usize;
        for timer in timers.iter_mut().flatten() {
            if Pin::new(timer).poll(&mut cx).is_ready() {
                expired += 1;
            }
        }
        timers.clear();
        let expire = t.elapsed();
        Row {
            name: "glommio Timer".into(),
            insert,
            cancel,
            expire,
            expired,
            bytes,
            churn,
            bytes_after_churn,
        }
    })
}

// ---------- main ----------

fn mops(count: usize, d: Duration) -> f64 {
    count as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    let rows = vec![
        bench_wheel(n, 1, 512),
        bench_wheel(n, 1, 20),
        bench_heap(n),
        bench_glommio(n),
    ];
    println!(
        "insert {n} tasks; cancel {} (random order); churn {} x (insert + cancel a random pending \
         task); expire the {} left\n",
        n / 2,
        n / 2,
        n / 2
    );
    println!(
        "| {:<24} | {:>8} | {:>8} | {:>13} | {:>8} | {:>9} | {:>9} | {:>10} |",
        "structure",
        "insert/s",
        "cancel/s",
        "churn pairs/s",
        "expire/s",
        "expired",
        "B/task",
        "B/task now"
    );
    println!(
        "|{:-<26}|{:->10}|{:->10}|{:->15}|{:->10}|{:->11}|{:->11}|{:->12}|",
        "", "", "", "", "", "", "", ""
    );
    for r in &rows {
        println!(
            "| {:<24} | {:>7.2}M | {:>7.2}M | {:>12.2}M | {:>7.2}M | {:>9} | {:>9.1} | {:>10.1} |",
            r.name,
            mops(n, r.insert),
            mops(n / 2, r.cancel),
            mops(n / 2, r.churn),
            mops(r.expired, r.expire),
            r.expired,
            r.bytes as f64 / n as f64,
            r.bytes_after_churn as f64 / (n / 2) as f64,
        );
    }
    println!(
        "\nB/task: live heap bytes per pending task after the inserts; B/task now: live bytes of \
         the structure after cancel + churn, per still-pending task (tombstones and free slots \
         included)."
    );
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());
}
