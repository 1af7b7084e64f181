//! Counters and connection entries: what the dataplane reports (keyed by the engine's stable
//! ids) and what the control plane answers (keyed by service and real server addresses).
//!
//! These are replies: they ignore fields they do not know, so that an older fnatctl keeps
//! working against a newer fnatd that reports more. Requests (`ConnFilter`, `msg::Request`)
//! stay strict: a misspelt option must be refused, not ignored.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};

use crate::model::{ForwardMethod, IpvsTimeouts, Protocol, RuleSet, ServiceAddr};

/// Traffic counters and rate estimates of a service or a real server (ipvsadm's `--stats`
/// and `--rate` columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Connections per second.
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.conns += o.conns;
        self.in_packets += o.in_packets;
        self.out_packets += o.out_packets;
        self.in_bytes += o.in_bytes;
        self.out_bytes += o.out_bytes;
        self.cps += o.cps;
        self.in_pps += o.in_pps;
        self.out_pps += o.out_pps;
        self.in_bps += o.in_bps;
        self.out_bps += o.out_bps;
    }
}

/// One port's frame counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortStats {
    pub name: String,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// A service's counters as the dataplane knows it: by engine service id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewServiceStats {
    pub service_id: u32,
    pub counters: Counters,
}

/// A real server's counters and connection gauges, by engine ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewRealStats {
    pub service_id: u32,
    pub real_id: u32,
    pub counters: Counters,
    /// ipvsadm's ActiveConn: established TCP sessions.
    pub active_conns: u64,
    /// ipvsadm's InActConn: every other session (handshake, closing, UDP).
    pub inactive_conns: u64,
    pub persistent_conns: u64,
}

/// One local address (LIP), summed over workers: DPVS's `ipvsadm -G` columns. fnat's port
/// pools are per address, shared by every service that lists it, so these count all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaddrStats {
    pub addr: Ipv4Addr,
    /// Local ports held by sessions now (one per session): `-G`'s CONNS.
    #[serde(default)]
    pub ports_in_use: u64,
    /// New sessions that found this address out of ports and tried the next one (or were
    /// dropped as `local_ports_exhausted`): `-G`'s CONFLICTS.
    #[serde(default)]
    pub exhausted: u64,
}

/// Everything the dataplane counts, summed over workers (what `DataplaneView::stats` returns).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewStats {
    pub services: Vec<ViewServiceStats>,
    pub reals: Vec<ViewRealStats>,
    /// Dropped frames by reason name (docs/drop-counters.md).
    pub drops: BTreeMap<String, u64>,
    /// Proxy Protocol and TOA work by event name ([`CLIENT_ADDRESS_EVENTS`]).
    pub client_address: BTreeMap<String, u64>,
    pub ports: Vec<PortStats>,
    /// Per local address, by address.
    pub local_addrs: Vec<LaddrStats>,
    /// SYN proxy events by name (cookies sent, valid cookie ACKs, data held, hold slots full).
    pub syn_proxy: BTreeMap<String, u64>,
}

/// The names of the Proxy Protocol/TOA counters (a client's own header refused is the drop
/// reason `proxy_header_from_client`): headers put in front of a client's first data
/// (retransmissions too), first segments that gave up their tail so the header fits the MTU,
/// TOA options added, segments that went without TOA for lack of option room, client
/// segments whose own option 254 was removed.
pub const CLIENT_ADDRESS_EVENTS: [&str; 5] = [
    "proxy_headers_inserted",
    "proxy_header_split",
    "toa_added",
    "toa_no_room",
    "toa_stripped",
];

/// A real server's counters, by address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealStats {
    pub addr: Option<Ipv4Addr>,
    pub port: u16,
    #[serde(default)]
    pub counters: Counters,
    #[serde(default)]
    pub active_conns: u64,
    #[serde(default)]
    pub inactive_conns: u64,
    #[serde(default)]
    pub persistent_conns: u64,
}

/// A service's counters (summed over its reals, as DPVS's ipvsadm does) and its reals'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStats {
    pub service: ServiceAddr,
    #[serde(default)]
    pub counters: Counters,
    #[serde(default)]
    pub reals: Vec<RealStats>,
}

