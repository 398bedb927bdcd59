//! The gRPC services of renda-mesh (`renda.<area>.v1`), served by `node-agent` at every level:
//! org units and record history, deputies and groups, stations, duty activities with check-ins
//! and points, citizens' opinions, suggestions and motions, livelihood projects and votes, and
//! evaluations; plus the record kinds they write ([`schema`]), the write rules on the
//! replication side ([`replication_rule`]) and the audience of each record ([`audience`]).
//!
//! This crate converts between the wire and the domain, checks authority, and writes through
//! `renda-store`; it holds no domain rule of its own. Validation and status folds are
//! `renda-domain`'s, CRDTs are `renda-replica`'s, and the network between nodes is
//! `renda-sync`'s. Every refusal is a `renda_domain::Error` mapped to one gRPC status
//! ([`error`]); nothing is written on a refusal.
//!
//! Caller identity: every call to these services goes through [`gate::Gate`], which reads the
//! person from the signed token of `Auth.Login` (`authorization: Bearer …`), refuses caller
//! metadata declared by the network, and checks the role against the table its service declares
//! beside its handlers (listed in [`gate::SERVICES`]). Handlers read the verified [`Caller`] from the request.

mod activity;
pub mod authority;
mod core;
mod deputy;
mod edge;
pub mod error;
mod evaluation;
pub mod gate;
pub mod local;
mod opinion;
pub mod org;
pub mod people;
mod project;
pub mod reports;
pub mod schema;
mod station;
mod suggestion;
pub mod users;

use std::sync::Arc;

use renda_proto as proto;
use renda_store::Store;

pub use crate::authority::{audience, check_with_record, is_local_only, replication_rule};
pub use crate::core::{ApiContext, Caller};
pub use crate::error::{Error, domain_status};
pub use crate::gate::Gate;
pub use crate::reports::{auth_server, reports_server};
pub use crate::schema::schema;

/// Every service of this crate over one store, ready to add to a tonic server
/// (`Server::builder().add_routes(routes(store, ctx))`).
pub fn routes(store: Store, ctx: ApiContext) -> tonic::service::Routes {
    let core = Arc::new(core::Core { store, ctx });
    tonic::service::Routes::new(proto::org::v1::org_units_server::OrgUnitsServer::new(
        org::Units(core.clone()),
    ))
    .add_service(proto::org::v1::records_server::RecordsServer::new(
        org::Records(core.clone()),
    ))
    .add_service(proto::deputy::v1::deputies_server::DeputiesServer::new(
        deputy::Service(core.clone()),
    ))
    .add_service(
        proto::activity::v1::activities_server::ActivitiesServer::new(activity::Service(
            core.clone(),
        )),
    )
    .add_service(
        proto::suggestion::v1::suggestions_server::SuggestionsServer::new(suggestion::Service(
            core.clone(),
        )),
    )
    .add_service(proto::project::v1::projects_server::ProjectsServer::new(
        project::Service(core.clone()),
    ))
    .add_service(proto::opinion::v1::opinions_server::OpinionsServer::new(
        opinion::Service(core.clone()),
    ))
    .add_service(proto::station::v1::stations_server::StationsServer::new(
        station::Service(core.clone()),
    ))
    .add_service(
        proto::evaluation::v1::evaluations_server::EvaluationsServer::new(evaluation::Service(
            core,
        )),
    )
}
