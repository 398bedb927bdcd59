//! The `renda.report.v1` service: upward reports per org unit and period, one row per child
//! org unit of the requested one (drill-down: city → counties → townships → villages), plus a
//! detail list, the definitions of the rates shown, and the freshness of every township's data.
//!
//! Figures are computed with SQL over the report facts ([`facts`]): one typed row per
//! reportable record or dated step, with the org, the period date and the codes the reports
//! group on already extracted, and statuses already folded by `renda_domain`. A report first
//! brings the facts up to the op log ([`facts::catch_up`]), then reads one period of one fact
//! from an index and counts in the database, so its cost follows what it shows, not the size
//! of the store. The rates come from `renda_domain::rates` (per item when the facts are
//! computed, summed here). Personal data (ID-card numbers, phone numbers, opinion texts) is
//! never in a fact.
//!
//! Freshness: at the city, townships sync through their county, so the store's `peer_sync`
//! rows name counties. A township's figure is the township's own status report when one is
//! known (a [`FreshnessSource`], fed from the sync engine's status book), otherwise that of the
//! nearest ancestor the node syncs with, marked with it as `source`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use renda_domain::activity::DutyRecordKind;
use renda_domain::org::{Level, OrgCode, OrgTree};
use renda_domain::rates::{self, Rate, RateKind};
use renda_domain::suggestion as sug;
use renda_proto::report::v1 as pb;
use renda_store::FactColumn::{
    Amount, Code, Count, CountEnded, Date, End, Extra, Fact, Flags, Label, Org, RecordId, Subject,
    SumAmount, SumDuration,
};
use renda_store::{Cell, FactDates, FactOrder, FactQuery};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::{Shared, today};
use crate::error::{Error, Result};
use crate::gate::{READ, ServiceAccess, roles};

mod facts;

pub use facts::CatchUp;

use facts::{day_ms, fact, sflag};

/// Where per-township sync reports come from (the sync engine's status book at a parent node).
pub type FreshnessSource = Arc<dyn Fn() -> Vec<NodeFreshness> + Send + Sync>;

/// What a node below last reported: when it synced and what was pending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFreshness {
    pub org: String,
    pub last_sync_ms: i64,
    pub pending_ops: u64,
}

pub use renda_domain::report::{DEFAULT_FRESHNESS_MINUTES, REPORT_NAMES};

/// Rows per page of an export stream.
const EXPORT_PAGE: i64 = 2_000;

/// Rows of a report's detail list (its last table) in `GetReport`: a report's size stays
/// bounded whatever the city's size; `ExportRows` streams the whole list.
pub const DETAIL_ROWS: usize = 500;

pub(crate) struct Service {
    pub core: Shared,
    pub freshness: Option<FreshnessSource>,
}

/// A parsed request.
#[derive(Clone, Debug)]
struct Query {
    name: &'static str,
    org: OrgCode,
    from: NaiveDate,
    to: NaiveDate,
    limit_minutes: u32,
}

fn parse_request(req: &pb::ReportRequest, tree: &OrgTree, default_limit: u32) -> Result<Query> {
    let name = REPORT_NAMES
        .into_iter()
        .find(|n| *n == req.name.trim())
        .ok_or_else(|| {
            Error::invalid(
                "name",
                format!(
                    "unknown report {:?}; one of {}",
                    req.name.chars().take(40).collect::<String>(),
                    REPORT_NAMES.join(", ")
                ),
                "未知的报表名称",
            )
        })?;
    let org = OrgCode::parse(&req.org_code)
        .map_err(|e| Error::invalid("org", e.to_string(), e.reason_zh()))?;
    if !tree.has(&org) {
        return Err(Error::invalid(
            "org",
            format!("unknown org unit {org}"),
            format!("未知的组织单位 {org}"),
        ));
    }
    let from = crate::edge::required_day("from", req.from)?;
    let to = crate::edge::required_day("to", req.to)?;
    if to <= from {
        return Err(Error::invalid(
            "to",
            format!("period ends ({to}) before it starts ({from})"),
            "结束日期须晚于开始日期",
        ));
    }
    Ok(Query {
        name,
        org,
        from,
        to,
        limit_minutes: limit_minutes(req, default_limit)?,
    })
}

/// The freshness limit a request asks for, in minutes: in hours or in minutes, not both.
fn limit_minutes(req: &pb::ReportRequest, default: u32) -> Result<u32> {
    match (req.freshness_limit_hours, req.freshness_limit_minutes) {
        (0, 0) => Ok(default),
        (hours, 0) => hours.checked_mul(60).ok_or_else(|| {
            Error::invalid(
                "freshness_limit_hours",
                format!("{hours} hours is too large"),
                "时限过大",
            )
        }),
        (0, minutes) => Ok(minutes),
        _ => Err(Error::invalid(
            "freshness_limit_minutes",
            "give the freshness limit in hours or in minutes, not both",
            "同步时限只能按小时或按分钟填写其一",
        )),
    }
}

// ---- drill-down rows ----------------------------------------------------------------------

/// The rows of a report: the requested unit itself (本级) and each child unit.
struct Groups {
    units: Vec<(OrgCode, String)>,
    index: HashMap<OrgCode, usize>,
}

impl Groups {
    fn new(tree: &OrgTree, org: &OrgCode) -> Groups {
        let mut units = vec![(
            *org,
            format!(
                "{}(本级)",
                tree.get(org).map(|u| u.name.as_str()).unwrap_or("")
            ),
        )];
        let mut children: Vec<_> = tree.children(org);
        children.sort_by_key(|a| a.code);
        units.extend(children.into_iter().map(|u| (u.code, u.name.clone())));
        let index = units
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (*c, i))
            .collect();
        Groups { units, index }
    }

    /// The row a record of org `code` counts in: the child unit it lies under, or 本级.
    fn of(&self, code: i64) -> Option<usize> {
        let code = u64::try_from(code)
            .ok()
            .and_then(|c| OrgCode::new(c).ok())?;
        if let Some(i) = self.index.get(&code) {
            return Some(*i);
        }
        code.ancestors()
            .iter()
            .find_map(|a| self.index.get(a).copied())
            .or_else(|| self.units[0].0.contains(code).then_some(0))
    }

    fn len(&self) -> usize {
        self.units.len()
    }

    /// One table row per unit: its code and name, then `cells(i)` for its index.
    fn rows(&self, mut cells: impl FnMut(usize) -> Vec<pb::Cell>) -> Vec<Vec<pb::Cell>> {
        self.units
            .iter()
            .enumerate()
            .map(|(i, (code, name))| {
                let mut row = vec![text_cell(code.to_string()), text_cell(name.clone())];
                row.extend(cells(i));
                row
            })
            .collect()
    }
}

// ---- cells and tables ---------------------------------------------------------------------

fn int_cell(n: i64) -> pb::Cell {
    pb::Cell {
        kind: Some(pb::cell::Kind::Int(n)),
    }
}

