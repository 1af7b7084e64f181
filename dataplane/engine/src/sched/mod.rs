//! Schedulers: pick the real server of a new session.
//!
//! Each worker keeps one [`Scheduler`] per service (its cursor is per worker: no shared
//! state). A real server of weight 0 is never picked for a new session (it drains). The
//! algorithms follow kernel IPVS:
//!
//! - `rr`: the next real server after the last one picked, in list order, skipping weight 0.
//! - `wrr`: IPVS's weighted round-robin: a current weight `cw` starts at the maximum weight
//!   and falls by the gcd of the weights after each pass over the list; a pass picks, in list
//!   order, every server whose weight is ≥ `cw`. Over one cycle of `Σw / gcd` picks each server
//!   is picked exactly `w / gcd` times.

use crate::rules::SchedulerKind;

/// What a scheduler sees of a service's real servers.
pub trait RealSet {
    fn len(&self) -> usize;
    fn weight(&self, i: usize) -> u32;
    fn is_empty(&self) -> bool {
        self.len() == 0
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

/// Round-robin state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundRobin {
    last: Option<usize>,
}

impl RoundRobin {
    pub fn pick<R: RealSet + ?Sized>(&mut self, reals: &R) -> Option<usize> {
        let n = reals.len();
        if n == 0 {
            return None;
        }
        let start = self.last.map_or(0, |l| (l + 1) % n);
        for k in 0..n {
            let i = (start + k) % n;
            if reals.weight(i) > 0 {
                self.last = Some(i);
                return Some(i);
            }
        }
        None
    }
}

/// Weighted round-robin state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    /// Last picked index; `None` = before the head of the list.
    cl: Option<usize>,
    cw: u32,
    mw: u32,
    di: u32,
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl WeightedRoundRobin {
    pub fn new<R: RealSet + ?Sized>(reals: &R) -> Self {
        let mut s = WeightedRoundRobin::default();
        s.update(reals);
        s
    }

    /// Recomputes max weight and gcd after the real servers or their weights changed
    /// (the cursor restarts at the head, as IPVS does).
    pub fn update<R: RealSet + ?Sized>(&mut self, reals: &R) {
        let (mut mw, mut di) = (0, 0);
        for i in 0..reals.len() {
            let w = reals.weight(i);
            if w > 0 {
                mw = mw.max(w);
                di = gcd(di, w);
            }
        }
        self.mw = mw;
        self.di = di.max(1);
        self.cl = None;
        if self.cw == 0 || self.cw > mw {
            self.cw = mw;
        } else {
            // Keep the pass but align it on the new gcd.
            self.cw = (self.cw / self.di).max(1) * self.di;
        }
    }

    pub fn pick<R: RealSet + ?Sized>(&mut self, reals: &R) -> Option<usize> {
        let n = reals.len();
        if n == 0 || self.mw == 0 {
            return None;
        }
        let mut i = self.cl.map_or(0, |c| c + 1);
        // Within two passes the maximum-weight server qualifies; the bound also protects
        // against weights changed without `update`.
        for _ in 0..2 * n + 2 {
            if i >= n {
                i = 0;
                self.cw = self.cw.saturating_sub(self.di);
                if self.cw == 0 {
                    self.cw = self.mw;
                }
            }
            if reals.weight(i) > 0 && reals.weight(i) >= self.cw {
                self.cl = Some(i);
                return Some(i);
            }
            i += 1;
        }
        None
    }
}

/// A service's scheduler, dispatched by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduler {
    Rr(RoundRobin),
    Wrr(WeightedRoundRobin),
}

impl Scheduler {
    pub fn new<R: RealSet + ?Sized>(kind: SchedulerKind, reals: &R) -> Self {
        match kind {
            SchedulerKind::Rr => Scheduler::Rr(RoundRobin::default()),
            SchedulerKind::Wrr => Scheduler::Wrr(WeightedRoundRobin::new(reals)),
        }
    }

    pub fn kind(&self) -> SchedulerKind {
        match self {
            Scheduler::Rr(_) => SchedulerKind::Rr,
            Scheduler::Wrr(_) => SchedulerKind::Wrr,
        }
    }

    /// Tells the scheduler the real servers or weights changed.
    pub fn update<R: RealSet + ?Sized>(&mut self, reals: &R) {
        match self {
            Scheduler::Rr(rr) => {
                if rr.last.is_some_and(|l| l >= reals.len()) {
                    rr.last = None;
                }
            }
            Scheduler::Wrr(wrr) => wrr.update(reals),
        }
    }

    /// The index of the real server for a new session, or `None` when none can take one.
    #[inline]
    pub fn pick<R: RealSet + ?Sized>(&mut self, reals: &R) -> Option<usize> {
        match self {
            Scheduler::Rr(s) => s.pick(reals),
            Scheduler::Wrr(s) => s.pick(reals),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(kind: SchedulerKind, w: &[u32], n: usize) -> Vec<usize> {
        let mut s = Scheduler::new(kind, w);
        (0..n).map(|_| s.pick(w).unwrap()).collect()
    }

    #[test]
    fn rr_cycles_and_skips_weight_zero() {
        assert_eq!(
            picks(SchedulerKind::Rr, &[1, 1, 1], 7),
            vec![0, 1, 2, 0, 1, 2, 0]
        );
        assert_eq!(picks(SchedulerKind::Rr, &[1, 0, 5], 4), vec![0, 2, 0, 2]);
        let mut s = Scheduler::new(SchedulerKind::Rr, &[0u32, 0][..]);
        assert_eq!(s.pick(&[0u32, 0][..]), None);
        assert_eq!(s.pick::<[u32]>(&[]), None);
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
                    count[s.pick(w).unwrap()] += 1;
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
        assert_eq!(s.pick(&zero[..]), None);
        let w = [0u32, 2];
        s.update(&w[..]);
        assert_eq!(s.pick(&w[..]), Some(1));
        assert_eq!(s.pick(&w[..]), Some(1));
        // Weights changed under it without update: still bounded, still never picks weight 0.
        let w2 = [1u32, 0, 0];
        for _ in 0..5 {
            assert_ne!(s.pick(&w2[..]), Some(1));
        }
    }
}
