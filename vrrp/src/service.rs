//! The VRRP service: the [`Machine`]s of the `vrrp_instance`s on one interface, run over a
//! raw IPv4 socket (protocol 112) bound to that interface. For fnatd that interface is a
//! port's kernel twin: the exception path hands unconsumed frames (adverts included) to the
//! kernel, and what is sent here leaves by the DPDK port. Control side only, never on a
//! worker: one thread, blocking reads bounded by the next timer.
//!
//! Per instance it keeps keepalived's counters, runs the notify scripts without waiting for
//! them, and sends priority 0 on a clean stop.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fnat_keepalived::notify_fifo::NotifyFifos;
use fnat_keepalived::vrrp::VrrpScript;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use crate::machine::{Action, Heard, Machine, Params, State};
use crate::packet::{self, Advert, Auth, Expect, Version, GROUP_V4, TTL};

/// What one instance runs with (from a keepalived `vrrp_instance`).
#[derive(Clone, Debug)]
pub struct InstanceConfig {
    pub name: String,
    pub vrid: u8,
    pub version: Version,
    pub auth: Auth,
    pub params: Params,
    pub addresses: Vec<Ipv4Addr>,
    /// Empty: multicast to 224.0.0.18. Else: unicast to each, and only theirs accepted.
    pub unicast_peers: Vec<Ipv4Addr>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_stop: Option<String>,
    pub notify_fault: Option<String>,
    /// Called with `INSTANCE NAME STATE PRIORITY`.
    pub notify: Option<String>,
    /// The `vrrp_sync_group` this instance moves with.
    pub sync_group: Option<String>,
    /// `track_script`: (vrrp_script name, weight).
    pub track_scripts: Vec<(String, i32)>,
    /// `track_interface`: (kernel interface, weight).
    pub track_interfaces: Vec<(String, i32)>,
    /// keepalived's gratuitous-ARP schedule: `garp_master_repeat` at takeover, as many again
    /// `garp_master_delay` later, then `garp_master_refresh_repeat` every
    /// `garp_master_refresh` (0: never).
    pub garp_delay: Duration,
    pub garp_repeat: u32,
    pub garp_refresh: Duration,
    pub garp_refresh_repeat: u32,
}

impl InstanceConfig {
    /// From keepalived.conf; refuses what this service cannot run, with the reason.
    pub fn from_keepalived(
        v: &fnat_keepalived::vrrp::VrrpInstance,
        primary: Ipv4Addr,
    ) -> Result<InstanceConfig, String> {
        let v4 = |ip: &IpAddr| match ip {
            IpAddr::V4(a) => Ok(*a),
            IpAddr::V6(_) => Err(format!(
                "vrrp_instance {}: IPv6 VRRP is not supported yet",
                v.name
            )),
        };
        let addresses = v
            .virtual_ipaddress
            .iter()
            .map(v4)
            .collect::<Result<Vec<_>, _>>()?;
        let unicast_peers = v.unicast_peer.iter().map(v4).collect::<Result<_, _>>()?;
        let primary = match &v.unicast_src_ip {
            Some(ip) => v4(ip)?,
            None => primary,
        };
        Ok(InstanceConfig {
            name: v.name.clone(),
            vrid: v.virtual_router_id,
            version: if v.version == 3 {
                Version::V3
            } else {
                Version::V2
            },
            auth: match &v.auth {
                fnat_keepalived::vrrp::VrrpAuth::None => Auth::None,
                fnat_keepalived::vrrp::VrrpAuth::Pass(p) => Auth::pass(p),
            },
            params: Params {
                priority: v.priority,
                advert_int: v.advert_int,
                preempt: !v.nopreempt,
                preempt_delay: v.preempt_delay,
                start_as_master: v.start_as_master,
                primary: IpAddr::V4(primary),
            },
            addresses,
            unicast_peers,
            notify_master: v.notify_master.clone(),
            notify_backup: v.notify_backup.clone(),
            notify_stop: v.notify_stop.clone(),
            notify_fault: v.notify_fault.clone(),
            notify: v.notify.clone(),
            sync_group: None,
            // A script's weight here overrides its own; those are filled in by the caller,
            // who knows the scripts.
            track_scripts: v
                .track_script
                .iter()
                .map(|t| (t.name.clone(), t.weight.unwrap_or(i32::MIN)))
                .collect(),
            track_interfaces: v
                .track_interface
                .iter()
                .map(|t| (t.name.clone(), t.weight.unwrap_or(0)))
                .collect(),
            garp_delay: v.garp_master_delay,
            garp_repeat: v.garp_master_repeat,
            garp_refresh: v.garp_master_refresh,
            garp_refresh_repeat: v.garp_master_refresh_repeat,
        })
    }
}