fn text_cell(s: impl Into<String>) -> pb::Cell {
    pb::Cell {
        kind: Some(pb::cell::Kind::Text(s.into())),
    }
}

fn real_cell(v: Option<f64>) -> pb::Cell {
    pb::Cell {
        kind: v.map(|v| pb::cell::Kind::Real((v * 100.0).round() / 100.0)),
    }
}

fn rate_cell(r: &Rate) -> pb::Cell {
    real_cell(r.percent())
}

fn columns(spec: &[(&str, &str)]) -> Vec<pb::Column> {
    spec.iter()
        .map(|(key, zh)| pb::Column {
            key: (*key).into(),
            title_zh: (*zh).into(),
        })
        .collect()
}

fn table(key: &str, zh: &str, spec: &[(&str, &str)], rows: Vec<Vec<pb::Cell>>) -> pb::Table {
    pb::Table {
        key: key.into(),
        title_zh: zh.into(),
        columns: columns(spec),
        rows: rows.into_iter().map(|cells| pb::Row { cells }).collect(),
        truncated: false,
    }
}

fn definitions(kinds: &[RateKind]) -> Vec<pb::RateDefinition> {
    kinds
        .iter()
        .map(|k| pb::RateDefinition {
            key: format!("{k:?}").to_lowercase(),
            name_zh: k.name_zh().into(),
            definition_zh: k.definition_zh().into(),
            definition_en: k.definition_en().into(),
        })
        .collect()
}

fn text_of(c: Option<&Cell>) -> String {
    c.and_then(Cell::as_text).unwrap_or_default().to_owned()
}

fn int_of(c: Option<&Cell>) -> i64 {
    c.and_then(Cell::as_int).unwrap_or(0)
}

// ---- the reports ----------------------------------------------------------------------------

/// `{column} >= $a AND {column} < $b` for the period's days, binding their unix ms.
/// The facts dated in the report's period.
fn period(q: &Query) -> FactDates {
    FactDates::HalfOpen {
        from_ms: day_ms(q.from),
        to_ms: day_ms(q.to),
    }
}

/// The row of [`Groups`] of each org code, worked out once per code.
struct GroupOf<'a> {
    groups: &'a Groups,
    known: HashMap<i64, Option<usize>>,
}

impl<'a> GroupOf<'a> {
    fn new(groups: &'a Groups) -> Self {
        GroupOf {
            groups,
            known: HashMap::new(),
        }
    }

    fn get(&mut self, code: i64) -> Option<usize> {
        let groups = self.groups;
        *self.known.entry(code).or_insert_with(|| groups.of(code))
    }
}

/// One suggestion as its fact gives it.
struct SuggestionItem {
    id: Uuid,
    org: i64,
    flags: i64,
    title: String,
    units: Vec<Uuid>,
    overdue: Vec<(sug::OverdueKind, NaiveDate)>,
    /// The replying units whose reply is outstanding.
    pending: Vec<Uuid>,
}

/// A handling unit as reports name it: a department's name says nothing of which county's it
/// is (every county has a 区交通运输局), so its org unit goes with it.
struct UnitName {
    org: Option<OrgCode>,
    /// The org unit's name, or its code when the tree does not name it.
    org_name: String,
    name: String,
}

impl UnitName {
    /// `区交通运输局(市南区)`: the unit where a list names it in one cell.
    fn label(&self) -> String {
        if self.org_name.is_empty() {
            self.name.clone()
        } else {
            format!("{}({})", self.name, self.org_name)
        }
    }
}

/// Sums of the suggestion rates' numerators and denominators.
#[derive(Clone, Copy, Default)]
struct RateSums([u64; 6]);

impl RateSums {
    const BITS: [i64; 6] = [
        sflag::REPLY_NUM,
        sflag::REPLY_DEN,
        sflag::SATISFACTION_NUM,
        sflag::SATISFACTION_DEN,
        sflag::IMPLEMENTATION_NUM,
        sflag::IMPLEMENTATION_DEN,
    ];

    fn add(&mut self, flags: i64) {
        for (sum, bit) in self.0.iter_mut().zip(Self::BITS) {
            *sum += u64::from(flags & bit != 0);
        }
    }

    fn reply(&self) -> Rate {
        Rate::new(RateKind::Reply, self.0[0], self.0[1])
    }

    fn satisfaction(&self) -> Rate {
        Rate::new(RateKind::Satisfaction, self.0[2], self.0[3])
    }

    fn implementation(&self) -> Rate {
        Rate::new(RateKind::Implementation, self.0[4], self.0[5])
    }
}

impl Service {
    async fn facts(&self, query: FactQuery) -> Result<Vec<Vec<Cell>>> {
        Ok(self.core.store.facts(&query).await?)
    }

    async fn build(&self, q: &Query) -> Result<pb::Report> {
        facts::catch_up(&self.core).await?;
        let tree = self.core.tree().await?;
        let groups = Groups::new(&tree, &q.org);
        // One row more than a report holds tells whether the detail list goes on.
        let detail_rows = DETAIL_ROWS + 1;
        let (mut tables, rate_kinds) = match q.name {
            "suggestions" => (
                self.suggestions(q, &groups, detail_rows).await?,
                vec![
                    RateKind::Reply,
                    RateKind::Satisfaction,
                    RateKind::Implementation,
                ],
            ),
            "projects" => (self.projects(q, &groups, detail_rows).await?, vec![]),
            "deputies" => (
                self.deputies(q, &groups, detail_rows).await?,
                vec![RateKind::ReportBackCoverage],
            ),
            "stations" => (self.stations(q, &groups, detail_rows).await?, vec![]),
            _ => {
                let mut t = self.opinions_summary(q, &groups).await?;
                t.push(self.opinions_detail(q, None, detail_rows as i64).await?.0);
                (t, vec![])
            }
        };
        if let Some(detail) = tables.last_mut()
            && detail.rows.len() > DETAIL_ROWS
        {
            detail.rows.truncate(DETAIL_ROWS);
            detail.truncated = true;
        }
        let (freshness, stale) = self.freshness(q, &tree).await?;
        let note = if stale {
            format!(
                "注意：部分乡镇(街道)数据超过{}未同步，数字可能不全。",
                renda_domain::report::limit_zh(q.limit_minutes)
            )
        } else {
            String::new()
        };
        Ok(pb::Report {
            name: q.name.into(),
            title_zh: renda_domain::report::title_zh(q.name)
                .unwrap_or(q.name)
                .into(),
            org_code: q.org.to_string(),
            org_name: tree.get(&q.org).map(|u| u.name.clone()).unwrap_or_default(),
            from: Some(q.from.into()),
            to: Some(q.to.into()),
            tables,
            definitions: definitions(&rate_kinds),
            freshness,
            stale,
            stale_note_zh: note,
            generated_unix_ms: Utc::now().timestamp_millis(),
        })
    }

