//! Hashing schedulers: `sh` (source hashing), `dh` (destination hashing) and `mh` (Maglev).
//!
//! Their tables are built when the rules change (never per packet) from the real servers of
//! weight > 0, and are a pure function of the real-server list: every worker builds the same
//! table, so a key maps to the same real server on every worker. Lookups hash the key with a
//! fixed (unseeded) 64-bit mixer for the same reason.

use super::RealSet;

/// No real server in this bucket.
const NONE: u16 = u16::MAX;
/// Rehash probes tried by the fallback flags before a linear scan of the table.
const FALLBACK_PROBES: u64 = 32;

/// A 64-bit finaliser (the MurmurHash3 `fmix64` construction): a fixed bijection that
/// spreads every input bit over the output.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The key of an address (and a port when `with_port`) for the hash tables.
#[inline]
pub fn addr_key(addr: u32, port: u16, with_port: bool) -> u64 {
    let p = if with_port { u64::from(port) } else { 0 };
    (u64::from(addr) << 16) | p
}

/// Largest-remainder apportionment of `total` slots among weights (each weight > 0 gets at
/// least one slot when `total` allows).
fn apportion(weights: &[u32], total: usize) -> Vec<usize> {
    let pos = weights.iter().filter(|&&w| w > 0).count();
    let mut out = vec![0usize; weights.len()];
    if pos == 0 || total == 0 {
        return out;
    }
    let base = if total >= pos { 1 } else { 0 };
    let rest = total - base * pos;
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let mut given = 0usize;
    let mut rems: Vec<(u128, usize)> = Vec::with_capacity(pos);
    for (i, &w) in weights.iter().enumerate() {
        if w == 0 {
            continue;
        }
        let exact = u128::from(w) * rest as u128;
        let q = (exact / sum) as usize;
        out[i] = base + q;
        given += base + q;
        rems.push((exact % sum, i));
    }
    // Hand the remaining slots to the largest remainders (first in list order on ties).
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rems.iter().take(total.saturating_sub(given)) {
        out[i] += 1;
    }
    out
}

/// A bucket table of real-server indexes, looked up by a hashed key; `sh` and `dh`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HashTable {
    buckets: Vec<u16>,
}

impl HashTable {
    /// Table size for `n` servers: IPVS uses 256 buckets; we keep at least 16 buckets per
    /// server so that large services stay balanced (a power of two, at most 2^20).
    fn size_for(n: usize) -> usize {
        (n.saturating_mul(16))
            .clamp(256, 1 << 20)
            .next_power_of_two()
    }

    /// `sh`: buckets apportioned by weight (servers of weight 0 get none).
    pub fn weighted<R: RealSet + ?Sized>(reals: &R) -> Self {
        let n = reals.len().min(NONE as usize);
        let weights: Vec<u32> = (0..n).map(|i| reals.weight(i)).collect();
        let size = Self::size_for(n);
        let counts = apportion(&weights, size);
        let mut buckets = Vec::with_capacity(size);
        for (i, &c) in counts.iter().enumerate() {
            buckets.extend(std::iter::repeat_n(i as u16, c));
        }
        if buckets.iter().all(|&b| b == NONE) {
            buckets.clear();
        }
        buckets.resize(if buckets.is_empty() { 0 } else { size }, NONE);
        HashTable { buckets }
    }

    /// `dh`: one bucket per server of weight > 0 in turn, weights otherwise ignored (IPVS).
    pub fn cyclic<R: RealSet + ?Sized>(reals: &R) -> Self {
        let n = reals.len().min(NONE as usize);
        let pos: Vec<u16> = (0..n)
            .filter(|&i| reals.weight(i) > 0)
            .map(|i| i as u16)
            .collect();
        if pos.is_empty() {
            return HashTable::default();
        }
        let size = Self::size_for(n);
        let buckets = (0..size).map(|b| pos[b % pos.len()]).collect();
        HashTable { buckets }
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The server of `key`'s bucket when available; with `fallback`, else the first
    /// available server along a probe sequence that depends only on the key.
    #[inline]
    pub fn lookup<R: RealSet + ?Sized>(
        &self,
        reals: &R,
        key: u64,
        fallback: bool,
    ) -> Option<usize> {
        lookup_in(&self.buckets, reals, key, fallback)
    }
}

#[inline]
fn lookup_in<R: RealSet + ?Sized>(
    buckets: &[u16],
    reals: &R,
    key: u64,
    fallback: bool,
) -> Option<usize> {
    let size = buckets.len() as u64;
    if size == 0 {
        return None;
    }
    let h = mix64(key);
    let at = |b: u64| {
        let i = *buckets.get((b % size) as usize)?;
        (i != NONE && reals.available(i as usize)).then_some(i as usize)
    };
    if let Some(i) = at(h) {
        return Some(i);
    }
    if !fallback {
        return None;
    }
    for k in 1..=FALLBACK_PROBES {
        if let Some(i) = at(mix64(key ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15))) {
            return Some(i);
        }
    }
    (1..size).find_map(|k| at(h.wrapping_add(k)))
}

