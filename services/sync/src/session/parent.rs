//! The parent's side of a session as a state machine.
//!
//! The parent checks the child's hello against the certificate's identity, welcomes it (with
//! what waits for it and what it imported from it by bundle), streams the child's scope in
//! pull batches, the last one marked, and applies the child's push batches in order, each
//! acknowledged only after it is committed. The session ends once the last pull batch is sent
//! and the push is done; a push batch out of order ends it with an error the child reads.

use super::{Work, Worked};
use crate::PROTOCOL_VERSION;
use crate::authority::Direction;
use crate::bundle::cursor_pb;
use renda_proto::sync::v1 as pb;
use renda_proto::sync::v1::child_message::Body as ChildBody;
use renda_proto::sync::v1::parent_message::Body as ParentBody;
use renda_replica::{Level, OrgCode};
use renda_store::{Cursor, FeedPage};
use std::collections::VecDeque;
use tonic::Status;

/// Largest batch a child may ask for, so one message stays well under gRPC's 4 MB limit.
pub const MAX_BATCH_OPS: u32 = 4_096;

/// The node behind a request, as its TLS certificate names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub org: OrgCode,
    pub level: Level,
}

/// This node, as a parent.
#[derive(Clone, Copy, Debug)]
pub struct ParentStart {
    pub me: OrgCode,
    pub schema_version: u32,
    pub actor: u64,
    /// The child, as its certificate names it.
    pub peer: Peer,
}

/// How a session that ran to its end went, for the parent's sync state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Operations sent down.
    pub sent: u64,
    /// Operations of the child's push applied here.
    pub applied: u64,
}

/// What the driver does next for a parent session.
#[derive(Debug)]
pub enum ParentAction {
    Work(Work),
    Send(pb::ParentMessage),
    /// The child's state as its hello reported it, for this node's status.
    Keep(pb::NodeStatus),
    /// Ends the session with this error, sent to the child, then `Done`.
    Abort(Status),
    /// The session is over; nothing more comes out of the machine. The response stream ends.
    Done(Result<Served, String>),
}

#[derive(Clone, Copy, Debug)]
enum Awaited {
    Facts,
    Page,
    Apply { batch_no: u64 },
}

pub struct ParentSession {
    start: ParentStart,
    max_batch: u32,
    pull_after: Cursor,
    pull_finished: bool,
    push_finished: bool,
    last_push: u64,
    awaited: VecDeque<Awaited>,
    served: Served,
    pull_batch: u64,
    over: bool,
    out: Vec<ParentAction>,
}

impl ParentSession {
    pub fn new(start: ParentStart) -> Self {
        ParentSession {
            start,
            max_batch: 1,
            pull_after: Cursor::START,
            pull_finished: false,
            push_finished: false,
            last_push: 0,
            awaited: VecDeque::new(),
            served: Served::default(),
            pull_batch: 0,
            over: false,
            out: Vec::new(),
        }
    }

    pub fn is_over(&self) -> bool {
        self.over
    }

    /// The child, as its certificate names it.
    pub fn peer(&self) -> OrgCode {
        self.start.peer.org
    }

    /// The first message of the session. A refusal is the call's status: nothing was
    /// applied, and the machine is over.
    pub fn hello(&mut self, first: Option<pb::ChildMessage>) -> Result<Vec<ParentAction>, Status> {
        let hello = match first {
            Some(pb::ChildMessage {
                body: Some(ChildBody::Hello(hello)),
            }) => hello,
            _ => {
                self.over = true;
                return Err(Status::invalid_argument(
                    "the first message of a sync session must be hello",
                ));
            }
        };
        if let Err(status) = self.check_hello(&hello) {
            self.over = true;
            return Err(status);
        }
        let peer = self.start.peer.org;
        if let Some(report) = hello.report {
            self.out.push(ParentAction::Keep(report));
        }
        self.pull_after = super::cursor_of(hello.pull_after, Cursor::START);
        self.max_batch = hello.max_batch_ops.clamp(1, MAX_BATCH_OPS);
        self.push_finished = hello.push_done;
        self.work(
            Work::WelcomeFacts {
                scope: peer,
                after: self.pull_after,
                except: peer.to_string(),
                bundle_key: crate::bundle::imported_from(peer),
            },
            Awaited::Facts,
        );
        // The first page is read now, before anything the child pushes is applied: the feed's
        // walk covers what was logged after the child's cursor, and a fan-in of townships
        // pushing at once would otherwise make every session walk all the others' pushes.
        self.read(self.pull_after);
        Ok(self.take())
    }