    /// Every township in the report's subtree with when its data last reached this node.
    async fn freshness(
        &self,
        q: &Query,
        tree: &OrgTree,
    ) -> Result<(Vec<pb::TownshipFreshness>, bool)> {
        // This node's own contacts: a live session's last success, and when the last bundle
        // imported from the peer was made.
        let known: HashMap<String, (i64, i64, u64)> = self
            .core
            .store
            .peer_syncs()
            .await?
            .into_iter()
            .map(|p| {
                let ms = |t: Option<DateTime<Utc>>| t.map_or(0, |t| t.timestamp_millis());
                let contact = (
                    ms(p.last_success),
                    ms(p.last_bundle),
                    p.pending_push.max(p.pending_pull),
                );
                (p.peer, contact)
            })
            .collect();
        let reported: HashMap<String, NodeFreshness> = self
            .freshness
            .as_ref()
            .map(|f| f().into_iter().map(|n| (n.org.clone(), n)).collect())
            .unwrap_or_default();
        let now = Utc::now().timestamp_millis();
        let limit_ms = i64::from(q.limit_minutes) * 60_000;
        let mut out = Vec::new();
        let mut any_stale = false;
        let mut townships: Vec<_> = tree
            .subtree(&q.org)
            .into_iter()
            .filter(|u| u.level() == Level::Township)
            .collect();
        townships.sort_by_key(|a| a.code);
        for unit in townships {
            let code = unit.code.to_string();
            // Its own last contact only, never an ancestor's: what its reports say (through
            // the chain of parents, or a fallback straight here), a live session with this
            // node, or the making of the last bundle imported from it.
            let mut last = 0;
            let mut pending = 0;
            let mut source = "";
            if let Some(n) = reported.get(&code) {
                (last, pending, source) = (n.last_sync_ms, n.pending_ops, "township");
            }
            if let Some(&(session, bundle, waiting)) = known.get(&code) {
                if session > last {
                    (last, pending, source) = (session, waiting, "township");
                }
                if bundle > last {
                    (last, source) = (bundle, "bundle");
                }
            }
            let source = source.to_owned();
            let stale = last == 0 || now - last > limit_ms;
            any_stale |= stale;
            out.push(pb::TownshipFreshness {
                org_code: code,
                name: unit.name.clone(),
                last_sync_unix_ms: last,
                pending_ops: pending,
                stale,
                source,
            });
        }
        // The node's own org unit, when a township, is always fresh here.
        if q.org.level() == Level::Township
            && let Some(f) = out.iter_mut().find(|f| f.org_code == q.org.to_string())
            && self.core.store.org() == q.org
        {
            f.last_sync_unix_ms = now;
            f.stale = false;
            f.source = "local".into();
            any_stale = out.iter().any(|f| f.stale);
        }
        Ok((out, any_stale))
    }

    // -- suggestions --------------------------------------------------------------------------

    /// Every suggestion of the subtree first submitted in the period, as the domain folded it
    /// when its facts were computed; overdue against today.
    async fn suggestions(
        &self,
        q: &Query,
        groups: &Groups,
        detail_rows: usize,
    ) -> Result<Vec<pb::Table>> {
        let rows = self
            .facts(
                FactQuery::of(fact::SUGGESTION, &[RecordId, Org, Flags, Extra, Label])
                    .dates(period(q))
                    .subtree(q.org)
                    .order(FactOrder::RecordId),
            )
            .await?;
        let items: Vec<SuggestionItem> = rows
            .iter()
            .filter_map(|r| {
                let id = Uuid::parse_str(&text_of(r.first())).ok()?;
                let (units, overdue, pending): facts::SuggestionExtra = r
                    .get(3)
                    .and_then(Cell::as_text)
                    .and_then(|e| serde_json::from_str(e).ok())
                    .unwrap_or_default();
                Some(SuggestionItem {
                    id,
                    org: int_of(r.get(1)),
                    flags: int_of(r.get(2)),
                    title: text_of(r.get(4)),
                    units,
                    overdue,
                    pending,
                })
            })
            .collect();
        let today = today();
        let mut group_of = GroupOf::new(groups);

        // Per org unit: submitted, handling, replied, finished, overdue, returned for revision,
        // withdrawn, merged, under key supervision; and the rates.
        let mut counts = vec![[0i64; 9]; groups.len()];
        let mut org_rates = vec![RateSums::default(); groups.len()];
        for item in &items {
            let Some(i) = group_of.get(item.org) else {
                continue;
            };
            let c = &mut counts[i];
            c[0] += 1;
            c[1] += i64::from(item.flags & sflag::HANDLING != 0);
            c[2] += i64::from(item.flags & sflag::REPLIED != 0);
            c[3] += i64::from(item.flags & sflag::CLOSED != 0);
            c[4] += item.overdue.iter().filter(|(_, due)| today > *due).count() as i64;
            for (k, bit) in [
                sflag::REVISION_REQUESTED,
                sflag::WITHDRAWN,
                sflag::MERGED,
                sflag::KEY_SUPERVISION,
            ]
            .into_iter()
            .enumerate()
            {
                c[5 + k] += i64::from(item.flags & bit != 0);
            }
            org_rates[i].add(item.flags);
        }
        let org_rows = groups.rows(|i| {
            let r = &org_rates[i];
            let c = counts[i];
            vec![
                int_cell(c[0]),
                int_cell(i64::try_from(r.reply().denominator).unwrap_or(0)),
                int_cell(c[1]),
                int_cell(c[2]),
                int_cell(c[3]),
                int_cell(c[5]),
                int_cell(c[6]),
                int_cell(c[7]),
                int_cell(c[8]),
                rate_cell(&r.reply()),
                rate_cell(&r.satisfaction()),
                rate_cell(&r.implementation()),
                int_cell(c[4]),
            ]
        });
        let by_org = table(
            "by_org",
            "按单位",
            &[
                ("org_code", "行政区划代码"),
                ("org_name", "单位"),
                ("submitted", "提出件数"),
                ("assigned", "已交办"),
                ("handling", "办理中"),
                ("replied", "已答复"),
                ("finished", "已办结"),
                ("revision_requested", "退回修改"),
                ("withdrawn", "撤回"),
                ("merged", "并案"),
                ("key_supervision", "重点督办"),
                ("reply_rate", "答复率(%)"),
                ("satisfaction_rate", "满意率(%)"),
                ("implementation_rate", "落实率(%)"),
                ("overdue", "逾期件数"),
            ],
            org_rows,
        );

        // Per handling unit: an item counts for every unit it was assigned to.
        let mut per_unit: BTreeMap<Uuid, RateSums> = BTreeMap::new();
        for item in &items {
            for unit in &item.units {
                per_unit.entry(*unit).or_default().add(item.flags);
            }
        }
        // Assisting units are among an assignment's units: the overdue list needs no others.
        let names = self.unit_names(per_unit.keys().copied().collect()).await?;
        // By the unit's org, then name: a city's counties each have a 区交通运输局, and each
        // row says whose it is.
        let mut by_unit: Vec<(&Uuid, &RateSums)> = per_unit.iter().collect();
        by_unit.sort_by_cached_key(|(unit, _)| {
            names
                .get(*unit)
                .map(|n| (n.org.map(OrgCode::get), n.name.clone()))
        });
        let unit_rows = by_unit
            .into_iter()
            .map(|(unit, r)| {
                let name = names.get(unit);
                vec![
                    text_cell(unit.to_string()),
                    text_cell(
                        name.and_then(|n| n.org)
                            .map(|o| o.to_string())
                            .unwrap_or_default(),
                    ),
                    text_cell(name.map(|n| n.org_name.clone()).unwrap_or_default()),
                    text_cell(name.map(|n| n.name.clone()).unwrap_or_default()),
                    int_cell(i64::try_from(r.reply().denominator).unwrap_or(0)),
                    int_cell(i64::try_from(r.reply().numerator).unwrap_or(0)),
                    rate_cell(&r.reply()),
                    rate_cell(&r.satisfaction()),
                    rate_cell(&r.implementation()),
                ]
            })
            .collect();
        let by_unit = table(
            "by_unit",
            "按承办单位",
            &[
                ("unit_id", "承办单位编号"),
                ("unit_org_code", "所属行政区划代码"),
                ("unit_org_name", "所属地区"),
                ("unit_name", "承办单位"),
                ("assigned", "交办件数"),
                ("replied", "已答复"),
                ("reply_rate", "答复率(%)"),
                ("satisfaction_rate", "满意率(%)"),
                ("implementation_rate", "落实率(%)"),
            ],
            unit_rows,
        );
        // By item id, then kind: items come by id, and each item's candidates by kind.
        let mut overdue_rows = Vec::new();
        for item in &items {
            for (kind, due) in item.overdue.iter().filter(|(_, due)| today > *due) {
                if overdue_rows.len() >= detail_rows {
                    break;
                }
                // The unit that is late: the replying units yet to reply, or the assisting one.
                let late: Vec<&Uuid> = match kind {
                    sug::OverdueKind::Reply | sug::OverdueKind::SecondRoundReply => {
                        item.pending.iter().collect()
                    }
                    sug::OverdueKind::AssistingView(u) => vec![u],
                };
                let late = late
                    .into_iter()
                    .map(|u| names.get(u).map_or_else(|| u.to_string(), UnitName::label))
                    .collect::<Vec<_>>()
                    .join("、");
                overdue_rows.push(vec![
                    text_cell(item.title.clone()),
                    text_cell(late),
                    text_cell(match kind {
                        sug::OverdueKind::Reply => "逾期未答复",
                        sug::OverdueKind::SecondRoundReply => "二次交办逾期未答复",
                        sug::OverdueKind::AssistingView(_) => "协办意见逾期",
                    }),
                    text_cell(due.to_string()),
                    int_cell((today - *due).num_days()),
                    text_cell(item.org.to_string()),
                    text_cell(item.id.to_string()),
                ]);
            }
        }
        let overdue_table = table(
            "overdue",
            "逾期清单",
            &[
                ("title", "建议标题"),
                ("unit", "承办单位"),
                ("overdue_kind", "逾期类型"),
                ("due", "应办日期"),
                ("days_late", "逾期天数"),
                ("org_code", "行政区划代码"),
                // The record's id, to look it up; there is no 建议编号 in the data yet.
                ("suggestion_id", "记录编号"),
            ],
            overdue_rows,
        );
        Ok(vec![by_org, by_unit, overdue_table])
    }

