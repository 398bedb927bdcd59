//! The parent's side of a sync session over tonic: the `renda.sync.v1.Replication` service,
//! which drives a [`ParentSession`] per call with the store and the call's streams.

use crate::authority::Policy;
use crate::session::parent::{ParentAction, ParentSession, ParentStart, Served};
use crate::session::perform;
use crate::status::StatusBook;
use renda_proto::sync::v1 as pb;
use renda_replica::OrgCode;
use renda_store::Store;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info, info_span, warn};

pub use crate::session::parent::Peer;

/// Names the peer behind a sync request from its certificate; supplied by the binary, which
/// owns TLS. Refusals are `PERMISSION_DENIED` with the reason.
pub type Identify =
    Arc<dyn Fn(&Request<Streaming<pb::ChildMessage>>) -> Result<Peer, Status> + Send + Sync>;

#[derive(Clone)]
pub struct Replication {
    store: Store,
    policy: Policy,
    identify: Identify,
    status: StatusBook,
    relay: Option<crate::agent::Handle>,
}

impl Replication {
    pub fn new(store: Store, policy: Policy, identify: Identify, status: StatusBook) -> Self {
        Replication {
            store,
            policy,
            identify,
            status,
            relay: None,
        }
    }

    /// Relays upward at once (in the same trace) whenever a child's session brought new
    /// operations, instead of waiting for the next timed sync.
    pub fn with_relay(mut self, relay: crate::agent::Handle) -> Self {
        self.relay = Some(relay);
        self
    }

    pub fn into_server(self) -> pb::replication_server::ReplicationServer<Self> {
        pb::replication_server::ReplicationServer::new(self)
            .max_decoding_message_size(16 * 1024 * 1024)
    }
}

