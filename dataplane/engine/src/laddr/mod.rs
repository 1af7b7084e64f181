//! Local addresses (LIPs) and this worker's slice of their port space.
//!
//! Worker `w` of `N` owns the ports `p` in `[lport_min, lport_max]` with `p % N == w` (no
//! power-of-two rounding), so the owner of a reply is `lport % N` ([`owner_of`]). Each LIP has a
//! FIFO ring of its free owned ports, filled at construction: allocation pops the oldest free
//! port and release pushes at the back, so a port is reused as late as possible, and only after
//! the session holding it ended. A bitmap of ports in use guards against double release and
//! lets the range change under established sessions.

use std::net::Ipv4Addr;

/// The worker that owns local port `lport` among `workers` workers.
#[inline]
pub fn owner_of(lport: u16, workers: u16) -> u16 {
    if workers == 0 {
        0
    } else {
        lport % workers
    }
}

/// The free ports of one local address for one worker.
pub struct PortPool {
    addr: Ipv4Addr,
    worker: u16,
    workers: u16,
    min: u16,
    max: u16,
    ring: Vec<u16>,
    head: usize,
    free: usize,
    in_use: Box<[u64; 1024]>,
    used: usize,
}

impl PortPool {
    /// The pool of `addr` for worker `worker` of `workers`, over `[min, max]` (port 0 excluded).
    pub fn new(addr: Ipv4Addr, min: u16, max: u16, worker: u16, workers: u16) -> Self {
        let mut pool = PortPool {
            addr,
            worker,
            workers: workers.max(1),
            min,
            max,
            ring: Vec::new(),
            head: 0,
            free: 0,
            in_use: Box::new([0; 1024]),
            used: 0,
        };
        pool.refill();
        pool
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// True when this worker owns `port` within the current range.
    #[inline]
    pub fn owns(&self, port: u16) -> bool {
        port != 0
            && port >= self.min
            && port <= self.max
            && owner_of(port, self.workers) == self.worker
    }

    #[inline]
    fn is_used(&self, port: u16) -> bool {
        self.in_use[port as usize >> 6] & (1 << (port & 63)) != 0
    }

    #[inline]
    fn set_used(&mut self, port: u16, used: bool) {
        let w = &mut self.in_use[port as usize >> 6];
        if used {
            *w |= 1 << (port & 63);
        } else {
            *w &= !(1 << (port & 63));
        }
    }

    /// Rebuilds the free ring from the range: every owned port not in use.
    fn refill(&mut self) {
        let mut ring = Vec::new();
        if self.min <= self.max {
            // First owned port at or above min (and above 0).
            let lo = self.min.max(1) as u32;
            let w = self.workers as u32;
            let first = lo + (self.worker as u32 + w - lo % w) % w;
            ring.reserve(((self.max as u32).saturating_sub(first) / w + 1) as usize);
            let mut p = first;
            while p <= self.max as u32 {
                if !self.is_used(p as u16) {
                    ring.push(p as u16);
                }
                p += w;
            }
        }
        self.free = ring.len();
        self.head = 0;
        // Room for every owned port: ports in use come back here when released.
        let total = ring.len() + self.used;
        ring.resize(total.max(1), 0);
        self.ring = ring;
    }

    /// Changes the port range (at a rules update). Ports in use stay in use; those outside
    /// the new range are not handed out again once released.
    pub fn set_range(&mut self, min: u16, max: u16) {
        if (min, max) != (self.min, self.max) {
            self.min = min;
            self.max = max;
            self.refill();
        }
    }

    /// Takes a free port.
    #[inline]
    pub fn alloc(&mut self) -> Option<u16> {
        loop {
            if self.free == 0 {
                return None;
            }
            let port = self.ring[self.head];
            self.head = if self.head + 1 == self.ring.len() {
                0
            } else {
                self.head + 1
            };
            self.free -= 1;
            // A port `take` claimed (a synced session) still has its entry in the ring.
            if self.is_used(port) {
                continue;
            }
            self.set_used(port, true);
            self.used += 1;
            return Some(port);
        }
    }

    /// Claims `port` for a session installed from a peer director (session sync): false when
    /// this worker does not own it or it is in use. Its entry stays in the free ring and
    /// `alloc` skips it while it is in use.
    pub fn take(&mut self, port: u16) -> bool {
        if !self.owns(port) || self.is_used(port) {
            return false;
        }
        self.set_used(port, true);
        self.used += 1;
        true
    }

    /// Gives a port back (after its session ended). False, changing nothing, when the port was
    /// not in use.
    #[inline]
    pub fn release(&mut self, port: u16) -> bool {
        if !self.is_used(port) {
            return false;
        }
        self.set_used(port, false);
        self.used -= 1;
        if self.owns(port) && self.free < self.ring.len() {
            let mut tail = self.head + self.free;
            if tail >= self.ring.len() {
                tail -= self.ring.len();
            }
            self.ring[tail] = port;
            self.free += 1;
        }
        true
    }

    /// Free ports.
    pub fn available(&self) -> usize {
        self.free
    }

    /// Ports held by sessions.
    pub fn in_use(&self) -> usize {
        self.used
    }
}

/// All local addresses of one worker, in stable slots (a slot keeps its address while any
/// session uses it, even after the address left the rules).
pub struct LocalAddrs {
    worker: u16,
    workers: u16,
    min: u16,
    max: u16,
    pools: Vec<PortPool>,
}

impl LocalAddrs {
    pub fn new(worker: u16, workers: u16, min: u16, max: u16) -> Self {
        LocalAddrs {
            worker,
            workers,
            min,
            max,
            pools: Vec::new(),
        }
    }

