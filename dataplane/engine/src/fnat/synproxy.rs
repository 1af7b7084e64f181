//! SYN proxy of full-NAT TCP services (`synproxy` in the rules): the worker answers a
//! client's SYN itself with a SYN cookie as its ISN and keeps nothing; only an ACK that
//! carries a valid cookie makes a session, and then the connection to the real server opens.
//!
//! ```text
//! client                 worker                       real server
//!  SYN(isn, opts)  →     SYN-ACK(cookie)          (no session)
//!  ACK(cookie+1)[data] → session; data held;      SYN(isn, opts from the cookie) →
//!                        ← SYN-ACK(rs_isn)        ACK[held data] →
//!  from then on: RS→client seq += cookie − rs_isn, client→RS ack (and SACK) −= the same,
//!  in `client_addr.rs`'s one rewrite, composed with Proxy Protocol and TOA shifts.
//! ```
//!
//! The cookie (after Linux's syncookies, not their code): `h1 + isn + (count << 24) +
//! (h2(count, data) & 0xFFFF80 | data)` where `h1`, `h2` are keyed SipHash values of the
//! 4-tuple (one process-wide random key, shared by the workers), `count` is a 64-second
//! counter, the 17 bits of `h2` check the rest (a guessed or off-by-one cookie passes with
//! odds 2⁻¹⁷ once its 8-bit counter is in the window, 2⁻²⁴ overall) and `data` (7 bits) encodes the client's MSS (index in [`MSS_TABLE`]), window scale (or none)
//! and SACK-permitted. A cookie is accepted for [`COOKIE_MAX_AGE`] + 1 periods (64–128 s).
//! Timestamps are not offered (the SYN-ACK carries none, so the connection goes without
//! them): the cookie needs no TS echo and no TS rewrite. The SYN-ACK announces window scale
//! [`OUR_WSCALE`] when the client offered one; the real server's own scale is learned from
//! its SYN-ACK and windows toward the client are rescaled when the two differ.
//!
//! Client data that came with the cookie ACK (or the first data segment while the real
//! server has not answered) is copied into one of [`HOLD_SLOTS`] pre-allocated per-worker
//! slots and goes with the ACK that completes the real server's handshake; with every slot
//! taken it is dropped and counted (`synproxy_hold_full`): the client sends it again.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use super::client_addr::{ADJ_SP, ADJ_SP_WAIT, ADJ_SP_WIN};
use super::*;
use crate::packet::checksum;
use crate::packet::ipv4::{DONT_FRAGMENT, IPPROTO_TCP, IPV4_MIN_HEADER_LEN};
use crate::packet::l4::{TcpFlags, Transport, TCP_MIN_HEADER_LEN};
use crate::packet::{
    self, EthernetHeader, Ipv4Header, PacketV4, TcpHeader, Tuple, ETHERTYPE_IPV4, ETH_HEADER_LEN,
};
use crate::session::{Direction, SessionId};

/// The MSS values a cookie can carry (Linux's IPv4 table): the client's MSS is rounded down
/// to one of them.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
/// The MSS the SYN-ACK announces (a 1500-byte port MTU).
pub const OUR_MSS: u16 = 1460;
/// The window scale the SYN-ACK announces to clients that offer window scaling.
pub const OUR_WSCALE: u8 = 7;
/// The cookie's time counter ticks every 64 s.
pub const COOKIE_PERIOD_NS: u64 = 64 * NS_PER_SEC;
/// Periods a cookie stays valid after the one it was made in.
pub const COOKIE_MAX_AGE: u32 = 1;
/// Per-worker slots for client data waiting for the real server's SYN-ACK.
pub const HOLD_SLOTS: usize = 64;
/// Bytes of one slot (a 1500-byte MTU's largest TCP payload).
pub const HOLD_BYTES: usize = 1460;
/// The largest frame built here (an MTU-sized segment plus Ethernet).
const SCRATCH_BYTES: usize = 2048;
/// The cookie's low 24 bits: 17 bits of keyed hash over the tuple, counter and data (the
/// check), then the 7 data bits.
const DATA_MASK: u32 = 0x7F;
const MAC_MASK: u32 = 0xFF_FF80;
/// Window scale "none" in the cookie's data.
const NO_WSCALE: u32 = 15;
const ETH: usize = ETH_HEADER_LEN;
const IP: usize = IPV4_MIN_HEADER_LEN;
/// Where a built segment's TCP header ends and its options begin.
const TCP: usize = TCP_MIN_HEADER_LEN;

