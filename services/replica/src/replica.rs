//! An in-memory replica: the same receive rules the store applies durably, for property
//! tests, simulations and the core benchmark.

use crate::hlc::{Clock, Observed};
use crate::ids::{ActorId, Author, OpId, OrgCode, RecordId};
use crate::op::{Change, Op, OpError};
use crate::record::{ApplyError, Envelope, Held, Record, RecordView};
use crate::schema::{KindId, Schema};
use crate::{Materialise, Value};
use std::collections::HashSet;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What a replica did with a received operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied, with this many operations in all (held ones it unblocked included).
    Applied(usize),
    Duplicate,
    Held,
    /// Refused and kept aside with the reason; nothing else changed.
    Quarantined(String),
}

pub struct Replica {
    actor: ActorId,
    org: OrgCode,
    schema: Arc<Schema>,
    clock: Clock,
    next_seq: u64,
    records: HashMap<RecordId, Record>,
    held: HashMap<RecordId, Held>,
    log: Vec<Op>,
    /// Every operation in the log, to apply each once.
    logged: HashSet<OpId>,
    quarantine: Vec<String>,
    clamped: u64,
}

impl Replica {
    pub fn new(actor: ActorId, org: OrgCode, schema: Arc<Schema>) -> Self {
        Replica {
            actor,
            org,
            schema,
            clock: Clock::new(crate::Hlc::ZERO, Clock::DEFAULT_MAX_DRIFT_MS),
            next_seq: 1,
            records: HashMap::new(),
            held: HashMap::new(),
            log: Vec::new(),
            logged: HashSet::new(),
            quarantine: Vec::new(),
            clamped: 0,
        }
    }

    pub fn org(&self) -> OrgCode {
        self.org
    }

    pub fn actor(&self) -> ActorId {
        self.actor
    }

    pub fn record(&self, id: RecordId) -> Option<&Record> {
        self.records.get(&id)
    }

    /// Every operation this replica applied, its own and others', in the order applied.
    pub fn log(&self) -> &[Op] {
        &self.log
    }

    pub fn quarantine(&self) -> &[String] {
        &self.quarantine
    }

    /// How many remote clocks were clamped.
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    pub fn held_count(&self) -> usize {
        self.held.values().map(|h| h.len()).sum()
    }

    /// Makes a local change: builds the operation with the next sequences, validates it and
    /// applies it.
    pub fn local(
        &mut self,
        record: RecordId,
        kind: KindId,
        author: Author,
        now_ms: u64,
        change: impl FnOnce(&Record) -> Change,
    ) -> Result<Op, OpError> {
        let state = self
            .records
            .entry(record)
            .or_insert_with(|| Record::new(record, kind));
        let envelope = Envelope {
            id: OpId {
                origin: self.actor,
                seq: self.next_seq,
            },
            hlc: self.clock.tick(now_ms),
            origin_org: self.org,
            author,
        };
        let op = state.local_op(envelope, change(state));
        op.validate(&self.schema)?;
        state.apply(&op).map_err(|e| OpError {
            record: Some(record),
            kind: None,
            field: None,
            reason: e.to_string(),
        })?;
        self.next_seq += 1;
        self.logged.insert(op.id);
        self.log.push(op.clone());
        Ok(op)
    }

    /// Convenience for a local field write.
    pub fn put(
        &mut self,
        record: RecordId,
        kind: KindId,
        field: crate::FieldId,
        value: Value,
        now_ms: u64,
    ) -> Result<Op, OpError> {
        let actor = self.actor;
        let author = Author::system(self.org);
        self.local(record, kind, author, now_ms, |r| r.put(actor, field, value))
    }

    /// Convenience for a local set add.
    pub fn add(
        &mut self,
        record: RecordId,
        kind: KindId,
        set: crate::SetId,
        member: uuid::Uuid,
        now_ms: u64,
    ) -> Result<Op, OpError> {
        let actor = self.actor;
        let author = Author::system(self.org);
        self.local(record, kind, author, now_ms, |r| r.add(actor, set, member))
    }

    /// Receives an encoded operation from another replica.
    pub fn receive_bytes(&mut self, bytes: &[u8], now_ms: u64) -> Outcome {
        match Op::decode(bytes, &self.schema) {
            Ok(op) => self.receive(op, now_ms),
            Err(e) => {
                self.quarantine.push(e.to_string());
                Outcome::Quarantined(e.to_string())
            }
        }
    }

    /// Receives an operation from another replica: validated, applied in per-record origin
    /// order (held if an earlier one is missing), idempotent.
    pub fn receive(&mut self, op: Op, now_ms: u64) -> Outcome {
        if let Err(e) = op.validate(&self.schema) {
            self.quarantine.push(e.to_string());
            return Outcome::Quarantined(e.to_string());
        }
        if self.logged.contains(&op.id) {
            return Outcome::Duplicate;
        }
        if let Observed::Clamped { .. } = self.clock.observe(op.hlc, now_ms) {
            self.clamped += 1;
        }
        let record_id = op.record;
        let state = self
            .records
            .entry(record_id)
            .or_insert_with(|| Record::new(record_id, op.kind));
        let held = self.held.entry(record_id).or_default();
        match state.receive(op, held) {
            Ok(received) if received.duplicate => Outcome::Duplicate,
            Ok(received) if received.held => Outcome::Held,
            Ok(received) => {
                let n = received.applied.len();
                for op in received.applied {
                    self.logged.insert(op.id);
                    self.log.push(op);
                }
                Outcome::Applied(n)
            }
            Err(e @ ApplyError::KindMismatch { .. })
            | Err(e @ ApplyError::WrongRecord { .. })
            | Err(e @ ApplyError::SelfInContext { .. }) => {
                self.quarantine.push(e.to_string());
                Outcome::Quarantined(e.to_string())
            }
        }
    }

    /// The materialised state of every record, for comparison across replicas.
    pub fn views(&self) -> BTreeMap<RecordId, RecordView> {
        self.records
            .iter()
            .map(|(id, record)| (*id, record.materialise()))
            .collect()
    }

    pub fn view(&self, id: RecordId) -> Option<RecordView> {
        self.records.get(&id).map(|r| r.materialise())
    }
}
