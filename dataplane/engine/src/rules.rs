//! The rules a worker runs with: one immutable snapshot, shared read-only by all workers.
//!
//! The driver builds a `Rules` from the validated config (and later the control socket) and
//! hands every worker an `Arc<Rules>`; a change is a new snapshot with a higher generation.
//! Services and real servers carry stable ids so that sessions survive snapshot changes.

use std::net::Ipv4Addr;
use std::sync::Arc;

/// Index of a port in [`Rules::ports`] (config order), not a DPDK port id.
pub type PortIndex = u16;

/// An IPv4 prefix such as 198.18.0.1/24 (the address keeps its host bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// `a.b.c.d/prefix_len`.
    pub const fn new(addr: [u8; 4], prefix_len: u8) -> Self {
        Ipv4Cidr {
            addr: Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]),
            prefix_len,
        }
    }

    /// True when `ip` lies in this prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = prefix_mask(self.prefix_len);
        u32::from(self.addr) & mask == u32::from(ip) & mask
    }
}

/// The netmask of a prefix length (0..=32; larger lengths are treated as 32).
pub fn prefix_mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n if n >= 32 => u32::MAX,
        n => u32::MAX << (32 - n),
    }
}

/// A port as the engine sees it: its MAC and the addresses it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub name: String,
    pub mac: [u8; 6],
    /// Interface addresses with their prefixes (VIPs and LIPs may be listed as /32).
    pub addresses: Vec<Ipv4Cidr>,
}

/// How the dataplane forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Plain port-to-port pass-through: frames from port i go out of `forward[i]` unchanged.
    Passthrough { forward: Vec<Option<PortIndex>> },
    /// Full-NAT load balancing over `Rules::services`.
    FullNat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The IPv4 protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

/// Scheduler names as ipvsadm spells them (`-s NAME`). `Wlc` is the default, as in ipvsadm.
/// What each does, and where it deviates from kernel IPVS, is in `crate::sched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SchedulerKind {
    Rr,
    Wrr,
    Lc,
    #[default]
    Wlc,
    Sed,
    Nq,
    Sh,
    Dh,
    Mh,
    Fo,
    Ovf,
    Lblc,
    Lblcr,
}

impl SchedulerKind {
    /// Every scheduler, in ipvsadm's documentation order.
    pub const ALL: [SchedulerKind; 13] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Sh,
        SchedulerKind::Dh,
        SchedulerKind::Mh,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
    ];

    /// The ipvsadm name (`rr`, `wlc`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
        }
    }

    /// The scheduler of an ipvsadm name.
    pub fn from_name(name: &str) -> Option<SchedulerKind> {
        SchedulerKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// IPVS's scheduler flags (`-b`, IP_VS_SVC_F_SCHED1..3). sh and mh read flag 1 as
/// `*-fallback` (an unavailable real server's keys go to the next available one instead of
/// being refused) and flag 2 as `*-port` (hash the source port too). Other schedulers ignore
/// them, as in IPVS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SchedFlags(pub u8);

impl SchedFlags {
    pub const FLAG_1: u8 = 1;
    pub const FLAG_2: u8 = 2;
    pub const FLAG_3: u8 = 4;
    /// sh-fallback / mh-fallback.
    pub const FALLBACK: u8 = Self::FLAG_1;
    /// sh-port / mh-port.
    pub const PORT: u8 = Self::FLAG_2;

    pub const fn fallback(self) -> bool {
        self.0 & Self::FALLBACK != 0
    }
    pub const fn port(self) -> bool {
        self.0 & Self::PORT != 0
    }
}

/// Default persistence timeout (ipvsadm `-p` without a value), seconds.
pub const DEFAULT_PERSISTENCE_TIMEOUT: u32 = 360;

/// Persistence (`ipvsadm -p TIMEOUT -M NETMASK`): new connections from a client (its address
/// masked with `netmask`) go to the real server its earlier connections went to, for
/// `timeout_secs` after the last one was scheduled and while any of them lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Persistence {
    pub timeout_secs: u32,
    /// Applied to the client address (255.255.255.255 = per client address).
    pub netmask: Ipv4Addr,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            timeout_secs: DEFAULT_PERSISTENCE_TIMEOUT,
            netmask: Ipv4Addr::BROADCAST,
        }
    }
}