    /// The slot of `addr`, if it has one.
    pub fn slot_of(&self, addr: Ipv4Addr) -> Option<usize> {
        self.pools.iter().position(|p| p.addr == addr)
    }

    /// The slot of `addr`, creating its pool if needed (rules update time: allocates).
    pub fn ensure(&mut self, addr: Ipv4Addr) -> usize {
        match self.slot_of(addr) {
            Some(s) => s,
            None => {
                self.pools.push(PortPool::new(
                    addr,
                    self.min,
                    self.max,
                    self.worker,
                    self.workers,
                ));
                self.pools.len() - 1
            }
        }
    }

    /// True when `port` lies in the local port range (whichever worker owns it).
    #[inline]
    pub fn in_range(&self, port: u16) -> bool {
        (self.min..=self.max).contains(&port)
    }

    /// Changes every pool's range.
    pub fn set_range(&mut self, min: u16, max: u16) {
        self.min = min;
        self.max = max;
        for p in &mut self.pools {
            p.set_range(min, max);
        }
    }

    /// Starts loading what taking a port from `slot` reads first: its pool and the free
    /// ring's head (a hint: the addresses take connections in turn, so the next one is known
    /// a connection ahead, and its pool was last touched a full turn ago).
    #[inline]
    pub fn prefetch(&self, slot: usize, prefetch: crate::session::table::Prefetch) {
        if let Some(p) = self.pools.get(slot) {
            prefetch((p as *const PortPool).cast());
            if let Some(h) = p.ring.get(p.head) {
                prefetch((h as *const u16).cast());
            }
        }
    }

    pub fn pool(&self, slot: usize) -> Option<&PortPool> {
        self.pools.get(slot)
    }

