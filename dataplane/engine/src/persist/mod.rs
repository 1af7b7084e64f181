//! Persistence templates (`ipvsadm -p TIMEOUT -M NETMASK`), one table per worker.
//!
//! A template binds (service, client address & netmask) to a real server. It lives for the
//! persistence timeout after the last connection it scheduled, and at least as long as any
//! connection it scheduled is alive (IPVS re-arms an expired template while it still controls
//! connections). The table is pre-sized (open addressing, linear probing, backward-shift
//! deletion) and never allocates after construction; when it is full, a new client is
//! scheduled without a template and the miss is counted.
//!
//! **Across workers.** Templates are not shared and no table is locked: every template has
//! one owner worker, [`owner`] = hash(service id, masked client) mod workers, the same on
//! every worker. A client packet of a persistent service that finds no session on the worker
//! that received it is steered to the owner (the engine's `Redirect` verdict, as for replies
//! to another worker's local port). The owner schedules the session and allocates its local
//! port, so replies come back to it too. All of a client's connections therefore meet the
//! one template that decides them, whatever queue RSS put them on, with IPVS's exact
//! semantics; the cost is one hop over a lock-free ring for the client→server packets of
//! persistent services that land elsewhere, (N−1)/N of them with N workers.

/// Hashes (service id, masked client) to its owner worker; deterministic across workers.
#[inline]
pub fn owner(service_id: u32, masked_client: u32, workers: u16) -> u16 {
    if workers <= 1 {
        return 0;
    }
    let h = crate::sched::hash::mix64((u64::from(service_id) << 32) | u64::from(masked_client));
    (h % u64::from(workers)) as u16
}

/// The template key of a service and a masked client address.
#[inline]
pub fn key(service_id: u32, masked_client: u32) -> u64 {
    (u64::from(service_id) << 32) | u64::from(masked_client)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    key: u64,
    /// Real server id.
    rs_id: u32,
    /// Live sessions scheduled through this template.
    controls: u32,
    /// Valid while `now < deadline` or `controls > 0`.
    deadline: u64,
}

const EMPTY: u64 = u64::MAX;
const FREE: Slot = Slot {
    key: EMPTY,
    rs_id: 0,
    controls: 0,
    deadline: 0,
};

/// A template as the table reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub rs_id: u32,
    pub controls: u32,
    pub deadline_ns: u64,
}

/// One worker's persistence templates.
#[derive(Debug, Clone)]
pub struct Templates {
    slots: Vec<Slot>,
    len: usize,
    capacity: usize,
    /// Next slot of the expiry sweep.
    sweep: usize,
}

#[inline]
fn home(key: u64, mask: usize) -> usize {
    (crate::sched::hash::mix64(key) as usize) & mask
}

