//! The city gateway: a stateless HTTP server (axum) in front of the city node. It logs people
//! in through the node's `renda.auth.v1` service, checks their tokens itself (same deployment
//! secret, no round trip), and serves the node's `renda.report.v1` reports as JSON, CSV and
//! XLSX, limited to the caller's org subtree, with an OpenAPI description.
//!
//! It holds no data and no business rule: figures, rates and freshness come from the node;
//! several gateways can run side by side. Exports stream: CSV rows go out as they arrive from
//! the node, XLSX is written in rust_xlsxwriter's constant-memory mode to a temporary file and
//! streamed from there.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{Datelike, NaiveDate};
use renda_accounts::{Claims, SigningKey, TokenSigner, UserRole};
use renda_config::{Foreign, Kind, Schema, Secret, invalid};
use renda_domain::report::{self, DEFAULT_FRESHNESS_MINUTES, REPORT_NAMES};
use renda_proto::auth::v1 as auth_pb;
use renda_proto::report::v1 as pb;
use renda_proto::types::v1 as types;
use serde::Deserialize;
use serde_json::json;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// PEM files of the city CA and of the gateway's client certificate and key
/// (`node-agent certs issue-gateway`).
pub use renda_tls::TlsFiles;

// ---- config -------------------------------------------------------------------------------

/// `[gateway]` and `[tls]` of the TOML file, read with the shared loader (`renda_config`):
/// unknown keys are refused, `RENDA_GATEWAY_<KEY>` and `RENDA_TLS_<KEY>` override the file, and
/// the secrets never print.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    /// `https://host:port` (mutual TLS) or `http://…` (plain, only with `insecure = true`).
    pub city_grpc: String,
    pub token_secret: Secret,
    /// The id of `token_secret` (the city node's `auth.token_key_id`).
    pub token_key_id: String,
    /// Earlier keys still accepted (the city node's `auth.previous_token_keys`).
    pub previous_token_keys: Vec<(String, Secret)>,
    pub freshness_limit_minutes: u32,
    pub request_timeout: Duration,
    pub tls: Option<TlsFiles>,
    /// Where to export spans over OTLP/gRPC (`gateway.otlp_endpoint`); none when unset.
    pub otlp_endpoint: Option<String>,
}

/// Every section and key the gateway's configuration accepts.
pub const SCHEMA: Schema = Schema {
    sections: &[
        (
            "gateway",
            &[
                ("listen", Kind::Text),
                ("city_grpc", Kind::Text),
                ("token_secret", Kind::Secret),
                ("token_key_id", Kind::Text),
                ("previous_token_keys", Kind::SecretList),
                ("freshness_limit_hours", Kind::Integer),
                ("freshness_limit_minutes", Kind::Integer),
                ("request_timeout_ms", Kind::Integer),
                ("insecure", Kind::Bool),
                ("otlp_endpoint", Kind::Text),
            ],
        ),
        (
            "tls",
            &[
                ("ca", Kind::Text),
                ("cert", Kind::Text),
                ("key", Kind::Text),
            ],
        ),
    ],
    env_prefix: "RENDA_",
    not_config: &[],
    // The gateway often shares a host (and an environment) with the city node.
    foreign_sections: Foreign::Ignore,
};

/// The shortest token secret the city node accepts.
const MIN_SECRET_CHARS: usize = 32;

impl Config {
    /// Loads `path`, with `RENDA_GATEWAY_<KEY>` / `RENDA_TLS_<KEY>` overrides from `env`.
    pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        Config::from_table(&renda_config::Table::load(path, SCHEMA, env)?)
    }

    pub fn from_toml(text: &str, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        Config::from_table(&renda_config::Table::parse(text, SCHEMA, env)?)
    }

    fn from_table(t: &renda_config::Table) -> Result<Config, ConfigError> {
        const G: &str = "gateway";
        let token_secret = t
            .long_secret(G, "token_secret", MIN_SECRET_CHARS)?
            .ok_or_else(|| {
                invalid(
                    "gateway.token_secret",
                    "is not set: set RENDA_GATEWAY_TOKEN_SECRET (the city node's auth.token_secret)",
                )
            })?;
        let insecure = t.bool(G, "insecure")?.unwrap_or(false);
        let tls = if t.has_section("tls") {
            Some(TlsFiles {
                ca: t.required_text("tls", "ca")?.into(),
                cert: t.required_text("tls", "cert")?.into(),
                key: t.required_text("tls", "key")?.into(),
            })
        } else if insecure {
            None
        } else {
            return Err(invalid(
                "tls",
                "[tls] is required (plain gRPC only with gateway.insecure = true)",
            )
            .into());
        };
        let freshness = t
            .minutes(G, "freshness_limit")?
            .map_or(Ok(DEFAULT_FRESHNESS_MINUTES), u32::try_from)
            .map_err(|_| invalid("gateway.freshness_limit_minutes", "is too large"))?;
        Ok(Config {
            listen: t.required_text(G, "listen")?.to_owned(),
            city_grpc: t.required_text(G, "city_grpc")?.to_owned(),
            token_secret,
            token_key_id: t.text(G, "token_key_id")?.unwrap_or("1").to_owned(),
            previous_token_keys: t.keyed_secrets(G, "previous_token_keys", MIN_SECRET_CHARS)?,
            freshness_limit_minutes: freshness,
            request_timeout: Duration::from_millis(
                t.integer(G, "request_timeout_ms", 1)?.unwrap_or(5_000),
            ),
            tls,
            otlp_endpoint: t.text(G, "otlp_endpoint")?.map(str::to_owned),
        })
    }
}

