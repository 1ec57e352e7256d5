//! Reading request bodies.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::StatusCode;

use super::error::{too_large, ApiError, Result};
use crate::node::Node;

pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Read a whole body of at most `max` bytes within the body timeout.
pub(super) async fn read_body(node: &Node, body: Incoming, max: usize) -> Result<Bytes> {
    let collected =
        tokio::time::timeout(node.tuning.body_timeout, Limited::new(body, max).collect())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time",
                )
            })?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large(max))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "could not read request body: {e}"
        ))),
    }
}
