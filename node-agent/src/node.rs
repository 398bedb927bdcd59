//! One running node: its store, its gRPC services (replication, status, and what the caller
//! adds), and, below the city, the sync agent that dials its upstreams.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use renda_replica::{OrgCode, Schema};
use renda_store::Store;
use renda_sync::{
    Agent, AgentConfig, DomainRule, Identify, Peer, Policy, Replication, StatusBook, Upstream,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Status;
use tonic::service::Routes;

use crate::config::{Config, TlsConfig};
use crate::server::Bound;
use renda_tls as tls;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening storage {url}: {source}")]
    Store {
        url: String,
        source: renda_store::Error,
    },
    #[error(
        "upstream.addresses: {count} upstreams listed, but {org} has only {ancestors} units above \
         it (the upstreams are, in order, the parent unit and then its parent)"
    )]
    TooManyUpstreams {
        count: usize,
        org: OrgCode,
        ancestors: usize,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::Error),
    #[error(transparent)]
    Server(#[from] crate::server::Error),
    #[error("auth: {0}")]
    Keys(#[from] renda_accounts::KeyError),
}

/// A started node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub store: Store,
    pub status: StatusBook,
    /// The sync agent; `None` at the city, which has no upstream.
    pub sync: Option<renda_sync::Handle>,
    pub grpc_addr: SocketAddr,
    /// Where people call the API (server-authenticated TLS, a log-in token per call).
    pub client_addr: SocketAddr,
    /// Where the console is served, when the domain has one.
    pub http_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
}

impl Node {
    /// Asks the node to stop; [`start`]'s join handle completes when it has.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// The parts of a node that come from the domain: the record kinds, the write rules, and who
/// each record is addressed to beyond its own org unit.
#[derive(Clone)]
pub struct Domain {
    pub schema: Arc<Schema>,
    pub rule: DomainRule,
    pub audience: Option<renda_store::Audience>,
    /// Adds the node's domain services to the routes.
    pub services: Arc<dyn Fn(&NodeContext) -> Routes + Send + Sync>,
    /// The web console served on the node's HTTP port, if this build has one.
    pub console: Option<Console>,
}

/// Builds the web console's router for a node, over the node's services for people and the
/// gate they are called through.
pub type Console = Arc<dyn Fn(&NodeContext, Routes, renda_api::Gate) -> axum::Router + Send + Sync>;

/// What the domain's services and the console get from the node they run in.
#[derive(Clone)]
pub struct NodeContext {
    pub store: Store,
    pub status: StatusBook,
    pub sync: Option<renda_sync::Handle>,
    /// Signs and checks log-in tokens and check-in codes.
    pub signer: renda_accounts::TokenSigner,
    /// How long a log-in token is valid, in milliseconds.
    pub token_ttl_ms: i64,
    /// Reports that name no freshness limit flag townships older than this.
    pub freshness_limit_minutes: u32,
}

/// Opens the store, binds the gRPC listener and starts serving and syncing. The returned task
/// completes when `shutdown` completes or [`Node::stop`] is called, after open calls finish.
pub async fn start(
    config: &Config,
    domain: Domain,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Node, JoinHandle<Result<(), Error>>), Error> {
    let org: OrgCode = config.node.identity.org_code;
    let options = renda_store::Options {
        audience: domain.audience.clone(),
        ..Default::default()
    };
    let store = Store::open(&config.storage.url, domain.schema.clone(), org, options)
        .await
        .map_err(|source| Error::Store {
            url: redact(&config.storage.url),
            source,
        })?;
    let status = StatusBook::new(store.clone()).with_interval(config.sync.interval);
    let policy = Policy::new(domain.rule.clone());

    let (server_tls, material) = match &config.tls {
        TlsConfig::Mutual(files) => {
            let material = tls::Material::from_files(files)?;
            (Some(material.server_config()?), Some(material))
        }
        TlsConfig::InsecureDev => (None, None),
    };
    let identify: Identify = if server_tls.is_some() {
        Arc::new(|request| {
            let identity = tls::peer_identity(request)?;
            peer_of(&identity)
        })
    } else {
        // Development only: the peer names itself, and nothing checks it.
        Arc::new(|request| {
            let claimed = request
                .metadata()
                .get(renda_sync::client::DEV_IDENTITY_HEADER)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Status::permission_denied("no node identity in development mode"))?;
            let org: OrgCode = claimed
                .parse()
                .map_err(|e| Status::permission_denied(format!("bad node identity: {e}")))?;
            Ok(Peer {
                org,
                level: org.level(),
            })
        })
    };

