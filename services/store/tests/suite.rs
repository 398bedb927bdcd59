//! The storage test suite. Every test runs on SQLite (a temp file) and, when
//! `RENDA_TEST_PG_URL` is set, on PostgreSQL in a freshly created schema that is dropped after.
//!
//! `RENDA_TEST_PG_URL=postgres://renda:renda@127.0.0.1:5432/renda_test cargo test -p renda-store`

use anyhow::{Context, Result, anyhow, bail, ensure};
use renda_replica::{
    ActorId, Author, Change, EventKindId, FieldId, KindId, Op, OpId, OrgCode, RecordId, Replica,
    Schema, SetId, Value, ValueType, schema::ORG,
};
use renda_store::{Cursor, Direction, Error, Options, PeerSync, Store, StoredRecord};
use std::sync::Arc;
use uuid::Uuid;

const NOTE: KindId = KindId(1);
const WIDE: KindId = KindId(2);
const TITLE: FieldId = FieldId(2);
const BODY: FieldId = FieldId(3);
const COUNT: FieldId = FieldId(4);
const SECRET: KindId = KindId(3);
const MEMBERS: SetId = SetId(1);
const SIGNED: EventKindId = EventKindId(1);

fn org(code: u64) -> OrgCode {
    OrgCode::new(code).expect("test org codes are valid")
}

fn township() -> OrgCode {
    org(370_202_001)
}

fn county() -> OrgCode {
    org(370_202)
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn rid(n: u128) -> RecordId {
    RecordId(Uuid::from_u128(
        0x0190_0000_0000_7000_8000_0000_0000_0000 + n,
    ))
}

fn accept_all(_: &Op, _: Option<OrgCode>) -> Result<(), String> {
    Ok(())
}

/// Where a test's databases live.
enum Kind {
    Sqlite,
    Postgres { base: String },
}

struct Env {
    kind: Kind,
    dir: tempfile::TempDir,
    schemas: std::sync::Mutex<Vec<String>>,
    counter: std::sync::atomic::AtomicU32,
}

impl Env {
    fn label(&self) -> &'static str {
        match self.kind {
            Kind::Sqlite => "sqlite",
            Kind::Postgres { .. } => "postgres",
        }
    }

    /// A URL for a new, empty database.
    async fn new_db(&self) -> Result<String> {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match &self.kind {
            Kind::Sqlite => Ok(format!(
                "sqlite://{}",
                self.dir.path().join(format!("db{n}.sqlite")).display()
            )),
            Kind::Postgres { base } => {
                let schema = format!("t_{:016x}", rand::random::<u64>());
                let pool = sqlx::PgPool::connect(base).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&pool)
                    .await?;
                pool.close().await;
                self.schemas
                    .lock()
                    .expect("not poisoned")
                    .push(schema.clone());
                let sep = if base.contains('?') { '&' } else { '?' };
                Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
            }
        }
    }

    async fn cleanup(&self) -> Result<()> {
        if let Kind::Postgres { base } = &self.kind {
            let schemas: Vec<String> = std::mem::take(&mut *self.schemas.lock().expect("ok"));
            let pool = sqlx::PgPool::connect(base).await?;
            for schema in schemas {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&pool)
                .await?;
            }
            pool.close().await;
        }
        Ok(())
    }
}

fn envs() -> Result<Vec<Env>> {
    let mut kinds = vec![Kind::Sqlite];
    if let Ok(base) = std::env::var("RENDA_TEST_PG_URL")
        && !base.is_empty()
    {
        kinds.push(Kind::Postgres { base });
    }
    kinds
        .into_iter()
        .map(|kind| {
            Ok(Env {
                kind,
                dir: tempfile::tempdir()?,
                schemas: Default::default(),
                counter: Default::default(),
            })
        })
        .collect()
}

/// Declares a test that runs `$body(&Env)` on every backend.
macro_rules! on_every_backend {
    ($name:ident, $body:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() -> Result<()> {
            for env in envs()? {
                let outcome = $body(&env).await;
                env.cleanup().await?;
                outcome.with_context(|| format!("on {}", env.label()))?;
            }
            Ok(())
        }
    };
}

/// The core's test schema (kind 1 `note`, kind 2 `wide`) plus kind 3 `secret`, local-only.
fn schema() -> Arc<Schema> {
    let schema = Schema::builder(1)
        .kind(1, "note", |k| {
            k.text(2, "title", 24)
                .text(3, "body", 200)
                .field(4, "count", ValueType::Int, 0)
                .set(1, "members")
                .event(1, "signed", &[(1, "by", ValueType::Text, true)])
        })
        .kind(2, "wide", |mut k| {
            for i in 0..15u16 {
                k = k.text(2 + i, &format!("f{i}"), 64);
            }
            k
        })
        .kind(3, "secret", |k| k.text(2, "id_number", 18).local_only())
        .build()
        .expect("the test schema is well formed");
    Arc::new(schema)
}

async fn open(url: &str, at: OrgCode) -> Result<Store> {
    Ok(Store::open(url, schema(), at, Options::default()).await?)
}

/// Everything the materialised tables show, minus the node-local `updated_seq`.
async fn snapshot(store: &Store) -> Result<Vec<StoredRecord>> {
    let mut all = Vec::new();
    for kind in [NOTE, WIDE] {
        for mut record in store.records_of_kind(kind, None, 1_000_000, 0).await? {
            record.updated_seq = 0;
            all.push(record);
        }
    }
    Ok(all)
}

fn encode(ops: &[Op]) -> Vec<Vec<u8>> {
    ops.iter().map(Op::encode).collect()
}

// ---------------------------------------------------------------------------------------------

async fn local_write_then_read_back(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, township()).await?;
    let id = rid(1);
    let author = Author {
        org: township(),
        number: 7,
    };
    let ops = store
        .write(id, NOTE, author, |r, me| {
            vec![
                r.put(me, ORG, Value::Org(township())),
                r.put(me, TITLE, text("代表之家")),
                r.put(me, COUNT, Value::Int(3)),
            ]
        })
        .await?;
    ensure!(ops.len() == 3);
    ensure!(ops.iter().map(|o| o.id.seq).collect::<Vec<_>>() == vec![1, 2, 3]);
    let record = store.record(id).await?.context("record written")?;
    ensure!(
        record.fields.get("title") == Some(&text("代表之家")),
        "{record:?}"
    );
    ensure!(record.fields.get("count") == Some(&Value::Int(3)));
    ensure!(record.org == Some(township()));
    ensure!(record.kind_name == "note");
    ensure!(
        record.fields_json.contains("\"title\":\"代表之家\""),
        "{}",
        record.fields_json
    );
    ensure!(record.conflicts.is_empty() && record.conflicts_json == "{}");

    let history = store.history(id).await?;
    ensure!(history.len() == 3, "{history:?}");
    for entry in &history {
        ensure!(entry.author == author, "who: {entry:?}");
        ensure!(entry.origin_org == township(), "where: {entry:?}");
        ensure!(entry.op.origin == store.actor());
        let at = entry.at.context("when")?;
        ensure!(
            (chrono::Utc::now() - at).num_seconds().abs() < 60,
            "when: {at}"
        );
    }
    ensure!(
        history[1].change == "title = \"代表之家\"",
        "{}",
        history[1].change
    );
    ensure!(store.log_len().await? == 3);
    Ok(())
}
on_every_backend!(
    local_write_then_read_back_with_history,
    local_write_then_read_back
);

