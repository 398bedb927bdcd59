use super::*;
use proptest::prelude::*;

fn d(m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, m, day).unwrap_or_default()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn project() -> Project {
    Project::parse(
        ProjectDraft {
            congress: "370212001".into(),
            year: 2024,
            title: "背街小巷路灯改造".into(),
            summary: "改造辖区内背街小巷路灯120盏。".into(),
            budget_fen: 572_000_000, // 5.72 million yuan
        },
        id(1),
    )
    .unwrap()
}

fn script(events: Vec<Event>) -> Vec<Stamped<Event>> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| Stamped::new(Stamp::new(i as u64 + 1, 1, i as u64 + 1), e))
        .collect()
}

fn decision() -> Decision {
    Decision {
        body: DecisionBody::TownshipCongress,
        reference: "沙人决〔2024〕3号".into(),
        decided_on: d(6, 1),
    }
}

#[test]
fn full_lifecycle() {
    let p = project();
    let events = vec![
        Event::Shortlisted { at: d(1, 5) },
        Event::Voted {
            adopted: true,
            at: d(1, 20),
        },
        Event::PlanSet {
            budget_fen: 50_000_000,
            at: d(2, 1),
        },
        Event::SupervisionAdopted {
            group: id(50),
            at: d(2, 2),
        },
        Event::Progress {
            percent: 40,
            note: "完成一期".into(),
            at: d(4, 1),
        },
        Event::Progress {
            percent: 100,
            note: "全部完工".into(),
            at: d(9, 1),
        },
        Event::AcceptanceSigned {
            deputy: id(7),
            at: d(9, 10),
        },
        Event::AcceptancePassed { at: d(9, 10) },
        Event::Scored {
            deputy: id(7),
            score: 90,
            at: d(10, 1),
        },
        Event::Scored {
            deputy: id(8),
            score: 80,
            at: d(10, 1),
        },
        Event::MaintenanceStarted {
            caretaker: id(7),
            at: d(11, 1),
        },
    ];
    let s = fold(&p, &script(events));
    assert!(s.flags.is_empty(), "{:?}", s.flags);
    assert_eq!(s.stage, Stage::Maintained);
    assert_eq!(s.budget_fen, 50_000_000);
    assert_eq!(s.progress, 100);
    assert_eq!(s.average_score(), Some(85.0));
}

#[test]
fn changes_need_a_decision() {
    let p = project();
    let s = fold(
        &p,
        &script(vec![
            Event::Shortlisted { at: d(1, 5) },
            Event::Voted {
                adopted: true,
                at: d(1, 20),
            },
        ]),
    );
    let bare = Event::Changed {
        change: Change::Termination,
        decision: None,
        note: String::new(),
        at: d(6, 2),
    };
    let e = check(&s, &bare).unwrap_err();
    assert!(matches!(e, Error::Precondition { .. }));
    assert_eq!(e.field(), "decision");
    assert!(e.reason_zh().contains("决定"));
    let suspend = Event::Changed {
        change: Change::Suspension,
        decision: Some(decision()),
        note: "资金未到位".into(),
        at: d(6, 2),
    };
    let s2 = fold(
        &p,
        &script(vec![
            Event::Shortlisted { at: d(1, 5) },
            Event::Voted {
                adopted: true,
                at: d(1, 20),
            },
            bare,
            suspend,
        ]),
    );
    assert_eq!(s2.stage, Stage::Suspended);
    assert_eq!(s2.flags.len(), 1);
    assert_eq!(s2.decisions.len(), 1);
}

