//! One probe of each checker kind, through the host kernel's sockets (from the namespace
//! fnatd runs in, or its ports' kernel twins). Each probe is bounded by `connect_timeout`
//! (`misc_timeout`, else `delay_loop`, for MISC_CHECK) and never panics; a failure carries a
//! short reason for `fnatctl health` and keepalived's log line.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fnat_keepalived::lvs::{Checker, CheckerKind, Url};
use md5::{Digest, Md5};
use socket2::{Domain, Protocol, Socket, Type};

use crate::machine::{endpoint, target, Outcome};

/// Most bytes of an HTTP answer read (status line, headers and body).
const MAX_HTTP_BYTES: usize = 1 << 20;

fn down(reason: impl Into<String>, log: impl Into<String>) -> Outcome {
    Outcome::Down {
        reason: reason.into(),
        log: log.into(),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "connect timeout".into(),
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset => "connection reset".into(),
        ErrorKind::NetworkUnreachable => "network unreachable".into(),
        ErrorKind::HostUnreachable => "host unreachable".into(),
        _ => e.to_string(),
    }
}

/// Probes `checker` of the real server at `real` once.
pub fn probe(real: SocketAddrV4, checker: &Checker) -> Outcome {
    let to = target(real, checker);
    let timeout = checker.timing.connect_timeout.max(Duration::from_millis(1));
    match &checker.kind {
        CheckerKind::Tcp => match connect(to, checker, timeout) {
            Ok(_) => Outcome::up(),
            Err(e) => down(
                io_reason(&e),
                format!("TCP connection to {} failed.", endpoint(to, "tcp")),
            ),
        },
        CheckerKind::Http {
            tls,
            urls,
            http_protocol,
            virtualhost,
        } => {
            for url in urls {
                let r = http(
                    to,
                    checker,
                    timeout,
                    *tls,
                    url,
                    http_protocol.as_deref(),
                    virtualhost.as_deref(),
                );
                if r != Outcome::up() {
                    return r;
                }
            }
            Outcome::up()
        }
        CheckerKind::Misc {
            path,
            timeout: misc_timeout,
            dynamic,
        } => misc(
            path,
            misc_timeout.unwrap_or(checker.timing.delay_loop),
            *dynamic,
        ),
        CheckerKind::Udp {
            payload,
            require_reply,
        } => udp(
            to,
            checker,
            timeout,
            payload.as_deref(),
            require_reply.as_deref(),
        ),
        CheckerKind::Dns { query_type, name } => dns(to, checker, timeout, query_type, name),
        CheckerKind::Ping => ping(*to.ip(), timeout),
        CheckerKind::Smtp { helo_name } => smtp(to, checker, timeout, helo_name.as_deref()),
        CheckerKind::Other(k) => down(
            format!("{k} is not run by fnat"),
            format!("{k} on {} is not run by fnat", endpoint(to, "tcp")),
        ),
    }
}

fn bound_socket(ty: Type, proto: Protocol, checker: &Checker) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, ty, Some(proto))?;
    if checker.bindto.is_some() || checker.bind_port.is_some() {
        let ip = match checker.bindto {
            Some(IpAddr::V4(v4)) => v4,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        s.bind(&SocketAddr::V4(SocketAddrV4::new(ip, checker.bind_port.unwrap_or(0))).into())?;
    }
    Ok(s)
}

