//! VRRP advertisements on the wire (IPv4): version 2 (RFC 3768, keepalived's default, with
//! `auth_type PASS`) and version 3 (RFC 5798, centisecond intervals, checksum over the IPv4
//! pseudo-header). Decoding checks everything keepalived checks and names each refusal with
//! keepalived's counter name, so `fnatctl vrrp` reads like keepalived's statistics.

use std::net::Ipv4Addr;
use std::time::Duration;

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// The IPv4 multicast group adverts go to.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// Adverts are sent with TTL 255 and only accepted with it.
pub const TTL: u8 = 255;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V2,
    V3,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `auth_type PASS`: up to 8 bytes, zero padded (v2 only).
    Pass([u8; 8]),
}

impl Auth {
    /// keepalived's `auth_pass` (truncated to 8 bytes, as keepalived does).
    pub fn pass(text: &str) -> Auth {
        let mut b = [0u8; 8];
        for (d, s) in b.iter_mut().zip(text.as_bytes()) {
            *d = *s;
        }
        Auth::Pass(b)
    }
}

/// One advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// v2: whole seconds; v3: centiseconds (12 bits).
    pub interval: Duration,
    pub addresses: Vec<Ipv4Addr>,
}

/// Why a received advert was dropped, by keepalived's counter name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// `ip_ttl_err`: TTL not 255.
    IpTtl,
    /// `packet_len_err`: too short, or the address count does not fit.
    PacketLen,
    /// `invalid_type_rcvd`: type not ADVERTISEMENT, or a version not configured.
    InvalidType,
    /// `checksum_err` (fnat's name; keepalived logs it).
    Checksum,
    /// `advert_interval_err`: the interval differs from ours (v2 only, as keepalived).
    AdvertInterval,
    /// `invalid_authtype`: an authentication type keepalived does not know.
    InvalidAuthtype,
    /// `authtype_mismatch`: a type other than ours.
    AuthtypeMismatch,
    /// `auth_failure`: the password differs.
    AuthFailure,
    /// `addr_list_err`: the virtual addresses differ from ours.
    AddrList,
}

impl RxError {
    pub fn counter(self) -> &'static str {
        match self {
            RxError::IpTtl => "ip_ttl_err",
            RxError::PacketLen => "packet_len_err",
            RxError::InvalidType => "invalid_type_rcvd",
            RxError::Checksum => "checksum_err",
            RxError::AdvertInterval => "advert_interval_err",
            RxError::InvalidAuthtype => "invalid_authtype",
            RxError::AuthtypeMismatch => "authtype_mismatch",
            RxError::AuthFailure => "auth_failure",
            RxError::AddrList => "addr_list_err",
        }
    }
}

/// The one's-complement sum RFC 1071 uses, folded.
fn sum(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc + u32::from(PROTOCOL) + len as u32
}

/// The VRRP message (IP payload) of `advert`. `src`/`dst` are the IP addresses it will be
/// sent with (v3's checksum covers them).
pub fn encode(advert: &Advert, auth: &Auth, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let count = advert.addresses.len().min(255);
    let mut out = Vec::with_capacity(8 + 4 * count + 8);
    let version = match advert.version {
        Version::V2 => 2u8,
        Version::V3 => 3u8,
    };
    out.push(version << 4 | 1);
    out.push(advert.vrid);
    out.push(advert.priority);
    out.push(count as u8);
    match advert.version {
        Version::V2 => {
            out.push(match auth {
                Auth::None => 0,
                Auth::Pass(_) => 1,
            });
            out.push(advert.interval.as_secs().clamp(1, 255) as u8);
        }
        Version::V3 => {
            let cs = (advert.interval.as_millis() / 10).clamp(1, 0xfff) as u16;
            out.extend_from_slice(&cs.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0]);
    for a in &advert.addresses[..count] {
        out.extend_from_slice(&a.octets());
    }
    if advert.version == Version::V2 {
        match auth {
            Auth::None => out.extend_from_slice(&[0; 8]),
            Auth::Pass(p) => out.extend_from_slice(p),
        }
    }
    let acc = match advert.version {
        Version::V2 => sum(0, &out),
        Version::V3 => sum(pseudo(src, dst, out.len()), &out),
    };
    let c = fold(acc).to_be_bytes();
    out[6] = c[0];
    out[7] = c[1];
    out
}

/// What a received advert must agree with: this virtual router's configuration.
#[derive(Clone, Debug)]
pub struct Expect<'a> {
    pub version: Version,
    pub auth: &'a Auth,
    pub interval: Duration,
    pub addresses: &'a [Ipv4Addr],
}

