//! Node-to-node wire format (the bodies of `/internal/` requests and replies).
//!
//! Every message starts with the magic `RF`, a protocol version byte and a kind byte;
//! integers are big-endian, strings and byte strings are length-prefixed. Decoding never
//! panics and rejects unknown versions, unknown kinds, truncated input, trailing bytes,
//! invalid UTF-8, and host fields with characters no address has.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::clock::Version;

/// First two bytes of every message.
pub const MAGIC: [u8; 2] = *b"RF";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Longest node id or host accepted on the wire.
pub const MAX_NAME: usize = 255;
/// Longest key accepted on the wire (the API allows 250 bytes).
pub const MAX_KEY: usize = 250;

/// Most value bytes in one replication batch (a single larger value still goes alone);
/// the receiver reads a batch body up to this plus one value.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 250;

/// Check a decoded key: 1-250 bytes, no `/`, no control characters.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("key must not be empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "key is {} bytes; at most {MAX_KEY_BYTES} allowed",
            key.len()
        ));
    }
    if key.contains('/') {
        return Err("key must not contain '/'".into());
    }
    if key.chars().any(char::is_control) {
        return Err("key must not contain control characters".into());
    }
    Ok(())
}

/// A node as other nodes know it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct NodeInfo {
    /// Unique node id, e.g. `flux-node-2-7f3a9c`.
    pub id: String,
    /// Host others should use to reach it; empty when it does not know (the receiver then
    /// uses the address the message came from).
    pub host: String,
    /// Its HTTP port.
    pub port: u16,
}

/// What a membership update says about a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; dead unless it refutes in time.
    Suspect,
    /// Declared dead.
    Dead,
    /// Left gracefully.
    Left,
}

impl MemberState {
    fn to_byte(self) -> u8 {
        match self {
            MemberState::Alive => 0,
            MemberState::Suspect => 1,
            MemberState::Dead => 2,
            MemberState::Left => 3,
        }
    }

    fn from_byte(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            0 => MemberState::Alive,
            1 => MemberState::Suspect,
            2 => MemberState::Dead,
            3 => MemberState::Left,
            other => return Err(WireError::BadField("member state", other)),
        })
    }
}

/// One piece of membership news: `node` is in `state` as of `incarnation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The node concerned, with the address the sender reaches it at (host may be empty).
    pub node: NodeInfo,
    /// The node's incarnation this news is about (only the node itself raises it).
    pub incarnation: u64,
    /// Its state.
    pub state: MemberState,
}

/// A membership exchange: a probe and its answer have the same shape.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Gossip {
    /// The sender.
    pub from: NodeInfo,
    /// The sender's current incarnation.
    pub incarnation: u64,
    /// True when the sender is shutting down and must be removed at once.
    pub leaving: bool,
    /// True when the sender includes its whole member list (and wants the same back).
    pub full: bool,
    /// In answers: the IP the request came from, so a node learns its own address.
    pub observed: String,
    /// In requests: an address the receiver should probe on the sender's behalf
    /// (indirect probe); empty when none. In answers: unused.
    pub relay: String,
    /// In answers to a relay request: whether the relayed probe got an answer.
    pub relay_ok: bool,
    /// Membership news (piggybacked), or the whole list when `full`.
    pub updates: Vec<Update>,
}

/// One replicated write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value bytes.
    pub value: Bytes,
    /// Wall-clock ms at the origin when written.
    pub created_ms: u64,
    /// Absolute wall-clock ms of expiry, set by the origin.
    pub expires_ms: u64,
    /// Version for last-writer-wins.
    pub version: Version,
}

