//! `renda.project.v1.Projects`: congress sessions with their voting measures, livelihood
//! projects from collection to maintenance, ballots and the tally.
//!
//! Each request is converted once into a command of domain values (`TryFrom`): ids parsed,
//! text bounded, the proto enums `Threshold`, `Choice`, `Change` and `DecisionBody` read as the
//! domain's, dates read from `renda.types.v1.Date` (absent: today at the node). A step is the
//! domain's `project::Event`: authorised for the step its definition names, checked with the
//! domain's `check` against the folded stage, and stored as its definition says; stored events
//! are read back decoded. The folded stage answers as the `Stage` enum.
//!
//! A ballot is an event on the project it is for (the candidate), written at the congress's
//! node. The tally reads every ballot of the session's candidates and counts with the domain's
//! `tally`: the same ballot recorded twice is counted once and listed by deputy (`repeated_ballots`).

use std::collections::BTreeSet;

use chrono::NaiveDate;
use renda_domain::authority::{RecordKind, Step};
use renda_domain::event::Stamped;
use renda_domain::org::OrgCode;
use renda_domain::project::{
    self as proj, Ballot, Change, Choice, Decision, DecisionBody, Event, Stage, Threshold,
    VotingRules,
};
use renda_domain::record::{Coded, RecordEvent};
use renda_proto::project::v1 as pb;
use renda_replica::{Value, Version};
use renda_store::StoredRecord;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::edge::{self, Wire, wire};
use crate::error::{Error, Result};
use crate::gate::{READ, STAFF, ServiceAccess, roles};
use crate::schema::kind;

pub(crate) struct Service(pub Shared);

wire!(Stage => pb::Stage {
    Collected <=> Collected,
    Candidate <=> Candidate,
    NotShortlisted <=> NotShortlisted,
    Adopted <=> Adopted,
    NotAdopted <=> NotAdopted,
    Implementing <=> Implementing,
    Suspended <=> Suspended,
    Terminated <=> Terminated,
    Accepted <=> Accepted,
    Evaluated <=> Evaluated,
    Maintained <=> Maintained,
});

wire!(Threshold => pb::Threshold {
    MajorityOfSeated <=> Seated,
    MajorityOfPresent <=> Present,
});

wire!(Choice => pb::Choice {
    For <=> For,
    Against <=> Against,
    Abstain <=> Abstain,
});

wire!(Change => pb::Change {
    Major <=> Major,
    Suspension <=> Suspension,
    Resumption <=> Resumption,
    Termination <=> Termination,
});

wire!(DecisionBody => pb::DecisionBody {
    StandingCommittee <=> StandingCommittee,
    TownshipCongress <=> TownshipCongress,
    TownshipPresidium <=> TownshipPresidium,
});

// ---- commands ----------------------------------------------------------------------------

/// `CreateSession`: a session's name, year and voting measures.
struct NewSession {
    name: String,
    year: i32,
    rules: VotingRules,
}

impl TryFrom<pb::CreateSessionRequest> for NewSession {
    type Error = Error;

    fn try_from(req: pb::CreateSessionRequest) -> Result<Self> {
        limit("name", &req.name, 400)?;
        let name = renda_domain::text::bounded("name", &req.name, 2, 100)?;
        let threshold = edge::optional_one_of(
            "threshold",
            req.threshold,
            "THRESHOLD_SEATED or THRESHOLD_PRESENT",
            "通过基数须为全体代表或出席代表",
        )?
        .unwrap_or(Threshold::MajorityOfSeated);
        if req.to_adopt > 1000 || req.candidate_margin > 1000 {
            return Err(Error::invalid("to_adopt", "at most 1000", "不得超过1000"));
        }
        let rules = VotingRules {
            to_adopt: req.to_adopt,
            threshold,
            candidate_margin: req.candidate_margin,
        };
        rules.validate()?;
        Ok(Self {
            name,
            year: req.year,
            rules,
        })
    }
}

/// A request naming one record by its id (`GetSession`, `GetProject`).
struct ById(Uuid);

impl TryFrom<pb::GetSessionRequest> for ById {
    type Error = Error;

    fn try_from(req: pb::GetSessionRequest) -> Result<Self> {
        parse_id("id", &req.id).map(Self)
    }
}

impl TryFrom<pb::GetProjectRequest> for ById {
    type Error = Error;

    fn try_from(req: pb::GetProjectRequest) -> Result<Self> {
        parse_id("id", &req.id).map(Self)
    }
}

/// `SetSeated`: deputies seated at and removed from a session.
struct Seating {
    session: Uuid,
    add: Vec<Uuid>,
    remove: Vec<Uuid>,
}

impl TryFrom<pb::SetSeatedRequest> for Seating {
    type Error = Error;

    fn try_from(req: pb::SetSeatedRequest) -> Result<Self> {
        Ok(Self {
            session: parse_id("session_id", &req.session_id)?,
            add: parse_ids("add", &req.add, 5000)?,
            remove: parse_ids("remove", &req.remove, 5000)?,
        })
    }
}

