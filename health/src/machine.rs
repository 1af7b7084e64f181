//! keepalived's health state machine, pure: outcomes in, the next probe's delay, log lines,
//! scripts to run and the service's overlay out. No clock of its own (the caller passes the
//! time of each outcome), no I/O, so every rule is unit-tested as a timeline.
//!
//! - A checker that is up, or has not run yet, goes down after `retry + 1` consecutive
//!   failures, `delay_before_retry` apart; one success brings it up. Between rounds it waits
//!   `delay_loop`. With `alpha` it starts down, else up.
//! - A real server is up while every one of its checkers is; down means out of the live table,
//!   or weight 0 with `inhibit_on_failure`. `MISC_CHECK` with `misc_dynamic` sets its weight.
//! - A service has its quorum while the weights of its live reals add up to `quorum`; it loses
//!   it below `quorum - hysteresis` and gains it back at `quorum + hysteresis`. Without the
//!   quorum the `sorry_server` takes the place of every real server.

use std::net::SocketAddrV4;
use std::time::{Duration, SystemTime};

use fnat_keepalived::lvs::{Checker, CheckerKind};
use fnat_proto::health::ServiceOverlay;
use fnat_proto::model::{Protocol, Real, ServiceAddr};

use crate::spec::ServiceSpec;

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success; `weight` is a `misc_dynamic` weight (exit status − 2).
    Up { weight: Option<u32> },
    /// Failure: a short reason (for `fnatctl health`) and keepalived's log line.
    Down { reason: String, log: String },
}

impl Outcome {
    pub fn up() -> Outcome {
        Outcome::Up { weight: None }
    }
}

/// What the caller does after an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A line for fnatd's standard error, in keepalived's wording.
    Log(String),
    /// A notify script to run (`notify_up`, `notify_down`, `quorum_up`, `quorum_down`).
    Run(String),
    /// A line for keepalived's notify FIFO (`RS [rs]:tcp:80 [vs]:tcp:80 DOWN`).
    Fifo(String),
}

/// One checker's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerState {
    pub up: bool,
    pub has_run: bool,
    /// Retries made in the current round of failures.
    pub retry_it: u32,
    pub consecutive_failures: u32,
    /// The last probe's result, None before the first.
    pub last_ok: Option<bool>,
    pub reason: String,
    pub last_transition: Option<SystemTime>,
    /// `misc_dynamic`'s weight, once a script set one.
    pub dynamic_weight: Option<u32>,
}

impl CheckerState {
    pub fn new(alpha: bool) -> CheckerState {
        CheckerState {
            up: !alpha,
            has_run: false,
            retry_it: 0,
            consecutive_failures: 0,
            last_ok: None,
            reason: String::new(),
            last_transition: None,
            dynamic_weight: None,
        }
    }
}

/// keepalived's name of an endpoint in its log lines: `[198.19.1.11]:tcp:80`.
pub fn endpoint(addr: SocketAddrV4, protocol: &str) -> String {
    format!("[{}]:{protocol}:{}", addr.ip(), addr.port())
}

/// keepalived's name of a virtual service: `[198.18.10.100]:tcp:80`, `FWM 7`.
pub fn vs_name(addr: &ServiceAddr) -> String {
    match addr {
        ServiceAddr::Inet {
            protocol,
            vip,
            port,
        } => endpoint(SocketAddrV4::new(*vip, *port), protocol_name(*protocol)),
        ServiceAddr::Fwmark(m) => format!("FWM {m}"),
        ServiceAddr::Match(m) => format!("MATCH {m}"),
    }
}

pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// The protocol keepalived names a service's reals with.
pub fn service_protocol(addr: &ServiceAddr) -> &'static str {
    match addr {
        ServiceAddr::Inet { protocol, .. } => protocol_name(*protocol),
        ServiceAddr::Fwmark(_) | ServiceAddr::Match(_) => "tcp",
    }
}

/// One service's checkers and quorum.
#[derive(Debug, Clone)]
pub struct ServiceMachine {
    pub spec: ServiceSpec,
    /// Per real server, per checker.
    pub states: Vec<Vec<CheckerState>>,
    pub quorum_up: bool,
}

impl ServiceMachine {
    /// The machine at start (checkers up, or down with `alpha`), with what the start does:
    /// a quorum lost from the outset puts the sorry server in.
    pub fn new(spec: ServiceSpec) -> (ServiceMachine, Vec<Event>) {
        let states = spec
            .reals
            .iter()
            .map(|r| {
                r.checkers
                    .iter()
                    .map(|c| CheckerState::new(c.timing.alpha))
                    .collect()
            })
            .collect();
        let mut m = ServiceMachine {
            spec,
            states,
            quorum_up: true,
        };
        let mut events = Vec::new();
        m.update_quorum(&mut events);
        (m, events)
    }

