//! The write rules on the replication side, and which org units a record is addressed to.
//!
//! The API checks every call with `renda_domain::authority::check_write` before writing. A
//! receiving node checks every incoming operation with [`replication_rule`] against the same
//! rules, using what the operation itself states:
//!
//! - an event's payload field `org` (every event kind has it, see [`crate::schema`]) is the org
//!   the step is taken for; the operation's origin org must be allowed to take that step there;
//! - a write of the `org` field (creating or moving a record) must be an edit the origin may
//!   make for that org.
//!
//! Writes to other fields and set changes do not name the record's org: they are checked as an
//! edit of the record's org as the receiving store knows it (the store's policy hook passes it;
//! a record the store has not seen yet has none, and such a write goes through). Operations of
//! local-only kinds (personal data) are always refused: they must never leave their node.

use std::sync::Arc;

use renda_domain::authority::{RecordKind, Step, check_write};
use renda_domain::org::{OrgCode, OrgTree};
use renda_domain::record::{governed_as, step_of};
use renda_replica::schema::ORG;
use renda_replica::{Change, FieldId, Op, RecordView, Schema, Value};

/// The rule the sync engine plugs into `Store::apply_batch` (a `renda_store::Policy`): refuses (to
/// quarantine) an operation whose origin org may not take the step it states, or, for other
/// field writes and set changes, may not edit a record of the org the store passes. The reason
/// names the record kind, the step and the rule, never personal data.
pub fn replication_rule(
    schema: Arc<Schema>,
) -> impl Fn(&Op, Option<OrgCode>) -> Result<(), String> + Send + Sync + 'static {
    move |op: &Op, record_org: Option<OrgCode>| check_op(&schema, op, record_org)
}

/// The full check of an incoming operation given the record's current view: field writes and
/// set changes are checked against the record's org too.
pub fn check_with_record(
    schema: &Schema,
    op: &Op,
    view: Option<&RecordView>,
) -> Result<(), String> {
    check_op(schema, op, view.and_then(|v| v.org))
}

fn check_op(schema: &Schema, op: &Op, record_org: Option<OrgCode>) -> Result<(), String> {
    let Some(kind) = schema.kind(op.kind) else {
        return Err(format!("unknown record kind {}", op.kind.0));
    };
    if kind.local_only {
        return Err(format!(
            "{} records hold personal data and never leave the node that wrote them",
            kind.name
        ));
    }
    let Some(record_kind) = governed_as(&kind.name) else {
        return Err(format!("no write rule for record kind {}", kind.name));
    };
    let (step, org) = match &op.change {
        Change::Put {
            field,
            value: Value::Org(org),
            ..
        } if *field == ORG => (Step::Edit, *org),
        Change::Event { event, payload } => {
            let Some(schema_event) = kind.event(*event) else {
                return Err(format!("unknown event {} of {}", event.0, kind.name));
            };
            let Some(step) = step_of(&kind.name, &schema_event.name) else {
                return Err(format!(
                    "no write rule for {}.{}",
                    kind.name, schema_event.name
                ));
            };
            let org = payload
                .iter()
                .find(|(id, _)| *id == FieldId(0))
                .and_then(|(_, v)| v.as_org());
            let Some(org) = org else {
                return Err(format!("{}.{} names no org", kind.name, schema_event.name));
            };
            (step, org)
        }
        _ => match record_org {
            Some(org) => (Step::Edit, org),
            None => return Ok(()),
        },
    };
    check(op.origin_org, record_kind, step, org)
        .map_err(|e| format!("{} {step:?} from {}: {e}", kind.name, op.origin_org))
}

fn check(origin: OrgCode, kind: RecordKind, step: Step, org: OrgCode) -> Result<(), String> {
    let parse = |o: OrgCode| OrgCode::parse(&o.to_string()).map_err(|e| e.to_string());
    let author = parse(origin)?;
    let record = parse(org)?;
    // The shape of the tree follows from the codes alone, so a tree of the two units and their
    // ancestors decides the rules without reference data that may lag behind.
    let mut tree = OrgTree::new();
    for code in [&author, &record] {
        let mut chain = code.ancestors();
        chain.reverse();
        chain.push(*code);
        for unit in chain {
            let name = format!("单位{unit}");
            tree.add(unit, &name).map_err(|e| e.to_string())?;
        }
    }
    check_write(&author, author.level(), kind, step, &record, &tree).map_err(|e| e.to_string())
}

