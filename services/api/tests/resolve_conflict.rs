//! `Records.ResolveConflict`: a field edited on two nodes while apart is settled by a person,
//! keeping either value or typing a new one, and the choice replaces both values on every node
//! once the nodes exchange operations again; and every refusal, with nothing written.
//!
//! Suggestions are edited only at the node of their congress, so the two nodes here are two
//! replicas of one township (a node and a restored copy of it, say): each has its own actor and
//! op log, and they exchange operations through the replication rule as the sync engine would.

mod common;

use common::*;
use renda_proto::deputy::v1 as dep;
use renda_proto::opinion::v1 as opn;
use renda_proto::opinion::v1::opinions_client::OpinionsClient;
use renda_proto::org::v1 as org;
use renda_proto::org::v1::records_client::RecordsClient;
use renda_proto::suggestion::v1 as sug;
use renda_proto::suggestion::v1::suggestions_client::SuggestionsClient;
use renda_replica::RecordId;
use tonic::Code;

const TITLE: &str = "关于增设社区公交线路的建议";

/// A deputy with `id_card`; the test's ID-card numbers are women's.
async fn deputy(node: &Node, name: &str, id_card: &str) -> anyhow::Result<String> {
    let fields = dep::DeputyFields {
        id_card: id_card.into(),
        gender: dep::Gender::Female.into(),
        ..deputy_fields(name)
    };
    create_deputy(node, fields).await
}

async fn retitle(node: &Node, id: &str, title: &str) -> anyhow::Result<()> {
    let mut c = SuggestionsClient::new(node.channel.clone());
    let read = c
        .get_suggestion(as_user(
            node.org,
            sug::GetSuggestionRequest { id: id.into() },
        ))
        .await?
        .into_inner();
    c.update_suggestion(as_user(
        node.org,
        sug::UpdateSuggestionRequest {
            suggestion_id: id.into(),
            kind: sug::SuggestionKind::Suggestion.into(),
            title: title.into(),
            body: "建议增设社区公交线路，方便居民出行。".into(),
            co_signer_ids: vec![],
            version: read.version,
        },
    ))
    .await?;
    Ok(())
}

/// The record's version as a person at `node` reads it now; empty when it is not there.
async fn read(node: &Node, id: &str) -> anyhow::Result<String> {
    let Ok(id) = id.parse() else {
        return Ok(String::new());
    };
    Ok(node
        .store
        .record(RecordId(id))
        .await?
        .map(|r| r.version.encode())
        .unwrap_or_default())
}

/// The field's winner as text and the other values this node holds for it.
async fn title_at(node: &Node, id: &str) -> anyhow::Result<(String, Vec<String>)> {
    let record = node
        .store
        .record(RecordId(id.parse()?))
        .await?
        .ok_or_else(|| anyhow::anyhow!("{id} is not at {}", node.org))?;
    let winner = record
        .fields
        .get("title")
        .and_then(|v| v.as_text())
        .unwrap_or_default()
        .to_owned();
    let others = record
        .conflicts
        .get("title")
        .map(|c| {
            c.values
                .iter()
                .filter_map(|s| s.value.as_text().map(str::to_owned))
                .filter(|v| *v != winner)
                .collect()
        })
        .unwrap_or_default();
    Ok((winner, others))
}

/// A suggestion submitted at `node`; its id.
async fn submitted(node: &Node) -> anyhow::Result<String> {
    let lead = deputy(node, "王芳", "").await?;
    let mut sc = SuggestionsClient::new(node.channel.clone());
    let s = sc
        .submit_suggestion(as_user(
            TOWNSHIP,
            sug::SubmitSuggestionRequest {
                kind: sug::SuggestionKind::Suggestion.into(),
                title: TITLE.into(),
                body: "建议增设社区公交线路，方便居民出行。".into(),
                lead_deputy_id: lead,
                co_signer_ids: vec![],
                on: date("2024-01-05"),
            },
        ))
        .await?
        .into_inner();
    Ok(s.id)
}

/// Two replicas of the township with one suggestion retitled on each while apart, exchanged:
/// both show the same conflict on `title`.
async fn conflicted(title_a: &str, title_b: &str) -> anyhow::Result<(Node, Node, String)> {
    let a = Node::start(TOWNSHIP).await?;
    let b = Node::start(TOWNSHIP).await?;
    let id = submitted(&a).await?;
    exchange(&a, &b).await?;
    retitle(&a, &id, title_a).await?;
    retitle(&b, &id, title_b).await?;
    exchange(&a, &b).await?;
    let at_a = title_at(&a, &id).await?;
    assert_eq!(at_a, title_at(&b, &id).await?, "both replicas agree");
    let mut values = vec![at_a.0.clone()];
    values.extend(at_a.1);
    values.sort();
    let mut expected = vec![title_a.to_owned(), title_b.to_owned()];
    expected.sort();
    assert_eq!(values, expected, "the conflict holds both titles");
    Ok((a, b, id))
}