async fn invalid_write_writes_nothing(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, township()).await?;
    let id = rid(2);
    let author = Author::system(township());
    let err = store
        .write(id, NOTE, author, |r, me| {
            vec![
                r.put(me, BODY, text("fine")),
                r.put(me, TITLE, text(&"x".repeat(25))),
            ]
        })
        .await
        .err()
        .context("an over-long title is refused")?;
    let Error::Invalid(op_error) = &err else {
        bail!("unexpected error {err}");
    };
    ensure!(op_error.record == Some(id));
    ensure!(op_error.field.as_deref() == Some("title"), "{err}");
    ensure!(op_error.reason.contains("longer than the limit"), "{err}");
    ensure!(err.to_string().contains(&id.to_string()), "{err}");

    let err = store
        .write(id, NOTE, author, |r, me| {
            vec![r.put(me, COUNT, text("many"))]
        })
        .await
        .err()
        .context("a wrong type is refused")?;
    ensure!(err.to_string().contains("count") && err.to_string().contains("expects integer"));

    ensure!(store.record(id).await?.is_none(), "nothing materialised");
    ensure!(store.log_len().await? == 0, "nothing logged");
    // The next valid write still gets origin sequence 1: the failed ones left no gap.
    let ops = store
        .write(id, NOTE, author, |r, me| vec![r.put(me, TITLE, text("ok"))])
        .await?;
    ensure!(ops[0].id.seq == 1);
    Ok(())
}
on_every_backend!(
    an_invalid_write_writes_nothing_and_names_record_field_reason,
    invalid_write_writes_nothing
);

/// A remote replica with some history: two records, fields, a set and an event.
fn remote_history() -> Result<Replica> {
    let mut a = Replica::new(ActorId(0xa), org(370_202_002), schema());
    let author = Author::system(org(370_202_002));
    a.put(rid(10), NOTE, ORG, Value::Org(org(370_202_002)), 1_000)?;
    a.put(rid(10), NOTE, TITLE, text("one"), 1_001)?;
    a.put(rid(10), NOTE, TITLE, text("two"), 1_002)?;
    a.add(rid(10), NOTE, MEMBERS, Uuid::from_u128(5), 1_003)?;
    a.local(rid(10), NOTE, author, 1_004, |r| {
        r.event(SIGNED, vec![(FieldId(1), text("王丽"))])
    })?;
    a.put(rid(11), WIDE, FieldId(5), text("wide value"), 1_005)?;
    Ok(a)
}

async fn remote_batch_is_idempotent(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, county()).await?;
    let a = remote_history()?;
    let batch = encode(a.log());
    let report = store
        .apply_batch(&batch, Some("370202002"), &accept_all)
        .await?;
    ensure!(
        report.applied == batch.len() && report.quarantined == 0,
        "{report:?}"
    );
    let view = store.record(rid(10)).await?.context("applied")?.view;
    ensure!(Some(view) == a.view(rid(10)), "store and core disagree");
    let events = store.record(rid(10)).await?.context("applied")?.events;
    ensure!(events.len() == 1);

    let before = snapshot(&store).await?;
    let log_before = store.ops_since(Cursor::START, 1000).await?;
    let again = store
        .apply_batch(&batch, Some("370202002"), &accept_all)
        .await?;
    ensure!(
        again.applied == 0 && again.duplicates == batch.len(),
        "{again:?}"
    );
    ensure!(
        snapshot(&store).await? == before,
        "a duplicate batch changed state"
    );
    ensure!(store.ops_since(Cursor::START, 1000).await? == log_before);
    ensure!(store.held_count().await? == 0 && store.quarantine_count().await? == 0);
    Ok(())
}
on_every_backend!(
    the_same_batch_twice_changes_nothing,
    remote_batch_is_idempotent
);

async fn bad_ops_are_quarantined(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, county()).await?;
    let reference = open(&env.new_db().await?, county()).await?;
    let a = remote_history()?;
    let good = encode(a.log());

    let template = a.log()[1].clone();
    let mut unknown_kind = template.clone();
    unknown_kind.kind = KindId(99);
    unknown_kind.record = rid(20);
    let mut wrong_type = template.clone();
    wrong_type.record = rid(21);
    wrong_type.change = Change::Put {
        field: COUNT,
        value: text("many"),
        seen: vec![],
    };
    let mut refused = template.clone();
    refused.record = rid(22);
    refused.author.number = 666;
    refused.id.seq = 900;

    let mut batch = good.clone();
    batch.insert(2, vec![0x21, 0x01, 0x02]);
    batch.insert(4, unknown_kind.encode());
    batch.push(wrong_type.encode());
    batch.push(refused.encode());
    let policy = |op: &Op, _: Option<OrgCode>| {
        if op.author.number == 666 {
            Err("author 666 may not write here".to_string())
        } else {
            Ok(())
        }
    };
    let report = store
        .apply_batch(&batch, Some("370202002"), &policy)
        .await?;
    ensure!(
        report.quarantined == 4 && report.applied == good.len(),
        "{report:?}"
    );
    reference.apply_batch(&good, None, &accept_all).await?;
    ensure!(
        snapshot(&store).await? == snapshot(&reference).await?,
        "bad ops changed state"
    );
    ensure!(store.log_len().await? == good.len() as u64);

    let quarantined = store.quarantine(10).await?;
    ensure!(quarantined.len() == 4);
    let reasons: Vec<&str> = quarantined.iter().map(|q| q.reason.as_str()).collect();
    let has = |needle: &str| reasons.iter().any(|r| r.contains(needle));
    ensure!(has("truncated"), "{reasons:?}");
    ensure!(
        has("unknown record kind 99") && has(&rid(20).to_string()),
        "{reasons:?}"
    );
    ensure!(
        has("field count: expects integer, got text") && has(&rid(21).to_string()),
        "{reasons:?}"
    );
    ensure!(
        has("refused by policy: author 666 may not write here"),
        "{reasons:?}"
    );
    ensure!(
        quarantined
            .iter()
            .all(|q| q.from.as_deref() == Some("370202002"))
    );
    let refused_row = quarantined
        .iter()
        .find(|q| q.reason.contains("policy"))
        .context("policy refusal kept")?;
    ensure!(refused_row.record == Some(rid(22)) && refused_row.bytes == refused.encode());
    ensure!(store.quarantine_count().await? == 4);
    Ok(())
}
on_every_backend!(
    bad_operations_are_quarantined_and_the_rest_applied,
    bad_ops_are_quarantined
);

async fn held_until_the_gap_fills(env: &Env) -> Result<()> {
    let url = env.new_db().await?;
    let mut a = Replica::new(ActorId(0xa), township(), schema());
    for i in 0..3u128 {
        a.add(
            rid(30),
            NOTE,
            MEMBERS,
            Uuid::from_u128(100 + i),
            1_000 + i as u64,
        )?;
    }
    let ops = encode(a.log());
    {
        let store = open(&url, county()).await?;
        let r = store.apply_batch(&ops[2..3], None, &accept_all).await?;
        ensure!(r.held == 1 && r.applied == 0, "{r:?}");
        let r = store.apply_batch(&ops[1..2], None, &accept_all).await?;
        ensure!(r.held == 1, "{r:?}");
        // A held add received again is a duplicate, still held once.
        let r = store.apply_batch(&ops[2..3], None, &accept_all).await?;
        ensure!(r.duplicates == 1, "{r:?}");
        ensure!(store.held_count().await? == 2);
        ensure!(store.record(rid(30)).await?.is_none());
        ensure!(store.log_len().await? == 0, "held adds are not logged yet");
        store.close().await;
    }
    let store = open(&url, county()).await?;
    ensure!(
        store.held_count().await? == 2,
        "held adds survive a restart"
    );
    let r = store.apply_batch(&ops[0..1], None, &accept_all).await?;
    ensure!(r.applied == 3 && r.held == 0, "{r:?}");
    ensure!(store.held_count().await? == 0);
    let record = store.record(rid(30)).await?.context("applied")?;
    ensure!(Some(record.view) == a.view(rid(30)));
    ensure!(record.sets.get("members").map(Vec::len) == Some(3));
    // The log keeps the origin's order of the adds.
    let log = store.ops_since(Cursor::START, 10).await?;
    ensure!(log.iter().map(|l| l.bytes.clone()).collect::<Vec<_>>() == ops);
    let r = store.apply_batch(&ops, None, &accept_all).await?;
    ensure!(r.duplicates == 3 && r.applied == 0, "{r:?}");
    Ok(())
}
on_every_backend!(
    a_set_add_ahead_of_its_predecessor_is_held_across_batches_and_restarts,
    held_until_the_gap_fills
);

