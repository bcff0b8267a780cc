//! The DynamoDB idempotency store: one item per `<group>#<PayloadId>`, claimed with a
//! conditional update (which returns the item it found, refused or not), completed with
//! a TTL, released by a conditional delete, or by ending the lease and keeping the steps
//! that succeeded when some did.
//!
//! Item: `pk` (S), `state` (`IN_PROGRESS` | `COMPLETED`), `owner` (S, the attempt that
//! claimed: every later write is conditioned on it), `lease_until` (N, epoch ms),
//! `done` (SS, the steps recorded) and `expires_at` (N, epoch seconds,
//! the table's TTL attribute). DynamoDB deletes expired items lazily, so every condition
//! also treats them as absent.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification, Update,
};
use aws_sdk_dynamodb::Client;

use crate::clock::Clock;
use crate::consumer::idempotency::{
    Claim, Claimant, Done, Entry, IdempotencyStore, Owner, StoreError, StoreErrorKind, Version,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

/// The table's partition key (a string): `<group>#<PayloadId>`.
pub const PARTITION_KEY: &str = "pk";
/// The table's TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// A claim's state: `IN_PROGRESS` or `COMPLETED`.
pub const STATE: &str = "state";
/// The state of an applied event.
pub const COMPLETED: &str = "COMPLETED";
const IN_PROGRESS: &str = "IN_PROGRESS";
/// The steps a released claim had done (a string set).
pub const DONE: &str = "done";
const LEASE_UNTIL: &str = "lease_until";
/// The attempt holding (or that completed) a claim: only it may write to the item.
const OWNER: &str = "owner";
/// The last applied version of a facet of an entity (`EventDatetimeUtc`, N).
pub const VERSION: &str = "version";

/// Idempotency in a DynamoDB table (on-demand, TTL on `expires_at`).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    lease: Duration,
    ttl: Duration,
    clock: Clock,
}

fn n(value: u128) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl DynamoStore {
    /// The item at `key`, read consistently.
    async fn read(&self, key: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed(&e))?;
        Ok(found.item)
    }

    /// A store in `table`: claims last `lease` (longer than the consumer's timeout),
    /// completions `ttl` (longer than the replay window).
    pub fn new(client: Client, table: impl Into<String>, lease: Duration, ttl: Duration) -> Self {
        Self { client, table: table.into(), lease, ttl, clock: Clock::system() }
    }

    /// What the item at `key` holds, as the memory store would hold it (for the
    /// simulation's checks and the tests): `None` when absent or forgotten.
    pub async fn entry(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let Some(item) = self.read(key).await? else { return Ok(None) };
        let expires = number(&item, TTL_ATTRIBUTE).map_or(i64::MAX, |s| i64::try_from(s * 1000).unwrap_or(i64::MAX));
        if expires <= self.clock.now_ms() {
            return Ok(None);
        }
        let done = done_of(&item, 0);
        let owner = Owner(text(&item, OWNER).and_then(|o| u128::from_str_radix(o, 16).ok()).unwrap_or_default());
        let lease_until = number(&item, LEASE_UNTIL).map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX));
        Ok(match text(&item, STATE) {
            Some(COMPLETED) => Some(Entry::Completed { owner, expires }),
            Some(IN_PROGRESS) if lease_until == 0 => Some(Entry::Released { done, expires }),
            Some(IN_PROGRESS) => Some(Entry::InProgress { owner, lease_until, done, expires }),
            _ => None,
        })
    }

    /// The same store on `clock`.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// Creates the table with TTL on, unless it exists (for `cfwh dev` and tests; the SAM
    /// template creates it when deployed).
    pub async fn create_table_if_missing(client: &Client, table: &str) -> Result<(), StoreError> {
        if client.describe_table().table_name(table).send().await.is_ok() {
            return Ok(());
        }
        let build = unbuildable;
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(PARTITION_KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(PARTITION_KEY)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build)?,
            )
            .send()
            .await
            .map_err(|e| failed(&e))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .map_err(build)?,
            )
            .send()
            .await
            .map_err(|e| failed(&e))?;
        Ok(())
    }
}

/// The steps an item holds, unless it has expired.
fn done_of(item: &HashMap<String, AttributeValue>, now_s: u64) -> Done {
    if number(item, TTL_ATTRIBUTE).is_some_and(|t| t < u128::from(now_s)) {
        return Done::new();
    }
    item.get(DONE).and_then(|d| d.as_ss().ok()).map(|steps| steps.iter().cloned().collect()).unwrap_or_default()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u128> {
    item.get(name).and_then(|t| t.as_n().ok()).and_then(|t| t.parse::<u128>().ok())
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|s| s.as_s().ok()).map(String::as_str)
}

