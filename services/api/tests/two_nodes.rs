//! Workflows split across two nodes (each a real store behind a real server), which exchange
//! operations as the sync engine would: what one node records offline merges into the same
//! state on both.

mod common;

use common::*;
use renda_proto::activity::v1 as act;
use renda_proto::activity::v1::activities_client::ActivitiesClient;
use renda_proto::deputy::v1 as dep;
use renda_proto::project::v1 as prj;
use renda_proto::project::v1::projects_client::ProjectsClient;
use renda_proto::suggestion::v1 as sug;
use renda_proto::suggestion::v1::suggestions_client::SuggestionsClient;
use tonic::Code;

async fn deputy(node: &Node, name: &str) -> anyhow::Result<String> {
    let levels = vec![
        dep::DeputyLevel::Township.into(),
        dep::DeputyLevel::County.into(),
    ];
    create_deputy(
        node,
        dep::DeputyFields {
            levels,
            ..deputy_fields(name)
        },
    )
    .await
}

async fn points(node: &Node) -> anyhow::Result<Vec<(String, u64)>> {
    let mut c = ActivitiesClient::new(node.channel.clone());
    let p = c
        .points(act::PointsRequest {
            org: COUNTY.into(),
            deputy_id: String::new(),
        })
        .await?
        .into_inner();
    Ok(p.points
        .into_iter()
        .map(|p| (p.deputy_id, p.points))
        .collect())
}

#[tokio::test]
async fn county_dispatches_township_checks_in_offline_points_agree() -> anyhow::Result<()> {
    let county = Node::start(COUNTY).await?;
    let town = Node::start(TOWNSHIP).await?;
    let a = deputy(&town, "王芳").await?;
    let b = deputy(&town, "李强").await?;
    push(&town, &county).await?;

    let mut cc = ActivitiesClient::new(county.channel.clone());
    let activity = cc
        .create_activity(as_user(
            COUNTY,
            act::CreateActivityRequest {
                kind: act::ActivityKind::Inspection.into(),
                title: "河道治理视察".into(),
                starts_at_ms: 1_717_200_000_000,
                venue: "李村河".into(),
            },
        ))
        .await?
        .into_inner();
    let dispatched = cc
        .dispatch_activity(as_user(
            COUNTY,
            act::DispatchActivityRequest {
                activity_id: activity.id.clone(),
                deputy_ids: vec![a.clone(), b.clone()],
            },
        ))
        .await?
        .into_inner();
    assert_eq!(dispatched.dispatched_to_orgs, vec![TOWNSHIP.to_string()]);
    // A county clerk cannot forge the township deputy's check-in.
    let before = county.store.log_len().await?;
    assert_refused(
        cc.check_in(as_user(
            COUNTY,
            act::CheckInRequest {
                activity_id: activity.id.clone(),
                deputy_id: a.clone(),
                // A clerk enters it for the deputy (代录): no code.
                qr_token: String::new(),
                at_ms: 1_717_201_000_000,
            },
        ))
        .await,
        Code::PermissionDenied,
        "record_org",
    );
    assert_eq!(county.store.log_len().await?, before);
    push(&county, &town).await?;

    // The township, offline, records its deputies' acceptance and check-ins.
    let mut tc = ActivitiesClient::new(town.channel.clone());
    tc.accept_activity(as_user(
        TOWNSHIP,
        act::AcceptActivityRequest {
            activity_id: activity.id.clone(),
            deputy_id: a.clone(),
        },
    ))
    .await?;
    for d in [&a, &b] {
        tc.check_in(as_user(
            TOWNSHIP,
            act::CheckInRequest {
                activity_id: activity.id.clone(),
                deputy_id: d.clone(),
                // A clerk enters it for the deputy (代录): no code.
                qr_token: String::new(),
                at_ms: 1_717_201_000_000,
            },
        ))
        .await?;
    }
    let town_points = points(&town).await?;
    assert_eq!(town_points.len(), 2);
    assert!(points(&county).await?.is_empty());

    let report = push(&town, &county).await?;
    assert_eq!(report.quarantined, 0);
    push(&county, &town).await?;
    assert_eq!(points(&county).await?, town_points);
    let at_county = cc
        .get_activity(act::GetActivityRequest {
            id: activity.id.clone(),
        })
        .await?
        .into_inner();
    let at_town = tc
        .get_activity(act::GetActivityRequest { id: activity.id })
        .await?
        .into_inner();
    assert_eq!(at_county, at_town);
    assert!(
        at_town
            .participants
            .iter()
            .all(|p| p.participation == i32::from(act::Participation::CheckedIn))
    );
    Ok(())
}