#[test]
fn step_refusals_name_the_field() {
    let p = project();
    let s = fold(&p, &[]);
    let e = check(
        &s,
        &Event::Progress {
            percent: 50,
            note: String::new(),
            at: d(1, 1),
        },
    )
    .unwrap_err();
    assert_eq!(e.field(), "stage");
    let e = check(
        &s,
        &Event::Progress {
            percent: 101,
            note: String::new(),
            at: d(1, 1),
        },
    )
    .unwrap_err();
    assert_eq!(e.field(), "percent");
    let e = check(
        &s,
        &Event::Scored {
            deputy: id(1),
            score: 120,
            at: d(1, 1),
        },
    )
    .unwrap_err();
    assert_eq!(e.field(), "score");
    let running = fold(
        &p,
        &script(vec![
            Event::Shortlisted { at: d(1, 5) },
            Event::Voted {
                adopted: true,
                at: d(1, 20),
            },
            Event::Progress {
                percent: 90,
                note: String::new(),
                at: d(3, 1),
            },
        ]),
    );
    let e = check(&running, &Event::AcceptancePassed { at: d(4, 1) }).unwrap_err();
    assert_eq!(e.field(), "signatures");
    let e = check(
        &running,
        &Event::PlanSet {
            budget_fen: -1,
            at: d(4, 1),
        },
    )
    .unwrap_err();
    assert_eq!(e.field(), "budget_fen");
}

#[test]
fn project_input_refusals() {
    let base = ProjectDraft {
        congress: "370212001".into(),
        year: 2024,
        title: "背街小巷路灯改造".into(),
        summary: String::new(),
        budget_fen: 0,
    };
    let cases = [
        (
            ProjectDraft {
                budget_fen: -5,
                ..base.clone()
            },
            "budget_fen",
        ),
        (
            ProjectDraft {
                year: 1999,
                ..base.clone()
            },
            "year",
        ),
        (
            ProjectDraft {
                title: "路".into(),
                ..base.clone()
            },
            "title",
        ),
        (
            ProjectDraft {
                summary: "字".repeat(5001),
                ..base.clone()
            },
            "summary",
        ),
        (
            ProjectDraft {
                congress: "12".into(),
                ..base.clone()
            },
            "congress",
        ),
    ];
    for (draft, field) in cases {
        assert_eq!(Project::parse(draft, id(1)).unwrap_err().field(), field);
    }
}

fn rules(to_adopt: u32, threshold: Threshold) -> VotingRules {
    VotingRules {
        to_adopt,
        threshold,
        candidate_margin: 1,
    }
}

fn ballot(
    clock: u64,
    actor: u64,
    deputy: u128,
    candidate: u128,
    choice: Choice,
) -> Stamped<Ballot> {
    Stamped::new(
        Stamp::new(clock, actor, clock),
        Ballot {
            deputy: id(deputy),
            candidate: id(candidate),
            choice,
        },
    )
}

fn set(range: std::ops::RangeInclusive<u128>) -> BTreeSet<Uuid> {
    range.map(id).collect()
}

#[test]
fn tally_counts_duplicates_once_and_settles_conflicts_first_recorded() {
    let candidates = set(1001..=1003);
    let seated = set(1..=5);
    let ballots = vec![
        ballot(1, 1, 1, 1001, Choice::For),
        ballot(2, 2, 1, 1001, Choice::For), // the same ballot entered on a second node
        ballot(3, 1, 2, 1001, Choice::For),
        ballot(4, 1, 3, 1001, Choice::For),
        ballot(5, 1, 4, 1002, Choice::Against),
        ballot(6, 2, 4, 1002, Choice::For), // conflict: the first recorded (Against) counts
        ballot(7, 1, 99, 1001, Choice::For), // not seated
        ballot(8, 1, 1, 4242, Choice::For), // not a candidate
    ];
    let t = tally(
        &ballots,
        &candidates,
        &seated,
        &BTreeSet::new(),
        &rules(1, Threshold::MajorityOfSeated),
    )
    .unwrap();
    assert_eq!(t.counts[&id(1001)].votes_for, 3);
    assert_eq!(
        t.counts[&id(1002)],
        Count {
            votes_for: 0,
            against: 1,
            abstain: 0
        }
    );
    assert_eq!(t.duplicates, vec![Stamp::new(2, 2, 2)]);
    assert_eq!(t.conflicts.len(), 1);
    assert_eq!(t.conflicts[0].counted, Stamp::new(5, 1, 5));
    assert_eq!(t.conflicts[0].deputy, id(4));
    // Issue #12 item 13: the doubled ballots are listed by deputy, same choice or not.
    assert_eq!(
        t.repeated,
        vec![
            RepeatedBallot {
                deputy: id(1),
                candidate: id(1001),
                counted: Choice::For,
                times: 2,
                differing: false,
            },
            RepeatedBallot {
                deputy: id(4),
                candidate: id(1002),
                counted: Choice::Against,
                times: 2,
                differing: true,
            },
        ]
    );
    assert_eq!(t.ignored.len(), 2);
    assert_eq!(t.base, 5);
    assert_eq!(t.adopted, vec![id(1001)]);
    assert_eq!(t.not_adopted, vec![id(1002), id(1003)]);
}

