//! `renda.station.v1.Stations`: 代表之家、联络站、联络点, their 八有四公开 checklist, resident
//! deputies (an add-wins set) and reception days.

use renda_domain::authority::{RecordKind, Step};
use renda_domain::station::{self as st, Checklist, ChecklistItem, StationKind};
use renda_proto::station::v1 as pb;
use renda_replica::Value;
use renda_store::StoredRecord;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::error::{Error, Result};
use crate::schema::{CHECKLIST_FIELDS, id_list, kind};

pub(crate) struct Service(pub Shared);

const KINDS: [(&str, StationKind); 5] = [
    ("home", StationKind::Home),
    ("station", StationKind::Station),
    ("point", StationKind::Point),
    ("online", StationKind::Online),
    (
        "legislative_contact_point",
        StationKind::LegislativeContactPoint,
    ),
];

fn item(name: &str) -> Option<ChecklistItem> {
    CHECKLIST_FIELDS
        .iter()
        .position(|(n, _)| *n == name.trim())
        .map(|i| ChecklistItem::ALL[i])
}

fn to_pb(core: &Core, r: &StoredRecord) -> Result<pb::Station> {
    let met: Vec<&str> = CHECKLIST_FIELDS
        .iter()
        .filter(|(name, _)| boolean(r, name))
        .map(|(name, _)| *name)
        .collect();
    let checklist = Checklist {
        met: met.iter().filter_map(|n| item(n)).collect(),
    };
    let c = checklist.completeness();
    let receptions = core
        .events(r)?
        .iter()
        .filter(|e| e.name == "reception")
        .count();
    Ok(pb::Station {
        id: r.id.to_string(),
        org: org_string(r),
        name: text(r, "name"),
        kind: text(r, "kind"),
        address: text(r, "address"),
        checklist: met.iter().map(|s| (*s).to_owned()).collect(),
        has_met: c.has_met as u32,
        published_met: c.published_met as u32,
        complete: c.is_complete(),
        qr_token: text(r, "qr_token"),
        residents: set(r, "residents").iter().map(Uuid::to_string).collect(),
        receptions: receptions as u32,
    })
}

/// Validates a station as entered (create and update alike).
fn parse_station(
    name: &str,
    kind_raw: &str,
    address: &str,
    checklist: &[String],
    org: &renda_domain::org::OrgCode,
    id: Uuid,
) -> Result<st::Station> {
    limit("name", name, 200)?;
    limit("address", address, 800)?;
    if checklist.len() > CHECKLIST_FIELDS.len() {
        return Err(Error::invalid("checklist", "at most 12 items", "最多12项"));
    }
    let items = checklist
        .iter()
        .map(|n| item(n).ok_or_else(|| Error::invalid("checklist", "unknown item", "检查项无效")))
        .collect::<Result<Vec<_>>>()?;
    let kind_ = KINDS
        .iter()
        .find(|(n, _)| *n == kind_raw.trim())
        .map(|(_, k)| *k);
    Ok(st::Station::parse(
        st::StationDraft {
            name: name.to_owned(),
            kind: kind_,
            org: org.to_string(),
            address: address.to_owned(),
            checklist: items,
        },
        id,
    )?)
}

/// The field writes of a validated station (unchanged values are skipped by the write path).
fn station_changes(station: &st::Station, kind_raw: &str) -> Vec<Pending> {
    let mut changes = vec![
        Pending::Put("name", Value::Text(station.name.clone())),
        Pending::Put("kind", Value::Text(kind_raw.trim().to_owned())),
        Pending::Put(
            "address",
            text_value(station.address.clone().unwrap_or_default()),
        ),
    ];
    for (i, (name, _)) in CHECKLIST_FIELDS.iter().enumerate() {
        let met = station.checklist.met.contains(&ChecklistItem::ALL[i]);
        changes.push(Pending::Put(name, Value::Bool(met)));
    }
    changes
}

#[tonic::async_trait]
impl pb::stations_server::Stations for Service {
    async fn create_station(
        &self,
        req: Request<pb::CreateStationRequest>,
    ) -> Result<Response<pb::Station>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let org = core.node_org()?;
        let station = parse_station(
            &req.name,
            &req.kind,
            &req.address,
            &req.checklist,
            &org,
            new_id(),
        )?;
        core.authorize(&caller, RecordKind::Station, Step::Edit, &station.org)
            .await?;
        let mut changes = vec![
            Pending::Put("org", Value::Org(station.org)),
            Pending::Put("qr_token", Value::Text(new_token())),
        ];
        changes.extend(station_changes(&station, &req.kind));
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
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let r = core.get("id", &req.id, kind::STATION).await?;
        let org = record_org(&r)?;
        let station = parse_station(
            &req.name,
            &req.kind,
            &req.address,
            &req.checklist,
            &org,
            r.id.0,
        )?;
        core.authorize(&caller, RecordKind::Station, Step::Edit, &org)
            .await?;
        core.write(
            &caller,
            r.id.0,
            kind::STATION,
            station_changes(&station, &req.kind),
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
        let r = self.0.get("id", &req.get_ref().id, kind::STATION).await?;
        Ok(Response::new(to_pb(&self.0, &r)?))
    }

    async fn list_stations(
        &self,
        req: Request<pb::ListStationsRequest>,
    ) -> Result<Response<pb::ListStationsResponse>, Status> {
        let req = req.into_inner();
        let org = parse_org("org", &req.org, &self.0.default_org()?)?;
        self.0.require_reach("org", &org)?;
        let stations = self
            .0
            .page(kind::STATION, &org, page_limit(req.limit)?, req.offset)
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
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let r = core
            .get("station_id", &req.station_id, kind::STATION)
            .await?;
        let add = parse_ids("add", &req.add, 500)?;
        let remove = parse_ids("remove", &req.remove, 500)?;
        core.authorize(&caller, RecordKind::Station, Step::Edit, &record_org(&r)?)
            .await?;
        let mut changes: Vec<Pending> = add
            .into_iter()
            .map(|d| Pending::Add("residents", d))
            .collect();
        changes.extend(remove.into_iter().map(|d| Pending::Remove("residents", d)));
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
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let r = core
            .get("station_id", &req.station_id, kind::STATION)
            .await?;
        let deputies = parse_ids("deputy_ids", &req.deputy_ids, 100)?;
        if deputies.is_empty() {
            return Err(
                Error::invalid("deputy_ids", "at least one deputy", "须至少一名代表").into(),
            );
        }
        // A deputy's own reception note names only themselves.
        if caller.role == UserRole::Deputy {
            for d in &deputies {
                caller.require_own_deputy("deputy_ids", *d)?;
            }
        }
        let note =
            renda_domain::text::optional("note", Some(&req.note), 2000).map_err(Error::from)?;
        let on = parse_day("on", &req.on)?;
        let org = record_org(&r)?;
        core.authorize(&caller, RecordKind::Station, Step::Edit, &org)
            .await?;
        core.write(
            &caller,
            r.id.0,
            kind::STATION,
            vec![Pending::Event(
                "reception",
                org,
                vec![
                    ("deputies", Value::Text(id_list(deputies))),
                    ("on", date_value(on)),
                    ("note", text_value(note.unwrap_or_default())),
                ],
            )],
        )
        .await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(r.id.0, kind::STATION).await?,
        )?))
    }
}
