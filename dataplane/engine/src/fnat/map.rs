//! A small open-addressing map from u64 keys (below 2^63) to u32 values, built at rules
//! update time and read-only on the packet path.

const EMPTY: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub struct FixedMap {
    keys: Vec<u64>,
    vals: Vec<u32>,
    shift: u32,
    len: usize,
}

#[inline]
fn spread(key: u64) -> u64 {
    let h = (key ^ (key >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 32)
}

impl FixedMap {
    /// A map able to hold `n` keys at a load factor of at most 1/2.
    pub fn with_capacity(n: usize) -> Self {
        let size = (n.max(1) * 2).next_power_of_two();
        FixedMap {
            keys: vec![EMPTY; size],
            vals: vec![0; size],
            shift: 64 - size.trailing_zeros(),
            len: 0,
        }
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        if self.shift >= 64 {
            0
        } else {
            (spread(key).wrapping_mul(0x2545_f491_4f6c_dd1d) >> self.shift) as usize
        }
    }

    /// Inserts `key`, or combines the existing value with `merge(old, val)`. Ignores the
    /// reserved key `u64::MAX`, and keys beyond the capacity given at construction.
    pub fn insert_with(&mut self, key: u64, val: u32, merge: impl Fn(u32, u32) -> u32) {
        if key == EMPTY {
            return;
        }
        let mask = self.keys.len() - 1;
        let mut pos = self.home(key);
        for _ in 0..self.keys.len() {
            if self.keys[pos] == key {
                self.vals[pos] = merge(self.vals[pos], val);
                return;
            }
            if self.keys[pos] == EMPTY {
                if (self.len + 1) * 2 > self.keys.len() {
                    return;
                }
                self.keys[pos] = key;
                self.vals[pos] = val;
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
        let mask = self.keys.len().wrapping_sub(1);
        let mut pos = self.home(key);
        for _ in 0..self.keys.len() {
            let k = *self.keys.get(pos)?;
            if k == EMPTY {
                return None;
            }
            if k == key {
                return self.vals.get(pos).copied();
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
