//! The child's side of a sync session.

use crate::authority::{Direction, Policy};
use crate::{Error, PROTOCOL_VERSION};
use renda_proto::sync::v1 as pb;
use renda_proto::sync::v1::child_message::Body as ChildBody;
use renda_proto::sync::v1::parent_message::Body as ParentBody;
use renda_proto::sync::v1::replication_client::ReplicationClient;
use renda_replica::OrgCode;
use renda_store::{Cursor, Direction as Checkpoint, FeedPage, Store};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::{Instrument, debug, info_span};

/// Metadata header in which a child names itself. With mutual TLS the parent ignores it and
/// reads the certificate; only a development node without TLS believes it.
pub const DEV_IDENTITY_HEADER: &str = "x-renda-dev-node";

/// What one session moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionReport {
    pub pushed: u64,
    pub push_batches: u64,
    pub pulled: u64,
    pub pulled_applied: u64,
    pub quarantined: u64,
    /// Operations the parent held waiting for a predecessor.
    pub held_at_parent: u64,
    /// The push started after a bundle the parent said it had imported: those operations
    /// were not sent again.
    pub bundled: bool,
}

/// Runs one session with the parent `parent` behind `channel`: pushes everything after the
/// push checkpoint, pulls everything in scope after the pull checkpoint, and moves each
/// checkpoint only after the side that received the batch committed it.
pub async fn sync_once(
    channel: Channel,
    store: &Store,
    parent: OrgCode,
    policy: &Policy,
    max_batch: usize,
    report: pb::NodeStatus,
) -> Result<SessionReport, Error> {
    let peer_key = parent.to_string();
    let me = store.org();
    let span = info_span!("sync_session", role = "child", parent = %parent);
    let push_after = store.checkpoint(&peer_key, Checkpoint::Push).await?;
    let pull_after = store.checkpoint(&peer_key, Checkpoint::Pull).await?;
    // After a bundle went up by hand, the parent's welcome may say it imported it: wait for
    // it before pushing, rather than send those operations again.
    let exported = store
        .checkpoint(&crate::bundle::exported_to(parent), Checkpoint::Push)
        .await?;
    let await_welcome = exported > push_after;
    let first = if await_welcome {
        FeedPage::default()
    } else {
        first_page(store, &peer_key, push_after, max_batch).await?
    };

    let (tx, rx) = mpsc::channel::<pb::ChildMessage>(4);
    let hello = pb::Hello {
        protocol_version: PROTOCOL_VERSION,
        schema_version: store.schema().version,
        org_code: me.to_string(),
        level: me.level().as_str().to_string(),
        actor: store.actor().0,
        pull_after: Some(pb::Cursor {
            position: pull_after.position,
            seq: pull_after.local_seq,
        }),
        max_batch_ops: max_batch as u32,
        push_done: !await_welcome && first.ops.is_empty(),
        report: Some(report),
    };
    let _ = tx
        .send(pb::ChildMessage {
            body: Some(ChildBody::Hello(hello)),
        })
        .await;

    // Push batches in flight, oldest first: (batch number, cursor it covers).
    let in_flight: Arc<Mutex<VecDeque<(u64, Cursor)>>> = Arc::default();
    let push = |first: FeedPage, tx: mpsc::Sender<_>| {
        let pusher = Pusher {
            store: store.clone(),
            in_flight: in_flight.clone(),
            tx,
            max_batch,
        };
        tokio::spawn(pusher.run(first).instrument(span.clone()))
    };
    // With nothing to push, the hello said so and the request stream ends right away.
    let mut producer = (!first.ops.is_empty()).then(|| push(first, tx.clone()));
    let mut waiting = await_welcome.then(|| tx.clone());
    drop(tx);

    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    renda_telemetry::inject(&span, request.metadata_mut());
    if let Ok(value) = me.to_string().parse() {
        request.metadata_mut().insert(DEV_IDENTITY_HEADER, value);
    }
    let mut client = ReplicationClient::new(channel).max_decoding_message_size(16 * 1024 * 1024);
    let mut inbound = client
        .sync(request)
        .instrument(span.clone())
        .await
        .map_err(|status| classify(&peer_key, &status, Stage::Opening))?
        .into_inner();

    let mut session = SessionReport::default();
    let mut welcomed = false;
    let mut pull_done = false;
    let protocol = |reason: String| Error::Protocol {
        peer: peer_key.clone(),
        reason,
    };
    let from_parent = |op: &renda_replica::Op, record_org: Option<OrgCode>| {
        policy.check(op, record_org, Direction::FromParent(parent))
    };
    while let Some(msg) = inbound
        .message()
        .await
        .map_err(|status| classify(&peer_key, &status, Stage::Running))?
    {
        match msg.body {
            Some(ParentBody::Welcome(welcome)) => {
                if welcome.org_code != peer_key {
                    return Err(protocol(format!(
                        "expected parent {peer_key} but {} answered",
                        welcome.org_code
                    )));
                }
                if welcome.protocol_version != PROTOCOL_VERSION
                    || welcome.schema_version != store.schema().version
                {
                    return Err(Error::VersionMismatch {
                        peer: peer_key.clone(),
                        detail: format!(
                            "it speaks protocol {} with schema {}, this node protocol {} with \
                             schema {}; nothing was applied",
                            welcome.protocol_version,
                            welcome.schema_version,
                            PROTOCOL_VERSION,
                            store.schema().version
                        ),
                    });
                }
                welcomed = true;
                if let Some(tx) = waiting.take() {
                    let start = covered_by_bundle(&welcome, push_after);
                    if start > push_after {
                        store
                            .set_checkpoint(&peer_key, Checkpoint::Push, start)
                            .await?;
                        session.bundled = true;
                    }
                    let first = first_page(store, &peer_key, start, max_batch).await?;
                    if first.ops.is_empty() {
                        let _ = tx
                            .send(pb::ChildMessage {
                                body: Some(ChildBody::PushDone(pb::PushDone {})),
                            })
                            .await;
                    } else {
                        producer = Some(push(first, tx));
                    }
                }
            }
            Some(ParentBody::Ack(ack)) => {
                let Some((batch_no, upto)) = lock(&in_flight).pop_front() else {
                    return Err(protocol(format!("ack {} for no batch", ack.batch_no)));
                };
                if batch_no != ack.batch_no {
                    return Err(protocol(format!(
                        "ack {} out of order, expected {batch_no}",
                        ack.batch_no
                    )));
                }
                // The parent committed the batch: only now does the checkpoint move.
                store
                    .set_checkpoint(&peer_key, Checkpoint::Push, upto)
                    .await?;
                session.push_batches += 1;
                session.held_at_parent += u64::from(ack.held);
                session.quarantined += u64::from(ack.quarantined);
            }
            Some(ParentBody::Pull(batch)) => {
                let upto = batch.upto.map_or(pull_after, |c| Cursor {
                    position: c.position,
                    local_seq: c.seq,
                });
                session.pulled += batch.ops.len() as u64;
                if !batch.ops.is_empty() {
                    let span = info_span!(
                        "pull_apply",
                        batch_no = batch.batch_no,
                        ops = batch.ops.len()
                    );
                    let applied = store
                        .apply_batch(&batch.ops, Some(&peer_key), &from_parent)
                        .instrument(span)
                        .await?;
                    session.pulled_applied += applied.applied as u64;
                    session.quarantined += applied.quarantined as u64;
                }
                store
                    .set_checkpoint(&peer_key, Checkpoint::Pull, upto)
                    .await?;
                pull_done = batch.last;
            }
            None => return Err(protocol("empty message".into())),
        }
    }
    // The parent ends the stream once it has sent its last pull batch and acknowledged every
    // push batch; anything missing means the session broke off.
    if !welcomed || !pull_done || !lock(&in_flight).is_empty() {
        return Err(protocol("the parent closed the session early".into()));
    }
    if let Some(producer) = producer {
        let (pushed, _) = producer.await.map_err(|e| protocol(e.to_string()))??;
        session.pushed = pushed;
    }
    debug!(parent = %parent, ?session, "sync session finished");
    Ok(session)
}

