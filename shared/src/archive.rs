//! Where an archived event lives: object keys (and local paths) that sort by time, name
//! the event, and cannot be steered by anything the sender wrote.
//!
//! `<prefix>/<group>/<yyyy>/<mm>/<dd>/<EventDatetimeUtc>-<PayloadId>.json`, the date
//! folders from the event's own time (UTC) and the `PayloadId` percent-encoded: only
//! ASCII letters, digits, `-` and `_` stay as they are, so no value can hold a `/`, a
//! `..` or a character a file system or S3 treats specially. Quarantined deliveries have
//! no trustworthy time or ID: `<prefix>/unrouted/<sha256>.json`, by what they are, so the
//! same bytes sent again (a captured delivery replayed on any day) are kept once; when
//! they were received is in the object's metadata.

use std::fmt;
use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::error::{ErrorKind, ServiceError};
use crate::events::{EventGroup, Route};

/// The archive's step name in reports.
pub const ARCHIVE: &str = "archive";

/// Everything but ASCII letters, digits, `-` and `_` is encoded.
const KEY_TEXT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');
/// Metadata values travel as HTTP headers: controls, non-ASCII and `%` are encoded.
const META_TEXT: &AsciiSet = &CONTROLS.add(b'%');

/// Names of the metadata kept with an archived object (S3 user metadata, or the
/// `.meta.json` beside a local file).
pub mod meta {
    /// When ingest received the delivery, ms since the Unix epoch.
    pub const RECEIVED_AT: &str = "received-at";
    /// `Action`, as sent (percent-encoded beyond printable ASCII).
    pub const ACTION: &str = "action";
    /// The `X-CF-Signature` the delivery arrived with.
    pub const SIGNATURE: &str = "signature";
    /// Why a delivery was quarantined.
    pub const REASON: &str = "reason";
}

/// What a write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Written now.
    Written,
    /// An object was there already: left as it was.
    Present,
}

/// The archive could not be written; the record is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("archive: {0}")]
pub struct ArchiveError(pub ServiceError);

impl ArchiveError {
    /// What kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// A file system error, with the kind its `io::ErrorKind` names.
    pub fn io(e: &std::io::Error, context: impl fmt::Display) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match e.kind() {
            Io::PermissionDenied | Io::InvalidInput | Io::ReadOnlyFilesystem | Io::NotADirectory => {
                ErrorKind::Permanent
            }
            Io::AlreadyExists => ErrorKind::Conditional,
            _ => ErrorKind::Transient,
        };
        Self(ServiceError::new(kind, format!("{context}: {e}")))
    }
}

/// Where archived objects go: S3 when deployed, a folder in `cfwh dev`.
#[async_trait::async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Writes `body` at `key` with `metadata`, unless an object is there already, which
    /// is never replaced.
    async fn put_once(
        &self,
        key: &str,
        body: &[u8],
        metadata: &[(&'static str, String)],
    ) -> Result<Stored, ArchiveError>;
}

/// An archive: a store and the prefix of every key. Clones share the store.
#[derive(Clone)]
pub struct Archive {
    store: std::sync::Arc<dyn ArchiveStore>,
    prefix: String,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Archive {
    /// An archive in `store`, keys under `prefix`.
    pub fn new(store: impl ArchiveStore + 'static, prefix: impl Into<String>) -> Self {
        Self { store: std::sync::Arc::new(store), prefix: prefix.into() }
    }

    /// Archives an event of `group` (`body` as received), with what is known of its
    /// reception.
    pub async fn event(
        &self,
        group: EventGroup,
        payload_id: &str,
        event_time_ms: i64,
        body: &[u8],
        reception: &Reception<'_>,
    ) -> Result<Stored, ArchiveError> {
        let key = event_key(&self.prefix, group, event_time_ms, payload_id);
        self.store.put_once(&key, body, &reception.metadata()).await
    }

    /// Archives a quarantined delivery, keyed by its SHA-256: once, however often it comes.
    pub async fn unrouted(&self, body: &[u8], reception: &Reception<'_>) -> Result<(String, Stored), ArchiveError> {
        let key = unrouted_key(&self.prefix, body);
        let stored = self.store.put_once(&key, body, &reception.metadata()).await?;
        Ok((key, stored))
    }
}

/// What is known of a delivery's reception (from its message attributes), kept as the
/// archived object's metadata.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reception<'a> {
    /// When ingest received it, ms since the Unix epoch, as text.
    pub received_at: Option<&'a str>,
    /// `Action`, as sent.
    pub action: Option<&'a str>,
    /// The verified `X-CF-Signature`.
    pub signature: Option<&'a str>,
    /// Why it was quarantined.
    pub reason: Option<&'a str>,
}

impl Reception<'_> {
    fn metadata(&self) -> Vec<(&'static str, String)> {
        [
            (meta::RECEIVED_AT, self.received_at),
            (meta::ACTION, self.action),
            (meta::SIGNATURE, self.signature),
            (meta::REASON, self.reason),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            let value = value.filter(|v| !v.is_empty())?;
            Some((name, utf8_percent_encode(value, META_TEXT).to_string()))
        })
        .collect()
    }
}

