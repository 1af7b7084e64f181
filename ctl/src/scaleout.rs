//! Scale-out behind ECMP (docs/scale-out.md): `fnatctl drain`/`undrain` and the
//! announcement hook `fnatctl bird-hook`, which turns `status`'s `announce` per VIP into a
//! BIRD include file of static /32 routes and asks BIRD to reconfigure when it changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use fnat_proto::msg::{Query, Request};
use fnat_proto::stats::{ConnEntry, ConnFilter, Status};
use serde::Serialize;

use crate::client::Client;

/// Sessions a drain waits for: opening or established (a closing one has seen its server's
/// or its client's FIN and ends by itself). UDP entries count until they expire.
fn is_live(state: &str) -> bool {
    matches!(state, "ESTABLISHED" | "SYN_RECV" | "SYN_SENT" | "UDP")
}

/// Live sessions per VIP of `vips`.
pub fn sessions(client: &Client, vips: &[Ipv4Addr]) -> Result<BTreeMap<Ipv4Addr, u64>, String> {
    let conns: Vec<ConnEntry> = client
        .call(&Request::Query(Query::Connections {
            filter: ConnFilter::default(),
            limit: Some(1_000_000),
        }))
        .map_err(|e| e.to_string())?;
    let mut n: BTreeMap<Ipv4Addr, u64> = vips.iter().map(|v| (*v, 0)).collect();
    for c in conns.iter().filter(|c| is_live(&c.state)) {
        if let Some(k) = n.get_mut(c.vip.ip()) {
            *k += 1;
        }
    }
    Ok(n)
}

/// What `fnatctl drain` reports.
#[derive(Debug, Serialize)]
pub struct DrainReport {
    /// Every drained VIP has no live session left.
    pub complete: bool,
    pub waited_ms: u64,
    /// Live sessions left per drained VIP.
    pub sessions: BTreeMap<Ipv4Addr, u64>,
    pub status: Status,
}

/// Drains `vips` (all when empty), then waits up to `timeout` for their live sessions to end;
/// not before `settle` (the routers may send new connections until they converge).
pub fn drain(
    client: &Client,
    vips: Vec<Ipv4Addr>,
    timeout: Duration,
    settle: Duration,
) -> Result<DrainReport, String> {
    let status: Status = client
        .call(&Request::Query(Query::Drain { vips }))
        .map_err(|e| e.to_string())?;
    let drained: Vec<Ipv4Addr> = status
        .vips
        .iter()
        .filter(|v| v.draining)
        .map(|v| v.vip)
        .collect();
    let start = Instant::now();
    loop {
        let left = sessions(client, &drained)?;
        let complete = left.values().all(|n| *n == 0);
        let settled = start.elapsed() >= settle.min(timeout);
        if (complete && settled) || start.elapsed() >= timeout {
            return Ok(DrainReport {
                complete,
                waited_ms: start.elapsed().as_millis() as u64,
                sessions: left,
                status,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn drain_text(r: &DrainReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "drained: not announced any more; {} after {:.1} s",
        if r.complete {
            "no live session left"
        } else {
            "timeout, sessions remain"
        },
        r.waited_ms as f64 / 1000.0
    );
    for (vip, n) in &r.sessions {
        let _ = writeln!(s, "{vip:<16} sessions remaining {n}");
    }
    s
}

/// `status`'s VIP table, for humans.
pub fn vips_text(s: &Status) -> String {
    let mut out = String::new();
    if s.draining {
        out.push_str("draining: yes (no VIP is announced)\n");
    }
    if s.vips.is_empty() {
        return out;
    }
    let _ = writeln!(out, "{:<16} {:<9} REASON", "VIP", "ANNOUNCE");
    for v in &s.vips {
        let _ = writeln!(
            out,
            "{:<16} {:<9} {}",
            v.vip,
            if v.announce { "yes" } else { "no" },
            v.reason
        );
    }
    out
}

/// The BIRD include file for `status` (None: fnatd did not answer, nothing is announced).
pub fn bird_routes(status: Option<&Status>) -> String {
    let mut s = String::from(
        "# Written by `fnatctl bird-hook`: the VIPs fnatd announces (docs/scale-out.md).\n",
    );
    match status {
        None => s.push_str("# fnatd does not answer: nothing announced.\n"),
        Some(st) => {
            for v in st.vips.iter().filter(|v| v.announce) {
                let _ = writeln!(s, "route {}/32 blackhole;", v.vip);
            }
        }
    }
    s
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn run_reconfigure(cmd: &str) {
    let mut words = cmd.split_whitespace();
    let Some(program) = words.next() else { return };
    match std::process::Command::new(program)
        .args(words)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "fnatctl bird-hook: `{cmd}` failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout).trim(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("fnatctl bird-hook: cannot run `{cmd}`: {e}"),
    }
}

/// Polls `status` every `interval`; writes `file` and runs `reconfigure` whenever the set of
/// announced VIPs changes (and once at start). fnatd not answering withdraws everything.
/// With `once`, one round. Stops on SIGTERM like any process (the routes stay as written:
/// run it for as long as BIRD runs, e.g. as a systemd unit bound to bird.service).
pub fn bird_hook(
    client: &Client,
    file: &Path,
    reconfigure: &str,
    interval: Duration,
    once: bool,
) -> Result<(), String> {
    let mut last: Option<String> = None;
    loop {
        let status: Option<Status> = match client.call(&Request::Query(Query::Status)) {
            Ok(s) => Some(s),
            Err(e) => {
                if last
                    .as_deref()
                    .is_none_or(|l| !l.contains("does not answer"))
                {
                    eprintln!("fnatctl bird-hook: {e}: withdrawing every VIP");
                }
                None
            }
        };
        let text = bird_routes(status.as_ref());
        if last.as_deref() != Some(text.as_str()) {
            write_atomic(file, &text).map_err(|e| format!("writing {}: {e}", file.display()))?;
            let announced: Vec<String> = status
                .iter()
                .flat_map(|s| s.vips.iter().filter(|v| v.announce))
                .map(|v| v.vip.to_string())
                .collect();
            eprintln!("fnatctl bird-hook: announcing [{}]", announced.join(", "));
            run_reconfigure(reconfigure);
            last = Some(text);
        }
        if once {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_proto::stats::VipStatus;

    #[test]
    fn the_include_file_lists_announced_vips_only() {
        let vip = |a: u8, announce: bool| VipStatus {
            vip: Ipv4Addr::new(198, 18, 10, a),
            announce,
            reason: String::new(),
            draining: false,
            services: vec![],
        };
        let st = Status {
            vips: vec![vip(100, true), vip(101, false)],
            ..Status::default()
        };
        let text = bird_routes(Some(&st));
        let routes: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(routes, ["route 198.18.10.100/32 blackhole;"]);
        assert!(bird_routes(None).lines().all(|l| l.starts_with('#')));
        assert!(is_live("ESTABLISHED") && is_live("UDP") && !is_live("TIME_WAIT"));
        assert!(!is_live("FIN_WAIT") && !is_live("CLOSE_WAIT") && !is_live("LAST_ACK"));
    }
}
