//! Strategies shared by the fuzzing property tests: wire messages, damage to their
//! encodings, and percent-encoding soup.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;
use repram_flux::clock::Version;
use repram_flux::wire::{Entry, Gossip, MemberState, Message, NodeInfo, Update, MAX_KEY, MAX_NAME};

/// `s` cut to at most `max` bytes at a character boundary.
pub fn fit(mut s: String, max: usize) -> String {
    while s.len() > max {
        s.pop();
    }
    s
}

/// Text of up to `max` bytes: short Unicode, or long ASCII near the limit.
pub fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>().prop_map(move |s| fit(s, max)),
        1 => "[a-z0-9.:-]{0,16}",
        1 => proptest::collection::vec(any::<u8>(), 0..=max)
            .prop_map(move |v| fit(v.iter().map(|b| char::from(b'a' + b % 26)).collect(), max)),
    ]
}

pub fn version() -> impl Strategy<Value = Version> {
    (any::<u64>(), any::<u64>()).prop_map(|(hlc, origin)| Version { hlc, origin })
}

/// Host fields as the wire format accepts them: empty, names, IP addresses, `host:port`.
pub fn host_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        any::<std::net::IpAddr>().prop_map(|ip| ip.to_string()),
        (any::<std::net::IpAddr>(), any::<u16>())
            .prop_map(|(ip, port)| std::net::SocketAddr::new(ip, port).to_string()),
        "[a-zA-Z0-9._:\\[\\]-]{1,24}",
        "[a-z]{250,255}",
    ]
}

pub fn node_info() -> impl Strategy<Value = NodeInfo> {
    (text(MAX_NAME), host_text(), any::<u16>()).prop_map(|(id, host, port)| NodeInfo {
        id,
        host,
        port,
    })
}

pub fn member_state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Alive),
        Just(MemberState::Suspect),
        Just(MemberState::Dead),
        Just(MemberState::Left),
    ]
}

pub fn update() -> impl Strategy<Value = Update> {
    update_of(node_info().boxed())
}

/// An update about a node drawn from `node`.
pub fn update_of(node: BoxedStrategy<NodeInfo>) -> impl Strategy<Value = Update> {
    (node, any::<u64>(), member_state()).prop_map(|(node, incarnation, state)| Update {
        node,
        incarnation,
        state,
    })
}

pub fn gossip() -> impl Strategy<Value = Gossip> {
    gossip_of(node_info().boxed(), host_text().boxed())
}

/// Gossip whose sender and news are drawn from `node` and relay address from `relay`.
pub fn gossip_of(
    node: BoxedStrategy<NodeInfo>,
    relay: BoxedStrategy<String>,
) -> impl Strategy<Value = Gossip> {
    (
        node.clone(),
        any::<u64>(),
        any::<[bool; 3]>(),
        host_text(),
        relay,
        proptest::collection::vec(update_of(node), 0..5),
    )
        .prop_map(
            |(from, incarnation, [leaving, full, relay_ok], observed, relay, updates)| Gossip {
                from,
                incarnation,
                leaving,
                full,
                observed,
                relay,
                relay_ok,
                updates,
            },
        )
}

pub fn entry() -> impl Strategy<Value = Entry> {
    (
        text(MAX_KEY),
        proptest::collection::vec(any::<u8>(), 0..48),
        any::<u64>(),
        any::<u64>(),
        version(),
    )
        .prop_map(|(key, value, created_ms, expires_ms, version)| Entry {
            key,
            value: value.into(),
            created_ms,
            expires_ms,
            version,
        })
}

pub fn message() -> impl Strategy<Value = Message> {
    use proptest::collection::vec;
    prop_oneof![
        gossip().prop_map(Message::Gossip),
        vec(entry(), 0..5).prop_map(Message::Replicate),
        any::<u32>().prop_map(Message::Ack),
        vec(any::<u64>(), 0..24).prop_map(Message::Digest),
        vec((text(MAX_KEY), version()), 0..6).prop_map(Message::Versions),
        vec(text(MAX_KEY), 0..6).prop_map(Message::Fetch),
        vec(entry(), 0..5).prop_map(Message::Relay),
        vec(text(MAX_NAME), 0..6).prop_map(Message::Holders),
    ]
}

/// One way of damaging an encoding.
#[derive(Clone, Debug)]
pub enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    /// Overwrite 2 bytes (a string length) with a big-endian value.
    Set16(Index, u16),
    /// Overwrite 4 bytes (a count or value length) with a big-endian value.
    Set32(Index, u32),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let big16 = prop_oneof![
        Just(u16::MAX),
        Just(0x8000),
        Just(256),
        Just(251),
        any::<u16>()
    ];
    let big32 = prop_oneof![
        Just(u32::MAX),
        Just(0x8000_0000),
        Just((1 << 22) + 1),
        Just(1 << 22),
        Just(1_000_000),
        any::<u32>()
    ];
    prop_oneof![
        any::<(Index, u8)>().prop_map(|(i, b)| Mutation::FlipBit(i, b % 8)),
        any::<(Index, u8)>().prop_map(|(i, b)| Mutation::SetByte(i, b)),
        (any::<Index>(), big16).prop_map(|(i, v)| Mutation::Set16(i, v)),
        (any::<Index>(), big32).prop_map(|(i, v)| Mutation::Set32(i, v)),
        (
            any::<Index>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

pub fn mutate(raw: &mut Vec<u8>, m: &Mutation) {
    let len = raw.len();
    let at = |i: &Index| i.index(len.max(1)).min(len.saturating_sub(1));
    let overwrite = |raw: &mut Vec<u8>, i: &Index, bytes: &[u8]| {
        if raw.len() >= bytes.len() {
            let start = i.index(raw.len() - bytes.len() + 1);
            raw[start..start + bytes.len()].copy_from_slice(bytes);
        }
    };
    match m {
        Mutation::FlipBit(i, bit) if len > 0 => raw[at(i)] ^= 1 << bit,
        Mutation::SetByte(i, b) if len > 0 => raw[at(i)] = *b,
        Mutation::Set16(i, v) => overwrite(raw, i, &v.to_be_bytes()),
        Mutation::Set32(i, v) => overwrite(raw, i, &v.to_be_bytes()),
        Mutation::Insert(i, bytes) => {
            let pos = i.index(len + 1);
            raw.splice(pos..pos, bytes.iter().copied());
        }
        Mutation::Remove(i, n) if len > 0 => {
            let pos = at(i);
            raw.drain(pos..(pos + n).min(len));
        }
        _ => {}
    }
}

/// Percent-encoding building blocks, valid and broken.
pub fn percent_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("%".to_string()),
        Just("%2".to_string()),
        Just("%2F".to_string()),
        Just("%2f".to_string()),
        Just("%zz".to_string()),
        Just("%00".to_string()),
        Just("%0A".to_string()),
        Just("%7F".to_string()),
        Just("%C3".to_string()),
        Just("%A9".to_string()),
        Just("%C3%A9".to_string()),
        Just("%E2%80%AE".to_string()),
        Just("%F0%9F%98%80".to_string()),
        Just("%FF".to_string()),
        Just("%C2%85".to_string()),
        Just("+".to_string()),
        Just("/".to_string()),
        Just("&".to_string()),
        Just("=".to_string()),
        "[a-zA-Z0-9._~-]{1,8}",
        any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|v| v.concat())
}
