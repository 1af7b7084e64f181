//! The neighbour table all workers share: fixed size, lock-free, written rarely.
//!
//! Each slot is four atomics: the key (port, IPv4 address), the MAC (0 while INCOMPLETE), the
//! time the entry was last confirmed by an ARP packet, and the time the last ARP request for
//! it went out (the rate limit every worker honours). Slots are claimed with one
//! compare-and-swap and never freed or moved, so a reader needs no lock and can never see a
//! key change under it; the capacity bounds the table (a full table refuses new neighbours,
//! and their packets are dropped as `no_neighbour`). Writes happen only when an ARP packet
//! arrives or a request goes out, not per forwarded packet, so the cache lines stay shared.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::rules::PortIndex;

/// Slots probed at most per lookup (linear probing).
const MAX_PROBE: usize = 16;
const KEY_USED: u64 = 1 << 63;
const MAC_VALID: u64 = 1 << 63;

#[derive(Default)]
struct Slot {
    key: AtomicU64,
    mac: AtomicU64,
    confirmed: AtomicU64,
    requested: AtomicU64,
}

/// A shared, fixed-capacity neighbour table. Cheap to read from any worker.
pub struct NeighTable {
    slots: Box<[Slot]>,
    mask: usize,
}

/// What a worker reads about one neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The MAC address, or `None` while INCOMPLETE (requested, not answered).
    pub mac: Option<[u8; 6]>,
    /// When an ARP packet last confirmed it (ns, the workers' clock).
    pub confirmed: u64,
}

#[inline]
fn key_of(port: PortIndex, ip: u32) -> u64 {
    KEY_USED | (u64::from(port) << 32) | u64::from(ip)
}

#[inline]
fn pack_mac(mac: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(&mac);
    MAC_VALID | u64::from_be_bytes(b)
}

#[inline]
fn unpack_mac(v: u64) -> Option<[u8; 6]> {
    if v & MAC_VALID == 0 {
        return None;
    }
    let b = v.to_be_bytes();
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[2..]);
    Some(m)
}

impl NeighTable {
    /// A table of at least `capacity` slots (rounded up to a power of two, at least 64).
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(64).next_power_of_two();
        NeighTable {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn start(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }

    #[inline]
    fn find(&self, key: u64) -> Option<&Slot> {
        let start = self.start(key);
        for i in 0..MAX_PROBE.min(self.slots.len()) {
            let s = &self.slots[(start + i) & self.mask];
            match s.key.load(Ordering::Acquire) {
                0 => return None,
                k if k == key => return Some(s),
                _ => {}
            }
        }
        None
    }

    /// The slot of `key`, claiming an empty one if needed. `None` when the table is full
    /// along the probe sequence.
    fn find_or_claim(&self, key: u64) -> Option<&Slot> {
        let start = self.start(key);
        for i in 0..MAX_PROBE.min(self.slots.len()) {
            let s = &self.slots[(start + i) & self.mask];
            let k = s.key.load(Ordering::Acquire);
            if k == key {
                return Some(s);
            }
            if k == 0 {
                match s
                    .key
                    .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return Some(s),
                    Err(k) if k == key => return Some(s),
                    Err(_) => {}
                }
            }
        }
        None
    }

    /// The entry of `ip` behind `port`, if the table has one.
    #[inline]
    pub fn get(&self, port: PortIndex, ip: u32) -> Option<Entry> {
        let s = self.find(key_of(port, ip))?;
        Some(Entry {
            mac: unpack_mac(s.mac.load(Ordering::Acquire)),
            confirmed: s.confirmed.load(Ordering::Relaxed),
        })
    }

    /// Records that `ip` behind `port` is at `mac` (an ARP packet said so at `now`), creating
    /// the entry if `create`. Returns false when there is no entry and none could be made.
    pub fn confirm(&self, port: PortIndex, ip: u32, mac: [u8; 6], now: u64, create: bool) -> bool {
        let key = key_of(port, ip);
        let slot = if create {
            self.find_or_claim(key)
        } else {
            self.find(key)
        };
        let Some(s) = slot else {
            return false;
        };
        s.confirmed.fetch_max(now, Ordering::Relaxed);
        let packed = pack_mac(mac);
        if s.mac.load(Ordering::Relaxed) != packed {
            s.mac.store(packed, Ordering::Release);
        }
        true
    }

    /// Claims the right to send an ARP request for `ip` behind `port` at `now`: true for at
    /// most one caller (across all workers) per `interval_ns`. Creates an INCOMPLETE entry if
    /// there is none; false when the table is full.
    pub fn claim_request(&self, port: PortIndex, ip: u32, now: u64, interval_ns: u64) -> bool {
        let Some(s) = self.find_or_claim(key_of(port, ip)) else {
            return false;
        };
        let last = s.requested.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < interval_ns {
            return false;
        }
        // 0 means "never": a request at time 0 is stored as 1.
        s.requested
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Every entry with a MAC: (port, ip, mac, confirmed). For listings and tests (O(capacity)).
    pub fn entries(&self) -> impl Iterator<Item = (PortIndex, u32, [u8; 6], u64)> + '_ {
        self.slots.iter().filter_map(|s| {
            let k = s.key.load(Ordering::Acquire);
            let mac = unpack_mac(s.mac.load(Ordering::Acquire))?;
            (k != 0).then(|| {
                (
                    ((k >> 32) & 0xffff) as PortIndex,
                    k as u32,
                    mac,
                    s.confirmed.load(Ordering::Relaxed),
                )
            })
        })
    }
}

impl std::fmt::Debug for NeighTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeighTable")
            .field("capacity", &self.slots.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_get_and_rate_limit() {
        let t = NeighTable::new(64);
        assert_eq!(t.get(0, 7), None);
        assert!(t.claim_request(0, 7, 100, 1000));
        assert!(!t.claim_request(0, 7, 500, 1000));
        assert_eq!(
            t.get(0, 7),
            Some(Entry {
                mac: None,
                confirmed: 0
            })
        );
        assert!(t.confirm(0, 7, [2, 0, 0, 0, 0, 7], 600, false));
        assert_eq!(t.get(0, 7).unwrap().mac, Some([2, 0, 0, 0, 0, 7]));
        assert!(t.claim_request(0, 7, 1100, 1000));
        // Another port is another neighbour.
        assert_eq!(t.get(1, 7), None);
        assert!(!t.confirm(1, 7, [1; 6], 600, false));
        assert!(t.confirm(1, 7, [1; 6], 600, true));
        assert_eq!(t.entries().count(), 2);
    }

    #[test]
    fn full_table_refuses_new_entries() {
        let t = NeighTable::new(64);
        let mut made = 0;
        for ip in 0..1000u32 {
            if t.confirm(0, ip, [1; 6], 1, true) {
                made += 1;
            }
        }
        assert!((32..=64).contains(&made), "{made}");
        assert_eq!(t.entries().count(), made);
    }
}
