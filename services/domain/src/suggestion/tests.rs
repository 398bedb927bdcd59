use super::*;
use proptest::prelude::*;

fn d(m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, m, day).unwrap_or_default()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const LEAD: u128 = 100;
const UNIT_A: u128 = 1;
const UNIT_B: u128 = 2;
const UNIT_C: u128 = 3;

fn draft(kind: Kind, congress: &str, co_signers: usize) -> Draft {
    Draft {
        kind,
        congress: congress.into(),
        title: "关于加强老旧小区加装电梯的建议".into(),
        body: "老旧小区居民上下楼困难，建议加大补贴力度，简化审批流程。".into(),
        lead_deputy: id(LEAD),
        co_signers: (0..co_signers as u128).map(|n| id(200 + n)).collect(),
    }
}

fn suggestion() -> Suggestion {
    Suggestion::parse(draft(Kind::Suggestion, "370202", 2), id(9)).unwrap()
}

/// Events stamped in the order given, one actor.
fn script(events: Vec<Event>) -> Vec<Stamped<Event>> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| Stamped::new(Stamp::new(i as u64 + 1, 1, i as u64 + 1), e))
        .collect()
}

fn through_review() -> Vec<Event> {
    vec![
        Event::Submitted { at: d(1, 10) },
        Event::ReviewPassed { at: d(1, 20) },
    ]
}

fn assign(mode: Assignment, at: NaiveDate) -> Event {
    Event::Assigned { mode, at }
}

#[test]
fn motion_needs_its_co_sponsors() {
    let e = Suggestion::parse(draft(Kind::Motion, "370202", 8), id(1)).unwrap_err();
    assert_eq!(e.field(), "co_signers");
    assert!(e.reason().contains("at least 10"), "{}", e.reason());
    assert!(e.reason().contains("got 9"));
    assert!(e.reason_zh().contains("10名以上"));
    assert!(Suggestion::parse(draft(Kind::Motion, "370202", 9), id(1)).is_ok());
    let e = Suggestion::parse(draft(Kind::Motion, "370202001", 3), id(1)).unwrap_err();
    assert!(e.reason().contains("township congress needs at least 5"));
    assert!(Suggestion::parse(draft(Kind::Motion, "370202001", 4), id(1)).is_ok());
    assert!(Suggestion::parse(draft(Kind::Suggestion, "370202", 0), id(1)).is_ok());
}

#[test]
fn suggestion_input_refusals() {
    let mut bad = draft(Kind::Suggestion, "370202", 1);
    bad.co_signers.push(id(LEAD));
    assert_eq!(
        Suggestion::parse(bad, id(1)).unwrap_err().field(),
        "co_signers"
    );
    let e = Suggestion::parse(draft(Kind::Suggestion, "370202001001", 0), id(1)).unwrap_err();
    assert_eq!(e.field(), "congress");
    assert!(e.reason().contains("village"));
    let mut long = draft(Kind::Suggestion, "370202", 0);
    long.title = "题".repeat(101);
    assert_eq!(Suggestion::parse(long, id(1)).unwrap_err().field(), "title");
    let mut short = draft(Kind::Suggestion, "370202", 0);
    short.body = "太短".into();
    assert_eq!(Suggestion::parse(short, id(1)).unwrap_err().field(), "body");
}

#[test]
fn happy_path_to_closing() {
    let sug = suggestion();
    let mut events = through_review();
    events.extend([
        assign(Assignment::Single(id(UNIT_A)), d(2, 1)),
        Event::SupervisionSet {
            mode: SupervisionMode::Key,
            at: d(2, 1),
        },
        Event::Replied {
            unit: id(UNIT_A),
            category: ReplyCategory::A,
            at: d(3, 1),
        },
        Event::Evaluated {
            deputy: id(LEAD),
            satisfaction: Satisfaction::Satisfied,
            at: d(3, 5),
        },
        Event::Closed { at: d(3, 10) },
    ]);
    let s = fold(&sug, &script(events));
    assert_eq!(s.status, Status::Closed);
    assert!(s.flags.is_empty(), "{:?}", s.flags);
    assert_eq!(s.category(), Some(ReplyCategory::A));
    assert!(s.is_solved());
    assert_eq!(s.supervision, Some(SupervisionMode::Key));
    assert_eq!(
        s.satisfaction(&sug.lead_deputy),
        Some(Satisfaction::Satisfied)
    );
}

