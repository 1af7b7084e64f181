//! The control plane: a unix socket server that keeps the operator's rules (every ipvsadm
//! attribute), compiles them into engine snapshots and publishes each change to every worker
//! before acknowledging it. Protocol and rule model live in `fnat-proto`.
//!
//! - [`start`] binds the socket, loads the state file, and serves on its own threads.
//! - [`apply_rules_file`] replays an ipvsadm rules file onto a config (`--rules FILE`).
//! - The driver reports counters and sessions through [`DataplaneView`].

mod compile;
mod ids;
mod model;
mod plane;
mod server;
mod snapshots;
mod state_file;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

pub use compile::{check_direct_route, check_service_support, compile_fresh, engine_scheduler};
use fnat_proto::msg::Response;
pub use fnat_proto::stats::{ConnEntry, ConnFilter, ViewStats};

use crate::config::AppConfig;
use crate::rules_store::RulesStore;
use plane::Plane;

/// What the control plane reads from the running dataplane. Implemented by the driver; tests
/// use a fake.
pub trait DataplaneView: Send + Sync {
    /// Per-service and per-real counters (by engine id), ActiveConn/InActConn per real,
    /// drops by reason name, per-port rx/tx.
    fn stats(&self) -> ViewStats;
    /// Up to `limit` sessions matching `filter`.
    fn connections(&self, filter: &ConnFilter, limit: usize) -> Vec<ConnEntry>;
    /// Zero the counters (ipvsadm -Z): of one service (by engine id) and its reals, or all.
    fn zero(&self, service_id: Option<u32>);
    /// The session sync service, when the dataplane runs one.
    fn sync(&self) -> Option<Arc<dyn SyncControl>> {
        None
    }
}

/// The session sync service as the control plane drives it (implemented by the driver: it
/// owns the workers' rings and the sockets on the kernel twins).
pub trait SyncControl: Send + Sync {
    /// Runs exactly `daemons` (starting, restarting or stopping threads and sockets). Err:
    /// why a daemon cannot run (it stays configured and retries).
    fn configure(&self, daemons: &fnat_proto::sync::SyncDaemons) -> Result<(), String>;
    /// VRRP instance `instance` became MASTER (`true`) or left it: daemons that follow it
    /// start or stop sending/receiving.
    fn vrrp_state(&self, instance: &str, master: bool);
    /// The daemons as they run, and the counters.
    fn status(&self) -> fnat_proto::sync::SyncStatus;
}

/// A dataplane that reports nothing (no counters, no sessions): for a control plane running
/// before or without workers.
pub struct NoDataplane;

impl DataplaneView for NoDataplane {
    fn stats(&self) -> ViewStats {
        ViewStats::default()
    }
    fn connections(&self, _filter: &ConnFilter, _limit: usize) -> Vec<ConnEntry> {
        Vec::new()
    }
    fn zero(&self, _service_id: Option<u32>) {}
}

/// The running control plane. [`ControlHandle::stop`] ends it and removes the socket.
pub struct ControlHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    socket: PathBuf,
    plane: Arc<Mutex<Plane>>,
}

/// Answers queries in process, exactly as the socket does (the metrics exporter reads the
/// rules and counters through it).
#[derive(Clone)]
pub struct Querier(Arc<Mutex<Plane>>);

impl Querier {
    /// The answer to `query`, decoded as `T`, or the daemon's error message.
    pub fn query<T: serde::de::DeserializeOwned>(
        &self,
        query: fnat_proto::msg::Query,
    ) -> Result<T, String> {
        let answer = self.0.lock().handle(fnat_proto::msg::Request::Query(query));
        Response::decode(&answer.finish().encode()).map_err(|e| e.message)
    }
}

impl ControlHandle {
    /// A handle that answers queries in process (for the metrics endpoint).
    pub fn querier(&self) -> Querier {
        Querier(Arc::clone(&self.plane))
    }

    /// Re-reads the config file (what SIGHUP does): a message saying what happened.
    pub fn reload(&self) -> Result<String, String> {
        let answer = self.plane.lock().handle(fnat_proto::msg::Request::Query(
            fnat_proto::msg::Query::Reload,
        ));
        // Waited for without the lock.
        let reply = answer.finish();
        match reply.error {
            None => Ok(format!(
                "config reloaded: rules generation {}",
                self.plane.lock().store.current().generation
            )),
            Some(e) => Err(e.message),
        }
    }

    /// Stops announcing every VIP, as `fnatctl drain` without VIPs does (the announcement
    /// hook then withdraws them): what a stopping fnatd does first when
    /// `control.withdraw_on_stop_ms` asks for it.
    pub fn withdraw_all(&self) {
        let answer = self.plane.lock().handle(fnat_proto::msg::Request::Query(
            fnat_proto::msg::Query::Drain { vips: Vec::new() },
        ));
        let _ = answer.finish();
    }

    /// Stops the VRRP service cleanly (priority 0 from every master) while the workers still
    /// carry the twins' frames out: called before the dataplane stops.
    pub fn stop_vrrp(&self) {
        let runners = self.plane.lock().take_vrrp();
        for r in runners {
            r.stop_and_wait();
        }
    }

