//! Reports over the report-facts projection.
//!
//! - The demo mesh's figures at the city, for every report, are those the reports gave when
//!   they read the materialised tables directly (known answers, taken from that version).
//! - The projection catches up after new operations: a township's late sync changes the
//!   figures of the next report, on SQLite and (with `RENDA_TEST_PG_URL`) PostgreSQL.
//! - A crash between an apply and its projection leaves nothing wrong: facts and watermark
//!   agree, and the next report catches up.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use renda_api::{ApiContext, audience, is_local_only, replication_rule, schema};
use renda_demo::{DemoNode, DemoStores, Mesh, seed_demo};
use renda_domain::org::OrgTree;
use renda_proto::report::v1 as pb;
use renda_replica::{Author, Change, EventKindId, FieldId, Op, OrgCode, RecordId, Value};
use renda_store::{Cursor, Options, Store};
use uuid::Uuid;

const ORGS: [&str; 7] = [
    "370200",
    "370202",
    "370212",
    "370202001",
    "370202002",
    "370212001",
    "370212002",
];

/// Copies operations between stores as a sync would: up with the upward feed, down by scope.
async fn copy(from: &Store, to: &Store, from_org: &str, down: Option<OrgCode>) -> Result<()> {
    let schema = Arc::new(schema());
    let rule = replication_rule(schema.clone());
    let ops = match down {
        Some(org) => {
            from.ops_for_scope(org, Cursor::START, 1_000_000, None)
                .await?
        }
        None => from.ops_since(Cursor::START, 1_000_000).await?,
    };
    let bytes: Vec<Vec<u8>> = ops
        .into_iter()
        .map(|o| o.bytes)
        .filter(|b| Op::decode_unchecked(b).is_ok_and(|op| !is_local_only(&schema, &op)))
        .collect();
    to.apply_batch(&bytes, Some(from_org), &rule).await?;
    Ok(())
}

/// The demo's seven nodes, synced in process.
struct InProcess<'a> {
    nodes: &'a DemoStores,
}

impl Mesh for InProcess<'_> {
    async fn sync(&self) -> std::result::Result<(), String> {
        let store = |org: &str| self.nodes[org].store.clone();
        let run = async {
            for street in &ORGS[3..] {
                copy(&store(street), &store(&street[..6]), street, None).await?;
            }
            for county in &ORGS[1..3] {
                copy(&store(county), &store("370200"), county, None).await?;
            }
            for county in &ORGS[1..3] {
                copy(
                    &store("370200"),
                    &store(county),
                    "370200",
                    Some(county.parse()?),
                )
                .await?;
            }
            for street in &ORGS[3..] {
                copy(
                    &store(&street[..6]),
                    &store(street),
                    &street[..6],
                    Some(street.parse()?),
                )
                .await?;
            }
            anyhow::Ok(())
        };
        run.await.map_err(|e| e.to_string())
    }
}

async fn open(url: &str, org: &str) -> Result<Store> {
    let schema = Arc::new(schema());
    let options = Options {
        audience: Some(audience(schema.clone())),
        ..Options::default()
    };
    Ok(Store::open(url, schema, org.parse()?, options).await?)
}

/// Seeds the demo mesh in `dir` (or opens it when an earlier run seeded it there).
async fn demo(dir: &std::path::Path) -> Result<DemoStores> {
    let seeded = dir.join("370200.sqlite").exists();
    let mut nodes: DemoStores = BTreeMap::new();
    for org in ORGS {
        let url = format!("sqlite://{}", dir.join(format!("{org}.sqlite")).display());
        nodes.insert(
            org.to_owned(),
            DemoNode {
                store: open(&url, org).await?,
                ctx: ApiContext::default(),
            },
        );
    }
    if !seeded {
        seed_demo(&nodes, &InProcess { nodes: &nodes }).await?;
    }
    Ok(nodes)
}

