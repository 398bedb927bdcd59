//! What every service shares: the caller's identity, the context, reading stored records into
//! plain values and events, and the one write path (authority checked before anything is
//! written).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, NaiveDate, Utc};
use renda_domain::activity::PointWeights;
use renda_domain::authority::{RecordKind, Step, check_write};
use renda_domain::event::{Stamp, Stamped};
use renda_domain::org::{OrgCode, OrgTree};
use renda_domain::record::{self, RecordEvent};
use renda_replica::schema::KindSchema;
use renda_replica::{Author, Change, ChangedHere, FieldId, Materialise, RecordId, Value, Version};
use renda_store::{Store, StoredRecord};
use uuid::Uuid;

use crate::error::{Error, Result};
use renda_accounts::Claims;
pub(crate) use renda_accounts::UserRole;

/// What the services need besides the store: the org tree (reference data) and the congress's
/// point weights. Cheap to clone; clones share the cached tree.
///
/// The org tree is read from the store's `org_unit` records, over an optional base tree given
/// at construction (a unit in both takes the store's name). An ancestor of a known unit whose
/// record has not arrived is in the tree under its code. The cache is keyed by the op log:
/// each call that needs the tree looks at the operations logged since it last looked (one
/// indexed query, usually empty) and re-reads the org units only when one of those operations
/// is on an `org_unit` record, whether written here or received by sync.
#[derive(Clone, Debug)]
pub struct ApiContext {
    base: Arc<OrgTree>,
    cache: Arc<RwLock<TreeCache>>,
    weights: Arc<PointWeights>,
    /// Signs and checks check-in codes; a node sets the deployment's keys.
    signer: Option<renda_accounts::TokenSigner>,
    /// A township whose data is older than this is flagged in reports that name no limit.
    freshness_limit_minutes: u32,
}

#[derive(Debug, Default)]
struct TreeCache {
    tree: Arc<OrgTree>,
    /// The local sequence up to which the op log was looked at; `None` before the first read.
    seen: Option<u64>,
}

impl Default for ApiContext {
    /// A context whose org tree comes from the store alone.
    fn default() -> Self {
        Self::new(OrgTree::new())
    }
}

impl ApiContext {
    /// A context with `base` as the units known before any `org_unit` record is stored (a
    /// node's bootstrap configuration); pass `OrgTree::new()` to rely on the store alone.
    pub fn new(base: OrgTree) -> Self {
        Self {
            cache: Arc::new(RwLock::new(TreeCache {
                tree: Arc::new(base.clone()),
                seen: None,
            })),
            base: Arc::new(base),
            weights: Arc::new(PointWeights::default()),
            signer: None,
            freshness_limit_minutes: renda_domain::report::DEFAULT_FRESHNESS_MINUTES,
        }
    }

    /// The node's freshness limit for reports that name none (`auth.freshness_limit_*`).
    pub fn with_freshness_limit(mut self, minutes: u32) -> Self {
        self.freshness_limit_minutes = minutes.max(1);
        self
    }

    pub fn freshness_limit_minutes(&self) -> u32 {
        self.freshness_limit_minutes
    }

    pub fn with_weights(mut self, weights: PointWeights) -> Self {
        self.weights = Arc::new(weights);
        self
    }

