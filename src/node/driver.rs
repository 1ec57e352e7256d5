//! The membership driver: probes, gossip, discovery rounds and their effects on
//! replication and the event history.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::clock::MAX_SKEW_MS;
use crate::membership::{fmt_addr, Event, IndirectProbe, Probe, ProbeOutcome};
use crate::metrics::PeerLabels;
use crate::skew::PeerSkew;
use crate::transport::{CallError, GOSSIP_PATH};
use crate::wire::{Message, NodeInfo};

use super::Node;

impl Node {
    /// Handle gossip received over HTTP and return our answer. A relay request (indirect
    /// probe) is carried out before answering.
    ///
    /// Signed gossip that does not name this node by id (a discovery probe to an address,
    /// or one meant for the node that was here before) is only answered, so a captured
    /// message replayed here changes nothing: the answer says who is here.
    pub async fn on_gossip(
        self: &Arc<Self>,
        msg: crate::wire::Gossip,
        source: IpAddr,
        addressed: bool,
    ) -> Message {
        if !addressed {
            let mut reply = {
                let mut m = self.membership();
                if self.is_stopping() {
                    m.leave_message()
                } else {
                    m.message(msg.full, None)
                }
            };
            reply.observed = source.to_string();
            return Message::Gossip(reply);
        }
        let relay_ok = if msg.relay.is_empty() {
            false
        } else {
            self.relay_probe(&msg.relay).await
        };
        let (events, mut reply) = {
            let mut m = self.membership();
            let events = m.on_gossip(&msg, Some(source), Instant::now());
            let reply = if self.is_stopping() {
                m.leave_message()
            } else {
                m.message(msg.full, Some(&msg.from.id))
            };
            (events, reply)
        };
        self.handle_events(events);
        // Its claims may have made a probe due at once (see Membership::on_gossip).
        self.membership_changed.notify_one();
        reply.observed = source.to_string();
        reply.relay_ok = relay_ok;
        Message::Gossip(reply)
    }

    /// Probe `addr` for another node (an indirect probe): true if anything answered.
    pub(super) async fn relay_probe(&self, addr: &str) -> bool {
        let (msg, timeout) = {
            let mut m = self.membership();
            let timeout = self.tuning.membership.probe_timeout * (1 + m.health());
            (Message::Gossip(m.message(false, None)), timeout)
        };
        matches!(
            self.client
                .call(addr, None, GOSSIP_PATH, &msg, timeout)
                .await,
            Ok(Message::Gossip(_))
        )
    }

    /// Act on membership changes: logs, metrics, replication links, catch-up.
    pub fn handle_events(self: &Arc<Self>, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut changed = false;
        for event in events {
            self.remember(&event);
            match event {
                Event::Joined(p) => self.peer_up(p),
                Event::Left(p) => {
                    info!(node = %self.id, port = self.port, event = "left", peer = %p.id, addr = %fmt_addr(&p.host, p.port), "peer left");
                    self.metrics.peer_leaves.inc();
                    self.peer_gone(&p.id);
                }
                Event::Dead(p) => {
                    warn!(node = %self.id, port = self.port, event = "dead", peer = %p.id, addr = %fmt_addr(&p.host, p.port), "peer declared dead");
                    self.metrics.peer_deaths.inc();
                    self.peer_gone(&p.id);
                    self.catch_up_peer_lost(&p.id);
                }
                Event::Replaced { old, new } => {
                    info!(node = %self.id, port = self.port, event = "replaced", peer = %new.id, old = %old.id, addr = %fmt_addr(&new.host, new.port), "peer restarted with a new id");
                    self.metrics.peer_deaths.inc();
                    self.peer_gone(&old.id);
                    self.peer_up(new);
                }
                Event::Suspected(p) => {
                    info!(node = %self.id, port = self.port, event = "suspected", peer = %p.id, addr = %fmt_addr(&p.host, p.port), "peer suspected");
                    self.metrics.peer_suspicions.inc();
                    // Not counted for quorum (nor sent writes) until it answers again:
                    // a member that never answers must not cost every write its quorum.
                    self.replicator.remove_peer(&p.id);
                    continue;
                }
                Event::Recovered(p) => {
                    info!(node = %self.id, port = self.port, event = "recovered", peer = %p.id, addr = %fmt_addr(&p.host, p.port), "suspected peer is alive");
                    let addr = self.membership().peer(&p.id).map(|m| m.addr());
                    self.replicator
                        .add_peer(&p.id, addr.unwrap_or_else(|| fmt_addr(&p.host, p.port)));
                    continue;
                }
            }
            changed = true;
        }
        if !changed {
            self.membership_changed.notify_one();
            return;
        }
        let size = self.membership().len() + 1;
        self.metrics.peers.set(size as i64 - 1);
        info!(node = %self.id, port = self.port, mesh_size = size, "mesh size changed");
        self.membership_changed.notify_one();
    }