#[test]
fn threshold_base_is_a_setting() {
    let candidates = set(1001..=1002);
    let seated = set(1..=10);
    let present = set(1..=5);
    // Three of ten seated vote for 1001; three of five present (plus voter 6) is 3 of 6.
    let ballots = vec![
        ballot(1, 1, 1, 1001, Choice::For),
        ballot(2, 1, 2, 1001, Choice::For),
        ballot(3, 1, 6, 1001, Choice::For),
    ];
    let of_seated = tally(
        &ballots,
        &candidates,
        &seated,
        &present,
        &rules(1, Threshold::MajorityOfSeated),
    )
    .unwrap();
    assert!(of_seated.adopted.is_empty());
    let of_present = tally(
        &ballots,
        &candidates,
        &seated,
        &present,
        &rules(1, Threshold::MajorityOfPresent),
    )
    .unwrap();
    assert_eq!(of_present.base, 6);
    assert!(
        of_present.adopted.is_empty(),
        "3 of 6 is not more than half"
    );
    let mut more = ballots.clone();
    more.push(ballot(4, 1, 3, 1001, Choice::For));
    let t = tally(
        &more,
        &candidates,
        &seated,
        &present,
        &rules(1, Threshold::MajorityOfPresent),
    )
    .unwrap();
    assert_eq!(t.adopted, vec![id(1001)]);
}

#[test]
fn ties_at_the_last_place_go_to_a_runoff() {
    let candidates = set(1001..=1004);
    let seated = set(1..=3);
    let mut ballots = Vec::new();
    let mut clock = 0;
    for deputy in 1..=3 {
        for candidate in [1001, 1002, 1003] {
            clock += 1;
            let choice = if candidate == 1001 || deputy < 3 {
                Choice::For
            } else {
                Choice::Against
            };
            ballots.push(ballot(clock, 1, deputy, candidate, choice));
        }
    }
    let t = tally(
        &ballots,
        &candidates,
        &seated,
        &BTreeSet::new(),
        &rules(2, Threshold::MajorityOfSeated),
    )
    .unwrap();
    assert_eq!(t.adopted, vec![id(1001)]);
    assert_eq!(t.runoff, vec![id(1002), id(1003)]);
    assert_eq!(t.not_adopted, vec![id(1004)]);
}

#[test]
fn tally_refuses_too_few_candidates() {
    let e = tally(
        &[],
        &set(1..=2),
        &set(1..=3),
        &BTreeSet::new(),
        &VotingRules {
            to_adopt: 2,
            threshold: Threshold::MajorityOfSeated,
            candidate_margin: 1,
        },
    )
    .unwrap_err();
    assert_eq!(e.field(), "candidates");
    assert!(e.reason().contains("at least 3"));
    let e = tally(
        &[],
        &set(1..=2),
        &set(1..=3),
        &BTreeSet::new(),
        &rules(0, Threshold::MajorityOfSeated),
    )
    .unwrap_err();
    assert_eq!(e.field(), "to_adopt");
}

fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed | 1;
    for i in (1..items.len()).rev() {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        items.swap(i, (x >> 33) as usize % (i + 1));
    }
}

