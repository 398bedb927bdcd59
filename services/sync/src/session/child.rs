//! The child's side of a session as a state machine.
//!
//! The child says hello (with its pull checkpoint, and whether it has anything to push),
//! pushes its upward feed in batches with at most [`WINDOW`] unacknowledged, and applies the
//! parent's pull batches in order. A push checkpoint moves only on the parent's ack of a
//! batch; a pull checkpoint only after the batch it covers was applied here. Anything out of
//! protocol (a message before the welcome, a second welcome, an ack or a pull batch out of
//! order) ends the session with nothing more applied or moved.

use super::{WINDOW, Work, Worked, cursor_of};
use crate::authority::Direction;
use crate::{Error, PROTOCOL_VERSION};
use renda_proto::sync::v1 as pb;
use renda_proto::sync::v1::child_message::Body as ChildBody;
use renda_proto::sync::v1::parent_message::Body as ParentBody;
use renda_replica::OrgCode;
use renda_store::{Cursor, Direction as Checkpoint, FeedPage};
use std::collections::VecDeque;

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

/// What a child session starts from, read from its store by the driver.
#[derive(Clone, Debug)]
pub struct ChildStart {
    pub me: OrgCode,
    pub parent: OrgCode,
    pub schema_version: u32,
    pub actor: u64,
    pub max_batch: u32,
    /// The state this node reports upward in its hello.
    pub report: pb::NodeStatus,
    pub push_after: Cursor,
    pub pull_after: Cursor,
    /// The end of the last upward bundle exported for the parent.
    pub exported: Cursor,
}