    /// The deployment's keys, for the activities' check-in codes.
    pub fn with_signer(mut self, signer: renda_accounts::TokenSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    pub(crate) fn signer(&self) -> Result<&renda_accounts::TokenSigner> {
        self.signer.as_ref().ok_or_else(|| {
            Error::Internal("this node has no signing key for check-in codes".into())
        })
    }

    pub fn weights(&self) -> &PointWeights {
        &self.weights
    }

    /// A copy of the org tree as last read (call [`ApiContext::refresh`] for the store's).
    pub fn tree(&self) -> OrgTree {
        self.cache
            .read()
            .map(|c| c.tree.as_ref().clone())
            .unwrap_or_default()
    }

    /// The org tree as `store` holds it now: re-read when an `org_unit` record changed since
    /// the last look, else the cached one.
    pub async fn refresh(&self, store: &Store) -> Result<Arc<OrgTree>> {
        const PAGE: u32 = 1000;
        let (cached, seen) = {
            let c = self
                .cache
                .read()
                .map_err(|_| Error::Internal("org tree cache lock poisoned".into()))?;
            (c.tree.clone(), c.seen)
        };
        let org_unit = self.org_unit_kind(store)?;
        // The log position is read before the org units, so a unit written in between is
        // looked at again next time rather than missed.
        let (last, changed) = match seen {
            None => (store.log_len().await?, true),
            Some(seen) => {
                let mut last = seen;
                let mut changed = false;
                loop {
                    let cursor = renda_store::Cursor {
                        position: last,
                        local_seq: last,
                    };
                    let ops = store.ops_since(cursor, PAGE).await?;
                    for op in &ops {
                        last = last.max(op.cursor.local_seq);
                        // An undecodable op never reached the log; if one did, re-reading the
                        // tree is the safe answer.
                        changed |= renda_replica::Op::decode_unchecked(&op.bytes)
                            .map_or(true, |o| o.kind == org_unit);
                    }
                    if ops.len() < PAGE as usize {
                        break;
                    }
                }
                (last, changed)
            }
        };
        if !changed {
            if last != seen.unwrap_or_default() {
                self.store_cache(cached.clone(), last)?;
            }
            return Ok(cached);
        }
        let tree = Arc::new(self.load(store, org_unit).await?);
        self.store_cache(tree.clone(), last)?;
        Ok(tree)
    }

    fn org_unit_kind(&self, store: &Store) -> Result<renda_replica::KindId> {
        store
            .schema()
            .kind_named(crate::schema::kind::ORG_UNIT)
            .map(|k| k.id)
            .ok_or_else(|| Error::Internal("schema has no org_unit kind".into()))
    }

    fn store_cache(&self, tree: Arc<OrgTree>, seen: u64) -> Result<()> {
        let mut c = self
            .cache
            .write()
            .map_err(|_| Error::Internal("org tree cache lock poisoned".into()))?;
        // Two requests may refresh at once; the one that looked further wins.
        if c.seen.is_none_or(|s| s <= seen) {
            c.tree = tree;
            c.seen = Some(seen);
        }
        Ok(())
    }

    /// The base tree with every live `org_unit` record of `store` over it, parents first.
    async fn load(&self, store: &Store, org_unit: renda_replica::KindId) -> Result<OrgTree> {
        const PAGE: u32 = 1000;
        let mut names: BTreeMap<OrgCode, String> = self
            .base
            .units()
            .map(|u| (u.code, u.name.clone()))
            .collect();
        let mut offset = 0u64;
        loop {
            let page = store.records_of_kind(org_unit, None, PAGE, offset).await?;
            for r in page.iter().filter(|r| !r.deleted) {
                let (Some(org), Some(name)) =
                    (r.org, r.fields.get("name").and_then(Value::as_text))
                else {
                    continue;
                };
                names.insert(org, name.to_owned());
            }
            if page.len() < PAGE as usize {
                break;
            }
            offset += u64::from(PAGE);
        }
        // A node's downward feed carries the org units of its own subtree; its ancestors'
        // records may not have reached it. Their codes are implied by its own, so they enter
        // the tree named by their code until their records arrive.
        let implied: Vec<OrgCode> = names.keys().flat_map(|code| code.ancestors()).collect();
        for code in implied {
            names.entry(code).or_insert_with(|| code.to_string());
        }
        let mut ordered: Vec<(OrgCode, String)> = names.into_iter().collect();
        ordered.sort_by_key(|(code, _)| (code.digits(), *code));
        let mut tree = OrgTree::new();
        for (code, name) in ordered {
            if let Err(e) = tree.add(code, &name) {
                // A unit whose parent has not arrived yet stays out until it does.
                tracing::warn!(org = %code, error = %e, "org unit left out of the tree");
            }
        }
        Ok(tree)
    }
}

/// The person calling, as the gate verified them from their token (never from anything the
/// caller declares).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user record.
    pub user_id: Uuid,
    /// The user's number at its org unit (operation authors name it).
    pub user: u32,
    pub org: OrgCode,
    pub role: UserRole,
    /// The deputy or handling unit a deputy's or a unit's account acts as.
    pub subject: Option<Uuid>,
}

tokio::task_local! {
    /// The person a call is served for, set by the gate around the service's handler: the
    /// services' record reads check it, so no read returns a record outside their reach.
    pub(crate) static CALLER: Caller;
}

impl Caller {
    pub fn from_claims(claims: &Claims) -> Self {
        Caller {
            user_id: claims.user_id,
            user: claims.user,
            org: claims.org,
            role: claims.role,
            subject: claims.subject,
        }
    }

    /// The deployment's own hand at `org` (bootstrap of org units and first users, by code that
    /// holds the store): an office of that level. The node's own hand at `org` (user 0, the office of that level): for in-process
    /// callers holding the store ([`crate::local::Local`]), never for a network call.
    pub fn system(org: &OrgCode) -> Self {
        Caller {
            user_id: Uuid::nil(),
            user: 0,
            org: *org,
            role: if org.level() == renda_domain::org::Level::City {
                UserRole::CityOffice
            } else {
                UserRole::CountyOffice
            },
            subject: None,
        }
    }

