//! Classification: which kind of packet this is (to a service, a reply to a local address, ICMP) and
//! which session it belongs to; sessions first, as IPVS looks connections up before services.

use super::*;
use crate::laddr::owner_of;
use crate::packet::l4::{TcpFlags, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST};
use crate::packet::{self, ether, icmp, EthernetHeader, PacketV4, Transport, Tuple};
use crate::persist;
use crate::rules::{Method, PortIndex};
use crate::session::{ConnState, Direction, Session, SessionId, Side};
use crate::stats::WorkerStats;
use crate::verdict::{DropReason, Verdict};

impl FullNat {
    #[inline(always)]
    pub(super) fn classify_parsed(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        // Multicast is never forwarded: on a port with a kernel twin it is the twin's
        // (session sync's 224.0.0.81:8848, read by the sync service there).
        if Ipv4Addr::from(pkt.ip.dst).is_multicast()
            && self.twins.get(usize::from(rx_port)) == Some(&true)
        {
            return Ok(Verdict::ToKernel { port: rx_port });
        }
        let port_mac = self
            .to_port_mac(rx_port, frame)
            .ok_or(DropReason::NotForUs)?;
        let Some(kind) = self.addresses.get(u64::from(pkt.ip.dst)) else {
            // Not to one of ours: an inside host's packet that an SNAT service takes, or a
            // NAT real server's reply.
            if !self.snat.is_empty() {
                match self.snat_out(rx_port, frame, pkt, now, stats) {
                    Err(DropReason::NotForUs) => {}
                    done => return done,
                }
            }
            if self.nat_replies {
                return self.nat_reply(rx_port, frame, pkt, now, stats);
            }
            return Err(DropReason::NotForUs);
        };
        if standby(kind) {
            return Err(DropReason::VrrpBackup);
        }
        self.ip_options_gate(pkt, stats)?;
        match pkt.transport {
            Transport::Tcp(t) => self.tcp_udp(rx_port, frame, pkt, Some(t.flags), kind, now, stats),
            Transport::Udp(_) => self.tcp_udp(rx_port, frame, pkt, None, kind, now, stats),
            Transport::Icmp(i) => {
                if i.icmp_type == ICMP_ECHO_REQUEST {
                    let peer = ether::src_mac(frame).ok_or(DropReason::Truncated)?;
                    icmp::echo_reply_in_place(frame, pkt, ECHO_REPLY_TTL)?;
                    ether::set_macs(frame, port_mac, peer);
                    stats.icmp_echo_replies += 1;
                    Ok(Verdict::Transmit { port: rx_port })
                } else if i.is_error() {
                    match self.icmp_error(frame, pkt, kind, now, stats) {
                        // Not about a session: about something the kernel sent.
                        Err(DropReason::IcmpNoSession) => self
                            .to_kernel(rx_port, kind)
                            .ok_or(DropReason::IcmpNoSession),
                        other => other,
                    }
                } else if i.icmp_type == ICMP_ECHO_REPLY && kind & ADDR_LIP != 0 {
                    match self.snat_echo_reply(rx_port, frame, pkt, now, stats) {
                        // No SNAT session: the answer to a ping the kernel sent.
                        Err(DropReason::NoSession) => {
                            self.to_kernel(rx_port, kind).ok_or(DropReason::NoSession)
                        }
                        other => other,
                    }
                } else {
                    // Echo replies and the like: answers to what the kernel sent.
                    self.to_kernel(rx_port, kind)
                        .ok_or(DropReason::IcmpUnsupported)
                }
            }
        }
    }

