//! The sync protocol proven by simulation: the production state machines
//! ([`renda_sync::session`]) and store ([`renda_store::Store`] on SQLite files), driven by a
//! seeded in-memory network instead of tonic.
//!
//! Each seed builds a mesh of a city, two counties and three townships (each township falls
//! back to the city when its county cannot be reached), then runs a random schedule: writes
//! everywhere (new records, edits of records a node holds, set adds), sessions started from
//! any child, their messages delivered in any interleaving with every other node's work, some
//! duplicated or reordered; links cut and healed; nodes crashed between any two steps of a
//! session (what was committed stays, the session's memory is lost) and restarted later;
//! change bundles carried up and down, some imported twice, late, or never. Then every link
//! heals, every node restarts, sessions run until nothing moves, and the test checks what
//! users rely on: every acknowledged write is present wherever its scope says (the operation
//! count of each unit's scope equals the writes made in it, so nothing is lost and nothing
//! applied twice), every node's view of a shared scope is identical, nothing is held or
//! quarantined.
//!
//! Each seed is one test (`seed_0042`): a failure prints the seed and its schedule, and
//! `cargo test -p renda-sync --test simulation -- --exact seed_0042` replays the same schedule.
//! `RENDA_SIM_SEEDS` sets how many seeds run (1,000 by default, as in CI); `RENDA_SIM_TRACE=1`
//! prints each seed's whole schedule.

use libtest_mimic::{Arguments, Failed, Trial};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use renda_proto::sync::v1 as pb;
use renda_replica::{Author, FieldId, KindId, OrgCode, RecordId, SetId, Value};
use renda_store::{Direction as Checkpoint, Options, Store};
use renda_sync::Policy;
use renda_sync::bundle::{self, Verified};
use renda_sync::session::child::{ChildAction, ChildSession, ChildStart};
use renda_sync::session::parent::{ParentAction, ParentSession, ParentStart, Peer};
use renda_sync::session::perform;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

const SEEDS: u64 = 1_000;
const STEPS: usize = 260;

const NOTE: KindId = KindId(1);
const TITLE: FieldId = FieldId(2);
const COUNT: FieldId = FieldId(4);
const MEMBERS: SetId = SetId(1);

