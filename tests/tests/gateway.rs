//! The city gateway against a real mesh: city, county and two townships as node processes on
//! loopback with mutual TLS, the gateway in this process dialling the city node with its own
//! certificate from the city CA (`renda://gateway/<city>`). The data set is built through the
//! gRPC API at the townships, with known answers; the tests check the report figures, a
//! township's late sync (figures and freshness move), role limits and bad parameters.
//!
//! The binary has its own `main` (`harness = false`, see `renda_e2e::harness`), like
//! `processes.rs`: started with `E2E_NODE_CONFIG` set it is a node process, otherwise it runs
//! its scenarios as libtest would, with the same flags.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use node_agent::demo::Person;
use renda_accounts::{Claims, UserRole};
use renda_e2e::cluster::{Cluster, TOKEN_KEY_ID, TOKEN_SECRET};
use renda_e2e::orgs::{CITY, COUNTY, TOWNSHIP_A, TOWNSHIP_B, org};
use renda_e2e::wait::wait;
use renda_proto::auth::v1 as auth;
use renda_proto::opinion::v1 as opinion;
use renda_replica::OrgCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "password-123";

// ---- the gateway and HTTP -----------------------------------------------------------------

/// Starts a gateway in this process over mutual TLS to the city node; returns its address.
async fn start_gateway(cluster: &Cluster) -> anyhow::Result<SocketAddr> {
    start_gateway_with_secret(cluster, TOKEN_SECRET).await
}

/// A gateway whose token secret is `secret` (the deployment's, or by mistake another one).
async fn start_gateway_with_secret(cluster: &Cluster, secret: &str) -> anyhow::Result<SocketAddr> {
    let tls = cluster.gateway_tls()?;
    let city = cluster.grpc_addr(org(CITY))?;
    let config = gateway::Config::from_toml(
        &format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\ncity_grpc = \"https://localhost:{port}\"\n\
             token_secret = \"{secret}\"\ntoken_key_id = \"{TOKEN_KEY_ID}\"\n\
             request_timeout_ms = 10000\n\n\
             [tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n",
            port = city.port(),
            ca = tls.ca.display(),
            cert = tls.cert.display(),
            key = tls.key.display(),
        ),
        &Default::default(),
    )?;
    let app = gateway::App::connect(config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(gateway::run(listener, app, std::future::pending()));
    Ok(addr)
}

/// One HTTP/1.1 request; returns the status and the (de-chunked) body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of the response head")?;
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).context("no status")?.parse()?;
    let mut body = out[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Ok((status, body))
}

fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..i]).trim(), 16)?;
        if n == 0 {
            break;
        }
        let chunk = rest.get(i + 2..i + 2 + n).context("short chunk")?;
        out.extend_from_slice(chunk);
        rest = rest.get(i + 4 + n..).unwrap_or_default();
    }
    Ok(out)
}

async fn get_json(addr: SocketAddr, path: &str, token: &str) -> anyhow::Result<(u16, Value)> {
    let (status, body) = http(addr, "GET", path, Some(token), "").await?;
    let value = serde_json::from_slice(&body)
        .with_context(|| format!("{path}: {}", String::from_utf8_lossy(&body)))?;
    Ok((status, value))
}