/// The Maglev lookup table (`mh`): a prime number of entries (at least 65537), each naming
/// a real server. Every server of weight > 0 fills a share of the table proportional to its
/// weight (exact to one entry), following its own permutation of the table, which depends
/// only on its address and port: adding or removing one of N servers moves about 1/N of the
/// keys, and the others stay where they were.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Maglev {
    table: Vec<u16>,
}

/// The smallest prime ≥ 65537 giving at least 64 entries per server.
fn maglev_size(n: usize) -> usize {
    let mut m = n.saturating_mul(64).max(65537);
    while !is_prime(m) {
        m += 1;
    }
    m
}

fn is_prime(m: usize) -> bool {
    if m < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= m {
        if m.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

impl Maglev {
    pub fn new<R: RealSet + ?Sized>(reals: &R) -> Self {
        let n = reals.len().min(NONE as usize);
        let weights: Vec<u32> = (0..n).map(|i| reals.weight(i)).collect();
        if weights.iter().all(|&w| w == 0) {
            return Maglev::default();
        }
        let m = maglev_size(n);
        let mut quota = apportion(&weights, m);
        let mut table = vec![NONE; m];
        // Each server's permutation: offset + j * skip (mod m), from its identity.
        let mut next: Vec<(u64, u64)> = (0..n)
            .map(|i| {
                let id = reals.ident(i);
                let offset = mix64(id ^ 0x6d61_676c_6576_0001) % m as u64;
                let skip = mix64(id ^ 0x6d61_676c_6576_0002) % (m as u64 - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut live: Vec<usize> = (0..n).filter(|&i| quota[i] > 0).collect();
        let mut filled = 0;
        while filled < m && !live.is_empty() {
            live.retain(|&i| {
                if filled >= m || quota[i] == 0 {
                    return quota[i] > 0;
                }
                let (ref mut pos, skip) = next[i];
                // The permutation visits every entry (m is prime), so this ends.
                while table[*pos as usize] != NONE {
                    *pos = (*pos + skip) % m as u64;
                }
                table[*pos as usize] = i as u16;
                *pos = (*pos + skip) % m as u64;
                quota[i] -= 1;
                filled += 1;
                quota[i] > 0
            });
        }
        Maglev { table }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The server of `key`'s entry when available; with `fallback`, else the first
    /// available one along a probe sequence that depends only on the key.
    #[inline]
    pub fn lookup<R: RealSet + ?Sized>(
        &self,
        reals: &R,
        key: u64,
        fallback: bool,
    ) -> Option<usize> {
        lookup_in(&self.table, reals, key, fallback)
    }

    /// Entries per server index (for tests and listings).
    pub fn shares(&self, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in &self.table {
            if let Some(x) = c.get_mut(i as usize) {
                *x += 1;
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_is_exact_and_proportional() {
        assert_eq!(apportion(&[1, 1, 2], 8), vec![2, 2, 4]);
        assert_eq!(apportion(&[0, 5], 7), vec![0, 7]);
        assert_eq!(apportion(&[1, 1_000_000], 10), vec![1, 9]);
        let a = apportion(&[3, 3, 3], 10);
        assert_eq!(a.iter().sum::<usize>(), 10);
        assert_eq!(apportion(&[0, 0], 10), vec![0, 0]);
        assert_eq!(
            apportion(&[u32::MAX, u32::MAX], 65537)
                .iter()
                .sum::<usize>(),
            65537
        );
    }

    #[test]
    fn maglev_sizes_are_prime() {
        assert_eq!(maglev_size(10), 65537);
        assert!(is_prime(maglev_size(1000)));
        assert!(maglev_size(2000) >= 128_000);
        assert!(!is_prime(65535));
    }
}
