//! A timer wheel over a fixed set of entries (session ids), driven by the caller's clock.
//!
//! - `slots` buckets of `tick_ns` each (4096 × 1 s by default: a span of 68 minutes). Longer
//!   timeouts are parked in the farthest bucket and re-armed when it comes round.
//! - Every entry is in at most one bucket (intrusive doubly-linked lists over pre-sized
//!   arrays): schedule, cancel and reschedule are O(1), nothing allocates after construction.
//! - The wheel keeps only the links; each entry's deadline lives with the entry itself (a
//!   [`Deadlines`] store: the session's own cache line), so that refreshing it, on every
//!   packet, touches no memory of the wheel's.
//! - Refreshing is lazy: moving a deadline later only rewrites the stored deadline; when the
//!   entry's bucket fires, the entry is re-armed at its new deadline instead of expiring.
//! - An entry sits in the bucket of `ceil(deadline / tick)`, so it never fires before its
//!   deadline, and fires at most one tick after it (callers wanting exact expiry compare
//!   the stored deadline with their clock, as the worker does on its packet path).
//! - [`TimerWheel::expire`] reports at most `budget` entries per call and bounds the re-arming
//!   it does, so housekeeping work per call is bounded.

/// Where each entry's deadline is kept, beside the entry's other data. The wheel writes
/// [`NO_DEADLINE`] there when it unschedules an entry, so that a stored value other than that
/// means "scheduled": the per-packet refresh then needs no wheel memory at all.
pub trait Deadlines {
    /// The stored deadline of entry `id`, `None` when the store has no such entry.
    fn deadline_mut(&mut self, id: u32) -> Option<&mut u64>;
    /// The stored deadline of entry `id` ([`NO_DEADLINE`] when it has none or no such entry).
    fn deadline(&self, id: u32) -> u64;
    /// A hint that entry `id`'s deadline will be read soon (start loading it); the default
    /// does nothing.
    #[inline]
    fn prefetch_deadline(&self, _id: u32) {}
}

/// The stored deadline of an entry that is not scheduled. An entry scheduled at deadline 0
/// also stores 0: it is then simply refreshed through the general path, and a comparison
/// `deadline > now` is false for both, as it should be.
pub const NO_DEADLINE: u64 = 0;

impl Deadlines for [u64] {
    fn deadline_mut(&mut self, id: u32) -> Option<&mut u64> {
        self.get_mut(id as usize)
    }
    fn deadline(&self, id: u32) -> u64 {
        self.get(id as usize).copied().unwrap_or(NO_DEADLINE)
    }
}

const NIL: u32 = u32::MAX;
const UNARMED: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    /// Absolute tick of the bucket the entry is linked in, or `UNARMED`.
    armed: u64,
    next: u32,
    prev: u32,
}

/// Default tick: one second.
pub const DEFAULT_TICK_NS: u64 = 1_000_000_000;
/// Default number of buckets: 4096 ticks (68 minutes at one second).
pub const DEFAULT_SLOTS: usize = 4096;

pub struct TimerWheel {
    nodes: Vec<Node>,
    heads: Vec<u32>,
    mask: u64,
    tick_ns: u64,
    /// Next tick to process: every bucket of an earlier tick has been emptied.
    cursor: u64,
    started: bool,
    len: usize,
}

impl TimerWheel {
    /// A wheel for entries `0..capacity` with the default geometry.
    pub fn new(capacity: usize) -> Self {
        Self::with_geometry(capacity, DEFAULT_TICK_NS, DEFAULT_SLOTS)
    }

    /// A wheel of `slots` buckets (rounded up to a power of two, at least 2) of `tick_ns` each.
    pub fn with_geometry(capacity: usize, tick_ns: u64, slots: usize) -> Self {
        let slots = slots.max(2).next_power_of_two();
        TimerWheel {
            nodes: vec![
                Node {
                    armed: UNARMED,
                    next: NIL,
                    prev: NIL,
                };
                capacity
            ],
            heads: vec![NIL; slots],
            mask: slots as u64 - 1,
            tick_ns: tick_ns.max(1),
            cursor: 0,
            started: false,
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.nodes.len()
    }

    /// Entries currently scheduled.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn tick_ns(&self) -> u64 {
        self.tick_ns
    }

    /// The longest delay the wheel holds without re-arming.
    pub fn span_ns(&self) -> u64 {
        self.tick_ns.saturating_mul(self.mask + 1)
    }

    #[inline]
    fn start(&mut self, now_ns: u64) {
        if !self.started {
            self.started = true;
            self.cursor = self.tick_of(now_ns);
        }
    }

