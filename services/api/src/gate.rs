//! The gate in front of every person's call: who is calling, whether this node serves them,
//! and whether their role may call this RPC.
//!
//! [`Gate`] is a tower layer that every node puts in front of its domain services, on the
//! mutual-TLS port between nodes, on the client port for people, and on the console's
//! in-process channel. For each call to a service a person uses it:
//! 1. refuses caller metadata (`x-renda-*`) from the network: the caller is never declared;
//! 2. reads `authorization: Bearer <token>`, the signed token from `Auth.Login`, and checks it
//!    locally (key, signature, expiry), so an offline township still admits its clerks;
//! 3. checks the user's record as this node holds it: a disabled account is refused from the
//!    moment the disabling is written here, and at every other node once the record arrives;
//! 4. admits only users whose org unit reaches this node (its own unit, the offices above it,
//!    the units below it);
//! 5. checks the role against the service's table ([`ServiceAccess`], listed in [`SERVICES`]).
//!
//! The verified [`Caller`] then travels in the request's extensions, and for the duration of
//! the call in a task-local that the services' record reads consult, so no read returns a
//! record outside the person's reach. Every refused call is logged once, here, with who, what
//! and why, never with the token.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use renda_replica::RecordId;
use tonic::codegen::http;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::core::{Caller, Core, boolean, text};
use renda_accounts::{MAX_TOKEN_LEN, TokenSigner, UserRole};

/// A set of roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles(u8);

impl Roles {
    const fn of(roles: &[UserRole]) -> Roles {
        let mut bits = 0u8;
        let mut i = 0;
        while i < roles.len() {
            bits |= 1 << roles[i] as u8;
            i += 1;
        }
        Roles(bits)
    }

    pub(crate) const fn with(self, other: Roles) -> Roles {
        Roles(self.0 | other.0)
    }

    pub fn allows(self, role: UserRole) -> bool {
        self.0 & (1 << role as u8) != 0
    }
}

/// Who may call an RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token: log-in and token check.
    Public,
    /// A logged-in person in one of these roles.
    Roles(Roles),
}

pub(crate) const CITY: Roles = Roles::of(&[UserRole::CityOffice]);
/// The deputy offices of the city and the counties.
pub(crate) const OFFICE: Roles = Roles::of(&[UserRole::CityOffice, UserRole::CountyOffice]);
/// Offices and township or street clerks: the people who enter the work of their unit.
pub(crate) const STAFF: Roles = OFFICE.with(Roles::of(&[UserRole::TownshipClerk]));
/// Everyone who reads a unit's records.
pub(crate) const READ: Roles = STAFF.with(Roles::of(&[UserRole::ReadOnly]));
pub(crate) const DEPUTY: Roles = Roles::of(&[UserRole::Deputy]);
pub(crate) const UNIT: Roles = Roles::of(&[UserRole::HandlingUnit]);
pub(crate) const ANYONE: Roles = READ.with(DEPUTY).with(UNIT);

pub(crate) const fn roles(r: Roles) -> Access {
    Access::Roles(r)
}

/// A person's service and which role may call each of its RPCs. Each service declares its
/// own beside its handlers (`ACCESS` in its module), so a new RPC's row is written where the
/// RPC is; [`SERVICES`] lists them all. A deputy's and a handling unit's calls are further
/// limited by the service to their own deputy or unit.
#[derive(Clone, Copy, Debug)]
pub struct ServiceAccess {
    /// The full gRPC service name, `renda.deputy.v1.Deputies`.
    pub service: &'static str,
    /// Method name and who may call it.
    pub rpcs: &'static [(&'static str, Access)],
}

/// The services a person calls; every RPC of theirs must be declared (an RPC missing from its
/// service's table is refused, never let through).
pub const SERVICES: &[ServiceAccess] = &[
    crate::users::ACCESS,
    crate::org::UNITS_ACCESS,
    crate::org::RECORDS_ACCESS,
    crate::deputy::ACCESS,
    crate::station::ACCESS,
    crate::activity::ACCESS,
    crate::opinion::ACCESS,
    crate::suggestion::ACCESS,
    crate::project::ACCESS,
    crate::evaluation::ACCESS,
    crate::reports::ACCESS,
];

/// Every declared RPC as its request path (`/renda.deputy.v1.Deputies/GetDeputy`) and access.
pub fn rpcs() -> impl Iterator<Item = (String, Access)> {
    SERVICES.iter().flat_map(|s| {
        s.rpcs
            .iter()
            .map(move |(method, access)| (format!("/{}/{method}", s.service), *access))
    })
}

/// What the table says of a request path: `None` for a path that is not a person's service
/// (replication, health, reflection), which the gate leaves to the node's own checks.
pub fn access(path: &str) -> Option<Option<Access>> {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next()?;
    let method = parts.next().unwrap_or_default();
    let declared = SERVICES.iter().find(|s| s.service == service)?;
    Some(
        declared
            .rpcs
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, a)| *a),
    )
}