/// The `vrrp_sync_group`s of one director, shared by the services of all its interfaces
/// (members of a group may run on different ports' threads). A member that takes over or
/// gives up on its own moves the group (a new epoch with the target state); the others
/// follow on their next turn. A member whose timer runs out becomes master only when no
/// other member still hears a master (keepalived's rule), else it looks again shortly.
#[derive(Clone, Debug, Default)]
pub struct SyncGroups(std::sync::Arc<std::sync::Mutex<BTreeMap<String, GroupState>>>);

#[derive(Debug, Default)]
struct GroupState {
    epoch: u64,
    target: Option<State>,
    /// Members that are backups hearing a live master.
    hearing: BTreeMap<String, bool>,
}

/// What all the VRRP threads of a director share: the sync groups, the `vrrp_script`s, the
/// notify FIFOs.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub groups: SyncGroups,
    pub scripts: Vec<VrrpScript>,
    /// keepalived's `notify_fifo` and `vrrp_notify_fifo`: `INSTANCE "NAME" STATE PRIORITY`
    /// and `GROUP "NAME" STATE 0` lines (see [`fnat_keepalived::notify_fifo`]).
    pub notify_fifos: Vec<std::path::PathBuf>,
}

/// A `track_script` entry without a weight of its own (`i32::MIN`) takes its script's.
fn resolve_weights(config: &mut InstanceConfig, scripts: &[VrrpScript]) {
    for (name, weight) in &mut config.track_scripts {
        if *weight == i32::MIN {
            *weight = scripts
                .iter()
                .find(|s| &s.name == name)
                .map_or(0, |s| s.weight);
        }
    }
}

/// How soon a member held back by its group looks again.
const GROUP_HOLD: Duration = Duration::from_millis(20);
/// At most this many queued packets are read before a turn's timers run (bounded work; a
/// second's adverts of every instance on a segment fit many times over).
const DRAIN_MAX: usize = 256;

impl SyncGroups {
    fn with<R>(&self, group: &str, f: impl FnOnce(&mut GroupState) -> R) -> Option<R> {
        let mut g = self.0.lock().ok()?;
        Some(f(g.entry(group.to_string()).or_default()))
    }
}

/// A reload may change an instance's parameters, not which instances run or what they own
/// (that moves addresses between directors: a restart does it).
pub fn check_same_instances<'a>(
    running: impl Iterator<Item = &'a InstanceConfig>,
    new: impl Iterator<Item = &'a InstanceConfig>,
) -> Result<(), String> {
    let key = |c: &InstanceConfig| (c.name.clone(), c.vrid, c.addresses.clone());
    let a: Vec<_> = running.map(key).collect();
    let b: Vec<_> = new.map(key).collect();
    if a == b {
        Ok(())
    } else {
        Err(
            "the vrrp_instances (names, virtual_router_id, virtual_ipaddress) changed: \
             restart fnatd to apply that"
                .into(),
        )
    }
}

