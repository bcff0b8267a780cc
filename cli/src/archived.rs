//! The archive as `cfwh replay` and `cfwh drift` read it: an S3 bucket or a local folder
//! (`cfwh dev --archive-dir`), listed a day (replay) or a page (drift) at a time, each
//! object held to ingest's body limit before its body is read.

use std::path::PathBuf;

use bytes::Bytes;
use cf_webhooks::archive::{meta, meta_path, meta_value};
use cf_webhooks::aws::describe;
use cf_webhooks::config::var;
use cf_webhooks::events::EventGroup;

/// An archived object: its key and the event time its name starts with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Archived {
    /// Event time, ms.
    pub at_ms: i64,
    /// Key (or path under the folder).
    pub key: String,
}

/// The event time a key's file name starts with (`<ms>-<PayloadId>.json`).
pub fn key_time(key: &str) -> Option<i64> {
    let name = key.rsplit('/').next()?;
    if name.ends_with(".meta.json") {
        return None;
    }
    let name = name.strip_suffix(".json")?;
    let (ms, rest) = name.split_once('-')?;
    (!rest.is_empty()).then_some(())?;
    ms.parse().ok()
}

/// The date folders (`<prefix>/<group>/yyyy/mm/dd/`) that hold events of `[since, until)`.
pub fn day_prefixes(prefix: &str, group: EventGroup, since: i64, until: i64) -> Vec<String> {
    const DAY: i64 = 86_400_000;
    let mut folders = Vec::new();
    let mut day = since.div_euclid(DAY) * DAY;
    while day < until {
        let key = cf_webhooks::archive::event_key(prefix, group, day, "x");
        folders.push(key[..key.rfind('/').map_or(0, |i| i + 1)].to_owned());
        day += DAY;
    }
    folders
}

/// Why an archived object was not read.
pub enum Read {
    /// Larger than any body ingest accepts: refused, named.
    TooLarge(String),
    /// The store could not be read.
    Failed(String),
}

/// The body limit replayed objects are held to: ingest's (`CF_MAX_BODY_BYTES`, 256 KiB
/// when unset), since nothing larger was ever accepted.
pub fn body_limit() -> Result<usize, String> {
    match std::env::var(var::MAX_BODY_BYTES).ok().filter(|v| !v.trim().is_empty()) {
        None => Ok(cf_webhooks::config::DEFAULT_MAX_BODY_BYTES),
        Some(text) => {
            text.trim().parse().map_err(|_| format!("{}: not a number of bytes: {text:?}", var::MAX_BODY_BYTES))
        }
    }
}

/// Where the archive is.
pub enum Source {
    /// An S3 bucket.
    S3 {
        /// The client.
        client: aws_sdk_s3::Client,
        /// The bucket.
        bucket: String,
    },
    /// A local folder.
    Dir(PathBuf),
}

/// An archived object as read: its body and the metadata it was archived with.
pub struct Object {
    /// The body, as Creative Force sent it.
    pub body: Bytes,
    /// The `X-CF-Signature` it arrived with.
    pub signature: Option<String>,
    /// When ingest received it, ms.
    pub received_at: Option<i64>,
    /// Why it was quarantined (`unrouted/` objects).
    pub reason: Option<String>,
}

/// The keys under a folder, a page at a time: S3's pages of a listing (up to 1,000 keys),
/// or up to 1,000 files of a local folder and its subfolders, so a listing of any size is
/// never held whole.
pub struct Pages {
    folder: String,
    state: PagesState,
}

enum PagesState {
    S3 { token: Option<String>, done: bool },
    Dir { pending: Vec<PathBuf>, current: Option<(PathBuf, std::fs::ReadDir)> },
}

/// Keys of a page.
pub const PAGE: usize = 1000;

impl Source {
    /// The keys under `folder` (`events/task/`), page by page.
    pub fn pages(&self, folder: &str) -> Pages {
        let state = match self {
            Source::S3 { .. } => PagesState::S3 { token: None, done: false },
            Source::Dir(root) => PagesState::Dir { pending: vec![root.join(folder)], current: None },
        };
        Pages { folder: folder.to_owned(), state }
    }