async fn field_writes_out_of_order(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, county()).await?;
    let mut a = Replica::new(ActorId(0xa), township(), schema());
    for (i, word) in ["first", "second", "third"].iter().enumerate() {
        a.put(rid(31), NOTE, TITLE, text(word), 1_000 + i as u64)?;
    }
    let ops = encode(a.log());
    for op in ops.iter().rev() {
        let r = store
            .apply_batch(std::slice::from_ref(op), None, &accept_all)
            .await?;
        ensure!(r.applied == 1 && r.held == 0, "{r:?}");
    }
    ensure!(store.held_count().await? == 0);
    let record = store.record(rid(31)).await?.context("applied")?;
    ensure!(
        Some(record.view) == a.view(rid(31)),
        "store and core disagree"
    );
    ensure!(record.fields.get("title") == Some(&text("third")));
    ensure!(record.conflicts.is_empty(), "{:?}", record.conflicts);
    ensure!(
        store.history(rid(31)).await?.len() == 3,
        "history keeps every write"
    );
    Ok(())
}
on_every_backend!(
    field_writes_out_of_order_converge_without_holding,
    field_writes_out_of_order
);

async fn held_add_with_a_logged_id(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, county()).await?;
    let mut a = Replica::new(ActorId(0xa), township(), schema());
    let first = a.add(rid(32), NOTE, MEMBERS, Uuid::from_u128(1), 1_000)?;
    let second = a.add(rid(32), NOTE, MEMBERS, Uuid::from_u128(2), 1_001)?;
    // Another operation claiming the id of the held add: logged while the add waits.
    let mut impostor = a.put(rid(33), NOTE, TITLE, text("same id"), 1_002)?;
    impostor.id = second.id;
    let r = store
        .apply_batch(&encode(&[second]), None, &accept_all)
        .await?;
    ensure!(r.held == 1, "{r:?}");
    let r = store
        .apply_batch(&encode(&[impostor]), None, &accept_all)
        .await?;
    ensure!(r.applied == 1, "{r:?}");
    let r = store
        .apply_batch(&encode(&[first]), None, &accept_all)
        .await?;
    ensure!(r.applied == 1 && r.duplicates == 1, "{r:?}");
    ensure!(store.held_count().await? == 0);
    let record = store.record(rid(32)).await?.context("applied")?;
    ensure!(record.sets.get("members") == Some(&vec![Uuid::from_u128(1)]));
    Ok(())
}
on_every_backend!(
    a_held_add_whose_id_is_already_logged_is_a_duplicate,
    held_add_with_a_logged_id
);

async fn conflicts_show_and_resolve(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, county()).await?;
    let mut a = Replica::new(ActorId(0xa), org(370_202_001), schema());
    let mut b = Replica::new(ActorId(0xb), org(370_202_002), schema());
    a.put(rid(40), NOTE, TITLE, text("from one"), 2_000)?;
    b.put(rid(40), NOTE, TITLE, text("from two"), 2_500)?;
    store
        .apply_batch(&encode(a.log()), None, &accept_all)
        .await?;
    store
        .apply_batch(&encode(b.log()), None, &accept_all)
        .await?;
    // The same conflict as the core shows, on both orders of arrival.
    let other = open(&env.new_db().await?, county()).await?;
    other
        .apply_batch(&encode(b.log()), None, &accept_all)
        .await?;
    other
        .apply_batch(&encode(a.log()), None, &accept_all)
        .await?;
    let record = store.record(rid(40)).await?.context("applied")?;
    let mine = snapshot(&store).await?;
    ensure!(mine == snapshot(&other).await?);
    ensure!(
        record.fields.get("title") == Some(&text("from two")),
        "highest clock wins"
    );
    let conflict = record.conflicts.get("title").context("conflict shown")?;
    ensure!(conflict.values.len() == 2);
    ensure!(conflict.values[1].value == text("from one"));
    ensure!(conflict.values[1].stamp.org == org(370_202_001));
    ensure!(
        record.conflicts_json.contains("from one") && record.conflicts_json.contains("370202001")
    );
    let listed = store.conflicts(10).await?;
    ensure!(listed.len() == 1 && listed[0].id == rid(40));

    store
        .write(rid(40), NOTE, Author::system(county()), |r, me| {
            vec![r.put(me, TITLE, text("agreed"))]
        })
        .await?;
    let record = store.record(rid(40)).await?.context("written")?;
    ensure!(record.conflicts.is_empty() && record.fields.get("title") == Some(&text("agreed")));
    ensure!(store.conflicts(10).await?.is_empty());
    Ok(())
}
on_every_backend!(
    concurrent_edits_show_the_same_conflict_and_a_later_write_resolves_it,
    conflicts_show_and_resolve
);

/// Sends everything `from` has after its checkpoint for `peer` to `to`, then moves the
/// checkpoint: one upward sync round.
async fn push(from: &Store, to: &Store, peer: &str) -> Result<usize> {
    let mut sent = 0;
    loop {
        let after = from.checkpoint(peer, Direction::Push).await?;
        let page = from.ops_since(after, 7).await?;
        let Some(last) = page.last() else {
            return Ok(sent);
        };
        let bytes: Vec<Vec<u8>> = page.iter().map(|l| l.bytes.clone()).collect();
        let report = to.apply_batch(&bytes, Some("peer"), &accept_all).await?;
        ensure!(report.quarantined == 0, "{report:?}");
        from.set_checkpoint(peer, Direction::Push, last.cursor)
            .await?;
        sent += page.len();
    }
}

async fn two_stores_converge(env: &Env) -> Result<()> {
    let one = open(&env.new_db().await?, township()).await?;
    let two = open(&env.new_db().await?, county()).await?;
    let at_one = Author::system(township());
    let at_two = Author::system(county());
    for i in 0..12u128 {
        let store = if i % 2 == 0 { &one } else { &two };
        let author = if i % 2 == 0 { at_one } else { at_two };
        store
            .write(rid(50 + i % 5), NOTE, author, |r, me| {
                vec![
                    r.put(me, TITLE, text(&format!("v{i}"))),
                    r.add(me, MEMBERS, Uuid::from_u128(i % 3)),
                ]
            })
            .await?;
        if i % 4 == 3 {
            push(&one, &two, "county").await?;
            push(&two, &one, "township").await?;
        }
    }
    two.write(rid(51), NOTE, at_two, |r, _| {
        vec![r.remove(MEMBERS, Uuid::from_u128(1))]
    })
    .await?;
    push(&one, &two, "county").await?;
    push(&two, &one, "township").await?;
    // A second round sends the echoes back; they are duplicates.
    push(&one, &two, "county").await?;
    push(&two, &one, "township").await?;
    let (s1, s2) = (snapshot(&one).await?, snapshot(&two).await?);
    ensure!(s1.len() == 5);
    if s1 != s2 {
        for (x, y) in s1.iter().zip(&s2) {
            if x != y {
                bail!("record {} differs:\n{x:#?}\n{y:#?}", x.id);
            }
        }
    }
    ensure!(one.log_len().await? == two.log_len().await?);
    ensure!(one.held_count().await? == 0 && two.held_count().await? == 0);
    Ok(())
}
on_every_backend!(two_stores_exchanging_ops_converge, two_stores_converge);