/// Where the push to the parent starts: after what the parent's welcome says it imported
/// from this node by bundle, when that covers the push checkpoint.
fn covered_by_bundle(welcome: &pb::Welcome, push_after: Cursor) -> Cursor {
    match (welcome.bundled_start, welcome.bundled_upto) {
        (Some(start), Some(upto)) => {
            let (start, upto) = (
                crate::bundle::cursor_from_pb(start),
                crate::bundle::cursor_from_pb(upto),
            );
            if start <= push_after && push_after < upto {
                upto
            } else {
                push_after
            }
        }
        _ => push_after,
    }
}

/// Sends push batches, oldest first, then `PushDone`; each batch's cursor waits in
/// `in_flight` for the parent's ack.
struct Pusher {
    store: Store,
    in_flight: Arc<Mutex<VecDeque<(u64, Cursor)>>>,
    tx: mpsc::Sender<pb::ChildMessage>,
    max_batch: usize,
}

impl Pusher {
    async fn run(self, first: FeedPage) -> Result<(u64, u64), Error> {
        let mut page = first;
        let mut batch_no = 0u64;
        let mut pushed = 0u64;
        while !page.ops.is_empty() {
            batch_no += 1;
            // The last page's cursor is past what the log held when it was read: once the
            // parent acknowledges it, the checkpoint never walks what came from above again.
            let upto = page.upto;
            pushed += page.ops.len() as u64;
            lock(&self.in_flight).push_back((batch_no, upto));
            let last = page.last;
            let msg = pb::ChildMessage {
                body: Some(ChildBody::Push(pb::PushBatch {
                    batch_no,
                    ops: page.ops.into_iter().map(|op| op.bytes).collect(),
                })),
            };
            if self.tx.send(msg).await.is_err() {
                break;
            }
            page = if last {
                FeedPage::default()
            } else {
                self.store.push_page(upto, self.max_batch as u32).await?
            };
        }
        let _ = self
            .tx
            .send(pb::ChildMessage {
                body: Some(ChildBody::PushDone(pb::PushDone {})),
            })
            .await;
        Ok((pushed, batch_no))
    }
}

