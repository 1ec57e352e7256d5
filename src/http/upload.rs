//! Receiving the body of a PUT: both the node's storage budget and the process's cap on
//! bytes being received ([`super::receiving`]) are reserved before the bytes are read,
//! from `Content-Length`, or chunk by chunk for a chunked body; the reservations are
//! guards, so every way out (refusal, timeout, client gone) gives them back.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::receiving::{Receiving, Reserved};
use crate::store::{Record, Store, StoreError, StoreReservation};

/// Why a body was not received.
#[derive(Debug)]
pub enum Refusal {
    /// Larger than the value limit (declared, or found while streaming).
    TooLarge,
    /// The storage budget cannot take it.
    Full(StoreError),
    /// The process is receiving as much as it may right now.
    Busy,
    /// Not received within the body timeout.
    TimedOut,
    /// The connection failed or the body was malformed.
    Unreadable(String),
}

/// A received value and the reservations that cover it: keep them until the value is
/// stored, so that nobody else is promised its room in between.
#[derive(Debug)]
pub struct Received {
    value: Bytes,
    _store: StoreReservation,
    _receiving: Reserved,
}

impl Received {
    /// The value (moved out, so it stays unshared; the reservations stay here).
    pub fn take_value(&mut self) -> Bytes {
        std::mem::take(&mut self.value)
    }
}

/// Where a body may go.
pub struct Limits<'a> {
    /// `REPRAM_MAX_VALUE_BYTES`.
    pub max: usize,
    /// The key it is stored under (charged against the budget with the value).
    pub key: &'a str,
    /// The node's store.
    pub store: &'a Store,
    /// The process's receive cap.
    pub receiving: &'a Arc<Receiving>,
    /// How long the whole body may take.
    pub timeout: Duration,
}

/// Read `body` (of `declared` bytes when the request said so) within `limits`. On a
/// refusal the rest of `body` is left unread for the caller to deal with.
pub async fn receive(
    body: &mut Incoming,
    declared: Option<u64>,
    limits: Limits<'_>,
) -> Result<Received, Refusal> {
    let max = limits.max as u64;
    if declared.is_some_and(|n| n > max) {
        return Err(Refusal::TooLarge);
    }
    let initial = declared.unwrap_or(0);
    let mut store = limits
        .store
        .reserve(Record::cost(limits.key, 0) + initial)
        .map_err(Refusal::Full)?;
    let mut receiving = limits.receiving.reserve(initial).ok_or(Refusal::Busy)?;
    // Exactly the declared size: the buffer becomes the stored value without a copy.
    let mut buf = BytesMut::with_capacity(usize::try_from(initial).unwrap_or(0));
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Refusal::Unreadable(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let len = buf.len() as u64 + data.len() as u64;
            if len > max {
                return Err(Refusal::TooLarge);
            }
            if len > receiving.bytes() {
                // Chunked (or more than declared, which hyper refuses): reserve what the
                // buffer will hold, doubling, so the memory used stays what is reserved.
                let target = len.max(2 * receiving.bytes()).min(max);
                let more = target - receiving.bytes();
                store.grow(more).map_err(Refusal::Full)?;
                if !receiving.grow(more) {
                    return Err(Refusal::Busy);
                }
                buf.reserve(usize::try_from(target).unwrap_or(usize::MAX) - buf.len());
            }
            buf.extend_from_slice(&data);
        }
        Ok(())
    };
    tokio::time::timeout(limits.timeout, read)
        .await
        .map_err(|_| Refusal::TimedOut)??;
    // A buffer with room to spare would pin it for as long as the key lives.
    let value = if buf.len() == buf.capacity() {
        buf.freeze()
    } else {
        Bytes::copy_from_slice(&buf)
    };
    Ok(Received {
        value,
        _store: store,
        _receiving: receiving,
    })
}
