//! Which operations a node accepts from a peer (design.md §4).
//!
//! Two layers: the org tree, checked here for every operation (a child may only send
//! operations that originated in its own subtree; a parent may send anything, since it relays
//! what is addressed to the child), and the domain's write rules (who may author which record
//! and step), which `renda-domain` supplies as a [`DomainRule`]. An operation that breaks
//! either is quarantined with the reason, never applied or relayed; the rest of the batch goes on.

use renda_replica::{Op, OrgCode};
use std::sync::Arc;

/// The domain's write rule: `Err(reason)` when `op` may not be authored at its origin org;
/// the second argument is the org unit of the record as the receiving store knows it (`None`
/// for a record it has not seen yet).
pub type DomainRule = Arc<dyn Fn(&Op, Option<OrgCode>) -> Result<(), String> + Send + Sync>;

/// The acceptance rule of one node.
#[derive(Clone)]
pub struct Policy {
    domain: DomainRule,
}

/// Where a batch comes from, relative to the receiving node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From a child (or a node further down): operations must originate in its subtree.
    FromChild(OrgCode),
    /// From the parent (or a node further up).
    FromParent(OrgCode),
}

impl Policy {
    pub fn new(domain: DomainRule) -> Self {
        Policy { domain }
    }

    /// Accepts every operation the org tree allows; for tests and tools without domain rules.
    pub fn org_tree_only() -> Self {
        Policy {
            domain: Arc::new(|_, _| Ok(())),
        }
    }

    pub fn check(
        &self,
        op: &Op,
        record_org: Option<OrgCode>,
        from: Direction,
    ) -> Result<(), String> {
        if let Direction::FromChild(sender) = from
            && !sender.contains(op.origin_org)
        {
            return Err(format!(
                "operation {}:{} originated at {} which is outside the sender {}'s subtree",
                op.id.origin, op.id.seq, op.origin_org, sender
            ));
        }
        (self.domain)(op, record_org)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use renda_replica::{ActorId, Author, Change, FieldId, Hlc, KindId, OpId, RecordId, Value};

    fn op(origin_org: u64) -> Op {
        let org = OrgCode::new(origin_org).unwrap();
        Op {
            id: OpId {
                origin: ActorId(1),
                seq: 1,
            },
            record: RecordId(uuid::Uuid::from_u128(1)),
            kind: KindId(1),
            hlc: Hlc::new(1, 0),
            origin_org: org,
            author: Author::system(org),
            change: Change::Put {
                field: FieldId(2),
                value: Value::Null,
                seen: vec![],
            },
        }
    }

    #[test]
    fn a_child_cannot_relay_operations_from_outside_its_subtree() {
        let policy = Policy::org_tree_only();
        let township = OrgCode::new(370_202_001).unwrap();
        assert!(
            policy
                .check(&op(370_202_001), None, Direction::FromChild(township))
                .is_ok()
        );
        let err = policy
            .check(&op(370_202), None, Direction::FromChild(township))
            .unwrap_err();
        assert!(
            err.contains("outside the sender 370202001's subtree"),
            "{err}"
        );
        let county = OrgCode::new(370_202).unwrap();
        assert!(
            policy
                .check(&op(370_202_001), None, Direction::FromChild(county))
                .is_ok()
        );
        assert!(
            policy
                .check(&op(370_212_001), None, Direction::FromChild(county))
                .is_err()
        );
        assert!(
            policy
                .check(&op(370_200), None, Direction::FromParent(county))
                .is_ok()
        );
    }
}