/// The virtual router id of a VRRP message, to find its instance (None: too short).
pub fn vrid(payload: &[u8]) -> Option<u8> {
    payload.get(1).copied()
}

/// Checks and decodes one received VRRP message (the IP payload) against `expect`.
/// Priority-0 adverts skip the interval and address checks (RFC 5798 §7.1).
pub fn decode(
    payload: &[u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    expect: &Expect<'_>,
) -> Result<Advert, RxError> {
    if ttl != TTL {
        return Err(RxError::IpTtl);
    }
    if payload.len() < 8 {
        return Err(RxError::PacketLen);
    }
    let version = match payload[0] >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        _ => return Err(RxError::InvalidType),
    };
    if payload[0] & 0x0f != 1 || version != expect.version {
        return Err(RxError::InvalidType);
    }
    let count = usize::from(payload[3]);
    let need = 8 + 4 * count + if version == Version::V2 { 8 } else { 0 };
    if payload.len() < need {
        return Err(RxError::PacketLen);
    }
    let msg = &payload[..need];
    let ok = match version {
        Version::V2 => fold(sum(0, msg)) == 0,
        Version::V3 => fold(sum(pseudo(src, dst, msg.len()), msg)) == 0,
    };
    if !ok {
        return Err(RxError::Checksum);
    }
    let priority = payload[2];
    let interval = match version {
        Version::V2 => Duration::from_secs(u64::from(payload[5])),
        Version::V3 => {
            let cs = u16::from_be_bytes([payload[4], payload[5]]) & 0x0fff;
            Duration::from_millis(u64::from(cs) * 10)
        }
    };
    if version == Version::V2 {
        let auth_type = payload[4];
        if auth_type > 2 {
            return Err(RxError::InvalidAuthtype);
        }
        let ours = match expect.auth {
            Auth::None => 0,
            Auth::Pass(_) => 1,
        };
        if auth_type != ours {
            return Err(RxError::AuthtypeMismatch);
        }
        if let Auth::Pass(p) = expect.auth {
            if &msg[need - 8..] != p {
                return Err(RxError::AuthFailure);
            }
        }
        if priority != 0 && interval != expect.interval {
            return Err(RxError::AdvertInterval);
        }
    }
    let addresses: Vec<Ipv4Addr> = msg[8..8 + 4 * count]
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect();
    if priority != 0 {
        let mut a = addresses.clone();
        let mut b = expect.addresses.to_vec();
        a.sort();
        b.sort();
        if a != b {
            return Err(RxError::AddrList);
        }
    }
    Ok(Advert {
        version,
        vrid: payload[1],
        priority,
        interval,
        addresses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, PacketBuilder, SlicedPacket};

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

    fn v2() -> Advert {
        Advert {
            version: Version::V2,
            vrid: 51,
            priority: 100,
            interval: Duration::from_secs(5),
            addresses: vec![VIP],
        }
    }

    /// An independent RFC 1071 checksum: 16-bit words summed with end-around carry.
    fn rfc1071(words: &[u8]) -> u16 {
        let mut s: u64 = 0;
        for i in (0..words.len()).step_by(2) {
            let hi = u64::from(words[i]) << 8;
            let lo = words.get(i + 1).map_or(0, |b| u64::from(*b));
            s += hi | lo;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// The advert in a full IPv4 packet built by etherparse, as a raw socket would see it.
    fn wrap(payload: &[u8], ttl: u8) -> Vec<u8> {
        let b = PacketBuilder::ipv4(SRC.octets(), GROUP_V4.octets(), ttl);
        let mut out = Vec::new();
        b.write(&mut out, IpNumber(PROTOCOL), payload).unwrap();
        out
    }

    fn expect<'a>(auth: &'a Auth, version: Version, int: Duration) -> Expect<'a> {
        Expect {
            version,
            auth,
            interval: int,
            addresses: &[VIP],
        }
    }

    #[test]
    fn v2_pass_layout_is_rfc_3768() {
        let auth = Auth::pass("1111");
        let p = encode(&v2(), &auth, SRC, GROUP_V4);
        assert_eq!(p.len(), 8 + 4 + 8);
        assert_eq!(&p[..6], &[0x21, 51, 100, 1, 1, 5]);
        assert_eq!(&p[8..12], &VIP.octets());
        assert_eq!(&p[12..], b"1111\0\0\0\0");
        let mut zeroed = p.clone();
        zeroed[6] = 0;
        zeroed[7] = 0;
        assert_eq!(u16::from_be_bytes([p[6], p[7]]), rfc1071(&zeroed));
        // Through an IPv4 packet built by etherparse and sliced back.
        let pkt = wrap(&p, 255);
        let sliced = SlicedPacket::from_ip(&pkt).unwrap();
        let ip = match sliced.net.unwrap() {
            etherparse::NetSlice::Ipv4(v4) => v4,
            _ => panic!("not v4"),
        };
        let h = ip.header();
        let got = decode(
            ip.payload().payload,
            h.source_addr(),
            h.destination_addr(),
            h.ttl(),
            &expect(&auth, Version::V2, Duration::from_secs(5)),
        );
        assert_eq!(got, Ok(v2()));
    }

    #[test]
    fn v3_checksum_covers_the_pseudo_header() {
        let a = Advert {
            version: Version::V3,
            interval: Duration::from_millis(250),
            ..v2()
        };
        let p = encode(&a, &Auth::None, SRC, GROUP_V4);
        assert_eq!(p.len(), 12);
        assert_eq!(&p[..6], &[0x31, 51, 100, 1, 0, 25]);
        let mut ph = Vec::new();
        ph.extend_from_slice(&SRC.octets());
        ph.extend_from_slice(&GROUP_V4.octets());
        ph.extend_from_slice(&[0, PROTOCOL, 0, 12]);
        let mut zeroed = p.clone();
        zeroed[6] = 0;
        zeroed[7] = 0;
        ph.extend_from_slice(&zeroed);
        assert_eq!(u16::from_be_bytes([p[6], p[7]]), rfc1071(&ph));
        let e = expect(&Auth::None, Version::V3, Duration::from_secs(1));
        assert_eq!(decode(&p, SRC, GROUP_V4, 255, &e), Ok(a));
        // A different destination breaks a v3 checksum.
        assert_eq!(
            decode(&p, SRC, Ipv4Addr::new(198, 18, 0, 3), 255, &e),
            Err(RxError::Checksum)
        );
    }

    #[test]
    fn each_refusal_counts_under_keepalived_name() {
        let auth = Auth::pass("1111");
        let good = encode(&v2(), &auth, SRC, GROUP_V4);
        let e = expect(&auth, Version::V2, Duration::from_secs(5));
        let d = |p: &[u8], ttl| decode(p, SRC, GROUP_V4, ttl, &e).map_err(RxError::counter);
        assert_eq!(d(&good, 254), Err("ip_ttl_err"));
        assert_eq!(d(&good[..10], 255), Err("packet_len_err"));
        let mut bad = good.clone();
        bad[12] = b'2';
        assert_eq!(d(&bad, 255), Err("checksum_err"));
        let other = |a: &Advert, auth: &Auth| encode(a, auth, SRC, GROUP_V4);
        assert_eq!(
            d(&other(&v2(), &Auth::pass("2222")), 255),
            Err("auth_failure")
        );
        assert_eq!(d(&other(&v2(), &Auth::None), 255), Err("authtype_mismatch"));
        let slow = Advert {
            interval: Duration::from_secs(1),
            ..v2()
        };
        assert_eq!(d(&other(&slow, &auth), 255), Err("advert_interval_err"));
        let more = Advert {
            addresses: vec![VIP, SRC],
            ..v2()
        };
        assert_eq!(d(&other(&more, &auth), 255), Err("addr_list_err"));
        let v3 = Advert {
            version: Version::V3,
            ..v2()
        };
        assert_eq!(d(&other(&v3, &auth), 255), Err("invalid_type_rcvd"));
        // Priority 0 skips the interval and address checks.
        let stop = Advert {
            priority: 0,
            interval: Duration::from_secs(1),
            addresses: vec![],
            ..v2()
        };
        assert_eq!(d(&other(&stop, &auth), 255).map(|a| a.priority), Ok(0));
    }

    #[test]
    fn no_input_panics() {
        let auth = Auth::pass("x");
        let e = expect(&auth, Version::V2, Duration::from_secs(1));
        let mut x: u32 = 1;
        for len in 0..64usize {
            for _ in 0..200 {
                let p: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (x >> 16) as u8
                    })
                    .collect();
                let _ = decode(&p, SRC, GROUP_V4, 255, &e);
                let _ = vrid(&p);
            }
        }
    }
}
