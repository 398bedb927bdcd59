//! `renda.suggestion.v1.Suggestions`: motions and suggestions from submission to closing, the
//! handling units that reply, the three rates and overdue items.
//!
//! The status is the domain fold of the record's events. Each step is checked with the domain's
//! `check` against the folded state before it is written, and with the write rules for the org
//! the step belongs to: the congress's node for submission and review, a county or city deputy
//! office for assignment and its follow-ups, the unit's node for returns and replies, the
//! deputy's node for satisfaction.

use chrono::NaiveDate;
use renda_domain::authority::Step;
use renda_domain::event::Stamped;
use renda_domain::org::OrgCode;
use renda_domain::rates;
use renda_domain::record::{Coded, RecordEvent};
use renda_domain::suggestion::{
    self as sug, Assignment, Event, HANDLING_UNIT, KIND, Kind, ReplyCategory, Satisfaction,
    Status as St, SupervisionMode,
};
use renda_proto::suggestion::v1 as pb;
use renda_proto::types::v1 as types;
use renda_replica::{Value, Version};
use renda_store::StoredRecord;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::edge::{self, Wire, wire};
use crate::error::{Error, Result};
use crate::gate::{OFFICE, READ, STAFF, ServiceAccess, UNIT, roles};
use crate::schema::{MAX_LIST, kind};

pub(crate) struct Service(pub Shared);

wire!(Kind => pb::SuggestionKind {
    Motion <=> Motion,
    Suggestion <=> Suggestion,
});

wire!(St => pb::SuggestionStatus {
    Drafted <=> Drafted,
    Submitted <=> Submitted,
    RevisionRequested <=> RevisionRequested,
    ReviewPassed <=> ReviewPassed,
    Returned <=> Returned,
    Assigned <=> Assigned,
    Replied <=> Replied,
    Evaluated <=> Evaluated,
    SecondRound <=> SecondRound,
    Closed <=> Closed,
    Withdrawn <=> Withdrawn,
    Merged <=> Merged,
});

wire!(ReplyCategory => pb::ReplyCategory { A <=> A, B <=> B, C <=> C, D <=> D });

wire!(Satisfaction => types::Satisfaction {
    Satisfied <=> Satisfied,
    BasicallySatisfied <=> BasicallySatisfied,
    Dissatisfied <=> Dissatisfied,
});

wire!(SupervisionMode => pb::SupervisionMode {
    Key <=> Key,
    Leader <=> Leader,
    Sector <=> Sector,
    Tracking <=> Tracking,
    DeputyParticipating <=> DeputyParticipating,
});

/// A deputy's satisfaction field of a request.
pub(crate) fn satisfaction(field: &str, raw: i32) -> Result<Satisfaction> {
    edge::one_of(
        field,
        raw,
        "satisfied, basically_satisfied or dissatisfied",
        "须为满意、基本满意或不满意",
    )
}

fn kind_of(raw: i32) -> Result<Kind> {
    Ok(
        edge::optional_one_of("kind", raw, "motion or suggestion", "须为议案或建议")?
            .unwrap_or(Kind::Suggestion),
    )
}

fn assignment_pb(a: &Assignment) -> pb::Assignment {
    let ids = |s: &std::collections::BTreeSet<Uuid>| s.iter().map(Uuid::to_string).collect();
    let (mode, unit_ids, assisting_unit_ids) = match a {
        Assignment::Single(u) => (pb::AssignmentMode::Single, vec![u.to_string()], vec![]),
        Assignment::Split(units) => (pb::AssignmentMode::Split, ids(units), vec![]),
        Assignment::LeadWithAssisting { lead, assisting } => (
            pb::AssignmentMode::LeadWithAssisting,
            vec![lead.to_string()],
            ids(assisting),
        ),
    };
    pb::Assignment {
        mode: mode.into(),
        unit_ids,
        assisting_unit_ids,
    }
}

