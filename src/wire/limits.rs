//! The limits both sides of the wire keep.

/// Longest node id or host accepted on the wire.
pub const MAX_NAME: usize = 255;
/// Longest key accepted on the wire (the API allows 250 bytes).
pub const MAX_KEY: usize = 250;

/// Most value bytes in one replication batch (a single larger value still goes alone);
/// the receiver reads a batch body up to this plus one value.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// Most items in a digest or version list.
pub const MAX_ITEMS: usize = 1 << 22;
/// Most keys in one fetch: senders ask in chunks of this size, and a receiver answers
/// no more. Each key takes only two bytes on the wire but 24 in memory, so a longer list
/// would let a small message claim a lot of memory.
pub const MAX_FETCH: usize = crate::antientropy::FETCH_CHUNK;
/// Most node ids in a `Holders` answer (a relay lists no more). Like a fetch list, an id
/// may take two bytes on the wire but 24 in memory, hence the same small bound.
pub const MAX_HOLDERS: usize = MAX_FETCH;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 250;
