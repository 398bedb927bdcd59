//! `renda.station.v1.Stations`: 代表之家、联络站、联络点, their 八有四公开 checklist, resident
//! deputies (an add-wins set) and reception days. Station kinds and checklist items travel as
//! the proto enums mapped here to the domain's.

use renda_domain::authority::Step;
use renda_domain::org::OrgCode;
use renda_domain::record::Coded;
use renda_domain::station::{self as st, Checklist, ChecklistItem, StationKind};
use renda_proto::station::v1 as pb;
use renda_replica::{Value, Version};
use renda_store::StoredRecord;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::edge::{self, Wire, wire};
use crate::error::{Error, Result};
use crate::gate::{DEPUTY, READ, STAFF, ServiceAccess, roles};
use crate::schema::kind;

pub(crate) struct Service(pub Shared);

wire!(StationKind => pb::StationKind {
    Home <=> Home,
    Station <=> Station,
    Point <=> Point,
    Online <=> Online,
    LegislativeContactPoint <=> LegislativeContactPoint,
});

wire!(ChecklistItem => pb::ChecklistItem {
    Premises <=> Premises,
    Information <=> Information,
    Rules <=> Rules,
    Plan <=> Plan,
    Files <=> Files,
    Materials <=> Materials,
    Equipment <=> Equipment,
    OnlinePlatform <=> OnlinePlatform,
    DeputyInfoPublished <=> DeputyInfoPublished,
    ReceptionPlanPublished <=> ReceptionPlanPublished,
    WorkStatusPublished <=> WorkStatusPublished,
    OperationStatusPublished <=> OperationStatusPublished,
});

const KINDS_EN: &str = "home, station, point, online or legislative contact point";

fn to_pb(core: &Core, r: &StoredRecord) -> Result<pb::Station> {
    let checklist = Checklist {
        met: ChecklistItem::ALL
            .into_iter()
            .filter(|i| boolean(r, i.field_name()))
            .collect(),
    };
    let c = checklist.completeness();
    let receptions = core.domain_events::<st::Event>(r)?.len();
    Ok(pb::Station {
        version: r.version.encode(),
        id: r.id.to_string(),
        org: org_string(r),
        name: text(r, "name"),
        kind: StationKind::from_code(&text(r, "kind")).map_or(0, Wire::wire),
        address: text(r, "address"),
        checklist: checklist.met.iter().map(|i| i.wire()).collect(),
        has_met: c.has_met as u32,
        published_met: c.published_met as u32,
        complete: c.is_complete(),
        qr_token: text(r, "qr_token"),
        residents: set(r, "residents").iter().map(Uuid::to_string).collect(),
        receptions: receptions as u32,
    })
}

/// A station as entered (create and update alike), its values read but not yet validated
/// against the domain's rules.
struct Entered {
    name: String,
    kind: Option<StationKind>,
    address: String,
    checklist: Vec<ChecklistItem>,
}

impl Entered {
    fn read(name: String, kind: i32, address: String, checklist: &[i32]) -> Result<Self> {
        limit("name", &name, 200)?;
        limit("address", &address, 800)?;
        if checklist.len() > ChecklistItem::ALL.len() {
            return Err(Error::invalid("checklist", "at most 12 items", "最多12项"));
        }
        let checklist = checklist
            .iter()
            .map(|raw| edge::one_of("checklist", *raw, "an item of 八有四公开", "检查项无效"))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            name,
            kind: edge::optional_one_of("kind", kind, KINDS_EN, "站点类型无效")?,
            address,
            checklist,
        })
    }

    /// Validates it as the station `id` of `org`.
    fn parse(self, org: &OrgCode, id: Uuid) -> Result<st::Station> {
        Ok(st::Station::parse(
            st::StationDraft {
                name: self.name,
                kind: self.kind,
                org: org.to_string(),
                address: self.address,
                checklist: self.checklist,
            },
            id,
        )?)
    }
}

impl TryFrom<pb::CreateStationRequest> for Entered {
    type Error = Error;