/// A local folder with the same layout as the bucket: `<key>` holds the body and
/// `<key>.meta.json` the metadata (written first, so a body is never without it).
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// An archive under `root`, created as needed.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn put(&self, key: &str, body: &[u8], metadata: &[(&'static str, String)]) -> std::io::Result<Stored> {
        // Keys are built by this module and hold no `..`; refuse anything else anyway.
        if key.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("unsafe key {key:?}")));
        }
        let path = self.root.join(key);
        if path.exists() {
            return Ok(Stored::Present);
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let meta: serde_json::Map<String, serde_json::Value> =
            metadata.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone()))).collect();
        std::fs::write(meta_path(&path), serde_json::to_vec(&meta).unwrap_or_default())?;
        // A new file, written aside and linked into place: a crash never leaves half a
        // body under the key, and a concurrent writer never replaces it.
        let aside = path.with_extension(format!("part-{}-{:x}", std::process::id(), rand_suffix()));
        std::fs::write(&aside, body)?;
        let linked = std::fs::hard_link(&aside, &path);
        let _ = std::fs::remove_file(&aside);
        match linked {
            Ok(()) => Ok(Stored::Written),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Stored::Present),
            Err(e) => Err(e),
        }
    }
}

/// The metadata file beside an archived body.
pub fn meta_path(body: &Path) -> PathBuf {
    let mut name = body.as_os_str().to_owned();
    name.push(".meta.json");
    PathBuf::from(name)
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    );
    hasher.finish()
}

