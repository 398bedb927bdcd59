//! Each workflow end to end through the gRPC client against a real store, with its refusals.

mod common;

use common::*;
use renda_proto::activity::v1 as act;
use renda_proto::activity::v1::activities_client::ActivitiesClient;
use renda_proto::deputy::v1 as dep;
use renda_proto::deputy::v1::deputies_client::DeputiesClient;
use renda_proto::org::v1 as org;
use renda_proto::org::v1::records_client::RecordsClient;
use renda_proto::project::v1 as prj;
use renda_proto::project::v1::projects_client::ProjectsClient;
use renda_proto::suggestion::v1 as sug;
use renda_proto::suggestion::v1::suggestions_client::SuggestionsClient;
use tonic::Code;

async fn deputy(node: &Node, name: &str) -> anyhow::Result<String> {
    create_deputy(node, deputy_fields(name)).await
}

#[tokio::test]
async fn deputies_mask_personal_data_and_refuse_bad_fields() -> anyhow::Result<()> {
    let node = Node::start(TOWNSHIP).await?;
    let mut c = DeputiesClient::new(node.channel.clone());
    let mut fields = deputy_fields("王芳");
    fields.id_card = "11010519491231002x".into();
    fields.gender = dep::Gender::Female.into();
    let d = c
        .create_deputy(as_user(
            TOWNSHIP,
            dep::CreateDeputyRequest {
                org: String::new(),
                fields: Some(fields.clone()),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(d.id_card_masked, "1101**********002X");
    assert_eq!(d.phone_masked, "139****5678");
    assert_eq!(d.status, i32::from(dep::DeputyStatus::Serving));
    assert!(!d.qr_token.is_empty());
    let listed = c
        .list_deputies(dep::ListDeputiesRequest::default())
        .await?
        .into_inner();
    let text = format!("{listed:?}");
    assert!(!text.contains("11010519491231002X") && !text.contains(DEPUTY_PHONE));
    // The ID-card number never shows in a record's history either.
    let mut records = RecordsClient::new(node.channel.clone());
    let history = records
        .history(org::HistoryRequest {
            record_id: d.id.clone(),
        })
        .await?
        .into_inner();
    assert!(!format!("{history:?}").contains(DEPUTY_PHONE));
    assert!(history.entries.len() >= 5);

    // Refusals name the field; nothing is stored.
    let before = node.store.log_len().await?;
    let mut bad = fields.clone();
    bad.id_card = "110105194912310021".into();
    assert_refused(
        c.create_deputy(as_user(
            TOWNSHIP,
            dep::CreateDeputyRequest {
                org: String::new(),
                fields: Some(bad),
            },
        ))
        .await,
        Code::InvalidArgument,
        "id_card",
    );
    let mut bad = fields.clone();
    bad.name = "长".repeat(500);
    assert_refused(
        c.create_deputy(as_user(
            TOWNSHIP,
            dep::CreateDeputyRequest {
                org: String::new(),
                fields: Some(bad),
            },
        ))
        .await,
        Code::InvalidArgument,
        "name",
    );
    // Another township's deputy cannot be written here.
    assert_refused(
        c.create_deputy(as_user(
            TOWNSHIP,
            dep::CreateDeputyRequest {
                org: OTHER_TOWNSHIP.into(),
                fields: Some(deputy_fields("李强")),
            },
        ))
        .await,
        Code::PermissionDenied,
        // Outside the clerk's reach: refused before any rule of the register is asked.
        "org",
    );
    // The viewer is refused by the gate's role table (was the `x-renda-role` field).
    assert_gate_refused(
        c.create_deputy(as_role(
            TOWNSHIP,
            "viewer",
            dep::CreateDeputyRequest {
                org: String::new(),
                fields: Some(deputy_fields("李强")),
            },
        ))
        .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    // A call with no token at all (the node's raw channel, without the staff default).
    let missing = DeputiesClient::new(node.raw.clone())
        .create_deputy(dep::CreateDeputyRequest {
            org: String::new(),
            fields: Some(deputy_fields("李强")),
        })
        .await;
    assert_gate_refused(missing, Code::Unauthenticated, "NO_TOKEN");
    assert_eq!(node.store.log_len().await?, before);
    Ok(())
}

/// Issue #12 item 12: `UpdateDeputy` replaced every field, so a form sending back the masked
/// phone it was shown was refused and one leaving it empty erased it. An update names the
/// fields it changes (`PatchDeputy`); the others are left as they are.
#[tokio::test]
async fn an_update_writes_only_the_fields_it_names() -> anyhow::Result<()> {
    use dep::DeputyField as F;
    let node = Node::start(TOWNSHIP).await?;
    let mut c = DeputiesClient::new(node.channel.clone());
    let mut fields = deputy_fields("王芳");
    fields.id_card = "11010519491231002x".into();
    fields.gender = dep::Gender::Female.into();
    let id = create_deputy(&node, fields).await?;
    let get = async |c: &mut DeputiesClient<Staffed>| {
        c.get_deputy(dep::GetDeputyRequest { id: id.clone() })
            .await
            .map(|d| d.into_inner())
    };
    let before = get(&mut c).await?;
    assert!(!before.phone_masked.is_empty());
    // The form as shown: masked phone and ID-card number, the sector changed.
    let shown = |d: &dep::Deputy| dep::DeputyFields {
        name: d.name.clone(),
        levels: d.levels.clone(),
        constituency: d.constituency.clone(),
        term: d.term,
        gender: d.gender,
        ethnicity: d.ethnicity.clone(),
        sector: d.sector.clone(),
        phone: d.phone_masked.clone(),
        id_card: d.id_card_masked.clone(),
        status: d.status,
    };
    let patch = |d: &dep::Deputy, fields: dep::DeputyFields, changed: Vec<F>| {
        as_user(
            TOWNSHIP,
            dep::PatchDeputyRequest {
                id: d.id.clone(),
                fields: Some(fields),
                version: d.version.clone(),
                changed: changed.into_iter().map(Into::into).collect(),
            },
        )
    };
    let after = c
        .patch_deputy(patch(
            &before,
            dep::DeputyFields {
                sector: "农业农村".into(),
                ..shown(&before)
            },
            vec![F::Sector],
        ))
        .await?
        .into_inner();
    assert_eq!(after.sector, "农业农村");
    assert_eq!(after.phone_masked, before.phone_masked);
    assert_eq!(after.id_card_masked, before.id_card_masked);
    // A field not named is untouched whatever the request holds for it: here every other
    // field is empty.
    let renamed = c
        .patch_deputy(patch(
            &after,
            dep::DeputyFields {
                name: "王芳芳".into(),
                ..Default::default()
            },
            vec![F::Name],
        ))
        .await?
        .into_inner();
    assert_eq!(renamed.name, "王芳芳");
    assert_eq!(
        (
            renamed.sector.as_str(),
            renamed.levels.clone(),
            renamed.term
        ),
        ("农业农村", before.levels.clone(), before.term)
    );
    assert_eq!(renamed.phone_masked, before.phone_masked);
    // UpdateDeputy writes every field, as before; the masked phone and number sent back
    // stand for the ones on file rather than being refused.
    let all = c
        .update_deputy(as_user(
            TOWNSHIP,
            dep::UpdateDeputyRequest {
                id: renamed.id.clone(),
                fields: Some(dep::DeputyFields {
                    ethnicity: "回族".into(),
                    ..shown(&renamed)
                }),
                version: renamed.version.clone(),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(
        (all.ethnicity.as_str(), all.phone_masked.as_str()),
        ("回族", before.phone_masked.as_str())
    );
    // Named and empty, the phone is erased: that is asked for, not a side effect.
    let erased = c
        .patch_deputy(patch(&all, dep::DeputyFields::default(), vec![F::Phone]))
        .await?
        .into_inner();
    assert_eq!(erased.phone_masked, "");
    assert_eq!(erased.name, "王芳芳");
    // The record after the update is validated whole: a gender against the number on file,
    // a named field against its rule; an unknown field is refused.
    assert_refused(
        c.patch_deputy(patch(
            &erased,
            dep::DeputyFields {
                gender: dep::Gender::Male.into(),
                ..Default::default()
            },
            vec![F::Gender],
        ))
        .await,
        Code::InvalidArgument,
        "gender",
    );
    assert_refused(
        c.patch_deputy(patch(
            &erased,
            dep::DeputyFields::default(),
            vec![F::Levels],
        ))
        .await,
        Code::InvalidArgument,
        "levels",
    );
    assert_refused(
        c.patch_deputy(patch(&erased, dep::DeputyFields::default(), vec![]))
            .await,
        Code::InvalidArgument,
        "changed",
    );
    let mut unknown = patch(&erased, dep::DeputyFields::default(), vec![]);
    unknown.get_mut().changed = vec![99];
    assert_refused(
        c.patch_deputy(unknown).await,
        Code::InvalidArgument,
        "changed",
    );
    assert_eq!(get(&mut c).await?.name, "王芳芳");
    Ok(())
}

#[tokio::test]
async fn activity_dispatch_accept_check_in_and_points() -> anyhow::Result<()> {
    let node = Node::start(TOWNSHIP).await?;
    let a = deputy(&node, "王芳").await?;
    let b = deputy(&node, "李强").await?;
    let mut c = ActivitiesClient::new(node.channel.clone());
    let activity = c
        .create_activity(as_user(
            TOWNSHIP,
            act::CreateActivityRequest {
                kind: act::ActivityKind::Research.into(),
                title: "老旧小区改造调研".into(),
                starts_at_ms: 1_717_200_000_000,
                venue: "八大峡社区".into(),
            },
        ))
        .await?
        .into_inner();
    c.dispatch_activity(as_user(
        TOWNSHIP,
        act::DispatchActivityRequest {
            activity_id: activity.id.clone(),
            deputy_ids: vec![a.clone()],
        },
    ))
    .await?;
    // Only a dispatched deputy accepts.
    assert_refused(
        c.accept_activity(as_user(
            TOWNSHIP,
            act::AcceptActivityRequest {
                activity_id: activity.id.clone(),
                deputy_id: b.clone(),
            },
        ))
        .await,
        Code::FailedPrecondition,
        "deputy",
    );
    c.accept_activity(as_user(
        TOWNSHIP,
        act::AcceptActivityRequest {
            activity_id: activity.id.clone(),
            deputy_id: a.clone(),
        },
    ))
    .await?;
    assert_refused(
        c.check_in(as_user(
            TOWNSHIP,
            act::CheckInRequest {
                activity_id: activity.id.clone(),
                deputy_id: a.clone(),
                qr_token: "wrong".into(),
                at_ms: 0,
            },
        ))
        .await,
        Code::InvalidArgument,
        "qr_token",
    );
    for deputy in [&a, &a, &b] {
        c.check_in(as_user(
            TOWNSHIP,
            act::CheckInRequest {
                activity_id: activity.id.clone(),
                deputy_id: deputy.clone(),
                // A clerk enters it for the deputy (代录): no code.
                qr_token: String::new(),
                at_ms: 1_717_201_000_000,
            },
        ))
        .await?;
    }
    let got = c
        .get_activity(act::GetActivityRequest {
            id: activity.id.clone(),
        })
        .await?
        .into_inner();
    let walk_in = got
        .participants
        .iter()
        .find(|p| p.deputy_id == b)
        .map(|p| (p.participation, p.walk_in));
    assert_eq!(walk_in, Some((act::Participation::CheckedIn.into(), true)));
    let points = c
        .points(act::PointsRequest::default())
        .await?
        .into_inner()
        .points;
    // A check-in counts once however often it was recorded: 2 points each.
    assert_eq!(points.len(), 2);
    assert!(points.iter().all(|p| p.points == 2), "{points:?}");
    let ranking = c
        .ranking(act::RankingRequest {
            org: String::new(),
            period: Some(act::Period {
                year: 2024,
                quarter: 2,
                month: 0,
            }),
        })
        .await?
        .into_inner();
    assert_eq!(ranking.lines.len(), 2);
    assert_eq!(ranking.lines[0].position, 1);
    Ok(())
}

/// 扫码签到: a deputy checks in themselves only with the activity's signed code (the old raw
/// `qr_token` of the activity is no longer a code); a clerk enters a check-in for a deputy
/// without one (代录). Every refusal stores nothing.
#[tokio::test]
async fn a_deputy_checks_in_with_the_signed_code_and_a_clerk_enters_proxy() -> anyhow::Result<()> {
    let node = Node::start(TOWNSHIP).await?;
    let a = deputy(&node, "王芳").await?;
    let b = deputy(&node, "李强").await?;
    let mut c = ActivitiesClient::new(node.channel.clone());
    let now = chrono::Utc::now().timestamp_millis();
    let create = |title: &str| act::CreateActivityRequest {
        kind: act::ActivityKind::Research.into(),
        title: title.into(),
        starts_at_ms: now,
        venue: "八大峡社区".into(),
    };
    let activity = c
        .create_activity(as_user(TOWNSHIP, create("老旧小区改造调研")))
        .await?
        .into_inner();
    let other = c
        .create_activity(as_user(TOWNSHIP, create("社区养老服务视察")))
        .await?
        .into_inner();
    c.dispatch_activity(as_user(
        TOWNSHIP,
        act::DispatchActivityRequest {
            activity_id: activity.id.clone(),
            deputy_ids: vec![a.clone()],
        },
    ))
    .await?;
    let issue = |id: &str, from: i64, until: i64| act::IssueCheckInCodeRequest {
        activity_id: id.into(),
        valid_from_ms: from,
        valid_until_ms: until,
    };
    let check_in = |deputy: &str, code: &str| act::CheckInRequest {
        activity_id: activity.id.clone(),
        deputy_id: deputy.into(),
        qr_token: code.into(),
        at_ms: 0,
    };
    let before = node.store.log_len().await?;
    // A deputy does not make codes: the organiser's staff do.
    assert_gate_refused(
        c.issue_check_in_code(as_deputy(TOWNSHIP, &a, issue(&activity.id, 0, 0)))
            .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert_refused(
        c.issue_check_in_code(as_user(
            TOWNSHIP,
            issue(&activity.id, now, now + 8 * 24 * 3_600_000),
        ))
        .await,
        Code::InvalidArgument,
        "valid_until_ms",
    );
    let code = c
        .issue_check_in_code(as_user(TOWNSHIP, issue(&activity.id, 0, 0)))
        .await?
        .into_inner();
    assert_eq!(code.issuer, TOWNSHIP);
    assert!(
        code.valid_from_ms < now && now < code.valid_until_ms,
        "{code:?}"
    );
    assert_ne!(code.code, activity.qr_token);
    let expired = c
        .issue_check_in_code(as_user(
            TOWNSHIP,
            issue(&activity.id, now - 3 * 3_600_000, now - 3_600_000),
        ))
        .await?
        .into_inner();
    let other_code = c
        .issue_check_in_code(as_user(TOWNSHIP, issue(&other.id, 0, 0)))
        .await?
        .into_inner();
    // Changed behaviour: the activity's raw qr_token is no longer accepted as a check-in code.
    for bad in [
        activity.qr_token.as_str(),
        "",
        expired.code.as_str(),
        other_code.code.as_str(),
    ] {
        assert_refused(
            c.check_in(as_deputy(TOWNSHIP, &a, check_in(&a, bad))).await,
            Code::InvalidArgument,
            "qr_token",
        );
    }
    // A deputy checks in only themselves, even with a good code.
    assert_refused(
        c.check_in(as_deputy(TOWNSHIP, &a, check_in(&b, &code.code)))
            .await,
        Code::PermissionDenied,
        "deputy_id",
    );
    assert_eq!(node.store.log_len().await?, before);

    c.check_in(as_deputy(TOWNSHIP, &a, check_in(&a, &code.code)))
        .await?;
    // The clerk enters b, who was not dispatched, without a code (代录).
    c.check_in(as_user(TOWNSHIP, check_in(&b, ""))).await?;
    let got = c
        .get_activity(as_deputy(
            TOWNSHIP,
            &a,
            act::GetActivityRequest {
                id: activity.id.clone(),
            },
        ))
        .await?
        .into_inner();
    let mode = |d: &str| {
        got.participants
            .iter()
            .find(|p| p.deputy_id == d)
            .map(|p| (p.participation, p.walk_in, p.check_in_mode))
    };
    assert_eq!(
        mode(&a),
        Some((
            act::Participation::CheckedIn.into(),
            false,
            act::CheckInMode::Scan.into()
        ))
    );
    assert_eq!(
        mode(&b),
        Some((
            act::Participation::CheckedIn.into(),
            true,
            act::CheckInMode::Proxy.into()
        ))
    );

    // A deputy sees only the activities that concern them; an account without its deputy
    // record sees none.
    assert_refused(
        c.get_activity(as_deputy(
            TOWNSHIP,
            &a,
            act::GetActivityRequest {
                id: other.id.clone(),
            },
        ))
        .await,
        Code::PermissionDenied,
        "id",
    );
    let listed = |req: tonic::Request<act::ListActivitiesRequest>| {
        let mut c = c.clone();
        async move {
            anyhow::Ok(
                c.list_activities(req)
                    .await?
                    .into_inner()
                    .activities
                    .into_iter()
                    .map(|a| a.id)
                    .collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(
        listed(as_deputy(TOWNSHIP, &a, Default::default())).await?,
        vec![activity.id.clone()]
    );
    assert_eq!(
        listed(as_user(TOWNSHIP, Default::default())).await?.len(),
        2
    );
    assert!(
        listed(as_role(TOWNSHIP, "deputy", Default::default()))
            .await?
            .is_empty()
    );
    assert_refused(
        c.get_activity(as_role(
            TOWNSHIP,
            "deputy",
            act::GetActivityRequest {
                id: activity.id.clone(),
            },
        ))
        .await,
        Code::PermissionDenied,
        "id",
    );
    Ok(())
}

#[tokio::test]
async fn suggestion_workflow_with_refusals() -> anyhow::Result<()> {
    let county = Node::start(COUNTY).await?;
    let lead = deputy(&county, "张伟").await?;
    let mut c = SuggestionsClient::new(county.channel.clone());
    let unit = c
        .create_handling_unit(as_user(
            COUNTY,
            sug::CreateHandlingUnitRequest {
                org: String::new(),
                name: "区住房和城乡建设局".into(),
            },
        ))
        .await?
        .into_inner();
    assert_refused(
        c.submit_suggestion(as_user(
            COUNTY,
            sug::SubmitSuggestionRequest {
                kind: sug::SuggestionKind::Motion.into(),
                title: "关于加快老旧小区改造的议案".into(),
                body: "建议加快老旧小区改造进度，改善居民居住条件。".into(),
                lead_deputy_id: lead.clone(),
                co_signer_ids: vec![],
                on: date("2024-01-05"),
            },
        ))
        .await,
        Code::InvalidArgument,
        "co_signer_ids",
    );
    let s = c
        .submit_suggestion(as_user(
            COUNTY,
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
    assert_eq!(s.status(), sug::SuggestionStatus::Submitted);
    let id = s.id.clone();
    let assign = |on: &str| {
        as_user(
            COUNTY,
            sug::AssignSuggestionRequest {
                suggestion_id: id.clone(),
                assignment: Some(sug::Assignment {
                    mode: sug::AssignmentMode::Single.into(),
                    unit_ids: vec![unit.id.clone()],
                    assisting_unit_ids: vec![],
                }),
                on: date(on),
            },
        )
    };
    // Not reviewed yet: assignment refused by the fold's rule.
    assert_refused(
        c.assign_suggestion(assign("2024-01-10")).await,
        Code::FailedPrecondition,
        "status",
    );
    c.review_suggestion(as_user(
        COUNTY,
        sug::ReviewSuggestionRequest {
            suggestion_id: id.clone(),
            passed: true,
            revision_reason: String::new(),
            on: date("2024-01-08"),
        },
    ))
    .await?;
    let s = c
        .assign_suggestion(assign("2024-01-10"))
        .await?
        .into_inner();
    assert_eq!(
        (s.status(), day(&s.reply_due).as_str()),
        (sug::SuggestionStatus::Assigned, "2024-04-10")
    );
    assert_refused(
        c.reply_suggestion(as_user(
            COUNTY,
            sug::ReplySuggestionRequest {
                suggestion_id: id.clone(),
                unit_id: unit.id.clone(),
                category: sug::ReplyCategory::Unspecified.into(),
                on: date("2024-03-01"),
            },
        ))
        .await,
        Code::InvalidArgument,
        "category",
    );
    let overdue = c
        .overdue_suggestions(sug::OverdueSuggestionsRequest {
            org: String::new(),
            on: date("2024-05-01"),
        })
        .await?
        .into_inner();
    assert_eq!(overdue.items.len(), 1);
    assert_eq!(overdue.items[0].days_late, 21);
    let s = c
        .reply_suggestion(as_user(
            COUNTY,
            sug::ReplySuggestionRequest {
                suggestion_id: id.clone(),
                unit_id: unit.id.clone(),
                category: sug::ReplyCategory::A.into(),
                on: date("2024-03-01"),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(
        (s.status(), s.category()),
        (sug::SuggestionStatus::Replied, sug::ReplyCategory::A)
    );
    let s = c
        .rate_suggestion(as_user(
            COUNTY,
            sug::RateSuggestionRequest {
                suggestion_id: id.clone(),
                deputy_id: lead.clone(),
                satisfaction: renda_proto::types::v1::Satisfaction::Satisfied.into(),
                on: date("2024-03-10"),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(s.status(), sug::SuggestionStatus::Evaluated);
    let rates = c
        .suggestion_rates(sug::SuggestionRatesRequest::default())
        .await?
        .into_inner();
    let reply = rates.reply.unwrap_or_default();
    assert_eq!((reply.numerator, reply.denominator), (1, 1));
    assert_eq!(reply.name_zh, "答复率");
    let s = c
        .close_suggestion(as_user(
            COUNTY,
            sug::StepRequest {
                suggestion_id: id.clone(),
                on: date("2024-03-20"),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(s.status(), sug::SuggestionStatus::Closed);
    Ok(())
}

/// Registers a deputy of one level at `org` through `node`.
async fn deputy_at(
    node: &Node,
    name: &str,
    org: &str,
    level: dep::DeputyLevel,
) -> anyhow::Result<String> {
    Ok(DeputiesClient::new(node.channel.clone())
        .create_deputy(as_user(
            node.org,
            dep::CreateDeputyRequest {
                org: org.into(),
                fields: Some(dep::DeputyFields {
                    levels: vec![level.into()],
                    ..deputy_fields(name)
                }),
            },
        ))
        .await?
        .into_inner()
        .id)
}

/// Issue #12 item 14: a county 议案 was accepted with 9 made-up co-signer ids and a lead from
/// another level. Every signer of a motion is a serving deputy of the receiving congress.
#[tokio::test]
async fn a_motion_is_signed_by_deputies_of_its_congress() -> anyhow::Result<()> {
    let county = Node::start(COUNTY).await?;
    let names = [
        "张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴霞",
    ];
    let mut signers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        // A county deputy is often registered at the township where they live.
        let org = if i % 2 == 0 { COUNTY } else { TOWNSHIP };
        signers.push(deputy_at(&county, name, org, dep::DeputyLevel::County).await?);
    }
    let township_only = deputy_at(&county, "孙丽", TOWNSHIP, dep::DeputyLevel::Township).await?;
    let made_up: Vec<String> = (1..=9)
        .map(|n| uuid::Uuid::from_u128(0xdead_0000 + n).to_string())
        .collect();
    let mut c = SuggestionsClient::new(county.channel.clone());
    let motion = |lead: &str, co: &[String]| {
        as_user(
            COUNTY,
            sug::SubmitSuggestionRequest {
                kind: sug::SuggestionKind::Motion.into(),
                title: "关于加快老旧小区改造的议案".into(),
                body: "建议加快老旧小区改造进度，改善居民居住条件。".into(),
                lead_deputy_id: lead.into(),
                co_signer_ids: co.to_vec(),
                on: date("2024-01-05"),
            },
        )
    };
    // The case as filed: nine invented co-signers and a township deputy leading.
    assert_refused(
        c.submit_suggestion(motion(&township_only, &made_up)).await,
        Code::InvalidArgument,
        "lead_deputy_id",
    );
    assert_refused(
        c.submit_suggestion(motion(&signers[0], &made_up)).await,
        Code::InvalidArgument,
        "co_signer_ids",
    );
    // One township deputy among nine county deputies.
    let mut co = signers[1..9].to_vec();
    co.push(township_only.clone());
    let refused = c
        .submit_suggestion(motion(&signers[0], &co))
        .await
        .expect_err("a township deputy co-signed a county motion");
    let (_, field, zh) = refusal(&refused);
    assert_eq!(field, "co_signer_ids");
    assert!(refused.message().contains(&township_only), "{refused:?}");
    assert!(zh.contains("孙丽"), "{zh}");
    let m = c
        .submit_suggestion(motion(&signers[0], &signers[1..]))
        .await?
        .into_inner();
    assert_eq!(m.co_signer_ids.len(), 9);
    // An edit cannot bring an invented co-signer in either.
    let mut co = m.co_signer_ids.clone();
    co[0] = made_up[0].clone();
    assert_refused(
        c.update_suggestion(as_user(
            COUNTY,
            sug::UpdateSuggestionRequest {
                suggestion_id: m.id.clone(),
                kind: m.kind,
                title: m.title.clone(),
                body: m.body.clone(),
                co_signer_ids: co,
                version: m.version.clone(),
            },
        ))
        .await,
        Code::InvalidArgument,
        "co_signer_ids",
    );
    Ok(())
}

#[tokio::test]
async fn a_township_cannot_assign() -> anyhow::Result<()> {
    let town = Node::start(TOWNSHIP).await?;
    let lead = deputy(&town, "王芳").await?;
    let mut c = SuggestionsClient::new(town.channel.clone());
    let unit = c
        .create_handling_unit(as_user(
            TOWNSHIP,
            sug::CreateHandlingUnitRequest {
                org: String::new(),
                name: "街道办事处".into(),
            },
        ))
        .await?
        .into_inner();
    let s = c
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
    c.review_suggestion(as_user(
        TOWNSHIP,
        sug::ReviewSuggestionRequest {
            suggestion_id: s.id.clone(),
            passed: true,
            revision_reason: String::new(),
            on: date("2024-01-06"),
        },
    ))
    .await?;
    let before = town.store.log_len().await?;
    assert_refused(
        c.assign_suggestion(as_user(
            TOWNSHIP,
            sug::AssignSuggestionRequest {
                suggestion_id: s.id.clone(),
                assignment: Some(sug::Assignment {
                    mode: sug::AssignmentMode::Single.into(),
                    unit_ids: vec![unit.id],
                    assisting_unit_ids: vec![],
                }),
                on: date("2024-01-10"),
            },
        ))
        .await,
        Code::PermissionDenied,
        "author_level",
    );
    // A user of the county cannot write at the township's node either.
    assert_refused(
        c.withdraw_suggestion(as_user(
            COUNTY,
            sug::StepRequest {
                suggestion_id: s.id.clone(),
                on: None,
            },
        ))
        .await,
        Code::PermissionDenied,
        "org",
    );
    assert_eq!(town.store.log_len().await?, before);
    Ok(())
}

#[tokio::test]
async fn project_vote_and_progress() -> anyhow::Result<()> {
    let town = Node::start(TOWNSHIP).await?;
    let deputies = [
        deputy(&town, "王芳").await?,
        deputy(&town, "李强").await?,
        deputy(&town, "赵敏").await?,
    ];
    let mut c = ProjectsClient::new(town.channel.clone());
    let session = c
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
    c.set_seated(as_user(
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
        let p = c
            .create_project(as_user(
                TOWNSHIP,
                prj::CreateProjectRequest {
                    year: 2024,
                    title: title.into(),
                    summary: String::new(),
                    budget_fen: 50_000_000,
                },
            ))
            .await?
            .into_inner();
        c.screen_project(as_user(
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
    let ballot = |project: &str, deputy: &str, choice: i32| {
        as_user(
            TOWNSHIP,
            prj::CastBallotRequest {
                project_id: project.into(),
                deputy_id: deputy.into(),
                choice,
            },
        )
    };
    let (yes, no) = (prj::Choice::For.into(), prj::Choice::Against.into());
    for d in &deputies {
        c.cast_ballot(ballot(&projects[0], d, yes)).await?;
    }
    c.cast_ballot(ballot(&projects[1], &deputies[0], no))
        .await?;
    assert_refused(
        c.cast_ballot(ballot(&projects[0], &deputies[0], yes)).await,
        Code::FailedPrecondition,
        "deputy_id",
    );
    // A value this build does not know, and none at all.
    for unknown in [99, 0] {
        assert_refused(
            c.cast_ballot(ballot(&projects[0], &deputies[0], unknown))
                .await,
            Code::InvalidArgument,
            "choice",
        );
    }
    let tally = c
        .tally_vote(as_user(
            TOWNSHIP,
            prj::TallyVoteRequest {
                session_id: session.id.clone(),
                record_outcome: true,
                on: Some(renda_proto::types::v1::Date {
                    year: 2024,
                    month: 1,
                    day: 20,
                }),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(tally.adopted, vec![projects[0].clone()]);
    assert_eq!(tally.base, 3);
    let p = c
        .report_progress(as_user(
            TOWNSHIP,
            prj::ReportProgressRequest {
                project_id: projects[0].clone(),
                percent: 40,
                note: "主体完工".into(),
                on: Some(renda_proto::types::v1::Date {
                    year: 2024,
                    month: 4,
                    day: 1,
                }),
            },
        ))
        .await?
        .into_inner();
    assert_eq!((p.stage(), p.progress), (prj::Stage::Implementing, 40));
    assert_refused(
        c.report_progress(as_user(
            TOWNSHIP,
            prj::ReportProgressRequest {
                project_id: projects[1].clone(),
                percent: 10,
                note: String::new(),
                on: Some(renda_proto::types::v1::Date {
                    year: 2024,
                    month: 4,
                    day: 1,
                }),
            },
        ))
        .await,
        Code::FailedPrecondition,
        "stage",
    );
    assert_refused(
        c.change_project(as_user(
            TOWNSHIP,
            prj::ChangeProjectRequest {
                project_id: projects[0].clone(),
                change: prj::Change::Termination.into(),
                ..Default::default()
            },
        ))
        .await,
        Code::FailedPrecondition,
        "decision",
    );
    Ok(())
}
