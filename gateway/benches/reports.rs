//! Report latency through the gateway against the same report built straight on the store, in
//! one run, on a generated city store; and a streamed export with its peak memory.
//!
//! `cargo bench -p gateway --bench reports` (`RENDA_BENCH_RECORDS=100000` for a quicker run,
//! `RENDA_BENCH_RUNS` requests per report, default 20; `RENDA_BENCH_DB=<path>` keeps the
//! generated SQLite file and reuses it on the next run).
//!
//! The generated city store (SQLite file in a temporary directory) holds RENDA_BENCH_RECORDS
//! records (default 1,000,000), spread evenly over the demo tree's four townships, with dates
//! spread over 2024–2026:
//! - 87% opinions: org, raised_at, a `routed` event (one of four routes), and for 60% of them
//!   a `resolved` event 0–29 days later;
//! - 8% suggestions: org, kind, a `submitted` event, and for 70% a `replied` event (category A–D);
//! - 3% deputies: org and name; 1% stations: org and name;
//! - 1% livelihood projects: org, year, title, budget, a `voted` event (80% adopted) and, for
//!   adopted ones, a `progress` event (0–100%).
//!
//! The operations are made with `renda_replica::Replica` (one actor per 2,000 records, so no
//! replica holds more than that in memory) and applied with `Store::apply_batch`, as a sync
//! would deliver them. The report facts are then projected from the whole log, timed apart
//! (on a reused store only what changed since its last run). Then the city node serves `renda.report.v1` and `renda.auth.v1` over
//! mutual TLS in this process, the gateway dials it with its own certificate, and for each
//! report (city-wide, 2026-Q3) the bench prints p50/p95 through the gateway (HTTP → gRPC →
//! store) beside `renda_api::reports::build_report` on the same store, with the goals: the
//! gateway at most 1.5× the store's time, p95 at most 200 ms. Last, an opinions CSV export of
//! at least 100,000 rows is streamed through the gateway and read in chunks, with the process's
//! peak resident memory (`VmHWM`, reset just before) printed before and after.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use node_agent::certs::{CertificateAuthority, Hosts};
use renda_accounts::UserRole;
use renda_api::{ApiContext, schema};
use renda_domain::org::{OrgCode as DOrg, OrgTree};
use renda_proto::report::v1 as pb;
use renda_replica::{
    ActorId, Author, Change, EventKindId, FieldId, KindId, Op, OrgCode, RecordId, Replica, Value,
};
use renda_store::{Options, Store};
use renda_tls::{Level, NodeIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "bench-token-secret-of-thirty-two-chars";
const TOWNSHIPS: [u64; 4] = [370_202_001, 370_202_002, 370_212_001, 370_212_002];
/// Records per generating actor.
const CHUNK: usize = 2_000;
/// Operations per `apply_batch`.
const BATCH: usize = 10_000;
/// 2024-01-01 00:00 UTC+8, in ms, and the span of generated dates (three years).
const START_MS: i64 = 1_704_038_400_000;
const SPAN_DAYS: i64 = 3 * 365;
const DAY_MS: i64 = 86_400_000;

/// xorshift64: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// What one record of the data set is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Opinion,
    Suggestion,
    Deputy,
    Station,
    Project,
}

fn kind_of(i: usize) -> Kind {
    match i % 100 {
        0..=86 => Kind::Opinion,
        87 => Kind::Project,
        88..=95 => Kind::Suggestion,
        96..=98 => Kind::Deputy,
        _ => Kind::Station,
    }
}

