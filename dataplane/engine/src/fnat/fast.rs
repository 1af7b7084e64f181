//! The established-flow fast path.
//!
//! Nearly every packet through a load balancer belongs to a flow it already knows: a TCP
//! segment with ACK and without SYN/FIN/RST of a session in ESTABLISHED, or a datagram of a
//! UDP session. This stage takes exactly those, as the first stage of the one pipeline, with
//! the session hash the burst's prefetch stage already computed, and decides nothing itself:
//! it finds the session, asks classification's own questions through classification's own
//! helpers ([`FullNat::to_port_mac`], [`FullNat::reaches_session`], [`FullNat::is_live`]),
//! and hands the packet to the one forwarding routine ([`FullNat::forward_as`]) exactly where
//! classification would, telling it that the packet leaves the session's state as it is
//! (which debug builds check against the state machine). What it saves is the walk there:
//! no address-kind dispatch, no service lookup, no second hash of the tuple, and the state
//! machine's answer.
//!
//! Anything else returns `None` before changing anything, and the later stages decide:
//! another header shape (IP options, counted by classification), an expiring TTL, flags,
//! state or protocol, a frame not to the port's MAC, no session, a session not reached
//! through this destination (a VRRP standby address, a client packet to an address that is
//! no VIP any more) or not live (classification ends it).

use super::{BurstHint, FullNat};
use crate::packet::{ttl_expires, PacketV4, Transport};
use crate::rules::PortIndex;
use crate::session::ConnState;
use crate::stats::WorkerStats;
use crate::verdict::Verdict;

impl FullNat {
    /// The first stage of the pipeline for one frame received on `rx_port`, parsed as `pkt`,
    /// with what the burst's prefetch stages learned about it (see the module doc).
    /// `Some(verdict)`: what forwarding decided (a drop for its errors), counted in the
    /// session, service and real server, and as `fast_path` when forwarded (the caller
    /// counts the frame itself). `None`: nothing changed; the next stages decide.
    #[inline(always)]
    pub(super) fn established(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        hint: BurstHint,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Option<Verdict> {
        if pkt.ip.has_options() || ttl_expires(pkt.ip.ttl) {
            return None;
        }
        let tcp = match pkt.transport {
            Transport::Tcp(t) => {
                let f = t.flags;
                if !f.ack() || f.syn() || f.fin() || f.rst() {
                    return None;
                }
                Some(f)
            }
            Transport::Udp(_) => None,
            Transport::Icmp(_) => return None,
        };
        self.to_port_mac(rx_port, frame)?;
        // The tuple and tag of the prefetch stage, else computed here (a small table's burst
        // has no such stage). Its candidate, when still this key's session (keys are unique
        // in the table), saves the lookup; else the index decides.
        let (key, tag) = match hint.keyed {
            Some(keyed) => keyed,
            None => {
                let key = pkt.tuple()?;
                (key, self.table.tag(&key))
            }
        };
        let found = hint
            .candidate
            .and_then(|(id, side)| Some((id, side, self.table.confirm((id, side), &key)?)));
        let (id, side, s) = match found {
            Some(f) => f,
            None => self.table.lookup_session(&key, tag)?,
        };
        if !self.reaches_session(key.dst_ip, side)
            || !self.is_live(s, now, stats)
            || !matches!(s.state, ConnState::Established | ConnState::Udp)
        {
            return None;
        }
        // Where classification goes with a live session it found (`forward_or_reuse`: a
        // reused port needs a SYN, which this stage does not take).
        let dir = super::classify::travels(side);
        let outcome = self.forward_as::<true>(rx_port, frame, pkt, id, dir, tcp, now, stats);
        if outcome.is_ok() {
            stats.fast_path += 1;
        }
        Some(outcome.unwrap_or_else(Verdict::Drop))
    }
}
