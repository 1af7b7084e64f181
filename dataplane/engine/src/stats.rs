//! Per-worker counters. Each worker owns its own; readers sum them.
//!
//! Besides frame counters and drops by reason, a worker keeps IPVS-style counters per service
//! and per real server (connections, packets and bytes in and out, ActiveConn/InActConn) and
//! per local address (ports in use, exhaustion). Services and real servers are identified by
//! their stable ids; their position in the vectors is a slot the worker keeps stable while any
//! of its sessions refers to it. Entries whose `removed` is set have left the rules (their
//! counters run on until their last session ends); readers normally hide them.

use std::net::Ipv4Addr;

use crate::rules::Protocol;
use crate::verdict::DropReason;

/// Traffic counters, as `ipvsadm --stats` shows them. "In" is client → real server, "out"
/// is real server → client; bytes are IP bytes (header included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Connections (sessions) scheduled.
    pub conns: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Traffic {
    pub fn add(&mut self, o: &Traffic) {
        self.conns += o.conns;
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// Counters of one real server of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealStats {
    pub id: u32,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub traffic: Traffic,
    /// Sessions in ESTABLISHED (ipvsadm's ActiveConn).
    pub active_conns: u64,
    /// Sessions in any other state, UDP included (ipvsadm's InActConn).
    pub inactive_conns: u64,
    /// The real server has left the rules; its sessions continue until they end.
    pub removed: bool,
}

/// Counters of one virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStats {
    pub id: u32,
    pub vip: Ipv4Addr,
    pub protocol: Protocol,
    pub port: u16,
    pub traffic: Traffic,
    pub reals: Vec<RealStats>,
    /// The service has left the rules; its sessions are being ended.
    pub removed: bool,
}

impl ServiceStats {
    /// Live sessions of the service (ActiveConn + InActConn over its real servers).
    pub fn sessions(&self) -> u64 {
        self.reals
            .iter()
            .map(|r| r.active_conns + r.inactive_conns)
            .sum()
    }
}

/// Counters of one local address (LIP) in this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddrStats {
    pub addr: Ipv4Addr,
    /// Ports of this worker's slice held by sessions.
    pub ports_in_use: u64,
    /// Times a new session found this address out of ports (it then tried the next one).
    pub exhausted: u64,
}

/// Counters of one worker. Plain integers: only the owning worker writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames handed to `Worker::process` (redirected-in frames included).
    pub received: u64,
    /// Frames given a `Transmit` verdict.
    pub transmitted: u64,
    /// Frames handed to another worker.
    pub redirected: u64,
    /// Frames given a `ToKernel` verdict (the exception path) that the driver queued for the
    /// kernel twin.
    pub to_kernel: u64,
    /// Frames the kernel twin sent that the driver took from the kernel path to transmit on
    /// their port (sent or counted as `kernel_port_tx_full`).
    pub from_kernel: u64,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
    /// IPv4 packets with options seen (forwarded or dropped, per the rules).
    pub ip_options: u64,
    /// ICMP echo requests answered.
    pub icmp_echo_replies: u64,
    /// Frames the engine built itself (ARP requests, gratuitous ARPs), sent or dropped.
    pub originated: u64,
    /// Frames the engine absorbed by design (ARP replies and announcements it learned from;
    /// client data the SYN proxy holds until the real server's SYN-ACK).
    pub consumed: u64,
    /// Frames waiting for their next hop's MAC now (a gauge).
    pub held: u64,
    /// Frames ever put in the hold queue, and those sent once their next hop resolved.
    pub held_total: u64,
    pub held_released: u64,
    /// ARP requests for owned addresses answered; ARP requests and gratuitous ARPs sent.
    pub arp_replies_sent: u64,
    pub arp_requests_sent: u64,
    pub gratuitous_arps_sent: u64,
    /// Neighbours this worker entered into the shared table from ARP packets.
    pub neighbours_learned: u64,
    /// ICMP errors translated and forwarded.
    pub icmp_errors_translated: u64,
    /// ICMP "fragmentation needed" sent for packets too big for a tunnel (TUN).
    pub tunnel_frag_needed: u64,
    /// Sessions live now.
    pub sessions: u64,
    /// Sessions created.
    pub sessions_created: u64,
    /// Frames of established flows forwarded by the fast path (a share of `transmitted`).
    pub fast_path: u64,
    /// Proxy Protocol headers put in front of a client's first data (retransmissions too).
    pub proxy_headers: u64,
    /// First segments that gave up their last bytes to make room for the header (the
    /// client sends them again).
    pub proxy_split: u64,
    /// Proxy Protocol headers sent alone (server-speaks-first) sent again by housekeeping:
    /// the real server had not acknowledged them.
    pub proxy_headers_resent: u64,
    /// Headers sent alone that went untracked for resending (every tracking slot taken).
    pub proxy_resend_untracked: u64,
    /// TOA options added toward real servers.
    pub toa_added: u64,
    /// Segments that went without TOA: no room left in the TCP options.
    pub toa_no_room: u64,
    /// SYN proxy: SYN-ACKs with a SYN cookie sent to clients (no session made).
    pub syn_cookies_sent: u64,
    /// SYN proxy: cookie ACKs that checked out and opened a connection to a real server.
    pub syn_cookies_valid: u64,
    /// SYN proxy: client data held until the real server's SYN-ACK, and released.
    pub synproxy_data_held: u64,
    /// SYN proxy: client data that found every hold slot taken (dropped; the client sends
    /// it again).
    pub synproxy_hold_full: u64,
    /// Client segments whose own TCP option 254 was removed (a TOA service's real server
    /// must see fnatd's, not one the client forged).
    pub toa_stripped: u64,
    /// Sessions ended (timed out, or their service was removed).
    pub sessions_ended: u64,
    /// Persistence templates live (as of the last housekeeping).
    pub templates: u64,
    /// New connections of persistent services scheduled without a template: table full.
    pub templates_full: u64,
    /// New full-NAT sessions whose real-server key another session already held when the
    /// burst's keys were indexed (`SessionTable::settle`): reachable by their client key only.
    pub reply_key_clashes: u64,
    /// New connections whose client prefix took over a slot of a still-limited prefix in a
    /// full per-service rate table (that prefix's limit state was lost).
    pub rate_table_evictions: u64,
    /// Per service, by slot.
    pub services: Vec<ServiceStats>,
    /// Per local address, by slot.
    pub local_addrs: Vec<LocalAddrStats>,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            received: 0,
            transmitted: 0,
            redirected: 0,
            to_kernel: 0,
            from_kernel: 0,
            drops: [0; DropReason::COUNT],
            ip_options: 0,
            icmp_echo_replies: 0,
            originated: 0,
            consumed: 0,
            held: 0,
            held_total: 0,
            held_released: 0,
            arp_replies_sent: 0,
            arp_requests_sent: 0,
            gratuitous_arps_sent: 0,
            neighbours_learned: 0,
            icmp_errors_translated: 0,
            tunnel_frag_needed: 0,
            sessions: 0,
            sessions_created: 0,
            fast_path: 0,
            proxy_headers: 0,
            proxy_split: 0,
            proxy_headers_resent: 0,
            proxy_resend_untracked: 0,
            toa_added: 0,
            toa_no_room: 0,
            syn_cookies_sent: 0,
            syn_cookies_valid: 0,
            synproxy_data_held: 0,
            synproxy_hold_full: 0,
            toa_stripped: 0,
            sessions_ended: 0,
            templates: 0,
            templates_full: 0,
            reply_key_clashes: 0,
            rate_table_evictions: 0,
            services: Vec::new(),
            local_addrs: Vec::new(),
        }
    }
}