fn request(
    record_id: &str,
    field: &str,
    value: &str,
    version: &str,
) -> org::ResolveConflictRequest {
    org::ResolveConflictRequest {
        record_id: record_id.into(),
        field: field.into(),
        value: value.into(),
        version: version.into(),
    }
}

async fn resolve(
    node: &Node,
    record_id: &str,
    field: &str,
    value: &str,
) -> Result<tonic::Response<org::ResolveConflictResponse>, tonic::Status> {
    let version = read(node, record_id)
        .await
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    RecordsClient::new(node.channel.clone())
        .resolve_conflict(as_user(
            node.org,
            request(record_id, field, value, &version),
        ))
        .await
}

/// Settles at `at`, pushes to `other`, and checks that both replicas hold `chosen` alone.
async fn settle_and_check(at: &Node, other: &Node, id: &str, chosen: &str) -> anyhow::Result<()> {
    let reply = resolve(at, id, "title", chosen).await?.into_inner();
    assert_eq!(
        (reply.field.as_str(), reply.value.as_str()),
        ("title", chosen)
    );
    assert_eq!(title_at(at, id).await?, (chosen.to_owned(), vec![]));
    let report = push(at, other).await?;
    assert_eq!(report.quarantined, 0, "the resolution replicates");
    for node in [at, other] {
        assert_eq!(
            title_at(node, id).await?,
            (chosen.to_owned(), vec![]),
            "settled on every replica"
        );
    }
    // Settled: a second resolution finds nothing to settle and writes nothing.
    let before = at.store.log_len().await?;
    assert_refused(
        resolve(at, id, "title", chosen).await,
        Code::FailedPrecondition,
        "field",
    );
    assert_eq!(at.store.log_len().await?, before);
    Ok(())
}

#[tokio::test]
async fn keeping_the_first_value_settles_both_replicas() -> anyhow::Result<()> {
    let (a, b, id) = conflicted(
        "关于增设社区公交线路的建议（一）",
        "关于开通社区微公交的建议",
    )
    .await?;
    settle_and_check(&a, &b, &id, "关于增设社区公交线路的建议（一）").await
}

#[tokio::test]
async fn keeping_the_other_replicas_value_settles_both_replicas() -> anyhow::Result<()> {
    let (a, b, id) = conflicted(
        "关于增设社区公交线路的建议（一）",
        "关于开通社区微公交的建议",
    )
    .await?;
    // Settled at `a` with the value `b` wrote.
    settle_and_check(&a, &b, &id, "关于开通社区微公交的建议").await
}

#[tokio::test]
async fn a_new_value_settles_both_replicas() -> anyhow::Result<()> {
    let (a, b, id) = conflicted(
        "关于增设社区公交线路的建议（一）",
        "关于开通社区微公交的建议",
    )
    .await?;
    settle_and_check(&b, &a, &id, "关于优化社区公交线路的建议").await
}

