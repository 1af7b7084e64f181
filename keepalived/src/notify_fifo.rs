//! keepalived's notify FIFOs: `global_defs { notify_fifo PATH; vrrp_notify_fifo PATH;
//! lvs_notify_fifo PATH }`. One writer for both users: VRRP (`INSTANCE "VI_1" MASTER 100`,
//! `GROUP "VG_1" BACKUP 0`) and the health checker (`RS …`/`VS …` lines). Each line goes to
//! the global `notify_fifo` and to the kind's own FIFO.
//!
//! As keepalived: a FIFO that does not exist is made (`mkfifo`, mode 0660 less the umask);
//! a path that exists and is not a FIFO is not written to (said once). fnatd never waits on
//! a reader: the FIFO is opened non-blocking, a line nobody reads (no reader, or a full
//! pipe) is dropped and counted, and the first drop of a run of them is logged.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// One notify FIFO, kept open between lines while a reader holds it.
#[derive(Debug)]
pub struct NotifyFifo {
    path: PathBuf,
    file: Option<File>,
    /// The path exists and is not a FIFO: nothing is written.
    unusable: bool,
    /// Lines dropped (no reader, full pipe, unusable path).
    pub dropped: u64,
    /// Lines written.
    pub written: u64,
    /// A drop was logged and no line got through since.
    logged: bool,
}

impl NotifyFifo {
    /// Makes the FIFO at `path` if it does not exist (as keepalived does at start). Never
    /// blocks; problems are logged, and the lines then dropped.
    pub fn create(path: &Path) -> NotifyFifo {
        let mut fifo = NotifyFifo {
            path: path.to_path_buf(),
            file: None,
            unusable: false,
            dropped: 0,
            written: 0,
            logged: false,
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_fifo() => {}
            Ok(_) => {
                log(&format!(
                    "{}: exists and is not a FIFO: not written to",
                    path.display()
                ));
                fifo.unusable = true;
                fifo.logged = true;
            }
            Err(_) => {
                let mode = Mode::S_IRUSR | Mode::S_IWUSR | Mode::S_IRGRP | Mode::S_IWGRP;
                if let Err(e) = nix::unistd::mkfifo(path, mode) {
                    // Someone else may have made it meanwhile (another writer of fnatd's).
                    let made =
                        std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo());
                    if !made {
                        log(&format!("{}: cannot make the FIFO: {e}", path.display()));
                    }
                }
            }
        }
        fifo
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one line (`\n` added). Never blocks: without a reader, or with the pipe full,
    /// the line is dropped (counted; the first of a run logged). Returns whether it went out.
    pub fn write_line(&mut self, line: &str) -> bool {
        if self.unusable {
            self.dropped += 1;
            return false;
        }
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        // A reader that went away leaves the kept file failing (EPIPE): reopen once.
        for _ in 0..2 {
            if self.file.is_none() {
                self.file = self.open();
            }
            let Some(f) = &mut self.file else {
                break;
            };
            match f.write(&bytes) {
                // Lines up to PIPE_BUF are written whole or not at all.
                Ok(n) if n == bytes.len() => {
                    self.written += 1;
                    self.logged = false;
                    return true;
                }
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => self.file = None,
            }
        }
        self.dropped += 1;
        if !self.logged {
            self.logged = true;
            log(&format!(
                "{}: no reader (or it is full): lines dropped until one reads ({} so far)",
                self.path.display(),
                self.dropped
            ));
        }
        false
    }

