//! The services of one node called in process by the node's own hand, with no network and no
//! token: what a process holding the node's store (the demo's seeding, an operator's command)
//! uses. Each call passes the same validation, authority checks and status folds as a network
//! call; only the caller is given rather than read from a verified token, so nothing reachable
//! from the network comes through here.

use std::sync::Arc;

use renda_proto::activity::v1::activities_server::Activities;
use renda_proto::deputy::v1::deputies_server::Deputies;
use renda_proto::evaluation::v1::evaluations_server::Evaluations;
use renda_proto::opinion::v1::opinions_server::Opinions;
use renda_proto::project::v1::projects_server::Projects;
use renda_proto::station::v1::stations_server::Stations;
use renda_proto::suggestion::v1::suggestions_server::Suggestions;
use renda_store::Store;

use crate::core::{Core, Shared};
use crate::{ApiContext, Caller};

/// One node's domain services, in process.
#[derive(Clone)]
pub struct Local {
    core: Shared,
}

impl Local {
    pub fn new(store: Store, ctx: ApiContext) -> Local {
        Local {
            core: Arc::new(Core { store, ctx }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.core.store
    }

    pub fn ctx(&self) -> &ApiContext {
        &self.core.ctx
    }

    /// A request made as `caller`.
    pub fn request<T>(msg: T, caller: Caller) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.extensions_mut().insert(caller);
        req
    }

    pub fn deputies(&self) -> impl Deputies {
        crate::deputy::Service(self.core.clone())
    }
    pub fn stations(&self) -> impl Stations {
        crate::station::Service(self.core.clone())
    }
    pub fn activities(&self) -> impl Activities {
        crate::activity::Service(self.core.clone())
    }
    pub fn opinions(&self) -> impl Opinions {
        crate::opinion::Service(self.core.clone())
    }
    pub fn suggestions(&self) -> impl Suggestions {
        crate::suggestion::Service(self.core.clone())
    }
    pub fn projects(&self) -> impl Projects {
        crate::project::Service(self.core.clone())
    }
    pub fn evaluations(&self) -> impl Evaluations {
        crate::evaluation::Service(self.core.clone())
    }
}
