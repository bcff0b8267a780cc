//! The AWS clients' HTTPS connector: HTTP/1.1 over hyper-util's pooled client and rustls
//! on ring, trusting the roots asked for.
//!
//! The SDK's own client (`aws-smithy-http-client`) always links an HTTP/2 stack (`h2`)
//! that AWS's SQS, DynamoDB, S3, EventBridge and Secrets Manager endpoints never need from
//! us: about a tenth of every bootstrap. This adapter hands the SDK's requests to the same
//! hyper-util client the HTTP forward uses, and maps its failures to the kinds the SDK's
//! retry strategy knows (timeouts and I/O are transient).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::Invalid;

type Pool = Client<Timed<hyper_rustls::HttpsConnector<TcpConnector>>, SdkBody>;
/// A pool's settings: connect and read timeouts.
type PoolKey = (Option<Duration>, Option<Duration>);

/// A TLS configuration trusting `roots` (PEM), or the platform's store when `None`.
pub fn tls_config(roots: Option<&str>) -> Result<rustls::ClientConfig, Invalid> {
    use rustls_pki_types::pem::PemObject as _;
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Some(pem) => {
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| Invalid(format!("root certificate: {e}")))?;
                store.add(cert).map_err(|e| Invalid(format!("root certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A certificate the store cannot use is skipped, as browsers do.
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err(Invalid(format!(
                    "no usable root certificate on this machine ({} errors)",
                    found.errors.len()
                )));
            }
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Invalid(e.to_string()))
        .map(|builder| builder.with_root_certificates(store).with_no_client_auth())
}

/// The SDK's HTTP client over `tls`: one pool per set of connector settings, kept for the
/// life of the process so connections are reused.
pub fn sdk_client(tls: rustls::ClientConfig) -> SharedHttpClient {
    SharedHttpClient::new(Http1 { tls: Arc::new(tls), pools: Mutex::default() })
}

/// An HTTP/1.1-only client of the pools it made.
struct Http1 {
    tls: Arc<rustls::ClientConfig>,
    pools: Mutex<HashMap<PoolKey, SharedHttpConnector>>,
}

impl std::fmt::Debug for Http1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http1")
    }
}

impl HttpClient for Http1 {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut pools = self.pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pools
            .entry(key)
            .or_insert_with(|| {
                let mut tcp = TcpConnector::new();
                tcp.enforce_http(false);
                tcp.set_nodelay(true);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((*self.tls).clone())
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(tcp);
                // The connect timeout covers the TLS handshake too, as the SDK's own client
                // does: a stalled handshake must not eat a whole attempt.
                let https = Timed { inner: https, limit: key.0 };
                let pool =
                    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(https);
                SharedHttpConnector::new(Connector { pool, read_timeout: key.1 })
            })
            .clone()
    }
}

/// A connector whose connections (TCP and TLS) must be made within `limit`.
#[derive(Debug, Clone)]
struct Timed<C> {
    inner: C,
    limit: Option<Duration>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower_service::Service<http::Uri> for Timed<C>
where
    C: tower_service::Service<http::Uri> + Send,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match limit {
                None => connecting.await.map_err(Into::into),
                Some(limit) => match tokio::time::timeout(limit, connecting).await {
                    Ok(made) => made.map_err(Into::into),
                    Err(_) => Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within {} ms", limit.as_millis()),
                    )) as BoxError),
                },
            }
        })
    }
}

#[derive(Debug, Clone)]
struct Connector {
    pool: Pool,
    read_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let (pool, read_timeout) = (self.pool.clone(), self.read_timeout);
        HttpConnectorFuture::new(async move {
            let exchange = pool.request(request);
            let answer = match read_timeout {
                None => exchange.await,
                Some(limit) => match tokio::time::timeout(limit, exchange).await {
                    Ok(answer) => answer,
                    Err(elapsed) => return Err(ConnectorError::timeout(elapsed.into())),
                },
            };
            match answer {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// Connection failures and I/O errors are transient (the SDK retries them); anything
/// else is left to the SDK's own judgement.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let io = error.is_connect() || {
        let mut source = std::error::Error::source(&error);
        let mut found = false;
        while let Some(cause) = source {
            if cause.is::<std::io::Error>() {
                found = true;
                break;
            }
            if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
                if hyper.is_closed() || hyper.is_canceled() || hyper.is_incomplete_message() {
                    found = true;
                    break;
                }
            }
            source = cause.source();
        }
        found
    };
    if io {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

#[cfg(all(test, feature = "sqs"))]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// An HTTPS server for `localhost` with a certificate of its own, answering every
    /// request with an empty SQS `ListQueues` result; returns its port, its certificate
    /// (PEM) and the count of requests it answered.
    async fn https_server() -> (u16, String, Arc<std::sync::atomic::AtomicUsize>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let pem = cert.cert.pem();
        let key = rustls_pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = answered.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, count) = (acceptor.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    // Requests on one connection, one after the other (HTTP/1.1 keep-alive).
                    let mut buffer = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let Ok(n) = tls.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if buffer.len() < end + 4 + length {
                            continue;
                        }
                        buffer.drain(..end + 4 + length);
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let body = r#"{"QueueUrls":["https://localhost/1/q"]}"#;
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if tls.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, pem, answered)
    }

    fn sqs(port: u16, tls: rustls::ClientConfig) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_smithy_runtime_api::client::behavior_version::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new("k", "s", None, None, "test"))
            .endpoint_url(format!("https://localhost:{port}"))
            .http_client(sdk_client(tls))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    #[tokio::test]
    async fn a_handshake_that_never_ends_is_cut_by_the_connect_timeout() {
        // Accepts TCP and never speaks TLS.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_smithy_runtime_api::client::behavior_version::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new("k", "s", None, None, "test"))
            .endpoint_url(format!("https://localhost:{port}"))
            .http_client(sdk_client(tls_config(Some(crate::aws::AMAZON_TRUST_SERVICES_ROOTS)).unwrap()))
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
            .timeout_config(
                aws_smithy_types::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(300))
                    .operation_timeout(Duration::from_secs(20))
                    .build(),
            )
            .retry_config(aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(1))
            .build();
        let started = std::time::Instant::now();
        let failed = aws_sdk_sqs::Client::from_conf(config).list_queues().send().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "cut at the connect timeout, not the operation's");
        let text = crate::logging::describe(&failed);
        assert!(text.contains("no connection within 300 ms"), "{text}");
    }

    #[tokio::test]
    async fn the_sdk_talks_https_through_it_and_trusts_only_the_roots_given() {
        let (port, pem, answered) = https_server().await;
        let client = sqs(port, tls_config(Some(&pem)).unwrap());
        for _ in 0..3 {
            let listed = client.list_queues().send().await.expect("TLS with the server's own root");
            assert_eq!(listed.queue_urls(), ["https://localhost/1/q"]);
        }
        assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 3);

        let amazon_only = sqs(port, tls_config(Some(crate::aws::AMAZON_TRUST_SERVICES_ROOTS)).unwrap());
        let refused = amazon_only.list_queues().send().await.unwrap_err();
        let text = crate::logging::describe(&refused);
        assert!(text.to_ascii_lowercase().contains("certificate"), "a certificate no root vouches for: {text}");
        assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 3, "nothing was sent");
    }
}
