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
use lab_support::Lab;

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

fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
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
        Duration::from_secs(15),
        "A is master of VI_1 and VI_2",
        || vrrp_state(lab, "a", "VI_1") == "MASTER" && vrrp_state(lab, "a", "VI_2") == "MASTER",
    );
    wait_for(Duration::from_secs(10), "B is backup hearing A", || {
        let i = vrrp_instance(lab, "b", "VI_1");
        i["state"] == "BACKUP"
            && i["counters"]["advert_rcvd"].as_u64().unwrap_or(0) >= 2
            && vrrp_state(lab, "b", "VI_2") == "BACKUP"
    });
}

fn failover(mode: &str, signal: nix::sys::signal::Signal) {
    let lab = up(mode);
    settled(&lab);
    let (mac_a, mac_b) = (wan_mac(&lab, "a"), wan_mac(&lab, "b"));
    assert_ne!(mac_a, mac_b);
    let live = Live::start(&lab, 9000);
    wait_for(
        Duration::from_secs(10),
        "the live connection echoes",
        || live.echoed() >= 20,
    );
    assert_eq!(client_arp(&lab), mac_a, "the client reaches the VIP at A");
    // Session sync has had time to tell B of the connection.
    std::thread::sleep(Duration::from_millis(500));
    let before = live.echoed();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(director_pid(&lab, "a")), signal).unwrap();
    let took = wait_for(Duration::from_secs(8), "B takes over VI_1", || {
        vrrp_state(&lab, "b", "VI_1") == "MASTER"
    });
    assert_eq!(
        vrrp_state(&lab, "b", "VI_2"),
        "MASTER",
        "VI_2 moves with VI_1"
    );
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
    let arp = wait_for(
        Duration::from_secs(3),
        "the client's ARP entry moves to B",
        || client_arp(&lab) == mac_b,
    );
    eprintln!("lab_ha {mode} {signal:?}: client's ARP at B {arp:?} after that");
    // The same connection carries on.
    wait_for(
        Duration::from_secs(20),
        "the live connection echoes through B",
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
    let took_b = fnatctl(&lab, "b", &["stats"]);
    assert!(
        took_b["stats"][0]["counters"]["conns"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "B scheduled no new connection: {took_b}"
    );
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
