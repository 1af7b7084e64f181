//! SNAT (DPVS's `-H` match service with `-J` addresses): hosts behind the balancer reach
//! outside networks with their source rewritten to a WAN address:port of the service's pool.
//!
//! ```text
//! inside H:hport → D:dport     ==>  WAN:wport → D:dport     (Direction::Input)
//! D:dport → WAN:wport          ==>  D:dport → H:hport       (Direction::Output)
//! ```
//!
//! It is full-NAT with the destination left alone: the session holds H:hport as its client,
//! D:dport as both its "VIP" and its real server, and WAN:wport as its local address and
//! port, so the one session table, the one rewrite ([`crate::packet::translate`]), the one
//! state machine and the local-port pools serve it unchanged. Replies come to WAN:wport, a
//! local address: they take the full-NAT reply path (and the owner of wport has the session,
//! so any number of workers works). What is SNAT's own is here: finding the service of an
//! outgoing packet by its rule, and (in `create`) the destination as the real server.

use super::*;
use crate::laddr::owner_of;
use crate::packet::l4::{ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST};
use crate::packet::{self, Transport, Tuple};
use crate::session::{Direction, Side};
use crate::stats::WorkerStats;
use crate::verdict::{DropReason, Verdict};

impl FullNat {
    /// A packet to an address that is not ours: forwarded with SNAT when a match service
    /// takes it (its session, or a new one), dropped as not for us otherwise.
    pub(super) fn snat_out(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        // ICMP: echo requests only (their identifier stands for both ports).
        let tcp = match pkt.transport {
            Transport::Tcp(t) => Some(t.flags),
            Transport::Udp(_) => None,
            Transport::Icmp(i) if i.icmp_type == ICMP_ECHO_REQUEST && i.code == 0 => None,
            Transport::Icmp(_) => return Err(DropReason::NotForUs),
        };
        let key = pkt.tuple().ok_or(DropReason::NotForUs)?;
        self.ip_options_gate(pkt, stats)?;
        // Sessions first: an SNAT session's outgoing packet, or (real side) a NAT real
        // server's reply, which is NAT's to forward.
        let tag = self.table.tag(&key);
        let found = self.lookup_live_tagged(&key, tag, now, stats);
        if let Some((_, Side::Real)) = found {
            return Err(DropReason::NotForUs);
        }
        // With NAT services, a TCP/UDP packet to a foreign address may be a NAT real server's
        // reply whose session lives on its client's NAT owner: unless this worker is that
        // owner, NAT's path takes it there (an SNAT flow then lives on that worker too, its
        // local port from that worker's slice, so its replies find it).
        if found.is_none()
            && self.nat_replies
            && pkt.ip.proto != crate::packet::ipv4::IPPROTO_ICMP
            && nat_owner(key.dst_ip, self.workers) != self.id
        {
            return Err(DropReason::NotForUs);
        }
        let Some(service) = self.snat_service(&key, rx_port) else {
            return Err(DropReason::NotForUs);
        };
        if packet::ttl_expires(pkt.ip.ttl) {
            return Err(DropReason::TtlExpired);
        }
        // A client-side session here (a real-server-side one went to NAT above).
        if let Some(found) = found {
            if let Some(done) = self.forward_or_reuse(rx_port, frame, pkt, found, tcp, now, stats) {
                return done;
            }
        }
        if !tcp.is_none_or(|f| f.syn() && !f.ack()) {
            return Err(DropReason::NoSession);
        }
        let id = self.create(service as usize, &key, tag, tcp.is_some(), now, stats)?;
        self.forward(rx_port, frame, pkt, id, Direction::Input, tcp, now, stats)
    }

    /// The first SNAT service whose rule takes `key` arriving on `rx_port` and whose
    /// destination routes out of its oif (when it names one).
    #[inline]
    fn snat_service(&mut self, key: &Tuple, rx_port: PortIndex) -> Option<u32> {
        for i in 0..self.snat.len() {
            let (rule, service) = self.snat[i];
            if !rule.takes(key.proto, key.src_ip, key.dst_ip, rx_port) {
                continue;
            }
            if let Some(oif) = rule.oif {
                match self.hops.resolve(&self.egress, key.dst_ip) {
                    Ok(hop) if hop.port == oif => {}
                    _ => continue,
                }
            }
            return Some(service);
        }
        None
    }

    /// An echo reply to a local address: the reply to an inside host's echo request that SNAT
    /// sent with the identifier of a local port (the owner of that port has the session).
    pub(super) fn snat_echo_reply(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let key = match pkt.transport {
            Transport::Icmp(i) if i.icmp_type == ICMP_ECHO_REPLY && i.code == 0 => {
                pkt.tuple().ok_or(DropReason::IcmpUnsupported)?
            }
            _ => return Err(DropReason::IcmpUnsupported),
        };
        let owner = owner_of(key.dst_port, self.workers);
        self.forward_reply(owner, rx_port, frame, pkt, &key, None, None, now, stats)
            .unwrap_or(Err(DropReason::NoSession))
    }

    /// True when `service` (an index in `services`) is an SNAT service.
    #[inline]
    pub(super) fn is_snat(&self, service: usize) -> bool {
        self.snat.iter().any(|&(_, i)| i as usize == service)
    }
}
