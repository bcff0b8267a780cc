//! `X-CF-Signature` parsing of any bytes: no panic, and whatever parses prints back to
//! the same signature.
#![no_main]

use cf_webhooks::signature::Signature;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(signature) = Signature::parse(data) {
        let hex = signature.to_hex();
        assert_eq!(Signature::parse(hex.as_bytes()), Ok(signature));
        assert_eq!(Signature::parse(hex.to_uppercase().as_bytes()), Ok(signature));
    }
});
