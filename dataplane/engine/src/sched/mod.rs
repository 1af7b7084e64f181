//! Schedulers: pick the real server of a new session, with kernel IPVS's names and semantics.
//!
//! Each worker keeps one [`Scheduler`] per service: cursors, hash tables and locality tables
//! are per worker, built when the rules change and never allocated per packet. A scheduler
//! sees the real servers through [`RealSet`]: weights, live connection counts (see [`load`]
//! for how the workers' counts combine) and whether a server is overloaded by its
//! connection thresholds. A server is *available* when its weight is > 0 and it is not
//! overloaded; no scheduler picks an unavailable one for a new session.
//!
//! | name | picks |
//! |---|---|
//! | rr | the next available server in list order |
//! | wrr | IPVS's weighted round-robin (interleaved by a falling current weight) |
//! | lc | least `256·active + inactive` |
//! | wlc | least `(256·active + inactive) / weight` (the default) |
//! | sed | least `(active + 1) / weight` |
//! | nq | the first server without active connections, else as sed |
//! | sh | hash of the source address (+ port with sh-port) into a weighted bucket table |
//! | dh | hash of the destination address into a bucket table |
//! | mh | Maglev: hash of the source address (+ port with mh-port) into a prime table |
//! | fo | the highest-weight server |
//! | ovf | the highest-weight server whose active connections do not exceed its weight |
//! | lblc | per destination address, the same server while not overloaded, else wlc |
//! | lblcr | per destination address, the least loaded of a set grown by wlc on overload |

pub mod hash;
pub mod least;
pub mod load;
pub mod locality;
pub mod rr;

use crate::packet::Tuple;
use crate::rules::{SchedFlags, SchedulerKind};

pub use hash::{HashTable, Maglev};
pub use locality::Locality;
pub use rr::{RoundRobin, WeightedRoundRobin};

/// What a scheduler sees of a service's real servers. Only `len` and `weight` are required;
/// the defaults describe idle servers without thresholds.
pub trait RealSet {
    fn len(&self) -> usize;
    fn weight(&self, i: usize) -> u32;
    /// Established connections (ipvsadm's ActiveConn), as the scheduler should see them.
    fn active(&self, _i: usize) -> u32 {
        0
    }
    /// Other connections (InActConn).
    fn inactive(&self, _i: usize) -> u32 {
        0
    }
    /// At or above its upper connection threshold, and not yet below its lower one.
    fn overloaded(&self, _i: usize) -> bool {
        false
    }
    /// A stable identity (address and port) for tables that must not depend on list order.
    fn ident(&self, i: usize) -> u64 {
        i as u64
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Can take a new session: weight > 0 and not overloaded.
    #[inline]
    fn available(&self, i: usize) -> bool {
        self.weight(i) > 0 && !self.overloaded(i)
    }
}

impl RealSet for [u32] {
    fn len(&self) -> usize {
        <[u32]>::len(self)
    }
    fn weight(&self, i: usize) -> u32 {
        self.get(i).copied().unwrap_or(0)
    }
}

/// Real servers given as plain vectors (tests, benchmarks, tools).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticReals {
    pub weights: Vec<u32>,
    pub active: Vec<u32>,
    pub inactive: Vec<u32>,
    pub overloaded: Vec<bool>,
    /// Identities; index when empty.
    pub idents: Vec<u64>,
}

impl StaticReals {
    pub fn new(weights: &[u32]) -> Self {
        StaticReals {
            weights: weights.to_vec(),
            active: vec![0; weights.len()],
            inactive: vec![0; weights.len()],
            overloaded: vec![false; weights.len()],
            idents: (0..weights.len() as u64).collect(),
        }
    }
}

impl RealSet for StaticReals {
    fn len(&self) -> usize {
        self.weights.len()
    }
    fn weight(&self, i: usize) -> u32 {
        self.weights.get(i).copied().unwrap_or(0)
    }
    fn active(&self, i: usize) -> u32 {
        self.active.get(i).copied().unwrap_or(0)
    }
    fn inactive(&self, i: usize) -> u32 {
        self.inactive.get(i).copied().unwrap_or(0)
    }
    fn overloaded(&self, i: usize) -> bool {
        self.overloaded.get(i).copied().unwrap_or(false)
    }
    fn ident(&self, i: usize) -> u64 {
        self.idents.get(i).copied().unwrap_or(i as u64)
    }
}

/// A service's scheduler, dispatched by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduler {
    Rr(RoundRobin),
    Wrr(WeightedRoundRobin),
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh(HashTable, SchedFlags),
    Dh(HashTable),
    Mh(Maglev, SchedFlags),
    Fo,
    Ovf,
    Lblc(Locality),
    Lblcr(Locality),
}

