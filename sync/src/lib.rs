//! Session sync wire format: the Linux kernel's IPVS sync protocol, version 1, as
//! `net/netfilter/ipvs/ip_vs_sync.c` sends and reads it, plus fnat's full-NAT extension.
//!
//! A message is one UDP datagram (224.0.0.81:8848 by default):
//!
//! ```text
//! header (8 bytes)   reserved=0 | syncid | size (be16, whole message) | nr_conns | version=1 | spare=0 (be16)
//! IPv4 conn (36 B)   type=0 | protocol | ver_size (be16: version 0 in the top 4 bits, entry
//!                    size with options in the low 12) | flags (be32) | state (be16) | cport |
//!                    vport | dport | fwmark (be32) | timeout (be32, seconds) | caddr | vaddr | daddr
//! options            type | length | data ..., the entry padded to 4 bytes
//! ```
//!
//! NAT, DR and TUN sessions and persistence templates travel exactly as the kernel sends
//! them, so a kernel backup installs them. A full-NAT session travels as a NAT-looking entry
//! (the kernel's forwarding method MASQ) carrying one extra option, [`OPT_FULLNAT`]: the local
//! address and port and the sequence offsets. Its type has the `IPVS_OPT_F_PARAM` bit (0x40)
//! set: the kernel's `ip_vs_proc_sync_conn()` skips an unknown option with that bit (it
//! rejects only unknown options without it, "Unknown mandatory param"), so a kernel backup
//! keeps the entry as the NAT connection client → VIP → RS it also is.
//!
//! fnat's control message, the full-resync request, is a header with `spare` =
//! [`SPARE_FNAT`] and no connections: `ip_vs_process_message()` takes a message whose spare
//! is not 0 for a version-0 one, whose first byte (our `reserved`, 0) is its connection
//! count, so a kernel backup or master processes nothing from it.
//!
//! Decoding never panics and never trusts a length: every field is read through bounds checks.

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

/// The kernel's default group and port (`IP_VS_SYNC_GROUP`, `IP_VS_SYNC_PORT`) and TTL.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const DEFAULT_PORT: u16 = 8848;
pub const DEFAULT_TTL: u8 = 1;
/// `SYNC_PROTO_VER`.
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// `sizeof(struct ip_vs_sync_v4)`.
pub const CONN_V4_LEN: usize = 36;
/// IPv4 + UDP headers: the kernel's default maxlen is the MTU (1500 for a master) minus these.
pub const IP_UDP_HEADERS: usize = 28;
/// Largest message (the size field is 16 bits; the kernel caps maxlen at 65535 - headers).
pub const MAX_MESSAGE: usize = 65535 - IP_UDP_HEADERS;
/// The kernel's default maxlen for a master: MTU 1500 minus IPv4 and UDP headers.
pub const DEFAULT_MAXLEN: usize = 1500 - IP_UDP_HEADERS;

/// `IP_VS_CONN_F_*` forwarding methods (the low 3 bits of flags).
pub const F_MASQ: u32 = 0;
pub const F_LOCALNODE: u32 = 1;
pub const F_TUNNEL: u32 = 2;
pub const F_DROUTE: u32 = 3;
pub const F_BYPASS: u32 = 4;
pub const F_FWD_MASK: u32 = 7;
/// `IP_VS_CONN_F_NOOUTPUT`: the kernel sets it on DR/TUN conns (no replies through us).
pub const F_NOOUTPUT: u32 = 0x0080;
/// `IP_VS_CONN_F_TEMPLATE`: a persistence template.
pub const F_TEMPLATE: u32 = 0x1000;
/// `IP_VS_CONN_F_INACTIVE`.
pub const F_INACTIVE: u32 = 0x0100;
/// `IP_VS_CONN_F_NO_CPORT`: a template without client port.
pub const F_NO_CPORT: u32 = 0x0800;

