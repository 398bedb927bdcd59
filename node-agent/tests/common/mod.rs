//! Helpers the node-agent integration tests share.

use anyhow::Context as _;
use renda_replica::{Author, OrgCode, RecordId, Value};
use renda_store::Store;

pub fn org(code: u64) -> OrgCode {
    OrgCode::new(code).expect("test org codes are valid")
}

/// Writes `n` deputy records of `at` at `store`, one operation each.
pub async fn deputies(store: &Store, at: OrgCode, n: usize) -> anyhow::Result<()> {
    let kind = store.schema().kind_named("deputy").context("deputy")?.id;
    for _ in 0..n {
        let author = Author { org: at, number: 1 };
        store
            .write(RecordId(uuid::Uuid::now_v7()), kind, author, |r, actor| {
                vec![r.put(actor, renda_replica::schema::ORG, Value::Org(at))]
            })
            .await?;
    }
    Ok(())
}
