//! A real store (SQLite temp file) behind a real tonic server on 127.0.0.1:0, and helpers to
//! call it as a user of an org unit and to exchange operations between two nodes.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use renda_accounts::{Claims, TokenSigner, UserRole};
use renda_api::users::TOKEN_TTL_MS;
use renda_api::{
    ApiContext, Gate, audience, auth_server, replication_rule, reports_server, routes, schema,
};
use renda_domain::org::OrgTree;
use renda_proto::deputy::v1 as dep;
use renda_replica::OrgCode;
use renda_store::{Cursor, Options, Store};
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub const CITY: &str = "370200";
pub const COUNTY: &str = "370202";
pub const TOWNSHIP: &str = "370202001";
pub const OTHER_TOWNSHIP: &str = "370202002";

/// A channel whose calls carry the token of the node's own staff unless the request names a
/// person itself (`as_user`, `as_role`, `as_deputy`).
pub type Staffed = tonic::service::interceptor::InterceptedService<Channel, OwnStaff>;

/// Adds the node's staff token to a request that carries none.
#[derive(Clone)]
pub struct OwnStaff(&'static str);

impl tonic::service::Interceptor for OwnStaff {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if !req.metadata().contains_key("authorization") {
            let staff = as_user(self.0, ());
            if let Some(v) = staff.metadata().get("authorization") {
                req.metadata_mut().insert("authorization", v.clone());
            }
        }
        Ok(req)
    }
}

pub struct Node {
    pub org: &'static str,
    pub store: Store,
    pub channel: Staffed,
    /// The same connection with no token added.
    pub raw: Channel,
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
        let ctx = ctx.with_signer(signer());
        let service = routes(store.clone(), ctx.clone());
        let reports = reports_server(store.clone(), ctx.clone(), None);
        let auth = auth_server(store.clone(), ctx.clone(), signer(), TOKEN_TTL_MS);
        let gate = Gate::new(store.clone(), ctx, signer());
        let server = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .layer(gate)
                .add_routes(service)
                .add_service(reports)
                .add_service(auth)
                .serve_with_incoming(incoming)
                .await;
        });
        let raw = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        let channel =
            tonic::service::interceptor::InterceptedService::new(raw.clone(), OwnStaff(org));
        Ok(Node {
            org,
            store,
            channel,
            raw,
            addr,
            _dir: dir,
            _server: server,
        })
    }
}

/// The test deployment's token keys: every test node's gate checks tokens with them.
pub fn signer() -> TokenSigner {
    TokenSigner::new(b"renda api tests: the deployment's token secret".to_vec())
}

/// A request as user 7 of `org`, in the role that unit's staff have: the deputy office at a
/// city or county, the clerk at a township.
pub fn as_user<T>(org: &str, msg: T) -> tonic::Request<T> {
    as_role(org, "staff", msg)
}

/// A request as user 7 of `org` in `role`: `viewer` (read only), `deputy` (acting as
/// `deputy` when [`as_deputy`] names one), or anything else for the unit's staff.
pub fn as_role<T>(org: &str, role: &str, msg: T) -> tonic::Request<T> {
    let role = match role {
        "viewer" => UserRole::ReadOnly,
        "deputy" => UserRole::Deputy,
        _ if org.len() == 9 => UserRole::TownshipClerk,
        _ if org.ends_with("00") => UserRole::CityOffice,
        _ => UserRole::CountyOffice,
    };
    with_claims(org, role, None, msg)
}

/// A request as the deputy `deputy` of `org` with their own account.
pub fn as_deputy<T>(org: &str, deputy: &str, msg: T) -> tonic::Request<T> {
    let subject = uuid::Uuid::parse_str(deputy).expect("a deputy id");
    with_claims(org, UserRole::Deputy, Some(subject), msg)
}

