//! `fnatd replay --progress`: a bar on the terminal (frames read of the captures' total,
//! rate, ETA), nothing at all when stderr is not a terminal. The total is counted from the
//! capture files' record headers before the run; progress is the ports' RX counters, read by
//! the main lcore while it waits for the workers (nothing on the packet path).

use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Frames in a classic pcap file (what net_pcap reads): its record headers, walked.
pub fn count_frames(path: &Path) -> Result<u64, String> {
    let shown = path.display();
    let mut f = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut header = [0u8; 24];
    f.read_exact(&mut header)
        .map_err(|e| format!("{shown}: not a pcap file: {e}"))?;
    let little = match header[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => {
            return Err(format!(
                "{shown}: not a pcap file (magic {:02x?})",
                &header[..4]
            ))
        }
    };
    let mut frames = 0u64;
    let mut record = [0u8; 16];
    loop {
        match f.read_exact(&mut record) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(frames),
            Err(e) => return Err(format!("{shown}: {e}")),
        }
        let len: [u8; 4] = [record[8], record[9], record[10], record[11]];
        let incl = if little {
            u32::from_le_bytes(len)
        } else {
            u32::from_be_bytes(len)
        };
        f.seek(SeekFrom::Current(i64::from(incl)))
            .map_err(|e| format!("{shown}: {e}"))?;
        frames += 1;
    }
}

/// The bar, or nothing when stderr is not a terminal.
pub struct ReplayProgress {
    bar: Option<ProgressBar>,
}

impl ReplayProgress {
    pub fn new(total_frames: u64) -> ReplayProgress {
        if !std::io::stderr().is_terminal() {
            return ReplayProgress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(
            Some(total_frames),
            ProgressDrawTarget::stderr_with_hz(4),
        );
        if let Ok(style) = ProgressStyle::with_template(
            "{wide_bar} {human_pos}/{human_len} frames  {per_sec}  ETA {eta}",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(250));
        bar.tick();
        ReplayProgress { bar: Some(bar) }
    }

    /// Frames read from the captures so far.
    pub fn set(&self, frames: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(frames);
        }
    }

    /// Clears the bar before the statistics are printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_a_real_capture() {
        // python3-dpkt's http.pcap: 43 frames (tshark agrees; replay_passthrough uses it).
        let path = Path::new("/usr/share/doc/python3-dpkt/examples/data/http.pcap");
        assert!(
            path.exists(),
            "python3-dpkt is not installed (setup-debian.sh installs it)"
        );
        assert_eq!(count_frames(path), Ok(43));
    }

    #[test]
    fn not_a_pcap_is_refused() {
        let path = std::env::temp_dir().join(format!("fnat-notpcap-{}", std::process::id()));
        std::fs::write(&path, b"hello, this is not a capture at all").unwrap();
        let got = count_frames(&path);
        let _ = std::fs::remove_file(&path);
        assert!(got.unwrap_err().contains("not a pcap file"));
    }
}
