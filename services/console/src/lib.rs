//! The web console of a renda-mesh node, served on its HTTP port: log-in with the gateway's
//! users and roles, data entry for a township's clerks, the county's aggregation view (sync
//! state of every township, conflicts and quarantine to resolve, dashboards with drill-down,
//! work sent down) and the city's dashboards with freshness per township. Every asset is
//! embedded in the binary, so the console works with no internet and no build step.
//!
//! The console holds no business rule: every read and write goes through the `renda-api`
//! service implementations in process, with the logged-in user as caller metadata, so
//! validation and authority are exactly the API's; a refusal comes back to the browser as
//! `{error: {field, message_zh}}`. It is not a second API: it offers the browser only the
//! domain services (never replication or user administration) and limits every read to the
//! user's org subtree.

mod rpc;
mod session;
mod views;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use renda_accounts::TokenSigner;
use renda_api::ApiContext;
use renda_replica::OrgCode;
use renda_store::Store;
use renda_sync::StatusBook;
use serde_json::{Value as Json_, json};
use tonic::Code;

pub use crate::rpc::Refusal;
use crate::rpc::Rpc;
use crate::session::Session;

/// What the console needs from the node it runs in.
#[derive(Clone)]
pub struct ConsoleState {
    pub store: Store,
    pub status: StatusBook,
    /// The sync agent; `None` at the city.
    pub sync: Option<renda_sync::Handle>,
    /// Checks log-in tokens (the node's and the gateway's keys).
    pub signer: TokenSigner,
    /// The node's services for people, as it serves them on its ports.
    pub routes: tonic::service::Routes,
    /// The gate those services are called through, with the logged-in person's token.
    pub gate: renda_api::Gate,
    pub api: ApiContext,
}

/// Why the console could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the embedded protobuf descriptors: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
}

pub(crate) struct Shared {
    pub state: ConsoleState,
    pub rpc: Rpc,
    pub signer: TokenSigner,
    pub node: OrgCode,
}

type AppState = Arc<Shared>;

/// The console's routes: the embedded page and its assets, and the JSON endpoints under
/// `/api`.
pub fn router(state: ConsoleState) -> Result<axum::Router, Error> {
    let me = state.store.org();
    let shared = Arc::new(Shared {
        rpc: Rpc::new(state.routes.clone(), state.gate.clone())?,
        signer: state.signer.clone(),
        node: me,
        state,
    });
    Ok(axum::Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me_handler))
        .route("/api/rpc/{service}/{method}", post(call))
        .route("/api/status", get(views::status))
        .route("/api/conflicts", get(views::conflicts))
        .route("/api/conflicts/resolve", post(views::resolve))
        .route("/api/quarantine", get(views::quarantine))
        .route("/api/record/{id}", get(views::record))
        .route("/api/records/{id}/update", post(views::edit))
        .with_state(shared))
}

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A refusal as the browser gets it: an HTTP status and `{error: {field, message_zh}}`.
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match self.code {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let field = self.field.rsplit('.').next().unwrap_or_default().to_owned();
        (
            status,
            Json(json!({"error": {"field": field, "message_zh": self.message_zh}})),
        )
            .into_response()
    }
}

pub(crate) fn require(shared: &Shared, headers: &HeaderMap) -> Result<Session, Refusal> {
    Session::from_headers(headers, &shared.signer, shared.node)
        .ok_or_else(|| Refusal::new(Code::Unauthenticated, "", "请先登录"))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

async fn login(State(shared): State<AppState>, Json(form): Json<LoginForm>) -> Response {
    if form.login.trim().is_empty() {
        return Refusal::new(Code::InvalidArgument, "login", "请输入用户名").into_response();
    }
    if form.password.is_empty() {
        return Refusal::new(Code::InvalidArgument, "password", "请输入密码").into_response();
    }
    let mut client = renda_proto::auth::v1::auth_client::AuthClient::new(shared.rpc.channel());
    let reply = client
        .login(renda_proto::auth::v1::LoginRequest {
            login: form.login,
            password: form.password,
        })
        .await;
    match reply {
        Ok(reply) => {
            let reply = reply.into_inner();
            let max_age = renda_api::users::TOKEN_TTL_MS / 1000;
            let identity = reply.identity.unwrap_or_default();
            (
                [(
                    header::SET_COOKIE,
                    session::set_cookie(&reply.token, max_age),
                )],
                Json(identity_json(&shared, &identity)),
            )
                .into_response()
        }
        Err(status) => {
            let mut refusal = Refusal::from_status(&status);
            if refusal.code == Code::Unauthenticated {
                refusal.field = "password".into();
            }
            refusal.into_response()
        }
    }
}

fn identity_json(shared: &Shared, identity: &renda_proto::auth::v1::Identity) -> Json_ {
    json!({
        "user": identity.user,
        "login": identity.login,
        "display_name": identity.display_name,
        // The browser reads the role's stored name ("township_clerk"), as /api/me gives it.
        "role": renda_api::users::role_of(identity.role).map_or("", |r| r.as_str()),
        "org_code": identity.org_code,
        "node": node_json(shared),
    })
}

fn node_json(shared: &Shared) -> Json_ {
    json!({
        "org_code": shared.node.to_string(),
        "level": shared.node.level().as_str(),
        "has_upstream": shared.state.sync.is_some(),
    })
}

async fn logout() -> Response {
    (
        [(header::SET_COOKIE, session::set_cookie("", 0))],
        Json(json!({"ok": true})),
    )
        .into_response()
}

async fn me_handler(State(shared): State<AppState>, headers: HeaderMap) -> Response {
    match require(&shared, &headers) {
        Ok(session) => Json(json!({
            "user": session.claims.user,
            "role": session.claims.role.as_str(),
            "org_code": session.claims.org.to_string(),
            "expires_ms": session.claims.expires_ms,
            "node": node_json(&shared),
        }))
        .into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// Keys of a request that name an org unit the call reads or writes.
const ORG_KEYS: &[&str] = &["org", "org_code", "under"];

/// One call of a domain service as the logged-in user, limited to the user's subtree.
async fn call(
    State(shared): State<AppState>,
    headers: HeaderMap,
    Path((service, method)): Path<(String, String)>,
    Json(mut request): Json<Json_>,
) -> Response {
    let session = match require(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if let Some(object) = request.as_object_mut() {
        for key in ORG_KEYS {
            match object.get(*key).and_then(Json_::as_str) {
                Some(org) if !org.is_empty() => {
                    if !session.may_see(org) {
                        return Refusal::new(
                            Code::PermissionDenied,
                            key,
                            "只能查看和填报本级及下级单位的数据",
                        )
                        .into_response();
                    }
                }
                _ => {
                    // A list without an org means the node's own: for a user below the node,
                    // that is their own unit instead.
                    if !session.sees_whole_node() && object.contains_key(*key) {
                        object.insert((*key).to_owned(), Json_::String(session.org().to_string()));
                    }
                }
            }
        }
    }
    match shared
        .rpc
        .call_json(Some(&session), &service, &method, request)
        .await
    {
        Ok(reply) => {
            if !session.sees_whole_node() {
                let owner = ["org", "congress"]
                    .iter()
                    .find_map(|k| reply.get(*k).and_then(Json_::as_str));
                if let Some(owner) = owner
                    && !owner.is_empty()
                    && !session.may_see(owner)
                {
                    return Refusal::new(
                        Code::PermissionDenied,
                        "",
                        "只能查看本级及下级单位的数据",
                    )
                    .into_response();
                }
            }
            Json(reply).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}