/// `SignIn`: a deputy signs in at a session.
struct SignIn {
    session: Uuid,
    deputy: Uuid,
}

impl TryFrom<pb::SignInRequest> for SignIn {
    type Error = Error;

    fn try_from(req: pb::SignInRequest) -> Result<Self> {
        Ok(Self {
            session: parse_id("session_id", &req.session_id)?,
            deputy: parse_id("deputy_id", &req.deputy_id)?,
        })
    }
}

/// The editable fields of a project, bounded; the domain parses them with the congress.
struct ProjectFields {
    year: i32,
    title: String,
    summary: String,
    budget_fen: i64,
}

impl ProjectFields {
    fn bounded(year: i32, title: String, summary: String, budget_fen: i64) -> Result<Self> {
        limit("title", &title, 400)?;
        limit("summary", &summary, 5000)?;
        Ok(Self {
            year,
            title,
            summary,
            budget_fen,
        })
    }

    fn parse(self, congress: OrgCode, id: Uuid) -> Result<proj::Project> {
        Ok(proj::Project::parse(
            proj::ProjectDraft {
                congress: congress.to_string(),
                year: self.year,
                title: self.title,
                summary: self.summary,
                budget_fen: self.budget_fen,
            },
            id,
        )?)
    }
}

impl TryFrom<pb::CreateProjectRequest> for ProjectFields {
    type Error = Error;

    fn try_from(req: pb::CreateProjectRequest) -> Result<Self> {
        Self::bounded(req.year, req.title, req.summary, req.budget_fen)
    }
}

/// `UpdateProject`: new fields for a project before the vote.
struct ProjectUpdate {
    id: Uuid,
    fields: ProjectFields,
    read: Version,
}

impl TryFrom<pb::UpdateProjectRequest> for ProjectUpdate {
    type Error = Error;

    fn try_from(req: pb::UpdateProjectRequest) -> Result<Self> {
        let id = parse_id("id", &req.id)?;
        Ok(Self {
            id,
            fields: ProjectFields::bounded(req.year, req.title, req.summary, req.budget_fen)?,
            read: edge::read_version(&req.version, id)?,
        })
    }
}

/// `ListProjects`: an org subtree (the node's default when unset), optionally one session's
/// candidates, and a page.
struct ProjectList {
    org: Option<OrgCode>,
    session: Option<Uuid>,
    limit: u32,
    offset: u64,
}

impl TryFrom<pb::ListProjectsRequest> for ProjectList {
    type Error = Error;

    fn try_from(req: pb::ListProjectsRequest) -> Result<Self> {
        let org = if req.org.trim().is_empty() {
            None
        } else {
            Some(
                OrgCode::parse(&req.org)
                    .map_err(|e| Error::invalid("org", e.to_string(), e.reason_zh()))?,
            )
        };
        let session = if req.session_id.trim().is_empty() {
            None
        } else {
            Some(parse_id("session_id", &req.session_id)?)
        };
        Ok(Self {
            org,
            session,
            limit: page_limit(req.limit)?,
            offset: req.offset,
        })
    }
}

/// `ScreenProject`: onto a session's candidate list, or screened out (no session).
struct Screening {
    project: Uuid,
    session: Option<Uuid>,
    at: NaiveDate,
}

impl TryFrom<pb::ScreenProjectRequest> for Screening {
    type Error = Error;

    fn try_from(req: pb::ScreenProjectRequest) -> Result<Self> {
        let at = edge::day("on", req.on)?;
        let project = parse_id("project_id", &req.project_id)?;
        let session = if req.session_id.trim().is_empty() {
            None
        } else {
            Some(parse_id("session_id", &req.session_id)?)
        };
        Ok(Self {
            project,
            session,
            at,
        })
    }
}

/// `CastBallot`: one deputy's choice for one candidate.
struct CastBallot {
    project: Uuid,
    deputy: Uuid,
    choice: Choice,
}

impl TryFrom<pb::CastBallotRequest> for CastBallot {
    type Error = Error;

    fn try_from(req: pb::CastBallotRequest) -> Result<Self> {
        Ok(Self {
            project: parse_id("project_id", &req.project_id)?,
            deputy: parse_id("deputy_id", &req.deputy_id)?,
            choice: edge::one_of(
                "choice",
                req.choice,
                "CHOICE_FOR, CHOICE_AGAINST or CHOICE_ABSTAIN",
                "须为赞成、反对或弃权",
            )?,
        })
    }
}

/// `TallyVote`: count a session's ballots (recording the outcome, when asked, on that day).
struct Tally {
    session: Uuid,
    at: NaiveDate,
}

impl TryFrom<pb::TallyVoteRequest> for Tally {
    type Error = Error;

    fn try_from(req: pb::TallyVoteRequest) -> Result<Self> {
        let at = edge::day("on", req.on)?;
        Ok(Self {
            session: parse_id("session_id", &req.session_id)?,
            at,
        })
    }
}

/// A step on a project whose event the request alone determines.
struct ProjectStep {
    project: Uuid,
    event: Event,
}

impl TryFrom<pb::SetPlanRequest> for ProjectStep {
    type Error = Error;

