//! Locality-based schedulers: `lblc` (one real server per destination address) and `lblcr`
//! (a set of real servers per destination address), for cache clusters.
//!
//! Each worker keeps its own table, pre-sized at [`LOCALITY_ENTRIES`] entries per service
//! (4-way set associative: a new destination replaces an expired or the least recently used
//! entry of its set, where IPVS grows a hash table and collects garbage). An entry unused for
//! [`LOCALITY_EXPIRE_NS`] (IPVS's `lblc_expiration`, 24 h) is forgotten. Entries hold
//! real-server indexes, remapped by identity when the real servers change.

use super::least::{conn_overhead, wlc};
use super::RealSet;

/// Entries per service and worker.
pub const LOCALITY_ENTRIES: usize = 4096;
const WAYS: usize = 4;
/// Unused entries are forgotten after 24 hours (IPVS's default `lblc_expiration`).
pub const LOCALITY_EXPIRE_NS: u64 = 24 * 3600 * 1_000_000_000;
/// `lblcr`: a set that has not changed for this long loses its most loaded member
/// (IPVS's `lblcr_expiration`, 24 h).
pub const LBLCR_SHRINK_NS: u64 = 24 * 3600 * 1_000_000_000;
/// `lblcr`: at most this many servers per destination (IPVS does not bound the set).
pub const LBLCR_SET_MAX: usize = 8;
const NONE: u16 = u16::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Destination address; meaningful when `used` is non-zero.
    dst: u32,
    /// Last use (ns); 0 = free.
    used: u64,
    /// Last change of the set (lblcr).
    modified: u64,
    len: u8,
    set: [u16; LBLCR_SET_MAX],
}

const FREE: Entry = Entry {
    dst: 0,
    used: 0,
    modified: 0,
    len: 0,
    set: [NONE; LBLCR_SET_MAX],
};

/// `lblc` and `lblcr` state of one service in one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locality {
    replicated: bool,
    entries: Vec<Entry>,
    /// Identities of the real servers the indexes refer to.
    idents: Vec<u64>,
}

/// IPVS's locality overload test: a server with more active connections than its weight is
/// overloaded when some other server is less than half loaded.
fn lb_overloaded<R: RealSet + ?Sized>(reals: &R, i: usize) -> bool {
    if u64::from(reals.active(i)) <= u64::from(reals.weight(i)) {
        return false;
    }
    (0..reals.len()).any(|d| u64::from(reals.active(d)) * 2 < u64::from(reals.weight(d)))
}

impl Locality {
    pub fn new<R: RealSet + ?Sized>(reals: &R, replicated: bool) -> Self {
        Locality {
            replicated,
            entries: vec![FREE; LOCALITY_ENTRIES],
            idents: (0..reals.len()).map(|i| reals.ident(i)).collect(),
        }
    }

    /// The real servers changed: remap the entries' indexes by identity (forgetting servers
    /// that left).
    pub fn update<R: RealSet + ?Sized>(&mut self, reals: &R) {
        let idents: Vec<u64> = (0..reals.len()).map(|i| reals.ident(i)).collect();
        let map: Vec<u16> = self
            .idents
            .iter()
            .map(|id| {
                idents
                    .iter()
                    .position(|x| x == id)
                    .filter(|&p| p < NONE as usize)
                    .map_or(NONE, |p| p as u16)
            })
            .collect();
        for e in &mut self.entries {
            if e.used == 0 {
                continue;
            }
            let mut k = 0;
            for j in 0..(e.len as usize).min(LBLCR_SET_MAX) {
                let new = map.get(e.set[j] as usize).copied().unwrap_or(NONE);
                if new != NONE {
                    e.set[k] = new;
                    k += 1;
                }
            }
            for slot in &mut e.set[k..] {
                *slot = NONE;
            }
            e.len = k as u8;
            if k == 0 {
                *e = FREE;
            }
        }
        self.idents = idents;
    }

    fn find(&mut self, dst: u32, now: u64) -> (usize, bool) {
        let sets = self.entries.len() / WAYS;
        let base = (super::hash::mix64(u64::from(dst)) % sets as u64) as usize * WAYS;
        let mut victim = base;
        for k in base..base + WAYS {
            let e = &self.entries[k];
            let live = e.used != 0 && now.saturating_sub(e.used) < LOCALITY_EXPIRE_NS;
            if live && e.dst == dst {
                return (k, true);
            }
            let v = &self.entries[victim];
            let v_live = v.used != 0 && now.saturating_sub(v.used) < LOCALITY_EXPIRE_NS;
            if !live && v_live || live == v_live && e.used < v.used {
                victim = k;
            }
        }
        (victim, false)
    }

    /// Picks a server for a new connection to `dst` at `now` (ns).
    pub fn pick<R: RealSet + ?Sized>(&mut self, reals: &R, dst: u32, now: u64) -> Option<usize> {
        let now = now.max(1); // 0 marks a free entry
        let (k, found) = self.find(dst, now);
        let usable = |i: usize| i < reals.len() && reals.available(i) && !lb_overloaded(reals, i);
        if found {
            let e = &mut self.entries[k];
            e.used = now;
            if !self.replicated {
                let i = e.set[0] as usize;
                if usable(i) {
                    return Some(i);
                }
                let i = wlc(reals)?;
                e.set[0] = i as u16;
                e.len = 1;
                return Some(i);
            }
            // lblcr: the least loaded member of the set.
            let len = (e.len as usize).min(LBLCR_SET_MAX);
            let ratio = |i: usize| {
                (
                    u128::from(conn_overhead(reals, i)),
                    u128::from(reals.weight(i)),
                )
            };
            let mut min: Option<usize> = None;
            for &m in &e.set[..len] {
                let m = m as usize;
                if m >= reals.len() || !reals.available(m) {
                    continue;
                }
                let (oh, w) = ratio(m);
                if min.is_none_or(|b| {
                    let (boh, bw) = ratio(b);
                    boh * w > oh * bw
                }) {
                    min = Some(m);
                }
            }
            // A set unchanged for long enough sheds its most loaded member.
            if len > 1 && now.saturating_sub(e.modified) > LBLCR_SHRINK_NS {
                let mut max = 0;
                for j in 1..len {
                    let (a, aw) = ratio(e.set[max] as usize);
                    let (b, bw) = ratio(e.set[j] as usize);
                    if b * aw > a * bw {
                        max = j;
                    }
                }
                e.set.copy_within(max + 1..len, max);
                e.set[len - 1] = NONE;
                e.len -= 1;
                e.modified = now;
                if min.is_some_and(|m| !e.set[..len - 1].contains(&(m as u16))) {
                    min = None;
                }
            }
            if let Some(m) = min.filter(|&m| !lb_overloaded(reals, m)) {
                return Some(m);
            }
            let i = wlc(reals)?;
            let len = (e.len as usize).min(LBLCR_SET_MAX);
            if !e.set[..len].contains(&(i as u16)) {
                if len < LBLCR_SET_MAX {
                    e.set[len] = i as u16;
                    e.len += 1;
                } else {
                    e.set[LBLCR_SET_MAX - 1] = i as u16;
                }
            }
            e.modified = now;
            return Some(i);
        }
        let i = wlc(reals)?;
        let mut set = [NONE; LBLCR_SET_MAX];
        set[0] = i as u16;
        self.entries[k] = Entry {
            dst,
            used: now,
            modified: now,
            len: 1,
            set,
        };
        Some(i)
    }
}
