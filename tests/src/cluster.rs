//! A mesh of real `node-agent` processes on loopback.
//!
//! Each node runs in its own process: the test binary re-executes itself with
//! `E2E_NODE_CONFIG=<config file>` and then runs [`node_agent::node::start`] exactly as the
//! `node-agent run` command does. Links from a child to its upstreams go through [`Link`]
//! proxies the test can cut and heal.
//!
//! Nodes listen on `127.0.0.1:0`: the operating system picks free ports, so scenarios running
//! in parallel never collide, and a node process writes the addresses it got to a *ready file*
//! beside its config ([`ready_file`]) once it serves. A restarted node gets new ports; the
//! links to it are retargeted, so its children keep dialling the same link address.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use node_agent::certs::{CertificateAuthority, Hosts};
use renda_proto::sync::v1 as pb;
use renda_replica::OrgCode;
use renda_tls::NodeIdentity;
use tonic::transport::Channel;

use crate::proxy::Link;
use crate::wait::wait;

/// The environment variable that turns the test binary into a node process.
pub const NODE_ENV: &str = "E2E_NODE_CONFIG";

/// Every node's `[auth] token_secret`: log-in tokens issued by one node (and by a gateway's
/// test) are valid at all of them.
pub const TOKEN_SECRET: &str = "e2e-token-secret-of-at-least-32-characters";

/// Every node's `[auth] token_key_id`, the id tokens signed with [`TOKEN_SECRET`] carry (not
/// the default `1`, so a node or gateway that ignored the setting would refuse them).
pub const TOKEN_KEY_ID: &str = "e2e";

/// Signs tokens as the cluster's nodes do: [`TOKEN_SECRET`] under [`TOKEN_KEY_ID`].
pub fn signer() -> anyhow::Result<renda_accounts::TokenSigner> {
    Ok(renda_accounts::TokenSigner::with_keys(
        renda_accounts::SigningKey::new(TOKEN_KEY_ID, TOKEN_SECRET.as_bytes().to_vec())?,
        Vec::new(),
    )?)
}

/// A logged-in person of `org` in `role`, as a token signed with the cluster's secret (the
/// cluster's scenarios test replication; `node-agent/tests/trust.rs` tests log-in itself).
pub fn person(
    role: renda_accounts::UserRole,
    org: OrgCode,
) -> anyhow::Result<node_agent::demo::Person> {
    let token = signer()?.issue(&renda_accounts::Claims {
        user_id: uuid::Uuid::new_v4(),
        user: 1,
        org: renda_domain::org::OrgCode::parse(&org.to_string())
            .map_err(|e| anyhow::anyhow!("{org}: {e}"))?,
        role,
        subject: None,
        expires_ms: chrono::Utc::now().timestamp_millis() + 3_600_000,
    });
    node_agent::demo::Person::with_token(&token)
}

/// Where a node process started from `config` writes `<grpc address> <client address>` once
/// it serves.
pub fn ready_file(config: &Path) -> PathBuf {
    config.with_extension("ready")
}

/// Runs a node process from a config file until SIGTERM or SIGKILL. Called by a test binary's
/// `main` when [`NODE_ENV`] is set.
pub fn run_node(config_path: &Path) -> anyhow::Result<()> {
    renda_tls::install_crypto_provider();
    // The test's own environment (RENDA_TEST_PG_URL, say) is not meant for the node: its
    // config file says everything.
    let config = node_agent::Config::load(config_path, &Default::default())?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let mut settings = renda_telemetry::Settings::new("node-agent");
        settings.filter = Some("info".into());
        settings.otlp_endpoint = config.telemetry.otlp_endpoint.clone();
        settings.attributes = vec![
            (
                "renda.org_code".to_owned(),
                config.node.identity.org_code.to_string(),
            ),
            (
                "renda.level".to_owned(),
                config.node.identity.level.to_string(),
            ),
        ];
        let _telemetry = renda_telemetry::init(&settings)?;
        let (node, task) =
            node_agent::node::start(&config, node_agent::domain::deputy_work(), async {
                if let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    term.recv().await;
                }
            })
            .await?;
        eprintln!("node {} serving on {}", node.store.org(), node.grpc_addr);
        // Written whole and then renamed, so the test never reads half a file.
        let ready = ready_file(config_path);
        let partial = ready.with_extension("ready.partial");
        std::fs::write(&partial, format!("{} {}", node.grpc_addr, node.client_addr))?;
        std::fs::rename(&partial, &ready)?;
        task.await??;
        anyhow::Ok(())
    })
}

