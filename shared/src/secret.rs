//! Webhook secrets: parsed once from configuration, never printed.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use subtle::ConstantTimeEq;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::error::ServiceError;

/// How the configured secret text becomes the HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretEncoding {
    /// The UTF-8 bytes of the text, exactly as Creative Force's own example uses it.
    #[default]
    Utf8,
    /// The bytes the text decodes to as standard base64 (RFC 2045 / 4648, padding optional).
    Base64,
}

/// `--secret-encoding utf8|base64`.
#[cfg(feature = "clap")]
impl clap::ValueEnum for SecretEncoding {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Utf8, Self::Base64]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Self::Utf8 => "utf8",
            Self::Base64 => "base64",
        }))
    }
}

impl SecretEncoding {
    /// Parses `utf8` or `base64` (any case).
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "utf8" | "utf-8" | "" => Ok(Self::Utf8),
            "base64" => Ok(Self::Base64),
            _ => Err(SecretError::UnknownEncoding(s.to_owned())),
        }
    }
}

/// Why a secret could not be used. Never carries the secret itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// No secret at all, or an empty entry in a list.
    #[error("a webhook secret is empty")]
    Empty,
    /// The secret is not valid base64 while base64 was asked for.
    #[error("webhook secret number {position} is not valid base64")]
    NotBase64 {
        /// 1-based position in the configured list.
        position: usize,
    },
    /// A stored secret starts like a JSON list but is not a list of strings.
    #[error("the stored secret starts with '[' but is not a JSON list of strings")]
    NotAList,
    /// `CF_SECRET_ENCODING` holds neither `utf8` nor `base64`.
    #[error("unknown secret encoding {0:?}: expected utf8 or base64")]
    UnknownEncoding(String),
}

/// One HMAC key. Its `Debug` output is redacted, it has no `Display`, and its bytes
/// are wiped from memory when it is dropped.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// A key made of these exact bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// A key from configured text, interpreted with `encoding`.
    pub fn from_text(text: &str, encoding: SecretEncoding) -> Result<Self, SecretError> {
        Self::from_text_at(text, encoding, 1)
    }

    fn from_text_at(text: &str, encoding: SecretEncoding, position: usize) -> Result<Self, SecretError> {
        match encoding {
            SecretEncoding::Utf8 => Self::from_bytes(text.as_bytes()),
            SecretEncoding::Base64 => {
                let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(text.trim_end_matches('='))
                    .map_err(|_| SecretError::NotBase64 { position })?;
                Self::from_bytes(decoded)
            }
        }
    }

    /// The key bytes, for the HMAC and nothing else.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The shortest secret not warned about at start-up: 16 bytes (128 bits) is the least an
/// HMAC-SHA256 key should carry; Creative Force's form takes any text.
pub const MIN_SECRET_BYTES: usize = 16;

/// The warning for weak secrets at `positions` (1-based) of `count`; it never quotes
/// them.
fn weak_warning(positions: &[usize], count: usize) -> Option<String> {
    if positions.is_empty() {
        return None;
    }
    let which = positions.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
    Some(format!(
        "webhook secret {which} of {count} is shorter than {MIN_SECRET_BYTES} bytes: a short secret can be guessed \
         offline from one captured delivery; set 32 random characters or more in Creative Force and here"
    ))
}

/// Every secret currently accepted: more than one while a secret is being rotated.
#[derive(Clone)]
pub struct SecretSet(Vec<Secret>);

impl SecretSet {
    /// A set of at least one secret.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, SecretError> {
        if secrets.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self(secrets))
    }

    /// Parses a comma-separated list (`CF_WEBHOOK_SECRET`); blanks around each entry are
    /// dropped, an empty entry is an error.
    pub fn parse_list(list: &str, encoding: SecretEncoding) -> Result<Self, SecretError> {
        let secrets = list
            .split(',')
            .enumerate()
            .map(|(i, entry)| {
                let entry = entry.trim();
                if entry.is_empty() {
                    return Err(SecretError::Empty);
                }
                Secret::from_text_at(entry, encoding, i + 1)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(secrets)
    }

    /// Parses a secret as stored in a secret store: a JSON list of strings (`["new",
    /// "old"]`, for rotation) or, otherwise, the whole text as one secret.
    pub fn parse_stored(text: &str, encoding: SecretEncoding) -> Result<Self, SecretError> {
        let trimmed = text.trim();
        if trimmed.starts_with('[') {
            let list: Vec<String> = serde_json::from_str(trimmed).map_err(|_| SecretError::NotAList)?;
            let secrets = list
                .iter()
                .enumerate()
                .map(|(i, entry)| Secret::from_text_at(entry.trim(), encoding, i + 1))
                .collect::<Result<Vec<_>, _>>()?;
            return Self::new(secrets);
        }
        Secret::from_text(trimmed, encoding).map(|secret| Self(vec![secret]))
    }

    /// The positions (from 1) of the secrets shorter than [`MIN_SECRET_BYTES`].
    pub fn weak(&self) -> Vec<usize> {
        self.0.iter().enumerate().filter(|(_, s)| s.expose().len() < MIN_SECRET_BYTES).map(|(i, _)| i + 1).collect()
    }

    /// The secrets, newest first as configured.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }

    /// How many secrets are accepted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a set holds at least one secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a SecretSet {
    type Item = &'a Secret;
    type IntoIter = std::slice::Iter<'a, Secret>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretSet(<{} redacted>)", self.0.len())
    }
}