    fn try_from(req: pb::CreateStationRequest) -> Result<Self> {
        Self::read(req.name, req.kind, req.address, &req.checklist)
    }
}

/// `UpdateStation`: the station and its new values.
struct Update {
    id: Uuid,
    entered: Entered,
    read: Version,
}

impl TryFrom<pb::UpdateStationRequest> for Update {
    type Error = Error;

    fn try_from(req: pb::UpdateStationRequest) -> Result<Self> {
        let id = parse_id("id", &req.id)?;
        Ok(Self {
            id,
            entered: Entered::read(req.name, req.kind, req.address, &req.checklist)?,
            read: edge::read_version(&req.version, id)?,
        })
    }
}

struct Get(Uuid);

impl TryFrom<pb::GetStationRequest> for Get {
    type Error = Error;

    fn try_from(req: pb::GetStationRequest) -> Result<Self> {
        Ok(Self(parse_id("id", &req.id)?))
    }
}

struct List {
    /// The node's default when the request names none.
    org: Option<OrgCode>,
    limit: u32,
    offset: u64,
}

impl TryFrom<pb::ListStationsRequest> for List {
    type Error = Error;

    fn try_from(req: pb::ListStationsRequest) -> Result<Self> {
        Ok(Self {
            org: optional_org("org", &req.org)?,
            limit: page_limit(req.limit)?,
            offset: req.offset,
        })
    }
}

struct Residents {
    station: Uuid,
    add: Vec<Uuid>,
    remove: Vec<Uuid>,
}

impl TryFrom<pb::SetResidentsRequest> for Residents {
    type Error = Error;

    fn try_from(req: pb::SetResidentsRequest) -> Result<Self> {
        Ok(Self {
            station: parse_id("station_id", &req.station_id)?,
            add: parse_ids("add", &req.add, 500)?,
            remove: parse_ids("remove", &req.remove, 500)?,
        })
    }
}

/// `RecordReception`: the station and the reception day.
struct Reception {
    station: Uuid,
    event: st::Event,
}

impl TryFrom<pb::RecordReceptionRequest> for Reception {
    type Error = Error;

    fn try_from(req: pb::RecordReceptionRequest) -> Result<Self> {
        let station = parse_id("station_id", &req.station_id)?;
        let deputies = parse_ids("deputy_ids", &req.deputy_ids, 100)?;
        if deputies.is_empty() {
            return Err(Error::invalid(
                "deputy_ids",
                "at least one deputy",
                "须至少一名代表",
            ));
        }
        let note =
            renda_domain::text::optional("note", Some(&req.note), 2000).map_err(Error::from)?;
        let on = edge::day("on", req.on)?;
        Ok(Self {
            station,
            event: st::Event::Reception { deputies, on, note },
        })
    }
}

/// The field writes of a validated station (unchanged values are skipped by the write path).
fn station_changes(station: &st::Station) -> Vec<Pending> {
    let mut changes = vec![
        Pending::Put("name", Value::Text(station.name.clone())),
        Pending::Put("kind", Value::Text(station.kind.code().into())),
        Pending::Put(
            "address",
            text_value(station.address.clone().unwrap_or_default()),
        ),
    ];
    for item in ChecklistItem::ALL {
        let met = station.checklist.met.contains(&item);
        changes.push(Pending::Put(item.field_name(), Value::Bool(met)));
    }
    changes
}

/// Which role may call each RPC of `renda.station.v1.Stations` (see [`crate::gate`]).
pub(crate) const ACCESS: ServiceAccess = ServiceAccess {
    service: pb::stations_server::SERVICE_NAME,
    rpcs: &[
        ("CreateStation", roles(STAFF)),
        ("UpdateStation", roles(STAFF)),
        ("GetStation", roles(READ)),
        ("ListStations", roles(READ)),
        ("SetResidents", roles(STAFF)),
        ("RecordReception", roles(STAFF.with(DEPUTY))),
    ],
};

