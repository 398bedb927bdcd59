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
