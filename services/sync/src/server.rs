//! The parent's side of a sync session: the `renda.sync.v1.Replication` service.

use crate::PROTOCOL_VERSION;
use crate::authority::{Direction, Policy};
use crate::bundle::cursor_pb;
use crate::status::StatusBook;
use renda_proto::sync::v1 as pb;
use renda_proto::sync::v1::child_message::Body as ChildBody;
use renda_proto::sync::v1::parent_message::Body as ParentBody;
use renda_replica::{Level, OrgCode};
use renda_store::{Cursor, Direction as Checkpoint, Store};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info, info_span, warn};

/// The node behind a request, as its TLS certificate names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub org: OrgCode,
    pub level: Level,
}

/// Names the peer behind a sync request from its certificate; supplied by the binary, which
/// owns TLS. Refusals are `PERMISSION_DENIED` with the reason.
pub type Identify =
    Arc<dyn Fn(&Request<Streaming<pb::ChildMessage>>) -> Result<Peer, Status> + Send + Sync>;

/// Largest batch a child may ask for, so one message stays well under gRPC's 4 MB limit.
const MAX_BATCH_OPS: u32 = 4_096;

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

    fn check_hello(&self, peer: Peer, hello: &pb::Hello) -> Result<(), Status> {
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(Status::new(
                crate::VERSION_MISMATCH,
                format!(
                    "protocol version mismatch: this node speaks {PROTOCOL_VERSION}, the peer {}; \
                 nothing was applied",
                    hello.protocol_version
                ),
            ));
        }
        let schema = self.store.schema().version;
        if hello.schema_version != schema {
            return Err(Status::new(
                crate::VERSION_MISMATCH,
                format!(
                    "schema version mismatch: this node has {schema}, the peer {}; nothing was \
                 applied",
                    hello.schema_version
                ),
            ));
        }
        if hello.org_code != peer.org.to_string() || hello.level != peer.level.as_str() {
            warn!(certified = %peer.org, claimed = %hello.org_code, "peer claims another identity");
            return Err(Status::permission_denied(format!(
                "certificate names {} {} but the hello claims {} {}",
                peer.level, peer.org, hello.level, hello.org_code
            )));
        }
        let me = self.store.org();
        if peer.org == me || !me.contains(peer.org) {
            return Err(Status::permission_denied(format!(
                "{} {} is not below this node ({} {}); a parent never syncs with it",
                peer.level,
                peer.org,
                me.level(),
                me
            )));
        }
        Ok(())
    }
}

type SyncStream = Pin<Box<dyn Stream<Item = Result<pb::ParentMessage, Status>> + Send>>;

