//! Where a consumer delivers besides the handler (`CF_DESTINATIONS`): an EventBridge bus,
//! an HTTP endpoint, an S3 archive, each validated at start-up.

use std::fmt;
use std::time::Duration;

use super::*;

/// The destinations a consumer delivers to (`CF_DESTINATIONS`); none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destinations {
    /// Put each event on an EventBridge bus.
    pub eventbridge: Option<EventBridgeSettings>,
    /// Forward each event to a URL.
    pub http: Option<ForwardSettings>,
    /// Archive each record in S3.
    pub archive: Option<ArchiveSettings>,
}

impl Destinations {
    /// The names of those switched on, in `CF_DESTINATIONS` spelling.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.eventbridge.is_some() {
            names.push(DESTINATION_NAMES[0]);
        }
        if self.http.is_some() {
            names.push(DESTINATION_NAMES[1]);
        }
        if self.archive.is_some() {
            names.push(DESTINATION_NAMES[2]);
        }
        names
    }
}

/// Every destination, as `CF_DESTINATIONS` names them.
pub const DESTINATION_NAMES: [&str; 3] = ["eventbridge", "http", "archive"];
/// Default time a forward may take.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default prefix of archived keys.
pub const DEFAULT_ARCHIVE_PREFIX: &str = "events";

/// The EventBridge destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBridgeSettings {
    /// Bus name or ARN.
    pub bus: String,
    /// `Source` of every entry.
    pub source: String,
}

/// The HTTP forward.
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardSettings {
    /// Where to `POST`.
    pub url: http::Uri,
    /// The forward secret, or where to read it.
    pub secret: ForwardSecretSource,
    /// Time one forward may take.
    pub timeout: Duration,
}

impl fmt::Debug for ForwardSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardSettings")
            .field("url", &crate::outbound::redacted_url(&self.url))
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where the forward secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum ForwardSecretSource {
    /// `CF_FORWARD_SECRET`: the text itself (checked at start-up).
    Text(String),
    /// `CF_FORWARD_SECRET_ARN`: read from Secrets Manager at start-up.
    Arn(String),
}

impl fmt::Debug for ForwardSecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(_) => f.write_str("Text(<redacted>)"),
            Self::Arn(arn) => f.debug_tuple("Arn").field(arn).finish(),
        }
    }
}

/// The S3 archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// The bucket's name (`CF_ARCHIVE_BUCKET`).
    pub bucket: String,
    /// The prefix of every key.
    pub prefix: String,
}

