//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are carried as `u32` values already folded to 16 bits, so they can be chained
//! (pseudo-header, then header, then payload) without overflow.
//!
//! The incremental update uses RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`, with end-around
//! carry. It matches a full recomputation bit for bit whenever the covered data is not all
//! zero, which always holds for IPv4 headers (version field) and TCP/UDP (protocol number in
//! the pseudo-header). The one place data can be all zero is an ICMP echo reply with id, seq
//! and payload all zero; [`crate::packet::icmp`] handles that case itself.

use std::net::Ipv4Addr;

/// Adds `data` (big-endian 16-bit words; an odd last byte is padded with a zero byte) to the
/// running sum `initial`, returning the sum folded to 16 bits.
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        if let [hi, lo] = *word {
            acc += u64::from(u16::from_be_bytes([hi, lo]));
        }
    }
    if let [last] = *words.remainder() {
        acc += u64::from(last) << 8;
    }
    u32::from(fold64(acc))
}

/// Folds a running sum to 16 bits with end-around carry (not complemented).
#[inline]
pub fn fold(sum: u32) -> u16 {
    // Two end-around-carry steps always suffice for 32 bits (≤ 0x1FFFE after the first), and
    // give exactly what folding until ≤ 0xFFFF gives: a step is the identity below 0x10000.
    let s = (sum & 0xFFFF) + (sum >> 16);
    ((s & 0xFFFF) + (s >> 16)) as u16
}

/// Folds a 64-bit running sum to 16 bits with end-around carry (not complemented), in a
/// fixed number of steps.
#[inline]
fn fold64(acc: u64) -> u16 {
    let s = (acc & 0xFFFF_FFFF) + (acc >> 32); // < 2^33
    let s = (s & 0xFFFF) + (s >> 16); // < 2^17 + 2^16
    let s = (s & 0xFFFF) + (s >> 16); // ≤ 0xFFFF + 2
    ((s & 0xFFFF) + (s >> 16)) as u16
}

/// The checksum of `data` on top of the running sum `initial` (e.g. a pseudo-header sum).
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    !fold(sum(data, initial))
}

/// The running sum of the TCP/UDP pseudo-header for IPv4.
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4_len: u16) -> u32 {
    let acc = add32(0, u32::from(src));
    let acc = add32(acc, u32::from(dst));
    u32::from(fold(acc + u32::from(proto) + u32::from(l4_len)))
}

fn add32(acc: u32, value: u32) -> u32 {
    u32::from(fold(acc + (value >> 16) + (value & 0xFFFF)))
}

/// A UDP checksum as it goes on the wire: a computed 0 is sent as 0xFFFF, because 0 means
/// "no checksum" (RFC 768).
#[inline]
pub fn udp_wire(computed: u16) -> u16 {
    if computed == 0 {
        0xFFFF
    } else {
        computed
    }
}

/// RFC 1624 eqn. 3: the checksum `check` after one covered 16-bit word changed `old` → `new`.
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let mut delta = Delta::new();
    delta.replace16(old, new);
    delta.apply(check)
}

/// The checksum `check` after one covered 32-bit word (an IPv4 address) changed `old` → `new`.
#[inline]
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    let mut delta = Delta::new();
    delta.replace32(old, new);
    delta.apply(check)
}

/// Several word changes collected first and applied to a checksum at once: the one
/// incremental-checksum helper of the engine (every rewrite and translation uses it).
///
/// Each change adds `~m + m'` to the sum; [`Delta::apply`] then computes `~(~HC + Σ)`, which is
/// eqn. 3 applied to all changes together, folded once. The one's-complement sum is
/// associative and a fold yields 0 only for an all-zero sum, so this equals applying the
/// changes one by one bit for bit. One `Delta` can be applied to several checksums that cover
/// the same words (e.g. the addresses in the IP header and the L4 pseudo-header).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta(u32);

