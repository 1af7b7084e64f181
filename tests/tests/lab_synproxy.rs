//! The SYN proxy and server-speaks-first Proxy Protocol with real kernels on both ends
//! (scripts/lab/lab.sh): a kernel client through a SYN-proxied service to nginx (1 MB
//! intact), nginx's stream module that speaks first once it has read a Proxy Protocol header
//! (the client must read its own address, v1 and v2, with and without the SYN proxy), and a
//! spoofed SYN flood from the client namespace (Python raw sockets) during which an
//! established transfer keeps flowing and new clients connect, while the service's
//! connection count shows that the flood made no session. Needs root, network namespaces,
//! nginx with libnginx-mod-stream and python3; fails loudly without them.

mod lab_support;

use std::process::Stdio;
use std::time::Duration;

use lab_support::*;

const CLIENT: &str = "198.18.0.2";
const LIP: &str = "198.19.0.10";

/// Spoofed SYNs from 198.18.128.0/17 to VIP:PORT for SECS seconds; prints how many.
const FLOOD: &str = r#"
import socket, struct, random, sys, time
dst, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
d = socket.inet_aton(dst)
def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    t += t >> 16
    return ~t & 0xffff
n = 0
end = time.time() + secs
while time.time() < end:
    for _ in range(256):
        src = struct.pack("!I", 0xC6128000 | random.getrandbits(15))
        tcp = struct.pack("!HHIIBBHHH", random.randint(1024, 65535), port,
                          random.getrandbits(32), 0, 6 << 4, 0x02, 64240, 0, 0) + b"\x02\x04\x05\xb4"
        c = csum(src + d + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, d)
        s.sendto(ip + tcp, (dst, 0))
        n += 1
print(n)
"#;

/// Connects, sends nothing, prints the first line the server says.
const SERVER_FIRST: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(s.makefile().readline().strip())
"#;

