//! The client's address to the real servers of full-NAT services: Proxy Protocol v1/v2 and
//! TOA (TCP option 254), and the per-session sequence offset they need.
//!
//! Not a second rewrite: `forward` (the one forwarding routine, the established-flow stage's
//! too) calls [`FullNat::client_address`] right after [`crate::packet::translate`] on
//! full-NAT sessions of services that ask for it. Changes in place (sequence and
//! acknowledgement numbers, SACK blocks, a client's own option 254 turned into NOPs) update
//! the TCP checksum incrementally through `checksum::update16/update32`; what grows the frame
//! (the header in front of the client's first data, the TOA option) is noted in
//! [`FullNat::insert`] and applied by `process`, which holds the frame and so its tailroom
//! ([`FullNat::grow`]).
//!
//! The sequence offset ([`SeqAdjust`]) is general: `in_delta` bytes fnatd put in front of the
//! client's stream (client→RS seq += in_delta; RS→client ack and SACK blocks −= in_delta),
//! and `out_delta` for the real server's stream (RS→client seq += out_delta; client→RS ack
//! and SACK blocks −= out_delta), which a SYN proxy reconciling its cookie's ISN with the real
//! server's will set; Proxy Protocol leaves it 0.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::encap::PORT_MTU;
use super::*;
use crate::packet::checksum::{self, update16, update32};
use crate::packet::ipv4::{IPPROTO_TCP, IPPROTO_UDP};
use crate::packet::l4::{TcpFlags, Transport};
use crate::packet::l4::{TCP_MIN_HEADER_LEN, UDP_HEADER_LEN};
use crate::packet::{tcp_option_at, Ipv4Header, TcpHeader, TcpOptionAt, UdpHeader};
use crate::session::Direction;

/// The service sends a Proxy Protocol header that has not gone yet.
pub(crate) const ADJ_PP: u16 = 1;
/// The header went in front of the client's first data: its stream is shifted.
pub(crate) const ADJ_PP_SENT: u16 = 2;
/// The service asks for TOA: a client's own option 254 is removed.
pub(crate) const ADJ_TOA: u16 = 4;
/// TOA still to go (on the handshake-completing ACK and the first data segment).
pub(crate) const ADJ_TOA_PENDING: u16 = 8;
/// Proxy Protocol version 2 (else 1).
pub(crate) const ADJ_PP_V2: u16 = 16;
/// `*-insecure`: a header the client sent itself is passed on.
pub(crate) const ADJ_INSECURE: u16 = 32;
/// `first_seq` was learnt from the client's SYN.
pub(crate) const ADJ_SEQ_KNOWN: u16 = 64;
/// A SYN-proxied session (`synproxy.rs`): the real server's SYN-ACKs are the worker's to
/// answer, never the client's to see.
pub(crate) const ADJ_SP: u16 = 128;
/// SYN proxy: waiting for the real server's SYN-ACK. Meanwhile `out_delta` holds the
/// cookie (the ISN the client knows) and `in_delta` the client's window.
pub(crate) const ADJ_SP_WAIT: u16 = 256;
/// SYN proxy: windows toward the client are rescaled from the real server's window scale
/// (`rs_wscale`) to the one the SYN-ACK announced ([`super::synproxy::OUR_WSCALE`]).
pub(crate) const ADJ_SP_WIN: u16 = 512;
/// The header went alone, on the handshake-completing ACK (server-speaks-first protocols
/// get it before any client data): the client's first data is shifted, not headed again.
pub(crate) const ADJ_PP_ALONE: u16 = 1024;
/// The real server acknowledged that header: nothing to send again.
pub(crate) const ADJ_PP_ACKED: u16 = 2048;
/// The header went alone and the client's first data is still to come: it is checked for a
/// header of its own (refused unless `*-insecure`).
pub(crate) const ADJ_PP_CHECK: u16 = 4096;

/// A header sent alone that the real server has not acknowledged yet: housekeeping sends it
/// again (`FullNat::resend_headers`) until it does, a bounded number of times.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingHeader {
    pub id: SessionId,
    pub lport: u16,
    /// The acknowledgement number and window the header's segment carried.
    pub ack: u32,
    pub window: u16,
    pub due: u64,
    pub tries: u8,
}