    fn try_from(req: pb::SetPlanRequest) -> Result<Self> {
        let at = edge::day("on", req.on)?;
        Ok(Self {
            project: parse_id("project_id", &req.project_id)?,
            event: Event::PlanSet {
                budget_fen: req.budget_fen,
                at,
            },
        })
    }
}

impl TryFrom<pb::ReportProgressRequest> for ProjectStep {
    type Error = Error;

    fn try_from(req: pb::ReportProgressRequest) -> Result<Self> {
        let at = edge::day("on", req.on)?;
        limit("note", &req.note, 2000)?;
        Ok(Self {
            project: parse_id("project_id", &req.project_id)?,
            event: Event::Progress {
                // Out of range reads as 255, which the domain's check refuses by name.
                percent: u8::try_from(req.percent).unwrap_or(u8::MAX),
                note: req.note.trim().to_owned(),
                at,
            },
        })
    }
}

impl TryFrom<pb::ProjectStepRequest> for ProjectStep {
    type Error = Error;

    /// `PassAcceptance`.
    fn try_from(req: pb::ProjectStepRequest) -> Result<Self> {
        let at = edge::day("on", req.on)?;
        Ok(Self {
            project: parse_id("project_id", &req.project_id)?,
            event: Event::AcceptancePassed { at },
        })
    }
}

impl TryFrom<pb::ScoreProjectRequest> for ProjectStep {
    type Error = Error;

    fn try_from(req: pb::ScoreProjectRequest) -> Result<Self> {
        let at = edge::day("on", req.on)?;
        let deputy = parse_id("deputy_id", &req.deputy_id)?;
        Ok(Self {
            project: parse_id("project_id", &req.project_id)?,
            event: Event::Scored {
                deputy,
                score: u8::try_from(req.score).unwrap_or(u8::MAX),
                at,
            },
        })
    }
}

impl TryFrom<pb::ChangeProjectRequest> for ProjectStep {
    type Error = Error;

    fn try_from(req: pb::ChangeProjectRequest) -> Result<Self> {
        let at = edge::day("on", req.on)?;
        limit("note", &req.note, 2000)?;
        limit("decision_reference", &req.decision_reference, 200)?;
        let change = edge::one_of(
            "change",
            req.change,
            "CHANGE_MAJOR, CHANGE_SUSPENSION, CHANGE_RESUMPTION or CHANGE_TERMINATION",
            "调整类型无效",
        )?;
        let body = edge::optional_one_of(
            "decision_body",
            req.decision_body,
            "DECISION_BODY_STANDING_COMMITTEE, DECISION_BODY_TOWNSHIP_CONGRESS or \
             DECISION_BODY_TOWNSHIP_PRESIDIUM",
            "决定机关无效",
        )?;
        let decision = match body {
            None => None,
            Some(body) => Some(Decision {
                body,
                reference: req.decision_reference.trim().to_owned(),
                decided_on: edge::day("decided_on", req.decided_on)?,
            }),
        };
        Ok(Self {
            project: parse_id("project_id", &req.project_id)?,
            event: Event::Changed {
                change,
                decision,
                note: req.note.trim().to_owned(),
                at,
            },
        })
    }
}

/// `SignAcceptance` and `StartMaintenance`: a step one deputy takes on a project.
struct DeputyStep {
    project: Uuid,
    deputy: Uuid,
    at: NaiveDate,
}

impl TryFrom<pb::DeputyStepRequest> for DeputyStep {
    type Error = Error;

    fn try_from(req: pb::DeputyStepRequest) -> Result<Self> {
        let at = edge::day("on", req.on)?;
        Ok(Self {
            project: parse_id("project_id", &req.project_id)?,
            deputy: parse_id("deputy_id", &req.deputy_id)?,
            at,
        })
    }
}

impl TryFrom<pb::SignAcceptanceAsVoterRequest> for ProjectStep {
    type Error = Error;

    fn try_from(req: pb::SignAcceptanceAsVoterRequest) -> Result<Self> {
        limit("voter_name", &req.voter_name, 200)?;
        limit("voter_area", &req.voter_area, 400)?;
        Ok(Self {
            project: parse_id("project_id", &req.project_id)?,
            event: Event::VoterSigned {
                signer: proj::VoterSigner::parse(&req.voter_name, &req.voter_area)?,
                at: edge::day("on", req.on)?,
            },
        })
    }
}

/// `AdoptForSupervision`: a supervision group adopts a project.
struct Supervision {
    project: Uuid,
    group: Uuid,
    at: NaiveDate,
}

impl TryFrom<pb::AdoptForSupervisionRequest> for Supervision {
    type Error = Error;

    fn try_from(req: pb::AdoptForSupervisionRequest) -> Result<Self> {
        let at = edge::day("on", req.on)?;
        Ok(Self {
            project: parse_id("project_id", &req.project_id)?,
            group: parse_id("group_id", &req.group_id)?,
            at,
        })
    }
}

/// `RecordMaintenance`: a deputy's maintenance visit.
struct Visit {
    project: Uuid,
    deputy: Uuid,
    note: String,
    volunteer_points: u32,
    at: NaiveDate,
}

