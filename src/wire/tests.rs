use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::clock::Version;

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