#[async_trait::async_trait]
impl ArchiveStore for DirStore {
    async fn put_once(
        &self,
        key: &str,
        body: &[u8],
        metadata: &[(&'static str, String)],
    ) -> Result<Stored, ArchiveError> {
        let this = self.clone();
        let (key, body, metadata) = (key.to_owned(), body.to_vec(), metadata.to_vec());
        tokio::task::spawn_blocking(move || this.put(&key, &body, &metadata))
            .await
            .map_err(|e| ArchiveError(ServiceError::new(ErrorKind::Unknown, e.to_string())))?
            .map_err(|e| ArchiveError::io(&e, self.root.display()))
    }
}

/// Decodes a metadata value written by this module.
pub fn meta_value(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// The key of an event of `group`.
pub fn event_key(prefix: &str, group: EventGroup, event_time_ms: i64, payload_id: &str) -> String {
    let id = utf8_percent_encode(payload_id, KEY_TEXT);
    format!("{}{event_time_ms}-{id}.json", folder(prefix, Route::Group(group), event_time_ms))
}

/// The key of a quarantined body: its SHA-256, so the same bytes always land on the same
/// key, whenever they come.
pub fn unrouted_key(prefix: &str, body: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(body));
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
    format!("{prefix}{}/{digest}.json", Route::Unrouted.as_str())
}

/// `<prefix>/<route>/<yyyy>/<mm>/<dd>/`; a time no calendar can show goes under
/// `undated/`.
fn folder(prefix: &str, route: Route, at_ms: i64) -> String {
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
    let date = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .filter(|at| at.year() >= 0)
        .map_or_else(
            || "undated".to_owned(),
            |at| format!("{:04}/{:02}/{:02}", at.year(), u8::from(at.month()), at.day()),
        );
    format!("{prefix}{route}/{date}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folder_archive_writes_once_and_keeps_the_metadata() {
        let dir = std::env::temp_dir().join(format!("cfwh-archive-{}-{:x}", std::process::id(), rand_suffix()));
        let archive = Archive::new(DirStore::new(&dir), "a");
        let signature = "ab".repeat(32);
        let reception = Reception {
            received_at: Some("1795951864200"),
            action: Some("Séance\ncompleted"),
            signature: Some(&signature),
            reason: None,
        };
        let first = archive.event(EventGroup::Task, "p/1", AT, b"{\"x\":1}", &reception).await.unwrap();
        assert_eq!(first, Stored::Written);
        let again = archive.event(EventGroup::Task, "p/1", AT, b"{\"x\":2}", &reception).await.unwrap();
        assert_eq!(again, Stored::Present, "never replaced");
        let path = dir.join("a/task/2026/11/29/1795951864123-p%2F1.json");
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"x\":1}");
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(meta_path(&path)).unwrap()).unwrap();
        assert_eq!(meta[meta::RECEIVED_AT], "1795951864200");
        assert_eq!(meta[meta::SIGNATURE], "ab".repeat(32));
        assert_eq!(meta_value(meta[meta::ACTION].as_str().unwrap()), "Séance\ncompleted");
        assert!(meta[meta::ACTION].as_str().unwrap().is_ascii(), "metadata is header-safe");
        let leftovers: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "body and metadata only: {leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // 2026-11-29T11:31:04.123Z
    const AT: i64 = 1_795_951_864_123;

    #[test]
    fn keys_sort_by_time_under_date_folders_of_the_event() {
        assert_eq!(
            event_key("archive", EventGroup::WorkUnit, AT, "c02f0f73-1706-4973-9a4d-38007d6685e9"),
            "archive/work-unit/2026/11/29/1795951864123-c02f0f73-1706-4973-9a4d-38007d6685e9.json"
        );
        assert_eq!(event_key("", EventGroup::Job, 0, "p"), "job/1970/01/01/0-p.json");
        assert_eq!(event_key("/a/b/", EventGroup::Job, 0, "p"), "a/b/job/1970/01/01/0-p.json");
    }

    #[test]
    fn no_payload_id_escapes_its_folder() {
        for hostile in ["../../etc/passwd", "a/b", "..", ".", "\\windows", "%2F", "x\u{0}y", "ünï", "a b?#*"] {
            let key = event_key("archive", EventGroup::Task, AT, hostile);
            let name = key.strip_prefix("archive/task/2026/11/29/").unwrap();
            assert!(!name.contains('/') && !name.contains('\\') && !name.contains(".."), "{hostile:?} gave {key}");
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_%.".contains(&b)), "{key}");
            assert!(name.starts_with("1795951864123-") && name.ends_with(".json"), "{key}");
        }
        assert_eq!(event_key("", EventGroup::Task, 0, "a/b"), "task/1970/01/01/0-a%2Fb.json");
    }

    #[test]
    fn quarantined_bodies_are_keyed_by_what_they_are() {
        let key = unrouted_key("archive", b"{not json");
        assert!(key.starts_with("archive/unrouted/"), "{key}");
        assert_eq!(key, unrouted_key("archive/", b"{not json"), "the same bytes, the same key, any day");
        assert_ne!(key, unrouted_key("archive", b"{not json!"));
        assert_eq!(key.len(), "archive/unrouted/".len() + 64 + ".json".len());
    }

    #[test]
    fn times_no_calendar_can_show_are_undated() {
        assert_eq!(event_key("", EventGroup::Task, i64::MAX, "p"), format!("task/undated/{}-p.json", i64::MAX));
        assert_eq!(event_key("", EventGroup::Task, -1, "p"), "task/1969/12/31/-1-p.json");
    }
}
