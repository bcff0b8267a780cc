//! Idempotency on `PayloadId`: a claim before the handler runs, a completion after it
//! succeeds, a release when it fails. A release keeps the steps that did succeed (the
//! handler, each destination), so the next attempt redoes only the others.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The steps of a record an earlier attempt finished: `handler` and destination names.
pub type Done = BTreeSet<String>;

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller may apply the event; `done` are the steps an earlier attempt finished.
    Acquired {
        /// Steps not to repeat.
        done: Done,
    },
    /// The event was already applied: skip it.
    Completed,
    /// Another consumer is applying it now (or was, and died): retry later.
    InProgress {
        /// How long its claim still holds, when the store knows: a record that finds it
        /// waits that long instead of using up its deliveries.
        lease_left: Option<Duration>,
    },
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
    /// Gives up a claim (after a step failed), so that a retry may claim it again and
    /// skip the steps in `done`.
    async fn release(&self, key: &str, done: &Done) -> Result<(), StoreError>;
    /// The version (`EventDatetimeUtc`) last applied to a facet of an entity, if any.
    async fn applied_version(&self, subject: &str) -> Result<Option<i64>, StoreError>;
    /// Marks `key` applied and, in the same write, records `version` as the last applied
    /// one of `subject` unless a newer one is recorded already.
    async fn complete_applied(&self, key: &str, subject: &str, version: i64) -> Result<(), StoreError>;
    /// How long a completion is remembered (the TTL), when the store forgets: an event
    /// older than that is not applied again (`Outcome::Expired`).
    fn memory(&self) -> Option<Duration> {
        None
    }
}

impl Claim {
    /// A first claim: nothing done yet.
    pub fn fresh() -> Self {
        Self::Acquired { done: Done::new() }
    }
}

#[async_trait::async_trait]
impl<S: IdempotencyStore + ?Sized> IdempotencyStore for std::sync::Arc<S> {
    async fn claim(&self, key: &str) -> Result<Claim, StoreError> {
        (**self).claim(key).await
    }
    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        (**self).complete(key).await
    }
    async fn release(&self, key: &str, done: &Done) -> Result<(), StoreError> {
        (**self).release(key, done).await
    }
    async fn applied_version(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        (**self).applied_version(subject).await
    }
    async fn complete_applied(&self, key: &str, subject: &str, version: i64) -> Result<(), StoreError> {
        (**self).complete_applied(key, subject, version).await
    }
    fn memory(&self) -> Option<Duration> {
        (**self).memory()
    }
}

#[derive(Debug, Clone)]
enum Entry {
    InProgress { until: Instant, done: Done },
    Released { until: Instant, done: Done },
    Completed { until: Instant },
}

impl Entry {
    fn until(&self) -> Instant {
        match self {
            Self::InProgress { until, .. } | Self::Released { until, .. } | Self::Completed { until } => *until,
        }
    }
}

/// An in-process store: claims expire after `lease` (a crashed attempt), completions and
/// the steps of released claims after `ttl`.
#[derive(Debug)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
    versions: Mutex<HashMap<String, i64>>,
    lease: Duration,
    ttl: Duration,
}