async fn login(addr: SocketAddr, user: &str) -> anyhow::Result<String> {
    let (status, body) = http(
        addr,
        "POST",
        "/api/v1/login",
        None,
        &format!("{{\"login\":\"{user}\",\"password\":\"{PASSWORD}\"}}"),
    )
    .await?;
    ensure!(
        status == 200,
        "login {user}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let value: Value = serde_json::from_slice(&body)?;
    Ok(value["token"].as_str().context("no token")?.to_owned())
}

// ---- the data set -------------------------------------------------------------------------

/// Creates the users at the city through `CreateUser`, with an administrator token signed by
/// the deployment secret (what an operator's bootstrap does).
async fn create_users(cluster: &Cluster) -> anyhow::Result<()> {
    let admin = renda_e2e::cluster::signer()?.issue(&Claims {
        user_id: uuid::Uuid::new_v4(),
        user: 1,
        org: renda_domain::org::OrgCode::parse("370200")?,
        role: UserRole::CityOffice,
        subject: None,
        expires_ms: chrono::Utc::now().timestamp_millis() + 3_600_000,
    });
    let mut client = auth::auth_client::AuthClient::with_interceptor(
        cluster.channel(org(CITY))?,
        Person::with_token(&admin)?,
    );
    for (login, role, at) in [
        ("city", auth::Role::CityOffice, "370200"),
        ("shinan", auth::Role::CountyOffice, "370202"),
        ("laoshan", auth::Role::CountyOffice, "370212"),
    ] {
        client
            .create_user(auth::CreateUserRequest {
                login: login.into(),
                display_name: login.into(),
                role: role.into(),
                org_code: at.into(),
                password: PASSWORD.into(),
                subject_id: String::new(),
            })
            .await
            .with_context(|| format!("creating user {login}"))?;
    }
    Ok(())
}

type Opinions = opinion::opinions_client::OpinionsClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Person>,
>;

fn opinions(cluster: &Cluster, at: OrgCode) -> anyhow::Result<Opinions> {
    Ok(opinion::opinions_client::OpinionsClient::with_interceptor(
        cluster.person_channel(at)?,
        renda_e2e::cluster::person(UserRole::TownshipClerk, at)?,
    ))
}

/// Raises an opinion at the township, routes it, and resolves it when asked.
async fn opinion(
    client: &mut Opinions,
    route: opinion::OpinionRoute,
    resolve: bool,
) -> anyhow::Result<()> {
    let raised = client
        .raise_opinion(opinion::RaiseOpinionRequest {
            content: "小区路灯不亮了".into(),
            source: opinion::OpinionSource::Station.into(),
            station_id: String::new(),
            raised_at_ms: 0,
        })
        .await
        .context("raising an opinion")?
        .into_inner();
    client
        .route_opinion(opinion::RouteOpinionRequest {
            opinion_id: raised.id.clone(),
            route: route.into(),
            to: String::new(),
        })
        .await
        .context("routing an opinion")?;
    if resolve {
        client
            .resolve_opinion(opinion::ResolveOpinionRequest {
                opinion_id: raised.id,
                note: "已修复".into(),
            })
            .await
            .context("resolving an opinion")?;
    }
    Ok(())
}

/// `from=…&to=…` for the days around today (UTC+8), so the opinions raised now are in it.
fn around_today() -> String {
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let from = today - chrono::Duration::days(2);
    let to = today + chrono::Duration::days(2);
    format!("from={from}&to={to}")
}

fn row<'a>(report: &'a Value, org_code: &str) -> &'a Value {
    report["tables"]["by_org"]["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["org_code"] == org_code))
        .unwrap_or(&Value::Null)
}

fn freshness<'a>(report: &'a Value, org_code: &str) -> &'a Value {
    report["freshness"]["townships"]
        .as_array()
        .and_then(|t| t.iter().find(|f| f["org"] == org_code))
        .unwrap_or(&Value::Null)
}

/// The figures of one drill-down row: collected, resolved, open and the four routes.
fn figures(report: &Value, org_code: &str) -> [i64; 7] {
    let r = row(report, org_code);
    [
        "collected",
        "resolved",
        "open",
        "answered_on_site",
        "transferred_to_township",
        "assigned_to_department",
        "escalated_upward",
    ]
    .map(|k| r[k].as_i64().unwrap_or(-1))
}

// ---- scenarios ----------------------------------------------------------------------------

/// Figures at the city match the data set built at the townships; a township's late sync
/// changes the figures and its freshness; a county user cannot read another county; bad
/// parameters get a 4xx naming the parameter.
/// A gateway given another token secret than the city's: log-in says so (to the person in
/// Chinese, to the operator in the log) instead of handing out a token every report refuses.
async fn a_gateway_with_another_token_secret_says_so_at_log_in() -> anyhow::Result<()> {
    let city = org(CITY);
    let cluster = Cluster::start(&[city]).await?;
    create_users(&cluster).await?;
    let wrong =
        start_gateway_with_secret(&cluster, "another-secret-of-at-least-32-bytes!!").await?;
    let body = format!("{{\"login\":\"city\",\"password\":\"{PASSWORD}\"}}");
    let (status, answer) = http(wrong, "POST", "/api/v1/login", None, &body).await?;
    let answer: Value = serde_json::from_slice(&answer)?;
    ensure!(
        status == 502,
        "log-in through a mismatched gateway: {status} {answer}"
    );
    ensure!(
        answer.to_string().contains("token_key_mismatch")
            && answer.to_string().contains("令牌密钥不一致"),
        "{answer}"
    );
    // The same log-in through a gateway with the city's secret works.
    let right = start_gateway(&cluster).await?;
    login(right, "city").await?;
    Ok(())
}