/// Fetches the current secrets from a secret store (AWS Secrets Manager when deployed).
#[async_trait::async_trait]
pub trait SecretFetcher: Send + Sync {
    /// The secrets stored now; the error says why not (never with a secret in it).
    async fn fetch(&self) -> Result<SecretSet, ServiceError>;
}

/// How a keyring follows its secret store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refresh {
    /// How often the store is read again.
    pub interval: Duration,
    /// How long a secret that disappeared from the store is still accepted.
    pub overlap: Duration,
}

struct Ring {
    current: Vec<Secret>,
    retiring: Vec<(Secret, Instant)>,
    fetched_at: Option<Instant>,
}

/// The secrets accepted right now: a fixed set, or the set of a secret store, re-read
/// every `interval`. A secret that disappears from the store stays accepted for
/// `overlap`, so a rotation done in one step loses no delivery signed with the old one.
pub struct Keyring {
    ring: RwLock<Arc<Ring>>,
    refresh: Option<Refresh>,
    refreshing: tokio::sync::Mutex<()>,
    source: std::sync::OnceLock<Box<dyn SecretFetcher>>,
}

impl Keyring {
    /// A keyring that never changes.
    pub fn fixed(secrets: SecretSet) -> Self {
        Self::with(secrets.0, None)
    }

    /// A keyring that follows a secret store, empty until its first refresh. The host
    /// gives it the store once, with [`follow`](Self::follow).
    pub fn refreshed(refresh: Refresh) -> Self {
        Self::with(Vec::new(), Some(refresh))
    }

    /// Makes `source` the store this keyring reads (once, at start-up; a second call is
    /// ignored and returns false).
    pub fn follow(&self, source: impl SecretFetcher + 'static) -> bool {
        self.source.set(Box::new(source)).is_ok()
    }

    fn with(current: Vec<Secret>, refresh: Option<Refresh>) -> Self {
        let ring = Ring { current, retiring: Vec::new(), fetched_at: None };
        Self {
            ring: RwLock::new(Arc::new(ring)),
            refresh,
            refreshing: tokio::sync::Mutex::new(()),
            source: std::sync::OnceLock::new(),
        }
    }

