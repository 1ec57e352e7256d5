//! Incoming gossip: direct contact, news about others, and claims to verify.

use std::net::IpAddr;

use tokio::time::Instant;

use super::{
    fmt_addr, split_addr, Event, Member, Membership, Status, MAX_MEMBERS, MAX_NEW_PER_MESSAGE,
};
use crate::wire::{Gossip, MemberState, NodeInfo, Update};

/// `local_host` when `advertised` is our own host `me_host` (a node on this host).
pub(super) fn reach_host(me_host: &str, local_host: &str, advertised: &str) -> Option<String> {
    (!me_host.is_empty() && advertised == me_host && advertised != local_host)
        .then(|| local_host.to_string())
}

impl Membership {
    /// Probe member `id` at the next tick (a claim only its answer can prove).
    pub(super) fn verify(&mut self, id: &str, now: Instant) {
        if self.members.get(id).is_some_and(Member::is_live) {
            self.verify_soon.entry(id.to_string()).or_insert(now);
        }
    }

    /// Gossip arrived from another node; `source` is the IP it came from. The caller
    /// answers with [`Membership::message`] (full when the request was full).
    ///
    /// Nothing in it is proof (anybody may have sent it): an unknown sender becomes a
    /// candidate, probed at once; a known member's claims (leaving, a new incarnation, a
    /// new id at its address) make it probed at once; news of others is weighed by
    /// `apply_updates`. At most [`MAX_NEW_PER_MESSAGE`] unknown addresses
    /// are taken from one message.
    pub fn on_gossip(&mut self, msg: &Gossip, source: Option<IpAddr>, now: Instant) -> Vec<Event> {
        if msg.from.id == self.me.id {
            return Vec::new();
        }
        let mut budget = MAX_NEW_PER_MESSAGE;
        if msg.full {
            // It gets our full list in the answer: no need to send it again.
            if self.sent_full.len() >= MAX_MEMBERS {
                self.sent_full.clear();
            }
            self.sent_full.insert(msg.from.id.clone());
            self.full_soon.retain(|(id, _)| *id != msg.from.id);
        }
        // Reach the sender at the address it advertises (locally when that is our own
        // host: its public address may not be reachable from its own host), or else at
        // the address the message came from.
        let host = if !msg.from.host.is_empty() {
            self.reach_host(&msg.from.host)
                .unwrap_or_else(|| msg.from.host.clone())
        } else {
            match source {
                Some(ip) => ip.to_string(),
                None => return self.apply_updates(&msg.updates, &msg.from.id, &mut budget, now),
            }
        };
        let addr = fmt_addr(&host, msg.from.port);
        let known = self
            .members
            .get(&msg.from.id)
            .filter(|m| m.is_live())
            .map(|m| (m.peer.addr() == addr, m.peer.incarnation, m.peer.suspect));
        match known {
            Some((true, incarnation, suspect)) => {
                if msg.leaving {
                    self.leave_claims.insert(msg.from.id.clone());
                    self.verify(&msg.from.id, now);
                    return Vec::new();
                }
                if suspect || msg.incarnation > incarnation {
                    self.verify(&msg.from.id, now);
                }
            }
            _ if msg.leaving => return Vec::new(),
            _ => {
                // Somebody else claims this address (or the member claims another): the
                // address is probed, and the answer says who is there.
                let owner = self
                    .members
                    .iter()
                    .find(|(id, m)| **id != msg.from.id && m.is_live() && m.peer.addr() == addr)
                    .map(|(id, _)| id.clone());
                match owner {
                    Some(id) => self.verify(&id, now),
                    None => {
                        self.add_candidate(addr, true, &mut budget, now);
                    }
                }
            }
        }
        self.apply_updates(&msg.updates, &msg.from.id, &mut budget, now)
    }

