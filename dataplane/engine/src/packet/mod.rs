//! IPv4-over-Ethernet packet layer: parse, classify and rewrite frames in place.
//!
//! Everything here works on byte slices (a [`crate::Frame`]'s `data()` / `data_mut()`), never
//! allocates and never panics, whatever the bytes: every read goes through a length check.
//! The flow is parse → decide (session layer) → rewrite:
//!
//! - [`parse()`] validates a frame and returns a [`PacketV4`] (offsets + the fields the session
//!   layer needs) or the [`crate::DropReason`] to count.
//! - [`rewrite_fullnat`] rewrites a parsed TCP/UDP packet to a new 4-tuple, decrements the TTL
//!   and updates every checksum incrementally (RFC 1624).
//! - [`icmp`] answers echo requests and translates ICMP errors about NATed flows (RFC 5508).
//! - [`FlowKey`] is the 5-tuple sessions are keyed on.
//!
//! Checksums are never verified here: NICs do that, and an incremental update keeps a bad
//! checksum bad, so a corrupt packet is never laundered into a valid one.

pub mod checksum;
pub mod ether;
pub mod flow;
pub mod icmp;
pub mod ipv4;
pub mod l4;
pub mod parse;
pub mod rewrite;

mod bytes;

pub use ether::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_VLAN, ETH_HEADER_LEN};
pub use flow::FlowKey;
pub use icmp::{EmbeddedV4, IcmpError};
pub use ipv4::{FragmentKind, Ipv4Packet, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
pub use l4::{IcmpInfo, TcpFlags, TcpInfo, Transport, UdpInfo};
pub use parse::{parse, peek_tuple, PacketV4};
pub use rewrite::{rewrite_fullnat, ttl_expires};
