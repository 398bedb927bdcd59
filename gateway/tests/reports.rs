//! The gateway against an in-process city node (store + tonic server on 127.0.0.1:0) with a
//! data set built here with known answers: figures, a township's late sync, role limits, bad
//! parameters and the OpenAPI description.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use renda_accounts::UserRole;
use renda_api::{ApiContext, audience, schema};
use renda_domain::org::{OrgCode as DOrg, OrgTree};
use renda_replica::{Author, Change, EventKindId, FieldId, OrgCode, RecordId, Value};
use renda_store::{Options, PeerSync, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const SECRET: &str = "test-secret-of-thirty-two-characters";

struct City {
    store: Store,
    gateway: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

async fn start(timeout_ms: u64) -> anyhow::Result<City> {
    let dir = tempfile::tempdir()?;
    let schema = Arc::new(schema());
    let url = format!("sqlite://{}", dir.path().join("city.sqlite").display());
    let options = Options {
        audience: Some(audience(schema.clone())),
        ..Options::default()
    };
    let store = Store::open(&url, schema, "370200".parse::<OrgCode>()?, options).await?;
    let ctx = ApiContext::new(OrgTree::demo());
    for (login, role, org) in [
        ("city", UserRole::CityOffice, "370200"),
        ("shinan", UserRole::CountyOffice, "370202"),
        ("laoshan", UserRole::CountyOffice, "370212"),
    ] {
        renda_api::users::bootstrap_user(
            &store,
            &ctx,
            login,
            "password-123",
            role,
            &DOrg::parse(org)?,
        )
        .await?;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let grpc = listener.local_addr()?;
    // The city checks every forwarded token itself, as a node does.
    let signer = renda_accounts::TokenSigner::new(SECRET.as_bytes().to_vec());
    let gate = renda_api::Gate::new(store.clone(), ctx.clone(), signer.clone());
    let routes = renda_api::routes(store.clone(), ctx.clone())
        .add_service(renda_api::reports_server(store.clone(), ctx.clone(), None))
        .add_service(renda_api::auth_server(
            store.clone(),
            ctx,
            signer,
            renda_api::users::TOKEN_TTL_MS,
        ));
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .layer(gate)
            .add_routes(routes)
            .serve_with_incoming(incoming)
            .await;
    });
    let config = gateway::Config::from_toml(
        &format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\ncity_grpc = \"http://{grpc}\"\ntoken_secret = \"{SECRET}\"\n\
             request_timeout_ms = {timeout_ms}\ninsecure = true\n"
        ),
        &Default::default(),
    )?;
    let app = gateway::App::connect(config)?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = http.local_addr()?;
    tokio::spawn(gateway::run(http, app, std::future::pending()));
    Ok(City {
        store,
        gateway: addr,
        _dir: dir,
    })
}

/// One HTTP/1.1 request; returns status and body.
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no header end")?;
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).context("status")?.parse()?;
    let mut body = out[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 4 + n..];
    }
    out
}

async fn json(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let (status, body) = http(addr, "GET", path, token, "").await?;
    Ok((
        status,
        serde_json::from_slice(&body)
            .with_context(|| String::from_utf8_lossy(&body).to_string())?,
    ))
}

async fn login(addr: std::net::SocketAddr, user: &str) -> anyhow::Result<String> {
    let (status, body) = http(
        addr,
        "POST",
        "/api/v1/login",
        None,
        &format!("{{\"login\":\"{user}\",\"password\":\"password-123\"}}"),
    )
    .await?;
    anyhow::ensure!(
        status == 200,
        "login {user}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(v["token"].as_str().context("token")?.to_owned())
}

/// Day 2026-07-15 at noon (UTC+8), in ms.
const JULY: i64 = 1_784_088_000_000;

/// An opinion of `org` raised in July 2026, routed, and resolved after `days` if given.
async fn opinion(
    store: &Store,
    org: &str,
    route: &str,
    resolved_after_days: Option<i64>,
) -> anyhow::Result<()> {
    let schema = store.schema().clone();
    let kind = schema.kind_named("opinion").context("opinion kind")?;
    let org: OrgCode = org.parse()?;
    let author = Author { org, number: 1 };
    let kind_id = kind.id;
    store
        .write(
            RecordId(Uuid::now_v7()),
            kind_id,
            author,
            move |record, actor| {
                let mut changes = vec![
                    record.put(actor, FieldId(1), Value::Org(org)),
                    record.put(actor, FieldId(5), Value::Int(JULY)),
                    Change::Event {
                        event: EventKindId(1),
                        payload: vec![
                            (FieldId(0), Value::Org(org)),
                            (FieldId(1), Value::Text(route.into())),
                            (FieldId(3), Value::Int(JULY)),
                        ],
                    },
                ];
                if let Some(days) = resolved_after_days {
                    changes.push(Change::Event {
                        event: EventKindId(3),
                        payload: vec![
                            (FieldId(0), Value::Org(org)),
                            (FieldId(1), Value::Text("已解决".into())),
                            (FieldId(2), Value::Int(JULY + days * 86_400_000)),
                        ],
                    });
                }
                changes
            },
        )
        .await?;
    Ok(())
}

fn row<'a>(report: &'a serde_json::Value, table: &str, org: &str) -> &'a serde_json::Value {
    report["tables"][table]["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["org_code"] == org))
        .unwrap_or(&serde_json::Value::Null)
}