async fn reports_over_a_real_mesh() -> anyhow::Result<()> {
    let (city, county, a, b) = (org(CITY), org(COUNTY), org(TOWNSHIP_A), org(TOWNSHIP_B));
    let cluster = Cluster::start(&[city, county, a, b]).await?;
    create_users(&cluster).await?;
    let g = start_gateway(&cluster).await?;

    // Township A: three opinions, two resolved; township B: two, one resolved.
    use opinion::OpinionRoute as Route;
    let mut at_a = opinions(&cluster, a)?;
    for (route, resolve) in [
        (Route::AnsweredOnSite, true),
        (Route::AssignedToDepartment, true),
        (Route::TransferredToTownship, false),
    ] {
        opinion(&mut at_a, route, resolve).await?;
    }
    let mut at_b = opinions(&cluster, b)?;
    for (route, resolve) in [
        (Route::AnsweredOnSite, true),
        (Route::TransferredToTownship, false),
    ] {
        opinion(&mut at_b, route, resolve).await?;
    }
    cluster.converged(&[a, county, city], a, 3).await?;
    cluster.converged(&[b, county, city], b, 2).await?;

    let city_user = login(g, "city").await?;
    let period = around_today();
    let path = format!("/api/v1/reports/opinions?org=370202&{period}");
    let (status, report) = get_json(g, &path, &city_user).await?;
    ensure!(status == 200, "{path}: {status} {report}");
    let got_a = figures(&report, "370202001");
    let got_b = figures(&report, "370202002");
    ensure!(
        got_a == [3, 2, 1, 1, 1, 1, 0],
        "township A figures {got_a:?}: {report}"
    );
    ensure!(
        got_b == [2, 1, 1, 1, 1, 0, 0],
        "township B figures {got_b:?}: {report}"
    );
    let (status, top) = get_json(
        g,
        &format!("/api/v1/reports/opinions?org=370200&{period}"),
        &city_user,
    )
    .await?;
    ensure!(status == 200, "{top}");
    let county_row = figures(&top, "370202");
    ensure!(
        county_row[..3] == [5, 3, 2],
        "county row {county_row:?}: {top}"
    );
    // B's data can reach the city by the county's eager relay before the county's own next
    // session reports when B last synced with it: the freshness follows within a sync round.
    let fresh_b = wait("the city to learn when township B last synced")
        .every(Duration::from_millis(500))
        .until(async || {
            let (_, r) = get_json(g, &path, &city_user).await?;
            let fresh = freshness(&r, "370202002").clone();
            ensure!(fresh["last_sync_unix_ms"].as_i64().unwrap_or(0) > 0, "{r}");
            Ok(fresh)
        })
        .await?;
    ensure!(
        fresh_b["stale"] == false,
        "township B should be fresh after converging: {fresh_b}"
    );

    // Late sync: B is cut off, writes two more opinions (one resolved), then comes back.
    // The city does not show them while B is cut, even once B has tried both its upstreams
    // since it wrote them.
    cluster.isolate(b);
    for (route, resolve) in [
        (Route::AnsweredOnSite, true),
        (Route::TransferredToTownship, false),
    ] {
        opinion(&mut at_b, route, resolve).await?;
    }
    let written = chrono::Utc::now().timestamp_millis();
    cluster.failed_attempts_since(b, written).await?;
    let (_, cut) = get_json(g, &path, &city_user).await?;
    ensure!(
        figures(&cut, "370202002") == got_b,
        "the city shows B's offline writes before B synced: {cut}"
    );
    let healed = chrono::Utc::now().timestamp_millis();
    cluster.reconnect(b);
    cluster.converged(&[b, county, city], b, 4).await?;
    // B's data reaches the city after the link healed, and the county reports so at its own
    // next sync.
    let after = wait(format_args!("township B's freshness to move past {healed}"))
        .every(Duration::from_millis(500))
        .until(async || {
            let (_, r) = get_json(g, &path, &city_user).await?;
            let at = freshness(&r, "370202002")["last_sync_unix_ms"]
                .as_i64()
                .unwrap_or(0);
            ensure!(at > healed, "it is at {at}: {r}");
            Ok(r)
        })
        .await?;
    let late_b = figures(&after, "370202002");
    ensure!(
        late_b == [4, 2, 2, 2, 2, 0, 0],
        "township B after its late sync {late_b:?}: {after}"
    );
    ensure!(
        figures(&after, "370202001") == got_a,
        "township A changed: {after}"
    );

    // Role limits: a county user sees its own county, not another one.
    let shinan = login(g, "shinan").await?;
    let (status, _) = get_json(g, &path, &shinan).await?;
    ensure!(status == 200, "shinan reads its own county: {status}");
    let laoshan = login(g, "laoshan").await?;
    let (status, e) = get_json(g, &path, &laoshan).await?;
    ensure!(
        status == 403 && e["error"]["parameter"] == "org",
        "laoshan reading 370202: {status} {e}"
    );
    let (status, e) = get_json(
        g,
        &format!("/api/v1/reports/suggestions?org=370212&{period}"),
        &shinan,
    )
    .await?;
    ensure!(
        status == 403 && e["error"]["parameter"] == "org",
        "shinan reading 370212: {status} {e}"
    );

    // Bad parameters: a 4xx naming the parameter.
    let cases = [
        (
            "/api/v1/reports/opinions?org=370202&from=2026-09-01&to=2026-07-01",
            400,
            "to",
        ),
        (
            "/api/v1/reports/opinions?org=370202&period=2026-Q5",
            400,
            "period",
        ),
        ("/api/v1/reports/nope?org=370202&period=2026", 404, "name"),
        (
            "/api/v1/reports/opinions?org=370202009&period=2026",
            400,
            "org",
        ),
        ("/api/v1/reports/opinions?org=12&period=2026", 400, "org"),
        ("/api/v1/reports/opinions?org=370202", 400, "period"),
        (
            "/api/v1/reports/opinions?org=370202&period=2026&x=1",
            400,
            "x",
        ),
    ];
    for (path, code, parameter) in cases {
        let (status, e) = get_json(g, path, &shinan).await?;
        ensure!(
            status == code && e["error"]["parameter"] == parameter,
            "{path}: expected {code} naming {parameter}, got {status} {e}"
        );
    }
    let (status, e) = get_json(g, &path, "v1.1.370200.city_office.9999999999999.00").await?;
    ensure!(
        status == 401 && e["error"]["parameter"] == "Authorization",
        "forged token: {status} {e}"
    );
    Ok(())
}

