//! `renda.project.v1.Projects`: congress sessions with their voting measures, livelihood
//! projects from collection to maintenance, ballots and the tally.
//!
//! A ballot is an event on the project it is for (the candidate), written at the congress's
//! node. The tally reads every ballot of the session's candidates and counts with the domain's
//! `tally`: the same ballot recorded on two replicas is listed as a duplicate and counted once.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use renda_domain::authority::{RecordKind, Step};
use renda_domain::event::Stamped;
use renda_domain::project::{
    self as proj, Ballot, Change, Choice, Decision, DecisionBody, Event, Stage, Threshold,
    VotingRules,
};
use renda_proto::project::v1 as pb;
use renda_replica::Value;
use renda_store::StoredRecord;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::error::{Error, Result};
use crate::schema::kind;

pub(crate) struct Service(pub Shared);

const CHOICES: [(&str, Choice); 3] = [
    ("for", Choice::For),
    ("against", Choice::Against),
    ("abstain", Choice::Abstain),
];

const CHANGES: [(&str, Change); 4] = [
    ("major", Change::Major),
    ("suspension", Change::Suspension),
    ("resumption", Change::Resumption),
    ("termination", Change::Termination),
];

const BODIES: [(&str, DecisionBody); 3] = [
    ("standing_committee", DecisionBody::StandingCommittee),
    ("township_congress", DecisionBody::TownshipCongress),
    ("township_presidium", DecisionBody::TownshipPresidium),
];

fn lookup<T: Copy>(table: &[(&str, T)], raw: &str) -> Option<T> {
    table
        .iter()
        .find(|(n, _)| *n == raw.trim())
        .map(|(_, v)| *v)
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Collected => "collected",
        Stage::Candidate => "candidate",
        Stage::NotShortlisted => "not_shortlisted",
        Stage::Adopted => "adopted",
        Stage::NotAdopted => "not_adopted",
        Stage::Implementing => "implementing",
        Stage::Suspended => "suspended",
        Stage::Terminated => "terminated",
        Stage::Accepted => "accepted",
        Stage::Evaluated => "evaluated",
        Stage::Maintained => "maintained",
    }
}

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

fn domain_event(e: &Ev) -> Option<Event> {
    let at = e.date("on");
    Some(match e.name.as_str() {
        "shortlisted" => Event::Shortlisted { at },
        "screened_out" => Event::ScreenedOut { at },
        "voted" => Event::Voted {
            adopted: e.bool("adopted"),
            at,
        },
        "plan_set" => Event::PlanSet {
            budget_fen: e.int("budget_fen"),
            at,
        },
        "progress" => Event::Progress {
            percent: u8::try_from(e.int("percent")).unwrap_or(u8::MAX),
            note: e.text("note"),
            at,
        },
        "supervision_adopted" => Event::SupervisionAdopted {
            group: e.id("group"),
            at,
        },
        "acceptance_signed" => Event::AcceptanceSigned {
            deputy: e.id("deputy"),
            at,
        },
        "acceptance_passed" => Event::AcceptancePassed { at },
        "scored" => Event::Scored {
            deputy: e.id("deputy"),
            score: u8::try_from(e.int("score")).unwrap_or(u8::MAX),
            at,
        },
        "maintenance_started" => Event::MaintenanceStarted {
            caretaker: e.id("caretaker"),
            at,
        },
        "changed" => {
            let body = lookup(&BODIES, &e.text("decision_body"));
            Event::Changed {
                change: lookup(&CHANGES, &e.text("change"))?,
                decision: body.map(|body| Decision {
                    body,
                    reference: e.text("decision_reference"),
                    decided_on: e.date("decided_on"),
                }),
                note: e.text("note"),
                at,
            }
        }
        _ => return None,
    })
}

fn fold(core: &Core, r: &StoredRecord) -> Result<(proj::Project, proj::State, Vec<Ev>)> {
    let p = domain_project(r)?;
    let events = core.events(r)?;
    let stamped: Vec<Stamped<Event>> = events
        .iter()
        .filter_map(|e| domain_event(e).map(|ev| Stamped::new(e.stamp, ev)))
        .collect();
    let state = proj::fold(&p, &stamped);
    Ok((p, state, events))
}

