//! Per-service client admission: allow/deny lists of client prefixes and a cap on new
//! connections per second per client prefix. Both are consulted only when a packet would
//! create a session; established sessions never look at them.
//!
//! [`PrefixSet`] is built on the control side (once per rules snapshot, shared by every
//! worker through an `Arc`) and answers "does any prefix contain this address" with one
//! open-addressing probe sequence per distinct prefix length present (at most 33), whatever
//! the number of entries: O(prefix length), no allocation.
//!
//! [`RateTable`] is per worker and per service: a fixed number of slots, each the GCRA state
//! (theoretical arrival time) of one client prefix. See [`RateTable::admit`].

use std::hash::{Hash, Hasher};

use crate::rules::prefix_mask;

/// One prefix length of a [`PrefixSet`]: the networks of that length in an open-addressing
/// table (slot 0 = empty, else `1 << 32 | network`).
#[derive(Debug, Clone)]
struct Level {
    mask: u32,
    shift: u32,
    slots: Box<[u64]>,
}

#[inline]
fn hash32(net: u32) -> u64 {
    (u64::from(net) ^ 0x5bd1_e995).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Level {
    fn new(len: u8, nets: &[u32]) -> Level {
        let cap = (nets.len() * 2).next_power_of_two().max(8);
        let bits = cap.trailing_zeros();
        let mut level = Level {
            mask: prefix_mask(len),
            shift: 64 - bits,
            slots: vec![0u64; cap].into_boxed_slice(),
        };
        for &n in nets {
            let m = level.slots.len() - 1;
            let mut i = (hash32(n) >> level.shift) as usize;
            loop {
                let s = &mut level.slots[i];
                if *s == 0 {
                    *s = (1 << 32) | u64::from(n);
                    break;
                }
                if *s == (1 << 32) | u64::from(n) {
                    break;
                }
                i = (i + 1) & m;
            }
        }
        level
    }

    #[inline]
    fn contains(&self, addr: u32) -> bool {
        let net = addr & self.mask;
        let want = (1 << 32) | u64::from(net);
        let m = self.slots.len() - 1;
        let mut i = (hash32(net) >> self.shift) as usize;
        // The table is at most half full: an empty slot always ends the probe.
        loop {
            match self.slots.get(i) {
                Some(&s) if s == want => return true,
                Some(&0) | None => return false,
                Some(_) => i = (i + 1) & m,
            }
        }
    }
}

/// A set of IPv4 prefixes (network, length), host order. Equality and hashing are those of
/// the sorted entry list.
#[derive(Debug, Clone, Default)]
pub struct PrefixSet {
    /// Sorted, without repeats; host bits cleared.
    entries: Vec<(u32, u8)>,
    /// Longest first.
    levels: Vec<Level>,
}

impl PartialEq for PrefixSet {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}
impl Eq for PrefixSet {}
impl Hash for PrefixSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entries.hash(state);
    }
}

impl PrefixSet {
    /// The set of `prefixes` (address, length 0..=32; host bits are ignored).
    pub fn new(prefixes: impl IntoIterator<Item = (u32, u8)>) -> PrefixSet {
        let mut entries: Vec<(u32, u8)> = prefixes
            .into_iter()
            .map(|(a, l)| {
                let l = l.min(32);
                (a & prefix_mask(l), l)
            })
            .collect();
        entries.sort_unstable();
        entries.dedup();
        let mut levels = Vec::new();
        for len in (0..=32u8).rev() {
            let nets: Vec<u32> = entries.iter().filter(|e| e.1 == len).map(|e| e.0).collect();
            if !nets.is_empty() {
                levels.push(Level::new(len, &nets));
            }
        }
        PrefixSet { entries, levels }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries, sorted.
    pub fn entries(&self) -> &[(u32, u8)] {
        &self.entries
    }

    /// True when some prefix of the set contains `addr` (host order).
    #[inline]
    pub fn contains(&self, addr: u32) -> bool {
        self.levels.iter().any(|l| l.contains(addr))
    }
}

/// Why a client may not open a connection to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// In the deny list.
    Denied,
    /// The allow list is not empty and does not contain it.
    NotAllowed,
}

/// A service's allow and deny lists. A client is refused when the deny list contains it
/// (deny wins), or when the allow list is not empty and does not contain it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ClientAcl {
    pub allow: PrefixSet,
    pub deny: PrefixSet,
}