/// What a claim refused because of `item` tells.
fn state_of(item: &HashMap<String, AttributeValue>, now_ms: u128) -> Claim {
    match text(item, STATE) {
        Some(COMPLETED) => Claim::Completed,
        Some(IN_PROGRESS) => {
            let left = number(item, LEASE_UNTIL).map(|until| until.saturating_sub(now_ms)).filter(|left| *left > 0);
            Claim::InProgress { lease_left: left.map(|l| Duration::from_millis(u64::try_from(l).unwrap_or(u64::MAX))) }
        }
        // Gone or released meanwhile: the retry claims it.
        _ => Claim::InProgress { lease_left: None },
    }
}

/// A failed call, with the kind its code or status names.
fn failed<E>(e: &SdkError<E, HttpResponse>) -> StoreError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    super::service_error(e).into()
}

/// A request this code built wrong: no retry helps.
fn unbuildable(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::new(StoreErrorKind::Permanent, e.to_string())
}

/// How a write to the claim's item ends.
enum Write {
    /// Keep the claim and record the steps.
    Record,
    /// Mark it completed.
    Complete,
    /// End the lease, keeping the steps (deleting the item when there are none).
    Release,
}

/// The condition of every write after a claim: the claim is in progress and `who`'s.
const HELD_BY_OWNER: &str = "#state = :in_progress AND #owner = :owner";

/// The names [`HELD_BY_OWNER`] uses.
fn held_names() -> HashMap<String, String> {
    HashMap::from([("#state".to_owned(), STATE.to_owned()), ("#owner".to_owned(), OWNER.to_owned())])
}

/// The values [`HELD_BY_OWNER`] compares with.
fn held_values(who: Claimant<'_>) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":in_progress".to_owned(), AttributeValue::S(IN_PROGRESS.into())),
        (":owner".to_owned(), AttributeValue::S(who.owner.to_string())),
    ])
}

impl DynamoStore {
    /// When an item written now for `who` is forgotten (the TTL, epoch seconds): `memory`
    /// from now or from the event's time, whichever is later.
    fn forgotten(&self, who: Claimant<'_>, memory: Duration) -> u128 {
        let from = self.clock.now().max(Duration::from_millis(u64::try_from(who.event_ms).unwrap_or(0)));
        (from + memory).as_secs().into()
    }

