//! What a node knows of its own sync state and of the nodes below it.
//!
//! Each node keeps, per peer, when it last synced, what is pending each way and the last error
//! (in the store). A child sends that, with what it knows of the nodes below it, in every
//! hello; its parent keeps the latest report per node, so the county sees every township and
//! the city every county and township, each with when the report arrived.

use renda_proto::sync::v1 as pb;
use renda_replica::OrgCode;
use renda_store::{PeerSync, Store};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A peer counts as online while its last contact is within this many of its sync intervals.
pub const ONLINE_ROUNDS: i64 = 3;

#[derive(Clone)]
pub struct StatusBook {
    store: Store,
    reports: Arc<Mutex<BTreeMap<String, (i64, pb::NodeStatus)>>>,
    /// This node's own sync interval, reported upward and used for its parents' links (and
    /// for a child that has not said its own).
    interval_ms: i64,
}

impl StatusBook {
    pub fn new(store: Store) -> Self {
        StatusBook {
            store,
            reports: Arc::default(),
            interval_ms: crate::AgentConfig::default().interval.as_millis() as i64,
        }
    }

    /// The interval at which this node's agent syncs with its parent.
    pub fn with_interval(mut self, interval: std::time::Duration) -> Self {
        self.interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        self
    }

    fn reports(&self) -> MutexGuard<'_, BTreeMap<String, (i64, pb::NodeStatus)>> {
        match self.reports.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The sync interval a child reported, or this node's own if it never said.
    fn interval_of(&self, child: &str) -> i64 {
        self.reports()
            .get(child)
            .map(|(_, r)| r.sync_interval_ms as i64)
            .filter(|ms| *ms > 0)
            .unwrap_or(self.interval_ms)
    }

    /// This node's own status: its links and its log.
    pub async fn local(&self) -> Result<pb::NodeStatus, renda_store::Error> {
        let me = self.store.org();
        let now = crate::now_ms();
        let peers = self
            .store
            .peer_syncs()
            .await?
            .into_iter()
            .filter_map(|peer| {
                let interval = self.interval_of(&peer.peer);
                peer_status(me, peer, now, interval)
            })
            .collect();
        Ok(pb::NodeStatus {
            org_code: me.to_string(),
            level: me.level().as_str().to_string(),
            actor: self.store.actor().0,
            peers,
            below: Vec::new(),
            reported_unix_ms: 0,
            log_ops: self.store.log_len().await?,
            held_ops: self.store.held_count().await?,
            quarantined_ops: self.store.quarantine_count().await?,
            sync_interval_ms: u64::try_from(self.interval_ms).unwrap_or(0),
        })
    }

    /// The latest report of every node below, with when it arrived, by org code.
    pub fn below(&self) -> Vec<pb::NodeStatus> {
        self.reports()
            .values()
            .map(|(received, status)| {
                let mut status = status.clone();
                status.reported_unix_ms = *received;
                status
            })
            .collect()
    }

    /// What a child tells its parent: its own status and what it knows of the nodes below,
    /// each child's link here as of this node's own last contact with it (a session that
    /// ended after the child's hello, or the making of its last bundle; a child that reaches
    /// this node only by bundle included).
    pub async fn report(&self) -> Result<pb::NodeStatus, renda_store::Error> {
        let mut status = self.local().await?;
        status.below = with_contacts(status.org_code.as_str(), self.below(), &status.peers);
        Ok(status)
    }

    /// Keeps the report a child sent. Only nodes in the child's subtree are believed.
    pub fn keep(&self, child: OrgCode, report: pb::NodeStatus) {
        let now = crate::now_ms();
        let mut reports = self.reports();
        for below in &report.below {
            let in_subtree = below
                .org_code
                .parse::<OrgCode>()
                .is_ok_and(|org| org != child && child.contains(org));
            if in_subtree {
                let received = if below.reported_unix_ms > 0 {
                    below.reported_unix_ms.min(now)
                } else {
                    now
                };
                let mut below = below.clone();
                below.below.clear();
                reports.insert(below.org_code.clone(), (received, below));
            }
        }
        let mut own = report;
        own.below.clear();
        reports.insert(child.to_string(), (now, own));
    }
}

