//! One entry as the map owns it: its metadata, and its key and value together in one
//! allocation unless the value is big.

use bytes::Bytes;

use super::NEAR;
use crate::antientropy;
use crate::clock::Version;

/// Longest value stored in the same allocation as its key. A read copies such a value
/// out (cheaper than a shared handle, which costs a header of its own for the entry's
/// life once shared); bigger values stay shared handles, never copied.
pub const PACKED_VALUE_MAX: usize = 1 << 10;

/// One entry, owned by the map: 56 bytes (a 64-byte glibc chunk) plus its body.
pub(super) struct Node {
    body: Body,
    pub(super) created_ms: u64,
    pub(super) expires_ms: u64,
    /// `expires_at` as nanoseconds relative to [`Shared::epoch`](super::Shared).
    pub(super) deadline: i64,
    pub(super) version: Version,
}

const _: () = assert!(std::mem::size_of::<Node>() == 56);

/// Key, value and the entry's place in the expiry index ([`Expiry`](super::Expiry)).
enum Body {
    /// `[place: u32 LE][key length: u16 LE][key][value]` in one allocation.
    Packed(Box<[u8]>),
    /// A value above [`PACKED_VALUE_MAX`] (or a key too long for the packed header).
    Shared(Box<Big>),
}

struct Big {
    place: u32,
    key: Box<[u8]>,
    value: Bytes,
}

/// Bytes before the key in [`Body::Packed`].
const HEADER: usize = 6;

impl Node {
    pub(super) fn new(
        key: &str,
        value: Bytes,
        created_ms: u64,
        expires_ms: u64,
        deadline: i64,
        version: Version,
    ) -> Node {
        let key = key.as_bytes();
        let body = match u16::try_from(key.len()) {
            Ok(len) if value.len() <= PACKED_VALUE_MAX => {
                let mut b = Vec::with_capacity(HEADER + key.len() + value.len());
                b.extend_from_slice(&NEAR.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(key);
                b.extend_from_slice(&value);
                Body::Packed(b.into_boxed_slice())
            }
            _ => Body::Shared(Box::new(Big {
                place: NEAR,
                key: key.into(),
                value,
            })),
        };
        Node {
            body,
            created_ms,
            expires_ms,
            deadline,
            version,
        }
    }

    /// Where the key ends in a packed body.
    fn key_end(b: &[u8]) -> usize {
        HEADER + usize::from(u16::from_le_bytes([b[4], b[5]]))
    }

    /// The key's UTF-8 bytes (compared and hashed as bytes, which orders exactly like
    /// `str`).
    pub(super) fn key(&self) -> &[u8] {
        match &self.body {
            Body::Packed(b) => &b[HEADER..Node::key_end(b)],
            Body::Shared(big) => &big.key,
        }
    }

    /// The key as a `String` (always valid UTF-8: it was built from a `&str`).
    pub(super) fn key_string(&self) -> String {
        String::from_utf8_lossy(self.key()).into_owned()
    }

    fn value_bytes(&self) -> &[u8] {
        match &self.body {
            Body::Packed(b) => &b[Node::key_end(b)..],
            Body::Shared(big) => &big.value,
        }
    }

    /// The value: a copy if packed, else a shared handle.
    pub(super) fn value(&self) -> Bytes {
        match &self.body {
            Body::Packed(_) => Bytes::copy_from_slice(self.value_bytes()),
            Body::Shared(big) => big.value.clone(),
        }
    }

    /// Where the expiry index files the entry: [`NEAR`], or its position in its slot.
    pub(super) fn place(&self) -> u32 {
        match &self.body {
            Body::Packed(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Body::Shared(big) => big.place,
        }
    }

    pub(super) fn set_place(&mut self, to: u32) {
        match &mut self.body {
            Body::Packed(b) => b[..4].copy_from_slice(&to.to_le_bytes()),
            Body::Shared(big) => big.place = to,
        }
    }

    /// Bytes charged against the budget ([`Record::cost`](super::Record::cost)).
    pub(super) fn cost(&self) -> u64 {
        self.key().len() as u64 + self.value_bytes().len() as u64
    }

    /// (bucket, hash) of this entry in the anti-entropy digest.
    pub(super) fn digest_part(&self) -> (usize, u64) {
        let key = self.key();
        (
            antientropy::bucket_of(key),
            antientropy::entry_hash(key, self.version),
        )
    }
}
