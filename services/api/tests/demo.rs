//! The demo seeding over seven SQLite nodes (city, two districts, four streets) whose org
//! trees come from the store alone, with an in-process mesh that moves operations up the tree
//! and down by scope, as the sync does.

use std::collections::BTreeMap;
use std::sync::Arc;

use renda_api::{ApiContext, audience, is_local_only, replication_rule, schema};
use renda_demo::{DemoNode, DemoStores, Mesh, seed_demo};
use renda_replica::{Op, OrgCode};
use renda_store::{Cursor, Options, Store};

const ORGS: [&str; 7] = [
    "370200",
    "370202",
    "370212",
    "370202001",
    "370202002",
    "370212001",
    "370212002",
];

struct InProcess<'a> {
    nodes: &'a DemoStores,
}

async fn copy(
    from: &Store,
    to: &Store,
    from_org: &str,
    down: Option<OrgCode>,
) -> Result<(), String> {
    let schema = Arc::new(schema());
    let rule = replication_rule(schema.clone());
    let ops = match down {
        Some(org) => {
            from.ops_for_scope(org, Cursor::START, 1_000_000, None)
                .await
        }
        None => from.ops_since(Cursor::START, 1_000_000).await,
    }
    .map_err(|e| e.to_string())?;
    let bytes: Vec<Vec<u8>> = ops
        .into_iter()
        .map(|o| o.bytes)
        .filter(|b| Op::decode_unchecked(b).is_ok_and(|op| !is_local_only(&schema, &op)))
        .collect();
    let report = to
        .apply_batch(&bytes, Some(from_org), &rule)
        .await
        .map_err(|e| e.to_string())?;
    let _ = report;
    Ok(())
}

impl Mesh for InProcess<'_> {
    async fn sync(&self) -> Result<(), String> {
        let store = |org: &str| self.nodes[org].store.clone();
        // Up: streets to districts, districts to the city; then down by scope.
        for street in &ORGS[3..] {
            copy(&store(street), &store(&street[..6]), street, None).await?;
        }
        for county in &ORGS[1..3] {
            copy(&store(county), &store("370200"), county, None).await?;
        }
        for county in &ORGS[1..3] {
            let org: OrgCode = county.parse().map_err(|e| format!("{e}"))?;
            copy(&store("370200"), &store(county), "370200", Some(org)).await?;
        }
        for street in &ORGS[3..] {
            let org: OrgCode = street.parse().map_err(|e| format!("{e}"))?;
            copy(
                &store(&street[..6]),
                &store(street),
                &street[..6],
                Some(org),
            )
            .await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_demo_mesh_is_seeded_through_the_services() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let schema = Arc::new(schema());
    let mut nodes: DemoStores = BTreeMap::new();
    for org in ORGS {
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("{org}.sqlite")).display()
        );
        let options = Options {
            audience: Some(audience(schema.clone())),
            ..Options::default()
        };
        let store = Store::open(&url, schema.clone(), org.parse()?, options).await?;
        nodes.insert(
            org.to_owned(),
            DemoNode {
                store,
                ctx: ApiContext::default(),
            },
        );
    }
    let summary = seed_demo(&nodes, &InProcess { nodes: &nodes }).await?;
    println!("{summary}");
    // Every node read its org tree from the city's records: its own subtree by name, its
    // ancestors at least by code (the downward feed carries the subtree's records).
    assert_eq!(summary.count("370200", "org_unit"), 7, "{summary}");
    for org in ORGS {
        let tree = nodes[org].ctx.tree();
        let code = renda_domain::org::OrgCode::parse(org)?;
        assert!(
            tree.get(&code).is_some_and(|u| !u.name.starts_with("37")),
            "{org}"
        );
        for ancestor in code.ancestors() {
            assert!(tree.has(&ancestor), "{org} lacks {ancestor}");
        }
    }
    let street = "370212001";
    assert_eq!(summary.count(street, "deputy"), 11, "{summary}");
    assert_eq!(summary.count(street, "deputy_identity"), 11, "{summary}");
    // Identity records never leave the street.
    assert_eq!(summary.count("370212", "deputy_identity"), 0, "{summary}");
    assert_eq!(summary.count("370212", "deputy"), 22, "{summary}");
    assert_eq!(summary.count("370200", "deputy"), 44, "{summary}");
    assert_eq!(summary.count(street, "station"), 2, "{summary}");
    assert_eq!(summary.count(street, "opinion"), 8, "{summary}");
    assert_eq!(summary.count(street, "suggestion"), 10, "{summary}");
    assert_eq!(summary.count(street, "project"), 7, "{summary}");
    assert_eq!(summary.count("370212", "handling_unit"), 6, "{summary}");
    assert_eq!(summary.count("370212", "appraisal"), 1, "{summary}");
    Ok(())
}
