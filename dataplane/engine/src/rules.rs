//! The rules a worker runs with: one immutable snapshot, shared read-only by all workers.
//!
//! The driver builds a `Rules` from the validated config (and later the control socket) and
//! hands every worker an `Arc<Rules>`; a change is a new snapshot with a higher generation.
//! Services and real servers carry stable ids so that sessions survive snapshot changes.

use std::net::Ipv4Addr;

/// Index of a port in [`Rules::ports`] (config order), not a DPDK port id.
pub type PortIndex = u16;

/// An IPv4 prefix such as 198.18.0.1/24 (the address keeps its host bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Cidr {
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

/// Scheduler names as ipvsadm spells them. Only `Rr` is implemented by the engine so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerKind {
    Rr,
    Wrr,
}

/// A virtual service: VIP + protocol + port, its real servers and its local addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Stable across snapshots while the service exists.
    pub id: u32,
    pub vip: Ipv4Addr,
    pub protocol: Protocol,
    pub port: u16,
    pub scheduler: SchedulerKind,
    pub reals: Vec<RealServer>,
    /// Local addresses (LIPs) used as the source toward real servers, tried in order.
    pub local_addresses: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    /// Stable across snapshots while the real server exists.
    pub id: u32,
    pub addr: Ipv4Addr,
    pub port: u16,
    /// 0 drains: no new sessions, established ones continue.
    pub weight: u32,
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
        }
    }
}