#[test]
fn return_within_ten_days_restarts_the_clock() {
    let sug = suggestion();
    let mut events = through_review();
    events.extend([
        assign(Assignment::Single(id(UNIT_A)), d(2, 1)),
        Event::Returned {
            unit: id(UNIT_A),
            at: d(2, 11),
        },
    ]);
    let s = fold(&sug, &script(events.clone()));
    assert_eq!(s.status, Status::Returned);
    assert_eq!(s.deadlines(), None);
    events.push(assign(Assignment::Single(id(UNIT_B)), d(2, 20)));
    let s = fold(&sug, &script(events));
    assert_eq!(s.status, Status::Assigned);
    let due = s.deadlines().unwrap();
    assert_eq!(due.reply_due, d(5, 20));
    assert_eq!(due.return_until, d(3, 1));
    assert_eq!(due.assisting_view_due, None);
}

#[test]
fn late_return_is_refused_and_flagged() {
    let sug = suggestion();
    let mut events = through_review();
    events.push(assign(Assignment::Single(id(UNIT_A)), d(2, 1)));
    let s = fold(&sug, &script(events.clone()));
    let late = Event::Returned {
        unit: id(UNIT_A),
        at: d(2, 12),
    };
    let e = check(&sug, &s, &late).unwrap_err();
    assert!(matches!(e, Error::Precondition { .. }));
    assert_eq!(e.field(), "at");
    assert!(e.reason().contains("10 days"));
    assert!(e.reason_zh().contains("10日内"));
    let e = check(
        &sug,
        &s,
        &Event::Returned {
            unit: id(UNIT_B),
            at: d(2, 2),
        },
    )
    .unwrap_err();
    assert_eq!(e.field(), "unit");
    events.push(late);
    let s = fold(&sug, &script(events));
    assert_eq!(s.status, Status::Assigned);
    assert_eq!(s.flags.len(), 1);
}

#[test]
fn reply_from_a_unit_that_lost_the_assignment_is_kept_not_counted() {
    let sug = suggestion();
    let mut events = script(through_review());
    events.extend([
        Stamped::new(
            Stamp::new(10, 1, 3),
            assign(Assignment::Single(id(UNIT_A)), d(2, 1)),
        ),
        Stamped::new(
            Stamp::new(20, 1, 4),
            Event::Returned {
                unit: id(UNIT_A),
                at: d(2, 5),
            },
        ),
        Stamped::new(
            Stamp::new(21, 1, 5),
            assign(Assignment::Single(id(UNIT_B)), d(2, 6)),
        ),
        // Unit A's node was offline; its reply sorts after the return.
        Stamped::new(
            Stamp::new(22, 7, 1),
            Event::Replied {
                unit: id(UNIT_A),
                category: ReplyCategory::A,
                at: d(2, 4),
            },
        ),
    ]);
    let s = fold(&sug, &events);
    assert_eq!(s.status, Status::Assigned);
    assert!(!s.replied);
    assert_eq!(s.replies.len(), 1);
    assert!(!s.replies[0].counted);
    assert_eq!(s.flags.len(), 1);
    assert!(s.flags[0].reason.contains("does not hold"));
    assert_eq!(s.pending_units(), [id(UNIT_B)].into());
}

#[test]
fn reply_sorting_before_the_return_wins() {
    let sug = suggestion();
    let mut events = script(through_review());
    events.extend([
        Stamped::new(
            Stamp::new(10, 1, 3),
            assign(Assignment::Single(id(UNIT_A)), d(2, 1)),
        ),
        Stamped::new(
            Stamp::new(15, 7, 1),
            Event::Replied {
                unit: id(UNIT_A),
                category: ReplyCategory::B,
                at: d(2, 4),
            },
        ),
        Stamped::new(
            Stamp::new(20, 1, 4),
            Event::Returned {
                unit: id(UNIT_A),
                at: d(2, 5),
            },
        ),
        Stamped::new(
            Stamp::new(21, 1, 5),
            assign(Assignment::Single(id(UNIT_B)), d(2, 6)),
        ),
    ]);
    let s = fold(&sug, &events);
    assert_eq!(s.status, Status::Replied);
    assert_eq!(s.category(), Some(ReplyCategory::B));
    assert_eq!(s.flags.len(), 2);
}

