//! Tracking, as keepalived does it: `vrrp_script`s run periodically (control side, on the
//! VRRP thread, never waited for) with `rise`/`fall`, and `track_interface` links; each
//! tracked thing either moves the instance's priority by its weight or, with weight 0,
//! puts it in FAULT.
//!
//! Weights (keepalived's): a positive weight is added while the script succeeds (the
//! interface is up); a negative one is added while it fails (is down). The effective
//! priority stays in 1..=254; an address owner (255) is not moved.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `vrrp_script` is keepalived.conf's own type (read by
/// `fnat_keepalived::vrrp::script_block`), run here as it is.
use fnat_keepalived::vrrp::VrrpScript;

/// One script's runs and verdict.
pub struct Script {
    pub config: VrrpScript,
    good: bool,
    /// Consecutive results against the current verdict.
    streak: u32,
    running: Option<(Child, Duration)>,
    next_run: Duration,
    /// Runs finished so far.
    pub finished: u64,
}

impl Script {
    pub fn new(config: VrrpScript) -> Script {
        Script {
            good: !config.init_fail,
            config,
            streak: 0,
            running: None,
            next_run: Duration::ZERO,
            finished: 0,
        }
    }

    pub fn good(&self) -> bool {
        self.good
    }

    /// Reaps a finished (or overdue) run, starts the next one when due. Never blocks.
    pub fn turn(&mut self, now: Duration) {
        if let Some((child, started)) = &mut self.running {
            let result = match child.try_wait() {
                Ok(Some(status)) => Some(status.success()),
                Ok(None) if now >= *started + self.config.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Some(false)
                }
                Ok(None) => None,
                Err(_) => Some(false),
            };
            if let Some(ok) = result {
                self.running = None;
                self.result(ok);
            }
        }
        if self.running.is_none() && now >= self.next_run {
            self.next_run = now + self.config.interval;
            match Command::new("/bin/sh")
                .arg("-c")
                .arg(&self.config.script)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(child) => self.running = Some((child, now)),
                Err(_) => self.result(false),
            }
        }
    }

    /// One run's outcome through `rise`/`fall`.
    fn result(&mut self, ok: bool) {
        self.finished += 1;
        if ok == self.good {
            self.streak = 0;
            return;
        }
        self.streak += 1;
        let needed = if ok {
            self.config.rise
        } else {
            self.config.fall
        };
        if self.streak >= needed {
            self.good = ok;
            self.streak = 0;
        }
    }

    /// When [`Script::turn`] has something to do next.
    pub fn next_deadline(&self) -> Duration {
        match &self.running {
            // Poll a running script every 20 ms (its exit is not a readable event here).
            Some(_) => Duration::ZERO,
            None => self.next_run,
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Some((child, _)) = &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The scripts to run after a reload, as keepalived's (`clear_diff_script`): of `configs`,
/// those `tracked`; a script whose definition is unchanged runs on as it was (its verdict,
/// its running check), a changed one starts anew, a new one starts, and the ones left of
/// `old` stop (their running checks are killed as they are dropped).
pub fn reload(
    mut old: Vec<Script>,
    configs: Vec<VrrpScript>,
    tracked: impl Fn(&str) -> bool,
) -> Vec<Script> {
    let mut out = Vec::new();
    for config in configs {
        if !tracked(&config.name) {
            continue;
        }
        match old.iter().position(|s| s.config.same_definition(&config)) {
            // Where it is written may have moved.
            Some(k) => {
                let mut s = old.swap_remove(k);
                s.config = config;
                out.push(s);
            }
            None => out.push(Script::new(config)),
        }
    }
    out
}

/// Whether a kernel interface is up with its link (`/sys/class/net/IF/operstate` `up`, or
/// `unknown` for devices without carrier reporting). A missing interface is down.
pub fn interface_up(name: &str) -> bool {
    if name.is_empty() || name.contains('/') || name.contains("..") {
        return false;
    }
    match std::fs::read_to_string(format!("/sys/class/net/{name}/operstate")) {
        Ok(s) => matches!(s.trim(), "up" | "unknown"),
        Err(_) => false,
    }
}

/// What an instance's tracked things say: FAULT, or the priority with the weights applied.
pub fn verdict(priority: u8, tracked: impl IntoIterator<Item = (i32, bool)>) -> (bool, u8) {
    let mut fault = false;
    let mut delta = 0i32;
    for (weight, good) in tracked {
        match weight {
            0 if !good => fault = true,
            w if w > 0 && good => delta += w,
            w if w < 0 && !good => delta += w,
            _ => {}
        }
    }
    if priority == 255 {
        return (fault, 255);
    }
    let p = (i32::from(priority) + delta).clamp(1, 254);
    (fault, p as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_move_the_priority_as_keepalived_and_weight_zero_faults() {
        assert_eq!(verdict(100, []), (false, 100));
        // Negative weights count while failing, positive while succeeding.
        assert_eq!(verdict(100, [(-20, false), (-5, true)]), (false, 80));
        assert_eq!(verdict(100, [(30, true), (10, false)]), (false, 130));
        assert_eq!(verdict(100, [(0, false)]), (true, 100));
        assert_eq!(verdict(100, [(0, true)]), (false, 100));
        // Clamped to 1..=254; the owner is not moved.
        assert_eq!(verdict(240, [(50, true)]), (false, 254));
        assert_eq!(verdict(10, [(-50, false)]), (false, 1));
        assert_eq!(verdict(255, [(-50, false)]), (false, 255));
    }

    fn script(cmd: &str, rise: u32, fall: u32) -> Script {
        Script::new(VrrpScript {
            at: fnat_keepalived::Location {
                file: std::sync::Arc::new("k.conf".into()),
                line: 1,
            },
            name: "s".into(),
            script: cmd.into(),
            interval: Duration::from_millis(10),
            timeout: Duration::from_secs(2),
            weight: -10,
            rise,
            fall,
            init_fail: false,
        })
    }

    /// Runs the script's turns on the real clock until `n` runs finished.
    fn runs(s: &mut Script, n: u32) {
        let start = std::time::Instant::now();
        let until = s.finished + u64::from(n);
        while s.finished < until {
            s.turn(start.elapsed());
            std::thread::sleep(Duration::from_millis(5));
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "script runs stalled"
            );
        }
    }

    #[test]
    fn fall_and_rise_need_consecutive_results() {
        let dir = std::env::temp_dir().join(format!("fnat-track-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let flag = dir.join("ok");
        std::fs::write(&flag, "").unwrap();
        let mut s = script(&format!("test -e {}", flag.display()), 2, 3);
        runs(&mut s, 2);
        assert!(s.good());
        std::fs::remove_file(&flag).unwrap();
        runs(&mut s, 2);
        assert!(s.good(), "fall 3: two failures are not enough");
        runs(&mut s, 2);
        assert!(!s.good(), "three failures and more make it bad");
        std::fs::write(&flag, "").unwrap();
        runs(&mut s, 1);
        assert!(!s.good(), "rise 2: one success is not enough");
        runs(&mut s, 2);
        assert!(s.good());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_overdue_script_is_killed_and_fails() {
        let mut s = script("sleep 5", 1, 1);
        s.config.timeout = Duration::from_millis(100);
        let start = std::time::Instant::now();
        while s.good() {
            s.turn(start.elapsed());
            std::thread::sleep(Duration::from_millis(10));
            assert!(start.elapsed() < Duration::from_secs(3), "not killed");
        }
    }

    #[test]
    fn a_reload_keeps_unchanged_scripts_restarts_changed_ones_stops_removed_ones() {
        let named = |name: &str, cmd: &str| {
            let mut s = script(cmd, 1, 1);
            s.config.name = name.into();
            s
        };
        let dir = std::env::temp_dir().join(format!("fnat-track-r-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // `gone` is mid-run when the reload stops it: its check must be killed.
        let pid = dir.join("pid");
        let mut gone = named(
            "gone",
            &format!("echo $$ > {}; exec sleep 30", pid.display()),
        );
        let mut same = named("same", "false");
        let mut changed = named("changed", "false");
        runs(&mut same, 1);
        runs(&mut changed, 1);
        assert!(!same.good() && !changed.good());
        gone.turn(Duration::ZERO);
        let start = std::time::Instant::now();
        while std::fs::read_to_string(&pid).map_or(true, |p| p.trim().is_empty()) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the check did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let child: i32 = std::fs::read_to_string(&pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
        };
        assert!(alive(child));
        let configs = vec![
            // Moved to another line: the same definition.
            VrrpScript {
                at: fnat_keepalived::Location {
                    file: std::sync::Arc::new("other.conf".into()),
                    line: 9,
                },
                ..same.config.clone()
            },
            VrrpScript {
                script: "true".into(),
                ..changed.config.clone()
            },
            VrrpScript {
                name: "new".into(),
                ..same.config.clone()
            },
            VrrpScript {
                name: "untracked".into(),
                ..same.config.clone()
            },
        ];
        let after = reload(vec![gone, same, changed], configs, |n| n != "untracked");
        let by_name = |n: &str| after.iter().find(|s| s.config.name == n);
        let names: Vec<_> = after.iter().map(|s| s.config.name.as_str()).collect();
        assert_eq!(names, ["same", "changed", "new"]);
        let same = by_name("same").unwrap();
        assert_eq!(
            (same.good(), same.finished),
            (false, 1),
            "kept with its verdict"
        );
        assert_eq!(same.config.at.line, 9);
        let changed = by_name("changed").unwrap();
        assert_eq!(changed.config.script, "true");
        assert_eq!(
            (changed.good(), changed.finished),
            (true, 0),
            "started anew (init_fail off: good)"
        );
        assert_eq!(by_name("new").unwrap().finished, 0);
        assert!(!alive(child), "the removed script's check was not killed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn interfaces_are_read_from_sysfs() {
        assert!(interface_up("lo"));
        assert!(!interface_up("fnat-no-such-if"));
        assert!(!interface_up("../lo"));
    }
}