    /// A message from the child after its hello.
    pub fn receive(&mut self, msg: pb::ChildMessage) -> Vec<ParentAction> {
        if !self.over {
            match msg.body {
                Some(ChildBody::Push(batch)) if !self.push_finished => self.push(batch),
                Some(ChildBody::PushDone(_)) if !self.push_finished => {
                    self.push_finished = true;
                    self.maybe_done();
                }
                Some(ChildBody::Push(_) | ChildBody::PushDone(_)) => {
                    self.abort(Status::invalid_argument("a push after the push was done"))
                }
                Some(ChildBody::Hello(_)) => {
                    self.abort(Status::invalid_argument("a second hello"));
                }
                None => self.abort(Status::invalid_argument("an empty message")),
            }
        }
        self.take()
    }

    /// The child ended its stream: nothing more will be pushed.
    pub fn closed(&mut self) -> Vec<ParentAction> {
        if !self.over {
            self.push_finished = true;
            self.maybe_done();
        }
        self.take()
    }

    /// The session failed outside the machine: the child's stream could not be read (the
    /// reason goes back to the child), a store error, or the child went away.
    pub fn failed(&mut self, status: Status) -> Vec<ParentAction> {
        if !self.over {
            self.abort(status);
        }
        self.take()
    }

    /// The result of the oldest piece of work under way.
    pub fn worked(&mut self, worked: Worked) -> Vec<ParentAction> {
        if !self.over {
            match (self.awaited.pop_front(), worked) {
                (Some(Awaited::Facts), Worked::Facts(facts)) => {
                    let me = self.start.me;
                    let welcome = ParentBody::Welcome(pb::Welcome {
                        protocol_version: PROTOCOL_VERSION,
                        schema_version: self.start.schema_version,
                        org_code: me.to_string(),
                        level: me.level().as_str().to_string(),
                        actor: self.start.actor,
                        pull_pending: facts.pending,
                        bundled_start: facts.bundled.map(|(start, _)| cursor_pb(start)),
                        bundled_upto: facts.bundled.map(|(_, upto)| cursor_pb(upto)),
                    });
                    self.send(welcome);
                }
                (Some(Awaited::Page), Worked::Page(page)) => self.page(page),
                (Some(Awaited::Apply { batch_no }), Worked::Applied(report)) => {
                    self.served.applied += report.applied as u64;
                    self.send(ParentBody::Ack(pb::PushAck {
                        batch_no,
                        applied: report.applied as u32,
                        duplicates: report.duplicates as u32,
                        held: report.held as u32,
                        quarantined: report.quarantined as u32,
                    }));
                }
                (awaited, worked) => {
                    return self.failed(Status::internal(format!(
                        "the driver answered {awaited:?} with {worked:?}"
                    )));
                }
            }
            self.maybe_done();
        }
        self.take()
    }

