//! The DynamoDB idempotency store: one item per `<group>#<PayloadId>`, claimed with a
//! conditional update (which returns the item it found, refused or not), completed with
//! a TTL, released by a conditional delete, or by ending the lease and keeping the steps
//! that succeeded when some did.
//!
//! Item: `pk` (S), `state` (`IN_PROGRESS` | `COMPLETED`), `lease_until` (N, epoch ms),
//! `done` (SS, the steps an earlier attempt finished) and `expires_at` (N, epoch seconds,
//! the table's TTL attribute). DynamoDB deletes expired items lazily, so every condition
//! also treats them as absent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::describe;
use crate::consumer::idempotency::{Claim, Done, IdempotencyStore, StoreError};

/// The table's partition key (a string): `<group>#<PayloadId>`.
pub const PARTITION_KEY: &str = "pk";
/// The table's TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// A claim's state: `IN_PROGRESS` or `COMPLETED`.
pub const STATE: &str = "state";
/// The state of an applied event.
pub const COMPLETED: &str = "COMPLETED";
const IN_PROGRESS: &str = "IN_PROGRESS";
/// The steps a released claim finished (a string set).
pub const DONE: &str = "done";
const LEASE_UNTIL: &str = "lease_until";
/// The last applied version of a facet of an entity (`EventDatetimeUtc`, N).
pub const VERSION: &str = "version";

/// Idempotency in a DynamoDB table (on-demand, TTL on `expires_at`).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    lease: Duration,
    ttl: Duration,
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
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
            .map_err(|e| StoreError(describe(&e)))?;
        Ok(found.item)
    }

    /// A store in `table`: claims last `lease` (longer than the consumer's timeout),
    /// completions `ttl` (longer than the replay window).
    pub fn new(client: Client, table: impl Into<String>, lease: Duration, ttl: Duration) -> Self {
        Self { client, table: table.into(), lease, ttl }
    }

    /// Creates the table with TTL on, unless it exists (for `cfwh dev` and tests; the SAM
    /// template creates it when deployed).
    pub async fn create_table_if_missing(client: &Client, table: &str) -> Result<(), StoreError> {
        if client.describe_table().table_name(table).send().await.is_ok() {
            return Ok(());
        }
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError(e.to_string());
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
            .map_err(|e| StoreError(describe(&e)))?;
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
            .map_err(|e| StoreError(describe(&e)))?;
        Ok(())
    }
}

/// The steps an item holds, unless it has expired.
fn done_of(item: &HashMap<String, AttributeValue>, now_s: u64) -> Done {
    let expires = item.get(TTL_ATTRIBUTE).and_then(|t| t.as_n().ok()).and_then(|t| t.parse::<u64>().ok());
    if expires.is_some_and(|t| t < now_s) {
        return Done::new();
    }
    item.get(DONE).and_then(|d| d.as_ss().ok()).map(|steps| steps.iter().cloned().collect()).unwrap_or_default()
}

/// True when a transaction was cancelled by its second item's condition alone.
fn newer_recorded(
    error: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            let codes: Vec<&str> =
                cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
            matches!(codes.as_slice(), ["None", "ConditionalCheckFailed"])
        }
        _ => false,
    }
}

fn state_of(item: &HashMap<String, AttributeValue>) -> Claim {
    match item.get(STATE).and_then(|s| s.as_s().ok()).map(String::as_str) {
        Some(COMPLETED) => Claim::Completed,
        // Gone or released meanwhile: the retry claims it.
        Some(IN_PROGRESS) => Claim::InProgress { lease_left: lease_left(item) },
        _ => Claim::InProgress { lease_left: None },
    }
}

/// How long the claim an item holds still runs, from its lease's end.
fn lease_left(item: &HashMap<String, AttributeValue>) -> Option<Duration> {
    let until = item.get(LEASE_UNTIL).and_then(|l| l.as_n().ok()).and_then(|l| l.parse::<u128>().ok())?;
    let left = until.saturating_sub(now().as_millis());
    (left > 0).then(|| Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX)))
}

#[async_trait::async_trait]
impl IdempotencyStore for DynamoStore {
    fn memory(&self) -> Option<Duration> {
        Some(self.ttl)
    }

