//! What kind of failure a service gave: the part of an error that retry decisions read.

use std::fmt;

/// The kind of a failure, read by the code that decides whether to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The service asked to slow down (throttling, 429, `SlowDown`): the same request
    /// succeeds later.
    Throttled,
    /// A condition of the request did not hold (a conditional write refused): nothing
    /// was written, and the same request fails the same way.
    Conditional,
    /// Unreachable, timed out, a 5xx, or an answer lost: the same request may succeed,
    /// and may already have.
    Transient,
    /// Refused for a reason that does not change by itself (access denied, a malformed
    /// request, a resource that does not exist).
    Permanent,
    /// An answer this code does not know how to read.
    Unknown,
}

impl ErrorKind {
    /// The kind's name in logs: `throttled`, `conditional`, `transient`, `permanent`,
    /// `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::Conditional => "conditional",
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Unknown => "unknown",
        }
    }

    /// Whether trying the same request again can help: every kind but `Conditional` and
    /// `Permanent` (an unknown answer is given the benefit of the doubt).
    pub fn retryable(self) -> bool {
        !matches!(self, Self::Conditional | Self::Permanent)
    }

    /// The kind an AWS error code names. Codes this table does not list are `Unknown`.
    pub fn of_aws_code(code: &str) -> Self {
        match code {
            "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "LimitExceededException"
            | "SlowDown"
            | "EC2ThrottledException"
            | "BandwidthLimitExceeded"
            | "PriorRequestNotComplete" => Self::Throttled,
            "ConditionalCheckFailedException" | "PreconditionFailed" => Self::Conditional,
            "InternalFailure"
            | "InternalError"
            | "InternalException"
            | "InternalServerError"
            | "InternalServerException"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "TransactionConflict"
            | "TransactionInProgressException"
            | "ConcurrentModificationException"
            | "IDPCommunicationError"
            | "KMSThrottlingException" => Self::Transient,
            "AccessDenied"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "ValidationException"
            | "ValidationError"
            | "InvalidParameterValue"
            | "InvalidParameterException"
            | "InvalidRequestException"
            | "MalformedDetail"
            | "NotAuthorized"
            | "ResourceNotFoundException"
            | "NoSuchBucket"
            | "NoSuchKey"
            | "NonExistentQueue"
            | "AWS.SimpleQueueService.NonExistentQueue"
            | "QueueDoesNotExist"
            | "InvalidMessageContents"
            | "KMS.AccessDeniedException"
            | "KMS.DisabledException"
            | "DecryptionFailure" => Self::Permanent,
            _ => Self::Unknown,
        }
    }

    /// The kind an HTTP status names, for an answer without a code this table knows.
    pub fn of_status(status: u16) -> Self {
        match status {
            429 => Self::Throttled,
            412 => Self::Conditional,
            408 | 500..=599 => Self::Transient,
            400..=499 => Self::Permanent,
            _ => Self::Unknown,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service refused or could not answer: its kind and what it said (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What the service said.
    pub message: String,
}

impl ServiceError {
    /// A failure of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// Unreachable, timed out or an answer lost.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    /// Will fail the same way again.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, message)
    }

    /// The same error with `context` before its message (`s3://bucket/key: …`).
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self { kind: self.kind, message: format!("{context}: {}", self.message) }
    }
}

/// A value that cannot be used as given (a setting, a certificate, a secret's form):
/// permanent by nature. The message names what is wrong and never quotes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_codes_and_statuses_have_the_kind_a_retry_decision_needs() {
        assert_eq!(ErrorKind::of_aws_code("ThrottlingException"), ErrorKind::Throttled);
        assert_eq!(ErrorKind::of_aws_code("ProvisionedThroughputExceededException"), ErrorKind::Throttled);
        assert_eq!(ErrorKind::of_aws_code("ConditionalCheckFailedException"), ErrorKind::Conditional);
        assert_eq!(ErrorKind::of_aws_code("InternalServerError"), ErrorKind::Transient);
        assert_eq!(ErrorKind::of_aws_code("AccessDeniedException"), ErrorKind::Permanent);
        assert_eq!(ErrorKind::of_aws_code("MalformedDetail"), ErrorKind::Permanent);
        assert_eq!(ErrorKind::of_aws_code("SomethingNewFromAws"), ErrorKind::Unknown);
        assert_eq!(ErrorKind::of_status(429), ErrorKind::Throttled);
        assert_eq!(ErrorKind::of_status(503), ErrorKind::Transient);
        assert_eq!(ErrorKind::of_status(403), ErrorKind::Permanent);
        assert_eq!(ErrorKind::of_status(302), ErrorKind::Unknown);
        assert!(ErrorKind::Unknown.retryable() && ErrorKind::Throttled.retryable() && ErrorKind::Transient.retryable());
        assert!(!ErrorKind::Permanent.retryable() && !ErrorKind::Conditional.retryable());
    }

    #[test]
    fn context_keeps_the_kind() {
        let e = ServiceError::permanent("AccessDenied").context("s3://b/k");
        assert_eq!((e.kind, e.to_string()), (ErrorKind::Permanent, "s3://b/k: AccessDenied".to_owned()));
    }
}
