//! Scale-out behind ECMP (docs/scale-out.md), through real kernels and real BIRD 2:
//! `scripts/lab/scaleout.sh` builds a client, a router namespace running BIRD with ECMP
//! (`merge paths`, `fib_multipath_hash_policy=1`), two fnatd appliances each announcing the
//! VIP by BGP over its wan port's kernel twin (`fnatctl bird-hook`), two real servers.
//! Connections spread over both appliances; health failing on one appliance's view, a drain
//! and a `kill -9` withdraw its route; mh gives a client the same real server through
//! either appliance. Needs root, network namespaces and bird; fails loudly without them.

mod lab_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use fnat_tests::{bin, root};
use lab_support::*;

struct Load {
    answers: BTreeMap<String, u64>,
    failed: u64,
    errors: Vec<String>,
    by_port: BTreeMap<String, String>,
}

/// `count` connections from source ports `first`.. (scripts/lab/conns.py in the client).
fn load(lab: &Lab, first: u16, count: u32, threads: u32, pause_s: f64) -> Load {
    let script = root().join("scripts/lab/conns.py");
    let done = lab.run(
        "c",
        &[
            "/usr/bin/python3",
            &script.display().to_string(),
            VIP,
            "80",
            &first.to_string(),
            &count.to_string(),
            &threads.to_string(),
            &pause_s.to_string(),
        ],
        Duration::from_secs(120),
    );
    assert!(done.status.success(), "conns.py: {}", done.stderr);
    let v: serde_json::Value = serde_json::from_str(done.stdout.trim()).expect("conns.py JSON");
    let map = |k: &str| -> BTreeMap<String, serde_json::Value> {
        v[k].as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    Load {
        answers: map("answers")
            .into_iter()
            .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
            .collect(),
        failed: v["failed"].as_u64().expect("failed"),
        errors: v["errors"]
            .as_array()
            .map(|a| a.iter().map(|e| e.to_string()).collect())
            .unwrap_or_default(),
        by_port: map("by_port")
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or("").to_string()))
            .collect(),
    }
}

fn fnatctl(lab: &Lab, appliance: &str, args: &[&str]) -> serde_json::Value {
    lab.appliance_json(appliance, args)
}

/// Connections appliance `x` scheduled so far.
fn conns(lab: &Lab, x: &str) -> u64 {
    fnatctl(lab, x, &["stats"])["stats"][0]["counters"]["conns"]
        .as_u64()
        .expect("conns counter")
}

/// Packets appliance `x` dropped for want of a session.
fn no_session(lab: &Lab, x: &str) -> u64 {
    fnatctl(lab, x, &["stats"])["drops"]["no_session"]
        .as_u64()
        .expect("no_session drops")
}