    /// Direct contact with `msg.from` at `addr` (it answered our probe there), then its
    /// news. Proof that it is alive: it joins, or recovers from suspicion, whatever the
    /// incarnation (only its own answer could say so), or comes back after we declared it
    /// dead. A member that left stays gone (a leaving node answers `leaving`).
    pub(super) fn on_direct(&mut self, addr: &str, msg: &Gossip, now: Instant) -> Vec<Event> {
        let Some((host, port)) = split_addr(addr) else {
            return Vec::new();
        };
        let info = NodeInfo {
            id: msg.from.id.clone(),
            host: self.advertised_host(&msg.from.host, host),
            port,
        };
        let reach = (info.host != host).then(|| host.to_string());
        let mut events = Vec::new();
        let inc = msg.incarnation;
        match self.members.get_mut(&info.id) {
            None => {
                if self.make_room() {
                    let mut member = Member::new(info.clone(), inc, Status::Alive, now);
                    member.peer.reach_host = reach;
                    self.members.insert(info.id.clone(), member);
                    self.broadcast(Update {
                        node: info.clone(),
                        incarnation: inc,
                        state: MemberState::Alive,
                    });
                    events.push(Event::Joined(info));
                }
            }
            Some(m) => {
                m.peer.last_seen = now;
                m.peer.incarnation = m.peer.incarnation.max(inc);
                match &mut m.status {
                    Status::Alive => {}
                    Status::Suspect { .. } => {
                        m.peer.suspect = false;
                        m.status = Status::Alive;
                        let u = m.update();
                        let info = m.peer.info.clone();
                        self.broadcast(u);
                        events.push(Event::Recovered(info));
                    }
                    Status::Down { state, .. } => {
                        if *state == MemberState::Dead {
                            m.peer.info = info.clone();
                            m.peer.reach_host = reach;
                            m.peer.suspect = false;
                            m.status = Status::Alive;
                            let u = m.update();
                            self.broadcast(u);
                            events.push(Event::Joined(info));
                        }
                    }
                }
            }
        }
        let mut budget = MAX_NEW_PER_MESSAGE;
        events.extend(self.apply_updates(&msg.updates, &msg.from.id, &mut budget, now));
        events
    }

    /// Apply news received from `sender` (never proof, see the module doc): unknown live
    /// members become candidates (while `budget` lasts), claims only a member can make
    /// (alive again, a higher incarnation) get it probed, and accusations (suspect, dead,
    /// left) make it suspect here at most, at the incarnation this node knows.
    pub(super) fn apply_updates(
        &mut self,
        updates: &[Update],
        sender: &str,
        budget: &mut usize,
        now: Instant,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        for u in updates {
            if u.node.id == self.me.id {
                self.refute(u);
                continue;
            }
            let Some(m) = self.members.get_mut(&u.node.id) else {
                self.learn(u, budget, now);
                continue;
            };
            let known = m.peer.incarnation;
            match (u.state, &mut m.status) {
                // Back after we declared it dead? Its address is retried anyway (its
                // backoff is short after a death), and only its answer brings it back.
                (MemberState::Alive, Status::Suspect { .. }) if u.incarnation > known => {
                    self.verify(&u.node.id, now);
                }
                (MemberState::Alive, _) => {}
                (_, Status::Down { .. }) => {}
                (_, _) if u.incarnation < known => {}
                (_, Status::Suspect { confirmations, .. }) => {
                    confirmations.insert(sender.to_string());
                }
                (_, Status::Alive) => {
                    events.extend(self.suspect(&u.node.id, Some(sender), now));
                    self.verify(&u.node.id, now);
                }
            }
        }
        events
    }

    /// News about a member we did not know: its address becomes a candidate to probe (it
    /// is a member only once it answers). News of its death or leaving is not kept.
    pub(super) fn learn(&mut self, u: &Update, budget: &mut usize, now: Instant) {
        if !matches!(u.state, MemberState::Alive | MemberState::Suspect) || u.node.host.is_empty() {
            return;
        }
        // A member advertising our own host lives on this host: reach it locally.
        let reach = self.reach_host(&u.node.host);
        let host = reach.as_deref().unwrap_or(&u.node.host);
        let addr = fmt_addr(host, u.node.port);
        self.add_candidate(addr, false, budget, now);
    }

    /// The local address to reach a node advertising `advertised`, when that is our own
    /// host; `None` when the advertised address is the one to use.
    pub(super) fn reach_host(&self, advertised: &str) -> Option<String> {
        reach_host(&self.me.host, &self.local_host, advertised)
    }

    /// What to tell others about a node that advertises `own` and that we reach at
    /// `reached`: its own address, else the one we reach it at, except that a loopback
    /// or local address means "on our host", which others reach at our host.
    pub(super) fn advertised_host(&self, own: &str, reached: &str) -> String {
        if !own.is_empty() {
            return own.to_string();
        }
        let local = reached == self.local_host
            || reached.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if local && !self.me.host.is_empty() {
            self.me.host.clone()
        } else {
            reached.to_string()
        }
    }
}