    /// The update of the claim's item for `write`, conditioned on `owner` holding it.
    fn claim_update(&self, who: Claimant<'_>, write: &Write, done: &Done) -> Result<Update, StoreError> {
        let expires = n(self.forgotten(who, self.ttl));
        let update = Update::builder()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(who.key.to_owned()))
            .condition_expression(HELD_BY_OWNER)
            .set_expression_attribute_names(Some(held_names()))
            .set_expression_attribute_values(Some(held_values(who)));
        let steps = |update: aws_sdk_dynamodb::types::builders::UpdateBuilder, set: &str| {
            if done.is_empty() {
                update.update_expression(format!("{set} REMOVE #done"))
            } else {
                update
                    .update_expression(format!("{set}, #done = :done"))
                    .expression_attribute_values(":done", AttributeValue::Ss(done.iter().cloned().collect()))
            }
            .expression_attribute_names("#done", DONE)
        };
        let update = match write {
            Write::Record => steps(update, "SET #ttl = :ttl"),
            // The steps of a released claim stay on the item for as long as a completion
            // would be remembered.
            Write::Release => steps(update, "SET #lease = :zero, #ttl = :ttl")
                .expression_attribute_names("#lease", LEASE_UNTIL)
                .expression_attribute_values(":zero", n(0)),
            Write::Complete => update
                .update_expression("SET #state = :completed, #ttl = :ttl REMOVE #lease")
                .expression_attribute_names("#lease", LEASE_UNTIL)
                .expression_attribute_values(":completed", AttributeValue::S(COMPLETED.into())),
        };
        update
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":ttl", expires)
            .build()
            .map_err(unbuildable)
    }

    /// Raises a facet's version, never lowering it: one `UpdateItem` of the facet's item
    /// (one write unit). An equal or newer version recorded already is no error: nothing
    /// is written, which is what was wanted.
    async fn raise_version(&self, version: Version<'_>) -> Result<(), StoreError> {
        let raised = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(version.subject.to_owned()))
            // Kept for good (no TTL): longer than any archive can be replayed from, so a
            // replay never moves an entity back. An entity's facet is one small item.
            .update_expression("SET #version = :version REMOVE #ttl")
            .condition_expression("attribute_not_exists(#version) OR #version < :version OR #ttl < :now_s")
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":version", AttributeValue::N(version.at.to_string()))
            .expression_attribute_values(":now_s", n(self.clock.now().as_secs().into()))
            .send()
            .await;
        match raised {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(failed(&e)),
        }
    }

    /// `write` to `owner`'s claim of `key`, after raising the facet's `version` in a
    /// write of its own: two `UpdateItem`s (one write unit each) rather than a
    /// transaction of both (two units per item). The version goes first: an attempt that
    /// dies between the two leaves the version raised and its claim unwritten, which a
    /// later attempt finds `stale` (the one window between the handler and the write that
    /// records it, a round trip longer); never an older event of the facet applied after
    /// this one. A completion refused because the item is completed by this owner
    /// already (a retried write whose first answer was lost) succeeds.
    async fn write(
        &self,
        who: Claimant<'_>,
        write: Write,
        done: &Done,
        version: Option<Version<'_>>,
    ) -> Result<(), StoreError> {
        if let Some(version) = version {
            self.raise_version(version).await?;
        }
        if let (Write::Release, true) = (&write, done.is_empty()) {
            return self.delete(who).await;
        }
        let update = self.claim_update(who, &write, done)?;
        let sent = self
            .client
            .update_item()
            .set_table_name(Some(update.table_name().to_owned()))
            .set_key(Some(update.key().clone()))
            .update_expression(update.update_expression())
            .set_condition_expression(update.condition_expression().map(str::to_owned))
            .set_expression_attribute_names(update.expression_attribute_names().cloned())
            .set_expression_attribute_values(update.expression_attribute_values().cloned())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(found)) => {
                    self.refused(who, &write, found.item()).await
                }
                _ => Err(failed(&e)),
            },
        }
    }

    /// A write refused by its condition: `Lost`, unless the item says a completion of
    /// this owner was made already.
    async fn refused(
        &self,
        who: Claimant<'_>,
        write: &Write,
        found: Option<&HashMap<String, AttributeValue>>,
    ) -> Result<(), StoreError> {
        let read;
        let item = match found {
            Some(item) => Some(item),
            None => {
                read = self.read(who.key).await?;
                read.as_ref()
            }
        };
        let completed_by_owner = item.is_some_and(|i| {
            text(i, STATE) == Some(COMPLETED) && text(i, OWNER) == Some(who.owner.to_string().as_str())
        });
        match write {
            Write::Complete if completed_by_owner => Ok(()),
            _ => Err(StoreError::lost(format!("{} is not claimed by this attempt", who.key))),
        }
    }

    /// Deletes `owner`'s claim of `key` (a release with nothing done).
    async fn delete(&self, who: Claimant<'_>) -> Result<(), StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(who.key.to_owned()))
            .condition_expression(HELD_BY_OWNER)
            .set_expression_attribute_names(Some(held_names()))
            .set_expression_attribute_values(Some(held_values(who)))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(StoreError::lost(format!("{} is not claimed by this attempt", who.key)))
            }
            Err(e) => Err(failed(&e)),
        }
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for DynamoStore {
    fn clock(&self) -> Clock {
        self.clock
    }

    fn memory(&self) -> Option<Duration> {
        Some(self.ttl)
    }

    async fn claim(&self, who: Claimant<'_>) -> Result<Claim, StoreError> {
        let now = self.clock.now();
        let lease_until = (now + self.lease).as_millis();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(who.key.to_owned()))
            // The steps of a released claim stay on the item, so the TTL is the one of a
            // completion: what was done is remembered as long as a completion would be.
            .update_expression("SET #state = :in_progress, #lease = :lease, #ttl = :ttl, #owner = :owner")
            .condition_expression(
                "attribute_not_exists(#pk) OR #ttl < :now_s OR (#state = :in_progress AND #lease < :now_ms)",
            )
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#lease", LEASE_UNTIL)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":ttl", n(self.forgotten(who, self.ttl.max(self.lease))))
            .expression_attribute_values(":now_ms", n(now.as_millis()))
            .expression_attribute_values(":now_s", n(now.as_secs().into()))
            .expression_attribute_values(":owner", AttributeValue::S(who.owner.to_string()))
            // Granted, the old item tells which steps are done; refused, what it found, so
            // no second call has to read it.
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(granted) => Ok(Claim::Acquired {
                done: granted.attributes().map(|old| done_of(old, now.as_secs())).unwrap_or_default(),
            }),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(found)) => match found.item() {
                    Some(item) => Ok(state_of(item, now.as_millis())),
                    // An endpoint that does not return the item (an older emulator): read it.
                    None => Ok(self
                        .read(who.key)
                        .await?
                        .as_ref()
                        .map_or(Claim::InProgress { lease_left: None }, |item| state_of(item, now.as_millis()))),
                },
                _ => Err(failed(&e)),
            },
        }
    }

    async fn applied_version(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        let Some(item) = self.read(subject).await? else { return Ok(None) };
        if number(&item, TTL_ATTRIBUTE).is_some_and(|t| t < u128::from(self.clock.now().as_secs())) {
            return Ok(None);
        }
        Ok(item.get(VERSION).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()))
    }

    async fn raise(&self, version: Version<'_>) -> Result<(), StoreError> {
        self.raise_version(version).await
    }

    async fn record(&self, who: Claimant<'_>, done: &Done, version: Option<Version<'_>>) -> Result<(), StoreError> {
        self.write(who, Write::Record, done, version).await
    }

    async fn complete(&self, who: Claimant<'_>, version: Option<Version<'_>>) -> Result<(), StoreError> {
        self.write(who, Write::Complete, &Done::new(), version).await
    }

    async fn release(&self, who: Claimant<'_>, done: &Done, version: Option<Version<'_>>) -> Result<(), StoreError> {
        self.write(who, Write::Release, done, version).await
    }
}