impl ClientAcl {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// `Ok` when `client` (host order) may open a new connection.
    #[inline]
    pub fn check(&self, client: u32) -> Result<(), Refusal> {
        if self.deny.contains(client) {
            return Err(Refusal::Denied);
        }
        if !self.allow.is_empty() && !self.allow.contains(client) {
            return Err(Refusal::NotAllowed);
        }
        Ok(())
    }
}

/// A cap on new connections per client prefix: `rate` per second with bursts of `burst`,
/// clients grouped by their first `prefix_len` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRateLimit {
    /// New connections per second (> 0).
    pub rate: u32,
    /// Connections admitted back to back after a quiet period (>= 1).
    pub burst: u32,
    pub prefix_len: u8,
}

/// Slots of a worker's [`RateTable`] (a power of two; pairs of slots form a bucket).
pub const RATE_TABLE_SLOTS: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
struct RateSlot {
    /// `1 << 32 | prefix`, 0 = free.
    key: u64,
    /// GCRA theoretical arrival time (ns).
    tat: u64,
}

/// What [`RateTable::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Admitted, but the prefix took over a slot of another prefix that was still limited
    /// (the table was full): that prefix starts afresh if it comes back.
    YesEvicted,
    No,
}

/// One worker's share of a [`ConnRateLimit`]: with `workers` workers each admits
/// `rate / workers` per second per prefix (and a burst of `burst / workers`, at least 1), so
/// that a prefix whose connections RSS spreads over the workers gets about `rate` in total.
/// Fixed size ([`RATE_TABLE_SLOTS`]), allocated when the rules are applied; 2-way buckets
/// indexed by a hash of the prefix.
#[derive(Debug, Clone)]
pub struct RateTable {
    limit: ConnRateLimit,
    mask: u32,
    /// ns between admissions.
    interval: u64,
    /// How far the arrival time may run ahead of now: (burst - 1) intervals.
    tolerance: u64,
    slots: Box<[RateSlot]>,
}

impl RateTable {
    pub fn new(limit: ConnRateLimit, workers: u16) -> RateTable {
        let workers = u64::from(workers.max(1));
        let rate = u64::from(limit.rate.max(1));
        let interval = (1_000_000_000 * workers).div_ceil(rate);
        let burst = (u64::from(limit.burst.max(1)) / workers).max(1);
        RateTable {
            limit,
            mask: prefix_mask(limit.prefix_len),
            interval,
            tolerance: (burst - 1) * interval,
            slots: vec![RateSlot::default(); RATE_TABLE_SLOTS].into_boxed_slice(),
        }
    }

    pub fn limit(&self) -> ConnRateLimit {
        self.limit
    }