    async fn claim(&self, key: &str) -> Result<Claim, StoreError> {
        let now = now();
        let lease_until = (now + self.lease).as_millis();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            // The steps of a released claim stay on the item, so the TTL is the one of a
            // completion: what was done is remembered as long as a completion would be.
            .update_expression("SET #state = :in_progress, #lease = :lease, #ttl = :ttl")
            .condition_expression(
                "attribute_not_exists(#pk) OR #ttl < :now_s OR (#state = :in_progress AND #lease < :now_ms)",
            )
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#lease", LEASE_UNTIL)
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":ttl", n((now + self.ttl.max(self.lease)).as_secs().into()))
            .expression_attribute_values(":now_ms", n(now.as_millis()))
            .expression_attribute_values(":now_s", n(now.as_secs().into()))
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
                    Some(item) => Ok(state_of(item)),
                    // An endpoint that does not return the item (an older emulator): read it.
                    None => Ok(self.read(key).await?.as_ref().map_or(Claim::InProgress { lease_left: None }, state_of)),
                },
                _ => Err(StoreError(describe(&e))),
            },
        }
    }

    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .item(STATE, AttributeValue::S(COMPLETED.into()))
            .item(TTL_ATTRIBUTE, n((now() + self.ttl).as_secs().into()))
            .send()
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        Ok(())
    }

    async fn applied_version(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        let Some(item) = self.read(subject).await? else { return Ok(None) };
        let expired = item
            .get(TTL_ATTRIBUTE)
            .and_then(|t| t.as_n().ok())
            .and_then(|t| t.parse::<u64>().ok())
            .is_some_and(|t| t < now().as_secs());
        if expired {
            return Ok(None);
        }
        Ok(item.get(VERSION).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()))
    }

    async fn complete_applied(&self, key: &str, subject: &str, version: i64) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError(e.to_string());
        let completion = Put::builder()
            .table_name(&self.table)
            .item(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .item(STATE, AttributeValue::S(COMPLETED.into()))
            .item(TTL_ATTRIBUTE, n((now() + self.ttl).as_secs().into()))
            .build()
            .map_err(build)?;
        let newest = Update::builder()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(subject.to_owned()))
            // Kept for good (no TTL): longer than any archive can be replayed from, so a
            // replay never moves an entity back. An entity's facet is one small item.
            .update_expression("SET #version = :version REMOVE #ttl")
            .condition_expression("attribute_not_exists(#version) OR #version < :version OR #ttl < :now_s")
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":version", AttributeValue::N(version.to_string()))
            .expression_attribute_values(":now_s", n(now().as_secs().into()))
            .build()
            .map_err(build)?;
        let written = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(completion).build())
            .transact_items(TransactWriteItem::builder().update(newest).build())
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            // The version's condition failed: an equal or newer one is recorded already,
            // which is not to move back. The completion is written on its own.
            Err(e) if newer_recorded(&e) => self.complete(key).await,
            Err(e) => Err(StoreError(describe(&e))),
        }
    }

    async fn release(&self, key: &str, done: &Done) -> Result<(), StoreError> {
        let result = if done.is_empty() {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key(PARTITION_KEY, AttributeValue::S(key.to_owned()))
                .condition_expression("#state = :in_progress")
                .expression_attribute_names("#state", STATE)
                .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
                .send()
                .await
                .map(drop)
                .map_err(|e| {
                    (e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()), describe(&e))
                })
        } else {
            // The lease ends now; the steps that succeeded stay for the next attempt.
            self.client
                .update_item()
                .table_name(&self.table)
                .key(PARTITION_KEY, AttributeValue::S(key.to_owned()))
                .update_expression("SET #lease = :zero, #done = :done, #ttl = :ttl")
                .condition_expression("#state = :in_progress")
                .expression_attribute_names("#state", STATE)
                .expression_attribute_names("#lease", LEASE_UNTIL)
                .expression_attribute_names("#done", DONE)
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":done", AttributeValue::Ss(done.iter().cloned().collect()))
                .expression_attribute_values(":ttl", n((now() + self.ttl).as_secs().into()))
                .send()
                .await
                .map(drop)
                .map_err(|e| {
                    (e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()), describe(&e))
                })
        };
        match result {
            Ok(()) => Ok(()),
            // Completed meanwhile, or already gone: nothing to release.
            Err((true, _)) => Ok(()),
            Err((false, e)) => Err(StoreError(e)),
        }
    }
}
