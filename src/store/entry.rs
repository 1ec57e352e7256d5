//! One entry as its shard stores it: a record of metadata, key and value in the shard's
//! [`Arena`](super::arena::Arena); for a big value (or a long key), the record holds the
//! metadata and points to a [`Big`] holding key and value.
//!
//! Record layout, little-endian: HLC (8), deadline (8), place (4), key length (2), value
//! length and flags (2), the version's origin as an index into the shard's table of
//! origins (2); then the origin itself (8) if the table is full, the creation time (8)
//! unless it is the version's own wall-clock time, the expiry as ms after creation (4) or,
//! when that does not fit, as it is (8), the index of the [`Big`] (4) if any, the key and
//! the value.

use bytes::Bytes;

use super::arena::Handle;
use super::NEAR;
use crate::antientropy;
use crate::clock::Version;

/// Longest value stored in its key's record. A read copies such a value out (cheaper
/// than a shared handle, which costs a header of its own for the entry's life once
/// shared); bigger values stay shared handles, never copied.
pub const PACKED_VALUE_MAX: usize = 1 << 10;
/// Longest key stored in its record; longer ones go with their value in a [`Big`].
pub(super) const PACKED_KEY_MAX: usize = 1 << 10;

const HLC: usize = 0;
const DEADLINE: usize = 8;
const PLACE: usize = 16;
const KEY_LEN: usize = 20;
const FLAGS: usize = 22;
const ORIGIN_INDEX: usize = 24;
/// Bytes before the optional fields.
const FIXED: usize = 26;

/// The value length's bits in the flags word.
const VALUE_LEN: u16 = 0x07ff;
/// The origin is stored as it is, in 8 bytes (the shard's table of origins is full).
const WIDE_ORIGIN: u16 = 1 << 11;
/// The expiry is stored as it is, in 8 bytes.
const WIDE_EXPIRY: u16 = 1 << 12;
/// Key and value are in a [`Big`].
const BIG: u16 = 1 << 13;
/// The creation time is stored (it differs from the version's wall-clock time).
const OWN_CREATED: u16 = 1 << 14;
/// The entry has left the map; its bytes are waiting for the block to be emptied.
const DEAD: u16 = 1 << 15;

const _: () = assert!(PACKED_VALUE_MAX <= VALUE_LEN as usize);

/// Key and value of an entry whose value is big (or whose key is long).
pub(super) struct Big {
    /// The record pointing here.
    pub(super) record: Handle,
    pub(super) key: Box<[u8]>,
    pub(super) value: Bytes,
}

/// An entry about to be stored.
pub(super) struct Draft<'a> {
    pub(super) key: &'a [u8],
    pub(super) value: Bytes,
    pub(super) created_ms: u64,
    pub(super) expires_ms: u64,
    pub(super) deadline: i64,
    pub(super) version: Version,
}

impl Draft<'_> {
    /// True when key and value go in a [`Big`].
    pub(super) fn is_big(&self) -> bool {
        self.value.len() > PACKED_VALUE_MAX || self.key.len() > PACKED_KEY_MAX
    }

    fn flags(&self, origin: Option<u16>) -> u16 {
        let mut flags = if self.is_big() {
            BIG
        } else {
            // Fits: at most PACKED_VALUE_MAX.
            self.value.len() as u16
        };
        if self.created_ms != self.version.wall_ms() {
            flags |= OWN_CREATED;
        }
        if self.ttl_ms().is_none() {
            flags |= WIDE_EXPIRY;
        }
        if origin.is_none() {
            flags |= WIDE_ORIGIN;
        }
        flags
    }

    fn ttl_ms(&self) -> Option<u32> {
        let ttl = self.expires_ms.checked_sub(self.created_ms)?;
        u32::try_from(ttl).ok()
    }

    /// Bytes of the record, `origin` being the index of its origin in the shard's table
    /// (`None`: stored whole).
    pub(super) fn len(&self, origin: Option<u16>) -> usize {
        let flags = self.flags(origin);
        let inline = if flags & BIG != 0 {
            0
        } else {
            self.key.len() + self.value.len()
        };
        FIXED + optional_len(flags) + inline
    }

    /// Appends the record ([`Draft::len`] bytes); `big` is the index of its [`Big`].
    pub(super) fn write(&self, out: &mut Vec<u8>, origin: Option<u16>, big: u32) {
        let flags = self.flags(origin);
        let key_len = if flags & BIG != 0 {
            0
        } else {
            self.key.len() as u16
        };
        out.extend_from_slice(&self.version.hlc.to_le_bytes());
        out.extend_from_slice(&self.deadline.to_le_bytes());
        out.extend_from_slice(&NEAR.to_le_bytes());
        out.extend_from_slice(&key_len.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&origin.unwrap_or(0).to_le_bytes());
        if origin.is_none() {
            out.extend_from_slice(&self.version.origin.to_le_bytes());
        }
        if flags & OWN_CREATED != 0 {
            out.extend_from_slice(&self.created_ms.to_le_bytes());
        }
        match self.ttl_ms() {
            Some(ttl) => out.extend_from_slice(&ttl.to_le_bytes()),
            None => out.extend_from_slice(&self.expires_ms.to_le_bytes()),
        }
        if flags & BIG != 0 {
            out.extend_from_slice(&big.to_le_bytes());
        } else {
            out.extend_from_slice(self.key);
            out.extend_from_slice(&self.value);
        }
    }
}

