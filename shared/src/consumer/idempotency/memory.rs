//! The in-process store of `cfwh dev`, the tests and the simulation: completions kept
//! small under a keyed hash, forgotten past their memory, with an optional cap.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{Claim, Claimant, Done, Entry, IdempotencyStore, Owner, StoreError, Version};
use crate::clock::Clock;

/// A key of the memory store: a keyed 128-bit hash of the claim's key (or the facet's),
/// two SipHash-1-3 with random keys. A collision of two of a process's keys is as
/// likely as guessing 128 random bits, and nobody outside the process can aim for one:
/// the keys of the hash are random and never leave it. Its first half, already random,
/// is the map's own hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u64, u64);

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// Hands a [`Key`]'s first half on as the map's hash.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `Key` is hashed with it, through `write_u64`.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeyMap<V> = HashMap<Key, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// The two random keys [`Key`]s are made with.
#[derive(Debug)]
struct Keyer(std::hash::RandomState, std::hash::RandomState);

impl Keyer {
    fn key(&self, text: &str) -> Key {
        use std::hash::BuildHasher as _;
        Key(self.0.hash_one(text), self.1.hash_one(text))
    }
}

/// A completion, all the memory store keeps of an applied event: 24 bytes, 40 with its
/// key in the map.
#[derive(Debug, Clone, Copy)]
struct Completion {
    owner: [u64; 2],
    expires: i64,
}

fn halves(owner: Owner) -> [u64; 2] {
    [(owner.0 >> 64) as u64, owner.0 as u64]
}

fn whole([high, low]: [u64; 2]) -> Owner {
    Owner((u128::from(high) << 64) | u128::from(low))
}

#[derive(Debug, Default)]
struct Items {
    /// Applied events, until forgotten.
    completed: KeyMap<Completion>,
    /// Claims in progress and released ones with their steps: few, the records in flight.
    open: KeyMap<Box<Entry>>,
    /// Each facet's newest version.
    versions: KeyMap<i64>,
    /// Writes since the last sweep of what is forgotten.
    since_sweep: usize,
    /// When the last sweep ran (ms by the store's clock).
    swept_at: i64,
}

impl Items {
    fn len(&self) -> usize {
        self.completed.len() + self.open.len()
    }
}

/// An in-process store: claims expire after `lease` (a crashed attempt), completions and
/// the steps of released claims after `ttl`, and so do versions older than `ttl` (an
/// event that old is expired before its version is read). It remembers events by a
/// keyed 128-bit hash of their keys, a completion in about 40 bytes of map (see
/// [`Key`]); what is past its memory is swept away as the store grows, so its size
/// follows the events of one memory, never all of them. With a cap
/// ([`with_cap`](Self::with_cap)) it says when it is full, for ingest to refuse new
/// events: it never forgets what is still inside its memory.
#[derive(Debug)]
pub struct MemoryStore {
    items: Mutex<Items>,
    keyer: Keyer,
    /// Events remembered, as of the last write (read without the lock by [`Self::full`]).
    remembered: std::sync::atomic::AtomicUsize,
    cap: Option<usize>,
    lease: Duration,
    ttl: Duration,
    clock: Clock,
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Writes between two sweeps, at least.
const SWEEP_EVERY: usize = 4096;

impl MemoryStore {
    /// A store whose in-progress claims last `lease` and completions `ttl`, on the
    /// system's clock.
    pub fn new(lease: Duration, ttl: Duration) -> Self {
        Self::with_clock(lease, ttl, Clock::system())
    }

    /// As [`new`](Self::new), on `clock`.
    pub fn with_clock(lease: Duration, ttl: Duration, clock: Clock) -> Self {
        Self {
            items: Mutex::new(Items::default()),
            keyer: Keyer(std::hash::RandomState::new(), std::hash::RandomState::new()),
            remembered: std::sync::atomic::AtomicUsize::new(0),
            cap: None,
            lease,
            ttl,
            clock,
        }
    }

