//! The `renda.report.v1` service: upward reports per org unit and period, one row per child
//! org unit of the requested one (drill-down: city → counties → townships → villages), plus a
//! detail list, the definitions of the rates shown, and the freshness of every township's data.
//!
//! Figures are computed with SQL over the store's materialised tables (`records`, `fields`,
//! `sets`, `events`), filtered by org range and period in the database, so a report touches
//! only the records it counts. Where a status is a workflow fold (suggestions), the events are
//! read in one query and folded by `renda_domain`; the rates come from `renda_domain::rates`.
//! Personal data (ID-card numbers, phone numbers, opinion texts) is never selected.
//!
//! Freshness: at the city, townships sync through their county, so the store's `peer_sync`
//! rows name counties. A township's figure is the township's own status report when one is
//! known (a [`FreshnessSource`], fed from the sync engine's status book), otherwise that of the
//! nearest ancestor the node syncs with, marked with it as `source`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, Utc};
use renda_domain::activity::DutyRecordKind;
use renda_domain::event::{Stamp, Stamped};
use renda_domain::org::{OrgCode as DOrg, OrgLevel, OrgTree};
use renda_domain::rates::{self, Rate, RateKind};
use renda_domain::suggestion::{self as sug, Event as SEvent};
use renda_proto::report::v1 as pb;
use renda_store::{Cell, ColumnType};
use serde_json::Value as Json;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::{Shared, today};
use crate::error::{Error, Result};
use crate::schema::kind;

/// Where per-township sync reports come from (the sync engine's status book at a parent node).
pub type FreshnessSource = Arc<dyn Fn() -> Vec<NodeFreshness> + Send + Sync>;

/// What a node below last reported: when it synced and what was pending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFreshness {
    pub org: String,
    pub last_sync_ms: i64,
    pub pending_ops: u64,
}

/// Report names, as the gateway's paths spell them.
pub const REPORT_NAMES: [&str; 5] = [
    "suggestions",
    "projects",
    "deputies",
    "stations",
    "opinions",
];

/// The default freshness limit when the request gives none.
pub const DEFAULT_FRESHNESS_HOURS: u32 = 72;

/// Rows per page of an export stream.
const EXPORT_PAGE: i64 = 2_000;

pub(crate) struct Service {
    pub core: Shared,
    pub freshness: Option<FreshnessSource>,
}

/// A parsed request.
#[derive(Clone, Debug)]
struct Query {
    name: &'static str,
    org: DOrg,
    from: NaiveDate,
    to: NaiveDate,
    limit_hours: u32,
}

fn parse_request(req: &pb::ReportRequest, tree: &OrgTree) -> Result<Query> {
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
    let org = DOrg::parse(&req.org_code)
        .map_err(|e| Error::invalid("org", e.reason().to_owned(), e.reason_zh().to_owned()))?;
    if !tree.has(&org) {
        return Err(Error::invalid(
            "org",
            format!("unknown org unit {org}"),
            format!("未知的组织单位 {org}"),
        ));
    }
    let day = |field: &str, raw: &str| {
        NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
            Error::invalid(
                field,
                format!(
                    "{:?} is not a date (YYYY-MM-DD)",
                    raw.chars().take(20).collect::<String>()
                ),
                "日期格式应为YYYY-MM-DD",
            )
        })
    };
    let from = day("from", &req.from)?;
    let to = day("to", &req.to)?;
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
        limit_hours: if req.freshness_limit_hours == 0 {
            DEFAULT_FRESHNESS_HOURS
        } else {
            req.freshness_limit_hours
        },
    })
}

// ---- SQL pieces ---------------------------------------------------------------------------

/// The two dialects differ only in how JSON is read.
#[derive(Clone, Copy)]
struct Sql {
    postgres: bool,
}

impl Sql {
    /// A key of a JSON object column as text.
    fn key(self, column: &str, key: &str) -> String {
        if self.postgres {
            format!("({column}::jsonb ->> '{key}')")
        } else {
            format!("json_extract({column}, '$.{key}')")
        }
    }

    /// A JSON scalar column as text (strings unquoted).
    fn scalar(self, column: &str) -> String {
        if self.postgres {
            format!("({column}::jsonb #>> '{{}}')")
        } else {
            format!("json_extract({column}, '$')")
        }
    }

    /// A JSON scalar column as a 64-bit integer.
    fn int(self, column: &str) -> String {
        format!("CAST({} AS BIGINT)", self.scalar(column))
    }

    fn key_int(self, column: &str, key: &str) -> String {
        format!("CAST({} AS BIGINT)", self.key(column, key))
    }
}

/// `(r.org_code BETWEEN $a AND $b OR …)` for `org`'s subtree, appending the bounds to `args`.
fn subtree_filter(org: &DOrg, column: &str, args: &mut Vec<Cell>) -> String {
    let o: i64 = org.as_str().parse().unwrap_or(0);
    let ranges: Vec<(i64, i64)> = match org.as_str().len() {
        12 => vec![(o, o)],
        9 => vec![(o, o), (o * 1000, o * 1000 + 999)],
        _ if o % 100 != 0 => vec![
            (o, o),
            (o * 1000, o * 1000 + 999),
            (o * 1_000_000, o * 1_000_000 + 999_999),
        ],
        _ => vec![
            (o, o + 99),
            (o * 1000, (o + 99) * 1000 + 999),
            (o * 1_000_000, (o + 99) * 1_000_000 + 999_999),
        ],
    };
    let mut parts = Vec::new();
    for (lo, hi) in ranges {
        args.push(Cell::Int(lo));
        args.push(Cell::Int(hi));
        parts.push(format!(
            "{column} BETWEEN ${} AND ${}",
            args.len() - 1,
            args.len()
        ));
    }
    format!("({})", parts.join(" OR "))
}

fn push(args: &mut Vec<Cell>, cell: Cell) -> String {
    args.push(cell);
    format!("${}", args.len())
}