/// Headers awaiting acknowledgement tracked per worker (beyond, one goes untracked: counted).
pub(crate) const PENDING_HEADERS: usize = 256;
/// The first resend after 200 ms, then doubling; at most this many resends.
const RESEND_FIRST_NS: u64 = 200_000_000;
const RESEND_TRIES: u8 = 5;

/// TCP option kind of TOA (DPVS's, read by `toa.ko`): kind, length 8, port, IPv4 address.
pub const TOA_KIND: u8 = 254;
pub const TOA_LEN: usize = 8;
/// The Proxy Protocol v2 signature.
pub const PP2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header (RFC: 107 bytes with CRLF).
pub const PP1_MAX: usize = 107;

/// Per-session sequence state of a full-NAT session whose service tells the real server the
/// client's address; 16 bytes beside the 64-byte session (in `FullNat::adjust`, by session
/// id), read only for such sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqAdjust {
    /// The client's first data sequence number (its ISN + 1).
    pub first_seq: u32,
    /// Bytes fnatd put in front of the client's stream.
    pub in_delta: u32,
    /// Bytes the real server's stream is shifted by toward the client (SYN proxy; 0 here).
    pub out_delta: u32,
    /// `ADJ_*` bits.
    pub flags: u16,
    /// SYN proxy: the real server's window scale (with `ADJ_SP_WIN`).
    pub rs_wscale: u8,
}

impl SeqAdjust {
    /// The state a new session of a service with `ca` starts with.
    pub fn for_service(ca: crate::rules::ClientAddress, tcp: bool) -> SeqAdjust {
        let mut flags = 0;
        if ca.proxy_version != 0 {
            flags |= ADJ_PP;
            if ca.proxy_version == 2 || !tcp {
                flags |= ADJ_PP_V2;
            }
            if ca.proxy_insecure {
                flags |= ADJ_INSECURE;
            }
        }
        if ca.toa && tcp {
            flags |= ADJ_TOA | ADJ_TOA_PENDING;
        }
        SeqAdjust {
            flags,
            ..SeqAdjust::default()
        }
    }
}

/// A header to put in front of the payload, built from the session.
#[derive(Clone, Copy)]
pub(crate) struct ProxyHeader {
    buf: [u8; PP1_MAX + 1],
    len: u8,
}

impl ProxyHeader {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The header for a connection of `proto` from `client` to `vip` (ports in host order).
    pub(crate) fn build(v2: bool, proto: u8, client: (u32, u16), vip: (u32, u16)) -> Self {
        let mut h = ProxyHeader {
            buf: [0; PP1_MAX + 1],
            len: 0,
        };
        if v2 {
            let b = &mut h.buf;
            b[..12].copy_from_slice(&PP2_SIGNATURE);
            b[12] = 0x21; // version 2, PROXY
            b[13] = if proto == IPPROTO_UDP { 0x12 } else { 0x11 }; // AF_INET, DGRAM/STREAM
            b[14..16].copy_from_slice(&12u16.to_be_bytes());
            b[16..20].copy_from_slice(&client.0.to_be_bytes());
            b[20..24].copy_from_slice(&vip.0.to_be_bytes());
            b[24..26].copy_from_slice(&client.1.to_be_bytes());
            b[26..28].copy_from_slice(&vip.1.to_be_bytes());
            h.len = 28;
        } else {
            let mut w = Cursor {
                buf: &mut h.buf,
                len: 0,
            };
            let _ = write!(
                w,
                "PROXY TCP4 {} {} {} {}\r\n",
                Ipv4Addr::from(client.0),
                Ipv4Addr::from(vip.0),
                client.1,
                vip.1
            );
            h.len = w.len as u8;
        }
        h
    }
}

/// `fmt::Write` into a fixed buffer (no allocation on the packet path).
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl std::fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// What `process` adds to the frame once `forward` is done with it.
#[derive(Clone, Copy)]
pub(crate) struct Insert {
    /// The TOA option to append to the TCP options.
    pub toa: Option<[u8; TOA_LEN]>,
    /// The Proxy Protocol header to put in front of the payload.
    pub pp: Option<ProxyHeader>,
}