impl TryFrom<pb::RecordMaintenanceRequest> for Visit {
    type Error = Error;

    fn try_from(req: pb::RecordMaintenanceRequest) -> Result<Self> {
        let at = edge::day("on", req.on)?;
        limit("note", &req.note, 2000)?;
        let note = renda_domain::text::optional("note", Some(&req.note), 500)?;
        if req.volunteer_points > 100 {
            return Err(Error::invalid(
                "volunteer_points",
                format!("must be 0 to 100, got {}", req.volunteer_points),
                format!("志愿积分须在0至100之间，实际为{}", req.volunteer_points),
            ));
        }
        Ok(Self {
            project: parse_id("project_id", &req.project_id)?,
            deputy: parse_id("deputy_id", &req.deputy_id)?,
            note: note.unwrap_or_default(),
            volunteer_points: req.volunteer_points,
            at,
        })
    }
}

// ---- reading records ---------------------------------------------------------------------

fn domain_project(r: &StoredRecord) -> Result<proj::Project> {
    Ok(proj::Project {
        id: r.id.0,
        congress: record_org(r)?,
        year: i32::try_from(int(r, "year")).unwrap_or_default(),
        title: text(r, "title"),
        summary: text(r, "summary"),
        budget_fen: int(r, "budget_fen"),
    })
}

/// The project, its folded state and its decoded events.
fn fold(
    core: &Core,
    r: &StoredRecord,
) -> Result<(proj::Project, proj::State, Vec<Stamped<Event>>)> {
    let p = domain_project(r)?;
    let events = core.domain_events::<Event>(r)?;
    let state = proj::fold(&p, &events);
    Ok((p, state, events))
}

fn to_pb(core: &Core, r: &StoredRecord) -> Result<pb::Project> {
    let (p, state, events) = fold(core, r)?;
    let caretaker = events
        .iter()
        .filter_map(|e| match e.event {
            Event::MaintenanceStarted { caretaker, .. } => Some((e.stamp, caretaker)),
            _ => None,
        })
        .max_by_key(|(stamp, _)| *stamp)
        .map(|(_, id)| id.to_string())
        .unwrap_or_default();
    let mut visits: Vec<&Stamped<Event>> = events
        .iter()
        .filter(|e| matches!(e.event, Event::MaintenanceVisit { .. }))
        .collect();
    visits.sort_by_key(|e| e.stamp);
    Ok(pb::Project {
        version: r.version.encode(),
        id: r.id.to_string(),
        congress: p.congress.to_string(),
        year: p.year,
        title: p.title,
        summary: p.summary,
        budget_fen: state.budget_fen,
        session_id: ref_id(r, "session")
            .map(|s| s.to_string())
            .unwrap_or_default(),
        stage: state.stage.wire(),
        stage_zh: state.stage.label_zh().into(),
        progress: u32::from(state.progress),
        signatures: state.signatures.iter().map(Uuid::to_string).collect(),
        voter_signatures: state
            .voter_signatures
            .iter()
            .map(|v| pb::VoterSignature {
                voter_name: v.name.clone(),
                voter_area: v.area.clone(),
            })
            .collect(),
        average_score: state.average_score(),
        flags: state.flags.iter().map(|f| f.reason.clone()).collect(),
        supervision_group_ids: state
            .supervision_groups
            .iter()
            .map(Uuid::to_string)
            .collect(),
        caretaker_id: caretaker,
        maintenance: visits
            .into_iter()
            .filter_map(|e| match &e.event {
                Event::MaintenanceVisit {
                    deputy,
                    note,
                    volunteer_points,
                    at,
                } => Some(pb::MaintenanceVisit {
                    deputy_id: deputy.to_string(),
                    on: Some((*at).into()),
                    note: note.clone(),
                    volunteer_points: *volunteer_points,
                }),
                _ => None,
            })
            .collect(),
    })
}

/// The stored base of a session's adoption threshold (seated unless it says present).
fn threshold(r: &StoredRecord) -> Threshold {
    Threshold::from_code(&text(r, "threshold")).unwrap_or(Threshold::MajorityOfSeated)
}

fn session_pb(r: &StoredRecord) -> pb::Session {
    pb::Session {
        id: r.id.to_string(),
        congress: org_string(r),
        name: text(r, "name"),
        year: i32::try_from(int(r, "year")).unwrap_or_default(),
        to_adopt: u32::try_from(int(r, "to_adopt")).unwrap_or_default(),
        threshold: threshold(r).wire(),
        candidate_margin: u32::try_from(int(r, "candidate_margin")).unwrap_or_default(),
        seated: set(r, "seated").iter().map(Uuid::to_string).collect(),
        present: set(r, "present").iter().map(Uuid::to_string).collect(),
    }
}

fn rules(r: &StoredRecord) -> VotingRules {
    VotingRules {
        to_adopt: u32::try_from(int(r, "to_adopt")).unwrap_or_default(),
        threshold: threshold(r),
        candidate_margin: u32::try_from(int(r, "candidate_margin")).unwrap_or_default(),
    }
}