fn cell(c: &pb::Cell) -> String {
    match &c.kind {
        Some(pb::cell::Kind::Int(n)) => n.to_string(),
        Some(pb::cell::Kind::Real(r)) => format!("{r:.2}"),
        Some(pb::cell::Kind::Text(s)) => s.clone(),
        None => "-".into(),
    }
}

/// Every table of a report as text, one row a line, without what changes with the clock
/// (generation time, freshness). Rows of the opinion list are sorted: its order is by day
/// raised now, by id before.
fn dump(r: &pb::Report) -> String {
    let day = |d: Option<renda_proto::types::v1::Date>| {
        d.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
            .unwrap_or_default()
    };
    let mut out = format!("{} {} {}..{}\n", r.name, r.org_code, day(r.from), day(r.to));
    for t in &r.tables {
        out.push_str(&format!(
            "[{}] {}\n",
            t.key,
            t.columns
                .iter()
                .map(|c| c.key.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
        let mut rows: Vec<String> = t
            .rows
            .iter()
            .map(|row| row.cells.iter().map(cell).collect::<Vec<_>>().join(" | "))
            .collect();
        if t.key == "opinions" {
            rows.sort();
        }
        for row in rows {
            out.push_str(&row);
            out.push('\n');
        }
    }
    for d in &r.definitions {
        out.push_str(&format!("def {}\n", d.key));
    }
    out
}

/// A report request for `[from, to)`, the days written YYYY-MM-DD.
fn request(name: &str, org: &str, from: &str, to: &str) -> pb::ReportRequest {
    let day = |raw: &str| {
        let d = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").expect("a YYYY-MM-DD day");
        Some(d.into())
    };
    pb::ReportRequest {
        name: name.into(),
        org_code: org.into(),
        from: day(from),
        to: day(to),
        freshness_limit_hours: 0,
        freshness_limit_minutes: 0,
    }
}

/// With `RENDA_REPORT_DUMP=<dir>`, seeds the demo there once and writes every report of it as
/// text to `<dir>/<label>.txt`: run it on two versions of the reports and diff the files.
#[tokio::test]
async fn dump_demo_reports() -> Result<()> {
    let Ok(dir) = std::env::var("RENDA_REPORT_DUMP") else {
        return Ok(());
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let nodes = demo(&dir).await?;
    let label = std::env::var("RENDA_REPORT_LABEL").unwrap_or_else(|_| "reports".into());
    let mut out = String::new();
    for org in ["370200", "370202", "370212001"] {
        let node = &nodes["370200"];
        for (from, to) in [("2026-07-01", "2026-10-01"), ("2026-01-01", "2027-01-01")] {
            for name in [
                "suggestions",
                "projects",
                "deputies",
                "stations",
                "opinions",
            ] {
                let report = renda_api::reports::build_report(
                    node.store.clone(),
                    node.ctx.clone(),
                    None,
                    &request(name, org, from, to),
                )
                .await
                .with_context(|| format!("{name} {org} {from}"))?;
                out.push_str(&dump(&report));
            }
        }
    }
    std::fs::write(dir.join(format!("{label}.txt")), out)?;
    Ok(())
}

fn by_org(r: &pb::Report, org: &str) -> Vec<String> {
    r.tables
        .iter()
        .find(|t| t.key == "by_org")
        .and_then(|t| {
            t.rows
                .iter()
                .find(|row| row.cells.first().map(cell).as_deref() == Some(org))
        })
        .map(|row| row.cells.iter().map(cell).collect())
        .unwrap_or_default()
}

/// The demo's 2026-Q3 figures for 市南区 at the city. They are those the reports computed by
/// reading the materialised tables, before the facts (checked by diffing every table of every
/// report with `dump_demo_reports`), except projects adopted by vote, which that version never
/// counted on SQLite, and what issue #12 changed: escalated opinions count under 逐级向上反映
/// (4, two of them assigned by the county, were 0), 已办结 counts closed items only (2, was 6
/// with the withdrawn and merged), and 退回修改, 撤回, 并案, 重点督办 follow it. Columns that
/// move with the clock (days to resolve, overdue projects) are left out.
#[tokio::test]
async fn demo_figures_at_the_city_are_the_known_answers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nodes = demo(dir.path()).await?;
    let city = &nodes["370200"];
    let mut got = BTreeMap::new();
    for name in [
        "suggestions",
        "projects",
        "deputies",
        "stations",
        "opinions",
    ] {
        let report = renda_api::reports::build_report(
            city.store.clone(),
            city.ctx.clone(),
            None,
            &request(name, "370200", "2026-07-01", "2026-10-01"),
        )
        .await?;
        got.insert(name, by_org(&report, "370202").join(" | "));
    }
    let want = [
        (
            "suggestions",
            "370202 | 市南区 | 20 | 10 | 4 | 8 | 2 | 2 | 2 | 2 | 2 | 80.00 | 66.67 | 75.00 | 4",
        ),
        // candidates, adopted, budget, average progress, accepted (overdue moves with the year)
        (
            "projects",
            "370202 | 市南区 | 14 | 8 | 6100000.00 | 77.50 | 2",
        ),
        (
            "deputies",
            "370202 | 市南区 | 22 | 20 | 0 | 8 | 36.36 | 28 | 356 | 176",
        ),
        ("stations", "370202 | 市南区 | 4 | 12 | 5 | 16 | 12"),
        // collected, four routes, resolved, open (days to resolve move with the clock)
        ("opinions", "370202 | 市南区 | 16 | 4 | 4 | 4 | 4 | 12 | 4"),
    ];
    for (name, expected) in want {
        let row = &got[name];
        ensure!(
            row.starts_with(expected),
            "{name}: expected a row starting {expected:?}, got {row:?}"
        );
    }
    Ok(())
}

// ---- catching up, on SQLite and PostgreSQL ----------------------------------------------------

/// Where a test's city database lives: SQLite always, PostgreSQL (a fresh schema, dropped
/// after) when `RENDA_TEST_PG_URL` is set.
struct Database {
    label: &'static str,
    url: String,
    drop_schema: Option<(String, String)>,
}

async fn databases(dir: &std::path::Path) -> Result<Vec<Database>> {
    let mut out = vec![Database {
        label: "sqlite",
        url: format!("sqlite://{}", dir.join("city.sqlite").display()),
        drop_schema: None,
    }];
    if let Ok(base) = std::env::var("RENDA_TEST_PG_URL")
        && !base.is_empty()
    {
        let schema = format!("t_{:016x}", Uuid::new_v4().as_u64_pair().0);
        let pool = sqlx::PgPool::connect(&base).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await?;
        pool.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        out.push(Database {
            label: "postgres",
            url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            drop_schema: Some((base, schema)),
        });
    }
    Ok(out)
}

impl Database {
    /// A township store (SQLite, beside the city's) and the city store on this database.
    async fn township_and_city(&self, dir: &std::path::Path) -> Result<(Store, Store)> {
        let township = dir.join(format!("t-{}.sqlite", self.label));
        let township = open(&format!("sqlite://{}", township.display()), "370202001").await?;
        Ok((township, open(&self.url, "370200").await?))
    }

    async fn cleanup(&self) -> Result<()> {
        if let Some((base, schema)) = &self.drop_schema {
            let pool = sqlx::PgPool::connect(base).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&pool)
            .await?;
            pool.close().await;
        }
        Ok(())
    }
}

/// Day 2026-07-15 at noon (UTC+8), in ms.
const JULY: i64 = 1_784_088_000_000;

/// Writes an opinion of `org` raised in July 2026 at a township store, routed on site and
/// resolved after a day when `resolved`.
async fn opinion(township: &Store, resolved: bool) -> Result<()> {
    let schema = township.schema().clone();
    let kind = schema.kind_named("opinion").context("opinion kind")?.id;
    let org = township.org();
    let author = Author { org, number: 1 };
    township
        .write(
            RecordId(Uuid::now_v7()),
            kind,
            author,
            move |record, actor| {
                let mut changes = vec![
                    record.put(actor, FieldId(1), Value::Org(org)),
                    record.put(actor, FieldId(5), Value::Int(JULY)),
                    Change::Event {
                        event: EventKindId(1),
                        payload: vec![
                            (FieldId(0), Value::Org(org)),
                            (FieldId(1), Value::Text("answered_on_site".into())),
                            (FieldId(3), Value::Int(JULY)),
                        ],
                    },
                ];
                if resolved {
                    changes.push(Change::Event {
                        event: EventKindId(3),
                        payload: vec![
                            (FieldId(0), Value::Org(org)),
                            (FieldId(1), Value::Text("已解决".into())),
                            (FieldId(2), Value::Int(JULY + 86_400_000)),
                        ],
                    });
                }
                changes
            },
        )
        .await?;
    Ok(())
}

/// Pushes everything a township holds to the city, as a sync through its county would.
async fn sync_up(township: &Store, city: &Store) -> Result<()> {
    let ops = township.ops_since(Cursor::START, 1_000_000).await?;
    let bytes: Vec<Vec<u8>> = ops.into_iter().map(|o| o.bytes).collect();
    let report = city
        .apply_batch(&bytes, Some("370202"), &|_: &Op, _: Option<OrgCode>| Ok(()))
        .await?;
    ensure!(report.quarantined == 0, "{report:?}");
    Ok(())
}

/// Collected and resolved opinions of 市南区 and of 八大峡街道 in 2026-Q3, at the city.
async fn opinion_figures(city: &Store, org: &str) -> Result<(String, String)> {
    let report = renda_api::reports::build_report(
        city.clone(),
        ApiContext::new(OrgTree::demo()),
        None,
        &request("opinions", org, "2026-07-01", "2026-10-01"),
    )
    .await?;
    let row = by_org(&report, "370202001");
    Ok((
        row.get(2).cloned().unwrap_or_default(),
        row.get(7).cloned().unwrap_or_default(),
    ))
}

/// The facts are current up to the end of the log.
async fn caught_up(city: &Store) -> Result<bool> {
    let end = city.last_local_seq().await?;
    Ok(city.projection().await?.is_some_and(|p| p.local_seq == end))
}

#[tokio::test]
async fn a_late_township_sync_changes_the_next_report() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for db in databases(dir.path()).await? {
        let label = db.label;
        let (township, city) = db.township_and_city(dir.path()).await?;
        opinion(&township, true).await?;
        opinion(&township, false).await?;
        sync_up(&township, &city).await?;
        ensure!(
            opinion_figures(&city, "370202").await? == ("2".into(), "1".into()),
            "{label}: first sync"
        );
        ensure!(
            caught_up(&city).await?,
            "{label}: a report catches the facts up"
        );

        // The township works offline, then syncs late: the next report shows it.
        opinion(&township, true).await?;
        opinion(&township, true).await?;
        opinion(&township, false).await?;
        sync_up(&township, &city).await?;
        ensure!(
            !caught_up(&city).await?,
            "{label}: nothing projected on apply"
        );
        let figures = opinion_figures(&city, "370202").await?;
        ensure!(
            figures == ("5".into(), "3".into()),
            "{label}: after the late sync {figures:?}"
        );
        ensure!(caught_up(&city).await?, "{label}");
        city.close().await;
        township.close().await;
        db.cleanup().await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_projector_keeps_facts_current_without_a_report_and_stops_on_request() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = databases(dir.path()).await?.remove(0);
    let (township, city) = db.township_and_city(dir.path()).await?;
    opinion(&township, true).await?;
    sync_up(&township, &city).await?;
    ensure!(!caught_up(&city).await?, "nothing projected on apply");
    let projector = renda_api::reports::Projector::start(
        city.clone(),
        ApiContext::new(OrgTree::demo()),
        std::time::Duration::from_millis(20),
    );
    // Polls what a person would see next (bounded: some 20 s at most).
    let mut rounds = 0;
    while !caught_up(&city).await? {
        rounds += 1;
        ensure!(rounds < 1_000, "the projector never caught the facts up");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A second sync is projected by the running loop too, with no report asked for.
    opinion(&township, false).await?;
    sync_up(&township, &city).await?;
    let mut rounds = 0;
    while !caught_up(&city).await? {
        rounds += 1;
        ensure!(rounds < 1_000, "the projector stopped catching up");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // `stop` returns once the loop has ended, so the store can close beneath nothing.
    projector.stop().await;
    city.close().await;
    township.close().await;
    Ok(())
}

#[tokio::test]
async fn a_crash_between_apply_and_projection_is_caught_up_by_the_next_report() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for db in databases(dir.path()).await? {
        let label = db.label;
        let (township, city) = db.township_and_city(dir.path()).await?;
        for resolved in [true, false, true] {
            opinion(&township, resolved).await?;
        }
        sync_up(&township, &city).await?;
        ensure!(opinion_figures(&city, "370202").await? == ("3".into(), "2".into()));

        // A sync commits, then the process dies before anything projects it.
        opinion(&township, true).await?;
        opinion(&township, false).await?;
        sync_up(&township, &city).await?;
        let end = city.last_local_seq().await?;
        let before = city.projection().await?.context("projected once")?;
        ensure!(before.local_seq < end, "{label}");
        // And a catch-up that died halfway: the first window's facts computed, never handed
        // over. Nothing of it is in the store.
        let changed = city.records_changed(before.local_seq, end).await?;
        ensure!(!changed.records.is_empty(), "{label}");
        city.close().await;

        // Restart: the watermark says where the facts stand; the next report catches up.
        let city = open(&db.url, "370200").await?;
        ensure!(
            city.projection().await? == Some(before),
            "{label}: the watermark survives a restart unchanged"
        );
        // A catch-up that lost the race (the watermark moved meanwhile) changes nothing.
        ensure!(
            !city
                .advance_projection(before.version, before.local_seq + 1, end, &[], Vec::new())
                .await?,
            "{label}: an advance from the wrong place is refused"
        );
        let figures = opinion_figures(&city, "370202").await?;
        ensure!(
            figures == ("5".into(), "3".into()),
            "{label}: after the restart {figures:?}"
        );
        ensure!(caught_up(&city).await?, "{label}");
        // Township 八大峡街道 alone, from the same facts.
        ensure!(opinion_figures(&city, "370202001").await? == ("5".into(), "3".into()));
        city.close().await;
        township.close().await;
        db.cleanup().await?;
    }
    Ok(())
}

/// Issue #12, item 3: the suggestions report quotes what a year report does (Qingdao 2022:
/// 117 returned for revision, 30 withdrawn or merged, 34 under key supervision), counts only
/// closed items as 已办结 (withdrawn and merged ones ended without being handled), and its
/// overdue list names each item by title and the unit that is late, not by a UUID.
#[tokio::test]
async fn the_suggestions_report_has_the_figures_a_year_report_quotes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nodes = demo(dir.path()).await?;
    let city = &nodes["370200"];
    let report = renda_api::reports::build_report(
        city.store.clone(),
        city.ctx.clone(),
        None,
        &request("suggestions", "370200", "2026-07-01", "2026-10-01"),
    )
    .await?;
    let table = |key: &str| report.tables.iter().find(|t| t.key == key);
    let by_org = table("by_org").context("by_org")?;
    let value = |org: &str, key: &str| -> Option<String> {
        let i = by_org.columns.iter().position(|c| c.key == key)?;
        let row = by_org
            .rows
            .iter()
            .find(|r| r.cells.first().map(cell).as_deref() == Some(org))?;
        row.cells.get(i).map(cell)
    };
    let got: Vec<Option<String>> = [
        "submitted",
        "finished",
        "revision_requested",
        "withdrawn",
        "merged",
        "key_supervision",
    ]
    .iter()
    .map(|k| value("370202", k))
    .collect();
    // Each of 市南区's two streets: one item closed, one returned for revision, one withdrawn,
    // one merged, one under key supervision. Closed alone is 已办结 (it counted 6 before).
    let want: Vec<Option<String>> = ["20", "2", "2", "2", "2", "2"]
        .map(|v| Some(v.to_owned()))
        .into();
    ensure!(got == want, "{got:?}");
    let overdue = table("overdue").context("overdue")?;
    let keys: Vec<&str> = overdue.columns.iter().map(|c| c.key.as_str()).collect();
    ensure!(
        keys[..5] == ["title", "unit", "overdue_kind", "due", "days_late"],
        "{keys:?}"
    );
    ensure!(!overdue.rows.is_empty(), "the demo has overdue items");
    for r in &overdue.rows {
        let row: Vec<String> = r.cells.iter().map(cell).collect();
        ensure!(
            row[0].starts_with("关于") && row[0].ends_with("的建议"),
            "{row:?}"
        );
        // The late unit with its county: 区卫生健康局(市南区).
        ensure!(
            row[1].starts_with("区")
                && (row[1].ends_with("(市南区)") || row[1].ends_with("(崂山区)")),
            "{row:?}"
        );
        ensure!(
            chrono::NaiveDate::parse_from_str(&row[3], "%Y-%m-%d").is_ok()
                && row[4].parse::<i64>()? > 0,
            "{row:?}"
        );
    }
    Ok(())
}

/// Issue #12, item 6: the city's by-unit table says whose each handling unit is. Both of the
/// demo's counties have a 区交通运输局; each row names its org unit, and no two rows read alike.
#[tokio::test]
async fn the_city_by_unit_table_says_which_county_a_unit_belongs_to() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nodes = demo(dir.path()).await?;
    let city = &nodes["370200"];
    let report = renda_api::reports::build_report(
        city.store.clone(),
        city.ctx.clone(),
        None,
        &request("suggestions", "370200", "2026-01-01", "2027-01-01"),
    )
    .await?;
    let table = report
        .tables
        .iter()
        .find(|t| t.key == "by_unit")
        .context("a by_unit table")?;
    let col = |key: &str| table.columns.iter().position(|c| c.key == key);
    let (org, name) = (
        col("unit_org_name").context("a column naming the unit's org")?,
        col("unit_name").context("unit_name")?,
    );
    let rows: Vec<(String, String)> = table
        .rows
        .iter()
        .map(|r| (cell(&r.cells[org]), cell(&r.cells[name])))
        .collect();
    let traffic: Vec<&str> = rows
        .iter()
        .filter(|(_, n)| n == "区交通运输局")
        .map(|(o, _)| o.as_str())
        .collect();
    ensure!(traffic == ["市南区", "崂山区"], "{rows:?}");
    let distinct: std::collections::BTreeSet<_> = rows.iter().collect();
    ensure!(
        distinct.len() == rows.len(),
        "two rows read alike: {rows:?}"
    );
    Ok(())
}

/// A workflow step of an opinion: its event id, the org it is taken for, the rest of its
/// payload by field id.
type Step = (u16, OrgCode, Vec<(u16, Value)>);

/// Writes an opinion of the township raised in July 2026 with `steps` in that order.
async fn opinion_with(township: &Store, steps: Vec<Step>) -> Result<()> {
    let schema = township.schema().clone();
    let kind = schema.kind_named("opinion").context("opinion kind")?.id;
    let org = township.org();
    let author = Author { org, number: 1 };
    township
        .write(
            RecordId(Uuid::now_v7()),
            kind,
            author,
            move |record, actor| {
                let mut changes = vec![
                    record.put(actor, FieldId(1), Value::Org(org)),
                    record.put(actor, FieldId(5), Value::Int(JULY)),
                ];
                for (event, by, payload) in steps {
                    let mut p = vec![(FieldId(0), Value::Org(by))];
                    p.extend(payload.into_iter().map(|(f, v)| (FieldId(f), v)));
                    changes.push(Change::Event {
                        event: EventKindId(event),
                        payload: p,
                    });
                }
                changes
            },
        )
        .await?;
    Ok(())
}

/// Issue #12, item 2: the opinions report's 逐级向上反映 column counts the opinions the
/// township escalated (it read only routings, so it stayed 0), each opinion in one route
/// column, on SQLite and PostgreSQL.
#[tokio::test]
async fn escalated_opinions_are_counted_as_escalated() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (street, county): (OrgCode, OrgCode) = ("370202001".parse()?, "370202".parse()?);
    let routed = |route: &str| {
        (
            1,
            street,
            vec![(1, Value::Text(route.into())), (3, Value::Int(JULY))],
        )
    };
    let escalated = (
        2,
        street,
        vec![(1, Value::Org(county)), (2, Value::Int(JULY + 1))],
    );
    for db in databases(dir.path()).await? {
        let label = db.label;
        let (township, city) = db.township_and_city(dir.path()).await?;
        opinion_with(&township, vec![routed("answered_on_site")]).await?;
        opinion_with(&township, vec![escalated.clone()]).await?;
        // Assigned first, then escalated: it left the street escalated.
        opinion_with(
            &township,
            vec![routed("assigned_to_department"), escalated.clone()],
        )
        .await?;
        // Escalated, then the county assigns it and resolves it: still escalated by the street.
        opinion_with(
            &township,
            vec![
                escalated.clone(),
                (
                    1,
                    county,
                    vec![
                        (1, Value::Text("assigned_to_department".into())),
                        (3, Value::Int(JULY + 2)),
                    ],
                ),
                (
                    3,
                    county,
                    vec![(1, Value::Text("已解决".into())), (2, Value::Int(JULY + 3))],
                ),
            ],
        )
        .await?;
        sync_up(&township, &city).await?;
        let report = renda_api::reports::build_report(
            city.clone(),
            ApiContext::new(OrgTree::demo()),
            None,
            &request("opinions", "370202", "2026-07-01", "2026-10-01"),
        )
        .await?;
        // collected, on site, transferred, assigned, escalated, resolved, open
        let row = by_org(&report, "370202001");
        ensure!(
            row.get(2..9) == Some(&["4", "1", "0", "0", "3", "1", "3"].map(String::from)[..]),
            "{label}: {row:?}"
        );
        city.close().await;
        township.close().await;
        db.cleanup().await?;
    }
    Ok(())
}

