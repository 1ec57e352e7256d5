//! Assembly of the view, report parsing and the page, without sockets.

use std::collections::HashMap;

use hyper::header;
use serde_json::{json, Value};

use super::page::PAGE;
use super::report::histogram_totals;
use super::*;
use crate::node::MembershipEvent;

fn report(id: &str, port: u16, peers: &[(&str, u16)]) -> NodeReport {
    NodeReport {
        node_id: id.into(),
        address: format!("0.0.0.0:{port}"),
        port,
        uptime_s: 5,
        ready: true,
        keys: 2,
        bytes: 20,
        peers: peers
            .iter()
            .map(|(p, port)| PeerView {
                node_id: (*p).into(),
                address: format!("127.0.0.1:{port}"),
                state: "alive".into(),
                skew_ms: None,
            })
            .collect(),
        ..NodeReport::default()
    }
}

fn event(kind: &'static str, peer: &str, port: u16, at_ms: u64) -> MembershipEvent {
    MembershipEvent {
        at_ms,
        kind,
        peer: peer.into(),
        address: format!("127.0.0.1:{port}"),
        replaced: None,
    }
}

#[test]
fn full_mesh_of_three_is_complete_with_links_by_index() {
    let me = report("a", 8081, &[("b", 8082), ("c", 8083)]);
    let mut fetched = HashMap::new();
    fetched.insert(
        "b".to_string(),
        Ok(report("b", 8082, &[("a", 8081), ("c", 8083)])),
    );
    fetched.insert(
        "c".to_string(),
        Ok(report("c", 8083, &[("a", 8081), ("b", 8082)])),
    );
    let v = assemble(me, fetched, HashMap::new(), &[], None, 1_000);
    assert_eq!(v["summary"]["complete"], true);
    assert_eq!(v["summary"]["states"]["alive"], 3);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["node_id"], "a");
    assert_eq!(nodes[0]["self"], true);
    // The address the others use, not the wildcard bind address.
    assert_eq!(nodes[0]["address"], "127.0.0.1:8081");
    assert_eq!(nodes[0]["sees"], json!([1, 2]));
    assert_eq!(nodes[2]["sees"], json!([0, 1]));
    assert_eq!(nodes[1]["keys"], 2);
    assert_eq!(v["summary"]["holders"], Value::Null);
}

#[test]
fn unreachable_peer_and_recently_dead_node_and_key_holders() {
    let mut me = report("a", 8081, &[("b", 8082)]);
    me.has_key = Some(true);
    let mut fetched = HashMap::new();
    fetched.insert("b".to_string(), Err("no answer in time".to_string()));
    let events = vec![
        event("joined", "c", 8083, 100),
        event("dead", "c", 8083, 900),
        event("left", "old", 8084, 1),
    ];
    let v = assemble(
        me,
        fetched,
        HashMap::new(),
        &events,
        Some("k"),
        900 + GHOST_WINDOW_MS,
    );
    let nodes = v["nodes"].as_array().unwrap();
    let ids: Vec<&str> = nodes
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    // "old" left too long ago to be shown.
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(nodes[1]["reachable"], false);
    assert_eq!(nodes[1]["error"], "no answer in time");
    assert_eq!(nodes[1]["keys"], Value::Null);
    assert_eq!(nodes[2]["state"], "dead");
    assert_eq!(nodes[2]["since_ms"], 900);
    assert_eq!(v["summary"]["complete"], false);
    assert_eq!(v["summary"]["holders"], 1);
    assert_eq!(v["key"], "k");
    // Newest event first.
    assert_eq!(v["events"][0]["peer"], "old");
    assert_eq!(v["events"][1]["kind"], "dead");
}

#[test]
fn a_node_only_others_see_is_unseen_and_a_replaced_one_is_not_a_ghost() {
    let me = report("a", 8081, &[("b", 8082)]);
    let mut fetched = HashMap::new();
    fetched.insert(
        "b".to_string(),
        Ok(report("b", 8082, &[("a", 8081), ("x", 8090)])),
    );
    let mut swap = event("replaced", "b", 8082, 10);
    swap.replaced = Some("b-old".into());
    let events = vec![event("dead", "b-old", 8082, 5), swap];
    let v = assemble(me, fetched, HashMap::new(), &events, None, 20);
    let nodes = v["nodes"].as_array().unwrap();
    let states: Vec<(&str, &str)> = nodes
        .iter()
        .map(|n| (n["node_id"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("a", "alive"), ("b", "alive"), ("x", "unseen")]);
    assert_eq!(v["summary"]["complete"], false);
}

#[test]
fn peer_answering_with_another_id_is_not_trusted() {
    let me = report("a", 8081, &[("b", 8082)]);
    let mut fetched = HashMap::new();
    fetched.insert("b".to_string(), Ok(report("zzz", 8082, &[])));
    let v = assemble(me, fetched, HashMap::new(), &[], None, 0);
    assert_eq!(v["nodes"][1]["reachable"], false);
    assert_eq!(v["nodes"][1]["error"], "answered as zzz");
}

#[test]
fn a_peer_missing_one_round_shows_its_last_answer_as_stale() {
    let me = report("a", 8081, &[("b", 8082)]);
    let mut fetched = HashMap::new();
    fetched.insert("b".to_string(), Err("no answer in time".to_string()));
    let mut old = report("b", 8082, &[("a", 8081)]);
    old.has_key = Some(true);
    let stale = HashMap::from([("b".to_string(), (1_500, old))]);
    let v = assemble(me, fetched, stale, &[], Some("k"), 0);
    let b = &v["nodes"][1];
    assert_eq!(b["reachable"], false);
    assert_eq!(b["stale_ms"], 1_500);
    assert_eq!(b["keys"], 2);
    assert_eq!(b["sees"], json!([0]));
    // Neither the key nor completeness is taken from an old answer.
    assert_eq!(b["has_key"], Value::Null);
    assert_eq!(v["summary"]["complete"], false);
}

#[test]
fn histogram_totals_reads_sum_and_count() {
    let text = "# TYPE repram_replication_batch_seconds histogram\n\
                repram_replication_batch_seconds_sum 0.25\n\
                repram_replication_batch_seconds_count 5\n\
                repram_replication_batch_seconds_bucket{le=\"0.001\"} 1\n";
    assert_eq!(
        histogram_totals(text, "repram_replication_batch_seconds"),
        (0.25, 5)
    );
    assert_eq!(histogram_totals("", "x"), (0.0, 0));
}

#[test]
fn page_has_a_fresh_nonce_in_csp_and_markup() {
    let a = page();
    let csp = a.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap()
        .to_string();
    assert_eq!(nonce.len(), 32);
    assert!(
        !PAGE.contains("innerHTML"),
        "data must never go through innerHTML"
    );
    let b = page();
    assert_ne!(
        a.headers()[header::CONTENT_SECURITY_POLICY],
        b.headers()[header::CONTENT_SECURITY_POLICY]
    );
}
