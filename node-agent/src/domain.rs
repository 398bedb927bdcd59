//! The deputy-work domain as a node runs it: the record kinds, write rules, audiences and
//! gRPC services of `renda-api`, bundled for [`crate::node::start`].

use std::sync::Arc;

use renda_domain::org::OrgTree;

use crate::node::Domain;

/// The domain every node of this build runs.
pub fn deputy_work() -> Domain {
    let schema = Arc::new(renda_api::schema());
    let rule = renda_api::replication_rule(schema.clone());
    Domain {
        schema: schema.clone(),
        rule: Arc::new(rule),
        audience: Some(renda_api::audience(schema)),
        services: Arc::new(|store| {
            renda_api::routes(store, renda_api::ApiContext::new(OrgTree::demo()))
        }),
    }
}