/// The operations of one chunk of records, made by one actor of one township, encoded.
fn chunk_ops(
    schema: &Arc<renda_replica::Schema>,
    chunk: usize,
    first: usize,
    count: usize,
    rng: &mut Rng,
) -> Result<Vec<Vec<u8>>> {
    let org = OrgCode::new(TOWNSHIPS[chunk % TOWNSHIPS.len()])?;
    let mut replica = Replica::new(ActorId(0x1_0000 + chunk as u64), org, schema.clone());
    let author = Author { org, number: 1 };
    let actor = replica.actor();
    let kind = |name: &str| -> Result<KindId> {
        Ok(schema.kind_named(name).context("kind in schema")?.id)
    };
    let (opinion, suggestion, deputy, station, project) = (
        kind("opinion")?,
        kind("suggestion")?,
        kind("deputy")?,
        kind("station")?,
        kind("project")?,
    );
    let mut ops: Vec<Op> = Vec::with_capacity(count * 4);
    let now = (START_MS + SPAN_DAYS * DAY_MS) as u64;
    for i in first..first + count {
        let id = RecordId(uuid::Uuid::now_v7());
        let day = rng.below(SPAN_DAYS as u64) as i64;
        let at = START_MS + day * DAY_MS + rng.below(DAY_MS as u64) as i64;
        let put = |replica: &mut Replica, kind: KindId, field: u16, value: Value| {
            replica.local(id, kind, author, now, |r| {
                r.put(actor, FieldId(field), value)
            })
        };
        match kind_of(i) {
            Kind::Opinion => {
                ops.push(put(&mut replica, opinion, 1, Value::Org(org))?);
                ops.push(put(&mut replica, opinion, 5, Value::Int(at))?);
                let route = [
                    "answered_on_site",
                    "transferred_to_township",
                    "assigned_to_department",
                    "escalated_upward",
                ][rng.below(4) as usize];
                ops.push(replica.local(id, opinion, author, now, |_| Change::Event {
                    event: EventKindId(1),
                    payload: vec![
                        (FieldId(0), Value::Org(org)),
                        (FieldId(1), Value::Text(route.into())),
                        (FieldId(3), Value::Int(at)),
                    ],
                })?);
                if rng.below(10) < 6 {
                    let resolved = at + rng.below(30) as i64 * DAY_MS;
                    ops.push(replica.local(id, opinion, author, now, |_| Change::Event {
                        event: EventKindId(3),
                        payload: vec![
                            (FieldId(0), Value::Org(org)),
                            (FieldId(1), Value::Text("已办结".into())),
                            (FieldId(2), Value::Int(resolved)),
                        ],
                    })?);
                }
            }
            Kind::Suggestion => {
                let date = i32::try_from((at + 8 * 3_600_000) / DAY_MS)?;
                ops.push(put(&mut replica, suggestion, 1, Value::Org(org))?);
                ops.push(put(
                    &mut replica,
                    suggestion,
                    2,
                    Value::Text("建议".into()),
                )?);
                ops.push(
                    replica.local(id, suggestion, author, now, |_| Change::Event {
                        event: EventKindId(1),
                        payload: vec![
                            (FieldId(0), Value::Org(org)),
                            (FieldId(1), Value::Date(date)),
                        ],
                    })?,
                );
                if rng.below(10) < 7 {
                    let category = ["A", "B", "C", "D"][rng.below(4) as usize];
                    let unit = RecordId(uuid::Uuid::from_u128(u128::from(rng.below(50) + 1)));
                    ops.push(
                        replica.local(id, suggestion, author, now, |_| Change::Event {
                            event: EventKindId(12),
                            payload: vec![
                                (FieldId(0), Value::Org(org)),
                                (FieldId(1), Value::Date(date + 30)),
                                (FieldId(2), Value::Ref(unit)),
                                (FieldId(3), Value::Text(category.into())),
                            ],
                        })?,
                    );
                }
            }
            Kind::Deputy => {
                ops.push(put(&mut replica, deputy, 1, Value::Org(org))?);
                ops.push(put(
                    &mut replica,
                    deputy,
                    2,
                    Value::Text(format!("代表{i}")),
                )?);
            }
            Kind::Project => {
                let year = 2024 + day / 365;
                let on = i32::try_from((at + 8 * 3_600_000) / DAY_MS)?;
                ops.push(put(&mut replica, project, 1, Value::Org(org))?);
                ops.push(put(&mut replica, project, 2, Value::Int(year))?);
                ops.push(put(
                    &mut replica,
                    project,
                    3,
                    Value::Text(format!("民生实事项目{i}")),
                )?);
                ops.push(put(
                    &mut replica,
                    project,
                    5,
                    Value::Int(100_000 * (1 + rng.below(500) as i64)),
                )?);
                let adopted = rng.below(10) < 8;
                ops.push(replica.local(id, project, author, now, |_| Change::Event {
                    event: EventKindId(3),
                    payload: vec![
                        (FieldId(0), Value::Org(org)),
                        (FieldId(1), Value::Date(on)),
                        (FieldId(2), Value::Bool(adopted)),
                    ],
                })?);
                if adopted {
                    let percent = rng.below(101) as i64;
                    ops.push(replica.local(id, project, author, now, |_| Change::Event {
                        event: EventKindId(5),
                        payload: vec![
                            (FieldId(0), Value::Org(org)),
                            (FieldId(1), Value::Date(on + 30)),
                            (FieldId(2), Value::Int(percent)),
                        ],
                    })?);
                }
            }
            Kind::Station => {
                ops.push(put(&mut replica, station, 1, Value::Org(org))?);
                ops.push(put(
                    &mut replica,
                    station,
                    2,
                    Value::Text(format!("联络站{i}")),
                )?);
            }
        }
    }
    Ok(ops.iter().map(Op::encode).collect())
}

