//! Encoding messages.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    Entry, Message, NodeInfo, KIND_ACK, KIND_DIGEST, KIND_FETCH, KIND_GOSSIP, KIND_HOLDERS,
    KIND_RELAY, KIND_REPLICATE, KIND_VERSIONS, MAGIC, VERSION,
};

impl Message {
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
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_u16(s.len() as u16);
    b.put_slice(s.as_bytes());
}

fn put_node(b: &mut BytesMut, n: &NodeInfo) {
    put_str(b, &n.id);
    put_str(b, &n.host);
    b.put_u16(n.port);
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