    /// The handling units among `wanted`, each with the org unit it belongs to.
    async fn unit_names(&self, wanted: BTreeSet<Uuid>) -> Result<HashMap<Uuid, UnitName>> {
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self
            .facts(FactQuery::of(fact::HANDLING_UNIT, &[RecordId, Org, Label]))
            .await?;
        let tree = self.core.tree().await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let id = Uuid::parse_str(&text_of(r.first())).ok()?;
                if !wanted.contains(&id) {
                    return None;
                }
                let org = u64::try_from(int_of(r.get(1)))
                    .ok()
                    .and_then(|c| OrgCode::new(c).ok());
                let org_name = org
                    .map(|o| {
                        tree.get(&o)
                            .map_or_else(|| o.to_string(), |u| u.name.clone())
                    })
                    .unwrap_or_default();
                Some((
                    id,
                    UnitName {
                        org,
                        org_name,
                        name: text_of(r.get(2)),
                    },
                ))
            })
            .collect())
    }

    // -- projects -----------------------------------------------------------------------------

    async fn projects(
        &self,
        q: &Query,
        groups: &Groups,
        detail_rows: usize,
    ) -> Result<Vec<pb::Table>> {
        // A project's date is 1 January of its year: the years the period touches.
        let jan1 = |year: i32| NaiveDate::from_ymd_opt(year, 1, 1).map_or(0, day_ms);
        let years = FactDates::Closed {
            first_ms: jan1(q.from.year()),
            last_ms: jan1(q.to.pred_opt().unwrap_or(q.to).year()),
        };
        let rows = self
            .facts(
                FactQuery::of(
                    fact::PROJECT,
                    &[RecordId, Org, Date, Label, Amount, Code, Flags],
                )
                .dates(years)
                .subtree(q.org)
                .order(FactOrder::RecordId),
            )
            .await?;
        let this_year = today().year();
        let mut group_of = GroupOf::new(groups);
        // candidates, adopted, budget, progress sum, accepted, overdue
        let mut sums = vec![[0i64; 6]; groups.len()];
        let mut detail = Vec::new();
        for r in &rows {
            let org = int_of(r.get(1));
            let year = i64::from(crate::core::local_date(int_of(r.get(2))).year());
            let budget = int_of(r.get(4));
            let progress = int_of(r.get(5)).clamp(0, 100);
            let flags = int_of(r.get(6));
            let adopted = flags & facts::PROJECT_ADOPTED != 0;
            let accepted = flags & facts::PROJECT_ACCEPTED != 0;
            let overdue = adopted && !accepted && year < i64::from(this_year);
            if let Some(i) = group_of.get(org) {
                let s = &mut sums[i];
                s[0] += 1;
                if adopted {
                    s[1] += 1;
                    s[2] += budget;
                    s[3] += progress;
                }
                s[4] += i64::from(accepted);
                s[5] += i64::from(overdue);
            }
            if detail.len() >= detail_rows {
                continue;
            }
            detail.push(vec![
                text_cell(text_of(r.first())),
                text_cell(org.to_string()),
                int_cell(year),
                text_cell(text_of(r.get(3))),
                text_cell(if adopted { "是" } else { "否" }),
                real_cell(Some(budget as f64 / 100.0)),
                int_cell(progress),
                text_cell(if accepted { "已验收" } else { "未验收" }),
                text_cell(if overdue { "逾期" } else { "" }),
            ]);
        }
        let org_rows = groups.rows(|i| {
            let s = sums[i];
            vec![
                int_cell(s[0]),
                int_cell(s[1]),
                real_cell(Some(s[2] as f64 / 100.0)),
                real_cell((s[1] > 0).then(|| s[3] as f64 / s[1] as f64)),
                int_cell(s[4]),
                int_cell(s[5]),
            ]
        });
        Ok(vec![
            table(
                "by_org",
                "按单位",
                &[
                    ("org_code", "行政区划代码"),
                    ("org_name", "单位"),
                    ("candidates", "候选项目"),
                    ("adopted", "票决通过"),
                    ("budget_yuan", "预算(元)"),
                    ("avg_progress", "平均进度(%)"),
                    ("accepted", "已验收"),
                    ("overdue", "逾期未验收"),
                ],
                org_rows,
            ),
            table(
                "projects",
                "项目清单",
                &[
                    ("project_id", "项目编号"),
                    ("org_code", "行政区划代码"),
                    ("year", "年度"),
                    ("title", "项目名称"),
                    ("adopted", "票决通过"),
                    ("budget_yuan", "预算(元)"),
                    ("progress", "进度(%)"),
                    ("acceptance", "验收"),
                    ("overdue", "逾期"),
                ],
                detail,
            ),
        ])
    }

    // -- deputies -----------------------------------------------------------------------------

    async fn deputies(
        &self,
        q: &Query,
        groups: &Groups,
        detail_rows: usize,
    ) -> Result<Vec<pb::Table>> {
        // Deputies of the subtree, from the org index alone.
        let deputies = self
            .facts(FactQuery::of(fact::DEPUTY, &[RecordId, Org, Label, Code]).subtree(q.org))
            .await?;
        // Check-ins and speeches in the period, per deputy, wherever the activity was.
        let duty = self
            .facts(FactQuery {
                facts: vec![fact::CHECK_IN, fact::SPEECH],
                select: vec![Subject, Fact, Code, Count],
                dates: Some(period(q)),
                ..FactQuery::default()
            })
            .await?;
        // Voter-link visits in the period, per deputy.
        let visits = self
            .facts(FactQuery::of(fact::VISIT, &[Subject, Count, SumAmount]).dates(period(q)))
            .await?;
        // Report-backs in the period.
        let reported: BTreeSet<Uuid> = self
            .facts(FactQuery {
                distinct: true,
                ..FactQuery::of(fact::REPORT_BACK, &[Subject]).dates(period(q))
            })
            .await?
            .iter()
            .filter_map(|r| Uuid::parse_str(&text_of(r.first())).ok())
            .collect();

        let weights = self.core.ctx.weights();
        let mut check_ins: HashMap<Uuid, i64> = HashMap::new();
        // Of those, entered by a clerk on the deputy's behalf (代录).
        let mut proxied: HashMap<Uuid, i64> = HashMap::new();
        let mut speeches: HashMap<Uuid, i64> = HashMap::new();
        for r in &duty {
            let Ok(d) = Uuid::parse_str(&text_of(r.first())) else {
                continue;
            };
            let n = int_of(r.get(3));
            if int_of(r.get(1)) == i64::from(fact::SPEECH) {
                *speeches.entry(d).or_default() += n;
            } else {
                *check_ins.entry(d).or_default() += n;
                if int_of(r.get(2)) == facts::CHECK_IN_PROXY {
                    *proxied.entry(d).or_default() += n;
                }
            }
        }
        let visit_of: HashMap<Uuid, (i64, i64)> = visits
            .iter()
            .filter_map(|r| {
                Some((
                    Uuid::parse_str(&text_of(r.first())).ok()?,
                    (int_of(r.get(1)), int_of(r.get(2))),
                ))
            })
            .collect();
        let mut group_of = GroupOf::new(groups);
        // deputies, check-ins, speeches, visits, households, points, check-ins entered 代录
        let mut sums = vec![[0i64; 7]; groups.len()];
        let mut serving: Vec<BTreeSet<Uuid>> = vec![BTreeSet::new(); groups.len()];
        let mut ranking = Vec::with_capacity(deputies.len());
        for r in deputies {
            let mut cells = r.into_iter();
            let (Some(Cell::Text(id)), org, name, ended) =
                (cells.next(), cells.next(), cells.next(), cells.next())
            else {
                continue;
            };
            let Ok(id) = Uuid::parse_str(&id) else {
                continue;
            };
            let org = int_of(org.as_ref());
            let name = match name {
                Some(Cell::Text(name)) => name,
                _ => String::new(),
            };
            let ended = int_of(ended.as_ref()) == facts::DEPUTY_ENDED;
            let c = check_ins.get(&id).copied().unwrap_or(0);
            let proxy = proxied.get(&id).copied().unwrap_or(0);
            let s = speeches.get(&id).copied().unwrap_or(0);
            let (v, h) = visit_of.get(&id).copied().unwrap_or((0, 0));
            let rb = i64::from(reported.contains(&id));
            let points = c * i64::from(weights.get(DutyRecordKind::CheckIn))
                + s * i64::from(weights.get(DutyRecordKind::Speech))
                + v * i64::from(weights.get(DutyRecordKind::VoterVisit))
                + rb * i64::from(weights.get(DutyRecordKind::ReportBack));
            if let Some(i) = group_of.get(org) {
                let x = &mut sums[i];
                x[0] += i64::from(!ended);
                x[1] += c;
                x[2] += s;
                x[3] += v;
                x[4] += h;
                x[5] += points;
                x[6] += proxy;
                if !ended {
                    serving[i].insert(id);
                }
            }
            ranking.push((points, id, org, name, c, s, v, rb, proxy));
        }
        ranking.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let org_rows = groups.rows(|i| {
            let x = sums[i];
            let coverage = rates::report_back_coverage(&serving[i], &reported);
            vec![
                int_cell(x[0]),
                int_cell(x[1]),
                int_cell(x[2]),
                int_cell(i64::try_from(coverage.numerator).unwrap_or(0)),
                rate_cell(&coverage),
                int_cell(x[3]),
                int_cell(x[4]),
                int_cell(x[5]),
                int_cell(x[6]),
            ]
        });
        let ranking_rows = ranking
            .into_iter()
            .take(detail_rows)
            .enumerate()
            .map(|(rank, (points, id, org, name, c, s, v, rb, proxy))| {
                vec![
                    int_cell(rank as i64 + 1),
                    text_cell(id.to_string()),
                    text_cell(name),
                    text_cell(org.to_string()),
                    int_cell(c),
                    int_cell(s),
                    int_cell(v),
                    text_cell(if rb > 0 { "是" } else { "否" }),
                    int_cell(points),
                    int_cell(proxy),
                ]
            })
            .collect();
        Ok(vec![
            table(
                "by_org",
                "按单位",
                &[
                    ("org_code", "行政区划代码"),
                    ("org_name", "单位"),
                    ("deputies", "在任代表"),
                    ("check_ins", "活动签到"),
                    ("speeches", "发言"),
                    ("reported_back", "已述职"),
                    ("report_back_coverage", "述职覆盖率(%)"),
                    ("visits", "联系选民走访"),
                    ("households", "走访户数"),
                    ("points", "履职积分"),
                    ("proxy_check_ins", "其中代录签到"),
                ],
                org_rows,
            ),
            table(
                "ranking",
                "积分排名",
                &[
                    ("rank", "排名"),
                    ("deputy_id", "代表编号"),
                    ("name", "姓名"),
                    ("org_code", "行政区划代码"),
                    ("check_ins", "活动签到"),
                    ("speeches", "发言"),
                    ("visits", "走访"),
                    ("reported_back", "已述职"),
                    ("points", "积分"),
                    ("proxy_check_ins", "其中代录签到"),
                ],
                ranking_rows,
            ),
        ])
    }

    // -- stations -----------------------------------------------------------------------------

    async fn stations(
        &self,
        q: &Query,
        groups: &Groups,
        detail_rows: usize,
    ) -> Result<Vec<pb::Table>> {
        let stations = self
            .facts(
                FactQuery::of(fact::STATION, &[RecordId, Org, Label])
                    .subtree(q.org)
                    .order(FactOrder::RecordId),
            )
            .await?;
        // Receptions in the period, per station.
        let receptions: HashMap<String, i64> = self
            .facts(
                FactQuery::of(fact::RECEPTION, &[Subject, Count])
                    .dates(period(q))
                    .subtree(q.org),
            )
            .await?
            .into_iter()
            .map(|r| (text_of(r.first()), int_of(r.get(1))))
            .collect();
        // Activities starting in the period, per org.
        let activities = self
            .facts(
                FactQuery::of(fact::ACTIVITY, &[Org, Count])
                    .dates(period(q))
                    .subtree(q.org),
            )
            .await?;
        // Opinions raised in the period, and how many are resolved: per org and per station.
        let opinions = self
            .facts(
                FactQuery::of(fact::OPINION, &[Org, Subject, Count, CountEnded])
                    .dates(period(q))
                    .subtree(q.org),
            )
            .await?;
        let mut group_of = GroupOf::new(groups);
        let mut per_station: HashMap<String, (i64, i64)> = HashMap::new();
        let mut org_opinions = vec![(0i64, 0i64); groups.len()];
        for o in &opinions {
            let (collected, resolved) = (int_of(o.get(2)), int_of(o.get(3)));
            if let Some(i) = group_of.get(int_of(o.first())) {
                org_opinions[i].0 += collected;
                org_opinions[i].1 += resolved;
            }
            if let Some(station) = o.get(1).and_then(Cell::as_text) {
                let e = per_station.entry(station.to_owned()).or_default();
                e.0 += collected;
                e.1 += resolved;
            }
        }
        // stations, receptions, activities
        let mut sums = vec![[0i64; 3]; groups.len()];
        let mut detail = Vec::with_capacity(stations.len().min(detail_rows));
        for s in stations {
            let mut cells = s.into_iter();
            let (Some(Cell::Text(id)), org, name) = (cells.next(), cells.next(), cells.next())
            else {
                continue;
            };
            let org = int_of(org.as_ref());
            let receptions = receptions.get(&id).copied().unwrap_or(0);
            if let Some(i) = group_of.get(org) {
                sums[i][0] += 1;
                sums[i][1] += receptions;
            }
            if detail.len() >= detail_rows {
                continue;
            }
            let (collected, resolved) = per_station.get(&id).copied().unwrap_or((0, 0));
            detail.push(vec![
                text_cell(id),
                text_cell(match name {
                    Some(Cell::Text(name)) => name,
                    _ => String::new(),
                }),
                text_cell(org.to_string()),
                int_cell(receptions),
                int_cell(collected),
                int_cell(resolved),
            ]);
        }
        for a in &activities {
            if let Some(i) = group_of.get(int_of(a.first())) {
                sums[i][2] += int_of(a.get(1));
            }
        }
        let org_rows = groups.rows(|i| {
            vec![
                int_cell(sums[i][0]),
                int_cell(sums[i][1]),
                int_cell(sums[i][2]),
                int_cell(org_opinions[i].0),
                int_cell(org_opinions[i].1),
            ]
        });
        Ok(vec![
            table(
                "by_org",
                "按单位",
                &[
                    ("org_code", "行政区划代码"),
                    ("org_name", "单位"),
                    ("stations", "家站点数"),
                    ("receptions", "接待次数"),
                    ("activities", "履职活动"),
                    ("opinions_collected", "收集意见"),
                    ("opinions_resolved", "已办结意见"),
                ],
                org_rows,
            ),
            table(
                "stations",
                "家站点清单",
                &[
                    ("station_id", "站点编号"),
                    ("name", "站点名称"),
                    ("org_code", "行政区划代码"),
                    ("receptions", "接待次数"),
                    ("opinions_collected", "收集意见"),
                    ("opinions_resolved", "已办结意见"),
                ],
                detail,
            ),
        ])
    }

    // -- opinions -----------------------------------------------------------------------------

    /// Counts per org unit and route of the opinions of the subtree raised in the period,
    /// counted in the database from the period index alone.
    async fn opinions_summary(&self, q: &Query, groups: &Groups) -> Result<Vec<pb::Table>> {
        let rows = self
            .facts(
                FactQuery::of(fact::OPINION, &[Org, Code, Count, CountEnded, SumDuration])
                    .dates(period(q))
                    .subtree(q.org),
            )
            .await?;
        let mut group_of = GroupOf::new(groups);
        // collected, 4 routes, resolved, open, total ms to resolve
        let mut sums = vec![[0i64; 8]; groups.len()];
        for r in &rows {
            let Some(i) = group_of.get(int_of(r.first())) else {
                continue;
            };
            let (n, resolved) = (int_of(r.get(2)), int_of(r.get(3)));
            let s = &mut sums[i];
            s[0] += n;
            if let route @ 1..=4 = int_of(r.get(1)) {
                s[route as usize] += n;
            }
            s[5] += resolved;
            s[6] += n - resolved;
            s[7] += int_of(r.get(4));
        }
        let org_rows = groups.rows(|i| {
            let s = sums[i];
            vec![
                int_cell(s[0]),
                int_cell(s[1]),
                int_cell(s[2]),
                int_cell(s[3]),
                int_cell(s[4]),
                int_cell(s[5]),
                int_cell(s[6]),
                real_cell((s[5] > 0).then(|| s[7] as f64 / s[5] as f64 / 86_400_000.0)),
            ]
        });
        Ok(vec![table(
            "by_org",
            "按单位",
            &[
                ("org_code", "行政区划代码"),
                ("org_name", "单位"),
                ("collected", "收集件数"),
                ("answered_on_site", "现场答复"),
                ("transferred_to_township", "转交乡镇(街道)办理"),
                ("assigned_to_department", "交办部门落实"),
                ("escalated_upward", "逐级向上反映"),
                ("resolved", "已办结"),
                ("open", "未办结"),
                ("avg_days_to_resolve", "平均办结天数"),
            ],
            org_rows,
        )])
    }

    /// The opinion list (no content: it may name citizens) by the day raised, then id: at most
    /// `limit` rows after the position `after` (keyset paging, so a page costs the same
    /// wherever it is in the list). Returns the position of its last row.
    async fn opinions_detail(
        &self,
        q: &Query,
        after: Option<&OpinionPosition>,
        limit: i64,
    ) -> Result<(pb::Table, Option<OpinionPosition>)> {
        // One lower bound on the day, the later of the period's start and the last page's: with
        // two, the planner may scan from the period's start for every page.
        let from_ms = day_ms(q.from).max(after.map_or(i64::MIN, |a| a.raised_ms));
        let rows = self
            .facts(FactQuery {
                after: after.map(|a| (a.raised_ms, a.id.clone())),
                limit: Some(limit),
                ..FactQuery::of(fact::OPINION, &[RecordId, Org, Code, Flags, Date, End])
                    .dates(FactDates::HalfOpen {
                        from_ms,
                        to_ms: day_ms(q.to),
                    })
                    .subtree(q.org)
                    .order(FactOrder::DateThenRecordId)
            })
            .await?;
        let last = rows.last().map(|r| OpinionPosition {
            raised_ms: int_of(r.get(4)),
            id: text_of(r.first()),
        });
        let out = rows
            .into_iter()
            .map(|r| {
                let raised_ms = int_of(r.get(4));
                let resolved_ms = r.get(5).and_then(Cell::as_int);
                let escalated = int_of(r.get(3)) & facts::OPINION_ESCALATED != 0;
                let route = usize::try_from(int_of(r.get(2)) - 1)
                    .ok()
                    .and_then(|i| facts::ROUTES.get(i))
                    .copied()
                    .unwrap_or_default();
                vec![
                    text_cell(text_of(r.first())),
                    text_cell(int_of(r.get(1)).to_string()),
                    text_cell(route_zh(route)),
                    text_cell(match (resolved_ms, escalated) {
                        (Some(_), _) => "已办结",
                        (None, true) => "已上报",
                        (None, false) => "办理中",
                    }),
                    text_cell(crate::core::local_date(raised_ms).to_string()),
                    text_cell(
                        resolved_ms
                            .map(|t| crate::core::local_date(t).to_string())
                            .unwrap_or_default(),
                    ),
                    real_cell(resolved_ms.map(|t| ((t - raised_ms).max(0) as f64) / 86_400_000.0)),
                ]
            })
            .collect();
        Ok((
            table(
                "opinions",
                "意见清单",
                &[
                    ("opinion_id", "意见编号"),
                    ("org_code", "行政区划代码"),
                    ("route", "办理方式"),
                    ("outcome", "办理结果"),
                    ("raised_on", "收集日期"),
                    ("resolved_on", "办结日期"),
                    ("days_to_resolve", "办结天数"),
                ],
                out,
            ),
            last,
        ))
    }
}