/// What a client's SYN offered, as a cookie keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynOptions {
    /// The client's MSS rounded down to [`MSS_TABLE`] (536 without the option).
    pub mss: u16,
    /// Window scale (0..=14), if offered.
    pub wscale: Option<u8>,
    pub sack: bool,
}

impl SynOptions {
    /// Reads MSS, window scale and SACK-permitted from a SYN's TCP options (bounded walk;
    /// malformed options end it).
    pub fn of_syn(opts: &[u8]) -> SynOptions {
        let mut o = SynOptions {
            mss: MSS_TABLE[0],
            wscale: None,
            sack: false,
        };
        for (i, kind, len) in crate::packet::tcp_options(opts) {
            match (kind, len) {
                (2, 4) => {
                    let mss = u16::from_be_bytes([opts[i + 2], opts[i + 3]]);
                    o.mss = MSS_TABLE
                        .iter()
                        .rev()
                        .copied()
                        .find(|&m| m <= mss)
                        .unwrap_or(MSS_TABLE[0]);
                }
                (3, 3) => o.wscale = Some(opts[i + 2].min(14)),
                (4, 2) => o.sack = true,
                _ => {}
            }
        }
        o
    }

    fn encode(self) -> u32 {
        let mss = MSS_TABLE.iter().position(|&m| m == self.mss).unwrap_or(0) as u32;
        mss | (u32::from(self.sack) << 2) | (self.wscale.map_or(NO_WSCALE, u32::from) << 3)
    }

    fn decode(data: u32) -> Option<SynOptions> {
        if data >> 7 != 0 {
            return None;
        }
        let ws = data >> 3;
        Some(SynOptions {
            mss: MSS_TABLE[(data & 3) as usize],
            sack: data & 4 != 0,
            wscale: match ws {
                NO_WSCALE => None,
                0..=14 => Some(ws as u8),
                _ => return None,
            },
        })
    }

    /// The options as they go on a SYN or SYN-ACK: MSS, then SACK-permitted and window
    /// scale when present (NOP-padded to words). Returns the length (a multiple of 4).
    fn write(&self, mss: u16, wscale: Option<u8>, out: &mut [u8; 12]) -> usize {
        out[..4].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
        let mut n = 4;
        if self.sack {
            out[n..n + 4].copy_from_slice(&[1, 1, 4, 2]);
            n += 4;
        }
        if let Some(ws) = wscale {
            out[n..n + 4].copy_from_slice(&[1, 3, 3, ws]);
            n += 4;
        }
        n
    }
}

/// The process-wide cookie key: every worker checks every worker's cookies (a cookie ACK
/// may reach another worker than its SYN when steering changes between them).
fn cookie_key() -> &'static RandomState {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new)
}

/// Client address and port, VIP and port: the connection a cookie is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieTuple {
    pub client: u32,
    pub cport: u16,
    pub vip: u32,
    pub vport: u16,
}

impl CookieTuple {
    /// A keyed 32-bit hash of the tuple with `count` (24 bits) and `which` (8 bits): one
    /// SipHash-1-3 over two words.
    #[inline]
    fn hash(&self, count: u32, which: u32) -> u32 {
        let a = (u64::from(self.client) << 32) | u64::from(self.vip);
        let b = (u64::from(self.cport) << 48)
            | (u64::from(self.vport) << 32)
            | (u64::from(count & 0xFF_FFFF) << 8)
            | u64::from(which & 0xFF);
        let h = cookie_key().hash_one((a, b));
        (h ^ (h >> 32)) as u32
    }
}