/// Connections the service on `port` made (its `conns` counter).
fn conns(lab: &Lab, port: u16) -> u64 {
    let stats = lab.fnatctl_json(&["stats"]);
    stats["stats"]
        .as_array()
        .expect("stats")
        .iter()
        .find(|s| s["service"].to_string().contains(&format!("{port}")))
        .unwrap_or_else(|| panic!("no service :{port} in {stats}"))["counters"]["conns"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn synproxy_and_server_first_proxy_protocol_with_real_kernels_and_a_flood() {
    assert!(
        std::path::Path::new("/usr/lib/nginx/modules/ngx_stream_module.so").exists(),
        "nginx's stream module is needed (scripts/setup-debian.sh installs libnginx-mod-stream)"
    );
    let dir = fnat_tests::TempDir::new("lab-synproxy");
    let extra = dir.join("sp.toml");
    let svc = |port: u16, rport: u16, extra: &str| {
        format!(
            "[[service]]\nvip = \"{VIP}\"\nport = {port}\nprotocol = \"tcp\"\nscheduler = \"rr\"\n{extra}\n\
             local_addresses = [\"{LIP}\"]\nreal = [ {{ address = \"198.19.1.11\", port = {rport} }} ]\n\n"
        )
    };
    std::fs::write(
        &extra,
        svc(8090, 80, "synproxy = true")
            + &svc(8083, 8083, "proxy_protocol = \"v1\"")
            + &svc(8084, 8083, "proxy_protocol = \"v2\"\nsynproxy = true")
            + &svc(8085, 8083, "proxy_protocol = \"v2\"\ntoa = true"),
    )
    .unwrap();
    let lab = Lab::up(
        1,
        &[
            ("LAB_HTTP", "nginx".into()),
            ("LAB_EXTRA_SERVICES", extra.display().to_string()),
        ],
    );
    let ln = lab.ipvsadm(&["-Ln"]);
    let text = String::from_utf8_lossy(&ln.stdout);
    assert!(
        text.contains(&format!("{VIP}:8090 rr synproxy\n"))
            && text.contains(&format!("{VIP}:8084 rr proxy-protocol v2 synproxy\n")),
        "{text}"
    );

    // Through the SYN proxy: a page, then 1 MB byte for byte.
    assert_eq!(lab.curl(&format!("{VIP}:8090/")), "rs1");
    let out = dir.join("1m.out");
    let done = lab.run(
        "c",
        &[
            "curl",
            "-sS",
            "-m",
            "20",
            "-o",
            &out.display().to_string(),
            &format!("http://{VIP}:8090/1m.bin"),
        ],
        Duration::from_secs(30),
    );
    assert!(done.status.success(), "curl 1m.bin: {}", done.stderr);
    let want = std::fs::read(lab.state_dir().join("1m.bin")).unwrap();
    assert!(std::fs::read(&out).unwrap() == want, "1 MB arrives intact");

    // A server that speaks first, after the header: the client reads its own address.
    for port in ["8083", "8084", "8085"] {
        let said = lab.run(
            "c",
            &["/usr/bin/python3", "-c", SERVER_FIRST, VIP, port],
            Duration::from_secs(15),
        );
        assert!(said.status.success(), ":{port}: {}", said.stderr);
        assert_eq!(
            said.stdout.trim(),
            CLIENT,
            ":{port}: the server was told the client"
        );
    }

    // The flood, with a slow 1 MB transfer established before it and new clients during it.
    let before = conns(&lab, 8090);
    let slow_out = dir.join("slow.out");
    let mut slow = lab.cmd("c", "curl");
    slow.args(["-sS", "-m", "60", "--limit-rate", "250k", "-o"])
        .arg(&slow_out)
        .arg(format!("http://{VIP}:8090/1m.bin"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let slow = slow.spawn().expect("curl");
    std::thread::sleep(Duration::from_millis(500));
    let mut flood = lab.cmd("c", "/usr/bin/python3");
    flood
        .args(["-c", FLOOD, VIP, "8090", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let flood = flood.spawn().expect("flood");
    std::thread::sleep(Duration::from_millis(500));
    let during = lab.count_answers(&format!("{VIP}:8090"), 20);
    assert_eq!(
        during.get("rs1"),
        Some(&20),
        "new clients connect during the flood: {during:?}"
    );
    let flood = flood.wait_with_output().expect("flood");
    assert!(
        flood.status.success(),
        "flood: {}",
        String::from_utf8_lossy(&flood.stderr)
    );
    let sent: u64 = String::from_utf8_lossy(&flood.stdout)
        .trim()
        .parse()
        .unwrap();
    let slow = slow.wait_with_output().expect("curl");
    assert!(
        slow.status.success(),
        "the established transfer: {}",
        String::from_utf8_lossy(&slow.stderr)
    );
    assert!(
        std::fs::read(&slow_out).unwrap() == want,
        "the established transfer arrives intact"
    );

    // The flood made no session: the service counts exactly the legitimate connections.
    // Workers publish counters every few milliseconds, a busy one later: wait for the count
    // the legitimate clients make, then check that nothing came on top of it.
    let made = before + 1 + 20;
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while conns(&lab, 8090) < made && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = lab.fnatctl_json(&["stats"]);
    assert_eq!(
        conns(&lab, 8090),
        made,
        "sessions made during the flood: {stats}\n{}",
        String::from_utf8_lossy(&lab.ipvsadm(&["-Lnc"]).stdout)
    );
    let cookies = stats["syn_proxy"]["syn_cookies_sent"].as_u64().unwrap_or(0);
    assert!(sent > 1000, "the flood sent {sent}");
    // af_packet loses part of a flood on a busy machine; what arrives is answered.
    assert!(
        cookies > 1000 && cookies * 4 >= sent,
        "cookies answered {cookies} of {sent} spoofed SYNs: {stats}"
    );
    let listed = lab.ipvsadm(&["-Lnc"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    let flood_source = |w: &str| {
        w.split(':')
            .next()
            .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
            .is_some_and(|a| {
                let o = a.octets();
                o[..2] == [198, 18] && o[2] >= 128
            })
    };
    assert!(
        !listed.split_whitespace().any(flood_source),
        "no flood source has a session:\n{listed}"
    );
    eprintln!("flood: {sent} spoofed SYNs, {cookies} cookie SYN-ACKs, 0 sessions");
    let log = lab.down();
    if std::env::var_os("LAB_SYNPROXY_LOG").is_some() {
        eprintln!("{log}");
    }
    assert_clean_exit(&log);
}