/// Where a page of the opinion list ended: the last row's raised time and id.
#[derive(Clone, Debug)]
struct OpinionPosition {
    raised_ms: i64,
    id: String,
}

fn route_zh(route: &str) -> &'static str {
    match route {
        "answered_on_site" => "现场答复",
        "transferred_to_township" => "转交乡镇(街道)办理",
        "assigned_to_department" => "交办部门落实",
        "escalated_upward" => "逐级向上反映",
        _ => "未分流",
    }
}

type RowStream =
    Pin<Box<dyn tokio_stream::Stream<Item = std::result::Result<pb::RowBatch, Status>> + Send>>;

/// The tonic face of [`Service`], cheap to clone into a streaming task.
pub struct Reports(Arc<Service>);

/// Which role may call each RPC of `renda.report.v1.Reports` (see [`crate::gate`]).
pub(crate) const ACCESS: ServiceAccess = ServiceAccess {
    service: pb::reports_server::SERVICE_NAME,
    rpcs: &[("GetReport", roles(READ)), ("ExportRows", roles(READ))],
};

#[tonic::async_trait]
impl pb::reports_server::Reports for Reports {
    async fn get_report(
        &self,
        req: Request<pb::ReportRequest>,
    ) -> std::result::Result<Response<pb::Report>, Status> {
        let tree = self.0.core.tree().await.map_err(Status::from)?;
        let q = parse_request(
            req.get_ref(),
            &tree,
            self.0.core.ctx.freshness_limit_minutes(),
        )?;
        self.0.core.require_reach("org", &q.org).await?;
        let started = std::time::Instant::now();
        let report = self.0.build(&q).await?;
        tracing::debug!(report = q.name, org = %q.org, ms = started.elapsed().as_millis() as u64, "report built");
        Ok(Response::new(report))
    }