struct Proc {
    config: PathBuf,
    /// Where the node serves gRPC, as its ready file said (unspecified until it started).
    grpc: SocketAddr,
    /// The client port people call on.
    client: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
}

pub struct Cluster {
    dir: tempfile::TempDir,
    certs: PathBuf,
    procs: BTreeMap<OrgCode, Proc>,
    /// (child, upstream) → the link the child dials.
    links: BTreeMap<(OrgCode, OrgCode), Link>,
}

/// Before a node has told its addresses.
const NOT_YET: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// What a city office does before its node first starts (`node-agent org import`): the org
/// tree (the demo tree's units) written into the city's store; it reaches the other nodes
/// through sync.
async fn import_org_tree(url: &str, city: OrgCode) -> anyhow::Result<()> {
    let domain = node_agent::domain::deputy_work();
    let options = renda_store::Options {
        audience: domain.audience.clone(),
        ..Default::default()
    };
    let store = renda_store::Store::open(url, domain.schema, city, options).await?;
    let units = renda_domain::org::OrgTree::demo().named_units();
    let written =
        renda_api::org::bootstrap_units(&store, &renda_api::ApiContext::default(), &units).await;
    store.close().await;
    written.map_err(|e| anyhow::anyhow!("importing the org tree at the city: {e}"))?;
    Ok(())
}

impl Cluster {
    /// Starts one process per org unit, parents first; every child's links to its upstreams
    /// (parent, then grandparent) go through proxies.
    pub async fn start(orgs: &[OrgCode]) -> anyhow::Result<Cluster> {
        Self::start_with(orgs, None).await
    }

