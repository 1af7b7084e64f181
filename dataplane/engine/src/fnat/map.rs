//! A small open-addressing map from u64 keys (below 2^63) to u32 values, built at rules
//! update time and read-only on the packet path.

const EMPTY: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub struct FixedMap {
    /// (key, value); key `EMPTY` when unused. One vector: a probe reads one place.
    entries: Vec<(u64, u32)>,
    /// 64 − log2(entries): a key's home is the top bits of its product (at least 2 entries,
    /// so 1..=63).
    shift: u32,
    len: usize,
}

impl FixedMap {
    /// A map able to hold `n` keys at a load factor of at most 1/2.
    pub fn with_capacity(n: usize) -> Self {
        let size = (n.max(1) * 2).next_power_of_two();
        FixedMap {
            entries: vec![(EMPTY, 0); size],
            shift: 64 - size.trailing_zeros(),
            len: 0,
        }
    }

    /// Fibonacci hashing: the product's top bits depend on every bit of the key. The keys
    /// come from the rules (addresses, services, neighbours), not from packets.
    #[inline(always)]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (self.shift & 63)) as usize
    }

    /// Inserts `key`, or combines the existing value with `merge(old, val)`. Ignores the
    /// reserved key `u64::MAX`, and keys beyond the capacity given at construction.
    pub fn insert_with(&mut self, key: u64, val: u32, merge: impl Fn(u32, u32) -> u32) {
        if key == EMPTY {
            return;
        }
        let size = self.entries.len();
        let mask = size - 1;
        let mut pos = self.home(key);
        for _ in 0..size {
            let (k, v) = self.entries[pos];
            if k == key {
                self.entries[pos].1 = merge(v, val);
                return;
            }
            if k == EMPTY {
                if (self.len + 1) * 2 > size {
                    return;
                }
                self.entries[pos] = (key, val);
                self.len += 1;
                return;
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Inserts `key` unless present (the first value wins).
    pub fn insert(&mut self, key: u64, val: u32) {
        self.insert_with(key, val, |old, _| old);
    }

    #[inline(always)]
    pub fn get(&self, key: u64) -> Option<u32> {
        // The reserved key is never stored (and a key made of 32 bits never is it: the test
        // then folds away); the probe then looks for the key before for the end.
        if key == EMPTY {
            return None;
        }
        let mask = self.entries.len().wrapping_sub(1);
        let mut pos = self.home(key);
        for _ in 0..self.entries.len() {
            let &(k, v) = self.entries.get(pos)?;
            if k == key {
                return Some(v);
            }
            if k == EMPTY {
                return None;
            }
            pos = (pos + 1) & mask;
        }
        None
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_merge() {
        let mut m = FixedMap::with_capacity(100);
        for k in 0..100u64 {
            m.insert(k * 7919, k as u32);
        }
        for k in 0..100u64 {
            assert_eq!(m.get(k * 7919), Some(k as u32));
        }
        assert_eq!(m.get(5), None);
        m.insert_with(7919, 0x10, |a, b| a | b);
        assert_eq!(m.get(7919), Some(0x11));
        m.insert(7919, 99);
        assert_eq!(m.get(7919), Some(0x11));
        assert_eq!(m.len(), 100);
        // Over capacity: ignored, never loops.
        for k in 1000..2000u64 {
            m.insert(k, 1);
        }
        assert!(m.len() <= 128);
        assert_eq!(m.get(u64::MAX), None);
        let empty = FixedMap::with_capacity(0);
        assert_eq!(empty.get(1), None);
    }
}