fn accept_all(_: &Op, _: Option<OrgCode>) -> Result<(), String> {
    Ok(())
}

/// Builds the city store of `records` records; returns the operations applied.
async fn generate(store: &Store, records: usize) -> Result<usize> {
    let schema = store.schema().clone();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut pending: Vec<Vec<u8>> = Vec::with_capacity(BATCH + CHUNK * 5);
    let mut applied = 0;
    let started = Instant::now();
    let mut first = 0;
    let mut chunk = 0;
    while first < records {
        let count = CHUNK.min(records - first);
        pending.extend(chunk_ops(&schema, chunk, first, count, &mut rng)?);
        first += count;
        chunk += 1;
        while pending.len() >= BATCH || (first >= records && !pending.is_empty()) {
            let take = pending.len().min(BATCH);
            let batch: Vec<Vec<u8>> = pending.drain(..take).collect();
            let report = store
                .apply_batch(&batch, Some("370202"), &accept_all)
                .await?;
            ensure!(
                report.applied == batch.len(),
                "applied {} of {}",
                report.applied,
                batch.len()
            );
            applied += report.applied;
        }
        if chunk % 50 == 0 {
            eprintln!(
                "  generated {first} records, {applied} operations, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(applied)
}

// ---- HTTP ---------------------------------------------------------------------------------

/// One HTTP/1.1 request; returns the status and the body (de-chunked).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: &str,
    body: &str,
) -> Result<(u16, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
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
    Ok((status, out[split + 4..].to_vec()))
}

/// Streams a response, counting bytes and CSV lines without keeping them.
async fn stream_count(addr: SocketAddr, path: &str, auth: &str) -> Result<(u16, u64, u64)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut status = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        if status == 0 {
            head.extend_from_slice(chunk);
            let Some(split) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let text = String::from_utf8_lossy(&head[..split]).to_string();
            status = text.split(' ').nth(1).context("no status")?.parse()?;
            let body_start = split + 4 - (head.len() - n);
            chunk = &buf[body_start.min(n)..n];
        }
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok((status, bytes, lines))
}

fn proc_status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .map(|l| l[key.len() + 1..].trim().to_owned())
        })
        .unwrap_or_else(|| "n/a".into())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---- the city node and the gateway --------------------------------------------------------

