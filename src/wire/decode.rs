//! Decoding messages: never panics, and checks every count and length against the
//! limits and against what the rest of the input can hold.

use bytes::{Buf, Bytes};

use super::{
    Entry, Gossip, MemberState, Message, NodeInfo, Update, WireError, KIND_ACK, KIND_DIGEST,
    KIND_FETCH, KIND_GOSSIP, KIND_HOLDERS, KIND_RELAY, KIND_REPLICATE, KIND_VERSIONS, MAGIC,
    MAX_FETCH, MAX_HOLDERS, MAX_ITEMS, MAX_KEY, MAX_NAME, VERSION,
};
use crate::clock::Version;

impl Message {
    /// Decode one whole message. Values in the result share `input`'s buffer when the
    /// message carries a single entry and are copied out otherwise, so one long-lived key
    /// never pins a whole batch in memory.
    pub fn decode(mut input: Bytes) -> Result<Message, WireError> {
        let b = &mut input;
        need(b, 4)?;
        if b.get_u8() != MAGIC[0] || b.get_u8() != MAGIC[1] {
            return Err(WireError::BadMagic);
        }
        let version = b.get_u8();
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let msg = match b.get_u8() {
            KIND_GOSSIP => {
                let from = get_node(b)?;
                need(b, 9)?;
                let incarnation = b.get_u64();
                let flags = b.get_u8();
                if flags & !0b111 != 0 {
                    return Err(WireError::BadField("gossip flags", flags));
                }
                let observed = get_host(b, "observed host")?;
                let relay = get_host(b, "relay address")?;
                need(b, 4)?;
                let n = b.get_u32() as usize;
                // An update takes at least 15 bytes: never trust `n` for allocation.
                let mut updates = Vec::with_capacity(n.min(b.remaining() / 15));
                for _ in 0..n {
                    let node = get_node(b)?;
                    need(b, 9)?;
                    let incarnation = b.get_u64();
                    let state = MemberState::from_byte(b.get_u8())?;
                    updates.push(Update {
                        node,
                        incarnation,
                        state,
                    });
                }
                Message::Gossip(Gossip {
                    from,
                    incarnation,
                    leaving: flags & 1 != 0,
                    full: flags & 2 != 0,
                    relay_ok: flags & 4 != 0,
                    observed,
                    relay,
                    updates,
                })
            }
            KIND_REPLICATE => Message::Replicate(get_entries(b)?),
            KIND_ACK => {
                need(b, 4)?;
                Message::Ack(b.get_u32())
            }
            KIND_DIGEST => {
                let n = get_count(b, 8, MAX_ITEMS)?;
                Message::Digest((0..n).map(|_| b.get_u64()).collect())
            }
            KIND_VERSIONS => {
                let n = get_count(b, 18, MAX_ITEMS)?;
                let mut vs = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = get_str(b, "key", MAX_KEY)?;
                    need(b, 16)?;
                    let version = Version {
                        hlc: b.get_u64(),
                        origin: b.get_u64(),
                    };
                    vs.push((key, version));
                }
                Message::Versions(vs)
            }
            KIND_FETCH => {
                let n = get_count(b, 2, MAX_FETCH)?;
                let mut keys = Vec::with_capacity(n);
                for _ in 0..n {
                    keys.push(get_str(b, "key", MAX_KEY)?);
                }
                Message::Fetch(keys)
            }
            KIND_RELAY => Message::Relay(get_entries(b)?),
            KIND_HOLDERS => {
                let n = get_count(b, 2, MAX_HOLDERS)?;
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    ids.push(get_str(b, "node id", MAX_NAME)?);
                }
                Message::Holders(ids)
            }
            other => return Err(WireError::UnknownKind(other)),
        };
        if b.has_remaining() {
            return Err(WireError::Trailing(b.remaining()));
        }
        Ok(msg)
    }
}

/// A u32 item count of at most `max`, checked against what the rest of the input can
/// hold at `min_item` bytes per item (so a lying count can neither over-allocate nor pass).
fn get_count(b: &mut Bytes, min_item: usize, max: usize) -> Result<usize, WireError> {
    need(b, 4)?;
    let n = b.get_u32() as usize;
    if n > max {
        return Err(WireError::TooLong("item list"));
    }
    need(b, n.saturating_mul(min_item))?;
    Ok(n)
}

fn need(b: &Bytes, n: usize) -> Result<(), WireError> {
    if b.remaining() < n {
        Err(WireError::Truncated)
    } else {
        Ok(())
    }
}

fn get_str(b: &mut Bytes, what: &'static str, max: usize) -> Result<String, WireError> {
    need(b, 2)?;
    let len = usize::from(b.get_u16());
    if len > max {
        return Err(WireError::TooLong(what));
    }
    need(b, len)?;
    let raw = b.split_to(len);
    String::from_utf8(raw.to_vec()).map_err(|_| WireError::BadUtf8(what))
}

/// A host name, an IP address or a `host:port` address (IPv6 in brackets), or empty.
/// Nodes build URLs from these, so nothing else is let in (no `/`, `@`, `?`, spaces).
fn get_host(b: &mut Bytes, what: &'static str) -> Result<String, WireError> {
    let host = get_str(b, what, MAX_NAME)?;
    let host_char =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':' | b'[' | b']');
    if host.bytes().all(host_char) {
        Ok(host)
    } else {
        Err(WireError::NotHost(what))
    }
}

fn get_node(b: &mut Bytes) -> Result<NodeInfo, WireError> {
    let id = get_str(b, "node id", MAX_NAME)?;
    let host = get_host(b, "host")?;
    need(b, 2)?;
    Ok(NodeInfo {
        id,
        host,
        port: b.get_u16(),
    })
}

/// Smallest value kept as a slice of its message rather than copied (see `get_entries`).
const SHARE_VALUE_BYTES: usize = 64 << 10;

fn get_entries(b: &mut Bytes) -> Result<Vec<Entry>, WireError> {
    need(b, 4)?;
    let n = b.get_u32() as usize;
    // An entry takes at least 38 bytes: bound the allocation by what the input can hold.
    let mut entries = Vec::with_capacity(n.min(b.remaining() / 38));
    for _ in 0..n {
        let key = get_str(b, "key", MAX_KEY)?;
        need(b, 4)?;
        let len = b.get_u32() as usize;
        need(b, len.saturating_add(32))?;
        let raw = b.split_to(len);
        // A slice would keep the whole message (and the connection buffer it may share)
        // alive as long as the key: copy, except a large value alone in its message,
        // which is most of that memory anyway and costly to copy.
        let value = if n == 1 && len >= SHARE_VALUE_BYTES {
            raw
        } else {
            Bytes::copy_from_slice(&raw)
        };
        entries.push(Entry {
            key,
            value,
            created_ms: b.get_u64(),
            expires_ms: b.get_u64(),
            version: Version {
                hlc: b.get_u64(),
                origin: b.get_u64(),
            },
        });
    }
    Ok(entries)
}
