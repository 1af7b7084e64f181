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

/// One `vrrp_script`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptConfig {
    pub name: String,
    /// Run by `/bin/sh -c`.
    pub command: String,
    pub interval: Duration,
    /// A run longer than this is killed and counts as a failure.
    pub timeout: Duration,
    pub weight: i32,
    pub rise: u32,
    pub fall: u32,
    pub init_fail: bool,
}

impl ScriptConfig {
    pub fn from_keepalived(s: &fnat_keepalived::vrrp::VrrpScript) -> ScriptConfig {
        ScriptConfig {
            name: s.name.clone(),
            command: s.script.clone(),
            interval: s.interval,
            timeout: s.timeout,
            weight: s.weight,
            rise: s.rise,
            fall: s.fall,
            init_fail: s.init_fail,
        }
    }
}

/// One script's runs and verdict.
pub struct Script {
    pub config: ScriptConfig,
    good: bool,
    /// Consecutive results against the current verdict.
    streak: u32,
    running: Option<(Child, Duration)>,
    next_run: Duration,
    /// Runs finished so far.
    pub finished: u64,
}

impl Script {
    pub fn new(config: ScriptConfig) -> Script {
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
                .arg(&self.config.command)
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
        Script::new(ScriptConfig {
            name: "s".into(),
            command: cmd.into(),
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
    fn interfaces_are_read_from_sysfs() {
        assert!(interface_up("lo"));
        assert!(!interface_up("fnat-no-such-if"));
        assert!(!interface_up("../lo"));
    }
}