impl Scheduler {
    /// A scheduler without flags (see [`Scheduler::with_flags`]).
    pub fn new<R: RealSet + ?Sized>(kind: SchedulerKind, reals: &R) -> Self {
        Self::with_flags(kind, SchedFlags::default(), reals)
    }

    /// Builds a scheduler (and its tables) for `reals`. Allocates: control path only.
    pub fn with_flags<R: RealSet + ?Sized>(
        kind: SchedulerKind,
        flags: SchedFlags,
        reals: &R,
    ) -> Self {
        match kind {
            SchedulerKind::Rr => Scheduler::Rr(RoundRobin::default()),
            SchedulerKind::Wrr => Scheduler::Wrr(WeightedRoundRobin::new(reals)),
            SchedulerKind::Lc => Scheduler::Lc,
            SchedulerKind::Wlc => Scheduler::Wlc,
            SchedulerKind::Sed => Scheduler::Sed,
            SchedulerKind::Nq => Scheduler::Nq,
            SchedulerKind::Sh => Scheduler::Sh(HashTable::weighted(reals), flags),
            SchedulerKind::Dh => Scheduler::Dh(HashTable::cyclic(reals)),
            SchedulerKind::Mh => Scheduler::Mh(Maglev::new(reals), flags),
            SchedulerKind::Fo => Scheduler::Fo,
            SchedulerKind::Ovf => Scheduler::Ovf,
            SchedulerKind::Lblc => Scheduler::Lblc(Locality::new(reals, false)),
            SchedulerKind::Lblcr => Scheduler::Lblcr(Locality::new(reals, true)),
        }
    }

    pub fn kind(&self) -> SchedulerKind {
        match self {
            Scheduler::Rr(_) => SchedulerKind::Rr,
            Scheduler::Wrr(_) => SchedulerKind::Wrr,
            Scheduler::Lc => SchedulerKind::Lc,
            Scheduler::Wlc => SchedulerKind::Wlc,
            Scheduler::Sed => SchedulerKind::Sed,
            Scheduler::Nq => SchedulerKind::Nq,
            Scheduler::Sh(..) => SchedulerKind::Sh,
            Scheduler::Dh(_) => SchedulerKind::Dh,
            Scheduler::Mh(..) => SchedulerKind::Mh,
            Scheduler::Fo => SchedulerKind::Fo,
            Scheduler::Ovf => SchedulerKind::Ovf,
            Scheduler::Lblc(_) => SchedulerKind::Lblc,
            Scheduler::Lblcr(_) => SchedulerKind::Lblcr,
        }
    }

    /// The flags the scheduler was built with (those it reads).
    pub fn flags(&self) -> SchedFlags {
        match self {
            Scheduler::Sh(_, f) | Scheduler::Mh(_, f) => *f,
            _ => SchedFlags::default(),
        }
    }

    /// Tells the scheduler the real servers or their weights changed (rebuilds hash tables;
    /// remaps locality tables). Allocates: control path only.
    pub fn update<R: RealSet + ?Sized>(&mut self, reals: &R) {
        match self {
            Scheduler::Rr(rr) => rr.update(reals.len()),
            Scheduler::Wrr(wrr) => wrr.update(reals),
            Scheduler::Sh(t, _) => *t = HashTable::weighted(reals),
            Scheduler::Dh(t) => *t = HashTable::cyclic(reals),
            Scheduler::Mh(t, _) => *t = Maglev::new(reals),
            Scheduler::Lblc(l) | Scheduler::Lblcr(l) => l.update(reals),
            Scheduler::Lc
            | Scheduler::Wlc
            | Scheduler::Sed
            | Scheduler::Nq
            | Scheduler::Fo
            | Scheduler::Ovf => {}
        }
    }

