//! Health checks through real stacks: fnatd in the lab's gateway namespace reads a
//! keepalived.conf and probes real servers of every kind (python http and https with a
//! self-signed certificate, the TCP and UDP echoes, dnsmasq, ICMP, scripts) from the
//! gateway's kernel. A stopped server leaves the table within keepalived's bound and no
//! client request fails after that; inhibit keeps it at weight 0; it comes back when it
//! answers again; a lost quorum swaps in the sorry server; MISC_CHECK's misc_dynamic sets
//! a weight. Needs root and network namespaces, and fails loudly without them.

mod lab_support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lab_support::*;

// Probes leave from the gateway's kernel through the lan port's kernel twin (LAB_KERNEL_TWIN:
// the exception path, with the veths hidden from that kernel): the only road the kernel has to
// the real servers, so every checker below passing or failing on cue proves the road too.

/// keepalived's timing in the conf below: delay_loop 1, connect_timeout 1, retry 1,
/// delay_before_retry 1: a stopped server is out within 1 + (1 + 1) * (1 + 1) = 5 s.
const BOUND: Duration = Duration::from_secs(5);

fn keepalived_conf(dir: &std::path::Path, md5_rs2: &str) -> String {
    let w = dir.join("w11.sh");
    std::fs::write(&w, format!("exit $(cat {})\n", dir.join("w11").display())).unwrap();
    std::fs::write(dir.join("w11"), "0\n").unwrap();
    let timing = "delay_loop 1\n    connect_timeout 1\n    retry 1\n    delay_before_retry 1";
    let notify = dir.join("notify.sh");
    std::fs::write(
        &notify,
        format!("echo \"$1\" >> {}\n", dir.join("notified").display()),
    )
    .unwrap();
    let http = "HTTP_GET {\n      url {\n        path /index.html\n        status_code 200\n      }\n    }";
    let mut t = String::new();
    t.push_str(&format!(
        "global_defs {{\n  lvs_notify_fifo {}\n}}\n",
        dir.join("notify.fifo").display()
    ));
    t.push_str("local_address_group lan {\n  198.19.0.10 lan\n}\n");
    // :80, what the lab's readiness check uses.
    t.push_str(&format!(
        "virtual_server 198.18.10.100 80 {{\n  lb_algo rr\n  lb_kind FNAT\n  laddr_group_name lan\n  {timing}\n  real_server 198.19.1.11 80 {{\n    TCP_CHECK {{ }}\n  }}\n  real_server 198.19.1.12 80 {{\n    TCP_CHECK {{ }}\n  }}\n}}\n"
    ));
    // :8080, removal; :8081 the same servers with inhibit_on_failure; :8082 quorum 2 with a
    // sorry server; :8083 MISC_CHECK misc_dynamic on .11.
    for (port, extra) in [
        (8080, ""),
        (8081, "inhibit_on_failure\n  "),
        (8082, "quorum 2\n  sorry_server 198.19.1.12 8090\n  "),
    ] {
        t.push_str(&format!(
            "virtual_server 198.18.10.100 {port} {{\n  lb_algo rr\n  lb_kind FNAT\n  laddr_group_name lan\n  {extra}{timing}\n  real_server 198.19.1.11 8080 {{\n    {notes}{http}\n  }}\n  real_server 198.19.1.12 8080 {{\n    {http}\n  }}\n}}\n",
            notes = if port == 8080 {
                format!(
                    "notify_down \"/bin/sh {n} down-{port}\"\n    notify_up \"/bin/sh {n} up-{port}\"\n    ",
                    n = notify.display()
                )
            } else {
                String::new()
            }
        ));
    }
    t.push_str(&format!(
        "virtual_server 198.18.10.100 8083 {{\n  lb_algo wrr\n  lb_kind FNAT\n  laddr_group_name lan\n  {timing}\n  real_server 198.19.1.11 80 {{\n    weight 1\n    MISC_CHECK {{\n      misc_path \"/bin/sh {}\"\n      misc_dynamic\n    }}\n  }}\n  real_server 198.19.1.12 80 {{\n    weight 1\n  }}\n}}\n",
        w.display()
    ));
    // :8085, every checker kind: against a server of its kind (.12:80), and made to fail
    // (.12:81).
    t.push_str(&format!(
        "virtual_server 198.18.10.100 8085 {{\n  lb_algo rr\n  lb_kind FNAT\n  laddr_group_name lan\n  {timing}\n  retry 0\n"
    ));
    t.push_str(&format!(
        "  real_server 198.19.1.12 80 {{
    TCP_CHECK {{ connect_port 9000 }}
    HTTP_GET {{
      url {{
        path /index.html
        digest {md5_rs2}
        status_code 200-299
      }}
    }}
    SSL_GET {{
      connect_port 4443
      url {{
        path /index.html
        status_code 200
      }}
    }}
    UDP_CHECK {{
      connect_port 9001
      payload 68656c6c6f
      require_reply 68656c6c6f
    }}
    DNS_CHECK {{
      connect_port 53
      type A
      name example.test
    }}
    PING_CHECK {{ }}
    MISC_CHECK {{ misc_path /bin/true }}
  }}
  real_server 198.19.1.12 81 {{
    TCP_CHECK {{ connect_port 9 }}
    HTTP_GET {{
      connect_port 80
      url {{
        path /missing
      }}
    }}
    HTTP_GET {{
      connect_port 80
      url {{
        path /index.html
        digest 00000000000000000000000000000000
      }}
    }}
    SSL_GET {{
      connect_port 80
      url {{
        path /
      }}
    }}
    UDP_CHECK {{
      connect_port 9001
      payload 68656c6c6f
      require_reply ffff
    }}
    DNS_CHECK {{
      connect_port 53
      type A
      name nothing.invalid
    }}
    PING_CHECK {{ connect_ip 198.19.1.99 }}
    MISC_CHECK {{ misc_path /bin/false }}
  }}
}}
"
    ));
    t
}

