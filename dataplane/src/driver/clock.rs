//! Where the engine's "now" comes from: the TSC in `run`, capture timestamps in `replay`.

use dpdk_bindings::mbuf::{Mbuf, TimestampField};
use dpdk_bindings::time;

/// A monotonic nanosecond clock for one worker.
pub enum Clock {
    /// Live: nanoseconds since start, from the TSC.
    Tsc { start: u64, hz: u64 },
    /// Replay: the capture timestamp of the last packet seen (never going backwards), so that
    /// replays are deterministic and timeouts follow the capture's own time.
    Capture {
        field: Option<TimestampField>,
        now_ns: u64,
    },
}

impl Clock {
    pub fn tsc() -> Clock {
        Clock::Tsc {
            start: time::tsc(),
            hz: time::tsc_hz().max(1),
        }
    }

    pub fn capture(field: Option<TimestampField>) -> Clock {
        Clock::Capture { field, now_ns: 0 }
    }

    /// "Now" for a whole burst (live clock); the capture clock returns the last packet's time.
    #[inline]
    pub fn now(&self) -> u64 {
        self.at_tsc(time::tsc())
    }

    /// "Now" at the TSC reading `tsc` (live clock), so a loop that needs the raw reading too
    /// reads the TSC once; the capture clock returns the last packet's time.
    #[inline]
    pub fn at_tsc(&self, tsc: u64) -> u64 {
        match self {
            Clock::Tsc { start, hz } => {
                let ticks = tsc.wrapping_sub(*start);
                (u128::from(ticks) * 1_000_000_000 / u128::from(*hz)) as u64
            }
            Clock::Capture { now_ns, .. } => *now_ns,
        }
    }

    /// The capture time of `mbuf` in nanoseconds (replay), or 0 when it has none.
    #[inline]
    pub fn timestamp_of(&self, mbuf: &Mbuf) -> u64 {
        match self {
            Clock::Capture {
                field: Some(field), ..
            } => mbuf.timestamp(field).map_or(0, super::capture_timestamp_ns),
            _ => 0,
        }
    }

    /// Advances the capture clock to `mbuf`'s timestamp; the live clock ignores packets.
    #[inline]
    pub fn observe(&mut self, mbuf: &Mbuf) {
        if let Clock::Capture {
            field: Some(field),
            now_ns,
        } = self
        {
            if let Some(ts) = mbuf.timestamp(field) {
                *now_ns = (*now_ns).max(super::capture_timestamp_ns(ts));
            }
        }
    }
}
