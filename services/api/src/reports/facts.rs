//! The report-facts projection: what each reportable record (and each dated step of one) says
//! for the reports, computed from its materialised state with the domain's folds, and kept in
//! the store's `report_facts` table, current up to a watermark in the op log.
//!
//! [`catch_up`] runs before every report (and in the background, see `reports_server`): it
//! reads the records with operations logged after the watermark, recomputes their facts, and
//! hands them to the store, which replaces those records' facts and moves the watermark in one
//! transaction, a window of [`WINDOW`] operations at a time. So a report never sees facts older
//! than the operations committed before it started, and a crash anywhere (between an apply and
//! its projection, or in the middle of a catch-up) leaves facts and watermark agreeing: the next
//! catch-up does what was missing.
//!
//! What the columns hold, per fact (every date is unix ms; a day is its midnight in UTC+8):
//!
//! | fact         | date_ms                    | subject      | code     | flags         | amount     | end_ms        | label | extra |
//! |--------------|----------------------------|--------------|----------|---------------|------------|---------------|-------|-------|
//! | opinion      | raised_at                  | station      | route where raised | escalated |            | first resolve |       |       |
//! | suggestion   | first submitted day        |              | status   | [`sflag`] bits|            |               | title | units, overdue candidates, pending units (JSON) |
//! | project      | 1 January of its year      |              | progress | adopted, accepted | budget (fen) |          | title |       |
//! | deputy       |                            |              | ended    |               |            |               | name  |       |
//! | station      |                            |              |          |               |            |               | name  |       |
//! | activity     | starts_at                  |              |          |               |            |               |       |       |
//! | check-in, speech | at                     | deputy       |          |               |            |               |       |       |
//! | visit        | day                        | the deputy   |          |               | households |               |       |       |
//! | report-back  | day                        | deputy       |          |               |            |               |       |       |
//! | reception    | day                        | the station  |          |               |            |               |       |       |
//! | handling unit|                            |              |          |               |            |               | name  |       |
//!
//! Deleted records have no facts. Bump [`VERSION`] whenever what a fact holds changes: a store
//! whose facts were computed by another version rebuilds them from the whole log.

use std::time::Instant;

use chrono::NaiveDate;
use renda_domain::activity::{self as act, CheckInMode};
use renda_domain::person;
use renda_domain::project;
use renda_domain::record::Coded;
use renda_domain::suggestion as sug;
use renda_domain::{opinion, rates, station};
use renda_store::{Fact, StoredRecord};

use crate::core::{Core, int, ref_id, text};
use crate::error::Result;
use crate::schema::kind;

/// The definition of the facts below; stored beside them.
pub(crate) const VERSION: i64 = 4;

/// Operations per catch-up transaction: bounds how long one holds the writer, and how much
/// one catch-up holds in memory.
pub(crate) const WINDOW: u64 = 20_000;

/// What a fact row is (`report_facts.fact`).
pub(crate) mod fact {
    pub const OPINION: u16 = 1;
    pub const SUGGESTION: u16 = 2;
    pub const PROJECT: u16 = 3;
    pub const DEPUTY: u16 = 4;
    pub const STATION: u16 = 5;
    pub const ACTIVITY: u16 = 6;
    pub const CHECK_IN: u16 = 7;
    pub const SPEECH: u16 = 8;
    pub const VISIT: u16 = 9;
    pub const REPORT_BACK: u16 = 10;
    pub const RECEPTION: u16 = 11;
    pub const HANDLING_UNIT: u16 = 12;
}

/// Opinion routes (`code` of an opinion fact), in the report's column order.
pub(crate) const ROUTES: [&str; 4] = [
    "answered_on_site",
    "transferred_to_township",
    "assigned_to_department",
    "escalated_upward",
];

/// Bits of an opinion fact's `flags`.
pub(crate) const OPINION_ESCALATED: i64 = 1;

/// Bits of a project fact's `flags`.
pub(crate) const PROJECT_ADOPTED: i64 = 1;
pub(crate) const PROJECT_ACCEPTED: i64 = 2;

/// A deputy fact's `code` when the deputy's term ended (in the org index, so the deputies
/// list never visits the table).
pub(crate) const DEPUTY_ENDED: i64 = 1;