impl Destinations {
    /// Reads `CF_DESTINATIONS` and what each destination named there needs.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut destinations = Self::default();
        let required = |name: &'static str, what: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .ok_or_else(|| ConfigError::new(name, format!("is not set: {what}, which {} needs", var::DESTINATIONS)))
        };
        for name in list(get, var::DESTINATIONS) {
            match name.to_ascii_lowercase().as_str() {
                "eventbridge" => {
                    let source = get(var::EVENT_SOURCE)
                        .map(|s| s.trim().to_owned())
                        .unwrap_or_else(|| crate::destination::eventbridge::DEFAULT_SOURCE.to_owned());
                    if source.starts_with("aws.") || source.len() > 256 {
                        return Err(ConfigError::new(
                            var::EVENT_SOURCE,
                            "must not start with aws. and is at most 256 characters",
                        ));
                    }
                    destinations.eventbridge =
                        Some(EventBridgeSettings { bus: required(var::EVENT_BUS, "the EventBridge bus")?, source });
                }
                "http" => {
                    let text = required(var::FORWARD_URL, "the URL to forward to")?;
                    let allow_http = match get(var::FORWARD_ALLOW_HTTP).map(|v| v.trim().to_ascii_lowercase()) {
                        None => false,
                        Some(v) if v.is_empty() || v == "false" => false,
                        Some(v) if v == "true" => true,
                        Some(_) => return Err(ConfigError::new(var::FORWARD_ALLOW_HTTP, "must be true or false")),
                    };
                    let url = forward_url(&text, allow_http)?;
                    let secret = match (get(var::FORWARD_SECRET), get(var::FORWARD_SECRET_ARN)) {
                        (Some(text), None) => {
                            crate::destination::http::ForwardSecret::parse(&text)
                                .map_err(|e| ConfigError::new(var::FORWARD_SECRET, e.0))?;
                            ForwardSecretSource::Text(text)
                        }
                        (None, Some(arn)) => ForwardSecretSource::Arn(arn.trim().to_owned()),
                        (Some(_), Some(_)) => {
                            return Err(ConfigError::new(
                                var::FORWARD_SECRET,
                                format!("set this or {}, not both", var::FORWARD_SECRET_ARN),
                            ))
                        }
                        (None, None) => {
                            return Err(ConfigError::new(
                                var::FORWARD_SECRET,
                                format!("is not set (nor {}): forwards are signed", var::FORWARD_SECRET_ARN),
                            ))
                        }
                    };
                    let timeout =
                        number(get, var::FORWARD_TIMEOUT_MS)?.map_or(DEFAULT_FORWARD_TIMEOUT, Duration::from_millis);
                    if timeout.is_zero() || timeout > Duration::from_secs(300) {
                        return Err(ConfigError::new(var::FORWARD_TIMEOUT_MS, "must be between 1 and 300000"));
                    }
                    destinations.http = Some(ForwardSettings { url, secret, timeout });
                }
                "archive" => {
                    let bucket = required(var::ARCHIVE_BUCKET, "the archive's S3 bucket")?;
                    let prefix = archive_prefix(get(var::ARCHIVE_PREFIX).as_deref())?;
                    destinations.archive = Some(ArchiveSettings { bucket, prefix });
                }
                other => {
                    return Err(ConfigError::new(
                        var::DESTINATIONS,
                        format!("unknown destination {other:?}; expected {}", DESTINATION_NAMES.join(", ")),
                    ))
                }
            }
        }
        Ok(destinations)
    }
}

/// The archive's key prefix (`CF_ARCHIVE_PREFIX`, `events` when unset), without its outer
/// slashes; no `.` or `..` segment and no `//`, in a bucket or a folder alike.
pub fn archive_prefix(text: Option<&str>) -> Result<String, ConfigError> {
    let prefix = text.map_or_else(|| DEFAULT_ARCHIVE_PREFIX.to_owned(), |p| p.trim().trim_matches('/').to_owned());
    if prefix.split('/').any(|part| part == "." || part == "..") || prefix.contains("//") {
        return Err(ConfigError::new(var::ARCHIVE_PREFIX, "must not hold . or .. segments or //"));
    }
    Ok(prefix)
}

/// `localhost`, an IPv4 address of 127.0.0.0/8 or `[::1]`: a plain connection that never
/// leaves the machine.
fn loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A forward URL: absolute, `http` or `https`, with a host and no user information
/// (credentials go in the forward secret's headers, never in a URL that logs may show).
pub fn forward_url(text: &str, allow_http: bool) -> Result<http::Uri, ConfigError> {
    let bad = |why: &str| ConfigError::new(var::FORWARD_URL, why.to_owned());
    let url: http::Uri = text.trim().parse().map_err(|_| bad("is not a URL"))?;
    match url.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("must start with https:// (or http://)")),
    }
    let authority = url.authority().ok_or_else(|| bad("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("must not carry credentials: put an Authorization header in the forward secret"));
    }
    if authority.host().is_empty() {
        return Err(bad("has no host"));
    }
    if url.scheme_str() == Some("http") && !allow_http && !loopback(authority.host()) {
        return Err(bad(
            "is plain http:// to another machine: the events and their signatures would cross the network \
             unencrypted. Use https://, or set CF_FORWARD_ALLOW_HTTP=true to accept that",
        ));
    }
    Ok(url)
}
