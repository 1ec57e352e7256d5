//! Error answers: [`ApiError`] and the JSON bodies of answers.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::Resp;

/// An error answer: status plus a message sent as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) allow: Option<&'static str>,
    pub(super) retry_after: Option<u64>,
    /// Close the connection after this answer (the request body was not all read).
    pub(super) close: bool,
}

impl ApiError {
    #[inline]
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            allow: None,
            retry_after: None,
            close: false,
        }
    }

    #[inline]
    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method not allowed; use {allow}"),
            )
        }
    }

    #[inline]
    pub(super) fn into_response(self) -> Resp {
        let mut resp = json_response(self.status, &json!({ "error": self.message }));
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

impl From<crate::http::gate::Refusal> for ApiError {
    fn from(r: crate::http::gate::Refusal) -> Self {
        ApiError {
            retry_after: r.retry_after,
            ..ApiError::new(r.status, r.message)
        }
    }
}

pub(super) type Result<T> = std::result::Result<T, ApiError>;

pub(super) fn json_response(status: StatusCode, body: &serde_json::Value) -> Resp {
    json_body_response(status, body.to_string().into_bytes())
}

/// An answer with `body`, already JSON text.
pub(super) fn json_body_response(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(super) fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("value larger than the limit of {max} bytes"),
    )
}