impl MemoryStore {
    /// A store whose in-progress claims last `lease` and completions `ttl`.
    pub fn new(lease: Duration, ttl: Duration) -> Self {
        Self { entries: Mutex::new(HashMap::new()), versions: Mutex::new(HashMap::new()), lease, ttl }
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
    fn memory(&self) -> Option<Duration> {
        Some(self.ttl)
    }

    async fn claim(&self, key: &str) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut entries = self.entries();
        if entries.len() >= 4096 && entries.len().is_power_of_two() {
            entries.retain(|_, entry| entry.until() > now);
        }
        let done = match entries.get(key) {
            Some(Entry::Completed { until }) if *until > now => return Ok(Claim::Completed),
            Some(Entry::InProgress { until, .. }) if *until > now => {
                return Ok(Claim::InProgress { lease_left: Some(*until - now) })
            }
            // A crashed attempt's steps are unknown beyond what it had when it claimed.
            Some(Entry::InProgress { done, .. } | Entry::Released { done, .. }) => done.clone(),
            _ => Done::new(),
        };
        entries.insert(key.to_owned(), Entry::InProgress { until: now + self.lease, done: done.clone() });
        Ok(Claim::Acquired { done })
    }

    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        self.entries().insert(key.to_owned(), Entry::Completed { until: Instant::now() + self.ttl });
        Ok(())
    }

    async fn applied_version(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.versions.lock().unwrap_or_else(|p| p.into_inner()).get(subject).copied())
    }

    async fn complete_applied(&self, key: &str, subject: &str, version: i64) -> Result<(), StoreError> {
        let mut entries = self.entries();
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        let newest = versions.entry(subject.to_owned()).or_insert(version);
        *newest = (*newest).max(version);
        entries.insert(key.to_owned(), Entry::Completed { until: Instant::now() + self.ttl });
        Ok(())
    }

    async fn release(&self, key: &str, done: &Done) -> Result<(), StoreError> {
        let mut entries = self.entries();
        if let Some(Entry::InProgress { .. }) = entries.get(key) {
            if done.is_empty() {
                entries.remove(key);
            } else {
                entries
                    .insert(key.to_owned(), Entry::Released { until: Instant::now() + self.ttl, done: done.clone() });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn claim_complete_release_and_expiry() {
        let none = Done::new();
        let store = MemoryStore::new(Duration::from_secs(60), Duration::from_secs(3600));
        assert_eq!(store.claim("a").await, Ok(Claim::fresh()));
        assert!(matches!(store.claim("a").await, Ok(Claim::InProgress { lease_left: Some(_) })));
        store.release("a", &none).await.unwrap();
        assert_eq!(store.claim("a").await, Ok(Claim::fresh()));
        store.complete("a").await.unwrap();
        assert_eq!(store.claim("a").await, Ok(Claim::Completed));
        store.release("a", &none).await.unwrap();
        assert_eq!(store.claim("a").await, Ok(Claim::Completed), "release never undoes a completion");

        assert_eq!(store.claim("b").await, Ok(Claim::fresh()));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(store.claim("b").await, Ok(Claim::fresh()), "an abandoned claim expires");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(store.claim("a").await, Ok(Claim::fresh()), "completions expire after the TTL");
    }

    #[tokio::test]
    async fn the_applied_version_only_moves_forward() {
        let store = MemoryStore::new(Duration::from_secs(60), Duration::from_secs(3600));
        assert_eq!(store.applied_version("s").await, Ok(None));
        store.complete_applied("a", "s", 20).await.unwrap();
        store.complete_applied("b", "s", 10).await.unwrap();
        assert_eq!(store.applied_version("s").await, Ok(Some(20)), "an older completion never moves it back");
        assert_eq!(store.claim("b").await, Ok(Claim::Completed), "the completion is written all the same");
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_keeps_the_steps_that_succeeded() {
        let store = MemoryStore::new(Duration::from_secs(60), Duration::from_secs(3600));
        let handler: Done = ["handler".to_owned()].into();
        assert_eq!(store.claim("a").await, Ok(Claim::fresh()));
        store.release("a", &handler).await.unwrap();
        assert_eq!(store.claim("a").await, Ok(Claim::Acquired { done: handler.clone() }));
        assert!(matches!(store.claim("a").await, Ok(Claim::InProgress { lease_left: Some(_) })));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            store.claim("a").await,
            Ok(Claim::Acquired { done: handler.clone() }),
            "a crashed attempt leaves the steps it was given"
        );
        let both: Done = ["handler".to_owned(), "http".to_owned()].into();
        store.release("a", &both).await.unwrap();
        assert_eq!(store.claim("a").await, Ok(Claim::Acquired { done: both }));
    }
}