/// Every message kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Membership exchange (request and reply).
    Gossip(Gossip),
    /// A batch of writes to apply.
    Replicate(Vec<Entry>),
    /// Acknowledgement of a batch: how many entries the receiver holds now (applied or
    /// already had a newer or equal version).
    Ack(u32),
    /// Anti-entropy step 1: the sender's per-bucket digest.
    Digest(Vec<u64>),
    /// Anti-entropy step 2: (key, version) of the receiver's entries in differing buckets.
    Versions(Vec<(String, Version)>),
    /// Anti-entropy step 3: ask for these entries (answered with `Replicate`).
    Fetch(Vec<String>),
    /// A batch of writes to apply and hand on to every node serving in the receiver's
    /// process (its failure domain), answered with `Holders`.
    Relay(Vec<Entry>),
    /// Answer to `Relay`: the ids of the nodes that hold every entry of the batch (at
    /// most [`MAX_HOLDERS`]).
    Holders(Vec<String>),
}

const KIND_GOSSIP: u8 = 1;
const KIND_REPLICATE: u8 = 2;
const KIND_ACK: u8 = 3;
const KIND_DIGEST: u8 = 4;
const KIND_VERSIONS: u8 = 5;
const KIND_FETCH: u8 = 6;
const KIND_RELAY: u8 = 7;
const KIND_HOLDERS: u8 = 8;
/// Most items in a digest or version list.
pub const MAX_ITEMS: usize = 1 << 22;
/// Most keys in one fetch: senders ask in chunks of this size, and a receiver answers
/// no more. Each key takes only two bytes on the wire but 24 in memory, so a longer list
/// would let a small message claim a lot of memory.
pub const MAX_FETCH: usize = crate::antientropy::FETCH_CHUNK;
/// Most node ids in a `Holders` answer (a relay lists no more). Like a fetch list, an id
/// may take two bytes on the wire but 24 in memory, hence the same small bound.
pub const MAX_HOLDERS: usize = MAX_FETCH;

/// Why a message could not be decoded. Nothing is applied from a message that fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ended in the middle of a field.
    #[error("message truncated")]
    Truncated,
    /// The input does not start with the magic bytes.
    #[error("not a repram-flux message")]
    BadMagic,
    /// A protocol version this build does not speak.
    #[error("unsupported protocol version {0} (this node speaks {VERSION})")]
    UnsupportedVersion(u8),
    /// An unknown message kind.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A string field is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    BadUtf8(&'static str),
    /// A field is longer than allowed.
    #[error("{0} too long")]
    TooLong(&'static str),
    /// A field holds a value outside its range.
    #[error("invalid {0} {1}")]
    BadField(&'static str, u8),
    /// Bytes left over after the message.
    #[error("{0} unexpected trailing bytes")]
    Trailing(usize),
    /// A host or address field holds characters no host name or IP address has.
    #[error("{0} is not a host address")]
    NotHost(&'static str),
}

impl Message {
    /// Name of the message kind, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Gossip(_) => "gossip",
            Message::Replicate(_) => "replicate",
            Message::Ack(_) => "ack",
            Message::Digest(_) => "digest",
            Message::Versions(_) => "versions",
            Message::Fetch(_) => "fetch",
            Message::Relay(_) => "relay",
            Message::Holders(_) => "holders",
        }
    }

    /// Encode into a fresh buffer.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.size_hint());
        b.put_slice(&MAGIC);
        b.put_u8(VERSION);
        match self {
            Message::Gossip(g) => {
                b.put_u8(KIND_GOSSIP);
                put_node(&mut b, &g.from);
                b.put_u64(g.incarnation);
                b.put_u8(u8::from(g.leaving) | u8::from(g.full) << 1 | u8::from(g.relay_ok) << 2);
                put_str(&mut b, &g.observed);
                put_str(&mut b, &g.relay);
                b.put_u32(g.updates.len() as u32);
                for u in &g.updates {
                    put_node(&mut b, &u.node);
                    b.put_u64(u.incarnation);
                    b.put_u8(u.state.to_byte());
                }
            }
            Message::Replicate(entries) => {
                b.put_u8(KIND_REPLICATE);
                put_entries(&mut b, entries.iter());
            }
            Message::Ack(n) => {
                b.put_u8(KIND_ACK);
                b.put_u32(*n);
            }
            Message::Digest(d) => {
                b.put_u8(KIND_DIGEST);
                b.put_u32(d.len() as u32);
                for h in d {
                    b.put_u64(*h);
                }
            }
            Message::Versions(vs) => {
                b.put_u8(KIND_VERSIONS);
                b.put_u32(vs.len() as u32);
                for (k, v) in vs {
                    put_str(&mut b, k);
                    b.put_u64(v.hlc);
                    b.put_u64(v.origin);
                }
            }
            Message::Fetch(keys) => {
                b.put_u8(KIND_FETCH);
                b.put_u32(keys.len() as u32);
                for k in keys {
                    put_str(&mut b, k);
                }
            }
            Message::Relay(entries) => {
                b.put_u8(KIND_RELAY);
                put_entries(&mut b, entries.iter());
            }
            Message::Holders(ids) => {
                b.put_u8(KIND_HOLDERS);
                b.put_u32(ids.len() as u32);
                for id in ids {
                    put_str(&mut b, id);
                }
            }
        }
        b.freeze()
    }

    fn size_hint(&self) -> usize {
        let entries = |es: &[Entry]| {
            es.iter()
                .map(|e| e.key.len() + e.value.len() + 40)
                .sum::<usize>()
        };
        8 + match self {
            Message::Gossip(g) => 80 * (g.updates.len() + 1),
            Message::Replicate(es) | Message::Relay(es) => entries(es),
            Message::Ack(_) => 4,
            Message::Digest(d) => 4 + 8 * d.len(),
            Message::Versions(vs) => 4 + vs.iter().map(|(k, _)| k.len() + 18).sum::<usize>(),
            Message::Fetch(ks) | Message::Holders(ks) => {
                4 + ks.iter().map(|k| k.len() + 2).sum::<usize>()
            }
        }
    }

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

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_u16(s.len() as u16);
    b.put_slice(s.as_bytes());
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