impl WorkerStats {
    /// Counts one drop.
    #[inline]
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Total drops over all reasons.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// The counters of the service with this id (not removed).
    pub fn service(&self, id: u32) -> Option<&ServiceStats> {
        self.services.iter().find(|s| s.id == id && !s.removed)
    }

    /// The counters of a real server of a service (not removed).
    pub fn real(&self, service_id: u32, real_id: u32) -> Option<&RealStats> {
        self.service(service_id)?
            .reals
            .iter()
            .find(|r| r.id == real_id && !r.removed)
    }

    /// The counters of a local address.
    pub fn local_addr(&self, addr: Ipv4Addr) -> Option<&LocalAddrStats> {
        self.local_addrs.iter().find(|l| l.addr == addr)
    }

    /// Adds another worker's counters to these (services, real servers and local addresses
    /// matched by id / address; allocates, so this is for readers, not the data path).
    pub fn add(&mut self, other: &WorkerStats) {
        self.received += other.received;
        self.transmitted += other.transmitted;
        self.redirected += other.redirected;
        self.to_kernel += other.to_kernel;
        self.from_kernel += other.from_kernel;
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
        self.ip_options += other.ip_options;
        self.icmp_echo_replies += other.icmp_echo_replies;
        self.originated += other.originated;
        self.consumed += other.consumed;
        self.held += other.held;
        self.held_total += other.held_total;
        self.held_released += other.held_released;
        self.arp_replies_sent += other.arp_replies_sent;
        self.arp_requests_sent += other.arp_requests_sent;
        self.gratuitous_arps_sent += other.gratuitous_arps_sent;
        self.neighbours_learned += other.neighbours_learned;
        self.icmp_errors_translated += other.icmp_errors_translated;
        self.tunnel_frag_needed += other.tunnel_frag_needed;
        self.sessions += other.sessions;
        self.sessions_created += other.sessions_created;
        self.fast_path += other.fast_path;
        self.proxy_headers += other.proxy_headers;
        self.proxy_split += other.proxy_split;
        self.proxy_headers_resent += other.proxy_headers_resent;
        self.proxy_resend_untracked += other.proxy_resend_untracked;
        self.toa_added += other.toa_added;
        self.toa_no_room += other.toa_no_room;
        self.syn_cookies_sent += other.syn_cookies_sent;
        self.syn_cookies_valid += other.syn_cookies_valid;
        self.synproxy_data_held += other.synproxy_data_held;
        self.synproxy_hold_full += other.synproxy_hold_full;
        self.toa_stripped += other.toa_stripped;
        self.sessions_ended += other.sessions_ended;
        self.templates += other.templates;
        self.templates_full += other.templates_full;
        self.reply_key_clashes += other.reply_key_clashes;
        self.rate_table_evictions += other.rate_table_evictions;
        for os in &other.services {
            let pos = self
                .services
                .iter()
                .position(|s| s.id == os.id && s.removed == os.removed);
            let Some(pos) = pos else {
                self.services.push(os.clone());
                continue;
            };
            let s = &mut self.services[pos];
            s.traffic.add(&os.traffic);
            for orr in &os.reals {
                match s
                    .reals
                    .iter_mut()
                    .find(|r| r.id == orr.id && r.removed == orr.removed)
                {
                    Some(r) => {
                        r.traffic.add(&orr.traffic);
                        r.active_conns += orr.active_conns;
                        r.inactive_conns += orr.inactive_conns;
                    }
                    None => s.reals.push(orr.clone()),
                }
            }
        }
        for ol in &other.local_addrs {
            match self.local_addrs.iter_mut().find(|l| l.addr == ol.addr) {
                Some(l) => {
                    l.ports_in_use += ol.ports_in_use;
                    l.exhausted += ol.exhausted;
                }
                None => self.local_addrs.push(ol.clone()),
            }
        }
    }
}
