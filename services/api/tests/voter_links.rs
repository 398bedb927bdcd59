//! 联系选民、结对: a deputy's pairing with voter households through the gRPC client, the
//! visits counted against it, and the refusals of Deputies.LinkVoters.

mod common;

use common::*;
use renda_proto::deputy::v1 as dep;
use renda_proto::deputy::v1::deputies_client::DeputiesClient;
use renda_proto::org::v1 as org;
use renda_proto::org::v1::records_client::RecordsClient;
use tonic::Code;

fn fields(name: &str) -> dep::DeputyFields {
    let constituency = "王哥庄选区".into();
    dep::DeputyFields {
        constituency,
        ..deputy_fields(name)
    }
}

async fn create(c: &mut DeputiesClient<Staffed>, name: &str) -> anyhow::Result<dep::Deputy> {
    Ok(c.create_deputy(as_user(
        TOWNSHIP,
        dep::CreateDeputyRequest {
            org: String::new(),
            fields: Some(fields(name)),
        },
    ))
    .await?
    .into_inner())
}

fn link(deputy_id: &str, households: u32, area: &str, since: &str) -> dep::LinkVotersRequest {
    dep::LinkVotersRequest {
        deputy_id: deputy_id.into(),
        households,
        area: area.into(),
        since: date(since),
    }
}

async fn visit(
    c: &mut DeputiesClient<Staffed>,
    deputy_id: &str,
    households: u32,
    on: &str,
) -> anyhow::Result<dep::Deputy> {
    Ok(c.record_visit(as_user(
        TOWNSHIP,
        dep::RecordVisitRequest {
            deputy_id: deputy_id.into(),
            households,
            note: String::new(),
            on: date(on),
        },
    ))
    .await?
    .into_inner())
}

fn current(d: &dep::Deputy) -> Option<(u32, &str, String)> {
    d.voter_link
        .as_ref()
        .map(|l| (l.households, l.area.as_str(), day(&l.since)))
}

#[tokio::test]
async fn link_relink_and_visits_since_the_link() -> anyhow::Result<()> {
    let node = Node::start(TOWNSHIP).await?;
    let mut c = DeputiesClient::new(node.channel.clone());
    let d = create(&mut c, "王建国").await?;
    assert_eq!((d.voter_link.clone(), d.visited_households), (None, 0));

    // A visit before any link counts as a visit, not against a pairing.
    let d = visit(&mut c, &d.id, 4, "2024-02-20").await?;
    assert_eq!((d.visits, d.visited_households), (1, 0));

    let d = c
        .link_voters(as_user(
            TOWNSHIP,
            link(&d.id, 50, " 王哥庄社区三组 ", "2024-03-01"),
        ))
        .await?
        .into_inner();
    assert_eq!(
        current(&d),
        Some((50, "王哥庄社区三组", "2024-03-01".to_owned()))
    );
    assert_eq!((d.visits, d.visited_households), (1, 0));

    // Visits on or after the link date count against it; earlier ones do not.
    visit(&mut c, &d.id, 12, "2024-03-01").await?;
    let d = visit(&mut c, &d.id, 8, "2024-04-15").await?;
    assert_eq!((d.visits, d.visited_households), (3, 20));

    // Relinking changes the pairing: the latest counts, and so do only the visits since it.
    let d = c
        .link_voters(as_user(
            TOWNSHIP,
            link(&d.id, 60, "王哥庄社区四组", "2024-04-01"),
        ))
        .await?
        .into_inner();
    assert_eq!(
        current(&d),
        Some((60, "王哥庄社区四组", "2024-04-01".to_owned()))
    );
    assert_eq!((d.visits, d.visited_households), (3, 8));
    let d = visit(&mut c, &d.id, 5, "2024-05-10").await?;
    assert_eq!((d.visits, d.visited_households), (4, 13));

    // Reads give the same current link.
    let got = c
        .get_deputy(dep::GetDeputyRequest { id: d.id.clone() })
        .await?
        .into_inner();
    assert_eq!(
        current(&got),
        Some((60, "王哥庄社区四组", "2024-04-01".to_owned()))
    );
    assert_eq!(got.visited_households, 13);
    let listed = c
        .list_deputies(dep::ListDeputiesRequest::default())
        .await?
        .into_inner();
    assert_eq!(
        listed.deputies.iter().map(current).collect::<Vec<_>>(),
        vec![Some((60, "王哥庄社区四组", "2024-04-01".to_owned()))]
    );

    // Both links stay in the record's history, in order.
    let history = RecordsClient::new(node.channel.clone())
        .history(org::HistoryRequest {
            record_id: d.id.clone(),
        })
        .await?
        .into_inner();
    let links: Vec<&str> = history
        .entries
        .iter()
        .map(|e| e.change.as_str())
        .filter(|c| c.starts_with("event voter_link"))
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links[0].contains("王哥庄社区三组"), "{links:?}");
    assert!(links[1].contains("王哥庄社区四组"), "{links:?}");
    Ok(())
}