fn put_node(b: &mut BytesMut, n: &NodeInfo) {
    put_str(b, &n.id);
    put_str(b, &n.host);
    b.put_u16(n.port);
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

/// Encode a [`Message::Replicate`] straight from borrowed entries (no cloning).
pub fn encode_replicate<'a>(entries: impl ExactSizeIterator<Item = &'a Entry> + Clone) -> Bytes {
    encode_batch(KIND_REPLICATE, entries)
}

/// Encode a [`Message::Relay`] straight from borrowed entries (no cloning).
pub fn encode_relay<'a>(entries: impl ExactSizeIterator<Item = &'a Entry> + Clone) -> Bytes {
    encode_batch(KIND_RELAY, entries)
}

fn encode_batch<'a>(kind: u8, entries: impl ExactSizeIterator<Item = &'a Entry> + Clone) -> Bytes {
    let size: usize = entries
        .clone()
        .map(|e| e.key.len() + e.value.len() + 40)
        .sum();
    let mut b = BytesMut::with_capacity(size + 8);
    b.put_slice(&MAGIC);
    b.put_u8(VERSION);
    b.put_u8(kind);
    put_entries(&mut b, entries);
    b.freeze()
}

fn put_entries<'a>(b: &mut BytesMut, entries: impl ExactSizeIterator<Item = &'a Entry>) {
    b.put_u32(entries.len() as u32);
    for e in entries {
        put_str(b, &e.key);
        b.put_u32(e.value.len() as u32);
        b.put_slice(&e.value);
        b.put_u64(e.created_ms);
        b.put_u64(e.expires_ms);
        b.put_u64(e.version.hlc);
        b.put_u64(e.version.origin);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, port: u16) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn entry(key: &str, value: &'static [u8]) -> Entry {
        Entry {
            key: key.into(),
            value: Bytes::from_static(value),
            created_ms: 1_000,
            expires_ms: 601_000,
            version: Version { hlc: 77, origin: 5 },
        }
    }

    fn samples() -> Vec<Message> {
        vec![
            Message::Gossip(Gossip {
                from: node("a", 8081),
                incarnation: 4,
                leaving: true,
                full: true,
                observed: "10.0.0.1".into(),
                relay: "127.0.0.1:9".into(),
                relay_ok: true,
                updates: vec![
                    Update {
                        node: node("b", 8082),
                        incarnation: 1,
                        state: MemberState::Suspect,
                    },
                    Update {
                        node: node("c", 8083),
                        incarnation: 0,
                        state: MemberState::Left,
                    },
                ],
            }),
            Message::Gossip(Gossip::default()),
            Message::Replicate(vec![entry("k1", b"v1"), entry("k2", b"")]),
            Message::Replicate(vec![entry("only", b"\x00\xff")]),
            Message::Ack(3),
            Message::Digest(vec![0, 1, u64::MAX]),
            Message::Versions(vec![("k1".into(), Version { hlc: 9, origin: 8 })]),
            Message::Fetch(vec!["a".into(), "b".into()]),
            Message::Digest(vec![]),
            Message::Relay(vec![entry("k1", b"v1"), entry("k2", b"")]),
            Message::Relay(vec![]),
            Message::Holders(vec![
                "flux-node-1-abcdef".into(),
                "flux-node-2-abcdef".into(),
            ]),
            Message::Holders(vec![]),
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for m in samples() {
            assert_eq!(Message::decode(m.encode()), Ok(m));
        }
    }

    #[test]
    fn encode_replicate_matches_the_message_encoding() {
        let es = vec![entry("a", b"1"), entry("b", b"22")];
        assert_eq!(
            encode_replicate(es.iter()),
            Message::Replicate(es.clone()).encode()
        );
    }

    #[test]
    fn encode_relay_matches_the_message_encoding() {
        let es = vec![entry("a", b"1"), entry("b", b"22")];
        assert_eq!(encode_relay(es.iter()), Message::Relay(es.clone()).encode());
        // Same entries, other kind: a relay request is never taken for a plain batch.
        let (relay, plain) = (encode_relay(es.iter()), encode_replicate(es.iter()));
        assert_eq!(relay[4..], plain[4..]);
        assert_ne!(relay[3], plain[3]);
    }

    #[test]
    fn holder_lists_are_capped_and_checked() {
        let ids = |n: usize| Message::Holders(vec!["n".to_string(); n]);
        assert_eq!(
            Message::decode(ids(MAX_HOLDERS).encode()),
            Ok(ids(MAX_HOLDERS))
        );
        assert_eq!(
            Message::decode(ids(MAX_HOLDERS + 1).encode()),
            Err(WireError::TooLong("item list"))
        );
        let long = Message::Holders(vec!["x".repeat(MAX_NAME + 1)]).encode();
        assert_eq!(Message::decode(long), Err(WireError::TooLong("node id")));
        let mut raw = Message::Holders(vec!["ab".into()]).encode().to_vec();
        // header 4 + count 4 + id len 2, then the id bytes.
        raw[10] = 0xff;
        assert_eq!(
            Message::decode(raw.into()),
            Err(WireError::BadUtf8("node id"))
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for m in samples() {
            let full = m.encode();
            for cut in 0..full.len() {
                assert!(
                    Message::decode(full.slice(..cut)).is_err(),
                    "{m:?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn bad_headers_are_named() {
        let good = Message::Ack(1).encode().to_vec();
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(Message::decode(bad.into()), Err(WireError::BadMagic));
        let mut bad = good.clone();
        bad[2] = 9;
        assert_eq!(
            Message::decode(bad.into()),
            Err(WireError::UnsupportedVersion(9))
        );
        let mut bad = good.clone();
        bad[3] = 200;
        assert_eq!(
            Message::decode(bad.into()),
            Err(WireError::UnknownKind(200))
        );
        let mut bad = good;
        bad.push(0);
        assert_eq!(Message::decode(bad.into()), Err(WireError::Trailing(1)));
    }

    #[test]
    fn unknown_flags_and_states_are_refused() {
        let g = Message::Gossip(Gossip {
            updates: vec![Update {
                node: node("b", 1),
                incarnation: 0,
                state: MemberState::Alive,
            }],
            ..Gossip::default()
        });
        let raw = g.encode().to_vec();
        let mut bad = raw.clone();
        *bad.last_mut().unwrap() = 9;
        assert_eq!(
            Message::decode(bad.into()),
            Err(WireError::BadField("member state", 9))
        );
        // header 4 + from (2+0 + 2+0 + 2) + incarnation 8 = flags at offset 18.
        let mut bad = raw;
        bad[18] = 0x80;
        assert_eq!(
            Message::decode(bad.into()),
            Err(WireError::BadField("gossip flags", 0x80))
        );
    }

    #[test]
    fn huge_counts_do_not_allocate_or_panic() {
        let mut b = BytesMut::new();
        b.put_slice(&MAGIC);
        b.put_u8(VERSION);
        b.put_u8(KIND_REPLICATE);
        b.put_u32(u32::MAX);
        assert_eq!(Message::decode(b.freeze()), Err(WireError::Truncated));
    }

    #[test]
    fn hosts_that_are_not_addresses_are_refused() {
        for bad in ["a/b", "user@host", "h?x", "h#x", "a b", "h\n", "h%41", "é"] {
            let msgs = [
                Gossip {
                    from: NodeInfo {
                        host: bad.into(),
                        ..node("a", 1)
                    },
                    ..Gossip::default()
                },
                Gossip {
                    relay: bad.into(),
                    ..Gossip::default()
                },
                Gossip {
                    observed: bad.into(),
                    ..Gossip::default()
                },
                Gossip {
                    updates: vec![Update {
                        node: NodeInfo {
                            host: bad.into(),
                            ..node("b", 2)
                        },
                        incarnation: 0,
                        state: MemberState::Alive,
                    }],
                    ..Gossip::default()
                },
            ];
            for g in msgs {
                let res = Message::decode(Message::Gossip(g).encode());
                assert!(
                    matches!(res, Err(WireError::NotHost(_))),
                    "{bad:?}: {res:?}"
                );
            }
        }
        let good = Gossip {
            from: NodeInfo {
                host: "node-1.example".into(),
                ..node("a", 1)
            },
            relay: "[2001:db8::1]:8081".into(),
            observed: "::ffff:10.0.0.1".into(),
            ..Gossip::default()
        };
        let msg = Message::Gossip(good);
        assert_eq!(Message::decode(msg.encode()), Ok(msg));
    }

    #[test]
    fn fetch_lists_are_capped() {
        let keys = |n: usize| Message::Fetch(vec![String::new(); n]);
        assert_eq!(
            Message::decode(keys(MAX_FETCH).encode()),
            Ok(keys(MAX_FETCH))
        );
        assert_eq!(
            Message::decode(keys(MAX_FETCH + 1).encode()),
            Err(WireError::TooLong("item list"))
        );
    }

    #[test]
    fn invalid_utf8_and_long_keys_are_refused() {
        let mut e = entry("k", b"v");
        e.key = "x".repeat(MAX_KEY + 1);
        let long = Message::Replicate(vec![e]).encode();
        assert_eq!(Message::decode(long), Err(WireError::TooLong("key")));

        let mut raw = Message::Replicate(vec![entry("ab", b"v")])
            .encode()
            .to_vec();
        // header 4 + count 4 + key len 2, then the key bytes.
        raw[10] = 0xff;
        assert_eq!(Message::decode(raw.into()), Err(WireError::BadUtf8("key")));
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..64);
            let mut v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if rng.gen_bool(0.7) && v.len() >= 4 {
                v[..3].copy_from_slice(&[b'R', b'F', VERSION]);
                v[3] = rng.gen_range(1..=8);
            }
            let _ = Message::decode(v.into());
        }
    }
}
