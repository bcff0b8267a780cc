//! The `unrouted` queue's consumer: it only archives what ingest quarantined.

use crate::archive::{Archive, ArchiveError, Stored};
use crate::error::ServiceError;

use super::Record;

/// Archives the records of the `unrouted` queue: authentic deliveries ingest could not
/// route, keyed by when they were received and their SHA-256 (so a delivery captured
/// and sent again lands on the same key), their reason kept as metadata; at most
/// `in_flight` at once. Answers, per record in order, the message ID and what the archive
/// did.
pub async fn archive_unrouted(
    archive: &Archive,
    records: &[Record],
    in_flight: usize,
) -> Vec<(String, Result<Stored, ArchiveError>)> {
    use futures_util::StreamExt as _;
    let writes: Vec<_> = records.iter().map(|record| async move {
        let stored = match record.body_bytes() {
            // Never readable: the archive cannot take it, and no retry changes that.
            Err(why) => Err(ArchiveError(ServiceError::permanent(format!("the message: {why}")))),
            // By its SHA-256: a captured delivery replayed into quarantine any number of
            // times, on any day, is kept once.
            Ok(bytes) => {
                archive.unrouted(&bytes, &record.reception()).await.map(|(_, stored)| stored)
            }
        };
        match &stored {
            Ok(_) => tracing::debug!(message_id = %record.message_id, "quarantined delivery archived"),
            Err(e) => tracing::warn!(message_id = %record.message_id, error = %e, "quarantined delivery not archived; retried"),
        }
        (record.message_id.clone(), stored)
    }).collect();
    futures_util::stream::iter(writes).buffered(in_flight.max(1)).collect().await
}
