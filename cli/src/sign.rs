//! `cfwh sign`: the X-CF-Signature of a file's exact bytes.

use std::path::PathBuf;
use std::process::ExitCode;

use cf_webhooks::config::var;
use cf_webhooks::secret::{Secret, SecretEncoding, SecretSet};
use cf_webhooks::signature::sign;

/// The key of `sign` and `verify`. No `Debug`: it holds the secret.
#[derive(clap::Args)]
pub struct KeyArgs {
    /// The webhook secret (several separated by commas for verify).
    #[arg(long, env = var::WEBHOOK_SECRET, hide_env_values = true)]
    pub secret: String,
    /// How the secret becomes the HMAC key: its UTF-8 bytes (as Creative Force does) or base64.
    #[arg(long, env = var::SECRET_ENCODING, value_enum, ignore_case = true, default_value = "utf8")]
    pub secret_encoding: SecretEncoding,
}

impl KeyArgs {
    /// The one secret to sign with.
    pub fn one(&self) -> Result<Secret, String> {
        Secret::from_text(self.secret.trim(), self.secret_encoding).map_err(|e| format!("--secret: {e}"))
    }

    /// Every secret to verify against.
    pub fn set(&self) -> Result<SecretSet, String> {
        SecretSet::parse_list(&self.secret, self.secret_encoding).map_err(|e| format!("--secret: {e}"))
    }
}

/// `cfwh sign`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: KeyArgs,
    /// The body to sign.
    file: PathBuf,
}

/// Prints the signature.
pub fn run(args: Args) -> Result<ExitCode, String> {
    let secret = args.key.one()?;
    let body = crate::read(&args.file)?;
    println!("{}", sign(&secret, &body));
    Ok(ExitCode::SUCCESS)
}