fn connect(to: SocketAddrV4, checker: &Checker, timeout: Duration) -> std::io::Result<TcpStream> {
    let s = bound_socket(Type::STREAM, Protocol::TCP, checker)?;
    s.connect_timeout(&SocketAddr::V4(to).into(), timeout)?;
    let stream: TcpStream = s.into();
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// What a deadline leaves, at least a millisecond (a zero timeout means none to std).
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// One read with what is left of `deadline` as its timeout (`set` applies it), again when a
/// signal interrupts it: the kernel never restarts a socket read that has a timeout
/// (signal(7)), and a signal to fnatd may land on a checker thread. Past the deadline an
/// interrupted read is a timeout.
fn read_until(
    deadline: Instant,
    set: impl Fn(Duration),
    mut read: impl FnMut() -> std::io::Result<usize>,
) -> std::io::Result<usize> {
    loop {
        set(left(deadline));
        match read() {
            Err(e) if e.kind() == ErrorKind::Interrupted => {
                if Instant::now() >= deadline {
                    return Err(ErrorKind::TimedOut.into());
                }
            }
            r => return r,
        }
    }
}

/// Reads until EOF, the deadline or `MAX_HTTP_BYTES`.
fn read_all(
    r: &mut impl Read,
    deadline: Instant,
    set: impl Fn(Duration),
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if Instant::now() >= deadline {
            return Err("read timeout".into());
        }
        match read_until(deadline, &set, || r.read(&mut buf)) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() >= MAX_HTTP_BYTES {
                    return Ok(out);
                }
            }
            // A TLS peer that closes without close_notify: what was read is the answer.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(out),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("read timeout".into())
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Status code and body of an HTTP/1.x answer (a chunked body de-chunked).
pub fn parse_http(answer: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?;
    let mut parts = status.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = &answer[end + 4..];
    if !chunked {
        return Some((code, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some((code, out));
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

pub fn md5_hex(body: &[u8]) -> String {
    Md5::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn http(
    to: SocketAddrV4,
    checker: &Checker,
    timeout: Duration,
    tls: bool,
    url: &Url,
    protocol: Option<&str>,
    virtualhost: Option<&str>,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    let at = endpoint(to, "tcp");
    let stream = match connect(to, checker, timeout) {
        Ok(s) => s,
        Err(e) => return down(io_reason(&e), format!("Error connecting server {at}.")),
    };
    let host = url
        .virtualhost
        .as_deref()
        .or(virtualhost)
        .map(str::to_string)
        .unwrap_or_else(|| match to.port() {
            80 if !tls => to.ip().to_string(),
            443 if tls => to.ip().to_string(),
            _ => to.to_string(),
        });
    let (version, close) = match protocol {
        Some("1.1") => ("1.1", true),
        Some("1.0C") | Some("1.0c") => ("1.0", true),
        _ => ("1.0", false),
    };
    let request = format!(
        "GET {} HTTP/{version}\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\n{}\r\n",
        url.path,
        if close { "Connection: close\r\n" } else { "" }
    );
    let answer = if tls {
        https_exchange(stream, &host, request.as_bytes(), deadline)
    } else {
        let mut s = stream;
        let w = s.set_write_timeout(Some(left(deadline)));
        match w.and_then(|()| s.write_all(request.as_bytes())) {
            Ok(()) => {
                let r = s.try_clone();
                match r {
                    Ok(r2) => read_all(&mut s, deadline, move |d| {
                        let _ = r2.set_read_timeout(Some(d));
                    }),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        }
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) if e == "read timeout" => {
            return down("read timeout", format!("Timeout WEB read server {at}."))
        }
        Err(e) => return down(e.clone(), format!("Error reading from server {at}: {e}.")),
    };
    let Some((code, body)) = parse_http(&answer) else {
        return down(
            "not an HTTP answer",
            format!("Error processing HTTP answer from {at} url({}).", url.path),
        );
    };
    if !url
        .status_codes
        .iter()
        .any(|(lo, hi)| (*lo..=*hi).contains(&code))
    {
        return down(
            format!("HTTP status {code}"),
            format!(
                "HTTP status code error to {at} url({}), status_code [{code}].",
                url.path
            ),
        );
    }
    if let Some(want) = &url.digest {
        let got = md5_hex(&body);
        if !got.eq_ignore_ascii_case(want) {
            return down(
                "MD5 digest error",
                format!(
                    "MD5 digest error to {at} url[{}], MD5SUM [{got}].",
                    url.path
                ),
            );
        }
    }
    Outcome::up()
}

/// SSL_GET's TLS: certificates are not verified (keepalived's SSL_GET checks the service,
/// not its certificate), signatures are.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            // ring's provider: pure Rust and C without cmake (aws-lc-rs would need it).
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

fn https_exchange(
    stream: TcpStream,
    host: &str,
    request: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let config = tls_config()?;
    let name_text =
        host.rsplit_once(':').map_or(
            host,
            |(h, p)| {
                if p.parse::<u16>().is_ok() {
                    h
                } else {
                    host
                }
            },
        );
    let name = rustls::pki_types::ServerName::try_from(name_text.to_string())
        .map_err(|e| format!("server name {name_text}: {e}"))?;
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let control = stream.try_clone().map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    control
        .set_write_timeout(Some(left(deadline)))
        .and_then(|()| control.set_read_timeout(Some(left(deadline))))
        .map_err(|e| e.to_string())?;
    tls.write_all(request).map_err(|e| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => "read timeout".to_string(),
        _ => format!("TLS: {e}"),
    })?;
    read_all(&mut tls, deadline, move |d| {
        let _ = control.set_read_timeout(Some(d));
    })
}

/// MISC_CHECK: the script's exit status, within `timeout` (killed after it).
fn misc(path: &str, timeout: Duration, dynamic: bool) -> Outcome {
    let mut child = match Command::new("/bin/sh")
        .arg("-c")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return down(
                format!("cannot run: {e}"),
                format!("Misc check for [{path}] cannot run: {e}"),
            )
        }
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return match status.code() {
                    Some(0) => Outcome::up(),
                    Some(code @ 2..=255) if dynamic => Outcome::Up {
                        weight: Some(code as u32 - 2),
                    },
                    Some(code) => down(
                        format!("exit status {code}"),
                        format!("Misc check for [{path}] exited with status {code}"),
                    ),
                    None => down(
                        "killed by a signal",
                        format!("Misc check for [{path}] was killed by a signal"),
                    ),
                }
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return down(
                    "timed out",
                    format!("Misc check to [{path}] for [{path}] timed out"),
                );
            }
            Err(e) => return down(e.to_string(), format!("Misc check for [{path}]: {e}")),
        }
    }
}

/// keepalived's payloads are hex digits; anything else is sent as its bytes.
pub fn payload_bytes(text: &str) -> Vec<u8> {
    let hex: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let hex = hex.strip_prefix("0x").unwrap_or(&hex);
    if !hex.is_empty() && hex.len().is_multiple_of(2) && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        (0..hex.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect()
    } else {
        text.as_bytes().to_vec()
    }
}

fn udp_socket(
    to: SocketAddrV4,
    checker: &Checker,
    timeout: Duration,
) -> std::io::Result<UdpSocket> {
    let s = bound_socket(Type::DGRAM, Protocol::UDP, checker)?;
    s.connect(&SocketAddr::V4(to).into())?;
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(timeout))?;
    Ok(s)
}

fn udp(
    to: SocketAddrV4,
    checker: &Checker,
    timeout: Duration,
    payload: Option<&str>,
    require_reply: Option<&str>,
) -> Outcome {
    let at = endpoint(to, "udp");
    let fail = |reason: String| down(reason, format!("UDP check to {at} failed."));
    let s = match udp_socket(to, checker, timeout) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    if let Err(e) = s.send(&payload_bytes(payload.unwrap_or(""))) {
        return fail(io_reason(&e));
    }
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + timeout;
    let set = |t| drop(s.set_read_timeout(Some(t)));
    match read_until(deadline, set, || s.recv(&mut buf)) {
        Ok(n) => match require_reply {
            Some(want) if !buf[..n].starts_with(&payload_bytes(want)) => {
                fail("reply does not match require_reply".into())
            }
            _ => Outcome::up(),
        },
        // No answer and no ICMP error: the port is open as far as UDP can tell.
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            match require_reply {
                Some(_) => fail("no reply".into()),
                None => Outcome::up(),
            }
        }
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => fail("port unreachable".into()),
        Err(e) => fail(e.to_string()),
    }
}