    fn check_hello(&self, hello: &pb::Hello) -> Result<(), Status> {
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
        let schema = self.start.schema_version;
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
        let peer = self.start.peer;
        if hello.org_code != peer.org.to_string() || hello.level != peer.level.as_str() {
            tracing::warn!(certified = %peer.org, claimed = %hello.org_code, "peer claims another identity");
            return Err(Status::permission_denied(format!(
                "certificate names {} {} but the hello claims {} {}",
                peer.level, peer.org, hello.level, hello.org_code
            )));
        }
        let me = self.start.me;
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

    fn take(&mut self) -> Vec<ParentAction> {
        std::mem::take(&mut self.out)
    }

    fn send(&mut self, body: ParentBody) {
        self.out
            .push(ParentAction::Send(pb::ParentMessage { body: Some(body) }));
    }

    fn work(&mut self, work: Work, awaited: Awaited) {
        self.awaited.push_back(awaited);
        self.out.push(ParentAction::Work(work));
    }

    fn read(&mut self, after: Cursor) {
        let peer = self.start.peer.org;
        let work = Work::ReadFeed {
            scope: peer,
            after,
            limit: self.max_batch,
            // The child's own operations (those it pushed here) are not sent back to it.
            except: peer.to_string(),
        };
        self.work(work, Awaited::Page);
    }

    fn page(&mut self, page: FeedPage) {
        self.pull_batch += 1;
        self.served.sent += page.ops.len() as u64;
        // The last page's cursor is past the whole log as read, the child's own operations
        // included: its pull checkpoint never walks them again.
        let upto = page.upto;
        self.send(ParentBody::Pull(pb::PullBatch {
            batch_no: self.pull_batch,
            ops: page.ops.into_iter().map(|op| op.bytes).collect(),
            upto: Some(cursor_pb(upto)),
            last: page.last,
        }));
        if page.last {
            self.pull_finished = true;
        } else {
            self.read(upto);
        }
    }

    fn push(&mut self, batch: pb::PushBatch) {
        if batch.batch_no != self.last_push + 1 {
            return self.abort(Status::invalid_argument(format!(
                "push batch {} out of order, expected {}",
                batch.batch_no,
                self.last_push + 1
            )));
        }
        self.last_push = batch.batch_no;
        let peer = self.start.peer.org;
        let work = Work::Apply {
            ops: batch.ops,
            from: peer.to_string(),
            direction: Direction::FromChild(peer),
        };
        self.work(
            work,
            Awaited::Apply {
                batch_no: batch.batch_no,
            },
        );
    }

    fn maybe_done(&mut self) {
        if !self.over && self.pull_finished && self.push_finished && self.awaited.is_empty() {
            self.over = true;
            self.out.push(ParentAction::Done(Ok(self.served)));
        }
    }

    fn abort(&mut self, status: Status) {
        self.over = true;
        let reason = status.message().to_string();
        self.out.push(ParentAction::Abort(status));
        self.out.push(ParentAction::Done(Err(reason)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> ParentSession {
        let township = OrgCode::new(370_202_001).unwrap();
        ParentSession::new(ParentStart {
            me: OrgCode::new(370_202).unwrap(),
            schema_version: 7,
            actor: 2,
            peer: Peer {
                org: township,
                level: township.level(),
            },
        })
    }

    fn hello(org_code: &str) -> Option<pb::ChildMessage> {
        Some(pb::ChildMessage {
            body: Some(ChildBody::Hello(pb::Hello {
                protocol_version: PROTOCOL_VERSION,
                schema_version: 7,
                org_code: org_code.into(),
                level: "township".into(),
                max_batch_ops: 100,
                ..Default::default()
            })),
        })
    }

    fn push(batch_no: u64) -> pb::ChildMessage {
        pb::ChildMessage {
            body: Some(ChildBody::Push(pb::PushBatch {
                batch_no,
                ops: vec![vec![1]],
            })),
        }
    }

    #[test]
    fn a_hello_claiming_another_unit_is_refused() {
        let status = session().hello(hello("370202002")).unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("hello claims"), "{status:?}");
    }

    #[test]
    fn a_push_batch_out_of_order_is_not_applied() {
        let mut s = session();
        s.hello(hello("370202001")).unwrap();
        let out = s.receive(push(1));
        assert!(matches!(out[..], [ParentAction::Work(Work::Apply { .. })]));
        let out = s.receive(push(3));
        assert!(
            matches!(&out[..], [ParentAction::Abort(status), ParentAction::Done(Err(_))]
                if status.message().contains("push batch 3 out of order, expected 2")),
            "{out:?}"
        );
    }
}