impl Templates {
    /// A table for `capacity` templates (allocated now, at a load factor ≤ 1/2).
    pub fn new(capacity: usize) -> Self {
        let size = (capacity.max(1) * 2).next_power_of_two();
        Templates {
            slots: vec![FREE; size],
            len: 0,
            capacity: capacity.max(1),
            sweep: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut pos = home(key, mask);
        for _ in 0..self.slots.len() {
            let k = self.slots[pos].key;
            if k == EMPTY {
                return None;
            }
            if k == key {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
        }
        None
    }

    #[inline]
    fn live(s: &Slot, now: u64) -> bool {
        s.controls > 0 || now < s.deadline
    }

    /// The live template of `key` at `now` (an expired one is removed).
    pub fn get(&mut self, key: u64, now: u64) -> Option<Template> {
        let pos = self.find(key)?;
        let s = self.slots[pos];
        if !Self::live(&s, now) {
            self.remove_at(pos);
            return None;
        }
        Some(Template {
            rs_id: s.rs_id,
            controls: s.controls,
            deadline_ns: s.deadline,
        })
    }

    /// Records that a new session of `key` went to `rs_id` at `now`: creates or re-points
    /// the template, counts the session and re-arms the timeout. False when the table is full.
    pub fn bind(&mut self, key: u64, rs_id: u32, now: u64, timeout_ns: u64) -> bool {
        if key == EMPTY {
            return false;
        }
        let deadline = now.saturating_add(timeout_ns);
        if let Some(pos) = self.find(key) {
            let s = &mut self.slots[pos];
            if !Self::live(s, now) {
                s.controls = 0;
            }
            s.rs_id = rs_id;
            s.controls = s.controls.saturating_add(1);
            s.deadline = deadline;
            return true;
        }
        if self.len >= self.capacity {
            // Make room from expired templates near the key's home, then give up.
            self.expire(now, 64);
            if self.len >= self.capacity {
                return false;
            }
        }
        let mask = self.slots.len() - 1;
        let mut pos = home(key, mask);
        while self.slots[pos].key != EMPTY {
            pos = (pos + 1) & mask;
        }
        self.slots[pos] = Slot {
            key,
            rs_id,
            controls: 1,
            deadline,
        };
        self.len += 1;
        true
    }

    /// A session scheduled through `key` ended (its template may now expire).
    pub fn release(&mut self, key: u64) {
        if let Some(pos) = self.find(key) {
            let s = &mut self.slots[pos];
            s.controls = s.controls.saturating_sub(1);
        }
    }

    fn remove_at(&mut self, mut pos: usize) {
        let mask = self.slots.len() - 1;
        self.slots[pos] = FREE;
        self.len -= 1;
        // Backward-shift deletion: pull later entries of the cluster into the hole.
        let mut next = (pos + 1) & mask;
        while self.slots[next].key != EMPTY {
            let h = home(self.slots[next].key, mask);
            // Move when the hole lies cyclically in [h, next).
            if (next.wrapping_sub(h) & mask) >= (next.wrapping_sub(pos) & mask) {
                self.slots[pos] = self.slots[next];
                self.slots[next] = FREE;
                pos = next;
            }
            next = (next + 1) & mask;
        }
    }

    /// Removes expired templates, visiting at most `budget` slots (a bounded sweep that
    /// resumes where it stopped). Returns how many were removed.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let size = self.slots.len();
        let mut removed = 0;
        for _ in 0..budget.min(size) {
            let pos = self.sweep % size;
            let s = self.slots[pos];
            if s.key != EMPTY && !Self::live(&s, now) {
                self.remove_at(pos);
                removed += 1;
                // The shift may have pulled an entry into `pos`: look at it again.
                continue;
            }
            self.sweep = (pos + 1) % size;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn bind_get_expire_with_injected_time() {
        let mut t = Templates::new(16);
        let k = key(1, 0x0a00_0000);
        assert!(t.get(k, 0).is_none());
        assert!(t.bind(k, 7, 10 * S, 360 * S));
        assert_eq!(
            t.get(k, 11 * S).map(|x| (x.rs_id, x.controls)),
            Some((7, 1))
        );
        // Still controlling a connection: lives past its deadline.
        assert!(t.get(k, 1000 * S).is_some());
        t.release(k);
        assert!(t.get(k, 369 * S).is_some(), "before the deadline");
        assert!(t.get(k, 370 * S).is_none(), "at the deadline");
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_refuses_then_recovers_after_expiry() {
        let mut t = Templates::new(4);
        for c in 0..4 {
            assert!(t.bind(key(1, c), c, 0, 10 * S));
            t.release(key(1, c));
        }
        assert!(!t.bind(key(1, 99), 1, S, 10 * S), "full");
        assert!(
            t.bind(key(1, 99), 1, 10 * S, 10 * S),
            "expired ones make room"
        );
        assert_eq!(t.get(key(1, 99), 10 * S).map(|x| x.rs_id), Some(1));
    }

    #[test]
    fn deletion_keeps_clusters_reachable() {
        let mut t = Templates::new(512);
        for c in 0..500u32 {
            assert!(t.bind(key(c % 3, c), c, 0, (u64::from(c) % 7 + 1) * S));
            t.release(key(c % 3, c));
        }
        for round in 1..=8u64 {
            t.expire(round * S, 10_000);
            for c in 0..500u32 {
                let alive = (u64::from(c) % 7 + 1) > round;
                assert_eq!(
                    t.get(key(c % 3, c), round * S).is_some(),
                    alive,
                    "{c} at {round}"
                );
            }
        }
        assert!(t.is_empty());
    }

    #[test]
    fn owner_is_deterministic_and_spread() {
        let mut per = [0u32; 4];
        for c in 0..4000u32 {
            let o = owner(5, c << 8, 4);
            assert_eq!(o, owner(5, c << 8, 4));
            per[o as usize] += 1;
        }
        assert!(per.iter().all(|&n| n > 800), "{per:?}");
        assert_eq!(owner(5, 1, 1), 0);
    }
}