    /// A packet with IP options: counted, and refused when the rules say so.
    #[inline]
    pub(super) fn ip_options_gate(
        &self,
        pkt: &PacketV4,
        stats: &mut WorkerStats,
    ) -> Result<(), DropReason> {
        if pkt.ip.has_options() {
            stats.ip_options += 1;
            if self.drop_ip_options {
                return Err(DropReason::IpOptions);
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn tcp_udp(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        tcp: Option<TcpFlags>,
        kind: u32,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let key = pkt.tuple().ok_or(DropReason::UnsupportedProtocol)?;
        let dport = key.dst_port;
        let service = if kind & ADDR_VIP != 0 {
            self.find_service(key.dst_ip, key.proto, dport)
        } else {
            None
        };
        let Some(service) = service else {
            if kind & ADDR_VIP != 0 {
                // No service at this endpoint (any more), yet a session may have come in by
                // it (a port left its service's port group): sessions first, as IPVS looks
                // connections up before services, so it runs on until it ends. A session of
                // a removed service is ended by `lookup_live`.
                if packet::ttl_expires(pkt.ip.ttl) {
                    return Err(DropReason::TtlExpired);
                }
                if let Some(found) = self.lookup_live(&key, now, stats) {
                    return self
                        .forward_or_reuse(rx_port, frame, pkt, found, tcp, now, stats)
                        .unwrap_or(Err(DropReason::NoService));
                }
            }
            if kind & ADDR_LIP == 0 {
                // The port's own address (or a VIP's port without a service): the kernel's.
                return self.to_kernel(rx_port, kind).ok_or(DropReason::NoService);
            }
            // A real server's reply to LIP:lport: the owner of lport has the session.
            let owner = owner_of(dport, self.workers);
            let reply = self.forward_reply(owner, rx_port, frame, pkt, &key, tcp, None, now, stats);
            return match reply {
                Some(done) => done,
                // An address both local (LIP) and the port's own: outside the local port
                // range, a reply to a connection of the kernel's.
                None if !self.laddrs.in_range(dport) => {
                    self.to_kernel(rx_port, kind).ok_or(DropReason::NoSession)
                }
                None => Err(DropReason::NoSession),
            };
        };
        if packet::ttl_expires(pkt.ip.ttl) {
            return Err(DropReason::TtlExpired);
        }
        // The client key's one hash of a new connection: the lookup's, then its insertion's.
        let tag = self.table.tag(&key);
        if let Some(found) = self.lookup_live_tagged(&key, tag, now, stats) {
            if let Some(done) = self.forward_or_reuse(rx_port, frame, pkt, found, tcp, now, stats) {
                return done;
            }
        }
        // No session here: a service with NAT real servers has its new sessions (and their
        // replies) on the client's NAT owner. Sessions found here (made before the service had
        // NAT real servers) run on where they are.
        if let Some(owner) = self.nat_steer(service as usize, key.src_ip) {
            return Ok(Verdict::Redirect { worker: owner });
        }
        let starts = match tcp {
            Some(f) => f.syn() && !f.ack(),
            None => true,
        };
        if let Some(owner) = self.steer(service as usize, key.src_ip, starts) {
            return Ok(Verdict::Redirect { worker: owner });
        }
        if let Some(f) = tcp {
            if self.synproxy_service(service as usize) {
                return self.synproxy_new(
                    rx_port,
                    frame,
                    pkt,
                    service as usize,
                    &key,
                    f,
                    now,
                    stats,
                );
            }
        }
        if !starts {
            // Active peers: a connection the peer scheduled may be synced here, on its
            // foreign owner (not where our RSS put this packet).
            if self.workers > 1 && self.sync_rules().is_some_and(|r| r.active_peers) {
                let owner = foreign_owner(key.src_ip, key.src_port, self.workers);
                if owner != self.id {
                    return Ok(Verdict::Redirect { worker: owner });
                }
            }
            return Err(DropReason::NoSession);
        }
        let id = self.create(service as usize, &key, tag, tcp.is_some(), now, stats)?;
        self.forward(rx_port, frame, pkt, id, Direction::Input, tcp, now, stats)
    }

    /// Forwards a packet of the session `found` on its side. A new SYN of a client that
    /// reused the port of a connection it already closed ends the session instead and
    /// returns `None`: as IPVS's conn_reuse_mode, the SYN is then scheduled afresh, so a
    /// drained or removed real server gets no new connection this way.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn forward_or_reuse(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        (id, side): (SessionId, Side),
        tcp: Option<TcpFlags>,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Option<Result<Verdict, DropReason>> {
        if side == Side::Client && self.reused_port(id, tcp) {
            self.end_session(id, stats);
            return None;
        }
        Some(self.forward(rx_port, frame, pkt, id, travels(side), tcp, now, stats))
    }

    /// A reply (`key`: real server or outside host → local address) whose session lives on
    /// worker `owner`: redirected there, or forwarded back toward the client when its
    /// session is here. `None`: no live session (of method `only`, when given) has `key` on
    /// its real-server side; the caller says what that means.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn forward_reply(
        &mut self,
        owner: u16,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        key: &Tuple,
        tcp: Option<TcpFlags>,
        only: Option<Method>,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Option<Result<Verdict, DropReason>> {
        if owner != self.id {
            return Some(Ok(Verdict::Redirect { worker: owner }));
        }
        if packet::ttl_expires(pkt.ip.ttl) {
            return Some(Err(DropReason::TtlExpired));
        }
        match self.lookup_live(key, now, stats) {
            Some((id, Side::Real))
                if only.is_none_or(|m| self.table.get(id).is_some_and(|s| s.method() == m)) =>
            {
                let out = Direction::Output;
                Some(self.forward(rx_port, frame, pkt, id, out, tcp, now, stats))
            }
            _ => None,
        }
    }

    /// True for a new SYN (no ACK) on a session the connection already left (TIME_WAIT or
    /// CLOSE): the client reused its source port for a new connection.
    #[inline]
    pub(super) fn reused_port(&self, id: SessionId, tcp: Option<TcpFlags>) -> bool {
        tcp.is_some_and(|f| f.syn() && !f.ack())
            && self
                .table
                .get(id)
                .is_some_and(|s| matches!(s.state, ConnState::TimeWait | ConnState::Close))
    }

    /// The service of a packet to `vip`:`port`: an exact endpoint first, else the VIP's
    /// port-0 service (as IPVS looks services up).
    #[inline]
    pub(super) fn find_service(&self, vip: u32, proto: u8, port: u16) -> Option<u32> {
        self.service_index
            .get(service_key(vip, proto, port))
            .or_else(|| self.service_index.get(service_key(vip, proto, 0)))
    }

    /// A packet to an address that is not ours while NAT real servers exist: a real server's
    /// reply to a NAT session (RS:rport → client:cport), or an ICMP error about one, processed
    /// by the client's NAT owner. Anything else is not for us.
    #[cold]
    fn nat_reply(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let tcp = match pkt.transport {
            Transport::Tcp(t) => Some(t.flags),
            Transport::Udp(_) => None,
            Transport::Icmp(i) if i.is_error() => {
                return self.icmp_error(frame, pkt, 0, now, stats);
            }
            Transport::Icmp(_) => return Err(DropReason::NotForUs),
        };
        let key = pkt.tuple().ok_or(DropReason::NotForUs)?;
        let owner = nat_owner(key.dst_ip, self.workers);
        let nat = Some(Method::Nat);
        self.forward_reply(owner, rx_port, frame, pkt, &key, tcp, nat, now, stats)
            .unwrap_or(Err(DropReason::NotForUs))
    }

    /// For a client packet of a `service` with NAT real servers: its client's NAT owner
    /// ([`nat_owner`]) when that is another worker.
    #[inline]
    pub(super) fn nat_steer(&self, service: usize, client: u32) -> Option<u16> {
        if self.workers <= 1 || !self.services.get(service)?.nat {
            return None;
        }
        let owner = nat_owner(client, self.workers);
        (owner != self.id).then_some(owner)
    }

    /// For a client packet of `service` that found no session here: the worker owning its
    /// client's persistence template, when that is another worker (see `persist`). Packets
    /// that start a connection are steered while the service is persistent; others also
    /// after it stopped being persistent (their sessions live on the owners).
    #[inline]
    pub(super) fn steer(&self, service: usize, client: u32, starts: bool) -> Option<u16> {
        if self.workers <= 1 {
            return None;
        }
        let svc = self.services.get(service)?;
        if svc.nat {
            // Steered by the client's NAT owner before the lookup (see `nat_steer`).
            return None;
        }
        let mask = svc.steer_mask?;
        if starts && svc.persist.is_none() {
            return None;
        }
        let owner = persist::owner(svc.id, client & mask, self.workers);
        (owner != self.id).then_some(owner)
    }

    /// Looks a session up; ends it instead when it has timed out (exactly at its deadline),
    /// its service is gone, or its real server left a service that expires its sessions.
    #[inline(always)]
    pub(super) fn lookup_live(
        &mut self,
        key: &Tuple,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Option<(SessionId, Side)> {
        self.lookup_live_tagged(key, self.table.tag(key), now, stats)
    }

    /// [`Self::lookup_live`] with `key`'s hash tag already computed (`SessionTable::tag`).
    #[inline(always)]
    pub(super) fn lookup_live_tagged(
        &mut self,
        key: &Tuple,
        tag: u32,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Option<(SessionId, Side)> {
        let (id, side) = self.table.lookup_tagged(key, tag)?;
        if !self.is_live(self.table.get(id)?, now, stats) {
            self.end_session(id, stats);
            return None;
        }
        Some((id, side))
    }

    /// A session may take a packet at `now`: it has not timed out (exactly at its deadline
    /// it has), and, while sessions of removed services are being ended, its service (and
    /// real server) are still in the rules. What is not live is ended by [`Self::lookup_live`].
    #[inline(always)]
    pub(super) fn is_live(&self, s: &Session, now: u64, stats: &WorkerStats) -> bool {
        s.deadline > now && (!self.check_alive() || session_alive(stats, &self.slot_info, s))
    }

    /// The MAC of port `rx_port` when `frame` is addressed to it; `None` for a frame to any
    /// other address (not for us).
    #[inline(always)]
    pub(super) fn to_port_mac(&self, rx_port: PortIndex, frame: &[u8]) -> Option<[u8; 6]> {
        let port_mac = self.egress.port_mac_ref(rx_port)?;
        EthernetHeader::new_checked(frame)
            .is_ok_and(|h| h.is_to(port_mac))
            .then_some(*port_mac)
    }

    /// A packet to `dst` may reach a session by its `side` key: never through an address this
    /// director is VRRP backup for ([`standby`]: classification drops all its traffic as
    /// `vrrp_backup`), a client's packet only through an address that is (still) a VIP, a
    /// reply through its local address, or the client's own for NAT (not ours).
    #[inline(always)]
    pub(super) fn reaches_session(&self, dst: u32, side: Side) -> bool {
        match self.addresses.get(u64::from(dst)) {
            Some(kind) if standby(kind) => false,
            Some(kind) => side == Side::Real || kind & ADDR_VIP != 0,
            None => side == Side::Real,
        }
    }
}

/// The direction a packet that found its session by its `side` key travels in.
#[inline(always)]
pub(super) fn travels(side: Side) -> Direction {
    match side {
        Side::Client => Direction::Input,
        Side::Real => Direction::Output,
    }
}

/// An address of kind `kind` (`ADDR_*` bits) is one this director is VRRP backup for
/// (`Rules::standby`): it serves none of its traffic.
#[inline(always)]
fn standby(kind: u32) -> bool {
    kind & ADDR_STANDBY != 0
}