    let ancestors: Vec<OrgCode> = std::iter::successors(org.parent(), |o| o.parent()).collect();
    if config.upstream.addresses.len() > ancestors.len() {
        return Err(Error::TooManyUpstreams {
            count: config.upstream.addresses.len(),
            org,
            ancestors: ancestors.len(),
        });
    }
    let mut upstreams = Vec::new();
    for (uri, parent) in config.upstream.addresses.iter().zip(ancestors) {
        // Each upstream must answer with the certificate of the unit this node expects there.
        let channel = match &material {
            Some(material) => tls::channel(uri, material.client_config_for(parent)?)?,
            None => tonic::transport::Endpoint::from(uri.clone()).connect_lazy(),
        };
        upstreams.push(Upstream {
            org: parent,
            channel,
        });
    }

    let listener = TcpListener::bind(config.listen.grpc)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen.grpc,
            source,
        })?;
    let grpc_addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen.grpc,
        source,
    })?;
    let (stop, mut stopped) = watch::channel(false);
    let stop_signal = async move {
        tokio::select! {
            () = shutdown => {}
            _ = stopped.wait_for(|s| *s) => {}
        }
    };
    let (agent_stop_tx, agent_stop) = tokio::sync::oneshot::channel::<()>();
    let running = (!upstreams.is_empty()).then(|| {
        let agent_config = AgentConfig {
            interval: config.sync.interval,
            backoff_min: config.sync.backoff_min,
            backoff_max: config.sync.backoff_max,
            batch_ops: config.sync.batch_ops as usize,
        };
        Agent::new(
            store.clone(),
            upstreams,
            policy.clone(),
            agent_config,
            status.clone(),
        )
        .spawn(async {
            let _ = agent_stop.await;
        })
    });
    let (sync, agent_task) = match running {
        Some((handle, task)) => (Some(handle), Some(task)),
        None => (None, None),
    };
    let mut replication = Replication::new(store.clone(), policy, identify, status.clone());
    if let Some(handle) = &sync {
        replication = replication.with_relay(handle.clone());
    }
    let signer = signer(&config.auth)?;
    let context = NodeContext {
        store: store.clone(),
        status: status.clone(),
        sync: sync.clone(),
        signer: signer.clone(),
        token_ttl_ms: i64::try_from(config.auth.token_ttl.as_millis()).unwrap_or(i64::MAX),
        freshness_limit_minutes: u32::try_from(config.auth.freshness_limit_minutes)
            .unwrap_or(u32::MAX),
    };
    let people = (domain.services)(&context);
    // One projector per node, whichever ports serve the reports; stopped before the store
    // closes.
    let projector = renda_api::reports::Projector::start(
        store.clone(),
        crate::domain::api_context(&context),
        renda_api::reports::FACTS_INTERVAL,
    );
    let gate = renda_api::Gate::new(store.clone(), crate::domain::api_context(&context), signer);
    let routes = people.clone().add_service(replication.into_server());
    let client_listener = TcpListener::bind(config.listen.client)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen.client,
            source,
        })?;
    let client_addr = client_listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen.client,
        source,
    })?;
    let client_tls = match &material {
        Some(material) => Some(material.client_port_config()?),
        None => None,
    };
    let people_bound = Bound::new(client_listener, client_tls);
    // The client port and the console stop once the replication port has drained.
    let (drain, draining) = watch::channel(false);
    let mut people_stopped = draining.clone();
    let people_gate = gate.clone();
    let people_routes = people.clone();
    let people_task = tokio::spawn(async move {
        let stopped = async move {
            let _ = people_stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = people_bound
            .serve_people(people_routes, people_gate, stopped)
            .await
        {
            tracing::error!(error = %e, "the client port stopped");
        }
    });
    let http = match &domain.console {
        Some(console) => {
            let listener = TcpListener::bind(config.listen.http)
                .await
                .map_err(|source| Error::Bind {
                    addr: config.listen.http,
                    source,
                })?;
            let addr = listener.local_addr().map_err(|source| Error::Bind {
                addr: config.listen.http,
                source,
            })?;
            Some((
                listener,
                addr,
                console(&context, people.clone(), gate.clone()),
            ))
        }
        None => None,
    };
    let http_addr = http.as_ref().map(|(_, addr, _)| *addr);
    let bound = Bound::new(listener, server_tls);
    let serving_store = store.clone();
    let mut http_stopped = draining;
    let http_task = http.map(|(listener, addr, router)| {
        tracing::info!(%addr, "serving the console over HTTP");
        tokio::spawn(async move {
            let stopped = async move {
                let _ = http_stopped.wait_for(|s| *s).await;
            };
            axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
        })
    });
    let task = tokio::spawn(async move {
        // Shutdown drains before the store closes: the replication port lets open sessions
        // finish (tonic's graceful shutdown), then the sync agent finishes the round under
        // way, then the client port and the console finish their calls; whatever is still
        // running after `DRAIN` is cut off, with a warning.
        let result = bound.serve(routes, gate, stop_signal).await;
        drop(agent_stop_tx);
        if let Some(agent) = agent_task {
            drained("the sync agent", agent).await;
        }
        let _ = drain.send(true);
        drained("the client port", people_task).await;
        if let Some(http) = http_task {
            drained("the console", http).await;
        }
        projector.stop().await;
        serving_store.close().await;
        tracing::info!("stopped");
        result.map_err(Error::from)
    });
    Ok((
        Node {
            store,
            status,
            sync,
            grpc_addr,
            client_addr,
            http_addr,
            stop,
        },
        task,
    ))
}

