//! An in-process mesh on loopback: a city CA, one certificate per node, nodes started in
//! parent-first order with SQLite files in one folder, real mutual TLS between them. Used by
//! the demo, by tests and by benchmarks; syncs run on demand so what happens is deterministic.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use renda_replica::OrgCode;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::certs::{CertificateAuthority, Hosts};
use crate::config::{
    Config, ListenConfig, NodeConfig, StorageConfig, SyncConfig, TelemetryConfig, TlsConfig,
    TlsFiles, UpstreamConfig,
};
use crate::node::{self, Domain, Node};
use renda_tls as tls;
use renda_tls::NodeIdentity;

/// One node of the mesh with how to reach it.
pub struct Member {
    pub node: Node,
    pub config: Config,
    task: JoinHandle<Result<(), node::Error>>,
}

/// The token secret every node of an in-process mesh shares (tests and the demo only).
pub const DEMO_TOKEN_SECRET: &[u8] = b"renda-mesh demo token secret, not for production";

pub struct Mesh {
    pub dir: PathBuf,
    pub members: BTreeMap<OrgCode, Member>,
    domain: Domain,
}

impl Mesh {
    /// Creates the CA and certificates in `dir` and starts a node for every org unit in
    /// `orgs` (parents before children). Every org's parent must be in the list.
    pub async fn start(dir: &Path, orgs: &[OrgCode], domain: Domain) -> anyhow::Result<Mesh> {
        Self::start_via(dir, orgs, domain, &mut |_, _, target| Ok(target)).await
    }

    /// As [`Mesh::start`], with every child's link to an upstream going where `via` says
    /// (given the child, the upstream and the upstream's address): a proxy that counts bytes
    /// or cuts the link.
    pub async fn start_via(
        dir: &Path,
        orgs: &[OrgCode],
        domain: Domain,
        via: &mut dyn FnMut(OrgCode, OrgCode, SocketAddr) -> anyhow::Result<SocketAddr>,
    ) -> anyhow::Result<Mesh> {
        let city = orgs
            .iter()
            .copied()
            .find(|o| o.level() == renda_replica::Level::City)
            .context("a mesh needs a city")?;
        let certs = dir.join("certs");
        let ca = CertificateAuthority::generate(&city.to_string().parse()?)?;
        let (ca_pem, _) = ca.write(&certs)?;
        let hosts = Hosts {
            dns: vec!["localhost".into()],
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        };
        let mut sorted = orgs.to_vec();
        sorted.sort_by_key(|o| o.digits());
        let mut mesh = Mesh {
            dir: dir.to_path_buf(),
            members: BTreeMap::new(),
            domain,
        };
        for org in sorted {
            let node_identity = NodeIdentity::of(org)?;
            let cert = ca.issue(&node_identity, &hosts)?;
            let (cert_pem, key_pem) = cert.write(&certs, &node_identity.org_code)?;
            let mut upstreams = Vec::new();
            for parent in std::iter::successors(org.parent(), |o| o.parent()) {
                if let Some(member) = mesh.members.get(&parent) {
                    let addr = via(org, parent, member.node.grpc_addr)?;
                    upstreams.push(format!("https://localhost:{}", addr.port()).parse()?);
                }
            }
            let config = Config {
                auth: crate::config::AuthConfig {
                    token_secret: Some(DEMO_TOKEN_SECRET.to_vec()),
                    token_key_id: "demo".into(),
                    previous_token_keys: Vec::new(),
                    token_ttl: Duration::from_secs(12 * 3600),
                    freshness_limit_minutes: 72 * 60,
                },
                node: NodeConfig {
                    identity: node_identity,
                    data_dir: dir.join(org.to_string()),
                },
                storage: StorageConfig {
                    url: format!("sqlite://{}", dir.join(format!("{org}.db")).display()),
                },
                listen: ListenConfig {
                    grpc: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                    http: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                    client: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                },
                upstream: UpstreamConfig {
                    addresses: upstreams,
                },
                tls: TlsConfig::Mutual(TlsFiles {
                    ca: ca_pem.clone(),
                    cert: cert_pem,
                    key: key_pem,
                }),
                telemetry: TelemetryConfig::default(),
                sync: SyncConfig {
                    // Syncs run on demand; the timer only matters if a demo is left running.
                    interval: Duration::from_secs(3600),
                    backoff_min: Duration::from_millis(200),
                    backoff_max: Duration::from_secs(5),
                    batch_ops: 1_000,
                },
            };
            mesh.launch(org, config).await?;
        }
        Ok(mesh)
    }