    type ExportRowsStream = RowStream;

    async fn export_rows(
        &self,
        req: Request<pb::ReportRequest>,
    ) -> std::result::Result<Response<Self::ExportRowsStream>, Status> {
        let tree = self.0.core.tree().await.map_err(Status::from)?;
        let q = parse_request(
            req.get_ref(),
            &tree,
            self.0.core.ctx.freshness_limit_minutes(),
        )?;
        self.0.core.require_reach("org", &q.org).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<pb::RowBatch, Status>>(4);
        let service = Arc::clone(&self.0);
        tokio::spawn(async move {
            let result = service.stream_rows(&q, &tx).await;
            if let Err(e) = result {
                let _ = tx.send(Err(Status::from(e))).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

impl Service {
    /// Sends the report's detail table in batches. Opinions, the one list that runs to
    /// hundreds of thousands of rows, are paged from the facts by (day raised, id), so memory
    /// stays flat and every page is one index range; the other lists are bounded by what they
    /// count (deputies, stations, projects, overdue items).
    async fn stream_rows(
        &self,
        q: &Query,
        tx: &tokio::sync::mpsc::Sender<std::result::Result<pb::RowBatch, Status>>,
    ) -> Result<()> {
        facts::catch_up(&self.core).await?;
        if q.name == "opinions" {
            let mut after: Option<OpinionPosition> = None;
            let mut first = true;
            loop {
                let (t, last) = self.opinions_detail(q, after.as_ref(), EXPORT_PAGE).await?;
                let n = t.rows.len();
                let batch = pb::RowBatch {
                    columns: if first { t.columns } else { Vec::new() },
                    rows: t.rows,
                };
                first = false;
                if tx.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
                if (n as i64) < EXPORT_PAGE {
                    return Ok(());
                }
                after = last;
            }
        }
        let tree = self.core.tree().await?;
        let groups = Groups::new(&tree, &q.org);
        let tables = match q.name {
            "suggestions" => self.suggestions(q, &groups, usize::MAX).await?,
            "projects" => self.projects(q, &groups, usize::MAX).await?,
            "deputies" => self.deputies(q, &groups, usize::MAX).await?,
            _ => self.stations(q, &groups, usize::MAX).await?,
        };
        let Some(t) = tables.into_iter().last() else {
            return Ok(());
        };
        let mut columns = Some(t.columns);
        let mut rows = t.rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<pb::Row> = rows.by_ref().take(EXPORT_PAGE as usize).collect();
            let batch = pb::RowBatch {
                columns: columns.take().unwrap_or_default(),
                rows: chunk,
            };
            if tx.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
        }
        if let Some(columns) = columns {
            let _ = tx
                .send(Ok(pb::RowBatch {
                    columns,
                    rows: Vec::new(),
                }))
                .await;
        }
        Ok(())
    }
}

/// How often the projector brings the facts up to the op log between reports.
pub const FACTS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The reports service over one store, for a tonic server. Reports catch the facts up to the
/// op log before they read; a node also runs one [`Projector`] so that the first report after a
/// large sync does not pay for the catch-up.
pub fn reports_server(
    store: renda_store::Store,
    ctx: crate::ApiContext,
    freshness: Option<FreshnessSource>,
) -> pb::reports_server::ReportsServer<Reports> {
    let core = Arc::new(crate::core::Core { store, ctx });
    pb::reports_server::ReportsServer::new(Reports(Arc::new(Service { core, freshness })))
        .max_encoding_message_size(64 * 1024 * 1024)
}

/// The report projector of one node: brings the report facts up to the op log every
/// `interval`, in the background, until [`Projector::stop`]. Started once per node (by
/// `node::start`), however many ports serve the reports.
pub struct Projector {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Projector {
    /// Starts the loop on the current tokio runtime; the first catch-up runs at once.
    pub fn start(
        store: renda_store::Store,
        ctx: crate::ApiContext,
        interval: std::time::Duration,
    ) -> Projector {
        let core = crate::core::Core { store, ctx };
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => return,
                    _ = tick.tick() => {}
                }
                // A catch-up under way finishes (it is one transaction per batch) before the
                // stop is seen, so the store is never closed beneath it.
                if let Err(e) = facts::catch_up(&core).await {
                    tracing::warn!(error = %e, "report facts catch-up failed");
                }
            }
        });
        Projector { stop, task }
    }

    /// Stops the loop and waits for a catch-up under way to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the report projector ended abnormally");
        }
    }
}

