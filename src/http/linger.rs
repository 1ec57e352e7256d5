//! Lingering close: after answering a request early (413, 507, 503, 400) while its body
//! is still coming, read and throw away the rest, bounded in bytes and time, then close.
//!
//! Without it, closing a socket that still has unread data makes the kernel send a
//! reset, which destroys the answer in flight: clients that send the whole body before
//! they read (Python's `http.client` and `urllib`, many scripts) see a broken pipe
//! instead of the status. hyper 1.x does not linger: once the handler drops an unread
//! body it reads what is already buffered, then closes the read side (hyper issues
//! #2384, #3078). So the body is handed to a task of its own that keeps reading while
//! hyper writes the answer (marked `Connection: close`); when the body ends, hyper sees
//! both directions done and closes cleanly. nginx does the same (`lingering_close`).

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderMap, CONTENT_LENGTH, EXPECT};
use tokio::time::Instant;

/// Most bytes thrown away per request; past it the connection is simply closed.
pub const LINGER_MAX_BYTES: u64 = 64 << 20;
/// Longest time spent throwing a body away.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// What to do with the unread rest of a request body after an early answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Rest {
    /// Nothing left to read: the connection may stay open.
    Nothing,
    /// Drained in the background; the answer must close the connection.
    Draining,
    /// Dropped unread, and the answer closes the connection: the client waits for
    /// `100 Continue` before sending it (it never will: hyper sends none for a body
    /// nobody reads), or it declared more than would ever be read.
    Dropped,
}

/// Deal with the rest of `body` after an early answer to a request with `headers`.
pub fn discard_rest(headers: &HeaderMap, body: Incoming) -> Rest {
    if body.is_end_stream() {
        return Rest::Nothing;
    }
    let expects_continue = headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if expects_continue || declared.is_some_and(|n| n > LINGER_MAX_BYTES) {
        return Rest::Dropped;
    }
    tokio::spawn(drain(body, LINGER_MAX_BYTES, LINGER_TIME));
    Rest::Draining
}

/// Read and drop `body` until it ends, `max_bytes` have been read, or `time` passes;
/// the number of bytes read.
pub async fn drain<B>(mut body: B, max_bytes: u64, time: Duration) -> u64
where
    B: Body + Unpin,
{
    let deadline = Instant::now() + time;
    let mut read = 0u64;
    while read < max_bytes {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    read += bytes::Buf::remaining(data) as u64;
                }
            }
            // Ended, failed, or out of time.
            _ => break,
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::stream;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    fn chunks(n: usize, size: usize) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        StreamBody::new(stream::iter(
            (0..n).map(move |_| Ok(Frame::data(Bytes::from(vec![0u8; size])))),
        ))
    }

    #[tokio::test]
    async fn reads_a_body_to_its_end() {
        assert_eq!(drain(chunks(10, 100), 10_000, LINGER_TIME).await, 1_000);
    }

    #[tokio::test]
    async fn stops_after_the_byte_bound() {
        assert_eq!(drain(chunks(100, 100), 250, LINGER_TIME).await, 300);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_after_the_time_bound() {
        let endless = StreamBody::new(stream::pending::<Result<Frame<Bytes>, std::io::Error>>());
        let started = Instant::now();
        assert_eq!(drain(endless, 1_000, Duration::from_secs(5)).await, 0);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
