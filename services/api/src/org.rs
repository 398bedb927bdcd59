//! `renda.org.v1`: org units (reference data the city writes for its subtree) and the history
//! of any record.

use renda_domain::authority::{RecordKind, Step};
use renda_domain::org::OrgCode as DOrg;
use renda_proto::org::v1 as pb;
use renda_replica::{RecordId, Value};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::error::{Error, Result};
use crate::schema::kind;

pub(crate) struct Units(pub Shared);
pub(crate) struct Records(pub Shared);

fn unit_pb(code: &DOrg, name: &str) -> pb::OrgUnit {
    pb::OrgUnit {
        code: code.to_string(),
        name: name.to_owned(),
        level: format!("{:?}", code.level()).to_lowercase(),
        parent: code.parent().map(|p| p.to_string()).unwrap_or_default(),
    }
}

/// Masks the personal data a history line may hold (a deputy's phone, an ID-card number).
fn masked(change: String, local_only: bool) -> String {
    const PERSONAL: [&str; 2] = ["phone = ", "id_card = "];
    if local_only {
        return "(personal data)".into();
    }
    match PERSONAL.iter().find(|p| change.starts_with(*p)) {
        Some(prefix) => format!("{prefix}\"***\""),
        None => change,
    }
}

/// Writes one org unit (the city's reference data). Checked against the tree with the unit
/// added, so the city can write its own root and each unit needs its parent known first.
pub(crate) async fn create_unit(
    core: &Core,
    caller: &Caller,
    code: &str,
    name: &str,
) -> Result<pb::OrgUnit> {
    limit("name", name, 200)?;
    let code = parse_org("code", code, &core.node_org()?)?;
    let name = renda_domain::text::bounded("name", name, 2, 50).map_err(Error::from)?;
    let mut tree = core.tree().await?.as_ref().clone();
    tree.add(code.clone(), &name).map_err(|e| match e {
        renda_domain::Error::Precondition {
            reason, reason_zh, ..
        } => Error::precondition("code", reason, reason_zh),
        other => Error::Domain(other),
    })?;
    core.authorize_in(caller, RecordKind::OrgUnit, Step::Edit, &code, &tree)?;
    // One record per code, with an id derived from it, so two creations are one record.
    let id = Uuid::from_u128(u128::from(rorg(&code)?.get()));
    core.write(
        caller,
        id,
        kind::ORG_UNIT,
        vec![
            Pending::Put("org", Value::Org(rorg(&code)?)),
            Pending::Put("name", Value::Text(name.clone())),
        ],
    )
    .await?;
    Ok(unit_pb(&code, &name))
}

#[tonic::async_trait]
impl pb::org_units_server::OrgUnits for Units {
    async fn create_org_unit(
        &self,
        req: Request<pb::CreateOrgUnitRequest>,
    ) -> Result<Response<pb::OrgUnit>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        Ok(Response::new(
            create_unit(&self.0, &caller, &req.code, &req.name).await?,
        ))
    }

    async fn list_org_units(
        &self,
        req: Request<pb::ListOrgUnitsRequest>,
    ) -> Result<Response<pb::ListOrgUnitsResponse>, Status> {
        let tree = self.0.tree().await?;
        let under = req.get_ref().under.trim().to_owned();
        let units = if under.is_empty() {
            tree.units().map(|u| unit_pb(&u.code, &u.name)).collect()
        } else {
            let code = parse_org("under", &under, &self.0.node_org()?)?;
            tree.subtree(&code)
                .into_iter()
                .map(|u| unit_pb(&u.code, &u.name))
                .collect()
        };
        Ok(Response::new(pb::ListOrgUnitsResponse { units }))
    }
}

#[tonic::async_trait]
impl pb::records_server::Records for Records {
    async fn history(
        &self,
        req: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        let core = &self.0;
        let id = parse_id("record_id", &req.get_ref().record_id)?;
        let record = core
            .store
            .record(RecordId(id))
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::NotFound {
                kind: "record",
                id: id.to_string(),
            })?;
        let local_only = core
            .store
            .schema()
            .kind_named(&record.kind_name)
            .is_some_and(|k| k.local_only);
        let entries = core
            .store
            .history(RecordId(id))
            .await
            .map_err(Error::from)?
            .into_iter()
            .map(|h| pb::HistoryEntry {
                op: format!("{}:{}", h.op.origin, h.op.seq),
                at_ms: h.at.map(|t| t.timestamp_millis()).unwrap_or_default(),
                hlc: h.hlc.to_string(),
                author: h.author.to_string(),
                origin_org: h.origin_org.to_string(),
                change: masked(h.change, local_only),
            })
            .collect();
        Ok(Response::new(pb::HistoryResponse {
            record_id: id.to_string(),
            kind: record.kind_name,
            entries,
        }))
    }
}