/// Unix milliseconds of the start of a Chinese local date.
fn day_ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis() - 8 * 3_600_000)
        .unwrap_or(0)
}

// ---- drill-down rows ----------------------------------------------------------------------

/// The rows of a report: the requested unit itself (本级) and each child unit.
struct Groups {
    units: Vec<(DOrg, String)>,
    index: HashMap<String, usize>,
}

impl Groups {
    fn new(tree: &OrgTree, org: &DOrg) -> Groups {
        let mut units = vec![(
            org.clone(),
            format!(
                "{}(本级)",
                tree.get(org).map(|u| u.name.as_str()).unwrap_or("")
            ),
        )];
        let mut children: Vec<_> = tree.children(org);
        children.sort_by(|a, b| a.code.cmp(&b.code));
        units.extend(
            children
                .into_iter()
                .map(|u| (u.code.clone(), u.name.clone())),
        );
        let index = units
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (c.to_string(), i))
            .collect();
        Groups { units, index }
    }

    /// The row a record of org `code` counts in: the child unit it lies under, or 本级.
    fn of(&self, code: i64) -> Option<usize> {
        let code = DOrg::parse(&code.to_string()).ok()?;
        if let Some(i) = self.index.get(code.as_str()) {
            return Some(*i);
        }
        code.ancestors()
            .iter()
            .find_map(|a| self.index.get(a.as_str()).copied())
            .or_else(|| self.units[0].0.is_same_or_ancestor_of(&code).then_some(0))
    }

    fn len(&self) -> usize {
        self.units.len()
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

fn title_of(name: &str) -> &'static str {
    match name {
        "suggestions" => "建议办理",
        "projects" => "民生实事项目",
        "deputies" => "代表履职",
        "stations" => "代表之家(站)",
        _ => "社情民意",
    }
}

/// Parses an org code from a request, with the Chinese reason on refusal.
pub fn parse_org_code(raw: &str) -> std::result::Result<DOrg, String> {
    DOrg::parse(raw).map_err(|e| e.reason_zh().to_owned())
}

/// The Chinese title of a report (file names of exports use it).
pub fn report_title_zh(name: &str) -> &'static str {
    title_of(name)
}

fn text_of(c: Option<&Cell>) -> String {
    c.and_then(Cell::as_text).unwrap_or_default().to_owned()
}

fn int_of(c: Option<&Cell>) -> i64 {
    c.and_then(Cell::as_int).unwrap_or(0)
}

// ---- the reports ----------------------------------------------------------------------------

impl Service {
    fn sql(&self) -> Sql {
        Sql {
            postgres: self.core.store.backend() == "postgres",
        }
    }

    fn kind_id(&self, name: &str) -> Result<i64> {
        Ok(i64::from(self.core.kind(name)?.id.0))
    }

    async fn rows(
        &self,
        sql: String,
        args: Vec<Cell>,
        cols: &[ColumnType],
    ) -> Result<Vec<Vec<Cell>>> {
        Ok(self.core.store.report_rows(sql, args, cols).await?)
    }