/// Option types (`IPVS_OPT_*`) and the "skip me if unknown" bit (`IPVS_OPT_F_PARAM`).
pub const OPT_SEQ_DATA: u8 = 1;
pub const OPT_PE_DATA: u8 = 2;
pub const OPT_PE_NAME: u8 = 3;
pub const OPT_F_PARAM: u8 = 1 << (7 - 1);
/// fnat's full-NAT option: `OPT_F_PARAM | 0x10` (a type the kernel does not define).
pub const OPT_FULLNAT: u8 = OPT_F_PARAM | 0x10;
/// Length of [`OPT_FULLNAT`]'s data: lip (4), lport (2), flags (2), first_seq (4),
/// in_delta (4), out_delta (4), the real server's window scale (1), pad (3).
pub const FULLNAT_LEN: usize = 24;
/// `spare` of fnat's control messages (ASCII "FN").
pub const SPARE_FNAT: u16 = 0x464E;
/// The control message kinds (first body byte of an fnat control message).
pub const CTRL_RESYNC_REQUEST: u8 = 1;

/// Protocol numbers the kernel's backup accepts (TCP, UDP, SCTP).
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;
/// Kernel TCP states 0..=10 (`IP_VS_TCP_S_NONE` .. `IP_VS_TCP_S_SYNACK`); UDP has state 0.
pub const TCP_STATES: u16 = 11;

/// The full-NAT half of a session the kernel does not have: the local address and port the
/// real server sees, and the sequence offsets of Proxy Protocol / TOA / SYN proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullNat {
    pub lip: Ipv4Addr,
    pub lport: u16,
    /// fnat's sequence-adjust flags (engine `ADJ_*` bits), opaque to the codec.
    pub adjust_flags: u16,
    pub first_seq: u32,
    pub in_delta: u32,
    pub out_delta: u32,
    /// SYN proxy: the real server's window scale (windows toward the client are rescaled).
    pub rs_wscale: u8,
}

/// One synced connection (or persistence template), as the kernel's IPv4 entry says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    pub protocol: u8,
    /// `IP_VS_CONN_F_*` bits (forwarding method in the low 3 bits).
    pub flags: u32,
    /// Kernel state number (TCP 0..=10, UDP 0).
    pub state: u16,
    pub client: SocketAddrV4,
    pub vip: SocketAddrV4,
    /// The real server (the kernel's `daddr:dport`).
    pub dest: SocketAddrV4,
    pub fwmark: u32,
    /// Remaining time on the master, seconds.
    pub timeout_s: u32,
    pub fullnat: Option<FullNat>,
}

impl Conn {
    /// Bytes this entry takes on the wire, without the padding to 4.
    pub fn wire_len(&self) -> usize {
        CONN_V4_LEN + self.fullnat.map_or(0, |_| 2 + FULLNAT_LEN)
    }

    pub fn is_template(&self) -> bool {
        self.flags & F_TEMPLATE != 0
    }
}

#[inline]
fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// Packs connections into messages of at most `maxlen` bytes.
pub struct Encoder {
    syncid: u8,
    maxlen: usize,
    buf: Vec<u8>,
    conns: u8,
}

impl Encoder {
    /// `maxlen` is clamped to [HEADER_LEN + one full-NAT entry, MAX_MESSAGE].
    pub fn new(syncid: u8, maxlen: usize) -> Encoder {
        let maxlen = maxlen.clamp(
            HEADER_LEN + pad4(CONN_V4_LEN + 2 + FULLNAT_LEN),
            MAX_MESSAGE,
        );
        let mut e = Encoder {
            syncid,
            maxlen,
            buf: Vec::with_capacity(maxlen),
            conns: 0,
        };
        e.clear();
        e
    }

    pub fn maxlen(&self) -> usize {
        self.maxlen
    }