/// One VIP:port of a port group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub vip: Ipv4Addr,
    pub protocol: Protocol,
    pub port: u16,
}

/// A port group: the firewall-mark service of LVS (`ipvsadm -A -f MARK`). Its service is
/// matched by every endpoint in `members` instead of by its own vip/protocol/port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PortGroup {
    /// The firewall mark (non-zero).
    pub mark: u32,
    pub name: String,
    pub members: Vec<Endpoint>,
}

/// The service settings beyond address and scheduler; `Default` is an ipvsadm service
/// added with no options (no flags, no persistence, sessions of removed RSs run on).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ServiceOptions {
    pub sched_flags: SchedFlags,
    /// `None`: not persistent.
    pub persistence: Option<Persistence>,
    /// A port-group (fwmark) service: matched by the group's endpoints. The service's own
    /// `vip`/`protocol`/`port` are then only labels (conventionally the first member's).
    pub port_group: Option<PortGroup>,
    /// End a real server's sessions when it is removed from the service (IPVS's
    /// `expire_nodest_conn`), instead of letting them run until they expire.
    pub expire_on_removal: bool,
    /// An SNAT match service (DPVS's `-H`): matched by [`SnatRule`] instead of endpoints;
    /// its real servers are the WAN addresses (also its local addresses, the port pools)
    /// and each session's "real server" is the packet's own destination.
    pub snat: Option<SnatRule>,
    /// Allow and deny lists of client prefixes, checked for new connections only (`None`:
    /// every client may connect). Built once on the control side, shared by the workers.
    pub acl: Option<Arc<crate::acl::ClientAcl>>,
    /// A cap on new connections per second per client prefix.
    pub conn_rate: Option<crate::acl::ConnRateLimit>,
    /// What the real servers of a full-NAT service learn of the client (Proxy Protocol,
    /// TOA); nothing by default.
    pub client_address: ClientAddress,
    /// SYN proxy (TCP, full-NAT): SYN cookies answer the clients' SYNs; a session is made
    /// only by a valid cookie ACK (`fnat/synproxy.rs`).
    pub synproxy: bool,
}

/// How a full-NAT service tells its real servers the client's address and port
/// (docs/client-address.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ClientAddress {
    /// Proxy Protocol version put in front of the client's data: 1 (text, TCP only) or 2
    /// (binary; UDP always gets 2); 0: none.
    pub proxy_version: u8,
    /// Pass on a Proxy Protocol header the client sent itself (a proxy in front) instead of
    /// refusing it (`proxy_header_from_client`).
    pub proxy_insecure: bool,
    /// TCP option 254 (port and IPv4 address, DPVS's TOA) on the handshake-completing ACK and
    /// the first data segment.
    pub toa: bool,
}

impl ClientAddress {
    /// True when sessions of the service need per-session sequence state.
    #[inline]
    pub fn any(&self) -> bool {
        self.proxy_version != 0 || self.toa
    }
}

/// The packets an SNAT service takes: protocol, inside sources, outside destinations (both
/// inclusive ranges, host order), the port they arrive on and the one they leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnatRule {
    /// The IPv4 protocol number: 6 (TCP), 17 (UDP) or 1 (ICMP echo).
    pub proto: u8,
    pub src: Option<(u32, u32)>,
    pub dst: Option<(u32, u32)>,
    pub iif: Option<PortIndex>,
    pub oif: Option<PortIndex>,
}

impl SnatRule {
    /// True when a packet of `proto` from `src` to `dst` received on `rx_port` is one of
    /// this rule's (the oif is checked against the route by the caller).
    #[inline]
    pub fn takes(&self, proto: u8, src: u32, dst: u32, rx_port: PortIndex) -> bool {
        let within = |r: Option<(u32, u32)>, a: u32| r.is_none_or(|(lo, hi)| lo <= a && a <= hi);
        self.proto == proto
            && within(self.src, src)
            && within(self.dst, dst)
            && self.iif.is_none_or(|p| p == rx_port)
    }
}