    /// Stops accepting, waits for the accept thread, removes the socket file. Connection
    /// threads still answering finish on their own (their timeouts bound them).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            // The health checker first, waited for without the plane's lock (its sink takes it).
            let monitor = self.plane.lock().take_health();
            if let Some(m) = monitor {
                m.stop_and_wait();
            }
            self.stop_vrrp();
            let _ = t.join();
            let _ = std::fs::remove_file(&self.socket);
            // A clean stop leaves the state file as one TOML (best effort: the journal keeps
            // every change either way).
            let _ = self.plane.lock().compact_state();
        }
    }
}

impl Drop for ControlHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A control socket bound before the dataplane starts, so that a second fnatd is refused
/// before it touches any port. Dropped unused, it removes its socket file.
pub struct BoundSocket {
    listener: Option<std::os::unix::net::UnixListener>,
    path: PathBuf,
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds the config's control socket: fails if another fnatd is live there, replaces a stale
/// socket, sets mode 0660.
pub fn bind(cfg: &AppConfig) -> Result<BoundSocket, String> {
    Ok(BoundSocket {
        listener: Some(server::bind(&cfg.control.socket)?),
        path: cfg.control.socket.clone(),
    })
}

/// Binds the socket (fails if another fnatd is live there), loads the state file if any, and
/// serves on its own thread. With a state file, its rules replace the config's services
/// (and are published at once).
pub fn start(
    cfg: &AppConfig,
    store: Arc<RulesStore>,
    view: Arc<dyn DataplaneView>,
) -> Result<ControlHandle, String> {
    serve(cfg, bind(cfg)?, store, view)
}

/// Serves an already bound socket: loads the state file if any (publishing its rules to the
/// running workers) and answers requests on its own thread.
pub fn serve(
    cfg: &AppConfig,
    mut socket: BoundSocket,
    store: Arc<RulesStore>,
    view: Arc<dyn DataplaneView>,
) -> Result<ControlHandle, String> {
    let current = store.current();
    // The workers run `cfg.rules`, compiled from `cfg.rule_set` with ids given afresh: the
    // same ids an empty book gives it here.
    let mut rules = cfg.rule_set.clone();
    let mut ids = ids::IdBook::default();
    ids.assign(&rules);
    let base_timeouts = cfg.rules.timeouts;
    let mut state = None;
    if let Some(path) = &cfg.control.state_file {
        let shown = path.display();
        let (mut file, saved) = state_file::StateFile::open(path)?;
        if let Some(saved) = saved {
            // The TOML, then the changes journalled since, as they were applied.
            let mut model = model::Model::new(saved.rules);
            for batch in &saved.journal {
                model
                    .apply(batch)
                    .map_err(|e| format!("state file {shown}: {}", e.message))?;
            }
            let saved = model.into_rules();
            ids.assign(&saved);
            let snapshot = compile::compile(&current, &base_timeouts, &saved, &ids)
                .map_err(|e| format!("state file {shown}: {}", e.message))?;
            rules = saved;
            store
                .publish(snapshot, std::time::Duration::from_secs(5))
                .map_err(|e| format!("publishing the state file's rules: {e}"))?;
            if file.has_journal() {
                file.compact(&rules)?;
            }
        }
        state = Some(file);
    }
    ids.assign(&rules);
    let listener = socket
        .listener
        .take()
        .ok_or_else(|| "control socket already served".to_string())?;
    let mut plane = Plane::new(
        rules,
        ids,
        store,
        view,
        base_timeouts,
        state,
        socket.path.clone(),
        cfg.path.clone(),
    );
    plane.keepalived_path = cfg.keepalived.clone();
    plane.set_sync_daemons(cfg.sync.clone());
    let plane = Arc::new(Mutex::new(plane));
    Plane::start_health(&plane, cfg.health.clone());
    plane.lock().start_vrrp(&cfg.vrrp, &cfg.vrrp_context);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = server::spawn(
        listener,
        Arc::clone(&plane),
        cfg.control.max_request_bytes,
        Arc::clone(&stop),
    )
    .map_err(|e| format!("starting the control thread: {e}"))?;
    Ok(ControlHandle {
        stop,
        thread: Some(thread),
        socket: socket.path.clone(),
        plane,
    })
}

/// Applies an ipvsadm rules file (`-S` lines plus local-address lines) on top of cfg.rules
/// (for `--rules FILE`). All or nothing; errors name the file and line.
pub fn apply_rules_file(cfg: &mut AppConfig, path: &Path) -> Result<(), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("rules file {shown}: {e}"))?;
    let changes = fnat_proto::ipvsadm::rules_file::parse_rules(&text)
        .map_err(|e| format!("rules file {shown}: {e}"))?;
    // Applied in place, one change at a time: a file of 100 000 `-a` lines costs what it
    // holds, not that times the number of services.
    let mut model = model::Model::new(cfg.rule_set.clone());
    model
        .apply(&changes)
        .map_err(|e| format!("rules file {shown}: {}", e.message))?;
    let rules = model.into_rules();
    let (compiled, _) = compile::compile_fresh(&cfg.rules, &cfg.rules.timeouts, &rules)
        .map_err(|e| format!("rules file {shown}: {}", e.message))?;
    cfg.rules = compiled;
    cfg.rule_set = rules;
    Ok(())
}

#[cfg(test)]
mod roundtrip;
#[cfg(test)]
mod tests;