/// The candidates of a session (projects shortlisted for it) and every ballot cast for them.
async fn candidates_and_ballots(
    core: &Core,
    session: &StoredRecord,
) -> Result<(Vec<(StoredRecord, Stage)>, Vec<Stamped<Ballot>>)> {
    let org = record_org(session)?;
    let mut candidates = Vec::new();
    let mut ballots = Vec::new();
    for r in core.list(kind::PROJECT, Some(&org)).await? {
        if ref_id(&r, "session") != Some(session.id.0) {
            continue;
        }
        let (_, state, events) = fold(core, &r)?;
        if !events
            .iter()
            .any(|e| matches!(e.event, Event::Shortlisted { .. }))
        {
            continue;
        }
        for e in &events {
            if let Event::Ballot {
                deputy,
                session: cast_at,
                choice,
            } = e.event
                && cast_at == session.id.0
            {
                ballots.push(Stamped::new(
                    e.stamp,
                    Ballot {
                        deputy,
                        candidate: r.id.0,
                        choice,
                    },
                ));
            }
        }
        candidates.push((r, state.stage));
    }
    Ok((candidates, ballots))
}

fn not_seated() -> Error {
    Error::precondition(
        "deputy_id",
        "the deputy is not seated at this session",
        "该代表不是本次会议的出席代表",
    )
}

impl Service {
    /// A request that is one step on one project: check the person, convert, take the step,
    /// answer with the project.
    async fn accept_step<R>(&self, req: Request<R>) -> Result<Response<pb::Project>, Status>
    where
        ProjectStep: TryFrom<R, Error = Error>,
    {
        let (caller, cmd): (_, ProjectStep) = edge::accept(req)?;
        Ok(Response::new(
            self.project_step(&caller, cmd.project, cmd.event).await?,
        ))
    }

    /// Loads and folds a project, authorises the caller for the event's step, checks the step
    /// against the stage and records it.
    async fn project_step(&self, caller: &Caller, id: Uuid, event: Event) -> Result<pb::Project> {
        let core = &self.0;
        let r = core.get_id(id, kind::PROJECT).await?;
        let org = record_org(&r)?;
        let permit = core.permit::<Event>(caller, org, event.step()).await?;
        let (_, state, _) = fold(core, &r)?;
        proj::check(&state, &event)?;
        permit.take(r.id.0, &[event], vec![]).await?;
        to_pb(core, &core.get_id(r.id.0, kind::PROJECT).await?)
    }

    async fn session_write(
        &self,
        caller: &Caller,
        r: &StoredRecord,
        changes: Vec<Pending>,
    ) -> Result<pb::Session> {
        let core = &self.0;
        core.authorize(caller, RecordKind::Project, Step::Edit, &record_org(r)?)
            .await?;
        core.write(caller, r.id.0, kind::CONGRESS_SESSION, changes)
            .await?;
        Ok(session_pb(
            &core.get_id(r.id.0, kind::CONGRESS_SESSION).await?,
        ))
    }
}

/// Which role may call each RPC of `renda.project.v1.Projects` (see [`crate::gate`]).
pub(crate) const ACCESS: ServiceAccess = ServiceAccess {
    service: pb::projects_server::SERVICE_NAME,
    rpcs: &[
        ("CreateSession", roles(STAFF)),
        ("GetSession", roles(READ)),
        ("SetSeated", roles(STAFF)),
        ("SignIn", roles(STAFF)),
        ("CreateProject", roles(STAFF)),
        ("UpdateProject", roles(STAFF)),
        ("GetProject", roles(READ)),
        ("ListProjects", roles(READ)),
        ("ScreenProject", roles(STAFF)),
        ("CastBallot", roles(STAFF)),
        ("TallyVote", roles(STAFF)),
        ("SetPlan", roles(STAFF)),
        ("ReportProgress", roles(STAFF)),
        ("SignAcceptance", roles(STAFF)),
        ("SignAcceptanceAsVoter", roles(STAFF)),
        ("PassAcceptance", roles(STAFF)),
        ("ScoreProject", roles(STAFF)),
        ("ChangeProject", roles(STAFF)),
        ("AdoptForSupervision", roles(STAFF)),
        ("StartMaintenance", roles(STAFF)),
        ("RecordMaintenance", roles(STAFF)),
    ],
};

#[tonic::async_trait]
impl pb::projects_server::Projects for Service {
    async fn create_session(
        &self,
        req: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let (caller, cmd): (_, NewSession) = edge::accept(req)?;
        let core = &self.0;
        let org = core.node_org()?;
        core.authorize(&caller, RecordKind::Project, Step::Edit, &org)
            .await?;
        let id = new_id();
        core.write(
            &caller,
            id,
            kind::CONGRESS_SESSION,
            vec![
                Pending::Put("org", Value::Org(org)),
                Pending::Put("name", Value::Text(cmd.name)),
                Pending::Put("year", Value::Int(i64::from(cmd.year))),
                Pending::Put("to_adopt", Value::Int(i64::from(cmd.rules.to_adopt))),
                Pending::Put("threshold", Value::Text(cmd.rules.threshold.code().into())),
                Pending::Put(
                    "candidate_margin",
                    Value::Int(i64::from(cmd.rules.candidate_margin)),
                ),
            ],
        )
        .await?;
        Ok(Response::new(session_pb(
            &core.get_id(id, kind::CONGRESS_SESSION).await?,
        )))
    }