    /// The next page of `pages`: `None` once every key was given.
    pub async fn next_page(&self, pages: &mut Pages) -> Result<Option<Vec<String>>, String> {
        match (self, &mut pages.state) {
            (Source::S3 { client, bucket }, PagesState::S3 { token, done }) => {
                if *done {
                    return Ok(None);
                }
                let page = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(&pages.folder)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| format!("s3://{bucket}/{}: {}", pages.folder, describe(&e)))?;
                *token = page.next_continuation_token().map(str::to_owned);
                *done = token.is_none();
                let keys: Vec<String> = page
                    .contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| !k.ends_with(".meta.json"))
                    .map(str::to_owned)
                    .collect();
                Ok(Some(keys))
            }
            (Source::Dir(root), PagesState::Dir { pending, current }) => {
                let mut keys = Vec::new();
                while keys.len() < PAGE {
                    let Some((_, entries)) = current else {
                        match pending.pop() {
                            Some(dir) => match std::fs::read_dir(&dir) {
                                Ok(entries) => *current = Some((dir, entries)),
                                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                                Err(e) => return Err(format!("{}: {e}", dir.display())),
                            },
                            None => break,
                        }
                        continue;
                    };
                    match entries.next() {
                        None => *current = None,
                        Some(Err(e)) => return Err(e.to_string()),
                        Some(Ok(entry)) => {
                            let path = entry.path();
                            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                                pending.push(path);
                            } else if let Ok(key) = path.strip_prefix(root) {
                                let key = key.to_string_lossy().into_owned();
                                if key.ends_with(".json") && !key.ends_with(".meta.json") {
                                    keys.push(key);
                                }
                            }
                        }
                    }
                }
                Ok((!keys.is_empty() || !pending.is_empty() || current.is_some()).then_some(keys))
            }
            _ => Err("a listing of another archive".to_owned()),
        }
    }
}

impl Source {
    /// The objects of `folders` whose event time is in `[since, until)`, in time order.
    pub async fn list(&self, folders: &[String], since: i64, until: i64) -> Result<Vec<Archived>, String> {
        let mut found = Vec::new();
        for folder in folders {
            match self {
                Source::S3 { client, bucket } => {
                    let mut pages = client.list_objects_v2().bucket(bucket).prefix(folder).into_paginator().send();
                    while let Some(page) = pages.next().await {
                        let page = page.map_err(|e| format!("s3://{bucket}/{folder}: {}", describe(&e)))?;
                        found.extend(
                            page.contents()
                                .iter()
                                .filter_map(|o| o.key())
                                .filter_map(|key| key_time(key).map(|at_ms| Archived { at_ms, key: key.to_owned() })),
                        );
                    }
                }
                Source::Dir(root) => {
                    let dir = root.join(folder);
                    let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                    for entry in entries.map_while(Result::ok) {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        let key = format!("{folder}{name}");
                        if let Some(at_ms) = key_time(&key) {
                            found.push(Archived { at_ms, key });
                        }
                    }
                }
            }
        }
        found.retain(|a| a.at_ms >= since && a.at_ms < until);
        found.sort();
        Ok(found)
    }

    /// The body, the signature it was archived with, and when it was received; an object
    /// over `limit` bytes is refused before its body is read (by its declared length) or
    /// as soon as it passes the limit.
    pub async fn read(&self, key: &str, limit: usize) -> Result<Object, Read> {
        let too_large = |size: u64| {
            Read::TooLarge(format!(
                "{size} bytes, over the body limit of {limit} ({}): ingest would never have taken it",
                var::MAX_BODY_BYTES
            ))
        };
        let (body, metadata): (Bytes, std::collections::HashMap<String, String>) = match self {
            Source::S3 { client, bucket } => {
                let mut object = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| Read::Failed(format!("s3://{bucket}/{key}: {}", describe(&e))))?;
                if let Some(size) = object.content_length().and_then(|n| u64::try_from(n).ok()) {
                    if size > limit as u64 {
                        return Err(too_large(size));
                    }
                }
                let metadata = object.metadata().cloned().unwrap_or_default();
                let mut body = Vec::new();
                while let Some(chunk) =
                    object.body.try_next().await.map_err(|e| Read::Failed(format!("s3://{bucket}/{key}: {e}")))?
                {
                    body.extend_from_slice(&chunk);
                    if body.len() > limit {
                        return Err(too_large(body.len() as u64));
                    }
                }
                (Bytes::from(body), metadata)
            }
            Source::Dir(root) => {
                use std::io::Read as _;
                let path = root.join(key);
                let failed = |e: std::io::Error| Read::Failed(format!("{}: {e}", path.display()));
                let file = std::fs::File::open(&path).map_err(failed)?;
                let size = file.metadata().map_err(failed)?.len();
                if size > limit as u64 {
                    return Err(too_large(size));
                }
                let mut body = Vec::with_capacity(size as usize);
                file.take(limit as u64 + 1).read_to_end(&mut body).map_err(failed)?;
                if body.len() > limit {
                    return Err(too_large(body.len() as u64));
                }
                let metadata = std::fs::read(meta_path(&path))
                    .ok()
                    .and_then(|m| serde_json::from_slice(&m).ok())
                    .unwrap_or_default();
                (Bytes::from(body), metadata)
            }
        };
        let signature = metadata.get(meta::SIGNATURE).map(|s| meta_value(s));
        let received_at = metadata.get(meta::RECEIVED_AT).and_then(|r| r.parse().ok());
        let reason = metadata.get(meta::REASON).map(|r| meta_value(r));
        Ok(Object { body, signature, received_at, reason })
    }
}