/// The longest `authorization` value read (`Bearer ` and a token).
const MAX_AUTHORIZATION_LEN: usize = MAX_TOKEN_LEN + 7;

/// Why the gate refused a call: a gRPC code, an English reason for logs and APIs, a stable
/// machine reason (`ErrorInfo.reason`) and a Chinese message for people.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub code: Code,
    pub reason: String,
    pub tag: &'static str,
    pub zh: String,
}

impl Refusal {
    fn unauthenticated(tag: &'static str, reason: impl Into<String>, zh: &str) -> Self {
        Refusal {
            code: Code::Unauthenticated,
            reason: reason.into(),
            tag,
            zh: zh.to_owned(),
        }
    }

    fn denied(tag: &'static str, reason: impl Into<String>, zh: impl Into<String>) -> Self {
        Refusal {
            code: Code::PermissionDenied,
            reason: reason.into(),
            tag,
            zh: zh.into(),
        }
    }

    pub fn status(&self) -> Status {
        let mut details = ErrorDetails::with_error_info(
            self.tag,
            "renda.gate",
            std::collections::HashMap::<String, String>::new(),
        );
        details.set_localized_message("zh-CN", self.zh.clone());
        Status::with_error_details(self.code, self.reason.clone(), details)
    }
}

/// The machine reason of a gate refusal (`ErrorInfo.reason` with domain `renda.gate`), for
/// clients and tests that tell the gate's refusals from a service's.
pub fn gate_reason(status: &Status) -> Option<String> {
    status
        .get_details_error_info()
        .filter(|i| i.domain == "renda.gate")
        .map(|i| i.reason)
}

/// The person a request is made for, checked as the module documentation says.
pub(crate) async fn admit(
    core: &Core,
    signer: &TokenSigner,
    headers: &http::HeaderMap,
    path: &str,
    access: Option<Access>,
) -> Result<Option<Caller>, Refusal> {
    if let Some(name) = headers.keys().find(|k| k.as_str().starts_with("x-renda-")) {
        return Err(Refusal::unauthenticated(
            "DECLARED_CALLER",
            format!(
                "caller metadata {name} is not accepted: send authorization: Bearer <token from \
                 Auth.Login>"
            ),
            "不接受自行声明的身份，请登录后使用登录凭据",
        ));
    }
    let Some(access) = access else {
        return Err(Refusal::denied(
            "UNDECLARED_RPC",
            format!("{path} is not declared in the access table"),
            "此操作未开放",
        ));
    };
    let roles = match access {
        Access::Public => return Ok(None),
        Access::Roles(roles) => roles,
    };
    let raw = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        Refusal::unauthenticated(
            "NO_TOKEN",
            "authorization metadata is missing: send authorization: Bearer <token from Auth.Login>",
            "缺少登录凭据，请先登录",
        )
    })?;
    if raw.len() > MAX_AUTHORIZATION_LEN {
        return Err(Refusal::unauthenticated(
            "TOKEN_TOO_LONG",
            format!(
                "authorization value is too long: {} bytes, at most {MAX_AUTHORIZATION_LEN}",
                raw.len()
            ),
            "登录凭据过长",
        ));
    }
    let token = raw
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Refusal::unauthenticated(
                "NOT_BEARER",
                "authorization is not a Bearer token (expected: Bearer <token>)",
                "登录凭据格式错误，应为 Bearer 令牌",
            )
        })?;
    let claims = signer
        .verify(token, crate::users::now_ms())
        .map_err(|e| Refusal::unauthenticated("BAD_TOKEN", e.to_string(), e.reason_zh()))?;
    let caller = Caller::from_claims(&claims);
    // The account as this node holds it: disabling takes effect here at once, and at every
    // other node once the user record has arrived there.
    match core.store.record(RecordId(claims.user_id)).await {
        Ok(Some(user)) => {
            if user.deleted || boolean(&user, "disabled") {
                return Err(Refusal::unauthenticated(
                    "USER_DISABLED",
                    "the user is disabled",
                    "该账号已停用",
                ));
            }
            if text(&user, "role") != claims.role.as_str() || user.org != Some(claims.org) {
                return Err(Refusal::unauthenticated(
                    "ACCOUNT_CHANGED",
                    "the account's role or unit changed since log-in: log in again",
                    "账号的角色或单位已变更，请重新登录",
                ));
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "reading the caller's user record failed");
            return Err(Refusal {
                code: Code::Unavailable,
                reason: "the node could not read the caller's account".into(),
                tag: "STORE",
                zh: "服务暂时不可用，请稍后再试".into(),
            });
        }
    }
    let node = core
        .node_org()
        .map_err(|_| Refusal::denied("NODE", "the node's org code is invalid", "节点配置有误"))?;
    if !(caller.org.contains(node) || node.contains(caller.org)) {
        return Err(Refusal::denied(
            "OUTSIDE_SCOPE",
            format!(
                "users of {} are not served by the node of {node}",
                caller.org
            ),
            format!("{} 的用户不能使用 {node} 节点", caller.org),
        ));
    }
    if !roles.allows(caller.role) {
        return Err(Refusal::denied(
            "ROLE_NOT_ALLOWED",
            format!("role {} may not call {path}", caller.role.as_str()),
            format!("“{}”角色无权进行此操作", caller.role.name_zh()),
        ));
    }
    Ok(Some(caller))
}