    /// Whether this person may read the records of `org`: their own subtree, and the bodies
    /// above them (whose work is sent down to them).
    pub fn may_read_org(&self, org: &OrgCode) -> bool {
        self.org.contains(*org) || org.contains(self.org)
    }

    /// Whether this person may read `record`: its org unit is in reach, or it is addressed to
    /// a unit of their subtree (an activity dispatched to their deputies, a reply to a
    /// suggestion raised there).
    pub(crate) fn may_read(&self, record: &StoredRecord, schema: &renda_replica::Schema) -> bool {
        if record.org.is_some_and(|o| self.may_read_org(&o)) {
            return true;
        }
        let Some(kind) = schema.kind(record.kind) else {
            return false;
        };
        record.events.iter().any(|e| {
            kind.event(e.kind).is_some_and(|ev| {
                e.payload.iter().any(|(id, v)| {
                    ev.fields
                        .iter()
                        .any(|f| f.id == *id && matches!(f.name.as_str(), "org" | "to_org" | "to"))
                        && v.as_org().is_some_and(|o| self.org.contains(o))
                })
            })
        })
    }

    /// Refuses a deputy's account acting for another deputy (staff act for any deputy their
    /// unit's rules allow).
    pub(crate) fn require_own_deputy(&self, field: &str, deputy: Uuid) -> Result<()> {
        if self.role == UserRole::Deputy && self.subject != Some(deputy) {
            return Err(Error::forbidden(
                field,
                "a deputy acts only for themselves",
                "代表本人只能办理自己的事项",
            ));
        }
        Ok(())
    }

    /// Refuses a handling unit's account acting for another unit.
    pub(crate) fn require_own_unit(&self, field: &str, unit: Uuid) -> Result<()> {
        if self.role == UserRole::HandlingUnit && self.subject != Some(unit) {
            return Err(Error::forbidden(
                field,
                "a handling unit acts only on the suggestions assigned to it",
                "承办单位只能办理交办给本单位的建议",
            ));
        }
        Ok(())
    }
}

/// The person the current call is served for, when it came through the gate.
pub(crate) fn current_caller() -> Option<Caller> {
    CALLER.try_with(Clone::clone).ok()
}

fn out_of_reach(field: &str, what: impl std::fmt::Display) -> Error {
    Error::forbidden(
        field,
        format!("{what} is outside the caller's unit"),
        "该记录不在您的管辖范围内",
    )
}

/// One event as the services read it: its kind name, stamp and payload by field name.
#[derive(Clone, Debug)]
pub(crate) struct Ev {
    pub name: String,
    pub stamp: Stamp,
    pub payload: BTreeMap<String, Value>,
}

impl Ev {
    pub fn org(&self, name: &str) -> Option<OrgCode> {
        self.payload.get(name).and_then(Value::as_org)
    }

    /// The payload as the domain reads it.
    pub fn domain_payload(&self) -> record::Payload {
        record::Payload(
            self.payload
                .iter()
                .filter_map(|(name, v)| Some((name.clone(), domain_value(v)?)))
                .collect(),
        )
    }

    /// The domain event this is, if it is one of `E`'s and this build can read it.
    pub fn decode<E: RecordEvent>(&self) -> Option<E> {
        E::decode(&self.name, &self.domain_payload())
    }
}

/// A stored value as the domain reads it (`None` for null).
pub(crate) fn domain_value(v: &Value) -> Option<record::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Text(s) => record::Value::Text(s.clone()),
        Value::Int(n) => record::Value::Int(*n),
        Value::Bool(b) => record::Value::Bool(*b),
        Value::Date(_) => record::Value::Date(value_date(v)?),
        Value::Ref(id) => record::Value::Ref(id.0),
        Value::Org(o) => record::Value::Org(*o),
    })
}

/// A domain value as it is stored.
pub(crate) fn stored_value(v: record::Value) -> Value {
    match v {
        record::Value::Text(s) => Value::Text(s),
        record::Value::Int(n) => Value::Int(n),
        record::Value::Bool(b) => Value::Bool(b),
        record::Value::Date(d) => date_value(d),
        record::Value::Ref(id) => reference(id),
        record::Value::Org(o) => Value::Org(o),
    }
}

