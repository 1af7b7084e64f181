//! The TOML appliance config as written on disk: serde structs that mirror the file, nothing more.
//! Unknown keys are errors (`deny_unknown_fields`), so a typo never silently changes behaviour.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub eal: EalSection,
    #[serde(default)]
    pub dataplane: DataplaneSection,
    #[serde(rename = "port")]
    pub ports: Vec<PortSection>,
    /// Pass-through mode: `a = "b"` sends every frame received on port a out of port b.
    #[serde(default)]
    pub forward: BTreeMap<String, String>,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceSection>,
    /// Port groups (LVS firewall marks): services refer to them with `fwmark = MARK`.
    #[serde(default, rename = "port_group")]
    pub port_groups: Vec<PortGroupSection>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteSection>,
    #[serde(default, rename = "neighbour")]
    pub neighbours: Vec<NeighbourSection>,
    #[serde(default)]
    pub session: SessionSection,
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    #[serde(default)]
    pub control: ControlSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Session sync daemons: `[sync.master]`, `[sync.backup]`.
    #[serde(default)]
    pub sync: SyncSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    pub master: Option<SyncDaemonSection>,
    pub backup: Option<SyncDaemonSection>,
    /// The kernel's `net.ipv4.vs.sync_refresh_period`, seconds (0: off).
    pub sync_refresh_period: Option<u32>,
}

