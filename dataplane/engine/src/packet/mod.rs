//! IPv4-over-Ethernet packet layer: parse, classify and rewrite frames in place.
//!
//! Everything here works on byte slices (a [`crate::Frame`]'s `data()` / `data_mut()`), never
//! allocates and never panics, whatever the bytes: every read goes through a length check.
//! The shape follows smoltcp's `wire` module:
//!
//! - One zero-copy view per header ([`ether::EthernetHeader`], [`ipv4::Ipv4Header`],
//!   [`tcp::TcpHeader`], [`udp::UdpHeader`]): a checked constructor, then accessors and
//!   setters over a fixed-size array. Each header's field offsets live in its one
//!   `mod field`; no other code in the engine names a byte offset.
//! - One parser, [`parse()`]: a frame to a [`PacketV4`] (offsets + the fields decisions need)
//!   or the [`crate::DropReason`] to count. The burst loop calls it once per frame and hands
//!   the result to every stage.
//! - One five-tuple, [`Tuple`]: what packets carry, sessions are keyed on, schedulers hash.
//! - One L3/L4 rewrite, [`translate`]: the packet leaves with another tuple, TTL minus one,
//!   checksums updated incrementally (RFC 1624) through the one helper,
//!   [`checksum::Delta`]; [`translate_by`] is the same rewrite with the checksum changes
//!   computed already (a session stores its own, [`TupleDelta`]).
//! - [`icmp`] answers echo requests and translates ICMP errors about NATed flows (RFC 5508).
//!
//! Checksums are never verified here: NICs do that, and an incremental update keeps a bad
//! checksum bad, so a corrupt packet is never laundered into a valid one.

pub mod checksum;
pub mod ether;
pub mod icmp;
pub mod ipv4;
pub mod l4;
pub mod parse;
pub mod rewrite;
pub mod tcp;
pub mod tuple;
pub mod udp;

mod bytes;

pub use ether::{EthernetHeader, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_VLAN, ETH_HEADER_LEN};
pub use icmp::{EmbeddedV4, IcmpError};
pub use ipv4::{FragmentKind, Ipv4Header, Ipv4Info, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
pub use l4::{IcmpInfo, TcpFlags, TcpInfo, Transport, UdpInfo};
pub use parse::{parse, PacketV4};
pub use rewrite::{translate, translate_by, ttl_expires, TupleDelta};
pub use tcp::{tcp_option_at, tcp_options, TcpHeader, TcpOptionAt};
pub use tuple::Tuple;
pub use udp::UdpHeader;
