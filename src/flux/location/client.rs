//! One request to the location API over plain TCP or TLS, within a deadline.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

#[cfg(doc)]
use super::LocationCache;
use super::{parse_location_body, FluxError, LocationList, LocationUrl};
use crate::text::one_line;

/// Largest location answer accepted (100 instances take about 30 KB).
const MAX_BODY_BYTES: usize = 1 << 20;

/// One `GET` over an open connection; the connection task dies with this future.
async fn get<S>(url: &LocationUrl, io: S) -> Result<Bytes, FluxError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let unreachable = |e: &dyn std::fmt::Display| FluxError::Unreachable {
        url: url.to_string(),
        reason: one_line(&format!("http: {e}"), 300),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| unreachable(&e))?;
    let conn = AbortOnDrop(tokio::spawn(conn));
    let req = Request::get(url.path.as_str())
        .header(header::HOST, url.host_header())
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            concat!("repram-flux/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(&e))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(&e))?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(FluxError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    let body = Limited::new(resp.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| unreachable(&e))?
        .to_bytes();
    drop(conn);
    Ok(body)
}

struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The location API client: holds its TLS settings (ring, TLS 1.2/1.3, the Mozilla roots
/// compiled in, so the runtime image needs no CA bundle), built on first use.
#[derive(Default)]
pub struct LocationClient {
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl LocationClient {
    /// A client whose TLS settings are built by its first `https` request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fetches and parses the instance list once, all within `timeout` (connect, TLS,
    /// request and body). No cache, no retry: see [`LocationCache`] for those.
    pub async fn fetch(
        &self,
        url: &LocationUrl,
        timeout: Duration,
    ) -> Result<LocationList, FluxError> {
        match tokio::time::timeout(timeout, self.fetch_body(url)).await {
            Ok(Ok(body)) => parse_location_body(&body),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(FluxError::Timeout {
                url: url.to_string(),
                timeout,
            }),
        }
    }

    async fn fetch_body(&self, url: &LocationUrl) -> Result<Bytes, FluxError> {
        let unreachable = |what: &str, e: &dyn std::fmt::Display| FluxError::Unreachable {
            url: url.to_string(),
            reason: one_line(&format!("{what}: {e}"), 300),
        };
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| unreachable("connect", &e))?;
        let _ = tcp.set_nodelay(true);
        if url.tls {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| unreachable("TLS server name", &e))?;
            let stream = tokio_rustls::TlsConnector::from(self.tls_config()?)
                .connect(name, tcp)
                .await
                .map_err(|e| unreachable("TLS", &e))?;
            get(url, stream).await
        } else {
            get(url, tcp).await
        }
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, FluxError> {
        self.tls
            .get_or_init(|| {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let mut config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Ok(Arc::new(config))
            })
            .clone()
            .map_err(|reason| FluxError::Unreachable {
                url: String::new(),
                reason: format!("TLS setup: {reason}"),
            })
    }
}