#[tokio::test]
async fn link_voters_refusals_name_the_field() -> anyhow::Result<()> {
    let node = Node::start(TOWNSHIP).await?;
    let mut c = DeputiesClient::new(node.channel.clone());
    let d = create(&mut c, "李秀英").await?;
    let before = node.store.log_len().await?;

    for (req, field) in [
        (link(&d.id, 0, "王哥庄社区三组", "2024-03-01"), "households"),
        (
            link(&d.id, 201, "王哥庄社区三组", "2024-03-01"),
            "households",
        ),
        (link(&d.id, 50, "", "2024-03-01"), "area"),
        (link(&d.id, 50, "   ", "2024-03-01"), "area"),
        (link(&d.id, 50, &"村".repeat(101), "2024-03-01"), "area"),
        (link(&d.id, 50, "王哥庄社区三组", ""), "since"),
        (link(&d.id, 50, "王哥庄社区三组", "2024-02-30"), "since"),
        (link(&d.id, 50, "王哥庄社区三组", "三月一日"), "since"),
        (
            link("not-an-id", 50, "王哥庄社区三组", "2024-03-01"),
            "deputy_id",
        ),
    ] {
        assert_refused(
            c.link_voters(as_user(TOWNSHIP, req)).await,
            Code::InvalidArgument,
            field,
        );
    }
    // The bounds themselves are accepted (checked below, after the refusals).
    let (low, high) = (
        link(&d.id, 1, &"村".repeat(100), "2024-03-01"),
        link(&d.id, 200, "王哥庄社区三组", "2024-03-01"),
    );

    // Authority as for every deputy step: no viewer, no other township's user.
    // The viewer is refused by the gate's role table (was the `x-renda-role` field).
    assert_gate_refused(
        c.link_voters(as_role(
            TOWNSHIP,
            "viewer",
            link(&d.id, 50, "王哥庄社区三组", "2024-03-01"),
        ))
        .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    // Another township's user is not served by this node at all: the gate refuses them
    // before the service (which named `x-renda-org`) is asked.
    assert_gate_refused(
        c.link_voters(as_user(
            OTHER_TOWNSHIP,
            link(&d.id, 50, "王哥庄社区三组", "2024-03-01"),
        ))
        .await,
        Code::PermissionDenied,
        "OUTSIDE_SCOPE",
    );
    let unknown = c
        .link_voters(as_user(
            TOWNSHIP,
            link(
                "0191d7a4-0000-7000-8000-000000000000",
                50,
                "王哥庄社区三组",
                "2024-03-01",
            ),
        ))
        .await;
    assert_eq!(unknown.err().map(|s| s.code()), Some(Code::NotFound));
    assert_eq!(node.store.log_len().await?, before);

    let got = c.link_voters(as_user(TOWNSHIP, low)).await?.into_inner();
    assert_eq!(got.voter_link.map(|l| l.households), Some(1));
    let got = c.link_voters(as_user(TOWNSHIP, high)).await?.into_inner();
    assert_eq!(got.voter_link.map(|l| l.households), Some(200));

    // A terminated deputy is paired with nobody new.
    let mut terminated = fields("李秀英");
    terminated.status = dep::DeputyStatus::Terminated.into();
    c.update_deputy(as_user(
        TOWNSHIP,
        dep::UpdateDeputyRequest {
            id: d.id.clone(),
            fields: Some(terminated),
            version: version_of(&node, &d.id).await?,
        },
    ))
    .await?;
    let before = node.store.log_len().await?;
    assert_refused(
        c.link_voters(as_user(
            TOWNSHIP,
            link(&d.id, 50, "王哥庄社区三组", "2024-06-01"),
        ))
        .await,
        Code::FailedPrecondition,
        "deputy_id",
    );
    assert_eq!(node.store.log_len().await?, before);
    let got = c
        .get_deputy(dep::GetDeputyRequest { id: d.id.clone() })
        .await?
        .into_inner();
    assert_eq!(
        got.voter_link.map(|l| (l.households, day(&l.since))),
        Some((200, "2024-03-01".to_owned()))
    );
    Ok(())
}

#[tokio::test]
async fn a_voter_link_reaches_the_county() -> anyhow::Result<()> {
    let town = Node::start(TOWNSHIP).await?;
    let county = Node::start(COUNTY).await?;
    let mut c = DeputiesClient::new(town.channel.clone());
    let d = create(&mut c, "张桂兰").await?;
    c.link_voters(as_user(
        TOWNSHIP,
        link(&d.id, 48, "王哥庄社区三组", "2024-03-01"),
    ))
    .await?;
    visit(&mut c, &d.id, 9, "2024-03-05").await?;
    // The replication rule knows the step: nothing is quarantined at the county.
    let report = push(&town, &county).await?;
    assert_eq!(report.quarantined, 0, "{report:?}");
    let got = DeputiesClient::new(county.channel.clone())
        .get_deputy(dep::GetDeputyRequest { id: d.id.clone() })
        .await?
        .into_inner();
    assert_eq!(
        current(&got),
        Some((48, "王哥庄社区三组", "2024-03-01".to_owned()))
    );
    assert_eq!((got.visits, got.visited_households), (1, 9));
    Ok(())
}