#[tokio::test]
async fn refusals_name_the_field_and_write_nothing() -> anyhow::Result<()> {
    let (a, _b, id) = conflicted(
        "关于增设社区公交线路的建议（一）",
        "关于开通社区微公交的建议",
    )
    .await?;
    let mut rc = RecordsClient::new(a.channel.clone());

    // The record: malformed, unknown.
    assert_refused(
        resolve(&a, "not-an-id", "title", "x").await,
        Code::InvalidArgument,
        "record_id",
    );
    // A record this node does not hold: the person cannot have read it here.
    assert_refused(
        resolve(&a, &uuid::Uuid::now_v7().to_string(), "title", "x").await,
        Code::InvalidArgument,
        "version",
    );
    // The version: missing, another record's, or read before the conflict arose.
    let version = read(&a, &id).await?;
    let other = create_deputy(&a, deputy_fields("张伟")).await?;
    let others = read(&a, &other).await?;
    let before = a.store.log_len().await?;
    for (record, version) in [(&id, ""), (&id, "01zz"), (&id, &others), (&other, &version)] {
        assert_refused(
            rc.resolve_conflict(as_user(TOWNSHIP, request(record, "title", TITLE, version)))
                .await,
            Code::InvalidArgument,
            "version",
        );
    }
    // The field: unknown, one no person types, one without a conflict.
    assert_refused(
        resolve(&a, &id, "subtitle", "x").await,
        Code::FailedPrecondition,
        "field",
    );
    assert_refused(
        resolve(&a, &id, "org", "370202002").await,
        Code::InvalidArgument,
        "field",
    );
    assert_refused(
        resolve(&a, &id, "body", "另一段正文").await,
        Code::FailedPrecondition,
        "field",
    );
    // The value: longer than the schema allows (a title holds 100 characters).
    assert_refused(
        resolve(&a, &id, "title", &"长".repeat(101)).await,
        Code::InvalidArgument,
        "value",
    );
    assert_eq!(
        a.store.log_len().await?,
        before,
        "no refusal wrote anything"
    );
    // The value in the field's type: an opinion's raised_at is an integer, a suggestion's lead
    // deputy a record id.
    let opinion = OpinionsClient::new(a.channel.clone())
        .raise_opinion(as_user(
            TOWNSHIP,
            opn::RaiseOpinionRequest {
                content: "菜市场周边夜间照明不足".into(),
                source: opn::OpinionSource::Visit.into(),
                station_id: String::new(),
                raised_at_ms: 1_717_200_000_000,
            },
        ))
        .await?
        .into_inner();
    let before = a.store.log_len().await?;
    assert_refused(
        resolve(&a, &opinion.id, "raised_at", "昨天").await,
        Code::InvalidArgument,
        "value",
    );
    assert_refused(
        resolve(&a, &id, "lead_deputy", "王芳").await,
        Code::InvalidArgument,
        "value",
    );
    // Authority: a viewer, a user of another node, the county (a suggestion is edited only at
    // its congress's node).
    // The viewer is refused by the gate's role table (was the `x-renda-role` field).
    assert_gate_refused(
        rc.resolve_conflict(as_role(
            TOWNSHIP,
            "viewer",
            request(&id, "title", TITLE, &version),
        ))
        .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert_refused(
        rc.resolve_conflict(as_user(COUNTY, request(&id, "title", TITLE, &version)))
            .await,
        Code::PermissionDenied,
        "org",
    );
    let county = Node::start(COUNTY).await?;
    push(&a, &county).await?;
    let county_before = county.store.log_len().await?;
    assert_refused(
        resolve(&county, &id, "title", TITLE).await,
        Code::PermissionDenied,
        "record_org",
    );
    assert_eq!(county.store.log_len().await?, county_before);
    assert_eq!(
        a.store.log_len().await?,
        before,
        "no refusal wrote anything"
    );
    // Personal data: a deputy's ID-card record stays at its node and is not settled here.
    deputy(&a, "李春梅", "11010519491231002x").await?;
    let identity_kind = a
        .store
        .schema()
        .kind_named(renda_api::schema::kind::DEPUTY_IDENTITY)
        .map(|k| k.id)
        .ok_or_else(|| anyhow::anyhow!("no deputy_identity kind"))?;
    let identity = a
        .store
        .records_of_kind(identity_kind, None, 10, 0)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no identity record"))?;
    let before = a.store.log_len().await?;
    assert_refused(
        resolve(
            &a,
            &identity.id.to_string(),
            "id_card",
            "110105194912310029",
        )
        .await,
        Code::FailedPrecondition,
        "record_id",
    );
    assert_eq!(
        a.store.log_len().await?,
        before,
        "no refusal wrote anything"
    );
    // The conflict is still there to settle.
    assert_eq!(title_at(&a, &id).await?.1.len(), 1);
    Ok(())
}

/// A person settles what they saw: a value that reaches the node between their read and their
/// choice stays beside the choice, still a conflict; a conflict that arose after the read is
/// not settled with that read.
#[tokio::test]
async fn a_choice_settles_only_the_values_the_person_saw() -> anyhow::Result<()> {
    // Three replicas hold the suggestion; each retitles it on its own; two of them meet.
    let (a, b, c) = (
        Node::start(TOWNSHIP).await?,
        Node::start(TOWNSHIP).await?,
        Node::start(TOWNSHIP).await?,
    );
    let id = submitted(&a).await?;
    exchange(&a, &b).await?;
    push(&a, &c).await?;
    retitle(&a, &id, "关于增设社区公交线路的建议（一）").await?;
    retitle(&b, &id, "关于开通社区微公交的建议").await?;
    retitle(&c, &id, "关于优化社区公交站点的建议").await?;
    exchange(&a, &b).await?;
    let seen_at_a = read(&a, &id).await?;
    push(&c, &a).await?;
    assert_eq!(title_at(&a, &id).await?.1.len(), 2, "three values now");
    let mut rc = RecordsClient::new(a.channel.clone());
    rc.resolve_conflict(as_user(
        TOWNSHIP,
        request(&id, "title", "关于增设社区公交线路的建议（一）", &seen_at_a),
    ))
    .await?;
    let (winner, others) = title_at(&a, &id).await?;
    let mut values = [vec![winner], others].concat();
    values.sort();
    assert_eq!(
        values,
        vec![
            "关于优化社区公交站点的建议".to_owned(),
            "关于增设社区公交线路的建议（一）".to_owned(),
        ],
        "the value the person never saw is still there to settle"
    );

    // A version read before any conflict does not settle one.
    let d = Node::start(TOWNSHIP).await?;
    push(&c, &d).await?;
    let before_conflict = read(&d, &id).await?;
    push(&a, &d).await?;
    let before = d.store.log_len().await?;
    assert_refused(
        RecordsClient::new(d.channel.clone())
            .resolve_conflict(as_user(
                TOWNSHIP,
                request(&id, "title", "关于优化社区公交站点的建议", &before_conflict),
            ))
            .await,
        Code::FailedPrecondition,
        "version",
    );
    assert_eq!(d.store.log_len().await?, before);
    Ok(())
}