/// Serves the city node's reports and auth services over mutual TLS and starts a gateway
/// dialling it with a gateway certificate; returns the gateway's address.
async fn serve(store: &Store, ctx: &ApiContext, dir: &std::path::Path) -> Result<SocketAddr> {
    let certs = dir.join("certs");
    let ca = CertificateAuthority::generate(&"370200".parse()?)?;
    ca.write(&certs)?;
    let city = NodeIdentity::new(Level::City, "370200".parse()?)?;
    ca.issue(
        &city,
        &Hosts {
            dns: vec!["localhost".into()],
            ips: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        },
    )?
    .write(&certs, &city.org_code)?;
    node_agent::certs::issue_gateway(&certs, &certs)?;
    let node_tls = renda_tls::TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join("370200.pem"),
        key: certs.join("370200.key"),
    };
    let server_config = renda_tls::Material::from_files(&node_tls)?.server_config()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let grpc = listener.local_addr()?;
    let signer = renda_accounts::TokenSigner::new(SECRET.as_bytes().to_vec());
    let gate = renda_api::Gate::new(store.clone(), ctx.clone(), signer.clone());
    let routes = tonic::service::Routes::default()
        .add_service(renda_api::reports_server(store.clone(), ctx.clone(), None))
        .add_service(renda_api::auth_server(
            store.clone(),
            ctx.clone(),
            signer,
            renda_api::users::TOKEN_TTL_MS,
        ));
    let bound = node_agent::server::Bound::new(listener, Some(server_config));
    tokio::spawn(async move { bound.serve(routes, gate, std::future::pending()).await });
    let config = gateway::Config::from_toml(
        &format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\ncity_grpc = \"https://localhost:{}\"\n\
             token_secret = \"{SECRET}\"\nrequest_timeout_ms = 60000\n\n\
             [tls]\nca = \"{c}/ca.pem\"\ncert = \"{c}/gateway-370200.pem\"\nkey = \"{c}/gateway-370200.key\"\n",
            grpc.port(),
            c = certs.display(),
        ),
        &Default::default(),
    )?;
    let app = gateway::App::connect(config)?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = http.local_addr()?;
    tokio::spawn(gateway::run(http, app, std::future::pending()));
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<()> {
    renda_tls::install_crypto_provider();
    let records = env_usize("RENDA_BENCH_RECORDS", 1_000_000);
    let runs = env_usize("RENDA_BENCH_RUNS", 20).max(1);
    let dir = tempfile::tempdir()?;
    let db = std::env::var("RENDA_BENCH_DB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("city.sqlite"));
    let reuse = db.exists();
    let schema = Arc::new(schema());
    let options = Options {
        audience: Some(renda_api::audience(schema.clone())),
        ..Options::default()
    };
    let store = Store::open(
        &format!("sqlite://{}", db.display()),
        schema,
        "370200".parse::<OrgCode>()?,
        options,
    )
    .await?;
    println!("reports benchmark: city store {}", db.display());
    if reuse {
        println!("  reusing the generated store (RENDA_BENCH_DB)");
    } else {
        let started = Instant::now();
        let ops = generate(&store, records).await?;
        println!(
            "  generated {records} records (87% opinions, 8% suggestions, 3% deputies, 1% stations, 1% projects) \
             as {ops} operations in {:.1} s ({:.0} ops/s); file {:.0} MB",
            started.elapsed().as_secs_f64(),
            ops as f64 / started.elapsed().as_secs_f64(),
            std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
        );
    }
    let ctx = ApiContext::new(OrgTree::demo());
    // The report facts: built from the whole log on a new store, and after that only for the
    // records changed since (the reports would do this themselves before their first read).
    let started = Instant::now();
    let built = renda_api::reports::catch_up_facts(store.clone(), ctx.clone()).await?;
    println!(
        "  report facts: {} operations projected ({} records, {} fact rows) in {:.1} s; file {:.0} MB",
        built.operations,
        built.records,
        built.facts,
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
    );
    renda_api::users::bootstrap_user(
        &store,
        &ctx,
        "city",
        "password-123",
        UserRole::CityOffice,
        &DOrg::parse("370200")?,
    )
    .await?;
    let gateway = serve(&store, &ctx, dir.path()).await?;
    let (status, body) = http(
        gateway,
        "POST",
        "/api/v1/login",
        "",
        "{\"login\":\"city\",\"password\":\"password-123\"}",
    )
    .await?;
    ensure!(
        status == 200,
        "login: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let token: serde_json::Value = serde_json::from_slice(&body)?;
    let auth = format!(
        "Authorization: Bearer {}\r\n",
        token["token"].as_str().context("no token")?
    );

    println!(
        "\n{runs} requests per report, org 370200 (city-wide), period 2026-Q3; goals: gateway ≤ 1.5× store, p95 ≤ 200 ms"
    );
    println!(
        "{:<12} {:>10} {:>10} {:>12} {:>12} {:>8} {:>10} {:>6}",
        "report",
        "store p50",
        "store p95",
        "gateway p50",
        "gateway p95",
        "ratio",
        "added p50",
        "goals"
    );
    let mut any_fixed = false;
    for name in renda_domain::report::REPORT_NAMES {
        let request = pb::ReportRequest {
            name: name.into(),
            org_code: "370200".into(),
            from: Some(renda_proto::types::v1::Date {
                year: 2026,
                month: 7,
                day: 1,
            }),
            to: Some(renda_proto::types::v1::Date {
                year: 2026,
                month: 10,
                day: 1,
            }),
            freshness_limit_hours: 72,
            freshness_limit_minutes: 0,
        };
        let path = format!("/api/v1/reports/{name}?org=370200&period=2026-Q3");
        // One warm-up of each, so both sides start with the same page cache.
        renda_api::reports::build_report(store.clone(), ctx.clone(), None, &request).await?;
        let (status, body) = http(gateway, "GET", &path, &auth, "").await?;
        ensure!(
            status == 200,
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        let (mut direct, mut through) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            renda_api::reports::build_report(store.clone(), ctx.clone(), None, &request).await?;
            direct.push(t.elapsed());
            let t = Instant::now();
            let (status, _) = http(gateway, "GET", &path, &auth, "").await?;
            through.push(t.elapsed());
            ensure!(status == 200, "{path}: {status}");
        }
        direct.sort();
        through.sort();
        let (d50, d95) = (percentile(&direct, 0.5), percentile(&direct, 0.95));
        let (g50, g95) = (percentile(&through, 0.5), percentile(&through, 0.95));
        let ratio = ms(g50) / ms(d50).max(1e-6);
        // A report the store answers in a millisecond is dominated by the fixed cost of one
        // HTTP request, one gRPC call over mutual TLS and the JSON: say so instead of a ratio.
        let fixed = ratio > 1.5 && ms(d50) < 2.0 && ms(g50) - ms(d50) < 2.0;
        let ok = ratio <= 1.5 && ms(g95) <= 200.0;
        println!(
            "{name:<12} {:>8.1}ms {:>8.1}ms {:>10.1}ms {:>10.1}ms {:>7.2}× {:>8.1}ms {:>6}",
            ms(d50),
            ms(d95),
            ms(g50),
            ms(g95),
            ratio,
            ms(g50) - ms(d50),
            if ok {
                "met"
            } else if fixed {
                "fixed*"
            } else {
                "MISSED"
            }
        );
        any_fixed |= fixed;
    }

    if any_fixed {
        println!(
            "* under 2 ms on the store: the ratio is the fixed cost of one plain HTTP request \
             plus one gRPC call over mutual TLS (the \"added\" column), not the report's"
        );
    }

    // Exports: opinions raised 2026-01-01..2026-05-31, city-wide (about 121,000 rows of the
    // default data set), then all three years (about 870,000): streamed and counted, never
    // held, so the peak memory grows by about as much for both (the store's page cache).
    for path in [
        "/api/v1/reports/opinions.csv?org=370200&from=2026-01-01&to=2026-05-31",
        "/api/v1/reports/opinions.csv?org=370200&from=2024-01-01&to=2026-12-31",
    ] {
        // Writing 5 to clear_refs resets VmHWM to the current resident size (Linux ≥ 4.0).
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let before = (proc_status("VmRSS"), proc_status("VmHWM"));
        let t = Instant::now();
        let (status, bytes, lines) = stream_count(gateway, path, &auth).await?;
        let took = t.elapsed();
        ensure!(status == 200, "{path}: {status}");
        let after = (proc_status("VmRSS"), proc_status("VmHWM"));
        println!(
            "\nexport {path}\n  {lines} CSV lines, {:.1} MB in {:.2} s; peak memory reset {}: \
             before VmRSS {} VmHWM {}, after VmRSS {} VmHWM {}",
            bytes as f64 / 1e6,
            took.as_secs_f64(),
            if reset { "ok" } else { "unavailable" },
            before.0,
            before.1,
            after.0,
            after.1
        );
    }
    store.close().await;
    Ok(())
}
