//! `Records.DismissQuarantined`: an operation this node refused on receipt stays aside until a
//! person of this node settles it with a reason (or its legitimate copy arrives); every
//! refusal leaves the entry open.

mod common;

use common::*;
use renda_proto::org::v1 as org;
use renda_proto::org::v1::records_client::RecordsClient;
use renda_replica::{ActorId, OrgCode, RecordId, Replica, Value};
use tonic::Code;

/// One operation from a township's replica, refused by the city node as if relayed from
/// outside its sender's subtree; returns the entry's id.
async fn quarantined(node: &Node) -> anyhow::Result<i64> {
    let schema = node.store.schema().clone();
    let kind = schema.kind_named("deputy").map(|k| k.id);
    let kind = kind.ok_or_else(|| anyhow::anyhow!("deputy kind"))?;
    let township: OrgCode = "370202001".parse()?;
    let mut replica = Replica::new(ActorId(0x7e57), township, schema);
    let op = replica.put(
        RecordId(uuid::Uuid::now_v7()),
        kind,
        renda_replica::schema::ORG,
        Value::Org(township),
        1_700_000_000_000,
    )?;
    let refuse = |_: &renda_replica::Op, _: Option<OrgCode>| Err("outside the sender".to_string());
    let report = node
        .store
        .apply_batch(&[op.encode()], Some("370202001"), &refuse)
        .await?;
    anyhow::ensure!(report.quarantined == 1, "{report:?}");
    let entries = node.store.quarantine(10).await?;
    Ok(entries.first().map(|q| q.id).unwrap_or_default())
}

fn dismiss(id: i64, reason: &str) -> org::DismissQuarantinedRequest {
    org::DismissQuarantinedRequest {
        id,
        reason: reason.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_of_the_node_dismisses_a_quarantined_operation_with_a_reason() -> anyhow::Result<()>
{
    let city = Node::start("370200").await?;
    let id = quarantined(&city).await?;
    let mut records = RecordsClient::new(city.channel.clone());

    // Without a reason, with a bad id, as a reader: refused, the entry stays open.
    assert_refused(
        records
            .dismiss_quarantined(as_user("370200", dismiss(id, "  ")))
            .await,
        Code::InvalidArgument,
        "reason",
    );
    assert_refused(
        records
            .dismiss_quarantined(as_user("370200", dismiss(0, "重复")))
            .await,
        Code::InvalidArgument,
        "id",
    );
    assert_refused(
        records
            .dismiss_quarantined(as_user("370200", dismiss(id + 1000, "重复")))
            .await,
        Code::FailedPrecondition,
        "id",
    );
    assert!(
        records
            .dismiss_quarantined(as_role("370200", "viewer", dismiss(id, "重复")))
            .await
            .is_err(),
        "a read-only account settles nothing"
    );
    // Staff of another unit (a county office reaching the city node) may not either.
    assert!(
        records
            .dismiss_quarantined(as_user("370202", dismiss(id, "重复")))
            .await
            .is_err(),
        "another unit's staff settle nothing here"
    );
    assert_eq!(city.store.quarantine_count().await?, 1);

    // The city's office, with a reason: settled, kept with who and why.
    let answer = records
        .dismiss_quarantined(as_user(
            "370200",
            dismiss(id, "乡镇回退上报时转发的区县操作，区县已自行上报"),
        ))
        .await?
        .into_inner();
    assert_eq!(answer.id, id);
    assert_eq!(city.store.quarantine_count().await?, 0);
    let settled = city.store.quarantine_settled(10).await?;
    let how = settled
        .iter()
        .find(|q| q.id == id)
        .and_then(|q| q.settled.clone())
        .ok_or_else(|| anyhow::anyhow!("the dismissed entry is kept"))?;
    assert_eq!(how.note, "乡镇回退上报时转发的区县操作，区县已自行上报");
    assert_eq!(how.by, "370200:7");
    assert!(!how.superseded);
    // Once settled, it cannot be settled again.
    assert_refused(
        records
            .dismiss_quarantined(as_user("370200", dismiss(id, "再次")))
            .await,
        Code::FailedPrecondition,
        "id",
    );
    Ok(())
}