/// Bits of a suggestion fact's `flags`: the item's own share of each rate (numerator and
/// denominator of `rates::suggestion_rates` over this item alone; the rates are sums of them),
/// and the status figures of the by-org table.
pub(crate) mod sflag {
    pub const REPLY_NUM: i64 = 1;
    pub const REPLY_DEN: i64 = 1 << 1;
    pub const SATISFACTION_NUM: i64 = 1 << 2;
    pub const SATISFACTION_DEN: i64 = 1 << 3;
    pub const IMPLEMENTATION_NUM: i64 = 1 << 4;
    pub const IMPLEMENTATION_DEN: i64 = 1 << 5;
    pub const HANDLING: i64 = 1 << 6;
    pub const REPLIED: i64 = 1 << 7;
    /// 办结: closed after its reply. A withdrawn or merged item ended, but was not handled to
    /// the end: it is counted by its own bit, never as finished.
    pub const CLOSED: i64 = 1 << 8;
    /// 退回修改: review sent it back for revision at some point.
    pub const REVISION_REQUESTED: i64 = 1 << 9;
    /// 撤回.
    pub const WITHDRAWN: i64 = 1 << 10;
    /// 并案: merged into another item.
    pub const MERGED: i64 = 1 << 11;
    /// 重点督办: the supervision mode in force is key supervision.
    pub const KEY_SUPERVISION: i64 = 1 << 12;
}

/// A suggestion's `extra`: the units it is assigned to, what would be overdue once its due
/// date passes (`sug::overdue` on a day after every deadline), as (kind, due date), and the
/// replying units that have not replied in this round (whose reply is the one late).
pub(crate) type SuggestionExtra = (
    Vec<uuid::Uuid>,
    Vec<(sug::OverdueKind, NaiveDate)>,
    Vec<uuid::Uuid>,
);

/// A day after every deadline: asked on it, `sug::overdue` lists every candidate with its due.
const END_OF_DAYS: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date");

/// Unix ms of the start of a Chinese local date.
pub(crate) fn day_ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis() - 8 * 3_600_000)
        .unwrap_or(0)
}

/// What a catch-up did.
#[derive(Clone, Copy, Debug, Default)]
pub struct CatchUp {
    /// Operations newly covered.
    pub operations: u64,
    /// Records whose facts were recomputed (a record changed in several windows counts in each).
    pub records: u64,
    pub facts: u64,
}

/// Brings the facts up to the last operation logged when it starts.
pub(crate) async fn catch_up(core: &Core) -> Result<CatchUp> {
    let store = &core.store;
    let end = store.last_local_seq().await?;
    let mut done = CatchUp::default();
    // Nothing to do is the common case: answer it without the lock.
    if matches!(store.projection().await?, Some(p) if p.version == VERSION && p.local_seq >= end) {
        return Ok(done);
    }
    let _one = store.lock_projection().await;
    let started = Instant::now();
    let mut at = match store.projection().await? {
        Some(p) if p.version == VERSION => p.local_seq,
        Some(p) => {
            tracing::info!(
                stored = p.version,
                current = VERSION,
                "report facts of another definition: rebuilding them"
            );
            store.reset_projection(VERSION).await?;
            0
        }
        None => 0,
    };
    while at < end {
        let upto = end.min(at.saturating_add(WINDOW));
        let changed = store.records_changed(at, upto).await?;
        let mut facts = Vec::new();
        for record in &changed.records {
            facts_of(core, record, &mut facts)?;
        }
        let (records, n) = (changed.records.len() as u64, facts.len() as u64);
        if store
            .advance_projection(VERSION, at, upto, &changed.ids, facts)
            .await?
        {
            done.operations += upto - at;
            done.records += records;
            done.facts += n;
            at = upto;
        } else {
            // Another process moved the watermark (or reset it): start from where it is.
            match store.projection().await? {
                Some(p) if p.version == VERSION => at = p.local_seq,
                _ => {
                    store.reset_projection(VERSION).await?;
                    at = 0;
                }
            }
        }
    }
    if done.operations > 0 {
        tracing::debug!(
            operations = done.operations,
            records = done.records,
            facts = done.facts,
            ms = started.elapsed().as_millis() as u64,
            "report facts caught up"
        );
    }
    Ok(done)
}

/// `code` of a check-in fact: [`CHECK_IN_SCAN`] for a deputy's own check-in with the signed
/// code, [`CHECK_IN_PROXY`] for one a clerk entered on the deputy's behalf (代录), which is also
/// what check-ins recorded before modes existed count as (the domain reads them so).
const fn check_in_code(mode: CheckInMode) -> i64 {
    match mode {
        CheckInMode::Scan => CHECK_IN_SCAN,
        CheckInMode::Proxy => CHECK_IN_PROXY,
    }
}