/// A change to make, by schema names; resolved to ids inside the one write path.
pub(crate) enum Pending {
    Put(&'static str, Value),
    Add(&'static str, Uuid),
    Remove(&'static str, Uuid),
    /// An event with its acting org (payload field `org`) and the rest of its payload.
    Event(&'static str, OrgCode, Vec<(&'static str, Value)>),
}

impl Pending {
    /// A domain event taken for `org`, stored as its definition says (written only through a
    /// [`Permit`]).
    fn step<E: RecordEvent>(org: OrgCode, event: &E) -> Self {
        Pending::Event(
            event.name(),
            org,
            event
                .encode()
                .into_iter()
                .map(|(name, v)| (name, stored_value(v)))
                .collect(),
        )
    }
}

/// Proof that a caller may take one step on records of `E`'s kind for one org unit
/// ([`Core::permit`]).
pub(crate) struct Permit<'a, E> {
    core: &'a Core,
    caller: &'a Caller,
    org: OrgCode,
    step: Step,
    event: std::marker::PhantomData<fn(&E)>,
}

impl<E: RecordEvent> Permit<'_, E> {
    /// Writes `events` (each of the permitted step, as its definition says) with `changes` to
    /// record `id`, in one transaction.
    pub async fn take(&self, id: Uuid, events: &[E], mut changes: Vec<Pending>) -> Result<()> {
        for event in events {
            if event.step() != self.step {
                return Err(Error::Internal(format!(
                    "{} takes {:?}, not the permitted {:?}",
                    event.name(),
                    event.step(),
                    self.step
                )));
            }
            changes.push(Pending::step(self.org, event));
        }
        self.core
            .write(self.caller, id, E::KIND.name, changes)
            .await
    }
}

/// State shared by all services of one node.
pub(crate) struct Core {
    pub store: Store,
    pub ctx: ApiContext,
}

pub(crate) type Shared = Arc<Core>;

impl Core {
    pub fn kind(&self, name: &str) -> Result<&KindSchema> {
        self.store
            .schema()
            .kind_named(name)
            .ok_or_else(|| Error::Internal(format!("schema has no kind {name}")))
    }

    /// The org tree as this node's store holds it now.
    pub async fn tree(&self) -> Result<Arc<OrgTree>> {
        self.ctx.refresh(&self.store).await
    }

    /// Refuses an org unit named by a request field that this node does not know: a node
    /// takes records only for org units in its tree.
    pub async fn require_org(&self, field: &str, org: &OrgCode) -> Result<()> {
        self.tree()
            .await?
            .require(field, org)
            .map_err(Error::from)?;
        Ok(())
    }

