//! The one policy of every request sent to a URL someone configured: the HTTP forward,
//! `cfwh send` and `cfwh replay --url`.
//!
//! - No redirect is followed: a 3xx is an answer like any other non-2xx. A signed body
//!   and its signature never go on to a host nobody configured.
//! - Every request has a connect timeout and a total timeout: a silent server costs the
//!   timeout, never a hang.
//! - A failure names the URL (without its query or credentials) and the status.

use std::fmt;
use std::time::Duration;

/// The longest a connection may take to open, whatever the total allows.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The time limits of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Opening the connection (TCP, and TLS where the client counts it).
    pub connect: Duration,
    /// The whole request: connecting, sending, and the answer's status and headers.
    pub total: Duration,
}

impl Policy {
    /// Requests that take at most `total`, of which at most [`CONNECT_TIMEOUT`] to connect.
    pub fn within(total: Duration) -> Self {
        Self { connect: CONNECT_TIMEOUT.min(total), total }
    }
}

/// A URL without its query and user information, for logs and errors.
pub fn redacted_url(url: &http::Uri) -> String {
    let port = url.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{}{port}{}", url.scheme_str().unwrap_or("?"), url.host().unwrap_or("?"), url.path())
}

/// [`redacted_url`] of a URL given as text (what a command line gives).
pub fn redacted(url: &str) -> String {
    url.parse::<http::Uri>().map_or_else(|_| "<not a URL>".to_owned(), |u| redacted_url(&u))
}

/// How a request to a URL failed, in the words every client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A non-2xx answer other than a redirect.
    Status {
        /// The redacted URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// A 3xx: not followed.
    Redirect {
        /// The redacted URL.
        url: String,
        /// The status.
        status: u16,
        /// Where it pointed (redacted), when it said.
        to: Option<String>,
    },
    /// No answer within the total timeout.
    Timeout {
        /// The redacted URL.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// No connection, or one cut: what the client said.
    Unreachable {
        /// The redacted URL.
        url: String,
        /// Why.
        why: String,
    },
}

impl Failure {
    /// The failure of an answer with `status`: a redirect (with its `Location`) or not.
    pub fn of_status(url: &str, status: u16, location: Option<&str>) -> Self {
        let url = redacted(url);
        if (300..400).contains(&status) {
            Self::Redirect { url, status, to: location.map(redacted) }
        } else {
            Self::Status { url, status }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { url, status } => write!(f, "{url} answered HTTP {status}"),
            Self::Redirect { url, status, to: Some(to) } => {
                write!(f, "{url} answered HTTP {status}, a redirect to {to}: not followed (the signed body stays here)")
            }
            Self::Redirect { url, status, to: None } => {
                write!(f, "{url} answered HTTP {status}, a redirect: not followed (the signed body stays here)")
            }
            Self::Timeout { url, after } => write!(f, "{url}: no answer within {} ms", after.as_millis()),
            Self::Unreachable { url, why } => write!(f, "{url}: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_url_without_its_secrets_and_the_status() {
        let url = "https://user:pw@studio.example:8443/hooks?token=abc";
        assert_eq!(
            Failure::of_status(url, 503, None).to_string(),
            "https://studio.example:8443/hooks answered HTTP 503"
        );
        let moved = Failure::of_status(url, 307, Some("https://elsewhere.example/x?k=1"));
        assert_eq!(
            moved.to_string(),
            "https://studio.example:8443/hooks answered HTTP 307, a redirect to https://elsewhere.example/x: not \
             followed (the signed body stays here)"
        );
        let slow = Failure::Timeout { url: redacted(url), after: Duration::from_secs(2) };
        assert_eq!(slow.to_string(), "https://studio.example:8443/hooks: no answer within 2000 ms");
        assert_eq!(Policy::within(Duration::from_secs(60)).connect, CONNECT_TIMEOUT);
        assert_eq!(Policy::within(Duration::from_millis(500)).connect, Duration::from_millis(500));
    }
}