proptest! {
    #[test]
    fn tally_is_order_independent(
        raw in proptest::collection::vec((1u128..8, 1001u128..1005, 0u8..3, 0u64..20, 0u64..3), 0..60),
        seed in any::<u64>(),
        of_present in any::<bool>(),
    ) {
        let candidates = set(1001..=1004);
        let seated = set(1..=6);
        let present = set(2..=4);
        let mut ballots: Vec<Stamped<Ballot>> = raw
            .iter()
            .enumerate()
            .map(|(i, (deputy, candidate, choice, clock, actor))| {
                let choice = [Choice::For, Choice::Against, Choice::Abstain][*choice as usize];
                Stamped::new(
                    Stamp::new(*clock, *actor, i as u64),
                    Ballot { deputy: id(*deputy), candidate: id(*candidate), choice },
                )
            })
            .collect();
        let again: Vec<_> = ballots.iter().step_by(4).cloned().collect();
        ballots.extend(again);
        let threshold = if of_present { Threshold::MajorityOfPresent } else { Threshold::MajorityOfSeated };
        let r = rules(2, threshold);
        let reference = tally(&ballots, &candidates, &seated, &present, &r);
        shuffle(&mut ballots, seed);
        prop_assert_eq!(tally(&ballots, &candidates, &seated, &present, &r), reference);
    }

    #[test]
    fn project_fold_is_order_independent(
        picks in proptest::collection::vec((0usize..12, 0u64..30, 0u64..3), 0..25),
        seed in any::<u64>(),
    ) {
        let pool = vec![
            Event::Shortlisted { at: d(1, 5) },
            Event::ScreenedOut { at: d(1, 5) },
            Event::Voted { adopted: true, at: d(1, 20) },
            Event::Voted { adopted: false, at: d(1, 20) },
            Event::Progress { percent: 30, note: String::new(), at: d(3, 1) },
            Event::Progress { percent: 100, note: String::new(), at: d(6, 1) },
            Event::AcceptanceSigned { deputy: id(7), at: d(7, 1) },
            Event::AcceptancePassed { at: d(7, 2) },
            Event::Scored { deputy: id(7), score: 88, at: d(8, 1) },
            Event::Changed { change: Change::Suspension, decision: Some(decision()), note: String::new(), at: d(4, 1) },
            Event::Changed { change: Change::Resumption, decision: Some(decision()), note: String::new(), at: d(5, 1) },
            Event::Changed { change: Change::Termination, decision: None, note: String::new(), at: d(5, 1) },
        ];
        let p = project();
        let mut events: Vec<Stamped<Event>> = picks
            .iter()
            .enumerate()
            .map(|(i, (e, clock, actor))| Stamped::new(Stamp::new(*clock, *actor, i as u64), pool[*e].clone()))
            .collect();
        let reference = fold(&p, &events);
        shuffle(&mut events, seed);
        prop_assert_eq!(fold(&p, &events), reference);
    }
}

#[test]
fn every_event_reads_back_as_written() {
    let events = vec![
        Event::Shortlisted { at: d(1, 5) },
        Event::ScreenedOut { at: d(1, 6) },
        Event::Voted {
            adopted: true,
            at: d(1, 20),
        },
        Event::Voted {
            adopted: false,
            at: d(1, 21),
        },
        Event::PlanSet {
            budget_fen: 12_345,
            at: d(2, 1),
        },
        Event::Progress {
            percent: 30,
            note: "路灯已安装一半".into(),
            at: d(3, 1),
        },
        Event::Progress {
            percent: 100,
            note: String::new(),
            at: d(6, 1),
        },
        Event::SupervisionAdopted {
            group: id(5),
            at: d(2, 2),
        },
        Event::AcceptanceSigned {
            deputy: id(7),
            at: d(7, 1),
        },
        Event::VoterSigned {
            signer: VoterSigner::parse("刘大爷", "东村三组").unwrap(),
            at: d(7, 1),
        },
        Event::AcceptancePassed { at: d(7, 2) },
        Event::Scored {
            deputy: id(7),
            score: 88,
            at: d(8, 1),
        },
        Event::MaintenanceStarted {
            caretaker: id(8),
            at: d(9, 1),
        },
        Event::Changed {
            change: Change::Major,
            decision: Some(decision()),
            note: "调整实施范围".into(),
            at: d(4, 1),
        },
        Event::Changed {
            change: Change::Termination,
            decision: None,
            note: String::new(),
            at: d(5, 1),
        },
        Event::Ballot {
            deputy: id(9),
            session: id(10),
            choice: Choice::Against,
        },
        Event::MaintenanceVisit {
            deputy: id(9),
            note: "检查路灯".into(),
            volunteer_points: 5,
            at: d(10, 1),
        },
        Event::MaintenanceVisit {
            deputy: id(9),
            note: String::new(),
            volunteer_points: 0,
            at: d(10, 2),
        },
    ];
    for change in [Change::Suspension, Change::Resumption] {
        for body in [
            DecisionBody::StandingCommittee,
            DecisionBody::TownshipCongress,
            DecisionBody::TownshipPresidium,
        ] {
            let mut by = decision();
            by.body = body;
            let e = Event::Changed {
                change,
                decision: Some(by),
                note: String::new(),
                at: d(4, 2),
            };
            assert_round_trip(&e);
        }
    }
    for choice in [Choice::For, Choice::Abstain] {
        assert_round_trip(&Event::Ballot {
            deputy: id(1),
            session: id(2),
            choice,
        });
    }
    for e in &events {
        assert_round_trip(e);
    }
}