#[test]
fn only_signers_evaluate() {
    let sug = suggestion();
    let mut events = through_review();
    events.extend([
        assign(Assignment::Single(id(UNIT_A)), d(2, 1)),
        Event::Replied {
            unit: id(UNIT_A),
            category: ReplyCategory::C,
            at: d(3, 1),
        },
    ]);
    let s = fold(&sug, &script(events.clone()));
    let stranger = Event::Evaluated {
        deputy: id(5),
        satisfaction: Satisfaction::Satisfied,
        at: d(3, 2),
    };
    let e = check(&sug, &s, &stranger).unwrap_err();
    assert!(matches!(e, Error::Forbidden { .. }));
    assert_eq!(e.field(), "deputy");
    events.push(stranger);
    events.push(Event::Evaluated {
        deputy: id(200),
        satisfaction: Satisfaction::BasicallySatisfied,
        at: d(3, 2),
    });
    let s = fold(&sug, &script(events));
    assert_eq!(s.flags.len(), 1);
    assert_eq!(s.evaluations.len(), 1);
    assert_eq!(
        s.satisfaction(&sug.lead_deputy),
        Some(Satisfaction::BasicallySatisfied)
    );
}

#[test]
fn dissatisfied_leads_to_a_second_round_due_in_a_month() {
    let sug = suggestion();
    let mut events = through_review();
    events.extend([
        assign(Assignment::Single(id(UNIT_A)), d(2, 1)),
        Event::Replied {
            unit: id(UNIT_A),
            category: ReplyCategory::C,
            at: d(3, 1),
        },
        Event::Evaluated {
            deputy: id(LEAD),
            satisfaction: Satisfaction::Dissatisfied,
            at: d(3, 5),
        },
        Event::SecondRound { at: d(3, 10) },
    ]);
    let s = fold(&sug, &script(events.clone()));
    assert_eq!(s.status, Status::SecondRound);
    assert_eq!(s.round, 2);
    assert_eq!(s.deadlines().unwrap().reply_due, d(4, 10));
    assert!(s.replied, "the first round's reply still counts as replied");
    let late = overdue(std::slice::from_ref(&s), d(4, 12));
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].kind, OverdueKind::SecondRoundReply);
    assert_eq!(late[0].days_late, 2);
    assert!(check(&sug, &s, &Event::Closed { at: d(3, 11) }).is_err());
    events.extend([
        Event::Replied {
            unit: id(UNIT_A),
            category: ReplyCategory::B,
            at: d(4, 1),
        },
        Event::Evaluated {
            deputy: id(LEAD),
            satisfaction: Satisfaction::Satisfied,
            at: d(4, 2),
        },
        Event::Implemented { at: d(6, 1) },
    ]);
    let s = fold(&sug, &script(events));
    assert!(s.flags.is_empty(), "{:?}", s.flags);
    assert_eq!(s.category(), Some(ReplyCategory::B));
    assert!(s.is_solved());
    let e = check(&sug, &s, &Event::SecondRound { at: d(6, 2) }).unwrap_err();
    assert_eq!(e.field(), "status");
}

#[test]
fn split_needs_every_unit_and_takes_the_worst_category() {
    let sug = suggestion();
    let mut events = through_review();
    events.extend([
        assign(Assignment::Split([id(UNIT_A), id(UNIT_B)].into()), d(2, 1)),
        Event::Replied {
            unit: id(UNIT_A),
            category: ReplyCategory::A,
            at: d(3, 1),
        },
    ]);
    let s = fold(&sug, &script(events.clone()));
    assert_eq!(s.status, Status::Assigned);
    assert_eq!(s.category(), None);
    events.push(Event::Replied {
        unit: id(UNIT_B),
        category: ReplyCategory::C,
        at: d(3, 2),
    });
    let s = fold(&sug, &script(events));
    assert_eq!(s.status, Status::Replied);
    assert_eq!(s.category(), Some(ReplyCategory::C));
    let e = check(&sug, &s, &Event::Implemented { at: d(4, 1) }).unwrap_err();
    assert_eq!(e.field(), "category");
}