/// The number of a DNS record type keepalived's DNS_CHECK accepts.
pub fn dns_type(name: &str) -> Option<u16> {
    Some(match name.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "RRSIG" => 46,
        "DNSKEY" => 48,
        _ => return None,
    })
}

/// A DNS query for `name`/`qtype` (recursion desired) with `id`.
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let l = &label.as_bytes()[..label.len().min(63)];
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn dns(to: SocketAddrV4, checker: &Checker, timeout: Duration, qtype: &str, name: &str) -> Outcome {
    let at = endpoint(to, "udp");
    let fail = |reason: String| down(reason.clone(), format!("DNS_CHECK ({at}) failed: {reason}"));
    let Some(t) = dns_type(qtype) else {
        return fail(format!("unknown query type {qtype}"));
    };
    let id = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos()
        & 0xffff) as u16;
    let s = match udp_socket(to, checker, timeout) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    if let Err(e) = s.send(&dns_query(id, name, t)) {
        return fail(io_reason(&e));
    }
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    let set = |t| drop(s.set_read_timeout(Some(t)));
    loop {
        match read_until(deadline, set, || s.recv(&mut buf)) {
            Ok(n) if n >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 => {
                let rcode = buf[3] & 0x0f;
                return if rcode == 0 {
                    Outcome::up()
                } else {
                    fail(format!("DNS RCODE {rcode}"))
                };
            }
            // Not our answer: wait on for it.
            Ok(_) if Instant::now() < deadline => {}
            Ok(_) => return fail("no answer".into()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return fail("no answer".into())
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                return fail("port unreachable".into())
            }
            Err(e) => return fail(e.to_string()),
        }
    }
}