/// The answer to `list`: the rules with their counters, the timeouts in force, drops, ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The live table: the operator's rules with what health checking did to them.
    pub rules: RuleSet,
    /// The operator's rules when health checking changed the live table (what `save`
    /// writes); absent when they are the live table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured: Option<RuleSet>,
    pub timeouts: Option<IpvsTimeouts>,
    #[serde(default)]
    pub stats: Vec<ServiceStats>,
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
    /// Proxy Protocol and TOA counters by event name ([`CLIENT_ADDRESS_EVENTS`]).
    #[serde(default)]
    pub client_address: BTreeMap<String, u64>,
    #[serde(default)]
    pub ports: Vec<PortStats>,
    /// Per local address (every address the dataplane has a port pool for).
    #[serde(default)]
    pub local_addrs: Vec<LaddrStats>,
    /// SYN proxy events by name (`ViewStats::syn_proxy`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub syn_proxy: BTreeMap<String, u64>,
}

impl Listing {
    /// The operator's rules (what `save` writes), whatever health checking did.
    pub fn configured_rules(&self) -> &RuleSet {
        self.configured.as_ref().unwrap_or(&self.rules)
    }

    pub fn service_stats(&self, service: &ServiceAddr) -> Option<&ServiceStats> {
        self.stats.iter().find(|s| s.service == *service)
    }

    /// The counters of local address `addr`, if the dataplane reported it.
    pub fn laddr_stats(&self, addr: Ipv4Addr) -> Option<&LaddrStats> {
        self.local_addrs.iter().find(|l| l.addr == addr)
    }
}

/// Which connections to list; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnFilter {
    pub service: Option<ServiceAddr>,
    pub real: Option<SocketAddrV4>,
    pub client: Option<Ipv4Addr>,
}

impl ConnFilter {
    /// True when `entry` passes the filter (the dataplane may use it, so may a fake).
    pub fn matches(&self, entry: &ConnEntry) -> bool {
        let service_ok = match self.service {
            None => true,
            Some(ServiceAddr::Inet {
                protocol,
                vip,
                port,
            }) => entry.protocol == protocol && entry.vip == SocketAddrV4::new(vip, port),
            Some(ServiceAddr::Fwmark(_) | ServiceAddr::Match(_)) => false,
        };
        service_ok
            && (self.real.is_none() || self.real == Some(entry.rs))
            && (self.client.is_none() || self.client == Some(*entry.client.ip()))
    }
}

/// One session as `ipvsadm -Lnc` shows it (with DPVS's worker and local-address columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnEntry {
    pub worker: u16,
    pub protocol: Protocol,
    pub client: SocketAddrV4,
    pub vip: SocketAddrV4,
    pub lip: SocketAddrV4,
    pub rs: SocketAddrV4,
    /// IPVS state name: ESTABLISHED, SYN_RECV, FIN_WAIT, … (UDP: UDP).
    pub state: String,
    pub expires_in_s: u32,
    /// How the session's packets reach its real server. Full-NAT and SNAT sessions have a
    /// local address (`lip`: the LIP, SNAT's WAN address); a NAT session's `lip` is its
    /// client's own address, a TUN session's the outer source address and GUE port, a DR
    /// session's 0.0.0.0:0 (none of them listed by `-Lnc`).
    #[serde(default)]
    pub forward: ForwardMethod,
}

impl ConnEntry {
    /// True when the session's source toward the far side is one of fnatd's own addresses
    /// (full-NAT's local address, SNAT's WAN address).
    pub fn has_local(&self) -> bool {
        matches!(self.forward, ForwardMethod::FullNat | ForwardMethod::Snat)
    }
}

/// What `status` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub daemon_version: String,
    pub protocol_version: u32,
    /// Generation of the rules snapshot the workers run.
    pub generation: u64,
    pub mode: String,
    pub services: usize,
    pub reals: usize,
    pub local_addresses: usize,
    pub uptime_s: u64,
    pub socket: String,
    pub state_file: Option<String>,
    /// The whole daemon is draining (`fnatctl drain` without VIPs): no VIP is announced.
    #[serde(default)]
    pub draining: bool,
    /// Every VIP of the rules: whether it should be announced (BGP), and why not.
    #[serde(default)]
    pub vips: Vec<VipStatus>,
}

/// One VIP as `status` shows it: what the announcement hook (docs/scale-out.md) and any
/// operator's glue read. A VIP is announced while the daemon and the VIP are not draining
/// and at least one of its services has a real server with a weight above 0 in the live
/// table (health checking included) and its quorum holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipStatus {
    pub vip: Ipv4Addr,
    pub announce: bool,
    /// Empty when announced; else why not (draining, no available real server, quorum lost).
    #[serde(default)]
    pub reason: String,
    /// `fnatctl drain` named this VIP (or the whole daemon drains).
    #[serde(default)]
    pub draining: bool,
    /// The services of this VIP (fwmark services through their marks), as fnatctl names them.
    #[serde(default)]
    pub services: Vec<String>,
}

/// What a successful change answers: the generation now running on every worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub generation: u64,
}