/// One sync daemon as the file says it (checked and converted by the rule model's validator).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDaemonSection {
    pub interface: String,
    pub syncid: Option<u8>,
    pub maxlen: Option<u16>,
    pub group: Option<String>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    pub vrrp_instance: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address:port of the Prometheus endpoint (`GET /metrics`); default: no endpoint.
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    /// Unix socket of the control plane; default /run/fnatd/ctl.sock.
    pub socket: Option<String>,
    /// Where the live rules are saved after every change (atomically), and read back at start.
    pub state_file: Option<String>,
    /// Largest request accepted, in bytes; default 1 MiB.
    pub max_request_bytes: Option<usize>,
    /// On SIGTERM/SIGINT, stop announcing every VIP (as `fnatctl drain`) and keep forwarding
    /// this long before the ports go (scale-out: the BGP withdraw leaves through the port's
    /// kernel twin while it still exists); default 0, stop at once.
    pub withdraw_on_stop_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalSection {
    /// CPU of the main (control) lcore; default 0.
    pub main_cpu: Option<u32>,
    /// CPUs of the worker lcores, one per worker; default: spread over the machine's CPUs.
    pub worker_cpus: Option<Vec<u32>>,
    /// Memory for EAL in MiB without hugepages; default 256.
    pub memory_mb: Option<u32>,
    /// Use hugepages (they must be reserved beforehand); default false.
    pub hugepages: Option<bool>,
    /// EAL `--file-prefix`; default: none, and `--no-shconf` without hugepages.
    pub file_prefix: Option<String>,
    /// EAL log level (`--log-level`); default "error".
    pub log_level: Option<String>,
    /// Extra EAL arguments appended as given.
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneSection {
    pub workers: Option<u16>,
    pub burst: Option<u16>,
    pub mbufs: Option<u32>,
    pub mbuf_cache: Option<u32>,
    pub rx_desc: Option<u16>,
    pub tx_desc: Option<u16>,
    /// Slots of each worker's redirect ring (rounded up to a power of two).
    pub redirect_ring: Option<u32>,
    /// Sessions expired at most per loop iteration (bounded housekeeping).
    pub expire_budget: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    pub name: String,
    /// A PCI address (0000:03:00.0) or a DPDK virtual device (net_af_packet0,iface=veth0).
    pub device: String,
    /// Overrides the MAC address the port reports.
    pub mac: Option<String>,
    /// Addresses the port owns, as IPv4/prefix (a bare address means /32).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The name of the port's kernel twin interface (the exception path); none by default.
    pub kernel_interface: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// VIP, port (0 = every port) and protocol; or instead `fwmark`.
    pub vip: Option<String>,
    pub port: Option<u16>,
    pub protocol: Option<String>,
    /// The mark of a `[[port_group]]`: the service takes all of the group's VIP:ports.
    pub fwmark: Option<u32>,
    /// Instead of vip/port/protocol or fwmark: a match service (SNAT, DPVS's `-H`), e.g.
    /// `match = { proto = "tcp", src-range = "198.19.1.0-198.19.1.255", oif = "wan" }`; its
    /// `real` entries are the WAN addresses (port 0) sources are rewritten to.
    #[serde(rename = "match")]
    pub match_: Option<MatchSection>,
    /// An ipvsadm scheduler name; default "wlc".
    pub scheduler: Option<String>,
    /// Scheduler flags: sh-fallback, sh-port, mh-fallback, mh-port, flag-1..3.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Persistence with the default timeout (360 s) when true.
    pub persistent: Option<bool>,
    /// Persistence timeout in seconds (implies `persistent = true`).
    pub persistence_timeout: Option<u32>,
    /// Netmask applied to client addresses for persistence; default 255.255.255.255.
    pub persistence_netmask: Option<String>,
    /// End a real server's sessions when it is removed (default: they run until they expire).
    pub expire_on_removal: Option<bool>,
    /// Client addresses/prefixes that may connect (empty: every client), e.g.
    /// `["198.18.0.0/24", "198.18.1.7"]`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Client addresses/prefixes that may not connect (wins over `allow`).
    #[serde(default)]
    pub deny: Vec<String>,
    /// New connections per second per client prefix, `RATE[:BURST][/LEN]`, e.g. "100:200/24".
    pub conn_rate: Option<String>,
    /// Proxy Protocol header toward full-NAT real servers: "v1", "v2", "v1-insecure",
    /// "v2-insecure" or "disable" (default).
    pub proxy_protocol: Option<String>,
    /// TCP option 254 (client port and address, DPVS's TOA) toward full-NAT real servers.
    pub toa: Option<bool>,
    /// SYN proxy: SYN cookies answer the clients' SYNs; only a valid cookie ACK opens a
    /// connection to a real server (TCP services).
    pub synproxy: Option<bool>,
    #[serde(default)]
    pub local_addresses: Vec<String>,
    #[serde(default, rename = "real")]
    pub reals: Vec<RealSection>,
    /// Health checking (keepalived's): the least sum of live weights (default 1).
    pub quorum: Option<u32>,
    pub hysteresis: Option<u32>,
    /// Scripts run when the quorum is gained or lost.
    pub quorum_up: Option<String>,
    pub quorum_down: Option<String>,
    /// "IP:PORT" put in the pool while the quorum is lost.
    pub sorry_server: Option<String>,
    /// The sorry server stays in the table at weight 0 when not in use.
    pub sorry_server_inhibit: Option<bool>,
}

/// `match = { proto, src-range, dst-range, iif, oif }` of a `[[service]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSection {
    /// tcp, udp or icmp.
    pub proto: String,
    /// Inside hosts, `A-B` (or one address).
    #[serde(rename = "src-range")]
    pub src_range: Option<String>,
    /// Outside destinations, `A-B` (or one address).
    #[serde(rename = "dst-range")]
    pub dst_range: Option<String>,
    /// The `[[port]]` the inside hosts' packets arrive on.
    pub iif: Option<String>,
    /// The `[[port]]` the packets leave by (toward the WAN).
    pub oif: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealSection {
    pub address: String,
    /// 0: the port the client asked for.
    pub port: u16,
    pub weight: Option<u32>,
    /// Connections (active + inactive) at which the server stops getting new ones; 0 = none.
    pub upper_threshold: Option<u32>,
    /// Connections below which an overloaded server gets new ones again; 0 = 3/4 of upper.
    pub lower_threshold: Option<u32>,
    /// Forwarding method: "fullnat" (default), "nat", "dr" or "tun".
    pub method: Option<String>,
    /// With method "tun": "ipip" (default), "gue" or "gre".
    pub tunnel_type: Option<String>,
    /// With tunnel_type "gue": the UDP port on the real server.
    pub tunnel_port: Option<u16>,
    /// With tunnel_type "gue" or "gre": checksum the tunnel (default false).
    pub tunnel_csum: Option<bool>,
    /// Health checks (keepalived's checkers, `[[service.real.check]]`).
    #[serde(default)]
    pub check: Vec<CheckSection>,
    /// Down means weight 0, not removal.
    pub inhibit_on_failure: Option<bool>,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
}

/// One health checker, keepalived's keywords and defaults (docs/health-checks.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSection {
    /// tcp, http, ssl, misc, udp, dns, ping or smtp (or keepalived's TCP_CHECK, HTTP_GET, ...).
    #[serde(rename = "type")]
    pub kind: String,
    pub connect_ip: Option<String>,
    pub connect_port: Option<u16>,
    pub bindto: Option<String>,
    pub bind_port: Option<u16>,
    /// Seconds (fractions allowed), as keepalived's timers.
    pub connect_timeout: Option<f64>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<f64>,
    pub delay_loop: Option<f64>,
    pub warmup: Option<f64>,
    pub alpha: Option<bool>,
    #[serde(default)]
    pub url: Vec<UrlSection>,
    pub http_protocol: Option<String>,
    pub virtualhost: Option<String>,
    pub misc_path: Option<String>,
    pub misc_timeout: Option<f64>,
    pub misc_dynamic: Option<bool>,
    pub payload: Option<String>,
    pub require_reply: Option<String>,
    pub dns_type: Option<String>,
    pub dns_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlSection {
    pub path: String,
    /// Codes or ranges ("200", "200-299"); default 200-299.
    #[serde(default)]
    pub status_code: Vec<String>,
    /// MD5 of the body, in hex.
    pub digest: Option<String>,
    pub virtualhost: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortGroupSection {
    pub name: String,
    pub mark: u32,
    pub protocol: String,
    pub vip: String,
    pub ports: Vec<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub prefix: String,
    pub port: String,
    pub via: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourSection {
    pub address: String,
    pub mac: String,
    pub port: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    /// Sessions per worker.
    pub capacity: Option<usize>,
    /// Local port range, inclusive: [min, max].
    pub local_port_range: Option<[u16; 2]>,
    /// What to do with IPv4 options: "forward" (default) or "drop".
    pub ip_options: Option<String>,
    /// IPVS's `expire_quiescent_template`: a drained (weight 0) server loses its persistent
    /// clients at once instead of when their templates expire. Default false.
    pub expire_quiescent_template: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    pub tcp_established: Option<u32>,
    pub tcp_syn_sent: Option<u32>,
    pub tcp_syn_recv: Option<u32>,
    pub tcp_fin_wait: Option<u32>,
    pub tcp_time_wait: Option<u32>,
    pub tcp_close: Option<u32>,
    pub tcp_close_wait: Option<u32>,
    pub tcp_last_ack: Option<u32>,
    pub tcp_listen: Option<u32>,
    pub tcp_synack: Option<u32>,
    pub udp: Option<u32>,
    pub icmp: Option<u32>,
}