    /// Says it is [`full`](Self::full) once it remembers `cap` events.
    pub fn with_cap(mut self, cap: usize) -> Self {
        self.cap = Some(cap);
        self
    }

    fn items(&self) -> std::sync::MutexGuard<'_, Items> {
        self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of events held (forgotten ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.items().len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cap, when it has one.
    pub fn cap(&self) -> Option<usize> {
        self.cap
    }

    /// True when it remembers as many events as its cap, once what is past its memory
    /// is forgotten: new events must be refused until older ones are forgotten. Reads an
    /// atomic count; at the cap, sweeps (under the lock) at most once a second.
    pub fn full(&self) -> bool {
        let Some(cap) = self.cap else { return false };
        if self.remembered.load(std::sync::atomic::Ordering::Relaxed) < cap {
            return false;
        }
        let now = self.clock.now_ms();
        let mut items = self.items();
        if items.len() >= cap && now.saturating_sub(items.swept_at) >= 1000 {
            self.sweep(&mut items, now);
        }
        items.len() >= cap
    }

    /// The item at `key`, unless forgotten (for the simulation's checks).
    pub fn entry(&self, key: &str) -> Option<Entry> {
        let now = self.clock.now_ms();
        let key = self.keyer.key(key);
        let items = self.items();
        if let Some(c) = items.completed.get(&key) {
            return (c.expires > now).then(|| Entry::Completed { owner: whole(c.owner), expires: c.expires });
        }
        items.open.get(&key).filter(|e| e.expires() > now).map(|e| (**e).clone())
    }

    /// The facet's recorded version (for the simulation's checks).
    pub fn version(&self, subject: &str) -> Option<i64> {
        let key = self.keyer.key(subject);
        self.items().versions.get(&key).copied()
    }

    fn raise_in(items: &mut Items, keyer: &Keyer, version: Option<Version<'_>>) {
        if let Some(Version { subject, at }) = version {
            let newest = items.versions.entry(keyer.key(subject)).or_insert(at);
            *newest = (*newest).max(at);
        }
    }

    /// Forgets what is past its memory: completions, released steps and abandoned
    /// claims, and versions older than the memory.
    fn sweep(&self, items: &mut Items, now: i64) {
        items.completed.retain(|_, c| c.expires > now);
        items.open.retain(|_, e| e.expires() > now);
        let oldest = now.saturating_sub(ms(self.ttl));
        items.versions.retain(|_, at| *at >= oldest);
        items.since_sweep = 0;
        items.swept_at = now;
        self.counted(items);
    }

    /// After a write: sweeps once the writes since the last sweep reach half the items
    /// (so a sweep costs a constant per write), and updates the count [`Self::full`] reads.
    fn wrote(&self, items: &mut Items, now: i64) {
        items.since_sweep += 1;
        if items.since_sweep >= SWEEP_EVERY.max(items.len() / 2) {
            self.sweep(items, now);
        } else {
            self.counted(items);
        }
    }

    fn counted(&self, items: &Items) {
        self.remembered.store(items.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// When an item written now for `who` is forgotten: the memory, from now or from the
    /// event's time, whichever is later.
    fn forgotten(&self, who: Claimant<'_>, now: i64, memory: Duration) -> i64 {
        now.max(who.event_ms).saturating_add(ms(memory))
    }

    /// Applies `write` (given when the item is forgotten) to `who`'s claim, or answers
    /// `Lost`. `write` answers whether the item stays open (false: it is removed).
    fn owned(
        &self,
        who: Claimant<'_>,
        version: Option<Version<'_>>,
        write: impl FnOnce(&mut Entry, i64) -> bool,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let expires = self.forgotten(who, now, self.ttl);
        let key = self.keyer.key(who.key);
        let mut items = self.items();
        match items.open.get_mut(&key).map(|e| &mut **e) {
            Some(entry) if matches!(&*entry, Entry::InProgress { owner: o, .. } if *o == who.owner) => {
                if !write(entry, expires) {
                    items.open.remove(&key);
                }
                // The version and the item in one step.
                Self::raise_in(&mut items, &self.keyer, version);
                self.wrote(&mut items, now);
                Ok(())
            }
            _ => Err(lost(who)),
        }
    }
}

fn lost(who: Claimant<'_>) -> StoreError {
    StoreError::lost(format!("{} is not claimed by {}", who.key, who.owner))
}

#[async_trait::async_trait]
impl IdempotencyStore for MemoryStore {
    fn clock(&self) -> Clock {
        self.clock
    }

    fn memory(&self) -> Option<Duration> {
        Some(self.ttl)
    }

    async fn claim(&self, who: Claimant<'_>) -> Result<Claim, StoreError> {
        let now = self.clock.now_ms();
        let key = self.keyer.key(who.key);
        let mut items = self.items();
        match items.completed.get(&key) {
            Some(c) if c.expires > now => return Ok(Claim::Completed),
            Some(_) => drop(items.completed.remove(&key)),
            None => {}
        }
        let done = match items.open.get(&key).map(|e| &**e).filter(|entry| entry.expires() > now) {
            Some(Entry::InProgress { lease_until, .. }) if *lease_until > now => {
                return Ok(Claim::InProgress {
                    lease_left: Some(Duration::from_millis(u64::try_from(lease_until - now).unwrap_or(0))),
                })
            }
            // A crashed attempt leaves the steps it recorded.
            Some(Entry::InProgress { done, .. } | Entry::Released { done, .. }) => done.clone(),
            Some(Entry::Completed { .. }) | None => Done::new(),
        };
        let expires = self.forgotten(who, now, self.ttl.max(self.lease));
        let lease_until = now.saturating_add(ms(self.lease));
        let claimed = Entry::InProgress { owner: who.owner, lease_until, done: done.clone(), expires };
        items.open.insert(key, Box::new(claimed));
        self.wrote(&mut items, now);
        Ok(Claim::Acquired { done })
    }

    async fn applied_version(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.version(subject))
    }

    async fn raise(&self, version: Version<'_>) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut items = self.items();
        Self::raise_in(&mut items, &self.keyer, Some(version));
        self.wrote(&mut items, now);
        Ok(())
    }

    async fn record(&self, who: Claimant<'_>, done: &Done, version: Option<Version<'_>>) -> Result<(), StoreError> {
        self.owned(who, version, |entry, expires| {
            if let Entry::InProgress { done: recorded, expires: until, .. } = entry {
                recorded.clone_from(done);
                *until = (*until).max(expires);
            }
            true
        })
    }

    async fn complete(&self, who: Claimant<'_>, version: Option<Version<'_>>) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let expires = self.forgotten(who, now, self.ttl);
        let key = self.keyer.key(who.key);
        let mut items = self.items();
        let completion = Completion { owner: halves(who.owner), expires };
        match items.completed.get(&key) {
            // A completion whose answer was lost, made again: already so.
            Some(c) if whole(c.owner) == who.owner => {}
            Some(_) => return Err(lost(who)),
            None => match items.open.get(&key).map(|e| &**e) {
                Some(Entry::InProgress { owner, .. }) if *owner == who.owner => {
                    items.open.remove(&key);
                    items.completed.insert(key, completion);
                }
                _ => return Err(lost(who)),
            },
        }
        // The version and the item in one step.
        Self::raise_in(&mut items, &self.keyer, version);
        self.wrote(&mut items, now);
        Ok(())
    }

    async fn release(&self, who: Claimant<'_>, done: &Done, version: Option<Version<'_>>) -> Result<(), StoreError> {
        self.owned(who, version, |entry, expires| {
            if done.is_empty() {
                return false;
            }
            *entry = Entry::Released { done: done.clone(), expires };
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::idempotency::StoreErrorKind;

    const NONE: Option<Version<'static>> = None;

    fn who(key: &str, owner: u128) -> Claimant<'_> {
        Claimant { key, owner: Owner(owner), event_ms: 0 }
    }

    fn store() -> MemoryStore {
        MemoryStore::with_clock(Duration::from_secs(60), Duration::from_secs(3600), Clock::starting_at(0))
    }

    #[tokio::test(start_paused = true)]
    async fn claim_complete_release_and_expiry() {
        let none = Done::new();
        let store = store();
        assert_eq!(store.claim(who("a", 1)).await, Ok(Claim::fresh()));
        assert!(matches!(store.claim(who("a", 2)).await, Ok(Claim::InProgress { lease_left: Some(_) })));
        store.release(who("a", 1), &none, NONE).await.unwrap();
        assert_eq!(store.claim(who("a", 2)).await, Ok(Claim::fresh()));
        store.complete(who("a", 2), NONE).await.unwrap();
        assert_eq!(store.claim(who("a", 3)).await, Ok(Claim::Completed));
        assert_eq!(store.release(who("a", 2), &none, NONE).await.unwrap_err().kind, StoreErrorKind::Lost);
        assert_eq!(store.claim(who("a", 3)).await, Ok(Claim::Completed), "release never undoes a completion");

        assert_eq!(store.claim(who("b", 1)).await, Ok(Claim::fresh()));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(store.claim(who("b", 2)).await, Ok(Claim::fresh()), "an abandoned claim expires");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(store.claim(who("a", 4)).await, Ok(Claim::fresh()), "completions expire after the TTL");
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_owner_writes_and_a_repeated_completion_is_the_same() {
        let store = store();
        assert_eq!(store.claim(who("a", 5)).await, Ok(Claim::fresh()));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(store.claim(who("a", 6)).await, Ok(Claim::fresh()), "taken over after the lease");
        let handler: Done = ["handler".to_owned()].into();
        for refused in [
            store.record(who("a", 5), &handler, NONE).await,
            store.complete(who("a", 5), NONE).await,
            store.release(who("a", 5), &handler, NONE).await,
        ] {
            assert_eq!(refused.unwrap_err().kind, StoreErrorKind::Lost, "the first attempt lost its claim");
        }
        store.complete(who("a", 6), NONE).await.unwrap();
        store.complete(who("a", 6), NONE).await.unwrap();
        assert_eq!(store.claim(who("a", 7)).await, Ok(Claim::Completed));
    }

    #[tokio::test]
    async fn the_applied_version_only_moves_forward_with_any_owned_write() {
        let store = store();
        let v = |at| Some(Version { subject: "s", at });
        assert_eq!(store.applied_version("s").await, Ok(None));
        store.claim(who("a", 8)).await.unwrap();
        store.record(who("a", 8), &Done::new(), v(20)).await.unwrap();
        assert_eq!(store.applied_version("s").await, Ok(Some(20)));
        store.claim(who("b", 8)).await.unwrap();
        store.complete(who("b", 8), v(10)).await.unwrap();
        assert_eq!(store.applied_version("s").await, Ok(Some(20)), "an older completion never moves it back");
        assert_eq!(store.claim(who("b", 9)).await, Ok(Claim::Completed), "the completion is written all the same");
        store.claim(who("c", 8)).await.unwrap();
        store.release(who("c", 8), &Done::new(), v(30)).await.unwrap();
        assert_eq!(store.applied_version("s").await, Ok(Some(30)), "a release records it too");
        assert_eq!(store.complete(who("d", 8), v(40)).await.unwrap_err().kind, StoreErrorKind::Lost);
        assert_eq!(store.applied_version("s").await, Ok(Some(30)), "a refused write writes no version");
    }

    #[tokio::test(start_paused = true)]
    async fn recorded_and_released_steps_are_found_by_the_next_claim() {
        let store = store();
        let handler: Done = ["handler".to_owned()].into();
        assert_eq!(store.claim(who("a", 1)).await, Ok(Claim::fresh()));
        store.release(who("a", 1), &handler, NONE).await.unwrap();
        assert_eq!(store.claim(who("a", 2)).await, Ok(Claim::Acquired { done: handler.clone() }));
        assert!(matches!(store.claim(who("a", 3)).await, Ok(Claim::InProgress { lease_left: Some(_) })));
        let both: Done = ["handler".to_owned(), "http".to_owned()].into();
        store.record(who("a", 2), &both, NONE).await.unwrap();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            store.claim(who("a", 3)).await,
            Ok(Claim::Acquired { done: both }),
            "a crashed attempt leaves the steps it recorded"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_past_its_memory_is_swept_away_as_the_store_grows() {
        let store = store();
        let none = Done::new();
        for i in 0..SWEEP_EVERY {
            let key = format!("old-{i}");
            store.claim(who(&key, 1)).await.unwrap();
            store.complete(who(&key, 1), Some(Version { subject: &key, at: 0 })).await.unwrap();
        }
        // Two writes each, so a sweep has run already: nothing was past its memory.
        assert_eq!(store.len(), SWEEP_EVERY);
        tokio::time::advance(Duration::from_secs(3601)).await;
        for i in 0..SWEEP_EVERY {
            let key = format!("new-{i}");
            store.claim(who(&key, 2)).await.unwrap();
            store.release(who(&key, 2), &none, NONE).await.unwrap();
        }
        assert_eq!(store.len(), 0, "the old completions are forgotten, the released claims gone");
        assert_eq!(store.version("old-1"), None, "a version older than the memory is forgotten too");
        assert_eq!(store.claim(who("old-1", 3)).await, Ok(Claim::fresh()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_store_says_so_and_forgets_nothing_inside_its_memory() {
        let store = store().with_cap(3);
        for key in ["a", "b"] {
            store.claim(who(key, 1)).await.unwrap();
            store.complete(who(key, 1), NONE).await.unwrap();
        }
        assert!(!store.full());
        store.claim(who("c", 1)).await.unwrap();
        assert!(store.full(), "a claim in progress is remembered too");
        assert_eq!(store.claim(who("a", 2)).await, Ok(Claim::Completed), "full, it still answers for what it holds");
        store.complete(who("c", 1), NONE).await.unwrap();
        assert!(store.full());
        tokio::time::advance(Duration::from_secs(1800)).await;
        assert!(store.full(), "nothing is forgotten inside its memory");
        assert_eq!(store.claim(who("b", 2)).await, Ok(Claim::Completed));
        tokio::time::advance(Duration::from_secs(1801)).await;
        assert!(!store.full(), "once past their memory, they are swept to make room");
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn keys_of_different_texts_differ_and_the_same_text_is_the_same_key() {
        let store = store();
        let keys: std::collections::HashSet<(u64, u64)> =
            (0..100_000).map(|i| store.keyer.key(&format!("task#{i}"))).map(|Key(a, b)| (a, b)).collect();
        assert_eq!(keys.len(), 100_000);
        assert_eq!(store.keyer.key("task#1"), store.keyer.key("task#1"));
        assert!(std::mem::size_of::<(Key, Completion)>() <= 40, "a completion stays small");
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_stamped_ahead_is_remembered_from_its_own_time() {
        // Five minutes ahead of the store's clock, within the skew ingest allows: the
        // expiry rule accepts it until its own time plus the memory, so its record must
        // last as long, not only from its completion.
        let store = store();
        let ahead = Claimant { key: "f", owner: Owner(1), event_ms: 300_000 };
        assert_eq!(store.claim(ahead).await, Ok(Claim::fresh()));
        store.complete(ahead, NONE).await.unwrap();
        tokio::time::advance(Duration::from_secs(3600 + 60)).await;
        let again = Claimant { owner: Owner(2), ..ahead };
        assert_eq!(store.claim(again).await, Ok(Claim::Completed), "past completion + memory, before event + memory");
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(store.claim(again).await, Ok(Claim::fresh()), "forgotten once the rule refuses it too");
    }
}