    /// Starts a new, empty message.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf
            .extend_from_slice(&[0, self.syncid, 0, HEADER_LEN as u8, 0, VERSION, 0, 0]);
        self.conns = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.conns == 0
    }

    pub fn len(&self) -> usize {
        self.conns as usize
    }

    /// Appends `c`; false (nothing written) when the message has no room for it (or holds
    /// 255 entries, the count's limit): send [`Encoder::message`], [`Encoder::clear`], retry.
    pub fn push(&mut self, c: &Conn) -> bool {
        let len = c.wire_len();
        if self.conns == u8::MAX || self.buf.len() + pad4(len) > self.maxlen {
            return false;
        }
        let b = &mut self.buf;
        b.push(0); // type: IPv4
        b.push(c.protocol);
        b.extend_from_slice(&(len as u16 & 0x0fff).to_be_bytes()); // version 0 | size
        b.extend_from_slice(&c.flags.to_be_bytes());
        b.extend_from_slice(&c.state.to_be_bytes());
        b.extend_from_slice(&c.client.port().to_be_bytes());
        b.extend_from_slice(&c.vip.port().to_be_bytes());
        b.extend_from_slice(&c.dest.port().to_be_bytes());
        b.extend_from_slice(&c.fwmark.to_be_bytes());
        b.extend_from_slice(&c.timeout_s.to_be_bytes());
        b.extend_from_slice(&c.client.ip().octets());
        b.extend_from_slice(&c.vip.ip().octets());
        b.extend_from_slice(&c.dest.ip().octets());
        if let Some(f) = c.fullnat {
            b.push(OPT_FULLNAT);
            b.push(FULLNAT_LEN as u8);
            b.extend_from_slice(&f.lip.octets());
            b.extend_from_slice(&f.lport.to_be_bytes());
            b.extend_from_slice(&f.adjust_flags.to_be_bytes());
            b.extend_from_slice(&f.first_seq.to_be_bytes());
            b.extend_from_slice(&f.in_delta.to_be_bytes());
            b.extend_from_slice(&f.out_delta.to_be_bytes());
            b.extend_from_slice(&[f.rs_wscale, 0, 0, 0]);
        }
        b.resize(b.len() + pad4(len) - len, 0);
        self.conns += 1;
        let size = (b.len() as u16).to_be_bytes();
        b[2] = size[0];
        b[3] = size[1];
        b[4] = self.conns;
        true
    }

    /// The message so far (header with its count and size filled in).
    pub fn message(&self) -> &[u8] {
        &self.buf
    }
}

/// fnat's full-resync request from a backup with `syncid`.
pub fn resync_request(syncid: u8) -> [u8; 12] {
    let s = SPARE_FNAT.to_be_bytes();
    [
        0,
        syncid,
        0,
        12,
        0,
        VERSION,
        s[0],
        s[1],
        CTRL_RESYNC_REQUEST,
        0,
        0,
        0,
    ]
}

/// Why a whole message was dropped (as the kernel drops the buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageError {
    /// Shorter than a header.
    Short,
    /// The size field is not the datagram's length.
    BadSize,
    /// Not a version-1 message (a version-0 one, or another version).
    BadVersion,
    /// An entry runs past the end, has a size below 36 or a non-zero entry version.
    BadEntry,
    /// An entry's options are malformed (zero length, past the entry's end).
    BadOption,
    /// An fnat control message of an unknown kind.
    BadControl,
}

impl MessageError {
    pub fn name(self) -> &'static str {
        match self {
            MessageError::Short => "short",
            MessageError::BadSize => "bad_size",
            MessageError::BadVersion => "bad_version",
            MessageError::BadEntry => "bad_entry",
            MessageError::BadOption => "bad_option",
            MessageError::BadControl => "bad_control",
        }
    }
}

/// Why one entry was skipped (the others of the message still count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnReject {
    /// IPv6 entry (fnat's dataplane is IPv4).
    Ipv6,
    /// An unknown option without `IPVS_OPT_F_PARAM` (the kernel's "mandatory param").
    MandatoryOption,
    /// Not TCP, UDP or SCTP.
    Protocol,
    /// A state the protocol does not have.
    State,
    /// A second option of the same kind, or an option of the wrong length.
    DuplicateOption,
}

impl ConnReject {
    pub fn name(self) -> &'static str {
        match self {
            ConnReject::Ipv6 => "ipv6",
            ConnReject::MandatoryOption => "mandatory_option",
            ConnReject::Protocol => "protocol",
            ConnReject::State => "state",
            ConnReject::DuplicateOption => "duplicate_option",
        }
    }
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Conns {
        syncid: u8,
        conns: Vec<Result<Conn, ConnReject>>,
    },
    /// A backup asks the master for its whole table.
    ResyncRequest { syncid: u8 },
}