    /// The index of the real server for a new session of `flow` (the tuple of its first
    /// packet) at `now_ns`, or `None` when none can take one. Never allocates.
    #[inline]
    pub fn pick<R: RealSet + ?Sized>(
        &mut self,
        reals: &R,
        flow: &Tuple,
        now_ns: u64,
    ) -> Option<usize> {
        let i = match self {
            Scheduler::Rr(s) => s.pick(reals),
            Scheduler::Wrr(s) => s.pick(reals),
            Scheduler::Lc => least::lc(reals),
            Scheduler::Wlc => least::wlc(reals),
            Scheduler::Sed => least::sed(reals),
            Scheduler::Nq => least::nq(reals),
            Scheduler::Sh(t, f) => t.lookup(
                reals,
                hash::addr_key(flow.src_ip, flow.src_port, f.port()),
                f.fallback(),
            ),
            Scheduler::Dh(t) => t.lookup(reals, hash::addr_key(flow.dst_ip, 0, false), false),
            Scheduler::Mh(t, f) => t.lookup(
                reals,
                hash::addr_key(flow.src_ip, flow.src_port, f.port()),
                f.fallback(),
            ),
            Scheduler::Fo => least::fo(reals),
            Scheduler::Ovf => least::ovf(reals),
            Scheduler::Lblc(l) | Scheduler::Lblcr(l) => l.pick(reals, flow.dst_ip, now_ns),
        }?;
        // Defensive: never hand out an index beyond the list.
        (i < reals.len()).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::rr::gcd;
    use super::*;

    fn picks(kind: SchedulerKind, w: &[u32], n: usize) -> Vec<usize> {
        let mut s = Scheduler::new(kind, w);
        (0..n)
            .map(|_| s.pick(w, &Tuple::default(), 0).unwrap())
            .collect()
    }

    #[test]
    fn rr_cycles_and_skips_weight_zero() {
        assert_eq!(
            picks(SchedulerKind::Rr, &[1, 1, 1], 7),
            vec![0, 1, 2, 0, 1, 2, 0]
        );
        assert_eq!(picks(SchedulerKind::Rr, &[1, 0, 5], 4), vec![0, 2, 0, 2]);
        let mut s = Scheduler::new(SchedulerKind::Rr, &[0u32, 0][..]);
        assert_eq!(s.pick(&[0u32, 0][..], &Tuple::default(), 0), None);
        assert_eq!(s.pick::<[u32]>(&[], &Tuple::default(), 0), None);
    }

    #[test]
    fn rr_wraps_past_the_end_and_after_a_shrink() {
        // Wrapping from the last server, and skipping unavailable ones across the wrap.
        assert_eq!(
            picks(SchedulerKind::Rr, &[1, 1, 0, 0], 5),
            vec![0, 1, 0, 1, 0]
        );
        assert_eq!(picks(SchedulerKind::Rr, &[0, 0, 1], 3), vec![2, 2, 2]);
        // A cursor left past the end of a shorter list (no `update`) restarts at its head.
        let mut s = Scheduler::new(SchedulerKind::Rr, &[1u32; 5][..]);
        for want in 0..5 {
            assert_eq!(s.pick(&[1u32; 5][..], &Tuple::default(), 0), Some(want));
        }
        let short = [1u32, 1];
        assert_eq!(s.pick(&short[..], &Tuple::default(), 0), Some(0));
        assert_eq!(s.pick(&short[..], &Tuple::default(), 0), Some(1));
        assert_eq!(s.pick(&short[..], &Tuple::default(), 0), Some(0));
    }

    #[test]
    fn wrr_sequence_like_ipvs() {
        assert_eq!(
            picks(SchedulerKind::Wrr, &[3, 1], 8),
            vec![0, 0, 0, 1, 0, 0, 0, 1]
        );
        assert_eq!(
            picks(SchedulerKind::Wrr, &[4, 3, 2], 9),
            vec![0, 0, 1, 0, 1, 2, 0, 1, 2]
        );
    }

    #[test]
    fn wrr_ratio_exact_over_a_cycle() {
        for w in [
            &[5u32, 3, 1][..],
            &[2, 4, 6],
            &[10, 0, 5, 15],
            &[7],
            &[1, 1, 1, 1],
            &[100, 1],
        ] {
            let g = w.iter().filter(|&&x| x > 0).fold(0, |a, &b| gcd(a, b));
            let cycle: u32 = w.iter().map(|x| x / g).sum();
            let mut s = Scheduler::new(SchedulerKind::Wrr, w);
            for _round in 0..3 {
                let mut count = vec![0u32; w.len()];
                for _ in 0..cycle {
                    count[s.pick(w, &Tuple::default(), 0).unwrap()] += 1;
                }
                let expect: Vec<u32> = w.iter().map(|x| x / g).collect();
                assert_eq!(count, expect, "weights {w:?}");
            }
        }
    }

    #[test]
    fn wrr_all_zero_and_update() {
        let zero = [0u32, 0];
        let mut s = Scheduler::new(SchedulerKind::Wrr, &zero[..]);
        assert_eq!(s.pick(&zero[..], &Tuple::default(), 0), None);
        let w = [0u32, 2];
        s.update(&w[..]);
        assert_eq!(s.pick(&w[..], &Tuple::default(), 0), Some(1));
        assert_eq!(s.pick(&w[..], &Tuple::default(), 0), Some(1));
        // Weights changed under it without update: still bounded, still never picks weight 0.
        let w2 = [1u32, 0, 0];
        for _ in 0..5 {
            assert_ne!(s.pick(&w2[..], &Tuple::default(), 0), Some(1));
        }
    }
}
