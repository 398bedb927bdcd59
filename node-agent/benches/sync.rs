//! Sync benchmark: real node stores and gRPC over mutual TLS on loopback, in one process.
//!
//! `cargo bench -p node-agent --bench sync` (`-- history` and the like for one section).
//! Prints, in one run:
//! 1. a township's catch-up after 10,000 offline operations on each side (pushed up and pulled
//!    down), its rate against applying the same operations locally, and the bytes on the wire
//!    (TLS included, counted by a proxy) against the bytes of the operations;
//! 2. a sync with nothing to do: round trips, bytes, time;
//! 3. a county receiving 30 townships syncing at once, against one township alone;
//! 4. a returning link: the time from a county's return to the first operation applied there
//!    by a township in its longest backoff, against that backoff;
//! 5. an idle round with 1,000, 100,000 and 1,000,000 operations of history in the township's
//!    scope, the largest against the smallest.
//!
//! Authority here is the org-tree check only (the domain's rules need an org tree naming 30
//! townships); everything else is the production path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use node_agent::mesh::Mesh;
use node_agent::node::Domain;
use renda_replica::{Author, FieldId, OrgCode, RecordId, Value};
use renda_store::{Cursor, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const OPS: usize = 10_000;
const FIELDS_PER_SAVE: usize = 5;

/// Bytes each way through a proxy, and how many times the direction of traffic turned from
/// client→server to server→client (one turn per round trip).
#[derive(Default)]
struct Meter {
    up: AtomicU64,
    down: AtomicU64,
    turns: AtomicU64,
    last: AtomicU64,
}

impl Meter {
    fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.up.load(Ordering::SeqCst),
            self.down.load(Ordering::SeqCst),
            self.turns.load(Ordering::SeqCst),
        )
    }
}

fn proxy(target: SocketAddr, meter: Arc<Meter>) -> anyhow::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let listener = TcpListener::from_std(std_listener)?;
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let meter = meter.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    return;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                let up = pump(ri, wo, meter.clone(), true);
                let down = pump(ro, wi, meter, false);
                let _ = tokio::join!(up, down);
            });
        }
    });
    Ok(addr)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    meter: Arc<Meter>,
    upward: bool,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        if upward {
            meter.up.fetch_add(n as u64, Ordering::SeqCst);
            meter.last.store(1, Ordering::SeqCst);
        } else {
            meter.down.fetch_add(n as u64, Ordering::SeqCst);
            if meter.last.swap(2, Ordering::SeqCst) == 1 {
                meter.turns.fetch_add(1, Ordering::SeqCst);
            }
        }
        to.write_all(&buf[..n]).await?;
    }
}

fn open_domain() -> Domain {
    let mut domain = node_agent::domain::deputy_work();
    domain.rule = Arc::new(|_, _| Ok(()));
    domain
}

/// Writes `ops` field operations as deputy form saves of `org`, at `store`.
async fn write_deputies(store: &Store, org: OrgCode, ops: usize, tag: &str) -> anyhow::Result<()> {
    let schema = store.schema().clone();
    let kind = schema.kind_named("deputy").context("deputy kind")?;
    let text_fields: Vec<FieldId> = ["name", "constituency", "ethnicity", "sector", "qr_token"]
        .iter()
        .filter_map(|n| kind.field_named(n).map(|f| f.id))
        .collect();
    anyhow::ensure!(
        text_fields.len() == FIELDS_PER_SAVE,
        "deputy text fields changed"
    );
    let author = Author { org, number: 1 };
    let mut written = 0;
    let mut i = 0u64;
    while written < ops {
        let id = RecordId(uuid::Uuid::now_v7());
        let kind_id = kind.id;
        let fields = text_fields.clone();
        let n = FIELDS_PER_SAVE.min(ops - written);
        store
            .write(id, kind_id, author, move |record, actor| {
                let mut changes =
                    vec![record.put(actor, renda_replica::schema::ORG, Value::Org(org))];
                for (k, field) in fields.iter().take(n.saturating_sub(1)).enumerate() {
                    changes.push(record.put(
                        actor,
                        *field,
                        Value::Text(format!("{tag}代表{i:05}-{k}")),
                    ));
                }
                changes
            })
            .await?;
        written += n;
        i += 1;
    }
    Ok(())
}

