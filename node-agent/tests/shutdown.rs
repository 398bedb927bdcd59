//! A node that is asked to stop in the middle of a sync finishes the session before it closes
//! its store (issue #14, "shutdown drains"): the round reports success and everything it
//! pushed is at the parent.

use std::time::Duration;

use anyhow::Context as _;
use node_agent::mesh::Mesh;
use renda_replica::{Author, OrgCode, RecordId, Value};
use renda_store::Store;

const RECORDS: usize = 4_000;
const FIELDS: [&str; 4] = ["name", "constituency", "ethnicity", "sector"];

/// `RECORDS` deputies of `org`, each one save of five operations (org and four fields).
async fn write_deputies(store: &Store, org: OrgCode) -> anyhow::Result<usize> {
    let schema = store.schema().clone();
    let kind = schema.kind_named("deputy").context("deputy kind")?;
    let fields: Vec<_> = FIELDS
        .iter()
        .map(|n| kind.field_named(n).map(|f| f.id).context("a deputy field"))
        .collect::<anyhow::Result<_>>()?;
    for i in 0..RECORDS {
        let fields = fields.clone();
        store
            .write(
                RecordId(uuid::Uuid::now_v7()),
                kind.id,
                Author { org, number: 1 },
                move |record, actor| {
                    let mut changes =
                        vec![record.put(actor, renda_replica::schema::ORG, Value::Org(org))];
                    for (k, field) in fields.iter().enumerate() {
                        changes.push(record.put(
                            actor,
                            *field,
                            Value::Text(format!("代表{i}-{k}")),
                        ));
                    }
                    changes
                },
            )
            .await?;
    }
    Ok(RECORDS * (1 + FIELDS.len()))
}

#[tokio::test]
async fn a_node_stopped_in_the_middle_of_a_sync_finishes_it_before_closing_its_store()
-> anyhow::Result<()> {
    renda_tls::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let city = OrgCode::new(370_200)?;
    let county = OrgCode::new(370_202)?;
    let township = OrgCode::new(370_202_001)?;
    let mut mesh = Mesh::start(
        dir.path(),
        &[city, county, township],
        node_agent::domain::deputy_work(),
    )
    .await?;
    mesh.sync_all().await?;
    let written = write_deputies(&mesh.node(township)?.store, township).await?;
    let county_store = mesh.node(county)?.store.clone();
    let before = county_store.log_len().await?;
    let agent = mesh
        .node(township)?
        .sync
        .clone()
        .context("a township syncs")?;
    let session = tokio::spawn(async move { agent.sync_now().await });
    // Stop the township once the county has taken the first of the push's batches.
    let mut waited = 0;
    while county_store.log_len().await? == before {
        anyhow::ensure!(waited < 6_000, "the county received nothing in a minute");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    mesh.stop(township).await?;
    let outcome = session.await?;
    let (upstream, report) = outcome.map_err(anyhow::Error::msg)?;
    assert_eq!(upstream, county);
    assert!(report.pushed as usize >= written, "{report:?}");
    assert!(county_store.log_len().await? >= before + written as u64);
    mesh.shutdown().await
}