    async fn launch(&mut self, org: OrgCode, config: Config) -> anyhow::Result<()> {
        let (node, task) = node::start(&config, self.domain.clone(), std::future::pending())
            .await
            .with_context(|| format!("starting node {org}"))?;
        self.members.insert(org, Member { node, config, task });
        Ok(())
    }

    pub fn node(&self, org: OrgCode) -> anyhow::Result<&Node> {
        self.members
            .get(&org)
            .map(|m| &m.node)
            .with_context(|| format!("no node {org} in the mesh"))
    }

    /// Syncs `org` with its first reachable upstream now.
    pub async fn sync(&self, org: OrgCode) -> anyhow::Result<renda_sync::SessionReport> {
        let handle = self
            .node(org)?
            .sync
            .clone()
            .with_context(|| format!("{org} has no upstream"))?;
        let (_, report) = handle.sync_now().await.map_err(anyhow::Error::msg)?;
        Ok(report)
    }

    /// One full round: every node below the city syncs, deepest first (so what a township
    /// pushes goes on up), then again shallowest first (so what reached the city comes down).
    pub async fn sync_all(&self) -> anyhow::Result<()> {
        let mut below: Vec<OrgCode> = self
            .members
            .keys()
            .copied()
            .filter(|o| o.level() != renda_replica::Level::City)
            .collect();
        below.sort_by_key(|o| std::cmp::Reverse(o.digits()));
        for org in &below {
            if !self
                .node(*org)?
                .sync
                .as_ref()
                .is_some_and(|s| s.is_offline())
            {
                self.sync(*org).await?;
            }
        }
        below.reverse();
        for org in &below {
            if !self
                .node(*org)?
                .sync
                .as_ref()
                .is_some_and(|s| s.is_offline())
            {
                self.sync(*org).await?;
            }
        }
        Ok(())
    }

    /// A gRPC channel to `org`'s node over mutual TLS, presenting `org`'s own certificate.
    pub fn channel(&self, org: OrgCode) -> anyhow::Result<Channel> {
        let member = self
            .members
            .get(&org)
            .with_context(|| format!("no node {org} in the mesh"))?;
        let TlsConfig::Mutual(files) = &member.config.tls else {
            anyhow::bail!("the mesh runs with mutual TLS");
        };
        let uri = format!("https://localhost:{}", member.node.grpc_addr.port()).parse()?;
        Ok(tls::channel(
            &uri,
            tls::Material::from_files(files)?.client_config()?,
        )?)
    }

    /// A gRPC channel to `org`'s client port, as a person's device dials it: TLS that trusts
    /// the mesh's CA and presents no certificate (the person's token goes on each call).
    pub fn person_channel(&self, org: OrgCode) -> anyhow::Result<Channel> {
        let member = self
            .members
            .get(&org)
            .with_context(|| format!("no node {org} in the mesh"))?;
        let TlsConfig::Mutual(files) = &member.config.tls else {
            anyhow::bail!("the mesh runs with TLS");
        };
        let uri = format!("https://localhost:{}", member.node.client_addr.port()).parse()?;
        Ok(tls::channel(&uri, tls::person_client_config(&files.ca)?)?)
    }

    /// Stops one node (as if its machine went down); its store stays on disk.
    pub async fn stop(&mut self, org: OrgCode) -> anyhow::Result<Config> {
        let member = self
            .members
            .remove(&org)
            .with_context(|| format!("no node {org} in the mesh"))?;
        member.node.stop();
        member.task.await??;
        Ok(member.config)
    }

    /// Starts a stopped node again on the same port and storage.
    pub async fn restart(
        &mut self,
        org: OrgCode,
        mut config: Config,
        port: u16,
    ) -> anyhow::Result<()> {
        config.listen.grpc = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        self.launch(org, config).await
    }

    /// Stops every node.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let orgs: Vec<OrgCode> = self.members.keys().copied().collect();
        for org in orgs.into_iter().rev() {
            self.stop(org).await?;
        }
        Ok(())
    }
}
