//! The sync session as two state machines, one per side: messages and the results of store
//! work go in, actions come out (store work to perform, messages to send, the end of the
//! session). Neither machine does I/O or keeps time: tonic drives them in production
//! ([`crate::client`], [`crate::server`]) and a seeded in-memory network drives them in the
//! simulation test, so the protocol the tests prove is the one the nodes run.
//!
//! A driver performs the actions of one machine in the order they came out and feeds the
//! result of each piece of store work back (with [`child::ChildSession::worked`] or
//! [`parent::ParentSession::worked`]) before it performs the next one; messages may arrive
//! between any two actions. A checkpoint is only ever moved by an action that comes out after
//! the result of the work it covers went in, so a crash between any two actions loses nothing
//! that was acknowledged and applies nothing twice.

pub mod child;
pub mod parent;

use crate::authority::{Direction, Policy};
use renda_replica::OrgCode;
use renda_store::{BatchReport, Cursor, Direction as Checkpoint, FeedPage, Store};

/// Push batches a child sends ahead of the parent's acknowledgements.
pub const WINDOW: usize = 4;

/// One piece of store work a machine asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// The next page of this node's upward feed after `after`.
    ReadPush { after: Cursor, limit: u32 },
    /// The next page of `scope`'s downward feed after `after`, leaving out what came from
    /// `except` (the child itself).
    ReadFeed {
        scope: OrgCode,
        after: Cursor,
        limit: u32,
        except: String,
    },
    /// Applies encoded operations from `from`, checked as coming from `direction`.
    Apply {
        ops: Vec<Vec<u8>>,
        from: String,
        direction: Direction,
    },
    /// Moves the checkpoint `direction` with `peer` to `at`.
    Checkpoint {
        peer: String,
        direction: Checkpoint,
        at: Cursor,
    },
    /// What a parent's welcome says: how much of `scope` waits after `after`, and what the
    /// parent imported from the child by bundle (kept under `bundle_key`).
    WelcomeFacts {
        scope: OrgCode,
        after: Cursor,
        except: String,
        bundle_key: String,
    },
}

/// The result of a [`Work`], fed back to the machine that asked for it.
#[derive(Clone, Debug)]
pub enum Worked {
    Page(FeedPage),
    Applied(BatchReport),
    Saved,
    Facts(WelcomeFacts),
}

/// What a parent tells a child in its welcome beside its identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WelcomeFacts {
    /// Operations of the child's scope waiting after its pull checkpoint.
    pub pending: u64,
    /// The child-feed range of the furthest upward bundle imported from the child, if any.
    pub bundled: Option<(Cursor, Cursor)>,
}

/// Performs one piece of store work: the same code for both sides and for every driver.
pub async fn perform(
    store: &Store,
    policy: &Policy,
    work: Work,
) -> Result<Worked, renda_store::Error> {
    Ok(match work {
        Work::ReadPush { after, limit } => Worked::Page(store.push_page(after, limit).await?),
        Work::ReadFeed {
            scope,
            after,
            limit,
            except,
        } => Worked::Page(store.feed_page(scope, after, limit, Some(&except)).await?),
        Work::Apply {
            ops,
            from,
            direction,
        } => {
            let check = |op: &renda_replica::Op, record_org: Option<OrgCode>| {
                policy.check(op, record_org, direction)
            };
            Worked::Applied(store.apply_batch(&ops, Some(&from), &check).await?)
        }
        Work::Checkpoint {
            peer,
            direction,
            at,
        } => {
            store.set_checkpoint(&peer, direction, at).await?;
            Worked::Saved
        }
        Work::WelcomeFacts {
            scope,
            after,
            except,
            bundle_key,
        } => {
            let pending = store.count_for_scope(scope, after, Some(&except)).await?;
            let upto = store.checkpoint(&bundle_key, Checkpoint::Pull).await?;
            let bundled = if upto > Cursor::START {
                Some((store.checkpoint(&bundle_key, Checkpoint::Push).await?, upto))
            } else {
                None
            };
            Worked::Facts(WelcomeFacts { pending, bundled })
        }
    })
}

pub(crate) fn cursor_of(c: Option<renda_proto::sync::v1::Cursor>, or: Cursor) -> Cursor {
    c.map_or(or, |c| Cursor {
        position: c.position,
        local_seq: c.seq,
    })
}
