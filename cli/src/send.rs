//! `cfwh send`: delivers files the way Creative Force does: POST, `application/json`,
//! `X-CF-Event`, `X-CF-Signature`, and up to three retries of a non-2xx answer.

use cf_webhooks::outbound::{Failure, Policy};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cf_webhooks::config::var;
use cf_webhooks::events::routing;
use cf_webhooks::secret::{Secret, SecretEncoding};
use cf_webhooks::signature::sign;
use cf_webhooks::DEV_SECRET;

/// `cfwh send`. No `Debug`: it holds the secret and the custom headers' values.
#[derive(clap::Args)]
pub struct Args {
    /// The Payload URL.
    #[arg(long, default_value = "http://127.0.0.1:3000/")]
    url: String,
    /// A file holding the webhook secret (its first line). Without it, CF_WEBHOOK_SECRET,
    /// and without that the development secret of `cfwh dev`.
    #[arg(long, value_name = "FILE", conflicts_with = "secret")]
    secret_file: Option<PathBuf>,
    /// The webhook secret itself. Discouraged: a command line is visible to every user of
    /// the machine (`ps`) and kept in shell history; use CF_WEBHOOK_SECRET or --secret-file.
    #[arg(long, hide = true)]
    secret: Option<String>,
    /// How the secret becomes the HMAC key.
    #[arg(long, env = var::SECRET_ENCODING, value_enum, ignore_case = true, default_value = "utf8")]
    secret_encoding: SecretEncoding,
    /// X-CF-Event; by default derived from the body ("Task completed").
    #[arg(long)]
    event: Option<String>,
    /// An extra header, `Name: value` (repeatable), e.g. Creative Force's custom headers.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = header)]
    headers: Vec<(String, String)>,
    /// Retries of a non-2xx answer (Creative Force makes 3).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Wait between attempts (Creative Force waits 5 to 10 minutes).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    retry_delay: Duration,
    /// Time allowed for one attempt.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Send EventDatetimeUtc as it is in the file; by default it is set to now, so that
    /// samples pass the replay window.
    #[arg(long)]
    keep_time: bool,
    /// Bodies to send, each as its exact bytes (but for EventDatetimeUtc).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.trim().to_owned())),
        _ => Err("expected `Name: value`".to_owned()),
    }
}

/// Sends every file; exits 1 when any was not answered 2xx in the end.
pub async fn run(args: Args) -> Result<ExitCode, String> {
    let from_env = std::env::var(var::WEBHOOK_SECRET).ok().filter(|s| !s.trim().is_empty());
    let secret_text = match (&args.secret_file, &args.secret, from_env) {
        (Some(file), _, _) => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("--secret-file {}: {e}", file.display()))?;
            text.lines().next().unwrap_or_default().trim().to_owned()
        }
        (None, Some(secret), _) => {
            eprintln!(
                "cfwh send: a secret on the command line is visible to other users (ps) and kept in shell history: \
                 prefer {} or --secret-file",
                var::WEBHOOK_SECRET
            );
            secret.trim().to_owned()
        }
        (None, None, Some(secret)) => secret.trim().to_owned(),
        (None, None, None) => {
            eprintln!(
                "cfwh send: no {} or --secret-file; signing with the development secret of `cfwh dev`",
                var::WEBHOOK_SECRET
            );
            DEV_SECRET.to_owned()
        }
    };
    let secret = Secret::from_text(&secret_text, args.secret_encoding).map_err(|e| format!("--secret: {e}"))?;
    let options = SendOptions {
        url: args.url,
        secret,
        event: args.event,
        headers: args.headers,
        retries: args.retries,
        retry_delay: args.retry_delay,
        timeout: args.timeout,
        stamp_time: !args.keep_time,
    };
    let all_ok = send_files(&options, &args.files).await.map_err(|e| e.to_string())?;
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// How to deliver. Its `Debug` shows the custom headers' names, never their values.
#[derive(Clone)]
pub struct SendOptions {
    /// The Payload URL.
    pub url: String,
    /// The key to sign with.
    pub secret: Secret,
    /// `X-CF-Event`; derived from the body when absent ("Task completed").
    pub event: Option<String>,
    /// Extra headers (the custom headers of Creative Force's webhook settings).
    pub headers: Vec<(String, String)>,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Wait between attempts.
    pub retry_delay: Duration,
    /// Time allowed for one attempt.
    pub timeout: Duration,
    /// Replace `EventDatetimeUtc` with the current time before signing, so that samples
    /// pass the replay window.
    pub stamp_time: bool,
}

impl std::fmt::Debug for SendOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendOptions")
            .field("url", &self.url)
            .field("secret", &self.secret)
            .field("event", &self.event)
            .field("headers", &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One attempt's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered.
    Answered {
        /// HTTP status.
        status: u16,
        /// Answer body, as text.
        body: String,
        /// Where a redirect pointed (not followed).
        location: Option<String>,
    },
    /// No answer: connection refused, timeout, …
    NoAnswer(String),
}