#[test]
fn assignment_modes_are_validated() {
    let e = Assignment::Split([id(1)].into()).validate().unwrap_err();
    assert_eq!(e.field(), "mode");
    let e = Assignment::LeadWithAssisting {
        lead: id(1),
        assisting: [id(1)].into(),
    }
    .validate()
    .unwrap_err();
    assert!(e.reason().contains("cannot also assist"));
    let e = Assignment::LeadWithAssisting {
        lead: id(1),
        assisting: BTreeSet::new(),
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.field(), "mode");
}

#[test]
fn extension_and_assisting_deadlines_and_overdue() {
    let sug = suggestion();
    let mut events = through_review();
    events.extend([
        assign(
            Assignment::LeadWithAssisting {
                lead: id(UNIT_A),
                assisting: [id(UNIT_B), id(UNIT_C)].into(),
            },
            d(1, 31),
        ),
        Event::AssistingViewSent {
            unit: id(UNIT_B),
            at: d(2, 10),
        },
        Event::ExtensionApproved { at: d(3, 1) },
    ]);
    let s = fold(&sug, &script(events));
    let due = s.deadlines().unwrap();
    assert_eq!(due.reply_due, d(7, 31));
    assert_eq!(due.assisting_view_due, Some(d(2, 29)));
    let late = overdue(std::slice::from_ref(&s), d(3, 1));
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].kind, OverdueKind::AssistingView(id(UNIT_C)));
    assert!(overdue(std::slice::from_ref(&s), d(7, 31)).len() == 1);
    assert!(
        overdue(std::slice::from_ref(&s), d(8, 1))
            .iter()
            .any(|o| o.kind == OverdueKind::Reply)
    );
    let e = check(
        &sug,
        &s,
        &Event::AssistingViewSent {
            unit: id(UNIT_A),
            at: d(3, 2),
        },
    )
    .unwrap_err();
    assert_eq!(e.field(), "unit");
}

#[test]
fn withdrawal_ends_the_item_and_later_steps_are_flagged() {
    let sug = suggestion();
    let mut events = through_review();
    events.extend([
        Event::Withdrawn { at: d(1, 25) },
        assign(Assignment::Single(id(UNIT_A)), d(2, 1)),
    ]);
    let s = fold(&sug, &script(events));
    assert_eq!(s.status, Status::Withdrawn);
    assert!(!s.counts_as_assigned());
    assert_eq!(s.flags.len(), 1);
}

#[test]
fn review_revision_and_merge() {
    let sug = suggestion();
    let events = vec![
        Event::Submitted { at: d(1, 1) },
        Event::RevisionRequested {
            reason: "诉求不够具体".into(),
            at: d(1, 2),
        },
        Event::Revised { at: d(1, 3) },
        Event::MergedInto {
            target: id(77),
            at: d(1, 4),
        },
    ];
    let s = fold(&sug, &script(events));
    assert_eq!(s.status, Status::Merged);
    assert_eq!(s.merged_into, Some(id(77)));
    let s = fold(&sug, &script(vec![Event::Submitted { at: d(1, 1) }]));
    let e = check(
        &sug,
        &s,
        &Event::RevisionRequested {
            reason: "改".into(),
            at: d(1, 2),
        },
    )
    .unwrap_err();
    assert_eq!(e.field(), "reason");
    let e = check(
        &sug,
        &s,
        &Event::MergedInto {
            target: sug.id,
            at: d(1, 2),
        },
    )
    .unwrap_err();
    assert_eq!(e.field(), "target");
    let e = check(&sug, &s, &assign(Assignment::Single(id(1)), d(1, 2))).unwrap_err();
    assert_eq!(e.field(), "status");
}