async fn downward_feed_follows_scope(env: &Env) -> Result<()> {
    let first = org(370_202_001);
    let second = org(370_202_002);
    let dispatched_to = first;
    let options = Options {
        // Records signed by "dispatch" are addressed to the first township too.
        audience: Some(Arc::new(move |view: &renda_replica::RecordView| {
            if view
                .events
                .iter()
                .any(|e| e.get(FieldId(1)) == Some(&text("dispatch")))
            {
                vec![dispatched_to]
            } else {
                vec![]
            }
        })),
        ..Options::default()
    };
    let county_store = Store::open(&env.new_db().await?, schema(), county(), options).await?;
    let author = Author::system(county());
    let put_org =
        |o: OrgCode| move |r: &renda_replica::Record, me| vec![r.put(me, ORG, Value::Org(o))];
    county_store
        .write(rid(60), NOTE, author, put_org(first))
        .await?;
    county_store
        .write(rid(61), NOTE, author, put_org(second))
        .await?;
    county_store
        .write(rid(62), NOTE, author, |_, _| vec![])
        .await?;
    county_store
        .write(rid(62), NOTE, author, |r, me| {
            vec![r.put(me, TITLE, text("no org"))]
        })
        .await?;
    county_store
        .write(rid(61), NOTE, author, |r, me| {
            vec![r.put(me, TITLE, text("second's"))]
        })
        .await?;
    county_store
        .write(rid(60), NOTE, author, |r, me| {
            vec![r.put(me, TITLE, text("first's"))]
        })
        .await?;

    let records_in = |page: &[renda_store::LoggedOp]| -> Result<Vec<RecordId>> {
        page.iter()
            .map(|l| {
                Ok(Op::decode_unchecked(&l.bytes)
                    .map_err(|e| anyhow!(e))?
                    .record)
            })
            .collect()
    };
    let feed = county_store
        .ops_for_scope(first, Cursor::START, 100, None)
        .await?;
    ensure!(
        records_in(&feed)? == vec![rid(60), rid(60)],
        "{:?}",
        records_in(&feed)?
    );
    let cursor = feed.last().context("feed not empty")?.cursor;
    // The county's own scope holds both townships' records.
    ensure!(
        county_store
            .ops_for_scope(county(), Cursor::START, 100, None)
            .await?
            .len()
            == 4
    );

    // rid(61) moves to the first township: its whole history goes down after the cursor.
    county_store
        .write(rid(61), NOTE, author, put_org(first))
        .await?;
    let more = county_store.ops_for_scope(first, cursor, 100, None).await?;
    ensure!(
        records_in(&more)? == vec![rid(61); 3],
        "{:?}",
        records_in(&more)?
    );
    let mut positions: Vec<Cursor> = more.iter().map(|l| l.cursor).collect();
    positions.sort();
    ensure!(
        positions == more.iter().map(|l| l.cursor).collect::<Vec<_>>(),
        "feed is ordered"
    );
    // Paging one at a time gives the same feed.
    let mut paged = Vec::new();
    let mut at = cursor;
    while let Some(l) = county_store.ops_for_scope(first, at, 1, None).await?.pop() {
        at = l.cursor;
        paged.push(l);
    }
    ensure!(paged == more);

    // A record addressed to the first township through the audience goes down with its history.
    county_store
        .write(rid(63), NOTE, author, |r, me| {
            vec![r.put(me, TITLE, text("activity"))]
        })
        .await?;
    county_store
        .write(rid(63), NOTE, author, |r, _| {
            vec![r.event(SIGNED, vec![(FieldId(1), text("dispatch"))])]
        })
        .await?;
    let more = county_store.ops_for_scope(first, at, 100, None).await?;
    ensure!(
        records_in(&more)? == vec![rid(63); 2],
        "{:?}",
        records_in(&more)?
    );
    // Records of the second township stay out of the first one's subtree query.
    let in_first = county_store
        .records_of_kind(NOTE, Some(first), 100, 0)
        .await?;
    ensure!(in_first.iter().map(|r| r.id).collect::<Vec<_>>() == vec![rid(60), rid(61)]);
    ensure!(
        county_store
            .records_of_kind(NOTE, Some(county()), 100, 0)
            .await?
            .len()
            == 2
    );
    Ok(())
}
on_every_backend!(
    the_downward_feed_carries_only_the_scope_and_whole_histories,
    downward_feed_follows_scope
);

async fn checkpoints_and_identity_persist(env: &Env) -> Result<()> {
    let url = env.new_db().await?;
    let cursor = Cursor {
        position: 42,
        local_seq: 40,
    };
    let state = PeerSync {
        peer: "370202001".into(),
        last_success: chrono::DateTime::from_timestamp_millis(1_790_000_000_000),
        last_error: Some("connection reset".into()),
        last_error_at: chrono::DateTime::from_timestamp_millis(1_790_000_001_000),
        pending_push: 3,
        pending_pull: 9,
        last_bundle: chrono::DateTime::from_timestamp_millis(1_789_000_000_000),
    };
    let actor = {
        let store = open(&url, county()).await?;
        ensure!(store.checkpoint("370202001", Direction::Pull).await? == Cursor::START);
        store
            .set_checkpoint("370202001", Direction::Pull, cursor)
            .await?;
        store
            .set_checkpoint(
                "370202001",
                Direction::Push,
                Cursor {
                    position: 7,
                    local_seq: 7,
                },
            )
            .await?;
        store.set_peer_sync(&state).await?;
        store
            .write(rid(70), NOTE, Author::system(county()), |r, me| {
                vec![r.put(me, TITLE, text("x"))]
            })
            .await?;
        let actor = store.actor();
        store.close().await;
        actor
    };
    let store = open(&url, county()).await?;
    ensure!(store.actor() == actor, "the actor is minted once");
    ensure!(store.checkpoint("370202001", Direction::Pull).await? == cursor);
    ensure!(
        store
            .checkpoint("370202001", Direction::Push)
            .await?
            .position
            == 7
    );
    ensure!(store.peer_sync("370202001").await? == Some(state.clone()));
    ensure!(store.peer_syncs().await? == vec![state]);
    // The clock never goes backwards across a restart, and sequences continue.
    let before = store.clock().await?;
    let ops = store
        .write(rid(70), NOTE, Author::system(county()), |r, me| {
            vec![r.put(me, TITLE, text("y"))]
        })
        .await?;
    ensure!(ops[0].hlc > before && ops[0].id.seq == 2);
    store.close().await;

    match Store::open(&url, schema(), township(), Options::default()).await {
        Err(e @ Error::OtherOrg { .. }) => {
            ensure!(
                e.to_string().contains("370202") && e.to_string().contains("370202001"),
                "{e}"
            );
        }
        Err(e) => bail!("wrong error: {e}"),
        Ok(_) => bail!("a database of another org unit was opened"),
    }
    Ok(())
}
on_every_backend!(
    checkpoints_persist_and_another_orgs_database_is_refused,
    checkpoints_and_identity_persist
);

async fn gapless_under_concurrency(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, township()).await?;
    let mut tasks = Vec::new();
    for i in 0..200u128 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write(
                    rid(100 + i % 13),
                    WIDE,
                    Author::system(township()),
                    |r, me| {
                        vec![r.put(
                            me,
                            FieldId(2 + (i % 15) as u16),
                            text(&format!("value {i}")),
                        )]
                    },
                )
                .await
        }));
    }
    for task in tasks {
        task.await??;
    }
    let (max, count) = store.origin_extent(store.actor()).await?;
    ensure!(max == 200 && count == 200, "max {max}, count {count}");
    let log = store.ops_since(Cursor::START, 1_000).await?;
    let mut seqs: Vec<u64> = log
        .iter()
        .map(|l| {
            Ok(Op::decode_unchecked(&l.bytes)
                .map_err(|e| anyhow!(e))?
                .id
                .seq)
        })
        .collect::<Result<_>>()?;
    let local: Vec<u64> = log.iter().map(|l| l.cursor.local_seq).collect();
    ensure!(local == (1..=200).collect::<Vec<_>>());
    seqs.sort();
    ensure!(seqs == (1..=200).collect::<Vec<_>>());
    Ok(())
}
on_every_backend!(
    origin_sequences_are_gapless_under_200_concurrent_writes,
    gapless_under_concurrency
);