    /// As [`Cluster::start`], with every node exporting spans to `otlp_endpoint`.
    pub async fn start_with(
        orgs: &[OrgCode],
        otlp_endpoint: Option<&str>,
    ) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let certs = dir.path().join("certs");
        let city = orgs
            .iter()
            .copied()
            .find(|o| o.level() == renda_replica::Level::City)
            .context("a cluster needs a city")?;
        let ca = CertificateAuthority::generate(&city.to_string().parse()?)?;
        ca.write(&certs)?;
        let mut cluster = Cluster {
            dir,
            certs,
            procs: BTreeMap::new(),
            links: BTreeMap::new(),
        };
        let mut sorted = orgs.to_vec();
        sorted.sort_by_key(|o| o.digits());
        for org in sorted {
            let identity = NodeIdentity::of(org)?;
            let cert = ca.issue(
                &identity,
                &Hosts {
                    dns: vec!["localhost".into()],
                    ips: vec![Ipv4Addr::LOCALHOST.into()],
                },
            )?;
            cert.write(&cluster.certs, &identity.org_code)?;
            let mut upstreams = Vec::new();
            for parent in std::iter::successors(org.parent(), |o| o.parent()) {
                let Some(target) = cluster.procs.get(&parent).map(|p| p.grpc) else {
                    continue;
                };
                let link = Link::start(target).await?;
                upstreams.push(format!("\"https://localhost:{}\"", link.addr().port()));
                cluster.links.insert((org, parent), link);
            }
            let config = cluster.dir.path().join(format!("{org}.toml"));
            let certs = cluster.certs.display();
            let text = format!(
                "[node]\nlevel = \"{level}\"\norg_code = \"{org}\"\ndata_dir = \"{data}\"\n\n\
                 [storage]\nurl = \"sqlite://{db}\"\n\n\
                 [listen]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nclient = \"127.0.0.1:0\"\n\n\
                 [upstream]\naddresses = [{upstreams}]\n\n\
                 [tls]\nca = \"{certs}/ca.pem\"\ncert = \"{certs}/{org}.pem\"\nkey = \"{certs}/{org}.key\"\n\n\
                 [sync]\ninterval_secs = 1\nbatch_ops = 500\nbackoff_min_ms = 100\nbackoff_max_ms = 1000\n\n\
                 [auth]\ntoken_secret = \"{TOKEN_SECRET}\"\ntoken_key_id = \"{TOKEN_KEY_ID}\"\n\
                 token_ttl_minutes = 120\n\n\
                 {telemetry}",
                level = identity.level,
                data = cluster.dir.path().join(org.to_string()).display(),
                db = cluster.dir.path().join(format!("{org}.db")).display(),
                upstreams = upstreams.join(", "),
                telemetry = otlp_endpoint
                    .map(|e| format!("[telemetry]\notlp_endpoint = \"{e}\"\n"))
                    .unwrap_or_default(),
            );
            std::fs::write(&config, text)?;
            if org == city {
                let db = cluster.dir.path().join(format!("{org}.db"));
                import_org_tree(&format!("sqlite://{}", db.display()), city).await?;
            }
            let log = cluster.dir.path().join(format!("{org}.log"));
            cluster.procs.insert(
                org,
                Proc {
                    config,
                    grpc: NOT_YET,
                    client: NOT_YET,
                    child: None,
                    log,
                },
            );
            cluster.spawn(org)?;
            cluster.wait_serving(org).await?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, org: OrgCode) -> anyhow::Result<()> {
        let exe = std::env::current_exe()?;
        let proc = self.procs.get_mut(&org).context("unknown node")?;
        // A ready file left by the node's previous run names ports it no longer serves on.
        match std::fs::remove_file(ready_file(&proc.config)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&proc.log)?;
        let child = Command::new(exe)
            .env(NODE_ENV, &proc.config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning a node process")?;
        proc.child = Some(child);
        Ok(())
    }

    /// Waits until the node wrote its ready file, points the links to it at its new gRPC
    /// address, and waits until it answers a status call over mutual TLS.
    async fn wait_serving(&mut self, org: OrgCode) -> anyhow::Result<()> {
        let ready = ready_file(&self.procs.get(&org).context("unknown node")?.config);
        let started = wait(format_args!("node {org} to serve"))
            .within(Duration::from_secs(60))
            .until(async || {
                let text = std::fs::read_to_string(&ready)
                    .with_context(|| format!("no {}", ready.display()))?;
                let (grpc, client) = text.split_once(' ').context("a malformed ready file")?;
                anyhow::Ok((grpc.parse()?, client.parse()?))
            })
            .await;
        let (grpc, client): (SocketAddr, SocketAddr) = match started {
            Ok(addrs) => addrs,
            Err(e) => bail!("{e:#}; its log:\n{}", self.log(org)),
        };
        let proc = self.procs.get_mut(&org).context("unknown node")?;
        proc.grpc = grpc;
        proc.client = client;
        for ((_, upstream), link) in &self.links {
            if *upstream == org {
                link.retarget(grpc);
            }
        }
        let answered = wait(format_args!("node {org} to answer a status call"))
            .within(Duration::from_secs(60))
            .until(async || self.status(org).await)
            .await;
        if let Err(e) = answered {
            bail!("{e:#}; its log:\n{}", self.log(org));
        }
        Ok(())
    }

    /// The configuration `org`'s node process runs with (for the operator commands a test
    /// runs against its storage, as `node-agent bundle export --config …` would).
    pub fn config(&self, org: OrgCode) -> anyhow::Result<node_agent::Config> {
        let proc = self.procs.get(&org).context("unknown node")?;
        Ok(node_agent::Config::load(&proc.config, &Default::default())?)
    }

    pub fn log(&self, org: OrgCode) -> String {
        self.procs
            .get(&org)
            .and_then(|p| std::fs::read_to_string(&p.log).ok())
            .unwrap_or_default()
    }

    /// A channel to `org`'s node presenting `org`'s certificate.
    pub fn channel(&self, org: OrgCode) -> anyhow::Result<Channel> {
        let proc = self.procs.get(&org).context("unknown node")?;
        let material = renda_tls::Material::from_files(&renda_tls::TlsFiles {
            ca: self.certs.join("ca.pem"),
            cert: self.certs.join(format!("{org}.pem")),
            key: self.certs.join(format!("{org}.key")),
        })?;
        let uri = format!("https://localhost:{}", proc.grpc.port()).parse()?;
        Ok(renda_tls::channel(&uri, material.client_config()?)?)
    }

    /// A channel to `org`'s client port as a person's device dials it: TLS trusting the
    /// cluster's CA, no certificate.
    pub fn person_channel(&self, org: OrgCode) -> anyhow::Result<Channel> {
        let proc = self.procs.get(&org).context("unknown node")?;
        let uri = format!("https://localhost:{}", proc.client.port()).parse()?;
        Ok(renda_tls::channel(
            &uri,
            renda_tls::person_client_config(&self.certs.join("ca.pem"))?,
        )?)
    }

    pub fn link(&self, child: OrgCode, upstream: OrgCode) -> anyhow::Result<&Link> {
        self.links
            .get(&(child, upstream))
            .with_context(|| format!("no link from {child} to {upstream}"))
    }

    /// Cuts every link of `org` to its upstreams.
    pub fn isolate(&self, org: OrgCode) {
        for ((child, _), link) in &self.links {
            if *child == org {
                link.cut();
            }
        }
    }

    pub fn reconnect(&self, org: OrgCode) {
        for ((child, _), link) in &self.links {
            if *child == org {
                link.heal();
            }
        }
    }

    /// Kills a node process with SIGKILL.
    pub fn kill(&mut self, org: OrgCode) -> anyhow::Result<()> {
        let proc = self.procs.get_mut(&org).context("unknown node")?;
        if let Some(mut child) = proc.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts a killed node again on the same storage (on new ports; the links to it follow).
    pub async fn restart(&mut self, org: OrgCode) -> anyhow::Result<()> {
        self.spawn(org)?;
        self.wait_serving(org).await
    }

    /// The digest of `scope`'s records as `org`'s node holds them.
    pub async fn digest(&self, org: OrgCode, scope: OrgCode) -> anyhow::Result<pb::DigestResponse> {
        let mut client = pb::replication_client::ReplicationClient::new(self.channel(org)?);
        Ok(client
            .digest(pb::DigestRequest {
                org_code: scope.to_string(),
                bucket: None,
            })
            .await?
            .into_inner())
    }

    pub async fn status(&self, org: OrgCode) -> anyhow::Result<pb::StatusResponse> {
        let mut client = pb::replication_client::ReplicationClient::new(self.channel(org)?);
        Ok(client.status(pb::StatusRequest {}).await?.into_inner())
    }

    /// The `org_unit` records in `scope`'s digest: the units of the imported tree in its
    /// subtree (see [`import_org_tree`]).
    pub fn tree_records(scope: OrgCode) -> u64 {
        renda_domain::org::OrgCode::parse(&scope.to_string())
            .map(|code| renda_domain::org::OrgTree::demo().subtree(&code).len() as u64)
            .unwrap_or(0)
    }

    /// Waits until every node in `nodes` shows the same digest for `scope`, with at least
    /// `records` records besides the org tree's; returns that digest.
    pub async fn converged(
        &self,
        nodes: &[OrgCode],
        scope: OrgCode,
        records: u64,
    ) -> anyhow::Result<pb::DigestResponse> {
        let waited = wait(format_args!("scope {scope} to converge"))
            .within(Duration::from_secs(90))
            .every(Duration::from_millis(250))
            .until(async || {
                let mut digests = Vec::new();
                for org in nodes {
                    digests.push(self.digest(*org, scope).await.ok());
                }
                if let Some(Some(first)) = digests.first()
                    && first.records >= records + Self::tree_records(scope)
                    && digests.iter().all(|d| d.as_ref() == Some(first))
                {
                    return Ok(first.clone());
                }
                let shown: Vec<String> = nodes
                    .iter()
                    .zip(&digests)
                    .map(|(org, d)| match d {
                        Some(d) => format!("{org}: {}", d.hash),
                        None => format!("{org}: unreachable"),
                    })
                    .collect();
                bail!("{}", shown.join("; "))
            })
            .await;
        waited.map_err(|e| {
            let logs: Vec<String> = nodes.iter().map(|org| self.log_tail(*org, 15)).collect();
            anyhow::anyhow!("{e:#}\n{}", logs.join("\n"))
        })
    }

    /// The last `lines` lines of `org`'s log, under a heading naming the node.
    pub fn log_tail(&self, org: OrgCode, lines: usize) -> String {
        let log = self.log(org);
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        format!(
            "--- {org} (last lines)\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// Waits until `org` has tried each of its upstreams in an attempt that began after
    /// `since_ms` (Unix ms, this machine's clock) and failed, each still owed operations: what
    /// `org` wrote before `since_ms` had its chance to leave and did not. Returns `org`'s
    /// status then.
    ///
    /// This is how a test checks that cut-off work has *not* arrived elsewhere, instead of
    /// sleeping. Attempts on one upstream follow each other, so an error newer than another
    /// error newer than `since_ms` comes from an attempt that began after `since_ms`.
    pub async fn failed_attempts_since(
        &self,
        org: OrgCode,
        since_ms: i64,
    ) -> anyhow::Result<pb::NodeStatus> {
        let upstreams: BTreeMap<String, i64> = self
            .links
            .keys()
            .filter(|(child, _)| *child == org)
            .map(|(_, upstream)| (upstream.to_string(), since_ms))
            .collect();
        ensure!(!upstreams.is_empty(), "{org} has no upstream");
        let failed_after = async |after: &BTreeMap<String, i64>| {
            wait(format_args!(
                "{org} to fail with every upstream after {after:?}"
            ))
            .until(async || {
                let status = self
                    .status(org)
                    .await?
                    .self_
                    .context("status names the node")?;
                let mut errors = BTreeMap::new();
                for (upstream, after) in after {
                    let peer = status
                        .peers
                        .iter()
                        .find(|p| &p.peer_org_code == upstream)
                        .with_context(|| format!("no state for {upstream}: {status:?}"))?;
                    ensure!(
                        peer.last_error_unix_ms > *after && peer.ops_pending_to_peer > 0,
                        "{upstream}: {peer:?}"
                    );
                    errors.insert(upstream.clone(), peer.last_error_unix_ms);
                }
                Ok((errors, status))
            })
            .await
        };
        let (first, _) = failed_after(&upstreams).await?;
        let (_, status) = failed_after(&first).await?;
        Ok(status)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The loopback address `org`'s node serves gRPC on (its node certificate is valid for
    /// `localhost` and `127.0.0.1`).
    pub fn grpc_addr(&self, org: OrgCode) -> anyhow::Result<SocketAddr> {
        Ok(self.procs.get(&org).context("unknown node")?.grpc)
    }

    /// The directory holding `ca.pem`, `ca.key` and every node's `<org>.pem`/`.key`.
    pub fn certs_dir(&self) -> &Path {
        &self.certs
    }

    /// The CA and a city gateway certificate (`renda://gateway/<city>`), issued on first use.
    pub fn gateway_tls(&self) -> anyhow::Result<renda_tls::TlsFiles> {
        let ca = CertificateAuthority::load(&self.certs)?;
        let stem = format!("gateway-{}", ca.city());
        let cert = self.certs.join(format!("{stem}.pem"));
        if !cert.exists() {
            node_agent::certs::issue_gateway(&self.certs, &self.certs)?;
        }
        Ok(renda_tls::TlsFiles {
            ca: self.certs.join("ca.pem"),
            cert,
            key: self.certs.join(format!("{stem}.key")),
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for proc in self.procs.values_mut() {
            if let Some(mut child) = proc.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