    /// A peer left or died: no more writes to it, and its skew is forgotten.
    pub(super) fn peer_gone(&self, id: &str) {
        self.replicator.remove_peer(id);
        self.skew.remove(id);
        self.metrics.peer_clock_skew_ms.remove(&PeerLabels {
            peer: id.to_string(),
        });
    }

    /// Note the clock of the member `peer` at `addr`, read from the answer to a probe sent
    /// at `sent_ms` and received at `received_ms` (our clock); warn when it splits the
    /// cluster.
    pub(super) fn note_clock(
        &self,
        peer: &str,
        addr: &str,
        sent_ms: u64,
        received_ms: u64,
        peer_ms: u64,
    ) {
        let (skew_ms, error_ms) = crate::skew::measure(sent_ms, received_ms, peer_ms);
        self.metrics
            .peer_clock_skew_ms
            .get_or_create(&PeerLabels {
                peer: peer.to_string(),
            })
            .set(skew_ms);
        let measured = PeerSkew {
            skew_ms,
            error_ms,
            at: Instant::now(),
        };
        if self.skew.record(peer, measured) {
            let side = if skew_ms > 0 { "ahead of" } else { "behind" };
            warn!(node = %self.id, port = self.port, peer = %peer, addr = %addr, skew_ms, max_skew_ms = MAX_SKEW_MS,
                "CLOCK SKEW: peer's clock is {}s {side} this node's, beyond the {}s tolerated: its writes or ours are refused (and with a cluster secret, signatures fail), so the cluster is split; fix the clocks (NTP)",
                skew_ms.unsigned_abs() / 1000, MAX_SKEW_MS / 1000);
        }
    }

    pub(super) fn peer_up(self: &Arc<Self>, p: NodeInfo) {
        // Where we reach it: for a node on our own host, the local address rather than the
        // public one it advertises (and that events carry).
        let reach = self.membership().peer(&p.id).map(|m| m.addr());
        let addr = reach.unwrap_or_else(|| fmt_addr(&p.host, p.port));
        info!(node = %self.id, port = self.port, event = "joined", peer = %p.id, addr = %addr, "peer joined");
        self.metrics.peer_joins.inc();
        self.replicator.add_peer(&p.id, addr);
        self.catch_up_peer_joined(&p.id);
    }

    /// Send one probe and feed the outcome back into membership.
    pub(super) async fn probe(self: Arc<Self>, probe: Probe) {
        let msg = Message::Gossip(
            self.membership()
                .message(probe.full, probe.member.as_deref()),
        );
        let sent_ms = self.wall_ms();
        let (result, peer_clock) = self
            .client
            .call_clocked(
                &probe.addr,
                probe.member.as_deref(),
                GOSSIP_PATH,
                msg.encode(),
                probe.timeout,
            )
            .await;
        if let Some(peer_ms) = peer_clock {
            let received_ms = self.wall_ms();
            match (&result, &probe.member) {
                // Measured on direct answers only: the answering id at the address we chose.
                (Ok(Message::Gossip(g)), _) => {
                    self.note_clock(&g.from.id, &probe.addr, sent_ms, received_ms, peer_ms)
                }
                // A refusal (a signature outside the window?) still tells its clock.
                (Err(CallError::Status(status)), Some(member)) => {
                    let (skew_ms, _) = crate::skew::measure(sent_ms, received_ms, peer_ms);
                    if skew_ms.unsigned_abs() > MAX_SKEW_MS
                        && self.skew.warn_due(member, Instant::now())
                    {
                        warn!(node = %self.id, port = self.port, peer = %member, addr = %probe.addr, status = status.as_u16(), skew_ms,
                            "CLOCK SKEW: peer refused our probe and its clock is beyond the tolerated skew: signatures fail and the cluster is split; fix the clocks (NTP)");
                    }
                }
                _ => {}
            }
        }
        if let (Err(CallError::Status(status)), None) = (&result, &probe.member) {
            if matches!(*status, StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED) {
                self.catch_up_turned_away(&probe.addr);
            }
        }
        let outcome = match result {
            Ok(Message::Gossip(reply)) => ProbeOutcome::Reply(reply),
            Err(CallError::Refused) => ProbeOutcome::Refused,
            other => {
                if probe.member.is_some() {
                    let why = match other {
                        Ok(m) => format!("unexpected reply {m:?}"),
                        Err(e) => e.to_string(),
                    };
                    debug!(node = %self.id, port = self.port, addr = %probe.addr, error = %why, "probe failed");
                }
                ProbeOutcome::Failed
            }
        };
        if !matches!(outcome, ProbeOutcome::Reply(_)) {
            // Empty ports of the range miss forever: kept apart from members' failures.
            match probe.member {
                Some(_) => self.metrics.probe_failures.inc(),
                None => self.metrics.discovery_misses.inc(),
            };
        }
        let (events, indirect) = self
            .membership()
            .probe_result(&probe, outcome, Instant::now());
        self.handle_events(events);
        // A discovery slot may have freed up.
        self.membership_changed.notify_one();
        if let Some(plan) = indirect {
            self.indirect_probe(plan).await;
        }
    }