#[tokio::test]
async fn suggestion_raised_at_township_assigned_at_county_rated_at_township() -> anyhow::Result<()>
{
    let county = Node::start(COUNTY).await?;
    let town = Node::start(TOWNSHIP).await?;
    let lead = deputy(&town, "王芳").await?;
    let mut tc = SuggestionsClient::new(town.channel.clone());
    let mut cc = SuggestionsClient::new(county.channel.clone());
    let s = tc
        .submit_suggestion(as_user(
            TOWNSHIP,
            sug::SubmitSuggestionRequest {
                kind: sug::SuggestionKind::Suggestion.into(),
                title: "关于增设社区公交线路的建议".into(),
                body: "建议增设社区公交线路，方便居民出行。".into(),
                lead_deputy_id: lead.clone(),
                co_signer_ids: vec![],
                on: date("2024-01-05"),
            },
        ))
        .await?
        .into_inner();
    tc.review_suggestion(as_user(
        TOWNSHIP,
        sug::ReviewSuggestionRequest {
            suggestion_id: s.id.clone(),
            passed: true,
            revision_reason: String::new(),
            on: date("2024-01-06"),
        },
    ))
    .await?;
    exchange(&town, &county).await?;

    let unit = cc
        .create_handling_unit(as_user(
            COUNTY,
            sug::CreateHandlingUnitRequest {
                org: String::new(),
                name: "区交通运输局".into(),
            },
        ))
        .await?
        .into_inner();
    cc.assign_suggestion(as_user(
        COUNTY,
        sug::AssignSuggestionRequest {
            suggestion_id: s.id.clone(),
            assignment: Some(sug::Assignment {
                mode: sug::AssignmentMode::Single.into(),
                unit_ids: vec![unit.id.clone()],
                assisting_unit_ids: vec![],
            }),
            on: date("2024-01-10"),
        },
    ))
    .await?;
    let replied = cc
        .reply_suggestion(as_user(
            COUNTY,
            sug::ReplySuggestionRequest {
                suggestion_id: s.id.clone(),
                unit_id: unit.id.clone(),
                category: sug::ReplyCategory::B.into(),
                on: date("2024-03-01"),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(replied.status(), sug::SuggestionStatus::Replied);
    // Satisfaction belongs where the deputy is: the county cannot record it.
    assert_refused(
        cc.rate_suggestion(as_user(
            COUNTY,
            sug::RateSuggestionRequest {
                suggestion_id: s.id.clone(),
                deputy_id: lead.clone(),
                satisfaction: renda_proto::types::v1::Satisfaction::Satisfied.into(),
                on: date("2024-03-10"),
            },
        ))
        .await,
        Code::PermissionDenied,
        "record_org",
    );
    exchange(&county, &town).await?;
    tc.rate_suggestion(as_user(
        TOWNSHIP,
        sug::RateSuggestionRequest {
            suggestion_id: s.id.clone(),
            deputy_id: lead.clone(),
            satisfaction: renda_proto::types::v1::Satisfaction::BasicallySatisfied.into(),
            on: date("2024-03-10"),
        },
    ))
    .await?;
    exchange(&town, &county).await?;
    let get = sug::GetSuggestionRequest { id: s.id.clone() };
    let at_county = cc.get_suggestion(get.clone()).await?.into_inner();
    let at_town = tc.get_suggestion(get).await?.into_inner();
    assert_eq!(at_county, at_town);
    assert_eq!(
        (at_town.status(), at_town.category(), at_town.satisfaction()),
        (
            sug::SuggestionStatus::Evaluated,
            sug::ReplyCategory::B,
            renda_proto::types::v1::Satisfaction::BasicallySatisfied
        )
    );
    assert_eq!(county.store.quarantine_count().await?, 0);
    assert_eq!(town.store.quarantine_count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn reply_while_reassigned_merges_to_the_same_status() -> anyhow::Result<()> {
    let county = Node::start(COUNTY).await?;
    let town = Node::start(TOWNSHIP).await?;
    let lead = deputy(&town, "王芳").await?;
    let mut tc = SuggestionsClient::new(town.channel.clone());
    let mut cc = SuggestionsClient::new(county.channel.clone());
    let street_office = tc
        .create_handling_unit(as_user(
            TOWNSHIP,
            sug::CreateHandlingUnitRequest {
                org: String::new(),
                name: "八大峡街道办事处".into(),
            },
        ))
        .await?
        .into_inner();
    let s = tc
        .submit_suggestion(as_user(
            TOWNSHIP,
            sug::SubmitSuggestionRequest {
                kind: sug::SuggestionKind::Suggestion.into(),
                title: "关于修缮社区道路的建议".into(),
                body: "社区主干道破损严重，建议尽快修缮。".into(),
                lead_deputy_id: lead,
                co_signer_ids: vec![],
                on: date("2024-01-05"),
            },
        ))
        .await?
        .into_inner();
    tc.review_suggestion(as_user(
        TOWNSHIP,
        sug::ReviewSuggestionRequest {
            suggestion_id: s.id.clone(),
            passed: true,
            revision_reason: String::new(),
            on: date("2024-01-06"),
        },
    ))
    .await?;
    exchange(&town, &county).await?;
    let bureau = cc
        .create_handling_unit(as_user(
            COUNTY,
            sug::CreateHandlingUnitRequest {
                org: String::new(),
                name: "区城市管理局".into(),
            },
        ))
        .await?
        .into_inner();
    let assign = |unit: &str, on: &str| {
        as_user(
            COUNTY,
            sug::AssignSuggestionRequest {
                suggestion_id: s.id.clone(),
                assignment: Some(sug::Assignment {
                    mode: sug::AssignmentMode::Single.into(),
                    unit_ids: vec![unit.to_string()],
                    assisting_unit_ids: vec![],
                }),
                on: date(on),
            },
        )
    };
    cc.assign_suggestion(assign(&street_office.id, "2024-01-10"))
        .await?;
    exchange(&county, &town).await?;

    // Apart: the street office replies at the township while the county reassigns.
    tc.reply_suggestion(as_user(
        TOWNSHIP,
        sug::ReplySuggestionRequest {
            suggestion_id: s.id.clone(),
            unit_id: street_office.id.clone(),
            category: sug::ReplyCategory::A.into(),
            on: date("2024-01-12"),
        },
    ))
    .await?;
    cc.assign_suggestion(assign(&bureau.id, "2024-01-12"))
        .await?;
    exchange(&town, &county).await?;
    exchange(&county, &town).await?;

    let get = sug::GetSuggestionRequest { id: s.id.clone() };
    let at_county = cc.get_suggestion(get.clone()).await?.into_inner();
    let at_town = tc.get_suggestion(get).await?.into_inner();
    assert_eq!(
        at_county, at_town,
        "both nodes fold the same events to the same state"
    );
    // Whichever step sorts first wins; the other is kept and flagged, never dropped.
    assert_eq!(at_town.replies.len(), 1);
    assert_eq!(at_town.flags.len(), 1, "{:?}", at_town.flags);
    Ok(())
}

#[tokio::test]
async fn township_vote_tallies_identically_at_county_with_a_duplicate_ballot() -> anyhow::Result<()>
{
    let county = Node::start(COUNTY).await?;
    let town = Node::start(TOWNSHIP).await?;
    // A second replica of the township's data (a restored backup mints a new actor).
    let clone = Node::start(TOWNSHIP).await?;
    let deputies = [
        deputy(&town, "王芳").await?,
        deputy(&town, "李强").await?,
        deputy(&town, "赵敏").await?,
    ];
    let mut tc = ProjectsClient::new(town.channel.clone());
    let session = tc
        .create_session(as_user(
            TOWNSHIP,
            prj::CreateSessionRequest {
                name: "第十九届人民代表大会第三次会议".into(),
                year: 2024,
                to_adopt: 1,
                threshold: prj::Threshold::Seated.into(),
                candidate_margin: 1,
            },
        ))
        .await?
        .into_inner();
    tc.set_seated(as_user(
        TOWNSHIP,
        prj::SetSeatedRequest {
            session_id: session.id.clone(),
            add: deputies.to_vec(),
            remove: vec![],
        },
    ))
    .await?;
    let mut projects = Vec::new();
    for title in ["社区养老服务中心建设", "背街小巷路灯改造"] {
        let p = tc
            .create_project(as_user(
                TOWNSHIP,
                prj::CreateProjectRequest {
                    year: 2024,
                    title: title.into(),
                    summary: String::new(),
                    budget_fen: 1_000_000,
                },
            ))
            .await?
            .into_inner();
        tc.screen_project(as_user(
            TOWNSHIP,
            prj::ScreenProjectRequest {
                project_id: p.id.clone(),
                session_id: session.id.clone(),
                on: Some(renda_proto::types::v1::Date {
                    year: 2024,
                    month: 1,
                    day: 2,
                }),
            },
        ))
        .await?;
        projects.push(p.id);
    }
    push(&town, &clone).await?;
    let ballot = |deputy: &str, project: &str, choice: prj::Choice| {
        as_user(
            TOWNSHIP,
            prj::CastBallotRequest {
                project_id: project.into(),
                deputy_id: deputy.into(),
                choice: choice.into(),
            },
        )
    };
    tc.cast_ballot(ballot(&deputies[0], &projects[0], prj::Choice::For))
        .await?;
    tc.cast_ballot(ballot(&deputies[1], &projects[0], prj::Choice::For))
        .await?;
    tc.cast_ballot(ballot(&deputies[2], &projects[1], prj::Choice::Against))
        .await?;
    // The same ballot entered again on the other replica while apart.
    let mut kc = ProjectsClient::new(clone.channel.clone());
    kc.cast_ballot(ballot(&deputies[0], &projects[0], prj::Choice::For))
        .await?;

    exchange(&clone, &town).await?;
    exchange(&town, &county).await?;
    let tally = |session: &str| prj::TallyVoteRequest {
        session_id: session.into(),
        record_outcome: false,
        on: None,
    };
    let at_town = tc.tally_vote(tally(&session.id)).await?.into_inner();
    let mut cc = ProjectsClient::new(county.channel.clone());
    let at_county = cc.tally_vote(tally(&session.id)).await?.into_inner();
    assert_eq!(at_town, at_county);
    assert_eq!(at_town.duplicates, 1);
    // Issue #12 item 13: the tally says whose ballot was doubled, not only how many.
    assert_eq!(
        at_town.repeated_ballots,
        vec![prj::RepeatedBallot {
            deputy_id: deputies[0].clone(),
            deputy_name: "王芳".into(),
            project_id: projects[0].clone(),
            counted: prj::Choice::For.into(),
            times_recorded: 2,
            differing_choices: false,
        }]
    );
    let first = at_town
        .counts
        .iter()
        .find(|c| c.project_id == projects[0])
        .map(|c| c.votes_for);
    assert_eq!(first, Some(2), "the duplicate ballot counts once");
    assert_eq!(at_town.adopted, vec![projects[0].clone()]);
    // Recording the outcome belongs to the township: the county cannot.
    assert_refused(
        cc.tally_vote(as_user(
            COUNTY,
            prj::TallyVoteRequest {
                session_id: session.id.clone(),
                record_outcome: true,
                on: None,
            },
        ))
        .await,
        Code::PermissionDenied,
        "record_org",
    );
    Ok(())
}