/// Every event a suggestion's life can contain, so random subsets exercise applied and
/// flagged steps alike.
fn event_pool() -> Vec<Event> {
    vec![
        Event::Submitted { at: d(1, 1) },
        Event::RevisionRequested {
            reason: "请补充".into(),
            at: d(1, 2),
        },
        Event::Revised { at: d(1, 3) },
        Event::ReviewPassed { at: d(1, 4) },
        assign(Assignment::Single(id(UNIT_A)), d(2, 1)),
        Event::Returned {
            unit: id(UNIT_A),
            at: d(2, 5),
        },
        assign(Assignment::Split([id(UNIT_B), id(UNIT_C)].into()), d(2, 8)),
        Event::ExtensionApproved { at: d(2, 9) },
        Event::SupervisionSet {
            mode: SupervisionMode::Tracking,
            at: d(2, 9),
        },
        Event::Replied {
            unit: id(UNIT_A),
            category: ReplyCategory::A,
            at: d(3, 1),
        },
        Event::Replied {
            unit: id(UNIT_B),
            category: ReplyCategory::B,
            at: d(3, 2),
        },
        Event::Replied {
            unit: id(UNIT_C),
            category: ReplyCategory::C,
            at: d(3, 3),
        },
        Event::Evaluated {
            deputy: id(LEAD),
            satisfaction: Satisfaction::Dissatisfied,
            at: d(3, 4),
        },
        Event::Evaluated {
            deputy: id(200),
            satisfaction: Satisfaction::Satisfied,
            at: d(3, 4),
        },
        Event::Evaluated {
            deputy: id(5),
            satisfaction: Satisfaction::Satisfied,
            at: d(3, 4),
        },
        Event::SecondRound { at: d(3, 5) },
        Event::Implemented { at: d(5, 1) },
        Event::Closed { at: d(6, 1) },
        Event::Withdrawn { at: d(2, 20) },
    ]
}

proptest! {
    #[test]
    fn status_fold_is_order_independent(
        picks in proptest::collection::vec((0usize..19, 0u64..40, 0u64..3), 0..30),
        seed in any::<u64>(),
    ) {
        let sug = suggestion();
        let pool = event_pool();
        let mut events: Vec<Stamped<Event>> = picks
            .iter()
            .enumerate()
            .map(|(i, (e, clock, actor))| {
                Stamped::new(Stamp::new(*clock, *actor, i as u64), pool[*e % pool.len()].clone())
            })
            .collect();
        // Redeliveries of some operations.
        let again: Vec<Stamped<Event>> = events.iter().step_by(3).cloned().collect();
        events.extend(again);
        let reference = fold(&sug, &events);
        // A deterministic shuffle from the seed (Fisher–Yates with an LCG).
        let mut shuffled = events.clone();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            shuffled.swap(i, (x >> 33) as usize % (i + 1));
        }
        shuffled.reverse();
        prop_assert_eq!(fold(&sug, &shuffled), reference);
    }
}