/// Connections appliance `x` scheduled, once its counter settled.
fn settled(lab: &Lab, x: &str) -> u64 {
    let mut last = conns(lab, x);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        let now = conns(lab, x);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Connections each appliance scheduled for a load, once its counters settled.
fn conns_settled(lab: &Lab) -> (u64, u64) {
    let mut last = (conns(lab, "a"), conns(lab, "b"));
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        let now = (conns(lab, "a"), conns(lab, "b"));
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// The router's next hops for the VIP (from its kernel's table, as BIRD installed it).
fn next_hops(lab: &Lab) -> Vec<String> {
    let r = lab.run("r", &["ip", "route", "show", VIP], Duration::from_secs(5));
    let mut hops: Vec<String> = r
        .stdout
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect();
    hops.sort();
    hops
}

const A: &str = "198.18.1.2";
const B: &str = "198.18.2.2";

/// Waits until the router's next hops are `want`; how long it took.
fn wait_hops(lab: &Lab, want: &[&str], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let hops = next_hops(lab);
        if hops == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "router next hops {hops:?}, want {want:?} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn announce(lab: &Lab, x: &str) -> (bool, String) {
    let s = fnatctl(lab, x, &["status"]);
    let v = &s["vips"][0];
    assert_eq!(v["vip"], VIP, "{s}");
    (
        v["announce"].as_bool().expect("announce"),
        v["reason"].as_str().unwrap_or("").to_string(),
    )
}

fn assert_all_answered(l: &Load, what: &str) {
    assert_eq!(l.failed, 0, "{what}: failed connections: {:?}", l.errors);
}

/// PIDs of the processes named `comm` in the lab's namespace `role`.
fn pids_in(lab: &Lab, role: &str, comm: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", &format!("{}{role}", lab.prefix)])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|pid| {
            comm.is_empty()
                || std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim() == comm)
                    .unwrap_or(false)
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn lab_scaleout_ecmp_bgp() {
    require_root_and_netns();
    let lab = Lab::up_script(
        root().join("scripts/lab/scaleout.sh"),
        2,
        &[
            ("FNATCTL", bin("fnatctl").display().to_string()),
            ("LAB_HTTP", "python".into()),
            ("LAB_BGP_HOLD", "3".into()),
        ],
    );
    let bound = Duration::from_secs(15);
    assert_eq!(next_hops(&lab), [A, B]);
    assert_eq!(announce(&lab, "a"), (true, String::new()));

    // 1,000 connections from distinct source ports spread over both appliances.
    let (a0, b0) = conns_settled(&lab);
    let l = load(&lab, 20000, 1000, 8, 0.0);
    assert_all_answered(&l, "spread");
    assert_eq!(l.answers.values().sum::<u64>(), 1000, "{:?}", l.answers);
    let (a1, b1) = conns_settled(&lab);
    let (da, db) = (a1 - a0, b1 - b0);
    eprintln!("spread: appliance a {da}, b {db}; servers {:?}", l.answers);
    // (A retransmitted SYN may count once more.)
    assert!((1000..=1010).contains(&(da + db)), "a {da} + b {db}");
    let share = da * 100 / (da + db);
    assert!((30..=70).contains(&share), "a got {da}, b {db}");

    // mh with mh-port: the same client address and port reach the same real server through
    // either appliance (each reached alone by draining the other).
    let drained = fnatctl(&lab, "b", &["drain", "--timeout", "0"]);
    assert_eq!(drained["status"]["vips"][0]["announce"], false, "{drained}");
    let withdraw_drain = wait_hops(&lab, &[A], bound);
    let through_a = load(&lab, 30000, 100, 4, 0.0);
    fnatctl(&lab, "b", &["undrain"]);
    wait_hops(&lab, &[A, B], bound);
    fnatctl(&lab, "a", &["drain", "--timeout", "0"]);
    wait_hops(&lab, &[B], bound);
    // The same source ports again: the router's pinning (conntrack) must not send them to a,
    // where the first round went (a new SYN after TIME_WAIT is a new connection for it).
    let (a_before, b_before) = conns_settled(&lab);
    let through_b = load(&lab, 30000, 100, 4, 0.0);
    let (a_after, b_after) = conns_settled(&lab);
    assert_eq!(a_after, a_before, "the second round reached a");
    assert!(b_after - b_before >= 100, "b {b_before}->{b_after}");
    fnatctl(&lab, "a", &["undrain"]);
    wait_hops(&lab, &[A, B], bound);
    assert_all_answered(&through_a, "mh through a");
    assert_all_answered(&through_b, "mh through b");
    assert_eq!(through_a.by_port.len(), 100);
    assert_eq!(through_a.by_port, through_b.by_port);
    assert_eq!(
        through_a.answers.len(),
        2,
        "mh uses both servers: {:?}",
        through_a.answers
    );

    // Drain under a running load: no connection fails, a's sessions end, then it carries
    // nothing.
    let load_thread = {
        let script = root().join("scripts/lab/conns.py");
        let mut c = lab.cmd("c", "/usr/bin/python3");
        c.args([
            &script.display().to_string(),
            VIP,
            "80",
            "40000",
            "3000",
            "4",
            "0.002",
        ]);
        std::thread::spawn(move || c.output().expect("conns.py"))
    };
    let moved_before = no_session(&lab, "b");
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    let report = fnatctl(&lab, "a", &["drain", "--timeout", "8", "--settle", "3"]);
    let drain_took = started.elapsed();
    let out = load_thread.join().expect("load thread");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("conns.py JSON under drain");
    // New connections are served while draining, and none fails: the router pins each
    // connection to the appliance its first packet went to (docs/examples/bird/router-pin.nft),
    // so the connections on the wire through a when its route goes keep reaching a, which
    // still holds their sessions. (Plain ECMP would move them to b, which has no session
    // for them: docs/scale-out.md has the captures.)
    let failed = v["failed"].as_u64().expect("failed");
    let moved = no_session(&lab, "b") - moved_before;
    eprintln!("drain: {failed} failed, b dropped {moved} packets without a session");
    assert_eq!(
        failed, 0,
        "{failed} of 3000 requests failed during the drain: {}",
        v["errors"]
    );
    assert_eq!(moved, 0, "packets of a's connections reached b");
    // a's sessions all ended within the drain.
    let left = report["sessions"][VIP]
        .as_u64()
        .expect("sessions remaining");
    assert_eq!(left, 0, "{report}");
    assert_eq!(report["complete"], true, "{report}");
    wait_hops(&lab, &[B], bound);
    let (a2, _) = conns_settled(&lab);
    let after = load(&lab, 50000, 200, 4, 0.0);
    assert_all_answered(&after, "after the drain");
    let (a3, _) = conns_settled(&lab);
    assert_eq!(a3, a2, "the drained appliance got new connections");
    eprintln!(
        "drain under load: 3000 requests, {failed} failed, {left} sessions left on a; drain returned after {:.1} s",
        drain_took.as_secs_f64()
    );
    fnatctl(&lab, "a", &["undrain"]);
    wait_hops(&lab, &[A, B], bound);

    // Health failing in a's view (its MISC_CHECKs fail): withdrawn within the checks'
    // retry (0.5 s loop, 1 retry) plus the hook's poll and BGP's update.
    let flag = lab.state_dir().join("down-a");
    std::fs::write(&flag, "").unwrap();
    let withdraw_health = wait_hops(&lab, &[B], bound);
    assert_eq!(
        announce(&lab, "a"),
        (false, "no service has an available real server".into())
    );
    let (a4, _) = conns_settled(&lab);
    let l = load(&lab, 51000, 200, 4, 0.0);
    assert_all_answered(&l, "with a's health down");
    let (a5, _) = conns_settled(&lab);
    assert_eq!(a5, a4, "a withdrawn, yet it got new connections");
    std::fs::remove_file(&flag).unwrap();
    let announce_again = wait_hops(&lab, &[A, B], bound);

    // fnatd on a restarted by a plain SIGTERM (`control.withdraw_on_stop_ms = 1500`): it
    // withdraws every VIP itself and keeps forwarding, so the router drops its route while
    // the twin still carries BGP, before fnatd is gone; announced again once the new fnatd
    // has its ports up and rules loaded; BIRD and the hook keep running.
    let fnatd_a = pids_in(&lab, "a", "fnatd");
    assert_eq!(fnatd_a.len(), 1, "{fnatd_a:?}");
    let stop = Instant::now();
    let st = Command::new("kill")
        .args(["-TERM", &fnatd_a[0]])
        .status()
        .expect("kill");
    assert!(st.success());
    let withdraw_stop = wait_hops(&lab, &[B], Duration::from_secs(5));
    assert!(
        std::path::Path::new(&format!("/proc/{}", fnatd_a[0])).exists(),
        "the route went only with fnatd ({:.2} s after SIGTERM): not withdrawn on stop",
        withdraw_stop.as_secs_f64()
    );
    while std::path::Path::new(&format!("/proc/{}", fnatd_a[0])).exists() {
        assert!(
            stop.elapsed() < Duration::from_secs(30),
            "fnatd a does not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let l = load(&lab, 53000, 100, 4, 0.0);
    assert_all_answered(&l, "while a is stopped");
    let started = Instant::now();
    let st = lab.state_dir();
    let log = std::fs::File::create(st.join("fnatd-a2.log")).expect("log");
    let mut child = lab
        .cmd("a", "setsid")
        .arg(bin("fnatd"))
        .args(["run", "--config"])
        .arg(st.join("a.toml"))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("fnatd a again");
    // lab.sh's down stops it with the rest.
    let mut pids_file = std::fs::OpenOptions::new()
        .append(true)
        .open(st.join("pids"))
        .expect("pids file");
    std::io::Write::write_all(&mut pids_file, format!("{}\n", child.id()).as_bytes())
        .expect("pids file");
    let reannounce = wait_hops(&lab, &[A, B], Duration::from_secs(60));
    let restart_total = started.elapsed();
    let (a8, b8) = conns_settled(&lab);
    let l = load(&lab, 54000, 200, 4, 0.0);
    assert_all_answered(&l, "after a's restart");
    let (a9, b9) = conns_settled(&lab);
    assert!(a9 > a8 && b9 > b8, "a {a8}->{a9}, b {b8}->{b9}");
    eprintln!(
        "restart of a: withdrawn {:.2} s after SIGTERM (fnatd still forwarding), announced again {:.1} s after the new fnatd started",
        withdraw_stop.as_secs_f64(),
        reannounce.max(restart_total).as_secs_f64()
    );

    // kill -9 of appliance a (fnatd, BIRD and the hook): the router's hold timer (3 s)
    // removes its route; new connections all go to b. (a, not b: right after its restart,
    // a's new fnatd may reuse local ports its predecessor used, which the real servers hold
    // in TIME_WAIT: see docs/scale-out.md.)
    let pids = pids_in(&lab, "a", "");
    assert!(!pids.is_empty(), "no process in appliance a");
    let killed = Instant::now();
    let st = Command::new("kill")
        .arg("-9")
        .args(&pids)
        .status()
        .expect("kill");
    assert!(st.success());
    // The restarted fnatd was among them.
    let _ = child.wait();
    let withdraw_kill = wait_hops(&lab, &[B], Duration::from_secs(15));
    let b6 = settled(&lab, "b");
    let l = load(&lab, 52000, 200, 4, 0.0);
    assert_all_answered(&l, "after kill -9 of a");
    let b7 = settled(&lab, "b");
    // a is dead: every answer came through b (its counter may still hold a few of the
    // previous load's connections).
    assert!(b7 - b6 >= 200, "b {b6}->{b7}");
    eprintln!(
        "withdraw: drain {:.2} s, health {:.2} s (announced again {:.2} s), kill -9 {:.2} s ({:.2} s since the kill)",
        withdraw_drain.as_secs_f64(),
        withdraw_health.as_secs_f64(),
        announce_again.as_secs_f64(),
        withdraw_kill.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
}

/// Sync counter `name` of appliance `x` (`fnatctl sync`).
fn sync_counter(lab: &Lab, x: &str, name: &str) -> u64 {
    fnatctl(lab, x, &["sync"])["counters"][name]
        .as_u64()
        .unwrap_or(0)
}

/// Plain ECMP (no pinning: `LAB_ROUTER_PIN=0`), as a router that cannot pin does: a drained
/// appliance's connections in flight move to the other one when its route goes. Session sync
/// between the two ACTIVE appliances (a master and a backup daemon on each, `LAB_SYNC=1`)
/// gives the other appliance each moved session as a foreign one: it forwards the client's
/// packets from the drained appliance's LIP, so the real server's replies go back to the
/// drained appliance, which still holds the session. Repeated drains under load, alternating
/// appliances: no request fails.
#[test]
fn lab_scaleout_drain_unpinned_with_sync() {
    require_root_and_netns();
    let lab = Lab::up_script(
        root().join("scripts/lab/scaleout.sh"),
        2,
        &[
            ("FNATCTL", bin("fnatctl").display().to_string()),
            ("LAB_HTTP", "python".into()),
            ("LAB_BGP_HOLD", "3".into()),
            ("LAB_ROUTER_PIN", "0".into()),
            ("LAB_SYNC", "1".into()),
        ],
    );
    let bound = Duration::from_secs(15);
    assert_eq!(next_hops(&lab), [A, B]);
    // Both daemons run on each appliance at once.
    for x in ["a", "b"] {
        let s = fnatctl(&lab, x, &["sync"]);
        let daemons = s["daemons"].as_array().expect("daemons");
        assert_eq!(daemons.len(), 2, "{s}");
        assert!(daemons.iter().all(|d| d["active"] == true), "{s}");
    }
    let rounds = ["a", "b", "a", "b"];
    let mut results = Vec::new();
    for (round, &x) in rounds.iter().enumerate() {
        let other = if x == "a" { "b" } else { "a" };
        let first = 20000 + (round as u16) * 4000;
        let load_thread = {
            let script = root().join("scripts/lab/conns.py");
            let mut c = lab.cmd("c", "/usr/bin/python3");
            c.args([
                &script.display().to_string(),
                VIP,
                "80",
                &first.to_string(),
                "3000",
                "4",
                "0.002",
            ]);
            std::thread::spawn(move || c.output().expect("conns.py"))
        };
        let installed_before = sync_counter(&lab, other, "installed");
        std::thread::sleep(Duration::from_millis(700));
        let report = fnatctl(&lab, x, &["drain", "--timeout", "8", "--settle", "3"]);
        let out = load_thread.join().expect("load thread");
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("conns.py JSON under drain");
        let failed = v["failed"].as_u64().expect("failed");
        let installed = sync_counter(&lab, other, "installed") - installed_before;
        let rejected: BTreeMap<String, u64> = fnatctl(&lab, other, &["sync"])["counters"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| k.starts_with("rejected"))
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .filter(|(_, v)| *v > 0)
                    .collect()
            })
            .unwrap_or_default();
        eprintln!(
            "unpinned drain of {x} with sync (round {}): 3000 requests, {failed} failed; {other} installed {installed} of {x}'s sessions; rejected {rejected:?}; drain {report}",
            round + 1
        );
        results.push((x, failed, installed, v["errors"].clone()));
        // The drained appliance's sessions reached the other one (the sync is what this
        // test is about: without it, the moved connections break).
        assert!(installed > 0, "{other} installed none of {x}'s sessions");
        fnatctl(&lab, x, &["undrain"]);
        wait_hops(&lab, &[A, B], bound);
    }
    for (x, failed, _, errors) in &results {
        assert_eq!(
            *failed, 0,
            "{failed} of 3000 requests failed during the unpinned drain of {x}: {errors}"
        );
    }
}