    /// The tick containing `ns` (clamped far below overflow).
    #[inline]
    fn tick_of(&self, ns: u64) -> u64 {
        (ns / self.tick_ns).min(u64::MAX / 4)
    }

    /// The bucket tick for a deadline: its ceiling tick, kept within the wheel's window.
    #[inline]
    fn arm_tick(&self, deadline: u64, floor: u64) -> u64 {
        let t = deadline.div_ceil(self.tick_ns).min(u64::MAX / 4);
        t.max(floor).min(self.cursor + self.mask)
    }

    #[inline]
    fn link(&mut self, id: u32, tick: u64) {
        let slot = (tick & self.mask) as usize;
        let head = self.heads[slot];
        let n = &mut self.nodes[id as usize];
        n.armed = tick;
        n.prev = NIL;
        n.next = head;
        if head != NIL {
            self.nodes[head as usize].prev = id;
        }
        self.heads[slot] = id;
        self.len += 1;
    }

    #[inline]
    fn unlink(&mut self, id: u32) {
        let Node {
            armed, next, prev, ..
        } = self.nodes[id as usize];
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.heads[(armed & self.mask) as usize] = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        let n = &mut self.nodes[id as usize];
        n.armed = UNARMED;
        n.next = NIL;
        n.prev = NIL;
        self.len -= 1;
    }

    /// Sets entry `id` to fire at `deadline_ns` (scheduling it, or moving its deadline);
    /// `stored` is where the entry's [`Deadlines`] store keeps its deadline (the caller holds
    /// the entry already). Moving a deadline later is one comparison and one store into
    /// `stored` (the wheel's own memory is not touched). Ids beyond the capacity are not
    /// scheduled.
    #[inline(always)]
    pub fn schedule(&mut self, id: u32, stored: &mut u64, now_ns: u64, deadline_ns: u64) {
        // Moving a scheduled deadline later (the refresh on every packet): its bucket fires no
        // later than needed (cursor and deadline only grew since it was armed), so this is
        // what the general path below does too, minus the division and the node.
        if *stored != NO_DEADLINE && deadline_ns >= *stored {
            *stored = deadline_ns;
            return;
        }
        if (id as usize) < self.nodes.len() {
            *stored = deadline_ns;
            self.schedule_general(id, now_ns, deadline_ns);
        }
    }

    /// [`Self::schedule`] for a new entry or an earlier deadline (`id` within capacity, its
    /// new deadline already stored).
    #[inline(never)]
    fn schedule_general(&mut self, id: u32, now_ns: u64, deadline_ns: u64) {
        self.start(now_ns);
        let t = self.arm_tick(deadline_ns, self.cursor);
        let armed = self.nodes[id as usize].armed;
        if armed != UNARMED {
            if armed <= t {
                return; // fires no later than needed; re-armed then
            }
            self.unlink(id);
        }
        self.link(id, t);
    }

    /// Unschedules entry `id` (no effect if it is not scheduled).
    #[inline]
    pub fn cancel<D: Deadlines + ?Sized>(&mut self, store: &mut D, id: u32) {
        if self.is_scheduled(id) {
            self.unlink(id);
        }
        if let Some(d) = store.deadline_mut(id) {
            *d = NO_DEADLINE;
        }
    }

    pub fn is_scheduled(&self, id: u32) -> bool {
        self.nodes
            .get(id as usize)
            .is_some_and(|n| n.armed != UNARMED)
    }

    /// The deadline of a scheduled entry (kept in `store`).
    #[inline]
    pub fn deadline<D: Deadlines + ?Sized>(&self, store: &D, id: u32) -> Option<u64> {
        self.is_scheduled(id).then(|| store.deadline(id))
    }

