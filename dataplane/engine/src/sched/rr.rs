//! Round-robin schedulers: `rr` and `wrr`, as kernel IPVS does them.

use super::RealSet;

/// Round-robin state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundRobin {
    last: Option<usize>,
}

impl RoundRobin {
    /// The real-server list changed: restart at its head when the cursor fell off its end.
    pub fn update(&mut self, len: usize) {
        if self.last.is_some_and(|l| l >= len) {
            self.last = None;
        }
    }

    pub fn pick<R: RealSet + ?Sized>(&mut self, reals: &R) -> Option<usize> {
        let n = reals.len();
        if n == 0 {
            return None;
        }
        // The cursor wraps by comparison: two divisions per new connection were most of
        // the pick's cost (`last` may be past the end when the list shrank without `update`).
        let mut i = self.last.map_or(0, |l| l + 1);
        for _ in 0..n {
            if i >= n {
                i = 0;
            }
            if reals.available(i) {
                self.last = Some(i);
                return Some(i);
            }
            i += 1;
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

pub(crate) fn gcd(mut a: u32, mut b: u32) -> u32 {
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
            if reals.available(i) && reals.weight(i) >= self.cw {
                self.cl = Some(i);
                return Some(i);
            }
            i += 1;
        }
        None
    }
}