/// The reports of the nodes below, with each child's link to this node (`me`) as of this
/// node's last contact with it when that is newer than the child's report (its hello is sent
/// before the session it opens succeeds; a bundle sends no hello): the link last succeeded
/// then, and that is when its report counts as received.
fn with_contacts(
    me: &str,
    mut below: Vec<pb::NodeStatus>,
    links: &[pb::PeerStatus],
) -> Vec<pb::NodeStatus> {
    for link in links {
        let made = link.last_success_unix_ms.max(link.last_bundle_unix_ms);
        if made <= 0 || link.role != pb::PeerRole::Child as i32 {
            continue;
        }
        let index = match below.iter().position(|s| s.org_code == link.peer_org_code) {
            Some(i) => i,
            None => {
                let level = link
                    .peer_org_code
                    .parse::<OrgCode>()
                    .map(|o| o.level().as_str().to_string())
                    .unwrap_or_default();
                below.push(pb::NodeStatus {
                    org_code: link.peer_org_code.clone(),
                    level,
                    ..Default::default()
                });
                below.len() - 1
            }
        };
        let status = &mut below[index];
        let up = match status.peers.iter().position(|p| p.peer_org_code == me) {
            Some(i) => &mut status.peers[i],
            None => {
                status.peers.push(pb::PeerStatus {
                    peer_org_code: me.to_string(),
                    role: pb::PeerRole::Parent as i32,
                    ..Default::default()
                });
                let last = status.peers.len() - 1;
                &mut status.peers[last]
            }
        };
        if up.last_success_unix_ms < made {
            up.last_success_unix_ms = made;
            status.reported_unix_ms = status.reported_unix_ms.max(made);
        }
    }
    below
}

fn peer_status(me: OrgCode, peer: PeerSync, now: i64, interval_ms: i64) -> Option<pb::PeerStatus> {
    let org: OrgCode = peer.peer.parse().ok()?;
    let role = if org.contains(me) {
        pb::PeerRole::Parent
    } else {
        pb::PeerRole::Child
    };
    let ms = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or(0, |t| t.timestamp_millis());
    let (ok, err) = (ms(peer.last_success), ms(peer.last_error_at));
    Some(pb::PeerStatus {
        peer_org_code: peer.peer,
        role: role as i32,
        last_success_unix_ms: ok,
        ops_pending_to_peer: peer.pending_push,
        ops_pending_from_peer: peer.pending_pull,
        last_error: peer.last_error.unwrap_or_default(),
        last_error_unix_ms: err,
        online: online(ok, err, now, interval_ms),
        last_bundle_unix_ms: ms(peer.last_bundle),
    })
}

/// Online: the last session succeeded and ended within [`ONLINE_ROUNDS`] sync intervals. A
/// child that simply stops calling goes offline after a few of its own intervals.
pub fn online(last_success_ms: i64, last_error_ms: i64, now_ms: i64, interval_ms: i64) -> bool {
    last_success_ms > 0
        && last_success_ms >= last_error_ms
        && now_ms.saturating_sub(last_success_ms)
            <= ONLINE_ROUNDS.saturating_mul(interval_ms.max(1))
}

/// Whether a node below, known only by its report, is online as of now: its own link upward
/// was online when it reported, and the report is recent enough for its interval and for the
/// relays between it and this node (`relay_ms`, the sum of their intervals).
pub fn reported_online(status: &pb::NodeStatus, now_ms: i64, relay_ms: i64) -> bool {
    let interval = i64::try_from(status.sync_interval_ms).unwrap_or(i64::MAX);
    let window = ONLINE_ROUNDS
        .saturating_mul(interval.max(1))
        .saturating_add(relay_ms);
    status.reported_unix_ms > 0
        && now_ms.saturating_sub(status.reported_unix_ms) <= window
        && link_in_use(&status.peers).is_some_and(|p| p.online)
}

