//! The control plane's state and the one place requests are answered: the operator rule
//! set, the ids it maps to, and the path from a change to a published snapshot:
//! validate → compile → write the state file → publish → reply. Any failure before the
//! publish leaves everything (rules, ids, state file, running snapshot) as it was.
//!
//! A change costs what it touches: it is applied to the model in place (with an undo log),
//! only the services it names get new ids and are compiled, and the snapshot is the one in
//! force with those services replaced (see `snapshots`). `restore`, `flush` and `reload`
//! replace everything and compile everything, as one change.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use fnat_proto::health::ServiceOverlay;
use fnat_proto::model::Service;
use parking_lot::Mutex;

use fnat_engine::rules::{EditStep, Mode, Rules, ServiceEdits, Timeouts};
use fnat_proto::edit::Change;
use fnat_proto::model::{IpvsTimeouts, RuleSet, ServiceAddr};
use fnat_proto::msg::{ErrorBody, ErrorKind, Query, Request, Response};
use fnat_proto::stats::{Applied, Listing, RealStats, ServiceStats, Status, VipStatus};

use super::compile::{check_mode, compile_service, snapshot, timeouts};
use super::ids::{IdBook, IdUndo};
use super::model::{Model, Structural, Tx};
use super::snapshots::{Builder, Edit};
use super::state_file::StateFile;
use super::DataplaneView;
use crate::rules_store::RulesStore;

/// How long a publish may wait for every worker to switch.
const PUBLISH_WAIT: Duration = Duration::from_secs(5);
/// Most connection entries one request returns.
const MAX_CONNECTIONS_LISTED: usize = 1_000_000;
const DEFAULT_CONNECTIONS_LISTED: usize = 10_000;

/// What a request gets: its reply now, or once the workers run the generation stored.
pub enum Answer {
    Now(Response),
    Stored {
        generation: u64,
        store: Arc<RulesStore>,
    },
}

impl Answer {
    /// The reply; for a change, after every running worker switched (or the wait ran out).
    /// Call it without the control plane's lock.
    pub fn finish(self) -> Response {
        match self {
            Answer::Now(r) => r,
            Answer::Stored { generation, store } => {
                finish(&store, generation).unwrap_or_else(Response::error)
            }
        }
    }
}

/// Waits until every running worker runs `generation`.
fn finish(store: &RulesStore, generation: u64) -> Result<Response, ErrorBody> {
    store
        .wait_for(generation, PUBLISH_WAIT)
        .map(|generation| Response::ok(Applied { generation }))
        .map_err(|e| error(ErrorKind::Internal, e.to_string()))
}

pub struct Plane {
    model: Model,
    pub ids: IdBook,
    builder: Builder,
    pub store: Arc<RulesStore>,
    pub view: Arc<dyn DataplaneView>,
    /// The config's timeouts, before ipvsadm's `--set` overrides.
    pub base_timeouts: Timeouts,
    /// The state file, when the config names one.
    state: Option<StateFile>,
    pub socket: PathBuf,
    pub started: Instant,
    /// The config file the daemon started from (what `reload` re-reads).
    pub config_path: PathBuf,
    /// The keepalived.conf it started with, re-read with the config.
    pub keepalived_path: Option<PathBuf>,
    /// What health checking does to the live table, per service: applied on top of the
    /// operator's rules when compiling, never written into them (nor the state file).
    overlay: HashMap<ServiceAddr, ServiceOverlay>,
    /// The health checker, and the epoch its overlays must carry (a reload starts another).
    health: Option<fnat_health::Monitor>,
    health_epoch: u64,
    /// The VRRP service, one thread per kernel twin with instances (control side, never on
    /// workers), with the instances it runs.
    vrrp: Vec<(Vec<crate::config::VrrpRun>, fnat_vrrp::service::Runner)>,
    /// The VRRP addresses this director is not master of, once VRRP has said so (`None`:
    /// the config's, all of them, until then): put in every snapshot published.
    standby: Option<Vec<std::net::Ipv4Addr>>,
    /// The last gratuitous-ARP request of VRRP (a new round each time).
    garp: fnat_engine::rules::GarpRequest,
    /// This plane, for the health checker's sink.
    me: Weak<Mutex<Plane>>,
    /// `fnatctl drain` without VIPs: no VIP is announced (not kept across a restart).
    drain_all: bool,
    /// VIPs `fnatctl drain` named.
    drained: BTreeSet<Ipv4Addr>,
    /// The session sync daemons running: [`SyncDaemons::running`] of the config's and
    /// those `ipvsadm --start-daemon` started (kept in the rule set, so in save/restore and
    /// the state file).
    ///
    /// [`SyncDaemons::running`]: fnat_proto::sync::SyncDaemons::running
    sync_daemons: fnat_proto::sync::SyncDaemons,
    /// The daemons the config files gave (at start or the last reload; less one that
    /// `--stop-daemon` stopped since): a reload that changes them replaces the running
    /// ones; one that does not keeps ipvsadm's.
    config_sync: fnat_proto::sync::SyncDaemons,
}

/// The live form of `s`: with what health checking did to it.
fn live<'a>(overlay: &HashMap<ServiceAddr, ServiceOverlay>, s: &'a Service) -> Cow<'a, Service> {
    match overlay.get(&s.addr) {
        Some(o) => Cow::Owned(o.apply(s)),
        None => Cow::Borrowed(s),
    }
}

/// The live table: every service in its live form.
fn live_rules<'a>(
    overlay: &HashMap<ServiceAddr, ServiceOverlay>,
    rules: &'a RuleSet,
) -> Cow<'a, RuleSet> {
    if overlay.is_empty() {
        return Cow::Borrowed(rules);
    }
    Cow::Owned(RuleSet {
        timeouts: rules.timeouts,
        marks: rules.marks.clone(),
        services: rules
            .services
            .iter()
            .map(|s| live(overlay, s).into_owned())
            .collect(),
        sync: rules.sync.clone(),
    })
}

/// The health checker's way into the plane: each overlay is a change through
/// [`Plane::set_health`], published like any other and waited for without the lock.
struct PlaneSink(Weak<Mutex<Plane>>);