async fn scope_feed_leaves_out_the_peers_own_ops(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, county()).await?;
    let mut child = Replica::new(ActorId(0xc1), township(), schema());
    child.put(rid(80), NOTE, ORG, Value::Org(township()), 1_000)?;
    child.put(rid(80), NOTE, TITLE, text("from the township"), 1_001)?;
    let r = store
        .apply_batch(&encode(child.log()), Some("370202001"), &accept_all)
        .await?;
    ensure!(r.applied == 2, "{r:?}");
    store
        .write(rid(80), NOTE, Author::system(county()), |r, me| {
            vec![r.put(me, BODY, text("from the county"))]
        })
        .await?;
    let all = store
        .ops_for_scope(township(), Cursor::START, 100, None)
        .await?;
    ensure!(all.len() == 3, "{all:?}");
    let to_child = store
        .ops_for_scope(township(), Cursor::START, 100, Some("370202001"))
        .await?;
    ensure!(to_child.len() == 1, "{to_child:?}");
    let op = Op::decode_unchecked(&to_child[0].bytes).map_err(|e| anyhow!(e))?;
    ensure!(
        op.id.origin == store.actor(),
        "only the county's own write goes down"
    );
    ensure!(
        store
            .count_for_scope(township(), Cursor::START, Some("370202001"))
            .await?
            == 1
    );
    ensure!(
        store
            .count_for_scope(township(), Cursor::START, None)
            .await?
            == 3
    );
    ensure!(
        store
            .count_for_scope(township(), all[1].cursor, None)
            .await?
            == 1
    );
    // Another peer (a sibling township relayed through the county) still gets everything.
    ensure!(
        store
            .ops_for_scope(township(), Cursor::START, 100, Some("370202002"))
            .await?
            .len()
            == 3
    );
    Ok(())
}
on_every_backend!(
    the_scope_feed_leaves_out_operations_received_from_that_peer,
    scope_feed_leaves_out_the_peers_own_ops
);

async fn upward_feed_leaves_out_what_came_from_above(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, township()).await?;
    let mut parent = Replica::new(ActorId(0xc0), county(), schema());
    parent.put(rid(81), NOTE, ORG, Value::Org(township()), 1_000)?;
    parent.put(rid(81), NOTE, TITLE, text("from the county"), 1_001)?;
    store
        .apply_batch(&encode(parent.log()), Some("370202"), &accept_all)
        .await?;
    let mut city = Replica::new(ActorId(0xc1), org(370_200), schema());
    city.put(rid(82), NOTE, ORG, Value::Org(township()), 1_002)?;
    store
        .apply_batch(&encode(city.log()), Some("370200"), &accept_all)
        .await?;
    let mut village = Replica::new(ActorId(0xc2), org(370_202_001_001), schema());
    village.put(rid(83), NOTE, ORG, Value::Org(org(370_202_001_001)), 1_003)?;
    store
        .apply_batch(&encode(village.log()), Some("370202001001"), &accept_all)
        .await?;
    store
        .write(rid(81), NOTE, Author::system(township()), |r, me| {
            vec![r.put(me, BODY, text("from the township"))]
        })
        .await?;
    // Up to the county, or to the city when falling back: what originated in the township's
    // own subtree (its write and its village's), nothing received from the county or the city.
    let up = store.ops_for_peer(Cursor::START, 100).await?;
    let origins: Vec<ActorId> = up
        .iter()
        .map(|l| Op::decode_unchecked(&l.bytes).map(|op| op.id.origin))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!(e))?;
    ensure!(
        origins == vec![ActorId(0xc2), store.actor()],
        "only the subtree's own operations go up: {origins:?}"
    );
    ensure!(store.pending_push("370202").await? == 2);
    ensure!(store.pending_push("370200").await? == 2);
    Ok(())
}
on_every_backend!(
    the_upward_feed_leaves_out_operations_received_from_above,
    upward_feed_leaves_out_what_came_from_above
);

/// A feed's last page ends past everything the log held, what it left out included: a
/// checkpoint moved there walks none of it again, and an idle round reads nothing old.
async fn feed_pages_end_past_what_they_leave_out(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, county()).await?;
    // The township's own operations: never sent back down to it.
    let mut child = Replica::new(ActorId(0xc1), township(), schema());
    for i in 0..20u64 {
        child.put(rid(90), NOTE, TITLE, text(&format!("t{i}")), 1_000 + i)?;
    }
    child.put(rid(90), NOTE, ORG, Value::Org(township()), 1_100)?;
    store
        .apply_batch(&encode(child.log()), Some("370202001"), &accept_all)
        .await?;
    let log_end = store.ops_since(Cursor::START, 1_000).await?;
    let end = log_end.last().map(|l| l.cursor).context("log")?;
    let page = store
        .feed_page(township(), Cursor::START, 5, Some("370202001"))
        .await?;
    ensure!(page.ops.is_empty() && page.last, "{page:?}");
    ensure!(
        page.upto == end,
        "the cursor passes the left-out ops: {page:?}"
    );
    ensure!(
        store
            .count_for_scope(township(), page.upto, Some("370202001"))
            .await?
            == 0
    );
    // A county write after it: the next page from there is exactly that write.
    store
        .write(rid(90), NOTE, Author::system(county()), |r, me| {
            vec![r.put(me, BODY, text("from the county"))]
        })
        .await?;
    ensure!(
        store
            .count_for_scope(township(), page.upto, Some("370202001"))
            .await?
            == 1
    );
    let next = store
        .feed_page(township(), page.upto, 5, Some("370202001"))
        .await?;
    let origins: Vec<ActorId> = next
        .ops
        .iter()
        .map(|l| Op::decode_unchecked(&l.bytes).map(|op| op.id.origin))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!(e))?;
    ensure!(origins == vec![store.actor()], "{origins:?}");
    // Paged one at a time, the whole feed comes in order and once, ending at the log's end.
    let mut at = Cursor::START;
    let mut seen = Vec::new();
    loop {
        let page = store.feed_page(township(), at, 1, None).await?;
        ensure!(page.upto >= at, "the cursor never goes back");
        seen.extend(page.ops.iter().map(|l| l.cursor));
        at = page.upto;
        if page.last {
            break;
        }
    }
    ensure!(seen.len() == 22, "{} ops", seen.len());
    ensure!(seen.windows(2).all(|w| w[0] < w[1]), "in feed order");

    // Upward: a township that only pulled from its county has nothing to push, and its
    // page ends past what it pulled.
    let below = open(&env.new_db().await?, township()).await?;
    let mut parent = Replica::new(ActorId(0xc0), county(), schema());
    for i in 0..20u64 {
        parent.put(rid(91), NOTE, TITLE, text(&format!("c{i}")), 1_000 + i)?;
    }
    below
        .apply_batch(&encode(parent.log()), Some("370202"), &accept_all)
        .await?;
    let up = below.push_page(Cursor::START, 5).await?;
    ensure!(up.ops.is_empty() && up.last, "{up:?}");
    ensure!(up.upto.local_seq == 20, "{up:?}");
    below
        .write(rid(91), NOTE, Author::system(township()), |r, me| {
            vec![r.put(me, BODY, text("from the township"))]
        })
        .await?;
    let up = below.push_page(up.upto, 5).await?;
    ensure!(
        up.ops.len() == 1 && up.last && up.upto.local_seq == 21,
        "{up:?}"
    );
    Ok(())
}
on_every_backend!(
    a_feed_page_ends_past_what_it_leaves_out,
    feed_pages_end_past_what_they_leave_out
);