#[inline]
fn counter(now_ns: u64) -> u32 {
    (now_ns / COOKIE_PERIOD_NS) as u32
}

/// The cookie (the SYN-ACK's ISN) for a client SYN with ISN `isn` offering `opts`, at `now_ns`.
pub fn make_cookie(t: &CookieTuple, isn: u32, opts: SynOptions, now_ns: u64) -> u32 {
    let count = counter(now_ns);
    let data = opts.encode();
    t.hash(0, 0)
        .wrapping_add(isn)
        .wrapping_add(count << 24)
        .wrapping_add((t.hash(count, 0x80 | data) & MAC_MASK) | data)
}

/// Checks `cookie` (the client's ACK number − 1) of a client whose ISN was `isn` (its
/// sequence number − 1): the options it carries, or why it is refused.
pub fn check_cookie(
    t: &CookieTuple,
    isn: u32,
    cookie: u32,
    now_ns: u64,
) -> Result<SynOptions, DropReason> {
    let count = counter(now_ns);
    let v = cookie.wrapping_sub(t.hash(0, 0)).wrapping_sub(isn);
    let age = count.wrapping_sub(v >> 24) & 0xFF;
    if age > COOKIE_MAX_AGE {
        return Err(DropReason::SynCookieStale);
    }
    let made = count.wrapping_sub(age);
    let data = v & DATA_MASK;
    if v & MAC_MASK != t.hash(made, 0x80 | data) & MAC_MASK {
        return Err(DropReason::SynCookieInvalid);
    }
    SynOptions::decode(data).ok_or(DropReason::SynCookieInvalid)
}

/// A real server's window (scaled by `rs_wscale`) in the scale the client was told
/// ([`OUR_WSCALE`]); rounded down, capped at the field's maximum.
#[inline]
pub fn rescale_window(win: u16, rs_wscale: u8) -> u16 {
    let bytes = u64::from(win) << rs_wscale.min(14);
    (bytes >> OUR_WSCALE).min(0xFFFF) as u16
}

/// One worker's SYN-proxy buffers (allocated by the rules switch once a service asks).
pub(crate) struct SynProxy {
    /// By hold slot: the session whose data it holds (`u32::MAX`: free), and its length.
    owner: Vec<u32>,
    len: Vec<u16>,
    data: Vec<u8>,
    /// Where frames are built.
    pub(super) scratch: Vec<u8>,
    /// What `process` puts in place of the received frame: length of `scratch` and its parse.
    pub(super) replace: Option<(usize, PacketV4)>,
}

impl SynProxy {
    pub(crate) fn new() -> Box<SynProxy> {
        Box::new(SynProxy {
            owner: vec![u32::MAX; HOLD_SLOTS],
            len: vec![0; HOLD_SLOTS],
            data: vec![0; HOLD_SLOTS * HOLD_BYTES],
            scratch: vec![0; SCRATCH_BYTES],
            replace: None,
        })
    }

    fn slot_of(&self, id: SessionId) -> Option<usize> {
        self.owner.iter().position(|&o| o == id)
    }

    /// Frees session `id`'s slot, if it has one.
    pub(crate) fn release(&mut self, id: SessionId) {
        if let Some(i) = self.slot_of(id) {
            self.owner[i] = u32::MAX;
        }
    }

    /// Holds `payload` for session `id`: false when every slot is taken (or it is too long).
    fn hold(&mut self, id: SessionId, payload: &[u8]) -> bool {
        let Some(i) = self.owner.iter().position(|&o| o == u32::MAX) else {
            return false;
        };
        if payload.len() > HOLD_BYTES {
            return false;
        }
        self.owner[i] = id;
        self.len[i] = payload.len() as u16;
        self.data[i * HOLD_BYTES..i * HOLD_BYTES + payload.len()].copy_from_slice(payload);
        true
    }
}

/// A TCP segment's fields, as `build` writes them.
pub(super) struct Segment<'a> {
    /// (source, destination).
    pub macs: ([u8; 6], [u8; 6]),
    pub src: (u32, u16),
    pub dst: (u32, u16),
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub opts: &'a [u8],
}