    /// One page of live records of `kind` in `org`'s subtree, by id, filtered and paged in
    /// SQL. Soft-deleted records are skipped after paging, so a page may run short of `limit`
    /// when one falls in it (no call deletes records today).
    pub async fn page(
        &self,
        kind: &'static str,
        org: &OrgCode,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<StoredRecord>> {
        let kind_id = self.kind(kind)?.id;
        let fence = self.fence("org", Some(org))?;
        Ok(self
            .store
            .records_of_kind(kind_id, Some(*org), limit, offset)
            .await?
            .into_iter()
            .filter(|r| !r.deleted && self.readable(fence.as_ref(), r))
            .collect())
    }

    /// The person the current call is for, after refusing a listing of `org` entirely outside
    /// their reach (a township clerk listing another township). A listing of a unit above them
    /// is then filtered record by record.
    fn fence(&self, field: &str, org: Option<&OrgCode>) -> Result<Option<Caller>> {
        let caller = current_caller();
        if let (Some(c), Some(org)) = (&caller, org)
            && !c.may_read_org(org)
        {
            return Err(out_of_reach(field, format_args!("org unit {org}")));
        }
        Ok(caller)
    }

    fn readable(&self, fence: Option<&Caller>, r: &StoredRecord) -> bool {
        fence.is_none_or(|c| c.may_read(r, self.store.schema()))
    }

    /// Refuses a read naming an org unit outside the caller's reach, or one this node's tree
    /// does not know: a read of a unit the node holds nothing for is refused as a write for it
    /// is ([`Core::require_org`], `INVALID_ARGUMENT` naming the field), never answered with
    /// empty figures. Every listing, rate and report of an org unit asks this first.
    pub async fn require_reach(&self, field: &str, org: &OrgCode) -> Result<()> {
        self.fence(field, Some(org))?;
        self.require_org(field, org).await
    }

    /// The default org unit of a listing: the node's, or the caller's own when the caller sits
    /// below this node (a township clerk at the county sees their township by default).
    pub fn default_org(&self) -> Result<OrgCode> {
        let node = self.node_org()?;
        Ok(match current_caller() {
            Some(c) if node.contains(c.org) => c.org,
            _ => node,
        })
    }

    /// The node's own org unit.
    pub fn node_org(&self) -> Result<OrgCode> {
        Ok(self.store.org())
    }

    /// Loads a live record of `kind` named by the request field `field`.
    pub async fn get(&self, field: &str, raw: &str, kind: &'static str) -> Result<StoredRecord> {
        let id = parse_id(field, raw)?;
        self.get_id(id, kind).await
    }

    /// Loads a record of any kind by id, within the caller's reach.
    pub async fn get_any(&self, field: &str, id: Uuid) -> Result<StoredRecord> {
        let r = self
            .store
            .record(RecordId(id))
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "record",
                id: id.to_string(),
            })?;
        if let Some(c) = current_caller()
            && !c.may_read(&r, self.store.schema())
        {
            return Err(out_of_reach(field, format_args!("record {id}")));
        }
        Ok(r)
    }

    /// A record a request names in `field`: refused as an invalid `field` (the request is
    /// wrong, not the path) when this node does not hold it.
    pub async fn known(
        &self,
        id: Uuid,
        kind: &'static str,
        field: &str,
        missing_zh: &str,
    ) -> Result<StoredRecord> {
        self.get_id(id, kind).await.map_err(|e| match e {
            Error::NotFound { .. } => Error::invalid(
                field,
                format!("no such {} here: {id}", kind.replace('_', " ")),
                missing_zh,
            ),
            other => other,
        })
    }

    pub async fn get_id(&self, id: Uuid, kind: &'static str) -> Result<StoredRecord> {
        let schema_kind = self.kind(kind)?;
        match self.store.record(RecordId(id)).await? {
            Some(r) if r.kind == schema_kind.id && !r.deleted => {
                if let Some(c) = current_caller()
                    && !c.may_read(&r, self.store.schema())
                {
                    return Err(out_of_reach("id", format_args!("{kind} {id}")));
                }
                Ok(r)
            }
            _ => Err(Error::NotFound {
                kind,
                id: id.to_string(),
            }),
        }
    }

    /// Every live record of `kind` in `org`'s subtree (all when `None`), by id.
    pub async fn list(
        &self,
        kind: &'static str,
        org: Option<&OrgCode>,
    ) -> Result<Vec<StoredRecord>> {
        const PAGE: u32 = 1000;
        let kind_id = self.kind(kind)?.id;
        let fence = self.fence("org", org)?;
        let org = org.copied();
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = self
                .store
                .records_of_kind(kind_id, org, PAGE, offset)
                .await?;
            let n = page.len();
            out.extend(
                page.into_iter()
                    .filter(|r| !r.deleted && self.readable(fence.as_ref(), r)),
            );
            if n < PAGE as usize {
                return Ok(out);
            }
            offset += u64::from(PAGE);
        }
    }

    /// The domain events of a record, stamped, in fold order; events this build cannot read
    /// are left out.
    pub fn domain_events<E: RecordEvent>(&self, record: &StoredRecord) -> Result<Vec<Stamped<E>>> {
        Ok(self
            .events(record)?
            .iter()
            .filter_map(|e| e.decode().map(|ev| Stamped::new(e.stamp, ev)))
            .collect())
    }

    /// Takes one workflow step: checks that `caller` may take it for `org` (the step and the
    /// rules are the event's definition), then writes the event with `changes`, in one
    /// transaction. Nothing is written on a refusal. A step whose preconditions need the
    /// state read after authority uses [`Core::permit`] and [`Permit::take`] instead.
    pub async fn take<E: RecordEvent>(
        &self,
        caller: &Caller,
        id: Uuid,
        org: OrgCode,
        event: &E,
        changes: Vec<Pending>,
    ) -> Result<()> {
        self.permit::<E>(caller, org, event.step())
            .await?
            .take(id, std::slice::from_ref(event), changes)
            .await
    }

    /// Checks that `caller` may take `step` on records of `E`'s kind for `org`, and gives the
    /// proof: the one way to write a workflow event. Domain preconditions go between this and
    /// [`Permit::take`], so a person without authority learns nothing of the record's state.
    pub async fn permit<'a, E: RecordEvent>(
        &'a self,
        caller: &'a Caller,
        org: OrgCode,
        step: Step,
    ) -> Result<Permit<'a, E>> {
        self.authorize(caller, E::KIND.governed_as, step, &org)
            .await?;
        Ok(Permit {
            core: self,
            caller,
            org,
            step,
            event: std::marker::PhantomData,
        })
    }

    /// The events of a record, in fold order, with payloads by name.
    pub fn events(&self, record: &StoredRecord) -> Result<Vec<Ev>> {
        let kind = self
            .store
            .schema()
            .kind(record.kind)
            .ok_or_else(|| Error::Internal(format!("unknown kind {}", record.kind.0)))?;
        let mut out = Vec::with_capacity(record.events.len());
        for e in &record.events {
            let Some(schema) = kind.event(e.kind) else {
                continue;
            };
            let payload = e
                .payload
                .iter()
                .filter_map(|(id, v)| {
                    schema
                        .fields
                        .iter()
                        .find(|f| f.id == *id)
                        .map(|f| (f.name.clone(), v.clone()))
                })
                .collect();
            out.push(Ev {
                name: schema.name.clone(),
                stamp: Stamp::new(e.stamp.hlc.to_u64(), e.stamp.op.origin.0, e.stamp.op.seq),
                payload,
            });
        }
        Ok(out)
    }

    /// Checks that `caller` may take `step` on a record of `kind` whose org (in the sense of
    /// the domain's write rules for that step) is `record_org`, at this node.
    pub async fn authorize(
        &self,
        caller: &Caller,
        kind: RecordKind,
        step: Step,
        record_org: &OrgCode,
    ) -> Result<()> {
        let tree = self.tree().await?;
        self.authorize_in(caller, kind, step, record_org, &tree)
    }

    /// [`Core::authorize`] against a given tree (an org unit being created checks against the
    /// tree with itself added).
    pub fn authorize_in(
        &self,
        caller: &Caller,
        kind: RecordKind,
        step: Step,
        record_org: &OrgCode,
        tree: &OrgTree,
    ) -> Result<()> {
        if caller.role == UserRole::ReadOnly {
            return Err(Error::forbidden(
                "role",
                "a read-only user cannot change records",
                "只读角色不能修改记录",
            ));
        }
        let node = self.node_org()?;
        if caller.org != node {
            return Err(Error::forbidden(
                "org",
                format!("users of {} cannot write at the node of {node}", caller.org),
                format!("{} 的用户不能在 {node} 节点录入", caller.org),
            ));
        }
        check_write(
            &caller.org,
            caller.org.level(),
            kind,
            step,
            record_org,
            tree,
        )?;
        Ok(())
    }

    /// The one write path: one local transaction of `changes` to record `id` of `kind`.
    /// Callers validate and authorise first; nothing is written on a refusal.
    pub async fn write(
        &self,
        caller: &Caller,
        id: Uuid,
        kind: &'static str,
        changes: Vec<Pending>,
    ) -> Result<()> {
        self.write_against(caller, id, kind, changes, None).await
    }

    /// A form's save: [`Core::write`] against the record as the person read it. A field sent
    /// as read is not written (an edit made since stands); a changed one replaces only the
    /// values read (one written elsewhere meanwhile stays beside it, a conflict); a removal
    /// removes only the adds read. A field changed at this node since the read refuses the
    /// whole save, naming it, with nothing written.
    pub async fn save_form(
        &self,
        caller: &Caller,
        id: Uuid,
        kind: &'static str,
        changes: Vec<Pending>,
        read: &Version,
    ) -> Result<()> {
        self.write_against(caller, id, kind, changes, Some(read))
            .await
    }

    async fn write_against(
        &self,
        caller: &Caller,
        id: Uuid,
        kind: &'static str,
        changes: Vec<Pending>,
        read: Option<&Version>,
    ) -> Result<()> {
        let schema = self.kind(kind)?;
        let missing = |what: &str| Error::Internal(format!("schema of {kind} has no {what}"));
        let mut resolved: Vec<Resolved> = Vec::with_capacity(changes.len());
        for change in changes {
            resolved.push(match change {
                Pending::Put(name, value) => Resolved::Put(
                    schema.field_named(name).ok_or_else(|| missing(name))?.id,
                    value,
                ),
                Pending::Add(name, member) => Resolved::Add(
                    schema.set_named(name).ok_or_else(|| missing(name))?.id,
                    member,
                ),
                Pending::Remove(name, member) => Resolved::Remove(
                    schema.set_named(name).ok_or_else(|| missing(name))?.id,
                    member,
                ),
                Pending::Event(name, org, fields) => {
                    let event = schema.event_named(name).ok_or_else(|| missing(name))?;
                    let mut payload = vec![(FieldId(0), Value::Org(org))];
                    for (field, value) in fields {
                        if value == Value::Null {
                            continue;
                        }
                        let f = event
                            .fields
                            .iter()
                            .find(|f| f.name == field)
                            .ok_or_else(|| missing(field))?;
                        payload.push((f.id, value));
                    }
                    Resolved::Event(event.id, payload)
                }
            });
        }
        let author = Author {
            org: caller.org,
            number: caller.user,
        };
        let read = read.cloned();
        self.store
            .try_write(RecordId(id), schema.id, author, move |record, actor| {
                let view = record.materialise();
                // Several adds to one set in one write each need the next counter of this
                // actor on that set; the record's state gives only the first.
                let mut next_add: BTreeMap<renda_replica::SetId, u64> = BTreeMap::new();
                let mut out = Vec::with_capacity(resolved.len());
                for change in resolved {
                    match change {
                        Resolved::Put(field, value) => match &read {
                            Some(read) => {
                                let put = record
                                    .put_against(actor, field, value, read)
                                    .map_err(|e| changed_here(schema, e))?;
                                out.extend(put);
                            }
                            None => {
                                let unchanged = view.field(field).is_some_and(|f| {
                                    f.winner.value == value && f.conflicts.is_empty()
                                });
                                let absent_null =
                                    view.field(field).is_none() && value == Value::Null;
                                if !unchanged && !absent_null {
                                    out.push(record.put(actor, field, value));
                                }
                            }
                        },
                        // Read as a member and removed since elsewhere: the removal stands.
                        Resolved::Add(set, member)
                            if read.as_ref().is_some_and(|r| r.had_member(set, member)) => {}
                        Resolved::Add(set, member) => {
                            let counter = match next_add.get(&set) {
                                Some(n) => *n,
                                None => match record.add(actor, set, member) {
                                    Change::Add { counter, .. } => counter,
                                    _ => 1,
                                },
                            };
                            next_add.insert(set, counter + 1);
                            out.push(Change::Add {
                                set,
                                member,
                                counter,
                            });
                        }
                        Resolved::Remove(set, member) => match &read {
                            // Added since the read: the person did not remove it.
                            Some(read) if !read.had_member(set, member) => {}
                            Some(read) => out.push(record.remove_against(set, member, read)),
                            None => out.push(record.remove(set, member)),
                        },
                        Resolved::Event(event, payload) => {
                            out.push(Change::Event { event, payload })
                        }
                    }
                }
                Ok::<_, Error>(out)
            })
            .await?;
        Ok(())
    }
}