/// The Internet checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// PING_CHECK: one ICMP echo, answered within the timeout.
fn ping(ip: Ipv4Addr, timeout: Duration) -> Outcome {
    let at = format!("[{ip}]");
    let fail = |reason: &str| down(reason, format!("ICMP check to {at} failed: {reason}."));
    static SEQ: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ident = (std::process::id() & 0xffff) as u16;
    let s = match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)) {
        Ok(s) => s,
        Err(e) => return fail(&format!("raw socket: {e}")),
    };
    let mut echo = vec![8u8, 0, 0, 0];
    echo.extend_from_slice(&ident.to_be_bytes());
    echo.extend_from_slice(&seq.to_be_bytes());
    echo.extend_from_slice(b"fnat-health-ping");
    let c = checksum(&echo);
    echo[2..4].copy_from_slice(&c.to_be_bytes());
    if let Err(e) = s.send_to(&echo, &SocketAddr::V4(SocketAddrV4::new(ip, 0)).into()) {
        return fail(&io_reason(&e));
    }
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    let mut r: &Socket = &s;
    let set = |t| drop(s.set_read_timeout(Some(t)));
    loop {
        if Instant::now() >= deadline {
            return fail("no echo reply");
        }
        match read_until(deadline, set, || r.read(&mut buf)) {
            Ok(n) if n >= 20 => {
                let ihl = usize::from(buf[0] & 0x0f) * 4;
                let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
                let icmp = &buf[ihl.min(n)..n];
                if src == ip
                    && icmp.len() >= 8
                    && icmp[0] == 0
                    && icmp[4..6] == ident.to_be_bytes()
                    && icmp[6..8] == seq.to_be_bytes()
                {
                    return Outcome::up();
                }
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return fail("no echo reply")
            }
            Err(e) => return fail(&e.to_string()),
        }
    }
}

