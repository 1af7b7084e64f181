//! Session sync between two live fnatd directors (scripts/lab/sync.sh): a client holds five
//! TCP connections through the master; the master's sync messages cross the server segment
//! from its lan port's kernel twin to the backup's, which installs the sessions (its
//! `fnatctl sync` counts them, its `-Lnc` lists them with the master's local ports). Then the
//! backup is killed and restarted: it asks for the whole table, and gets it back although
//! the connections are idle (no packet makes the master sync them again). Needs root and
//! network namespaces; fails loudly without them.

mod lab_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fnat_tests::{bin, root};
use lab_support::*;

const CONNS: u64 = 5;

fn fnatctl(lab: &Lab, director: &str, args: &[&str]) -> serde_json::Value {
    lab.appliance_json(director, args)
}

fn ipvsadm(lab: &Lab, director: &str, args: &[&str]) -> String {
    let out = Command::new(bin("fnatctl"))
        .arg("--socket")
        .arg(lab.state_dir().join(format!("{director}.sock")))
        .arg("ipvsadm")
        .args(args)
        .output()
        .expect("fnatctl ipvsadm");
    assert!(
        out.status.success(),
        "ipvsadm {args:?} on {director}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn counter(lab: &Lab, director: &str, name: &str) -> u64 {
    fnatctl(lab, director, &["sync"])["counters"][name]
        .as_u64()
        .unwrap_or(0)
}

/// The client: CONNS connections to VIP:9000 from ports 41001.., each exchanging three lines
/// with the echo server, then held open (idle) for `hold` seconds.
fn hold_connections(lab: &Lab, hold: u32) -> Child {
    let script = format!(
        r#"
import socket, sys, time
socks = []
for i in range({CONNS}):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("198.18.0.2", 41001 + i))
    s.connect(("{VIP}", 9000))
    for n in range(3):
        line = ("conn %d line %d\n" % (i, n)).encode()
        s.sendall(line)
        got = b""
        while len(got) < len(line):
            got += s.recv(100)
        assert got == line, got
    socks.append(s)
print("ready", flush=True)
time.sleep({hold})
"#
    );
    lab.cmd("c", "/usr/bin/python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client")
}

fn backup_sessions(lab: &Lab) -> Vec<serde_json::Value> {
    fnatctl(lab, "b", &["conn", "list"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn backup_learns_the_masters_sessions_and_a_restarted_backup_gets_the_table() {
    let lab = Lab::up_script(
        root().join("scripts/lab/sync.sh"),
        1,
        &[("FNATCTL", bin("fnatctl").display().to_string())],
    );
    wait_for("both daemons running", Duration::from_secs(10), || {
        fnatctl(&lab, "a", &["sync"])["daemons"][0]["active"] == true
            && fnatctl(&lab, "b", &["sync"])["daemons"][0]["active"] == true
    });
    let a = fnatctl(&lab, "a", &["sync"]);
    assert_eq!(a["daemons"][0]["role"], "master", "{a}");
    assert_eq!(a["daemons"][0]["active"], true, "{a}");
    let b = fnatctl(&lab, "b", &["sync"]);
    assert_eq!(b["daemons"][0]["role"], "backup", "{b}");
    let mut client = hold_connections(&lab, 60);
    wait_for(
        "the backup to install the master's sessions",
        Duration::from_secs(20),
        || counter(&lab, "b", "installed") >= CONNS,
    );
    let sent = counter(&lab, "a", "sent_conns");
    assert!(sent >= CONNS, "master sent {sent}");
    assert!(counter(&lab, "a", "sent_messages") >= 1);
    assert!(counter(&lab, "b", "received_conns") >= CONNS);
    let sessions = backup_sessions(&lab);
    let master = fnatctl(&lab, "a", &["conn", "list"]);
    for port in 41001..41001 + CONNS {
        let client_addr = format!("198.18.0.2:{port}");
        let on_b = sessions
            .iter()
            .find(|s| s["client"] == client_addr.as_str())
            .unwrap_or_else(|| panic!("backup lacks {client_addr}: {sessions:?}"));
        let on_a = master
            .as_array()
            .and_then(|m| m.iter().find(|s| s["client"] == client_addr.as_str()))
            .unwrap_or_else(|| panic!("master lacks {client_addr}: {master}"));
        assert_eq!(on_b["state"], "ESTABLISHED");
        assert_eq!(on_b["lip"], on_a["lip"], "the master's LIP:lport");
        assert_eq!(on_b["rs"], "198.19.1.11:9000");
        assert_eq!(on_b["vip"], format!("{VIP}:9000").as_str());
    }
    // ipvsadm -Lnc on the backup lists them too.
    let out = Command::new(bin("fnatctl"))
        .arg("--socket")
        .arg(lab.state_dir().join("b.sock"))
        .args(["ipvsadm", "-Lnc"])
        .output()
        .expect("fnatctl ipvsadm -Lnc");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("198.18.0.2:41001") && text.contains("ESTABLISHED"),
        "{text}"
    );

    // ipvsadm's face: the running daemons as ipvsadm -L --daemon prints them; a backup
    // stopped and started again by ipvsadm asks for the table again.
    assert_eq!(
        ipvsadm(&lab, "a", &["-L", "--daemon"]),
        "master sync daemon (mcast=lan, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, \
         ttl=1)\n"
    );
    ipvsadm(&lab, "b", &["--stop-daemon", "backup"]);
    assert_eq!(ipvsadm(&lab, "b", &["-L", "--daemon"]), "");
    let asked = counter(&lab, "b", "resync_requests_sent");
    let refreshed = counter(&lab, "b", "refreshed");
    ipvsadm(
        &lab,
        "b",
        &[
            "--start-daemon",
            "backup",
            "--mcast-interface",
            "lan",
            "--syncid",
            "7",
        ],
    );
    assert!(ipvsadm(&lab, "b", &["-L", "--daemon"])
        .starts_with("backup sync daemon (mcast=lan, syncid=7,"));
    wait_for(
        "the restarted daemon's resync to refresh the sessions",
        Duration::from_secs(20),
        || counter(&lab, "b", "refreshed") >= refreshed + CONNS,
    );
    assert!(counter(&lab, "b", "resync_requests_sent") > asked);

    // The backup restarts: it knows nothing, asks, and gets the idle connections back.
    let done = Command::new("bash")
        .arg(root().join("scripts/lab/sync.sh"))
        .args(["restart", &lab.prefix, "b"])
        .env("FNATD", bin("fnatd"))
        .output()
        .expect("sync.sh restart");
    assert!(
        done.status.success(),
        "restart: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let asked_before = counter(&lab, "a", "resync_requests_received");
    wait_for(
        "the restarted backup to get the whole table",
        Duration::from_secs(20),
        || counter(&lab, "b", "installed") >= CONNS,
    );
    assert!(counter(&lab, "b", "resync_requests_sent") >= 1);
    assert!(counter(&lab, "a", "resync_requests_received") >= asked_before.max(1));
    let sessions = backup_sessions(&lab);
    for port in 41001..41001 + CONNS {
        let client_addr = format!("198.18.0.2:{port}");
        assert!(
            sessions.iter().any(|s| s["client"] == client_addr.as_str()),
            "restarted backup lacks {client_addr}: {sessions:?}"
        );
    }
    let b = fnatctl(&lab, "b", &["sync"]);
    let rejected: u64 = b["counters"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("rejected_"))
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(rejected, 0, "{b}");
    let _ = client.kill();
    let _ = client.wait();
    lab.down();
}