/// True when `payload` starts like a Proxy Protocol header (v1 or v2).
fn looks_like_proxy(payload: &[u8]) -> bool {
    payload.starts_with(b"PROXY ") || payload.starts_with(&PP2_SIGNATURE)
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Maps an acknowledgement (or SACK edge) of the shifted stream back to the sender's
/// numbering: bytes before `first + delta` that fnatd added are not the sender's.
#[inline]
fn unshift(v: u32, first: u32, delta: u32) -> u32 {
    let off = v.wrapping_sub(first);
    if (off as i32) < 0 {
        v
    } else if off < delta {
        first
    } else {
        v.wrapping_sub(delta)
    }
}

impl FullNat {
    /// Sequence state, Proxy Protocol and TOA of full-NAT session `id` for a packet going
    /// `dir`, already translated in `frame`. `can_grow`: the frame leaves now (not held for
    /// ARP), so something may be inserted into it. Errors leave the session as it was.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn client_address(
        &mut self,
        id: SessionId,
        dir: Direction,
        frame: &mut [u8],
        pkt: &PacketV4,
        can_grow: bool,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<(), DropReason> {
        let Some(&adj) = self.adjust.get(id as usize) else {
            return Ok(());
        };
        if adj.flags == 0 {
            return Ok(());
        }
        let s = *self.table.get(id).ok_or(DropReason::NoSession)?;
        let (l4, end) = (pkt.ip.l4(), pkt.ip.end());
        let mut new = adj;
        match pkt.transport {
            Transport::Udp(_) => {
                if dir != Direction::Input || adj.flags & ADJ_PP == 0 {
                    return Ok(());
                }
                let payload = frame
                    .get(l4 + UDP_HEADER_LEN..end)
                    .ok_or(DropReason::Truncated)?;
                new.flags &= !ADJ_PP;
                if looks_like_proxy(payload) {
                    if adj.flags & ADJ_INSECURE == 0 {
                        return Err(DropReason::ProxyFromClient);
                    }
                } else {
                    if !can_grow {
                        return Err(DropReason::NoNeighbour);
                    }
                    self.insert = Some(Insert {
                        toa: None,
                        pp: Some(ProxyHeader::build(
                            true,
                            IPPROTO_UDP,
                            (s.client_ip, s.client_port),
                            (s.vip, s.vport),
                        )),
                    });
                }
                self.adjust[id as usize] = new;
                Ok(())
            }
            Transport::Tcp(t) => {
                let hl = usize::from(t.header_len);
                let f: TcpFlags = t.flags;
                let seg = frame.get_mut(l4..end).ok_or(DropReason::Truncated)?;
                if seg.len() < hl || hl < TCP_MIN_HEADER_LEN {
                    return Err(DropReason::Truncated);
                }
                let payload_len = seg.len() - hl;
                let olen = hl - TCP_MIN_HEADER_LEN;
                let (head, rest) = seg.split_at_mut(TCP_MIN_HEADER_LEN);
                let (opt_bytes, payload) = rest.split_at_mut(olen);
                let mut th = TcpHeader::new_mut(head)?;
                let (seq, ack) = (th.seq(), th.ack());
                let mut check = th.checksum();
                let mut new_seq = seq;
                let mut new_ack = ack;
                let mut insert = Insert {
                    toa: None,
                    pp: None,
                };
                // The options, edited on a copy and applied word by word.
                let mut opts = [0u8; 40];
                opts[..olen].copy_from_slice(opt_bytes);
                let old_opts = opts;
                let mut pending = false;
                match dir {
                    Direction::Input => {
                        if f.syn() && !f.ack() {
                            new.first_seq = seq.wrapping_add(1);
                            new.flags |= ADJ_SEQ_KNOWN;
                        }
                        if adj.flags & ADJ_TOA != 0 && strip_toa(&mut opts[..olen]) {
                            self.toa_stripped += 1;
                        }
                        let at_first = adj.flags & ADJ_SEQ_KNOWN != 0 && seq == adj.first_seq;
                        // Server-speaks-first: the header goes on the handshake-completing
                        // ACK, before any client data (not `*-insecure`, where the client's
                        // data may start with its own header).
                        let server_first = at_first
                            && payload_len == 0
                            && adj.flags & (ADJ_PP | ADJ_INSECURE) == ADJ_PP
                            && f.ack()
                            && !f.syn()
                            && !f.fin()
                            && !f.rst();
                        let first_data =
                            payload_len > 0 && at_first && adj.flags & ADJ_PP_ALONE == 0;
                        if server_first {
                            let h = ProxyHeader::build(
                                adj.flags & ADJ_PP_V2 != 0,
                                IPPROTO_TCP,
                                (s.client_ip, s.client_port),
                                (s.vip, s.vport),
                            );
                            new.in_delta = u32::from(h.len);
                            new.flags =
                                (new.flags & !ADJ_PP) | ADJ_PP_SENT | ADJ_PP_ALONE | ADJ_PP_CHECK;
                            insert.pp = Some(h);
                            pending = true;
                        } else if first_data && adj.flags & (ADJ_PP | ADJ_PP_SENT) != 0 {
                            if adj.flags & ADJ_PP != 0 && looks_like_proxy(payload) {
                                if adj.flags & ADJ_INSECURE == 0 {
                                    return Err(DropReason::ProxyFromClient);
                                }
                                // A proxy in front sent it: passed on, nothing shifted.
                                new.flags &= !ADJ_PP;
                            } else {
                                let h = ProxyHeader::build(
                                    adj.flags & ADJ_PP_V2 != 0,
                                    IPPROTO_TCP,
                                    (s.client_ip, s.client_port),
                                    (s.vip, s.vport),
                                );
                                new.in_delta = u32::from(h.len);
                                new.flags = (new.flags & !ADJ_PP) | ADJ_PP_SENT;
                                insert.pp = Some(h);
                            }
                        } else if adj.flags & ADJ_PP_SENT != 0 {
                            if payload_len > 0
                                && at_first
                                && adj.flags & ADJ_PP_CHECK != 0
                                && looks_like_proxy(payload)
                            {
                                // Our header went alone; one from the client is not trusted.
                                return Err(DropReason::ProxyFromClient);
                            }
                            if payload_len > 0 && at_first {
                                new.flags &= !ADJ_PP_CHECK;
                            }
                            new_seq = seq.wrapping_add(adj.in_delta);
                        } else if adj.flags & ADJ_PP != 0 && payload_len > 0 {
                            // Data beyond the first byte before the header went (the first
                            // segment lost or reordered): where it belongs depends on that
                            // segment. Dropped; the client sends it again.
                            return Err(DropReason::ProxyPending);
                        }
                        if adj.flags & ADJ_TOA_PENDING != 0 && f.ack() && !f.syn() && !f.rst() {
                            let mut o = [TOA_KIND, TOA_LEN as u8, 0, 0, 0, 0, 0, 0];
                            o[2..4].copy_from_slice(&s.client_port.to_be_bytes());
                            o[4..8].copy_from_slice(&s.client_ip.to_be_bytes());
                            insert.toa = Some(o);
                            if payload_len > 0 {
                                new.flags &= !ADJ_TOA_PENDING;
                            }
                        }
                        if adj.out_delta != 0 && f.ack() && adj.flags & ADJ_SP_WAIT == 0 {
                            new_ack = ack.wrapping_sub(adj.out_delta);
                            sack_map(&mut opts[..olen], |v| v.wrapping_sub(adj.out_delta));
                        }
                    }
                    Direction::Output => {
                        if adj.flags & ADJ_PP_SENT != 0 && f.ack() {
                            let (first, d) = (adj.first_seq, adj.in_delta);
                            if adj.flags & (ADJ_PP_ALONE | ADJ_PP_ACKED) == ADJ_PP_ALONE
                                && (ack.wrapping_sub(first.wrapping_add(d)) as i32) >= 0
                            {
                                new.flags |= ADJ_PP_ACKED;
                            }
                            new_ack = unshift(ack, first, d);
                            sack_map(&mut opts[..olen], |v| unshift(v, first, d));
                        }
                        if adj.flags & ADJ_SP_WAIT != 0 {
                            // Only a RST gets here (`synproxy_gate`): the real server refused
                            // the connection; the client takes it at the number it expects.
                            new_seq = adj.out_delta.wrapping_add(1);
                        } else if adj.out_delta != 0 {
                            new_seq = seq.wrapping_add(adj.out_delta);
                        }
                        if adj.flags & ADJ_SP_WIN != 0 {
                            let win = th.window();
                            let scaled = super::synproxy::rescale_window(win, adj.rs_wscale);
                            if scaled != win {
                                check = update16(check, win, scaled);
                                th.set_window(scaled);
                            }
                        }
                    }
                }
                if (insert.pp.is_some() || insert.toa.is_some()) && !can_grow {
                    return Err(DropReason::NoNeighbour);
                }
                if new_seq != seq {
                    check = update32(check, seq, new_seq);
                    th.set_seq(new_seq);
                }
                if new_ack != ack {
                    check = update32(check, ack, new_ack);
                    th.set_ack(new_ack);
                }
                if opts != old_opts {
                    for i in (0..olen).step_by(2) {
                        let o = u16::from_be_bytes([old_opts[i], old_opts[i + 1]]);
                        let n = u16::from_be_bytes([opts[i], opts[i + 1]]);
                        if o != n {
                            check = update16(check, o, n);
                        }
                    }
                    opt_bytes.copy_from_slice(&opts[..olen]);
                }
                th.set_checksum(check);
                if insert.pp.is_some() || insert.toa.is_some() {
                    self.insert = Some(insert);
                }
                self.adjust[id as usize] = new;
                if pending {
                    let p = PendingHeader {
                        id,
                        lport: s.lport,
                        ack: new_ack,
                        window: th.window(),
                        due: now.saturating_add(RESEND_FIRST_NS),
                        tries: 0,
                    };
                    if self.pending_headers.len() < PENDING_HEADERS {
                        self.pending_headers.push(p);
                    } else {
                        stats.proxy_resend_untracked += 1;
                    }
                }
                Ok(())
            }
            Transport::Icmp(_) => Ok(()),
        }
    }

    /// Applies `ins` to `frame` (parsed as `pkt`, already rewritten): the TOA option after
    /// the TCP options, the Proxy Protocol header in front of the payload; lengths fixed, the
    /// IP checksum updated, the L4 checksum computed anew (the payload moved). A segment that
    /// would exceed the port MTU keeps the header and gives up its last bytes (and its FIN):
    /// the client sends them again when the real server's acknowledgement stops short of them.
    pub(super) fn grow<F: Frame>(
        &mut self,
        frame: &mut F,
        pkt: &PacketV4,
        ins: Insert,
        verdict: Verdict,
        stats: &mut WorkerStats,
    ) -> Verdict {
        if !matches!(verdict, Verdict::Transmit { .. }) {
            return verdict;
        }
        let (l3, l4, end) = (pkt.ip.l3(), pkt.ip.l4(), pkt.ip.end());
        let (tcp, hl) = match pkt.transport {
            Transport::Tcp(t) => (true, usize::from(t.header_len)),
            Transport::Udp(_) => (false, 8),
            Transport::Icmp(_) => return verdict,
        };
        let toa = match ins.toa {
            Some(o) if tcp && hl + TOA_LEN <= 60 => Some(o),
            Some(_) => {
                stats.toa_no_room += 1;
                None
            }
            None => None,
        };
        let toa_len = if toa.is_some() { TOA_LEN } else { 0 };
        let pp_len = ins.pp.map_or(0, |h| usize::from(h.len));
        let grow = toa_len + pp_len;
        let payload_at = l4 + hl;
        let mut end = end;
        let mut clear_fin = false;
        if end - l3 + grow > PORT_MTU {
            let cut = end - l3 + grow - PORT_MTU;
            if !tcp || end - payload_at <= cut {
                return Verdict::Drop(DropReason::TooBig);
            }
            end -= cut;
            clear_fin = true;
            stats.proxy_split += 1;
        }
        if frame.data().len() < end || !frame.set_len(end) || !frame.set_len(end + grow) {
            return Verdict::Drop(DropReason::NoTailroom);
        }
        let data = frame.data_mut();
        data.copy_within(payload_at..end, payload_at + grow);
        if let Some(o) = toa {
            data[payload_at..payload_at + TOA_LEN].copy_from_slice(&o);
            if let Ok(mut th) = TcpHeader::new_mut(&mut data[l4..]) {
                th.set_header_len(hl + TOA_LEN);
            }
            stats.toa_added += 1;
        }
        if let Some(h) = ins.pp {
            data[payload_at + toa_len..payload_at + grow].copy_from_slice(h.bytes());
            stats.proxy_headers += 1;
        }
        let end = end + grow;
        let ip_len = (end - l3) as u16;
        // The header `parse` validated (the frame only grew behind it).
        let Ok(mut ip) = Ipv4Header::new_mut(&mut data[l3..]) else {
            return verdict;
        };
        ip.set_checksum(update16(ip.checksum(), ip.total_len(), ip_len));
        ip.set_total_len(ip_len);
        let (src, dst) = (Ipv4Addr::from(ip.src()), Ipv4Addr::from(ip.dst()));
        let l4_len = (end - l4) as u16;
        if tcp {
            if let Ok(mut th) = TcpHeader::new_mut(&mut data[l4..end]) {
                if clear_fin {
                    th.set_flags(TcpFlags(th.flags().0 & !TcpFlags::FIN));
                }
                th.set_checksum(0);
            }
            let c = checksum::checksum(
                &data[l4..end],
                checksum::pseudo_header_sum(src, dst, IPPROTO_TCP, l4_len),
            );
            if let Ok(mut th) = TcpHeader::new_mut(&mut data[l4..end]) {
                th.set_checksum(c);
            }
        } else if let Ok(mut uh) = UdpHeader::new_mut(&mut data[l4..end]) {
            uh.set_length(l4_len);
            if uh.checksum() != 0 {
                uh.set_checksum(0);
                let c = checksum::udp_wire(checksum::checksum(
                    &data[l4..end],
                    checksum::pseudo_header_sum(src, dst, IPPROTO_UDP, l4_len),
                ));
                if let Ok(mut uh) = UdpHeader::new_mut(&mut data[l4..end]) {
                    uh.set_checksum(c);
                }
            }
        }
        verdict
    }
}

impl FullNat {
    /// Sends again the Proxy Protocol headers that went alone and that their real servers
    /// have not acknowledged when due (bounded: [`PENDING_HEADERS`] entries, each at most
    /// `RESEND_TRIES` times, 200 ms doubling). Originated frames leave through the
    /// neighbour queue (`drain_originated`). Called by housekeeping.
    pub(super) fn resend_headers(&mut self, now: u64, stats: &mut WorkerStats) {
        let mut i = 0;
        while i < self.pending_headers.len() {
            let p = self.pending_headers[i];
            let live = self.table.get(p.id).filter(|s| s.lport == p.lport).copied();
            let adj = self.adjust.get(p.id as usize).copied().unwrap_or_default();
            let waiting = adj.flags & (ADJ_PP_ALONE | ADJ_PP_ACKED) == ADJ_PP_ALONE;
            let (Some(s), true, true) = (live, waiting, p.tries < RESEND_TRIES) else {
                self.pending_headers.swap_remove(i);
                continue;
            };
            if p.due > now {
                i += 1;
                continue;
            }
            let sent = self.resend_header(&s, &adj, &p, now, stats);
            let e = &mut self.pending_headers[i];
            if sent {
                e.tries += 1;
                e.due = now.saturating_add(RESEND_FIRST_NS << e.tries);
            }
            i += 1;
        }
    }

    fn resend_header(
        &mut self,
        s: &crate::session::Session,
        adj: &SeqAdjust,
        p: &PendingHeader,
        now: u64,
        stats: &mut WorkerStats,
    ) -> bool {
        let Ok(hop) = self.hops.resolve(&self.egress, s.rs_ip).copied() else {
            return false;
        };
        let Some(mac) = self.neigh.reachable_mac(&hop, now) else {
            return false;
        };
        let h = ProxyHeader::build(
            adj.flags & ADJ_PP_V2 != 0,
            IPPROTO_TCP,
            (s.client_ip, s.client_port),
            (s.vip, s.vport),
        );
        let mut buf = [0u8; 14 + 20 + 20 + PP1_MAX + 1];
        let at = 14 + 20 + 20;
        buf[at..at + h.bytes().len()].copy_from_slice(h.bytes());
        let len = super::synproxy::build(
            &mut buf,
            &super::synproxy::Segment {
                macs: (hop.src_mac, mac),
                src: (s.lip, s.lport),
                dst: (s.rs_ip, s.rs_port),
                seq: adj.first_seq,
                ack: p.ack,
                flags: TcpFlags::ACK | TcpFlags::PSH,
                window: p.window,
                opts: &[],
            },
            h.bytes().len(),
        );
        if self.neigh.originate(&buf[..len], hop.port) {
            stats.proxy_headers_resent += 1;
            true
        } else {
            false
        }
    }
}

/// Turns every option 254 (TOA) in `opts` into NOPs (true if there was one), and the end of
/// the list too: an end-of-list option and what follows it, or a malformed option (a length
/// below 2 or past the options) and what follows it. A receiver stops parsing there, so an
/// option fnatd appends behind it would go unread, or (a client's 254 whose length reaches
/// into it) be read as part of the client's; as NOPs the receiver reads on to it.
fn strip_toa(opts: &mut [u8]) -> bool {
    let mut stripped = false;
    let mut i = 0;
    loop {
        match tcp_option_at(opts, i) {
            TcpOptionAt::End | TcpOptionAt::Malformed => {
                if let Some(rest) = opts.get_mut(i..) {
                    rest.fill(1);
                }
                return stripped;
            }
            TcpOptionAt::Nop => i += 1,
            TcpOptionAt::Option { kind, len } => {
                if kind == TOA_KIND {
                    opts[i..i + len].fill(1);
                    stripped = true;
                }
                i += len;
            }
        }
    }
}

/// Applies `f` to both edges of every SACK block (option 5) in `opts`.
fn sack_map(opts: &mut [u8], f: impl Fn(u32) -> u32) {
    let mut i = 0;
    loop {
        match tcp_option_at(opts, i) {
            TcpOptionAt::End | TcpOptionAt::Malformed => return,
            TcpOptionAt::Nop => i += 1,
            TcpOptionAt::Option { kind, len } => {
                if kind == 5 {
                    let mut j = i + 2;
                    while j + 4 <= i + len {
                        if let Some(v) = be32(opts, j) {
                            opts[j..j + 4].copy_from_slice(&f(v).to_be_bytes());
                        }
                        j += 4;
                    }
                }
                i += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_header_text() {
        let h = ProxyHeader::build(
            false,
            IPPROTO_TCP,
            (u32::from(Ipv4Addr::new(198, 18, 0, 10)), 40000),
            (u32::from(Ipv4Addr::new(198, 18, 1, 1)), 80),
        );
        assert_eq!(h.bytes(), b"PROXY TCP4 198.18.0.10 198.18.1.1 40000 80\r\n");
        let longest = ProxyHeader::build(false, IPPROTO_TCP, (u32::MAX, 65535), (u32::MAX, 65535));
        assert_eq!(longest.bytes().len(), 56);
    }

    #[test]
    fn v2_header_bytes() {
        let h = ProxyHeader::build(true, IPPROTO_UDP, (0x0102_0304, 0x1122), (0x0506_0708, 53));
        let b = h.bytes();
        assert_eq!(b.len(), 28);
        assert_eq!(&b[..12], &PP2_SIGNATURE);
        assert_eq!(&b[12..16], &[0x21, 0x12, 0, 12]);
        assert_eq!(&b[16..28], &[1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x22, 0, 53]);
    }

    #[test]
    fn unshift_maps_into_the_senders_numbers() {
        // 10 header bytes in front of the stream that starts at 1000.
        assert_eq!(unshift(1000, 1000, 10), 1000);
        assert_eq!(unshift(1005, 1000, 10), 1000);
        assert_eq!(unshift(1010, 1000, 10), 1000);
        assert_eq!(unshift(1110, 1000, 10), 1100);
        // Across the wrap.
        assert_eq!(unshift(5, u32::MAX - 4, 8), u32::MAX - 2);
    }

    #[test]
    fn options_edits() {
        // NOP NOP SACK(1 block) then TOA.
        let mut o = [
            1, 1, 5, 10, 0, 0, 0, 20, 0, 0, 0, 30, TOA_KIND, 8, 0, 80, 1, 2, 3, 4,
        ];
        sack_map(&mut o, |v| v - 5);
        assert_eq!(&o[4..12], &[0, 0, 0, 15, 0, 0, 0, 25]);
        strip_toa(&mut o);
        assert_eq!(&o[12..], &[1; 8]);
        // A malformed length stops the walk without panicking; stripping then turns it and
        // what follows into NOPs (an option appended behind must stay readable), and so an
        // end-of-list and its padding.
        let mut bad = [5, 0, 1, 1];
        sack_map(&mut bad, |v| v + 1);
        assert_eq!(bad, [5, 0, 1, 1]);
        assert!(!strip_toa(&mut bad));
        assert_eq!(bad, [1, 1, 1, 1]);
        let mut ended = [2, 4, 5, 0xb4, 0, 0, 0, 0];
        strip_toa(&mut ended);
        assert_eq!(ended, [2, 4, 5, 0xb4, 1, 1, 1, 1]);
    }
}
