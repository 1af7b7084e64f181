//! What the engine decides for each frame, and every reason a frame can be dropped.

use crate::rules::PortIndex;

/// The engine's decision for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (rewritten) frame out of this port.
    Transmit { port: PortIndex },
    /// The frame belongs to a session owned by another worker: hand it over unchanged.
    Redirect { worker: u16 },
    /// Hand the frame, unchanged, to the kernel twin interface of `port` (the exception
    /// path): traffic for the port's own addresses that the dataplane does not consume
    /// (TCP/UDP to the port address, ICMP other than echo requests, ARP replies to the
    /// kernel's requests). Only for ports with a twin (see `Worker::set_kernel_twins`).
    ToKernel { port: PortIndex },
    /// Drop the frame; the reason has already been counted in the worker's stats.
    Drop(DropReason),
    /// The engine took the frame: an ARP packet it learned from (counted as `consumed`), or
    /// a packet copied into the hold queue until its next hop resolves (counted as `held`;
    /// it leaves later through `Worker::drain_originated`). Free the buffer.
    Consumed,
}

macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, )*) => {
        /// Why a frame was dropped. Every drop has exactly one reason and one counter.
        ///
        /// 16 bits wide, as a transmit's port: a [`Verdict`]'s payload is then one 16-bit
        /// field whatever the kind, and the stages hand verdicts on as they are instead of
        /// reassembling three parts at each step (35 instructions a forwarded packet).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum DropReason { $( $(#[doc = $doc])* $variant, )* }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$variant, )* ];
            /// The number of reasons (the length of a counter array).
            pub const COUNT: usize = Self::ALL.len();
            /// The counter's name as operators see it (snake_case, stable).
            pub const fn name(self) -> &'static str {
                match self { $( DropReason::$variant => $name, )* }
            }
            /// What the counter means, for documentation and `--help` output.
            pub fn meaning(self) -> &'static str {
                match self { $( DropReason::$variant => concat!($($doc),*).trim_start(), )* }
            }
        }
    };
}

drop_reasons! {
    /// Frame shorter than an Ethernet header, or an L3/L4 header cut short.
    Truncated = "truncated",
    /// IPv4 header invalid: version not 4, IHL < 5, total length beyond the frame or below the header.
    BadIpHeader = "bad_ip_header",
    /// TCP data offset out of range, or UDP length inconsistent with the IP payload.
    BadL4Header = "bad_l4_header",
    /// TCP flag combination no stack sends (SYN+FIN, SYN+RST, no flags at all).
    BadTcpFlags = "bad_tcp_flags",
    /// EtherType the dataplane does not handle (not IPv4/ARP), or a VLAN tag.
    UnsupportedEtherType = "unsupported_ethertype",
    /// IPv4 protocol other than TCP, UDP or ICMP.
    UnsupportedProtocol = "unsupported_protocol",
    /// Destination MAC or IP not owned by this appliance: never routed by accident.
    NotForUs = "not_for_us",
    /// IPv4 fragment (reassembly is not supported yet).
    Fragment = "fragment",
    /// IPv4 header with options, and the config says to drop them.
    IpOptions = "ip_options",
    /// TTL would reach 0 when forwarded.
    TtlExpired = "ttl_expired",
    /// To a VIP, but no service on that protocol and port.
    NoService = "no_service",
    /// A service with no real server able to take a new connection.
    NoRealServer = "no_real_server",
    /// Not a connection start (e.g. TCP without SYN) and no session for it.
    NoSession = "no_session",
    /// A real server's reply came in by a port other than the one the route to that server leaves by (spoofed, or misrouted).
    WrongIngress = "wrong_ingress",
    /// The worker's session table is full: new flows are refused, established ones continue.
    SessionTableFull = "session_table_full",
    /// Every local address of the service is out of ports for this worker.
    LocalPortsExhausted = "local_ports_exhausted",
    /// No route to the destination.
    NoRoute = "no_route",
    /// Next hop's MAC address unknown: no ARP answer within the hold time (or no room left in the neighbour table).
    NoNeighbour = "no_neighbour",
    /// The worker's queue of packets waiting for ARP resolution was full.
    NeighbourQueueFull = "neighbour_queue_full",
    /// ICMP type the dataplane does not translate or answer.
    IcmpUnsupported = "icmp_unsupported",
    /// ICMP error whose embedded packet is truncated or belongs to no session.
    IcmpNoSession = "icmp_no_session",
    /// Passthrough mode: no forwarding rule for the receiving port.
    NoForwardRule = "no_forward_rule",
    /// Driver: frame spans several mbuf segments (larger than one buffer).
    MultiSegment = "multi_segment",
    /// Driver: the TX queue did not accept the frame.
    TxFull = "tx_full",
    /// Driver: the ring to the owning worker was full.
    RedirectRingFull = "redirect_ring_full",
    /// Driver: no mbuf available to build a frame.
    MbufExhausted = "mbuf_exhausted",
    /// Exception path: the ring from the workers to the kernel-path thread was full.
    KernelRingFull = "kernel_ring_full",
    /// Exception path: the port's TX queue did not accept a frame the kernel twin sent.
    KernelPortTxFull = "kernel_port_tx_full",
    /// A tunnelled (TUN) packet without DF that would exceed the port MTU once wrapped: fnatd
    /// does not fragment (DF packets get ICMP fragmentation needed instead).
    TooBig = "too_big",
    /// No headroom in the buffer for a tunnel's outer header.
    NoHeadroom = "no_headroom",
    /// A NAT session could not be created: its reply key (real server → the client's own
    /// address and port) is another session's (the same client port to the same real server
    /// through another VIP).
    SessionClash = "session_clash",
    /// To a VRRP virtual address this director is backup for (its master serves it).
    VrrpBackup = "vrrp_backup",
    /// A new connection from a client in the service's deny list.
    ClientDenied = "client_denied",
    /// A new connection from a client not in the service's (non-empty) allow list.
    ClientNotAllowed = "client_not_allowed",
    /// A new connection over the service's cap of new connections per second for the client's prefix.
    ClientRateLimited = "client_rate_limited",
    /// A client of a Proxy Protocol service (not `*-insecure`) sent a Proxy Protocol header
    /// itself: it is not trusted.
    ProxyFromClient = "proxy_header_from_client",
    /// Client data past the first byte of a Proxy Protocol connection before its first data
    /// segment came (lost or reordered): dropped until the header has gone.
    ProxyPending = "proxy_pending",
    /// No tailroom in the buffer for a Proxy Protocol header or TOA option.
    NoTailroom = "no_tailroom",
    /// SYN proxy: an ACK without a session whose cookie is older than the cookies' lifetime
    /// (or whose time field is garbage: most spoofed ACKs).
    SynCookieStale = "syn_cookie_stale",
    /// SYN proxy: an ACK without a session whose cookie fails the keyed check.
    SynCookieInvalid = "syn_cookie_invalid",
    /// SYN proxy: a segment of a connection whose handshake with the real server is under way
    /// (sent again by its sender), or a real server's SYN-ACK that does not match it.
    SynProxyHandshake = "synproxy_handshake",
}