    async fn build(&self, q: &Query) -> Result<pb::Report> {
        let tree = self.core.tree().await?;
        let groups = Groups::new(&tree, &q.org);
        let (tables, rate_kinds) = match q.name {
            "suggestions" => (
                self.suggestions(q, &groups, None).await?.0,
                vec![
                    RateKind::Reply,
                    RateKind::Satisfaction,
                    RateKind::Implementation,
                ],
            ),
            "projects" => (self.projects(q, &groups).await?, vec![]),
            "deputies" => (
                self.deputies(q, &groups).await?,
                vec![RateKind::ReportBackCoverage],
            ),
            "stations" => (self.stations(q, &groups).await?, vec![]),
            _ => {
                let mut t = self.opinions_summary(q, &groups).await?;
                t.push(self.opinions_detail(q, None, 500).await?.0);
                (t, vec![])
            }
        };
        let (freshness, stale) = self.freshness(q, &tree).await?;
        let note = if stale {
            format!(
                "注意：部分乡镇(街道)数据超过{}小时未同步，数字可能不全。",
                q.limit_hours
            )
        } else {
            String::new()
        };
        Ok(pb::Report {
            name: q.name.into(),
            title_zh: title_of(q.name).into(),
            org_code: q.org.to_string(),
            org_name: tree.get(&q.org).map(|u| u.name.clone()).unwrap_or_default(),
            from: q.from.to_string(),
            to: q.to.to_string(),
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
        let peers = self.core.store.peer_syncs().await?;
        let mut known: HashMap<String, (i64, u64, String)> = HashMap::new();
        for p in peers {
            known.insert(
                p.peer.clone(),
                (
                    p.last_success.map_or(0, |t| t.timestamp_millis()),
                    p.pending_push.max(p.pending_pull),
                    p.peer,
                ),
            );
        }
        let reported: HashMap<String, NodeFreshness> = self
            .freshness
            .as_ref()
            .map(|f| f().into_iter().map(|n| (n.org.clone(), n)).collect())
            .unwrap_or_default();
        let now = Utc::now().timestamp_millis();
        let limit_ms = i64::from(q.limit_hours) * 3_600_000;
        let mut out = Vec::new();
        let mut any_stale = false;
        let mut townships: Vec<_> = tree
            .subtree(&q.org)
            .into_iter()
            .filter(|u| u.level() == OrgLevel::Township)
            .collect();
        townships.sort_by(|a, b| a.code.cmp(&b.code));
        for unit in townships {
            let code = unit.code.to_string();
            let (last, pending, source) = if let Some(n) = reported.get(&code) {
                (n.last_sync_ms, n.pending_ops, "township".to_owned())
            } else if let Some((last, pending, _)) = known.get(&code) {
                (*last, *pending, "township".to_owned())
            } else {
                // Data of a township reaches the city through its county: the county's last
                // contact bounds how fresh the township's data can be here.
                unit.code
                    .ancestors()
                    .iter()
                    .find_map(|a| known.get(a.as_str()).map(|(l, p, s)| (*l, *p, s.clone())))
                    .unwrap_or((0, 0, String::new()))
            };
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
        if q.org.level() == OrgLevel::Township
            && let Some(f) = out.iter_mut().find(|f| f.org_code == q.org.as_str())
            && self.core.store.org().to_string() == q.org.as_str()
        {
            f.last_sync_unix_ms = now;
            f.stale = false;
            f.source = "local".into();
            any_stale = out.iter().any(|f| f.stale);
        }
        Ok((out, any_stale))
    }

    // -- suggestions --------------------------------------------------------------------------

    /// Folds every suggestion of the subtree submitted in the period. With `detail_after`,
    /// returns only the overdue list after that id (for exports).
    async fn suggestions(
        &self,
        q: &Query,
        groups: &Groups,
        _detail_after: Option<&str>,
    ) -> Result<(Vec<pb::Table>, usize)> {
        let sql = self.sql();
        let mut args = vec![Cell::Int(self.kind_id(kind::SUGGESTION)?)];
        let orgs = subtree_filter(&q.org, "r.org_code", &mut args);
        let from = push(&mut args, Cell::Text(q.from.to_string()));
        let to = push(&mut args, Cell::Text(q.to.to_string()));
        let on = sql.key("s.payload", "on");
        let text = format!(
            "SELECT r.id, r.org_code, e.event, e.payload, e.hlc, e.origin, e.origin_seq, \
                    {lead}, {kind_of}, sg.members \
             FROM records r \
             JOIN events e ON e.record_id = r.id \
             LEFT JOIN fields l ON l.record_id = r.id AND l.name = 'lead_deputy' \
             LEFT JOIN fields k ON k.record_id = r.id AND k.name = 'kind' \
             LEFT JOIN sets sg ON sg.record_id = r.id AND sg.name = 'co_signers' \
             WHERE r.kind = $1 AND NOT r.deleted AND {orgs} \
               AND EXISTS (SELECT 1 FROM events s WHERE s.record_id = r.id \
                           AND s.event = 'submitted' AND {on} >= {from} AND {on} < {to}) \
             ORDER BY r.id",
            lead = sql.scalar("l.value"),
            kind_of = sql.scalar("k.value"),
        );
        use ColumnType::{Int, Text};
        let rows = self
            .rows(
                text,
                args,
                &[Text, Int, Text, Text, Int, Int, Int, Text, Text, Text],
            )
            .await?;
        // Group the event rows by record.
        struct Item {
            org: i64,
            lead: Uuid,
            motion: bool,
            co_signers: Vec<Uuid>,
            events: Vec<Stamped<SEvent>>,
        }
        let mut items: BTreeMap<String, Item> = BTreeMap::new();
        for row in &rows {
            let id = text_of(row.first());
            let item = items.entry(id).or_insert_with(|| Item {
                org: int_of(row.get(1)),
                lead: Uuid::parse_str(&text_of(row.get(7))).unwrap_or_default(),
                motion: text_of(row.get(8)) == "motion",
                co_signers: serde_json::from_str::<Vec<Uuid>>(&text_of(row.get(9)))
                    .unwrap_or_default(),
                events: Vec::new(),
            });
            let payload: Json = serde_json::from_str(&text_of(row.get(3))).unwrap_or(Json::Null);
            if let Some(event) = suggestion_event(&text_of(row.get(2)), &payload) {
                let stamp = Stamp::new(
                    int_of(row.get(4)) as u64,
                    int_of(row.get(5)) as u64,
                    int_of(row.get(6)) as u64,
                );
                item.events.push(Stamped::new(stamp, event));
            }
        }
        let today = today();
        let mut folded: Vec<(String, i64, sug::State, Uuid)> = Vec::with_capacity(items.len());
        for (id, item) in items {
            let Ok(uuid) = Uuid::parse_str(&id) else {
                continue;
            };
            let congress = DOrg::parse(&item.org.to_string())
                .map(|o| o.to_string())
                .unwrap_or_default();
            let draft = |k| sug::Draft {
                kind: k,
                congress: congress.clone(),
                title: "建议事项".into(),
                body: "报表折叠用的占位正文内容".into(),
                lead_deputy: item.lead,
                co_signers: item.co_signers.clone(),
            };
            let parsed = if item.motion {
                sug::Suggestion::parse(draft(sug::Kind::Motion), uuid)
                    .or_else(|_| sug::Suggestion::parse(draft(sug::Kind::Suggestion), uuid))
            } else {
                sug::Suggestion::parse(draft(sug::Kind::Suggestion), uuid)
            };
            let Ok(suggestion) = parsed else { continue };
            let state = sug::fold(&suggestion, &item.events);
            folded.push((id, item.org, state, item.lead));
        }

        // Per org unit.
        let mut per_org: Vec<Vec<(&sug::State, Uuid)>> = vec![Vec::new(); groups.len()];
        let mut status_counts = vec![[0i64; 4]; groups.len()];
        for (_, org, state, lead) in &folded {
            if let Some(i) = groups.of(*org) {
                per_org[i].push((state, *lead));
                let c = &mut status_counts[i];
                c[0] += 1;
                if state.status.is_handling() {
                    c[1] += 1;
                }
                if state.replied {
                    c[2] += 1;
                }
                if state.status.is_final() {
                    c[3] += 1;
                }
            }
        }
        let states: Vec<sug::State> = folded.iter().map(|(_, _, s, _)| s.clone()).collect();
        let overdue = sug::overdue(&states, today);
        let org_of: HashMap<Uuid, i64> = folded
            .iter()
            .filter_map(|(id, org, _, _)| Uuid::parse_str(id).ok().map(|u| (u, *org)))
            .collect();
        let mut overdue_per_org = vec![0i64; groups.len()];
        for o in &overdue {
            if let Some(i) = org_of.get(&o.id).and_then(|org| groups.of(*org)) {
                overdue_per_org[i] += 1;
            }
        }
        let mut org_rows = Vec::new();
        for (i, (code, name)) in groups.units.iter().enumerate() {
            let r = rates::suggestion_rates(&per_org[i]);
            let c = status_counts[i];
            org_rows.push(vec![
                text_cell(code.to_string()),
                text_cell(name.clone()),
                int_cell(c[0]),
                int_cell(i64::try_from(r.reply.denominator).unwrap_or(0)),
                int_cell(c[1]),
                int_cell(c[2]),
                int_cell(c[3]),
                rate_cell(&r.reply),
                rate_cell(&r.satisfaction),
                rate_cell(&r.implementation),
                int_cell(overdue_per_org[i]),
            ]);
        }
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
                ("reply_rate", "答复率(%)"),
                ("satisfaction_rate", "满意率(%)"),
                ("implementation_rate", "落实率(%)"),
                ("overdue", "逾期件数"),
            ],
            org_rows,
        );

        // Per handling unit: an item counts for every unit it was assigned to.
        let mut per_unit: BTreeMap<Uuid, Vec<(&sug::State, Uuid)>> = BTreeMap::new();
        for (_, _, state, lead) in &folded {
            if let Some(a) = &state.assignment {
                for unit in a.units() {
                    per_unit.entry(unit).or_default().push((state, *lead));
                }
            }
        }
        let names = self.unit_names(per_unit.keys().copied().collect()).await?;
        let unit_rows = per_unit
            .iter()
            .map(|(unit, items)| {
                let r = rates::suggestion_rates(items);
                vec![
                    text_cell(unit.to_string()),
                    text_cell(names.get(unit).cloned().unwrap_or_default()),
                    int_cell(i64::try_from(r.reply.denominator).unwrap_or(0)),
                    int_cell(i64::try_from(r.reply.numerator).unwrap_or(0)),
                    rate_cell(&r.reply),
                    rate_cell(&r.satisfaction),
                    rate_cell(&r.implementation),
                ]
            })
            .collect();
        let by_unit = table(
            "by_unit",
            "按承办单位",
            &[
                ("unit_id", "承办单位编号"),
                ("unit_name", "承办单位"),
                ("assigned", "交办件数"),
                ("replied", "已答复"),
                ("reply_rate", "答复率(%)"),
                ("satisfaction_rate", "满意率(%)"),
                ("implementation_rate", "落实率(%)"),
            ],
            unit_rows,
        );
        let overdue_rows = overdue
            .iter()
            .map(|o| {
                let org = org_of.get(&o.id).copied().unwrap_or(0);
                vec![
                    text_cell(o.id.to_string()),
                    text_cell(org.to_string()),
                    text_cell(match o.kind {
                        sug::OverdueKind::Reply => "逾期未答复".to_owned(),
                        sug::OverdueKind::SecondRoundReply => "二次交办逾期未答复".to_owned(),
                        sug::OverdueKind::AssistingView(u) => {
                            format!(
                                "协办意见逾期({})",
                                names.get(&u).cloned().unwrap_or_else(|| u.to_string())
                            )
                        }
                    }),
                    text_cell(o.due.to_string()),
                    int_cell(o.days_late),
                ]
            })
            .collect();
        let overdue_table = table(
            "overdue",
            "逾期清单",
            &[
                ("suggestion_id", "建议编号"),
                ("org_code", "行政区划代码"),
                ("overdue_kind", "逾期类型"),
                ("due", "应办日期"),
                ("days_late", "逾期天数"),
            ],
            overdue_rows,
        );
        Ok((vec![by_org, by_unit, overdue_table], folded.len()))
    }

    async fn unit_names(&self, ids: Vec<Uuid>) -> Result<HashMap<Uuid, String>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = self.sql();
        let args = vec![Cell::Int(self.kind_id(kind::HANDLING_UNIT)?)];
        let text = format!(
            "SELECT r.id, {} FROM records r JOIN fields f ON f.record_id = r.id AND f.name = 'name' \
             WHERE r.kind = $1",
            sql.scalar("f.value")
        );
        let rows = self
            .rows(text, args, &[ColumnType::Text, ColumnType::Text])
            .await?;
        let wanted: BTreeSet<Uuid> = ids.into_iter().collect();
        Ok(rows
            .iter()
            .filter_map(|r| {
                let id = Uuid::parse_str(&text_of(r.first())).ok()?;
                wanted.contains(&id).then(|| (id, text_of(r.get(1))))
            })
            .collect())
    }

