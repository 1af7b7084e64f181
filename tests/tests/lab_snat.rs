//! SNAT (DPVS's match service `-H` with `-J` addresses) on real kernels: the real servers
//! route their default via fnatd (lab.sh `LAB_RS_MODE=snat`) and `curl` a WAN host (the
//! client namespace serving http); fnatd rewrites their source to a WAN address:port of the
//! pool and maps the replies back, with two workers. Needs root and network namespaces, and
//! fails loudly without them.

mod lab_support;

use std::time::Duration;

use lab_support::*;

const WAN_HOST: &str = "198.18.0.2";
const WAN_ADDRS: [&str; 2] = ["198.18.0.1", "198.18.0.51"];

#[test]
fn snat_takes_real_servers_to_the_wan_side() {
    let dir = fnat_tests::TempDir::new("lab-snat");
    let extra = dir.join("snat.toml");
    std::fs::write(
        &extra,
        format!(
            "[[service]]\n\
             match = {{ proto = \"tcp\", src-range = \"198.19.1.0-198.19.1.255\", iif = \"lan\", oif = \"wan\" }}\n\
             scheduler = \"rr\"\n\
             real = [ {{ address = \"{}\", port = 0 }}, {{ address = \"{}\", port = 0 }} ]\n\n\
             [[service]]\n\
             match = {{ proto = \"udp\", src-range = \"198.19.1.0-198.19.1.255\", oif = \"wan\" }}\n\
             scheduler = \"rr\"\n\
             real = [ {{ address = \"{}\", port = 0 }} ]\n\n\
             [[service]]\n\
             match = {{ proto = \"icmp\", src-range = \"198.19.1.0-198.19.1.255\", oif = \"wan\" }}\n\
             scheduler = \"rr\"\n\
             real = [ {{ address = \"{}\", port = 0 }} ]\n",
            WAN_ADDRS[0], WAN_ADDRS[1], WAN_ADDRS[0], WAN_ADDRS[1]
        ),
    )
    .unwrap();
    let lab = Lab::up(
        2,
        &[
            ("LAB_RS_MODE", "snat".into()),
            ("LAB_CLIENT_HTTP", "1".into()),
            ("LAB_WORKERS", "2".into()),
            ("LAB_EXTRA_SERVICES", extra.display().to_string()),
        ],
    );
    // The listing shows the match service and its SNAT addresses.
    let ln = lab.ipvsadm(&["-Ln"]);
    let text = String::from_utf8_lossy(&ln.stdout);
    assert!(
        text.contains(
            "MATCH proto=tcp,src-range=198.19.1.0-198.19.1.255,iif=lan,oif=wan rr\n  -> 198.18.0.1:0                 SNAT    1      "
        ),
        "{text}"
    );

    // Each server fetches the WAN host's page: the WAN host answers, and sees the pool's
    // addresses (rr over the SNAT addresses, per worker: with two workers and six
    // connections one worker schedules at least three, so both addresses show), never a
    // real server's own.
    for (i, server) in ["s1", "s2", "s1", "s2", "s1", "s2"].iter().enumerate() {
        let done = lab.run(
            server,
            &["curl", "-sS", "-m", "5", &format!("http://{WAN_HOST}/")],
            Duration::from_secs(10),
        );
        assert!(
            done.status.success(),
            "curl {i} from {server}: {}",
            done.stderr
        );
        assert_eq!(done.stdout.trim(), "wan");
    }
    let log = std::fs::read_to_string(lab.state_dir().join("httpc.log")).unwrap();
    let sources: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"GET / "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(sources.len(), 6, "{log}");
    for s in &sources {
        assert!(
            WAN_ADDRS.contains(s),
            "source {s} is not an SNAT address: {log}"
        );
    }
    let mut seen = sources.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, WAN_ADDRS, "rr over the SNAT addresses: {sources:?}");

    // UDP: the WAN host's echo answers through SNAT.
    let done = lab.run(
        "s1",
        &[
            "sh",
            "-c",
            &format!("echo fnat-snat-udp | socat -t 3 - UDP4:{WAN_HOST}:9001"),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(done.stdout.trim(), "fnat-snat-udp", "{}", done.stderr);

    // ICMP echo: the WAN host has no route to the real servers, so an answered ping went
    // out as 198.18.0.51 and its replies were mapped back.
    for server in ["s1", "s2"] {
        let done = lab.run(
            server,
            &["ping", "-c", "3", "-i", "0.2", "-W", "2", WAN_HOST],
            Duration::from_secs(15),
        );
        assert!(
            done.status.success(),
            "ping from {server}:\n{}",
            done.stdout
        );
        assert!(done.stdout.contains("3 received"), "{}", done.stdout);
    }
    let direct = lab.run(
        "c",
        &["ip", "route", "get", "198.19.1.11"],
        Duration::from_secs(5),
    );
    assert!(
        !direct.status.success(),
        "the WAN host must not reach the servers: {}",
        direct.stdout
    );

    // 1 MB from the WAN host, byte for byte.
    let done = lab.run(
        "s2",
        &[
            "sh",
            "-c",
            &format!("curl -sS -m 20 http://{WAN_HOST}/1m.bin | sha256sum"),
        ],
        Duration::from_secs(30),
    );
    assert!(done.status.success(), "{}", done.stderr);
    let want = lab.run(
        "c",
        &[
            "sha256sum",
            &lab.state_dir().join("wwwc/1m.bin").display().to_string(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(
        done.stdout.split_whitespace().next(),
        want.stdout.split_whitespace().next(),
        "1 MB through SNAT differs"
    );

    // -Lnc: the SNAT sessions, inside host as source, the WAN host as virtual and
    // destination, the SNAT address:port as local.
    let lnc = lab.ipvsadm(&["-Lnc"]);
    let text = String::from_utf8_lossy(&lnc.stdout).to_string();
    assert!(
        text.starts_with(
            "IPVS connection entries\npro expire state       source             virtual            destination        local\n"
        ),
        "{text}"
    );
    let all: Vec<Vec<&str>> = text
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| f.get(3).is_some_and(|s| s.starts_with("198.19.1.")))
        .collect();
    // The UDP session: the UDP state, the echo port, the first SNAT address.
    let udp: Vec<&Vec<&str>> = all.iter().filter(|f| f[0] == "UDP").collect();
    assert_eq!(udp.len(), 1, "{text}");
    assert_eq!(
        (udp[0][2], udp[0][4], udp[0][5]),
        ("UDP", "198.18.0.2:9001", "198.18.0.2:9001"),
        "{text}"
    );
    assert!(udp[0][6].starts_with("198.18.0.1:"), "{text}");
    let rows: Vec<&Vec<&str>> = all.iter().filter(|f| f[0] != "UDP").collect();
    assert!(rows.len() >= 5, "{text}");
    for f in &rows {
        assert_eq!(f[0], "TCP", "{text}");
        assert!(
            ["TIME_WAIT", "CLOSE", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK"].contains(&f[2]),
            "a finished connection: {text}"
        );
        assert_eq!(f[4], format!("{WAN_HOST}:80"));
        assert_eq!(f[5], format!("{WAN_HOST}:80"));
        let local = f[6].rsplit_once(':').unwrap().0;
        assert!(WAN_ADDRS.contains(&local), "{text}");
    }

    let log = lab.down();
    assert_clean_exit(&log);
}