fn assert_round_trip(e: &Event) {
    let payload = crate::record::Payload(
        e.encode()
            .into_iter()
            .map(|(name, v)| (name.to_owned(), v))
            .collect(),
    );
    assert_eq!(Event::decode(e.name(), &payload).as_ref(), Some(e), "{e:?}");
    let def = e.definition();
    for (name, _) in e.encode() {
        assert!(
            def.payload.iter().any(|p| p.name == name),
            "{}: {name} is not in the definition",
            def.name
        );
    }
    for p in def.payload.iter().filter(|p| p.required) {
        assert!(
            e.encode().iter().any(|(name, _)| *name == p.name),
            "{}: required {} not written",
            def.name,
            p.name
        );
    }
}

#[test]
fn stored_codes_read_back() {
    for t in [Threshold::MajorityOfSeated, Threshold::MajorityOfPresent] {
        assert_eq!(Threshold::from_code(t.code()), Some(t));
    }
    assert_eq!(Threshold::MajorityOfPresent.code(), "present");
    assert_eq!(Choice::For.code(), "for");
    assert_eq!(Change::Termination.code(), "termination");
    assert_eq!(DecisionBody::TownshipPresidium.code(), "township_presidium");
}

/// Issue #12 item 18: acceptance was signed by deputies only; the seeds have deputies and the
/// voter representatives of the project's area inspect on site and all sign.
#[test]
fn acceptance_needs_deputies_and_voter_representatives() {
    let p = project();
    let mut events = vec![
        Event::Shortlisted { at: d(1, 5) },
        Event::Voted {
            adopted: true,
            at: d(1, 20),
        },
        Event::Progress {
            percent: 100,
            note: String::new(),
            at: d(6, 1),
        },
        Event::AcceptanceSigned {
            deputy: id(7),
            at: d(7, 1),
        },
    ];
    let pass = Event::AcceptancePassed { at: d(7, 2) };
    let e = check(&fold(&p, &script(events.clone())), &pass).unwrap_err();
    assert_eq!(e.field(), "voter_signatures");
    assert!(e.reason_zh().contains("选民代表"));
    let voter = Event::VoterSigned {
        signer: VoterSigner::parse("刘大爷", "东村三组").unwrap(),
        at: d(7, 1),
    };
    // Voters alone are not enough either.
    let voters_only = [&events[..3], std::slice::from_ref(&voter)].concat();
    assert_eq!(
        check(&fold(&p, &script(voters_only)), &pass)
            .unwrap_err()
            .field(),
        "signatures"
    );
    events.push(voter);
    let state = fold(&p, &script(events.clone()));
    assert_eq!(state.voter_signatures.len(), 1);
    assert!(check(&state, &pass).is_ok());
    // A project accepted before the rule keeps its stage: the fold does not ask for voters.
    let before = [&events[..4], std::slice::from_ref(&pass)].concat();
    assert_eq!(fold(&p, &script(before)).stage, Stage::Accepted);
    // A signature needs a name and an area.
    assert_eq!(
        VoterSigner::parse("", "东村三组").unwrap_err().field(),
        "voter_name"
    );
    assert_eq!(
        VoterSigner::parse("刘大爷", " ").unwrap_err().field(),
        "voter_area"
    );
}