impl Attempt {
    fn succeeded(&self) -> bool {
        matches!(self, Self::Answered { status, .. } if (200..300).contains(status))
    }
}

/// The `X-CF-Event` Creative Force would send for this body: "Task completed".
pub fn event_name(body: &[u8]) -> String {
    match routing::parse(body) {
        Ok(r) => cf_webhooks::events::detail_type(r.group, &r.action),
        Err(_) => "Unknown".to_owned(),
    }
}

/// `body` with its top-level `EventDatetimeUtc` value replaced by `now_ms`, every other
/// byte unchanged; `None` when there is no such field. Works on the reference's literal
/// examples too, which are not all valid JSON.
pub fn stamp_time(body: &[u8], now_ms: i64) -> Option<Vec<u8>> {
    const KEY: &[u8] = b"\"EventDatetimeUtc\"";
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' if depth == 1 && body[i..].starts_with(KEY) => {
                let mut j = i + KEY.len();
                while body.get(j).is_some_and(u8::is_ascii_whitespace) {
                    j += 1;
                }
                if body.get(j) != Some(&b':') {
                    in_string = true;
                    i += 1;
                    continue;
                }
                j += 1;
                while body.get(j).is_some_and(u8::is_ascii_whitespace) {
                    j += 1;
                }
                let start = j;
                if body.get(j) == Some(&b'"') {
                    j += 1;
                    while body.get(j).is_some_and(|c| *c != b'"') {
                        j += 1;
                    }
                    j += 1;
                } else {
                    while body.get(j).is_some_and(|c| c.is_ascii_digit() || b"-+.eE".contains(c)) {
                        j += 1;
                    }
                }
                let mut stamped = Vec::with_capacity(body.len() + 8);
                stamped.extend_from_slice(&body[..start]);
                stamped.extend_from_slice(now_ms.to_string().as_bytes());
                stamped.extend_from_slice(&body[j.min(body.len())..]);
                return Some(stamped);
            }
            b'"' => in_string = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Delivers one body, retrying like Creative Force; `report` sees every attempt.
/// Returns true when an attempt got a 2xx.
pub async fn deliver(
    client: &reqwest::Client,
    options: &SendOptions,
    body: Vec<u8>,
    mut report: impl FnMut(u32, &Attempt),
) -> bool {
    let signature = sign(&options.secret, &body);
    let event = options.event.clone().unwrap_or_else(|| event_name(&body));
    for attempt in 1..=options.retries + 1 {
        let mut request = client
            .post(&options.url)
            .timeout(options.timeout)
            .header("content-type", "application/json")
            .header("x-cf-event", &event)
            .header("x-cf-signature", &signature)
            .body(body.clone());
        for (name, value) in &options.headers {
            request = request.header(name, value);
        }
        let result = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
                let body = response.text().await.unwrap_or_default();
                Attempt::Answered { status, body, location }
            }
            Err(e) => Attempt::NoAnswer(error_chain(&e)),
        };
        report(attempt, &result);
        if result.succeeded() {
            return true;
        }
        if attempt <= options.retries {
            tokio::time::sleep(options.retry_delay).await;
        }
    }
    false
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The HTTP client of `cfwh send` and `cfwh replay --url`, under the outbound policy
/// ([`cf_webhooks::outbound`]): it never follows a redirect, which would send the signed
/// body and its signature on to whatever host the answer names (a 3xx is an answer like
/// any non-2xx: retried, then given up, as Creative Force treats it), and every request
/// has `policy`'s connect and total timeouts.
pub fn client(policy: Policy) -> std::io::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(policy.connect)
        .timeout(policy.total)
        .build()
        .map_err(std::io::Error::other)
}

/// Sends every file in turn; prints each attempt; true when all got a 2xx.
pub async fn send_files(options: &SendOptions, files: &[PathBuf]) -> std::io::Result<bool> {
    let client = client(Policy::within(options.timeout))?;
    let mut all_ok = true;
    for file in files {
        let mut body =
            std::fs::read(file).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
        if options.stamp_time {
            if let Some(stamped) = stamp_time(&body, cf_webhooks::ack::now_ms()) {
                body = stamped;
            }
        }
        let name = file.display().to_string();
        let ok = deliver(&client, options, body, |attempt, result| match result {
            Attempt::Answered { status, location, .. } if (300..400).contains(status) => {
                let failure = Failure::of_status(&options.url, *status, location.as_deref());
                println!("{name}: attempt {attempt}: {failure}")
            }
            Attempt::Answered { status, body, .. } => println!("{name}: attempt {attempt}: {status} {}", body.trim()),
            Attempt::NoAnswer(why) => println!("{name}: attempt {attempt}: no answer ({why})"),
        })
        .await;
        if !ok {
            println!("{name}: gave up after {} attempts", options.retries + 1);
        }
        all_ok &= ok;
    }
    Ok(all_ok)
}
