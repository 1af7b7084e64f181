//! The state file: the live rule set, durable before a change is acknowledged, read back at
//! start.
//!
//! It is two files. `PATH` holds the rule set as TOML (the `save` format), written atomically
//! (temp file, fsync, rename, fsync of the directory), and starts with a comment naming the
//! last change it includes. `PATH.journal` holds the changes made since, one JSON line each
//! (`{"seq":N,"changes":[…]}`), appended and fsynced before the change is published. So a
//! change costs what it says, not a rewrite of 100 000 real servers; the TOML is rewritten
//! (and the journal emptied) when the journal outgrows it, when a change replaces everything
//! (`restore`, `flush`, `reload`), at start after reading a journal, and at a clean stop.
//!
//! A crash leaves the TOML old or new, never half, and at most a torn last journal line:
//! that change was never acknowledged and is ignored. Journal lines the TOML already includes
//! (a crash between the rename and emptying the journal) are skipped by their number.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use fnat_proto::edit::Change;
use fnat_proto::model::RuleSet;
use fnat_proto::save::{from_toml, to_toml};
use serde::{Deserialize, Serialize};

/// The first line of the TOML: `# fnatd state: rules after change N`.
const HEADER: &str = "# fnatd state: rules after change ";
/// The journal is folded into the TOML once it is larger than this or than the TOML.
const MIN_JOURNAL_BYTES: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    changes: Vec<Change>,
}

/// What the state files held: the rules of the TOML and the journal's changes after them
/// (each a batch applied all-or-nothing, in order).
#[derive(Debug, PartialEq)]
pub struct Saved {
    pub rules: RuleSet,
    pub journal: Vec<Vec<Change>>,
}

#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    journal_path: PathBuf,
    /// Open for appending while it holds lines.
    journal: Option<File>,
    /// The number of the last change recorded.
    seq: u64,
    journal_bytes: u64,
    toml_bytes: u64,
    /// The TOML exists and includes change `seq` or the journal has the rest.
    consistent: bool,
}

fn journal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