    /// Unschedules and appends to `out` up to `budget` entries whose deadline is ≤ `now_ns`
    /// (at most one tick late), never growing `out` beyond its capacity. Re-arms entries whose
    /// deadline moved; that work is bounded too (about 4 × budget), the rest is left for the
    /// next call. Returns how many entries were appended.
    pub fn expire<D: Deadlines + ?Sized>(
        &mut self,
        store: &mut D,
        now_ns: u64,
        budget: usize,
        out: &mut Vec<u32>,
    ) -> usize {
        self.start(now_ns);
        let budget = budget.min(out.capacity() - out.len());
        let now_tick = self.tick_of(now_ns);
        let work_limit = budget.saturating_mul(4).saturating_add(64);
        let mut work = 0usize;
        let mut expired = 0usize;
        while expired < budget && work < work_limit && self.cursor <= now_tick {
            // Two passes, so that reading the deadlines does not stall each entry in turn:
            // unlink up to what is left of the budget from the due buckets, hinting each
            // entry's deadline as it comes off its list (the lists are walked one node after
            // the other anyway); then read the deadlines, which have had the rest of the walk
            // to arrive. Entries of an earlier tick than the cursor's lie in no bucket, and a
            // re-armed entry goes beyond `now_tick` (its deadline is later than now), so the
            // split changes no answer: only the order in which memory is touched.
            let first = out.len();
            let want = (budget - expired).min(work_limit - work);
            while out.len() - first < want && self.cursor <= now_tick {
                // After a long pause every bucket is due: skip the ticks that lap the wheel.
                if now_tick - self.cursor > self.mask {
                    self.cursor = now_tick - self.mask;
                }
                let slot = (self.cursor & self.mask) as usize;
                let id = self.heads[slot];
                if id == NIL {
                    self.cursor += 1;
                    continue;
                }
                self.unlink(id);
                store.prefetch_deadline(id);
                out.push(id);
            }
            work += out.len() - first;
            let mut kept = first;
            for i in first..out.len() {
                let id = out[i];
                let stored = store.deadline_mut(id);
                let deadline = stored.as_deref().copied().unwrap_or(NO_DEADLINE);
                if deadline <= now_ns {
                    if let Some(d) = stored {
                        *d = NO_DEADLINE;
                    }
                    out[kept] = id;
                    kept += 1;
                } else {
                    // Moved later: deadline > now, so its tick lies beyond `now_tick` (the
                    // floor changes nothing but says so).
                    let t = self.arm_tick(deadline, now_tick + 1);
                    self.link(id, t);
                }
            }
            expired += kept - first;
            out.truncate(kept);
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// A wheel with its entries' deadlines in a plain array (the worker keeps them in its
    /// sessions), under the calls the tests make.
    struct Wheel {
        wheel: TimerWheel,
        deadlines: Vec<u64>,
    }

    impl Wheel {
        fn new(capacity: usize) -> Self {
            Self::with_geometry(capacity, DEFAULT_TICK_NS, DEFAULT_SLOTS)
        }
        fn with_geometry(capacity: usize, tick_ns: u64, slots: usize) -> Self {
            Wheel {
                wheel: TimerWheel::with_geometry(capacity, tick_ns, slots),
                deadlines: vec![NO_DEADLINE; capacity],
            }
        }
        fn schedule(&mut self, id: u32, now_ns: u64, deadline_ns: u64) {
            if let Some(stored) = self.deadlines.get_mut(id as usize) {
                self.wheel.schedule(id, stored, now_ns, deadline_ns);
            }
        }
        fn cancel(&mut self, id: u32) {
            self.wheel.cancel(&mut self.deadlines[..], id);
        }
        fn deadline(&self, id: u32) -> Option<u64> {
            self.wheel.deadline(&self.deadlines[..], id)
        }
        fn expire(&mut self, now_ns: u64, budget: usize, out: &mut Vec<u32>) -> usize {
            self.wheel
                .expire(&mut self.deadlines[..], now_ns, budget, out)
        }
        fn is_scheduled(&self, id: u32) -> bool {
            self.wheel.is_scheduled(id)
        }
        fn is_empty(&self) -> bool {
            self.wheel.is_empty()
        }
        fn len(&self) -> usize {
            self.wheel.len()
        }
    }

    fn drain(w: &mut Wheel, now: u64) -> Vec<u32> {
        let mut out = Vec::with_capacity(1024);
        w.expire(now, 1024, &mut out);
        out.sort();
        out
    }

    #[test]
    fn fires_not_before_deadline_and_within_a_tick() {
        let mut w = Wheel::new(8);
        let t0 = 1000 * S + 123;
        w.schedule(1, t0, t0 + 10 * S);
        assert!(drain(&mut w, t0 + 10 * S - 1).is_empty());
        assert_eq!(w.deadline(1), Some(t0 + 10 * S));
        assert_eq!(drain(&mut w, t0 + 11 * S), vec![1]);
        assert!(!w.is_scheduled(1));
        assert!(w.is_empty());
    }

    #[test]
    fn exact_on_tick_boundaries() {
        let mut w = Wheel::new(4);
        w.schedule(0, 5 * S, 15 * S);
        assert!(drain(&mut w, 15 * S - 1).is_empty());
        assert_eq!(drain(&mut w, 15 * S), vec![0]);
    }

    #[test]
    fn bounded_expiry() {
        let mut w = Wheel::new(100);
        for id in 0..100 {
            w.schedule(id, 0, S);
        }
        let mut out = Vec::with_capacity(100);
        assert_eq!(w.expire(2 * S, 30, &mut out), 30);
        assert_eq!(out.len(), 30);
        out.clear();
        assert_eq!(w.expire(2 * S, 30, &mut out), 30);
        out.clear();
        assert_eq!(w.expire(2 * S, 1000, &mut out), 40);
        assert!(w.is_empty());
        // Never grows the output beyond its capacity.
        let mut w = Wheel::new(10);
        for id in 0..10 {
            w.schedule(id, 0, S);
        }
        let mut small = Vec::with_capacity(4);
        assert_eq!(w.expire(5 * S, 100, &mut small), 4);
        assert_eq!(small.capacity(), 4);
    }

    #[test]
    fn lazy_rearm_on_refresh() {
        let mut w = Wheel::new(4);
        w.schedule(2, 0, 10 * S);
        // Refresh at t=5 to 15 s: nothing fires at 10 s (re-armed), fires at 15 s.
        w.schedule(2, 5 * S, 15 * S);
        assert!(drain(&mut w, 10 * S).is_empty());
        assert!(w.is_scheduled(2));
        assert!(drain(&mut w, 14 * S).is_empty());
        assert_eq!(drain(&mut w, 15 * S), vec![2]);
        // Moving a deadline earlier relinks it.
        w.schedule(3, 20 * S, 100 * S);
        w.schedule(3, 20 * S, 25 * S);
        assert_eq!(drain(&mut w, 25 * S), vec![3]);
    }

    #[test]
    fn cancel_and_reuse() {
        let mut w = Wheel::new(4);
        w.schedule(0, 0, 3 * S);
        w.schedule(1, 0, 3 * S);
        w.schedule(2, 0, 3 * S);
        w.cancel(1);
        w.cancel(1);
        assert_eq!(w.len(), 2);
        assert_eq!(drain(&mut w, 3 * S), vec![0, 2]);
        w.schedule(1, 3 * S, 4 * S);
        assert_eq!(drain(&mut w, 4 * S), vec![1]);
        w.schedule(99, 0, 0); // out of range: ignored
        assert!(w.is_empty());
    }

    #[test]
    fn long_timeouts_beyond_the_span() {
        let mut w = Wheel::with_geometry(2, S, 16);
        w.schedule(0, 0, 3600 * S);
        let mut t = 0;
        while t < 3600 * S {
            assert!(drain(&mut w, t).is_empty(), "fired early at {t}");
            t += S / 2;
        }
        assert_eq!(drain(&mut w, 3600 * S), vec![0]);
    }

    #[test]
    fn long_pause_and_time_going_back() {
        let mut w = Wheel::with_geometry(3, S, 16);
        w.schedule(0, 0, 5 * S);
        w.schedule(1, 0, 1_000_000 * S);
        w.schedule(2, 0, 9 * S);
        assert!(drain(&mut w, 0).is_empty());
        assert_eq!(drain(&mut w, 999_999 * S), vec![0, 2]);
        assert!(drain(&mut w, 10 * S).is_empty()); // clock went back: nothing happens
        assert_eq!(drain(&mut w, 1_000_001 * S), vec![1]);
    }

    #[test]
    fn random_against_model() {
        let mut w = Wheel::with_geometry(64, 100, 32);
        let mut model: Vec<Option<u64>> = vec![None; 64];
        let mut x: u64 = 99;
        let mut now = 0u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 64) as u32;
            match (x >> 8) % 4 {
                0 | 1 => {
                    let d = now + (x >> 16) % 10_000;
                    w.schedule(id, now, d);
                    model[id as usize] = Some(d);
                }
                2 => {
                    w.cancel(id);
                    model[id as usize] = None;
                }
                _ => {
                    now += (x >> 20) % 300;
                    let got = drain(&mut w, now);
                    for &g in &got {
                        let d = model[g as usize]
                            .take()
                            .expect("expired an unscheduled entry");
                        assert!(d <= now, "fired early");
                    }
                    for (i, m) in model.iter().enumerate() {
                        if let Some(d) = m {
                            // not expired: must not be more than one tick overdue
                            assert!(*d + 100 > now, "entry {i} overdue: {d} at {now}");
                            assert_eq!(w.deadline(i as u32), Some(*d));
                        }
                    }
                }
            }
        }
    }
}
