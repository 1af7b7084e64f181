//! ICMP errors about a session's packets, translated for the other side (RFC 5508).

use std::net::Ipv4Addr;

use super::*;
use crate::laddr::owner_of;
use crate::packet::{self, ether, icmp, PacketV4};
use crate::rules::{Method, Protocol};
use crate::session::Side;
use crate::stats::WorkerStats;
use crate::verdict::{DropReason, Verdict};

impl FullNat {
    /// Translates an ICMP error about a session's packet (RFC 5508) and sends it to the other
    /// side: errors from the real-server side (quoting LIP:lport → RS) go to the client as
    /// VIP → client quoting client → VIP; errors from the client side (quoting VIP → client)
    /// go to the real server as LIP → RS quoting RS → LIP.
    pub(super) fn icmp_error(
        &mut self,
        frame: &mut [u8],
        pkt: &PacketV4,
        kind: u32,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let err = icmp::parse_error(frame, pkt)?;
        let key = err.embedded.tuple().reverse();
        if key.proto != Protocol::Tcp.number() && key.proto != Protocol::Udp.number() {
            return Err(DropReason::IcmpNoSession);
        }
        let outer_dst = pkt.ip.dst;
        // About a packet we sent from LIP:lport: only lport's owner knows the session.
        if kind & ADDR_LIP != 0 && key.dst_ip == outer_dst {
            let owner = owner_of(key.dst_port, self.workers);
            if owner != self.id {
                return Ok(Verdict::Redirect { worker: owner });
            }
        }
        // About a packet we sent to a real server from a NAT client's address: the client's
        // NAT owner has the session.
        if kind == 0 {
            let owner = nat_owner(key.dst_ip, self.workers);
            if owner != self.id {
                return Ok(Verdict::Redirect { worker: owner });
            }
        }
        if packet::ttl_expires(pkt.ip.ttl) {
            return Err(DropReason::TtlExpired);
        }
        let Some((id, side)) = self.lookup_live(&key, now, stats) else {
            // About a packet to a client of a persistent service: its session lives on the
            // client's template owner.
            if kind & ADDR_VIP != 0 && key.dst_ip == outer_dst {
                if let Some(owner) = self
                    .find_service(key.dst_ip, key.proto, key.dst_port)
                    .and_then(|svc| {
                        self.nat_steer(svc as usize, key.src_ip)
                            .or_else(|| self.steer(svc as usize, key.src_ip, false))
                    })
                {
                    return Ok(Verdict::Redirect { worker: owner });
                }
            }
            return Err(DropReason::IcmpNoSession);
        };
        let s = *self.table.get(id).ok_or(DropReason::IcmpNoSession)?;
        if s.method().input_only() {
            // DR and TUN: a client's error about the VIP's packets goes to the real server as
            // the client's packets do (unchanged; TUN wraps it), as IPVS forwards them.
            if side != Side::Client || outer_dst != s.vip {
                return Err(DropReason::IcmpNoSession);
            }
            let hop = *self.hops.resolve(&self.egress, s.rs_ip)?;
            let dst_mac = self.neigh.next_hop_mac(&hop, now)?;
            stats.icmp_errors_translated += 1;
            return Ok(match s.method() {
                Method::Tun(tunnel) => {
                    self.encap = Some(super::encap::Encap::toward_real(&s, tunnel, hop, dst_mac));
                    Verdict::Consumed
                }
                _ => match dst_mac {
                    Some(mac) => {
                        ether::set_macs(frame, hop.src_mac, mac);
                        Verdict::Transmit { port: hop.port }
                    }
                    None => self.neigh.hold(frame, &hop, now, stats),
                },
            });
        }
        let (outer_src, to, quoted_src, quoted_dst) = match side {
            Side::Real if outer_dst == s.lip => (
                s.vip,
                s.client_ip,
                sock(s.client_ip, s.client_port),
                sock(s.vip, s.vport),
            ),
            Side::Client if outer_dst == s.vip => (
                s.lip,
                s.rs_ip,
                sock(s.rs_ip, s.rs_port),
                sock(s.lip, s.lport),
            ),
            _ => return Err(DropReason::IcmpNoSession),
        };
        let hop = self.egress.resolve(to)?;
        let dst_mac = self.neigh.next_hop_mac(&hop, now)?;
        icmp::translate_error(
            frame,
            &err,
            Ipv4Addr::from(outer_src),
            Ipv4Addr::from(to),
            quoted_src,
            quoted_dst,
        )?;
        stats.icmp_errors_translated += 1;
        Ok(match dst_mac {
            Some(mac) => {
                ether::set_macs(frame, hop.src_mac, mac);
                Verdict::Transmit { port: hop.port }
            }
            None => self.neigh.hold(frame, &hop, now, stats),
        })
    }
}
