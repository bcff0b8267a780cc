//! Idempotency on `PayloadId`: a claim before the handler runs, a completion after it
//! succeeds, a release when it fails.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller may apply the event.
    Acquired,
    /// The event was already applied: skip it.
    Completed,
    /// Another consumer is applying it now: retry later.
    InProgress,
}

/// The store could not answer; the record is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("idempotency store: {0}")]
pub struct StoreError(pub String);

/// Where claims live: DynamoDB when deployed, memory in `cfwh dev` and tests.
#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for one attempt.
    async fn claim(&self, key: &str) -> Result<Claim, StoreError>;
    /// Marks `key` applied (after the handler succeeded).
    async fn complete(&self, key: &str) -> Result<(), StoreError>;
    /// Gives up a claim (after the handler failed), so that a retry may claim it again.
    async fn release(&self, key: &str) -> Result<(), StoreError>;
}

#[async_trait::async_trait]
impl<S: IdempotencyStore + ?Sized> IdempotencyStore for std::sync::Arc<S> {
    async fn claim(&self, key: &str) -> Result<Claim, StoreError> {
        (**self).claim(key).await
    }
    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        (**self).complete(key).await
    }
    async fn release(&self, key: &str) -> Result<(), StoreError> {
        (**self).release(key).await
    }
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    InProgress { until: Instant },
    Completed { until: Instant },
}

/// An in-process store: claims expire after `lease` (a crashed attempt), completions
/// after `ttl`.
#[derive(Debug)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
    lease: Duration,
    ttl: Duration,
}

impl MemoryStore {
    /// A store whose in-progress claims last `lease` and completions `ttl`.
    pub fn new(lease: Duration, ttl: Duration) -> Self {
        Self { entries: Mutex::new(HashMap::new()), lease, ttl }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of keys held (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(&self, key: &str) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut entries = self.entries();
        if entries.len() >= 4096 && entries.len().is_power_of_two() {
            entries.retain(|_, entry| match entry {
                Entry::InProgress { until } | Entry::Completed { until } => *until > now,
            });
        }
        match entries.get(key) {
            Some(Entry::Completed { until }) if *until > now => Ok(Claim::Completed),
            Some(Entry::InProgress { until }) if *until > now => Ok(Claim::InProgress),
            _ => {
                entries.insert(key.to_owned(), Entry::InProgress { until: now + self.lease });
                Ok(Claim::Acquired)
            }
        }
    }

    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        self.entries().insert(key.to_owned(), Entry::Completed { until: Instant::now() + self.ttl });
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let mut entries = self.entries();
        if let Some(Entry::InProgress { .. }) = entries.get(key) {
            entries.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn claim_complete_release_and_expiry() {
        let store = MemoryStore::new(Duration::from_secs(60), Duration::from_secs(3600));
        assert_eq!(store.claim("a").await, Ok(Claim::Acquired));
        assert_eq!(store.claim("a").await, Ok(Claim::InProgress));
        store.release("a").await.unwrap();
        assert_eq!(store.claim("a").await, Ok(Claim::Acquired));
        store.complete("a").await.unwrap();
        assert_eq!(store.claim("a").await, Ok(Claim::Completed));
        store.release("a").await.unwrap();
        assert_eq!(store.claim("a").await, Ok(Claim::Completed), "release never undoes a completion");

        assert_eq!(store.claim("b").await, Ok(Claim::Acquired));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(store.claim("b").await, Ok(Claim::Acquired), "an abandoned claim expires");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(store.claim("a").await, Ok(Claim::Acquired), "completions expire after the TTL");
    }
}