    async fn get_session(
        &self,
        req: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let ById(id) = ById::try_from(req.into_inner())?;
        let r = self.0.get_id(id, kind::CONGRESS_SESSION).await?;
        Ok(Response::new(session_pb(&r)))
    }

    async fn set_seated(
        &self,
        req: Request<pb::SetSeatedRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let (caller, cmd): (_, Seating) = edge::accept(req)?;
        let r = self.0.get_id(cmd.session, kind::CONGRESS_SESSION).await?;
        let mut changes: Vec<Pending> = cmd
            .add
            .into_iter()
            .map(|d| Pending::Add("seated", d))
            .collect();
        changes.extend(cmd.remove.into_iter().map(|d| Pending::Remove("seated", d)));
        Ok(Response::new(
            self.session_write(&caller, &r, changes).await?,
        ))
    }

    async fn sign_in(
        &self,
        req: Request<pb::SignInRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let (caller, cmd): (_, SignIn) = edge::accept(req)?;
        let r = self.0.get_id(cmd.session, kind::CONGRESS_SESSION).await?;
        if !set(&r, "seated").contains(&cmd.deputy) {
            return Err(not_seated().into());
        }
        Ok(Response::new(
            self.session_write(&caller, &r, vec![Pending::Add("present", cmd.deputy)])
                .await?,
        ))
    }