/// A report's detail list holds `DETAIL_ROWS` rows and says when the list goes on; a list that
/// fits says it is whole.
#[tokio::test]
async fn a_long_detail_list_is_cut_and_says_so() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let township = open(&url("t.sqlite"), "370202001").await?;
    let city = open(&url("c.sqlite"), "370200").await?;
    let detail = |r: &pb::Report| {
        r.tables
            .last()
            .map(|t| (t.rows.len(), t.truncated))
            .unwrap_or_default()
    };
    let request = request("opinions", "370202", "2026-07-01", "2026-10-01");
    let report = || {
        renda_api::reports::build_report(
            city.clone(),
            ApiContext::new(OrgTree::demo()),
            None,
            &request,
        )
    };
    for _ in 0..renda_api::reports::DETAIL_ROWS {
        opinion(&township, false).await?;
    }
    sync_up(&township, &city).await?;
    let whole = detail(&report().await?);
    ensure!(
        whole == (renda_api::reports::DETAIL_ROWS, false),
        "a list of exactly DETAIL_ROWS is whole: {whole:?}"
    );
    opinion(&township, true).await?;
    sync_up(&township, &city).await?;
    let cut = detail(&report().await?);
    ensure!(
        cut == (renda_api::reports::DETAIL_ROWS, true),
        "one row more is cut and says so: {cut:?}"
    );
    city.close().await;
    township.close().await;
    Ok(())
}