/// Two stores holding the same operations show the same digest, whatever the order and the
/// batches they came in; one operation more shows, in the one bucket of its record, and the
/// digest of that bucket names the record. Local-only kinds are left out, records outside the
/// org unit's subtree too.
async fn digests_follow_the_operations_held(env: &Env) -> Result<()> {
    let a = open(&env.new_db().await?, county()).await?;
    let b = open(&env.new_db().await?, county()).await?;
    let mut writer = Replica::new(ActorId(0xd1), township(), schema());
    for n in 1..=40u128 {
        writer.put(rid(n), NOTE, ORG, Value::Org(township()), 1_000)?;
        writer.put(rid(n), NOTE, TITLE, text(&format!("n{n}")), 1_001)?;
    }
    let ops = encode(writer.log());
    a.apply_batch(&ops, None, &accept_all).await?;
    let mut reversed = ops.clone();
    reversed.reverse();
    for op in reversed.chunks(7) {
        b.apply_batch(op, None, &accept_all).await?;
    }
    // Elsewhere in the county, and a local-only record: in neither township digest.
    b.write(rid(200), NOTE, Author::system(county()), |r, me| {
        vec![r.put(me, ORG, Value::Org(org(370_202_002)))]
    })
    .await?;
    b.write(rid(201), SECRET, Author::system(township()), |r, me| {
        vec![r.put(me, ORG, Value::Org(township()))]
    })
    .await?;
    let (da, db) = (
        a.digest(township(), None).await?,
        b.digest(township(), None).await?,
    );
    ensure!(da == db, "{da:?} != {db:?}");
    ensure!(da.total.records == 40 && da.total.ops == 80, "{da:?}");
    ensure!(
        da.buckets.len() > 8,
        "40 records spread over buckets: {da:?}"
    );
    ensure!(da.records.is_empty(), "a whole digest lists no records");
    // One more operation at b, on record 7.
    b.write(rid(7), NOTE, Author::system(county()), |r, me| {
        vec![r.put(me, BODY, text("later"))]
    })
    .await?;
    let db = b.digest(township(), None).await?;
    ensure!(da.total != db.total, "the digest shows the extra operation");
    let differ: Vec<u8> = da
        .buckets
        .iter()
        .filter(|(k, part)| db.buckets.get(k) != Some(part))
        .map(|(k, _)| *k)
        .collect();
    ensure!(differ.len() == 1, "only its bucket differs: {differ:?}");
    let (na, nb) = (
        a.digest(township(), Some(differ[0])).await?,
        b.digest(township(), Some(differ[0])).await?,
    );
    let apart: Vec<&RecordId> = na
        .records
        .iter()
        .filter(|(id, part)| nb.records.get(id) != Some(part))
        .map(|(id, _)| id)
        .collect();
    ensure!(
        apart == vec![&rid(7)],
        "the bucket names the record: {apart:?}"
    );
    ensure!(na.records.get(&rid(7)).map(|p| p.ops) == Some(2));
    ensure!(nb.records.get(&rid(7)).map(|p| p.ops) == Some(3));
    // Once a holds it too, they agree again.
    let later = b.ops_since(Cursor::START, 100).await?;
    let later: Vec<Vec<u8>> = later.into_iter().map(|l| l.bytes).collect();
    a.apply_batch(&later, None, &accept_all).await?;
    ensure!(a.digest(township(), None).await? == b.digest(township(), None).await?);

    // A record moved to the neighbouring township leaves this one's digest and joins that
    // one's with all its operations; the county's counts it once still.
    let county_before = b.digest(county(), None).await?;
    b.write(rid(9), NOTE, Author::system(county()), |r, me| {
        vec![r.put(me, ORG, Value::Org(org(370_202_002)))]
    })
    .await?;
    let here = b.digest(township(), None).await?;
    let there = b.digest(org(370_202_002), None).await?;
    ensure!(
        here.total.records == 39 && here.total.ops == 79,
        "{:?}",
        here.total
    );
    ensure!(
        there.total.records == 2 && there.total.ops == 1 + 3,
        "{:?}",
        there.total
    );
    let county_after = b.digest(county(), None).await?;
    ensure!(
        county_after.total.records == county_before.total.records
            && county_after.total.ops == county_before.total.ops + 1,
        "{county_before:?} -> {county_after:?}"
    );
    // The digest kept as operations apply is the one the records give, bucket by bucket.
    for scope in [township(), org(370_202_002), county()] {
        let whole = b.digest(scope, None).await?;
        for (bucket, part) in &whole.buckets {
            let listed = b.digest(scope, Some(*bucket)).await?;
            ensure!(
                listed.total == *part,
                "{scope} bucket {bucket}: {listed:?} vs {part:?}"
            );
        }
    }
    Ok(())
}
on_every_backend!(
    a_digest_follows_the_operations_held_and_finds_where_two_nodes_differ,
    digests_follow_the_operations_held
);

/// A database written before record digests existed gets them filled when the store opens:
/// the digest is the one the operations give (SQLite: the test empties the table by hand).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_before_digests_gets_them_when_opened() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let store = open(&url, township()).await?;
    for n in 0..30u128 {
        store
            .write(rid(n), NOTE, Author::system(township()), |r, me| {
                vec![
                    r.put(me, ORG, Value::Org(township())),
                    r.put(me, TITLE, text("before")),
                ]
            })
            .await?;
    }
    let before = store.digest(township(), None).await?;
    ensure!(
        before.total.records == 30 && before.total.ops == 60,
        "{before:?}"
    );
    store.close().await;
    {
        use sqlx::Connection as _;
        let mut raw = sqlx::SqliteConnection::connect(&url).await?;
        for table in ["scope_digest"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut raw)
                .await?;
        }
        sqlx::query("DELETE FROM meta WHERE key = 'record_digest'")
            .execute(&mut raw)
            .await?;
        raw.close().await?;
    }
    let store = open(&url, township()).await?;
    let after = store.digest(township(), None).await?;
    ensure!(after == before, "{:?} != {:?}", after.total, before.total);
    store.close().await;
    // Opened again, nothing is added twice.
    let store = open(&url, township()).await?;
    ensure!(store.digest(township(), None).await? == before);
    Ok(())
}

/// A quarantined operation whose very copy later arrives from where it belongs is settled; an
/// impostor with the same id and other bytes stays open; a person dismisses one with a reason.
async fn quarantine_settles(env: &Env) -> Result<()> {
    let city = open(&env.new_db().await?, org(370_200)).await?;
    let mut county_replica = Replica::new(ActorId(0xc0), county(), schema());
    county_replica.put(rid(95), NOTE, ORG, Value::Org(township()), 1_000)?;
    county_replica.put(rid(95), NOTE, TITLE, text("from the county"), 1_001)?;
    let ops = encode(county_replica.log());
    // From the township (falling back to the city), the county's operations are refused.
    let only_the_county = |op: &Op, _: Option<OrgCode>| {
        if op.id.origin == ActorId(0xc0) {
            Err("not originated in the sender's subtree".to_string())
        } else {
            Ok(())
        }
    };
    let r = city
        .apply_batch(&ops, Some("370202001"), &only_the_county)
        .await?;
    ensure!(r.quarantined == 2 && r.settled == 0, "{r:?}");
    // An impostor: the first operation's id with other bytes.
    let mut impostor = county_replica.log()[1].clone();
    impostor.change = Change::Put {
        field: TITLE,
        value: text("forged"),
        seen: vec![],
    };
    city.apply_batch(&[impostor.encode()], Some("370202001"), &only_the_county)
        .await?;
    ensure!(city.quarantine_count().await? == 3);
    // The county sends them itself: both real entries settle, the impostor stays open.
    let r = city.apply_batch(&ops, Some("370202"), &accept_all).await?;
    ensure!(r.applied == 2 && r.settled == 2, "{r:?}");
    ensure!(city.quarantine_count().await? == 1);
    let open_entries = city.quarantine(10).await?;
    ensure!(
        open_entries.len() == 1 && open_entries[0].bytes == impostor.encode(),
        "{open_entries:?}"
    );
    let settled = city.quarantine_settled(10).await?;
    ensure!(settled.len() == 2, "{settled:?}");
    ensure!(
        settled.iter().all(|q| q
            .settled
            .as_ref()
            .is_some_and(|s| s.superseded && s.by.is_empty())),
        "{settled:?}"
    );
    // A person dismisses the impostor, with a reason; without one, nothing changes.
    let id = open_entries[0].id;
    ensure!(matches!(
        city.dismiss_quarantined(id, "370200:5", "  ").await,
        Err(Error::Argument(_))
    ));
    ensure!(city.quarantine_count().await? == 1);
    ensure!(
        city.dismiss_quarantined(id, "370200:5", "伪造的操作，已报告乡镇")
            .await?
    );
    ensure!(!city.dismiss_quarantined(id, "370200:5", "again").await?);
    ensure!(city.quarantine_count().await? == 0 && city.quarantine(10).await?.is_empty());
    let dismissed = city.quarantine_settled(10).await?;
    let entry = dismissed
        .iter()
        .find(|q| q.id == id)
        .context("dismissed entry")?;
    let how = entry.settled.as_ref().context("settled")?;
    ensure!(!how.superseded && how.by == "370200:5" && how.note == "伪造的操作，已报告乡镇");
    Ok(())
}
on_every_backend!(
    a_quarantined_operation_is_settled_by_its_legitimate_copy_or_dismissed_with_a_reason,
    quarantine_settles
);