/// The assignment a request describes: the first of `unit_ids` leads (or is the single unit).
fn assignment_from(a: pb::Assignment) -> Result<Assignment> {
    const MODE: &str = "assignment.mode";
    let units = parse_ids("assignment.unit_ids", &a.unit_ids, MAX_LIST)?;
    let assisting = parse_ids(
        "assignment.assisting_unit_ids",
        &a.assisting_unit_ids,
        MAX_LIST,
    )?;
    let first = a
        .unit_ids
        .first()
        .map(|raw| parse_id("assignment.unit_ids", raw))
        .transpose()?;
    let none = || {
        Error::invalid(
            MODE,
            "must be single, split or lead_with_assisting, with at least one unit",
            "交办方式须为单独、分办或主协办，并至少指定一个承办单位",
        )
    };
    let mode = pb::AssignmentMode::try_from(a.mode).map_err(|_| none())?;
    let assignment = match (mode, first) {
        (pb::AssignmentMode::Single, Some(unit)) => Assignment::Single(unit),
        (pb::AssignmentMode::Split, Some(_)) => Assignment::Split(units.into_iter().collect()),
        (pb::AssignmentMode::LeadWithAssisting, Some(lead)) => Assignment::LeadWithAssisting {
            lead,
            assisting: assisting.into_iter().collect(),
        },
        _ => return Err(none()),
    };
    assignment
        .validate()
        .map_err(|e| Error::invalid(MODE, e.reason().to_owned(), e.reason_zh().to_owned()))?;
    Ok(assignment)
}

// ---- requests as domain values -------------------------------------------------------------

/// A step on one item that carries nothing but its date.
struct Dated {
    id: Uuid,
    on: NaiveDate,
}

impl TryFrom<pb::StepRequest> for Dated {
    type Error = Error;
    fn try_from(r: pb::StepRequest) -> Result<Self> {
        Ok(Self {
            id: parse_id("suggestion_id", &r.suggestion_id)?,
            on: edge::day("on", r.on)?,
        })
    }
}

struct CreateUnit {
    org: Option<OrgCode>,
    name: String,
}

impl TryFrom<pb::CreateHandlingUnitRequest> for CreateUnit {
    type Error = Error;
    fn try_from(r: pb::CreateHandlingUnitRequest) -> Result<Self> {
        limit("name", &r.name, 400)?;
        Ok(Self {
            org: optional_org("org", &r.org)?,
            name: renda_domain::text::bounded("name", &r.name, 2, 100)?,
        })
    }
}

struct Submit {
    draft: sug::Draft,
    on: NaiveDate,
}

impl TryFrom<pb::SubmitSuggestionRequest> for Submit {
    type Error = Error;
    fn try_from(r: pb::SubmitSuggestionRequest) -> Result<Self> {
        limit("title", &r.title, 400)?;
        limit("body", &r.body, 20_000)?;
        Ok(Self {
            draft: sug::Draft {
                kind: kind_of(r.kind)?,
                // The receiving congress is this node's; the handler sets it.
                congress: String::new(),
                title: r.title,
                body: r.body,
                lead_deputy: parse_id("lead_deputy_id", &r.lead_deputy_id)?,
                co_signers: parse_ids("co_signer_ids", &r.co_signer_ids, 500)?,
            },
            on: edge::day("on", r.on)?,
        })
    }
}

struct Update {
    id: Uuid,
    kind: Kind,
    title: String,
    body: String,
    co_signers: Vec<Uuid>,
    read: Version,
}

impl TryFrom<pb::UpdateSuggestionRequest> for Update {
    type Error = Error;
    fn try_from(r: pb::UpdateSuggestionRequest) -> Result<Self> {
        limit("title", &r.title, 400)?;
        limit("body", &r.body, 20_000)?;
        let id = parse_id("suggestion_id", &r.suggestion_id)?;
        Ok(Self {
            id,
            kind: kind_of(r.kind)?,
            title: r.title,
            body: r.body,
            co_signers: parse_ids("co_signer_ids", &r.co_signer_ids, 500)?,
            read: edge::read_version(&r.version, id)?,
        })
    }
}

/// The domain names signers `lead_deputy` and `co_signers`; the request fields are
/// `lead_deputy_id` and `co_signer_ids`.
fn signer_error(e: renda_domain::Error) -> Error {
    match e {
        renda_domain::Error::Invalid {
            field,
            reason,
            reason_zh,
        } => {
            let field = match field.as_str() {
                "co_signers" => "co_signer_ids",
                "lead_deputy" => "lead_deputy_id",
                other => other,
            };
            Error::invalid(field, reason, reason_zh)
        }
        other => Error::Domain(other),
    }
}