fn to_pb(core: &Core, r: &StoredRecord) -> Result<pb::Project> {
    let (p, state, events) = fold(core, r)?;
    let caretaker = events
        .iter()
        .filter(|e| e.name == "maintenance_started")
        .max_by_key(|e| e.stamp)
        .map(|e| e.id("caretaker").to_string())
        .unwrap_or_default();
    let mut visits: Vec<&Ev> = events
        .iter()
        .filter(|e| e.name == "maintenance_visit")
        .collect();
    visits.sort_by_key(|e| e.stamp);
    Ok(pb::Project {
        id: r.id.to_string(),
        congress: p.congress.to_string(),
        year: p.year,
        title: p.title,
        summary: p.summary,
        budget_fen: state.budget_fen,
        session_id: ref_id(r, "session")
            .map(|s| s.to_string())
            .unwrap_or_default(),
        stage: stage_name(state.stage).into(),
        stage_zh: state.stage.label_zh().into(),
        progress: u32::from(state.progress),
        signatures: state.signatures.iter().map(Uuid::to_string).collect(),
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
            .map(|e| pb::MaintenanceVisit {
                deputy_id: e.id("deputy").to_string(),
                on: day_string(e.date("on")),
                note: e.text("note"),
                volunteer_points: u32::try_from(e.int("volunteer_points")).unwrap_or_default(),
            })
            .collect(),
    })
}

fn session_pb(r: &StoredRecord) -> pb::Session {
    pb::Session {
        id: r.id.to_string(),
        congress: org_string(r),
        name: text(r, "name"),
        year: i32::try_from(int(r, "year")).unwrap_or_default(),
        to_adopt: u32::try_from(int(r, "to_adopt")).unwrap_or_default(),
        threshold: text(r, "threshold"),
        candidate_margin: u32::try_from(int(r, "candidate_margin")).unwrap_or_default(),
        seated: set(r, "seated").iter().map(Uuid::to_string).collect(),
        present: set(r, "present").iter().map(Uuid::to_string).collect(),
    }
}

fn rules(r: &StoredRecord) -> VotingRules {
    VotingRules {
        to_adopt: u32::try_from(int(r, "to_adopt")).unwrap_or_default(),
        threshold: if text(r, "threshold") == "present" {
            Threshold::MajorityOfPresent
        } else {
            Threshold::MajorityOfSeated
        },
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
        if !events.iter().any(|e| e.name == "shortlisted") {
            continue;
        }
        for e in events.iter().filter(|e| e.name == "ballot") {
            if e.id("session") != session.id.0 {
                continue;
            }
            let Some(choice) = lookup(&CHOICES, &e.text("choice")) else {
                continue;
            };
            ballots.push(Stamped::new(
                e.stamp,
                Ballot {
                    deputy: e.id("deputy"),
                    candidate: r.id.0,
                    choice,
                },
            ));
        }
        candidates.push((r, state.stage));
    }
    Ok((candidates, ballots))
}

