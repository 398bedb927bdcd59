//! `renda.suggestion.v1.Suggestions`: motions and suggestions from submission to closing, the
//! handling units that reply, the three rates and overdue items.
//!
//! The status is the domain fold of the record's events. Each step is checked with the domain's
//! `check` against the folded state before it is written, and with the write rules for the org
//! the step belongs to: the congress's node for submission and review, a county or city deputy
//! office for assignment and its follow-ups, the unit's node for returns and replies, the
//! deputy's node for satisfaction.

use chrono::NaiveDate;
use renda_domain::authority::{RecordKind, Step};
use renda_domain::event::Stamped;
use renda_domain::org::OrgCode;
use renda_domain::rates;
use renda_domain::suggestion::{
    self as sug, Assignment, Event, Kind, ReplyCategory, Satisfaction, Status as St,
    SupervisionMode,
};
use renda_proto::suggestion::v1 as pb;
use renda_replica::Value;
use renda_store::StoredRecord;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::error::{Error, Result};
use crate::schema::{MAX_LIST, id_list, kind, parse_id_list};

pub(crate) struct Service(pub Shared);

fn status_name(s: St) -> &'static str {
    match s {
        St::Drafted => "drafted",
        St::Submitted => "submitted",
        St::RevisionRequested => "revision_requested",
        St::ReviewPassed => "review_passed",
        St::Returned => "returned",
        St::Assigned => "assigned",
        St::Replied => "replied",
        St::Evaluated => "evaluated",
        St::SecondRound => "second_round",
        St::Closed => "closed",
        St::Withdrawn => "withdrawn",
        St::Merged => "merged",
    }
}

const CATEGORIES: [(&str, ReplyCategory); 4] = [
    ("A", ReplyCategory::A),
    ("B", ReplyCategory::B),
    ("C", ReplyCategory::C),
    ("D", ReplyCategory::D),
];

const SATISFACTIONS: [(&str, Satisfaction); 3] = [
    ("satisfied", Satisfaction::Satisfied),
    ("basically_satisfied", Satisfaction::BasicallySatisfied),
    ("dissatisfied", Satisfaction::Dissatisfied),
];

const SUPERVISION: [(&str, SupervisionMode); 5] = [
    ("key", SupervisionMode::Key),
    ("leader", SupervisionMode::Leader),
    ("sector", SupervisionMode::Sector),
    ("tracking", SupervisionMode::Tracking),
    ("deputy_participating", SupervisionMode::DeputyParticipating),
];

fn lookup<T: Copy>(table: &[(&str, T)], raw: &str) -> Option<T> {
    table
        .iter()
        .find(|(n, _)| *n == raw.trim())
        .map(|(_, v)| *v)
}

