//! The operator commands of `node-agent` that talk to a node or its storage: `status`,
//! `bundle export|import`, and the bootstrap of a deployment, `org import` and `user add`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use renda_proto::sync::v1 as pb;
use renda_replica::OrgCode;
use renda_store::Store;
use renda_sync::bundle;
use tonic::transport::Channel;

use crate::config::{Config, TlsConfig};
use renda_tls as tls;

/// A channel from this node's own config to its own gRPC port (for `status`). A node that
/// listens on every address (`0.0.0.0`, `::`) is dialled on loopback, and must answer with
/// this node's own certificate.
fn own_channel(config: &Config) -> anyhow::Result<Channel> {
    let mut addr = config.listen.grpc;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(match &config.tls {
        TlsConfig::Mutual(files) => {
            let uri = format!("https://{addr}").parse().context("listen.grpc")?;
            tls::channel(
                &uri,
                tls::Material::from_files(files)?.own_node_client_config()?,
            )?
        }
        TlsConfig::InsecureDev => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .context("listen.grpc")?
            .connect_lazy(),
    })
}

/// Prints the sync state of the node and of the nodes below it.
pub async fn status(config: &Config, json: bool) -> anyhow::Result<()> {
    let mut client = pb::replication_client::ReplicationClient::new(own_channel(config)?);
    let response = client
        .status(pb::StatusRequest {})
        .await
        .with_context(|| format!("asking the node at {} for its status", config.listen.grpc))?
        .into_inner();
    if json {
        println!("{}", serde_json::to_string_pretty(&status_json(&response))?);
    } else {
        print!("{}", render_status(&response, now_ms()));
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// "3 min ago"-style text for a timestamp in ms; "never" for 0.
pub fn ago(now_ms: i64, at_ms: i64) -> String {
    if at_ms <= 0 {
        return "never".into();
    }
    let secs = (now_ms - at_ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

fn render_node(out: &mut String, node: &pb::NodeStatus, now: i64, indent: &str) {
    use std::fmt::Write as _;
    let reported = if node.reported_unix_ms > 0 {
        format!(", reported {}", ago(now, node.reported_unix_ms))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{indent}{} {} — log {} ops, {} held, {} quarantined{reported}",
        node.level, node.org_code, node.log_ops, node.held_ops, node.quarantined_ops
    );
    for peer in &node.peers {
        let role = if peer.role == pb::PeerRole::Parent as i32 {
            "parent"
        } else {
            "child"
        };
        let state = if peer.online { "online" } else { "OFFLINE" };
        let error = if peer.last_error.is_empty() {
            String::new()
        } else {
            format!(
                ", last error {}: {}",
                ago(now, peer.last_error_unix_ms),
                peer.last_error
            )
        };
        let _ = writeln!(
            out,
            "{indent}  {role} {}: {state}, last sync {}, pending ↑{} ↓{}{error}",
            peer.peer_org_code,
            ago(now, peer.last_success_unix_ms),
            peer.ops_pending_to_peer,
            peer.ops_pending_from_peer
        );
    }
}

/// The status as text: the node, then every node below it.
pub fn render_status(response: &pb::StatusResponse, now: i64) -> String {
    let mut out = String::new();
    if let Some(node) = &response.self_ {
        render_node(&mut out, node, now, "");
    }
    if !response.below.is_empty() {
        out.push_str("below:\n");
        for node in &response.below {
            render_node(&mut out, node, now, "  ");
        }
    }
    out
}

fn node_json(node: &pb::NodeStatus) -> serde_json::Value {
    serde_json::json!({
        "org_code": node.org_code,
        "level": node.level,
        "log_ops": node.log_ops,
        "held_ops": node.held_ops,
        "quarantined_ops": node.quarantined_ops,
        "reported_unix_ms": node.reported_unix_ms,
        "peers": node.peers.iter().map(|p| serde_json::json!({
            "peer": p.peer_org_code,
            "role": if p.role == pb::PeerRole::Parent as i32 { "parent" } else { "child" },
            "online": p.online,
            "last_success_unix_ms": p.last_success_unix_ms,
            "pending_to_peer": p.ops_pending_to_peer,
            "pending_from_peer": p.ops_pending_from_peer,
            "last_error": p.last_error,
            "last_error_unix_ms": p.last_error_unix_ms,
        })).collect::<Vec<_>>(),
    })
}

fn status_json(response: &pb::StatusResponse) -> serde_json::Value {
    serde_json::json!({
        "node": response.self_.as_ref().map(node_json),
        "below": response.below.iter().map(node_json).collect::<Vec<_>>(),
    })
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let domain = crate::domain::deputy_work();
    let org: OrgCode = config.node.identity.org_code;
    let options = renda_store::Options {
        audience: domain.audience.clone(),
        ..Default::default()
    };
    Store::open(&config.storage.url, domain.schema, org, options)
        .await
        .context("opening the node's storage")
}

fn tls_files(config: &Config) -> anyhow::Result<&renda_tls::TlsFiles> {
    match &config.tls {
        TlsConfig::Mutual(files) => Ok(files),
        TlsConfig::InsecureDev => {
            bail!("tls: bundles are signed with the node's certificate key; configure [tls]")
        }
    }
}

pub async fn bundle_export(
    config: &Config,
    to: OrgCode,
    out: &Path,
    full: bool,
) -> anyhow::Result<()> {
    let files = tls_files(config)?;
    let cert =
        std::fs::read(&files.cert).with_context(|| format!("reading {}", files.cert.display()))?;
    let key =
        std::fs::read(&files.key).with_context(|| format!("reading {}", files.key.display()))?;
    let signer = bundle::Signer::from_pem(&cert, &key).map_err(anyhow::Error::msg)?;
    let store = open_store(config).await?;
    let exported = bundle::export(&store, &signer, to, full, out).await?;
    store.close().await;
    println!(
        "wrote {} operations for {} into {} ({} bytes)",
        exported.ops,
        exported.to,
        out.display(),
        exported.bytes
    );
    Ok(())
}

pub async fn bundle_import(config: &Config, file: &Path) -> anyhow::Result<()> {
    let files = tls_files(config)?;
    let ca = std::fs::read(&files.ca).with_context(|| format!("reading {}", files.ca.display()))?;
    let store = open_store(config).await?;
    let policy = renda_sync::Policy::new(crate::domain::deputy_work().rule);
    let result = bundle::import(&store, &policy, &ca, file).await;
    store.close().await;
    let (from, report) = result?;
    println!(
        "bundle from {from}: {} applied, {} already here, {} held, {} quarantined",
        report.applied, report.duplicates, report.held, report.quarantined
    );
    Ok(())
}

/// `org import`: writes the org units of a `code,name` list at this node (the city's reference
/// data; they go down to every node). The whole file is checked before anything is written.
pub async fn org_import(config: &Config, file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the org unit list {}", file.display()))?;
    let units = renda_api::org::parse_units_csv(&file.display().to_string(), &text)
        .map_err(anyhow::Error::msg)?;
    let store = open_store(config).await?;
    let ctx = renda_api::ApiContext::new(crate::domain::own_units(store.org()));
    let written = renda_api::org::bootstrap_units(&store, &ctx, &units).await;
    store.close().await;
    let written = written.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    println!(
        "{written} org units written, {} already known",
        units.len() - written
    );
    Ok(())
}

/// `user add`: makes a user at this node (the first administrator of a deployment). The
/// password is read from `RENDA_NEW_USER_PASSWORD` or, when that is unset, from the first
/// line of standard input; it is never an argument (argument lists are visible to every
/// user of the machine).
pub async fn user_add(
    config: &Config,
    login: &str,
    role: &str,
    org: Option<&str>,
) -> anyhow::Result<()> {
    let role = renda_accounts::UserRole::parse(role).with_context(|| {
        format!(
            "--role {role:?}: expected one of {}",
            renda_accounts::UserRole::ALL.map(|r| r.as_str()).join(", ")
        )
    })?;
    let org = match org {
        Some(raw) => renda_domain::org::OrgCode::parse(raw)
            .map_err(|e| anyhow::anyhow!("--org {raw:?}: {e}"))?,
        None => config.node.identity.org_code,
    };
    let password = match std::env::var("RENDA_NEW_USER_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let store = open_store(config).await?;
    let ctx = renda_api::ApiContext::new(crate::domain::own_units(store.org()));
    let made = renda_api::users::bootstrap_user(&store, &ctx, login, &password, role, &org).await;
    store.close().await;
    let made = made.map_err(|e| anyhow::anyhow!("{e}"))?;
    let number = made.number;
    if !made.created {
        bail!("--login {login:?}: taken already (user number {number}); nothing changed");
    }
    println!(
        "user {login} ({}) made at {org}, number {number}",
        role.as_str()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_names_every_node_and_link() {
        let response = pb::StatusResponse {
            self_: Some(pb::NodeStatus {
                org_code: "370202".into(),
                level: "county".into(),
                log_ops: 12,
                peers: vec![pb::PeerStatus {
                    peer_org_code: "370202001".into(),
                    role: pb::PeerRole::Child as i32,
                    last_success_unix_ms: 940_000,
                    online: true,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            below: vec![pb::NodeStatus {
                org_code: "370202001".into(),
                level: "township".into(),
                reported_unix_ms: 990_000,
                peers: vec![pb::PeerStatus {
                    peer_org_code: "370202".into(),
                    role: pb::PeerRole::Parent as i32,
                    last_error: "connection refused".into(),
                    last_error_unix_ms: 995_000,
                    ops_pending_to_peer: 7,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let text = render_status(&response, 1_000_000);
        assert!(text.contains("county 370202 — log 12 ops"), "{text}");
        assert!(
            text.contains("child 370202001: online, last sync 1m ago"),
            "{text}"
        );
        assert!(
            text.contains("parent 370202: OFFLINE, last sync never, pending ↑7"),
            "{text}"
        );
        assert!(text.contains("connection refused"), "{text}");
    }
}
