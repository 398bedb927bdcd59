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

#[derive(Clone)]
pub struct StatusBook {
    store: Store,
    reports: Arc<Mutex<BTreeMap<String, (i64, pb::NodeStatus)>>>,
}

impl StatusBook {
    pub fn new(store: Store) -> Self {
        StatusBook {
            store,
            reports: Arc::default(),
        }
    }

    fn reports(&self) -> MutexGuard<'_, BTreeMap<String, (i64, pb::NodeStatus)>> {
        match self.reports.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// This node's own status: its links and its log.
    pub async fn local(&self) -> Result<pb::NodeStatus, renda_store::Error> {
        let me = self.store.org();
        let peers = self
            .store
            .peer_syncs()
            .await?
            .into_iter()
            .filter_map(|peer| peer_status(me, peer))
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

    /// What a child tells its parent: its own status and what it knows of the nodes below.
    pub async fn report(&self) -> Result<pb::NodeStatus, renda_store::Error> {
        let mut status = self.local().await?;
        status.below = self.below();
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
                    below.reported_unix_ms
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

fn peer_status(me: OrgCode, peer: PeerSync) -> Option<pb::PeerStatus> {
    let org: OrgCode = peer.peer.parse().ok()?;
    let role = if org.contains(me) {
        pb::PeerRole::Parent
    } else {
        pb::PeerRole::Child
    };
    let online = match (peer.last_success, peer.last_error_at) {
        (Some(ok), Some(err)) => ok >= err,
        (Some(_), None) => true,
        _ => false,
    };
    Some(pb::PeerStatus {
        peer_org_code: peer.peer,
        role: role as i32,
        last_success_unix_ms: peer.last_success.map_or(0, |t| t.timestamp_millis()),
        ops_pending_to_peer: peer.pending_push,
        ops_pending_from_peer: peer.pending_pull,
        last_error: peer.last_error.unwrap_or_default(),
        last_error_unix_ms: peer.last_error_at.map_or(0, |t| t.timestamp_millis()),
        online,
    })
}