/// 审核: the review's outcome as the event it records.
struct Review {
    id: Uuid,
    event: Event,
}

impl TryFrom<pb::ReviewSuggestionRequest> for Review {
    type Error = Error;
    fn try_from(r: pb::ReviewSuggestionRequest) -> Result<Self> {
        let at = edge::day("on", r.on)?;
        limit("revision_reason", &r.revision_reason, 2000)?;
        let event = if r.passed {
            Event::ReviewPassed { at }
        } else {
            Event::RevisionRequested {
                reason: renda_domain::text::bounded("revision_reason", &r.revision_reason, 2, 500)?,
                at,
            }
        };
        Ok(Self {
            id: parse_id("suggestion_id", &r.suggestion_id)?,
            event,
        })
    }
}

struct Merge {
    id: Uuid,
    into: Uuid,
    on: NaiveDate,
}

impl TryFrom<pb::MergeSuggestionRequest> for Merge {
    type Error = Error;
    fn try_from(r: pb::MergeSuggestionRequest) -> Result<Self> {
        Ok(Self {
            id: parse_id("suggestion_id", &r.suggestion_id)?,
            into: parse_id("into_id", &r.into_id)?,
            on: edge::day("on", r.on)?,
        })
    }
}

struct Assign {
    id: Uuid,
    assignment: Assignment,
    on: NaiveDate,
}

impl TryFrom<pb::AssignSuggestionRequest> for Assign {
    type Error = Error;
    fn try_from(r: pb::AssignSuggestionRequest) -> Result<Self> {
        Ok(Self {
            id: parse_id("suggestion_id", &r.suggestion_id)?,
            assignment: assignment_from(r.assignment.unwrap_or_default())?,
            on: edge::day("on", r.on)?,
        })
    }
}

/// A step a handling unit takes: a return or an assisting unit's view.
struct UnitStep {
    id: Uuid,
    unit: Uuid,
    on: NaiveDate,
}

impl TryFrom<pb::UnitStepRequest> for UnitStep {
    type Error = Error;
    fn try_from(r: pb::UnitStepRequest) -> Result<Self> {
        Ok(Self {
            id: parse_id("suggestion_id", &r.suggestion_id)?,
            unit: parse_id("unit_id", &r.unit_id)?,
            on: edge::day("on", r.on)?,
        })
    }
}

struct Supervise {
    id: Uuid,
    mode: SupervisionMode,
    on: NaiveDate,
}

impl TryFrom<pb::SetSupervisionRequest> for Supervise {
    type Error = Error;
    fn try_from(r: pb::SetSupervisionRequest) -> Result<Self> {
        Ok(Self {
            id: parse_id("suggestion_id", &r.suggestion_id)?,
            mode: edge::one_of(
                "mode",
                r.mode,
                "key, leader, sector, tracking or deputy_participating",
                "督办方式无效",
            )?,
            on: edge::day("on", r.on)?,
        })
    }
}

struct ReplyCmd {
    id: Uuid,
    unit: Uuid,
    category: ReplyCategory,
    on: NaiveDate,
}

impl TryFrom<pb::ReplySuggestionRequest> for ReplyCmd {
    type Error = Error;
    fn try_from(r: pb::ReplySuggestionRequest) -> Result<Self> {
        Ok(Self {
            id: parse_id("suggestion_id", &r.suggestion_id)?,
            unit: parse_id("unit_id", &r.unit_id)?,
            category: edge::one_of(
                "category",
                r.category,
                "A, B, C or D",
                "答复类别须为A、B、C或D",
            )?,
            on: edge::day("on", r.on)?,
        })
    }
}

struct Rate {
    id: Uuid,
    deputy: Uuid,
    satisfaction: Satisfaction,
    on: NaiveDate,
}

impl TryFrom<pb::RateSuggestionRequest> for Rate {
    type Error = Error;
    fn try_from(r: pb::RateSuggestionRequest) -> Result<Self> {
        Ok(Self {
            id: parse_id("suggestion_id", &r.suggestion_id)?,
            deputy: parse_id("deputy_id", &r.deputy_id)?,
            satisfaction: satisfaction("satisfaction", r.satisfaction)?,
            on: edge::day("on", r.on)?,
        })
    }
}

