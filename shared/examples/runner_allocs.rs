//! Allocations per record of the runner over the memory store, a measuring aid for BENCHMARKS.md.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use cf_webhooks::consumer::{Context, Handler, HandlerError, MemoryStore, NoDeadLetters, Runner};
use cf_webhooks::events::TaskEvent;

struct Counting;
static COUNT: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        COUNT.fetch_add(1, Relaxed);
        BYTES.fetch_add(l.size() as u64, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        COUNT.fetch_add(1, Relaxed);
        BYTES.fetch_add(n as u64, Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}
#[global_allocator]
static A: Counting = Counting;

struct Noop;
impl Handler for Noop {
    type Event = TaskEvent;
    async fn handle(&self, event: &TaskEvent, _: &Context<'_>) -> Result<(), HandlerError> {
        std::hint::black_box(event);
        Ok(())
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let memory = Duration::from_secs(100 * 365 * 24 * 3600);
    let runner = Runner::new(Noop, MemoryStore::new(Duration::from_secs(60), memory), NoDeadLetters);
    let (mut count, mut bytes, mut n) = (0, 0, 0u64);
    for _ in 0..2000 {
        let records = cf_webhooks::testkit::queued_task_records(&mut n, 10);
        let (c0, b0) = (COUNT.load(Relaxed), BYTES.load(Relaxed));
        let report = rt.block_on(runner.run(&records));
        count += COUNT.load(Relaxed) - c0;
        bytes += BYTES.load(Relaxed) - b0;
        assert_eq!(report.records[0].outcome.word(), "processed");
        drop(report);
    }
    println!(
        "allocations per record: {:.2}, bytes per record: {:.0}",
        count as f64 / n as f64,
        bytes as f64 / n as f64
    );
}