/// The upstream link a node actually uses: the parent it last synced with successfully;
/// before any success, the nearest parent (its first upstream).
pub fn link_in_use(peers: &[pb::PeerStatus]) -> Option<&pb::PeerStatus> {
    let parents = || {
        peers
            .iter()
            .filter(|p| p.role == pb::PeerRole::Parent as i32)
    };
    parents()
        .filter(|p| p.last_success_unix_ms > 0)
        .max_by_key(|p| p.last_success_unix_ms)
        .or_else(|| parents().max_by_key(|p| p.peer_org_code.len()))
}

/// How fresh each node below is at this node: when its data last reached here, and how many
/// operations it still held for its parent at its last report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Freshness {
    pub org: String,
    /// Unix ms; 0 when its data never reached here.
    pub reached_ms: i64,
    pub pending_ops: u64,
}

/// Works out, from the reports of the nodes below, when each one's data last reached this node.
/// A node's data reaches here through its chain of parents: a township's data is here as of
/// the earlier of its own last upward sync and its county's last upward sync (or directly,
/// when it last synced with this node itself, as after a fallback to the city).
pub fn freshness(me: OrgCode, below: &[pb::NodeStatus]) -> Vec<Freshness> {
    let by_org: BTreeMap<&str, &pb::NodeStatus> =
        below.iter().map(|s| (s.org_code.as_str(), s)).collect();
    let mut out = Vec::new();
    for status in below {
        let Ok(org) = status.org_code.parse::<OrgCode>() else {
            continue;
        };
        let upward = |node: &pb::NodeStatus, to: &str| {
            node.peers
                .iter()
                .find(|p| p.peer_org_code == to && p.role == pb::PeerRole::Parent as i32)
                .map(|p| (p.last_success_unix_ms, p.ops_pending_to_peer))
        };
        // Directly with this node (a child, or a fallback).
        let direct = upward(status, &me.to_string())
            .map(|(ms, _)| ms)
            .unwrap_or(0);
        // Through each parent up to this node.
        let mut chain = i64::MAX;
        let mut cursor = org;
        let mut complete = false;
        while let Some(parent) = cursor.parent() {
            let node = if cursor == org {
                Some(status)
            } else {
                by_org.get(cursor.to_string().as_str()).copied()
            };
            let Some(node) = node else { break };
            let ms = upward(node, &parent.to_string())
                .map(|(ms, _)| ms)
                .unwrap_or(0);
            chain = chain.min(ms);
            if parent == me {
                complete = true;
                break;
            }
            cursor = parent;
        }
        let via_parents = if complete { chain } else { 0 };
        let pending = org
            .parent()
            .and_then(|p| upward(status, &p.to_string()))
            .map(|(_, pending)| pending)
            .unwrap_or(0);
        out.push(Freshness {
            org: status.org_code.clone(),
            reached_ms: direct.max(via_parents),
            pending_ops: pending,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(org: &str, parents: &[(&str, i64, u64)]) -> pb::NodeStatus {
        pb::NodeStatus {
            org_code: org.into(),
            peers: parents
                .iter()
                .map(|(peer, ms, pending)| pb::PeerStatus {
                    peer_org_code: (*peer).into(),
                    role: pb::PeerRole::Parent as i32,
                    last_success_unix_ms: *ms,
                    ops_pending_to_peer: *pending,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_townships_data_reaches_the_city_when_its_county_passes_it_on() {
        let city = OrgCode::new(370_200).unwrap();
        let below = vec![
            node("370202", &[("370200", 5_000, 0)]),
            node("370202001", &[("370202", 4_000, 3)]),
            node("370202002", &[("370202", 9_000, 0)]),
            // Fell back to the city directly at 7,000.
            node("370212001", &[("370212", 0, 8), ("370200", 7_000, 0)]),
        ];
        let fresh = freshness(city, &below);
        let get = |org: &str| fresh.iter().find(|f| f.org == org).unwrap().clone();
        assert_eq!(get("370202").reached_ms, 5_000);
        assert_eq!(get("370202001").reached_ms, 4_000);
        assert_eq!(get("370202001").pending_ops, 3);
        // Synced with its county after the county last synced up: not here yet.
        assert_eq!(get("370202002").reached_ms, 5_000);
        assert_eq!(get("370212001").reached_ms, 7_000);
        assert_eq!(get("370212001").pending_ops, 8);
    }
}