fn with_claims<T>(
    org: &str,
    role: UserRole,
    subject: Option<uuid::Uuid>,
    msg: T,
) -> tonic::Request<T> {
    let token = signer().issue(&Claims {
        // The same user record id for the same unit and role, so tests may compare authors.
        user_id: uuid::Uuid::from_u128(
            format!("{org}/{}", role.as_str())
                .bytes()
                .fold(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d_u128, |h, b| {
                    (h ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b)
                }),
        ),
        user: 7,
        org: renda_domain::org::OrgCode::parse(org).expect("a test org code"),
        role,
        subject,
        expires_ms: chrono::Utc::now().timestamp_millis() + 3_600_000,
    });
    with_token(&token, msg)
}

/// A request carrying `token` (from `Auth.Login`, or made up by a test) as its bearer token.
pub fn with_token<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
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

/// Asserts a call was refused by the gate itself (before any service ran) with `code` and the
/// gate's machine reason `reason` (`ROLE_NOT_ALLOWED`, `OUTSIDE_SCOPE`, ...), with a Chinese
/// message. The gate names no request field: it refuses the caller, not the request.
#[track_caller]
pub fn assert_gate_refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: tonic::Code,
    reason: &str,
) {
    match result {
        Ok(r) => panic!("expected the gate to refuse with {reason}, got {r:?}"),
        Err(status) => {
            let got = renda_api::gate::gate_reason(&status);
            assert_eq!(
                (status.code(), got.as_deref()),
                (code, Some(reason)),
                "{status:?}"
            );
            let (_, field, zh) = refusal(&status);
            assert_eq!(field, "", "a gate refusal names no field: {status:?}");
            assert!(!zh.is_empty(), "no zh-CN message in {status:?}");
        }
    }
}

/// The phone number of [`deputy_fields`], which reads must mask.
pub const DEPUTY_PHONE: &str = "13912345678";

/// A township deputy's register fields that pass validation; a test changes what it tests
/// with `DeputyFields { levels: …, ..deputy_fields(name) }`.
pub fn deputy_fields(name: &str) -> dep::DeputyFields {
    dep::DeputyFields {
        name: name.into(),
        levels: vec![dep::DeputyLevel::Township.into()],
        constituency: "第一选区".into(),
        term: 19,
        gender: dep::Gender::Male.into(),
        ethnicity: "汉族".into(),
        sector: "农业".into(),
        phone: DEPUTY_PHONE.into(),
        id_card: String::new(),
        status: 0,
    }
}

/// A `YYYY-MM-DD` day as a request's date (`None` for the empty text: the field left unset).
pub fn date(day: &str) -> Option<renda_proto::types::v1::Date> {
    let mut parts = day.split('-').map(|p| p.parse::<i32>().unwrap_or(0));
    if day.is_empty() {
        return None;
    }
    Some(renda_proto::types::v1::Date {
        year: parts.next().unwrap_or(0),
        month: parts.next().unwrap_or(0),
        day: parts.next().unwrap_or(0),
    })
}

/// A date of a response as `YYYY-MM-DD` (empty when unset).
pub fn day(d: &Option<renda_proto::types::v1::Date>) -> String {
    d.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// Registers a deputy at `node` as its clerk; returns the deputy's id.
pub async fn create_deputy(node: &Node, fields: dep::DeputyFields) -> anyhow::Result<String> {
    let mut c = dep::deputies_client::DeputiesClient::new(node.channel.clone());
    Ok(c.create_deputy(as_user(
        node.org,
        dep::CreateDeputyRequest {
            org: String::new(),
            fields: Some(fields),
        },
    ))
    .await?
    .into_inner()
    .id)
}

/// The version of record `id` as a person at `node` reads it now (what a form sends back).
pub async fn version_of(node: &Node, id: &str) -> anyhow::Result<String> {
    let record = node
        .store
        .record(renda_replica::RecordId(id.parse()?))
        .await?
        .ok_or_else(|| anyhow::anyhow!("{id} is not at {}", node.org))?;
    Ok(record.version.encode())
}