    /// Carries over the state of a checker identical in `previous` (a reload keeps what the
    /// checks found).
    pub fn inherit(&mut self, previous: &ServiceMachine) {
        for (r, real) in self.spec.reals.iter().enumerate() {
            let Some(pr) = previous.spec.reals.iter().position(|p| p.addr == real.addr) else {
                continue;
            };
            for (c, checker) in real.checkers.iter().enumerate() {
                if previous.spec.reals[pr].checkers.get(c) == Some(checker) {
                    self.states[r][c] = previous.states[pr][c].clone();
                }
            }
        }
        self.quorum_up = previous.quorum_up;
        let mut ignored = Vec::new();
        self.update_quorum(&mut ignored);
    }

    /// A real server is up while every checker of it is.
    pub fn real_up(&self, r: usize) -> bool {
        self.states[r].iter().all(|c| c.up)
    }

    /// The weight a live real server has: `misc_dynamic`'s when set, else the configured one.
    pub fn real_weight(&self, r: usize) -> u32 {
        self.states[r]
            .iter()
            .rev()
            .find_map(|c| c.dynamic_weight)
            .unwrap_or(self.spec.reals[r].weight)
    }

    /// Sum of the weights of the reals that are up.
    pub fn alive_weight(&self) -> u64 {
        (0..self.spec.reals.len())
            .filter(|&r| self.real_up(r))
            .map(|r| u64::from(self.real_weight(r)))
            .sum()
    }

    pub fn sorry_in_use(&self) -> bool {
        !self.quorum_up && self.spec.sorry.is_some()
    }

    /// The live table's difference from the configured service.
    pub fn overlay(&self) -> ServiceOverlay {
        let mut o = ServiceOverlay::default();
        let sorry = self.sorry_in_use();
        for (r, real) in self.spec.reals.iter().enumerate() {
            if self.real_up(r) && !sorry {
                let w = self.real_weight(r);
                if w != real.weight {
                    o.weights.push((real.addr, w));
                }
            } else if real.inhibit {
                o.weights.push((real.addr, 0));
            } else {
                o.removed.push(real.addr);
            }
        }
        o.sorry = match &self.spec.sorry {
            Some(s) if sorry => Some(*s),
            Some(s) if self.spec.sorry_inhibit => Some(Real { weight: 0, ..*s }),
            _ => None,
        };
        o
    }

    /// Records the outcome of checker `c` of real `r` at `now`: the delay before its next
    /// probe and what changed.
    pub fn record(
        &mut self,
        r: usize,
        c: usize,
        outcome: Outcome,
        now: SystemTime,
    ) -> (Duration, Vec<Event>) {
        let mut events = Vec::new();
        let was_up = self.real_up(r);
        let was_weight = self.real_weight(r);
        let checker: &Checker = &self.spec.reals[r].checkers[c];
        let timing = checker.timing.clone();
        let target = self.target_name(r, c);
        let kind = checker.kind.keyword().to_string();
        let st = &mut self.states[r][c];
        let delay = match outcome {
            Outcome::Up { weight } => {
                st.has_run = true;
                st.last_ok = Some(true);
                st.consecutive_failures = 0;
                st.retry_it = 0;
                st.reason.clear();
                if weight.is_some() {
                    st.dynamic_weight = weight;
                }
                if !st.up {
                    st.up = true;
                    st.last_transition = Some(now);
                    events.push(Event::Log(format!("{kind} on service {target} success.")));
                }
                timing.delay_loop
            }
            Outcome::Down { reason, log } => {
                // A round of retries: from up, from the first probe, or one already begun.
                let in_round = st.up || !st.has_run || st.retry_it > 0;
                st.has_run = true;
                st.last_ok = Some(false);
                st.consecutive_failures = st.consecutive_failures.saturating_add(1);
                st.reason = reason;
                if in_round {
                    events.push(Event::Log(log));
                }
                if in_round && st.retry_it < timing.retry {
                    st.retry_it += 1;
                    timing.delay_before_retry
                } else {
                    if st.up {
                        st.up = false;
                        st.last_transition = Some(now);
                        events.push(Event::Log(format!(
                            "Check on service {target} failed after {} retries.",
                            st.retry_it
                        )));
                    }
                    st.retry_it = 0;
                    timing.delay_loop
                }
            }
        };
        let is_up = self.real_up(r);
        let real = &self.spec.reals[r];
        let service_proto = service_protocol(&self.spec.addr);
        let rs = endpoint(real.addr, service_proto);
        let vs = vs_name(&self.spec.addr);
        let sorry = self.sorry_in_use();
        if was_up != is_up {
            let state = if is_up { "UP" } else { "DOWN" };
            events.push(Event::Fifo(format!("RS {rs} {vs} {state}")));
        }
        if was_up && !is_up {
            if !sorry {
                let verb = if real.inhibit {
                    "Disabling"
                } else {
                    "Removing"
                };
                events.push(Event::Log(format!("{verb} service {rs} from VS {vs}")));
            }
            if let Some(script) = &real.notify_down {
                events.push(Event::Run(script.clone()));
            }
        } else if !was_up && is_up {
            if !sorry {
                let verb = if real.inhibit { "Enabling" } else { "Adding" };
                events.push(Event::Log(format!("{verb} service {rs} to VS {vs}")));
            }
            if let Some(script) = &real.notify_up {
                events.push(Event::Run(script.clone()));
            }
        } else if is_up && was_weight != self.real_weight(r) {
            events.push(Event::Log(format!(
                "Changing weight from {was_weight} to {} for {rs} of VS {vs}",
                self.real_weight(r)
            )));
        }
        self.update_quorum(&mut events);
        (delay, events)
    }