impl fnat_health::Sink for PlaneSink {
    fn apply(
        &self,
        epoch: u64,
        service: ServiceAddr,
        overlay: ServiceOverlay,
    ) -> Result<(), String> {
        let Some(plane) = self.0.upgrade() else {
            return Err("the control plane has stopped".into());
        };
        let answer = {
            let mut p = plane.lock();
            match p.set_health(epoch, service, overlay) {
                Ok(Some(generation)) => Answer::Stored {
                    generation,
                    store: Arc::clone(&p.store),
                },
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.message),
            }
        };
        match answer.finish().error {
            None => Ok(()),
            Some(e) => Err(e.message),
        }
    }
}

/// The edits of the snapshot made from `current` by setting the services `set` (ids): those
/// that made `current`, then this step.
fn edits_after(current: &Rules, mut set: Vec<u32>) -> ServiceEdits {
    set.sort_unstable();
    set.dedup();
    let step = EditStep {
        from: current.generation,
        services: set.into(),
    };
    match &current.edits {
        Some(e) => e.then(step),
        None => ServiceEdits::default().then(step),
    }
}

fn error(kind: ErrorKind, message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        kind,
        message: message.into(),
    }
}

impl Plane {
    /// Answers `request`. A change is validated, compiled, journalled and stored under the
    /// caller's lock; waiting for the workers to switch is left to [`Answer::finish`], which
    /// callers run without the lock, so that a listing never waits behind a slow publish.
    pub fn handle(&mut self, request: Request) -> Answer {
        let stored = match request {
            Request::Change(change) => self.change_stored(std::slice::from_ref(&change)),
            Request::Query(Query::Apply { changes }) => self.change_stored(&changes),
            Request::Query(Query::Reload) => self.reload_stored(),
            Request::Query(q) => {
                return Answer::Now(self.query(q).unwrap_or_else(Response::error));
            }
        };
        match stored {
            Ok(generation) => Answer::Stored {
                generation,
                store: Arc::clone(&self.store),
            },
            Err(e) => Answer::Now(Response::error(e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rules: RuleSet,
        ids: IdBook,
        store: Arc<RulesStore>,
        view: Arc<dyn DataplaneView>,
        base_timeouts: Timeouts,
        state: Option<StateFile>,
        socket: PathBuf,
        config_path: PathBuf,
    ) -> Plane {
        Plane {
            model: Model::new(rules),
            ids,
            builder: Builder::default(),
            store,
            view,
            base_timeouts,
            state,
            socket,
            started: Instant::now(),
            config_path,
            keepalived_path: None,
            overlay: HashMap::new(),
            health: None,
            health_epoch: 0,
            vrrp: Vec::new(),
            standby: None,
            garp: Default::default(),
            me: Weak::new(),
            drain_all: false,
            drained: BTreeSet::new(),
            sync_daemons: Default::default(),
            config_sync: Default::default(),
        }
    }

    /// Runs `daemons` (the config's and keepalived.conf's at start): the dataplane's sync
    /// service starts them; a daemon that cannot run yet is logged and retried by it.
    pub fn set_sync_daemons(&mut self, daemons: fnat_proto::sync::SyncDaemons) {
        self.config_sync = daemons;
        self.sync_reconcile();
    }

    /// Runs the config's daemons and the rule set's (after a change that may have replaced
    /// them: restore, reload, the state file at start).
    fn sync_reconcile(&mut self) {
        let running =
            fnat_proto::sync::SyncDaemons::running(&self.config_sync, &self.model.rules().sync);
        if running == self.sync_daemons {
            return;
        }
        if let Some(sync) = self.view.sync() {
            if let Err(e) = sync.configure(&running) {
                eprintln!("fnatd: sync: {e}");
            }
        }
        self.sync_daemons = running;
    }

    fn sync_status(&self) -> fnat_proto::sync::SyncStatus {
        match self.view.sync() {
            Some(sync) => sync.status(),
            None => fnat_proto::sync::SyncStatus::default(),
        }
    }

    /// ipvsadm --start-daemon / --stop-daemon: the one validator (on the running daemons,
    /// so a role the config runs is "already running"), the service, then the rule set
    /// (journalled in the state file) for a daemon ipvsadm starts or stops; stopping one of
    /// the config's stops it until the next reload. A refused change leaves the running
    /// daemons as they were.
    fn sync_change(
        &mut self,
        role: fnat_proto::sync::SyncRole,
        start: Option<fnat_proto::sync::SyncDaemon>,
    ) -> Result<Response, ErrorBody> {
        use fnat_proto::edit::Change;
        let mut next = self.sync_daemons.clone();
        match &start {
            Some(d) => next.start(role, d.clone()),
            None => next.stop(role),
        }
        .map_err(|e| error(ErrorKind::Invalid, e))?;
        next.validate().map_err(|e| error(ErrorKind::Invalid, e))?;
        let Some(sync) = self.view.sync() else {
            return Err(error(
                ErrorKind::Unsupported,
                "no dataplane sync service (fnatd runs without workers)",
            ));
        };
        sync.configure(&next)
            .map_err(|e| error(ErrorKind::Invalid, e))?;
        let before = std::mem::replace(&mut self.sync_daemons, next);
        let config_before = self.config_sync.clone();
        if start.is_none() {
            *self.config_sync.slot(role) = None;
        }
        let record = match start {
            Some(daemon) => Some(Change::SyncStart { role, daemon }),
            None => self
                .model
                .rules()
                .sync
                .get(role)
                .is_some()
                .then_some(Change::SyncStop { role }),
        };
        if let Some(change) = record {
            if let Err(e) = self.change_stored(&[change]) {
                // Not recorded: back to the daemons that ran.
                let _ = sync.configure(&before);
                self.sync_daemons = before;
                self.config_sync = config_before;
                return Err(e);
            }
        }
        Ok(Response::ok(self.sync_status()))
    }

    /// Starts the VRRP service of `runs`: one thread per kernel twin (it opens the twin once
    /// the dataplane has made it).
    pub fn start_vrrp(
        &mut self,
        runs: &[crate::config::VrrpRun],
        context: &fnat_vrrp::service::Context,
    ) {
        let mut twins: Vec<&str> = runs.iter().map(|r| r.twin.as_str()).collect();
        twins.sort_unstable();
        twins.dedup();
        for twin in twins {
            let mine: Vec<_> = runs.iter().filter(|r| r.twin == twin).cloned().collect();
            let configs = mine.iter().map(|r| r.instance.clone()).collect();
            let me = self.me.clone();
            let vips: Vec<Vec<std::net::Ipv4Addr>> =
                mine.iter().map(|r| r.instance.addresses.clone()).collect();
            let names: Vec<String> = mine.iter().map(|r| r.instance.name.clone()).collect();
            let sync = self.view.sync();
            let (garp_plane, garp_vips) = (self.me.clone(), vips.clone());
            let on_garp: fnat_vrrp::service::OnGarp = Box::new(move |k, repeat| {
                let Some(plane) = garp_plane.upgrade() else {
                    return;
                };
                let result = plane.lock().announce(&garp_vips[k], repeat);
                if let Err(e) = result {
                    eprintln!("fnatd: vrrp: asking for gratuitous ARPs: {}", e.message);
                }
            });
            let on_state: fnat_vrrp::service::OnState = Box::new(move |k, state| {
                let master = state == fnat_vrrp::machine::State::Master;
                // Session sync follows the instance (lvs_sync_daemon IF VI_NAME): sending
                // while MASTER, receiving otherwise.
                if let (Some(sync), Some(name)) = (&sync, names.get(k)) {
                    sync.vrrp_state(name, master);
                }
                let Some(plane) = me.upgrade() else {
                    return;
                };
                let result = plane.lock().set_vrrp_master(&vips[k], master);
                if let Err(e) = result {
                    eprintln!("fnatd: vrrp: publishing the VIPs' ownership: {}", e.message);
                }
            });
            match fnat_vrrp::service::Runner::spawn(
                twin.to_string(),
                mine[0].primary,
                configs,
                on_state,
                on_garp,
                context.clone(),
            ) {
                Ok(runner) => {
                    eprintln!(
                        "fnatd: vrrp: {} instance(s) on port '{}' (twin {twin})",
                        mine.len(),
                        mine[0].port
                    );
                    self.vrrp.push((mine, runner));
                }
                Err(e) => eprintln!("fnatd: vrrp: cannot start on {twin}: {e}"),
            }
        }
    }

    /// VRRP asks for `repeat` gratuitous ARPs of each of `vips` (keepalived's schedule): the
    /// snapshot's totals grow, published like any change; worker 0 sends the difference for
    /// the addresses it owns.
    pub fn announce(&mut self, vips: &[std::net::Ipv4Addr], repeat: u32) -> Result<u64, ErrorBody> {
        let previous = self.garp.clone();
        self.garp.add(vips, repeat);
        self.commit(&Tx::default(), &[]).inspect_err(|_| {
            self.garp = previous;
        })
    }

    /// VRRP made this director master (`true`) or not of `vips`: they leave (join) the
    /// snapshot's standby list, so the workers answer ARP for them and serve them (or drop
    /// their traffic as `vrrp_backup`); a takeover is announced by the engine's gratuitous
    /// ARP. Published like any change; not written to the state file.
    pub fn set_vrrp_master(
        &mut self,
        vips: &[std::net::Ipv4Addr],
        master: bool,
    ) -> Result<Option<u64>, ErrorBody> {
        let mut standby = self
            .standby
            .clone()
            .unwrap_or_else(|| self.store.current().standby.clone());
        let before = standby.clone();
        standby.retain(|a| !vips.contains(a));
        if !master {
            standby.extend_from_slice(vips);
        }
        standby.sort_unstable();
        standby.dedup();
        if standby == before && self.standby.is_some() {
            return Ok(None);
        }
        let previous = self.standby.replace(standby);
        match self.commit(&Tx::default(), &[]) {
            Ok(generation) => Ok(Some(generation)),
            Err(e) => {
                self.standby = previous;
                Err(e)
            }
        }
    }

    /// Takes the VRRP service out (to stop it without the plane's lock: a clean stop sends
    /// priority 0 from every master).
    pub fn take_vrrp(&mut self) -> Vec<fnat_vrrp::service::Runner> {
        self.vrrp.drain(..).map(|(_, r)| r).collect()
    }

    fn vrrp_listing(&self) -> fnat_proto::vrrp::VrrpListing {
        let mut instances = Vec::new();
        for (runs, runner) in &self.vrrp {
            let shared = runner.status();
            for (run, st) in runs.iter().zip(&shared.statuses) {
                instances.push(fnat_proto::vrrp::VrrpInstanceStatus {
                    name: st.name.clone(),
                    interface: run.port.clone(),
                    twin: run.twin.clone(),
                    virtual_router_id: st.vrid,
                    state: st.state.name().to_string(),
                    priority: st.priority,
                    effective_priority: st.effective_priority,
                    master: st.master.map(|m| m.to_string()),
                    virtual_ipaddress: run
                        .instance
                        .addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect(),
                    counters: st
                        .counters
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect(),
                    error: shared.error.clone(),
                });
            }
        }
        fnat_proto::vrrp::VrrpListing { instances }
    }

    /// Gives the plane its own handle (for the health checker) and starts checking `config`.
    pub fn start_health(plane: &Arc<Mutex<Plane>>, config: fnat_health::HealthConfig) {
        let mut p = plane.lock();
        p.me = Arc::downgrade(plane);
        p.restart_health(config);
    }

    /// Replaces the health checker by one checking `config` (checkers it had keep their
    /// state); overlays of services no longer checked are dropped by the caller.
    fn restart_health(&mut self, config: fnat_health::HealthConfig) {
        let previous = self.health.take();
        self.health_epoch += 1;
        if !config.is_empty() {
            let sink: Arc<dyn fnat_health::Sink> = Arc::new(PlaneSink(self.me.clone()));
            let checkers = config.checker_count();
            match fnat_health::Monitor::start(config, sink, self.health_epoch, previous.as_ref()) {
                Ok(m) => {
                    eprintln!("fnatd: health: checking {checkers} checkers");
                    // What the checker holds from the start (alpha servers out, a quorum
                    // already lost) is in force before its first probe; its thread hands the
                    // same overlays over again once this lock is free (a no-op publish).
                    let initial = m.overlays();
                    self.health = Some(m);
                    for (addr, overlay) in initial {
                        if let Err(e) = self.set_health(self.health_epoch, addr, overlay) {
                            eprintln!("fnatd: health: {addr}: {}", e.message);
                        }
                    }
                }
                Err(e) => eprintln!("fnatd: health: cannot start the checker: {e}"),
            }
        }
        if let Some(p) = previous {
            p.stop();
        }
    }

    /// Takes the health checker out (to stop it without the plane's lock).
    pub fn take_health(&mut self) -> Option<fnat_health::Monitor> {
        self.health_epoch += 1;
        self.health.take()
    }

    /// Puts the health checker's `overlay` of `addr` in force: the service is compiled in its
    /// live form and published like any change; the operator's rules and the state file are
    /// untouched. `Ok(None)`: nothing to publish (an old checker, or a service not in the
    /// rules, whose overlay is kept for when it comes back).
    pub fn set_health(
        &mut self,
        epoch: u64,
        addr: ServiceAddr,
        overlay: ServiceOverlay,
    ) -> Result<Option<u64>, ErrorBody> {
        if epoch != self.health_epoch {
            return Ok(None);
        }
        let unchanged = match self.overlay.get(&addr) {
            Some(current) => *current == overlay,
            None => overlay.is_empty(),
        };
        if unchanged {
            return Ok(None);
        }
        let before = if overlay.is_empty() {
            self.overlay.remove(&addr)
        } else {
            self.overlay.insert(addr, overlay)
        };
        if self.model.position(&addr).is_none() {
            return Ok(None);
        }
        let mut tx = Tx::default();
        tx.touched.push(addr);
        match self.commit(&tx, &[]) {
            Ok(generation) => Ok(Some(generation)),
            Err(e) => {
                match before {
                    Some(o) => self.overlay.insert(addr, o),
                    None => self.overlay.remove(&addr),
                };
                Err(e)
            }
        }
    }

    /// The operator's rules in force.
    #[cfg(test)]
    pub fn rules(&self) -> &RuleSet {
        self.model.rules()
    }

    /// Applies `changes` all-or-nothing and publishes the result, waiting for the workers
    /// (tests; requests go through [`Plane::handle`], which waits without the lock).
    #[cfg(test)]
    pub fn change(&mut self, changes: &[Change]) -> Result<Response, ErrorBody> {
        let generation = self.change_stored(changes)?;
        finish(&self.store, generation)
    }

    /// Applies `changes` all-or-nothing and stores the snapshot for the workers: the
    /// generation they are to switch to.
    pub fn change_stored(&mut self, changes: &[Change]) -> Result<u64, ErrorBody> {
        let tx = self.model.apply(changes)?;
        match self.commit(&tx, changes) {
            // Stored even when a worker is slow to acknowledge: the model follows the store.
            Ok(generation) => {
                // restore / -R lines may have changed the daemons ipvsadm started.
                if changes.iter().any(|c| {
                    matches!(
                        c,
                        Change::Replace { .. } | Change::SyncStart { .. } | Change::SyncStop { .. }
                    )
                }) {
                    self.sync_reconcile();
                }
                Ok(generation)
            }
            Err(e) => {
                self.model.rollback(tx);
                Err(e)
            }
        }
    }

    /// Ids, snapshot, state file and publication for a change already applied to the model.
    /// An `Err` means nothing was stored and the ids are as they were (the caller rolls the
    /// model back); else the generation stored for the workers.
    fn commit(&mut self, tx: &Tx, changes: &[Change]) -> Result<u64, ErrorBody> {
        let current = self.store.current();
        check_mode(&current, self.model.rules())?;
        // The services the change named, in list order (the order a full compile would
        // meet them in: same fresh ids, same first error); those gone are forgotten.
        let mut undo: Vec<IdUndo> = Vec::new();
        let mut whole_ids = None;
        let mut named: Vec<usize> = Vec::new();
        if tx.whole {
            whole_ids = Some(self.ids.clone());
            self.ids
                .assign(&live_rules(&self.overlay, self.model.rules()));
        } else {
            for addr in &tx.touched {
                match self.model.position(addr) {
                    Some(i) => named.push(i),
                    None => undo.push(self.ids.forget(addr)),
                }
            }
            named.sort_unstable();
            for &i in &named {
                let service = live(&self.overlay, &self.model.rules().services[i]);
                undo.push(self.ids.assign_service(&service));
            }
        }
        let built = self
            .build(&current, tx, &named)
            .and_then(|(snapshot, edits)| {
                // The state file keeps the operator's rules: health changes are not journalled.
                let operator_change = tx.whole || !changes.is_empty();
                if let Some(state) = self.state.as_mut().filter(|_| operator_change) {
                    state
                        .record(self.model.rules(), changes, tx.whole)
                        .map_err(|e| error(ErrorKind::Internal, e))?;
                }
                Ok((snapshot, edits))
            });
        let (mut snapshot, edits) = match built {
            Ok(b) => b,
            Err(e) => {
                self.builder.reset();
                match whole_ids {
                    Some(ids) => self.ids = ids,
                    None => {
                        for u in undo.into_iter().rev() {
                            self.ids.undo(u);
                        }
                    }
                }
                return Err(e);
            }
        };
        snapshot.garp.clone_from(&self.garp);
        if let Some(standby) = &self.standby {
            snapshot.standby.clone_from(standby);
        }
        let generation = self.store.store(snapshot);
        self.builder.published(current, edits);
        Ok(generation)
    }

    /// The snapshot after `tx`: the one in force with the services at `named` (positions in
    /// the model) compiled anew and the additions and removals mirrored, or everything
    /// compiled when the change replaced everything. With the edits that made it.
    fn build(
        &mut self,
        current: &Rules,
        tx: &Tx,
        named: &[usize],
    ) -> Result<(Rules, Option<Vec<Edit>>), ErrorBody> {
        let rules = self.model.rules();
        let compile_all = || -> Result<Rules, ErrorBody> {
            let services = rules
                .services
                .iter()
                .map(|s| {
                    compile_service(
                        &live(&self.overlay, s),
                        &rules.marks,
                        &self.ids,
                        &current.ports,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(snapshot(current, &self.base_timeouts, rules, services))
        };
        if tx.whole {
            // Replaced whole (reload, restore): the one comparison is made here, once, so
            // that workers are handed the services that differ instead of each comparing.
            let mut next = compile_all()?;
            let before: HashMap<u32, &fnat_engine::rules::Service> =
                current.services.iter().map(|s| (s.id, s)).collect();
            let set = next
                .services
                .iter()
                .filter(|s| before.get(&s.id) != Some(s))
                .map(|s| s.id)
                .collect();
            next.edits = Some(edits_after(current, set));
            return Ok((next, None));
        }
        let mut edits: Vec<Edit> = tx
            .structure
            .iter()
            .map(|s| match *s {
                Structural::Push => Edit::Push,
                Structural::Remove(i) => Edit::Remove(i),
            })
            .collect();
        for &i in named {
            edits.push(Edit::Set(
                i,
                compile_service(
                    &live(&self.overlay, &rules.services[i]),
                    &rules.marks,
                    &self.ids,
                    &current.ports,
                )?,
            ));
        }
        let mut next = self.builder.next(current, &edits);
        next.timeouts = timeouts(&self.base_timeouts, rules);
        // Workers running `current` (or an earlier generation the edits reach back to) set
        // just these services, added ones included; removed ones are gone from the list.
        let set = named
            .iter()
            .filter_map(|&i| next.services.get(i).map(|s| s.id))
            .collect();
        next.edits = Some(edits_after(current, set));
        if next.services.len() != rules.services.len() {
            // Never expected: the engine's list follows the model's position by position.
            // Recover by compiling everything.
            self.builder.reset();
            return Ok((compile_all()?, None));
        }
        Ok((next, Some(edits)))
    }

    /// Folds the state file's journal into its TOML (at a clean stop).
    pub fn compact_state(&mut self) -> Result<(), String> {
        match self.state.as_mut() {
            Some(state) if state.has_journal() => state.compact(self.model.rules()),
            _ => Ok(()),
        }
    }

    fn effective_timeouts(&self) -> IpvsTimeouts {
        let t = timeouts(&self.base_timeouts, self.model.rules());
        IpvsTimeouts {
            tcp: t.tcp_established,
            tcp_fin: t.tcp_fin_wait,
            udp: t.udp,
        }
    }

    fn query(&mut self, q: Query) -> Result<Response, ErrorBody> {
        match q {
            Query::Status => Ok(Response::ok(self.status())),
            Query::TimeoutGet => Ok(Response::ok(self.effective_timeouts())),
            Query::List { service } => Ok(Response::ok(self.listing(service)?)),
            Query::Connections { filter, limit } => {
                let limit = limit
                    .unwrap_or(DEFAULT_CONNECTIONS_LISTED)
                    .min(MAX_CONNECTIONS_LISTED);
                Ok(Response::ok(self.view.connections(&filter, limit)))
            }
            Query::Zero { service } => {
                let id = match service {
                    Some(s) => {
                        if self.model.service(&s).is_none() {
                            return Err(error(ErrorKind::NoSuchService, "No such service"));
                        }
                        Some(self.ids.service(&s).ok_or_else(|| {
                            error(ErrorKind::Internal, "service without an engine id")
                        })?)
                    }
                    None => None,
                };
                self.view.zero(id);
                Ok(Response::ok(serde_json::json!({})))
            }
            Query::Health => Ok(Response::ok(
                self.health
                    .as_ref()
                    .map(|m| m.listing())
                    .unwrap_or_default(),
            )),
            Query::Drain { vips } => {
                if vips.is_empty() {
                    self.drain_all = true;
                } else {
                    self.drained.extend(vips);
                }
                Ok(Response::ok(self.status()))
            }
            Query::Undrain { vips } => {
                if vips.is_empty() {
                    self.drain_all = false;
                    self.drained.clear();
                } else if self.drain_all {
                    return Err(error(
                        ErrorKind::Invalid,
                        "the whole daemon is draining; `fnatctl undrain` without VIPs ends it",
                    ));
                } else {
                    for v in &vips {
                        self.drained.remove(v);
                    }
                }
                Ok(Response::ok(self.status()))
            }
            Query::Vrrp => Ok(Response::ok(self.vrrp_listing())),
            Query::Sync => Ok(Response::ok(self.sync_status())),
            Query::SyncStart { role, daemon } => self.sync_change(role, Some(daemon)),
            Query::SyncStop { role } => self.sync_change(role, None),
            Query::Apply { .. } => Err(error(ErrorKind::Internal, "apply is a change")),
            Query::Reload => self.reload(),
        }
    }

    /// Re-reads the config file: its services, local addresses and timeouts replace the live
    /// ones, published like any change. A file that does not validate, or whose rules the
    /// engine cannot run, leaves everything as it was and says why. Ports, EAL and dataplane
    /// sizes are read only at start.
    pub fn reload(&mut self) -> Result<Response, ErrorBody> {
        let generation = self.reload_stored()?;
        finish(&self.store, generation)
    }

    /// [`Plane::reload`] up to storing the snapshot: the generation stored.
    pub fn reload_stored(&mut self) -> Result<u64, ErrorBody> {
        let unchanged = "; the running rules are unchanged";
        let (cfg, warnings) = crate::config::AppConfig::load_with_keepalived(
            &self.config_path,
            self.keepalived_path.as_deref(),
        )
        .map_err(|e| error(ErrorKind::Invalid, format!("config reload: {e}{unchanged}")))?;
        for w in warnings {
            eprintln!("fnatd: reload: {w}");
        }
        let mut rules = cfg.rule_set;
        let config_sync_changed = cfg.sync != self.config_sync;
        if !config_sync_changed {
            // The daemons ipvsadm started stay while the config's do not change.
            rules.sync = self.model.rules().sync.clone();
        }
        let previous = std::mem::replace(&mut self.base_timeouts, cfg.rules.timeouts);
        // Services no longer checked lose their overlay; the others keep theirs until the
        // new checker (which keeps unchanged checkers' state) says otherwise.
        let overlay_before = self.overlay.clone();
        self.overlay
            .retain(|addr, _| cfg.health.services.iter().any(|s| s.addr == *addr));
        let result = self.change_stored(&[fnat_proto::edit::Change::Replace { rules }]);
        if let Err(e) = &result {
            self.base_timeouts = previous;
            self.overlay = overlay_before;
            return Err(error(
                e.kind,
                format!("config reload: {}{unchanged}", e.message),
            ));
        }
        self.restart_health(cfg.health);
        self.reload_vrrp(&cfg.vrrp, &cfg.vrrp_context);
        if config_sync_changed {
            self.config_sync = cfg.sync;
        }
        self.sync_reconcile();
        result
    }

    /// The reloaded keepalived.conf's VRRP instances, per running thread: new parameters
    /// with each instance's state kept, and the reloaded `vrrp_script`s and notify FIFOs of
    /// `context`; a changed set of instances is refused (logged) and that thread keeps its
    /// configuration.
    fn reload_vrrp(
        &mut self,
        runs: &[crate::config::VrrpRun],
        context: &fnat_vrrp::service::Context,
    ) {
        for (mine, runner) in &mut self.vrrp {
            let twin = mine.first().map(|r| r.twin.clone()).unwrap_or_default();
            let new: Vec<crate::config::VrrpRun> =
                runs.iter().filter(|r| r.twin == twin).cloned().collect();
            let configs = new.iter().map(|r| r.instance.clone()).collect();
            match runner.reconfigure(configs, context.clone()) {
                Ok(()) => *mine = new,
                Err(e) => eprintln!("fnatd: reload: vrrp on {twin}: {e}"),
            }
        }
    }

    fn status(&self) -> Status {
        let current = self.store.current();
        Status {
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
            protocol_version: fnat_proto::PROTOCOL_VERSION,
            generation: current.generation,
            mode: match current.mode {
                Mode::FullNat => "fullnat".into(),
                Mode::Passthrough { .. } => "passthrough".into(),
            },
            services: self.model.rules().services.len(),
            reals: self.model.rules().real_count(),
            local_addresses: self
                .model
                .rules()
                .services
                .iter()
                .map(|s| s.local_addresses.len())
                .sum(),
            uptime_s: self.started.elapsed().as_secs(),
            socket: self.socket.display().to_string(),
            state_file: self.state.as_ref().map(|s| s.path().display().to_string()),
            draining: self.drain_all,
            vips: self.vip_status(),
        }
    }

    /// Every VIP of the rules, announced or not and why: announced while neither the daemon
    /// nor the VIP drains and one of its services has a real server with a weight above 0
    /// in the live table (health overlays applied) and, when checked, its quorum up.
    fn vip_status(&self) -> Vec<VipStatus> {
        let rules = self.model.rules();
        let quorum: HashMap<String, bool> = self
            .health
            .as_ref()
            .map(|m| {
                m.listing()
                    .services
                    .into_iter()
                    .map(|s| (s.service, s.quorum_up))
                    .collect()
            })
            .unwrap_or_default();
        // Per VIP: its services with (has an available real server, quorum holds).
        let mut by_vip: BTreeMap<Ipv4Addr, Vec<(String, bool, bool)>> = BTreeMap::new();
        for s in &rules.services {
            let vips: Vec<Ipv4Addr> = match s.addr {
                ServiceAddr::Inet { vip, .. } => vec![vip],
                ServiceAddr::Fwmark(m) => rules
                    .marks
                    .iter()
                    .filter(|k| k.mark == m)
                    .map(|k| k.vip)
                    .collect(),
                // SNAT has no VIP to announce: its hosts reach out, nobody reaches in.
                ServiceAddr::Match(_) => Vec::new(),
            };
            let name = s.addr.to_string();
            let available = live(&self.overlay, s).reals.iter().any(|r| r.weight > 0);
            let quorum_up = quorum.get(&name).copied().unwrap_or(true);
            for v in vips {
                by_vip
                    .entry(v)
                    .or_default()
                    .push((name.clone(), available, quorum_up));
            }
        }
        by_vip
            .into_iter()
            .map(|(vip, services)| {
                let draining = self.drain_all || self.drained.contains(&vip);
                let serving = services.iter().any(|(_, a, q)| *a && *q);
                let reason = if draining {
                    "draining".to_string()
                } else if serving {
                    String::new()
                } else if services.iter().any(|(_, a, _)| *a) {
                    let lost: Vec<&str> = services
                        .iter()
                        .filter(|(_, a, q)| *a && !*q)
                        .map(|(n, _, _)| n.as_str())
                        .collect();
                    format!("quorum lost ({})", lost.join(", "))
                } else {
                    "no service has an available real server".to_string()
                };
                VipStatus {
                    vip,
                    announce: !draining && serving,
                    reason,
                    draining,
                    services: services.into_iter().map(|(n, _, _)| n).collect(),
                }
            })
            .collect()
    }

    /// The rules (or one service) with the dataplane's counters mapped from ids to keys.
    fn listing(&self, only: Option<ServiceAddr>) -> Result<Listing, ErrorBody> {
        let configured = match only {
            Some(addr) => RuleSet {
                timeouts: self.model.rules().timeouts,
                marks: self.model.rules().marks.clone(),
                services: vec![self
                    .model
                    .service(&addr)
                    .cloned()
                    .ok_or_else(|| error(ErrorKind::NoSuchService, "No such service"))?],
                ..RuleSet::default()
            },
            None => self.model.rules().clone(),
        };
        // The live table (what ipvsadm -L shows), and the operator's rules when they differ.
        let rules = live_rules(&self.overlay, &configured).into_owned();
        let configured = (rules != configured).then_some(configured);
        let view = self.view.stats();
        let (service_of, real_of) = self.ids.reverse();
        let mut by_service: HashMap<ServiceAddr, ServiceStats> = HashMap::new();
        let mut has_own_counters = HashMap::new();
        for s in &view.services {
            if let Some(addr) = service_of.get(&s.service_id) {
                let entry = by_service.entry(*addr).or_insert_with(|| ServiceStats {
                    service: *addr,
                    counters: Default::default(),
                    reals: Vec::new(),
                });
                entry.counters.add(&s.counters);
                has_own_counters.insert(*addr, true);
            }
        }
        for r in &view.reals {
            let Some((addr, key)) = real_of.get(&r.real_id) else {
                continue;
            };
            let entry = by_service.entry(*addr).or_insert_with(|| ServiceStats {
                service: *addr,
                counters: Default::default(),
                reals: Vec::new(),
            });
            // Without service-level counters, a service counts what its reals count (DPVS).
            if !has_own_counters.contains_key(addr) {
                entry.counters.add(&r.counters);
            }
            entry.reals.push(RealStats {
                addr: Some(*key.ip()),
                port: key.port(),
                counters: r.counters,
                active_conns: r.active_conns,
                inactive_conns: r.inactive_conns,
                persistent_conns: r.persistent_conns,
            });
        }
        let stats = rules
            .services
            .iter()
            .filter_map(|s| by_service.remove(&s.addr))
            .collect();
        Ok(Listing {
            rules,
            configured,
            timeouts: Some(self.effective_timeouts()),
            stats,
            drops: view.drops,
            client_address: view.client_address,
            ports: view.ports,
            local_addrs: view.local_addrs,
            syn_proxy: view.syn_proxy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::compile::compile;
    use crate::control::NoDataplane;
    use fnat_engine::rules::PortRule;
    use fnat_proto::edit::apply_all;
    use fnat_proto::model::{LocalAddress, Real, Scheduler, Service};
    use std::net::Ipv4Addr;

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }
    }

    fn base() -> Rules {
        let mut r = Rules::passthrough(
            vec![PortRule {
                name: "a".into(),
                mac: [0; 6],
                addresses: vec![],
            }],
            vec![None],
        );
        r.mode = Mode::FullNat;
        r
    }

    fn random_change(rng: &mut Rng) -> Change {
        let svc = |rng: &mut Rng| ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, rng.below(6) as u8), 80);
        let real = |rng: &mut Rng| {
            Real::new(
                Ipv4Addr::new(192, 168, 0, rng.below(6) as u8),
                80,
                rng.below(4) as u32,
            )
        };
        match rng.below(14) {
            0 | 1 => {
                let mut s = Service::new(svc(rng), Scheduler::ALL[rng.below(13)]);
                s.reals = (0..rng.below(3)).map(|_| real(rng)).collect();
                s.reals.dedup_by_key(|r| r.key());
                // Now and then one the engine cannot run: refused at compile time.
                s.one_packet = rng.below(8) == 0;
                Change::ServiceAdd { service: s }
            }
            2 => Change::ServiceDel { service: svc(rng) },
            3 => Change::ServiceEdit {
                service: fnat_proto::edit::ServiceAttrs::of(&Service::new(
                    svc(rng),
                    Scheduler::ALL[rng.below(13)],
                )),
            },
            4..=6 => Change::RealAdd {
                service: svc(rng),
                real: real(rng),
            },
            7 | 8 => Change::RealEdit {
                service: svc(rng),
                real: real(rng),
            },
            9 => {
                let r = real(rng);
                Change::RealDel {
                    service: svc(rng),
                    addr: r.addr,
                    port: r.port,
                }
            }
            10 => Change::LaddrAdd {
                service: svc(rng),
                laddr: LocalAddress {
                    addr: Ipv4Addr::new(10, 1, 0, rng.below(3) as u8),
                    device: None,
                },
            },
            11 => Change::LaddrDel {
                service: svc(rng),
                addr: Ipv4Addr::new(10, 1, 0, rng.below(3) as u8),
            },
            12 => Change::TimeoutSet {
                tcp: rng.below(3) as u32 * 100,
                tcp_fin: 0,
                udp: 0,
            },
            _ => Change::ServiceAdd {
                service: Service::new(ServiceAddr::Fwmark(1 + rng.below(3) as u32), Scheduler::Rr),
            },
        }
    }

    /// A plane running `rules` (compiled and published), with health epoch 1 so overlays of
    /// that epoch apply; the store shows what workers would run.
    fn plane_running(rules: &RuleSet, state: Option<StateFile>) -> (Plane, Arc<RulesStore>) {
        let mut ids = IdBook::default();
        ids.assign(rules);
        let store = RulesStore::new(
            compile(&base(), &Timeouts::default(), rules, &ids).unwrap(),
            0,
        );
        let mut plane = Plane::new(
            rules.clone(),
            ids,
            Arc::clone(&store),
            Arc::new(NoDataplane),
            Timeouts::default(),
            state,
            PathBuf::from("/nonexistent/ctl.sock"),
            PathBuf::from("/nonexistent/fnat.toml"),
        );
        plane.health_epoch = 1;
        (plane, store)
    }

    /// Changes applied one service at a time publish exactly the snapshot a full compile of
    /// the rules gives, with the same ids as assigning them over the whole rule set; a
    /// refused change publishes nothing and leaves rules and ids as they were.
    #[test]
    fn incremental_changes_publish_what_a_full_compile_gives() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let store = RulesStore::new(base(), 2);
        let mut plane = Plane::new(
            RuleSet::default(),
            IdBook::default(),
            Arc::clone(&store),
            Arc::new(NoDataplane),
            Timeouts::default(),
            None,
            PathBuf::from("/nonexistent/ctl.sock"),
            PathBuf::from("/nonexistent/fnat.toml"),
        );
        let mut expect_rules = RuleSet::default();
        let mut expect_ids = IdBook::default();
        let (mut accepted, mut refused) = (0, 0);
        for step in 0..1500 {
            let changes: Vec<Change> = match rng.below(40) {
                0 => vec![Change::Flush],
                1 => vec![Change::Replace {
                    rules: expect_rules.clone(),
                }],
                2..=7 => (0..1 + rng.below(4))
                    .map(|_| random_change(&mut rng))
                    .collect(),
                _ => vec![random_change(&mut rng)],
            };
            let generation = store.current().generation;
            // The reference: the whole rule set changed, ids assigned, everything compiled.
            let mut next = expect_rules.clone();
            let want = apply_all(&mut next, &changes).and_then(|()| {
                let mut ids = expect_ids.clone();
                ids.assign(&next);
                let snapshot = compile(&base(), &Timeouts::default(), &next, &ids)?;
                Ok((ids, snapshot))
            });
            let got = plane.change(&changes);
            match want {
                Ok((ids, snapshot)) => {
                    assert!(got.is_ok(), "step {step}: {changes:?}: {got:?}");
                    accepted += 1;
                    expect_rules = next;
                    expect_ids = ids;
                    let published = store.current();
                    assert_eq!(published.generation, generation + 1);
                    assert_eq!(
                        published.services, snapshot.services,
                        "step {step}: {changes:?}"
                    );
                    assert_eq!(published.timeouts, snapshot.timeouts, "step {step}");
                }
                Err(e) => {
                    assert_eq!(got.err(), Some(e), "step {step}: {changes:?}");
                    refused += 1;
                    assert_eq!(store.current().generation, generation, "step {step}");
                }
            }
            assert_eq!(plane.rules(), &expect_rules, "step {step}");
            for s in &expect_rules.services {
                assert_eq!(plane.ids.service(&s.addr), expect_ids.service(&s.addr));
                for r in &s.reals {
                    assert_eq!(
                        plane.ids.real(&s.addr, r.key()),
                        expect_ids.real(&s.addr, r.key())
                    );
                }
            }
        }
        assert!(
            accepted > 400 && refused > 100,
            "{accepted} accepted, {refused} refused"
        );
        assert!(
            plane.builder.recycled > plane.builder.copied,
            "spares recycled {} times, copies {}",
            plane.builder.recycled,
            plane.builder.copied
        );
    }

    /// Health overlays change the published table, never the operator's rules or the state
    /// file; an old checker's overlay is ignored; the listing shows both.
    /// `status` says per VIP whether it is announced and why not: a real server with a weight
    /// (health overlays applied), the drain of the VIP or of the whole daemon.
    #[test]
    fn vips_are_announced_while_serving_and_not_draining() {
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        let vip2 = Ipv4Addr::new(198, 18, 0, 101);
        let service = |vip: Ipv4Addr, weight: u32| {
            let mut s = Service::new(ServiceAddr::tcp(vip, 80), Scheduler::Rr);
            s.local_addresses = vec![LocalAddress {
                addr: Ipv4Addr::new(198, 19, 0, 10),
                device: None,
            }];
            s.reals = vec![Real::new(Ipv4Addr::new(198, 19, 1, 10), 80, weight)];
            s
        };
        let rules = RuleSet {
            services: vec![service(vip, 1), service(vip2, 0)],
            ..RuleSet::default()
        };
        let (mut plane, _store) = plane_running(&rules, None);
        let announced = |p: &Plane| -> Vec<(Ipv4Addr, bool, String)> {
            p.status()
                .vips
                .into_iter()
                .map(|v| (v.vip, v.announce, v.reason))
                .collect()
        };
        let no_real = "no service has an available real server".to_string();
        assert_eq!(
            announced(&plane),
            [(vip, true, String::new()), (vip2, false, no_real.clone())]
        );
        // Health takes the only real server out: withdrawn; back in: announced.
        let addr = ServiceAddr::tcp(vip, 80);
        let out = ServiceOverlay {
            removed: vec![rules.services[0].reals[0].key()],
            ..ServiceOverlay::default()
        };
        plane.set_health(1, addr, out).unwrap();
        assert_eq!(announced(&plane)[0], (vip, false, no_real.clone()));
        plane
            .set_health(1, addr, ServiceOverlay::default())
            .unwrap();
        assert_eq!(announced(&plane)[0], (vip, true, String::new()));
        // Drain one VIP, then the whole daemon; undrain.
        let drain = |p: &mut Plane, q: Query| {
            let r = p.query(q).unwrap();
            assert!(r.ok, "{r:?}");
        };
        drain(&mut plane, Query::Drain { vips: vec![vip] });
        assert_eq!(announced(&plane)[0], (vip, false, "draining".into()));
        drain(&mut plane, Query::Undrain { vips: vec![vip] });
        assert_eq!(announced(&plane)[0], (vip, true, String::new()));
        drain(&mut plane, Query::Drain { vips: vec![] });
        let s = plane.status();
        assert!(s.draining && s.vips.iter().all(|v| !v.announce && v.draining));
        assert!(plane.query(Query::Undrain { vips: vec![vip] }).is_err());
        drain(&mut plane, Query::Undrain { vips: vec![] });
        assert_eq!(
            announced(&plane),
            [(vip, true, String::new()), (vip2, false, no_real)]
        );
        // Draining changes no rule: the published snapshot is the one before.
        assert_eq!(plane.rules(), &rules);
    }

    #[test]
    fn health_overlays_change_the_live_table_only() {
        let dir = std::env::temp_dir().join(format!("fnat-plane-health-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let state_path = dir.join("state.toml");
        let (state, _) = StateFile::open(&state_path).unwrap();
        let addr = ServiceAddr::tcp(Ipv4Addr::new(198, 18, 0, 100), 80);
        let mut s = Service::new(addr, Scheduler::Rr);
        s.local_addresses = vec![LocalAddress {
            addr: Ipv4Addr::new(198, 19, 0, 10),
            device: None,
        }];
        s.reals = vec![
            Real::new(Ipv4Addr::new(198, 19, 1, 10), 80, 3),
            Real::new(Ipv4Addr::new(198, 19, 1, 11), 80, 3),
        ];
        let rules = RuleSet {
            services: vec![s.clone()],
            ..RuleSet::default()
        };
        let (mut plane, store) = plane_running(&rules, Some(state));
        let state_before = std::fs::read_to_string(&state_path).unwrap_or_default();
        let overlay = ServiceOverlay {
            removed: vec![s.reals[0].key()],
            weights: vec![],
            sorry: Some(Real::new(Ipv4Addr::new(198, 19, 1, 99), 80, 1)),
        };
        let generation = plane.set_health(1, addr, overlay.clone()).unwrap();
        assert!(generation.is_some());
        let live: Vec<(String, u32)> = store.current().services[0]
            .reals
            .iter()
            .map(|r| (format!("{}:{}", r.addr, r.port), r.weight))
            .collect();
        assert_eq!(
            live,
            [
                ("198.19.1.11:80".to_string(), 3),
                ("198.19.1.99:80".to_string(), 1)
            ]
        );
        assert_eq!(plane.rules(), &rules, "the operator's rules are untouched");
        assert_eq!(
            std::fs::read_to_string(&state_path).unwrap_or_default(),
            state_before
        );
        let listing = plane.listing(None).unwrap();
        assert_eq!(listing.configured.as_ref(), Some(&rules));
        assert_eq!(listing.rules.services[0], overlay.apply(&s));
        // An old checker (epoch 0) is ignored; a service not in the rules is kept for later.
        assert_eq!(
            plane.set_health(0, addr, ServiceOverlay::default()),
            Ok(None)
        );
        assert_eq!(store.current().services[0].reals.len(), 2);
        let other = ServiceAddr::tcp(Ipv4Addr::new(198, 18, 0, 101), 80);
        assert_eq!(plane.set_health(1, other, overlay.clone()), Ok(None));
        // An operator change keeps the overlay; clearing it restores the configured table.
        plane
            .change(&[Change::RealEdit {
                service: addr,
                real: Real::new(Ipv4Addr::new(198, 19, 1, 11), 80, 7),
            }])
            .unwrap();
        assert_eq!(store.current().services[0].reals.len(), 2);
        assert_eq!(store.current().services[0].reals[0].weight, 7);
        assert_eq!(plane.rules().services[0].reals.len(), 2);
        plane
            .set_health(1, addr, ServiceOverlay::default())
            .unwrap();
        assert!(plane.listing(None).unwrap().configured.is_none());
        assert_eq!(store.current().services[0].reals.len(), 2);
        assert_eq!(store.current().services[0].reals[0].weight, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
