//! One entry as the map owns it, with its key stored inline when short.

use bytes::Bytes;

use super::NEAR;
use crate::antientropy;
use crate::clock::Version;

/// One entry, owned by the map: a single 104-byte allocation (a 112-byte glibc chunk)
/// for keys of up to [`INLINE_KEY`] bytes.
pub(super) struct Node {
    pub(super) key: Key,
    pub(super) value: Bytes,
    pub(super) created_ms: u64,
    pub(super) expires_ms: u64,
    /// `expires_at` as nanoseconds relative to [`Shared::epoch`].
    pub(super) deadline: i64,
    pub(super) version: Version,
}

impl Node {
    pub(super) fn cost(&self) -> u64 {
        self.key.as_bytes().len() as u64 + self.value.len() as u64
    }

    /// (bucket, hash) of this entry in the anti-entropy digest.
    pub(super) fn digest_part(&self) -> (usize, u64) {
        let key = self.key.as_bytes();
        (
            antientropy::bucket_of(key),
            antientropy::entry_hash(key, self.version),
        )
    }
}

/// Longest key stored inside its [`Node`] rather than in an allocation of its own.
pub(super) const INLINE_KEY: usize = 26;

/// A key's UTF-8 bytes, inline when short, compared and hashed as bytes (which orders
/// exactly like `str`). It also carries the entry's place in the expiry index
/// ([`Expiry`]): the 4 bytes fit in what the enum would otherwise leave as padding.
pub(super) enum Key {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY],
        place: u32,
    },
    Heap {
        bytes: Box<[u8]>,
        place: u32,
    },
}

impl Key {
    pub(super) fn new(key: &str) -> Key {
        let bytes = key.as_bytes();
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE_KEY => {
                let mut buf = [0; INLINE_KEY];
                buf[..bytes.len()].copy_from_slice(bytes);
                Key::Inline {
                    len,
                    bytes: buf,
                    place: NEAR,
                }
            }
            _ => Key::Heap {
                bytes: bytes.into(),
                place: NEAR,
            },
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes, .. } => &bytes[..usize::from(*len)],
            Key::Heap { bytes, .. } => bytes,
        }
    }

    /// The key as a `String` (always valid UTF-8: it was built from a `&str`).
    pub(super) fn string(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }

    /// Where the expiry index files the entry: [`NEAR`], or its position in its slot.
    pub(super) fn place(&self) -> u32 {
        match self {
            Key::Inline { place, .. } | Key::Heap { place, .. } => *place,
        }
    }

    pub(super) fn set_place(&mut self, to: u32) {
        match self {
            Key::Inline { place, .. } | Key::Heap { place, .. } => *place = to,
        }
    }
}