/// Why a config was refused: the key and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ConfigError(#[from] renda_config::Error);

// ---- application state --------------------------------------------------------------------

/// What every request shares. Cheap to clone.
#[derive(Clone)]
pub struct App {
    channel: Channel,
    signer: TokenSigner,
    freshness_limit_minutes: u32,
    timeout: Duration,
}

impl App {
    /// A lazily connecting channel to the city node (mutual TLS when `[tls]` is set).
    pub fn connect(config: Config) -> Result<App, ConnectError> {
        let uri: tonic::transport::Uri =
            config
                .city_grpc
                .parse()
                .map_err(|_| ConnectError::CityGrpc {
                    uri: config.city_grpc.clone(),
                })?;
        let channel = match &config.tls {
            Some(files) => {
                let material = renda_tls::Material::from_files(files)?;
                renda_tls::channel(&uri, material.client_config()?)?
            }
            None => Channel::builder(uri).connect_lazy(),
        };
        App::new(channel, &config)
    }

    pub fn new(channel: Channel, config: &Config) -> Result<App, ConnectError> {
        Ok(App {
            channel,
            signer: signer(config)?,
            freshness_limit_minutes: config.freshness_limit_minutes,
            timeout: config.request_timeout,
        })
    }
}

/// The city's token keys as the gateway's configuration names them.
fn signer(config: &Config) -> Result<TokenSigner, ConnectError> {
    let key = |id: &str, secret: &Secret| SigningKey::new(id, secret.expose().as_bytes().to_vec());
    let current = key(&config.token_key_id, &config.token_secret)?;
    let previous = config
        .previous_token_keys
        .iter()
        .map(|(id, secret)| key(id, secret))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TokenSigner::with_keys(current, previous)?)
}

/// Why the gateway cannot set up its channel to the city node.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("gateway.city_grpc {uri:?} is not a URI")]
    CityGrpc { uri: String },
    #[error(transparent)]
    Tls(#[from] renda_tls::Error),
    #[error("gateway.token_key_id / previous_token_keys: {0}")]
    Key(#[from] renda_accounts::KeyError),
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY a small response waits for the client's delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/api/v1/login", post(login))
        .route("/api/v1/reports/{name}", get(report))
        .route("/api/v1/openapi.json", get(openapi_json))
        .with_state(Arc::new(app))
}

// ---- errors -------------------------------------------------------------------------------

/// An HTTP error: `{ "error": { "code", "parameter", "message" } }`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    parameter: String,
    message: String,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        parameter: &str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            parameter: parameter.into(),
            message: message.into(),
        }
    }

    fn bad(parameter: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            parameter,
            message,
        )
    }

    fn from_status(s: tonic::Status) -> ApiError {
        use tonic::Code;
        use tonic_types::StatusExt;
        let details = s.get_error_details();
        let parameter = details
            .bad_request()
            .and_then(|b| b.field_violations.first())
            .map(|v| v.field.clone())
            .unwrap_or_default();
        let message = details
            .localized_message()
            .map(|m| m.message.clone())
            .unwrap_or_else(|| s.message().to_owned());
        let (status, code) = match s.code() {
            Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument"),
            Code::FailedPrecondition => (StatusCode::CONFLICT, "failed_precondition"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "forbidden"),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            Code::Unavailable => (StatusCode::BAD_GATEWAY, "city_node_unavailable"),
            _ => (StatusCode::BAD_GATEWAY, "city_node_error"),
        };
        ApiError {
            status,
            code,
            parameter,
            message,
        }
    }

    fn timeout() -> ApiError {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "",
            "市级节点响应超时，请稍后重试",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "parameter": self.parameter, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

async fn timed<T>(
    app: &App,
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(app.timeout, call).await {
        Ok(r) => r.map_err(ApiError::from_status),
        Err(_) => Err(ApiError::timeout()),
    }
}

// ---- login --------------------------------------------------------------------------------

#[derive(Deserialize)]
struct LoginBody {
    login: Option<String>,
    password: Option<String>,
}

async fn login(
    State(app): State<Arc<App>>,
    body: Option<Json<LoginBody>>,
) -> Result<Response, ApiError> {
    let Some(Json(body)) = body else {
        return Err(ApiError::bad(
            "body",
            "请求体应为 JSON：{\"login\": …, \"password\": …}",
        ));
    };
    let login = body.login.unwrap_or_default();
    let password = body.password.unwrap_or_default();
    if login.trim().is_empty() {
        return Err(ApiError::bad("login", "缺少用户名"));
    }
    if password.is_empty() {
        return Err(ApiError::bad("password", "缺少密码"));
    }
    let mut client = auth_pb::auth_client::AuthClient::new(app.channel.clone());
    let reply = timed(
        &app,
        client.login(auth_pb::LoginRequest { login, password }),
    )
    .await?
    .into_inner();
    // The gateway checks every later call's token itself: a token the city signed that the
    // gateway cannot verify means the two were given different token keys, and every report
    // would answer 401. Say so now, to the operator and the person.
    if let Err(e) = app
        .signer
        .verify(&reply.token, chrono::Utc::now().timestamp_millis())
    {
        tracing::error!(
            error = %e,
            "the city node signed a log-in token this gateway cannot verify: the gateway's \
             token keys (RENDA_GATEWAY_TOKEN_SECRET, token_key_id, previous_token_keys) differ \
             from the city node's [auth] keys; set the same secret on both"
        );
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "token_key_mismatch",
            "token",
            "网关与市级节点的令牌密钥不一致，登录凭据无法在网关验证；请运维人员为二者配置相同的令牌密钥",
        ));
    }
    let identity = reply.identity.unwrap_or_default();
    Ok(Json(json!({
        "token": reply.token,
        "user": identity.user,
        "login": identity.login,
        "display_name": identity.display_name,
        "role": role_name(identity.role),
        "org": identity.org_code,
        "expires_unix_ms": identity.expires_unix_ms,
    }))
    .into_response())
}