/// The domain suggestion as stored (already validated when it was written).
pub(crate) fn domain_suggestion(r: &StoredRecord) -> Result<sug::Suggestion> {
    Ok(sug::Suggestion {
        id: r.id.0,
        kind: Kind::from_code(&text(r, "kind")).unwrap_or(Kind::Suggestion),
        congress: record_org(r)?,
        title: text(r, "title"),
        body: text(r, "body"),
        lead_deputy: ref_id(r, "lead_deputy").unwrap_or_default(),
        co_signers: set(r, "co_signers").into_iter().collect(),
    })
}

/// The domain suggestion and its folded state.
pub(crate) fn fold(core: &Core, r: &StoredRecord) -> Result<(sug::Suggestion, sug::State)> {
    fold_events(r, &core.domain_events::<Event>(r)?)
}

/// [`fold`] over events already read.
pub(crate) fn fold_events(
    r: &StoredRecord,
    events: &[Stamped<Event>],
) -> Result<(sug::Suggestion, sug::State)> {
    let s = domain_suggestion(r)?;
    let state = sug::fold(&s, events);
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
        version: r.version.encode(),
        id: r.id.to_string(),
        congress: s.congress.to_string(),
        kind: s.kind.wire(),
        title: s.title.clone(),
        body: s.body.clone(),
        lead_deputy_id: s.lead_deputy.to_string(),
        co_signer_ids: s.co_signers.iter().map(Uuid::to_string).collect(),
        status: state.status.wire(),
        assignment: state.assignment.as_ref().map(assignment_pb),
        round: u32::from(state.round),
        category: state.category().map_or(0, Wire::wire),
        satisfaction: state.satisfaction(&s.lead_deputy).map_or(0, Wire::wire),
        supervision: state.supervision.map_or(0, Wire::wire),
        reply_due: state.deadlines().map(|d| d.reply_due.into()),
        replies: state
            .replies
            .iter()
            .map(|r| pb::Reply {
                unit_id: r.unit.to_string(),
                category: r.category.wire(),
                on: Some(r.at.into()),
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

/// Whose org a step is taken for.
enum StepOrg {
    Congress,
    Unit(Uuid),
    Deputy(Uuid),
}

impl Service {
    /// Checks the signers of `s` against the deputies this node holds
    /// ([`sug::Suggestion::check_signers`]): a signer no deputy record here has (or one
    /// outside the caller's reach) is unknown.
    async fn check_signers(&self, s: &sug::Suggestion) -> Result<()> {
        let mut seats = std::collections::BTreeMap::new();
        for id in std::iter::once(&s.lead_deputy).chain(&s.co_signers) {
            let seat = match self.0.get_id(*id, kind::DEPUTY).await {
                Ok(r) => Some(crate::deputy::seat(&r)?),
                Err(Error::NotFound { .. }) => None,
                Err(Error::Domain(renda_domain::Error::Forbidden { .. })) => None,
                Err(other) => return Err(other),
            };
            seats.insert(*id, seat);
        }
        s.check_signers(|id| seats.get(id).cloned().flatten())
            .map_err(signer_error)
    }

    /// Loads and folds the item, finds the org the step is taken for, checks the caller's
    /// authority (as the event's definition says), then the step against the folded state, and
    /// takes it; answers with the item as it is now.
    async fn step(
        &self,
        caller: &Caller,
        id: Uuid,
        whose: StepOrg,
        event: Event,
    ) -> Result<Response<pb::Suggestion>, Status> {
        let core = &self.0;
        let r = core.get_id(id, kind::SUGGESTION).await?;
        let (s, state) = fold(core, &r)?;
        let org: OrgCode = match whose {
            StepOrg::Congress => s.congress,
            StepOrg::Unit(unit) => record_org(
                &self
                    .0
                    .known(unit, kind::HANDLING_UNIT, "unit_id", "承办单位不存在")
                    .await?,
            )?,
            StepOrg::Deputy(deputy) => record_org(
                &self
                    .0
                    .known(deputy, kind::DEPUTY, "deputy_id", "代表不存在")
                    .await?,
            )?,
        };
        let permit = core.permit::<Event>(caller, org, event.step()).await?;
        sug::check(&s, &state, &event).map_err(Error::from)?;
        permit.take(id, &[event], vec![]).await?;
        self.answer(id).await
    }

    /// The item as it is now, after a step: read back, so the answer shows what was merged in
    /// meanwhile as well as what this call wrote.
    async fn answer(&self, id: Uuid) -> Answer {
        let core = &self.0;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(id, kind::SUGGESTION).await?,
        )?))
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

type Answer = Result<Response<pb::Suggestion>, Status>;

/// Which role may call each RPC of `renda.suggestion.v1.Suggestions` (see [`crate::gate`]).
pub(crate) const ACCESS: ServiceAccess = ServiceAccess {
    service: pb::suggestions_server::SERVICE_NAME,
    rpcs: &[
        ("CreateHandlingUnit", roles(STAFF)),
        ("ListHandlingUnits", roles(READ.with(UNIT))),
        ("SubmitSuggestion", roles(STAFF)),
        ("UpdateSuggestion", roles(STAFF)),
        ("GetSuggestion", roles(READ.with(UNIT))),
        ("ListSuggestions", roles(READ.with(UNIT))),
        ("ReviewSuggestion", roles(STAFF)),
        ("ReviseSuggestion", roles(STAFF)),
        ("WithdrawSuggestion", roles(STAFF)),
        ("MergeSuggestion", roles(STAFF)),
        ("AssignSuggestion", roles(STAFF)),
        ("ReturnSuggestion", roles(STAFF.with(UNIT))),
        ("SetSupervision", roles(OFFICE)),
        ("ExtendDeadline", roles(OFFICE)),
        ("SendAssistingView", roles(STAFF.with(UNIT))),
        ("ReplySuggestion", roles(STAFF.with(UNIT))),
        ("RateSuggestion", roles(STAFF)),
        ("SecondRound", roles(STAFF)),
        ("MarkImplemented", roles(STAFF)),
        ("CloseSuggestion", roles(STAFF)),
        ("SuggestionRates", roles(READ)),
        ("OverdueSuggestions", roles(READ)),
    ],
};

#[tonic::async_trait]
impl pb::suggestions_server::Suggestions for Service {
    async fn create_handling_unit(
        &self,
        req: Request<pb::CreateHandlingUnitRequest>,
    ) -> Result<Response<pb::HandlingUnit>, Status> {
        let (caller, cmd): (_, CreateUnit) = edge::accept(req)?;
        let core = &self.0;
        let org = cmd.org.map_or_else(|| core.default_org(), Ok)?;
        core.require_reach("org", &org).await?;
        core.authorize(&caller, HANDLING_UNIT.governed_as, Step::Edit, &org)
            .await?;
        let id = new_id();
        core.write(
            &caller,
            id,
            kind::HANDLING_UNIT,
            vec![
                Pending::Put("org", Value::Org(org)),
                Pending::Put("name", Value::Text(cmd.name.clone())),
            ],
        )
        .await?;
        Ok(Response::new(pb::HandlingUnit {
            id: id.to_string(),
            org: org.to_string(),
            name: cmd.name,
        }))
    }

    async fn list_handling_units(
        &self,
        req: Request<pb::ListHandlingUnitsRequest>,
    ) -> Result<Response<pb::ListHandlingUnitsResponse>, Status> {
        let org = parse_org("org", &req.get_ref().org, &self.0.default_org()?)?;
        self.0.require_reach("org", &org).await?;
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

    async fn submit_suggestion(&self, req: Request<pb::SubmitSuggestionRequest>) -> Answer {
        let (caller, Submit { mut draft, on }) = edge::accept(req)?;
        let core = &self.0;
        let congress = core.node_org()?;
        draft.congress = congress.to_string();
        let id = new_id();
        let s = sug::Suggestion::parse(draft, id).map_err(signer_error)?;
        self.check_signers(&s).await?;
        let mut changes = vec![
            Pending::Put("org", Value::Org(s.congress)),
            Pending::Put("kind", Value::Text(s.kind.code().into())),
            Pending::Put("title", Value::Text(s.title.clone())),
            Pending::Put("body", Value::Text(s.body.clone())),
            Pending::Put("lead_deputy", reference(s.lead_deputy)),
        ];
        changes.extend(s.co_signers.iter().map(|c| Pending::Add("co_signers", *c)));
        core.take(
            &caller,
            id,
            s.congress,
            &Event::Submitted { at: on },
            changes,
        )
        .await?;
        self.answer(id).await
    }

    async fn update_suggestion(&self, req: Request<pb::UpdateSuggestionRequest>) -> Answer {
        let (caller, cmd): (_, Update) = edge::accept(req)?;
        let core = &self.0;
        let r = core.get_id(cmd.id, kind::SUGGESTION).await?;
        let (old, state) = fold(core, &r)?;
        let s = sug::Suggestion::parse(
            sug::Draft {
                kind: cmd.kind,
                congress: old.congress.to_string(),
                title: cmd.title,
                body: cmd.body,
                lead_deputy: old.lead_deputy,
                co_signers: cmd.co_signers,
            },
            r.id.0,
        )
        .map_err(signer_error)?;
        self.check_signers(&s).await?;
        core.authorize(&caller, KIND.governed_as, Step::Edit, &s.congress)
            .await?;
        if !matches!(
            state.status,
            St::Drafted | St::Submitted | St::RevisionRequested
        ) {
            return Err(Error::precondition(
                "status",
                format!(
                    "the item can be edited only before review passes; it is {:?}",
                    state.status
                ),
                "审核通过后不能再修改议案建议内容",
            )
            .into());
        }
        let mut changes = vec![
            Pending::Put("kind", Value::Text(s.kind.code().into())),
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
        core.save_form(&caller, r.id.0, kind::SUGGESTION, changes, &cmd.read)
            .await?;
        self.answer(r.id.0).await
    }

    async fn get_suggestion(&self, req: Request<pb::GetSuggestionRequest>) -> Answer {
        let me = caller(&req)?;
        let id = parse_id("id", &req.get_ref().id)?;
        let suggestion = to_pb(&self.0, &self.0.get_id(id, kind::SUGGESTION).await?)?;
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
        self.0.require_reach("org", &org).await?;
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

    async fn review_suggestion(&self, req: Request<pb::ReviewSuggestionRequest>) -> Answer {
        let (caller, Review { id, event }) = edge::accept(req)?;
        self.step(&caller, id, StepOrg::Congress, event).await
    }

    async fn revise_suggestion(&self, req: Request<pb::StepRequest>) -> Answer {
        let (caller, Dated { id, on }) = edge::accept(req)?;
        self.step(&caller, id, StepOrg::Congress, Event::Revised { at: on })
            .await
    }

    async fn withdraw_suggestion(&self, req: Request<pb::StepRequest>) -> Answer {
        let (caller, Dated { id, on }) = edge::accept(req)?;
        self.step(&caller, id, StepOrg::Congress, Event::Withdrawn { at: on })
            .await
    }

    async fn merge_suggestion(&self, req: Request<pb::MergeSuggestionRequest>) -> Answer {
        let (caller, Merge { id, into, on }) = edge::accept(req)?;
        let target = self.0.get_id(into, kind::SUGGESTION).await?;
        let event = Event::MergedInto {
            target: target.id.0,
            at: on,
        };
        self.step(&caller, id, StepOrg::Congress, event).await
    }

    async fn assign_suggestion(&self, req: Request<pb::AssignSuggestionRequest>) -> Answer {
        let (caller, Assign { id, assignment, on }) = edge::accept(req)?;
        for unit in assignment.units() {
            self.0
                .known(
                    unit,
                    kind::HANDLING_UNIT,
                    "assignment.unit_ids",
                    "承办单位不存在",
                )
                .await?;
        }
        let event = Event::Assigned {
            mode: assignment,
            at: on,
        };
        self.step(&caller, id, StepOrg::Congress, event).await
    }

    async fn return_suggestion(&self, req: Request<pb::UnitStepRequest>) -> Answer {
        let (caller, UnitStep { id, unit, on }) = edge::accept(req)?;
        caller.require_own_unit("unit_id", unit)?;
        self.step(
            &caller,
            id,
            StepOrg::Unit(unit),
            Event::Returned { unit, at: on },
        )
        .await
    }

    async fn set_supervision(&self, req: Request<pb::SetSupervisionRequest>) -> Answer {
        let (caller, Supervise { id, mode, on }) = edge::accept(req)?;
        let event = Event::SupervisionSet { mode, at: on };
        self.step(&caller, id, StepOrg::Congress, event).await
    }

    async fn extend_deadline(&self, req: Request<pb::StepRequest>) -> Answer {
        let (caller, Dated { id, on }) = edge::accept(req)?;
        let event = Event::ExtensionApproved { at: on };
        self.step(&caller, id, StepOrg::Congress, event).await
    }

    async fn send_assisting_view(&self, req: Request<pb::UnitStepRequest>) -> Answer {
        let (caller, UnitStep { id, unit, on }) = edge::accept(req)?;
        caller.require_own_unit("unit_id", unit)?;
        let event = Event::AssistingViewSent { unit, at: on };
        self.step(&caller, id, StepOrg::Unit(unit), event).await
    }

    async fn reply_suggestion(&self, req: Request<pb::ReplySuggestionRequest>) -> Answer {
        let (caller, cmd): (_, ReplyCmd) = edge::accept(req)?;
        caller.require_own_unit("unit_id", cmd.unit)?;
        let event = Event::Replied {
            unit: cmd.unit,
            category: cmd.category,
            at: cmd.on,
        };
        self.step(&caller, cmd.id, StepOrg::Unit(cmd.unit), event)
            .await
    }

    async fn rate_suggestion(&self, req: Request<pb::RateSuggestionRequest>) -> Answer {
        let (caller, cmd): (_, Rate) = edge::accept(req)?;
        let event = Event::Evaluated {
            deputy: cmd.deputy,
            satisfaction: cmd.satisfaction,
            at: cmd.on,
        };
        self.step(&caller, cmd.id, StepOrg::Deputy(cmd.deputy), event)
            .await
    }

    async fn second_round(&self, req: Request<pb::StepRequest>) -> Answer {
        let (caller, Dated { id, on }) = edge::accept(req)?;
        self.step(
            &caller,
            id,
            StepOrg::Congress,
            Event::SecondRound { at: on },
        )
        .await
    }

    async fn mark_implemented(&self, req: Request<pb::StepRequest>) -> Answer {
        let (caller, Dated { id, on }) = edge::accept(req)?;
        self.step(
            &caller,
            id,
            StepOrg::Congress,
            Event::Implemented { at: on },
        )
        .await
    }

    async fn close_suggestion(&self, req: Request<pb::StepRequest>) -> Answer {
        let (caller, Dated { id, on }) = edge::accept(req)?;
        self.step(&caller, id, StepOrg::Congress, Event::Closed { at: on })
            .await
    }

    async fn suggestion_rates(
        &self,
        req: Request<pb::SuggestionRatesRequest>,
    ) -> Result<Response<pb::SuggestionRatesResponse>, Status> {
        let core = &self.0;
        let org = parse_org("org", &req.get_ref().org, &core.default_org()?)?;
        core.require_reach("org", &org).await?;
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
        core.require_reach("org", &org).await?;
        let on = edge::day("on", req.on)?;
        let mut states = Vec::new();
        for r in core.list(kind::SUGGESTION, Some(&org)).await? {
            states.push(fold(core, &r)?.1);
        }
        let items = sug::overdue(&states, on)
            .into_iter()
            .map(|o| {
                let (kind, unit) = match o.kind {
                    sug::OverdueKind::Reply => (pb::OverdueKind::Reply, String::new()),
                    sug::OverdueKind::SecondRoundReply => {
                        (pb::OverdueKind::SecondRoundReply, String::new())
                    }
                    sug::OverdueKind::AssistingView(u) => {
                        (pb::OverdueKind::AssistingView, u.to_string())
                    }
                };
                pb::OverdueItem {
                    suggestion_id: o.id.to_string(),
                    kind: kind.into(),
                    unit_id: unit,
                    due: Some(o.due.into()),
                    days_late: o.days_late,
                }
            })
            .collect();
        Ok(Response::new(pb::OverdueSuggestionsResponse { items }))
    }
}