/// The org units a record is addressed to beyond its own org and its ancestors: an activity
/// dispatched to deputies goes down to each deputy's org unit, and a record with steps taken for
/// another org (a reply entered where the unit sits, a satisfaction where the deputy is) goes
/// there too. Pass it as `renda_store::Options::audience`.
pub fn audience(schema: Arc<Schema>) -> renda_store::Audience {
    Arc::new(move |view: &RecordView| {
        let Some(kind) = schema.kind(view.kind) else {
            return Vec::new();
        };
        let mut out: Vec<OrgCode> = Vec::new();
        for event in &view.events {
            let Some(schema_event) = kind.event(event.kind) else {
                continue;
            };
            for (id, value) in &event.payload {
                let named_org = schema_event.fields.iter().any(|f| {
                    f.id == *id && (f.name == "org" || f.name == "to_org" || f.name == "to")
                });
                if let (true, Some(org)) = (named_org, value.as_org())
                    && Some(org) != view.org
                {
                    out.push(org);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    })
}

/// Whether an operation must stay on the node that wrote it (the sync engine skips these).
pub fn is_local_only(schema: &Schema, op: &Op) -> bool {
    schema.kind(op.kind).is_some_and(|k| k.local_only)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::kind;
    use renda_replica::schema::KindId;
    use renda_replica::{ActorId, Author, Hlc, OpId, RecordId};

    fn org(code: &str) -> OrgCode {
        code.parse().expect("test org code")
    }

    /// An op of `kind` written at `origin`.
    fn op(kind: KindId, origin: &str, change: Change) -> Op {
        Op {
            id: OpId {
                origin: ActorId(5),
                seq: 1,
            },
            record: RecordId(uuid::Uuid::nil()),
            kind,
            hlc: Hlc::new(1, 0),
            origin_org: org(origin),
            author: Author::system(org(origin)),
            change,
        }
    }

    fn event_op(schema: &Schema, kind: &str, event: &str, origin: &str, for_org: &str) -> Op {
        let k = schema.kind_named(kind).expect("kind");
        let e = k.event_named(event).expect("event");
        let change = Change::Event {
            event: e.id,
            payload: vec![(FieldId(0), Value::Org(org(for_org)))],
        };
        op(k.id, origin, change)
    }

    #[test]
    fn a_forged_check_in_is_refused_on_receipt() {
        let schema = Arc::new(crate::schema());
        let rule = replication_rule(schema.clone());
        let own = event_op(
            &schema,
            kind::ACTIVITY,
            "checked_in",
            "370202001",
            "370202001",
        );
        assert_eq!(rule(&own, None), Ok(()));
        let forged = event_op(&schema, kind::ACTIVITY, "checked_in", "370202", "370202001");
        let reason = rule(&forged, None).expect_err("county forging a township check-in");
        assert!(reason.contains("belongs to 370202001"), "{reason}");
    }

    #[test]
    fn assignment_only_from_a_county_or_city_above() {
        let schema = Arc::new(crate::schema());
        let rule = replication_rule(schema.clone());
        let by_county = event_op(&schema, kind::SUGGESTION, "assigned", "370202", "370202001");
        assert_eq!(rule(&by_county, None), Ok(()));
        let by_township = event_op(
            &schema,
            kind::SUGGESTION,
            "assigned",
            "370202001",
            "370202001",
        );
        assert!(rule(&by_township, None).is_err());
        let other_county = event_op(&schema, kind::SUGGESTION, "assigned", "370212", "370202001");
        assert!(rule(&other_county, None).is_err());
    }

    #[test]
    fn local_only_records_never_replicate() {
        let schema = Arc::new(crate::schema());
        let k = schema.kind_named(kind::DEPUTY_IDENTITY).expect("kind");
        let op = op(
            k.id,
            "370202001",
            Change::Put {
                field: ORG,
                value: Value::Org(org("370202001")),
                seen: vec![],
            },
        );
        assert!(is_local_only(&schema, &op));
        assert!(replication_rule(schema)(&op, None).is_err());
    }

    #[test]
    fn a_field_write_is_checked_against_the_record_org() {
        let schema = Arc::new(crate::schema());
        let rule = replication_rule(schema.clone());
        let k = schema.kind_named(kind::STATION).expect("kind");
        let field = k
            .fields
            .iter()
            .find(|f| f.id != ORG && f.id != renda_replica::schema::DELETED)
            .expect("a station has fields");
        let op = op(
            k.id,
            "370202002",
            Change::Put {
                field: field.id,
                value: Value::Null,
                seen: vec![],
            },
        );
        assert_eq!(rule(&op, None), Ok(()), "a record not seen yet");
        assert_eq!(rule(&op, Some(org("370202002"))), Ok(()), "its own record");
        assert!(
            rule(&op, Some(org("370202001"))).is_err(),
            "a sibling township's record"
        );
    }

    #[test]
    fn every_event_kind_has_a_write_rule() {
        let schema = crate::schema();
        for k in schema.kinds() {
            assert!(governed_as(&k.name).is_some(), "{}", k.name);
            for e in &k.events {
                assert!(step_of(&k.name, &e.name).is_some(), "{}.{}", k.name, e.name);
            }
        }
    }
}