/// The name a role has in this API's JSON ("city_office"), from its `renda.auth.v1.Role`.
fn role_name(raw: i32) -> &'static str {
    use renda_proto::auth::v1::Role;
    match Role::try_from(raw) {
        Ok(Role::CityOffice) => UserRole::CityOffice.as_str(),
        Ok(Role::CountyOffice) => UserRole::CountyOffice.as_str(),
        Ok(Role::TownshipClerk) => UserRole::TownshipClerk.as_str(),
        Ok(Role::ReadOnly) => UserRole::ReadOnly.as_str(),
        Ok(Role::Deputy) => UserRole::Deputy.as_str(),
        Ok(Role::HandlingUnit) => UserRole::HandlingUnit.as_str(),
        Ok(Role::Unspecified) | Err(_) => "",
    }
}

/// A request to the city carrying the person's own token: the city node checks it again and
/// serves the person, never the gateway.
fn as_person<T>(message: T, token: &str) -> Result<tonic::Request<T>, ApiError> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}").parse().map_err(|_| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authorization",
            "登录凭据格式错误",
        )
    })?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

fn caller(app: &App, headers: &HeaderMap) -> Result<(Claims, String), ApiError> {
    let raw = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authorization",
            "缺少登录凭据(Authorization: Bearer …)",
        )
    })?;
    let token = raw
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authorization",
                "登录凭据格式错误，应为 Bearer 令牌",
            )
        })?;
    let claims = app
        .signer
        .verify(token, chrono::Utc::now().timestamp_millis())
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authorization",
                e.reason_zh(),
            )
        })?;
    Ok((claims, token.to_owned()))
}

// ---- reports ------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Json,
    Csv,
    Xlsx,
}

/// The period of a request as `[from, to)` dates and its label for file names.
fn parse_period(q: &HashMap<String, String>) -> Result<(NaiveDate, NaiveDate, String), ApiError> {
    let period = q.get("period").map(|s| s.trim()).filter(|s| !s.is_empty());
    let from = q.get("from").map(|s| s.trim()).filter(|s| !s.is_empty());
    let to = q.get("to").map(|s| s.trim()).filter(|s| !s.is_empty());
    let day = |name: &str, raw: &str| {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map_err(|_| ApiError::bad(name, format!("{name} 应为 YYYY-MM-DD 格式的日期")))
    };
    match (period, from, to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err(ApiError::bad("period", "period 与 from/to 只能二选一"))
        }
        (Some(p), None, None) => parse_named_period(p),
        (None, Some(f), Some(t)) => {
            let from = day("from", f)?;
            let last = day("to", t)?;
            if last < from {
                return Err(ApiError::bad(
                    "to",
                    format!("结束日期 {last} 早于开始日期 {from}"),
                ));
            }
            let to = last
                .succ_opt()
                .ok_or_else(|| ApiError::bad("to", "日期超出范围"))?;
            Ok((
                from,
                to,
                format!("{}_{}", from.format("%Y%m%d"), last.format("%Y%m%d")),
            ))
        }
        (None, Some(_), None) => Err(ApiError::bad("to", "给出 from 时须同时给出 to")),
        (None, None, Some(_)) => Err(ApiError::bad("from", "给出 to 时须同时给出 from")),
        (None, None, None) => Err(ApiError::bad(
            "period",
            "缺少统计期间：period=2026-Q3|2026-09|2026，或 from=…&to=…",
        )),
    }
}

