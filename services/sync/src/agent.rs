//! The child's sync loop: syncs with its first reachable upstream on a timer or on demand,
//! retries with exponential backoff and jitter, falls back to the next upstream in order, and
//! records per-peer state (last success, pending operations each way, last error).

use crate::SessionReport;
use crate::authority::Policy;
use crate::client::sync_once;
use crate::status::StatusBook;
use rand::Rng;
use renda_replica::OrgCode;
use renda_store::{PeerSync, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tracing::{Instrument, debug, info, info_span, warn};

/// One upstream: the org unit expected to answer, and a (lazily connecting) channel to it.
#[derive(Clone)]
pub struct Upstream {
    pub org: OrgCode,
    pub channel: Channel,
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub interval: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub batch_ops: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            interval: Duration::from_secs(30),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
            batch_ops: 1_000,
        }
    }
}

pub struct Agent {
    store: Store,
    upstreams: Vec<Upstream>,
    policy: Policy,
    config: AgentConfig,
    status: StatusBook,
}

type Reply = oneshot::Sender<Result<(OrgCode, SessionReport), String>>;

enum Request {
    /// Sync now and say how it went.
    Now(Reply),
    /// Relay what a child just brought, continuing that child's trace.
    Relay(tracing::Span),
}

/// A cheap handle on a running agent.
#[derive(Clone)]
pub struct Handle {
    requests: mpsc::Sender<Request>,
    offline: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl Handle {
    /// Syncs now, trying the upstreams in order; returns which one answered and what moved.
    pub async fn sync_now(&self) -> Result<(OrgCode, SessionReport), String> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Now(tx))
            .await
            .map_err(|_| "the sync agent has stopped".to_string())?;
        rx.await
            .map_err(|_| "the sync agent has stopped".to_string())?
    }

    /// Asks for an upward sync as part of `parent`'s trace; dropped if one is already queued.
    pub fn relay(&self, parent: tracing::Span) {
        let _ = self.requests.try_send(Request::Relay(parent));
    }

    /// Takes the node off the network (or back): while offline, no session is attempted and
    /// local writes go on. Used by the demo and by operators during maintenance.
    pub fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::SeqCst)
    }
}

impl Agent {
    pub fn new(
        store: Store,
        upstreams: Vec<Upstream>,
        policy: Policy,
        config: AgentConfig,
        status: StatusBook,
    ) -> Self {
        Agent {
            store,
            upstreams,
            policy,
            config,
            status,
        }
    }

    /// Starts the loop; it stops when `shutdown` completes, after the round under way (if
    /// any) has finished, so the store must stay open until the returned task completes.
    pub fn spawn(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (Handle, tokio::task::JoinHandle<()>) {
        let (requests, mut rx) = mpsc::channel::<Request>(8);
        let offline = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let handle = Handle {
            requests,
            offline: offline.clone(),
            wake: wake.clone(),
        };
        let task = tokio::spawn(async move {
            tokio::pin!(shutdown);
            let mut failures = 0u32;
            // After a failed round, a cheap probe (a health check, refused at once while the
            // upstream is down) starts the next round within seconds of the link's return
            // instead of at the end of the backoff. A round the probe started that fails again
            // waits out its backoff unprobed, so an upstream that answers health checks but
            // refuses sessions is not called every few seconds.
            let mut probing = false;
            loop {
                let delay = if failures == 0 {
                    self.config.interval
                } else {
                    backoff(&self.config, failures)
                };
                let probe = failures > 0 && probing;
                let mut probed = false;
                let request = tokio::select! {
                    () = &mut shutdown => return,
                    request = rx.recv() => match request {
                        Some(request) => Some(request),
                        None => return,
                    },
                    () = tokio::time::sleep(delay) => None,
                    () = wake.notified() => None,
                    () = self.link_returns(), if probe => {
                        probed = true;
                        None
                    }
                };
                let (reply, span) = match request {
                    Some(Request::Now(reply)) => (Some(reply), info_span!("sync_round")),
                    Some(Request::Relay(parent)) => {
                        (None, info_span!(parent: &parent, "relay_upward"))
                    }
                    None => (None, info_span!("sync_round")),
                };
                if offline.load(Ordering::SeqCst) {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err("the node is offline".into()));
                    }
                    continue;
                }
                let outcome = self.sync_round().instrument(span).await;
                failures = if outcome.is_ok() {
                    0
                } else {
                    failures.saturating_add(1)
                };
                probing = outcome.is_err() && !probed;
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
        });
        (handle, task)
    }