/// The tower layer of the gate. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    /// The node's store and keys; `None` for a server that serves no person ([`Gate::closed`]).
    node: Option<Arc<(Core, TokenSigner)>>,
}

impl Gate {
    pub fn new(store: renda_store::Store, ctx: crate::ApiContext, signer: TokenSigner) -> Self {
        Gate {
            node: Some(Arc::new((Core { store, ctx }, signer))),
        }
    }

    /// The gate of a server that serves no person's services (a test server, a tool): every
    /// call to one of [`SERVICES`] is refused, so such a server cannot serve one
    /// unchecked by mistake.
    pub fn closed() -> Self {
        Gate { node: None }
    }
}

impl<S> tower::Layer<S> for Gate {
    type Service = GateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GateService {
            inner,
            gate: self.clone(),
        }
    }
}

/// The service of [`Gate`].
#[derive(Clone)]
pub struct GateService<S> {
    inner: S,
    gate: Gate,
}

type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

impl<S> tower::Service<HttpRequest> for GateService<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: HttpRequest) -> Self::Future {
        let path = request.uri().path().to_owned();
        let Some(access) = access(&path) else {
            return Box::pin(self.inner.call(request));
        };
        // The clone that was made ready serves this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        Box::pin(async move {
            let admitted = match &gate.node {
                Some(node) => admit(&node.0, &node.1, request.headers(), &path, access).await,
                None => Err(Refusal::denied(
                    "NO_PEOPLE_HERE",
                    "this server serves no person's calls",
                    "此服务不受理个人调用",
                )),
            };
            let caller = match admitted {
                Ok(caller) => caller,
                Err(refusal) => {
                    tracing::warn!(
                        rpc = %path,
                        code = ?refusal.code,
                        reason = %refusal.reason,
                        "call refused"
                    );
                    return Ok(refusal.status().into_http());
                }
            };
            let Some(caller) = caller else {
                return inner.call(request).await;
            };
            request.extensions_mut().insert(caller.clone());
            let response = crate::core::CALLER
                .scope(caller.clone(), inner.call(request))
                .await?;
            log_refusal(&path, &caller, &response);
            Ok(response)
        })
    }
}

/// Logs a service's refusal of a person's call (authority, reach, or a deputy acting for
/// another), once, with who, what and why.
fn log_refusal(path: &str, caller: &Caller, response: &HttpResponse) {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32);
    if let Some(code @ (Code::PermissionDenied | Code::Unauthenticated)) = code {
        let reason = response
            .headers()
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::warn!(
            rpc = %path,
            user = caller.user,
            org = %caller.org,
            role = caller.role.as_str(),
            code = ?code,
            reason,
            "call refused"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_row_names_a_person_service_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (path, _) in rpcs() {
            assert!(seen.insert(path.clone()), "{path} twice");
            assert!(
                matches!(access(&path), Some(Some(_))),
                "{path} is not under a person service"
            );
        }
        assert_eq!(access("/renda.sync.v1.Replication/Sync"), None);
        assert_eq!(access("/grpc.health.v1.Health/Check"), None);
        assert_eq!(access("/renda.deputy.v1.Deputies/Nope"), Some(None));
    }

    /// The table and the protos agree: every method of a person's service is declared, and
    /// every row names a method that exists.
    #[test]
    fn the_table_declares_every_method_of_the_protos() {
        use prost::Message as _;
        let set = prost_types::FileDescriptorSet::decode(renda_proto::FILE_DESCRIPTOR_SET)
            .expect("the built-in descriptor set decodes");
        let mut methods = std::collections::BTreeSet::new();
        for file in &set.file {
            for service in &file.service {
                let name = format!("{}.{}", file.package(), service.name());
                if !SERVICES.iter().any(|s| s.service == name) {
                    continue;
                }
                for m in &service.method {
                    methods.insert(format!("/{name}/{}", m.name()));
                }
            }
        }
        let declared: std::collections::BTreeSet<String> = rpcs().map(|(p, _)| p).collect();
        let missing: Vec<_> = methods.difference(&declared).collect();
        let stale: Vec<_> = declared.difference(&methods).collect();
        assert!(
            missing.is_empty(),
            "RPCs without a row in their service's ACCESS table: {missing:?}"
        );
        assert!(stale.is_empty(), "rows naming no RPC: {stale:?}");
    }

    #[test]
    fn roles_sets_hold_their_members() {
        assert!(STAFF.allows(UserRole::TownshipClerk));
        assert!(!STAFF.allows(UserRole::ReadOnly));
        assert!(ANYONE.allows(UserRole::HandlingUnit));
        assert!(!OFFICE.allows(UserRole::Deputy));
        assert!(CITY.allows(UserRole::CityOffice) && !CITY.allows(UserRole::CountyOffice));
    }
}