impl Message {
    pub fn syncid(&self) -> u8 {
        match self {
            Message::Conns { syncid, .. } | Message::ResyncRequest { syncid } => *syncid,
        }
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

#[inline]
fn v4(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    be32(b, at).map(Ipv4Addr::from)
}

/// Decodes one datagram.
pub fn decode(buf: &[u8]) -> Result<Message, MessageError> {
    if buf.len() < HEADER_LEN {
        return Err(MessageError::Short);
    }
    let size = be16(buf, 2).ok_or(MessageError::Short)? as usize;
    if size != buf.len() {
        return Err(MessageError::BadSize);
    }
    let (reserved, syncid, nr_conns, version) = (buf[0], buf[1], buf[4], buf[5]);
    let spare = be16(buf, 6).ok_or(MessageError::Short)?;
    if reserved != 0 || version != VERSION {
        return Err(MessageError::BadVersion);
    }
    if spare == SPARE_FNAT && nr_conns == 0 {
        return match buf.get(HEADER_LEN) {
            Some(&CTRL_RESYNC_REQUEST) => Ok(Message::ResyncRequest { syncid }),
            _ => Err(MessageError::BadControl),
        };
    }
    if spare != 0 {
        return Err(MessageError::BadVersion);
    }
    let mut conns = Vec::with_capacity(nr_conns as usize);
    let mut at = HEADER_LEN;
    for _ in 0..nr_conns {
        if at + CONN_V4_LEN > buf.len() {
            return Err(MessageError::BadEntry);
        }
        let ver_size = be16(buf, at + 2).ok_or(MessageError::BadEntry)?;
        let len = (ver_size & 0x0fff) as usize;
        if ver_size >> 12 != 0 || len < CONN_V4_LEN || at + len > buf.len() {
            return Err(MessageError::BadEntry);
        }
        conns.push(decode_conn(&buf[at..at + len])?);
        at += pad4(len);
    }
    Ok(Message::Conns { syncid, conns })
}

/// One entry of `len` bytes (checked ≥ 36). Err: the message is malformed; Ok(Err): this
/// entry is skipped.
fn decode_conn(e: &[u8]) -> Result<Result<Conn, ConnReject>, MessageError> {
    let bad = MessageError::BadEntry;
    if e[0] & 1 != 0 {
        return Ok(Err(ConnReject::Ipv6));
    }
    if e[0] != 0 {
        return Err(bad);
    }
    let mut fullnat = None;
    let mut reject = None;
    let mut seen_seq = false;
    let mut p = CONN_V4_LEN;
    while p < e.len() {
        let (Some(&ptype), Some(&plen)) = (e.get(p), e.get(p + 1)) else {
            return Err(MessageError::BadOption);
        };
        let plen = plen as usize;
        let data = p + 2;
        if plen == 0 || data + plen > e.len() {
            return Err(MessageError::BadOption);
        }
        let d = &e[data..data + plen];
        match ptype {
            OPT_FULLNAT => {
                if fullnat.is_some() || plen != FULLNAT_LEN {
                    reject.get_or_insert(ConnReject::DuplicateOption);
                } else {
                    fullnat = Some(FullNat {
                        lip: v4(d, 0).ok_or(bad)?,
                        lport: be16(d, 4).ok_or(bad)?,
                        adjust_flags: be16(d, 6).ok_or(bad)?,
                        first_seq: be32(d, 8).ok_or(bad)?,
                        in_delta: be32(d, 12).ok_or(bad)?,
                        out_delta: be32(d, 16).ok_or(bad)?,
                        rs_wscale: d[20],
                    });
                }
            }
            t => match t & !OPT_F_PARAM {
                // The kernel's sequence data (NAT with ftp helpers) and persistence-engine
                // data: understood by the kernel, not needed by fnat; checked as it does.
                OPT_SEQ_DATA => {
                    if seen_seq || plen != 24 {
                        reject.get_or_insert(ConnReject::DuplicateOption);
                    }
                    seen_seq = true;
                }
                OPT_PE_DATA | OPT_PE_NAME => {}
                _ if t & OPT_F_PARAM != 0 => {}
                _ => {
                    reject.get_or_insert(ConnReject::MandatoryOption);
                }
            },
        }
        p = data + plen;
    }
    if let Some(r) = reject {
        return Ok(Err(r));
    }
    let protocol = e[1];
    let flags = be32(e, 4).ok_or(bad)?;
    let state = be16(e, 8).ok_or(bad)?;
    if flags & F_TEMPLATE == 0 {
        let states = match protocol {
            IPPROTO_TCP => TCP_STATES,
            IPPROTO_UDP => 1,
            IPPROTO_SCTP => 11,
            _ => return Ok(Err(ConnReject::Protocol)),
        };
        if state >= states {
            return Ok(Err(ConnReject::State));
        }
    }
    let port = |at| be16(e, at).ok_or(bad);
    let addr = |at| v4(e, at).ok_or(bad);
    Ok(Ok(Conn {
        protocol,
        flags,
        state,
        client: SocketAddrV4::new(addr(24)?, port(10)?),
        vip: SocketAddrV4::new(addr(28)?, port(12)?),
        dest: SocketAddrV4::new(addr(32)?, port(14)?),
        fwmark: be32(e, 16).ok_or(bad)?,
        timeout_s: be32(e, 20).ok_or(bad)?,
        fullnat,
    }))
}

/// The kernel's sync settings (sysctls `sync_threshold`, `sync_period`,
/// `sync_refresh_period`) and its rule for when a connection is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRules {
    pub threshold: u32,
    pub period: u32,
    /// Seconds; 0: off (the kernel's default).
    pub refresh_period_s: u32,
    /// Active peers (each director a master and a backup at once, the routers spreading
    /// clients over them; the kernel has no such mode). fnat then sends a connection also
    /// when the real server's first reply passes, before the client's ACK establishes it,
    /// so that a peer the routers move it to in its handshake can forward it (otherwise the
    /// first sync waits for the threshold); and a director's client packet that finds no
    /// session is looked for once on the worker a peer's session would be installed on.
    pub active_peers: bool,
}

impl Default for SyncRules {
    fn default() -> Self {
        SyncRules {
            threshold: 3,
            period: 50,
            refresh_period_s: 0,
            active_peers: false,
        }
    }
}

/// TCP states the kernel syncs in (ESTABLISHED, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT).
pub fn tcp_state_synced(state: u16) -> bool {
    matches!(state, 1 | 4 | 5 | 6 | 7)
}

impl SyncRules {
    /// Whether a packet that brought the connection's incoming packet count to `pkts`
    /// (state `state` after it, `old` before; TCP if `tcp`) sends a sync entry, as
    /// `ip_vs_sync_conn_needed()` decides (without `sync_refresh_period`'s gate, which needs
    /// the connection's expiry at its last sync: see [`SyncRules::refresh_allows`]).
    #[inline]
    pub fn needed(&self, tcp: bool, old: u16, state: u16, pkts: u32) -> bool {
        if tcp {
            if !tcp_state_synced(state) {
                return false;
            }
            if state != old && state != 1 {
                return true;
            }
        }
        if self.period > 0 {
            pkts % self.period == self.threshold
        } else {
            // sync_period 0: only the threshold packet, unless sync_refresh_period is on
            // (then any packet, as the refresh gate allows).
            self.refresh_period_s > 0 || pkts == self.threshold
        }
    }

