//! The S3 archive: each object written once with a conditional `PutObject`
//! (`If-None-Match: *`), which never replaces what is there.

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use crate::archive::{ArchiveError, ArchiveStore, Stored};

/// An S3 client for `sdk`, addressing buckets by path when an endpoint is set: a local
/// endpoint (moto, MinIO) has no per-bucket host names.
pub fn client(sdk: &aws_types::SdkConfig) -> Client {
    let path_style = sdk.endpoint_url().is_some();
    Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(path_style).build())
}

/// Archived objects in a bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
}

impl S3Store {
    /// Objects in `bucket`.
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }
}

#[async_trait::async_trait]
impl ArchiveStore for S3Store {
    async fn put_once(
        &self,
        key: &str,
        body: &[u8],
        metadata: &[(&'static str, String)],
    ) -> Result<Stored, ArchiveError> {
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .if_none_match("*")
            .body(ByteStream::from(body.to_vec()));
        for (name, value) in metadata {
            put = put.metadata(*name, value);
        }
        match put.send().await {
            Ok(_) => Ok(Stored::Written),
            // 412: an object is there already, and stays. (A 409, a concurrent write to
            // the same key, is retried: the next attempt finds the object.)
            Err(e)
                if e.code() == Some("PreconditionFailed")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 412) =>
            {
                Ok(Stored::Present)
            }
            Err(e) => Err(ArchiveError(super::service_error(&e).context(format_args!("s3://{}/{key}", self.bucket)))),
        }
    }
}