/// The gateway's certificate opens reports and log-in at the city node, nothing else: no
/// replication, no domain writes.
async fn a_gateway_certificate_reaches_only_reports_and_login() -> anyhow::Result<()> {
    let city = org(CITY);
    let cluster = Cluster::start(&[city]).await?;
    let tls = cluster.gateway_tls()?;
    let material = renda_tls::Material::from_files(&tls)?;
    let uri = format!("https://localhost:{}", cluster.grpc_addr(city)?.port()).parse()?;
    let channel = renda_tls::channel(&uri, material.client_config()?)?;
    let mut replication =
        renda_proto::sync::v1::replication_client::ReplicationClient::new(channel.clone());
    let refused = replication
        .status(renda_proto::sync::v1::StatusRequest {})
        .await
        .err()
        .context("a gateway certificate got replication status")?;
    ensure!(
        refused.code() == tonic::Code::PermissionDenied,
        "replication: {refused:?}"
    );
    // Even with a person's token, a gateway certificate reaches no register.
    let mut deputies = renda_proto::deputy::v1::deputies_client::DeputiesClient::with_interceptor(
        channel.clone(),
        renda_e2e::cluster::person(UserRole::CityOffice, city)?,
    );
    let refused = deputies
        .list_deputies(renda_proto::deputy::v1::ListDeputiesRequest::default())
        .await
        .err()
        .context("a gateway certificate listed deputies")?;
    ensure!(
        refused.code() == tonic::Code::PermissionDenied,
        "deputies: {refused:?}"
    );
    let mut login = auth::auth_client::AuthClient::new(channel);
    let answer = login
        .login(auth::LoginRequest {
            login: "nobody".into(),
            password: "wrong-password".into(),
        })
        .await
        .err()
        .context("an unknown user logged in")?;
    ensure!(
        answer.code() == tonic::Code::Unauthenticated,
        "log-in reached the auth service and was refused as a bad password: {answer:?}"
    );
    Ok(())
}

fn main() -> ExitCode {
    renda_e2e::harness::main(renda_e2e::scenarios![
        reports_over_a_real_mesh,
        a_gateway_certificate_reaches_only_reports_and_login,
        a_gateway_with_another_token_secret_says_so_at_log_in,
    ])
}