    /// Opens the FIFO for writing without waiting: fails at once (ENXIO) when nobody reads it.
    fn open(&self) -> Option<File> {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags((OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
            .open(&self.path)
            .ok()
    }
}

/// The FIFOs one kind of line goes to: the global `notify_fifo` and the kind's own
/// (`vrrp_notify_fifo` or `lvs_notify_fifo`), the same path once.
#[derive(Debug, Default)]
pub struct NotifyFifos(Vec<NotifyFifo>);

impl NotifyFifos {
    /// Makes the FIFOs that do not exist (see [`NotifyFifo::create`]).
    pub fn create(paths: &[PathBuf]) -> NotifyFifos {
        let mut seen: Vec<&PathBuf> = Vec::new();
        let mut out = Vec::new();
        for p in paths {
            if !seen.contains(&p) {
                seen.push(p);
                out.push(NotifyFifo::create(p));
            }
        }
        NotifyFifos(out)
    }

    /// One line to each FIFO.
    pub fn write_line(&mut self, line: &str) {
        for f in &mut self.0 {
            f.write_line(line);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fifos(&self) -> &[NotifyFifo] {
        &self.0
    }
}

fn log(message: &str) {
    eprintln!("fnatd: notify FIFO {message}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fnat-fifo-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_missing_fifo_is_made_and_a_line_reaches_its_reader() {
        let dir = scratch("read");
        let path = dir.join("notify");
        let mut fifo = NotifyFifo::create(&path);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_fifo(), "{meta:?}");
        // A reader (opened read-write so that opening does not wait for a writer).
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert!(fifo.write_line("INSTANCE \"VI_1\" MASTER 100"));
        assert!(fifo.write_line("GROUP \"VG_1\" MASTER 0"));
        let mut lines = std::io::BufReader::new(reader).lines();
        assert_eq!(
            lines.next().unwrap().unwrap(),
            "INSTANCE \"VI_1\" MASTER 100"
        );
        assert_eq!(lines.next().unwrap().unwrap(), "GROUP \"VG_1\" MASTER 0");
        assert_eq!((fifo.written, fifo.dropped), (2, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_reader_a_line_is_dropped_at_once_and_counted() {
        let dir = scratch("none");
        let path = dir.join("notify");
        let mut fifos = NotifyFifos::create(&[path.clone(), path.clone()]);
        assert_eq!(fifos.fifos().len(), 1, "one path, one FIFO");
        let start = Instant::now();
        for _ in 0..3 {
            fifos.write_line("RS [198.18.0.1]:tcp:80 [198.18.0.100]:tcp:80 DOWN");
        }
        assert!(start.elapsed() < Duration::from_secs(1), "blocked");
        assert_eq!(fifos.fifos()[0].dropped, 3);
        assert_eq!(fifos.fifos()[0].written, 0);
        // A reader that comes later gets the lines from then on.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        fifos.write_line("VS [198.18.0.100]:tcp:80 UP");
        let mut lines = std::io::BufReader::new(reader).lines();
        assert_eq!(
            lines.next().unwrap().unwrap(),
            "VS [198.18.0.100]:tcp:80 UP"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_reader_that_goes_away_and_comes_back_gets_the_later_lines() {
        let dir = scratch("again");
        let path = dir.join("notify");
        let mut fifo = NotifyFifo::create(&path);
        let first = reader(&path);
        assert!(fifo.write_line("one"));
        let mut lines = std::io::BufReader::new(first).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "one");
        drop(lines);
        // The kept file now has no reader: dropped, not blocked.
        assert!(!fifo.write_line("two"));
        let second = reader(&path);
        assert!(fifo.write_line("three"));
        let mut lines = std::io::BufReader::new(second).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "three");
        assert_eq!((fifo.written, fifo.dropped), (2, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_pipe_drops_lines_instead_of_blocking() {
        let dir = scratch("full");
        let path = dir.join("notify");
        let mut fifo = NotifyFifo::create(&path);
        let _reader = reader(&path);
        let line = "x".repeat(1000);
        let start = Instant::now();
        // A pipe holds 64 KiB by default: 200 KB cannot all fit.
        for _ in 0..200 {
            fifo.write_line(&line);
        }
        assert!(start.elapsed() < Duration::from_secs(2), "blocked");
        assert!(fifo.dropped > 0 && fifo.written > 0, "{fifo:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_plain_file_is_not_a_fifo_and_is_left_alone() {
        let dir = scratch("plain");
        let path = dir.join("notify");
        std::fs::write(&path, "kept\n").unwrap();
        let mut fifo = NotifyFifo::create(&path);
        assert!(!fifo.write_line("VS [198.18.0.100]:tcp:80 UP"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A reader of the FIFO that does not wait for a writer to open it (O_NONBLOCK; the
    /// tests read only what was written before).
    fn reader(path: &Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(OFlag::O_NONBLOCK.bits())
            .open(path)
            .unwrap()
    }
}