/// A virtual service: VIP + protocol + port (0 = every port of the VIP), or a port group;
/// its real servers and its local addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Stable across snapshots while the service exists.
    pub id: u32,
    pub vip: Ipv4Addr,
    pub protocol: Protocol,
    /// 0: a port-0 service, matching every port of the VIP that no other service has.
    pub port: u16,
    pub scheduler: SchedulerKind,
    pub reals: Vec<RealServer>,
    /// Local addresses (LIPs) used as the source toward real servers, tried in order.
    pub local_addresses: Vec<Ipv4Addr>,
    pub options: ServiceOptions,
}

impl Service {
    /// A service with default options, no real servers and no local addresses.
    pub fn new(
        id: u32,
        vip: Ipv4Addr,
        protocol: Protocol,
        port: u16,
        scheduler: SchedulerKind,
    ) -> Self {
        Service {
            id,
            vip,
            protocol,
            port,
            scheduler,
            reals: Vec::new(),
            local_addresses: Vec::new(),
            options: ServiceOptions::default(),
        }
    }

    /// The endpoints that select this service: the port group's members, else its own; an
    /// SNAT service has none (its [`SnatRule`] selects it).
    pub fn endpoints(&self) -> impl Iterator<Item = Endpoint> + '_ {
        let own = Endpoint {
            vip: self.vip,
            protocol: self.protocol,
            port: self.port,
        };
        let group = self.options.port_group.as_ref();
        let plain = group.is_none() && self.options.snat.is_none();
        group
            .into_iter()
            .flat_map(|g| g.members.iter().copied())
            .chain(plain.then_some(own))
    }
}

/// Connection thresholds of a real server (ipvsadm `-x` upper, `-y` lower; 0 = none). A real
/// server whose connections (active + inactive) reach `upper` is overloaded: it gets no new
/// sessions until they fall below `lower` (3/4 of `upper` when `lower` is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Thresholds {
    pub upper: u32,
    pub lower: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    /// Stable across snapshots while the real server exists.
    pub id: u32,
    pub addr: Ipv4Addr,
    /// 0: the port the client asked for (port-0 and port-group services).
    pub port: u16,
    /// 0..=2147483647; 0 drains: no new sessions, established ones continue.
    pub weight: u32,
    pub thresholds: Thresholds,
    /// How packets reach this real server (IPVS: a property of each destination).
    pub method: Method,
}

impl RealServer {
    pub fn new(id: u32, addr: Ipv4Addr, port: u16, weight: u32) -> Self {
        RealServer {
            id,
            addr,
            port,
            weight,
            thresholds: Thresholds::default(),
            method: Method::FullNat,
        }
    }
}

/// The encapsulation of a tunnelled real server (kernel ipvsadm's `--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelKind {
    /// IPv4 in IPv4 (protocol 4): the default.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation: outer UDP to `Tunnel::port`, a 4-byte GUE header.
    Gue,
    /// GRE (protocol 47) carrying IPv4 (protocol type 0x0800).
    Gre,
}

/// Tunnel settings of a real server forwarded by [`Method::Tun`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tunnel {
    pub kind: TunnelKind,
    /// GUE: the UDP destination port on the real server (non-zero).
    pub port: u16,
    /// GUE: a UDP checksum; GRE: the GRE checksum (`--tun-csum`). IPIP has none.
    pub csum: bool,
}

/// The forwarding method of a real server (ipvsadm's Forward column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    /// Full NAT (`-b`, FullNat): both ends rewritten, replies to a local address.
    #[default]
    FullNat,
    /// NAT (`-m`, Masq): destination rewritten in, source rewritten on the reply; the real
    /// server's replies must route back through fnatd.
    Nat,
    /// Direct routing (`-g`, Route): only the Ethernet destination changes; the real server
    /// holds the VIP and answers the client directly.
    Dr,
    /// Tunnelling (`-i`, Tunnel): the untouched packet inside an outer IPv4 header.
    Tun(Tunnel),
}

impl Method {
    /// True when replies never pass fnatd (DR, TUN): sessions follow IPVS's input-only TCP
    /// state machine and have no real-server key.
    pub const fn input_only(self) -> bool {
        matches!(self, Method::Dr | Method::Tun(_))
    }
}