    /// `sync_refresh_period`'s gate, as `ip_vs_sync_conn_needed()`: a sync that no state
    /// change forces is held back while the connection's expiry moved less than
    /// min(refresh period, max(timeout / 2, 10 s)) since its last sync. `moved_s`: the
    /// expiry now minus the expiry at the last sync (either sign); `timeout_s`: the
    /// connection's timeout now. Always true when the refresh period is 0 (off).
    #[inline]
    pub fn refresh_allows(&self, moved_s: i64, timeout_s: u64) -> bool {
        if self.refresh_period_s == 0 {
            return true;
        }
        let window = u64::from(self.refresh_period_s).min((timeout_s / 2).max(10));
        moved_s.unsigned_abs() >= window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(fnat: bool) -> Conn {
        Conn {
            protocol: IPPROTO_TCP,
            flags: if fnat { F_MASQ } else { F_DROUTE },
            state: 1,
            client: "198.18.0.1:40000".parse().unwrap(),
            vip: "198.18.0.100:80".parse().unwrap(),
            dest: "198.19.1.1:8080".parse().unwrap(),
            fwmark: 0,
            timeout_s: 900,
            fullnat: fnat.then_some(FullNat {
                lip: Ipv4Addr::new(198, 19, 0, 1),
                lport: 1025,
                adjust_flags: 3,
                first_seq: 7,
                in_delta: 20,
                out_delta: 0,
                rs_wscale: 0,
            }),
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let mut e = Encoder::new(9, DEFAULT_MAXLEN);
        assert!(e.push(&conn(false)));
        assert!(e.push(&conn(true)));
        let m = e.message();
        assert_eq!(m.len(), 8 + 36 + 64);
        assert_eq!(&m[..8], &[0, 9, 0, 108, 2, 1, 0, 0]);
        // The full-NAT entry: size 62, padded to 64, option type 0x50 (F_PARAM set).
        assert_eq!(&m[44 + 2..44 + 4], &62u16.to_be_bytes());
        assert_eq!(m[44 + 36], 0x50);
        assert_eq!(m[44 + 36] & OPT_F_PARAM, OPT_F_PARAM);
        let d = decode(m).unwrap();
        assert_eq!(
            d,
            Message::Conns {
                syncid: 9,
                conns: vec![Ok(conn(false)), Ok(conn(true))]
            }
        );
    }

    #[test]
    fn maxlen_splits_messages() {
        let mut e = Encoder::new(0, 100);
        assert_eq!(e.maxlen(), 100);
        assert!(e.push(&conn(false)));
        assert!(e.push(&conn(false)));
        assert!(!e.push(&conn(false)), "8 + 3 * 36 > 100");
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn resync_request_is_a_v0_message_with_no_conns_for_the_kernel() {
        let r = resync_request(5);
        // The kernel's v1 test needs spare == 0; otherwise v0, whose count is byte 0.
        assert_ne!(u16::from_be_bytes([r[6], r[7]]), 0);
        assert_eq!(r[0], 0);
        assert_eq!(decode(&r), Ok(Message::ResyncRequest { syncid: 5 }));
    }

    #[test]
    fn mandatory_unknown_option_rejects_the_entry_only() {
        let mut e = Encoder::new(0, DEFAULT_MAXLEN);
        e.push(&conn(true));
        e.push(&conn(false));
        let mut m = e.message().to_vec();
        m[8 + 36] = 0x10; // the F_PARAM bit cleared: mandatory, unknown
        match decode(&m).unwrap() {
            Message::Conns { conns, .. } => {
                assert_eq!(conns[0], Err(ConnReject::MandatoryOption));
                assert_eq!(conns[1], Ok(conn(false)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kernel_rules() {
        let r = SyncRules::default();
        // ESTABLISHED reached: sent at once (the transition to it rides the threshold rule).
        assert!(r.needed(true, 3, 4, 10), "FIN_WAIT change");
        assert!(!r.needed(true, 0, 3, 3), "SYN_RECV is not synced");
        assert!(r.needed(true, 1, 1, 3));
        assert!(r.needed(true, 1, 1, 53));
        assert!(!r.needed(true, 1, 1, 4));
        assert!(r.needed(false, 0, 0, 3));
    }

    #[test]
    fn refresh_period_rules() {
        let off = SyncRules::default();
        assert!(off.refresh_allows(0, 900), "off: never held back");
        // sync_period 0 with a refresh period: any packet, as the gate allows.
        let r = SyncRules {
            threshold: 3,
            period: 0,
            refresh_period_s: 30,
            active_peers: false,
        };
        assert!(r.needed(true, 1, 1, 4));
        assert!(r.needed(false, 0, 0, 1000));
        assert!(!SyncRules {
            refresh_period_s: 0,
            ..r
        }
        .needed(true, 1, 1, 4));
        // ESTABLISHED (900 s): held back until its expiry moved 30 s.
        assert!(!r.refresh_allows(29, 900));
        assert!(r.refresh_allows(30, 900));
        assert!(
            r.refresh_allows(-30, 900),
            "a shorter timeout moves it back"
        );
        // A short timeout caps the window at max(timeout / 2, 10 s).
        assert!(r.refresh_allows(10, 20));
        assert!(!r.refresh_allows(9, 20));
    }
}
