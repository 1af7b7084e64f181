//! The health checker at run time: one scheduler thread and a few probe threads, all on the
//! control side (never a worker). The scheduler keeps each checker's next due time, hands
//! due probes to the probe threads (a probe blocks for at most its timeout), feeds their
//! outcomes to the state machine, logs in keepalived's wording, runs notify scripts, and
//! hands each service's new overlay to the [`Sink`]: the control plane's one road for changes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddrV4;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fnat_keepalived::lvs::{Checker, CheckerKind};
use fnat_keepalived::notify_fifo::NotifyFifos;
use fnat_proto::health::{CheckerStatus, HealthListing, ServiceHealth, ServiceOverlay};
use fnat_proto::model::ServiceAddr;

use crate::machine::{Event, Outcome, ServiceMachine};
use crate::probe::probe;
use crate::spec::HealthConfig;

/// Where overlays go: the control plane. `epoch` names the monitor, so that a plane that
/// replaced its monitor (reload) ignores the old one.
pub trait Sink: Send + Sync {
    fn apply(
        &self,
        epoch: u64,
        service: ServiceAddr,
        overlay: ServiceOverlay,
    ) -> Result<(), String>;
}

/// Most probe threads; a probe waits at most its timeout, so these bound how many checkers
/// may time out at once without delaying the others.
const MAX_PROBE_THREADS: usize = 64;
/// Longest the scheduler sleeps before looking at its stop flag.
const TICK: Duration = Duration::from_millis(100);

struct Job {
    key: Key,
    real: SocketAddrV4,
    checker: Checker,
}

/// Service, real server and checker positions.
type Key = (usize, usize, usize);
type Done = (Key, Outcome);

pub struct Monitor {
    machines: Arc<Mutex<Vec<ServiceMachine>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub epoch: u64,
}

/// A line on fnatd's standard error, as keepalived's healthchecker logs it.
fn log(line: &str) {
    eprintln!("fnatd: health: {line}");
}

/// Runs a notify script without waiting for it (a thread reaps it).
fn run_script(script: &str) {
    log(&format!("Executing [{script}]"));
    match Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            let _ = std::thread::Builder::new()
                .name("fnat-health-notify".into())
                .spawn(move || {
                    let _ = child.wait();
                });
        }
        Err(e) => log(&format!("cannot run [{script}]: {e}")),
    }
}

fn handle(events: Vec<Event>, fifos: &mut NotifyFifos) {
    for e in events {
        match e {
            Event::Log(l) => log(&l),
            Event::Run(s) => run_script(&s),
            Event::Fifo(l) => fifos.write_line(&l),
        }
    }
}

/// A small xorshift for warmup delays (no need for a random crate).
struct Rng(u64);

impl Rng {
    fn up_to(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let micros = max.as_micros() as u64;
        if micros == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(self.0 % (micros + 1))
        }
    }
}