async fn local_apply_rate(
    dir: &std::path::Path,
    from: &Store,
    to_org: OrgCode,
) -> anyhow::Result<f64> {
    let mut ops = Vec::new();
    let mut after = Cursor::START;
    loop {
        let page = from.ops_since(after, 1_000).await?;
        if page.is_empty() {
            break;
        }
        after = page.last().map(|o| o.cursor).unwrap_or(after);
        ops.extend(page.into_iter().map(|o| o.bytes));
    }
    let url = format!(
        "sqlite://{}",
        dir.join(format!("local-{to_org}.db")).display()
    );
    let store = Store::open(&url, from.schema().clone(), to_org, Default::default()).await?;
    let accept = |_: &renda_replica::Op, _: Option<OrgCode>| Ok(());
    let start = Instant::now();
    for chunk in ops.chunks(1_000) {
        store.apply_batch(chunk, Some("bench"), &accept).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    store.close().await;
    Ok(ops.len() as f64 / secs)
}

async fn catch_up(dir: &std::path::Path) -> anyhow::Result<()> {
    let city = OrgCode::new(370_200)?;
    let county = OrgCode::new(370_202)?;
    let township = OrgCode::new(370_202_001)?;
    let meter = Arc::new(Meter::default());
    let m = meter.clone();
    let mesh = Mesh::start_via(
        dir,
        &[city, county, township],
        open_domain(),
        &mut |child, parent, target| {
            if child == township && parent == county {
                proxy(target, m.clone())
            } else {
                Ok(target)
            }
        },
    )
    .await?;
    // Open the channel once so the connection (and its TLS handshake) is not counted.
    mesh.sync(township).await?;
    let t_store = &mesh.node(township)?.store;
    let c_store = &mesh.node(county)?.store;
    write_deputies(t_store, township, OPS, "乡").await?;
    write_deputies(c_store, township, OPS, "县").await?;
    let payload_up: u64 = count_bytes(t_store).await?;
    let before = meter.snapshot();
    let start = Instant::now();
    let report = mesh.sync(township).await?;
    let secs = start.elapsed().as_secs_f64();
    let after = meter.snapshot();
    let wire = (after.0 - before.0) + (after.1 - before.1);
    let moved = report.pushed + report.pulled;
    let payload_down = count_bytes_of_origin(c_store).await?;
    let payload = payload_up + payload_down;
    let rate = moved as f64 / secs;
    let local = (local_apply_rate(dir, t_store, county).await?
        + local_apply_rate(dir, c_store, township).await?)
        / 2.0;
    println!(
        "catch-up: {} ops pushed + {} pulled in {:.2}s = {:.0} ops/s",
        report.pushed, report.pulled, secs, rate
    );
    println!(
        "   local apply of the same ops:  {local:.0} ops/s; ratio {:.2}  (goal >= 0.5)",
        rate / local
    );
    println!(
        "   bytes on the wire {wire} (TLS included) for {payload} bytes of operations: {:.2}x  (goal <= 1.5x)",
        wire as f64 / payload as f64
    );

    let before = meter.snapshot();
    let start = Instant::now();
    let idle = mesh.sync(township).await?;
    let secs = start.elapsed().as_secs_f64();
    let after = meter.snapshot();
    println!(
        "idle sync: {} round trip(s), {} bytes ({} up, {} down), {:.1} ms, moved {} ops  (goal 1 round trip, < 2 KB)",
        after.2 - before.2,
        (after.0 - before.0) + (after.1 - before.1),
        after.0 - before.0,
        after.1 - before.1,
        secs * 1000.0,
        idle.pushed + idle.pulled
    );
    mesh.shutdown().await
}

/// Total encoded bytes of `store`'s log.
async fn count_bytes(store: &Store) -> anyhow::Result<u64> {
    let mut total = 0u64;
    let mut after = Cursor::START;
    loop {
        let page = store.ops_since(after, 1_000).await?;
        if page.is_empty() {
            return Ok(total);
        }
        after = page.last().map(|o| o.cursor).unwrap_or(after);
        total += page.iter().map(|o| o.bytes.len() as u64).sum::<u64>();
    }
}

/// Bytes of `store`'s own operations (the county's, which the township pulls down).
async fn count_bytes_of_origin(store: &Store) -> anyhow::Result<u64> {
    let actor = store.actor();
    let mut total = 0u64;
    let mut after = Cursor::START;
    loop {
        let page = store.ops_since(after, 1_000).await?;
        if page.is_empty() {
            return Ok(total);
        }
        after = page.last().map(|o| o.cursor).unwrap_or(after);
        for op in &page {
            if renda_replica::Op::decode_unchecked(&op.bytes).is_ok_and(|o| o.id.origin == actor) {
                total += op.bytes.len() as u64;
            }
        }
    }
}

async fn many_townships(dir: &std::path::Path) -> anyhow::Result<()> {
    const TOWNSHIPS: u64 = 30;
    const EACH: usize = 2_000;
    let city = OrgCode::new(370_200)?;
    let county = OrgCode::new(370_202)?;
    let mut orgs = vec![city, county];
    for i in 1..=TOWNSHIPS {
        orgs.push(OrgCode::new(370_202_000 + i)?);
    }
    let mesh = Mesh::start(dir, &orgs, open_domain()).await?;
    for org in &orgs[2..] {
        mesh.sync(*org).await?;
        write_deputies(&mesh.node(*org)?.store, *org, EACH, "乡").await?;
    }
    // One township alone.
    let start = Instant::now();
    let alone = mesh.sync(orgs[2]).await?;
    let single = alone.pushed as f64 / start.elapsed().as_secs_f64();
    // The other 29 at once.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for org in orgs[3..].iter().copied() {
        let handle = mesh
            .node(org)?
            .sync
            .clone()
            .context("township has an upstream")?;
        tasks.push(tokio::spawn(async move { handle.sync_now().await }));
    }
    let mut pushed = 0;
    for task in tasks {
        let (_, report) = task.await?.map_err(anyhow::Error::msg)?;
        pushed += report.pushed;
    }
    let together = pushed as f64 / start.elapsed().as_secs_f64();
    println!(
        "{} townships at once: {together:.0} ops/s at the county; one township alone {single:.0} ops/s; ratio {:.2}  (goal >= 0.7)",
        TOWNSHIPS - 1,
        together / single
    );
    mesh.shutdown().await
}