struct Servers {
    children: Vec<Child>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn http_server(lab: &Lab, role: &str, port: u16, dir: &std::path::Path) -> Child {
    lab.cmd(role, "/usr/bin/python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "0.0.0.0",
            "--directory",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python http server")
}

/// `fnatctl ipvsadm -Ln -t VIP:PORT`: the real server lines as (address, weight).
fn table(lab: &Lab, port: u16) -> Vec<(String, u32)> {
    let out = lab.ipvsadm(&["-Ln", "-t", &format!("{VIP}:{port}")]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[1].to_string(), c[3].parse().unwrap_or(u32::MAX))
        })
        .collect()
}

fn health(lab: &Lab) -> serde_json::Value {
    let out = std::process::Command::new(fnat_tests::bin("fnatctl"))
        .arg("--socket")
        .arg(lab.socket())
        .args(["--json", "health"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn health_checks_drive_the_table_through_real_stacks() {
    require_root_and_netns();
    let dir = fnat_tests::TempDir::new("lab-health");
    let ka = dir.join("keepalived.conf");
    let services = dir.join("services.toml");
    std::fs::write(&services, "# services come from the keepalived.conf\n").unwrap();
    let www = [dir.join("www1"), dir.join("www2"), dir.join("sorry")];
    for (d, body) in www.iter().zip(["rs1\n", "rs2\n", "sorry\n"]) {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("index.html"), body).unwrap();
    }
    let computed = {
        // The digest keepalived's genhash would print, from an independent implementation.
        let out = std::process::Command::new("md5sum")
            .arg(www[1].join("index.html"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)[..32].to_string()
    };
    std::fs::write(&ka, keepalived_conf(dir.path(), &computed)).unwrap();
    // A self-signed certificate for the https real server.
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let done = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=rs2.test",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    let lab = Lab::up(
        2,
        &[
            ("LAB_HTTP", "python".into()),
            ("LAB_SERVICES", services.display().to_string()),
            ("LAB_KERNEL_TWIN", "1".into()),
            ("LAB_FNATD_ARGS", format!("--keepalived {}", ka.display())),
        ],
    );
    // keepalived makes its notify FIFO (mkfifo) when it is missing: so does fnatd.
    let fifo = FifoLines::existing(&dir.join("notify.fifo"));
    let https = format!(
        "import http.server,ssl,os\nos.chdir('{}')\ns=http.server.HTTPServer(('0.0.0.0',4443),http.server.SimpleHTTPRequestHandler)\nc=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\nc.load_cert_chain('{}','{}')\ns.socket=c.wrap_socket(s.socket,server_side=True)\ns.serve_forever()\n",
        www[1].display(),
        cert.display(),
        key.display()
    );
    let mut servers = Servers {
        children: vec![
            http_server(&lab, "s2", 8080, &www[1]),
            http_server(&lab, "s2", 8090, &www[2]),
            lab.cmd("s2", "/usr/bin/python3")
                .args(["-c", &https])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
            lab.cmd("s2", "dnsmasq")
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--listen-address=198.19.1.12",
                    "--port=53",
                    "--user=root",
                    "--address=/example.test/198.19.1.12",
                    "--local=/invalid/",
                ])
                .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
                .stdin(Stdio::null())
                .spawn()
                .expect("dnsmasq (apt-get install dnsmasq-base)"),
        ],
    };
    let mut rs1 = http_server(&lab, "s1", 8080, &www[0]);

    // Everything up: both servers of :8080 checked and in the table.
    wait_for(
        "both :8080 servers checked",
        Duration::from_secs(15),
        || {
            health(&lab)["checkers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["service"] == "tcp/198.18.10.100:8080")
                .all(|c| c["last_result"] == "success")
        },
    );
    assert_eq!(table(&lab, 8080).len(), 2);
    let both = lab.count_answers(&format!("{VIP}:8080"), 10);
    assert_eq!(both.get("rs1"), Some(&5), "{both:?}");

    // Every checker kind: the real server of its kind passes, the one made to fail fails
    // with its reason.
    let kinds = wait_for_kinds(&lab);
    for (kind, reason) in [
        ("TCP_CHECK", "connection refused"),
        ("HTTP_GET", "HTTP status 404"),
        ("HTTP_GET", "MD5 digest error"),
        ("SSL_GET", ""),
        ("UDP_CHECK", "reply does not match require_reply"),
        ("DNS_CHECK", "DNS RCODE 3"),
        ("PING_CHECK", "no echo reply"),
        ("MISC_CHECK", "exit status 1"),
    ] {
        assert!(
            kinds.iter().any(|c| c["real"] == "198.19.1.12:80"
                && c["checker"] == kind
                && c["last_result"] == "success"),
            "{kind} passes against its server: {kinds:#?}"
        );
        assert!(
            kinds.iter().any(|c| c["real"] == "198.19.1.12:81"
                && c["checker"] == kind
                && c["state"] == "down"
                && c["reason"].as_str().unwrap().contains(reason)),
            "{kind} fails with '{reason}': {kinds:#?}"
        );
    }
    assert_eq!(
        table(&lab, 8085),
        [("198.19.1.12:80".to_string(), 1)],
        "the failing real server is out"
    );

    // Stop rs1's :8080: out of :8080 within keepalived's bound, weight 0 in :8081
    // (inhibit_on_failure), and :8082 loses its quorum of 2: the sorry server alone.
    let _ = rs1.kill();
    let _ = rs1.wait();
    let took = wait_for(
        "198.19.1.11:8080 leaves the table",
        BOUND + Duration::from_secs(1),
        || table(&lab, 8080).len() == 1,
    );
    eprintln!("stopped server out of the table after {took:?} (bound {BOUND:?})");
    assert_eq!(table(&lab, 8080), [("198.19.1.12:8080".to_string(), 1)]);
    let answers = lab.count_answers(&format!("{VIP}:8080"), 40);
    assert_eq!(
        answers.get("rs2"),
        Some(&40),
        "no request fails after detection: {answers:?}"
    );
    wait_for("inhibit: weight 0", Duration::from_secs(2), || {
        table(&lab, 8081).contains(&("198.19.1.11:8080".to_string(), 0))
    });
    assert_eq!(table(&lab, 8081).len(), 2, "{:?}", table(&lab, 8081));
    let answers = lab.count_answers(&format!("{VIP}:8081"), 10);
    assert_eq!(answers.get("rs2"), Some(&10), "{answers:?}");
    wait_for("quorum lost: sorry server", Duration::from_secs(2), || {
        table(&lab, 8082) == [("198.19.1.12:8090".to_string(), 1)]
    });
    assert_eq!(lab.curl(&format!("{VIP}:8082")), "sorry");
    // keepalived's notify FIFO lines (the FIFO fnatd made at start).
    wait_for("notify FIFO lines", Duration::from_secs(5), || {
        fifo.has("RS [198.19.1.11]:tcp:8080 [198.18.10.100]:tcp:8080 DOWN")
            && fifo.has("VS [198.18.10.100]:tcp:8082 DOWN")
    });
    // notify_down ran; a reload keeps what the checks found (the server stays out).
    wait_for("notify_down ran", Duration::from_secs(5), || {
        std::fs::read_to_string(dir.join("notified")).is_ok_and(|t| t.contains("down-8080"))
    });
    let reload = std::process::Command::new(fnat_tests::bin("fnatctl"))
        .arg("--socket")
        .arg(lab.socket())
        .arg("reload")
        .output()
        .unwrap();
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    assert_eq!(
        table(&lab, 8080),
        [("198.19.1.12:8080".to_string(), 1)],
        "a reload keeps the stopped server out"
    );
    // save keeps the operator's rules, not the health-adjusted table.
    let saved = std::process::Command::new(fnat_tests::bin("fnatctl"))
        .arg("--socket")
        .arg(lab.socket())
        .arg("save")
        .output()
        .unwrap();
    let saved = String::from_utf8_lossy(&saved.stdout);
    assert_eq!(saved.matches("198.19.1.11").count(), 5, "{saved}");
    assert!(!saved.contains("8090"), "{saved}");

    // Back: rs1 answers again and returns to every table; the sorry server leaves.
    let rs1 = http_server(&lab, "s1", 8080, &www[0]);
    servers.children.push(rs1);
    wait_for("198.19.1.11:8080 back", Duration::from_secs(10), || {
        table(&lab, 8080).len() == 2
            && table(&lab, 8081).iter().all(|(_, w)| *w == 1)
            && table(&lab, 8082).len() == 2
    });
    wait_for("notify_up ran", Duration::from_secs(5), || {
        std::fs::read_to_string(dir.join("notified")).is_ok_and(|t| t.contains("up-8080"))
    });
    let both = lab.count_answers(&format!("{VIP}:8082"), 10);
    assert_eq!(both.get("rs1"), Some(&5), "{both:?}");

    // misc_dynamic: exit 7 gives weight 5.
    assert_eq!(table(&lab, 8083)[0], ("198.19.1.11:80".to_string(), 1));
    std::fs::write(dir.join("w11"), "7\n").unwrap();
    wait_for("misc_dynamic weight 5", Duration::from_secs(5), || {
        table(&lab, 8083)[0] == ("198.19.1.11:80".to_string(), 5)
    });

    drop(servers);
    let log = lab.down();
    for line in [
        "fnatd: health: HTTP_GET on service",
        "Removing service [198.19.1.11]:tcp:8080 from VS [198.18.10.100]:tcp:8080",
        "Disabling service [198.19.1.11]:tcp:8080 from VS [198.18.10.100]:tcp:8081",
        "Lost quorum 2-0=2 > 1 for VS [198.18.10.100]:tcp:8082",
        "Adding sorry server [198.19.1.12]:tcp:8090 to VS [198.18.10.100]:tcp:8082",
        "Adding service [198.19.1.11]:tcp:8080 to VS [198.18.10.100]:tcp:8080",
        "Changing weight from 1 to 5 for [198.19.1.11]:tcp:80 of VS [198.18.10.100]:tcp:8083",
    ] {
        assert!(log.contains(line), "'{line}' in fnatd's log:\n{log}");
    }
}

/// The checkers of :8085 once each has run at least twice (retry 0: a failure is final).
fn wait_for_kinds(lab: &Lab) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let last: Vec<serde_json::Value> = health(lab)["checkers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["service"] == "tcp/198.18.10.100:8085")
            .cloned()
            .collect();
        if last.len() == 15 && last.iter().all(|c| c["last_result"] != "none") {
            return last;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "every checker of :8085 ran: {last:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