fn message(body: ParentBody) -> Result<pb::ParentMessage, Status> {
    Ok(pb::ParentMessage { body: Some(body) })
}

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
        let hello = match inbound.message().instrument(span.clone()).await? {
            Some(pb::ChildMessage {
                body: Some(ChildBody::Hello(hello)),
            }) => hello,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of a sync session must be hello",
                ));
            }
        };
        if let Err(status) = self.check_hello(peer, &hello) {
            let _enter = span.enter();
            warn!(peer = %peer.org, reason = status.message(), "sync session refused");
            return Err(status);
        }
        if let Some(report) = hello.report.clone() {
            self.status.keep(peer.org, report);
        }
        let pull_after = hello.pull_after.map_or(Cursor::START, |c| Cursor {
            position: c.position,
            local_seq: c.seq,
        });
        let max_batch = hello.max_batch_ops.clamp(1, MAX_BATCH_OPS) as usize;
        let pending = self
            .store
            .count_for_scope(peer.org, pull_after, Some(&peer.org.to_string()))
            .await
            .map_err(|e| Status::internal(format!("reading the operation feed failed: {e}")))?;
        let me = self.store.org();
        let (tx, rx) = mpsc::channel(4);
        let bundled = crate::bundle::imported_from(peer.org);
        let read_bundled = async |direction| {
            self.store
                .checkpoint(&bundled, direction)
                .await
                .map_err(|e| Status::internal(format!("reading a bundle checkpoint failed: {e}")))
        };
        let bundled_upto = read_bundled(Checkpoint::Pull).await?;
        let bundled_start = read_bundled(Checkpoint::Push).await?;
        let welcome = ParentBody::Welcome(pb::Welcome {
            protocol_version: PROTOCOL_VERSION,
            schema_version: self.store.schema().version,
            org_code: me.to_string(),
            level: me.level().as_str().to_string(),
            actor: self.store.actor().0,
            pull_pending: pending,
            bundled_start: (bundled_upto > Cursor::START).then(|| cursor_pb(bundled_start)),
            bundled_upto: (bundled_upto > Cursor::START).then(|| cursor_pb(bundled_upto)),
        });
        // The channel was just made with room for several messages.
        let _ = tx.send(message(welcome)).await;

        let store = self.store.clone();
        let policy = self.policy.clone();
        let relay = self.relay.clone();
        let push_done_at_hello = hello.push_done;
        tokio::spawn(
            async move {
                let pull = send_scope(&store, peer, pull_after, max_batch, tx.clone());
                let push = receive_pushes(&store, &policy, peer, inbound, push_done_at_hello, tx);
                let (pull, push) = tokio::join!(pull, push);
                let key = peer.org.to_string();
                let mut state = match store.peer_sync(&key).await {
                    Ok(Some(state)) => state,
                    _ => renda_store::PeerSync {
                        peer: key,
                        ..Default::default()
                    },
                };
                match (pull, push) {
                    (Ok(sent), Ok(applied)) => {
                        info!(peer = %peer.org, sent, applied, "sync session done");
                        if applied > 0
                            && let Some(relay) = &relay
                        {
                            relay.relay(tracing::Span::current());
                        }
                        state.last_success = Some(chrono::Utc::now());
                        state.last_error = None;
                        state.pending_push = 0;
                        state.pending_pull = 0;
                    }
                    (pull, push) => {
                        let error = [pull.err(), push.err()]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join("; ");
                        warn!(peer = %peer.org, %error, "sync session ended early");
                        state.last_error = Some(error);
                        state.last_error_at = Some(chrono::Utc::now());
                    }
                }
                if let Err(error) = store.set_peer_sync(&state).await {
                    warn!(%error, "saving sync state failed");
                }
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

/// Streams the operations in `peer`'s scope after `after`, in batches, the last one marked.
async fn send_scope(
    store: &Store,
    peer: Peer,
    mut after: Cursor,
    max_batch: usize,
    tx: mpsc::Sender<Result<pb::ParentMessage, Status>>,
) -> Result<u64, String> {
    let mut sent = 0u64;
    let mut batch_no = 0u64;
    // The child's own operations (those it pushed here) are not sent back to it.
    let except = peer.org.to_string();
    loop {
        let page = store
            .feed_page(peer.org, after, max_batch as u32, Some(&except))
            .await
            .map_err(|e| e.to_string())?;
        batch_no += 1;
        // The last page's cursor is past the whole log as read, the child's own operations
        // included: its pull checkpoint never walks them again.
        after = page.upto;
        sent += page.ops.len() as u64;
        let span = info_span!("pull_batch", batch_no, ops = page.ops.len());
        let batch = ParentBody::Pull(pb::PullBatch {
            batch_no,
            ops: page.ops.into_iter().map(|op| op.bytes).collect(),
            upto: Some(pb::Cursor {
                position: after.position,
                seq: after.local_seq,
            }),
            last: page.last,
        });
        if tx.send(message(batch)).instrument(span).await.is_err() {
            return Err("the child went away".into());
        }
        if page.last {
            return Ok(sent);
        }
    }
}

/// Applies the child's push batches, each in one transaction, acknowledging each only after
/// it is committed.
async fn receive_pushes(
    store: &Store,
    policy: &Policy,
    peer: Peer,
    mut inbound: Streaming<pb::ChildMessage>,
    already_done: bool,
    tx: mpsc::Sender<Result<pb::ParentMessage, Status>>,
) -> Result<u64, String> {
    let mut applied = 0u64;
    if already_done {
        return Ok(0);
    }
    let from = peer.org.to_string();
    let check = |op: &renda_replica::Op, record_org: Option<OrgCode>| {
        policy.check(op, record_org, Direction::FromChild(peer.org))
    };
    loop {
        let next = match inbound.message().await {
            Ok(next) => next,
            Err(status) => {
                // Tell the child why (an oversized batch, a broken message) instead of ending
                // its stream without a word.
                let reason = format!("the push could not be read: {}", status.message());
                let _ = tx
                    .send(Err(Status::new(status.code(), reason.clone())))
                    .await;
                return Err(reason);
            }
        };
        match next {
            Some(pb::ChildMessage {
                body: Some(ChildBody::Push(batch)),
            }) => {
                let span = info_span!(
                    "push_batch",
                    batch_no = batch.batch_no,
                    ops = batch.ops.len()
                );
                let report = match store
                    .apply_batch(&batch.ops, Some(&from), &check)
                    .instrument(span)
                    .await
                {
                    Ok(report) => report,
                    Err(e) => {
                        let reason = format!("applying push batch {} failed: {e}", batch.batch_no);
                        let _ = tx.send(Err(Status::internal(reason.clone()))).await;
                        return Err(reason);
                    }
                };
                applied += report.applied as u64;
                let ack = ParentBody::Ack(pb::PushAck {
                    batch_no: batch.batch_no,
                    applied: report.applied as u32,
                    duplicates: report.duplicates as u32,
                    held: report.held as u32,
                    quarantined: report.quarantined as u32,
                });
                if tx.send(message(ack)).await.is_err() {
                    return Err("the child went away".into());
                }
            }
            Some(pb::ChildMessage {
                body: Some(ChildBody::PushDone(_)),
            })
            | None => return Ok(applied),
            Some(_) => return Err("unexpected message after hello".into()),
        }
    }
}
