//! The client's address through full-NAT to real servers nobody here wrote: nginx with
//! `listen 8081 proxy_protocol` logging `$proxy_protocol_addr` (lab.sh) must log the client
//! namespace's address for Proxy Protocol v1 and v2, and 1 MB must arrive intact through a
//! v2 service that also adds TOA, whose option 254 tshark decodes at the real server; HAProxy
//! with `bind … accept-proxy` must answer with the client's address and port for v1 and v2;
//! `fnatctl stats` counts the headers and options it saw go. Needs root, network namespaces,
//! nginx, haproxy, tcpdump and tshark; fails loudly without them.

mod lab_support;

use std::time::Duration;

use lab_support::*;

const VIP: &str = "198.18.10.100";
const CLIENT: &str = "198.18.0.2";
const LIP: &str = "198.19.0.10";

#[test]
fn nginx_logs_the_client_address_for_v1_and_v2() {
    assert!(
        std::process::Command::new("nginx")
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success()),
        "nginx is needed (scripts/setup-debian.sh installs it)"
    );
    let dir = fnat_tests::TempDir::new("lab-client-address");
    let extra = dir.join("pp.toml");
    let svc = |port: u16, extra: &str| {
        format!(
            "[[service]]\nvip = \"{VIP}\"\nport = {port}\nprotocol = \"tcp\"\nscheduler = \"rr\"\n{extra}\n\
             local_addresses = [\"{LIP}\"]\nreal = [ {{ address = \"198.19.1.11\", port = 8081 }} ]\n\n"
        )
    };
    std::fs::write(
        &extra,
        svc(8081, "proxy_protocol = \"v1\"") + &svc(8082, "proxy_protocol = \"v2\"\ntoa = true"),
    )
    .unwrap();
    let lab = Lab::up(
        1,
        &[
            ("LAB_HTTP", "nginx".into()),
            ("LAB_EXTRA_SERVICES", extra.display().to_string()),
            // Inside the lab's own gateway namespace.
            ("LAB_METRICS", "127.0.0.1:9417".into()),
        ],
    );
    let ln = lab.ipvsadm(&["-Ln"]);
    let text = String::from_utf8_lossy(&ln.stdout);
    assert!(
        text.contains(&format!("{VIP}:8081 rr proxy-protocol v1\n"))
            && text.contains(&format!("{VIP}:8082 rr proxy-protocol v2 toa\n")),
        "{text}"
    );
    assert_eq!(lab.curl(&format!("{VIP}:8081/")), "rs1");
    assert_eq!(lab.curl(&format!("{VIP}:8082/")), "rs1");

    // TOA on the wire: capture at the real server, decode with tshark.
    let pcap = dir.join("s1.pcap");
    let mut dump = lab
        .cmd("s1", "tcpdump")
        .args([
            "-i",
            &format!("{}s1", lab.prefix),
            "--immediate-mode",
            "-U",
            "-n",
            "-w",
        ])
        .arg(&pcap)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcpdump");
    // tcpdump says "listening on …" once it captures (its stderr stays open until it ends).
    let mut err = std::io::BufReader::new(dump.stderr.take().unwrap());
    {
        use std::io::BufRead;
        let mut line = String::new();
        while line.is_empty() || !line.contains("listening on") {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "tcpdump ended");
        }
    }
    assert_eq!(lab.curl(&format!("{VIP}:8082/")), "rs1");
    // The capture holds what it saw once tcpdump is told to stop (SIGINT flushes).
    let _ = std::process::Command::new("kill")
        .args(["-INT", &dump.id().to_string()])
        .status();
    let _ = dump.wait();
    drop(err);
    let fields = fnat_tests::run_with_deadline(
        std::process::Command::new("tshark")
            .args(["-r"])
            .arg(&pcap)
            .args(["-Y", "tcp.option_kind == 254 && tcp.dstport == 8081"])
            .args([
                "-T",
                "fields",
                "-e",
                "tcp.flags.syn",
                "-e",
                "tcp.len",
                "-e",
                "tcp.options",
            ]),
        Duration::from_secs(30),
    );
    let rows: Vec<&str> = fields.stdout.lines().collect();
    // The handshake-completing ACK and the first data segment; never a SYN.
    assert_eq!(
        rows.len(),
        2,
        "segments with option 254:\n{}\n{}\n{:?}",
        fields.stdout,
        fields.stderr,
        std::fs::metadata(&pcap).map(|m| m.len())
    );
    for r in &rows {
        let w: Vec<&str> = r.split('\t').collect();
        assert!(w[0] == "0" || w[0] == "False", "never on the SYN: {r}");
        let hex = w[2].replace(':', "");
        let at = hex
            .find("fe08")
            .unwrap_or_else(|| panic!("no kind 254 len 8: {r}"));
        // port (2 bytes, any), then 198.18.0.2.
        assert_eq!(
            &hex[at + 8..at + 16],
            "c6120002",
            "the client's address: {r}"
        );
    }

    // 1 MB through the v2 + TOA service, byte for byte.
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
            &format!("http://{VIP}:8082/1m.bin"),
        ],
        Duration::from_secs(30),
    );
    assert!(done.status.success(), "curl 1m.bin: {}", done.stderr);
    let want = std::fs::read(lab.state_dir().join("1m.bin")).unwrap();
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), want.len(), "1 MB arrives whole");
    assert!(got == want, "1 MB arrives intact");

    // Counted: 4 connections with a header (retransmitted first segments count again), TOA
    // on the handshake ACK and first data of the 3 connections to the TOA service.
    let stats = client_address_stats(&lab, |s| {
        s["proxy_headers_inserted"] >= 4 && s["toa_added"] >= 6
    });
    assert!(stats["proxy_headers_inserted"] >= 4, "{stats:?}");
    assert!(stats["toa_added"] >= 6, "{stats:?}");
    assert_eq!(stats["toa_no_room"], 0, "{stats:?}");
    // Prometheus says the same.
    let scrape = lab.run(
        "g",
        &["curl", "-sS", "-m", "5", "http://127.0.0.1:9417/metrics"],
        Duration::from_secs(10),
    );
    assert!(scrape.status.success(), "scrape: {}", scrape.stderr);
    let metric = |event: &str| -> u64 {
        let prefix = format!("fnat_client_address_total{{event=\"{event}\"}} ");
        scrape
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in the scrape"))
    };
    assert_eq!(metric("toa_added"), stats["toa_added"]);
    assert_eq!(
        metric("proxy_headers_inserted"),
        stats["proxy_headers_inserted"]
    );

    let log = std::fs::read_to_string(lab.state_dir().join("pp1.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    for l in &lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(w[0], CLIENT, "nginx sees the client's address: {l}");
        assert!(w[1].parse::<u16>().is_ok_and(|p| p > 0), "{l}");
        assert_eq!(
            w[2], LIP,
            "the connection itself comes from the local address: {l}"
        );
    }
    let log = lab.down();
    assert_clean_exit(&log);
}