    /// Counts a new connection of `client` (host order) at `now` (ns) against its prefix.
    #[inline]
    pub fn admit(&mut self, client: u32, now: u64) -> Admit {
        let prefix = client & self.mask;
        let key = (1u64 << 32) | u64::from(prefix);
        let n = self.slots.len();
        let base = ((hash32(prefix) >> 32) as usize & (n - 1)) & !1;
        let mut pick = None;
        let mut evicted = false;
        for i in base..(base + 2).min(n) {
            if self.slots[i].key == key {
                pick = Some(i);
                break;
            }
        }
        let i = match pick {
            Some(i) => i,
            None => {
                // A free slot, else one whose prefix is idle (its arrival time has passed:
                // it would be admitted with a full burst anyway), else the one closest to
                // idle, which then loses its state.
                let (a, b) = (base, (base + 1).min(n - 1));
                let idle = |s: &RateSlot| s.key == 0 || s.tat <= now;
                let i = if idle(&self.slots[a]) {
                    a
                } else if idle(&self.slots[b]) {
                    b
                } else {
                    evicted = true;
                    if self.slots[a].tat <= self.slots[b].tat {
                        a
                    } else {
                        b
                    }
                };
                self.slots[i] = RateSlot { key, tat: now };
                i
            }
        };
        let slot = &mut self.slots[i];
        let tat = slot.tat.max(now);
        if tat - now > self.tolerance {
            return Admit::No;
        }
        slot.tat = tat + self.interval;
        if evicted {
            Admit::YesEvicted
        } else {
            Admit::Yes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    #[test]
    fn prefix_set_matches_by_every_length() {
        let set = PrefixSet::new([
            (ip("198.18.0.0"), 24),
            (ip("198.18.5.7"), 32),
            (ip("10.0.0.0"), 8),
        ]);
        assert!(set.contains(ip("198.18.0.200")));
        assert!(set.contains(ip("198.18.5.7")));
        assert!(!set.contains(ip("198.18.5.8")));
        assert!(set.contains(ip("10.255.1.1")));
        assert!(!set.contains(ip("11.0.0.1")));
        assert!(!PrefixSet::default().contains(0));
        let all = PrefixSet::new([(0, 0)]);
        assert!(all.contains(ip("1.2.3.4")));
        assert!(all.contains(0));
    }

    #[test]
    fn host_bits_and_repeats_are_normalised() {
        let a = PrefixSet::new([(ip("198.18.0.9"), 24), (ip("198.18.0.0"), 24)]);
        let b = PrefixSet::new([(ip("198.18.0.0"), 24)]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn deny_wins_and_an_empty_allow_list_allows_everyone() {
        let mut acl = ClientAcl::default();
        assert_eq!(acl.check(ip("1.2.3.4")), Ok(()));
        acl.deny = PrefixSet::new([(ip("198.18.0.0"), 24)]);
        assert_eq!(acl.check(ip("198.18.0.1")), Err(Refusal::Denied));
        assert_eq!(acl.check(ip("198.18.1.1")), Ok(()));
        acl.allow = PrefixSet::new([(ip("198.18.0.0"), 16)]);
        assert_eq!(acl.check(ip("198.18.0.1")), Err(Refusal::Denied));
        assert_eq!(acl.check(ip("198.18.1.1")), Ok(()));
        assert_eq!(acl.check(ip("198.19.1.1")), Err(Refusal::NotAllowed));
    }

    #[test]
    fn full_table_of_100k_prefixes() {
        let set = PrefixSet::new((0..100_000u32).map(|i| (0x0A00_0000 | (i << 8), 24)));
        assert_eq!(set.len(), 100_000);
        assert!(set.contains(0x0A00_0000 | (99_999 << 8) | 7));
        assert!(!set.contains(0x0A00_0000 | (100_000 << 8)));
    }

    #[test]
    fn rate_table_admits_the_burst_then_the_rate() {
        let lim = ConnRateLimit {
            rate: 10,
            burst: 3,
            prefix_len: 24,
        };
        let mut t = RateTable::new(lim, 1);
        let c = ip("198.18.0.1");
        let now = 1_000_000_000;
        for _ in 0..3 {
            assert_eq!(t.admit(c, now), Admit::Yes);
        }
        assert_eq!(t.admit(c, now), Admit::No);
        // Another host of the same /24 shares the bucket; another /24 does not.
        assert_eq!(t.admit(ip("198.18.0.2"), now), Admit::No);
        assert_eq!(t.admit(ip("198.18.1.2"), now), Admit::Yes);
        // One interval (100 ms) later one more.
        assert_eq!(t.admit(c, now + 100_000_000), Admit::Yes);
        assert_eq!(t.admit(c, now + 100_000_000), Admit::No);
        // After a quiet second, the full burst again.
        for _ in 0..3 {
            assert_eq!(t.admit(c, now + 2_000_000_000), Admit::Yes);
        }
    }

    #[test]
    fn rate_is_shared_among_workers() {
        let lim = ConnRateLimit {
            rate: 10,
            burst: 4,
            prefix_len: 32,
        };
        let mut t = RateTable::new(lim, 2);
        let c = ip("198.18.0.1");
        assert_eq!(t.admit(c, 0), Admit::Yes);
        assert_eq!(t.admit(c, 0), Admit::Yes);
        assert_eq!(t.admit(c, 0), Admit::No);
        // 5 per second on this worker: 200 ms apart.
        assert_eq!(t.admit(c, 199_999_999), Admit::No);
        assert_eq!(t.admit(c, 200_000_000), Admit::Yes);
        assert_eq!(t.admit(c, 200_000_000), Admit::No);
    }

    #[test]
    fn a_full_table_evicts_and_says_so() {
        let lim = ConnRateLimit {
            rate: 1,
            burst: 1,
            prefix_len: 32,
        };
        let mut t = RateTable::new(lim, 1);
        let mut evicted = 0;
        for c in 0..(RATE_TABLE_SLOTS as u32 * 4) {
            match t.admit(c, 0) {
                Admit::Yes => {}
                Admit::YesEvicted => evicted += 1,
                Admit::No => panic!("a fresh prefix is admitted"),
            }
        }
        assert!(evicted > 0);
    }
}