/// The first page of the push to `parent` after `after`. When it is empty, nothing in the
/// upward feed up to the end of the log awaits an ack: the checkpoint moves there now, so the
/// next round does not walk again what came from above.
async fn first_page(
    store: &Store,
    parent: &str,
    after: Cursor,
    max_batch: usize,
) -> Result<FeedPage, Error> {
    let page = store.push_page(after, max_batch as u32).await?;
    if page.ops.is_empty() && page.upto > after {
        store
            .set_checkpoint(parent, Checkpoint::Push, page.upto)
            .await?;
    }
    Ok(page)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Where in a session a failure came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Opening the call: a transport failure means the peer was never reached.
    Opening,
    /// Streaming: a transport failure means the connection broke off.
    Running,
}

/// What a failed call means: an unreachable peer, a connection that broke off, a version
/// mismatch, or a refusal by the peer, each said as such.
fn classify(peer: &str, status: &tonic::Status, stage: Stage) -> Error {
    use tonic::Code;
    let peer = peer.to_owned();
    let reason = status.message().to_owned();
    // A status tonic made from a transport error carries that error as its source; a status
    // the peer sent does not.
    let transport = std::error::Error::source(status).is_some()
        || matches!(status.code(), Code::Unavailable | Code::Cancelled);
    match (status.code(), stage) {
        (code, _) if code == crate::VERSION_MISMATCH => Error::VersionMismatch {
            peer,
            detail: reason,
        },
        (Code::ResourceExhausted, _) => Error::Refused {
            peer,
            message: format!("a message was larger than it accepts: {reason}"),
        },
        (
            Code::PermissionDenied
            | Code::Unauthenticated
            | Code::InvalidArgument
            | Code::OutOfRange,
            _,
        ) => Error::Refused {
            peer,
            message: format!("{}: {reason}", code_name(status.code())),
        },
        (_, Stage::Opening) if transport => Error::Unreachable { peer, reason },
        (_, Stage::Running) if transport => Error::Dropped { peer, reason },
        _ => Error::Refused {
            peer,
            message: format!("{}: {reason}", code_name(status.code())),
        },
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::PermissionDenied => "permission denied",
        tonic::Code::FailedPrecondition => "failed precondition",
        tonic::Code::InvalidArgument => "invalid argument",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::Unauthenticated => "unauthenticated",
        tonic::Code::ResourceExhausted => "too large",
        tonic::Code::Internal => "internal error",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    fn said(status: Status, stage: Stage) -> String {
        classify("370202", &status, stage).to_string()
    }

    #[test]
    fn each_failure_says_what_happened() {
        assert_eq!(
            said(Status::unavailable("tcp connect error"), Stage::Opening),
            "cannot reach 370202: tcp connect error"
        );
        assert_eq!(
            said(Status::cancelled("h2 protocol error"), Stage::Running),
            "the connection to 370202 broke off during the session: h2 protocol error"
        );
        assert!(
            said(
                Status::permission_denied("not below this node"),
                Stage::Opening
            )
            .starts_with("370202 refused the session: permission denied")
        );
        assert!(
            said(
                Status::failed_precondition("schema version mismatch: this node has 5"),
                Stage::Opening
            )
            .starts_with("370202 runs another version: schema version mismatch")
        );
        assert!(
            said(
                Status::new(Code::ResourceExhausted, "message length too large"),
                Stage::Running
            )
            .contains("refused the session: a message was larger than it accepts")
        );
    }
}