type Counts = std::collections::BTreeMap<String, u64>;

/// `fnatctl --json stats`'s Proxy Protocol/TOA counters, by event name, once `ready` holds
/// (workers publish their counters periodically) or after 5 s.
fn client_address_stats(lab: &Lab, ready: impl Fn(&Counts) -> bool) -> Counts {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let counters = loop {
        let mut c = std::process::Command::new(fnat_tests::bin("fnatctl"));
        c.arg("--socket")
            .arg(lab.socket())
            .args(["--json", "stats"]);
        let done = fnat_tests::run_with_deadline(&mut c, Duration::from_secs(10));
        assert!(done.status.success(), "fnatctl stats: {}", done.stderr);
        let v: serde_json::Value = serde_json::from_str(&done.stdout).expect("stats JSON");
        let counters: Counts =
            serde_json::from_value(v["client_address"].clone()).expect("client_address");
        if ready(&counters) || std::time::Instant::now() > deadline {
            break counters;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The text form names them too.
    let mut c = std::process::Command::new(fnat_tests::bin("fnatctl"));
    c.arg("--socket").arg(lab.socket()).arg("stats");
    let text = fnat_tests::run_with_deadline(&mut c, Duration::from_secs(10)).stdout;
    assert!(
        text.contains("Client address (Proxy Protocol, TOA):") && text.contains("toa_stripped"),
        "{text}"
    );
    counters
}

#[test]
fn haproxy_sees_the_client_address_for_v1_and_v2() {
    assert!(
        std::process::Command::new("haproxy")
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success()),
        "haproxy is needed (scripts/setup-debian.sh installs it)"
    );
    let dir = fnat_tests::TempDir::new("lab-client-address-haproxy");
    let extra = dir.join("pp.toml");
    let svc = |port: u16, extra: &str| {
        format!(
            "[[service]]\nvip = \"{VIP}\"\nport = {port}\nprotocol = \"tcp\"\nscheduler = \"rr\"\n{extra}\n\
             local_addresses = [\"{LIP}\"]\nreal = [ {{ address = \"198.19.1.11\", port = 8091 }} ]\n\n"
        )
    };
    std::fs::write(
        &extra,
        svc(8091, "proxy_protocol = \"v1\"") + &svc(8092, "proxy_protocol = \"v2\""),
    )
    .unwrap();
    let lab = Lab::up(
        1,
        &[
            ("LAB_HAPROXY", "1".into()),
            ("LAB_EXTRA_SERVICES", extra.display().to_string()),
        ],
    );
    for (port, client_port) in [(8091u16, 41091u16), (8092, 41092)] {
        let done = lab.run(
            "c",
            &[
                "curl",
                "-sS",
                "-m",
                "5",
                "--local-port",
                &client_port.to_string(),
                &format!("http://{VIP}:{port}/"),
            ],
            Duration::from_secs(10),
        );
        assert!(done.status.success(), "curl :{port}: {}", done.stderr);
        assert_eq!(
            done.stdout.trim(),
            format!("haproxy {CLIENT} {client_port}"),
            "HAProxy names the client namespace's address and port (service :{port})"
        );
    }
    let stats = client_address_stats(&lab, |s| s["proxy_headers_inserted"] >= 2);
    assert!(stats["proxy_headers_inserted"] >= 2, "{stats:?}");
    assert_eq!(stats["toa_added"], 0, "no TOA service here: {stats:?}");
    let log = lab.down();
    assert_clean_exit(&log);
}
