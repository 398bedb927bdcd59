//! The deputy-work domain as a node runs it: the record kinds, write rules, audiences and
//! gRPC services of `renda-api`, bundled for [`crate::node::start`].

use std::sync::Arc;

use renda_domain::org::{OrgCode as DOrg, OrgTree};

use crate::node::{Domain, NodeContext};

/// The domain every node of this build runs.
pub fn deputy_work() -> Domain {
    let schema = Arc::new(renda_api::schema());
    let rule = renda_api::replication_rule(schema.clone());
    let audience = renda_api::audience(schema.clone());
    Domain {
        schema,
        rule: Arc::new(rule),
        audience: Some(audience),
        services: Arc::new(services),
        console: Some(Arc::new(console)),
    }
}

/// The services' context: the org tree is the store's `org_unit` records over the node's own
/// unit and its ancestors, named by their codes until their records arrive, so a node that has
/// never synced can record data for its own unit.
pub(crate) fn api_context(node: &NodeContext) -> renda_api::ApiContext {
    renda_api::ApiContext::new(own_units(node.store.org()))
        .with_signer(node.signer.clone())
        .with_freshness_limit(node.freshness_limit_minutes)
}

/// The tree of `org` and its ancestors, each named by its code.
pub(crate) fn own_units(org: renda_replica::OrgCode) -> OrgTree {
    let mut tree = OrgTree::new();
    let Ok(code) = DOrg::parse(&org.to_string()) else {
        tracing::warn!(%org, "the node's org code is not a valid 行政区划代码; its tree starts empty");
        return tree;
    };
    let mut chain = code.ancestors();
    chain.reverse();
    chain.push(code);
    for unit in chain {
        if let Err(e) = tree.add(unit, &unit.to_string()) {
            tracing::warn!(org = %unit, error = %e, "org unit left out of the base tree");
        }
    }
    tree
}

/// The web console over the node's own services (`renda-console`).
fn console(
    node: &NodeContext,
    routes: tonic::service::Routes,
    gate: renda_api::Gate,
) -> axum::Router {
    let state = renda_console::ConsoleState {
        routes,
        gate,
        store: node.store.clone(),
        status: node.status.clone(),
        sync: node.sync.clone(),
        signer: node.signer.clone(),
        api: api_context(node),
    };
    renda_console::router(state).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the console could not start; its port serves nothing");
        axum::Router::new()
    })
}

fn services(node: &NodeContext) -> tonic::service::Routes {
    let ctx = api_context(node);
    let status = node.status.clone();
    let me = node.store.org();
    let freshness: renda_api::reports::FreshnessSource = Arc::new(move || {
        renda_sync::status::freshness(me, &status.below())
            .into_iter()
            .map(|f| renda_api::reports::NodeFreshness {
                org: f.org,
                last_sync_ms: f.reached_ms,
                pending_ops: f.pending_ops,
            })
            .collect()
    });
    renda_api::routes(node.store.clone(), ctx.clone())
        .add_service(renda_api::reports::reports_server(
            node.store.clone(),
            ctx.clone(),
            Some(freshness),
        ))
        .add_service(renda_api::reports::auth_server(
            node.store.clone(),
            ctx,
            node.signer.clone(),
            node.token_ttl_ms,
        ))
}
