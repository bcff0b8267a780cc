//! The one clock of the consumer side: the idempotency stores (leases, expiry) and the
//! runner (the memory rule) read the same time, and a simulation replaces it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall time in milliseconds since the Unix epoch, read as an anchor plus the tokio
/// clock's progress since it: monotonic within a process, and virtual under a paused
/// tokio runtime (a simulation, `#[tokio::test(start_paused = true)]`), so that leases,
/// expiry and deadlines all move with one clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor_ms: i64,
    anchor: tokio::time::Instant,
    moves: bool,
}

impl Clock {
    /// Now, by the system's wall clock.
    pub fn system() -> Self {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Self::starting_at(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// A clock that reads `epoch_ms` now and moves with tokio's clock from here.
    pub fn starting_at(epoch_ms: i64) -> Self {
        Self { anchor_ms: epoch_ms, anchor: tokio::time::Instant::now(), moves: true }
    }

    /// A clock that always reads `epoch_ms`: what a simulation hands a store whose calls
    /// run on another runtime, one call at a time, at the simulated now.
    pub fn fixed(epoch_ms: i64) -> Self {
        Self { moves: false, ..Self::starting_at(epoch_ms) }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        if !self.moves {
            return self.anchor_ms;
        }
        let elapsed = i64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.anchor_ms.saturating_add(elapsed)
    }

    /// The time since the Unix epoch.
    pub fn now(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.now_ms()).unwrap_or(0))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn it_moves_with_tokio_time() {
        let clock = Clock::starting_at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now_ms(), 91_000);
        assert_eq!(clock.now(), Duration::from_millis(91_000));
        let fixed = Clock::fixed(5);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(fixed.now_ms(), 5);
    }
}
