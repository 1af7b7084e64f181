//! End-to-end through real kernel TCP/UDP stacks: a client namespace, fnatd in the gateway
//! namespace on af_packet, real servers (nginx or python http.server, echo.py TCP echo, socat UDP echo) in theirs.
//! No static neighbours: ARP resolves both directions by itself. Needs root and network
//! namespaces, and fails loudly without them.

mod lab_support;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use lab_support::*;

/// rr alternation, wrr ratio, persistence, port group, data integrity, UDP echo, ICMP echo,
/// ARP both ways: one lab, checked in order, then fnatd's books at exit.
#[test]
fn lab_forwarding_through_real_stacks() {
    let lab = Lab::up(2, &[]);

    // rr: answers alternate between the two real servers.
    let answers: Vec<String> = (0..6).map(|_| lab.curl(VIP)).collect();
    for pair in answers.windows(2) {
        assert_ne!(pair[0], pair[1], "rr must alternate: {answers:?}");
    }
    let mut seen = answers.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["rs1", "rs2"], "{answers:?}");

    // wrr 3:1 over 1000 new connections.
    let counts = lab.count_answers(&format!("{VIP}:8080"), 1000);
    assert_eq!(counts.values().sum::<u32>(), 1000, "{counts:?}");
    assert_eq!(counts.get("rs1"), Some(&750), "wrr 3:1: {counts:?}");
    assert_eq!(counts.get("rs2"), Some(&250), "wrr 3:1: {counts:?}");

    // Persistence: the same client keeps its real server over new connections.
    let p = lab.count_answers(&format!("{VIP}:81"), 20);
    assert_eq!(p.len(), 1, "persistent service spread one client: {p:?}");

    // Port group (fwmark): http and the https-like 8443 of VIP2 land on the same server.
    let web = lab.curl(VIP2);
    for _ in 0..5 {
        assert_eq!(lab.curl(&format!("{VIP2}:8443")), web);
        assert_eq!(lab.curl(VIP2), web);
    }

    // Data integrity: 1 MB of random bytes through the VIP to a TCP echo server.
    let dir = fnat_tests::TempDir::new("lab-integrity");
    let sent = dir.join("random.bin");
    let back = dir.join("back.bin");
    let mut data = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&sent, &data).unwrap();
    // echo.py, not socat: a single-process socat relay deadlocks on a full pipe with 1 MB
    // in flight both ways (the kernel's nftables gateway shows the same truncation).
    let echo = fnat_tests::root().join("scripts/lab/echo.py");
    let done = lab.run(
        "c",
        &[
            "python3",
            &echo.display().to_string(),
            "send",
            VIP,
            "9000",
            &sent.display().to_string(),
            &back.display().to_string(),
            "30",
        ],
        Duration::from_secs(60),
    );
    assert!(done.status.success(), "echo client: {}", done.stderr);
    let echoed = std::fs::read(&back).unwrap();
    assert_eq!(echoed.len(), data.len(), "echoed length");
    assert!(echoed == data, "1 MB echoed through the VIP differs");

    // UDP echo through the VIP.
    let done = lab.run(
        "c",
        &[
            "sh",
            "-c",
            &format!("echo fnat-udp-check | socat -t 3 - UDP4:{VIP}:9001"),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(done.stdout.trim(), "fnat-udp-check", "{}", done.stderr);

    // ICMP echo to the gateway's own addresses.
    for addr in [GW_WAN, VIP] {
        let done = lab.run(
            "c",
            &["ping", "-c", "2", "-i", "0.2", "-W", "2", addr],
            Duration::from_secs(10),
        );
        assert!(done.status.success(), "ping {addr}:\n{}", done.stdout);
    }

    // ARP both ways, by itself: forget every neighbour on the client and the servers, and
    // traffic still flows (they ask fnatd, fnatd answers on the port owning the address).
    for role in ["c", "s1", "s2"] {
        let done = lab.run(
            role,
            &["ip", "neigh", "flush", "all"],
            Duration::from_secs(5),
        );
        assert!(done.status.success(), "{}", done.stderr);
    }
    let mut again = vec![lab.curl(VIP), lab.curl(VIP)];
    again.sort();
    assert_eq!(again, ["rs1", "rs2"], "after the neighbour flush");
    let neigh = lab.run(
        "c",
        &["ip", "neigh", "show", GW_WAN],
        Duration::from_secs(5),
    );
    assert!(
        neigh.stdout.contains("lladdr"),
        "the client resolved {GW_WAN}: {}",
        neigh.stdout
    );
    for role in ["s1", "s2"] {
        let neigh = lab.run(role, &["ip", "neigh", "show"], Duration::from_secs(5));
        assert!(neigh.stdout.contains("198.19.1.1 "), "{}", neigh.stdout);
        assert!(
            !neigh.stdout.contains("PERMANENT"),
            "static: {}",
            neigh.stdout
        );
    }

    let log = lab.down();
    assert_clean_exit(&log);
    assert!(report_number(&log, "replies sent") >= 1, "{log}");
    // Whether fnatd asked or learned from the neighbours' own requests depends on timing;
    // that it knows the client side and both servers without static entries does not.
    assert!(report_number(&log, "neighbours learned") >= 3, "{log}");
    assert!(report_number(&log, "gratuitous sent") >= 5, "{log}");
    assert_eq!(report_number(&log, "not_for_us"), 0, "{log}");
    assert_eq!(report_number(&log, "no_neighbour"), 0, "{log}");
}

/// Drain: weight 0 keeps an open keep-alive connection working while new connections go
/// elsewhere; then removing the server sends everything to the other one.
/// Needs the control socket to reach the workers (`fnatctl ipvsadm -e / -d`).
#[test]
fn lab_drain_and_real_server_removal() {
    let lab = Lab::up(2, &[]);
    let flag = lab.state_dir().join("go");
    let py = format!(
        "import http.client, os, time\n\
         k=http.client.HTTPConnection('{VIP}',80,timeout=5)\n\
         def get(c):\n    c.request('GET','/')\n    return c.getresponse().read().decode().strip()\n\
         print(get(k), flush=True)\n\
         t=time.time()\n\
         while not os.path.exists('{flag}') and time.time()-t<30: time.sleep(0.05)\n\
         print(get(k), flush=True)\n\
         for i in range(10):\n    c=http.client.HTTPConnection('{VIP}',80,timeout=5)\n    print(get(c), flush=True)\n    c.close()\n",
        flag = flag.display()
    );
    let mut child = lab
        .cmd("c", "/usr/bin/python3")
        .args(["-c", &py])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let (drained, other) = if first == "rs1" {
        ("198.19.1.11", "rs2")
    } else {
        ("198.19.1.12", "rs1")
    };
    let out = lab.ipvsadm(&[
        "-e",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        &format!("{drained}:80"),
        "-w",
        "0",
    ]);
    assert!(
        out.status.success(),
        "ipvsadm -e: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::File::create(&flag).unwrap().flush().unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "keep-alive client failed: {rest:?}");
    assert_eq!(
        rest[0], first,
        "the open keep-alive connection stays on its server"
    );
    assert!(
        rest[1..].iter().all(|b| b == other),
        "new connections avoid the drained server: {rest:?}"
    );

    // Removal: the drained server leaves the service; everything goes to the other.
    let out = lab.ipvsadm(&[
        "-d",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        &format!("{drained}:80"),
    ]);
    assert!(
        out.status.success(),
        "ipvsadm -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = lab.count_answers(VIP, 10);
    assert_eq!(counts.get(other), Some(&10), "{counts:?}");
    // Only the VIP:80 service's section: the server also serves the lab's other services.
    let list = lab.ipvsadm(&["-Ln", "-t", &format!("{VIP}:80")]);
    let list = String::from_utf8_lossy(&list.stdout);
    let kept = if drained == "198.19.1.11" {
        "198.19.1.12"
    } else {
        "198.19.1.11"
    };
    assert!(list.contains(kept), "{list}");
    assert!(!list.contains(drained), "{list}");
    assert_clean_exit(&lab.down());
}

/// Rule changes under load (ab, one new connection per request, bounded by count and time)
/// complete with zero failed requests, and each change is seen to take effect.
#[test]
fn lab_rule_changes_under_load_lose_nothing() {
    let lab = Lab::up(2, &[]);
    let mut ab = lab
        .cmd("c", "ab")
        .args([
            "-q",
            "-n",
            "4000",
            "-c",
            "8",
            "-s",
            "5",
            &format!("http://{VIP}/"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let svc = format!("{VIP}:80");
    let changes: [&[&str]; 5] = [
        &["-e", "-t", &svc, "-r", "198.19.1.11:80", "-w", "3"],
        &["-E", "-t", &svc, "-s", "wrr"],
        &["-e", "-t", &svc, "-r", "198.19.1.12:80", "-w", "0"],
        &["-e", "-t", &svc, "-r", "198.19.1.12:80", "-w", "1"],
        &["-E", "-t", &svc, "-s", "rr"],
    ];
    for (i, change) in changes.iter().enumerate() {
        std::thread::sleep(Duration::from_millis(300));
        let out = lab.ipvsadm(change);
        assert!(
            out.status.success(),
            "ipvsadm {change:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if i == 2 {
            // rs2 drained: the change must reach the dataplane, not only the control socket.
            let counts = lab.count_answers(VIP, 6);
            assert_eq!(
                counts.get("rs1"),
                Some(&6),
                "weight 0 not applied: {counts:?}"
            );
        }
    }
    let done = fnat_tests::wait_with_deadline(
        {
            ab.stdin.take();
            ab
        },
        Duration::from_secs(120),
    );
    assert!(
        done.status.success(),
        "ab: {}\n{}",
        done.stdout,
        done.stderr
    );
    assert!(
        done.stdout.contains("Complete requests:      4000"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.contains("Failed requests:        0"),
        "{}",
        done.stdout
    );
    assert!(!done.stdout.contains("Non-2xx"), "{}", done.stdout);
    assert_clean_exit(&lab.down());
}

/// Established sessions survive every rule change that does not remove them: a keep-alive
/// HTTP connection and a TCP echo stream stay open while services are added and deleted,
/// reals and local addresses added, the connection's own server drained to weight 0, the
/// scheduler and the timeouts changed. After each change both are used again and must answer
/// from the same server, byte for byte.
#[test]
fn lab_established_sessions_survive_rule_changes() {
    let lab = Lab::up(2, &[]);
    let dir = lab.state_dir();
    let py = format!(
        "import http.client, os, socket, time\n\
         k=http.client.HTTPConnection('{VIP}',80,timeout=5)\n\
         def get():\n    k.request('GET','/')\n    return k.getresponse().read().decode().strip()\n\
         e=socket.create_connection(('{VIP}',9000),timeout=5)\n\
         def echo(i):\n    data=os.urandom(20000+i)\n    e.sendall(data)\n    got=b''\n    \
         while len(got)<len(data):\n        c=e.recv(65536)\n        assert c, 'echo closed'\n        got+=c\n    \
         return 'same' if got==data else 'differs'\n\
         for step in range(8):\n    t=time.time()\n    \
         while not os.path.exists('{dir}/step%d' % step) and time.time()-t<30: time.sleep(0.02)\n    \
         print(step, get(), echo(step), flush=True)\n",
        dir = dir.display()
    );
    let mut child = lab
        .cmd("c", "/usr/bin/python3")
        .args(["-c", &py])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let svc = format!("{VIP}:80");
    let extra = format!("{VIP}:7070");
    let mut server = String::new();
    let changes: [Vec<String>; 8] = [
        vec![],
        vec![
            "-A".into(),
            "-t".into(),
            extra.clone(),
            "-s".into(),
            "wlc".into(),
        ],
        vec![
            "-a".into(),
            "-t".into(),
            extra.clone(),
            "-r".into(),
            "198.19.1.11:80".into(),
            "-b".into(),
        ],
        vec![
            "--add-laddr".into(),
            "-z".into(),
            "198.19.0.11".into(),
            "-t".into(),
            svc.clone(),
        ],
        vec![
            "-E".into(),
            "-t".into(),
            svc.clone(),
            "-s".into(),
            "wrr".into(),
        ],
        vec!["--set".into(), "600".into(), "60".into(), "120".into()],
        vec!["-D".into(), "-t".into(), extra.clone()],
        // Drain the server the keep-alive connection is on (filled in below).
        vec![],
    ];
    for (step, change) in changes.iter().enumerate() {
        let mut change = change.clone();
        if step == 7 {
            let ip = if server == "rs1" {
                "198.19.1.11:80"
            } else {
                "198.19.1.12:80"
            };
            change = vec![
                "-e".into(),
                "-t".into(),
                svc.clone(),
                "-r".into(),
                ip.into(),
                "-w".into(),
                "0".into(),
            ];
        }
        if !change.is_empty() {
            let args: Vec<&str> = change.iter().map(String::as_str).collect();
            let out = lab.ipvsadm(&args);
            assert!(
                out.status.success(),
                "ipvsadm {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::write(dir.join(format!("step{step}")), b"").unwrap();
        let line = lines.next().expect("client output").expect("client line");
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.len(), 3, "client said: {line}");
        assert_eq!(words[0], step.to_string());
        if step == 0 {
            server = words[1].to_string();
        }
        assert_eq!(
            words[1], server,
            "step {step}: the keep-alive connection moved or broke"
        );
        assert_eq!(
            words[2], "same",
            "step {step}: the echo stream lost or changed bytes"
        );
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    assert!(status.success(), "client failed: {err}");
    assert_clean_exit(&lab.down());
}

/// The LVS tutorial's firewall-mark service (http and https of one VIP scheduled as one, with
/// persistence) defined at run time with `fnatctl mark add` and ipvsadm `-f`, carries a
/// client's :80 and :443 to the same real server; fnatd stopped with SIGTERM starts again from
/// its state file with the same rules (`-S`) and the mark service still does so.
#[test]
fn lab_mark_service_keeps_http_and_https_together_across_a_restart() {
    let lab = Lab::up(2, &[]);
    let fnatctl = |args: &[&str]| {
        let out = std::process::Command::new(fnat_tests::bin("fnatctl"))
            .arg("--socket")
            .arg(lab.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running fnatctl");
        assert!(
            out.status.success(),
            "fnatctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ipvsadm = |line: &str| {
        let args: Vec<&str> = line.split_whitespace().collect();
        let out = lab.ipvsadm(&args);
        assert!(
            out.status.success(),
            "ipvsadm {line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // The lab's own port group on VIP2 gives way to the tutorial's mark 66.
    ipvsadm("-D -f 1");
    fnatctl(&["mark", "del", "1"]);
    fnatctl(&["mark", "add", "66", "tcp", VIP2, "80,443"]);
    ipvsadm("-A -f 66 -s rr -p");
    ipvsadm("-a -f 66 -r 198.19.1.11 -b");
    ipvsadm("-a -f 66 -r 198.19.1.12 -b");
    ipvsadm("--add-laddr -z 198.19.0.10 -f 66");
    let listed = ipvsadm("-Ln");
    assert!(listed.contains("FWM  66 rr persistent 360\n"), "{listed}");
    let together = |when: &str| {
        let web = lab.curl(VIP2);
        for _ in 0..4 {
            assert_eq!(lab.curl(&format!("{VIP2}:443")), web, "{when}: :443");
            assert_eq!(lab.curl(VIP2), web, "{when}: :80");
        }
    };
    together("before the restart");
    let saved = ipvsadm("-S -n");

    // SIGTERM to the lab's fnatd (the last process lab.sh started), then the same command
    // again: it must come back from the state file.
    let st = lab.state_dir();
    let pids = std::fs::read_to_string(st.join("pids")).unwrap();
    let pid: u32 = pids.lines().last().unwrap().trim().parse().unwrap();
    fnat_tests::signal(pid, libc::SIGTERM);
    let t = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(t.elapsed() < Duration::from_secs(30), "fnatd did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::File::create(st.join("fnatd-restarted.log")).unwrap();
    let mut restarted = lab
        .cmd("g", "setsid")
        .arg(fnat_tests::bin("fnatd"))
        .arg("run")
        .arg("--config")
        .arg(st.join("fnatd.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // The lab's teardown stops it like the first one.
    let mut pids_file = std::fs::OpenOptions::new()
        .append(true)
        .open(st.join("pids"))
        .unwrap();
    writeln!(pids_file, "{}", restarted.id()).unwrap();
    let t = std::time::Instant::now();
    while !lab.ipvsadm(&["-S", "-n"]).status.success() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "restarted fnatd does not answer:\n{}",
            std::fs::read_to_string(st.join("fnatd-restarted.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ipvsadm("-S -n"), saved, "rules after the restart");
    // Until ARP has settled, a first request may fail: wait for the VIP to answer.
    let t = std::time::Instant::now();
    while !lab
        .run(
            "c",
            &["curl", "-s", "-m", "1", &format!("http://{VIP2}/")],
            Duration::from_secs(5),
        )
        .status
        .success()
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{VIP2} does not answer after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    together("after the restart");
    lab.down();
    // Stopped by the teardown (its PID is in the lab's list): reap it.
    let _ = restarted.wait();
}