fn name_of<T: Copy + PartialEq>(table: &[(&'static str, T)], v: T) -> &'static str {
    table
        .iter()
        .find(|(_, t)| *t == v)
        .map(|(n, _)| *n)
        .unwrap_or_default()
}

pub(crate) fn parse_satisfaction(field: &str, raw: &str) -> Result<Satisfaction> {
    lookup(&SATISFACTIONS, raw).ok_or_else(|| {
        Error::invalid(
            field,
            "must be satisfied, basically_satisfied or dissatisfied",
            "须为满意、基本满意或不满意",
        )
    })
}

fn assignment_from(mode: &str, units: &[Uuid], assisting: &[Uuid]) -> Option<Assignment> {
    Some(match mode {
        "single" => Assignment::Single(*units.first()?),
        "split" => Assignment::Split(units.iter().copied().collect()),
        "lead_with_assisting" => Assignment::LeadWithAssisting {
            lead: *units.first()?,
            assisting: assisting.iter().copied().collect(),
        },
        _ => return None,
    })
}

fn assignment_pb(a: &Assignment) -> pb::Assignment {
    let ids = |s: &std::collections::BTreeSet<Uuid>| s.iter().map(Uuid::to_string).collect();
    match a {
        Assignment::Single(u) => pb::Assignment {
            mode: "single".into(),
            unit_ids: vec![u.to_string()],
            assisting_unit_ids: vec![],
        },
        Assignment::Split(units) => pb::Assignment {
            mode: "split".into(),
            unit_ids: ids(units),
            assisting_unit_ids: vec![],
        },
        Assignment::LeadWithAssisting { lead, assisting } => pb::Assignment {
            mode: "lead_with_assisting".into(),
            unit_ids: vec![lead.to_string()],
            assisting_unit_ids: ids(assisting),
        },
    }
}

/// The suggestion as the domain sees it (already validated when it was written).
pub(crate) fn domain_suggestion(r: &StoredRecord) -> Result<sug::Suggestion> {
    Ok(sug::Suggestion {
        id: r.id.0,
        kind: if text(r, "kind") == "motion" {
            Kind::Motion
        } else {
            Kind::Suggestion
        },
        congress: record_org(r)?,
        title: text(r, "title"),
        body: text(r, "body"),
        lead_deputy: ref_id(r, "lead_deputy").unwrap_or_default(),
        co_signers: set(r, "co_signers").into_iter().collect(),
    })
}

fn domain_event(e: &Ev) -> Option<Event> {
    let at = e.date("on");
    Some(match e.name.as_str() {
        "submitted" => Event::Submitted { at },
        "reviewed" => Event::ReviewPassed { at },
        "revision_requested" => Event::RevisionRequested {
            reason: e.text("reason"),
            at,
        },
        "revised" => Event::Revised { at },
        "withdrawn" => Event::Withdrawn { at },
        "merged" => Event::MergedInto {
            target: e.id("into"),
            at,
        },
        "assigned" => Event::Assigned {
            mode: assignment_from(
                &e.text("mode"),
                &parse_id_list(&e.text("units")),
                &parse_id_list(&e.text("assisting")),
            )?,
            at,
        },
        "returned" => Event::Returned {
            unit: e.id("unit"),
            at,
        },
        "supervision" => Event::SupervisionSet {
            mode: lookup(&SUPERVISION, &e.text("mode"))?,
            at,
        },
        "extension" => Event::ExtensionApproved { at },
        "assisting_view" => Event::AssistingViewSent {
            unit: e.id("unit"),
            at,
        },
        "replied" => Event::Replied {
            unit: e.id("unit"),
            category: lookup(&CATEGORIES, &e.text("category"))?,
            at,
        },
        "satisfaction" => Event::Evaluated {
            deputy: e.id("deputy"),
            satisfaction: lookup(&SATISFACTIONS, &e.text("satisfaction"))?,
            at,
        },
        "second_round" => Event::SecondRound { at },
        "implemented" => Event::Implemented { at },
        "closed" => Event::Closed { at },
        _ => return None,
    })
}

/// The domain suggestion and its folded state.
pub(crate) fn fold(core: &Core, r: &StoredRecord) -> Result<(sug::Suggestion, sug::State)> {
    let s = domain_suggestion(r)?;
    let events: Vec<Stamped<Event>> = core
        .events(r)?
        .iter()
        .filter_map(|e| domain_event(e).map(|ev| Stamped::new(e.stamp, ev)))
        .collect();
    let state = sug::fold(&s, &events);
    Ok((s, state))
}

/// Whether a person sees a suggestion: a handling unit's account sees those assigned to it
/// (as a replying or an assisting unit); everyone else as their unit's reach allows.
fn visible_to(caller: &Caller, s: &pb::Suggestion) -> bool {
    match (caller.role, caller.subject) {
        (UserRole::HandlingUnit, Some(unit)) => {
            let unit = unit.to_string();
            s.assignment
                .as_ref()
                .is_some_and(|a| a.unit_ids.contains(&unit) || a.assisting_unit_ids.contains(&unit))
        }
        (UserRole::HandlingUnit, None) => false,
        _ => true,
    }
}

fn to_pb(core: &Core, r: &StoredRecord) -> Result<pb::Suggestion> {
    let (s, state) = fold(core, r)?;
    Ok(pb::Suggestion {
        id: r.id.to_string(),
        congress: s.congress.to_string(),
        kind: text(r, "kind"),
        title: s.title.clone(),
        body: s.body.clone(),
        lead_deputy_id: s.lead_deputy.to_string(),
        co_signer_ids: s.co_signers.iter().map(Uuid::to_string).collect(),
        status: status_name(state.status).into(),
        assignment: state.assignment.as_ref().map(assignment_pb),
        round: u32::from(state.round),
        category: state
            .category()
            .map(|c| name_of(&CATEGORIES, c).to_owned())
            .unwrap_or_default(),
        satisfaction: state
            .satisfaction(&s.lead_deputy)
            .map(|v| name_of(&SATISFACTIONS, v).to_owned())
            .unwrap_or_default(),
        supervision: state
            .supervision
            .map(|m| name_of(&SUPERVISION, m).to_owned())
            .unwrap_or_default(),
        reply_due: state
            .deadlines()
            .map(|d| day_string(d.reply_due))
            .unwrap_or_default(),
        replies: state
            .replies
            .iter()
            .map(|r| pb::Reply {
                unit_id: r.unit.to_string(),
                category: name_of(&CATEGORIES, r.category).into(),
                on: day_string(r.at),
                round: u32::from(r.round),
                counted: r.counted,
            })
            .collect(),
        flags: state
            .flags
            .iter()
            .map(|f| pb::Flag {
                reason: f.reason.clone(),
                reason_zh: f.reason_zh.clone(),
            })
            .collect(),
        implemented: state.implemented,
    })
}

/// Whose org a step is checked against.
enum StepOrg {
    Congress,
    Unit(Uuid),
    Deputy(Uuid),
}

/// One step: the rule it is checked against, its domain event and what is recorded.
struct StepSpec {
    step: Step,
    whose: StepOrg,
    event: Event,
    name: &'static str,
    fields: Vec<(&'static str, Value)>,
    on: NaiveDate,
}

impl Service {
    /// Loads, folds, authorises, checks and records one step.
    async fn step(&self, caller: &Caller, id: &str, spec: StepSpec) -> Result<pb::Suggestion> {
        let StepSpec {
            step,
            whose,
            event,
            name,
            fields,
            on,
        } = spec;
        let core = &self.0;
        let r = core.get("suggestion_id", id, kind::SUGGESTION).await?;
        let (s, state) = fold(core, &r)?;
        let org: OrgCode = match whose {
            StepOrg::Congress => s.congress,
            StepOrg::Unit(unit) => {
                let unit = core
                    .get_id(unit, kind::HANDLING_UNIT)
                    .await
                    .map_err(|e| match e {
                        Error::NotFound { .. } => Error::invalid(
                            "unit_id",
                            "no such handling unit here",
                            "承办单位不存在",
                        ),
                        other => other,
                    })?;
                record_org(&unit)?
            }
            StepOrg::Deputy(deputy) => {
                let deputy = core
                    .get_id(deputy, kind::DEPUTY)
                    .await
                    .map_err(|e| match e {
                        Error::NotFound { .. } => {
                            Error::invalid("deputy_id", "no such deputy here", "代表不存在")
                        }
                        other => other,
                    })?;
                record_org(&deputy)?
            }
        };
        core.authorize(caller, RecordKind::Suggestion, step, &org)
            .await?;
        sug::check(&s, &state, &event)?;
        let mut fields = fields;
        fields.insert(0, ("on", date_value(on)));
        core.write(
            caller,
            r.id.0,
            kind::SUGGESTION,
            vec![Pending::Event(name, org, fields)],
        )
        .await?;
        to_pb(core, &core.get_id(r.id.0, kind::SUGGESTION).await?)
    }

    async fn simple(
        &self,
        req: Request<pb::StepRequest>,
        step: Step,
        name: &'static str,
        make: fn(NaiveDate) -> Event,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let on = parse_day("on", &req.on)?;
        Ok(Response::new(
            self.step(
                &caller,
                &req.suggestion_id,
                StepSpec {
                    step,
                    whose: StepOrg::Congress,
                    event: make(on),
                    name,
                    fields: vec![],
                    on,
                },
            )
            .await?,
        ))
    }

    /// A step a handling unit takes (a return, an assisting unit's view): recorded against the
    /// unit's org, carrying the unit.
    async fn unit_step(
        &self,
        req: Request<pb::UnitStepRequest>,
        step: Step,
        name: &'static str,
        make: fn(Uuid, NaiveDate) -> Event,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let on = parse_day("on", &req.on)?;
        let unit = parse_id("unit_id", &req.unit_id)?;
        caller.require_own_unit("unit_id", unit)?;
        Ok(Response::new(
            self.step(
                &caller,
                &req.suggestion_id,
                StepSpec {
                    step,
                    whose: StepOrg::Unit(unit),
                    event: make(unit, on),
                    name,
                    fields: vec![("unit", reference(unit))],
                    on,
                },
            )
            .await?,
        ))
    }
}

fn parse_kind(raw: &str) -> Result<Kind> {
    match raw.trim() {
        "motion" => Ok(Kind::Motion),
        "suggestion" | "" => Ok(Kind::Suggestion),
        _ => Err(Error::invalid(
            "kind",
            "must be motion or suggestion",
            "须为议案或建议",
        )),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Motion => "motion",
        Kind::Suggestion => "suggestion",
    }
}

fn rate_pb(r: &rates::Rate) -> pb::Rate {
    pb::Rate {
        name_zh: r.kind.name_zh().into(),
        numerator: r.numerator,
        denominator: r.denominator,
        percent: r.percent(),
        definition_zh: r.kind.definition_zh().into(),
    }
}

#[tonic::async_trait]
impl pb::suggestions_server::Suggestions for Service {
    async fn create_handling_unit(
        &self,
        req: Request<pb::CreateHandlingUnitRequest>,
    ) -> Result<Response<pb::HandlingUnit>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let org = parse_org("org", &req.org, &core.default_org()?)?;
        core.require_reach("org", &org)?;
        core.require_org("org", &org).await?;
        limit("name", &req.name, 400)?;
        let name = renda_domain::text::bounded("name", &req.name, 2, 100).map_err(Error::from)?;
        core.authorize(&caller, RecordKind::Deputy, Step::Edit, &org)
            .await?;
        let id = new_id();
        core.write(
            &caller,
            id,
            kind::HANDLING_UNIT,
            vec![
                Pending::Put("org", Value::Org(org)),
                Pending::Put("name", Value::Text(name.clone())),
            ],
        )
        .await?;
        Ok(Response::new(pb::HandlingUnit {
            id: id.to_string(),
            org: org.to_string(),
            name,
        }))
    }

    async fn list_handling_units(
        &self,
        req: Request<pb::ListHandlingUnitsRequest>,
    ) -> Result<Response<pb::ListHandlingUnitsResponse>, Status> {
        let org = parse_org("org", &req.get_ref().org, &self.0.default_org()?)?;
        self.0.require_reach("org", &org)?;
        let units = self
            .0
            .list(kind::HANDLING_UNIT, Some(&org))
            .await?
            .iter()
            .map(|r| pb::HandlingUnit {
                id: r.id.to_string(),
                org: org_string(r),
                name: text(r, "name"),
            })
            .collect();
        Ok(Response::new(pb::ListHandlingUnitsResponse { units }))
    }

    async fn submit_suggestion(
        &self,
        req: Request<pb::SubmitSuggestionRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        limit("title", &req.title, 400)?;
        limit("body", &req.body, 20_000)?;
        let kind_ = parse_kind(&req.kind)?;
        let lead = parse_id("lead_deputy_id", &req.lead_deputy_id)?;
        let co_signers = parse_ids("co_signer_ids", &req.co_signer_ids, 500)?;
        let on = parse_day("on", &req.on)?;
        let congress = core.node_org()?;
        let id = new_id();
        let s = sug::Suggestion::parse(
            sug::Draft {
                kind: kind_,
                congress: congress.to_string(),
                title: req.title,
                body: req.body,
                lead_deputy: lead,
                co_signers,
            },
            id,
        )
        .map_err(Error::from)?;
        core.get_id(lead, kind::DEPUTY).await.map_err(|e| match e {
            Error::NotFound { .. } => {
                Error::invalid("lead_deputy_id", "no such deputy here", "领衔代表不存在")
            }
            other => other,
        })?;
        core.authorize(&caller, RecordKind::Suggestion, Step::Submit, &s.congress)
            .await?;
        let mut changes = vec![
            Pending::Put("org", Value::Org(s.congress)),
            Pending::Put("kind", Value::Text(kind_name(kind_).into())),
            Pending::Put("title", Value::Text(s.title.clone())),
            Pending::Put("body", Value::Text(s.body.clone())),
            Pending::Put("lead_deputy", reference(lead)),
        ];
        changes.extend(s.co_signers.iter().map(|c| Pending::Add("co_signers", *c)));
        changes.push(Pending::Event(
            "submitted",
            s.congress,
            vec![("on", date_value(on))],
        ));
        core.write(&caller, id, kind::SUGGESTION, changes).await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(id, kind::SUGGESTION).await?,
        )?))
    }

    async fn update_suggestion(
        &self,
        req: Request<pb::UpdateSuggestionRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        limit("title", &req.title, 400)?;
        limit("body", &req.body, 20_000)?;
        let kind_ = parse_kind(&req.kind)?;
        let co_signers = parse_ids("co_signer_ids", &req.co_signer_ids, 500)?;
        let r = core
            .get("suggestion_id", &req.suggestion_id, kind::SUGGESTION)
            .await?;
        let (old, state) = fold(core, &r)?;
        let s = sug::Suggestion::parse(
            sug::Draft {
                kind: kind_,
                congress: old.congress.to_string(),
                title: req.title,
                body: req.body,
                lead_deputy: old.lead_deputy,
                co_signers,
            },
            r.id.0,
        )
        .map_err(|e| match e {
            renda_domain::Error::Invalid {
                field,
                reason,
                reason_zh,
            } if field == "co_signers" => Error::invalid("co_signer_ids", reason, reason_zh),
            other => Error::Domain(other),
        })?;
        core.authorize(&caller, RecordKind::Suggestion, Step::Edit, &s.congress)
            .await?;
        if !matches!(
            state.status,
            St::Drafted | St::Submitted | St::RevisionRequested
        ) {
            return Err(Error::precondition(
                "status",
                format!(
                    "the item can be edited only before review passes; it is {}",
                    status_name(state.status)
                ),
                "审核通过后不能再修改议案建议内容",
            )
            .into());
        }
        let mut changes = vec![
            Pending::Put("kind", Value::Text(kind_name(kind_).into())),
            Pending::Put("title", Value::Text(s.title.clone())),
            Pending::Put("body", Value::Text(s.body.clone())),
        ];
        changes.extend(
            s.co_signers
                .difference(&old.co_signers)
                .map(|c| Pending::Add("co_signers", *c)),
        );
        changes.extend(
            old.co_signers
                .difference(&s.co_signers)
                .map(|c| Pending::Remove("co_signers", *c)),
        );
        core.write(&caller, r.id.0, kind::SUGGESTION, changes)
            .await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(r.id.0, kind::SUGGESTION).await?,
        )?))
    }

    async fn get_suggestion(
        &self,
        req: Request<pb::GetSuggestionRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let me = caller(&req)?;
        let r = self
            .0
            .get("id", &req.get_ref().id, kind::SUGGESTION)
            .await?;
        let suggestion = to_pb(&self.0, &r)?;
        if !visible_to(&me, &suggestion) {
            return Err(Error::forbidden(
                "id",
                "the suggestion is not assigned to this handling unit",
                "该建议未交办给本单位",
            )
            .into());
        }
        Ok(Response::new(suggestion))
    }

    async fn list_suggestions(
        &self,
        req: Request<pb::ListSuggestionsRequest>,
    ) -> Result<Response<pb::ListSuggestionsResponse>, Status> {
        let me = caller(&req)?;
        let req = req.into_inner();
        let org = parse_org("org", &req.org, &self.0.default_org()?)?;
        self.0.require_reach("org", &org)?;
        let suggestions = self
            .0
            .page(kind::SUGGESTION, &org, page_limit(req.limit)?, req.offset)
            .await?
            .iter()
            .map(|r| to_pb(&self.0, r))
            .filter(|s| s.as_ref().map_or(true, |s| visible_to(&me, s)))
            .collect::<Result<_>>()?;
        Ok(Response::new(pb::ListSuggestionsResponse { suggestions }))
    }

    async fn review_suggestion(
        &self,
        req: Request<pb::ReviewSuggestionRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let on = parse_day("on", &req.on)?;
        limit("revision_reason", &req.revision_reason, 2000)?;
        let (event, name, fields) = if req.passed {
            (Event::ReviewPassed { at: on }, "reviewed", vec![])
        } else {
            let reason =
                renda_domain::text::bounded("revision_reason", &req.revision_reason, 2, 500)
                    .map_err(Error::from)?;
            (
                Event::RevisionRequested {
                    reason: reason.clone(),
                    at: on,
                },
                "revision_requested",
                vec![("reason", Value::Text(reason))],
            )
        };
        Ok(Response::new(
            self.step(
                &caller,
                &req.suggestion_id,
                StepSpec {
                    step: Step::Review,
                    whose: StepOrg::Congress,
                    event,
                    name,
                    fields,
                    on,
                },
            )
            .await?,
        ))
    }

    async fn revise_suggestion(
        &self,
        req: Request<pb::StepRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        self.simple(req, Step::Edit, "revised", |at| Event::Revised { at })
            .await
    }

    async fn withdraw_suggestion(
        &self,
        req: Request<pb::StepRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        self.simple(req, Step::Withdraw, "withdrawn", |at| Event::Withdrawn {
            at,
        })
        .await
    }

    async fn merge_suggestion(
        &self,
        req: Request<pb::MergeSuggestionRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let on = parse_day("on", &req.on)?;
        let into = self
            .0
            .get("into_id", &req.into_id, kind::SUGGESTION)
            .await?;
        Ok(Response::new(
            self.step(
                &caller,
                &req.suggestion_id,
                StepSpec {
                    step: Step::Review,
                    whose: StepOrg::Congress,
                    event: Event::MergedInto {
                        target: into.id.0,
                        at: on,
                    },
                    name: "merged",
                    fields: vec![("into", reference(into.id.0))],
                    on,
                },
            )
            .await?,
        ))
    }

    async fn assign_suggestion(
        &self,
        req: Request<pb::AssignSuggestionRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let on = parse_day("on", &req.on)?;
        let a = req.assignment.unwrap_or_default();
        let units = parse_ids("assignment.unit_ids", &a.unit_ids, MAX_LIST)?;
        let assisting = parse_ids(
            "assignment.assisting_unit_ids",
            &a.assisting_unit_ids,
            MAX_LIST,
        )?;
        let mode = a.mode.trim().to_owned();
        let assignment = assignment_from(&mode, &units, &assisting).ok_or_else(|| {
            Error::invalid(
                "assignment.mode",
                "must be single, split or lead_with_assisting, with at least one unit",
                "交办方式须为单独、分办或主协办，并至少指定一个承办单位",
            )
        })?;
        assignment.validate().map_err(|e| {
            Error::invalid(
                "assignment.mode",
                e.reason().to_owned(),
                e.reason_zh().to_owned(),
            )
        })?;
        for unit in assignment.units() {
            self.0
                .get_id(unit, kind::HANDLING_UNIT)
                .await
                .map_err(|e| match e {
                    Error::NotFound { .. } => Error::invalid(
                        "assignment.unit_ids",
                        format!("handling unit {unit} is not known here"),
                        "承办单位不存在",
                    ),
                    other => other,
                })?;
        }
        let units_text = id_list(assignment.replying_units());
        let assisting_text = id_list(assignment.assisting_units());
        Ok(Response::new(
            self.step(
                &caller,
                &req.suggestion_id,
                StepSpec {
                    step: Step::Assign,
                    whose: StepOrg::Congress,
                    event: Event::Assigned {
                        mode: assignment,
                        at: on,
                    },
                    name: "assigned",
                    fields: vec![
                        ("mode", Value::Text(mode)),
                        ("units", Value::Text(units_text)),
                        ("assisting", text_value(assisting_text)),
                    ],
                    on,
                },
            )
            .await?,
        ))
    }

    async fn return_suggestion(
        &self,
        req: Request<pb::UnitStepRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        self.unit_step(req, Step::Return, "returned", |unit, at| Event::Returned {
            unit,
            at,
        })
        .await
    }

    async fn set_supervision(
        &self,
        req: Request<pb::SetSupervisionRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let on = parse_day("on", &req.on)?;
        let mode = lookup(&SUPERVISION, &req.mode)
            .ok_or_else(|| Error::invalid("mode", "unknown supervision mode", "督办方式无效"))?;
        Ok(Response::new(
            self.step(
                &caller,
                &req.suggestion_id,
                StepSpec {
                    step: Step::Supervise,
                    whose: StepOrg::Congress,
                    event: Event::SupervisionSet { mode, at: on },
                    name: "supervision",
                    fields: vec![("mode", Value::Text(req.mode.trim().to_owned()))],
                    on,
                },
            )
            .await?,
        ))
    }

    async fn extend_deadline(
        &self,
        req: Request<pb::StepRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        self.simple(req, Step::Extend, "extension", |at| {
            Event::ExtensionApproved { at }
        })
        .await
    }

    async fn send_assisting_view(
        &self,
        req: Request<pb::UnitStepRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        self.unit_step(req, Step::AssistingView, "assisting_view", |unit, at| {
            Event::AssistingViewSent { unit, at }
        })
        .await
    }

    async fn reply_suggestion(
        &self,
        req: Request<pb::ReplySuggestionRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let on = parse_day("on", &req.on)?;
        let unit = parse_id("unit_id", &req.unit_id)?;
        caller.require_own_unit("unit_id", unit)?;
        let category = lookup(&CATEGORIES, &req.category).ok_or_else(|| {
            Error::invalid("category", "must be A, B, C or D", "答复类别须为A、B、C或D")
        })?;
        Ok(Response::new(
            self.step(
                &caller,
                &req.suggestion_id,
                StepSpec {
                    step: Step::Reply,
                    whose: StepOrg::Unit(unit),
                    event: Event::Replied {
                        unit,
                        category,
                        at: on,
                    },
                    name: "replied",
                    fields: vec![
                        ("unit", reference(unit)),
                        (
                            "category",
                            Value::Text(name_of(&CATEGORIES, category).into()),
                        ),
                    ],
                    on,
                },
            )
            .await?,
        ))
    }

    async fn rate_suggestion(
        &self,
        req: Request<pb::RateSuggestionRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let on = parse_day("on", &req.on)?;
        let deputy = parse_id("deputy_id", &req.deputy_id)?;
        let satisfaction = parse_satisfaction("satisfaction", &req.satisfaction)?;
        Ok(Response::new(
            self.step(
                &caller,
                &req.suggestion_id,
                StepSpec {
                    step: Step::Evaluate,
                    whose: StepOrg::Deputy(deputy),
                    event: Event::Evaluated {
                        deputy,
                        satisfaction,
                        at: on,
                    },
                    name: "satisfaction",
                    fields: vec![
                        ("deputy", reference(deputy)),
                        (
                            "satisfaction",
                            Value::Text(name_of(&SATISFACTIONS, satisfaction).into()),
                        ),
                    ],
                    on,
                },
            )
            .await?,
        ))
    }

    async fn second_round(
        &self,
        req: Request<pb::StepRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        self.simple(req, Step::SecondRound, "second_round", |at| {
            Event::SecondRound { at }
        })
        .await
    }

    async fn mark_implemented(
        &self,
        req: Request<pb::StepRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        self.simple(req, Step::Implement, "implemented", |at| {
            Event::Implemented { at }
        })
        .await
    }

    async fn close_suggestion(
        &self,
        req: Request<pb::StepRequest>,
    ) -> Result<Response<pb::Suggestion>, Status> {
        self.simple(req, Step::Close, "closed", |at| Event::Closed { at })
            .await
    }

    async fn suggestion_rates(
        &self,
        req: Request<pb::SuggestionRatesRequest>,
    ) -> Result<Response<pb::SuggestionRatesResponse>, Status> {
        let core = &self.0;
        let org = parse_org("org", &req.get_ref().org, &core.default_org()?)?;
        core.require_reach("org", &org)?;
        let mut folded = Vec::new();
        for r in core.list(kind::SUGGESTION, Some(&org)).await? {
            let (s, state) = fold(core, &r)?;
            folded.push((state, s.lead_deputy));
        }
        let items: Vec<(&sug::State, Uuid)> = folded.iter().map(|(s, l)| (s, *l)).collect();
        let rates = rates::suggestion_rates(&items);
        Ok(Response::new(pb::SuggestionRatesResponse {
            reply: Some(rate_pb(&rates.reply)),
            satisfaction: Some(rate_pb(&rates.satisfaction)),
            implementation: Some(rate_pb(&rates.implementation)),
        }))
    }

    async fn overdue_suggestions(
        &self,
        req: Request<pb::OverdueSuggestionsRequest>,
    ) -> Result<Response<pb::OverdueSuggestionsResponse>, Status> {
        let core = &self.0;
        let req = req.into_inner();
        let org = parse_org("org", &req.org, &core.default_org()?)?;
        core.require_reach("org", &org)?;
        let on = parse_day("on", &req.on)?;
        let mut states = Vec::new();
        for r in core.list(kind::SUGGESTION, Some(&org)).await? {
            states.push(fold(core, &r)?.1);
        }
        let items = sug::overdue(&states, on)
            .into_iter()
            .map(|o| {
                let (kind, unit) = match o.kind {
                    sug::OverdueKind::Reply => ("reply", String::new()),
                    sug::OverdueKind::SecondRoundReply => ("second_round_reply", String::new()),
                    sug::OverdueKind::AssistingView(u) => ("assisting_view", u.to_string()),
                };
                pb::OverdueItem {
                    suggestion_id: o.id.to_string(),
                    kind: kind.into(),
                    unit_id: unit,
                    due: day_string(o.due),
                    days_late: o.days_late,
                }
            })
            .collect();
        Ok(Response::new(pb::OverdueSuggestionsResponse { items }))
    }
}