impl Service {
    async fn project_step(
        &self,
        caller: &Caller,
        id: &str,
        step: Step,
        event: Event,
        name: &'static str,
        fields: Vec<(&'static str, Value)>,
    ) -> Result<pb::Project> {
        let core = &self.0;
        let r = core.get("project_id", id, kind::PROJECT).await?;
        let org = record_org(&r)?;
        core.authorize(caller, RecordKind::Project, step, &org)
            .await?;
        let (_, state, _) = fold(core, &r)?;
        proj::check(&state, &event)?;
        core.write(
            caller,
            r.id.0,
            kind::PROJECT,
            vec![Pending::Event(name, org, fields)],
        )
        .await?;
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

fn on(raw: &str) -> Result<NaiveDate> {
    parse_day("on", raw)
}

#[tonic::async_trait]
impl pb::projects_server::Projects for Service {
    async fn create_session(
        &self,
        req: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        limit("name", &req.name, 400)?;
        let name = renda_domain::text::bounded("name", &req.name, 2, 100).map_err(Error::from)?;
        let threshold = match req.threshold.trim() {
            "seated" | "" => "seated",
            "present" => "present",
            _ => {
                return Err(Error::invalid(
                    "threshold",
                    "must be seated or present",
                    "通过基数须为全体代表或出席代表",
                )
                .into());
            }
        };
        if req.to_adopt > 1000 || req.candidate_margin > 1000 {
            return Err(Error::invalid("to_adopt", "at most 1000", "不得超过1000").into());
        }
        let rules = VotingRules {
            to_adopt: req.to_adopt,
            threshold: Threshold::MajorityOfSeated,
            candidate_margin: req.candidate_margin,
        };
        rules.validate().map_err(Error::from)?;
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
                Pending::Put("name", Value::Text(name)),
                Pending::Put("year", Value::Int(i64::from(req.year))),
                Pending::Put("to_adopt", Value::Int(i64::from(req.to_adopt))),
                Pending::Put("threshold", Value::Text(threshold.into())),
                Pending::Put(
                    "candidate_margin",
                    Value::Int(i64::from(req.candidate_margin)),
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
        let r = self
            .0
            .get("id", &req.get_ref().id, kind::CONGRESS_SESSION)
            .await?;
        Ok(Response::new(session_pb(&r)))
    }

    async fn set_seated(
        &self,
        req: Request<pb::SetSeatedRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let r = self
            .0
            .get("session_id", &req.session_id, kind::CONGRESS_SESSION)
            .await?;
        let add = parse_ids("add", &req.add, 5000)?;
        let remove = parse_ids("remove", &req.remove, 5000)?;
        let mut changes: Vec<Pending> =
            add.into_iter().map(|d| Pending::Add("seated", d)).collect();
        changes.extend(remove.into_iter().map(|d| Pending::Remove("seated", d)));
        Ok(Response::new(
            self.session_write(&caller, &r, changes).await?,
        ))
    }

    async fn sign_in(
        &self,
        req: Request<pb::SignInRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let r = self
            .0
            .get("session_id", &req.session_id, kind::CONGRESS_SESSION)
            .await?;
        let deputy = parse_id("deputy_id", &req.deputy_id)?;
        if !set(&r, "seated").contains(&deputy) {
            return Err(Error::precondition(
                "deputy_id",
                "the deputy is not seated at this session",
                "该代表不是本次会议的出席代表",
            )
            .into());
        }
        Ok(Response::new(
            self.session_write(&caller, &r, vec![Pending::Add("present", deputy)])
                .await?,
        ))
    }

    async fn create_project(
        &self,
        req: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        limit("title", &req.title, 400)?;
        limit("summary", &req.summary, 5000)?;
        let org = core.node_org()?;
        let p = proj::Project::parse(
            proj::ProjectDraft {
                congress: org.to_string(),
                year: req.year,
                title: req.title,
                summary: req.summary,
                budget_fen: req.budget_fen,
            },
            new_id(),
        )
        .map_err(Error::from)?;
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
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        limit("title", &req.title, 400)?;
        limit("summary", &req.summary, 5000)?;
        let r = core.get("id", &req.id, kind::PROJECT).await?;
        let org = record_org(&r)?;
        let p = proj::Project::parse(
            proj::ProjectDraft {
                congress: org.to_string(),
                year: req.year,
                title: req.title,
                summary: req.summary,
                budget_fen: req.budget_fen,
            },
            r.id.0,
        )
        .map_err(Error::from)?;
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
        core.write(
            &caller,
            r.id.0,
            kind::PROJECT,
            vec![
                Pending::Put("year", Value::Int(i64::from(p.year))),
                Pending::Put("title", Value::Text(p.title.clone())),
                Pending::Put("summary", text_value(p.summary.clone())),
                Pending::Put("budget_fen", Value::Int(p.budget_fen)),
            ],
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
        let r = self.0.get("id", &req.get_ref().id, kind::PROJECT).await?;
        Ok(Response::new(to_pb(&self.0, &r)?))
    }

    async fn list_projects(
        &self,
        req: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let req = req.into_inner();
        let org = parse_org("org", &req.org, &self.0.default_org()?)?;
        self.0.require_reach("org", &org)?;
        let session = if req.session_id.trim().is_empty() {
            None
        } else {
            Some(parse_id("session_id", &req.session_id)?)
        };
        let limit = page_limit(req.limit)?;
        let records = match session {
            // A session's candidate list is short; it is filtered, then paged.
            Some(session) => self
                .0
                .list(kind::PROJECT, Some(&org))
                .await?
                .into_iter()
                .filter(|r| ref_id(r, "session") == Some(session))
                .skip(usize::try_from(req.offset).unwrap_or(usize::MAX))
                .take(limit as usize)
                .collect(),
            None => self.0.page(kind::PROJECT, &org, limit, req.offset).await?,
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
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let at = on(&req.on)?;
        let r = core
            .get("project_id", &req.project_id, kind::PROJECT)
            .await?;
        let org = record_org(&r)?;
        core.authorize(&caller, RecordKind::Project, Step::Screen, &org)
            .await?;
        let (_, state, _) = fold(core, &r)?;
        let mut changes = Vec::new();
        let event = if req.session_id.trim().is_empty() {
            Event::ScreenedOut { at }
        } else {
            let session = core
                .get("session_id", &req.session_id, kind::CONGRESS_SESSION)
                .await?;
            if session.org != r.org {
                return Err(Error::invalid(
                    "session_id",
                    "the session belongs to another congress",
                    "该会议不属于本级人大",
                )
                .into());
            }
            changes.push(Pending::Put("session", reference(session.id.0)));
            Event::Shortlisted { at }
        };
        proj::check(&state, &event).map_err(Error::from)?;
        let name = match event {
            Event::Shortlisted { .. } => "shortlisted",
            _ => "screened_out",
        };
        changes.push(Pending::Event(name, org, vec![("on", date_value(at))]));
        core.write(&caller, r.id.0, kind::PROJECT, changes).await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(r.id.0, kind::PROJECT).await?,
        )?))
    }

    async fn cast_ballot(
        &self,
        req: Request<pb::CastBallotRequest>,
    ) -> Result<Response<pb::CastBallotResponse>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let r = core
            .get("project_id", &req.project_id, kind::PROJECT)
            .await?;
        let deputy = parse_id("deputy_id", &req.deputy_id)?;
        let choice = lookup(&CHOICES, &req.choice).ok_or_else(|| {
            Error::invalid(
                "choice",
                "must be for, against or abstain",
                "须为赞成、反对或弃权",
            )
        })?;
        let org = record_org(&r)?;
        core.authorize(&caller, RecordKind::Project, Step::Vote, &org)
            .await?;
        let (_, state, events) = fold(core, &r)?;
        if state.stage != Stage::Candidate {
            return Err(Error::precondition(
                "project_id",
                "ballots are cast only for candidates before the vote is recorded",
                "只能对尚未公布票决结果的候选项目投票",
            )
            .into());
        }
        let session_id = ref_id(&r, "session").unwrap_or_default();
        let session = core.get_id(session_id, kind::CONGRESS_SESSION).await?;
        if !set(&session, "seated").contains(&deputy) {
            return Err(Error::precondition(
                "deputy_id",
                "the deputy is not seated at this session",
                "该代表不是本次会议的出席代表",
            )
            .into());
        }
        if events
            .iter()
            .any(|e| e.name == "ballot" && e.id("deputy") == deputy)
        {
            return Err(Error::precondition(
                "deputy_id",
                "this deputy's ballot for this project is already recorded",
                "该代表对此项目的选票已录入",
            )
            .into());
        }
        let choice_name = CHOICES
            .iter()
            .find(|(_, c)| *c == choice)
            .map(|(n, _)| *n)
            .unwrap_or_default();
        core.write(
            &caller,
            r.id.0,
            kind::PROJECT,
            vec![Pending::Event(
                "ballot",
                org,
                vec![
                    ("deputy", reference(deputy)),
                    ("session", reference(session_id)),
                    ("choice", Value::Text(choice_name.into())),
                ],
            )],
        )
        .await?;
        Ok(Response::new(pb::CastBallotResponse {}))
    }

    async fn tally_vote(
        &self,
        req: Request<pb::TallyVoteRequest>,
    ) -> Result<Response<pb::TallyVoteResponse>, Status> {
        let req_caller = if req.get_ref().record_outcome {
            Some(caller(&req)?)
        } else {
            None
        };
        let req = req.into_inner();
        let core = &self.0;
        let at = on(&req.on)?;
        let session = core
            .get("session_id", &req.session_id, kind::CONGRESS_SESSION)
            .await?;
        let (candidates, ballots) = candidates_and_ballots(core, &session).await?;
        let ids: BTreeSet<Uuid> = candidates.iter().map(|(r, _)| r.id.0).collect();
        let seated: BTreeSet<Uuid> = set(&session, "seated").into_iter().collect();
        let present: BTreeSet<Uuid> = set(&session, "present").into_iter().collect();
        let tally = proj::tally(&ballots, &ids, &seated, &present, &rules(&session))
            .map_err(Error::from)?;
        if let Some(caller) = req_caller {
            let org = record_org(&session)?;
            core.authorize(&caller, RecordKind::Project, Step::Vote, &org)
                .await?;
            for (r, stage) in &candidates {
                if *stage != Stage::Candidate || tally.runoff.contains(&r.id.0) {
                    continue;
                }
                let adopted = tally.adopted.contains(&r.id.0);
                core.write(
                    &caller,
                    r.id.0,
                    kind::PROJECT,
                    vec![Pending::Event(
                        "voted",
                        org,
                        vec![("on", date_value(at)), ("adopted", Value::Bool(adopted))],
                    )],
                )
                .await?;
            }
        }
        let ids = |v: &[Uuid]| v.iter().map(Uuid::to_string).collect();
        Ok(Response::new(pb::TallyVoteResponse {
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
        let caller = caller(&req)?;
        let req = req.into_inner();
        let at = on(&req.on)?;
        Ok(Response::new(
            self.project_step(
                &caller,
                &req.project_id,
                Step::Progress,
                Event::PlanSet {
                    budget_fen: req.budget_fen,
                    at,
                },
                "plan_set",
                vec![
                    ("on", date_value(at)),
                    ("budget_fen", Value::Int(req.budget_fen)),
                ],
            )
            .await?,
        ))
    }

    async fn report_progress(
        &self,
        req: Request<pb::ReportProgressRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let at = on(&req.on)?;
        limit("note", &req.note, 2000)?;
        let percent = u8::try_from(req.percent).unwrap_or(u8::MAX);
        Ok(Response::new(
            self.project_step(
                &caller,
                &req.project_id,
                Step::Progress,
                Event::Progress {
                    percent,
                    note: req.note.clone(),
                    at,
                },
                "progress",
                vec![
                    ("on", date_value(at)),
                    ("percent", Value::Int(i64::from(req.percent))),
                    ("note", text_value(req.note.trim())),
                ],
            )
            .await?,
        ))
    }

    async fn sign_acceptance(
        &self,
        req: Request<pb::DeputyStepRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let at = on(&req.on)?;
        let deputy = parse_id("deputy_id", &req.deputy_id)?;
        Ok(Response::new(
            self.project_step(
                &caller,
                &req.project_id,
                Step::SignAcceptance,
                Event::AcceptanceSigned { deputy, at },
                "acceptance_signed",
                vec![("on", date_value(at)), ("deputy", reference(deputy))],
            )
            .await?,
        ))
    }

    async fn pass_acceptance(
        &self,
        req: Request<pb::ProjectStepRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let at = on(&req.on)?;
        Ok(Response::new(
            self.project_step(
                &caller,
                &req.project_id,
                Step::SignAcceptance,
                Event::AcceptancePassed { at },
                "acceptance_passed",
                vec![("on", date_value(at))],
            )
            .await?,
        ))
    }

    async fn score_project(
        &self,
        req: Request<pb::ScoreProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let at = on(&req.on)?;
        let deputy = parse_id("deputy_id", &req.deputy_id)?;
        let score = u8::try_from(req.score).unwrap_or(u8::MAX);
        Ok(Response::new(
            self.project_step(
                &caller,
                &req.project_id,
                Step::Evaluate,
                Event::Scored { deputy, score, at },
                "scored",
                vec![
                    ("on", date_value(at)),
                    ("deputy", reference(deputy)),
                    ("score", Value::Int(i64::from(req.score))),
                ],
            )
            .await?,
        ))
    }

    async fn change_project(
        &self,
        req: Request<pb::ChangeProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let at = on(&req.on)?;
        limit("note", &req.note, 2000)?;
        limit("decision_reference", &req.decision_reference, 200)?;
        let change = lookup(&CHANGES, &req.change)
            .ok_or_else(|| Error::invalid("change", "unknown change", "调整类型无效"))?;
        let decision = if req.decision_body.trim().is_empty() {
            None
        } else {
            let body = lookup(&BODIES, &req.decision_body)
                .ok_or_else(|| Error::invalid("decision_body", "unknown body", "决定机关无效"))?;
            Some(Decision {
                body,
                reference: req.decision_reference.trim().to_owned(),
                decided_on: parse_day("decided_on", &req.decided_on)?,
            })
        };
        let mut fields = vec![
            ("on", date_value(at)),
            ("change", Value::Text(req.change.trim().to_owned())),
            ("note", text_value(req.note.trim())),
        ];
        if let Some(d) = &decision {
            fields.push((
                "decision_body",
                Value::Text(req.decision_body.trim().to_owned()),
            ));
            fields.push(("decision_reference", Value::Text(d.reference.clone())));
            fields.push(("decided_on", date_value(d.decided_on)));
        }
        Ok(Response::new(
            self.project_step(
                &caller,
                &req.project_id,
                Step::Change,
                Event::Changed {
                    change,
                    decision,
                    note: req.note.trim().to_owned(),
                    at,
                },
                "changed",
                fields,
            )
            .await?,
        ))
    }

    async fn adopt_for_supervision(
        &self,
        req: Request<pb::AdoptForSupervisionRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        // Each supervision group adopts one or two projects (Longwan's practice).
        const MAX_PER_GROUP: usize = 2;
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let at = on(&req.on)?;
        let project = core
            .get("project_id", &req.project_id, kind::PROJECT)
            .await?;
        let group = core
            .get("group_id", &req.group_id, kind::DEPUTY_GROUP)
            .await?;
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
        Ok(Response::new(
            self.project_step(
                &caller,
                &req.project_id,
                Step::Supervise,
                Event::SupervisionAdopted {
                    group: group.id.0,
                    at,
                },
                "supervision_adopted",
                vec![("on", date_value(at)), ("group", reference(group.id.0))],
            )
            .await?,
        ))
    }

    async fn start_maintenance(
        &self,
        req: Request<pb::DeputyStepRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let at = on(&req.on)?;
        let deputy = self
            .0
            .get("deputy_id", &req.deputy_id, kind::DEPUTY)
            .await?;
        Ok(Response::new(
            self.project_step(
                &caller,
                &req.project_id,
                Step::Progress,
                Event::MaintenanceStarted {
                    caretaker: deputy.id.0,
                    at,
                },
                "maintenance_started",
                vec![
                    ("on", date_value(at)),
                    ("caretaker", reference(deputy.id.0)),
                ],
            )
            .await?,
        ))
    }

    async fn record_maintenance(
        &self,
        req: Request<pb::RecordMaintenanceRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let at = on(&req.on)?;
        limit("note", &req.note, 2000)?;
        let note =
            renda_domain::text::optional("note", Some(&req.note), 500).map_err(Error::from)?;
        if req.volunteer_points > 100 {
            return Err(Error::invalid(
                "volunteer_points",
                format!("must be 0 to 100, got {}", req.volunteer_points),
                format!("志愿积分须在0至100之间，实际为{}", req.volunteer_points),
            )
            .into());
        }
        let r = core
            .get("project_id", &req.project_id, kind::PROJECT)
            .await?;
        let deputy = core.get("deputy_id", &req.deputy_id, kind::DEPUTY).await?;
        let org = record_org(&r)?;
        core.authorize(&caller, RecordKind::Project, Step::Progress, &org)
            .await?;
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
        core.write(
            &caller,
            r.id.0,
            kind::PROJECT,
            vec![Pending::Event(
                "maintenance_visit",
                org,
                vec![
                    ("on", date_value(at)),
                    ("deputy", reference(deputy.id.0)),
                    ("note", text_value(note.unwrap_or_default())),
                    (
                        "volunteer_points",
                        Value::Int(i64::from(req.volunteer_points)),
                    ),
                ],
            )],
        )
        .await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(r.id.0, kind::PROJECT).await?,
        )?))
    }
}