/// A static route: destinations in `prefix` leave through `port`, to `via` or directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: Ipv4Cidr,
    pub port: PortIndex,
    /// Gateway; `None` means the destination is on the link.
    pub via: Option<Ipv4Addr>,
}

/// A static neighbour: the MAC address of an on-link IPv4 address behind a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub addr: Ipv4Addr,
    pub mac: [u8; 6],
    pub port: PortIndex,
}

/// Session timeouts in seconds, defaulting to kernel IPVS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_established: u32,
    pub tcp_syn_sent: u32,
    pub tcp_syn_recv: u32,
    pub tcp_fin_wait: u32,
    pub tcp_time_wait: u32,
    pub tcp_close: u32,
    pub tcp_close_wait: u32,
    pub tcp_last_ack: u32,
    pub tcp_listen: u32,
    pub tcp_synack: u32,
    pub udp: u32,
    /// ICMP echo sessions (not in IPVS's table; kept short).
    pub icmp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established: 900,
            tcp_syn_sent: 120,
            tcp_syn_recv: 60,
            tcp_fin_wait: 120,
            tcp_time_wait: 120,
            tcp_close: 10,
            tcp_close_wait: 60,
            tcp_last_ack: 30,
            tcp_listen: 120,
            tcp_synack: 120,
            udp: 300,
            icmp: 60,
        }
    }
}

/// How many generations of edits a snapshot carries: a worker that skipped more than this
/// many snapshots compares every service instead (counted: `FullNat::full_compares`).
pub const EDIT_HISTORY: usize = 64;

/// What the control plane set to make the snapshot of generation `from + 1` from the one of
/// generation `from`: the ids (ascending) of the services it compiled anew or added. Services
/// it removed are simply absent from the new snapshot; every other service is equal to its
/// previous self.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditStep {
    pub from: u64,
    pub services: Arc<[u32]>,
}

/// The edits that made a snapshot, one step per generation, oldest first and consecutive,
/// the last made from the generation just before this snapshot's (at most [`EDIT_HISTORY`]).
/// A worker running any generation a step starts from applies the ids of that step and every
/// later one instead of comparing every service with its previous self; a worker older than
/// the history compares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceEdits {
    pub steps: Vec<EditStep>,
}

impl ServiceEdits {
    /// These edits followed by `step` (made from the snapshot these edits made), keeping the
    /// latest [`EDIT_HISTORY`] steps. Steps are shared, not copied.
    pub fn then(&self, step: EditStep) -> ServiceEdits {
        let consecutive = self.steps.last().is_some_and(|s| s.from + 1 == step.from);
        let mut steps = if consecutive {
            let skip = (self.steps.len() + 1).saturating_sub(EDIT_HISTORY);
            self.steps[skip..].to_vec()
        } else {
            Vec::with_capacity(1)
        };
        steps.push(step);
        ServiceEdits { steps }
    }

    /// The ids set since `generation` (ascending, once each) when these edits reach back to
    /// it and lead to `to` (the snapshot's generation); `None` when they do not.
    pub fn since(&self, generation: u64, to: u64) -> Option<Vec<u32>> {
        let first = self.steps.iter().position(|s| s.from == generation)?;
        let steps = &self.steps[first..];
        if to.checked_sub(generation) != Some(steps.len() as u64) {
            return None;
        }
        let mut ids: Vec<u32> = Vec::with_capacity(steps.iter().map(|s| s.services.len()).sum());
        for s in steps {
            ids.extend_from_slice(&s.services);
        }
        if steps.len() > 1 {
            ids.sort_unstable();
            ids.dedup();
        }
        Some(ids)
    }
}

