//! Node-to-node wire format (the bodies of `/internal/` requests and replies).
//!
//! Every message starts with the magic `RF`, a protocol version byte and a kind byte;
//! integers are big-endian, strings and byte strings are length-prefixed. Decoding never
//! panics and rejects unknown versions, unknown kinds, truncated input, trailing bytes,
//! invalid UTF-8, and host fields with characters no address has.
//!
//! A file per job: the message kinds ([`message`]), [`encode`], [`decode`] and its
//! [`error`], the [`limits`] both sides keep, and the check of a key ([`key`]).

mod decode;
mod encode;
mod error;
mod key;
mod limits;
mod message;
#[cfg(test)]
mod tests;

pub use encode::{encode_relay, encode_replicate};
pub use error::WireError;
pub use key::check_key;
pub use limits::{
    MAX_BATCH_BYTES, MAX_FETCH, MAX_HOLDERS, MAX_ITEMS, MAX_KEY, MAX_KEY_BYTES, MAX_NAME,
};
pub use message::{Entry, Gossip, MemberState, Message, NodeInfo, Update};

/// First two bytes of every message.
pub const MAGIC: [u8; 2] = *b"RF";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;

const KIND_GOSSIP: u8 = 1;
const KIND_REPLICATE: u8 = 2;
const KIND_ACK: u8 = 3;
const KIND_DIGEST: u8 = 4;
const KIND_VERSIONS: u8 = 5;
const KIND_FETCH: u8 = 6;
const KIND_RELAY: u8 = 7;
const KIND_HOLDERS: u8 = 8;
