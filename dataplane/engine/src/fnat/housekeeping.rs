//! Between bursts: ending sessions (expired, or of removed services), persistence templates,
//! and publishing live connection counts to the other workers.

use super::*;
use crate::persist;
use crate::sched::load::PUBLISH_INTERVAL_NS;
use crate::session::{Session, SessionId};
use crate::stats::WorkerStats;

/// How far ahead of the session it ends housekeeping starts loading index lines, and how
/// many sessions' lines it requests at a time (together, so that their page walks overlap:
/// see `Worker::process_burst`).
const KEYS_AHEAD: usize = 8;

impl FullNat {
    /// Ends a session: frees both keys, its timer and its local port; updates the gauges.
    pub(super) fn end_session(&mut self, id: SessionId, stats: &mut WorkerStats) {
        let Some(s) = self.table.remove(id) else {
            self.wheel.cancel(&mut self.table, id);
            return;
        };
        self.wheel.cancel(&mut self.table, id);
        if let Some(sp) = self.sp.as_mut() {
            if self
                .adjust
                .get(id as usize)
                .is_some_and(|a| a.flags & super::client_addr::ADJ_SP_WAIT != 0)
            {
                sp.release(id);
            }
        }
        if s.has_local_port() && self.laddrs.release(s.lip_slot as usize, s.lport) {
            if let Some(l) = stats.local_addrs.get_mut(s.lip_slot as usize) {
                l.ports_in_use = l.ports_in_use.saturating_sub(1);
            }
        }
        if let (Some(mask), Some(t)) = (
            self.slot_info
                .get(s.svc_slot as usize)
                .and_then(|i| i.persist_mask),
            self.templates.as_mut(),
        ) {
            t.release(persist::key(s.service_id, s.client_ip & mask));
        }
        if let Some(r) = stats
            .services
            .get_mut(s.svc_slot as usize)
            .and_then(|st| st.reals.get_mut(s.rs_slot as usize))
        {
            if s.state.is_active() {
                r.active_conns = r.active_conns.saturating_sub(1);
            } else {
                r.inactive_conns = r.inactive_conns.saturating_sub(1);
            }
        }
        stats.sessions = stats.sessions.saturating_sub(1);
        stats.sessions_ended += 1;
    }

    /// Ends at most `budget` sessions: those whose deadline passed (the wheel reports them at
    /// most one tick late; packets see the exact deadline), then sessions of removed services
    /// (a bounded sweep). Returns how many were ended.
    pub fn housekeeping(&mut self, now_ns: u64, budget: usize, stats: &mut WorkerStats) -> usize {
        let mut done = 0;
        while done < budget {
            self.expired.clear();
            let chunk = (budget - done).min(EXPIRE_CHUNK);
            let n = self
                .wheel
                .expire(&mut self.table, now_ns, chunk, &mut self.expired);
            // Software pipeline over the batch (whose sessions `expire` has just read): every
            // KEYS_AHEAD sessions, load the index lines of the next KEYS_AHEAD sessions' keys,
            // so that removing each finds them in cache.
            for &id in self.expired.iter().take(KEYS_AHEAD) {
                self.table.prefetch_keys(id);
            }
            for i in 0..n {
                if i % KEYS_AHEAD == 0 {
                    let ahead = self.expired.iter().skip(i + KEYS_AHEAD).take(KEYS_AHEAD);
                    for &id in ahead {
                        self.table.prefetch_keys(id);
                    }
                }
                let id = self.expired[i];
                self.end_session(id, stats);
            }
            done += n;
            if n < chunk {
                break;
            }
        }
        if let Some(mut cursor) = self.purge {
            let cap = self.table.capacity();
            let scan_limit = budget
                .saturating_sub(done)
                .saturating_mul(8)
                .saturating_add(256);
            let mut scanned = 0;
            while cursor < cap && scanned < scan_limit && done < budget {
                if let Some(s) = self.table.slot(cursor) {
                    if !session_alive(stats, &self.slot_info, s) {
                        self.end_session(cursor as SessionId, stats);
                        done += 1;
                    }
                }
                cursor += 1;
                scanned += 1;
            }
            self.purge = if cursor >= cap { None } else { Some(cursor) };
        }
        if !self.pending_headers.is_empty() {
            self.resend_headers(now_ns, stats);
        }
        if let Some(t) = self.templates.as_mut() {
            t.expire(now_ns, budget.max(64));
            stats.templates = t.len() as u64;
        }
        if now_ns >= self.next_publish {
            self.publish_counts(stats);
            self.next_publish = now_ns.saturating_add(PUBLISH_INTERVAL_NS);
        }
        done
    }

    /// Publishes this worker's live counts per real server and reads the other workers'.
    /// O(real servers × workers); runs every `PUBLISH_INTERVAL_NS` from housekeeping.
    pub(super) fn publish_counts(&mut self, stats: &WorkerStats) {
        let me = self.id as usize;
        for svc in &mut self.services {
            let own = stats.services.get(svc.slot as usize);
            for (i, r) in svc.reals.iter().enumerate() {
                let (a, n) = own
                    .and_then(|st| st.reals.get(r.slot as usize))
                    .map_or((0, 0), |x| (x.active_conns, x.inactive_conns));
                if let (Some(load), Some(o)) = (svc.loads.get(i), svc.others.get_mut(i)) {
                    load.publish(me, a, n);
                    *o = load.others(me);
                }
            }
        }
    }
}

/// A session may go on: its service is still in the rules, and its real server too unless
/// the service expires the sessions of removed real servers.
#[inline]
pub(super) fn session_alive(stats: &WorkerStats, slot_info: &[SlotInfo], s: &Session) -> bool {
    let Some(st) = stats.services.get(s.svc_slot as usize) else {
        return false;
    };
    if st.removed || st.id != s.service_id {
        return false;
    }
    let expire = slot_info
        .get(s.svc_slot as usize)
        .is_some_and(|i| i.expire_on_removal);
    !(expire
        && st
            .reals
            .get(s.rs_slot as usize)
            .is_some_and(|r| r.removed && r.id == s.rs_id))
}