    fn snapshot(&self) -> Arc<Ring> {
        self.ring.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Every secret accepted now: the current ones, then those still in their overlap.
    pub fn accepted(&self) -> Vec<Secret> {
        let ring = self.snapshot();
        let now = Instant::now();
        ring.current
            .iter()
            .cloned()
            .chain(ring.retiring.iter().filter(|(_, until)| *until > now).map(|(s, _)| s.clone()))
            .collect()
    }

    /// Calls `check` with the secrets accepted now, without copying them.
    pub fn with_accepted<R>(&self, check: impl FnOnce(&mut dyn Iterator<Item = &Secret>) -> R) -> R {
        let ring = self.snapshot();
        let now = Instant::now();
        let mut secrets =
            ring.current.iter().chain(ring.retiring.iter().filter(|(_, until)| *until > now).map(|(s, _)| s));
        check(&mut secrets)
    }

    /// How many secrets are accepted now.
    pub fn len(&self) -> usize {
        self.with_accepted(|secrets| secrets.count())
    }

    /// True when no secret is accepted (a store not read yet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A warning when a current secret is shorter than [`MIN_SECRET_BYTES`] (logged at
    /// start-up, and when a rotation brings one in); it never quotes a secret.
    pub fn weak_warning(&self) -> Option<String> {
        let ring = self.snapshot();
        let positions: Vec<usize> = ring
            .current
            .iter()
            .enumerate()
            .filter(|(_, s)| s.expose().len() < MIN_SECRET_BYTES)
            .map(|(i, _)| i + 1)
            .collect();
        weak_warning(&positions, ring.current.len())
    }

    /// Makes `secrets` current; the current ones that are not among them retire after the
    /// overlap.
    pub fn replace(&self, secrets: SecretSet) {
        if let Some(warning) = weak_warning(&secrets.weak(), secrets.len()) {
            tracing::warn!("{warning}");
        }
        let now = Instant::now();
        let overlap = self.refresh.map_or(Duration::ZERO, |r| r.overlap);
        let mut guard = self.ring.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = guard.clone();
        let mut retiring: Vec<(Secret, Instant)> =
            old.retiring.iter().filter(|(s, until)| *until > now && !secrets.0.contains(s)).cloned().collect();
        for secret in old.current.iter().filter(|s| !secrets.0.contains(s)) {
            retiring.push((secret.clone(), now + overlap));
        }
        *guard = Arc::new(Ring { current: secrets.0, retiring, fetched_at: Some(now) });
    }

    /// Reads the store now; an error (or no store to read) leaves the keyring as it was.
    pub async fn refresh_now(&self) -> Result<(), ServiceError> {
        let _one_at_a_time = self.refreshing.lock().await;
        self.refresh_holding_the_lock().await
    }

    async fn refresh_holding_the_lock(&self) -> Result<(), ServiceError> {
        let Some(fetcher) = self.source.get() else { return Err(ServiceError::permanent("no secret store to read")) };
        let result = fetcher.fetch().await;
        match result {
            Ok(secrets) => {
                self.replace(secrets);
                Ok(())
            }
            Err(e) => {
                // Try again after a full interval rather than on every request.
                let mut guard = self.ring.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                let ring = Ring {
                    current: guard.current.clone(),
                    retiring: guard.retiring.clone(),
                    fetched_at: Some(Instant::now()),
                };
                *guard = Arc::new(ring);
                Err(e)
            }
        }
    }

    /// Reads the store when the refresh interval has passed since the last read; one
    /// caller reads, the others go on with the secrets they have.
    pub async fn refresh_if_due(&self) {
        let (Some(refresh), Some(_)) = (self.refresh, self.source.get()) else { return };
        let due = self.snapshot().fetched_at.is_none_or(|at| at.elapsed() >= refresh.interval);
        if !due {
            return;
        }
        // One caller reads the store; the others go on with the secrets they have.
        let Ok(_one_at_a_time) = self.refreshing.try_lock() else { return };
        if let Err(e) = self.refresh_holding_the_lock().await {
            tracing::warn!(error = %e, "could not refresh the webhook secrets; keeping the current ones");
        }
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring(<{} redacted>, {:?})", self.len(), self.refresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let set = SecretSet::parse_list("hunter2-very-secret, other-one", SecretEncoding::Utf8).unwrap();
        let shown = format!("{set:?} {:?} {:#?}", set.iter().next().unwrap(), set);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("other-one"), "{shown}");
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn list_entries_are_trimmed_and_empty_entries_rejected() {
        let set = SecretSet::parse_list(" a ,b", SecretEncoding::Utf8).unwrap();
        let keys: Vec<&[u8]> = set.iter().map(Secret::expose).collect();
        assert_eq!(keys, vec![&b"a"[..], &b"b"[..]]);
        assert_eq!(SecretSet::parse_list("a,,b", SecretEncoding::Utf8).unwrap_err(), SecretError::Empty);
        assert_eq!(SecretSet::parse_list("", SecretEncoding::Utf8).unwrap_err(), SecretError::Empty);
    }

    #[test]
    fn base64_secrets_are_decoded_and_bad_ones_named_by_position() {
        let set = SecretSet::parse_list("aGVsbG8=,d29ybGQ", SecretEncoding::Base64).unwrap();
        let keys: Vec<&[u8]> = set.iter().map(Secret::expose).collect();
        assert_eq!(keys, vec![&b"hello"[..], &b"world"[..]]);
        let err = SecretSet::parse_list("aGVsbG8=,not base64!", SecretEncoding::Base64).unwrap_err();
        assert_eq!(err, SecretError::NotBase64 { position: 2 });
        assert!(!err.to_string().contains("not base64!"));
    }

    #[test]
    fn encoding_names() {
        assert_eq!(SecretEncoding::parse("BASE64").unwrap(), SecretEncoding::Base64);
        assert_eq!(SecretEncoding::parse("utf8").unwrap(), SecretEncoding::Utf8);
        assert!(SecretEncoding::parse("hex").is_err());
    }

    struct Store(Arc<std::sync::Mutex<Result<String, String>>>);

    #[async_trait::async_trait]
    impl SecretFetcher for Store {
        async fn fetch(&self) -> Result<SecretSet, ServiceError> {
            let stored = self.0.lock().unwrap().clone().map_err(ServiceError::transient)?;
            SecretSet::parse_stored(&stored, SecretEncoding::Utf8).map_err(|e| ServiceError::permanent(e.to_string()))
        }
    }

    fn keys(ring: &Keyring) -> Vec<String> {
        ring.accepted().iter().map(|s| String::from_utf8(s.expose().to_vec()).unwrap()).collect()
    }

    #[test]
    fn stored_secrets_are_a_string_or_a_json_list() {
        let one = SecretSet::parse_stored(" plain,with,commas \n", SecretEncoding::Utf8).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one.iter().next().unwrap().expose(), b"plain,with,commas");
        let two = SecretSet::parse_stored(r#"["new", "old"]"#, SecretEncoding::Utf8).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(SecretSet::parse_stored("[1,2]", SecretEncoding::Utf8).unwrap_err(), SecretError::NotAList);
        assert_eq!(SecretSet::parse_stored("[]", SecretEncoding::Utf8).unwrap_err(), SecretError::Empty);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotated_secret_is_picked_up_and_the_old_one_kept_for_the_overlap() {
        let refresh = Refresh { interval: Duration::from_secs(60), overlap: Duration::from_secs(600) };
        let ring = Keyring::refreshed(refresh);
        let stored = Arc::new(std::sync::Mutex::new(Ok("old".to_owned())));
        assert!(ring.refresh_now().await.is_err(), "no store yet");
        assert!(ring.follow(Store(stored.clone())));
        assert!(!ring.follow(Store(stored.clone())), "a store is picked once");
        assert!(ring.is_empty());
        ring.refresh_if_due().await;
        assert_eq!(keys(&ring), ["old"]);

        *stored.lock().unwrap() = Ok("new".into());
        ring.refresh_if_due().await;
        assert_eq!(keys(&ring), ["old"], "not due yet");
        tokio::time::advance(Duration::from_secs(61)).await;
        ring.refresh_if_due().await;
        assert_eq!(keys(&ring), ["new", "old"], "the old one overlaps");
        tokio::time::advance(Duration::from_secs(601)).await;
        assert_eq!(keys(&ring), ["new"], "the overlap is over");

        *stored.lock().unwrap() = Err("store down".into());
        tokio::time::advance(Duration::from_secs(61)).await;
        ring.refresh_if_due().await;
        assert_eq!(keys(&ring), ["new"], "a failed read keeps the secrets");
        assert!(!format!("{ring:?}").contains("new"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_secret_that_comes_back_stops_retiring() {
        let ring = Keyring::refreshed(Refresh { interval: Duration::ZERO, overlap: Duration::from_secs(10) });
        ring.replace(SecretSet::parse_list("a", SecretEncoding::Utf8).unwrap());
        ring.replace(SecretSet::parse_list("b", SecretEncoding::Utf8).unwrap());
        ring.replace(SecretSet::parse_list("a,b", SecretEncoding::Utf8).unwrap());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(keys(&ring), ["a", "b"]);
    }

    #[test]
    fn a_secret_shorter_than_16_bytes_is_warned_about_without_being_quoted() {
        let ring = Keyring::fixed(SecretSet::parse_list("0123456789abcdef,hunter2", SecretEncoding::Utf8).unwrap());
        let warning = ring.weak_warning().expect("hunter2 is 7 bytes");
        assert!(warning.starts_with("webhook secret 2 of 2 is shorter than 16 bytes"), "{warning}");
        assert!(!warning.contains("hunter2") && !warning.contains("0123"), "{warning}");
        let strong = Keyring::fixed(SecretSet::parse_list("0123456789abcdef", SecretEncoding::Utf8).unwrap());
        assert_eq!(strong.weak_warning(), None, "16 bytes is enough");
        // Base64 secrets are judged by the bytes they decode to: 12 bytes here.
        let decoded = SecretSet::parse_list("AAAAAAAAAAAAAAAA", SecretEncoding::Base64).unwrap();
        assert_eq!(decoded.weak(), [1]);
    }
}
