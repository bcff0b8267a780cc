//! The simulation over the DynamoDB store (on moto in `make test`), so that the
//! conditional expressions are checked, not only the memory store. Each call runs on a
//! runtime of its own while the simulation's thread waits: simulated time cannot move
//! during a call, and the store reads the simulated now, fixed for the call.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::aws::dynamodb::DynamoStore;
use crate::clock::Clock;
use crate::consumer::idempotency::{Claim, Claimant, Done, Entry, IdempotencyStore, StoreError, Version};

use super::SimStore;

/// A DynamoDB store driven one blocking call at a time.
pub struct Blocking {
    store: DynamoStore,
    clock: Clock,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Blocking {
    /// `store` (its lease and memory as the simulation's), read at `clock`'s now.
    pub fn new(store: DynamoStore, clock: Clock, runtime: Arc<tokio::runtime::Runtime>) -> Self {
        Self { store, clock, runtime }
    }

    fn call<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
        &self,
        call: impl FnOnce(DynamoStore) -> F,
    ) -> T {
        let store = self.store.clone().with_clock(Clock::fixed(self.clock.now_ms()));
        let (sent, answer) = std::sync::mpsc::channel();
        let future = call(store);
        self.runtime.spawn(async move {
            let _ = sent.send(future.await);
        });
        answer.recv().expect("the store's runtime answers every call")
    }
}

fn owned(version: Option<Version<'_>>) -> Option<(String, i64)> {
    version.map(|v| (v.subject.to_owned(), v.at))
}

fn version(owned: &Option<(String, i64)>) -> Option<Version<'_>> {
    owned.as_ref().map(|(subject, at)| Version { subject, at: *at })
}

#[async_trait::async_trait]
impl IdempotencyStore for Blocking {
    fn clock(&self) -> Clock {
        self.clock
    }

    fn memory(&self) -> Option<Duration> {
        self.store.memory()
    }

    async fn claim(&self, who: Claimant<'_>) -> Result<Claim, StoreError> {
        let (key, owner, event_ms) = (who.key.to_owned(), who.owner, who.event_ms);
        self.call(move |s| async move { s.claim(Claimant { key: &key, owner, event_ms }).await })
    }

    async fn applied_version(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        let subject = subject.to_owned();
        self.call(|s| async move { s.applied_version(&subject).await })
    }

    async fn raise(&self, v: Version<'_>) -> Result<(), StoreError> {
        let v = owned(Some(v));
        self.call(move |s| async move { s.raise(version(&v).expect("a version")).await })
    }

    async fn record(&self, who: Claimant<'_>, done: &Done, v: Option<Version<'_>>) -> Result<(), StoreError> {
        let (key, owner, event_ms, done, v) = (who.key.to_owned(), who.owner, who.event_ms, done.clone(), owned(v));
        self.call(move |s| async move { s.record(Claimant { key: &key, owner, event_ms }, &done, version(&v)).await })
    }

    async fn complete(&self, who: Claimant<'_>, v: Option<Version<'_>>) -> Result<(), StoreError> {
        let (key, owner, event_ms, v) = (who.key.to_owned(), who.owner, who.event_ms, owned(v));
        self.call(move |s| async move { s.complete(Claimant { key: &key, owner, event_ms }, version(&v)).await })
    }

    async fn release(&self, who: Claimant<'_>, done: &Done, v: Option<Version<'_>>) -> Result<(), StoreError> {
        let (key, owner, event_ms, done, v) = (who.key.to_owned(), who.owner, who.event_ms, done.clone(), owned(v));
        self.call(move |s| async move { s.release(Claimant { key: &key, owner, event_ms }, &done, version(&v)).await })
    }
}

impl SimStore for Blocking {
    fn entry(&self, key: &str) -> Option<Entry> {
        let key = key.to_owned();
        self.call(|s| async move { s.entry(&key).await }).expect("moto answers reads")
    }

    fn version(&self, subject: &str) -> Option<i64> {
        let subject = subject.to_owned();
        self.call(|s| async move { s.applied_version(&subject).await }).expect("moto answers reads")
    }
}