#[test]
fn every_event_reads_back_as_it_was_written() {
    use crate::record::{Payload, RecordEvent, Value};
    let at = NaiveDate::from_ymd_opt(2024, 3, 1).expect("a day");
    let (u1, u2, u3) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    let events = vec![
        Event::Submitted { at },
        Event::ReviewPassed { at },
        Event::RevisionRequested {
            reason: "请补充地点".into(),
            at,
        },
        Event::Revised { at },
        Event::Withdrawn { at },
        Event::MergedInto { target: u1, at },
        Event::Assigned {
            mode: Assignment::Single(u1),
            at,
        },
        Event::Assigned {
            mode: Assignment::Split([u1, u2].into()),
            at,
        },
        Event::Assigned {
            mode: Assignment::LeadWithAssisting {
                lead: u1,
                assisting: [u2, u3].into(),
            },
            at,
        },
        Event::Returned { unit: u2, at },
        Event::ExtensionApproved { at },
        Event::SupervisionSet {
            mode: SupervisionMode::DeputyParticipating,
            at,
        },
        Event::AssistingViewSent { unit: u3, at },
        Event::Replied {
            unit: u1,
            category: ReplyCategory::C,
            at,
        },
        Event::Evaluated {
            deputy: u2,
            satisfaction: Satisfaction::BasicallySatisfied,
            at,
        },
        Event::SecondRound { at },
        Event::Implemented { at },
        Event::Closed { at },
    ];
    let mut names = std::collections::BTreeSet::new();
    for event in events {
        let def = event.definition();
        let encoded = event.encode();
        for (name, value) in &encoded {
            let field = def
                .payload
                .iter()
                .find(|p| p.name == *name)
                .unwrap_or_else(|| panic!("{}: {name} is not in the definition", def.name));
            let ty = match value {
                Value::Text(_) => crate::record::FieldType::Text,
                Value::Int(_) => crate::record::FieldType::Int,
                Value::Bool(_) => crate::record::FieldType::Bool,
                Value::Date(_) => crate::record::FieldType::Date,
                Value::Ref(_) => crate::record::FieldType::Ref,
                Value::Org(_) => crate::record::FieldType::Org,
            };
            assert_eq!(field.ty, ty, "{}.{name}", def.name);
        }
        for required in def.payload.iter().filter(|p| p.required) {
            assert!(
                encoded.iter().any(|(n, _)| *n == required.name),
                "{}: required {} missing",
                def.name,
                required.name
            );
        }
        let payload = Payload(
            encoded
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect(),
        );
        assert_eq!(Event::decode(def.name, &payload), Some(event.clone()));
        names.insert(def.name);
    }
    assert_eq!(
        names.len(),
        KIND.events.len(),
        "every defined event is covered"
    );
}

/// Issue #12 item 14: a county motion was accepted with made-up co-signers and a lead from
/// another level.
#[test]
fn a_motion_is_signed_by_serving_deputies_of_its_congress() {
    use crate::person::{DeputyLevel, DeputyStatus, Seat};
    let motion = Suggestion::parse(draft(Kind::Motion, "370202", 9), id(1)).unwrap();
    let county = |org: &str| Seat {
        name: "张伟".into(),
        levels: [DeputyLevel::County].into(),
        org: org.parse().unwrap(),
        status: DeputyStatus::Serving,
    };
    // County deputies registered at the county or at one of its townships.
    let all_county = |i: &Uuid| {
        Some(if i.as_u128().is_multiple_of(2) {
            county("370202")
        } else {
            county("370202001")
        })
    };
    assert!(motion.check_signers(all_county).is_ok());
    // An id no deputy has.
    let e = motion
        .check_signers(|i| (*i != id(203)).then(|| county("370202")))
        .unwrap_err();
    assert_eq!(e.field(), "co_signers");
    assert!(e.reason().contains(&id(203).to_string()), "{}", e.reason());
    // A lead who is a township deputy only.
    let e = motion
        .check_signers(|i| {
            Some(if *i == id(LEAD) {
                Seat {
                    levels: [DeputyLevel::Township].into(),
                    ..county("370202001")
                }
            } else {
                county("370202")
            })
        })
        .unwrap_err();
    assert_eq!(e.field(), "lead_deputy");
    assert!(e.reason_zh().contains("不是本县(区)人民代表大会的在任代表"));
    // A county deputy of another county, and a terminated one.
    for other in [
        county("370203"),
        Seat {
            status: DeputyStatus::Terminated,
            ..county("370202")
        },
    ] {
        let e = motion
            .check_signers(|i| {
                Some(if *i == id(205) {
                    other.clone()
                } else {
                    county("370202")
                })
            })
            .unwrap_err();
        assert_eq!(e.field(), "co_signers");
    }
    // A suggestion may be co-signed by any deputy registered here, of any level.
    let s = suggestion();
    assert!(
        s.check_signers(|_| Some(Seat {
            levels: [DeputyLevel::City].into(),
            ..county("370202")
        }))
        .is_ok()
    );
    assert_eq!(
        s.check_signers(|_| None).unwrap_err().field(),
        "lead_deputy"
    );
}
