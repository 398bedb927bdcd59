//! Opinions escalated from a township to its county, and stations with their checklist.

mod common;

use common::*;
use renda_proto::opinion::v1 as op;
use renda_proto::opinion::v1::opinions_client::OpinionsClient;
use renda_proto::station::v1 as st;
use renda_proto::station::v1::stations_client::StationsClient;
use tonic::Code;

#[tokio::test]
async fn an_escalated_opinion_is_handled_by_the_county() -> anyhow::Result<()> {
    let county = Node::start(COUNTY).await?;
    let town = Node::start(TOWNSHIP).await?;
    let mut sc = StationsClient::new(town.channel.clone());
    let station = sc
        .create_station(as_user(
            TOWNSHIP,
            st::CreateStationRequest {
                name: "八大峡街道人大代表联络站".into(),
                kind: st::StationKind::Station.into(),
                address: "八大峡路1号".into(),
                checklist: vec![
                    st::ChecklistItem::Premises.into(),
                    st::ChecklistItem::DeputyInfoPublished.into(),
                ],
            },
        ))
        .await?
        .into_inner();
    assert_eq!(
        (station.has_met, station.published_met, station.complete),
        (1, 1, false)
    );
    assert_refused(
        sc.create_station(as_user(
            TOWNSHIP,
            st::CreateStationRequest {
                name: "某联络点".into(),
                kind: st::StationKind::Point.into(),
                address: String::new(),
                checklist: vec![],
            },
        ))
        .await,
        Code::InvalidArgument,
        "address",
    );

    let mut tc = OpinionsClient::new(town.channel.clone());
    let o = tc
        .raise_opinion(as_user(
            TOWNSHIP,
            op::RaiseOpinionRequest {
                content: "小区门口路灯损坏，夜间出行不便".into(),
                source: op::OpinionSource::Station.into(),
                station_id: station.id.clone(),
                raised_at_ms: 0,
            },
        ))
        .await?
        .into_inner();
    assert_eq!(o.status(), op::OpinionStatus::Open);
    let o = tc
        .escalate_opinion(as_user(
            TOWNSHIP,
            op::OpinionStepRequest {
                opinion_id: o.id.clone(),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(
        (o.status(), o.handling_org.as_str()),
        (op::OpinionStatus::Handling, COUNTY)
    );
    // Now the county handles it: the township can no longer resolve it.
    assert_refused(
        tc.resolve_opinion(as_user(
            TOWNSHIP,
            op::ResolveOpinionRequest {
                opinion_id: o.id.clone(),
                note: "已修复".into(),
            },
        ))
        .await,
        Code::PermissionDenied,
        "record_org",
    );
    exchange(&town, &county).await?;
    let mut cc = OpinionsClient::new(county.channel.clone());
    cc.resolve_opinion(as_user(
        COUNTY,
        op::ResolveOpinionRequest {
            opinion_id: o.id.clone(),
            note: "已安排城管部门修复路灯".into(),
        },
    ))
    .await?;
    exchange(&county, &town).await?;
    let get = op::GetOpinionRequest { id: o.id.clone() };
    let at_town = tc.get_opinion(get.clone()).await?.into_inner();
    assert_eq!(at_town, cc.get_opinion(get).await?.into_inner());
    assert_eq!(at_town.status(), op::OpinionStatus::Resolved);
    assert_eq!(
        at_town.handled_by,
        vec![TOWNSHIP.to_string(), COUNTY.to_string()]
    );
    assert_eq!(county.store.quarantine_count().await?, 0);
    Ok(())
}

/// The by-org row of `org` in an opinions report of the county, as numbers after the code
/// and name: collected, the four routes, resolved, open.
async fn opinion_row(node: &Node, org: &str) -> anyhow::Result<Vec<i64>> {
    use renda_proto::report::v1 as rp;
    let report = rp::reports_client::ReportsClient::new(node.channel.clone())
        .get_report(as_user(
            node.org,
            rp::ReportRequest {
                name: "opinions".into(),
                org_code: node.org.into(),
                from: date("2000-01-01"),
                to: date("2100-01-01"),
                freshness_limit_hours: 0,
                freshness_limit_minutes: 0,
            },
        ))
        .await?
        .into_inner();
    let row = report
        .tables
        .iter()
        .find(|t| t.key == "by_org")
        .and_then(|t| {
            t.rows.iter().find(|r| {
                matches!(r.cells.first().and_then(|c| c.kind.as_ref()),
                    Some(renda_proto::report::v1::cell::Kind::Text(t)) if t == org)
            })
        })
        .ok_or_else(|| anyhow::anyhow!("no row for {org}"))?;
    Ok(row.cells[2..9]
        .iter()
        .map(|c| match c.kind {
            Some(renda_proto::report::v1::cell::Kind::Int(n)) => n,
            _ => -1,
        })
        .collect())
}

/// Issue #12, item 2: 逐级向上反映 counts the opinions the unit where they were raised
/// escalated, whether by `EscalateOpinion` or by `RouteOpinion` with that route (which now
/// escalates instead of being refused), and keeps counting them there after the county
/// assigns one to a department of its own.
#[tokio::test]
async fn escalated_opinions_count_in_their_column() -> anyhow::Result<()> {
    let county = Node::start(COUNTY).await?;
    let town = Node::start(TOWNSHIP).await?;
    let mut tc = OpinionsClient::new(town.channel.clone());
    let raise = async || -> anyhow::Result<op::Opinion> {
        Ok(tc
            .clone()
            .raise_opinion(as_user(
                TOWNSHIP,
                op::RaiseOpinionRequest {
                    content: "小区门口路灯损坏，夜间出行不便".into(),
                    source: op::OpinionSource::Station.into(),
                    station_id: String::new(),
                    raised_at_ms: 0,
                },
            ))
            .await?
            .into_inner())
    };
    let (a, b, c) = (raise().await?, raise().await?, raise().await?);
    let route = |id: &str, route: op::OpinionRoute, to: &str| op::RouteOpinionRequest {
        opinion_id: id.into(),
        route: route.into(),
        to: to.into(),
    };
    tc.route_opinion(as_user(
        TOWNSHIP,
        route(&a.id, op::OpinionRoute::AnsweredOnSite, ""),
    ))
    .await?;
    tc.escalate_opinion(as_user(
        TOWNSHIP,
        op::OpinionStepRequest {
            opinion_id: b.id.clone(),
        },
    ))
    .await?;
    // The route selector's fourth way: the level above is the target, so `to` names nothing.
    assert_refused(
        tc.route_opinion(as_user(
            TOWNSHIP,
            route(&c.id, op::OpinionRoute::EscalatedUpward, "区人大常委会"),
        ))
        .await,
        Code::InvalidArgument,
        "to",
    );
    let up = tc
        .route_opinion(as_user(
            TOWNSHIP,
            route(&c.id, op::OpinionRoute::EscalatedUpward, ""),
        ))
        .await?
        .into_inner();
    assert_eq!(
        (up.status(), up.route(), up.handling_org.as_str()),
        (
            op::OpinionStatus::Handling,
            op::OpinionRoute::EscalatedUpward,
            COUNTY
        )
    );
    assert_eq!(
        up.handled_by,
        vec![TOWNSHIP.to_string(), COUNTY.to_string()]
    );
    exchange(&town, &county).await?;
    // The county assigns one of them to a department and resolves it.
    let mut cc = OpinionsClient::new(county.channel.clone());
    cc.route_opinion(as_user(
        COUNTY,
        route(
            &c.id,
            op::OpinionRoute::AssignedToDepartment,
            "区城市管理局",
        ),
    ))
    .await?;
    cc.resolve_opinion(as_user(
        COUNTY,
        op::ResolveOpinionRequest {
            opinion_id: c.id.clone(),
            note: "已安排城管部门修复路灯".into(),
        },
    ))
    .await?;
    exchange(&county, &town).await?;
    // collected, on site, transferred, assigned, escalated, resolved, open
    let want = vec![3, 1, 0, 0, 2, 1, 2];
    assert_eq!(opinion_row(&county, TOWNSHIP).await?, want);
    assert_eq!(opinion_row(&town, TOWNSHIP).await?, want);
    assert_eq!(county.store.quarantine_count().await?, 0);
    Ok(())
}
