//! `X-CF-Signature`: HMAC-SHA256 over the exact raw body, as lowercase or uppercase hex.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::secret::Secret;

/// The header Creative Force signs with.
pub const SIGNATURE_HEADER: &str = "x-cf-signature";

type HmacSha256 = Hmac<Sha256>;

/// A parsed signature: 32 bytes. Its `Debug` output is redacted, because a valid
/// signature lets anyone replay the body it belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 32]);

/// Why a signature header is not even worth checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureFormatError {
    /// Not 64 characters once the optional `sha256=` prefix is removed.
    #[error("signature must be 64 hex digits, got {0} characters")]
    WrongLength(usize),
    /// 64 characters, but not all hex digits.
    #[error("signature must be 64 hex digits, found a non-hex character")]
    NotHex,
}

impl Signature {
    /// Parses a header value: 64 hex digits in either case, with an optional `sha256=`
    /// prefix (any case) and surrounding blanks tolerated.
    pub fn parse(header: &[u8]) -> Result<Self, SignatureFormatError> {
        let mut text = header.trim_ascii();
        if text.len() > 7 && text[..7].eq_ignore_ascii_case(b"sha256=") {
            text = &text[7..];
        }
        if text.len() != 64 {
            return Err(SignatureFormatError::WrongLength(text.len()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| SignatureFormatError::NotHex)?;
        Ok(Self(bytes))
    }

    /// The signature of `body` under `secret`.
    pub fn compute(secret: &Secret, body: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret.expose()).expect("HMAC accepts keys of any length");
        mac.update(body);
        Self(mac.finalize().into_bytes().into())
    }

    /// Lowercase hex, the form Creative Force sends.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// True when `body` was signed with any of `secrets`. Every secret is tried and the
    /// comparisons run in constant time, so timing reveals neither the expected signature
    /// nor which secret matched.
    pub fn verify<'a>(&self, secrets: impl IntoIterator<Item = &'a Secret>, body: &[u8]) -> bool {
        let mut matched = Choice::from(0);
        for secret in secrets {
            matched |= Self::compute(secret, body).0.ct_eq(&self.0);
        }
        matched.into()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(<redacted>)")
    }
}

/// Signs `body` with `secret`, as lowercase hex: the value of `X-CF-Signature`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    Signature::compute(secret, body).to_hex()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{SecretEncoding, SecretSet};

    fn secrets(list: &str) -> SecretSet {
        SecretSet::parse_list(list, SecretEncoding::Utf8).unwrap()
    }

    const BODY: &[u8] = br#"{"PayloadId":"c02f0f73-1706-4973-9a4d-38007d6685e9","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":1595204418000}"#;
    /// `printf '%s' "$BODY" | openssl dgst -sha256 -hmac 'It is a secret to everybody'` (OpenSSL 3).
    const BODY_OPENSSL: &str = "50d6c0f356663c7bd69e32da58e342ae3287438fae12c297b8b0ddfafd3571ed";

    #[test]
    fn known_vectors() {
        // The widely published HMAC-SHA256 vector (also `openssl dgst -sha256 -hmac key`).
        let key = Secret::from_text("key", SecretEncoding::Utf8).unwrap();
        assert_eq!(
            sign(&key, b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        // RFC 4231 test case 2.
        let jefe = Secret::from_text("Jefe", SecretEncoding::Utf8).unwrap();
        assert_eq!(
            sign(&jefe, b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Computed by OpenSSL over a Creative Force envelope.
        let cf = Secret::from_text("It is a secret to everybody", SecretEncoding::Utf8).unwrap();
        assert_eq!(sign(&cf, BODY), BODY_OPENSSL);
        // Computed by Python's hmac module with a base64-configured key that is not UTF-8.
        let raw = Secret::from_text("c2VjcmV0LWJ5dGVzAP8=", SecretEncoding::Base64).unwrap();
        assert_eq!(sign(&raw, br#"{"a":1}"#), "2d2951bcfae48abdf2bc02ad399a71a7e943a301827c1c801e79ac33e6942a4f");
    }

    #[test]
    fn accepts_either_case_and_the_sha256_prefix() {
        let set = secrets("It is a secret to everybody");
        for header in [
            BODY_OPENSSL.to_owned(),
            BODY_OPENSSL.to_uppercase(),
            format!("sha256={BODY_OPENSSL}"),
            format!("SHA256={}", BODY_OPENSSL.to_uppercase()),
            format!(" {BODY_OPENSSL}\t"),
        ] {
            let sig = Signature::parse(header.as_bytes()).unwrap();
            assert!(sig.verify(&set, BODY), "{header}");
        }
    }

    #[test]
    fn any_configured_secret_verifies() {
        let sig = Signature::parse(BODY_OPENSSL.as_bytes()).unwrap();
        assert!(sig.verify(&secrets("new-secret,It is a secret to everybody"), BODY));
        assert!(sig.verify(&secrets("It is a secret to everybody,new-secret"), BODY));
        assert!(!sig.verify(&secrets("new-secret,older-secret"), BODY));
    }

    #[test]
    fn wrong_secret_fails() {
        let sig = Signature::parse(BODY_OPENSSL.as_bytes()).unwrap();
        assert!(!sig.verify(&secrets("It is a secret to everybody!"), BODY));
        assert!(!sig.verify(&secrets("it is a secret to everybody"), BODY));
    }

    #[test]
    fn one_byte_change_of_the_body_fails() {
        let set = secrets("It is a secret to everybody");
        let sig = Signature::parse(BODY_OPENSSL.as_bytes()).unwrap();
        for i in 0..BODY.len() {
            let mut changed = BODY.to_vec();
            changed[i] ^= 0x01;
            assert!(!sig.verify(&set, &changed), "byte {i}");
        }
        assert!(!sig.verify(&set, &BODY[..BODY.len() - 1]));
        assert!(!sig.verify(&set, &[BODY, b" "].concat()));
    }

    #[test]
    fn truncated_long_or_non_hex_signatures_are_malformed() {
        assert_eq!(Signature::parse(b""), Err(SignatureFormatError::WrongLength(0)));
        assert_eq!(Signature::parse(&BODY_OPENSSL.as_bytes()[..63]), Err(SignatureFormatError::WrongLength(63)));
        assert_eq!(Signature::parse(&BODY_OPENSSL.as_bytes()[..32]), Err(SignatureFormatError::WrongLength(32)));
        assert_eq!(Signature::parse(format!("{BODY_OPENSSL}0").as_bytes()), Err(SignatureFormatError::WrongLength(65)));
        let mut non_hex = BODY_OPENSSL.as_bytes().to_vec();
        non_hex[10] = b'g';
        assert_eq!(Signature::parse(&non_hex), Err(SignatureFormatError::NotHex));
        assert_eq!(Signature::parse(b"sha256="), Err(SignatureFormatError::WrongLength(7)));
        assert_eq!(Signature::parse("é".repeat(32).as_bytes()), Err(SignatureFormatError::NotHex));
        // base64 of the right digest is not accepted in place of hex.
        assert!(Signature::parse(b"UNbA81ZmPHvWnjLaWONCrjKHQ4+uEsKXuLDd+v01ce0=").is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let sig = Signature::parse(BODY_OPENSSL.as_bytes()).unwrap();
        assert!(!format!("{sig:?}").contains("50d6"));
    }
}
