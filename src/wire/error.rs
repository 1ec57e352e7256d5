//! Why a message could not be decoded.

use super::VERSION;

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