/// A day of the node's answer as people read it, YYYY-MM-DD (empty if absent).
fn day_text(d: Option<types::Date>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

fn naive(d: Option<types::Date>) -> Option<NaiveDate> {
    let d = d?;
    NaiveDate::from_ymd_opt(
        d.year,
        u32::try_from(d.month).ok()?,
        u32::try_from(d.day).ok()?,
    )
}

/// The report's period as people read it, the same in JSON and in exports: its first and its
/// last day, both inclusive, as the `from` and `to` parameters take them (the node answers
/// `[from, to)`, the day after the last).
fn period_days(r: &pb::Report) -> (String, String) {
    match (naive(r.from), naive(r.to)) {
        (Some(from), Some(to)) => (from.to_string(), report::last_day(to).to_string()),
        _ => (day_text(r.from), day_text(r.to)),
    }
}

/// An export's first line: the report, the unit and the period (`2022-01-01至2022-12-31`).
fn export_title(r: &pb::Report) -> String {
    let (first, last) = period_days(r);
    format!("{} {} {first}至{last}", r.title_zh, r.org_name)
}

fn parse_named_period(p: &str) -> Result<(NaiveDate, NaiveDate, String), ApiError> {
    let bad = || {
        ApiError::bad(
            "period",
            format!(
                "无法识别的统计期间 {:?}，应为 2026-Q3、2026-09 或 2026",
                p.chars().take(20).collect::<String>()
            ),
        )
    };
    let year = |s: &str| s.parse::<i32>().ok().filter(|y| (1949..=9999).contains(y));
    let span = |y: i32, m: u32, months: u32| {
        let from = NaiveDate::from_ymd_opt(y, m, 1)?;
        let to = from.checked_add_months(chrono::Months::new(months))?;
        Some((from, to))
    };
    let (from, to, label) = if let Some((y, q)) = p.split_once("-Q").or_else(|| p.split_once("-q"))
    {
        let y = year(y).ok_or_else(bad)?;
        let q: u32 = q
            .parse()
            .ok()
            .filter(|q| (1..=4).contains(q))
            .ok_or_else(bad)?;
        let (f, t) = span(y, (q - 1) * 3 + 1, 3).ok_or_else(bad)?;
        (f, t, format!("{y}Q{q}"))
    } else if let Some((y, m)) = p.split_once('-') {
        let y = year(y).ok_or_else(bad)?;
        let m: u32 = m
            .parse()
            .ok()
            .filter(|m| (1..=12).contains(m))
            .ok_or_else(bad)?;
        let (f, t) = span(y, m, 1).ok_or_else(bad)?;
        (f, t, format!("{y}{m:02}"))
    } else {
        let y = year(p).ok_or_else(bad)?;
        let (f, t) = span(y, 1, 12).ok_or_else(bad)?;
        (f, t, format!("{y}"))
    };
    debug_assert!(from.year() <= to.year());
    Ok((from, to, label))
}

async fn report(
    State(app): State<Arc<App>>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (user, token) = caller(&app, &headers)?;
    let (base, format) = if let Some(b) = name.strip_suffix(".csv") {
        (b, Format::Csv)
    } else if let Some(b) = name.strip_suffix(".xlsx") {
        (b, Format::Xlsx)
    } else {
        (name.as_str(), Format::Json)
    };
    if !REPORT_NAMES.contains(&base) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_report",
            "name",
            format!(
                "未知的报表 {:?}，可选：{}",
                base.chars().take(40).collect::<String>(),
                REPORT_NAMES.join("、")
            ),
        ));
    }
    for key in q.keys() {
        if !["org", "period", "from", "to"].contains(&key.as_str()) {
            return Err(ApiError::bad(key, format!("未知的参数 {key}")));
        }
    }
    let org = q
        .get("org")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| user.org.to_string());
    let org_code =
        renda_org::OrgCode::parse(&org).map_err(|e| ApiError::bad("org", e.reason_zh()))?;
    if !user.org.contains(org_code) {
        tracing::warn!(user = user.user, user_org = %user.org, org = %org_code, "report refused outside the user's subtree");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "org",
            format!(
                "无权查看 {org_code} 的数据：只能查看本单位({})及下级单位",
                user.org
            ),
        ));
    }
    let (from, to, label) = parse_period(&q)?;
    let request = pb::ReportRequest {
        name: base.to_owned(),
        org_code: org_code.to_string(),
        from: Some(from.into()),
        to: Some(to.into()),
        freshness_limit_hours: 0,
        freshness_limit_minutes: app.freshness_limit_minutes,
    };
    let mut client = pb::reports_client::ReportsClient::new(app.channel.clone())
        .max_decoding_message_size(64 * 1024 * 1024);
    let report = timed(&app, client.get_report(as_person(request.clone(), &token)?))
        .await?
        .into_inner();
    if format == Format::Json {
        let response = Json(ReportJson(&report)).into_response();
        // A large report is hundreds of thousands of small allocations: free them after the
        // answer is on its way, not before.
        tokio::task::spawn_blocking(move || drop(report));
        return Ok(response);
    }
    tracing::info!(user = user.user, org = %user.org, role = user.role.as_str(), report = base, report_org = %org_code, period = %label, format = ?format, "export");
    let file_name = format!(
        "{}_{}_{}.{}",
        report::title_zh(base).unwrap_or(base),
        org_code,
        label,
        if format == Format::Csv { "csv" } else { "xlsx" }
    );
    let rows = timed(&app, client.export_rows(as_person(request, &token)?))
        .await?
        .into_inner();
    let timeout = app.timeout;
    let body = match format {
        Format::Csv => csv_body(report, rows, timeout),
        _ => xlsx_body(report, rows, timeout).await?,
    };
    let mut response = Response::new(body);
    let content_type = if format == Format::Csv {
        "text/csv; charset=utf-8"
    } else {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition = format!(
        "attachment; filename=\"export.{}\"; filename*=UTF-8''{}",
        if format == Format::Csv { "csv" } else { "xlsx" },
        percent_encode(&file_name)
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn cell_text(c: &pb::Cell) -> String {
    match &c.kind {
        Some(pb::cell::Kind::Int(n)) => n.to_string(),
        Some(pb::cell::Kind::Real(r)) => r.to_string(),
        Some(pb::cell::Kind::Text(s)) => s.clone(),
        None => String::new(),
    }
}

/// The JSON form of a report: each table as a list of objects keyed by column. It is written
/// straight from the protobuf message (no `serde_json::Value` in between): a ranking of tens
/// of thousands of deputies would otherwise cost an allocation per key and per value.
pub struct ReportJson<'a>(pub &'a pb::Report);

/// The parts of a [`ReportJson`], each serialised as it is read.
struct Cell<'a>(&'a pb::Cell);
struct Table<'a>(&'a pb::Table);
struct Rows<'a>(&'a pb::Table);
struct Row<'a>(&'a [pb::Column], &'a pb::Row);
struct Tables<'a>(&'a [pb::Table]);
struct Definition<'a>(&'a pb::RateDefinition);
struct Freshness<'a>(&'a pb::Report);
struct Township<'a>(&'a pb::TownshipFreshness);
struct ColumnJson<'a>(&'a pb::Column);