fn unix(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

impl Monitor {
    /// Starts checking `config`. With `previous` (a reload), checkers it already ran with the
    /// same settings keep their state. The first overlay of every service is handed to `sink`
    /// from the monitor's thread.
    pub fn start(
        config: HealthConfig,
        sink: Arc<dyn Sink>,
        epoch: u64,
        previous: Option<&Monitor>,
    ) -> std::io::Result<Monitor> {
        let old: Vec<ServiceMachine> = previous
            .map(|p| p.machines.lock().map(|m| m.clone()).unwrap_or_default())
            .unwrap_or_default();
        let mut fifos = NotifyFifos::create(&config.notify_fifos);
        let mut machines = Vec::with_capacity(config.services.len());
        let mut start_events = Vec::new();
        for spec in config.services {
            let (mut m, events) = ServiceMachine::new(spec);
            match old.iter().find(|o| o.spec.addr == m.spec.addr) {
                Some(o) => m.inherit(o),
                None => start_events.extend(events),
            }
            machines.push(m);
        }
        handle(start_events, &mut fifos);
        let checkers: usize = machines
            .iter()
            .flat_map(|m| &m.spec.reals)
            .map(|r| r.checkers.len())
            .sum();
        let machines = Arc::new(Mutex::new(machines));
        let stop = Arc::new(AtomicBool::new(false));
        let (job_tx, job_rx) = channel::<Job>();
        let (done_tx, done_rx) = channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let threads = (checkers / 16).clamp(2, MAX_PROBE_THREADS);
        for i in 0..threads {
            let jobs = Arc::clone(&job_rx);
            let done = done_tx.clone();
            std::thread::Builder::new()
                .name(format!("fnat-probe-{i}"))
                .spawn(move || loop {
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let outcome = probe(job.real, &job.checker);
                    if done.send((job.key, outcome)).is_err() {
                        return;
                    }
                })?;
        }
        drop(done_tx);
        let thread = {
            let machines = Arc::clone(&machines);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("fnat-health".into())
                .spawn(move || schedule(machines, sink, epoch, stop, job_tx, done_rx, fifos))?
        };
        Ok(Monitor {
            machines,
            stop,
            thread: Some(thread),
            epoch,
        })
    }

    /// Each service's overlay as the checker sees it now (at start: `alpha` servers out, a
    /// quorum lost from the outset), for the plane to apply before the first probe.
    pub fn overlays(&self) -> Vec<(ServiceAddr, ServiceOverlay)> {
        self.machines
            .lock()
            .map(|ms| ms.iter().map(|m| (m.spec.addr, m.overlay())).collect())
            .unwrap_or_default()
    }

    /// Every checker's state and every service's quorum.
    pub fn listing(&self) -> HealthListing {
        let Ok(machines) = self.machines.lock() else {
            return HealthListing::default();
        };
        let mut out = HealthListing::default();
        for m in machines.iter() {
            let overlay = m.overlay();
            out.services.push(ServiceHealth {
                service: m.spec.addr.to_string(),
                quorum: m.spec.quorum,
                hysteresis: m.spec.hysteresis,
                alive_weight: m.alive_weight(),
                quorum_up: m.quorum_up,
                sorry_in_use: m.sorry_in_use(),
            });
            for (r, real) in m.spec.reals.iter().enumerate() {
                let live_weight = if overlay.removed.contains(&real.addr) {
                    None
                } else {
                    Some(
                        overlay
                            .weights
                            .iter()
                            .find(|(k, _)| *k == real.addr)
                            .map_or(real.weight, |(_, w)| *w),
                    )
                };
                for (c, checker) in real.checkers.iter().enumerate() {
                    let st = &m.states[r][c];
                    let target = match &checker.kind {
                        CheckerKind::Misc { path, .. } => path.clone(),
                        _ => crate::machine::target(real.addr, checker).to_string(),
                    };
                    out.checkers.push(CheckerStatus {
                        service: m.spec.addr.to_string(),
                        real: real.addr.to_string(),
                        checker: checker.kind.keyword().to_string(),
                        target,
                        state: if st.up { "up" } else { "down" }.into(),
                        last_result: match st.last_ok {
                            None => "none",
                            Some(true) => "success",
                            Some(false) => "failure",
                        }
                        .into(),
                        reason: st.reason.clone(),
                        consecutive_failures: st.consecutive_failures,
                        last_transition: unix(st.last_transition),
                        real_state: if m.real_up(r) { "up" } else { "down" }.into(),
                        live_weight,
                    });
                }
            }
        }
        out
    }

    /// Stops checking: the scheduler ends within a tick (probes under way finish on their
    /// own). Does not wait, so that it may be called under the lock a [`Sink`] takes.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take();
    }

    /// Stops and waits for the scheduler (at daemon exit; not under the sink's lock). Runs
    /// the `quorum_down` script of services with `omega`.
    pub fn stop_and_wait(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(machines) = self.machines.lock() {
            for m in machines.iter().filter(|m| m.spec.omega) {
                if let Some(s) = &m.spec.quorum_down {
                    run_script(s);
                }
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn schedule(
    machines: Arc<Mutex<Vec<ServiceMachine>>>,
    sink: Arc<dyn Sink>,
    epoch: u64,
    stop: Arc<AtomicBool>,
    jobs: Sender<Job>,
    done: Receiver<Done>,
    mut fifos: NotifyFifos,
) {
    let mut rng = Rng(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x2545_f491, |d| d.as_nanos() as u64)
        | 1);
    let now = Instant::now();
    let mut due: BinaryHeap<Reverse<(Instant, Key)>> = BinaryHeap::new();
    // What the sink holds for each service (None: not yet handed).
    let mut pushed: Vec<Option<ServiceOverlay>> = Vec::new();
    let mut pending: Vec<(ServiceAddr, ServiceOverlay)> = Vec::new();
    if let Ok(ms) = machines.lock() {
        for (s, m) in ms.iter().enumerate() {
            pending.push((m.spec.addr, m.overlay()));
            pushed.push(None);
            for (r, real) in m.spec.reals.iter().enumerate() {
                for (c, checker) in real.checkers.iter().enumerate() {
                    let first = checker
                        .timing
                        .warmup
                        .map_or(Duration::ZERO, |w| rng.up_to(w));
                    due.push(Reverse((now + first, (s, r, c))));
                }
            }
        }
    }
    let push = |s: usize,
                addr: ServiceAddr,
                overlay: ServiceOverlay,
                pushed: &mut Vec<Option<ServiceOverlay>>| {
        if pushed[s].as_ref() == Some(&overlay) {
            return;
        }
        match sink.apply(epoch, addr, overlay.clone()) {
            Ok(()) => pushed[s] = Some(overlay),
            Err(e) => log(&format!(
                "cannot update VS {}: {e}",
                crate::machine::vs_name(&addr)
            )),
        }
    };
    for (s, (addr, overlay)) in pending.into_iter().enumerate() {
        push(s, addr, overlay, &mut pushed);
    }
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        while let Some(Reverse((at, key))) = due.peek().copied() {
            if at > now {
                break;
            }
            due.pop();
            let job = machines.lock().ok().and_then(|ms| {
                let real = ms.get(key.0)?.spec.reals.get(key.1)?;
                Some(Job {
                    key,
                    real: real.addr,
                    checker: real.checkers.get(key.2)?.clone(),
                })
            });
            if let Some(job) = job {
                if jobs.send(job).is_err() {
                    return;
                }
            }
        }
        let wait = due
            .peek()
            .map_or(TICK, |Reverse((at, _))| at.saturating_duration_since(now))
            .min(TICK);
        match done.recv_timeout(wait) {
            Ok((key, outcome)) => {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let recorded = machines.lock().ok().map(|mut ms| {
                    let m = &mut ms[key.0];
                    let (delay, events) = m.record(key.1, key.2, outcome, SystemTime::now());
                    (delay, events, m.spec.addr, m.overlay())
                });
                let Some((delay, events, addr, overlay)) = recorded else {
                    return;
                };
                // The lock is released: the sink takes the control plane's.
                handle(events, &mut fifos);
                push(key.0, addr, overlay, &mut pushed);
                due.push(Reverse((Instant::now() + delay, key)));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