async fn local_only_never_in_feeds(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, township()).await?;
    let author = Author::system(township());
    store
        .write(rid(90), SECRET, author, |r, me| {
            vec![
                r.put(me, ORG, Value::Org(township())),
                r.put(me, TITLE, text("370202199001011234")),
            ]
        })
        .await?;
    store
        .write(rid(91), NOTE, author, |r, me| {
            vec![
                r.put(me, ORG, Value::Org(township())),
                r.put(me, TITLE, text("public")),
            ]
        })
        .await?;
    // A local-only operation received from elsewhere (a bug there) stays here too.
    let mut other = Replica::new(ActorId(0xd), township(), schema());
    other.put(rid(92), SECRET, ORG, Value::Org(township()), 1_000)?;
    store
        .apply_batch(&encode(other.log()), Some("peer"), &accept_all)
        .await?;
    ensure!(store.log_len().await? == 5);
    ensure!(store.record(rid(90)).await?.is_some(), "kept locally");
    let records_in = |page: Vec<renda_store::LoggedOp>| -> Result<Vec<RecordId>> {
        page.iter()
            .map(|l| {
                Ok(Op::decode_unchecked(&l.bytes)
                    .map_err(|e| anyhow!(e))?
                    .record)
            })
            .collect()
    };
    let up = records_in(store.ops_since(Cursor::START, 100).await?)?;
    ensure!(up == vec![rid(91), rid(91)], "{up:?}");
    for org in [township(), county()] {
        let down = records_in(store.ops_for_scope(org, Cursor::START, 100, None).await?)?;
        ensure!(down == vec![rid(91), rid(91)], "{org}: {down:?}");
        ensure!(store.count_for_scope(org, Cursor::START, None).await? == 2);
    }
    ensure!(store.pending_push("county").await? == 2);
    Ok(())
}
on_every_backend!(
    local_only_kinds_never_appear_in_either_feed,
    local_only_never_in_feeds
);

async fn policy_sees_the_record_org(env: &Env) -> Result<()> {
    let store = open(&env.new_db().await?, county()).await?;
    let mut a = Replica::new(ActorId(0xa), township(), schema());
    let seen: std::sync::Mutex<Vec<(OpId, Option<OrgCode>)>> = Default::default();
    let policy = |op: &Op, org: Option<OrgCode>| {
        seen.lock().expect("not poisoned").push((op.id, org));
        Ok(())
    };
    let create = a.put(rid(95), NOTE, ORG, Value::Org(township()), 1_000)?;
    let title = a.put(rid(95), NOTE, TITLE, text("t"), 1_001)?;
    store
        .apply_batch(&encode(&[create.clone(), title.clone()]), None, &policy)
        .await?;
    let add = a.add(rid(95), NOTE, MEMBERS, Uuid::from_u128(1), 1_002)?;
    let moved = a.put(rid(95), NOTE, ORG, Value::Org(org(370_202_002)), 1_003)?;
    let after = a.put(rid(95), NOTE, BODY, text("b"), 1_004)?;
    let elsewhere = a.put(rid(96), NOTE, TITLE, text("new"), 1_005)?;
    store
        .apply_batch(
            &encode(&[add.clone(), moved.clone(), after.clone(), elsewhere.clone()]),
            None,
            &policy,
        )
        .await?;
    let seen = seen.into_inner().expect("not poisoned");
    let expected = vec![
        (create.id, None),
        (title.id, Some(township())),
        (add.id, Some(township())),
        (moved.id, Some(township())),
        (after.id, Some(org(370_202_002))),
        (elsewhere.id, None),
    ];
    ensure!(seen == expected, "{seen:?}");
    Ok(())
}
on_every_backend!(
    the_policy_receives_the_org_of_the_record,
    policy_sees_the_record_org
);

// --- crash test ------------------------------------------------------------------------------

const CRASH_ENV: &str = "RENDA_STORE_CRASH_DB";
const CRASH_ORIGIN: ActorId = ActorId(0x5eed);
const CRASH_BATCH: u64 = 21;
const MARKER: u128 = 9_999;

/// One batch of the crash workload: 20 field writes, then a marker write naming the batch.
fn crash_batch(generator: &mut Replica, k: u64) -> Result<Vec<Vec<u8>>> {
    let mut ops = Vec::new();
    for i in 0..CRASH_BATCH - 1 {
        let r = u128::from((k * 7 + i * 13) % 50);
        let field = FieldId(2 + ((k + i) % 15) as u16);
        let op = generator.put(
            rid(r),
            WIDE,
            field,
            text(&format!("batch {k} op {i}")),
            1_000 + k,
        )?;
        ops.push(op.encode());
    }
    let marker = generator.put(rid(MARKER), NOTE, COUNT, Value::Int(k as i64), 1_000 + k)?;
    ops.push(marker.encode());
    Ok(ops)
}

/// Not a test on its own: the child process of the crash test (it returns at once unless the
/// crash test started it). It applies batches and makes local writes until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() -> Result<()> {
    let Ok(url) = std::env::var(CRASH_ENV) else {
        return Ok(());
    };
    let store = open(&url, county()).await?;
    let mut generator = Replica::new(CRASH_ORIGIN, township(), schema());
    for k in 0..1_000_000u64 {
        let batch = crash_batch(&mut generator, k)?;
        let report = store
            .apply_batch(&batch, Some("child"), &accept_all)
            .await?;
        ensure!(report.applied == batch.len(), "{report:?}");
        store
            .write(
                rid(8_000 + u128::from(k % 10)),
                WIDE,
                Author::system(county()),
                |r, me| vec![r.put(me, FieldId(2), text(&format!("local {k}")))],
            )
            .await?;
        if k == 2 {
            println!("crash-child: running");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_while_applying_leaves_only_whole_batches() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    for round in 0..4 {
        let path = dir.path().join(format!("crash{round}.sqlite"));
        let url = format!("sqlite://{}", path.display());
        // Create the database first so the child spends its time applying.
        open(&url, county()).await?.close().await;
        let mut child = std::process::Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CRASH_ENV, &url)
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let wait_ms = 300 + rand::random::<u64>() % 1_500;
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
        if let Some(status) = child.try_wait()? {
            bail!("the child exited before it was killed: {status}");
        }
        child.kill()?; // SIGKILL on Unix
        child.wait()?;

        let store = open(&url, county()).await?;
        let problems = store.integrity_check().await?;
        ensure!(
            problems.is_empty(),
            "round {round} (killed after {wait_ms} ms): {problems:?}"
        );
        let (max, count) = store.origin_extent(CRASH_ORIGIN).await?;
        ensure!(
            max == count,
            "round {round}: origin sequence has gaps: max {max}, count {count}"
        );
        ensure!(
            count % CRASH_BATCH == 0,
            "round {round}: a partial batch: {count} ops"
        );
        let batches = count / CRASH_BATCH;
        if batches > 0 {
            let marker = store.record(rid(MARKER)).await?.context("marker written")?;
            ensure!(
                marker.fields.get("count") == Some(&Value::Int(batches as i64 - 1)),
                "round {round}: marker {:?} after {batches} batches",
                marker.fields.get("count")
            );
        }
        let (own_max, own_count) = store.origin_extent(store.actor()).await?;
        ensure!(
            own_max == own_count,
            "round {round}: local sequence has gaps"
        );
        ensure!(store.held_count().await? == 0);
        ensure!(
            store.log_len().await? == count + own_count,
            "round {round}: log holds other operations"
        );
        // The store goes on where it stopped.
        let mut generator = Replica::new(CRASH_ORIGIN, township(), schema());
        let mut replay = Vec::new();
        for k in 0..=batches {
            replay = crash_batch(&mut generator, k)?;
        }
        let report = store.apply_batch(&replay, None, &accept_all).await?;
        ensure!(report.applied == CRASH_BATCH as usize, "{report:?}");
        eprintln!("crash round {round}: killed after {wait_ms} ms with {batches} whole batches");
        store.close().await;
    }
    Ok(())
}