/// Writes an Ethernet/IPv4/TCP frame into `buf` around a payload already at its place
/// (`buf[ETH + IP + TCP + opts.len()..][..payload_len]`); checksums computed. Returns its
/// length.
pub(super) fn build(buf: &mut [u8], s: &Segment, payload_len: usize) -> usize {
    let hl = TCP + s.opts.len();
    let l4_len = hl + payload_len;
    let end = ETH + IP + l4_len;
    if let Ok(mut eth) = EthernetHeader::new_checked_mut(buf) {
        eth.set_macs(s.macs.0, s.macs.1);
        eth.set_ethertype(ETHERTYPE_IPV4);
    }
    let ip = &mut buf[ETH..ETH + IP];
    ip.fill(0);
    if let Ok(mut h) = Ipv4Header::new_mut(ip) {
        h.set_version_and_header_len(IP);
        h.set_total_len((IP + l4_len) as u16);
        h.set_flags_frag(DONT_FRAGMENT);
        h.set_ttl(64);
        h.set_proto(IPPROTO_TCP);
        h.set_src(s.src.0);
        h.set_dst(s.dst.0);
    }
    let c = checksum::checksum(ip, 0);
    if let Ok(mut h) = Ipv4Header::new_mut(ip) {
        h.set_checksum(c);
    }
    let t = &mut buf[ETH + IP..end];
    t[..TCP].fill(0);
    if let Ok(mut h) = TcpHeader::new_mut(t) {
        h.set_ports(s.src.1, s.dst.1);
        h.set_seq(s.seq);
        h.set_ack(s.ack);
        h.set_header_len(hl);
        h.set_flags(TcpFlags(s.flags));
        h.set_window(s.window);
    }
    t[TCP..hl].copy_from_slice(s.opts);
    let c = checksum::checksum(
        t,
        checksum::pseudo_header_sum(
            Ipv4Addr::from(s.src.0),
            Ipv4Addr::from(s.dst.0),
            IPPROTO_TCP,
            l4_len as u16,
        ),
    );
    if let Ok(mut h) = TcpHeader::new_mut(t) {
        h.set_checksum(c);
    }
    end
}

/// The parts of a TCP packet the SYN proxy reads.
struct TcpParts<'a> {
    seq: u32,
    ack: u32,
    window: u16,
    opts: &'a [u8],
    payload: &'a [u8],
}

fn tcp_parts<'a>(frame: &'a [u8], pkt: &PacketV4) -> Option<TcpParts<'a>> {
    let Transport::Tcp(t) = pkt.transport else {
        return None;
    };
    let (l4, end) = (pkt.ip.l4(), pkt.ip.end());
    let seg = frame.get(l4..end)?;
    let hl = usize::from(t.header_len);
    let h = TcpHeader::new_checked(seg).ok()?;
    Some(TcpParts {
        seq: h.seq(),
        ack: h.ack(),
        window: h.window(),
        opts: seg.get(TCP..hl)?,
        payload: seg.get(hl..)?,
    })
}

impl FullNat {
    /// True when `service` (an index in `services`) is SYN-proxied.
    #[inline]
    pub(super) fn synproxy_service(&self, service: usize) -> bool {
        self.sp.is_some()
            && self
                .services
                .get(service)
                .and_then(|s| self.slot_info.get(usize::from(s.slot)))
                .is_some_and(|i| i.synproxy)
    }