use serde::ser::{Serialize, SerializeMap, Serializer};

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0.kind {
            Some(pb::cell::Kind::Int(n)) => s.serialize_i64(*n),
            Some(pb::cell::Kind::Real(r)) => s.serialize_f64(*r),
            Some(pb::cell::Kind::Text(t)) => s.serialize_str(t),
            None => s.serialize_unit(),
        }
    }
}

impl Serialize for ColumnJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("key", &self.0.key)?;
        map.serialize_entry("title", &self.0.title_zh)?;
        map.end()
    }
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            self.0
                .iter()
                .zip(&self.1.cells)
                .map(|(c, v)| (&c.key, Cell(v))),
        )
    }
}

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let columns = &self.0.columns;
        s.collect_seq(self.0.rows.iter().map(|row| Row(columns, row)))
    }
}

struct Columns<'a>(&'a [pb::Column]);

impl Serialize for Columns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ColumnJson))
    }
}

impl Serialize for Table<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("title", &self.0.title_zh)?;
        map.serialize_entry("columns", &Columns(&self.0.columns))?;
        map.serialize_entry("rows", &Rows(self.0))?;
        map.serialize_entry("truncated", &self.0.truncated)?;
        map.end()
    }
}

impl Serialize for Tables<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|t| (&t.key, Table(t))))
    }
}

impl Serialize for Definition<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("key", &d.key)?;
        map.serialize_entry("name", &d.name_zh)?;
        map.serialize_entry("definition", &d.definition_zh)?;
        map.serialize_entry("definition_en", &d.definition_en)?;
        map.end()
    }
}

impl Serialize for Township<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("org", &f.org_code)?;
        map.serialize_entry("name", &f.name)?;
        map.serialize_entry("last_sync_unix_ms", &f.last_sync_unix_ms)?;
        map.serialize_entry("pending_ops", &f.pending_ops)?;
        map.serialize_entry("stale", &f.stale)?;
        map.serialize_entry("source", &f.source)?;
        map.end()
    }
}

struct Townships<'a>(&'a [pb::TownshipFreshness]);

impl Serialize for Townships<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Township))
    }
}

struct Definitions<'a>(&'a [pb::RateDefinition]);

impl Serialize for Definitions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Definition))
    }
}

impl Serialize for Freshness<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("stale", &r.stale)?;
        map.serialize_entry("note", &r.stale_note_zh)?;
        map.serialize_entry("townships", &Townships(&r.freshness))?;
        map.end()
    }
}