    /// What checker `c` of real `r` probes, as keepalived names it.
    pub fn target_name(&self, r: usize, c: usize) -> String {
        let real = &self.spec.reals[r];
        let checker = &real.checkers[c];
        match &checker.kind {
            CheckerKind::Misc { path, .. } => format!("[{path}]"),
            _ => endpoint(target(real.addr, checker), checker_protocol(checker)),
        }
    }

    fn update_quorum(&mut self, events: &mut Vec<Event>) {
        let w = self.alive_weight();
        let q = u64::from(self.spec.quorum);
        let h = u64::from(self.spec.hysteresis);
        let vs = vs_name(&self.spec.addr);
        let sorry_name = |s: &Real| endpoint(s.key(), service_protocol(&self.spec.addr));
        if self.quorum_up && (w == 0 || w < q.saturating_sub(h)) {
            self.quorum_up = false;
            events.push(Event::Log(format!(
                "Lost quorum {q}-{h}={} > {w} for VS {vs}",
                q.saturating_sub(h)
            )));
            if let Some(s) = &self.spec.sorry {
                let verb = if self.spec.sorry_inhibit {
                    "Enabling"
                } else {
                    "Adding"
                };
                events.push(Event::Log(format!(
                    "{verb} sorry server {} to VS {vs}",
                    sorry_name(s)
                )));
                events.push(Event::Log(format!(
                    "Removing alive servers from the pool for VS {vs}"
                )));
            }
            events.push(Event::Fifo(format!("VS {vs} DOWN")));
            if let Some(script) = &self.spec.quorum_down {
                events.push(Event::Run(script.clone()));
            }
        } else if !self.quorum_up && w > 0 && w >= q + h {
            self.quorum_up = true;
            events.push(Event::Log(format!(
                "Gained quorum {q}+{h}={} <= {w} for VS {vs}",
                q + h
            )));
            if let Some(s) = &self.spec.sorry {
                let verb = if self.spec.sorry_inhibit {
                    "Disabling"
                } else {
                    "Removing"
                };
                events.push(Event::Log(format!(
                    "{verb} sorry server {} from VS {vs}",
                    sorry_name(s)
                )));
                events.push(Event::Log(format!(
                    "Adding alive servers to the pool for VS {vs}"
                )));
            }
            events.push(Event::Fifo(format!("VS {vs} UP")));
            if let Some(script) = &self.spec.quorum_up {
                events.push(Event::Run(script.clone()));
            }
        }
    }
}

/// Where a checker connects: `connect_ip`/`connect_port` over the real server's address.
pub fn target(real: SocketAddrV4, checker: &Checker) -> SocketAddrV4 {
    let ip = match checker.connect_ip {
        Some(std::net::IpAddr::V4(v4)) => v4,
        _ => *real.ip(),
    };
    SocketAddrV4::new(ip, checker.connect_port.unwrap_or(real.port()))
}

/// The transport a checker probes over, for its log lines.
pub fn checker_protocol(checker: &Checker) -> &'static str {
    match checker.kind {
        CheckerKind::Udp { .. } | CheckerKind::Dns { .. } => "udp",
        CheckerKind::Ping => "icmp",
        _ => "tcp",
    }
}

#[cfg(test)]
mod tests;
