//! The org tree read from the store, the update calls, department appraisal, quarterly
//! bulletins, report-back coverage and evaluations, station residents and receptions, and
//! project supervision and maintenance: each through the gRPC client, with its refusals.

mod common;

use common::*;
use renda_proto::activity::v1 as act;
use renda_proto::activity::v1::activities_client::ActivitiesClient;
use renda_proto::deputy::v1 as dep;
use renda_proto::deputy::v1::deputies_client::DeputiesClient;
use renda_proto::evaluation::v1 as ev;
use renda_proto::evaluation::v1::evaluations_client::EvaluationsClient;
use renda_proto::org::v1 as org;
use renda_proto::org::v1::org_units_client::OrgUnitsClient;
use renda_proto::project::v1 as prj;
use renda_proto::project::v1::projects_client::ProjectsClient;
use renda_proto::station::v1 as st;
use renda_proto::station::v1::stations_client::StationsClient;
use renda_proto::suggestion::v1 as sug;
use renda_proto::suggestion::v1::suggestions_client::SuggestionsClient;
use tonic::Code;

/// The proto enum value name of a stored code: `township` is `DEPUTY_LEVEL_TOWNSHIP`.
fn enum_name(prefix: &str, code: &str) -> String {
    format!("{prefix}{}", code.to_ascii_uppercase())
}

fn fields(name: &str, levels: &[&str]) -> dep::DeputyFields {
    let levels = levels
        .iter()
        .map(|l| {
            dep::DeputyLevel::from_str_name(&enum_name("DEPUTY_LEVEL_", l)).map_or(0, i32::from)
        })
        .collect();
    dep::DeputyFields {
        levels,
        ..deputy_fields(name)
    }
}

async fn deputies(node: &Node, n: usize, levels: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut c = DeputiesClient::new(node.channel.clone());
    let mut out = Vec::new();
    for i in 0..n {
        let d = c
            .create_deputy(as_user(
                node.org,
                dep::CreateDeputyRequest {
                    org: String::new(),
                    fields: Some(fields(&format!("代表{i}号"), levels)),
                },
            ))
            .await?
            .into_inner();
        out.push(d.id);
    }
    Ok(out)
}