impl Serialize for ReportJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut map = s.serialize_map(Some(10))?;
        map.serialize_entry("report", &r.name)?;
        map.serialize_entry("title", &r.title_zh)?;
        map.serialize_entry("org", &r.org_code)?;
        map.serialize_entry("org_name", &r.org_name)?;
        let (first, last) = period_days(r);
        map.serialize_entry("from", &first)?;
        map.serialize_entry("to", &last)?;
        map.serialize_entry("tables", &Tables(&r.tables))?;
        map.serialize_entry("definitions", &Definitions(&r.definitions))?;
        map.serialize_entry("freshness", &Freshness(r))?;
        map.serialize_entry("generated_unix_ms", &r.generated_unix_ms)?;
        map.end()
    }
}

/// The JSON form as a value (tests and tools; the gateway writes [`ReportJson`] directly).
pub fn report_json(r: &pb::Report) -> serde_json::Value {
    serde_json::to_value(ReportJson(r)).unwrap_or(serde_json::Value::Null)
}

fn csv_line(cells: impl IntoIterator<Item = String>) -> String {
    let mut line = cells
        .into_iter()
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// The summary tables first (all but the detail list), then the detail rows as they stream in.
fn csv_body(
    report: pb::Report,
    mut rows: tonic::Streaming<pb::RowBatch>,
    timeout: Duration,
) -> Body {
    let mut head = String::from("\u{feff}");
    head.push_str(&csv_line([export_title(&report)]));
    if report.stale {
        head.push_str(&csv_line([report.stale_note_zh.clone()]));
    }
    let n = report.tables.len();
    for t in report.tables.iter().take(n.saturating_sub(1)) {
        head.push_str(&csv_line([t.title_zh.clone()]));
        head.push_str(&csv_line(t.columns.iter().map(|c| c.title_zh.clone())));
        for r in &t.rows {
            head.push_str(&csv_line(r.cells.iter().map(cell_text)));
        }
        head.push_str("\r\n");
    }
    if let Some(t) = report.tables.last() {
        head.push_str(&csv_line([t.title_zh.clone()]));
    }
    let stream = async_stream(head, move |tx| async move {
        loop {
            let next = match tokio::time::timeout(timeout, rows.next()).await {
                Ok(n) => n,
                Err(_) => {
                    tracing::warn!("export stream from the city node timed out");
                    return;
                }
            };
            let Some(batch) = next else { return };
            let Ok(batch) = batch else {
                tracing::warn!("export stream from the city node failed");
                return;
            };
            let mut out = String::new();
            if !batch.columns.is_empty() {
                out.push_str(&csv_line(batch.columns.iter().map(|c| c.title_zh.clone())));
            }
            for r in &batch.rows {
                out.push_str(&csv_line(r.cells.iter().map(cell_text)));
            }
            if tx.send(Ok(out.into_bytes())).await.is_err() {
                return;
            }
        }
    });
    Body::from_stream(stream)
}

type Chunk = Result<Vec<u8>, std::io::Error>;

/// A body fed by a task: `first` at once, then what `produce` sends.
fn async_stream<F, Fut>(first: String, produce: F) -> tokio_stream::wrappers::ReceiverStream<Chunk>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Chunk>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(4);
    let first_tx = tx.clone();
    let task = produce(tx);
    tokio::spawn(async move {
        if first_tx.send(Ok(first.into_bytes())).await.is_ok() {
            drop(first_tx);
            task.await;
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Writes the workbook in constant-memory mode to a temporary file (rows are flushed as they
/// are written), then streams the file.
async fn xlsx_body(
    report: pb::Report,
    mut rows: tonic::Streaming<pb::RowBatch>,
    timeout: Duration,
) -> Result<Body, ApiError> {
    use rust_xlsxwriter::{Format as XFormat, Workbook};
    let internal = |e: String| {
        tracing::error!(error = %e, "xlsx export failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "",
            "导出失败",
        )
    };
    let file = tempfile::NamedTempFile::new().map_err(|e| internal(e.to_string()))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<pb::RowBatch>(4);
    let path = file.path().to_owned();
    let writer = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut workbook = Workbook::new();
        let bold = XFormat::new().set_bold();
        let e = |e: rust_xlsxwriter::XlsxError| e.to_string();
        {
            let sheet = workbook.add_worksheet_with_constant_memory().map_err(e)?;
            sheet.set_name("报表").map_err(e)?;
            let mut row: u32 = 0;
            sheet
                .write_string_with_format(row, 0, export_title(&report), &bold)
                .map_err(e)?;
            row += 1;
            if report.stale {
                sheet
                    .write_string(row, 0, &report.stale_note_zh)
                    .map_err(e)?;
                row += 1;
            }
            let write_cells = |sheet: &mut rust_xlsxwriter::Worksheet,
                               row: u32,
                               cells: &[pb::Cell]|
             -> Result<(), String> {
                for (i, c) in cells.iter().enumerate() {
                    let col = u16::try_from(i).map_err(|_| "too many columns".to_owned())?;
                    match &c.kind {
                        Some(pb::cell::Kind::Int(n)) => {
                            sheet.write_number(row, col, *n as f64).map(|_| ())
                        }
                        Some(pb::cell::Kind::Real(r)) => {
                            sheet.write_number(row, col, *r).map(|_| ())
                        }
                        Some(pb::cell::Kind::Text(s)) => {
                            sheet.write_string(row, col, s).map(|_| ())
                        }
                        None => Ok(()),
                    }
                    .map_err(|e| e.to_string())?;
                }
                Ok(())
            };
            let n = report.tables.len();
            for t in report.tables.iter().take(n.saturating_sub(1)) {
                row += 1;
                sheet
                    .write_string_with_format(row, 0, &t.title_zh, &bold)
                    .map_err(e)?;
                row += 1;
                for (i, c) in t.columns.iter().enumerate() {
                    sheet
                        .write_string_with_format(row, i as u16, &c.title_zh, &bold)
                        .map_err(e)?;
                }
                for r in &t.rows {
                    row += 1;
                    write_cells(sheet, row, &r.cells)?;
                }
                row += 1;
            }
            if let Some(t) = report.tables.last() {
                row += 1;
                sheet
                    .write_string_with_format(row, 0, &t.title_zh, &bold)
                    .map_err(e)?;
            }
            while let Some(batch) = rx.blocking_recv() {
                if !batch.columns.is_empty() {
                    row += 1;
                    for (i, c) in batch.columns.iter().enumerate() {
                        sheet
                            .write_string_with_format(row, i as u16, &c.title_zh, &bold)
                            .map_err(e)?;
                    }
                }
                for r in &batch.rows {
                    row += 1;
                    write_cells(sheet, row, &r.cells)?;
                }
            }
        }
        let defs = workbook.add_worksheet();
        defs.set_name("指标定义").map_err(e)?;
        defs.write_string_with_format(0, 0, "指标", &bold)
            .map_err(e)?;
        defs.write_string_with_format(0, 1, "定义", &bold)
            .map_err(e)?;
        for (i, d) in report.definitions.iter().enumerate() {
            defs.write_string(i as u32 + 1, 0, &d.name_zh).map_err(e)?;
            defs.write_string(i as u32 + 1, 1, &d.definition_zh)
                .map_err(e)?;
        }
        let mut r = report.definitions.len() as u32 + 2;
        defs.write_string_with_format(r, 0, "数据新鲜度", &bold)
            .map_err(e)?;
        for f in &report.freshness {
            r += 1;
            defs.write_string(r, 0, format!("{} {}", f.org_code, f.name))
                .map_err(e)?;
            let when = chrono::DateTime::from_timestamp_millis(f.last_sync_unix_ms)
                .filter(|_| f.last_sync_unix_ms > 0)
                .map(|t| {
                    (t + chrono::Duration::hours(8))
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                })
                .unwrap_or_else(|| "从未同步".into());
            let note = format!(
                "最近同步 {when}，待同步操作 {}{}",
                f.pending_ops,
                if f.stale { "（已超过时限）" } else { "" }
            );
            defs.write_string(r, 1, note).map_err(e)?;
        }
        workbook.save(&path).map_err(e)?;
        Ok(())
    });
    loop {
        let next = tokio::time::timeout(timeout, rows.next())
            .await
            .map_err(|_| ApiError::timeout())?;
        let Some(batch) = next else { break };
        let batch = batch.map_err(ApiError::from_status)?;
        if tx.send(batch).await.is_err() {
            break;
        }
    }
    drop(tx);
    writer
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(internal)?;
    let handle = tokio::fs::File::open(file.path())
        .await
        .map_err(|e| internal(e.to_string()))?;
    // The open handle keeps the data readable after the temporary path is removed.
    drop(file);
    Ok(Body::from_stream(tokio_util_free::reader_stream(handle)))
}

mod tokio_util_free {
    //! A file as a stream of chunks, without pulling in tokio-util for one function.
    use tokio::io::AsyncReadExt;

    pub fn reader_stream(
        mut file: tokio::fs::File,
    ) -> tokio_stream::wrappers::ReceiverStream<Result<Vec<u8>, std::io::Error>> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let mut buf = vec![0u8; 64 * 1024];
                match file.read(&mut buf).await {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(buf)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

// ---- OpenAPI ------------------------------------------------------------------------------

/// Every route with its parameters, as the router serves them; the OpenAPI test checks that
/// the description covers each.
pub const ROUTES: &[(&str, &str, &[&str])] = &[
    ("post", "/api/v1/login", &[]),
    (
        "get",
        "/api/v1/reports/{name}",
        &["name", "org", "period", "from", "to", "Authorization"],
    ),
    ("get", "/api/v1/openapi.json", &[]),
];

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi())
}

/// The OpenAPI 3 description of the gateway.
pub fn openapi() -> serde_json::Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let err =
        |d: &str| json!({"description": d, "content": {"application/json": {"schema": error}}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "renda-mesh gateway", "version": "1", "description": "人大代表履职上报报表与导出"},
        "paths": {
            "/api/v1/login": {"post": {
                "summary": "Log in; returns a bearer token",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["login", "password"],
                    "properties": {"login": {"type": "string"}, "password": {"type": "string", "format": "password"}}}}}},
                "responses": {"200": {"description": "token and identity", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "token": {"type": "string"}, "user": {"type": "integer"}, "role": {"type": "string", "enum": ["city_office", "county_office", "township_clerk", "read_only"]},
                    "org": {"type": "string"}, "expires_unix_ms": {"type": "integer"}}}}}},
                    "400": err("missing login or password"), "401": err("wrong login or password"), "504": err("city node timeout")}
            }},
            "/api/v1/reports/{name}": {"get": {
                "summary": "A report as JSON, or as CSV/XLSX export when name ends in .csv or .xlsx",
                "description": "JSON holds the first 500 rows of the report's detail list (its last table), with `truncated: true` when the list goes on; an export holds every row.",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^(suggestions|projects|deputies|stations|opinions)(\\.csv|\\.xlsx)?$"}},
                    {"name": "org", "in": "query", "required": false, "description": "行政区划代码; defaults to the user's org", "schema": {"type": "string"}},
                    {"name": "period", "in": "query", "required": false, "description": "2026-Q3, 2026-09 or 2026 (or from and to)", "schema": {"type": "string"}},
                    {"name": "from", "in": "query", "required": false, "description": "first day, YYYY-MM-DD", "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "required": false, "description": "last day (inclusive), YYYY-MM-DD", "schema": {"type": "string", "format": "date"}},
                    {"name": "Authorization", "in": "header", "required": true, "description": "Bearer <token>", "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "the report; its `from` and `to` are the period's first and last day, both inclusive, as the query parameters take them (period=2022 answers from 2022-01-01 to 2022-12-31), and an export's title says the same (2022-01-01至2022-12-31)", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "from": {"type": "string", "format": "date", "description": "first day of the period (inclusive)"},
                            "to": {"type": "string", "format": "date", "description": "last day of the period (inclusive)"}}}},
                        "text/csv": {"schema": {"type": "string"}},
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}}}},
                    "400": err("bad parameter (unknown org, periods the wrong way round, malformed date)"),
                    "401": err("missing, malformed or expired token"),
                    "403": err("org outside the user's subtree"),
                    "404": err("unknown report"),
                    "504": err("city node timeout")}
            }},
            "/api/v1/openapi.json": {"get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI 3"}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "code": {"type": "string"}, "parameter": {"type": "string"}, "message": {"type": "string"}}}}}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[gateway]\nlisten = \"127.0.0.1:0\"\ncity_grpc = \"http://127.0.0.1:1\"\n\
                        insecure = true\n";
    const SECRET: &str = "a-token-secret-of-at-least-32-characters";

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn error(text: &str, env: &HashMap<String, String>) -> String {
        match Config::from_toml(text, env) {
            Ok(c) => panic!("expected a config error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_token_secret_may_come_from_the_environment_alone() {
        let config = Config::from_toml(BASE, &env(&[("RENDA_GATEWAY_TOKEN_SECRET", SECRET)]))
            .expect("a secret from the environment is enough");
        assert_eq!(config.token_secret.expose(), SECRET);
        assert!(
            error(BASE, &env(&[])).contains("RENDA_GATEWAY_TOKEN_SECRET"),
            "{}",
            error(BASE, &env(&[]))
        );
    }

    #[test]
    fn unknown_keys_are_refused_and_secrets_hidden() {
        let typo = format!("{BASE}token_secrets = \"{SECRET}\"\n");
        assert!(error(&typo, &env(&[])).contains("token_secrets"));
        let config = Config::from_toml(
            &format!(
                "{BASE}token_secret = \"{SECRET}\"\nprevious_token_keys = [\"old:{SECRET}\"]\n"
            ),
            &env(&[]),
        )
        .expect("a valid config");
        let shown = format!("{config:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("(\"old\", <secret>)"), "{shown}");
        // A node's variables on the same host are not the gateway's concern; a typo in the
        // gateway's own section is refused.
        let shared = env(&[
            ("RENDA_GATEWAY_TOKEN_SECRET", SECRET),
            ("RENDA_NODE_ORG_CODE", "370200"),
        ]);
        assert!(Config::from_toml(BASE, &shared).is_ok());
        let typo = env(&[("RENDA_GATEWAY_TOKEN_SECRETS", SECRET)]);
        assert!(
            error(BASE, &typo).contains("gateway.token_secrets"),
            "{}",
            error(BASE, &typo)
        );
    }
}
