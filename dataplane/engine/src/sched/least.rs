//! Stateless schedulers over live connection counts: `lc`, `wlc`, `sed`, `nq`, `fo`, `ovf`.
//!
//! All of them skip real servers that are unavailable (weight 0, or overloaded by their
//! connection threshold) and, on ties, keep the first one in list order, as IPVS does.
//! Products are computed in 128 bits: counts up to 2^32 times weights up to 2^31 never
//! overflow (IPVS uses 64 bits and relies on smaller counts).

use super::RealSet;

/// IPVS's connection overhead of a real server: an active connection costs 256 inactive
/// ones (`ip_vs_dest_conn_overhead`).
#[inline]
pub fn conn_overhead<R: RealSet + ?Sized>(reals: &R, i: usize) -> u64 {
    (u64::from(reals.active(i)) << 8) + u64::from(reals.inactive(i))
}

/// `lc`: the available server with the least overhead.
pub fn lc<R: RealSet + ?Sized>(reals: &R) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for i in 0..reals.len() {
        if !reals.available(i) {
            continue;
        }
        let oh = conn_overhead(reals, i);
        if best.is_none_or(|(_, b)| oh < b) {
            best = Some((i, oh));
        }
    }
    best.map(|(i, _)| i)
}

/// The available server minimising `overhead(i) / weight(i)` (first on ties); `nq_idle`
/// returns at once the first server without active connections (never-queue).
#[inline]
fn least_ratio<R: RealSet + ?Sized>(
    reals: &R,
    overhead: impl Fn(usize) -> u64,
    nq_idle: bool,
) -> Option<usize> {
    let mut best: Option<(usize, u128, u128)> = None; // (index, overhead, weight)
    for i in 0..reals.len() {
        if !reals.available(i) {
            continue;
        }
        if nq_idle && reals.active(i) == 0 {
            return Some(i);
        }
        let oh = u128::from(overhead(i));
        let w = u128::from(reals.weight(i));
        // oh/w < best_oh/best_w  <=>  best_oh * w > oh * best_w
        if best.is_none_or(|(_, boh, bw)| boh * w > oh * bw) {
            best = Some((i, oh, w));
        }
    }
    best.map(|(i, _, _)| i)
}

/// `wlc`: the available server with the least overhead per unit of weight.
pub fn wlc<R: RealSet + ?Sized>(reals: &R) -> Option<usize> {
    least_ratio(reals, |i| conn_overhead(reals, i), false)
}

/// `sed`: shortest expected delay, (active + 1) / weight; inactive connections are ignored.
pub fn sed<R: RealSet + ?Sized>(reals: &R) -> Option<usize> {
    least_ratio(reals, |i| u64::from(reals.active(i)) + 1, false)
}

/// `nq`: never queue: the first available server without active connections, else `sed`.
pub fn nq<R: RealSet + ?Sized>(reals: &R) -> Option<usize> {
    least_ratio(reals, |i| u64::from(reals.active(i)) + 1, true)
}

/// `fo`: weighted failover: the available server with the highest weight (first on ties).
pub fn fo<R: RealSet + ?Sized>(reals: &R) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for i in 0..reals.len() {
        if reals.available(i) && best.is_none_or(|(_, w)| reals.weight(i) > w) {
            best = Some((i, reals.weight(i)));
        }
    }
    best.map(|(i, _)| i)
}

/// `ovf`: overflow connection: the highest-weight available server whose active
/// connections do not exceed its weight (its weight is its capacity).
pub fn ovf<R: RealSet + ?Sized>(reals: &R) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for i in 0..reals.len() {
        let w = reals.weight(i);
        if !reals.available(i) || reals.active(i) > w {
            continue;
        }
        if best.is_none_or(|(_, bw)| w > bw) {
            best = Some((i, w));
        }
    }
    best.map(|(i, _)| i)
}