/// keepalived's statistics names.
pub const COUNTERS: [&str; 15] = [
    "advert_rcvd",
    "advert_sent",
    "become_master",
    "release_master",
    "pri_zero_rcvd",
    "pri_zero_sent",
    "packet_len_err",
    "advert_interval_err",
    "ip_ttl_err",
    "invalid_type_rcvd",
    "addr_list_err",
    "invalid_authtype",
    "authtype_mismatch",
    "auth_failure",
    "checksum_err",
];

/// One instance as `fnatctl vrrp` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub name: String,
    pub vrid: u8,
    pub state: State,
    pub priority: u8,
    /// With tracking's weights applied (what the adverts carry).
    pub effective_priority: u8,
    pub master: Option<IpAddr>,
    pub counters: BTreeMap<&'static str, u64>,
}

struct Instance {
    config: InstanceConfig,
    machine: Machine,
    counters: BTreeMap<&'static str, u64>,
    /// The sync group's epoch this member has followed.
    group_epoch: u64,
    /// Its own tracking put it in FAULT (not only its group).
    own_fault: bool,
    /// While master: when the next scheduled gratuitous ARPs are due, and whether they
    /// are the refresh ones (else the `garp_master_delay` burst).
    garp_at: Option<(Duration, bool)>,
}

/// Told of every state change of an instance (its index in the configs, its new state).
pub type OnState = Box<dyn FnMut(usize, State) + Send>;

/// Asked for gratuitous ARPs of an instance's addresses (its index, how many of each).
pub type OnGarp = Box<dyn FnMut(usize, u32) + Send>;

pub struct Service {
    on_state: Option<OnState>,
    on_garp: Option<OnGarp>,
    socket: Socket,
    instances: Vec<Instance>,
    origin: Instant,
    children: Vec<Child>,
    groups: SyncGroups,
    /// Set while a member follows its group (its transitions do not move the group again).
    following: bool,
    /// The `vrrp_script`s the instances here track (run on this thread).
    scripts: Vec<crate::track::Script>,
    fifo_paths: Vec<std::path::PathBuf>,
    fifos: NotifyFifos,
}