    // -- projects -----------------------------------------------------------------------------

    async fn projects(&self, q: &Query, groups: &Groups) -> Result<Vec<pb::Table>> {
        let sql = self.sql();
        let mut args = vec![Cell::Int(self.kind_id(kind::PROJECT)?)];
        let orgs = subtree_filter(&q.org, "r.org_code", &mut args);
        let first_year = push(&mut args, Cell::Int(i64::from(q.from.year())));
        let last_year = push(
            &mut args,
            Cell::Int(i64::from(q.to.pred_opt().unwrap_or(q.to).year())),
        );
        let year = sql.int("y.value");
        let text = format!(
            "SELECT r.id, r.org_code, {year}, {title}, COALESCE({budget}, 0), \
               (SELECT COUNT(*) FROM events e WHERE e.record_id = r.id AND e.event = 'voted' \
                  AND {adopted} IN ('true', '1')), \
               (SELECT COALESCE(MAX({percent}), 0) FROM events e WHERE e.record_id = r.id \
                  AND e.event = 'progress'), \
               (SELECT COUNT(*) FROM events e WHERE e.record_id = r.id \
                  AND e.event = 'acceptance_passed') \
             FROM records r JOIN fields y ON y.record_id = r.id AND y.name = 'year' \
             LEFT JOIN fields t ON t.record_id = r.id AND t.name = 'title' \
             LEFT JOIN fields b ON b.record_id = r.id AND b.name = 'budget_fen' \
             WHERE r.kind = $1 AND NOT r.deleted AND {orgs} \
               AND {year} BETWEEN {first_year} AND {last_year} ORDER BY r.id",
            title = sql.scalar("t.value"),
            budget = sql.int("b.value"),
            adopted = sql.key("e.payload", "adopted"),
            percent = sql.key_int("e.payload", "percent"),
        );
        use ColumnType::{Int, Text};
        let rows = self
            .rows(text, args, &[Text, Int, Int, Text, Int, Int, Int, Int])
            .await?;
        let this_year = today().year();
        // candidates, adopted, budget, progress sum, accepted, overdue
        let mut sums = vec![[0i64; 6]; groups.len()];
        let mut detail = Vec::new();
        for r in &rows {
            let org = int_of(r.get(1));
            let year = int_of(r.get(2));
            let budget = int_of(r.get(4));
            let adopted = int_of(r.get(5)) > 0;
            let progress = int_of(r.get(6)).clamp(0, 100);
            let accepted = int_of(r.get(7)) > 0;
            let overdue = adopted && !accepted && year < i64::from(this_year);
            if let Some(i) = groups.of(org) {
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
        let org_rows = groups
            .units
            .iter()
            .enumerate()
            .map(|(i, (code, name))| {
                let s = sums[i];
                vec![
                    text_cell(code.to_string()),
                    text_cell(name.clone()),
                    int_cell(s[0]),
                    int_cell(s[1]),
                    real_cell(Some(s[2] as f64 / 100.0)),
                    real_cell((s[1] > 0).then(|| s[3] as f64 / s[1] as f64)),
                    int_cell(s[4]),
                    int_cell(s[5]),
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

    async fn deputies(&self, q: &Query, groups: &Groups) -> Result<Vec<pb::Table>> {
        let sql = self.sql();
        use ColumnType::{Int, Text};
        // Serving deputies of the subtree.
        let mut args = vec![Cell::Int(self.kind_id(kind::DEPUTY)?)];
        let orgs = subtree_filter(&q.org, "r.org_code", &mut args);
        let text = format!(
            "SELECT r.id, r.org_code, {name}, COALESCE({status}, '') FROM records r \
             LEFT JOIN fields n ON n.record_id = r.id AND n.name = 'name' \
             LEFT JOIN fields s ON s.record_id = r.id AND s.name = 'status' \
             WHERE r.kind = $1 AND NOT r.deleted AND {orgs} ORDER BY r.id",
            name = sql.scalar("n.value"),
            status = sql.scalar("s.value"),
        );
        let deputies = self.rows(text, args, &[Text, Int, Text, Text]).await?;
        // Check-ins and speeches in the period, per deputy.
        let mut args = vec![Cell::Int(self.kind_id(kind::ACTIVITY)?)];
        let from = push(&mut args, Cell::Int(day_ms(q.from)));
        let to = push(&mut args, Cell::Int(day_ms(q.to)));
        let at = sql.key_int("e.payload", "at");
        let text = format!(
            "SELECT {deputy}, e.event, COUNT(*) FROM events e \
             WHERE e.kind = $1 AND e.event IN ('checked_in', 'speech') \
               AND {at} >= {from} AND {at} < {to} GROUP BY {deputy}, e.event",
            deputy = sql.key("e.payload", "deputy"),
        );
        let duty = self.rows(text, args, &[Text, Text, Int]).await?;
        // Voter-link visits in the period, per deputy.
        let mut args = vec![Cell::Int(self.kind_id(kind::DEPUTY)?)];
        let from_d = push(&mut args, Cell::Text(q.from.to_string()));
        let to_d = push(&mut args, Cell::Text(q.to.to_string()));
        let on = sql.key("e.payload", "on");
        let text = format!(
            "SELECT e.record_id, COUNT(*), CAST(COALESCE(SUM({households}), 0) AS BIGINT) \
             FROM events e WHERE e.kind = $1 AND e.event = 'visit' \
               AND {on} >= {from_d} AND {on} < {to_d} GROUP BY e.record_id",
            households = sql.key_int("e.payload", "households"),
        );
        let visits = self.rows(text, args, &[Text, Int, Int]).await?;
        // Report-backs in the period.
        let mut args = vec![Cell::Int(self.kind_id(kind::REPORT_BACK)?)];
        let from_d = push(&mut args, Cell::Text(q.from.to_string()));
        let to_d = push(&mut args, Cell::Text(q.to.to_string()));
        let text = format!(
            "SELECT DISTINCT {deputy} FROM records r \
             JOIN fields d ON d.record_id = r.id AND d.name = 'deputy' \
             JOIN fields o ON o.record_id = r.id AND o.name = 'on' \
             WHERE r.kind = $1 AND NOT r.deleted AND {on} >= {from_d} AND {on} < {to_d}",
            deputy = sql.scalar("d.value"),
            on = sql.scalar("o.value"),
        );
        let reported: BTreeSet<Uuid> = self
            .rows(text, args, &[Text])
            .await?
            .iter()
            .filter_map(|r| Uuid::parse_str(&text_of(r.first())).ok())
            .collect();

        let weights = self.core.ctx.weights();
        let mut check_ins: HashMap<Uuid, i64> = HashMap::new();
        let mut speeches: HashMap<Uuid, i64> = HashMap::new();
        for r in &duty {
            let Ok(d) = Uuid::parse_str(&text_of(r.first())) else {
                continue;
            };
            let target = if text_of(r.get(1)) == "speech" {
                &mut speeches
            } else {
                &mut check_ins
            };
            *target.entry(d).or_default() += int_of(r.get(2));
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
        // deputies, check-ins, speeches, visits, households, points
        let mut sums = vec![[0i64; 6]; groups.len()];
        let mut serving: Vec<BTreeSet<Uuid>> = vec![BTreeSet::new(); groups.len()];
        let mut ranking = Vec::new();
        for r in &deputies {
            let Ok(id) = Uuid::parse_str(&text_of(r.first())) else {
                continue;
            };
            let org = int_of(r.get(1));
            let ended = text_of(r.get(3)) == "终止" || text_of(r.get(3)) == "ended";
            let c = check_ins.get(&id).copied().unwrap_or(0);
            let s = speeches.get(&id).copied().unwrap_or(0);
            let (v, h) = visit_of.get(&id).copied().unwrap_or((0, 0));
            let rb = i64::from(reported.contains(&id));
            let points = c * i64::from(weights.get(DutyRecordKind::CheckIn))
                + s * i64::from(weights.get(DutyRecordKind::Speech))
                + v * i64::from(weights.get(DutyRecordKind::VoterVisit))
                + rb * i64::from(weights.get(DutyRecordKind::ReportBack));
            if let Some(i) = groups.of(org) {
                let x = &mut sums[i];
                x[0] += i64::from(!ended);
                x[1] += c;
                x[2] += s;
                x[3] += v;
                x[4] += h;
                x[5] += points;
                if !ended {
                    serving[i].insert(id);
                }
            }
            ranking.push((points, id, org, text_of(r.get(2)), c, s, v, rb));
        }
        ranking.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let org_rows = groups
            .units
            .iter()
            .enumerate()
            .map(|(i, (code, name))| {
                let x = sums[i];
                let coverage = rates::report_back_coverage(&serving[i], &reported);
                vec![
                    text_cell(code.to_string()),
                    text_cell(name.clone()),
                    int_cell(x[0]),
                    int_cell(x[1]),
                    int_cell(x[2]),
                    int_cell(i64::try_from(coverage.numerator).unwrap_or(0)),
                    rate_cell(&coverage),
                    int_cell(x[3]),
                    int_cell(x[4]),
                    int_cell(x[5]),
                ]
            })
            .collect();
        let ranking_rows = ranking
            .into_iter()
            .enumerate()
            .map(|(rank, (points, id, org, name, c, s, v, rb))| {
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
                ],
                ranking_rows,
            ),
        ])
    }

    // -- stations -----------------------------------------------------------------------------

    async fn stations(&self, q: &Query, groups: &Groups) -> Result<Vec<pb::Table>> {
        let sql = self.sql();
        use ColumnType::{Int, Text};
        let mut args = vec![Cell::Int(self.kind_id(kind::STATION)?)];
        let orgs = subtree_filter(&q.org, "r.org_code", &mut args);
        let from_d = push(&mut args, Cell::Text(q.from.to_string()));
        let to_d = push(&mut args, Cell::Text(q.to.to_string()));
        let on = sql.key("e.payload", "on");
        let text = format!(
            "SELECT r.id, r.org_code, {name}, \
               (SELECT COUNT(*) FROM events e WHERE e.record_id = r.id AND e.event = 'reception' \
                  AND {on} >= {from_d} AND {on} < {to_d}) \
             FROM records r LEFT JOIN fields n ON n.record_id = r.id AND n.name = 'name' \
             WHERE r.kind = $1 AND NOT r.deleted AND {orgs} ORDER BY r.id",
            name = sql.scalar("n.value"),
        );
        let stations = self.rows(text, args, &[Text, Int, Text, Int]).await?;
        // Activities starting in the period, per org.
        let mut args = vec![Cell::Int(self.kind_id(kind::ACTIVITY)?)];
        let orgs = subtree_filter(&q.org, "r.org_code", &mut args);
        let from = push(&mut args, Cell::Int(day_ms(q.from)));
        let to = push(&mut args, Cell::Int(day_ms(q.to)));
        let starts = sql.int("s.value");
        let text = format!(
            "SELECT r.org_code, COUNT(*) FROM records r \
             JOIN fields s ON s.record_id = r.id AND s.name = 'starts_at' \
             WHERE r.kind = $1 AND NOT r.deleted AND {orgs} \
               AND {starts} >= {from} AND {starts} < {to} GROUP BY r.org_code"
        );
        let activities = self.rows(text, args, &[Int, Int]).await?;
        // Opinions raised at each station in the period, and how many are resolved.
        let opinions = self.opinion_rows(q, None, None).await?;
        let mut per_station: HashMap<String, (i64, i64)> = HashMap::new();
        let mut org_opinions = vec![(0i64, 0i64); groups.len()];
        for o in &opinions {
            let resolved = i64::from(o.resolved_ms.is_some());
            if let Some(i) = groups.of(o.org) {
                org_opinions[i].0 += 1;
                org_opinions[i].1 += resolved;
            }
            if !o.station.is_empty() {
                let e = per_station.entry(o.station.clone()).or_default();
                e.0 += 1;
                e.1 += resolved;
            }
        }
        // stations, receptions, activities
        let mut sums = vec![[0i64; 3]; groups.len()];
        let mut detail = Vec::new();
        for s in &stations {
            let org = int_of(s.get(1));
            let receptions = int_of(s.get(3));
            if let Some(i) = groups.of(org) {
                sums[i][0] += 1;
                sums[i][1] += receptions;
            }
            let id = text_of(s.first());
            let (collected, resolved) = per_station.get(&id).copied().unwrap_or((0, 0));
            detail.push(vec![
                text_cell(id),
                text_cell(text_of(s.get(2))),
                text_cell(org.to_string()),
                int_cell(receptions),
                int_cell(collected),
                int_cell(resolved),
            ]);
        }
        for a in &activities {
            if let Some(i) = groups.of(int_of(a.first())) {
                sums[i][2] += int_of(a.get(1));
            }
        }
        let org_rows = groups
            .units
            .iter()
            .enumerate()
            .map(|(i, (code, name))| {
                vec![
                    text_cell(code.to_string()),
                    text_cell(name.clone()),
                    int_cell(sums[i][0]),
                    int_cell(sums[i][1]),
                    int_cell(sums[i][2]),
                    int_cell(org_opinions[i].0),
                    int_cell(org_opinions[i].1),
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

    /// Opinions of the subtree raised in the period, by id, after `after`, at most `limit`.
    async fn opinion_rows(
        &self,
        q: &Query,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<OpinionRow>> {
        let sql = self.sql();
        let mut args = vec![Cell::Int(self.kind_id(kind::OPINION)?)];
        // The unary `+` keeps the planner off `records_kind_org`, so it starts from the period
        // (`fields_raised_at`, migration 0002): the opinions of a subtree run to hundreds of
        // thousands, those of one period to a fraction of that.
        let orgs = subtree_filter(&q.org, "+r.org_code", &mut args);
        let from = push(&mut args, Cell::Int(day_ms(q.from)));
        let to = push(&mut args, Cell::Int(day_ms(q.to)));
        let raised = sql.int("ra.value");
        let at = sql.key_int("e.payload", "at");
        let mut tail = String::new();
        if let Some(after) = after {
            let p = push(&mut args, Cell::Text(after.to_owned()));
            tail.push_str(&format!(
                " AND r.id > {}",
                renda_store::id_param(sql.postgres, &p)
            ));
        }
        tail.push_str(" ORDER BY r.id");
        if let Some(limit) = limit {
            let p = push(&mut args, Cell::Int(limit));
            tail.push_str(&format!(" LIMIT {p}"));
        }
        let text = format!(
            "SELECT r.id, r.org_code, {raised}, COALESCE({station}, ''), \
               COALESCE((SELECT {route} FROM events e WHERE e.record_id = r.id \
                  AND e.event = 'routed' ORDER BY e.hlc DESC, e.origin DESC LIMIT 1), ''), \
               (SELECT MIN({at}) FROM events e WHERE e.record_id = r.id AND e.event = 'resolved'), \
               (SELECT COUNT(*) FROM events e WHERE e.record_id = r.id AND e.event = 'escalated') \
             FROM records r JOIN fields ra ON ra.record_id = r.id AND ra.name = 'raised_at' \
             LEFT JOIN fields st ON st.record_id = r.id AND st.name = 'station' \
             WHERE +r.kind = $1 AND NOT r.deleted AND {orgs} \
               AND {raised} >= {from} AND {raised} < {to}{tail}",
            station = sql.scalar("st.value"),
            route = sql.key("e.payload", "route"),
        );
        use ColumnType::{Int, Text};
        let rows = self
            .rows(text, args, &[Text, Int, Int, Text, Text, Int, Int])
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| OpinionRow {
                id: text_of(r.first()),
                org: int_of(r.get(1)),
                raised_ms: int_of(r.get(2)),
                station: text_of(r.get(3)),
                route: text_of(r.get(4)),
                resolved_ms: r.get(5).and_then(Cell::as_int),
                escalated: int_of(r.get(6)) > 0,
            })
            .collect())
    }

    async fn opinions_summary(&self, q: &Query, groups: &Groups) -> Result<Vec<pb::Table>> {
        let rows = self.opinion_rows(q, None, None).await?;
        // collected, 4 routes, resolved, open, total days to resolve
        let mut sums = vec![[0i64; 8]; groups.len()];
        for o in &rows {
            let Some(i) = groups.of(o.org) else { continue };
            let s = &mut sums[i];
            s[0] += 1;
            match o.route.as_str() {
                "answered_on_site" => s[1] += 1,
                "transferred_to_township" => s[2] += 1,
                "assigned_to_department" => s[3] += 1,
                "escalated_upward" => s[4] += 1,
                _ => {}
            }
            match o.resolved_ms {
                Some(done) => {
                    s[5] += 1;
                    s[7] += (done - o.raised_ms).max(0);
                }
                None => s[6] += 1,
            }
        }
        let org_rows = groups
            .units
            .iter()
            .enumerate()
            .map(|(i, (code, name))| {
                let s = sums[i];
                vec![
                    text_cell(code.to_string()),
                    text_cell(name.clone()),
                    int_cell(s[0]),
                    int_cell(s[1]),
                    int_cell(s[2]),
                    int_cell(s[3]),
                    int_cell(s[4]),
                    int_cell(s[5]),
                    int_cell(s[6]),
                    real_cell((s[5] > 0).then(|| s[7] as f64 / s[5] as f64 / 86_400_000.0)),
                ]
            })
            .collect();
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

    /// The opinion list (no content: it may name citizens), `limit` rows after `after`.
    async fn opinions_detail(
        &self,
        q: &Query,
        after: Option<&str>,
        limit: i64,
    ) -> Result<(pb::Table, Option<String>)> {
        let rows = self.opinion_rows(q, after, Some(limit)).await?;
        let last = rows.last().map(|r| r.id.clone());
        let out = rows
            .into_iter()
            .map(|o| {
                vec![
                    text_cell(o.id),
                    text_cell(o.org.to_string()),
                    text_cell(route_zh(&o.route)),
                    text_cell(match (o.resolved_ms, o.escalated) {
                        (Some(_), _) => "已办结",
                        (None, true) => "已上报",
                        (None, false) => "办理中",
                    }),
                    text_cell(crate::core::local_date(o.raised_ms).to_string()),
                    text_cell(
                        o.resolved_ms
                            .map(|t| crate::core::local_date(t).to_string())
                            .unwrap_or_default(),
                    ),
                    real_cell(
                        o.resolved_ms
                            .map(|t| ((t - o.raised_ms).max(0) as f64) / 86_400_000.0),
                    ),
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

struct OpinionRow {
    id: String,
    org: i64,
    raised_ms: i64,
    station: String,
    route: String,
    resolved_ms: Option<i64>,
    escalated: bool,
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

/// A suggestion event from its stored JSON payload; `None` for one the report does not need
/// or cannot read (the fold flags nothing for a step it never sees, so such a step is counted
/// as not taken).
fn suggestion_event(name: &str, p: &Json) -> Option<SEvent> {
    let s = |k: &str| p.get(k).and_then(Json::as_str).unwrap_or_default();
    let at = NaiveDate::parse_from_str(s("on"), "%Y-%m-%d").ok()?;
    let id = |k: &str| Uuid::parse_str(s(k)).ok();
    let ids = |k: &str| -> Vec<Uuid> {
        s(k).split(',')
            .filter_map(|x| Uuid::parse_str(x.trim()).ok())
            .collect()
    };
    Some(match name {
        "submitted" => SEvent::Submitted { at },
        "reviewed" => SEvent::ReviewPassed { at },
        "revision_requested" => SEvent::RevisionRequested {
            reason: s("reason").to_owned(),
            at,
        },
        "revised" => SEvent::Revised { at },
        "withdrawn" => SEvent::Withdrawn { at },
        "merged" => SEvent::MergedInto {
            target: id("into")?,
            at,
        },
        "assigned" => {
            let units = ids("units");
            let assisting = ids("assisting");
            let mode = match s("mode") {
                "single" => sug::Assignment::Single(*units.first()?),
                "split" => sug::Assignment::Split(units.into_iter().collect()),
                "lead_with_assisting" => sug::Assignment::LeadWithAssisting {
                    lead: *units.first()?,
                    assisting: assisting.into_iter().collect(),
                },
                _ => return None,
            };
            SEvent::Assigned { mode, at }
        }
        "returned" => SEvent::Returned {
            unit: id("unit")?,
            at,
        },
        "extension" => SEvent::ExtensionApproved { at },
        "assisting_view" => SEvent::AssistingViewSent {
            unit: id("unit")?,
            at,
        },
        "replied" => SEvent::Replied {
            unit: id("unit")?,
            category: match s("category") {
                "A" | "a" => sug::ReplyCategory::A,
                "B" | "b" => sug::ReplyCategory::B,
                "C" | "c" => sug::ReplyCategory::C,
                "D" | "d" => sug::ReplyCategory::D,
                _ => return None,
            },
            at,
        },
        "satisfaction" => SEvent::Evaluated {
            deputy: id("deputy")?,
            satisfaction: match s("satisfaction") {
                "satisfied" => sug::Satisfaction::Satisfied,
                "basically_satisfied" => sug::Satisfaction::BasicallySatisfied,
                "dissatisfied" => sug::Satisfaction::Dissatisfied,
                _ => return None,
            },
            at,
        },
        "second_round" => SEvent::SecondRound { at },
        "implemented" => SEvent::Implemented { at },
        "closed" => SEvent::Closed { at },
        _ => return None,
    })
}

type RowStream =
    Pin<Box<dyn tokio_stream::Stream<Item = std::result::Result<pb::RowBatch, Status>> + Send>>;

/// The tonic face of [`Service`], cheap to clone into a streaming task.
pub struct Reports(Arc<Service>);

#[tonic::async_trait]
impl pb::reports_server::Reports for Reports {
    async fn get_report(
        &self,
        req: Request<pb::ReportRequest>,
    ) -> std::result::Result<Response<pb::Report>, Status> {
        let tree = self.0.core.tree().await.map_err(Status::from)?;
        let q = parse_request(req.get_ref(), &tree)?;
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
        let q = parse_request(req.get_ref(), &tree)?;
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
    /// hundreds of thousands of rows, are paged from the store by id so memory stays flat;
    /// the other lists are bounded by what they count (deputies, stations, projects).
    async fn stream_rows(
        &self,
        q: &Query,
        tx: &tokio::sync::mpsc::Sender<std::result::Result<pb::RowBatch, Status>>,
    ) -> Result<()> {
        if q.name == "opinions" {
            let mut after: Option<String> = None;
            let mut first = true;
            loop {
                let (t, last) = self
                    .opinions_detail(q, after.as_deref(), EXPORT_PAGE)
                    .await?;
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
            "suggestions" => self.suggestions(q, &groups, None).await?.0,
            "projects" => self.projects(q, &groups).await?,
            "deputies" => self.deputies(q, &groups).await?,
            _ => self.stations(q, &groups).await?,
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

/// The reports service over one store, for a tonic server.
pub fn reports_server(
    store: renda_store::Store,
    ctx: crate::ApiContext,
    freshness: Option<FreshnessSource>,
) -> pb::reports_server::ReportsServer<Reports> {
    let core = Arc::new(crate::core::Core { store, ctx });
    pb::reports_server::ReportsServer::new(Reports(Arc::new(Service { core, freshness })))
        .max_encoding_message_size(64 * 1024 * 1024)
}

/// The auth service over one store, signing with the deployment's secret.
pub fn auth_server(
    store: renda_store::Store,
    ctx: crate::ApiContext,
    secret: Vec<u8>,
) -> renda_proto::auth::v1::auth_server::AuthServer<crate::users::Service> {
    let core = Arc::new(crate::core::Core { store, ctx });
    renda_proto::auth::v1::auth_server::AuthServer::new(crate::users::Service {
        core,
        signer: crate::auth::TokenSigner::new(secret),
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
    let q = parse_request(req, &tree)?;
    Ok(service.build(&q).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_filters_bind_their_bounds() {
        let mut args = vec![Cell::Int(9)];
        let sql = subtree_filter(&DOrg::parse("370202").unwrap(), "r.org_code", &mut args);
        assert_eq!(
            sql,
            "(r.org_code BETWEEN $2 AND $3 OR r.org_code BETWEEN $4 AND $5 OR r.org_code BETWEEN $6 AND $7)"
        );
        assert_eq!(args[3], Cell::Int(370_202_000));
    }

    #[test]
    fn periods_the_wrong_way_round_name_the_parameter() {
        let tree = OrgTree::demo();
        let req = pb::ReportRequest {
            name: "suggestions".into(),
            org_code: "370202".into(),
            from: "2026-09-01".into(),
            to: "2026-07-01".into(),
            freshness_limit_hours: 0,
        };
        let e = parse_request(&req, &tree).unwrap_err();
        assert!(matches!(&e, Error::Domain(d) if d.field() == "to"), "{e}");
        let bad = pb::ReportRequest {
            name: "nope".into(),
            ..req.clone()
        };
        assert!(
            matches!(parse_request(&bad, &tree).unwrap_err(), Error::Domain(d) if d.field() == "name")
        );
    }
}
