//! The child's side of a sync session over tonic: drives [`ChildSession`] with the store and
//! a gRPC stream to the parent.

use crate::authority::Policy;
use crate::session::child::{ChildAction, ChildSession, ChildStart};
use crate::session::{WINDOW, perform};
use crate::{Error, SessionReport};
use renda_proto::sync::v1 as pb;
use renda_proto::sync::v1::replication_client::ReplicationClient;
use renda_replica::OrgCode;
use renda_store::{Direction as Checkpoint, Store};
use std::collections::VecDeque;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::{Instrument, debug, info_span};

/// Metadata header in which a child names itself. With mutual TLS the parent ignores it and
/// reads the certificate; only a development node without TLS believes it.
pub const DEV_IDENTITY_HEADER: &str = "x-renda-dev-node";

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
    let start = ChildStart {
        me,
        parent,
        schema_version: store.schema().version,
        actor: store.actor().0,
        max_batch: u32::try_from(max_batch).unwrap_or(u32::MAX),
        report,
        push_after: store.checkpoint(&peer_key, Checkpoint::Push).await?,
        pull_after: store.checkpoint(&peer_key, Checkpoint::Pull).await?,
        exported: store
            .checkpoint(&crate::bundle::exported_to(parent), Checkpoint::Push)
            .await?,
    };
    let (mut machine, first) = ChildSession::new(start);
    let mut queue: VecDeque<ChildAction> = first.into();
    // The machine never has more than the hello, a window of push batches and the push's end
    // unacknowledged, and the parent acknowledges a batch only after reading it: a channel
    // that holds them all never makes the machine wait on a send.
    let (tx, rx) = mpsc::channel::<pb::ChildMessage>(WINDOW + 2);
    let mut tx = Some(tx);
    let mut driver = Driver {
        store,
        policy,
        span: &span,
    };
    // Until the first message from the parent, the actions are the first page's read and the
    // first sends: perform them before opening the call, whose request stream they fill.
    if let Some(done) = driver.run(&mut machine, &mut queue, &mut tx).await {
        return done;
    }

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
    loop {
        if let Some(done) = driver.run(&mut machine, &mut queue, &mut tx).await {
            if let Ok(session) = &done {
                debug!(parent = %parent, ?session, "sync session finished");
            }
            return done;
        }
        let actions = match inbound.message().await {
            Ok(Some(msg)) => machine.receive(msg),
            Ok(None) => machine.closed(),
            Err(status) => machine.failed(classify(&peer_key, &status, Stage::Running)),
        };
        queue.extend(actions);
    }
}

/// Performs a child machine's actions against the store and the request stream.
struct Driver<'a> {
    store: &'a Store,
    policy: &'a Policy,
    span: &'a tracing::Span,
}

impl Driver<'_> {
    /// Performs queued actions until the machine waits for the parent (`None`) or is done.
    async fn run(
        &mut self,
        machine: &mut ChildSession,
        queue: &mut VecDeque<ChildAction>,
        tx: &mut Option<mpsc::Sender<pb::ChildMessage>>,
    ) -> Option<Result<SessionReport, Error>> {
        while let Some(action) = queue.pop_front() {
            match action {
                ChildAction::Work(work) => {
                    let span = info_span!(parent: self.span, "sync_work", work = work_name(&work));
                    let next = match perform(self.store, self.policy, work)
                        .instrument(span)
                        .await
                    {
                        Ok(worked) => machine.worked(worked),
                        Err(e) => machine.failed(Error::Store(e)),
                    };
                    queue.extend(next);
                }
                ChildAction::Send(msg) => {
                    // The parent stopped reading: its answer (or the broken stream) says why.
                    if let Some(sender) = tx
                        && sender.try_send(msg).is_err()
                    {
                        *tx = None;
                    }
                }
                ChildAction::EndSend => *tx = None,
                ChildAction::Done(done) => return Some(done),
            }
        }
        None
    }
}

fn work_name(work: &crate::session::Work) -> &'static str {
    use crate::session::Work;
    match work {
        Work::ReadPush { .. } => "read_push",
        Work::ReadFeed { .. } => "read_feed",
        Work::Apply { .. } => "apply",
        Work::Checkpoint { .. } => "checkpoint",
        Work::WelcomeFacts { .. } => "welcome_facts",
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