    /// Ask other members to probe a member that missed its direct probe.
    pub(super) async fn indirect_probe(self: &Arc<Self>, plan: IndirectProbe) {
        let msg = {
            let mut g = self.membership().message(false, None);
            g.relay = plan.target_addr.clone();
            Message::Gossip(g)
        };
        // Signed requests name their receiver: the helpers are members, ids known.
        let helpers: Vec<(String, Option<String>)> = {
            let m = self.membership();
            plan.helpers
                .iter()
                .map(|addr| {
                    let id = m
                        .peers()
                        .find(|p| p.addr() == *addr)
                        .map(|p| p.info.id.clone());
                    (addr.clone(), id)
                })
                .collect()
        };
        let asks = helpers.iter().map(|(helper, id)| {
            let msg = &msg;
            async move {
                matches!(
                    self.client.call(helper, id.as_deref(), GOSSIP_PATH, msg, plan.timeout).await,
                    Ok(Message::Gossip(g)) if g.relay_ok
                )
            }
        });
        let reached = futures::future::join_all(asks)
            .await
            .into_iter()
            .any(|ok| ok);
        let events = self
            .membership()
            .indirect_result(&plan.member, reached, Instant::now());
        self.handle_events(events);
    }

    /// Add every discovery address to the membership targets.
    pub(super) async fn refresh_targets(&self) {
        let addrs =
            crate::discovery::targets(&self.config, self.port, &self.hosts, &self.locations).await;
        let now = Instant::now();
        let mut m = self.membership();
        for a in addrs {
            m.add_target(a, now);
        }
    }

    /// Run membership until shutdown: the first discovery round (then ready), then probes
    /// whenever one is due.
    pub(super) async fn drive_membership(self: Arc<Self>) {
        let mut shutdown = self.shutdown.clone();
        self.refresh_targets().await;

        let mut next_resolve = Instant::now() + self.tuning.resolve_interval;
        loop {
            let now = Instant::now();
            if now >= next_resolve {
                self.refresh_targets().await;
                next_resolve = now + self.tuning.resolve_interval;
            }
            let (probes, events) = self.membership().tick(now);
            self.handle_events(events);
            if !self.is_ready() && self.membership().first_scan_done() {
                self.ready.store(true, Ordering::Release);
                info!(node = %self.id, port = self.port, peers = self.membership().len(), "first discovery round done");
            }
            for p in probes {
                tokio::spawn(self.clone().probe(p));
            }
            let wake = self
                .membership()
                .next_deadline()
                .unwrap_or(next_resolve)
                .min(next_resolve)
                .max(now + Duration::from_millis(5));
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.membership_changed.notified() => {}
                // A refused stranger may be a cluster host with a new address.
                _ = self.knock.notified() => next_resolve = Instant::now(),
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Tell every live peer this node is leaving (best effort, bounded time).
    pub(super) async fn announce_leave(&self) {
        let (msg, addrs) = {
            let m = self.membership();
            (
                Message::Gossip(m.leave_message()),
                m.peers()
                    .map(|p| (p.addr(), p.info.id.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        let calls = addrs.iter().map(|(a, id)| {
            self.client
                .call(a, Some(id), GOSSIP_PATH, &msg, Duration::from_millis(500))
        });
        futures::future::join_all(calls).await;
        self.replicator.clear();
    }
}