/// Bytes of the optional fields a record with `flags` has.
fn optional_len(flags: u16) -> usize {
    let origin = if flags & WIDE_ORIGIN != 0 { 8 } else { 0 };
    let created = if flags & OWN_CREATED != 0 { 8 } else { 0 };
    let expiry = if flags & WIDE_EXPIRY != 0 { 8 } else { 4 };
    let big = if flags & BIG != 0 { 4 } else { 0 };
    origin + created + expiry + big
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The flags word of the record starting `rec`.
fn flags_of(rec: &[u8]) -> u16 {
    u16_at(rec, FLAGS)
}

/// Bytes of the record starting `rec` (which may run on past it).
pub(super) fn record_len(rec: &[u8]) -> usize {
    let flags = flags_of(rec);
    let inline = if flags & BIG != 0 {
        0
    } else {
        usize::from(u16_at(rec, KEY_LEN)) + usize::from(flags & VALUE_LEN)
    };
    FIXED + optional_len(flags) + inline
}

/// True once the record starting `rec` has been marked dead.
pub(super) fn is_dead(rec: &[u8]) -> bool {
    flags_of(rec) & DEAD != 0
}

/// Marks the record starting `rec` dead.
pub(super) fn mark_dead(rec: &mut [u8]) {
    let flags = flags_of(rec) | DEAD;
    rec[FLAGS..FLAGS + 2].copy_from_slice(&flags.to_le_bytes());
}

/// Sets the place ([`Entry::place`]) of the record starting `rec`.
pub(super) fn set_place(rec: &mut [u8], place: u32) {
    rec[PLACE..PLACE + 4].copy_from_slice(&place.to_le_bytes());
}

/// The index of the [`Big`] of the record starting `rec`, if it has one.
pub(super) fn big_index(rec: &[u8]) -> Option<usize> {
    let flags = flags_of(rec);
    (flags & BIG != 0).then(|| u32_at(rec, FIXED + optional_len(flags) - 4) as usize)
}

/// Points the record starting `rec` (which has a [`Big`]) at index `to`.
pub(super) fn set_big_index(rec: &mut [u8], to: u32) {
    let at = FIXED + optional_len(flags_of(rec)) - 4;
    rec[at..at + 4].copy_from_slice(&to.to_le_bytes());
}

/// A stored entry, read in place.
#[derive(Clone, Copy)]
pub(super) struct Entry<'a> {
    /// From the record's first byte (may run on past its end).
    pub(super) rec: &'a [u8],
    /// Its [`Big`], if it has one.
    pub(super) big: Option<&'a Big>,
    /// The shard's table of origins.
    pub(super) origins: &'a [u64],
}

impl<'a> Entry<'a> {
    fn flags(&self) -> u16 {
        flags_of(self.rec)
    }

    /// Where the key starts in a record without a [`Big`].
    fn key_at(&self) -> usize {
        FIXED + optional_len(self.flags())
    }

    pub(super) fn version(&self) -> Version {
        let origin = if self.flags() & WIDE_ORIGIN != 0 {
            u64_at(self.rec, FIXED)
        } else {
            let i = usize::from(u16_at(self.rec, ORIGIN_INDEX));
            self.origins.get(i).copied().unwrap_or(0)
        };
        Version {
            hlc: u64_at(self.rec, HLC),
            origin,
        }
    }

    /// Bytes of the optional fields before the creation time.
    fn created_at(&self) -> usize {
        FIXED
            + if self.flags() & WIDE_ORIGIN != 0 {
                8
            } else {
                0
            }
    }

    /// `expires_at` as nanoseconds relative to [`Shared::epoch`](super::Shared).
    pub(super) fn deadline(&self) -> i64 {
        u64_at(self.rec, DEADLINE) as i64
    }

    pub(super) fn created_ms(&self) -> u64 {
        if self.flags() & OWN_CREATED != 0 {
            u64_at(self.rec, self.created_at())
        } else {
            self.version().wall_ms()
        }
    }

    pub(super) fn expires_ms(&self) -> u64 {
        let flags = self.flags();
        let at = self.created_at() + if flags & OWN_CREATED != 0 { 8 } else { 0 };
        if flags & WIDE_EXPIRY != 0 {
            u64_at(self.rec, at)
        } else {
            self.created_ms() + u64::from(u32_at(self.rec, at))
        }
    }

    /// Where the expiry index files the entry: [`NEAR`], or its position in its slot.
    pub(super) fn place(&self) -> u32 {
        u32_at(self.rec, PLACE)
    }

    /// The key's UTF-8 bytes (compared and hashed as bytes, which orders exactly like
    /// `str`).
    pub(super) fn key(&self) -> &'a [u8] {
        match self.big {
            Some(big) => &big.key,
            None => {
                let at = self.key_at();
                &self.rec[at..at + usize::from(u16_at(self.rec, KEY_LEN))]
            }
        }
    }

    /// The key as a `String` (always valid UTF-8: it was built from a `&str`).
    pub(super) fn key_string(&self) -> String {
        String::from_utf8_lossy(self.key()).into_owned()
    }

    fn value_bytes(&self) -> &'a [u8] {
        match self.big {
            Some(big) => &big.value,
            None => {
                let at = self.key_at() + usize::from(u16_at(self.rec, KEY_LEN));
                &self.rec[at..at + usize::from(self.flags() & VALUE_LEN)]
            }
        }
    }

    /// The value: a copy if packed, else a shared handle.
    pub(super) fn value(&self) -> Bytes {
        match self.big {
            Some(big) => big.value.clone(),
            None => Bytes::copy_from_slice(self.value_bytes()),
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
            antientropy::entry_hash(key, self.version()),
        )
    }
}