#[tonic::async_trait]
impl pb::stations_server::Stations for Service {
    async fn create_station(
        &self,
        req: Request<pb::CreateStationRequest>,
    ) -> Result<Response<pb::Station>, Status> {
        let (caller, entered): (_, Entered) = edge::accept(req)?;
        let core = &self.0;
        let station = entered.parse(&core.node_org()?, new_id())?;
        core.authorize(&caller, st::KIND.governed_as, Step::Edit, &station.org)
            .await?;
        let mut changes = vec![
            Pending::Put("org", Value::Org(station.org)),
            Pending::Put("qr_token", Value::Text(new_token())),
        ];
        changes.extend(station_changes(&station));
        core.write(&caller, station.id, kind::STATION, changes)
            .await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(station.id, kind::STATION).await?,
        )?))
    }

    async fn update_station(
        &self,
        req: Request<pb::UpdateStationRequest>,
    ) -> Result<Response<pb::Station>, Status> {
        let (caller, cmd): (_, Update) = edge::accept(req)?;
        let core = &self.0;
        let r = core.get_id(cmd.id, kind::STATION).await?;
        let org = record_org(&r)?;
        let station = cmd.entered.parse(&org, r.id.0)?;
        core.authorize(&caller, st::KIND.governed_as, Step::Edit, &org)
            .await?;
        core.save_form(
            &caller,
            r.id.0,
            kind::STATION,
            station_changes(&station),
            &cmd.read,
        )
        .await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(r.id.0, kind::STATION).await?,
        )?))
    }

    async fn get_station(
        &self,
        req: Request<pb::GetStationRequest>,
    ) -> Result<Response<pb::Station>, Status> {
        let Get(id) = Get::try_from(req.into_inner())?;
        let r = self.0.get_id(id, kind::STATION).await?;
        Ok(Response::new(to_pb(&self.0, &r)?))
    }

    async fn list_stations(
        &self,
        req: Request<pb::ListStationsRequest>,
    ) -> Result<Response<pb::ListStationsResponse>, Status> {
        let cmd = List::try_from(req.into_inner())?;
        let org = match cmd.org {
            Some(org) => org,
            None => self.0.default_org()?,
        };
        self.0.require_reach("org", &org).await?;
        let stations = self
            .0
            .page(kind::STATION, &org, cmd.limit, cmd.offset)
            .await?
            .iter()
            .map(|r| to_pb(&self.0, r))
            .collect::<Result<_>>()?;
        Ok(Response::new(pb::ListStationsResponse { stations }))
    }

    async fn set_residents(
        &self,
        req: Request<pb::SetResidentsRequest>,
    ) -> Result<Response<pb::Station>, Status> {
        let (caller, cmd): (_, Residents) = edge::accept(req)?;
        let core = &self.0;
        let r = core.get_id(cmd.station, kind::STATION).await?;
        core.authorize(&caller, st::KIND.governed_as, Step::Edit, &record_org(&r)?)
            .await?;
        let mut changes: Vec<Pending> = cmd
            .add
            .into_iter()
            .map(|d| Pending::Add("residents", d))
            .collect();
        changes.extend(
            cmd.remove
                .into_iter()
                .map(|d| Pending::Remove("residents", d)),
        );
        core.write(&caller, r.id.0, kind::STATION, changes).await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(r.id.0, kind::STATION).await?,
        )?))
    }

    async fn record_reception(
        &self,
        req: Request<pb::RecordReceptionRequest>,
    ) -> Result<Response<pb::Station>, Status> {
        let (caller, cmd): (_, Reception) = edge::accept(req)?;
        let core = &self.0;
        let r = core.get_id(cmd.station, kind::STATION).await?;
        // A deputy's own reception note names only themselves.
        let st::Event::Reception { deputies, .. } = &cmd.event;
        if caller.role == UserRole::Deputy {
            for d in deputies {
                caller.require_own_deputy("deputy_ids", *d)?;
            }
        }
        let org = record_org(&r)?;
        core.take(&caller, r.id.0, org, &cmd.event, Vec::new())
            .await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(r.id.0, kind::STATION).await?,
        )?))
    }
}