    async fn create_project(
        &self,
        req: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let (caller, cmd): (_, ProjectFields) = edge::accept(req)?;
        let core = &self.0;
        let p = cmd.parse(core.node_org()?, new_id())?;
        core.authorize(&caller, RecordKind::Project, Step::Edit, &p.congress)
            .await?;
        core.write(
            &caller,
            p.id,
            kind::PROJECT,
            vec![
                Pending::Put("org", Value::Org(p.congress)),
                Pending::Put("year", Value::Int(i64::from(p.year))),
                Pending::Put("title", Value::Text(p.title.clone())),
                Pending::Put("summary", text_value(p.summary.clone())),
                Pending::Put("budget_fen", Value::Int(p.budget_fen)),
            ],
        )
        .await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(p.id, kind::PROJECT).await?,
        )?))
    }

    async fn update_project(
        &self,
        req: Request<pb::UpdateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let (caller, cmd): (_, ProjectUpdate) = edge::accept(req)?;
        let core = &self.0;
        let r = core.get_id(cmd.id, kind::PROJECT).await?;
        let org = record_org(&r)?;
        let p = cmd.fields.parse(org, r.id.0)?;
        core.authorize(&caller, RecordKind::Project, Step::Edit, &org)
            .await?;
        let (_, state, _) = fold(core, &r)?;
        if !matches!(state.stage, Stage::Collected | Stage::Candidate) {
            return Err(Error::precondition(
                "stage",
                format!(
                    "a project can be edited only before the vote; it is {:?}",
                    state.stage
                ),
                format!(
                    "项目处于“{}”阶段，票决后不能修改，重大调整须有决定",
                    state.stage.label_zh()
                ),
            )
            .into());
        }
        core.save_form(
            &caller,
            r.id.0,
            kind::PROJECT,
            vec![
                Pending::Put("year", Value::Int(i64::from(p.year))),
                Pending::Put("title", Value::Text(p.title.clone())),
                Pending::Put("summary", text_value(p.summary.clone())),
                Pending::Put("budget_fen", Value::Int(p.budget_fen)),
            ],
            &cmd.read,
        )
        .await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(r.id.0, kind::PROJECT).await?,
        )?))
    }

    async fn get_project(
        &self,
        req: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let ById(id) = ById::try_from(req.into_inner())?;
        let r = self.0.get_id(id, kind::PROJECT).await?;
        Ok(Response::new(to_pb(&self.0, &r)?))
    }

    async fn list_projects(
        &self,
        req: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let cmd = ProjectList::try_from(req.into_inner())?;
        let org = match cmd.org {
            Some(org) => org,
            None => self.0.default_org()?,
        };
        self.0.require_reach("org", &org).await?;
        let records = match cmd.session {
            // A session's candidate list is short; it is filtered, then paged.
            Some(session) => self
                .0
                .list(kind::PROJECT, Some(&org))
                .await?
                .into_iter()
                .filter(|r| ref_id(r, "session") == Some(session))
                .skip(usize::try_from(cmd.offset).unwrap_or(usize::MAX))
                .take(cmd.limit as usize)
                .collect(),
            None => {
                self.0
                    .page(kind::PROJECT, &org, cmd.limit, cmd.offset)
                    .await?
            }
        };
        let projects = records
            .iter()
            .map(|r| to_pb(&self.0, r))
            .collect::<Result<_>>()?;
        Ok(Response::new(pb::ListProjectsResponse { projects }))
    }

    async fn screen_project(
        &self,
        req: Request<pb::ScreenProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let (caller, cmd): (_, Screening) = edge::accept(req)?;
        let core = &self.0;
        let r = core.get_id(cmd.project, kind::PROJECT).await?;
        let org = record_org(&r)?;
        let permit = core.permit::<Event>(&caller, org, Step::Screen).await?;
        let (_, state, _) = fold(core, &r)?;
        let mut changes = Vec::new();
        let event = match cmd.session {
            None => Event::ScreenedOut { at: cmd.at },
            Some(session) => {
                let session = core.get_id(session, kind::CONGRESS_SESSION).await?;
                if session.org != r.org {
                    return Err(Error::invalid(
                        "session_id",
                        "the session belongs to another congress",
                        "该会议不属于本级人大",
                    )
                    .into());
                }
                changes.push(Pending::Put("session", reference(session.id.0)));
                Event::Shortlisted { at: cmd.at }
            }
        };
        proj::check(&state, &event).map_err(Error::from)?;
        permit.take(r.id.0, &[event], changes).await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(r.id.0, kind::PROJECT).await?,
        )?))
    }

    async fn cast_ballot(
        &self,
        req: Request<pb::CastBallotRequest>,
    ) -> Result<Response<pb::CastBallotResponse>, Status> {
        let (caller, cmd): (_, CastBallot) = edge::accept(req)?;
        let core = &self.0;
        let r = core.get_id(cmd.project, kind::PROJECT).await?;
        let org = record_org(&r)?;
        let session_id = ref_id(&r, "session").unwrap_or_default();
        let ballot = Event::Ballot {
            deputy: cmd.deputy,
            session: session_id,
            choice: cmd.choice,
        };
        let permit = core.permit::<Event>(&caller, org, ballot.step()).await?;
        let (_, state, events) = fold(core, &r)?;
        if state.stage != Stage::Candidate {
            return Err(Error::precondition(
                "project_id",
                "ballots are cast only for candidates before the vote is recorded",
                "只能对尚未公布票决结果的候选项目投票",
            )
            .into());
        }
        let session = core.get_id(session_id, kind::CONGRESS_SESSION).await?;
        if !set(&session, "seated").contains(&cmd.deputy) {
            return Err(not_seated().into());
        }
        if events
            .iter()
            .any(|e| matches!(e.event, Event::Ballot { deputy, .. } if deputy == cmd.deputy))
        {
            return Err(Error::precondition(
                "deputy_id",
                "this deputy's ballot for this project is already recorded",
                "该代表对此项目的选票已录入",
            )
            .into());
        }
        permit.take(r.id.0, &[ballot], vec![]).await?;
        Ok(Response::new(pb::CastBallotResponse {}))
    }

    async fn tally_vote(
        &self,
        req: Request<pb::TallyVoteRequest>,
    ) -> Result<Response<pb::TallyVoteResponse>, Status> {
        // Counting alone reads; only recording the outcome needs a person.
        let req_caller = if req.get_ref().record_outcome {
            Some(caller(&req)?)
        } else {
            None
        };
        let cmd = Tally::try_from(req.into_inner())?;
        let core = &self.0;
        let session = core.get_id(cmd.session, kind::CONGRESS_SESSION).await?;
        let (candidates, ballots) = candidates_and_ballots(core, &session).await?;
        let ids: BTreeSet<Uuid> = candidates.iter().map(|(r, _)| r.id.0).collect();
        let seated: BTreeSet<Uuid> = set(&session, "seated").into_iter().collect();
        let present: BTreeSet<Uuid> = set(&session, "present").into_iter().collect();
        let tally = proj::tally(&ballots, &ids, &seated, &present, &rules(&session))
            .map_err(Error::from)?;
        if let Some(caller) = req_caller {
            let org = record_org(&session)?;
            let permit = core.permit::<Event>(&caller, org, Step::Vote).await?;
            for (r, stage) in &candidates {
                if *stage != Stage::Candidate || tally.runoff.contains(&r.id.0) {
                    continue;
                }
                let voted = Event::Voted {
                    adopted: tally.adopted.contains(&r.id.0),
                    at: cmd.at,
                };
                permit.take(r.id.0, &[voted], vec![]).await?;
            }
        }
        let mut repeated_ballots = Vec::with_capacity(tally.repeated.len());
        for b in &tally.repeated {
            let deputy_name = match core.get_id(b.deputy, kind::DEPUTY).await {
                Ok(d) => text(&d, "name"),
                Err(_) => String::new(),
            };
            repeated_ballots.push(pb::RepeatedBallot {
                deputy_id: b.deputy.to_string(),
                deputy_name,
                project_id: b.candidate.to_string(),
                counted: b.counted.wire(),
                times_recorded: b.times,
                differing_choices: b.differing,
            });
        }
        let ids = |v: &[Uuid]| v.iter().map(Uuid::to_string).collect();
        Ok(Response::new(pb::TallyVoteResponse {
            repeated_ballots,
            counts: tally
                .counts
                .iter()
                .map(|(id, c)| pb::CandidateCount {
                    project_id: id.to_string(),
                    votes_for: c.votes_for,
                    against: c.against,
                    abstain: c.abstain,
                })
                .collect(),
            base: tally.base,
            adopted: ids(&tally.adopted),
            not_adopted: ids(&tally.not_adopted),
            runoff: ids(&tally.runoff),
            duplicates: u32::try_from(tally.duplicates.len()).unwrap_or(u32::MAX),
            conflicts: u32::try_from(tally.conflicts.len()).unwrap_or(u32::MAX),
            ignored: u32::try_from(tally.ignored.len()).unwrap_or(u32::MAX),
        }))
    }

    async fn set_plan(
        &self,
        req: Request<pb::SetPlanRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        self.accept_step(req).await
    }

    async fn report_progress(
        &self,
        req: Request<pb::ReportProgressRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        self.accept_step(req).await
    }

    async fn sign_acceptance(
        &self,
        req: Request<pb::DeputyStepRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let (caller, cmd): (_, DeputyStep) = edge::accept(req)?;
        let event = Event::AcceptanceSigned {
            deputy: cmd.deputy,
            at: cmd.at,
        };
        Ok(Response::new(
            self.project_step(&caller, cmd.project, event).await?,
        ))
    }

    async fn sign_acceptance_as_voter(
        &self,
        req: Request<pb::SignAcceptanceAsVoterRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        self.accept_step(req).await
    }

    async fn pass_acceptance(
        &self,
        req: Request<pb::ProjectStepRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        self.accept_step(req).await
    }

    async fn score_project(
        &self,
        req: Request<pb::ScoreProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        self.accept_step(req).await
    }

    async fn change_project(
        &self,
        req: Request<pb::ChangeProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        self.accept_step(req).await
    }

    async fn adopt_for_supervision(
        &self,
        req: Request<pb::AdoptForSupervisionRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        // Each supervision group adopts one or two projects (Longwan's practice).
        const MAX_PER_GROUP: usize = 2;
        let (caller, cmd): (_, Supervision) = edge::accept(req)?;
        let core = &self.0;
        let project = core.get_id(cmd.project, kind::PROJECT).await?;
        let group = core.get_id(cmd.group, kind::DEPUTY_GROUP).await?;
        let org = record_org(&project)?;
        if !org.contains(record_org(&group)?) {
            return Err(Error::invalid(
                "group_id",
                "the group is not in the project's congress",
                "该代表小组不属于本级人大",
            )
            .into());
        }
        let year = int(&project, "year");
        let mut adopted = 0;
        for r in core.list(kind::PROJECT, Some(&org)).await? {
            if r.id == project.id || int(&r, "year") != year {
                continue;
            }
            let (_, state, _) = fold(core, &r)?;
            if state.supervision_groups.contains(&group.id.0) {
                adopted += 1;
            }
        }
        if adopted >= MAX_PER_GROUP {
            return Err(Error::precondition(
                "group_id",
                format!("the group already supervises {adopted} projects of {year}"),
                format!("该代表小组已认领{year}年度{adopted}个项目，每组认领1至2个"),
            )
            .into());
        }
        let event = Event::SupervisionAdopted {
            group: group.id.0,
            at: cmd.at,
        };
        Ok(Response::new(
            self.project_step(&caller, cmd.project, event).await?,
        ))
    }

    async fn start_maintenance(
        &self,
        req: Request<pb::DeputyStepRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let (caller, cmd): (_, DeputyStep) = edge::accept(req)?;
        let deputy = self.0.get_id(cmd.deputy, kind::DEPUTY).await?;
        let event = Event::MaintenanceStarted {
            caretaker: deputy.id.0,
            at: cmd.at,
        };
        Ok(Response::new(
            self.project_step(&caller, cmd.project, event).await?,
        ))
    }

    async fn record_maintenance(
        &self,
        req: Request<pb::RecordMaintenanceRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let (caller, cmd): (_, Visit) = edge::accept(req)?;
        let core = &self.0;
        let r = core.get_id(cmd.project, kind::PROJECT).await?;
        let deputy = core.get_id(cmd.deputy, kind::DEPUTY).await?;
        let visit = Event::MaintenanceVisit {
            deputy: deputy.id.0,
            note: cmd.note,
            volunteer_points: cmd.volunteer_points,
            at: cmd.at,
        };
        let org = record_org(&r)?;
        let permit = core.permit::<Event>(&caller, org, visit.step()).await?;
        let (_, state, _) = fold(core, &r)?;
        if state.stage != Stage::Maintained {
            return Err(Error::precondition(
                "stage",
                format!(
                    "maintenance is recorded once the project is in maintenance; it is {:?}",
                    state.stage
                ),
                format!(
                    "项目处于“{}”阶段，进入管护后才能记录管护",
                    state.stage.label_zh()
                ),
            )
            .into());
        }
        permit.take(r.id.0, &[visit], vec![]).await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(r.id.0, kind::PROJECT).await?,
        )?))
    }
}