impl Delta {
    /// No changes yet.
    pub const fn new() -> Self {
        Delta(0)
    }

    /// A covered 16-bit word changed `old` → `new`.
    #[inline]
    pub fn replace16(&mut self, old: u16, new: u16) {
        // At most 0x1FFFE a change, so a Delta of fewer than 32,767 changes (the engine makes
        // a dozen at most) plus the checksum it is applied to stays below 2^32 and folds once
        // at the end; wrapping keeps a misuse panic-free.
        self.0 = self.0.wrapping_add(u32::from(!old) + u32::from(new));
    }

    /// A covered 32-bit word (16-bit aligned) changed `old` → `new`.
    #[inline]
    pub fn replace32(&mut self, old: u32, new: u32) {
        self.replace16((old >> 16) as u16, (new >> 16) as u16);
        self.replace16(old as u16, new as u16);
    }

    /// The changes of `other` too.
    #[inline]
    pub fn merge(&mut self, other: Delta) {
        self.0 = self.0.wrapping_add(other.0);
    }

    /// The checksum `check` with these changes applied.
    #[inline]
    pub fn apply(self, check: u16) -> u16 {
        !fold(self.0.wrapping_add(u32::from(!check)))
    }

    /// A UDP checksum with these changes applied: 0 ("none") stays 0, and a result of 0 is
    /// sent as 0xFFFF.
    #[inline]
    pub fn apply_udp(self, check: u16) -> u16 {
        if check == 0 {
            0
        } else {
            udp_wire(self.apply(check))
        }
    }

    /// These changes in two bytes, to store (a session keeps its rewrite's).
    #[inline]
    pub fn folded(self) -> FoldedDelta {
        FoldedDelta(fold(self.0))
    }
}

/// A [`Delta`] folded to 16 bits: applied, it gives exactly what the `Delta` gives (a fold
/// keeps the sum's value modulo 0xFFFF, and yields 0 only for a sum of 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldedDelta(u16);

impl FoldedDelta {
    /// The changes, to apply or add to.
    #[inline(always)]
    pub fn delta(self) -> Delta {
        Delta(u32::from(self.0))
    }

    /// The reverse changes (each word back `new` → `old`): the one's-complement negation.
    ///
    /// A reversed change adds `~m' + m`, the negation of `~m + m'` modulo 0xFFFF; the reverse
    /// sum is 0 (not 0xFFFF) only when every change went from 0x0000 to 0xFFFF, which no
    /// session's tuples do, so a negated 0 is 0xFFFF. (The two differ only on a checksum of
    /// 0xFFFF, which no IP or TCP checksum that verifies is, and a UDP one leaves as 0xFFFF
    /// either way.)
    #[inline(always)]
    pub fn reversed(self) -> FoldedDelta {
        let negated = !self.0;
        FoldedDelta(if negated == 0 { 0xFFFF } else { negated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data, 0), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0xab], 0), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0xab], 0), 0x1234 + 0xab00);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = 0xDD2F, m = 0x5555 → m' = 0x3285 gives HC' = 0x0000, not 0xFFFF.
        assert_eq!(update16(0xDD2F, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn no_change_keeps_checksum() {
        for check in [0x0000u16, 0x1234, 0xFFFE] {
            assert_eq!(update16(check, 0xBEEF, 0xBEEF), check);
        }
    }

    #[test]
    fn udp_zero_stays_zero_and_zero_result_is_ffff() {
        let mut delta = Delta::new();
        delta.replace16(1, 2);
        assert_eq!(delta.apply_udp(0), 0);
        // ~HC + ~m + m' = 0xFFFE + 0xFFFE + 0x0002 folds to 0xFFFF, complemented 0 → 0xFFFF.
        let mut delta = Delta::new();
        delta.replace16(1, 2);
        assert_eq!(delta.apply(0x0001), 0x0000);
        assert_eq!(delta.apply_udp(0x0001), 0xFFFF);
    }
}