#[tokio::test]
async fn opinion_figures_drill_down_and_change_with_a_late_sync() -> anyhow::Result<()> {
    let city = start(5_000).await?;
    opinion(&city.store, "370202001", "answered_on_site", Some(0)).await?;
    opinion(&city.store, "370202001", "assigned_to_department", Some(4)).await?;
    opinion(&city.store, "370202002", "transferred_to_township", None).await?;
    opinion(&city.store, "370212001", "escalated_upward", None).await?;
    let token = login(city.gateway, "city").await?;

    let (status, r) = json(
        city.gateway,
        "/api/v1/reports/opinions?org=370200&period=2026-Q3",
        Some(&token),
    )
    .await?;
    assert_eq!(status, 200, "{r}");
    let shinan = row(&r, "by_org", "370202");
    assert_eq!(shinan["collected"], 3, "{r}");
    assert_eq!(shinan["resolved"], 2);
    assert_eq!(shinan["answered_on_site"], 1);
    assert_eq!(shinan["avg_days_to_resolve"], 2.0);
    assert_eq!(row(&r, "by_org", "370212")["collected"], 1);
    // Nothing synced yet: every township is stale and the report says so.
    assert_eq!(r["freshness"]["stale"], true);
    assert_eq!(
        r["freshness"]["townships"].as_array().map(Vec::len),
        Some(4)
    );

    // Drill down into 市南区: one row per township.
    let (_, r) = json(
        city.gateway,
        "/api/v1/reports/opinions?org=370202&period=2026-07",
        Some(&token),
    )
    .await?;
    assert_eq!(row(&r, "by_org", "370202001")["collected"], 2, "{r}");
    assert_eq!(row(&r, "by_org", "370202002")["open"], 1);

    // A late sync of 370212001 brings an opinion and moves its freshness. Each township is as
    // fresh as its own last contact, never its county's: here every township synced with the
    // city itself (as after a fallback).
    opinion(&city.store, "370212001", "answered_on_site", Some(1)).await?;
    for peer in ["370202001", "370202002", "370212001", "370212002"] {
        city.store
            .set_peer_sync(&PeerSync {
                peer: peer.into(),
                last_success: Some(chrono::Utc::now()),
                pending_push: 0,
                pending_pull: 3,
                ..PeerSync::default()
            })
            .await?;
    }
    let (_, r) = json(
        city.gateway,
        "/api/v1/reports/opinions?org=370200&period=2026",
        Some(&token),
    )
    .await?;
    assert_eq!(row(&r, "by_org", "370212")["collected"], 2, "{r}");
    assert_eq!(row(&r, "by_org", "370212")["resolved"], 1);
    assert_eq!(r["freshness"]["stale"], false, "{r}");
    assert_eq!(r["freshness"]["townships"][0]["pending_ops"], 3);

    // Exports: CSV with Chinese headers and every opinion row.
    let (status, body) = http(
        city.gateway,
        "GET",
        "/api/v1/reports/opinions.csv?org=370200&period=2026",
        Some(&token),
        "",
    )
    .await?;
    assert_eq!(status, 200);
    let text = String::from_utf8(body)?;
    assert!(
        text.contains("收集件数") && text.contains("意见编号"),
        "{text}"
    );
    assert!(text.matches("现场答复").count() >= 2, "{text}");
    let (status, body) = http(
        city.gateway,
        "GET",
        "/api/v1/reports/suggestions.xlsx?org=370202&period=2026-Q3",
        Some(&token),
        "",
    )
    .await?;
    assert_eq!(status, 200);
    assert!(body.starts_with(b"PK"), "an xlsx is a zip file");
    Ok(())
}

