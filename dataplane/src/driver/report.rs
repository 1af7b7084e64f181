//! The statistics `fnatd` prints when it stops: testpmd's forward-statistics block per port and
//! accumulated, then every drop counter by reason, then a line proving the accounting holds.

use std::fmt::Write;

use fnat_engine::{DropReason, WorkerStats};

use super::kernel::TwinTotals;
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
    /// The exception path, when some port has a kernel twin: what the kernel-path thread
    /// counted for each twin (by interface name).
    pub kernel: Option<Vec<(String, TwinTotals)>>,
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
            kernel: None,
        }
    }

    pub fn rx(&self) -> u64 {
        self.ports.iter().map(|(_, t)| t.rx_packets).sum()
    }

    pub fn tx(&self) -> u64 {
        self.ports.iter().map(|(_, t)| t.tx_packets).sum()
    }

    /// True when the books close: every frame received, originated by the engine (ARP
    /// requests, gratuitous ARPs) or sent by a kernel twin was transmitted, handed to a
    /// kernel twin, dropped with a reason, consumed by the engine (ARP it learned from), or
    /// is still held waiting for a neighbour; and the kernel-path thread's own books close
    /// (what the workers handed it reached the twin or was dropped, and back).
    pub fn balanced(&self) -> bool {
        let e = &self.engine;
        let workers = self.rx() + e.originated + e.from_kernel
            == self.tx() + e.to_kernel + e.dropped() + e.consumed + e.held;
        let kernel = self.kernel.as_ref().is_none_or(|twins| {
            let from_workers: u64 = twins.iter().map(|(_, t)| t.from_workers).sum();
            let to_workers: u64 = twins.iter().map(|(_, t)| t.to_workers).sum();
            twins.iter().all(|(_, t)| t.balanced())
                && from_workers == e.to_kernel
                && to_workers == e.from_kernel
        });
        workers && kernel
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
        if let Some(twins) = &self.kernel {
            for (name, t) in twins {
                let _ = writeln!(
                    out,
                    "  Kernel twin {name}: from workers {} = to kernel {} + kernel_tx_full {}; \
                     from kernel {} = to workers {} + from_kernel_ring_full {} + kernel_stopped {}",
                    t.from_workers,
                    t.to_twin,
                    t.twin_tx_full,
                    t.from_twin,
                    t.to_workers,
                    t.ring_full,
                    t.stopped
                );
            }
        }
        let relation = if self.balanced() { "=" } else { "!=" };
        let _ = match self.kernel {
            None => writeln!(
                out,
                "  accounted: RX {} + originated {} {relation} forwarded {} + dropped {} + consumed {} + held {}",
                self.rx(),
                e.originated,
                self.tx(),
                e.dropped(),
                e.consumed,
                e.held
            ),
            Some(_) => writeln!(
                out,
                "  accounted: RX {} + originated {} + from_kernel {} {relation} forwarded {} + to_kernel {} + dropped {} + consumed {} + held {}",
                self.rx(),
                e.originated,
                e.from_kernel,
                self.tx(),
                e.to_kernel,
                e.dropped(),
                e.consumed,
                e.held
            ),
        };
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

    #[test]
    fn with_a_kernel_twin_the_books_include_the_kernel_path() {
        let mut engine = WorkerStats {
            to_kernel: 4,
            from_kernel: 6,
            ..WorkerStats::default()
        };
        engine.drops[DropReason::KernelPortTxFull as usize] = 1;
        let report = WorkerReport {
            worker: 0,
            engine,
            port_rx: vec![10],
            port_tx: vec![11],
            port_tx_dropped: vec![1],
            busy_cycles: 0,
        };
        let mut totals = Totals::new(&["wan".into()], &[report], &[0]);
        let twin = TwinTotals {
            from_workers: 4,
            to_twin: 3,
            twin_tx_full: 1,
            from_twin: 7,
            to_workers: 6,
            ring_full: 1,
            stopped: 0,
        };
        totals.kernel = Some(vec![("fkw".into(), twin)]);
        let text = totals.render();
        assert!(
            text.contains(
                "  accounted: RX 10 + originated 0 + from_kernel 6 = forwarded 11 + to_kernel 4 \
                 + dropped 1 + consumed 0 + held 0\n"
            ),
            "{text}"
        );
        assert!(text.contains("Kernel twin fkw: from workers 4 = to kernel 3 + kernel_tx_full 1; from kernel 7 = to workers 6 + from_kernel_ring_full 1 + kernel_stopped 0"), "{text}");
        // The thread's books must match the workers'.
        let mut off = twin;
        off.to_workers = 5;
        off.ring_full = 2;
        totals.kernel = Some(vec![("fkw".into(), off)]);
        assert!(!totals.balanced());
    }
}
