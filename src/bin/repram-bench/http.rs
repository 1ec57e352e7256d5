//! The benchmark's HTTP client.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A pooled keep-alive HTTP/1.1 client (hyper-util), loopback only.
#[derive(Clone)]
pub(crate) struct Http {
    pub(crate) client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(500)));
        let client = Client::builder(TokioExecutor::new())
            // Below the server's 10 s header timeout, which also closes idle keep-alive
            // connections: a pooled connection the server already closed fails the request.
            .pool_idle_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(256)
            .build(connector);
        Http { client }
    }

    pub(crate) async fn request(
        &self,
        method: Method,
        port: u16,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{port}{path}"))
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let fut = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| "timed out".to_string())?
    }

    pub(crate) async fn get(&self, port: u16, path: &str) -> Result<(StatusCode, Bytes), String> {
        self.request(
            Method::GET,
            port,
            path,
            Bytes::new(),
            Duration::from_secs(5),
        )
        .await
    }

    pub(crate) async fn json_timeout(
        &self,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<Value, String> {
        let (status, body) = self
            .request(Method::GET, port, path, Bytes::new(), timeout)
            .await?;
        if status != StatusCode::OK {
            return Err(format!("GET {path} on {port}: {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {path} on {port}: {e}"))
    }

    pub(crate) async fn put(
        &self,
        port: u16,
        path: &str,
        body: Bytes,
    ) -> Result<StatusCode, String> {
        self.request(Method::PUT, port, path, body, Duration::from_secs(10))
            .await
            .map(|(s, _)| s)
    }

    pub(crate) async fn json(&self, port: u16, path: &str) -> Result<Value, String> {
        self.json_timeout(port, path, Duration::from_secs(5)).await
    }
}