pub(crate) const CHECK_IN_SCAN: i64 = 0;
pub(crate) const CHECK_IN_PROXY: i64 = 1;

/// A fact of `record` with nothing but its identity and org filled in.
fn base(record: &StoredRecord, item: u32, fact: u16) -> Fact {
    Fact {
        record: record.id,
        item,
        fact,
        org_code: record.org.map(|o| o.get()),
        date_ms: None,
        subject: None,
        code: 0,
        flags: 0,
        amount: 0,
        end_ms: None,
        label: None,
        extra: None,
    }
}

fn label(r: &StoredRecord, field: &str) -> Option<String> {
    r.fields
        .get(field)
        .and_then(renda_replica::Value::as_text)
        .map(str::to_owned)
}

/// Appends the facts of one record to `out`.
pub(crate) fn facts_of(core: &Core, r: &StoredRecord, out: &mut Vec<Fact>) -> Result<()> {
    if r.deleted {
        return Ok(());
    }
    match r.kind_name.as_str() {
        kind::OPINION => {
            // Opinions without the date they were raised are in no period.
            let Some(raised) = r
                .fields
                .get("raised_at")
                .and_then(renda_replica::Value::as_int)
            else {
                return Ok(());
            };
            let mut f = base(r, 0, fact::OPINION);
            f.date_ms = Some(raised);
            f.subject = ref_id(r, "station");
            let events = core.domain_events::<opinion::Event>(r)?;
            // How the unit where it was raised handled it, as the domain's fold says (an
            // escalation counts as 逐级向上反映 whatever the level above did next).
            if let Some(route) = crate::opinion::fold(core, r)?.route {
                f.code = ROUTES
                    .iter()
                    .position(|r| *r == route.code())
                    .map_or(0, |i| i as i64 + 1);
            }
            f.end_ms = events
                .iter()
                .filter_map(|e| match &e.event {
                    opinion::Event::Resolved { at, .. } => Some(at.timestamp_millis()),
                    _ => None,
                })
                .min();
            if events
                .iter()
                .any(|e| matches!(e.event, opinion::Event::Escalated { .. }))
            {
                f.flags |= OPINION_ESCALATED;
            }
            out.push(f);
        }
        kind::SUGGESTION => suggestion_fact(core, r, out)?,
        kind::PROJECT => {
            let Some(year) = r.fields.get("year").and_then(renda_replica::Value::as_int) else {
                return Ok(());
            };
            let Some(jan1) = i32::try_from(year)
                .ok()
                .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1))
            else {
                return Ok(());
            };
            let events = core.domain_events::<project::Event>(r)?;
            let mut f = base(r, 0, fact::PROJECT);
            f.date_ms = Some(day_ms(jan1));
            f.label = label(r, "title");
            f.amount = int(r, "budget_fen");
            // The highest progress reported, whatever the fold made of it.
            f.code = events
                .iter()
                .filter_map(|e| match e.event {
                    project::Event::Progress { percent, .. } => Some(i64::from(percent)),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            if events
                .iter()
                .any(|e| matches!(e.event, project::Event::Voted { adopted: true, .. }))
            {
                f.flags |= PROJECT_ADOPTED;
            }
            if events
                .iter()
                .any(|e| matches!(e.event, project::Event::AcceptancePassed { .. }))
            {
                f.flags |= PROJECT_ACCEPTED;
            }
            out.push(f);
        }
        kind::DEPUTY => {
            let mut f = base(r, 0, fact::DEPUTY);
            f.label = label(r, "name");
            let status = text(r, "status");
            if status == "终止" || status == "ended" {
                f.code = DEPUTY_ENDED;
            }
            out.push(f);
            // Items number every stored event of the record, read or not.
            for (i, e) in core.events(r)?.iter().enumerate() {
                if let Some(person::Event::Visit { households, on, .. }) = e.decode() {
                    let mut v = base(r, item(i), fact::VISIT);
                    v.date_ms = Some(day_ms(on));
                    v.subject = Some(r.id.0);
                    v.amount = i64::from(households);
                    out.push(v);
                }
            }
        }
        kind::STATION => {
            let mut f = base(r, 0, fact::STATION);
            f.label = label(r, "name");
            out.push(f);
            // Numbered by position among all the station's events, as stored.
            for (i, e) in core.events(r)?.iter().enumerate() {
                if let Some(station::Event::Reception { on, .. }) = e.decode() {
                    let mut v = base(r, item(i), fact::RECEPTION);
                    v.date_ms = Some(day_ms(on));
                    v.subject = Some(r.id.0);
                    out.push(v);
                }
            }
        }
        kind::ACTIVITY => {
            if let Some(starts) = r
                .fields
                .get("starts_at")
                .and_then(renda_replica::Value::as_int)
            {
                let mut f = base(r, 0, fact::ACTIVITY);
                f.date_ms = Some(starts);
                out.push(f);
            }
            for (i, e) in core.events(r)?.iter().enumerate() {
                let (which, deputy, at, code) = match e.decode::<act::Event>() {
                    Some(act::Event::CheckedIn {
                        deputy, at, mode, ..
                    }) => (fact::CHECK_IN, deputy, at, check_in_code(mode)),
                    Some(act::Event::Speech { deputy, at, .. }) => (fact::SPEECH, deputy, at, 0),
                    _ => continue,
                };
                let mut v = base(r, item(i), which);
                v.date_ms = Some(at.timestamp_millis());
                v.subject = Some(deputy);
                v.code = code;
                out.push(v);
            }
        }
        kind::REPORT_BACK => {
            let (Some(deputy), Some(on)) = (
                ref_id(r, "deputy"),
                r.fields.get("on").and_then(crate::core::value_date),
            ) else {
                return Ok(());
            };
            let mut f = base(r, 0, fact::REPORT_BACK);
            f.date_ms = Some(day_ms(on));
            f.subject = Some(deputy);
            out.push(f);
        }
        kind::HANDLING_UNIT => {
            if let Some(name) = label(r, "name") {
                let mut f = base(r, 0, fact::HANDLING_UNIT);
                f.label = Some(name);
                out.push(f);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The item number of a record's `i`-th event.
fn item(i: usize) -> u32 {
    u32::try_from(i).map_or(u32::MAX, |i| i.saturating_add(1))
}

/// A suggestion's fact: the domain's fold of its events, reduced to what the reports count.
fn suggestion_fact(core: &Core, r: &StoredRecord, out: &mut Vec<Fact>) -> Result<()> {
    let events = core.domain_events::<sug::Event>(r)?;
    let Some(submitted) = events
        .iter()
        .filter_map(|e| match e.event {
            sug::Event::Submitted { at } => Some(at),
            _ => None,
        })
        .min()
    else {
        return Ok(());
    };
    let (suggestion, state) = crate::suggestion::fold_events(r, &events)?;
    let mine = rates::suggestion_rates(&[(&state, suggestion.lead_deputy)]);
    let mut f = base(r, 0, fact::SUGGESTION);
    f.date_ms = Some(day_ms(submitted));
    f.label = Some(suggestion.title.clone());
    f.code = state.status as i64;
    for (present, bit) in [
        (mine.reply.numerator > 0, sflag::REPLY_NUM),
        (mine.reply.denominator > 0, sflag::REPLY_DEN),
        (mine.satisfaction.numerator > 0, sflag::SATISFACTION_NUM),
        (mine.satisfaction.denominator > 0, sflag::SATISFACTION_DEN),
        (mine.implementation.numerator > 0, sflag::IMPLEMENTATION_NUM),
        (
            mine.implementation.denominator > 0,
            sflag::IMPLEMENTATION_DEN,
        ),
        (state.status.is_handling(), sflag::HANDLING),
        (state.replied, sflag::REPLIED),
        (state.status == sug::Status::Closed, sflag::CLOSED),
        (state.revision_requested, sflag::REVISION_REQUESTED),
        (state.status == sug::Status::Withdrawn, sflag::WITHDRAWN),
        (state.status == sug::Status::Merged, sflag::MERGED),
        (
            state.supervision == Some(sug::SupervisionMode::Key),
            sflag::KEY_SUPERVISION,
        ),
    ] {
        if present {
            f.flags |= bit;
        }
    }
    let units: Vec<uuid::Uuid> = state
        .assignment
        .as_ref()
        .map(|a| a.units().into_iter().collect())
        .unwrap_or_default();
    let overdue: Vec<(sug::OverdueKind, NaiveDate)> =
        sug::overdue(std::slice::from_ref(&state), END_OF_DAYS)
            .into_iter()
            .map(|o| (o.kind, o.due))
            .collect();
    if !units.is_empty() || !overdue.is_empty() {
        let pending = state.pending_units().into_iter().collect();
        let extra: SuggestionExtra = (units, overdue, pending);
        f.extra = serde_json::to_string(&extra).ok();
    }
    out.push(f);
    Ok(())
}