fn main() {
    let args = Arguments::from_args();
    let seeds = std::env::var("RENDA_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    let trials = (0..seeds)
        .map(|seed| Trial::test(format!("seed_{seed:04}"), move || run_seed(seed)))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn run_seed(seed: u64) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    runtime.block_on(async {
        let mut sim = Sim::new(seed, dir.path()).await?;
        let outcome = async {
            for _ in 0..STEPS {
                sim.step().await?;
            }
            sim.heal().await?;
            sim.check().await
        }
        .await;
        if std::env::var_os("RENDA_SIM_TRACE").is_some() {
            eprintln!("seed {seed}:\n  {}", sim.trace.join("\n  "));
        }
        outcome.map_err(|e| {
            let tail: Vec<_> = sim.trace.iter().rev().take(40).rev().cloned().collect();
            Failed::from(format!(
                "seed {seed}: {e}\nreplay: cargo test -p renda-sync --test simulation -- --exact \
                 seed_{seed:04}\nlast events:\n  {}",
                tail.join("\n  ")
            ))
        })
    })
}

fn org(code: u64) -> OrgCode {
    OrgCode::new(code).expect("the simulation's org codes are valid")
}

struct Node {
    org: OrgCode,
    /// Upstreams in the order the agent tries them: the parent first, then the fallback.
    upstreams: Vec<OrgCode>,
    url: String,
    /// `None` while the node is down after a crash.
    store: Option<Store>,
}

/// What travels on one direction of a session's stream.
#[derive(Debug)]
enum Wire<M> {
    Msg(M),
    End,
    Error(String),
}

struct Session {
    id: u64,
    child: OrgCode,
    parent: OrgCode,
    cm: ChildSession,
    cq: VecDeque<ChildAction>,
    child_done: bool,
    /// Made when the hello reaches the parent.
    pm: Option<ParentSession>,
    pq: VecDeque<ParentAction>,
    parent_done: bool,
    up: VecDeque<Wire<pb::ChildMessage>>,
    down: VecDeque<Wire<pb::ParentMessage>>,
    /// The connection is gone: nothing more is delivered either way.
    cut: bool,
    /// How the child's side ended, once it did.
    result: Option<Result<renda_sync::SessionReport, String>>,
}

impl Session {
    fn over(&self) -> bool {
        self.child_done && (self.parent_done || self.pm.is_none() && self.cut)
    }
}

/// A bundle on its way by hand.
struct Carried {
    to: OrgCode,
    verified: Verified,
}

struct Sim {
    rng: StdRng,
    nodes: BTreeMap<OrgCode, Node>,
    policy: Policy,
    schema: Arc<renda_replica::schema::Schema>,
    sessions: Vec<Session>,
    next_session: u64,
    /// Links (child, upstream) that are cut.
    down_links: BTreeSet<(OrgCode, OrgCode)>,
    /// Every acknowledged write: the record's org unit and the operations written to it.
    written: BTreeMap<RecordId, (OrgCode, u64)>,
    carried: Vec<Carried>,
    max_batch: u32,
    trace: Vec<String>,
}

impl Sim {
    async fn new(seed: u64, dir: &Path) -> Result<Sim, String> {
        let mut rng = StdRng::seed_from_u64(seed);
        let (city, a, b) = (org(370_200), org(370_202), org(370_203));
        let layout = [
            (city, vec![]),
            (a, vec![city]),
            (b, vec![city]),
            (org(370_202_001), vec![a, city]),
            (org(370_202_002), vec![a, city]),
            (org(370_203_001), vec![b, city]),
        ];
        let schema = Arc::new(renda_replica::testkit::schema());
        let mut nodes = BTreeMap::new();
        for (code, upstreams) in layout {
            let url = format!("sqlite://{}", dir.join(format!("{code}.db")).display());
            let store = open(&url, &schema, code).await?;
            nodes.insert(
                code,
                Node {
                    org: code,
                    upstreams,
                    url,
                    store: Some(store),
                },
            );
        }
        let max_batch = rng.random_range(2..=7);
        Ok(Sim {
            rng,
            nodes,
            policy: Policy::org_tree_only(),
            schema,
            sessions: Vec::new(),
            next_session: 1,
            down_links: BTreeSet::new(),
            written: BTreeMap::new(),
            carried: Vec::new(),
            max_batch,
            trace: Vec::new(),
        })
    }

    fn note(&mut self, event: String) {
        self.trace.push(event);
    }

    fn store(&self, at: OrgCode) -> Option<Store> {
        self.nodes.get(&at).and_then(|n| n.store.clone())
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            let i = self.rng.random_range(0..items.len());
            Some(items[i].clone())
        }
    }

    /// One random step of the schedule.
    async fn step(&mut self) -> Result<(), String> {
        let roll = self.rng.random_range(0..100);
        match roll {
            0..=15 => self.write().await,
            16..=25 => self.start_session().await,
            26..=85 => self.advance().await,
            86..=87 => {
                self.cut_link();
                Ok(())
            }
            88..=91 => {
                self.heal_link();
                Ok(())
            }
            92..=93 => self.crash().await,
            94..=95 => self.restart().await,
            96..=97 => self.export_bundle().await,
            _ => self.import_bundle().await,
        }
    }

    async fn write(&mut self) -> Result<(), String> {
        let live: Vec<OrgCode> = self
            .nodes
            .values()
            .filter(|n| n.store.is_some())
            .map(|n| n.org)
            .collect();
        let Some(at) = self.pick(&live) else {
            return Ok(());
        };
        let store = self.store(at).ok_or("a live node has no store")?;
        let author = Author { org: at, number: 1 };
        // Half the time a new record of a unit in this node's subtree, else an edit of one
        // this node holds.
        let held: Vec<RecordId> = self
            .written
            .iter()
            .filter(|(_, (home, _))| at.contains(*home))
            .map(|(id, _)| *id)
            .collect();
        let edit = if self.rng.random_bool(0.5) {
            self.pick(&held)
        } else {
            None
        };
        let (id, home, ops) = match edit {
            Some(id) => {
                if store
                    .record(id)
                    .await
                    .map_err(|e| format!("reading {id} at {at}: {e}"))?
                    .is_none()
                {
                    return Ok(());
                }
                let home = self.written[&id].0;
                let choice = self.rng.random_range(0..3);
                let n: i64 = self.rng.random_range(0..1_000);
                let member = uuid::Uuid::from_u128(self.rng.random());
                let ops = store
                    .write(id, NOTE, author, |r, actor| match choice {
                        0 => vec![r.put(actor, TITLE, Value::Text(format!("t{n}")))],
                        1 => vec![r.put(actor, COUNT, Value::Int(n))],
                        _ => vec![r.add(actor, MEMBERS, member)],
                    })
                    .await
                    .map_err(|e| format!("editing {id} at {at}: {e}"))?;
                (id, home, ops.len() as u64)
            }
            None => {
                let homes: Vec<OrgCode> = self
                    .nodes
                    .keys()
                    .copied()
                    .filter(|code| at.contains(*code))
                    .collect();
                let home = self.pick(&homes).ok_or("a node's subtree holds itself")?;
                let id = RecordId(uuid::Uuid::from_u128(self.rng.random()));
                let n: i64 = self.rng.random_range(0..1_000);
                let ops = store
                    .write(id, NOTE, author, |r, actor| {
                        vec![
                            r.put(actor, renda_replica::schema::ORG, Value::Org(home)),
                            r.put(actor, TITLE, Value::Text(format!("n{n}"))),
                        ]
                    })
                    .await
                    .map_err(|e| format!("creating {id} at {at}: {e}"))?;
                (id, home, ops.len() as u64)
            }
        };
        self.written.entry(id).or_insert((home, 0)).1 += ops;
        self.note(format!("{at} wrote {ops} ops to {id} of {home}"));
        Ok(())
    }

    /// Whether `child` can reach `upstream` now.
    fn reachable(&self, child: OrgCode, upstream: OrgCode) -> bool {
        !self.down_links.contains(&(child, upstream))
            && self.nodes.get(&upstream).is_some_and(|n| n.store.is_some())
    }

    async fn start_session(&mut self) -> Result<(), String> {
        let idle: Vec<OrgCode> = self
            .nodes
            .values()
            .filter(|n| !n.upstreams.is_empty() && n.store.is_some())
            .filter(|n| {
                !self
                    .sessions
                    .iter()
                    .any(|s| s.child == n.org && !s.child_done)
            })
            .map(|n| n.org)
            .collect();
        let Some(child) = self.pick(&idle) else {
            return Ok(());
        };
        // As the agent does: the first upstream that can be reached.
        let upstreams = self.nodes[&child].upstreams.clone();
        let Some(parent) = upstreams.into_iter().find(|up| self.reachable(child, *up)) else {
            self.note(format!("{child} reaches no upstream"));
            return Ok(());
        };
        self.open_session(child, parent).await
    }

    async fn open_session(&mut self, child: OrgCode, parent: OrgCode) -> Result<(), String> {
        let store = self.store(child).ok_or("a live child has no store")?;
        let key = parent.to_string();
        let read = |e: renda_store::Error| format!("reading checkpoints at {child}: {e}");
        let start = ChildStart {
            me: child,
            parent,
            schema_version: store.schema().version,
            actor: store.actor().0,
            max_batch: self.max_batch,
            report: pb::NodeStatus::default(),
            push_after: store
                .checkpoint(&key, Checkpoint::Push)
                .await
                .map_err(read)?,
            pull_after: store
                .checkpoint(&key, Checkpoint::Pull)
                .await
                .map_err(read)?,
            exported: store
                .checkpoint(&format!("bundle:{parent}"), Checkpoint::Push)
                .await
                .map_err(read)?,
        };
        let (cm, first) = ChildSession::new(start);
        let id = self.next_session;
        self.next_session += 1;
        self.sessions.push(Session {
            id,
            child,
            parent,
            cm,
            cq: first.into(),
            child_done: false,
            pm: None,
            pq: VecDeque::new(),
            parent_done: false,
            up: VecDeque::new(),
            down: VecDeque::new(),
            cut: false,
            result: None,
        });
        self.note(format!("session {id}: {child} -> {parent} opens"));
        Ok(())
    }

    /// One step of a random live session: one of its sides' actions, or one delivery.
    async fn advance(&mut self) -> Result<(), String> {
        if self.sessions.is_empty() {
            return self.start_session().await;
        }
        let i = self.rng.random_range(0..self.sessions.len());
        let s = &self.sessions[i];
        let mut moves = Vec::new();
        if !s.cq.is_empty() {
            moves.push(0);
        }
        if !s.pq.is_empty() {
            moves.push(1);
        }
        if !s.cut && !s.up.is_empty() {
            moves.push(2);
        }
        if !s.cut && !s.down.is_empty() {
            moves.push(3);
        }
        let Some(m) = self.pick(&moves) else {
            self.retire();
            return Ok(());
        };
        // Now and then the network duplicates or reorders a message in flight.
        let fault = self.rng.random_range(0..100);
        let depth = self.rng.random_range(0..8);
        match m {
            0 => self.child_step(i).await?,
            1 => self.parent_step(i).await?,
            2 => {
                let s = &mut self.sessions[i];
                disturb(&mut s.up, fault, depth);
                self.deliver_up(i)
            }
            _ => {
                let s = &mut self.sessions[i];
                disturb(&mut s.down, fault, depth);
                self.deliver_down(i)
            }
        }
        self.retire();
        Ok(())
    }

    /// Drops sessions whose both sides ended.
    fn retire(&mut self) {
        self.sessions.retain(|s| !s.over());
    }

    async fn child_step(&mut self, i: usize) -> Result<(), String> {
        let Some(action) = self.sessions[i].cq.pop_front() else {
            return Ok(());
        };
        let child = self.sessions[i].child;
        let id = self.sessions[i].id;
        match action {
            ChildAction::Work(work) => {
                let store = self.store(child).ok_or("a live child has no store")?;
                let next = match perform(&store, &self.policy, work).await {
                    Ok(worked) => self.sessions[i].cm.worked(worked),
                    Err(e) => self.sessions[i].cm.failed(renda_sync::Error::Store(e)),
                };
                self.sessions[i].cq.extend(next);
            }
            ChildAction::Send(msg) => {
                let s = &mut self.sessions[i];
                if !s.cut {
                    s.up.push_back(Wire::Msg(msg));
                }
            }
            ChildAction::EndSend => {
                let s = &mut self.sessions[i];
                if !s.cut {
                    s.up.push_back(Wire::End);
                }
            }
            ChildAction::Done(result) => {
                let said = match &result {
                    Ok(r) => format!("ok pushed={} pulled={}", r.pushed, r.pulled),
                    Err(e) => format!("failed: {e}"),
                };
                self.note(format!("session {id}: child done, {said}"));
                let s = &mut self.sessions[i];
                s.child_done = true;
                s.cq.clear();
                if result.is_err() {
                    // The child drops the call: the parent's stream breaks.
                    self.cut_session(i, "the child dropped the call");
                }
                self.sessions[i].result = Some(result.map_err(|e| e.to_string()));
            }
        }
        Ok(())
    }

    async fn parent_step(&mut self, i: usize) -> Result<(), String> {
        let Some(action) = self.sessions[i].pq.pop_front() else {
            return Ok(());
        };
        let parent = self.sessions[i].parent;
        let id = self.sessions[i].id;
        match action {
            ParentAction::Work(work) => {
                let store = self.store(parent).ok_or("a live parent has no store")?;
                let result = perform(&store, &self.policy, work).await;
                let s = &mut self.sessions[i];
                let Some(pm) = s.pm.as_mut() else {
                    return Err("parent actions with no parent machine".into());
                };
                let next = match result {
                    Ok(worked) => pm.worked(worked),
                    Err(e) => pm.failed(tonic::Status::internal(e.to_string())),
                };
                s.pq.extend(next);
            }
            ParentAction::Send(msg) => {
                let s = &mut self.sessions[i];
                if !s.cut {
                    s.down.push_back(Wire::Msg(msg));
                }
            }
            ParentAction::Keep(_) => {}
            ParentAction::Abort(status) => {
                let s = &mut self.sessions[i];
                if !s.cut {
                    s.down.push_back(Wire::Error(status.message().to_string()));
                }
            }
            ParentAction::Done(result) => {
                self.note(format!("session {id}: parent done, {result:?}"));
                let s = &mut self.sessions[i];
                s.parent_done = true;
                s.pq.clear();
                if result.is_ok() && !s.cut {
                    s.down.push_back(Wire::End);
                }
            }
        }
        Ok(())
    }

    fn deliver_up(&mut self, i: usize) {
        let schema_version = self.schema.version;
        let s = &mut self.sessions[i];
        let Some(wire) = s.up.pop_front() else {
            return;
        };
        if s.parent_done {
            return;
        }
        match s.pm.as_mut() {
            None => {
                let mut pm = ParentSession::new(ParentStart {
                    me: s.parent,
                    schema_version,
                    actor: 0,
                    peer: Peer {
                        org: s.child,
                        level: s.child.level(),
                    },
                });
                let first = match wire {
                    Wire::Msg(msg) => Some(msg),
                    _ => None,
                };
                match pm.hello(first) {
                    Ok(actions) => s.pq.extend(actions),
                    Err(status) => {
                        s.parent_done = true;
                        s.down.push_back(Wire::Error(status.message().to_string()));
                    }
                }
                s.pm = Some(pm);
            }
            Some(pm) => {
                let next = match wire {
                    Wire::Msg(msg) => pm.receive(msg),
                    Wire::End => pm.closed(),
                    Wire::Error(reason) => pm.failed(tonic::Status::cancelled(reason)),
                };
                s.pq.extend(next);
            }
        }
    }

    fn deliver_down(&mut self, i: usize) {
        let s = &mut self.sessions[i];
        let Some(wire) = s.down.pop_front() else {
            return;
        };
        if s.child_done {
            return;
        }
        let next = match wire {
            Wire::Msg(msg) => s.cm.receive(msg),
            Wire::End => s.cm.closed(),
            Wire::Error(message) => s.cm.failed(renda_sync::Error::Refused {
                peer: s.parent.to_string(),
                message,
            }),
        };
        s.cq.extend(next);
    }

    /// The connection of session `i` breaks: each side that is still running learns it.
    fn cut_session(&mut self, i: usize, why: &str) {
        let s = &mut self.sessions[i];
        if s.cut {
            return;
        }
        s.cut = true;
        s.up.clear();
        s.down.clear();
        if !s.child_done {
            let next = s.cm.failed(renda_sync::Error::Dropped {
                peer: s.parent.to_string(),
                reason: why.to_string(),
            });
            s.cq.extend(next);
        }
        if !s.parent_done
            && let Some(pm) = s.pm.as_mut()
        {
            let next = pm.failed(tonic::Status::cancelled(why.to_string()));
            s.pq.extend(next);
        }
    }

    fn links(&self) -> Vec<(OrgCode, OrgCode)> {
        self.nodes
            .values()
            .flat_map(|n| n.upstreams.iter().map(move |up| (n.org, *up)))
            .collect()
    }

    fn cut_link(&mut self) {
        let links = self.links();
        let Some(link) = self.pick(&links) else {
            return;
        };
        self.down_links.insert(link);
        self.note(format!("link {} -> {} cut", link.0, link.1));
        for i in 0..self.sessions.len() {
            if (self.sessions[i].child, self.sessions[i].parent) == link {
                self.cut_session(i, "the link was cut");
            }
        }
    }

    fn heal_link(&mut self) {
        let down: Vec<_> = self.down_links.iter().copied().collect();
        if let Some(link) = self.pick(&down) {
            self.down_links.remove(&link);
            self.note(format!("link {} -> {} healed", link.0, link.1));
        }
    }

    /// A node dies between two steps: its side of every session is gone with whatever it
    /// held in memory; what it committed stays in its database.
    async fn crash(&mut self) -> Result<(), String> {
        let live: Vec<OrgCode> = self
            .nodes
            .values()
            .filter(|n| n.store.is_some())
            .map(|n| n.org)
            .collect();
        let Some(at) = self.pick(&live) else {
            return Ok(());
        };
        for i in 0..self.sessions.len() {
            let s = &mut self.sessions[i];
            if s.child == at {
                s.cq.clear();
                s.child_done = true;
                s.result = Some(Err("the child crashed".into()));
            }
            if s.parent == at {
                s.pq.clear();
                s.parent_done = true;
            }
            if s.child == at || s.parent == at {
                self.cut_session(i, "the peer crashed");
            }
        }
        if let Some(node) = self.nodes.get_mut(&at)
            && let Some(store) = node.store.take()
        {
            store.close().await;
        }
        self.note(format!("{at} crashed"));
        self.retire();
        Ok(())
    }

    async fn restart(&mut self) -> Result<(), String> {
        let down: Vec<OrgCode> = self
            .nodes
            .values()
            .filter(|n| n.store.is_none())
            .map(|n| n.org)
            .collect();
        let Some(at) = self.pick(&down) else {
            return Ok(());
        };
        let url = self.nodes[&at].url.clone();
        let store = open(&url, &self.schema, at).await?;
        if let Some(node) = self.nodes.get_mut(&at) {
            node.store = Some(store);
        }
        self.note(format!("{at} restarted"));
        Ok(())
    }

    /// A clerk writes a bundle for the parent (or, at a county, for a township below).
    async fn export_bundle(&mut self) -> Result<(), String> {
        let mut pairs = Vec::new();
        for node in self.nodes.values().filter(|n| n.store.is_some()) {
            if let Some(parent) = node.upstreams.first() {
                pairs.push((node.org, *parent));
            }
            for below in self.nodes.values() {
                if below.upstreams.first() == Some(&node.org) {
                    pairs.push((node.org, below.org));
                }
            }
        }
        let Some((from, to)) = self.pick(&pairs) else {
            return Ok(());
        };
        let store = self.store(from).ok_or("a live node has no store")?;
        let prepared = bundle::prepare(&store, to, false)
            .await
            .map_err(|e| format!("bundle {from} -> {to}: {e}"))?;
        prepared
            .written(&store)
            .await
            .map_err(|e| format!("bundle {from} -> {to}: {e}"))?;
        let direction = if to.contains(from) {
            renda_sync::authority::Direction::FromChild(from)
        } else {
            renda_sync::authority::Direction::FromParent(from)
        };
        self.note(format!(
            "bundle {from} -> {to} with {} ops",
            prepared.bundle.ops.len()
        ));
        self.carried.push(Carried {
            to,
            verified: Verified {
                from,
                direction,
                bundle: prepared.bundle,
            },
        });
        Ok(())
    }

    /// A carried bundle is imported: any of them, in any order; sometimes it is kept on the
    /// stick and imported again, sometimes lost.
    async fn import_bundle(&mut self) -> Result<(), String> {
        if self.carried.is_empty() {
            return Ok(());
        }
        let i = self.rng.random_range(0..self.carried.len());
        let to = self.carried[i].to;
        let Some(store) = self.store(to) else {
            return Ok(());
        };
        let keep = self.rng.random_bool(0.2);
        let lose = self.rng.random_bool(0.1);
        let carried = if keep {
            Carried {
                to,
                verified: Verified {
                    from: self.carried[i].verified.from,
                    direction: self.carried[i].verified.direction,
                    bundle: self.carried[i].verified.bundle.clone(),
                },
            }
        } else {
            self.carried.swap_remove(i)
        };
        if lose {
            self.note(format!("a bundle for {to} was lost"));
            return Ok(());
        }
        let from = carried.verified.from;
        let report = bundle::apply(&store, &self.policy, carried.verified)
            .await
            .map_err(|e| format!("importing a bundle from {from} at {to}: {e}"))?;
        self.note(format!(
            "bundle {from} -> {to} imported: {} applied, {} duplicates",
            report.applied, report.duplicates
        ));
        Ok(())
    }

    /// Ends the schedule: every link heals, every node restarts, sessions in flight finish
    /// or break, and clean rounds run (townships, then counties) until one moves nothing.
    async fn heal(&mut self) -> Result<(), String> {
        self.note("healing".into());
        for i in 0..self.sessions.len() {
            self.cut_session(i, "the schedule ended");
        }
        while !self.sessions.is_empty() {
            for i in 0..self.sessions.len() {
                if !self.sessions[i].cq.is_empty() {
                    self.child_step(i).await?;
                }
                if !self.sessions[i].pq.is_empty() {
                    self.parent_step(i).await?;
                }
            }
            self.sessions
                .retain(|s| !(s.cq.is_empty() && s.pq.is_empty()));
        }
        self.down_links.clear();
        while self.nodes.values().any(|n| n.store.is_none()) {
            self.restart().await?;
        }
        let mut children: Vec<(OrgCode, OrgCode)> = self
            .nodes
            .values()
            .filter_map(|n| n.upstreams.first().map(|up| (n.org, *up)))
            .collect();
        // Townships first, then counties: what goes up reaches the city in one round.
        children.sort_by_key(|(child, _)| std::cmp::Reverse(child.level()));
        for round in 0..10 {
            let mut moved = 0;
            for &(child, parent) in &children {
                moved += self.clean_session(child, parent).await?;
            }
            if moved == 0 {
                self.note(format!("quiet after {round} rounds"));
                return Ok(());
            }
        }
        Err("ten clean rounds still moved operations".into())
    }

    /// Runs one session to its end with nothing going wrong; returns what it moved.
    async fn clean_session(&mut self, child: OrgCode, parent: OrgCode) -> Result<u64, String> {
        self.open_session(child, parent).await?;
        let i = self.sessions.len() - 1;
        loop {
            let s = &self.sessions[i];
            if s.child_done {
                break;
            }
            if !s.cq.is_empty() {
                self.child_step(i).await?;
            } else if !s.up.is_empty() {
                self.deliver_up(i);
            } else if !s.pq.is_empty() {
                self.parent_step(i).await?;
            } else if !s.down.is_empty() {
                self.deliver_down(i);
            } else {
                return Err(format!("clean session {child} -> {parent} stalled"));
            }
        }
        // The parent's last steps (its sync state) may still be queued.
        while !self.sessions[i].pq.is_empty() {
            self.parent_step(i).await?;
        }
        let s = self.sessions.remove(i);
        match s.result {
            Some(Ok(report)) => Ok(report.pushed + report.pulled),
            Some(Err(e)) => Err(format!("clean session {child} -> {parent} failed: {e}")),
            None => Err(format!(
                "clean session {child} -> {parent} ended without a result"
            )),
        }
    }

    /// What users rely on, at the end of every schedule.
    async fn check(&mut self) -> Result<(), String> {
        let codes: Vec<OrgCode> = self.nodes.keys().copied().collect();
        for &unit in &codes {
            let expected: u64 = self
                .written
                .values()
                .filter(|(home, _)| unit.contains(*home))
                .map(|(_, ops)| ops)
                .sum();
            let records = self
                .written
                .values()
                .filter(|(home, _)| unit.contains(*home))
                .count() as u64;
            // The unit itself and every node above it hold the unit's whole scope.
            for &holder in codes.iter().filter(|h| h.contains(unit)) {
                let store = self.store(holder).ok_or("a node is still down")?;
                let digest = store
                    .digest(unit, None)
                    .await
                    .map_err(|e| format!("digest of {unit} at {holder}: {e}"))?;
                if digest.total.ops != expected || digest.total.records != records {
                    return Err(format!(
                        "{holder} holds {} records and {} operations of {unit}'s scope; \
                         {records} records and {expected} operations were written",
                        digest.total.records, digest.total.ops
                    ));
                }
                let own = self
                    .store(unit)
                    .ok_or("a node is still down")?
                    .digest(unit, None)
                    .await
                    .map_err(|e| format!("digest of {unit}: {e}"))?;
                if digest.total != own.total {
                    return Err(format!(
                        "{holder}'s view of {unit}'s scope differs from {unit}'s own: {:?} vs {:?}",
                        digest.total, own.total
                    ));
                }
            }
        }
        for &at in &codes {
            let store = self.store(at).ok_or("a node is still down")?;
            let quarantined = store
                .quarantine(100)
                .await
                .map_err(|e| format!("quarantine at {at}: {e}"))?;
            if let Some(q) = quarantined.first() {
                return Err(format!(
                    "{at} has {} operations in quarantine, the first from {:?}: {}",
                    quarantined.len(),
                    q.from,
                    q.reason
                ));
            }
            let held = store
                .held_count()
                .await
                .map_err(|e| format!("held at {at}: {e}"))?;
            if held > 0 {
                return Err(format!("{at} still holds {held} operations"));
            }
        }
        for node in self.nodes.values_mut() {
            if let Some(store) = node.store.take() {
                store.close().await;
            }
        }
        Ok(())
    }
}

/// Now and then the network duplicates the next message, or delivers one from further back
/// in the queue first.
fn disturb<M: Clone>(queue: &mut VecDeque<Wire<M>>, fault: u32, depth: usize) {
    match fault {
        0..=1 => {
            if let Some(Wire::Msg(msg)) = queue.front() {
                let copy = msg.clone();
                queue.push_front(Wire::Msg(copy));
            }
        }
        2..=3 if queue.len() >= 2 => queue.swap(0, 1 + depth % (queue.len() - 1)),
        _ => {}
    }
}

async fn open(
    url: &str,
    schema: &Arc<renda_replica::schema::Schema>,
    at: OrgCode,
) -> Result<Store, String> {
    Store::open(url, schema.clone(), at, Options::default())
        .await
        .map_err(|e| format!("opening {at}'s store: {e}"))
}
