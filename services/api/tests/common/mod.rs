//! A real store (SQLite temp file) behind a real tonic server on 127.0.0.1:0, and helpers to
//! call it as a user of an org unit and to exchange operations between two nodes.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use renda_api::{ApiContext, audience, replication_rule, routes, schema};
use renda_domain::org::OrgTree;
use renda_replica::OrgCode;
use renda_store::{Cursor, Options, Store};
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub const CITY: &str = "370200";
pub const COUNTY: &str = "370202";
pub const TOWNSHIP: &str = "370202001";
pub const OTHER_TOWNSHIP: &str = "370202002";

pub struct Node {
    pub org: &'static str,
    pub store: Store,
    pub channel: Channel,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

impl Node {
    pub async fn start(org: &'static str) -> anyhow::Result<Node> {
        Self::start_with(org, ApiContext::new(OrgTree::demo())).await
    }

    /// A node whose org tree comes from its store alone.
    pub async fn start_bare(org: &'static str) -> anyhow::Result<Node> {
        Self::start_with(org, ApiContext::default()).await
    }

    pub async fn start_with(org: &'static str, ctx: ApiContext) -> anyhow::Result<Node> {
        let dir = tempfile::tempdir()?;
        let schema = Arc::new(schema());
        let url = format!("sqlite://{}", dir.path().join("node.sqlite").display());
        let options = Options {
            audience: Some(audience(schema.clone())),
            ..Options::default()
        };
        let store = Store::open(&url, schema, org.parse::<OrgCode>()?, options).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let service = routes(store.clone(), ctx);
        let server = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_routes(service)
                .serve_with_incoming(incoming)
                .await;
        });
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        Ok(Node {
            org,
            store,
            channel,
            addr,
            _dir: dir,
            _server: server,
        })
    }
}

/// A request as user 7 of `org` with role `clerk`.
pub fn as_user<T>(org: &str, msg: T) -> tonic::Request<T> {
    as_role(org, "clerk", msg)
}

pub fn as_role<T>(org: &str, role: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    let md = req.metadata_mut();
    md.insert("x-renda-user", "7".parse().expect("ascii"));
    md.insert("x-renda-org", org.parse().expect("ascii"));
    md.insert("x-renda-role", role.parse().expect("ascii"));
    req
}

/// Copies every operation of `from` into `to`, through the replication rule.
pub async fn push(from: &Node, to: &Node) -> anyhow::Result<renda_store::BatchReport> {
    let ops = from.store.ops_since(Cursor::START, 100_000).await?;
    let bytes: Vec<Vec<u8>> = ops.into_iter().map(|o| o.bytes).collect();
    let rule = replication_rule(Arc::new(schema()));
    Ok(to.store.apply_batch(&bytes, Some(from.org), &rule).await?)
}

/// Both ways.
pub async fn exchange(a: &Node, b: &Node) -> anyhow::Result<()> {
    push(a, b).await?;
    push(b, a).await?;
    Ok(())
}

/// The field named in the status's BadRequest, and its zh-CN message.
pub fn refusal(status: &tonic::Status) -> (tonic::Code, String, String) {
    let field = status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default();
    let zh = status
        .get_details_localized_message()
        .map(|m| {
            assert_eq!(m.locale, "zh-CN");
            m.message
        })
        .unwrap_or_default();
    (status.code(), field, zh)
}

/// Asserts a call was refused with `code` naming `field`, with a Chinese reason.
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: tonic::Code,
    field: &str,
) {
    match result {
        Ok(r) => panic!("expected {code:?} on {field}, got {r:?}"),
        Err(status) => {
            let (got, got_field, zh) = refusal(&status);
            assert_eq!((got, got_field.as_str()), (code, field), "{status:?}");
            assert!(!zh.is_empty(), "no zh-CN message in {status:?}");
        }
    }
}
