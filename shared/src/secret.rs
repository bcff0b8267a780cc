//! Webhook secrets: parsed once from configuration, never printed.

use std::fmt;

use base64::Engine as _;
use zeroize::Zeroizing;

/// How the configured secret text becomes the HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretEncoding {
    /// The UTF-8 bytes of the text, exactly as Creative Force's own example uses it.
    #[default]
    Utf8,
    /// The bytes the text decodes to as standard base64 (RFC 2045 / 4648, padding optional).
    Base64,
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

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
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

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretSet(<{} redacted>)", self.0.len())
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
}