#[tokio::test]
async fn roles_limit_users_to_their_subtree_and_bad_input_names_the_parameter() -> anyhow::Result<()>
{
    let city = start(5_000).await?;
    let shinan = login(city.gateway, "shinan").await?;
    let g = city.gateway;
    let (status, e) = json(
        g,
        "/api/v1/reports/suggestions?org=370212&period=2026",
        Some(&shinan),
    )
    .await?;
    assert_eq!(
        (status, e["error"]["parameter"].as_str()),
        (403, Some("org")),
        "{e}"
    );
    let (status, _) = json(
        g,
        "/api/v1/reports/suggestions?org=370202001&period=2026",
        Some(&shinan),
    )
    .await?;
    assert_eq!(status, 200);
    let cases = [
        (
            "/api/v1/reports/suggestions?org=370202&from=2026-09-01&to=2026-07-01",
            400,
            "to",
        ),
        (
            "/api/v1/reports/suggestions?org=370202&period=2026-Q5",
            400,
            "period",
        ),
        ("/api/v1/reports/nope?org=370202&period=2026", 404, "name"),
        (
            "/api/v1/reports/suggestions?org=370202009&period=2026",
            400,
            "org",
        ),
        ("/api/v1/reports/suggestions?org=12&period=2026", 400, "org"),
    ];
    for (path, code, parameter) in cases {
        let (status, e) = json(g, path, Some(&shinan)).await?;
        assert_eq!(
            (status, e["error"]["parameter"].as_str()),
            (code, Some(parameter)),
            "{path}: {e}"
        );
    }
    let (status, e) = json(
        g,
        "/api/v1/reports/suggestions?period=2026",
        Some("v1.1.370200.city_office.9999999999999.00"),
    )
    .await?;
    assert_eq!(
        (status, e["error"]["parameter"].as_str()),
        (401, Some("Authorization")),
        "{e}"
    );
    let (status, _) = http(
        g,
        "POST",
        "/api/v1/login",
        None,
        "{\"login\":\"shinan\",\"password\":\"wrong-password\"}",
    )
    .await?;
    assert_eq!(status, 401);
    Ok(())
}

#[tokio::test]
async fn a_silent_city_node_gives_a_timeout_not_a_hang() -> anyhow::Result<()> {
    // A listener that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = silent.local_addr()?;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let config = gateway::Config::from_toml(
        &format!(
            "[gateway]\nlisten = \"x\"\ncity_grpc = \"http://{addr}\"\ntoken_secret = \"{SECRET}\"\nrequest_timeout_ms = 300\ninsecure = true\n"
        ),
        &Default::default(),
    )?;
    let app = gateway::App::connect(config)?;
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let g = http_listener.local_addr()?;
    tokio::spawn(gateway::run(http_listener, app, std::future::pending()));
    let started = std::time::Instant::now();
    let (status, body) = http(
        g,
        "POST",
        "/api/v1/login",
        None,
        "{\"login\":\"a\",\"password\":\"b\"}",
    )
    .await?;
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&body));
    assert!(started.elapsed() < Duration::from_secs(4));
    Ok(())
}

#[test]
fn openapi_describes_every_route_and_parameter() {
    let doc = gateway::openapi();
    for (method, path, params) in gateway::ROUTES {
        let op = &doc["paths"][*path][*method];
        assert!(op.is_object(), "{method} {path} is not described");
        let described: Vec<&str> = op["parameters"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        for p in *params {
            assert!(
                described.contains(p),
                "{method} {path}: parameter {p} is not described"
            );
        }
    }
    assert_eq!(doc["openapi"], "3.0.3");
}

/// Issue #12, item 4: a period reads with its last day, both days inclusive, in the JSON's
/// `from`/`to` (the same meaning as the query parameters, as the OpenAPI document says) and in
/// an export's title: period 2022 is 2022-01-01至2022-12-31, never 至2023-01-01.
#[tokio::test]
async fn a_period_reads_with_its_last_day_in_json_exports_and_the_document() -> anyhow::Result<()> {
    let city = start(5_000).await?;
    let token = login(city.gateway, "city").await?;
    for query in ["period=2022", "from=2022-01-01&to=2022-12-31"] {
        let (status, r) = json(
            city.gateway,
            &format!("/api/v1/reports/opinions?org=370200&{query}"),
            Some(&token),
        )
        .await?;
        assert_eq!(status, 200, "{r}");
        assert_eq!(
            (&r["from"], &r["to"]),
            (&"2022-01-01".into(), &"2022-12-31".into()),
            "{query}"
        );
    }
    let (_, r) = json(
        city.gateway,
        "/api/v1/reports/suggestions?org=370200&period=2024-02",
        Some(&token),
    )
    .await?;
    assert_eq!(r["to"], "2024-02-29");
    let (status, body) = http(
        city.gateway,
        "GET",
        "/api/v1/reports/opinions.csv?org=370200&period=2022",
        Some(&token),
        "",
    )
    .await?;
    assert_eq!(status, 200);
    let text = String::from_utf8(body)?;
    let title = text.lines().next().unwrap_or_default();
    assert!(title.ends_with("2022-01-01至2022-12-31"), "{title}");
    // The document says what the behaviour does, for the parameter and the answer alike.
    let doc = gateway::openapi();
    let op = &doc["paths"]["/api/v1/reports/{name}"]["get"];
    let to_param = op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "to"))
        .map(|p| p["description"].to_string())
        .unwrap_or_default();
    assert!(to_param.contains("inclusive"), "{to_param}");
    let to_answer = op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
        ["to"]["description"]
        .to_string();
    assert!(to_answer.contains("inclusive"), "{to_answer}");
    Ok(())
}