/// What the driver does next for a child session.
#[derive(Debug)]
pub enum ChildAction {
    Work(Work),
    Send(pb::ChildMessage),
    /// Nothing more goes to the parent: the request stream ends.
    EndSend,
    /// The session is over; nothing more comes out of the machine.
    Done(Result<SessionReport, Error>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Push {
    /// The hello went without a push: the parent's welcome says where it starts (after what
    /// a bundle carried up).
    AwaitWelcome,
    /// A page of the upward feed after `after` is being read.
    Reading { first: bool, after: Cursor },
    /// The window is full: the page after this cursor is read once an ack frees a place.
    Paused(Cursor),
    /// Everything was sent and the parent told so.
    Finished,
}

/// The result a piece of work that is under way brings back, in the order asked.
#[derive(Clone, Copy, Debug)]
enum Awaited {
    Page,
    /// The apply of a pull batch, whose checkpoint moves to `upto` once it is committed.
    Pull {
        upto: Cursor,
    },
    Saved,
}

pub struct ChildSession {
    start: ChildStart,
    peer: String,
    push: Push,
    hello_sent: bool,
    welcomed: bool,
    next_batch: u64,
    /// Push batches sent and not yet acknowledged, oldest first, with the cursor each covers.
    in_flight: VecDeque<(u64, Cursor)>,
    awaited: VecDeque<Awaited>,
    last_pull: u64,
    pull_done: bool,
    parent_closed: bool,
    over: bool,
    report: SessionReport,
    out: Vec<ChildAction>,
}

impl ChildSession {
    /// A new session and its first actions.
    pub fn new(start: ChildStart) -> (Self, Vec<ChildAction>) {
        let mut session = ChildSession {
            peer: start.parent.to_string(),
            push: Push::AwaitWelcome,
            hello_sent: false,
            welcomed: false,
            next_batch: 0,
            in_flight: VecDeque::new(),
            awaited: VecDeque::new(),
            last_pull: 0,
            pull_done: false,
            parent_closed: false,
            over: false,
            report: SessionReport::default(),
            out: Vec::new(),
            start,
        };
        // After a bundle went up by hand, the parent's welcome may say it imported it: wait
        // for it before pushing, rather than send those operations again.
        if session.start.exported > session.start.push_after {
            session.hello(false);
        } else {
            session.read(true, session.start.push_after);
        }
        let out = std::mem::take(&mut session.out);
        (session, out)
    }

    /// The session ended with a result: nothing more is asked of the driver.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// A message from the parent.
    pub fn receive(&mut self, msg: pb::ParentMessage) -> Vec<ChildAction> {
        if !self.over {
            match msg.body {
                Some(ParentBody::Welcome(welcome)) => self.welcome(welcome),
                Some(_) if !self.welcomed => self.protocol("a message came before the welcome"),
                Some(ParentBody::Ack(ack)) => self.ack(ack),
                Some(ParentBody::Pull(batch)) => self.pull(batch),
                None => self.protocol("an empty message"),
            }
        }
        self.take()
    }

    /// The result of the oldest piece of work under way.
    pub fn worked(&mut self, worked: Worked) -> Vec<ChildAction> {
        if !self.over {
            match (self.awaited.pop_front(), worked) {
                (Some(Awaited::Page), Worked::Page(page)) => self.page(page),
                (Some(Awaited::Pull { upto }), Worked::Applied(applied)) => {
                    self.report.pulled_applied += applied.applied as u64;
                    self.report.quarantined += applied.quarantined as u64;
                    self.checkpoint(Checkpoint::Pull, upto);
                }
                (Some(Awaited::Saved), Worked::Saved) => {}
                (awaited, worked) => {
                    // The driver fed back something that was not asked for: a driver bug.
                    self.fail(Error::Protocol {
                        peer: self.peer.clone(),
                        reason: format!("the driver answered {awaited:?} with {worked:?}"),
                    });
                }
            }
            self.maybe_done();
        }
        self.take()
    }

    /// The parent ended its stream.
    pub fn closed(&mut self) -> Vec<ChildAction> {
        if !self.over {
            self.parent_closed = true;
            self.maybe_done();
        }
        self.take()
    }

    /// The session failed outside the machine (a transport or store error).
    pub fn failed(&mut self, error: Error) -> Vec<ChildAction> {
        if !self.over {
            self.fail(error);
        }
        self.take()
    }

    fn take(&mut self) -> Vec<ChildAction> {
        std::mem::take(&mut self.out)
    }

    fn send(&mut self, body: ChildBody) {
        self.out
            .push(ChildAction::Send(pb::ChildMessage { body: Some(body) }));
    }

    fn work(&mut self, work: Work, awaited: Awaited) {
        self.awaited.push_back(awaited);
        self.out.push(ChildAction::Work(work));
    }

    fn checkpoint(&mut self, direction: Checkpoint, at: Cursor) {
        let peer = self.peer.clone();
        self.work(
            Work::Checkpoint {
                peer,
                direction,
                at,
            },
            Awaited::Saved,
        );
    }

    fn read(&mut self, first: bool, after: Cursor) {
        self.push = Push::Reading { first, after };
        let limit = self.start.max_batch;
        self.work(Work::ReadPush { after, limit }, Awaited::Page);
    }

    fn hello(&mut self, push_done: bool) {
        self.hello_sent = true;
        let start = &self.start;
        let hello = pb::Hello {
            protocol_version: PROTOCOL_VERSION,
            schema_version: start.schema_version,
            org_code: start.me.to_string(),
            level: start.me.level().as_str().to_string(),
            actor: start.actor,
            pull_after: Some(crate::bundle::cursor_pb(start.pull_after)),
            max_batch_ops: start.max_batch,
            push_done,
            report: Some(start.report.clone()),
        };
        self.send(ChildBody::Hello(hello));
    }

    fn finish_push(&mut self, tell: bool) {
        if tell {
            self.send(ChildBody::PushDone(pb::PushDone {}));
        }
        self.out.push(ChildAction::EndSend);
        self.push = Push::Finished;
    }

    fn page(&mut self, page: FeedPage) {
        let Push::Reading { first, after } = self.push else {
            return self.protocol("a page came with no read under way");
        };
        let nothing = page.ops.is_empty();
        // Nothing in the upward feed up to the end of the log awaits an ack: the checkpoint
        // moves there now, so the next round does not walk again what came from above.
        if first && nothing && page.upto > after {
            self.checkpoint(Checkpoint::Push, page.upto);
        }
        if !self.hello_sent {
            self.hello(nothing);
            if nothing {
                return self.finish_push(false);
            }
        } else if nothing {
            return self.finish_push(true);
        }
        self.next_batch += 1;
        let batch_no = self.next_batch;
        // The last page's cursor is past what the log held when it was read: once the parent
        // acknowledges it, the checkpoint never walks what came from above again.
        self.in_flight.push_back((batch_no, page.upto));
        self.report.pushed += page.ops.len() as u64;
        self.send(ChildBody::Push(pb::PushBatch {
            batch_no,
            ops: page.ops.into_iter().map(|op| op.bytes).collect(),
        }));
        if page.last {
            self.finish_push(true);
        } else if self.in_flight.len() < WINDOW {
            self.read(false, page.upto);
        } else {
            self.push = Push::Paused(page.upto);
        }
    }

    fn welcome(&mut self, welcome: pb::Welcome) {
        if self.welcomed {
            return self.protocol("a second welcome");
        }
        if welcome.org_code != self.peer {
            return self.protocol(&format!(
                "expected parent {} but {} answered",
                self.peer, welcome.org_code
            ));
        }
        let schema = self.start.schema_version;
        if welcome.protocol_version != PROTOCOL_VERSION || welcome.schema_version != schema {
            return self.fail(Error::VersionMismatch {
                peer: self.peer.clone(),
                detail: format!(
                    "it speaks protocol {} with schema {}, this node protocol {PROTOCOL_VERSION} \
                     with schema {schema}; nothing was applied",
                    welcome.protocol_version, welcome.schema_version,
                ),
            });
        }
        self.welcomed = true;
        if self.push == Push::AwaitWelcome {
            let push_after = self.start.push_after;
            let start = covered_by_bundle(&welcome, push_after);
            if start > push_after {
                self.checkpoint(Checkpoint::Push, start);
                self.report.bundled = true;
            }
            self.read(true, start);
        }
    }

    fn ack(&mut self, ack: pb::PushAck) {
        let Some(&(batch_no, upto)) = self.in_flight.front() else {
            return self.protocol(&format!("ack {} for no batch", ack.batch_no));
        };
        if batch_no != ack.batch_no {
            return self.protocol(&format!(
                "ack {} out of order, expected {batch_no}",
                ack.batch_no
            ));
        }
        self.in_flight.pop_front();
        // The parent committed the batch: only now does the checkpoint move.
        self.checkpoint(Checkpoint::Push, upto);
        self.report.push_batches += 1;
        self.report.held_at_parent += u64::from(ack.held);
        self.report.quarantined += u64::from(ack.quarantined);
        if let Push::Paused(after) = self.push
            && self.in_flight.len() < WINDOW
        {
            self.read(false, after);
        }
    }

    fn pull(&mut self, batch: pb::PullBatch) {
        if self.pull_done {
            return self.protocol(&format!("pull batch {} after the last", batch.batch_no));
        }
        if batch.batch_no != self.last_pull + 1 {
            return self.protocol(&format!(
                "pull batch {} out of order, expected {}",
                batch.batch_no,
                self.last_pull + 1
            ));
        }
        self.last_pull = batch.batch_no;
        self.pull_done = batch.last;
        let upto = cursor_of(batch.upto, self.start.pull_after);
        self.report.pulled += batch.ops.len() as u64;
        if batch.ops.is_empty() {
            self.checkpoint(Checkpoint::Pull, upto);
        } else {
            let work = Work::Apply {
                ops: batch.ops,
                from: self.peer.clone(),
                direction: Direction::FromParent(self.start.parent),
            };
            self.work(work, Awaited::Pull { upto });
        }
    }

    fn maybe_done(&mut self) {
        if self.over || !self.parent_closed || !self.awaited.is_empty() {
            return;
        }
        // The parent ends its stream once it has sent its last pull batch and acknowledged
        // every push batch; anything missing means the session broke off.
        if !self.welcomed
            || !self.pull_done
            || !self.in_flight.is_empty()
            || self.push != Push::Finished
        {
            return self.protocol("the parent closed the session early");
        }
        self.over = true;
        self.out.push(ChildAction::Done(Ok(self.report.clone())));
    }

    fn protocol(&mut self, reason: &str) {
        self.fail(Error::Protocol {
            peer: self.peer.clone(),
            reason: reason.to_string(),
        });
    }

    fn fail(&mut self, error: Error) {
        self.over = true;
        self.out.push(ChildAction::Done(Err(error)));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use renda_store::LoggedOp;

    fn start(push_after: u64) -> ChildStart {
        let at = |seq| Cursor {
            position: seq,
            local_seq: seq,
        };
        ChildStart {
            me: OrgCode::new(370_202_001).unwrap(),
            parent: OrgCode::new(370_202).unwrap(),
            schema_version: 7,
            actor: 1,
            max_batch: 2,
            report: pb::NodeStatus::default(),
            push_after: at(push_after),
            pull_after: at(0),
            exported: at(0),
        }
    }

    fn page(from: u64, n: u64, last: bool) -> Worked {
        Worked::Page(FeedPage {
            ops: (from..from + n)
                .map(|seq| LoggedOp {
                    cursor: Cursor {
                        position: seq,
                        local_seq: seq,
                    },
                    bytes: vec![1],
                })
                .collect(),
            upto: Cursor {
                position: from + n,
                local_seq: from + n,
            },
            last,
        })
    }

    fn welcome() -> pb::ParentMessage {
        pb::ParentMessage {
            body: Some(ParentBody::Welcome(pb::Welcome {
                protocol_version: PROTOCOL_VERSION,
                schema_version: 7,
                org_code: "370202".into(),
                level: "county".into(),
                ..Default::default()
            })),
        }
    }

    fn pull(batch_no: u64, last: bool) -> pb::ParentMessage {
        pb::ParentMessage {
            body: Some(ParentBody::Pull(pb::PullBatch {
                batch_no,
                ops: vec![vec![1]],
                upto: Some(pb::Cursor {
                    position: batch_no * 10,
                    seq: batch_no * 10,
                }),
                last,
            })),
        }
    }

    fn moves_checkpoint(actions: &[ChildAction]) -> bool {
        actions
            .iter()
            .any(|a| matches!(a, ChildAction::Work(Work::Checkpoint { .. })))
    }

    fn failed(actions: &[ChildAction], with: &str) -> bool {
        actions
            .iter()
            .any(|a| matches!(a, ChildAction::Done(Err(e)) if e.to_string().contains(with)))
    }

    #[test]
    fn at_most_a_window_of_batches_waits_for_acks() {
        let (mut s, first) = ChildSession::new(start(0));
        assert!(matches!(
            first[..],
            [ChildAction::Work(Work::ReadPush { .. })]
        ));
        let mut sent = 0;
        let mut reads = 1;
        let mut from = 0;
        while reads > 0 {
            reads -= 1;
            let out = s.worked(page(from, 2, false));
            from += 2;
            sent += out
                .iter()
                .filter(|a| matches!(a, ChildAction::Send(_)))
                .count();
            reads += out
                .iter()
                .filter(|a| matches!(a, ChildAction::Work(Work::ReadPush { .. })))
                .count();
        }
        // The hello and WINDOW batches; the next page waits for an ack.
        assert_eq!(sent, 1 + WINDOW);
        s.receive(welcome());
        let out = s.receive(pb::ParentMessage {
            body: Some(ParentBody::Ack(pb::PushAck {
                batch_no: 1,
                ..Default::default()
            })),
        });
        assert!(moves_checkpoint(&out), "{out:?}");
        assert!(
            out.iter()
                .any(|a| matches!(a, ChildAction::Work(Work::ReadPush { .. }))),
            "an ack frees a place in the window: {out:?}"
        );
    }

    #[test]
    fn a_pull_batch_out_of_order_ends_the_session_with_nothing_applied() {
        let (mut s, _) = ChildSession::new(start(0));
        s.worked(page(0, 0, true));
        assert!(failed(&s.receive(pull(1, false)), "before the welcome"));

        let (mut s, _) = ChildSession::new(start(0));
        s.worked(page(0, 0, true));
        s.receive(welcome());
        let out = s.receive(pull(2, false));
        assert!(
            failed(&out, "pull batch 2 out of order, expected 1"),
            "{out:?}"
        );
        assert!(!out.iter().any(|a| matches!(a, ChildAction::Work(_))));
        assert!(s.receive(pull(1, false)).is_empty(), "the machine is over");
    }

    #[test]
    fn the_pull_checkpoint_moves_only_after_the_batch_is_applied() {
        let (mut s, _) = ChildSession::new(start(0));
        s.worked(page(0, 0, true));
        s.receive(welcome());
        let out = s.receive(pull(1, true));
        assert!(matches!(out[..], [ChildAction::Work(Work::Apply { .. })]));
        assert!(!moves_checkpoint(&out));
        let out = s.worked(Worked::Applied(renda_store::BatchReport::default()));
        assert!(moves_checkpoint(&out), "{out:?}");
        s.worked(Worked::Saved);
        let out = s.closed();
        assert!(matches!(out[..], [ChildAction::Done(Ok(_))]), "{out:?}");
    }
}