    /// One round: the first upstream that completes a session wins.
    async fn sync_round(&self) -> Result<(OrgCode, SessionReport), String> {
        let mut errors = Vec::new();
        // One report per round: the same state goes to whichever upstream answers.
        let report = self.status.report().await.map_err(|e| e.to_string())?;
        for upstream in &self.upstreams {
            let peer = upstream.org.to_string();
            let result = sync_once(
                upstream.channel.clone(),
                &self.store,
                upstream.org,
                &self.policy,
                self.config.batch_ops,
                report.clone(),
            )
            .await;
            let mut state = match self.store.peer_sync(&peer).await {
                Ok(Some(state)) => state,
                _ => PeerSync {
                    peer: peer.clone(),
                    ..PeerSync::default()
                },
            };
            match result {
                Ok(report) => {
                    state.last_success = Some(chrono::Utc::now());
                    state.last_error = None;
                    state.pending_pull = 0;
                    state.pending_push = self.pending_to(&peer).await;
                    self.save_state(state).await;
                    info!(upstream = %peer, pushed = report.pushed, pulled = report.pulled, "synced");
                    return Ok((upstream.org, report));
                }
                Err(error) => {
                    warn!(upstream = %peer, %error, "sync failed, trying the next upstream");
                    state.last_error = Some(error.to_string());
                    state.last_error_at = Some(chrono::Utc::now());
                    state.pending_push = self.pending_to(&peer).await;
                    self.save_state(state).await;
                    errors.push(format!("{peer}: {error}"));
                }
            }
        }
        Err(if errors.is_empty() {
            "no upstream is configured".to_string()
        } else {
            errors.join("; ")
        })
    }

    /// Returns once any upstream answers a health check; checks every `PROBE_EVERY`.
    async fn link_returns(&self) {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            for upstream in &self.upstreams {
                let mut health = HealthClient::new(upstream.channel.clone());
                let check = health.check(HealthCheckRequest {
                    service: String::new(),
                });
                if let Ok(Ok(_)) = tokio::time::timeout(PROBE_EVERY, check).await {
                    debug!(upstream = %upstream.org, "the upstream answers again");
                    return;
                }
            }
        }
    }

    async fn pending_to(&self, peer: &str) -> u64 {
        match self.store.pending_push(peer).await {
            Ok(n) => n,
            Err(error) => {
                warn!(%error, "counting pending operations failed");
                0
            }
        }
    }

    async fn save_state(&self, state: PeerSync) {
        if let Err(error) = self.store.set_peer_sync(&state).await {
            warn!(%error, peer = state.peer, "saving sync state failed");
        }
    }
}

/// How often a node whose last round failed checks whether an upstream answers again.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Exponential backoff with full jitter, between the configured bounds.
fn backoff(config: &AgentConfig, failures: u32) -> Duration {
    let base = config.backoff_min.as_millis() as u64;
    let cap = config.backoff_max.as_millis() as u64;
    let exp = base
        .saturating_mul(1u64 << failures.min(20))
        .min(cap)
        .max(base);
    Duration::from_millis(rand::rng().random_range(base..=exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_bounds() {
        let config = AgentConfig {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(5_000),
            ..AgentConfig::default()
        };
        for failures in 1..40 {
            let d = backoff(&config, failures);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(5_000),
                "{d:?}"
            );
        }
    }
}