async fn broadcast_kinds_reach_every_node(env: &Env) -> Result<()> {
    let schema = Schema::builder(1)
        .kind(1, "org_unit", |k| k.text(2, "name", 50).broadcast())
        .kind(2, "note", |k| k.text(2, "title", 24))
        .build()
        .map_err(|e| anyhow!(e))?;
    let store = Store::open(
        &env.new_db().await?,
        Arc::new(schema),
        county(),
        Options::default(),
    )
    .await?;
    let unit = rid(90);
    store
        .write(unit, KindId(1), Author::system(county()), |r, me| {
            vec![
                r.put(me, ORG, Value::Org(county())),
                r.put(me, FieldId(2), text("市南区")),
            ]
        })
        .await?;
    let note = rid(91);
    store
        .write(note, KindId(2), Author::system(county()), |r, me| {
            vec![r.put(me, ORG, Value::Org(county()))]
        })
        .await?;
    let (records, count) = scope_feed(&store, township()).await?;
    ensure!(
        records == vec![unit, unit],
        "only the org unit, once per operation: {records:?}"
    );
    ensure!(count == 2);
    Ok(())
}

/// The record of each operation in `unit`'s downward feed from the start, and the feed's count.
async fn scope_feed(store: &Store, unit: OrgCode) -> Result<(Vec<RecordId>, u64)> {
    let down = store.ops_for_scope(unit, Cursor::START, 100, None).await?;
    let records = down
        .iter()
        .map(|o| Op::decode_unchecked(&o.bytes).map(|op| op.record))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!(e))?;
    Ok((
        records,
        store.count_for_scope(unit, Cursor::START, None).await?,
    ))
}
on_every_backend!(
    broadcast_kinds_reach_every_node_once,
    broadcast_kinds_reach_every_node
);

/// A subtree kind (users) goes down to every unit below its org, and to no other: a township
/// of another county, or a sibling unit, gets nothing. A plain kind at the county stays there.
async fn subtree_kinds_reach_every_unit_below(env: &Env) -> Result<()> {
    let schema = Schema::builder(1)
        .kind(1, "user", |k| k.text(2, "login", 40).subtree())
        .kind(2, "note", |k| k.text(2, "title", 24))
        .build()
        .map_err(|e| anyhow!(e))?;
    let city = org(370_200);
    let store = Store::open(
        &env.new_db().await?,
        Arc::new(schema),
        city,
        Options::default(),
    )
    .await?;
    let user = rid(92);
    store
        .write(user, KindId(1), Author::system(county()), |r, me| {
            vec![
                r.put(me, ORG, Value::Org(county())),
                r.put(me, FieldId(2), text("zhangsan")),
            ]
        })
        .await?;
    let note = rid(93);
    store
        .write(note, KindId(2), Author::system(county()), |r, me| {
            vec![r.put(me, ORG, Value::Org(county()))]
        })
        .await?;
    let records_for = |unit: OrgCode| {
        let store = store.clone();
        async move {
            let (mut records, count) = scope_feed(&store, unit).await?;
            records.dedup();
            Ok::<_, anyhow::Error>((records, count))
        }
    };
    // Below the county: the user's two operations, not the note.
    for unit in [township(), org(370_202_002)] {
        let (records, count) = records_for(unit).await?;
        ensure!(
            records == vec![user],
            "{unit} gets the user only: {records:?}"
        );
        ensure!(
            count == 2,
            "{unit} counts the user's two operations: {count}"
        );
    }
    // The county itself: both records.
    let (records, _) = records_for(county()).await?;
    ensure!(records.len() == 2, "the county gets both: {records:?}");
    // Another county's township and the other county: nothing.
    for unit in [org(370_212_001), org(370_212)] {
        let (records, count) = records_for(unit).await?;
        ensure!(
            records.is_empty() && count == 0,
            "{unit} is outside the subtree: {records:?}"
        );
    }
    Ok(())
}
on_every_backend!(
    subtree_kinds_reach_every_unit_below_and_no_other,
    subtree_kinds_reach_every_unit_below
);

/// A damaged SQLite file is refused with what to do (restore or re-sync), as `Error::Damaged`,
/// and opening it changes none of its bytes: a file that is not a database at all, and a real
/// database whose pages were overwritten after it was written.
#[tokio::test]
async fn a_damaged_database_says_what_to_do_and_is_left_as_it_was() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let advice = |e: &Error| {
        let shown = e.to_string();
        matches!(e, Error::Damaged(_))
            && shown.contains("restore it from a backup")
            && shown.contains("receive its data afresh")
    };

    let garbage = dir.path().join("garbage.sqlite");
    let bytes: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&garbage, &bytes)?;
    match Store::open(
        &format!("sqlite://{}", garbage.display()),
        schema(),
        county(),
        Options::default(),
    )
    .await
    {
        Err(e) => ensure!(advice(&e), "not told what to do: {e}"),
        Ok(_) => bail!("a file of random bytes opened as a database"),
    }
    ensure!(
        std::fs::read(&garbage)? == bytes,
        "the damaged file was written to"
    );

    let real = dir.path().join("real.sqlite");
    let url = format!("sqlite://{}", real.display());
    let store = open(&url, county()).await?;
    for n in 0..200 {
        store
            .write(rid(2_000 + n), NOTE, Author::system(county()), |r, me| {
                vec![
                    r.put(me, ORG, Value::Org(county())),
                    r.put(me, BODY, text(&"意见".repeat(60))),
                ]
            })
            .await?;
    }
    store.close().await;
    let mut damaged = std::fs::read(&real)?;
    ensure!(damaged.len() > 16 * 4096, "{} bytes", damaged.len());
    // Keep the header and the schema page; overwrite every later page.
    for (i, b) in damaged.iter_mut().enumerate().skip(2 * 4096) {
        *b = (i * 31 % 253) as u8;
    }
    std::fs::write(&real, &damaged)?;
    let refused = match Store::open(&url, schema(), county(), Options::default()).await {
        Err(e) => e,
        Ok(store) => {
            // Opened: the first read of the damaged pages must say the same.
            let read = store.integrity_check().await;
            let first = store.record(rid(2_000)).await;
            store.close().await;
            match (read, first) {
                (Err(e), _) | (_, Err(e)) => e,
                (Ok(problems), Ok(_)) => bail!("damaged pages read back: {problems:?}"),
            }
        }
    };
    ensure!(advice(&refused), "not told what to do: {refused}");
    Ok(())
}