/// The refusal of a form save overtaken at this node, naming the field.
pub(crate) fn changed_here(schema: &KindSchema, e: ChangedHere) -> Error {
    let name = schema
        .field(e.field)
        .map_or_else(|| e.field.0.to_string(), |f| f.name.clone());
    Error::precondition(
        &name,
        format!(
            "{name} was changed at this node after the record was read; \
             read it again and redo the change"
        ),
        "打开记录后，本节点已有人修改了这一项，请重新打开记录后再修改",
    )
}

enum Resolved {
    Put(FieldId, Value),
    Add(renda_replica::SetId, Uuid),
    Remove(renda_replica::SetId, Uuid),
    Event(renda_replica::EventKindId, Vec<(FieldId, Value)>),
}

// ---- plain values -------------------------------------------------------------------------

pub(crate) fn text(r: &StoredRecord, name: &str) -> String {
    r.fields
        .get(name)
        .and_then(Value::as_text)
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn int(r: &StoredRecord, name: &str) -> i64 {
    r.fields
        .get(name)
        .and_then(Value::as_int)
        .unwrap_or_default()
}

pub(crate) fn boolean(r: &StoredRecord, name: &str) -> bool {
    r.fields
        .get(name)
        .and_then(Value::as_bool)
        .unwrap_or_default()
}

pub(crate) fn ref_id(r: &StoredRecord, name: &str) -> Option<Uuid> {
    r.fields.get(name).and_then(Value::as_ref_id).map(|r| r.0)
}

pub(crate) fn set(r: &StoredRecord, name: &str) -> Vec<Uuid> {
    r.sets.get(name).cloned().unwrap_or_default()
}

/// The owning org of a record, in the domain's form.
pub(crate) fn record_org(r: &StoredRecord) -> Result<OrgCode> {
    r.org
        .ok_or_else(|| Error::Internal(format!("record {} has no org", r.id)))
}

pub(crate) fn org_string(r: &StoredRecord) -> String {
    r.org.map(|o| o.to_string()).unwrap_or_default()
}

pub(crate) fn conflicting_fields(r: &StoredRecord) -> Vec<String> {
    r.conflicts.keys().cloned().collect()
}

/// Parses a request's org code field; empty means `default`.
pub(crate) fn parse_org(field: &str, raw: &str, default: &OrgCode) -> Result<OrgCode> {
    Ok(optional_org(field, raw)?.unwrap_or(*default))
}

/// An org code field that may be left empty (`None`: the handler's default).
pub(crate) fn optional_org(field: &str, raw: &str) -> Result<Option<OrgCode>> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    OrgCode::parse(raw)
        .map(Some)
        .map_err(|e| Error::invalid(field, e.to_string(), e.reason_zh()))
}