#[tokio::test]
async fn the_org_tree_comes_from_the_store_and_unknown_units_are_refused() -> anyhow::Result<()> {
    let city = Node::start_bare(CITY).await?;
    let town = Node::start_bare(TOWNSHIP).await?;
    let station = || st::CreateStationRequest {
        name: "八大峡街道代表之家".into(),
        kind: st::StationKind::Home.into(),
        address: "八大峡路1号".into(),
        checklist: vec![],
    };
    // A township that has not received the org tree knows no unit and writes nothing.
    let mut sc = StationsClient::new(town.channel.clone());
    assert_refused(
        sc.create_station(as_user(TOWNSHIP, station())).await,
        Code::InvalidArgument,
        "author_org",
    );
    // The city writes the tree; a county cannot.
    let mut units = OrgUnitsClient::new(city.channel.clone());
    for (code, name) in [
        ("370200", "青岛市"),
        ("370202", "市南区"),
        ("370202001", "八大峡街道"),
    ] {
        units
            .create_org_unit(as_user(
                CITY,
                org::CreateOrgUnitRequest {
                    code: code.into(),
                    name: name.into(),
                },
            ))
            .await?;
    }
    assert_refused(
        units
            .create_org_unit(as_user(
                CITY,
                org::CreateOrgUnitRequest {
                    code: "370203001".into(),
                    name: "某街道".into(),
                },
            ))
            .await,
        Code::FailedPrecondition,
        "code",
    );
    let county = Node::start_bare(COUNTY).await?;
    push(&city, &county).await?;
    let mut cu = OrgUnitsClient::new(county.channel.clone());
    // Only the city office may call CreateOrgUnit: the gate now refuses the county office's
    // role before the service's write rule (which named `author_org`) is asked.
    assert_gate_refused(
        cu.create_org_unit(as_user(
            COUNTY,
            org::CreateOrgUnitRequest {
                code: "370202003".into(),
                name: "新设街道".into(),
            },
        ))
        .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    // Units that arrive by sync are loaded: the township now writes, and lists its tree.
    push(&city, &town).await?;
    let made = sc.create_station(as_user(TOWNSHIP, station())).await?;
    assert_eq!(made.into_inner().org, TOWNSHIP);
    let tree = OrgUnitsClient::new(town.channel.clone())
        .list_org_units(org::ListOrgUnitsRequest::default())
        .await?
        .into_inner();
    let codes: Vec<&str> = tree.units.iter().map(|u| u.code.as_str()).collect();
    assert_eq!(codes, vec!["370200", "370202", "370202001"]);
    // A unit added later reaches the county's tree on its next request.
    units
        .create_org_unit(as_user(
            CITY,
            org::CreateOrgUnitRequest {
                code: "370202002".into(),
                name: "云南路街道".into(),
            },
        ))
        .await?;
    let mut dc = DeputiesClient::new(county.channel.clone());
    let for_unit = |code: &str| dep::CreateDeputyRequest {
        org: code.into(),
        fields: Some(fields("李明", &["county"])),
    };
    // A valid code that is not in the county's tree is refused, naming the field.
    assert_refused(
        dc.create_deputy(as_user(COUNTY, for_unit(OTHER_TOWNSHIP)))
            .await,
        Code::InvalidArgument,
        "org",
    );
    push(&city, &county).await?;
    // Once the unit has arrived, the county's deputy office may keep the register below it.
    let d = dc
        .create_deputy(as_user(COUNTY, for_unit(OTHER_TOWNSHIP)))
        .await?
        .into_inner();
    assert_eq!(d.org, OTHER_TOWNSHIP);
    assert_refused(
        dc.create_deputy(as_user(COUNTY, for_unit("370202009")))
            .await,
        Code::InvalidArgument,
        "org",
    );
    Ok(())
}

/// Issue #12, item 19: a read naming an org unit the node's tree does not know is refused as a
/// write for it is (INVALID_ARGUMENT naming `org`), never answered OK with empty figures; the
/// same reads of a known unit, and of the node's default, still answer.
#[tokio::test]
async fn reads_of_an_unknown_org_unit_are_refused_like_writes() -> anyhow::Result<()> {
    let county = Node::start(COUNTY).await?;
    // Inside the county's subtree by its code, so reach lets it through; not in the tree.
    let unknown = "370202099";
    let mut sc = SuggestionsClient::new(county.channel.clone());
    let list = |org: &str| sug::ListSuggestionsRequest {
        org: org.into(),
        limit: 10,
        offset: 0,
    };
    let rates = |org: &str| sug::SuggestionRatesRequest { org: org.into() };
    // The write refuses it, and so do the reads now.
    assert_refused(
        sc.create_handling_unit(as_user(
            COUNTY,
            sug::CreateHandlingUnitRequest {
                org: unknown.into(),
                name: "区交通运输局".into(),
            },
        ))
        .await,
        Code::InvalidArgument,
        "org",
    );
    assert_refused(
        sc.list_suggestions(as_user(COUNTY, list(unknown))).await,
        Code::InvalidArgument,
        "org",
    );
    assert_refused(
        sc.suggestion_rates(as_user(COUNTY, rates(unknown))).await,
        Code::InvalidArgument,
        "org",
    );
    assert_refused(
        sc.overdue_suggestions(as_user(
            COUNTY,
            sug::OverdueSuggestionsRequest {
                org: unknown.into(),
                on: None,
            },
        ))
        .await,
        Code::InvalidArgument,
        "org",
    );
    assert_refused(
        sc.list_handling_units(as_user(
            COUNTY,
            sug::ListHandlingUnitsRequest {
                org: unknown.into(),
            },
        ))
        .await,
        Code::InvalidArgument,
        "org",
    );
    assert_refused(
        DeputiesClient::new(county.channel.clone())
            .list_deputies(as_user(
                COUNTY,
                dep::ListDeputiesRequest {
                    org: unknown.into(),
                    limit: 10,
                    offset: 0,
                },
            ))
            .await,
        Code::InvalidArgument,
        "org",
    );
    assert_refused(
        StationsClient::new(county.channel.clone())
            .list_stations(as_user(
                COUNTY,
                st::ListStationsRequest {
                    org: unknown.into(),
                    limit: 10,
                    offset: 0,
                },
            ))
            .await,
        Code::InvalidArgument,
        "org",
    );
    // The message says which code.
    let status = sc
        .list_suggestions(as_user(COUNTY, list(unknown)))
        .await
        .expect_err("refused");
    assert!(status.message().contains(unknown), "{status:?}");
    // Known units and the default still answer.
    for org in [COUNTY, TOWNSHIP, ""] {
        sc.list_suggestions(as_user(COUNTY, list(org))).await?;
        sc.suggestion_rates(as_user(COUNTY, rates(org))).await?;
    }
    Ok(())
}

#[tokio::test]
async fn updates_before_the_workflow_moves_on() -> anyhow::Result<()> {
    let node = Node::start(TOWNSHIP).await?;
    let ids = deputies(&node, 6, &["township"]).await?;

    // Activity: changed until the first check-in.
    let mut ac = ActivitiesClient::new(node.channel.clone());
    let a = ac
        .create_activity(as_user(
            TOWNSHIP,
            act::CreateActivityRequest {
                kind: act::ActivityKind::Research.into(),
                title: "老旧小区改造调研".into(),
                starts_at_ms: 1_780_000_000_000,
                venue: "街道会议室".into(),
            },
        ))
        .await?
        .into_inner();
    let update = |kind: &str, title: &str, version: String| act::UpdateActivityRequest {
        id: a.id.clone(),
        kind: act::ActivityKind::from_str_name(&enum_name("ACTIVITY_KIND_", kind))
            .map_or(0, i32::from),
        title: title.into(),
        starts_at_ms: 1_780_086_400_000,
        venue: "代表之家".into(),
        version,
    };
    let changed = ac
        .update_activity(as_user(
            TOWNSHIP,
            update(
                "inspection",
                "老旧小区改造视察",
                version_of(&node, &a.id).await?,
            ),
        ))
        .await?
        .into_inner();
    assert_eq!(
        (changed.kind, changed.venue.as_str()),
        (act::ActivityKind::Inspection.into(), "代表之家")
    );
    assert_refused(
        ac.update_activity(as_user(
            TOWNSHIP,
            update("party", "老旧小区改造视察", version_of(&node, &a.id).await?),
        ))
        .await,
        Code::InvalidArgument,
        "kind",
    );
    assert_refused(
        ac.update_activity(as_user(
            TOWNSHIP,
            update(
                "inspection",
                &"长".repeat(401),
                version_of(&node, &a.id).await?,
            ),
        ))
        .await,
        Code::InvalidArgument,
        "title",
    );
    // A viewer may not update: refused by the gate's role table (was the `x-renda-role` field).
    assert_gate_refused(
        ac.update_activity(as_role(
            TOWNSHIP,
            "viewer",
            update("inspection", "视察", version_of(&node, &a.id).await?),
        ))
        .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    ac.dispatch_activity(as_user(
        TOWNSHIP,
        act::DispatchActivityRequest {
            activity_id: a.id.clone(),
            deputy_ids: vec![ids[0].clone()],
        },
    ))
    .await?;
    ac.check_in(as_user(
        TOWNSHIP,
        act::CheckInRequest {
            activity_id: a.id.clone(),
            deputy_id: ids[0].clone(),
            // Entered by the clerk (代录): no code.
            qr_token: String::new(),
            at_ms: 0,
        },
    ))
    .await?;
    assert_refused(
        ac.update_activity(as_user(
            TOWNSHIP,
            update("inspection", "改期", version_of(&node, &a.id).await?),
        ))
        .await,
        Code::FailedPrecondition,
        "id",
    );

    // Station: the whole form replaced, checked like a new one.
    let mut sc = StationsClient::new(node.channel.clone());
    let s = sc
        .create_station(as_user(
            TOWNSHIP,
            st::CreateStationRequest {
                name: "团岛社区代表联络站".into(),
                kind: st::StationKind::Station.into(),
                address: "团岛三路5号".into(),
                checklist: vec![st::ChecklistItem::Premises.into()],
            },
        ))
        .await?
        .into_inner();
    let station_update =
        |kind: st::StationKind, address: &str, checklist: Vec<i32>, version: String| {
            st::UpdateStationRequest {
                id: s.id.clone(),
                name: "团岛社区代表之家".into(),
                kind: kind.into(),
                address: address.into(),
                checklist,
                version,
            }
        };
    use st::ChecklistItem as Item;
    let all: Vec<i32> = [
        Item::Premises,
        Item::Information,
        Item::Rules,
        Item::Plan,
        Item::Files,
        Item::Materials,
        Item::Equipment,
        Item::OnlinePlatform,
        Item::DeputyInfoPublished,
        Item::ReceptionPlanPublished,
        Item::WorkStatusPublished,
        Item::OperationStatusPublished,
    ]
    .into_iter()
    .map(i32::from)
    .collect();
    let s2 = sc
        .update_station(as_user(
            TOWNSHIP,
            station_update(
                st::StationKind::Home,
                "团岛三路5号",
                all.clone(),
                version_of(&node, &s.id).await?,
            ),
        ))
        .await?
        .into_inner();
    assert_eq!(
        (
            s2.name.as_str(),
            s2.kind(),
            s2.complete,
            s2.qr_token == s.qr_token
        ),
        ("团岛社区代表之家", st::StationKind::Home, true, true)
    );
    assert_refused(
        sc.update_station(as_user(
            TOWNSHIP,
            // Not an item of 八有四公开.
            station_update(
                st::StationKind::Home,
                "团岛三路5号",
                vec![99],
                version_of(&node, &s.id).await?,
            ),
        ))
        .await,
        Code::InvalidArgument,
        "checklist",
    );
    assert_refused(
        sc.update_station(as_user(
            TOWNSHIP,
            station_update(
                st::StationKind::Home,
                "",
                vec![],
                version_of(&node, &s.id).await?,
            ),
        ))
        .await,
        Code::InvalidArgument,
        "address",
    );

    // Suggestion: edited while in review, not after.
    let mut gc = SuggestionsClient::new(node.channel.clone());
    let g = gc
        .submit_suggestion(as_user(
            TOWNSHIP,
            sug::SubmitSuggestionRequest {
                kind: sug::SuggestionKind::Suggestion.into(),
                title: "关于增设公交站点的建议".into(),
                body: "居民出行不便，建议在社区门口增设公交站点。".into(),
                lead_deputy_id: ids[0].clone(),
                co_signer_ids: vec![ids[1].clone(), ids[2].clone()],
                on: None,
            },
        ))
        .await?
        .into_inner();
    let edit =
        |kind: sug::SuggestionKind, co: &[String], version: String| sug::UpdateSuggestionRequest {
            suggestion_id: g.id.clone(),
            kind: kind.into(),
            title: "关于增设公交站点和候车亭的建议".into(),
            body: "居民出行不便，建议在社区门口增设公交站点和候车亭。".into(),
            co_signer_ids: co.to_vec(),
            version,
        };
    let g2 = gc
        .update_suggestion(as_user(
            TOWNSHIP,
            edit(
                sug::SuggestionKind::Suggestion,
                &ids[2..4],
                version_of(&node, &g.id).await?,
            ),
        ))
        .await?
        .into_inner();
    let mut co = g2.co_signer_ids.clone();
    co.sort();
    let mut want = ids[2..4].to_vec();
    want.sort();
    assert_eq!(co, want);
    assert_eq!(g2.title, "关于增设公交站点和候车亭的建议");
    // A motion at a township congress needs five deputies jointly.
    assert_refused(
        gc.update_suggestion(as_user(
            TOWNSHIP,
            edit(
                sug::SuggestionKind::Motion,
                &ids[1..3],
                version_of(&node, &g.id).await?,
            ),
        ))
        .await,
        Code::InvalidArgument,
        "co_signer_ids",
    );
    assert_refused(
        gc.update_suggestion(as_user(
            TOWNSHIP,
            edit(
                sug::SuggestionKind::Suggestion,
                &ids[0..2],
                version_of(&node, &g.id).await?,
            ),
        ))
        .await,
        Code::InvalidArgument,
        "co_signer_ids",
    );
    gc.review_suggestion(as_user(
        TOWNSHIP,
        sug::ReviewSuggestionRequest {
            suggestion_id: g.id.clone(),
            passed: true,
            revision_reason: String::new(),
            on: None,
        },
    ))
    .await?;
    assert_refused(
        gc.update_suggestion(as_user(
            TOWNSHIP,
            edit(
                sug::SuggestionKind::Suggestion,
                &ids[2..4],
                version_of(&node, &g.id).await?,
            ),
        ))
        .await,
        Code::FailedPrecondition,
        "status",
    );

    // Project: edited until the vote is recorded.
    let mut pc = ProjectsClient::new(node.channel.clone());
    let p = pc
        .create_project(as_user(
            TOWNSHIP,
            prj::CreateProjectRequest {
                year: 2026,
                title: "社区长者食堂建设".into(),
                summary: String::new(),
                budget_fen: 30_000_000,
            },
        ))
        .await?
        .into_inner();
    let project_update = |year: i32, budget: i64, version: String| prj::UpdateProjectRequest {
        id: p.id.clone(),
        year,
        title: "社区长者食堂扩建".into(),
        summary: "扩建就餐区".into(),
        budget_fen: budget,
        version,
    };
    let p2 = pc
        .update_project(as_user(
            TOWNSHIP,
            project_update(2026, 45_000_000, version_of(&node, &p.id).await?),
        ))
        .await?
        .into_inner();
    assert_eq!(
        (p2.title.as_str(), p2.budget_fen),
        ("社区长者食堂扩建", 45_000_000)
    );
    assert_refused(
        pc.update_project(as_user(
            TOWNSHIP,
            project_update(1999, 1, version_of(&node, &p.id).await?),
        ))
        .await,
        Code::InvalidArgument,
        "year",
    );
    assert_refused(
        pc.update_project(as_user(
            TOWNSHIP,
            project_update(2026, -1, version_of(&node, &p.id).await?),
        ))
        .await,
        Code::InvalidArgument,
        "budget_fen",
    );
    pc.screen_project(as_user(
        TOWNSHIP,
        prj::ScreenProjectRequest {
            project_id: p.id.clone(),
            session_id: String::new(),
            on: None,
        },
    ))
    .await?;
    assert_refused(
        pc.update_project(as_user(
            TOWNSHIP,
            project_update(2026, 45_000_000, version_of(&node, &p.id).await?),
        ))
        .await,
        Code::FailedPrecondition,
        "stage",
    );
    Ok(())
}

/// A session with three seated deputies voting four candidates for two places; returns the
/// session's deputies and the adopted projects.
async fn adopted_projects(node: &Node) -> anyhow::Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let ids = deputies(node, 3, &["township"]).await?;
    let mut pc = ProjectsClient::new(node.channel.clone());
    let session = pc
        .create_session(as_user(
            TOWNSHIP,
            prj::CreateSessionRequest {
                name: "2026年民生实事项目票决会议".into(),
                year: 2026,
                to_adopt: 3,
                threshold: prj::Threshold::Seated.into(),
                candidate_margin: 1,
            },
        ))
        .await?
        .into_inner();
    pc.set_seated(as_user(
        TOWNSHIP,
        prj::SetSeatedRequest {
            session_id: session.id.clone(),
            add: ids.clone(),
            remove: vec![],
        },
    ))
    .await?;
    let mut candidates = Vec::new();
    for title in [
        "道路硬化工程",
        "饮水管网改造",
        "文化广场建设",
        "路灯更新工程",
    ] {
        let p = pc
            .create_project(as_user(
                TOWNSHIP,
                prj::CreateProjectRequest {
                    year: 2026,
                    title: title.into(),
                    summary: String::new(),
                    budget_fen: 10_000_000,
                },
            ))
            .await?
            .into_inner();
        pc.screen_project(as_user(
            TOWNSHIP,
            prj::ScreenProjectRequest {
                project_id: p.id.clone(),
                session_id: session.id.clone(),
                on: None,
            },
        ))
        .await?;
        candidates.push(p.id);
    }
    for (c, p) in candidates.iter().enumerate() {
        for d in &ids {
            pc.cast_ballot(as_user(
                TOWNSHIP,
                prj::CastBallotRequest {
                    project_id: p.clone(),
                    deputy_id: d.clone(),
                    choice: if c < 3 {
                        prj::Choice::For
                    } else {
                        prj::Choice::Against
                    }
                    .into(),
                },
            ))
            .await?;
        }
    }
    let tally = pc
        .tally_vote(as_user(
            TOWNSHIP,
            prj::TallyVoteRequest {
                session_id: session.id.clone(),
                record_outcome: true,
                on: None,
            },
        ))
        .await?
        .into_inner();
    assert_eq!(tally.adopted.len(), 3);
    Ok((ids, tally.adopted, candidates))
}

#[tokio::test]
async fn supervision_groups_adopt_projects_and_deputies_maintain_them() -> anyhow::Result<()> {
    let node = Node::start(TOWNSHIP).await?;
    let (ids, adopted, candidates) = adopted_projects(&node).await?;
    let mut dc = DeputiesClient::new(node.channel.clone());
    let group = dc
        .create_group(as_user(
            TOWNSHIP,
            dep::CreateGroupRequest {
                org: String::new(),
                name: "第一监督小组".into(),
                sector: String::new(),
                members: ids.clone(),
            },
        ))
        .await?
        .into_inner();
    let mut pc = ProjectsClient::new(node.channel.clone());
    let adopt = |project: &str, group: &str| prj::AdoptForSupervisionRequest {
        project_id: project.into(),
        group_id: group.into(),
        on: day(2026, 3, 1),
    };
    // Not adopted by the congress: nothing to supervise.
    assert_refused(
        pc.adopt_for_supervision(as_user(TOWNSHIP, adopt(&candidates[3], &group.id)))
            .await,
        Code::FailedPrecondition,
        "stage",
    );
    for p in &adopted[..2] {
        let r = pc
            .adopt_for_supervision(as_user(TOWNSHIP, adopt(p, &group.id)))
            .await?
            .into_inner();
        assert_eq!(r.supervision_group_ids, vec![group.id.clone()]);
    }
    // One or two projects per group.
    assert_refused(
        pc.adopt_for_supervision(as_user(TOWNSHIP, adopt(&adopted[2], &group.id)))
            .await,
        Code::FailedPrecondition,
        "group_id",
    );
    assert_refused(
        pc.adopt_for_supervision(as_user(TOWNSHIP, adopt(&adopted[2], "not-an-id")))
            .await,
        Code::InvalidArgument,
        "group_id",
    );

    // Maintenance follows acceptance.
    let p = &adopted[0];
    let step = |deputy: &str| prj::DeputyStepRequest {
        project_id: p.clone(),
        deputy_id: deputy.into(),
        on: day(2026, 9, 30),
    };
    assert_refused(
        pc.start_maintenance(as_user(TOWNSHIP, step(&ids[0]))).await,
        Code::FailedPrecondition,
        "stage",
    );
    pc.report_progress(as_user(
        TOWNSHIP,
        prj::ReportProgressRequest {
            project_id: p.clone(),
            percent: 100,
            note: "完工".into(),
            on: day(2026, 9, 1),
        },
    ))
    .await?;
    pc.sign_acceptance(as_user(TOWNSHIP, step(&ids[1]))).await?;
    let pass = || {
        as_user(
            TOWNSHIP,
            prj::ProjectStepRequest {
                project_id: p.clone(),
                on: day(2026, 9, 30),
            },
        )
    };
    // Issue #12 item 18: deputies and the voter representatives of the project's area sign.
    assert_refused(
        pc.pass_acceptance(pass()).await,
        Code::FailedPrecondition,
        "voter_signatures",
    );
    let voter = |name: &str, area: &str| {
        as_user(
            TOWNSHIP,
            prj::SignAcceptanceAsVoterRequest {
                project_id: p.clone(),
                voter_name: name.into(),
                voter_area: area.into(),
                on: day(2026, 9, 30),
            },
        )
    };
    assert_refused(
        pc.sign_acceptance_as_voter(voter("刘大爷", "")).await,
        Code::InvalidArgument,
        "voter_area",
    );
    let signed = pc
        .sign_acceptance_as_voter(voter("刘大爷", "东村三组"))
        .await?
        .into_inner();
    assert_eq!(
        signed.voter_signatures,
        vec![prj::VoterSignature {
            voter_name: "刘大爷".into(),
            voter_area: "东村三组".into(),
        }]
    );
    let accepted = pc.pass_acceptance(pass()).await?.into_inner();
    assert_eq!(accepted.stage(), prj::Stage::Accepted);
    let visit = |points: u32| prj::RecordMaintenanceRequest {
        project_id: p.clone(),
        deputy_id: ids[2].clone(),
        note: "巡查设施".into(),
        volunteer_points: points,
        on: day(2026, 10, 8),
    };
    assert_refused(
        pc.record_maintenance(as_user(TOWNSHIP, visit(5))).await,
        Code::FailedPrecondition,
        "stage",
    );
    let m = pc
        .start_maintenance(as_user(TOWNSHIP, step(&ids[2])))
        .await?
        .into_inner();
    assert_eq!(
        (m.stage(), m.caretaker_id.as_str()),
        (prj::Stage::Maintained, ids[2].as_str())
    );
    assert_refused(
        pc.record_maintenance(as_user(TOWNSHIP, visit(101))).await,
        Code::InvalidArgument,
        "volunteer_points",
    );
    let m = pc
        .record_maintenance(as_user(TOWNSHIP, visit(5)))
        .await?
        .into_inner();
    assert_eq!(m.maintenance.len(), 1);
    assert_eq!(
        (m.maintenance[0].volunteer_points, m.maintenance[0].on),
        (5, day(2026, 10, 8))
    );
    Ok(())
}

/// A request's or answer's date.
fn day(year: i32, month: i32, day: i32) -> Option<renda_proto::types::v1::Date> {
    Some(renda_proto::types::v1::Date { year, month, day })
}

#[tokio::test]
async fn appraisal_bulletin_report_backs_and_evaluations() -> anyhow::Result<()> {
    let county = Node::start(COUNTY).await?;
    let town = Node::start(TOWNSHIP).await?;
    let ids = deputies(&town, 4, &["county", "township"]).await?;
    let mut dc = DeputiesClient::new(town.channel.clone());
    let mut gone = fields("离任代表", &["county"]);
    gone.status = dep::DeputyStatus::Terminated.into();
    dc.update_deputy(as_user(
        TOWNSHIP,
        dep::UpdateDeputyRequest {
            id: ids[3].clone(),
            fields: Some(gone),
            version: version_of(&town, &ids[3]).await?,
        },
    ))
    .await?;

    // Report-backs: coverage of serving deputies per term.
    let mut ec = EvaluationsClient::new(town.channel.clone());
    let report = |deputy: &str, term: u32| ev::RecordReportBackRequest {
        deputy_id: deputy.into(),
        term,
        on: date("2026-08-18"),
        summary: "向选民报告履职情况".into(),
        voters_present: 40,
    };
    ec.record_report_back(as_user(TOWNSHIP, report(&ids[0], 19)))
        .await?;
    ec.record_report_back(as_user(TOWNSHIP, report(&ids[1], 19)))
        .await?;
    ec.record_report_back(as_user(TOWNSHIP, report(&ids[2], 18)))
        .await?;
    assert_refused(
        ec.record_report_back(as_user(TOWNSHIP, report(&ids[0], 0)))
            .await,
        Code::InvalidArgument,
        "term",
    );
    assert_refused(
        ec.record_report_back(as_user(COUNTY, report(&ids[0], 19)))
            .await,
        Code::PermissionDenied,
        "org",
    );
    let coverage = ec
        .report_back_coverage(ev::ReportBackCoverageRequest {
            org: String::new(),
            term: 19,
        })
        .await?
        .into_inner();
    assert_eq!((coverage.numerator, coverage.denominator), (2, 3));
    assert_eq!(coverage.name_zh, "述职覆盖率");
    assert!(!coverage.definition_zh.is_empty());

    // Self-evaluation and voter scoring.
    let evaluation = |self_score: u32, voters: Vec<u32>| ev::RecordEvaluationRequest {
        deputy_id: ids[0].clone(),
        year: 2025,
        self_score,
        self_summary: "全年参加活动12次".into(),
        voter_scores: voters,
    };
    let e = ec
        .record_evaluation(as_user(TOWNSHIP, evaluation(90, vec![80, 90, 100])))
        .await?
        .into_inner();
    assert_eq!((e.self_score, e.voter_average), (90, Some(90.0)));
    assert_refused(
        ec.record_evaluation(as_user(TOWNSHIP, evaluation(101, vec![])))
            .await,
        Code::InvalidArgument,
        "self_score",
    );
    assert_refused(
        ec.record_evaluation(as_user(TOWNSHIP, evaluation(90, vec![50, 300])))
            .await,
        Code::InvalidArgument,
        "voter_scores",
    );

    // The quarterly bulletin of a group counts the quarter's duty records.
    let group = dc
        .create_group(as_user(
            TOWNSHIP,
            dep::CreateGroupRequest {
                org: String::new(),
                name: "八大峡代表小组".into(),
                sector: String::new(),
                members: ids[..3].to_vec(),
            },
        ))
        .await?
        .into_inner();
    let bulletin = |group_id: &str, quarter: u32| ev::BulletinRequest {
        group_id: group_id.into(),
        org: String::new(),
        year: 2026,
        quarter,
    };
    let b = ec.bulletin(bulletin(&group.id, 3)).await?.into_inner();
    assert_eq!(b.lines.len(), 3);
    assert!(b.title_zh.contains("2026年第3季度"), "{}", b.title_zh);
    let with_report: Vec<_> = b
        .lines
        .iter()
        .filter(|l| {
            l.counts
                .iter()
                .any(|c| c.kind == i32::from(act::DutyRecordKind::ReportBack) && c.count == 1)
        })
        .collect();
    assert_eq!(with_report.len(), 3, "{b:?}");
    assert!(b.lines.iter().all(|l| l.name.starts_with("代表")));
    let q2 = ec.bulletin(bulletin(&group.id, 2)).await?.into_inner();
    assert!(
        q2.lines
            .iter()
            .all(|l| l.counts.is_empty() && l.points == 0)
    );
    assert_refused(
        ec.bulletin(bulletin(&group.id, 5)).await,
        Code::InvalidArgument,
        "quarter",
    );
    let by_org = ec.bulletin(bulletin("", 3)).await?.into_inner();
    assert_eq!(by_org.lines.len(), 3, "serving deputies only");

    // 工作评议 at the county, by the county's serving deputies.
    push(&town, &county).await?;
    let mut cc = EvaluationsClient::new(county.channel.clone());
    let appraisal = cc
        .create_appraisal(as_user(
            COUNTY,
            ev::CreateAppraisalRequest {
                department: "区住房和城乡建设局".into(),
                year: 2026,
            },
        ))
        .await?
        .into_inner();
    assert_refused(
        cc.create_appraisal(as_user(
            COUNTY,
            ev::CreateAppraisalRequest {
                department: "局".into(),
                year: 2026,
            },
        ))
        .await,
        Code::InvalidArgument,
        "department",
    );
    let vote = |deputy: &str, satisfaction: &str| ev::RecordAppraisalVoteRequest {
        appraisal_id: appraisal.id.clone(),
        deputy_id: deputy.into(),
        satisfaction: renda_proto::types::v1::Satisfaction::from_str_name(&enum_name(
            "SATISFACTION_",
            satisfaction,
        ))
        .map_or(0, i32::from),
    };
    cc.record_appraisal_vote(as_user(COUNTY, vote(&ids[0], "dissatisfied")))
        .await?;
    // A later vote of the same deputy replaces the earlier one.
    cc.record_appraisal_vote(as_user(COUNTY, vote(&ids[0], "satisfied")))
        .await?;
    cc.record_appraisal_vote(as_user(COUNTY, vote(&ids[1], "basically_satisfied")))
        .await?;
    let a = cc
        .record_appraisal_vote(as_user(COUNTY, vote(&ids[2], "dissatisfied")))
        .await?
        .into_inner();
    assert_eq!(a.votes, 4);
    assert_refused(
        cc.record_appraisal_vote(as_user(COUNTY, vote(&ids[3], "satisfied")))
            .await,
        Code::FailedPrecondition,
        "deputy_id",
    );
    assert_refused(
        cc.record_appraisal_vote(as_user(COUNTY, vote(&ids[1], "great")))
            .await,
        Code::InvalidArgument,
        "satisfaction",
    );
    assert_refused(
        cc.record_appraisal_vote(as_user(TOWNSHIP, vote(&ids[1], "satisfied")))
            .await,
        Code::PermissionDenied,
        "org",
    );
    let result = cc
        .appraisal_result(ev::AppraisalResultRequest {
            appraisal_id: appraisal.id.clone(),
        })
        .await?
        .into_inner();
    let rate = result.satisfaction_rate.unwrap_or_default();
    assert_eq!((rate.numerator, rate.denominator), (2, 3));
    assert_eq!(result.counts.len(), 3);
    Ok(())
}

#[tokio::test]
async fn station_residents_and_receptions() -> anyhow::Result<()> {
    let node = Node::start(TOWNSHIP).await?;
    let ids = deputies(&node, 3, &["township"]).await?;
    let mut sc = StationsClient::new(node.channel.clone());
    let s = sc
        .create_station(as_user(
            TOWNSHIP,
            st::CreateStationRequest {
                name: "西陵峡路社区代表联络站".into(),
                kind: st::StationKind::Station.into(),
                address: "西陵峡路8号".into(),
                checklist: vec![],
            },
        ))
        .await?
        .into_inner();
    let residents = |add: Vec<String>, remove: Vec<String>| st::SetResidentsRequest {
        station_id: s.id.clone(),
        add,
        remove,
    };
    let r = sc
        .set_residents(as_user(TOWNSHIP, residents(ids.clone(), vec![])))
        .await?
        .into_inner();
    assert_eq!(r.residents.len(), 3);
    let r = sc
        .set_residents(as_user(TOWNSHIP, residents(vec![], vec![ids[2].clone()])))
        .await?
        .into_inner();
    let mut got = r.residents.clone();
    got.sort();
    let mut want = ids[..2].to_vec();
    want.sort();
    assert_eq!(got, want);
    assert_refused(
        sc.set_residents(as_user(TOWNSHIP, residents(vec!["x".into()], vec![])))
            .await,
        Code::InvalidArgument,
        "add",
    );
    assert_refused(
        sc.set_residents(as_user(COUNTY, residents(vec![], vec![])))
            .await,
        Code::PermissionDenied,
        "org",
    );
    let reception = |deputies: Vec<String>, (month, day): (i32, i32)| st::RecordReceptionRequest {
        station_id: s.id.clone(),
        deputy_ids: deputies,
        on: Some(renda_proto::types::v1::Date {
            year: 2026,
            month,
            day,
        }),
        note: "邀您见".into(),
    };
    sc.record_reception(as_user(TOWNSHIP, reception(ids[..2].to_vec(), (7, 10))))
        .await?;
    let r = sc
        .record_reception(as_user(TOWNSHIP, reception(ids[..1].to_vec(), (8, 10))))
        .await?
        .into_inner();
    assert_eq!(r.receptions, 2);
    assert_refused(
        sc.record_reception(as_user(TOWNSHIP, reception(vec![], (9, 10))))
            .await,
        Code::InvalidArgument,
        "deputy_ids",
    );
    assert_refused(
        // 31 September is no day.
        sc.record_reception(as_user(TOWNSHIP, reception(ids[..1].to_vec(), (9, 31))))
            .await,
        Code::InvalidArgument,
        "on",
    );
    // Each deputy at a reception gets a duty record: the bulletin counts them.
    let b = EvaluationsClient::new(node.channel.clone())
        .bulletin(ev::BulletinRequest {
            group_id: String::new(),
            org: String::new(),
            year: 2026,
            quarter: 3,
        })
        .await?
        .into_inner();
    let receptions: u32 = b
        .lines
        .iter()
        .flat_map(|l| l.counts.iter())
        .filter(|c| c.kind == i32::from(act::DutyRecordKind::Reception))
        .map(|c| c.count)
        .sum();
    assert_eq!(receptions, 3);
    // Lists page in SQL.
    let page = sc
        .list_stations(st::ListStationsRequest {
            org: String::new(),
            limit: 1,
            offset: 1,
        })
        .await?
        .into_inner();
    assert!(page.stations.is_empty());
    assert_refused(
        sc.list_stations(st::ListStationsRequest {
            org: String::new(),
            limit: 5000,
            offset: 0,
        })
        .await,
        Code::InvalidArgument,
        "limit",
    );
    Ok(())
}
