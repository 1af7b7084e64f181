//! High availability through real kernels: `scripts/lab/ha.sh` builds two fnatd directors
//! (A: MASTER 100, B: BACKUP 90, the seed's keepalived.conf with addresses mapped) on a
//! shared client segment and a shared server segment. A client keeps one TCP connection
//! open through the VIP to an echo server, a numbered line every 100 ms; the master is
//! killed (`kill -9`, or SIGTERM: priority 0) and the backup must own the VIP within
//! Master_Down_Interval (under a second after priority 0), the client's ARP entry for the
//! VIP must move to the backup's MAC, the same connection must carry on with every line
//! echoed in order and no reset (session sync), and new connections must work. For
//! full-NAT, NAT and DR services. Needs root and network namespaces; fails loudly without.

mod lab_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fnat_tests::{bin, root};
use lab_support::{wait_for, FifoLines, Lab};

const VIP: &str = "198.18.0.100";
/// The lab's advert_int (seconds).
const ADVERT_INT: f64 = 1.0;

fn ha_script() -> PathBuf {
    root().join("scripts/lab/ha.sh")
}

fn fnatctl(lab: &Lab, x: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin("fnatctl"))
        .arg("--socket")
        .arg(lab.state_dir().join(format!("{x}.sock")))
        .args(args)
        .arg("--json")
        .output()
        .expect("fnatctl");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Director `x`'s state of its VRRP instance `name` ("" when it does not answer).