pub(crate) fn parse_id(field: &str, raw: &str) -> Result<Uuid> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        Error::invalid(
            field,
            format!("{:?} is not a record id", truncate(raw)),
            "不是有效的记录编号",
        )
    })
}

/// Parses a list of ids, refusing more than `max`.
pub(crate) fn parse_ids(field: &str, raw: &[String], max: usize) -> Result<Vec<Uuid>> {
    if raw.len() > max {
        return Err(Error::invalid(
            field,
            format!("at most {max} entries, got {}", raw.len()),
            format!("最多{max}项，实际为{}项", raw.len()),
        ));
    }
    let mut out: Vec<Uuid> = raw
        .iter()
        .map(|r| parse_id(field, r))
        .collect::<Result<_>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn truncate(raw: &str) -> String {
    raw.chars().take(40).collect()
}

/// Refuses a text longer than `max` characters before any rule looks at it.
pub(crate) fn limit(field: &str, raw: &str, max: usize) -> Result<()> {
    let n = raw.chars().count();
    if n > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters, got {n}"),
            format!("不得超过{max}个字符，实际为{n}个"),
        ));
    }
    Ok(())
}

pub(crate) fn today() -> NaiveDate {
    // Business dates are Chinese local dates (UTC+8).
    (Utc::now() + chrono::Duration::hours(8)).date_naive()
}