/// How long a stopping node waits for each of its parts to finish what it is doing.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(20);

/// Waits up to [`DRAIN`] for `task`, then cuts it off.
async fn drained<T>(what: &str, mut task: tokio::task::JoinHandle<T>) {
    if tokio::time::timeout(DRAIN, &mut task).await.is_err() {
        tracing::warn!(
            part = what,
            "still busy after the drain period; stopping it"
        );
        task.abort();
    }
}

/// The deployment's token keys: `auth.token_secret` under `auth.token_key_id`, with the
/// previous keys still accepted. Without a secret a random one is made (tokens then stop
/// working when the node restarts, and no gateway can check them).
fn signer(auth: &crate::config::AuthConfig) -> Result<renda_accounts::TokenSigner, Error> {
    use renda_accounts::{SigningKey, TokenSigner};
    let secret = match &auth.token_secret {
        Some(secret) => secret.clone(),
        None => {
            tracing::warn!(
                "auth.token_secret is not set: log-in tokens are signed with a random key and \
                 stop working when this node restarts; a gateway cannot check them"
            );
            let mut secret = vec![0u8; 32];
            rand::fill(&mut secret[..]);
            secret
        }
    };
    let current = SigningKey::new(&auth.token_key_id, secret)?;
    let previous = auth
        .previous_token_keys
        .iter()
        .map(|(id, secret)| SigningKey::new(id, secret.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TokenSigner::with_keys(current, previous)?)
}

fn peer_of(identity: &renda_tls::NodeIdentity) -> Result<Peer, Status> {
    let org: OrgCode = identity.org_code;
    Ok(Peer {
        org,
        level: org.level(),
    })
}

/// A storage URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn storage_urls_lose_their_password_in_messages() {
        assert_eq!(
            redact("postgres://renda:secret@db:5432/renda"),
            "postgres://renda:***@db:5432/renda"
        );
        assert_eq!(
            redact("sqlite:///var/lib/renda/node.db"),
            "sqlite:///var/lib/renda/node.db"
        );
    }
}