impl Service {
    /// Opens the raw socket on `interface` (bound to it, joined to 224.0.0.18 there, TTL
    /// 255); `primary` is the interface's primary address (the kernel's source choice).
    pub fn open(
        interface: &str,
        primary: Ipv4Addr,
        configs: Vec<InstanceConfig>,
    ) -> io::Result<Service> {
        let socket = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(packet::PROTOCOL))),
        )?;
        socket.bind_device(Some(interface.as_bytes()))?;
        // Not bound to `primary`: a raw socket bound to an address only receives what is
        // sent to it, not the group. The kernel sources from the interface's primary.
        socket.set_ttl_v4(u32::from(TTL))?;
        socket.set_multicast_ttl_v4(u32::from(TTL))?;
        socket.set_multicast_loop_v4(false)?;
        socket.set_multicast_if_v4(&primary)?;
        socket.join_multicast_v4_n(&GROUP_V4, &InterfaceIndexOrAddress::Address(primary))?;
        let instances = configs
            .into_iter()
            .map(|config| Instance {
                machine: Machine::new(config.params.clone()),
                config,
                counters: COUNTERS.iter().map(|c| (*c, 0)).collect(),
                group_epoch: 0,
                own_fault: false,
                garp_at: None,
            })
            .collect();
        Ok(Service {
            on_state: None,
            on_garp: None,
            socket,
            instances,
            origin: Instant::now(),
            children: Vec::new(),
            groups: SyncGroups::default(),
            following: false,
            scripts: Vec::new(),
            fifo_paths: Vec::new(),
            fifos: NotifyFifos::default(),
        })
    }

    /// A reloaded configuration of the same instances (same names, virtual router ids and
    /// addresses, in the same order): each keeps its state and takes the new parameters,
    /// tracking and schedule from its next turn. Anything else is refused with the reason
    /// and nothing changes. The `vrrp_script`s and notify FIFOs are `ctx`'s (its sync
    /// groups are not: the running ones stay), see [`Service::set_scripts`].
    pub fn reconfigure(
        &mut self,
        configs: Vec<InstanceConfig>,
        ctx: Context,
    ) -> Result<(), String> {
        check_same_instances(self.instances.iter().map(|i| &i.config), configs.iter())?;
        for (inst, mut config) in self.instances.iter_mut().zip(configs) {
            resolve_weights(&mut config, &ctx.scripts);
            inst.machine.reconfigure(config.params.clone());
            inst.config = config;
        }
        self.set_scripts(ctx.scripts);
        self.set_fifos(ctx.notify_fifos);
        Ok(())
    }

    /// Shares the director's sync groups with the services of its other interfaces, runs
    /// the scripts the instances here track, writes state changes to the notify FIFOs.
    pub fn context(&mut self, ctx: Context) {
        self.groups = ctx.groups;
        self.set_fifos(ctx.notify_fifos);
        for inst in &mut self.instances {
            resolve_weights(&mut inst.config, &ctx.scripts);
        }
        self.set_scripts(ctx.scripts);
    }

    /// The `vrrp_script`s to run: those the instances here track (see
    /// [`crate::track::reload`]).
    fn set_scripts(&mut self, configs: Vec<VrrpScript>) {
        let old = std::mem::take(&mut self.scripts);
        let instances = &self.instances;
        self.scripts = crate::track::reload(old, configs, |name| {
            instances
                .iter()
                .any(|i| i.config.track_scripts.iter().any(|(n, _)| n == name))
        });
    }

    /// The notify FIFOs (made if missing); unchanged paths keep their open files.
    fn set_fifos(&mut self, paths: Vec<std::path::PathBuf>) {
        if paths != self.fifo_paths {
            self.fifos = NotifyFifos::create(&paths);
            self.fifo_paths = paths;
        }
    }

    /// Runs the scripts; applies each instance's tracking verdict: FAULT (weight 0 failed),
    /// out of it, or the effective priority.
    fn track(&mut self, now: Duration) {
        for s in &mut self.scripts {
            s.turn(now);
        }
        for k in 0..self.instances.len() {
            let inst = &self.instances[k];
            let scripts = inst.config.track_scripts.iter().map(|(name, w)| {
                let good = self
                    .scripts
                    .iter()
                    .find(|s| &s.config.name == name)
                    .is_none_or(|s| s.good());
                (*w, good)
            });
            let interfaces = inst
                .config
                .track_interfaces
                .iter()
                .map(|(name, w)| (*w, crate::track::interface_up(name)));
            let (fault, priority) =
                crate::track::verdict(inst.config.params.priority, scripts.chain(interfaces));
            if inst.machine.params().priority != priority {
                self.instances[k].machine.set_priority(priority);
            }
            let state = self.instances[k].machine.state();
            if fault && !self.instances[k].own_fault {
                self.instances[k].own_fault = true;
                let actions = self.instances[k].machine.fault(now);
                self.perform(k, actions);
            } else if !fault && self.instances[k].own_fault {
                self.instances[k].own_fault = false;
                if state == State::Fault {
                    let actions = self.instances[k].machine.recover(now);
                    self.perform(k, actions);
                    self.move_group(k, State::Backup);
                }
            }
        }
    }

    /// Members follow their groups' moves; backups whose timer ran out wait while another
    /// member hears a master; each member says whether it hears one.
    fn follow_groups(&mut self, now: Duration) {
        for k in 0..self.instances.len() {
            let Some(group) = self.instances[k].config.sync_group.clone() else {
                continue;
            };
            let name = self.instances[k].config.name.clone();
            let seen = self.instances[k].group_epoch;
            let moved = self
                .groups
                .with(&group, |g| (g.epoch > seen).then_some((g.epoch, g.target)))
                .flatten();
            if let Some((epoch, target)) = moved {
                self.instances[k].group_epoch = epoch;
                let own_fault = self.instances[k].own_fault;
                if let Some(to) = target.filter(|_| !own_fault) {
                    let actions = self.instances[k].machine.follow(now, to);
                    self.following = true;
                    self.perform(k, actions);
                    self.following = false;
                }
            }
            let m = &mut self.instances[k].machine;
            let due = m.state() == State::Backup && m.next_deadline().is_some_and(|t| now >= t);
            if due {
                let others_hear = self
                    .groups
                    .with(&group, |g| g.hearing.iter().any(|(n, h)| *h && *n != name))
                    .unwrap_or(false);
                if others_hear {
                    m.hold(now, GROUP_HOLD);
                }
            }
            let hears = m.hears_master(now);
            self.groups.with(&group, |g| {
                g.hearing.insert(name.clone(), hears);
            });
        }
    }

    /// A member moved on its own: the rest of its group follows.
    fn move_group(&mut self, k: usize, to: State) {
        if self.following {
            return;
        }
        let inst = &mut self.instances[k];
        let Some(group) = &inst.config.sync_group else {
            return;
        };
        let group = group.clone();
        if let Some(epoch) = self.groups.with(&group, |g| {
            g.epoch += 1;
            g.target = Some(to);
            g.epoch
        }) {
            inst.group_epoch = epoch;
        }
        // keepalived writes a group's line with priority 0.
        self.fifos
            .write_line(&format!("GROUP \"{group}\" {} 0", to.name()));
    }

    /// Calls `f` on every state change from now on.
    pub fn on_state(&mut self, f: OnState) {
        self.on_state = Some(f);
    }

    /// Calls `f` when gratuitous ARPs are due (keepalived's schedule).
    pub fn on_garp(&mut self, f: OnGarp) {
        self.on_garp = Some(f);
    }

    fn garp(&mut self, k: usize, repeat: u32) {
        if let (Some(f), true) = (self.on_garp.as_mut(), repeat > 0) {
            f(k, repeat);
        }
    }

    /// The `garp_master_delay` burst and the refreshes of the masters.
    fn garp_schedule(&mut self, now: Duration) {
        for k in 0..self.instances.len() {
            let inst = &mut self.instances[k];
            let Some((at, refresh)) = inst.garp_at else {
                continue;
            };
            if inst.machine.state() != State::Master {
                inst.garp_at = None;
                continue;
            }
            if now < at {
                continue;
            }
            let c = &inst.config;
            let repeat = if refresh {
                c.garp_refresh_repeat
            } else {
                c.garp_repeat
            };
            inst.garp_at = (!c.garp_refresh.is_zero()).then(|| (now + c.garp_refresh, true));
            self.garp(k, repeat);
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    pub fn status(&self) -> Vec<Status> {
        self.instances
            .iter()
            .map(|i| Status {
                name: i.config.name.clone(),
                vrid: i.config.vrid,
                state: i.machine.state(),
                priority: i.config.params.priority,
                effective_priority: i.machine.params().priority,
                master: i.machine.master(),
                counters: i.counters.clone(),
            })
            .collect()
    }

    pub fn start(&mut self) {
        let now = self.now();
        for k in 0..self.instances.len() {
            let actions = self.instances[k].machine.start(now);
            self.perform(k, actions);
        }
    }

    /// Clean stop: masters send priority 0.
    pub fn stop(&mut self) {
        let now = self.now();
        for k in 0..self.instances.len() {
            let actions = self.instances[k].machine.stop(now);
            self.perform(k, actions);
        }
        self.reap();
    }

    /// Runs timers and reads adverts for at most `max`; returns after one event or `max`.
    pub fn turn(&mut self, max: Duration) {
        self.drain();
        let now = self.now();
        self.track(now);
        self.follow_groups(now);
        self.garp_schedule(now);
        for k in 0..self.instances.len() {
            let actions = self.instances[k].machine.poll(now);
            self.perform(k, actions);
        }
        self.reap();
        let next = self
            .instances
            .iter()
            .filter_map(|i| i.machine.next_deadline())
            .chain(
                self.scripts
                    .iter()
                    .map(|s| s.next_deadline().max(now + Duration::from_millis(20))),
            )
            .chain(self.instances.iter().filter_map(|i| i.garp_at.map(|g| g.0)))
            .min()
            .map_or(max, |d| d.saturating_sub(now).min(max))
            .max(Duration::from_millis(1));
        if self.socket.set_read_timeout(Some(next)).is_err() {
            return;
        }
        let mut buf = [0u8; 2048];
        match (&self.socket).read(&mut buf) {
            Ok(n) => self.received(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }

    /// Reads what queued in the socket since the last turn, without waiting, before any
    /// timer runs: after this thread was away (the machine paused, the process stopped, a
    /// starved CPU) past a master-down interval, a backup would otherwise find its timer
    /// expired and take over, for a moment, from a master whose adverts wait unread (keepalived
    /// and this service both announcing the VIP).
    fn drain(&mut self) {
        if self.socket.set_nonblocking(true).is_err() {
            return;
        }
        let mut buf = [0u8; 2048];
        for _ in 0..DRAIN_MAX {
            match (&self.socket).read(&mut buf) {
                Ok(n) => self.received(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        // Back to blocking: the turn's read waits (up to its timeout) for the next advert.
        let _ = self.socket.set_nonblocking(false);
    }

    /// One IPv4 packet as the raw socket delivers it (header included).
    fn received(&mut self, ip: &[u8]) {
        if ip.len() < 20 || ip[0] >> 4 != 4 {
            return;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
        if ihl < 20 || total < ihl {
            return;
        }
        let ttl = ip[8];
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let payload = &ip[ihl..total];
        let Some(vrid) = packet::vrid(payload) else {
            return;
        };
        let now = self.now();
        let Some(k) = self.instances.iter().position(|i| i.config.vrid == vrid) else {
            return;
        };
        let inst = &mut self.instances[k];
        if !inst.config.unicast_peers.is_empty() && !inst.config.unicast_peers.contains(&src) {
            return;
        }
        if IpAddr::V4(src) == inst.config.params.primary {
            return;
        }
        let expect = Expect {
            version: inst.config.version,
            auth: &inst.config.auth,
            interval: inst.config.params.advert_int,
            addresses: &inst.config.addresses,
        };
        match packet::decode(payload, src, dst, ttl, &expect) {
            Ok(advert) => {
                *inst.counters.entry("advert_rcvd").or_default() += 1;
                if advert.priority == 0 {
                    *inst.counters.entry("pri_zero_rcvd").or_default() += 1;
                }
                let actions = inst.machine.heard(
                    now,
                    Heard {
                        priority: advert.priority,
                        source: IpAddr::V4(src),
                        advert_int: advert.interval,
                    },
                );
                self.perform(k, actions);
            }
            Err(e) => *inst.counters.entry(e.counter()).or_default() += 1,
        }
    }

    fn perform(&mut self, k: usize, actions: Vec<Action>) {
        for action in actions {
            let state = match action {
                Action::SendAdvert { .. } => None,
                Action::BecameMaster => Some(State::Master),
                Action::BecameBackup => Some(State::Backup),
                Action::Stopped => Some(State::Init),
                Action::BecameFault => Some(State::Fault),
                Action::Reannounce => None,
            };
            if let (Some(state), Some(f)) = (state, self.on_state.as_mut()) {
                f(k, state);
            }
            match action {
                Action::SendAdvert { priority } => self.send(k, priority),
                Action::Reannounce => {
                    // After a split brain: the peers' neighbour entries may still point at
                    // the other master, and a Linux host ignores an update arriving within
                    // `locktime` (1 s) of the last one; so the garp_master_delay burst
                    // follows, as after a takeover.
                    let c = &self.instances[k].config;
                    let (repeat, delay) = (c.garp_repeat, c.garp_delay);
                    self.instances[k].garp_at = Some((now_of(&self.origin) + delay, false));
                    self.garp(k, repeat);
                }
                Action::BecameMaster => {
                    // Owning the addresses announces each once; the rest of the burst, and
                    // the second one garp_master_delay later.
                    let c = &self.instances[k].config;
                    let (repeat, delay) = (c.garp_repeat, c.garp_delay);
                    self.instances[k].garp_at = Some((now_of(&self.origin) + delay, false));
                    self.garp(k, repeat.saturating_sub(1));
                    self.move_group(k, State::Master);
                    *self.instances[k]
                        .counters
                        .entry("become_master")
                        .or_default() += 1;
                    self.notify(k, "MASTER");
                }
                Action::BecameBackup => {
                    // Starting as backup moves nobody; giving up the addresses moves all.
                    if self.was_master(k) {
                        self.move_group(k, State::Backup);
                    }
                    let released = u64::from(self.was_master(k));
                    *self.instances[k]
                        .counters
                        .entry("release_master")
                        .or_default() += released;
                    self.notify(k, "BACKUP");
                }
                Action::Stopped => {
                    let released = u64::from(self.was_master(k));
                    *self.instances[k]
                        .counters
                        .entry("release_master")
                        .or_default() += released;
                    self.notify(k, "STOP");
                }
                Action::BecameFault => {
                    let released = u64::from(self.was_master(k));
                    *self.instances[k]
                        .counters
                        .entry("release_master")
                        .or_default() += released;
                    self.move_group(k, State::Fault);
                    self.notify(k, "FAULT");
                }
            }
        }
    }

    /// Whether the instance had been master (release_master counts masters that yield).
    fn was_master(&self, k: usize) -> bool {
        let c = &self.instances[k].counters;
        c["become_master"] > c["release_master"]
    }

    fn send(&mut self, k: usize, priority: u8) {
        let inst = &mut self.instances[k];
        let IpAddr::V4(src) = inst.config.params.primary else {
            return;
        };
        let advert = Advert {
            version: inst.config.version,
            vrid: inst.config.vrid,
            priority,
            interval: inst.config.params.advert_int,
            addresses: inst.config.addresses.clone(),
        };
        let targets = if inst.config.unicast_peers.is_empty() {
            vec![GROUP_V4]
        } else {
            inst.config.unicast_peers.clone()
        };
        for dst in targets {
            let bytes = packet::encode(&advert, &inst.config.auth, src, dst);
            let to = SockAddr::from(SocketAddrV4::new(dst, 0));
            if self.socket.send_to(&bytes, &to).is_ok() {
                *inst.counters.entry("advert_sent").or_default() += 1;
                if priority == 0 {
                    *inst.counters.entry("pri_zero_sent").or_default() += 1;
                }
            }
        }
    }

    fn notify(&mut self, k: usize, state: &str) {
        let c = &self.instances[k].config;
        let script = match state {
            "MASTER" => &c.notify_master,
            "BACKUP" => &c.notify_backup,
            "FAULT" => &c.notify_fault,
            _ => &c.notify_stop,
        };
        let priority = self.instances[k].machine.params().priority;
        let line = format!("INSTANCE \"{}\" {state} {priority}", c.name);
        let mut run = Vec::new();
        if let Some(s) = script {
            run.push(s.clone());
        }
        if let Some(s) = &c.notify {
            run.push(format!("{s} INSTANCE {} {state} {priority}", c.name));
        }
        self.fifos.write_line(&line);
        for s in run {
            // Not waited for: reaped on later turns.
            if let Ok(child) = Command::new("/bin/sh").arg("-c").arg(&s).spawn() {
                self.children.push(child);
            }
        }
    }

    fn reap(&mut self) {
        self.children
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }
}

fn now_of(origin: &Instant) -> Duration {
    origin.elapsed()
}

/// The service on its own thread (control side): it opens the interface once it exists (a
/// kernel twin appears when the dataplane's ports are up), runs until stopped, and then
/// sends priority 0 for the instances it is master of.
pub struct Runner {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// A reloaded configuration for the thread to take on its next turn.
    pending: std::sync::Arc<std::sync::Mutex<Option<Reload>>>,
    /// The configuration running (what reloads are checked against).
    configs: Vec<InstanceConfig>,
    shared: std::sync::Arc<std::sync::Mutex<Shared>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// A reloaded configuration: the instances, and the scripts and notify FIFOs of the
/// [`Context`] (its sync groups are not taken: the running ones stay).
type Reload = (Vec<InstanceConfig>, Context);

/// What the thread publishes for `status()`.
#[derive(Clone, Debug, Default)]
pub struct Shared {
    pub statuses: Vec<Status>,
    /// Why the interface is not open (yet).
    pub error: Option<String>,
}

impl Runner {
    /// `on_state` is told of every state change (instance index, new state), on the
    /// service's thread; `ctx` is what the director's runners share.
    pub fn spawn(
        interface: String,
        primary: Ipv4Addr,
        configs: Vec<InstanceConfig>,
        on_state: OnState,
        on_garp: OnGarp,
        ctx: Context,
    ) -> io::Result<Runner> {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Shared {
            statuses: configs
                .iter()
                .map(|c| Status {
                    name: c.name.clone(),
                    vrid: c.vrid,
                    state: State::Init,
                    priority: c.params.priority,
                    effective_priority: c.params.priority,
                    master: None,
                    counters: COUNTERS.iter().map(|c| (*c, 0)).collect(),
                })
                .collect(),
            error: Some(format!("{interface}: not open yet")),
        }));
        let (flag, out) = (stop.clone(), shared.clone());
        let publish = move |s: &Service, error: Option<String>| {
            if let Ok(mut g) = out.lock() {
                g.statuses = s.status();
                g.error = error;
            }
        };
        let err_out = shared.clone();
        let pending = std::sync::Arc::new(std::sync::Mutex::new(None::<Reload>));
        let (pending_in, running) = (pending.clone(), configs.clone());
        let handle = std::thread::Builder::new()
            .name("fnat-vrrp".into())
            .spawn(move || {
                let mut service = loop {
                    if flag.load(Ordering::SeqCst) {
                        return;
                    }
                    match Service::open(&interface, primary, configs.clone()) {
                        Ok(s) => break s,
                        Err(e) => {
                            if let Ok(mut g) = err_out.lock() {
                                g.error = Some(format!("{interface}: {e}"));
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                };
                service.on_state(on_state);
                service.on_garp(on_garp);
                service.context(ctx);
                service.start();
                while !flag.load(Ordering::SeqCst) {
                    let reload = pending_in.lock().ok().and_then(|mut p| p.take());
                    if let Some((configs, ctx)) = reload {
                        if let Err(e) = service.reconfigure(configs, ctx) {
                            eprintln!("fnatd: vrrp: reload: {e}");
                        }
                    }
                    publish(&service, None);
                    service.turn(Duration::from_millis(50));
                }
                service.stop();
                publish(&service, None);
            })?;
        Ok(Runner {
            stop,
            pending,
            configs: running,
            shared,
            handle: Some(handle),
        })
    }

    /// A reloaded configuration of this thread's instances, with the reloaded
    /// `vrrp_script`s and notify FIFOs of `ctx`: checked now (same instances), applied by
    /// the thread on its next turn, each instance keeping its state (see
    /// [`Service::reconfigure`]).
    pub fn reconfigure(
        &mut self,
        configs: Vec<InstanceConfig>,
        ctx: Context,
    ) -> Result<(), String> {
        check_same_instances(self.configs.iter(), configs.iter())?;
        self.configs.clone_from(&configs);
        if let Ok(mut p) = self.pending.lock() {
            *p = Some((configs, ctx));
        }
        Ok(())
    }

    pub fn status(&self) -> Shared {
        self.shared.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Clean stop: priority 0 from the masters, then the thread ends.
    pub fn stop_and_wait(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