type SyncStream = Pin<Box<dyn Stream<Item = Result<pb::ParentMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::replication_server::Replication for Replication {
    type SyncStream = SyncStream;

    async fn sync(
        &self,
        request: Request<Streaming<pb::ChildMessage>>,
    ) -> Result<Response<SyncStream>, Status> {
        let peer = (self.identify)(&request)?;
        let span = info_span!("sync_session", role = "parent", peer = %peer.org);
        renda_telemetry::set_parent_from_metadata(&span, request.metadata());
        let mut inbound = request.into_inner();
        let first = inbound.message().instrument(span.clone()).await?;
        let mut machine = ParentSession::new(ParentStart {
            me: self.store.org(),
            schema_version: self.store.schema().version,
            actor: self.store.actor().0,
            peer,
        });
        let queue: VecDeque<ParentAction> = match machine.hello(first) {
            Ok(actions) => actions.into(),
            Err(status) => {
                let _enter = span.enter();
                warn!(peer = %peer.org, reason = status.message(), "sync session refused");
                return Err(status);
            }
        };
        let (tx, rx) = mpsc::channel(4);
        let this = self.clone();
        tokio::spawn(
            async move {
                let outcome = this.drive(machine, queue, inbound, tx).await;
                this.record(peer.org, outcome).await;
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn digest(
        &self,
        request: Request<pb::DigestRequest>,
    ) -> Result<Response<pb::DigestResponse>, Status> {
        let org: OrgCode = request
            .get_ref()
            .org_code
            .parse()
            .map_err(|e| Status::invalid_argument(format!("org_code: {e}")))?;
        let bucket = request
            .get_ref()
            .bucket
            .map(|b| {
                u8::try_from(b)
                    .map_err(|_| Status::invalid_argument(format!("bucket: 0 to 255, not {b}")))
            })
            .transpose()?;
        let digest = self
            .store
            .digest(org, bucket)
            .await
            .map_err(|e| Status::internal(format!("reading record digests failed: {e}")))?;
        Ok(Response::new(pb::DigestResponse {
            records: digest.total.records,
            hash: renda_store::ScopeDigest::hex(&digest.total),
            ops: digest.total.ops,
            buckets: digest
                .buckets
                .iter()
                .map(|(bucket, part)| pb::DigestBucket {
                    bucket: u32::from(*bucket),
                    records: part.records,
                    ops: part.ops,
                    hash: renda_store::ScopeDigest::hex(part),
                })
                .collect(),
            entries: digest
                .records
                .iter()
                .map(|(id, part)| pb::DigestRecord {
                    record_id: id.to_string(),
                    ops: part.ops,
                    hash: format!("{:016x}", part.hash),
                })
                .collect(),
        }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let local = self
            .status
            .local()
            .await
            .map_err(|e| Status::internal(format!("reading sync state failed: {e}")))?;
        Ok(Response::new(pb::StatusResponse {
            self_: Some(local),
            below: self.status.below(),
        }))
    }
}

impl Replication {
    /// Performs a parent machine's actions until it is done. Before each action a push message
    /// that has already arrived goes in first, so applying the child's push goes on beside
    /// the pull instead of after it.
    async fn drive(
        &self,
        mut machine: ParentSession,
        mut queue: VecDeque<ParentAction>,
        mut inbound: Streaming<pb::ChildMessage>,
        tx: mpsc::Sender<Result<pb::ParentMessage, Status>>,
    ) -> Result<Served, String> {
        let mut reading = true;
        loop {
            if reading {
                let arrived = if queue.is_empty() {
                    Some(inbound.next().await)
                } else {
                    tokio::select! {
                        biased;
                        next = inbound.next() => Some(next),
                        () = std::future::ready(()) => None,
                    }
                };
                if let Some(next) = arrived {
                    let actions = match next {
                        Some(Ok(msg)) => machine.receive(msg),
                        None => {
                            reading = false;
                            machine.closed()
                        }
                        Some(Err(status)) => {
                            reading = false;
                            // Tell the child why (an oversized batch, a broken message) instead
                            // of ending its stream without a word.
                            let reason =
                                format!("the push could not be read: {}", status.message());
                            machine.failed(Status::new(status.code(), reason))
                        }
                    };
                    queue.extend(actions);
                }
            }
            let Some(action) = queue.pop_front() else {
                if reading {
                    continue;
                }
                // Nothing to do and nothing more can arrive: a machine that is not done here
                // would wait for ever.
                return Err("the session stalled with nothing left to do".into());
            };
            match action {
                ParentAction::Work(work) => {
                    let actions = match perform(&self.store, &self.policy, work).await {
                        Ok(worked) => machine.worked(worked),
                        Err(e) => machine.failed(Status::internal(format!(
                            "the store failed during the session: {e}"
                        ))),
                    };
                    queue.extend(actions);
                }
                ParentAction::Send(msg) => {
                    if tx.send(Ok(msg)).await.is_err() {
                        queue.extend(machine.failed(Status::cancelled("the child went away")));
                    }
                }
                ParentAction::Keep(report) => self.status.keep(machine.peer(), report),
                ParentAction::Abort(status) => {
                    let _ = tx.send(Err(status)).await;
                }
                ParentAction::Done(done) => return done,
            }
        }
    }

    /// Keeps how the session went in the sync state of the child.
    async fn record(&self, peer: OrgCode, outcome: Result<Served, String>) {
        let key = peer.to_string();
        let mut state = match self.store.peer_sync(&key).await {
            Ok(Some(state)) => state,
            _ => renda_store::PeerSync {
                peer: key,
                ..Default::default()
            },
        };
        match outcome {
            Ok(served) => {
                info!(peer = %peer, sent = served.sent, applied = served.applied, "sync session done");
                if served.applied > 0
                    && let Some(relay) = &self.relay
                {
                    relay.relay(tracing::Span::current());
                }
                state.last_success = Some(chrono::Utc::now());
                state.last_error = None;
                state.pending_push = 0;
                state.pending_pull = 0;
            }
            Err(error) => {
                warn!(peer = %peer, %error, "sync session ended early");
                state.last_error = Some(error);
                state.last_error_at = Some(chrono::Utc::now());
            }
        }
        if let Err(error) = self.store.set_peer_sync(&state).await {
            warn!(%error, "saving sync state failed");
        }
    }
}