/// Brings the report facts of `store` up to its op log now (a report does this itself first;
/// the benchmark times it apart, and a node may call it after a large import).
pub async fn catch_up_facts(
    store: renda_store::Store,
    ctx: crate::ApiContext,
) -> std::result::Result<CatchUp, Status> {
    let core = crate::core::Core { store, ctx };
    Ok(facts::catch_up(&core).await?)
}

/// The auth service over one store, signing with the deployment's keys; tokens last `ttl_ms`.
pub fn auth_server(
    store: renda_store::Store,
    ctx: crate::ApiContext,
    signer: renda_accounts::TokenSigner,
    ttl_ms: i64,
) -> renda_proto::auth::v1::auth_server::AuthServer<crate::users::Service> {
    let core = Arc::new(crate::core::Core { store, ctx });
    renda_proto::auth::v1::auth_server::AuthServer::new(crate::users::Service {
        core,
        signer,
        ttl_ms,
        attempts: Default::default(),
    })
}

/// Builds one report in process, exactly as `GetReport` answers it but without gRPC: the
/// gateway's benchmark sets it beside the same report fetched through the gateway.
pub async fn build_report(
    store: renda_store::Store,
    ctx: crate::ApiContext,
    freshness: Option<FreshnessSource>,
    req: &pb::ReportRequest,
) -> std::result::Result<pb::Report, Status> {
    let service = Service {
        core: Arc::new(crate::core::Core { store, ctx }),
        freshness,
    };
    let tree = service.core.tree().await.map_err(Status::from)?;
    let q = parse_request(req, &tree, service.core.ctx.freshness_limit_minutes())?;
    Ok(service.build(&q).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a calendar day")
    }

    #[test]
    fn periods_the_wrong_way_round_name_the_parameter() {
        let tree = OrgTree::demo();
        let req = pb::ReportRequest {
            name: "suggestions".into(),
            org_code: "370202".into(),
            from: Some(day(2026, 9, 1).into()),
            to: Some(day(2026, 7, 1).into()),
            freshness_limit_hours: 0,
            freshness_limit_minutes: 0,
        };
        let e = parse_request(&req, &tree, DEFAULT_FRESHNESS_MINUTES).unwrap_err();
        assert!(matches!(&e, Error::Domain(d) if d.field() == "to"), "{e}");
        let same = pb::ReportRequest {
            to: req.from,
            ..req.clone()
        };
        assert!(
            matches!(parse_request(&same, &tree, DEFAULT_FRESHNESS_MINUTES).unwrap_err(), Error::Domain(d) if d.field() == "to")
        );
        let ok = pb::ReportRequest {
            from: req.to,
            to: req.from,
            ..req.clone()
        };
        let q = parse_request(&ok, &tree, DEFAULT_FRESHNESS_MINUTES).expect("a period");
        // Half-open: `to` is the day after the last.
        assert_eq!((q.from, q.to), (day(2026, 7, 1), day(2026, 9, 1)));
        for missing in [
            pb::ReportRequest {
                from: None,
                ..ok.clone()
            },
            pb::ReportRequest {
                to: None,
                ..ok.clone()
            },
        ] {
            assert!(parse_request(&missing, &tree, DEFAULT_FRESHNESS_MINUTES).is_err());
        }
        let not_a_day = pb::ReportRequest {
            to: Some(renda_proto::types::v1::Date {
                year: 2026,
                month: 2,
                day: 30,
            }),
            ..ok.clone()
        };
        assert!(
            matches!(parse_request(&not_a_day, &tree, DEFAULT_FRESHNESS_MINUTES).unwrap_err(), Error::Domain(d) if d.field() == "to")
        );
        let bad = pb::ReportRequest {
            name: "nope".into(),
            ..req.clone()
        };
        assert!(
            matches!(parse_request(&bad, &tree, DEFAULT_FRESHNESS_MINUTES).unwrap_err(), Error::Domain(d) if d.field() == "name")
        );
    }
}
