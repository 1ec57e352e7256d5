//! The `/cluster` JSON assembled from the reports of one round. Pure.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Value};

use super::report::NodeReport;
use super::{EVENTS_SHOWN, GHOST_WINDOW_MS};
use crate::http::validate::truncate;
use crate::membership::split_addr;
use crate::node::MembershipEvent;

/// One node on the picture.
struct Row {
    node_id: String,
    address: String,
    port: u16,
    state: String,
    is_self: bool,
    report: Option<NodeReport>,
    /// False when `report` is an older answer (or absent).
    fresh: bool,
    /// Age of a stale `report`, milliseconds.
    stale_ms: Option<u64>,
    error: Option<String>,
    /// When this node saw it die or leave (wall-clock ms).
    since_ms: Option<u64>,
}

/// Build the `/cluster` JSON from this node's report, its peers' reports of this round
/// (by peer id), older reports of peers that missed this round (age in ms, report), and
/// its membership events. Pure, so it is tested without sockets.
pub fn assemble(
    me: NodeReport,
    mut fetched: HashMap<String, Result<NodeReport, String>>,
    mut stale: HashMap<String, (u64, NodeReport)>,
    events: &[MembershipEvent],
    key: Option<&str>,
    now_ms: u64,
) -> Value {
    let self_id = me.node_id.clone();
    // Clock skew of each node as this node measured it.
    let skews: HashMap<String, i64> = me
        .peers
        .iter()
        .filter_map(|p| Some((p.node_id.clone(), p.skew_ms?)))
        .collect();
    // How the others reach this node is a better address than a wildcard bind address.
    let self_address = fetched
        .values()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|r| r.peers.iter())
        .find(|p| p.node_id == self_id)
        .map(|p| p.address.clone())
        .unwrap_or_else(|| me.address.clone());
    let mut rows = vec![Row {
        node_id: self_id.clone(),
        address: self_address,
        port: me.port,
        state: if me.stopping { "leaving" } else { "alive" }.to_string(),
        is_self: true,
        report: None,
        fresh: true,
        stale_ms: None,
        error: None,
        since_ms: None,
    }];
    for p in &me.peers {
        let (report, error) = match fetched.remove(&p.node_id) {
            Some(Ok(r)) if r.node_id == p.node_id => (Some(r), None),
            Some(Ok(r)) => (
                None,
                Some(format!("answered as {}", truncate(&r.node_id, 80))),
            ),
            Some(Err(e)) => (None, Some(e)),
            None => (None, Some("no answer in time".to_string())),
        };
        let fresh = report.is_some();
        let (report, stale_ms) = match report {
            Some(r) => (Some(r), None),
            None => match stale.remove(&p.node_id) {
                // An old answer says nothing about the key asked about now.
                Some((age, r)) => (Some(NodeReport { has_key: None, ..r }), Some(age)),
                None => (None, None),
            },
        };
        rows.push(Row {
            node_id: p.node_id.clone(),
            address: p.address.clone(),
            port: split_addr(&p.address).map(|(_, port)| port).unwrap_or(0),
            state: match &report {
                Some(r) if r.stopping => "leaving".to_string(),
                _ => p.state.clone(),
            },
            is_self: false,
            report,
            fresh,
            stale_ms,
            error,
            since_ms: None,
        });
    }
    rows[0].report = Some(me);

    // Nodes this node saw die or leave recently, unless a live node took their address.
    let mut last_event: BTreeMap<&str, &MembershipEvent> = BTreeMap::new();
    for e in events {
        last_event.insert(&e.peer, e);
    }
    let mut replaced: HashSet<&str> = HashSet::new();
    for e in events {
        if let Some(old) = &e.replaced {
            replaced.insert(old);
        }
    }
    let known: HashSet<String> = rows.iter().map(|r| r.node_id.clone()).collect();
    let live_addresses: HashSet<String> = rows.iter().map(|r| r.address.clone()).collect();
    for (id, e) in &last_event {
        let gone = matches!(e.kind, "dead" | "left");
        let recent = now_ms.saturating_sub(e.at_ms) <= GHOST_WINDOW_MS;
        if gone
            && recent
            && !known.contains(*id)
            && !replaced.contains(id)
            && !live_addresses.contains(&e.address)
        {
            rows.push(Row {
                node_id: e.peer.clone(),
                address: e.address.clone(),
                port: split_addr(&e.address).map(|(_, p)| p).unwrap_or(0),
                state: e.kind.to_string(),
                is_self: false,
                report: None,
                fresh: false,
                stale_ms: None,
                error: None,
                since_ms: Some(e.at_ms),
            });
        }
    }

    // Nodes other nodes see (by their answers of this round) but this one does not.
    let mut unseen: BTreeMap<String, String> = BTreeMap::new();
    let known: HashSet<String> = rows.iter().map(|r| r.node_id.clone()).collect();
    for r in rows
        .iter()
        .filter(|r| r.fresh)
        .filter_map(|r| r.report.as_ref())
    {
        for p in &r.peers {
            if !known.contains(&p.node_id) {
                unseen
                    .entry(p.node_id.clone())
                    .or_insert_with(|| p.address.clone());
            }
        }
    }
    for (id, address) in unseen {
        rows.push(Row {
            port: split_addr(&address).map(|(_, p)| p).unwrap_or(0),
            node_id: id,
            address,
            state: "unseen".to_string(),
            is_self: false,
            report: None,
            fresh: false,
            stale_ms: None,
            error: Some("other nodes see it, this node does not".to_string()),
            since_ms: None,
        });
    }

    rows.sort_by(|a, b| {
        let host = |r: &Row| {
            split_addr(&r.address)
                .map(|(h, _)| h.to_string())
                .unwrap_or_default()
        };
        (a.port, host(a), &a.node_id).cmp(&(b.port, host(b), &b.node_id))
    });
    let index: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.node_id.as_str(), i))
        .collect();
    let sees: Vec<Option<Vec<usize>>> = rows
        .iter()
        .map(|r| {
            r.report.as_ref().map(|rep| {
                let mut v: Vec<usize> = rep
                    .peers
                    .iter()
                    .filter_map(|p| index.get(p.node_id.as_str()).copied())
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            })
        })
        .collect();

    // Complete: every live node answered this round and sees every other live node.
    let live: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.state.as_str(), "alive" | "suspect" | "unseen"))
        .map(|(i, _)| i)
        .collect();
    let complete = live.iter().all(|&i| {
        rows[i].state == "alive"
            && rows[i].fresh
            && sees[i]
                .as_ref()
                .is_some_and(|s| live.iter().all(|&j| j == i || s.binary_search(&j).is_ok()))
    });
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *states.entry(r.state.as_str()).or_default() += 1;
    }
    let holders = rows
        .iter()
        .filter(|r| r.report.as_ref().and_then(|x| x.has_key) == Some(true))
        .count();

    let nodes: Vec<Value> = rows
        .iter()
        .zip(&sees)
        .map(|(r, sees)| {
            let rep = r.report.as_ref();
            let skew = skews.get(r.node_id.as_str()).copied();
            json!({
                "node_id": r.node_id,
                "address": r.address,
                "port": r.port,
                "state": r.state,
                "self": r.is_self,
                "reachable": r.fresh,
                "stale_ms": r.stale_ms,
                "error": r.error,
                "since_ms": r.since_ms,
                "uptime_s": rep.map(|x| x.uptime_s),
                "ready": rep.map(|x| x.ready),
                "keys": rep.map(|x| x.keys),
                "bytes": rep.map(|x| x.bytes),
                "max_bytes": rep.map(|x| x.max_bytes),
                "version": rep.map(|x| x.version.clone()),
                "counters": rep.map(|x| x.counters.clone()),
                "has_key": rep.and_then(|x| x.has_key),
                "peer_count": rep.map(|x| x.peers.len()),
                "sees": sees,
                "skew_ms": skew,
                "skew_beyond_max": skew.is_some_and(|ms| ms.unsigned_abs() > crate::clock::MAX_SKEW_MS),
            })
        })
        .collect();
    let events: Vec<&MembershipEvent> = events.iter().rev().take(EVENTS_SHOWN).collect();
    json!({
        "node_id": self_id,
        "generated_ms": now_ms,
        "key": key,
        "summary": {
            "nodes": rows.len(),
            "states": states,
            "complete": complete,
            "holders": key.map(|_| holders),
        },
        "nodes": nodes,
        "events": events,
    })
}