/// The Chinese local date of a time in Unix milliseconds.
pub(crate) fn local_date(ms: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(ms.saturating_add(8 * 3_600_000))
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

pub(crate) fn parse_day(field: &str, raw: &str) -> Result<NaiveDate> {
    if raw.trim().is_empty() {
        return Ok(today());
    }
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
        Error::invalid(
            field,
            format!("{:?} is not a date (YYYY-MM-DD)", truncate(raw)),
            "日期格式应为YYYY-MM-DD",
        )
    })
}

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a date");

pub(crate) fn date_value(d: NaiveDate) -> Value {
    Value::Date(i32::try_from((d - EPOCH).num_days()).unwrap_or(0))
}

pub(crate) fn value_date(v: &Value) -> Option<NaiveDate> {
    match v {
        Value::Date(days) => EPOCH.checked_add_signed(chrono::Duration::days(i64::from(*days))),
        _ => None,
    }
}

pub(crate) fn day_string(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(crate) fn reference(id: Uuid) -> Value {
    Value::Ref(RecordId(id))
}

pub(crate) fn text_value(s: impl Into<String>) -> Value {
    let s = s.into();
    if s.is_empty() {
        Value::Null
    } else {
        Value::Text(s)
    }
}

/// A fresh record id (UUIDv7, minted here: no central allocator).
pub(crate) fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// A fresh QR token (一人一码, 一站一码, an activity's sign-in code).
pub(crate) fn new_token() -> String {
    Uuid::new_v4().simple().to_string()
}

/// A deterministic id for a duty record derived from an event: the same event gives the same
/// id on every node.
pub(crate) fn derived_id(record: Uuid, stamp: &Stamp) -> Uuid {
    let bits = (u128::from(stamp.actor) << 64) | u128::from(stamp.seq);
    Uuid::from_u128(record.as_u128() ^ bits.rotate_left(17))
}

/// The verified person behind a request (put there by the gate, or by in-process code that
/// holds the store, such as the demo's seeding).
pub(crate) fn caller<T>(req: &tonic::Request<T>) -> Result<Caller> {
    req.extensions().get::<Caller>().cloned().ok_or_else(|| {
        Error::Unauthenticated("no verified caller: send authorization: Bearer <token>".into())
    })
}

/// The page size of a list call: 100 when unset, at most 1000.
pub(crate) fn page_limit(raw: u32) -> Result<u32> {
    match raw {
        0 => Ok(100),
        n if n > 1000 => Err(Error::invalid(
            "limit",
            format!("at most 1000, got {n}"),
            format!("每页最多1000条，实际为{n}"),
        )),
        n => Ok(n),
    }
}
