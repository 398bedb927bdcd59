//! A digest of the records a node holds in an org unit's subtree, to tell whether two nodes
//! converged without shipping the records.

use renda_replica::{OrgCode, RecordId};
use renda_store::Store;
use ring::digest::{Context, SHA256};
use std::fmt::Write as _;

const PAGE: u32 = 1_000;

/// How many records, and a SHA-256 over their materialised state in id order. Local-only
/// kinds are left out: they differ between nodes by design.
pub async fn scope_digest(
    store: &Store,
    org: OrgCode,
) -> Result<(u64, String), renda_store::Error> {
    let mut entries: Vec<(RecordId, String)> = Vec::new();
    for kind in store.schema().kinds().filter(|k| !k.local_only) {
        let mut offset = 0u64;
        loop {
            let page = store
                .records_of_kind(kind.id, Some(org), PAGE, offset)
                .await?;
            let n = page.len();
            // The view's debug form lists every field, conflict, member and event in a fixed
            // order; both sides run the same build, so equal state gives equal text.
            entries.extend(page.into_iter().map(|r| (r.id, format!("{:?}", r.view))));
            if n < PAGE as usize {
                break;
            }
            offset += u64::from(PAGE);
        }
    }
    entries.sort_by_key(|entry| entry.0);
    let mut context = Context::new(&SHA256);
    for (_, state) in &entries {
        context.update(state.as_bytes());
        context.update(b"\n");
    }
    let mut hex = String::with_capacity(64);
    for byte in context.finish().as_ref() {
        let _ = write!(hex, "{byte:02x}");
    }
    Ok((entries.len() as u64, hex))
}
