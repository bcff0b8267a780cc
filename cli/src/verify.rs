//! `cfwh verify`: checks a signature against a file, as the ack path does.

use std::path::PathBuf;
use std::process::ExitCode;

use cf_webhooks::signature::Signature;

use crate::sign::KeyArgs;

/// `cfwh verify`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: KeyArgs,
    /// The X-CF-Signature value (64 hex digits, optional sha256= prefix).
    #[arg(long)]
    signature: String,
    /// The body as received.
    file: PathBuf,
}

/// Exits 0 when the signature matches one of the secrets, 1 when not.
pub fn run(args: Args) -> Result<ExitCode, String> {
    let secrets = args.key.set()?;
    let body = crate::read(&args.file)?;
    let signature = Signature::parse(args.signature.as_bytes()).map_err(|e| format!("--signature: {e}"))?;
    if signature.verify(&secrets, &body) {
        println!("valid");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("invalid: the signature does not match {} under the given secret(s)", args.file.display());
        Ok(ExitCode::FAILURE)
    }
}
