//! How a record ended (its outcome and each destination's step), as logged, counted and
//! printed by `cfwh dev`, and the batch's answer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::events::EventGroup;

/// How a record ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler and every destination applied it.
    Processed,
    /// Already applied before: skipped.
    Duplicate,
    /// Not applied: a newer event of the same facet of the same entity was applied
    /// already (per-entity order, `CF_ORDERING=latest`).
    Stale {
        /// The version (`EventDatetimeUtc`) applied already.
        newer: i64,
        /// This event's.
        version: i64,
    },
    /// Not applied (or not everywhere); the record is retried, and only what failed is
    /// done again.
    Failed {
        /// Why.
        reason: String,
        /// The failure will not go away (no dead-letter queue was at hand to take it).
        permanent: bool,
        /// When to deliver it again, when a destination said (HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Not applied yet: another attempt holds the record's claim. The record is delivered
    /// again after `retry_after` (shorter or longer than the queue's visibility timeout,
    /// see [`claim_wait`](super::lifecycle::claim_wait)), and is then a duplicate, or applied
    /// when the holder gave up.
    Waiting {
        /// Why, with the holder's lease and the wait.
        reason: String,
        /// When to deliver it again.
        retry_after: Duration,
    },
    /// Not applied, and moved to the dead-letter queue.
    DeadLettered {
        /// Why.
        reason: String,
    },
    /// Not applied, and moved to the dead-letter queue: the event is older than the
    /// idempotency store remembers, so whether it was applied cannot be told (a message
    /// redriven after the memory ended). A replay run applies it deliberately.
    Expired {
        /// Why, with the event's time and the memory.
        reason: String,
    },
}

impl Outcome {
    /// How long the queue must hide the record before delivering it again, when not for
    /// `queue_delay`, its own visibility timeout (or retry delay): a copy waiting on
    /// another's claim exactly its wait, shorter or longer; a `Retry-After` only when
    /// longer, or a busy endpoint answering `Retry-After: 1` would use up a message's
    /// receives in seconds. The one rule of every host (the Lambda, `cfwh dev` over
    /// memory and over SQS, the simulation).
    pub fn hide_for(&self, queue_delay: Duration) -> Option<Duration> {
        match self {
            Self::Waiting { retry_after, .. } => Some(*retry_after),
            Self::Failed { retry_after: Some(after), .. } if *after > queue_delay => Some(*after),
            _ => None,
        }
    }

    /// A retryable failure.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self::Failed { reason: reason.into(), permanent: false, retry_after: None }
    }

    /// The word logs, metrics and `cfwh dev` use: `processed`, `duplicate`, `stale`, `failed`,
    /// `waiting`, `dead-lettered` or `expired`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Duplicate => "duplicate",
            Self::Stale { .. } => "stale",
            Self::Failed { .. } => "failed",
            Self::Waiting { .. } => "waiting",
            Self::DeadLettered { .. } => "dead-lettered",
            Self::Expired { .. } => "expired",
        }
    }

    /// The failure reason, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Failed { reason, .. }
            | Self::Waiting { reason, .. }
            | Self::DeadLettered { reason }
            | Self::Expired { reason } => Some(reason),
            _ => None,
        }
    }
}

/// How one destination (or the archive) fared with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Delivered by this attempt.
    Delivered,
    /// Delivered by an earlier attempt: not repeated.
    Earlier,
    /// Failed; retried or dead-lettered with the record.
    Failed,
    /// Archived by this attempt.
    Archived,
    /// Already in the archive (a duplicate delivery, or a retry).
    Present,
}

/// The end of one record, as logged and as printed by `cfwh dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordReport {
    /// `PayloadId`, when the body had one.
    pub payload_id: Option<String>,
    /// The queue's group.
    pub event_group: EventGroup,
    /// `Action`, when the body had one.
    pub action: Option<String>,
    /// How it ended ([`Outcome::word`]).
    #[serde(rename = "outcome", serialize_with = "outcome_word")]
    pub outcome: Outcome,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The queue's message ID.
    pub message_id: String,
    /// Delivery attempt, from 1.
    pub attempt: u32,
    /// The replay run that sent it again, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_run: Option<String>,
    /// Each destination (and the archive) and how it fared.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub destinations: BTreeMap<&'static str, Step>,
    /// The X-Ray trace the delivery was accepted in (`1-…`), when it came with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// How the event differs from what Creative Force documents (`CF_DRIFT`): field
    /// names and JSON types, never values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<crate::events::Finding>,
}

fn outcome_word<S: serde::Serializer>(outcome: &Outcome, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(outcome.word())
}

impl RecordReport {
    /// True when the queue must deliver the record again.
    pub fn retry(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. } | Outcome::Waiting { .. })
    }

    /// One JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("reports always serialize")
    }
}

/// The end of a batch.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// One report per record, in the batch's order.
    pub records: Vec<RecordReport>,
}

impl BatchReport {
    /// The message IDs to return as `batchItemFailures`.
    pub fn failures(&self) -> Vec<&str> {
        self.records.iter().filter(|r| r.retry()).map(|r| r.message_id.as_str()).collect()
    }
}

pub(super) fn log(report: &RecordReport) {
    let payload_id = report.payload_id.as_deref().unwrap_or("");
    let action = report.action.as_deref().unwrap_or("");
    let event_group = report.event_group.as_str();
    match &report.outcome {
        // Info is for what was applied (the handler logs it) and warnings for what went
        // wrong; a processed or skipped record is a debug line here, and both are counted
        // by the `Processed` and `Duplicates` metrics.
        Outcome::Processed | Outcome::Duplicate | Outcome::Stale { .. } => tracing::debug!(
            payload_id,
            event_group,
            action,
            outcome = report.outcome.word(),
            attempt = report.attempt,
            "record done"
        ),
        Outcome::Failed { reason, permanent, .. } => {
            tracing::warn!(
                payload_id,
                event_group,
                action,
                outcome = "failed",
                reason,
                permanent,
                attempt = report.attempt,
                "record failed; will be retried"
            )
        }
        Outcome::Waiting { reason, .. } => tracing::info!(
            payload_id,
            event_group,
            action,
            outcome = "waiting",
            reason,
            attempt = report.attempt,
            "record claimed by another attempt; waiting for it"
        ),
        Outcome::DeadLettered { reason } => {
            tracing::error!(
                payload_id,
                event_group,
                action,
                outcome = "dead-lettered",
                reason,
                "record moved to the dead-letter queue"
            )
        }
        Outcome::Expired { reason } => {
            tracing::error!(
                payload_id,
                event_group,
                action,
                outcome = "expired",
                reason,
                "record older than the idempotency memory moved to the dead-letter queue"
            )
        }
    }
}