/// One immutable snapshot of everything a worker needs to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Increases with every published change; workers switch when it differs.
    pub generation: u64,
    pub ports: Vec<PortRule>,
    pub mode: Mode,
    pub services: Vec<Service>,
    pub routes: Vec<Route>,
    pub neighbours: Vec<Neighbour>,
    pub timeouts: Timeouts,
    /// Sessions each worker can hold; new flows beyond it are dropped and counted.
    pub session_capacity: usize,
    /// Local port range (inclusive) split among workers by `lport % workers == worker`.
    pub lport_min: u16,
    pub lport_max: u16,
    /// Drop IPv4 packets carrying options (else forward them unchanged). Counted either way.
    pub drop_ip_options: bool,
    /// A persistence template whose real server has weight 0 is dropped and its client
    /// scheduled afresh (IPVS's `expire_quiescent_template` sysctl). Off, as in IPVS: a
    /// drained server keeps its persistent clients until their templates expire.
    pub expire_quiescent_template: bool,
    /// VRRP virtual addresses this director is not master of: not answered by ARP, and
    /// traffic to them is dropped (`vrrp_backup`). When one leaves the list (takeover) the
    /// engine announces it by gratuitous ARP like any newly owned address.
    pub standby: Vec<Ipv4Addr>,
    /// Gratuitous ARPs VRRP asks for (keepalived's `garp_master_repeat`, `_delay`,
    /// `_refresh`): worker 0 announces each owned address as many more times as its total
    /// grew since the snapshot it ran before.
    pub garp: GarpRequest,
    /// The services set by the generations leading to this snapshot, when the publisher
    /// knows; `None`: unknown (workers compare).
    pub edits: Option<ServiceEdits>,
}

/// Gratuitous ARPs asked for (see [`Rules::garp`]): per address, how many were asked for
/// since fnatd started. Totals, not a last request: when snapshots follow each other faster
/// than a worker takes them, the one it takes still says everything asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GarpRequest {
    /// Sorted by address.
    pub totals: Vec<(Ipv4Addr, u64)>,
}

impl GarpRequest {
    /// Asks for `repeat` more announcements of each of `addresses`.
    pub fn add(&mut self, addresses: &[Ipv4Addr], repeat: u32) {
        for a in addresses {
            match self.totals.binary_search_by_key(a, |(x, _)| *x) {
                Ok(i) => self.totals[i].1 += u64::from(repeat),
                Err(i) => self.totals.insert(i, (*a, u64::from(repeat))),
            }
        }
    }
}

impl Rules {
    /// A pass-through snapshot: `forward[i]` is where frames from port i go.
    pub fn passthrough(ports: Vec<PortRule>, forward: Vec<Option<PortIndex>>) -> Self {
        Rules {
            generation: 1,
            ports,
            mode: Mode::Passthrough { forward },
            services: Vec::new(),
            routes: Vec::new(),
            neighbours: Vec::new(),
            timeouts: Timeouts::default(),
            session_capacity: 0,
            lport_min: 1024,
            lport_max: 65535,
            drop_ip_options: false,
            expire_quiescent_template: false,
            standby: Vec::new(),
            garp: GarpRequest::default(),
            edits: None,
        }
    }
}

/// Rule sets the engine's examples, benchmarks and unit tests start from (the daemon compiles
/// its rules from configuration instead): one definition, so that a benchmark measures the
/// set-up the tests check.
pub mod fixture {
    use super::*;

    /// Full NAT between two ports, no services yet: port 0 "wan" (MAC 02:00:00:00:00:01,
    /// 198.18.0.1/24), port 1 "lan" (MAC 02:00:00:00:00:02, 198.19.0.1/16), the default
    /// route out of "lan" via 198.19.0.254; room for `session_capacity` sessions.
    pub fn two_ports(session_capacity: usize) -> Rules {
        let mut r = Rules::passthrough(
            vec![
                PortRule {
                    name: "wan".into(),
                    mac: [2, 0, 0, 0, 0, 1],
                    addresses: vec![Ipv4Cidr::new([198, 18, 0, 1], 24)],
                },
                PortRule {
                    name: "lan".into(),
                    mac: [2, 0, 0, 0, 0, 2],
                    addresses: vec![Ipv4Cidr::new([198, 19, 0, 1], 16)],
                },
            ],
            vec![],
        );
        r.mode = Mode::FullNat;
        r.session_capacity = session_capacity;
        r.routes = vec![Route {
            prefix: Ipv4Cidr::new([0, 0, 0, 0], 0),
            port: 1,
            via: Some(Ipv4Addr::new(198, 19, 0, 254)),
        }];
        r
    }
}
