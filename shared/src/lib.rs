//! cf-webhooks: receive Creative Force webhooks without dropping, double-applying or
//! letting a forged event in.
//!
//! Everything the ingest Lambda, the consumer Lambdas and `cfwh` share lives here, as
//! plain functions over plain data:
//! - [`signature`] and [`secret`]: `X-CF-Signature` and the keys it is checked against;
//! - [`events`]: the envelope and the typed events of the seven groups;
//! - [`ack`]: the ack path, from a delivery to an answer and at most one message;
//! - [`queue`]: the publisher interface and the in-memory queues;
//! - [`consumer`]: the batch runner, handlers and idempotency;
//! - [`destination`] and [`archive`]: where events go besides the handler;
//! - [`config`]: configuration from the environment.
#![warn(missing_docs)]

pub mod ack;
pub mod archive;
#[cfg(feature = "aws")]
pub mod aws;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod destination;
pub mod error;
pub mod events;
pub mod filter;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod outbound;
pub mod queue;
pub mod secret;
pub mod signature;
#[cfg(feature = "simulation")]
pub mod simulation;
pub mod stack;
#[cfg(feature = "testkit")]
pub mod testkit;
mod text;
pub mod xray;

/// The secret `cfwh dev` and `make send` use when none is configured. Never deploy it.
pub const DEV_SECRET: &str = "cfwh-dev-secret-not-for-production";