impl StateFile {
    /// Reads the state files of `path`: `None` when there is no TOML yet.
    pub fn open(path: &Path) -> Result<(StateFile, Option<Saved>), String> {
        let shown = path.display();
        let mut state = StateFile {
            path: path.to_path_buf(),
            journal_path: journal_path(path),
            journal: None,
            seq: 0,
            journal_bytes: 0,
            toml_bytes: 0,
            consistent: false,
        };
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((state, None)),
            Err(e) => return Err(format!("state file {shown}: {e}")),
        };
        let rules = from_toml(&text).map_err(|e| format!("state file {shown}: {e}"))?;
        state.seq = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix(HEADER))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        state.toml_bytes = text.len() as u64;
        let mut journal = Vec::new();
        match fs::read_to_string(&state.journal_path) {
            Ok(text) => {
                for line in text.split_inclusive('\n') {
                    // A line without its newline, or that does not parse, is a torn write:
                    // the change was never acknowledged, and nothing follows it.
                    let Some(line) = line.strip_suffix('\n') else {
                        break;
                    };
                    let Ok(line) = serde_json::from_str::<Line>(line) else {
                        break;
                    };
                    if line.seq <= state.seq {
                        continue; // already in the TOML
                    }
                    if line.seq != state.seq + 1 {
                        return Err(format!(
                            "state file {}: change {} missing before change {}",
                            state.journal_path.display(),
                            state.seq + 1,
                            line.seq
                        ));
                    }
                    state.seq = line.seq;
                    journal.push(line.changes);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("state file {}: {e}", state.journal_path.display())),
        }
        // The journal is folded into the TOML before anything is appended to it (so a torn
        // line never sits before new ones).
        state.consistent = journal.is_empty() && !state.journal_path.exists();
        Ok((state, Some(Saved { rules, journal })))
    }

    /// Makes the change that turned the rules into `rules` durable (before it is published):
    /// a journal line, or a new TOML when `whole` (the change replaced everything), when
    /// there is no TOML yet, or when the journal has outgrown it.
    pub fn record(
        &mut self,
        rules: &RuleSet,
        changes: &[Change],
        whole: bool,
    ) -> Result<(), String> {
        if whole || !self.consistent || self.journal_bytes > MIN_JOURNAL_BYTES.max(self.toml_bytes)
        {
            return self.compact_to(rules, self.seq + 1);
        }
        let mut line = serde_json::to_string(&Line {
            seq: self.seq + 1,
            changes: changes.to_vec(),
        })
        .map_err(|e| format!("state file: {e}"))?;
        line.push('\n');
        let shown = self.journal_path.display().to_string();
        if self.journal.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.journal_path)
                .map_err(|e| format!("state file {shown}: open: {e}"))?;
            // Its directory entry must be durable too.
            sync_dir(&self.journal_path);
            self.journal = Some(file);
        }
        let written = match self.journal.as_mut() {
            Some(f) => f
                .write_all(line.as_bytes())
                .and_then(|()| f.sync_data())
                .map_err(|e| format!("state file {shown}: append: {e}")),
            None => Err(format!("state file {shown}: not open")),
        };
        if let Err(e) = written {
            // Leave no partial line for later lines to follow: cut it, and fold the journal
            // into the TOML at the next change.
            if let Some(f) = self.journal.as_ref() {
                let _ = f.set_len(self.journal_bytes);
            }
            self.consistent = false;
            return Err(e);
        }
        self.seq += 1;
        self.journal_bytes += line.len() as u64;
        Ok(())
    }

    /// Writes `rules` (which include every recorded change) as the TOML and empties the
    /// journal.
    pub fn compact(&mut self, rules: &RuleSet) -> Result<(), String> {
        self.compact_to(rules, self.seq)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the journal holds changes the TOML does not.
    pub fn has_journal(&self) -> bool {
        !self.consistent || self.journal_bytes > 0
    }

    fn compact_to(&mut self, rules: &RuleSet, seq: u64) -> Result<(), String> {
        let text = format!("{HEADER}{seq}\n{}", to_toml(rules)?);
        store_atomically(&self.path, &text)?;
        self.seq = seq;
        self.toml_bytes = text.len() as u64;
        // The TOML now includes every journal line: they are skipped by number if emptying
        // the journal does not happen.
        self.journal = None;
        match fs::remove_file(&self.journal_path) {
            Ok(()) => sync_dir(&self.journal_path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("state file {}: {e}", self.journal_path.display())),
        }
        self.journal_bytes = 0;
        self.consistent = true;
        Ok(())
    }
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Writes `text` to `path` atomically.
fn store_atomically(path: &Path, text: &str) -> Result<(), String> {
    let fail =
        |what: &str, e: std::io::Error| format!("state file {}: {what}: {e}", path.display());
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut file = File::create(tmp).map_err(|e| fail("create temp file", e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| fail("write", e))?;
    file.sync_all().map_err(|e| fail("fsync", e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| fail("rename", e))?;
    // The rename is durable only once the directory entry is.
    sync_dir(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_proto::edit::apply_all;
    use fnat_proto::model::{Real, Scheduler, Service, ServiceAddr};
    use std::net::Ipv4Addr;

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let dir = std::env::temp_dir().join(format!("fnat-state-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn svc(i: u8) -> ServiceAddr {
        ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, i), 80)
    }

    /// What a daemon restarted on `path` would run.
    fn reload(path: &Path) -> Option<RuleSet> {
        let (_, saved) = StateFile::open(path).unwrap();
        saved.map(|s| {
            let mut rules = s.rules;
            for batch in &s.journal {
                apply_all(&mut rules, batch).unwrap();
            }
            rules
        })
    }

    #[test]
    fn changes_are_journalled_and_read_back() {
        let dir = Dir::new("journal");
        let path = dir.0.join("rules.toml");
        let (mut state, saved) = StateFile::open(&path).unwrap();
        assert_eq!(saved, None);
        let mut rules = RuleSet::default();
        let mut record = |state: &mut StateFile, changes: Vec<Change>, whole: bool| {
            apply_all(&mut rules, &changes).unwrap();
            state.record(&rules, &changes, whole).unwrap();
            rules.clone()
        };
        // The first change writes the TOML (there is none); the next ones append.
        let add = Change::ServiceAdd {
            service: Service::new(svc(1), Scheduler::Rr),
        };
        let after = record(&mut state, vec![add], false);
        assert!(!journal_path(&path).exists());
        assert_eq!(reload(&path), Some(after));
        let toml = fs::read_to_string(&path).unwrap();
        for w in 1..=3 {
            let real = Change::RealAdd {
                service: svc(1),
                real: Real::new(Ipv4Addr::new(192, 168, 0, w), 80, 1),
            };
            record(&mut state, vec![real], false);
        }
        let after = record(
            &mut state,
            vec![Change::TimeoutSet {
                tcp: 5,
                tcp_fin: 0,
                udp: 0,
            }],
            false,
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            toml,
            "the TOML is untouched"
        );
        assert_eq!(reload(&path), Some(after.clone()));
        // A torn last line (a crash while appending) is ignored; nothing before it is lost.
        let mut j = OpenOptions::new()
            .append(true)
            .open(journal_path(&path))
            .unwrap();
        j.write_all(b"{\"seq\":6,\"changes\":[{\"op\":\"flu")
            .unwrap();
        drop(j);
        assert_eq!(reload(&path), Some(after.clone()));
        // Reopened: the journal must be folded in before anything is appended.
        let (mut state, saved) = StateFile::open(&path).unwrap();
        assert_eq!(saved.unwrap().journal.len(), 4);
        assert!(state.has_journal());
        state.compact(&after).unwrap();
        assert!(!journal_path(&path).exists());
        assert!(fs::read_to_string(&path)
            .unwrap()
            .starts_with("# fnatd state: rules after change 5\n"));
        assert_eq!(reload(&path), Some(after.clone()));
        // A crash between the new TOML and emptying the journal: old lines are skipped.
        let line = serde_json::to_string(&Line {
            seq: 5,
            changes: vec![Change::Flush],
        })
        .unwrap();
        fs::write(journal_path(&path), format!("{line}\n")).unwrap();
        assert_eq!(reload(&path), Some(after.clone()));
        // A change that replaces everything rewrites the TOML at once.
        let after = record(&mut state, vec![Change::Flush], true);
        assert!(!journal_path(&path).exists());
        assert_eq!(reload(&path), Some(after));
    }

    #[test]
    fn every_forwarding_method_round_trips() {
        use fnat_proto::model::{ForwardMethod, TunnelOptions, TunnelType};
        let dir = Dir::new("methods");
        let path = dir.0.join("rules.toml");
        let (mut state, _) = StateFile::open(&path).unwrap();
        let mut rules = RuleSet::default();
        let mut service = Service::new(svc(1), Scheduler::Rr);
        let methods = [
            (ForwardMethod::FullNat, TunnelOptions::default()),
            (ForwardMethod::Masq, TunnelOptions::default()),
            (ForwardMethod::Route, TunnelOptions::default()),
            (ForwardMethod::Tunnel, TunnelOptions::default()),
            (
                ForwardMethod::Tunnel,
                TunnelOptions {
                    kind: TunnelType::Gue,
                    port: 6080,
                    csum: true,
                },
            ),
            (
                ForwardMethod::Tunnel,
                TunnelOptions {
                    kind: TunnelType::Gre,
                    port: 0,
                    csum: false,
                },
            ),
        ];
        for (i, (forward, tunnel)) in methods.into_iter().enumerate() {
            let mut r = Real::new(Ipv4Addr::new(192, 168, 0, i as u8 + 1), 80, 1);
            r.forward = forward;
            r.tunnel = tunnel;
            service.reals.push(r);
        }
        let add = vec![Change::ServiceAdd {
            service: service.clone(),
        }];
        apply_all(&mut rules, &add).unwrap();
        // Through the TOML (whole) and through the journal (a later change).
        state.record(&rules, &add, true).unwrap();
        assert_eq!(reload(&path), Some(rules.clone()));
        let mut r = Real::new(Ipv4Addr::new(192, 168, 0, 99), 80, 1);
        r.forward = ForwardMethod::Tunnel;
        r.tunnel.kind = TunnelType::Gue;
        r.tunnel.port = 5555;
        let more = vec![Change::RealAdd {
            service: svc(1),
            real: r,
        }];
        apply_all(&mut rules, &more).unwrap();
        state.record(&rules, &more, false).unwrap();
        assert_eq!(reload(&path), Some(rules));
    }

    #[test]
    fn a_state_file_without_header_or_journal_still_loads() {
        let dir = Dir::new("plain");
        let path = dir.0.join("rules.toml");
        let mut rules = RuleSet::default();
        rules.services.push(Service::new(svc(1), Scheduler::Rr));
        fs::write(&path, to_toml(&rules).unwrap()).unwrap();
        assert_eq!(reload(&path), Some(rules));
        fs::write(&path, "garbage =").unwrap();
        assert!(StateFile::open(&path).is_err());
    }
}