/// A township whose upstreams were down long enough for its backoff to reach the shipped
/// maximum (ten minutes, as after an hour-long outage): the time from its county's return to
/// the first operation applied there, against the backoff it would otherwise wait out.
async fn link_return(dir: &std::path::Path) -> anyhow::Result<()> {
    let (city, county, township) = (
        OrgCode::new(370_200)?,
        OrgCode::new(370_202)?,
        OrgCode::new(370_202_001)?,
    );
    let mut mesh = Mesh::start(dir, &[city, county, township], open_domain()).await?;
    let port = |mesh: &Mesh, at| mesh.node(at).map(|n| n.grpc_addr.port());
    let (t_port, c_port) = (port(&mesh, township)?, port(&mesh, county)?);
    let backoff = std::time::Duration::from_secs(600);
    let mut t_config = mesh.stop(township).await?;
    t_config.sync.interval = std::time::Duration::from_secs(3600);
    (t_config.sync.backoff_min, t_config.sync.backoff_max) = (backoff, backoff);
    mesh.restart(township, t_config, t_port).await?;
    let c_config = mesh.stop(county).await?;
    mesh.stop(city).await?;
    let store = mesh.node(township)?.store.clone();
    write_deputies(&store, township, 1, "乡").await?;
    anyhow::ensure!(mesh.sync(township).await.is_err(), "an upstream answered");
    mesh.restart(county, c_config, c_port).await?;
    let back = Instant::now();
    while store.pending_push(&county.to_string()).await? > 0 {
        anyhow::ensure!(
            back.elapsed() < backoff,
            "the township waited out its backoff"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let took = back.elapsed().as_secs_f64();
    println!(
        "link return: first operation applied at the county {took:.1} s after it came back; \
         the backoff in force {:.0} s; ratio {:.4}  (goal: seconds, whatever the outage)",
        backoff.as_secs_f64(),
        took / backoff.as_secs_f64()
    );
    mesh.shutdown().await
}

/// History in a township's scope, as a past catch-up would have left it: `ops` operations (a
/// tenth written at the county first, the rest at the township), held by both nodes, each
/// side's checkpoint after the last operation the other sent it. Generated by applying the
/// same encoded operations to both stores (fast), not by syncing them.
async fn history(
    mesh: &Mesh,
    county: OrgCode,
    township: OrgCode,
    ops: usize,
) -> anyhow::Result<()> {
    const CHUNK: usize = 10_000;
    let t_store = &mesh.node(township)?.store;
    let c_store = &mesh.node(county)?.store;
    let schema = t_store.schema().clone();
    let kind = schema.kind_named("deputy").context("deputy kind")?;
    let fields: Vec<FieldId> = ["name", "constituency", "ethnicity", "sector"]
        .iter()
        .filter_map(|n| kind.field_named(n).map(|f| f.id))
        .collect();
    let accept = |_: &renda_replica::Op, _: Option<OrgCode>| Ok(());
    let (t_key, c_key) = (township.to_string(), county.to_string());
    let mut written = 0;
    let mut chunk_no = 0u64;
    while written < ops {
        chunk_no += 1;
        let at_county = written < ops / 10;
        let origin = if at_county { county } else { township };
        let mut replica = renda_replica::Replica::new(
            renda_replica::ActorId(0xb000 + chunk_no),
            origin,
            schema.clone(),
        );
        let n = CHUNK.min(ops - written);
        let mut i = 0;
        while i < n {
            let id = RecordId(uuid::Uuid::now_v7());
            let now = 1_700_000_000_000 + (written + i) as u64;
            replica.put(
                id,
                kind.id,
                renda_replica::schema::ORG,
                Value::Org(township),
                now,
            )?;
            i += 1;
            for field in fields.iter().take((n - i).min(fields.len())) {
                replica.put(id, kind.id, *field, Value::Text(format!("代表{i}")), now)?;
                i += 1;
            }
        }
        let bytes: Vec<Vec<u8>> = replica.log().iter().map(|op| op.encode()).collect();
        for batch in bytes.chunks(4_096) {
            if at_county {
                c_store.apply_batch(batch, None, &accept).await?;
                t_store.apply_batch(batch, Some(&c_key), &accept).await?;
            } else {
                t_store.apply_batch(batch, None, &accept).await?;
                c_store.apply_batch(batch, Some(&t_key), &accept).await?;
            }
        }
        written += n;
    }
    // Where the old protocol left the checkpoints: after the last operation each side sent.
    let c_end = c_store
        .ops_for_scope(township, Cursor::START, u32::MAX, Some(&t_key))
        .await?;
    let pulled = c_end.last().map_or(Cursor::START, |op| op.cursor);
    t_store
        .set_checkpoint(&c_key, renda_store::Direction::Pull, pulled)
        .await?;
    let t_end = t_store.last_local_seq().await?;
    let pushed = Cursor {
        position: t_end,
        local_seq: t_end,
    };
    t_store
        .set_checkpoint(&c_key, renda_store::Direction::Push, pushed)
        .await?;
    Ok(())
}

/// Idle rounds with 1,000, 100,000 and 1,000,000 operations of history in the township's scope.
async fn idle_with_history(dir: &std::path::Path) -> anyhow::Result<()> {
    let (city, county, township) = (
        OrgCode::new(370_200)?,
        OrgCode::new(370_202)?,
        OrgCode::new(370_202_001)?,
    );
    let mut medians = Vec::new();
    for ops in [1_000usize, 100_000, 1_000_000] {
        let mesh = Mesh::start(
            &dir.join(ops.to_string()),
            &[city, county, township],
            open_domain(),
        )
        .await?;
        let made = Instant::now();
        history(&mesh, county, township, ops).await?;
        let made = made.elapsed().as_secs_f64();
        // Two rounds settle the checkpoints; then five idle rounds, the median kept.
        for _ in 0..2 {
            mesh.sync(township).await?;
        }
        let mut rounds = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let report = mesh.sync(township).await?;
            anyhow::ensure!(
                report.pushed + report.pulled == 0,
                "an idle round moved {report:?}"
            );
            rounds.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        rounds.sort_by(f64::total_cmp);
        let median = rounds[rounds.len() / 2];
        println!(
            "idle round with {ops} operations of history: median {median:.1} ms of 5 (history made in {made:.0} s)"
        );
        medians.push(median);
        // The convergence check on the same data: the county's digest of the township, whole
        // and one bucket down (as a node descending to a difference asks).
        let mut client = renda_proto::sync::v1::replication_client::ReplicationClient::new(
            mesh.channel(county)?,
        );
        let mut timed = async |bucket: Option<u32>| -> anyhow::Result<(f64, u64)> {
            let start = Instant::now();
            let answer = client
                .digest(renda_proto::sync::v1::DigestRequest {
                    org_code: township.to_string(),
                    bucket,
                })
                .await?
                .into_inner();
            Ok((start.elapsed().as_secs_f64() * 1000.0, answer.records))
        };
        let (whole, records) = timed(None).await?;
        let (bucket, in_bucket) = timed(Some(7)).await?;
        println!(
            "   digest of the township at the county: {records} records in {whole:.1} ms; one bucket ({in_bucket} records) in {bucket:.1} ms"
        );
        mesh.shutdown().await?;
    }
    if let (Some(first), Some(last)) = (medians.first(), medians.last()) {
        println!(
            "   1,000,000 against 1,000 operations of history: ratio {:.2}  (goal <= 1.5)",
            last / first
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    renda_tls::install_crypto_provider();
    // `cargo bench -p node-agent --bench sync -- history` runs only the sections named.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        if run("catch-up") {
            catch_up(&dir.path().join("catch-up")).await?;
        }
        if run("thirty") {
            many_townships(&dir.path().join("thirty")).await?;
        }
        if run("link-return") {
            link_return(&dir.path().join("link-return")).await?;
        }
        if run("history") {
            idle_with_history(&dir.path().join("history")).await?;
        }
        anyhow::Ok(())
    })
}