/// SMTP_CHECK: a 2xx banner and a 2xx answer to HELO.
fn smtp(to: SocketAddrV4, checker: &Checker, timeout: Duration, helo: Option<&str>) -> Outcome {
    let at = endpoint(to, "tcp");
    let fail = |reason: String| down(reason.clone(), format!("SMTP_CHECK {at}: {reason}"));
    let deadline = Instant::now() + timeout;
    let mut s = match connect(to, checker, timeout) {
        Ok(s) => s,
        Err(e) => return fail(io_reason(&e)),
    };
    let line = |s: &mut TcpStream| -> Result<String, String> {
        let mut buf = [0u8; 512];
        let s: &TcpStream = s;
        let set = |t| drop(s.set_read_timeout(Some(t)));
        let n =
            read_until(deadline, set, || (&mut &*s).read(&mut buf)).map_err(|e| io_reason(&e))?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    match line(&mut s) {
        Ok(b) if b.starts_with('2') => {}
        Ok(b) => return fail(format!("banner {}", b.trim())),
        Err(e) => return fail(e),
    }
    let hello = format!("HELO {}\r\n", helo.unwrap_or("fnat-health"));
    if let Err(e) = s.write_all(hello.as_bytes()) {
        return fail(e.to_string());
    }
    match line(&mut s) {
        Ok(b) if b.starts_with('2') => {
            let _ = s.write_all(b"QUIT\r\n");
            Outcome::up()
        }
        Ok(b) => fail(format!("HELO answered {}", b.trim())),
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_interrupted_by_a_signal_is_read_again_within_the_deadline() {
        // What the CI saw: PING_CHECK failed with "Interrupted system call" (EINTR).
        let mut calls = 0;
        let timeouts = std::cell::Cell::new(0);
        let got = read_until(
            Instant::now() + Duration::from_secs(5),
            |_| timeouts.set(timeouts.get() + 1),
            || {
                calls += 1;
                if calls < 3 {
                    Err(ErrorKind::Interrupted.into())
                } else {
                    Ok(7)
                }
            },
        );
        assert_eq!(got.unwrap(), 7);
        assert_eq!(calls, 3);
        assert_eq!(
            timeouts.get(),
            3,
            "each read gets what is left of the deadline"
        );
        // Past the deadline an interrupted read is a timeout, not an error of its own.
        let late = read_until(
            Instant::now(),
            |_| {},
            || Err(ErrorKind::Interrupted.into()),
        );
        assert_eq!(late.unwrap_err().kind(), ErrorKind::TimedOut);
    }

    #[test]
    fn http_answers_parse_with_chunked_bodies() {
        let plain = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nrs1\n";
        assert_eq!(parse_http(plain), Some((200, b"rs1\n".to_vec())));
        let chunked =
            b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_http(chunked), Some((500, b"abcde".to_vec())));
        assert_eq!(parse_http(b"SSH-2.0-x\r\n\r\n"), None);
        assert_eq!(parse_http(b"HTTP/1.1 200"), None);
    }

    #[test]
    fn md5_matches_genhash() {
        // RFC 1321's test vector.
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn payloads_are_hex_or_text() {
        assert_eq!(payload_bytes("0a0B ff"), vec![0x0a, 0x0b, 0xff]);
        assert_eq!(payload_bytes("hello"), b"hello".to_vec());
    }

    #[test]
    fn dns_query_layout() {
        let q = dns_query(0x1234, "example.test.", 6);
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(&q[4..6], &[0, 1], "one question");
        assert_eq!(&q[12..], b"\x07example\x04test\x00\x00\x06\x00\x01");
        assert_eq!(&dns_query(1, ".", 6)[12..], b"\x00\x00\x06\x00\x01");
    }

    #[test]
    fn icmp_checksum_of_an_echo_verifies() {
        let mut echo = vec![8u8, 0, 0, 0, 0, 1, 0, 2, b'x'];
        let c = checksum(&echo);
        echo[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&echo), 0);
    }
}
