//! Property tests: any interleaving, duplication and batching of operations over four
//! replicas converges to identical materialised state, and every operation acknowledged
//! anywhere is present everywhere once all have exchanged.
//!
//! Run more cases with `PROPTEST_CASES=10000 cargo test -p renda-replica --test convergence`;
//! a failure prints the minimal schedule and the seed to replay it.

use proptest::prelude::*;
use renda_replica::testkit;
use renda_replica::{
    ActorId, Author, FieldId, KindId, Materialise, Op, OrgCode, Outcome, Record, RecordId, Replica,
    Replicated, SetId, Value,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

const REPLICAS: usize = 4;
const NOTE: KindId = KindId(1);

#[derive(Clone, Debug)]
enum Step {
    /// Replica `at` writes a field of one of four records.
    Put {
        at: usize,
        record: u8,
        field: u8,
        value: u8,
    },
    Add {
        at: usize,
        record: u8,
        member: u8,
    },
    Remove {
        at: usize,
        record: u8,
        member: u8,
    },
    Event {
        at: usize,
        record: u8,
        by: u8,
    },
    /// Replica `to` receives a batch of `from`'s log: the ops at the chosen positions, in the
    /// chosen order, possibly repeated; the encoded form is what travels.
    Deliver {
        from: usize,
        to: usize,
        picks: Vec<u16>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let at = 0..REPLICAS;
    prop_oneof![
        4 => (at.clone(), 0..4u8, 0..3u8, any::<u8>())
            .prop_map(|(at, record, field, value)| Step::Put { at, record, field, value }),
        2 => (at.clone(), 0..4u8, 0..3u8).prop_map(|(at, record, member)| Step::Add { at, record, member }),
        2 => (at.clone(), 0..4u8, 0..3u8).prop_map(|(at, record, member)| Step::Remove { at, record, member }),
        1 => (at.clone(), 0..4u8, any::<u8>()).prop_map(|(at, record, by)| Step::Event { at, record, by }),
        4 => (at.clone(), at, prop::collection::vec(any::<u16>(), 0..12))
            .prop_map(|(from, to, picks)| Step::Deliver { from, to, picks }),
    ]
}

fn org(i: usize) -> OrgCode {
    OrgCode::new(370_202_001 + i as u64).expect("test org codes are valid")
}

fn replicas() -> Vec<Replica> {
    let schema = Arc::new(testkit::schema());
    (0..REPLICAS)
        .map(|i| Replica::new(ActorId(i as u64 + 1), org(i), schema.clone()))
        .collect()
}

fn record_id(n: u8) -> RecordId {
    RecordId(Uuid::from_u128(1_000 + u128::from(n)))
}

fn run(steps: &[Step]) -> Vec<Replica> {
    let mut nodes = replicas();
    let mut now = 1_000u64;
    for step in steps {
        now += 7;
        match step {
            Step::Put {
                at,
                record,
                field,
                value,
            } => {
                let field = [FieldId(2), FieldId(3), FieldId(4)][*field as usize];
                let value = if field == FieldId(4) {
                    Value::Int(i64::from(*value))
                } else {
                    Value::Text(format!("v{value}"))
                };
                nodes[*at]
                    .put(record_id(*record), NOTE, field, value, now)
                    .expect("valid put");
            }
            Step::Add { at, record, member } => {
                nodes[*at]
                    .add(
                        record_id(*record),
                        NOTE,
                        SetId(1),
                        Uuid::from_u128(u128::from(*member)),
                        now,
                    )
                    .expect("valid add");
            }
            Step::Remove { at, record, member } => {
                let author = Author::system(org(*at));
                nodes[*at]
                    .local(record_id(*record), NOTE, author, now, |r| {
                        r.remove(SetId(1), Uuid::from_u128(u128::from(*member)))
                    })
                    .expect("valid remove");
            }
            Step::Event { at, record, by } => {
                let author = Author::system(org(*at));
                nodes[*at]
                    .local(record_id(*record), NOTE, author, now, |r| {
                        r.event(
                            renda_replica::EventKindId(1),
                            vec![(FieldId(1), Value::Text(format!("deputy {by}")))],
                        )
                    })
                    .expect("valid event");
            }
            Step::Deliver { from, to, picks } => {
                if from == to || nodes[*from].log().is_empty() {
                    continue;
                }
                let log: Vec<Vec<u8>> = nodes[*from].log().iter().map(Op::encode).collect();
                for pick in picks {
                    let bytes = &log[*pick as usize % log.len()];
                    let outcome = nodes[*to].receive_bytes(bytes, now);
                    assert!(!matches!(outcome, Outcome::Quarantined(_)), "{outcome:?}");
                }
            }
        }
    }
    nodes
}

/// Heals the network: every replica receives every other's full log, in reverse order to
/// exercise holding, twice to exercise idempotence.
fn heal(nodes: &mut [Replica]) {
    for _ in 0..2 {
        for from in 0..nodes.len() {
            for to in 0..nodes.len() {
                if from == to {
                    continue;
                }
                let log: Vec<Op> = nodes[from].log().iter().rev().cloned().collect();
                for op in log {
                    nodes[to].receive(op, 1_000_000);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_whatever_the_schedule(steps in prop::collection::vec(step(), 1..60)) {
        let mut nodes = run(&steps);
        heal(&mut nodes);
        let reference = nodes[0].views();
        for (i, node) in nodes.iter().enumerate() {
            prop_assert_eq!(node.held_count(), 0, "replica {} still holds operations", i);
            prop_assert_eq!(&node.views(), &reference, "replica {} differs from replica 0", i);
        }
        // Nothing written anywhere is lost: every operation any replica made is in every log.
        let made: BTreeSet<_> = nodes
            .iter()
            .flat_map(|n| n.log().iter().filter(|op| op.id.origin == n.actor()).map(|op| op.id))
            .collect();
        for node in &nodes {
            let have: BTreeSet<_> = node.log().iter().map(|op| op.id).collect();
            prop_assert!(made.is_subset(&have));
        }
    }

    #[test]
    fn merging_states_equals_applying_operations(steps in prop::collection::vec(step(), 1..40)) {
        let mut nodes = run(&steps);
        // State-based merge of every replica's records into fresh copies of replica 0's.
        let mut merged: std::collections::BTreeMap<RecordId, Record> = std::collections::BTreeMap::new();
        for node in &nodes {
            for id in (0..4).map(record_id) {
                if let Some(record) = node.record(id) {
                    match merged.get_mut(&id) {
                        Some(existing) => existing.merge(record.clone()),
                        None => { merged.insert(id, record.clone()); }
                    }
                }
            }
        }
        heal(&mut nodes);
        for (id, record) in merged {
            prop_assert_eq!(Some(record.materialise()), nodes[0].view(id));
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let schema = testkit::schema();
        let _ = Op::decode(&bytes, &schema);
    }

    #[test]
    fn decoding_a_corrupted_operation_never_panics(flip in 0usize..64, bit in 0u8..8) {
        let schema = testkit::schema();
        let mut nodes = replicas();
        let op = nodes[0].put(record_id(0), NOTE, FieldId(2), Value::Text("abc".into()), 5).expect("valid");
        let mut bytes = op.encode();
        let i = flip % bytes.len();
        bytes[i] ^= 1 << bit;
        if let Ok(decoded) = Op::decode(&bytes, &schema) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}