    pub fn len(&self) -> usize {
        self.pools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// Takes a port from the first of `slots` that has one; calls `exhausted(slot)` for each
    /// slot tried and found empty. Returns (slot, port).
    #[inline]
    pub fn alloc(&mut self, slots: &[u16], exhausted: impl FnMut(usize)) -> Option<(usize, u16)> {
        self.alloc_from(slots, exhausted)
            .and_then(|(i, port)| Some((*slots.get(i)? as usize, port)))
    }

    /// [`Self::alloc`], returning where in `slots` the port came from: (index, port).
    #[inline]
    pub fn alloc_from(
        &mut self,
        slots: &[u16],
        mut exhausted: impl FnMut(usize),
    ) -> Option<(usize, u16)> {
        for (i, &s) in slots.iter().enumerate() {
            let s = s as usize;
            let Some(pool) = self.pools.get_mut(s) else {
                continue;
            };
            match pool.alloc() {
                Some(port) => return Some((i, port)),
                None => exhausted(s),
            }
        }
        None
    }

    /// Claims `port` of `slot` (see [`PortPool::take`]).
    pub fn take(&mut self, slot: usize, port: u16) -> bool {
        self.pools.get_mut(slot).is_some_and(|p| p.take(port))
    }

    /// Gives `port` of `slot` back.
    #[inline]
    pub fn release(&mut self, slot: usize, port: u16) -> bool {
        self.pools.get_mut(slot).is_some_and(|p| p.release(port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn drain(p: &mut PortPool) -> Vec<u16> {
        std::iter::from_fn(|| p.alloc()).collect()
    }

    #[test]
    fn slices_are_disjoint_and_cover_the_range() {
        for workers in 1..=5u16 {
            for (min, max) in [(1024, 65535), (5000, 5010), (0, 20), (65530, 65535)] {
                let mut all = Vec::new();
                for w in 0..workers {
                    let mut p = PortPool::new(LIP, min, max, w, workers);
                    let ports = drain(&mut p);
                    assert!(ports.iter().all(|&x| owner_of(x, workers) == w));
                    all.extend(ports);
                }
                all.sort();
                let expect: Vec<u16> = (min.max(1)..=max).collect();
                assert_eq!(all, expect, "workers {workers} range {min}..={max}");
            }
        }
    }

    #[test]
    fn fifo_reuse_only_after_release() {
        let mut p = PortPool::new(LIP, 100, 109, 0, 2); // 100 102 104 106 108
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        assert_eq!((a, b), (100, 102));
        assert!(p.release(a));
        assert!(!p.release(a), "double release");
        assert!(!p.release(101), "never allocated");
        // The released port comes back only after the other free ones.
        assert_eq!(drain(&mut p), vec![104, 106, 108, 100]);
        assert_eq!(p.available(), 0);
        assert_eq!(p.in_use(), 5);
        assert!(p.release(106));
        assert_eq!(p.alloc(), Some(106));
    }

    #[test]
    fn exhaustion_falls_over_to_the_next_lip() {
        let mut l = LocalAddrs::new(1, 2, 1000, 1005); // worker 1 owns 1001 1003 1005
        let a = l.ensure(LIP) as u16;
        let b = l.ensure(Ipv4Addr::new(10, 0, 0, 2)) as u16;
        assert_eq!(l.ensure(LIP), a as usize);
        let mut exhausted = Vec::new();
        let mut got = Vec::new();
        for _ in 0..7 {
            got.push(l.alloc(&[a, b], |s| exhausted.push(s)));
        }
        let (a, b) = (a as usize, b as usize);
        assert_eq!(
            got,
            vec![
                Some((a, 1001)),
                Some((a, 1003)),
                Some((a, 1005)),
                Some((b, 1001)),
                Some((b, 1003)),
                Some((b, 1005)),
                None
            ]
        );
        assert_eq!(exhausted, vec![a, a, a, a, b]);
        assert!(l.release(a, 1003));
        assert_eq!(
            l.alloc(&[a as u16, b as u16], |_| panic!()),
            Some((a, 1003))
        );
    }

    #[test]
    fn range_change_keeps_ports_in_use() {
        let mut p = PortPool::new(LIP, 10, 19, 0, 1);
        let held = [p.alloc().unwrap(), p.alloc().unwrap()]; // 10, 11
        p.set_range(11, 14);
        let rest = drain(&mut p);
        assert_eq!(rest, vec![12, 13, 14]);
        assert!(p.release(held[0])); // 10 is outside the range now: not reused
        assert!(p.release(held[1]));
        assert_eq!(drain(&mut p), vec![11]);
        p.set_range(20, 10); // empty range
        assert_eq!(p.alloc(), None);
    }

    #[test]
    fn owner() {
        assert_eq!(owner_of(1027, 4), 3);
        assert_eq!(owner_of(1027, 1), 0);
        assert_eq!(owner_of(1027, 0), 0);
        assert_eq!(owner_of(65535, 3), 0);
    }
}