    /// A TCP packet of a SYN-proxied service that found no session: a SYN gets a cookie
    /// SYN-ACK, an ACK with a valid cookie opens the connection; anything else has no session.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn synproxy_new(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        service: usize,
        key: &Tuple,
        f: TcpFlags,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let t = CookieTuple {
            client: key.src_ip,
            cport: key.src_port,
            vip: key.dst_ip,
            vport: key.dst_port,
        };
        let TcpParts {
            seq,
            ack,
            window,
            opts,
            payload,
        } = tcp_parts(frame, pkt).ok_or(DropReason::Truncated)?;
        if f.syn() && !f.ack() {
            // Refused clients get no SYN-ACK either (the rate cap applies at the ACK).
            if let Some(acl) = self.services.get(service).and_then(|s| s.acl.as_ref()) {
                acl.check(key.src_ip).map_err(|r| match r {
                    crate::acl::Refusal::Denied => DropReason::ClientDenied,
                    crate::acl::Refusal::NotAllowed => DropReason::ClientNotAllowed,
                })?;
            }
            let offered = SynOptions::of_syn(opts);
            let cookie = make_cookie(&t, seq, offered, now);
            let peer = packet::ether::src_mac(frame).ok_or(DropReason::Truncated)?;
            let ours = self.egress.port_mac(rx_port).ok_or(DropReason::NotForUs)?;
            let mut o = [0u8; 12];
            let n = offered.write(OUR_MSS, offered.wscale.map(|_| OUR_WSCALE), &mut o);
            let sp = self.sp.as_mut().ok_or(DropReason::NoSession)?;
            let len = build(
                &mut sp.scratch,
                &Segment {
                    macs: (ours, peer),
                    src: (t.vip, t.vport),
                    dst: (t.client, t.cport),
                    seq: cookie,
                    ack: seq.wrapping_add(1),
                    flags: TcpFlags::SYN | TcpFlags::ACK,
                    window: 65535,
                    opts: &o[..n],
                },
                0,
            );
            let built = packet::parse(&sp.scratch[..len])?;
            sp.replace = Some((len, built));
            stats.syn_cookies_sent += 1;
            return Ok(Verdict::Transmit { port: rx_port });
        }
        if !f.ack() || f.syn() || f.rst() {
            return Err(DropReason::NoSession);
        }
        let isn = seq.wrapping_sub(1);
        let cookie = ack.wrapping_sub(1);
        let offered = check_cookie(&t, isn, cookie, now)?;
        stats.syn_cookies_valid += 1;
        let mut eth = [0u8; ETH];
        eth.copy_from_slice(frame.get(..ETH).ok_or(DropReason::Truncated)?);
        let payload_len = payload.len();
        let id = self.create(service, key, self.table.tag(key), true, now, stats)?;
        if self
            .adjust
            .get(id as usize)
            .is_none_or(|a| a.flags & ADJ_SP == 0)
        {
            // Scheduled to a real server that is not full-NAT: the worker cannot reconcile
            // the sequence numbers of that connection.
            self.end_session(id, stats);
            return Err(DropReason::NoRealServer);
        }
        let mut sp = self.sp.take().ok_or(DropReason::NoSession)?;
        if payload_len > 0 {
            let payload = tcp_parts(frame, pkt).ok_or(DropReason::Truncated)?.payload;
            if sp.hold(id, payload) {
                stats.synproxy_data_held += 1;
            } else {
                stats.synproxy_hold_full += 1;
            }
        }
        // The client's SYN as the cookie remembers it, through the one forward path.
        let client_win = window;
        let syn_win = offered.wscale.map_or(client_win, |ws| {
            (u32::from(client_win) << ws).min(0xFFFF) as u16
        });
        let mut o = [0u8; 12];
        let n = offered.write(offered.mss, offered.wscale, &mut o);
        let eth = EthernetHeader::new_checked(&eth)?;
        let macs = (eth.src_mac(), eth.dst_mac());
        let len = build(
            &mut sp.scratch,
            &Segment {
                macs,
                src: (t.client, t.cport),
                dst: (t.vip, t.vport),
                seq: isn,
                ack: 0,
                flags: TcpFlags::SYN,
                window: syn_win,
                opts: &o[..n],
            },
            0,
        );
        let verdict = match self.forward_as_client(&mut sp, len, id, now, stats) {
            Ok(v) => {
                if let Some(a) = self.adjust.get_mut(id as usize) {
                    a.flags |= ADJ_SP_WAIT;
                    a.out_delta = cookie;
                    a.in_delta = u32::from(client_win);
                    a.rs_wscale = u8::from(offered.wscale.is_some());
                }
                Ok(v)
            }
            Err(e) => {
                sp.release(id);
                Err(e)
            }
        };
        self.sp = Some(sp);
        verdict
    }

    /// A packet of a SYN-proxied session while its handshake with the real server is under
    /// way, or a SYN after it: `None` lets `forward` go on, `Some` is the outcome.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn synproxy_gate(
        &mut self,
        frame: &mut [u8],
        pkt: &PacketV4,
        id: SessionId,
        dir: Direction,
        f: TcpFlags,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Option<Result<Verdict, DropReason>> {
        let a = *self.adjust.get(id as usize)?;
        if a.flags & ADJ_SP_WAIT == 0 {
            // The real server's SYN-ACK again (the worker's ACK was lost: the client's next
            // segment completes it), or a client's SYN on a live connection.
            return f.syn().then_some(Err(DropReason::SynProxyHandshake));
        }
        if f.rst() {
            // Either side gives up: the RST goes through (shifted), the held data goes.
            if let Some(sp) = self.sp.as_mut() {
                sp.release(id);
            }
            return None;
        }
        let TcpParts {
            seq,
            ack,
            opts,
            payload,
            ..
        } = tcp_parts(frame, pkt)?;
        match dir {
            Direction::Output if f.syn() && f.ack() && ack == a.first_seq => {
                let rs_wscale = SynOptions::of_syn(opts).wscale;
                Some(self.synproxy_established(frame, id, seq, rs_wscale, now, stats))
            }
            Direction::Input
                if !payload.is_empty()
                    && seq == a.first_seq
                    && self.sp.as_ref()?.slot_of(id).is_none() =>
            {
                // The client's first data before the real server answered: it goes with
                // the handshake-completing ACK.
                let sp = self.sp.as_mut()?;
                Some(if sp.hold(id, payload) {
                    stats.synproxy_data_held += 1;
                    // Absorbed by design: its bytes leave later in a frame the worker builds.
                    stats.consumed += 1;
                    Ok(Verdict::Consumed)
                } else {
                    stats.synproxy_hold_full += 1;
                    Err(DropReason::SynProxyHandshake)
                })
            }
            _ => Some(Err(DropReason::SynProxyHandshake)),
        }
    }

    /// The real server's SYN-ACK (ISN `rs_isn`) of session `id`: the sequence offset is set,
    /// and the worker answers with the client's ACK (carrying the held data), which takes the
    /// one forward path (Proxy Protocol, TOA, shifts). The SYN-ACK itself goes nowhere.
    #[allow(clippy::too_many_arguments)]
    fn synproxy_established(
        &mut self,
        frame: &[u8],
        id: SessionId,
        rs_isn: u32,
        rs_wscale: Option<u8>,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let s = *self.table.get(id).ok_or(DropReason::NoSession)?;
        let a = self
            .adjust
            .get_mut(id as usize)
            .ok_or(DropReason::NoSession)?;
        let cookie = a.out_delta;
        let client_win = a.in_delta as u16;
        let client_scales = a.rs_wscale != 0;
        a.out_delta = cookie.wrapping_sub(rs_isn);
        a.in_delta = 0;
        a.flags &= !ADJ_SP_WAIT;
        a.rs_wscale = 0;
        if client_scales {
            // The real server scales as it said (0 if it did not); the client was told ours.
            let ws = rs_wscale.unwrap_or(0);
            if ws != OUR_WSCALE {
                a.flags |= ADJ_SP_WIN;
                a.rs_wscale = ws;
            }
        }
        let first_seq = a.first_seq;
        let mut sp = self.sp.take().ok_or(DropReason::NoSession)?;
        let at = ETH + IP + TCP;
        let mut payload_len = 0;
        if let Some(i) = sp.slot_of(id) {
            payload_len = usize::from(sp.len[i]);
            let (data, scratch) = (&sp.data, &mut sp.scratch);
            scratch[at..at + payload_len]
                .copy_from_slice(&data[i * HOLD_BYTES..i * HOLD_BYTES + payload_len]);
            sp.owner[i] = u32::MAX;
        }
        let eth = EthernetHeader::new_checked(frame)?;
        let macs = (eth.src_mac(), eth.dst_mac());
        let flags = if payload_len > 0 {
            TcpFlags::ACK | TcpFlags::PSH
        } else {
            TcpFlags::ACK
        };
        let len = build(
            &mut sp.scratch,
            &Segment {
                macs,
                src: (s.client_ip, s.client_port),
                dst: (s.vip, s.vport),
                seq: first_seq,
                ack: cookie.wrapping_add(1),
                flags,
                window: client_win,
                opts: &[],
            },
            payload_len,
        );
        let verdict = self.forward_as_client(&mut sp, len, id, now, stats);
        self.sp = Some(sp);
        verdict
    }

    /// The segment `build` wrote into the first `len` bytes of `sp.scratch` (the client's,
    /// as the SYN proxy stands in for it) through the one forward path toward session `id`'s
    /// real server; once it can leave, it replaces the frame being processed (`sp.replace`).
    fn forward_as_client(
        &mut self,
        sp: &mut SynProxy,
        len: usize,
        id: SessionId,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let pkt = packet::parse(&sp.scratch[..len])?;
        let flags = pkt.tcp_flags();
        let frame = &mut sp.scratch[..len];
        let v =
            self.forward_inner::<false>(frame, &pkt, id, Direction::Input, flags, now, stats)?;
        sp.replace = Some((len, pkt));
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple() -> CookieTuple {
        CookieTuple {
            client: 0xC612_000A,
            cport: 40000,
            vip: 0xC612_0101,
            vport: 80,
        }
    }

    #[test]
    fn cookie_round_trips_its_options_within_its_lifetime() {
        let t = tuple();
        let now = 1_000 * NS_PER_SEC;
        for opts in [
            SynOptions {
                mss: 1460,
                wscale: Some(7),
                sack: true,
            },
            SynOptions {
                mss: 536,
                wscale: None,
                sack: false,
            },
            SynOptions {
                mss: 1300,
                wscale: Some(14),
                sack: false,
            },
        ] {
            let c = make_cookie(&t, 0xFFFF_FFFF, opts, now);
            assert_eq!(check_cookie(&t, 0xFFFF_FFFF, c, now), Ok(opts));
            assert_eq!(
                check_cookie(&t, 0xFFFF_FFFF, c, now + COOKIE_PERIOD_NS),
                Ok(opts)
            );
            assert_eq!(
                check_cookie(&t, 0xFFFF_FFFF, c, now + 2 * COOKIE_PERIOD_NS),
                Err(DropReason::SynCookieStale)
            );
            // Another client port or ISN: refused.
            let other = CookieTuple { cport: 40001, ..t };
            assert!(check_cookie(&other, 0xFFFF_FFFF, c, now).is_err());
            assert!(check_cookie(&t, 5, c, now).is_err());
        }
    }

    #[test]
    fn options_are_read_and_rounded_down() {
        let o = SynOptions::of_syn(&[
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ]);
        assert_eq!(
            o,
            SynOptions {
                mss: 1460,
                wscale: Some(7),
                sack: true
            }
        );
        assert_eq!(SynOptions::of_syn(&[2, 4, 0x05, 0x20]).mss, 1300);
        assert_eq!(SynOptions::of_syn(&[2, 4, 0x05, 0x00]).mss, 536);
        assert_eq!(SynOptions::of_syn(&[2, 0, 1, 1]).mss, 536);
    }

    #[test]
    fn windows_rescale_to_the_announced_scale() {
        assert_eq!(rescale_window(1000, OUR_WSCALE), 1000);
        assert_eq!(rescale_window(1000, 9), 4000);
        assert_eq!(rescale_window(1000, 0), 7);
        assert_eq!(rescale_window(0xFFFF, 14), 0xFFFF);
    }
}