fn vrrp_state(lab: &Lab, x: &str, name: &str) -> String {
    let v = fnatctl(lab, x, &["vrrp"]);
    v["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name))
        .and_then(|i| i["state"].as_str())
        .unwrap_or("")
        .to_string()
}

fn vrrp_instance(lab: &Lab, x: &str, name: &str) -> serde_json::Value {
    let v = fnatctl(lab, x, &["vrrp"]);
    v["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name).cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// The MAC of director `x`'s wan port (the af_packet PMD takes its veth's).
fn wan_mac(lab: &Lab, x: &str) -> String {
    let dev = format!("{}{x}w", lab.prefix);
    let out = lab.run(
        x,
        &["cat", &format!("/sys/class/net/{dev}/address")],
        Duration::from_secs(5),
    );
    out.stdout.trim().to_string()
}

/// The client's ARP entry for the VIP ("" when none).
fn client_arp(lab: &Lab) -> String {
    let out = lab.run(
        "c",
        &["ip", "-4", "neigh", "show", VIP],
        Duration::from_secs(5),
    );
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "lladdr")
        .map(|w| w[1].to_string())
        .unwrap_or_default()
}

/// The client's live connection (`echo.py lines`): a numbered line every 100 ms.
struct Live {
    child: Child,
    log: PathBuf,
    stop: PathBuf,
}

impl Live {
    fn start(lab: &Lab, port: u16) -> Live {
        let dir = lab.state_dir();
        let log = dir.join(format!("live-{port}.log"));
        let stop = dir.join(format!("live-{port}.stop"));
        let child = lab
            .cmd("c", "/usr/bin/python3")
            .arg(root().join("scripts/lab/echo.py"))
            .args(["lines", VIP, &port.to_string()])
            .arg(&log)
            .arg(&stop)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("echo.py lines");
        Live { child, log, stop }
    }

    /// Lines echoed back so far.
    fn echoed(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Stops sending, reads the rest; the client's summary.
    fn finish(mut self) -> (bool, serde_json::Value, String) {
        std::fs::write(&self.stop, "").unwrap();
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        use std::io::Read;
        let status = self.child.wait().expect("echo.py lines");
        let (mut stdout, mut stderr) = (String::new(), String::new());
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let summary = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
        (status.success(), summary, stderr)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn up(mode: &str) -> Lab {
    Lab::up_script(ha_script(), 2, &[("HA_MODE", mode.to_string())])
}

fn logs(lab: &Lab) -> String {
    let mut s = String::new();
    for x in ["a", "b"] {
        let path = lab.state_dir().join(format!("fnatd-{x}.log"));
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        s.push_str(&format!("--- {}\n{log}", path.display()));
    }
    s
}

fn director_pid(lab: &Lab, x: &str) -> i32 {
    std::fs::read_to_string(lab.state_dir().join(format!("{x}.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Both instances settled: A master, B backup hearing A.
fn settled(lab: &Lab) {
    wait_for(
        "A is master of VI_1 and VI_2",
        Duration::from_secs(15),
        || vrrp_state(lab, "a", "VI_1") == "MASTER" && vrrp_state(lab, "a", "VI_2") == "MASTER",
    );
    wait_for("B is backup hearing A", Duration::from_secs(10), || {
        let i = vrrp_instance(lab, "b", "VI_1");
        i["state"] == "BACKUP"
            && i["counters"]["advert_rcvd"].as_u64().unwrap_or(0) >= 2
            && vrrp_state(lab, "b", "VI_2") == "BACKUP"
    });
}

fn failover(mode: &str, signal: nix::sys::signal::Signal) {
    // keepalived's global notify_fifo, which fnatd makes (mkfifo) as keepalived does.
    let dir = scratch(&format!("f{mode}{}", signal as i32));
    let lab = Lab::up_script(
        ha_script(),
        2,
        &[
            ("HA_MODE", mode.to_string()),
            (
                "HA_EXTRA_KEEPALIVED",
                format!(
                    "global_defs {{\n  notify_fifo {}/@X@.fifo\n}}\n",
                    dir.display()
                ),
            ),
        ],
    );
    settled(&lab);
    let fifo_b = FifoLines::existing(&dir.join("b.fifo"));
    let (mac_a, mac_b) = (wan_mac(&lab, "a"), wan_mac(&lab, "b"));
    assert_ne!(mac_a, mac_b);
    let live = Live::start(&lab, 9000);
    wait_for(
        "the live connection echoes",
        Duration::from_secs(10),
        || live.echoed() >= 20,
    );
    assert_eq!(client_arp(&lab), mac_a, "the client reaches the VIP at A");
    // Session sync has had time to tell B of the connection.
    std::thread::sleep(Duration::from_millis(500));
    let before = live.echoed();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(director_pid(&lab, "a")), signal).unwrap();
    let took = wait_for("B takes over VI_1", Duration::from_secs(8), || {
        vrrp_state(&lab, "b", "VI_1") == "MASTER"
    });
    // The group's members move in one pass of B's VRRP threads, not in one instant.
    wait_for("VI_2 moves with VI_1", Duration::from_millis(1000), || {
        vrrp_state(&lab, "b", "VI_2") == "MASTER"
    });
    // Master_Down_Interval = 3 × advert_int + (256 − 90)/256 × advert_int after A's last
    // advert (at most one advert_int before the kill); priority 0: the skew alone.
    let skew = ADVERT_INT * (256.0 - 90.0) / 256.0;
    let limit = if signal == nix::sys::signal::Signal::SIGKILL {
        Duration::from_secs_f64(3.0 * ADVERT_INT + skew + 0.3)
    } else {
        Duration::from_secs(1)
    };
    eprintln!("lab_ha {mode} {signal:?}: B master after {took:?} (limit {limit:?})");
    assert!(
        took <= limit,
        "takeover after {took:?} > {limit:?}\n{}",
        logs(&lab)
    );
    wait_for(
        "B's notify FIFO tells the takeover",
        Duration::from_secs(2),
        || fifo_b.has("INSTANCE \"VI_1\" MASTER 90") && fifo_b.has("GROUP \"VG_1\" MASTER 0"),
    );
    let arp = wait_for(
        "the client's ARP entry moves to B",
        Duration::from_secs(3),
        || client_arp(&lab) == mac_b,
    );
    eprintln!("lab_ha {mode} {signal:?}: client's ARP at B {arp:?} after that");
    // The same connection carries on.
    wait_for(
        "the live connection echoes through B",
        Duration::from_secs(20),
        || live.echoed() >= before + 30,
    );
    let (ok, summary, stderr) = live.finish();
    eprintln!("lab_ha {mode} {signal:?}: live connection {summary}");
    assert!(
        ok,
        "the live connection broke: {summary} {stderr}\n{}",
        logs(&lab)
    );
    assert_eq!(summary["error"], serde_json::Value::Null, "{summary}");
    assert_eq!(summary["in_order"], true, "{summary}");
    assert_eq!(summary["sent"], summary["received"], "{summary}");
    // New connections work through B.
    let answer = lab.curl(VIP);
    assert!(answer.starts_with("rs"), "{answer}");
    // The counters reach the control plane with the workers' next publication.
    let scheduled = || -> u64 {
        fnatctl(&lab, "b", &["stats"])["stats"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["counters"]["conns"].as_u64())
                    .sum()
            })
            .unwrap_or(0)
    };
    wait_for(
        "B counts the new connection",
        Duration::from_secs(5),
        || scheduled() >= 1,
    );
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fnat_connection_survives_kill_9_of_the_master() {
    failover("fnat", nix::sys::signal::Signal::SIGKILL);
}

#[test]
fn fnat_connection_survives_sigterm_of_the_master() {
    failover("fnat", nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn nat_connection_survives_kill_9_of_the_master() {
    failover("nat", nix::sys::signal::Signal::SIGKILL);
}

#[test]
fn dr_connection_survives_kill_9_of_the_master() {
    failover("dr", nix::sys::signal::Signal::SIGKILL);
}

#[test]
fn nat_connection_survives_sigterm_of_the_master() {
    failover("nat", nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn dr_connection_survives_sigterm_of_the_master() {
    failover("dr", nix::sys::signal::Signal::SIGTERM);
}

/// A temporary directory of the test's own (FIFOs, flag files the scripts test).
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("f16ha{tag}{:04x}", std::process::id() & 0xffff));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `vrrp_script` + `track_script` with weight 0: the script failing on the master puts its
/// instance in FAULT (priority 0 advert, so the backup takes over within the script's
/// interval and the backup's skew), its sync group with it; notify_fault runs and the
/// notify FIFO gets keepalived's lines. The script succeeding again brings it back as
/// backup (nopreempt: the new master keeps the addresses).
#[test]
fn a_failing_track_script_faults_the_master_and_its_group_with_fifo_lines() {
    let dir = scratch("s");
    let fifo_a = FifoLines::open(&dir.join("a.fifo"));
    let fifo_b = FifoLines::open(&dir.join("b.fifo"));
    let d = dir.display();
    let lab = Lab::up_script(
        ha_script(),
        2,
        &[
            (
                "HA_EXTRA_KEEPALIVED",
                format!(
                    "global_defs {{\n  vrrp_notify_fifo {d}/@X@.fifo\n}}\n\
                     vrrp_script chk_fail {{\n  script \"test ! -e {d}/fail-@X@\"\n  \
                     interval 1\n  fall 1\n  rise 1\n}}\n"
                ),
            ),
            (
                "HA_EXTRA_INSTANCE",
                format!(
                    "    track_script {{\n        chk_fail\n    }}\n    \
                     notify_fault \"touch {d}/faulted-@X@\"\n    \
                     notify_master \"touch {d}/master-@X@\"\n    \
                     notify_backup \"touch {d}/backup-@X@\"\n    \
                     notify_stop \"touch {d}/stop-@X@\""
                ),
            ),
        ],
    );
    settled(&lab);
    wait_for(
        "the FIFO lines of the start",
        Duration::from_secs(3),
        || fifo_a.has("INSTANCE \"VI_1\" MASTER 100") && fifo_b.has("INSTANCE \"VI_1\" BACKUP 90"),
    );
    std::fs::write(dir.join("fail-a"), "").unwrap();
    let took = wait_for("B takes over", Duration::from_secs(5), || {
        vrrp_state(&lab, "b", "VI_1") == "MASTER" && vrrp_state(&lab, "b", "VI_2") == "MASTER"
    });
    eprintln!("lab_ha track_script: B master {took:?} after the script's flag");
    // The script runs every second; then priority 0 and B's skew (166/256 s).
    assert!(took < Duration::from_millis(2200), "took {took:?}");
    wait_for(
        "A is in FAULT, VI_2 with VI_1",
        Duration::from_secs(2),
        || vrrp_state(&lab, "a", "VI_1") == "FAULT" && vrrp_state(&lab, "a", "VI_2") == "FAULT",
    );
    let a = vrrp_instance(&lab, "a", "VI_1");
    assert_eq!(a["counters"]["pri_zero_sent"], 1, "{a}");
    wait_for("notify_fault ran", Duration::from_secs(2), || {
        dir.join("faulted-a").exists()
    });
    wait_for("A's FIFO lines", Duration::from_secs(2), || {
        fifo_a.has("INSTANCE \"VI_1\" FAULT 100")
            && fifo_a.has("GROUP \"VG_1\" FAULT 0")
            && fifo_a.has("INSTANCE \"VI_2\" FAULT 100")
    });
    assert!(!dir.join("faulted-b").exists());
    wait_for("notify_master on B", Duration::from_secs(2), || {
        dir.join("master-b").exists()
    });
    // Good again: back to backup; B keeps the addresses.
    std::fs::remove_file(dir.join("fail-a")).unwrap();
    wait_for("A back as backup", Duration::from_secs(4), || {
        vrrp_state(&lab, "a", "VI_1") == "BACKUP" && vrrp_state(&lab, "a", "VI_2") == "BACKUP"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(vrrp_state(&lab, "b", "VI_1"), "MASTER");
    assert_eq!(
        vrrp_state(&lab, "a", "VI_1"),
        "BACKUP",
        "{:?}",
        fifo_a.all()
    );
    assert!(
        fifo_b.has("INSTANCE \"VI_1\" MASTER 90"),
        "{:?}",
        fifo_b.all()
    );
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `track_interface` (weight 0) on the master's server-side veth: cutting that link puts
/// VI_1 in FAULT although its own (client-side) link is fine, and VI_2 with it (sync group).
/// The backup's VI_1 hears priority 0 but, as in keepalived, takes over only with its whole
/// group: when its VI_2, which cannot hear A's priority 0 over the cut link, times out
/// (Master_Down_Interval). Without tracking the VIP would stay on a director whose real
/// servers it cannot reach. A weight instead of 0 lowers the priority (unit tests of
/// vrrp/src/track.rs).
#[test]
fn a_tracked_interface_going_down_moves_the_whole_group() {
    let lab = Lab::up_script(
        ha_script(),
        2,
        &[(
            "HA_EXTRA_INSTANCE",
            "    track_interface {\n        @P@@X@l\n    }".to_string(),
        )],
    );
    // Whoever is master (the port's link may flicker while fnatd starts it, faulting A for
    // a moment, and with nopreempt B then keeps the addresses): its lan link is cut.
    let mut master = String::new();
    wait_for(
        "one master of both, one backup",
        Duration::from_secs(15),
        || {
            for (m, b) in [("a", "b"), ("b", "a")] {
                if vrrp_state(&lab, m, "VI_1") == "MASTER"
                    && vrrp_state(&lab, m, "VI_2") == "MASTER"
                    && vrrp_state(&lab, b, "VI_1") == "BACKUP"
                    && vrrp_state(&lab, b, "VI_2") == "BACKUP"
                {
                    master = m.to_string();
                    return true;
                }
            }
            false
        },
    );
    let backup = if master == "a" { "b" } else { "a" };
    // Both hear each other's adverts before the cut.
    std::thread::sleep(Duration::from_millis(1500));
    let p = lab.prefix.clone();
    let link = format!("{p}x{master}l");
    let cut = lab.run(
        "x",
        &["ip", "link", "set", &link, "down"],
        Duration::from_secs(5),
    );
    assert!(cut.status.success(), "{}", cut.stderr);
    let took = wait_for("the backup takes over both", Duration::from_secs(6), || {
        vrrp_state(&lab, backup, "VI_1") == "MASTER" && vrrp_state(&lab, backup, "VI_2") == "MASTER"
    });
    eprintln!("lab_ha track_interface: {backup} master {took:?} after the link cut");
    let prio = if backup == "a" { 100.0 } else { 90.0 };
    let skew = ADVERT_INT * (256.0 - prio) / 256.0;
    let limit = Duration::from_secs_f64(3.0 * ADVERT_INT + skew + 0.3);
    assert!(took <= limit, "took {took:?} > {limit:?}");
    assert_eq!(vrrp_state(&lab, &master, "VI_1"), "FAULT");
    assert_eq!(vrrp_state(&lab, &master, "VI_2"), "FAULT");
    // The client reaches the VIP through the new master.
    let answer = lab.curl(VIP);
    assert!(answer.starts_with("rs"), "{answer}");
    let up = lab.run(
        "x",
        &["ip", "link", "set", &link, "up"],
        Duration::from_secs(5),
    );
    assert!(up.status.success(), "{}", up.stderr);
    wait_for(
        "the old master back as backup",
        Duration::from_secs(4),
        || {
            vrrp_state(&lab, &master, "VI_1") == "BACKUP"
                && vrrp_state(&lab, &master, "VI_2") == "BACKUP"
        },
    );
}

fn counter(lab: &Lab, x: &str, name: &str, counter: &str) -> u64 {
    vrrp_instance(lab, x, name)["counters"][counter]
        .as_u64()
        .unwrap_or(0)
}

/// Split brain: VRRP between the directors is cut (the switch drops protocol 112) while a
/// connection runs. B hears nothing, becomes master too (both answer for the VIP; B's
/// gratuitous ARP moves the client to it; session sync had given it the connection), and
/// the connection carries on through B. When the link heals, B hears A's higher priority
/// and yields; A hears B's lower-priority adverts and announces its addresses again, so the
/// client comes back to A. The connection never loses or reorders a line, the VRRP
/// counters tell the story exactly, and each fnatd's books balance.
#[test]
fn split_brain_heals_without_corrupting_the_connection() {
    let lab = up("fnat");
    settled(&lab);
    let (mac_a, mac_b) = (wan_mac(&lab, "a"), wan_mac(&lab, "b"));
    let live = Live::start(&lab, 9000);
    wait_for(
        "the live connection echoes",
        Duration::from_secs(10),
        || live.echoed() >= 20,
    );
    std::thread::sleep(Duration::from_millis(500));
    let cut = lab
        .cmd("x", "nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(
                b"table bridge fnatlab_split {\n  chain forward { type filter hook forward \
                  priority 0; policy accept; ip protocol 112 drop; }\n}\n",
            )?;
            c.wait()
        })
        .expect("nft");
    assert!(cut.success(), "nft: cutting VRRP between the directors");
    wait_for("both masters", Duration::from_secs(8), || {
        vrrp_state(&lab, "b", "VI_1") == "MASTER" && vrrp_state(&lab, "b", "VI_2") == "MASTER"
    });
    assert_eq!(
        vrrp_state(&lab, "a", "VI_1"),
        "MASTER",
        "A gave up while cut off"
    );
    wait_for(
        "the client follows B's announcement",
        Duration::from_secs(3),
        || client_arp(&lab) == mac_b,
    );
    let at_b = live.echoed();
    wait_for(
        "the connection runs through B",
        Duration::from_secs(20),
        || live.echoed() >= at_b + 20,
    );
    // Heal.
    let healed = lab.run(
        "x",
        &["nft", "delete", "table", "bridge", "fnatlab_split"],
        Duration::from_secs(5),
    );
    assert!(healed.status.success(), "{}", healed.stderr);
    let took = wait_for("one master again: A", Duration::from_secs(5), || {
        vrrp_state(&lab, "b", "VI_1") == "BACKUP"
            && vrrp_state(&lab, "b", "VI_2") == "BACKUP"
            && vrrp_state(&lab, "a", "VI_1") == "MASTER"
    });
    eprintln!("lab_ha split brain: healed {took:?} after the link came back");
    wait_for("the client is back at A", Duration::from_secs(3), || {
        client_arp(&lab) == mac_a
    });
    let at_a = live.echoed();
    wait_for(
        "the connection runs through A again",
        Duration::from_secs(20),
        || live.echoed() >= at_a + 20,
    );
    let (ok, summary, stderr) = live.finish();
    eprintln!("lab_ha split brain: live connection {summary}");
    assert!(
        ok,
        "the connection broke: {summary} {stderr}\n{}",
        logs(&lab)
    );
    assert_eq!(summary["sent"], summary["received"], "{summary}");
    assert_eq!(summary["in_order"], true, "{summary}");
    // The counters add up: B took over once and gave back once; A never let go.
    for (x, became, released) in [("a", 1, 0), ("b", 1, 1)] {
        for name in ["VI_1", "VI_2"] {
            assert_eq!(
                (
                    counter(&lab, x, name, "become_master"),
                    counter(&lab, x, name, "release_master")
                ),
                (became, released),
                "{x} {name}: {}",
                vrrp_instance(&lab, x, name)
            );
        }
    }
    assert!(
        counter(&lab, "a", "VI_1", "advert_rcvd") >= 1,
        "A never heard B"
    );
    let logs = lab.down_logs(&["fnatd-a.log", "fnatd-b.log"]);
    for log in &logs {
        lab_support::assert_clean_exit(log);
    }
}

/// `fnatctl reload` with a changed keepalived.conf: the VRRP instances take the new
/// priority and keep their state (the master stays master, nothing flaps; B, nopreempt,
/// stays backup); a reload that would change which instances run (another
/// virtual_router_id) is refused for VRRP and the running instances are left as they were.
#[test]
fn a_vrrp_reload_keeps_state_and_refuses_a_changed_instance_set() {
    let lab = up("fnat");
    settled(&lab);
    let conf = lab.state_dir().join("a-keepalived.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace("priority 100", "priority 80")).unwrap();
    let reload = || {
        let out = Command::new(bin("fnatctl"))
            .arg("--socket")
            .arg(lab.state_dir().join("a.sock"))
            .arg("reload")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "reload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    reload();
    wait_for("A runs with priority 80", Duration::from_secs(3), || {
        let i = vrrp_instance(&lab, "a", "VI_1");
        i["priority"] == 80 && i["effective_priority"] == 80
    });
    std::thread::sleep(Duration::from_secs(3));
    for name in ["VI_1", "VI_2"] {
        let a = vrrp_instance(&lab, "a", name);
        assert_eq!(a["state"], "MASTER", "{a}");
        assert_eq!(a["counters"]["become_master"], 1, "{a}");
        assert_eq!(a["counters"]["release_master"], 0, "{a}");
        assert_eq!(vrrp_state(&lab, "b", name), "BACKUP");
    }
    // Another virtual_router_id: not applied, the instance runs on as it was.
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("virtual_router_id 51", "virtual_router_id 61"),
    )
    .unwrap();
    reload();
    std::thread::sleep(Duration::from_millis(500));
    let a = vrrp_instance(&lab, "a", "VI_1");
    assert_eq!(a["virtual_router_id"], 51, "{a}");
    assert_eq!(a["state"], "MASTER", "{a}");
    let log = std::fs::read_to_string(lab.state_dir().join("fnatd-a.log")).unwrap();
    assert!(
        log.contains("fnatd: reload: vrrp on") && log.contains("restart fnatd to apply that"),
        "{log}"
    );
}

/// `fnatctl reload` re-reads `vrrp_script` blocks as keepalived's reload does: a script
/// whose definition changed starts anew with it (here it fails from then on, and its new
/// weight moves the priority: 100 − 40 = 60); a `vrrp_script` keepalived would refuse
/// (`fall 0`) refuses the whole reload with file, line, key and reason, and the running
/// configuration stays; fixed, the next reload applies.
#[test]
fn a_reload_restarts_a_changed_vrrp_script_and_refuses_an_invalid_one() {
    let lab = Lab::up_script(
        ha_script(),
        2,
        &[
            (
                "HA_EXTRA_KEEPALIVED",
                "vrrp_script chk {\n  script \"true\"\n  interval 1\n  weight -30\n}\n".into(),
            ),
            (
                "HA_EXTRA_INSTANCE",
                "    track_script {\n        chk\n    }".into(),
            ),
        ],
    );
    settled(&lab);
    let effective = || vrrp_instance(&lab, "a", "VI_1")["effective_priority"].clone();
    assert_eq!(effective(), 100, "the script succeeds: no weight");
    let conf = lab.state_dir().join("a-keepalived.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let reload = || {
        Command::new(bin("fnatctl"))
            .arg("--socket")
            .arg(lab.state_dir().join("a.sock"))
            .arg("reload")
            .output()
            .unwrap()
    };
    // Changed: it fails from now on, with weight -40.
    let failing = text
        .replace("script \"true\"", "script \"false\"")
        .replace("weight -30", "weight -40");
    std::fs::write(&conf, &failing).unwrap();
    let out = reload();
    assert!(
        out.status.success(),
        "reload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = wait_for(
        "A's changed script fails: 100 - 40",
        Duration::from_secs(4),
        || effective() == 60,
    );
    eprintln!("lab_ha reload: the changed vrrp_script took effect {took:?} after the reload");
    assert_eq!(vrrp_state(&lab, "a", "VI_1"), "MASTER", "nothing flaps");
    // Invalid: refused as a whole, naming file, line, key and reason.
    let invalid = failing
        .replace("script \"false\"", "script \"true\"")
        .replace("  interval 1\n", "  interval 1\n  fall 0\n");
    let line = invalid
        .lines()
        .position(|l| l.trim() == "fall 0")
        .expect("fall 0 written")
        + 1;
    std::fs::write(&conf, &invalid).unwrap();
    let out = reload();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an invalid vrrp_script was accepted");
    assert!(
        stderr.contains(&format!("{}:{line}: key `fall`", conf.display()))
            && stderr.contains("at least 1"),
        "{stderr}"
    );
    // The running configuration stays: the failing script, weight -40.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        effective(),
        60,
        "the refused reload changed the running scripts"
    );
    // Fixed: applied (the script succeeds again).
    std::fs::write(&conf, invalid.replace("  fall 0\n", "")).unwrap();
    let out = reload();
    assert!(
        out.status.success(),
        "reload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("A's script succeeds again", Duration::from_secs(4), || {
        effective() == 100
    });
    let a = vrrp_instance(&lab, "a", "VI_1");
    assert_eq!(a["counters"]["become_master"], 1, "{a}");
}

/// keepalived's gratuitous-ARP schedule with its defaults (`garp_master_repeat 5`,
/// `garp_master_delay 5`): the new master announces the VIP 5 times at takeover and 5 times
/// again about 5 s later, as the client's own capture (tcpdump) sees them.
#[test]
fn takeover_announces_the_vip_on_keepalived_s_garp_schedule() {
    let lab = up("fnat");
    settled(&lab);
    let mac_b = wan_mac(&lab, "b");
    let p = lab.prefix.clone();
    let capture = lab.state_dir().join("garp.txt");
    let mut tcpdump = lab
        .cmd("c", "tcpdump")
        .args(["-l", "-n", "-tt", "-i", &format!("{p}c0")])
        .args(["arp", "and", "ether", "src", &mac_b])
        .stdout(std::fs::File::create(&capture).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(1000));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(director_pid(&lab, "a")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_for("B takes over", Duration::from_secs(3), || {
        vrrp_state(&lab, "b", "VI_1") == "MASTER"
    });
    std::thread::sleep(Duration::from_secs(7));
    let _ = tcpdump.kill();
    let _ = tcpdump.wait();
    let text = std::fs::read_to_string(&capture).unwrap();
    let times: Vec<f64> = text
        .lines()
        .filter(|l| l.contains(&format!("who-has {VIP} tell {VIP}")))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(!times.is_empty(), "no gratuitous ARP for the VIP:\n{text}");
    let first = times[0];
    let burst = times.iter().filter(|t| **t - first < 1.0).count();
    let later: Vec<f64> = times
        .iter()
        .map(|t| t - first)
        .filter(|d| *d >= 4.0)
        .collect();
    eprintln!(
        "lab_ha garp: {burst} at takeover, {} later at {later:?} s",
        later.len()
    );
    assert_eq!(burst, 5, "garp_master_repeat 5 at takeover:\n{text}");
    assert_eq!(later.len(), 5, "5 again after garp_master_delay:\n{text}");
    assert!(
        later.iter().all(|d| (4.8..6.0).contains(d)),
        "the second burst {later:?} s after the first, garp_master_delay is 5 s"
    );
}

/// `track_script` with a weight: the master's script failing lowers its effective priority
/// (100 − 30 = 70) below the backup's 90; with `preempt` the backup takes both instances
/// over after its Master_Down_Interval and the old master, hearing 90 > 70, yields. The
/// script succeeding again gives A back its 100, and A preempts.
#[test]
fn a_track_script_weight_moves_the_election() {
    let dir = scratch("w");
    let d = dir.display();
    let track = "    preempt\n    track_script {\n        chk_w weight -30\n    }".to_string();
    let lab = Lab::up_script(
        ha_script(),
        2,
        &[
            (
                "HA_EXTRA_KEEPALIVED",
                format!(
                    "vrrp_script chk_w {{\n  script \"test ! -e {d}/fail-@X@\"\n  \
                     interval 1\n  weight -5\n}}\n"
                ),
            ),
            ("HA_EXTRA_INSTANCE", track.clone()),
            ("HA_EXTRA_VI2", track),
        ],
    );
    settled(&lab);
    std::fs::write(dir.join("fail-a"), "").unwrap();
    wait_for("A advertises 70", Duration::from_secs(3), || {
        let i = vrrp_instance(&lab, "a", "VI_1");
        i["priority"] == 100 && i["effective_priority"] == 70
    });
    let took = wait_for("B preempts both", Duration::from_secs(6), || {
        vrrp_state(&lab, "b", "VI_1") == "MASTER" && vrrp_state(&lab, "b", "VI_2") == "MASTER"
    });
    eprintln!("lab_ha track_script weight: B master {took:?} after A's 70");
    let limit = Duration::from_secs_f64(3.0 * ADVERT_INT + ADVERT_INT * 166.0 / 256.0 + 0.5);
    assert!(took <= limit, "took {took:?} > {limit:?}");
    wait_for("A yields", Duration::from_secs(2), || {
        vrrp_state(&lab, "a", "VI_1") == "BACKUP" && vrrp_state(&lab, "a", "VI_2") == "BACKUP"
    });
    std::fs::remove_file(dir.join("fail-a")).unwrap();
    wait_for("A (100 again) preempts B", Duration::from_secs(8), || {
        vrrp_state(&lab, "a", "VI_1") == "MASTER" && vrrp_state(&lab, "a", "VI_2") == "MASTER"
    });
    wait_for("B backup again", Duration::from_secs(2), || {
        vrrp_state(&lab, "b", "VI_1") == "BACKUP" && vrrp_state(&lab, "b", "VI_2") == "BACKUP"
    });
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
}
