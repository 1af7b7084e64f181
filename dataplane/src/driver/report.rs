//! The statistics `fnatd` prints when it stops: testpmd's forward-statistics block per port and
//! accumulated, then every drop counter by reason, then a line proving the accounting holds.

use std::fmt::Write;

use fnat_engine::{DropReason, WorkerStats};

use super::worker_loop::WorkerReport;

/// Per-port numbers the way testpmd shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortTotals {
    /// Frames the workers pulled from the port.
    pub rx_packets: u64,
    /// Frames the device itself missed or could not store (imissed + rx_nombuf + ierrors).
    pub rx_dropped: u64,
    pub tx_packets: u64,
    /// Frames the TX queue refused.
    pub tx_dropped: u64,
}

/// Everything that is printed at exit, summed over workers.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub ports: Vec<(String, PortTotals)>,
    pub engine: WorkerStats,
    /// Mbufs not back in the pool after ports were closed (must be 0), when measured.
    pub mbufs_leaked: Option<u32>,
}

impl Totals {
    /// Sums the workers' reports; `device_rx_dropped[i]` comes from port i's hardware stats.
    pub fn new(
        port_names: &[String],
        reports: &[WorkerReport],
        device_rx_dropped: &[u64],
    ) -> Totals {
        let mut ports: Vec<(String, PortTotals)> = port_names
            .iter()
            .zip(device_rx_dropped)
            .map(|(name, dropped)| {
                (
                    name.clone(),
                    PortTotals {
                        rx_dropped: *dropped,
                        ..PortTotals::default()
                    },
                )
            })
            .collect();
        let mut engine = WorkerStats::default();
        for r in reports {
            engine.add(&r.engine);
            for (i, (_, t)) in ports.iter_mut().enumerate() {
                t.rx_packets += r.port_rx.get(i).copied().unwrap_or(0);
                t.tx_packets += r.port_tx.get(i).copied().unwrap_or(0);
                t.tx_dropped += r.port_tx_dropped.get(i).copied().unwrap_or(0);
            }
        }
        Totals {
            ports,
            engine,
            mbufs_leaked: None,
        }
    }

    pub fn rx(&self) -> u64 {
        self.ports.iter().map(|(_, t)| t.rx_packets).sum()
    }

    pub fn tx(&self) -> u64 {
        self.ports.iter().map(|(_, t)| t.tx_packets).sum()
    }

    /// True when the books close: every frame received or originated by the engine (ARP
    /// requests, gratuitous ARPs) was transmitted, dropped with a reason, consumed by the
    /// engine (ARP it learned from), or is still held waiting for a neighbour.
    pub fn balanced(&self) -> bool {
        self.rx() + self.engine.originated
            == self.tx() + self.engine.dropped() + self.engine.consumed + self.engine.held
    }

    /// The text printed at exit.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let border = "----------------------";
        let mut acc = PortTotals::default();
        for (i, (name, t)) in self.ports.iter().enumerate() {
            let _ = writeln!(
                out,
                "\n  {border} Forward statistics for port {i:<2} ({name}) {border}"
            );
            render_counts(&mut out, t);
            let _ = writeln!(out, "  {border}--------------------------------{border}");
            acc.rx_packets += t.rx_packets;
            acc.rx_dropped += t.rx_dropped;
            acc.tx_packets += t.tx_packets;
            acc.tx_dropped += t.tx_dropped;
        }
        let plus = "+++++++++++++++";
        let _ = writeln!(
            out,
            "\n  {plus} Accumulated forward statistics for all ports{plus}"
        );
        render_counts(&mut out, &acc);
        let _ = writeln!(
            out,
            "  {plus}++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++{plus}"
        );
        let _ = writeln!(out, "\n  Drops by reason:");
        for reason in DropReason::ALL {
            let _ = writeln!(
                out,
                "    {:<24} {}",
                reason.name(),
                self.engine.drops[*reason as usize]
            );
        }
        let _ = writeln!(
            out,
            "  Redirected between workers: {}",
            self.engine.redirected
        );
        let _ = writeln!(
            out,
            "  Fast path (established flows): {} of {} transmitted frames",
            self.engine.fast_path, self.engine.transmitted
        );
        if let Some(leaked) = self.mbufs_leaked {
            let _ = writeln!(out, "  mbufs leaked: {leaked}");
        }
        let e = &self.engine;
        let _ = writeln!(
            out,
            "  ARP: replies sent {}, requests sent {}, gratuitous sent {}, neighbours learned {}; \
             held for a neighbour {} (released {})",
            e.arp_replies_sent,
            e.arp_requests_sent,
            e.gratuitous_arps_sent,
            e.neighbours_learned,
            e.held_total,
            e.held_released
        );
        let _ = writeln!(
            out,
            "  accounted: RX {} + originated {} {} forwarded {} + dropped {} + consumed {} + held {}",
            self.rx(),
            e.originated,
            if self.balanced() { "=" } else { "!=" },
            self.tx(),
            e.dropped(),
            e.consumed,
            e.held
        );
        out
    }
}

fn render_counts(out: &mut String, t: &PortTotals) {
    let _ = writeln!(
        out,
        "  RX-packets: {:<14} RX-dropped: {:<14} RX-total: {}",
        t.rx_packets,
        t.rx_dropped,
        t.rx_packets + t.rx_dropped
    );
    let _ = writeln!(
        out,
        "  TX-packets: {:<14} TX-dropped: {:<14} TX-total: {}",
        t.tx_packets,
        t.tx_dropped,
        t.tx_packets + t.tx_dropped
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_testpmd_lines_and_accounting() {
        let mut engine = WorkerStats::default();
        engine.drops[DropReason::NoService as usize] = 2;
        let report = WorkerReport {
            worker: 0,
            engine,
            port_rx: vec![5, 0],
            port_tx: vec![0, 3],
            port_tx_dropped: vec![0, 0],
            busy_cycles: 0,
        };
        let totals = Totals::new(&["a".into(), "b".into()], &[report], &[0, 0]);
        let text = totals.render();
        assert!(
            text.contains("  RX-packets: 5              RX-dropped: 0              RX-total: 5\n"),
            "{text}"
        );
        assert!(text.contains("    no_service               2\n"), "{text}");
        assert!(
            text.contains(
                "  accounted: RX 5 + originated 0 = forwarded 3 + dropped 2 + consumed 0 + held 0\n"
            ),
            "{text}"
        );
        assert!(totals.balanced());
    }

    #[test]
    fn unbalanced_accounting_says_so() {
        let report = WorkerReport {
            worker: 0,
            engine: WorkerStats::default(),
            port_rx: vec![5],
            port_tx: vec![4],
            port_tx_dropped: vec![0],
            busy_cycles: 0,
        };
        let totals = Totals::new(&["a".into()], &[report], &[0]);
        assert!(!totals.balanced());
        assert!(totals.render().contains(
            "accounted: RX 5 + originated 0 != forwarded 4 + dropped 0 + consumed 0 + held 0"
        ));
    }
}
