//! The one place a rules change is published: the control plane stores a new immutable
//! snapshot, every worker notices the generation change at its next loop iteration, switches,
//! and acknowledges; the publisher returns only when all workers run the new snapshot.
//!
//! Workers pay one relaxed atomic load per loop iteration; nothing on the packet path locks.
//! The publisher sleeps until the last worker acknowledges (each acknowledgement unparks it),
//! rather than polling: on a core it shares with a worker, every poll would preempt the very
//! worker it waits for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use fnat_engine::Rules;

/// A worker's acknowledged generation, on its own cache line so workers don't false-share.
#[repr(align(64))]
struct Seen(AtomicU64);

pub struct RulesStore {
    current: ArcSwap<Rules>,
    /// Generation of `current`; workers compare it with what they run.
    generation: AtomicU64,
    seen: Vec<Seen>,
    /// Workers that stopped no longer acknowledge; publishing must not wait for them.
    workers_running: AtomicBool,
    /// The thread waiting in `publish`, woken by acknowledgements.
    waiter: ArcSwapOption<std::thread::Thread>,
    /// Publishes done, their summed and their last duration in ns (for the metrics endpoint).
    publishes: AtomicU64,
    publish_ns_total: AtomicU64,
    publish_ns_last: AtomicU64,
}

/// What publishing has cost so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishTimes {
    pub publishes: u64,
    pub total: Duration,
    pub last: Duration,
}

/// Longest sleep between two looks at the acknowledgements (a missed wake-up costs this).
const MAX_NAP: Duration = Duration::from_millis(1);

/// Why a publish did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// Stored, but not every worker switched within the time allowed.
    NotAcknowledged {
        generation: u64,
        waiting_for: Vec<usize>,
    },
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::NotAcknowledged {
                generation,
                waiting_for,
            } => write!(
                f,
                "generation {generation} stored but workers {waiting_for:?} did not switch in time"
            ),
        }
    }
}

impl RulesStore {
    /// A store holding `rules` for `workers` workers. The snapshot's generation is kept.
    pub fn new(rules: Rules, workers: usize) -> Arc<RulesStore> {
        let generation = rules.generation;
        Arc::new(RulesStore {
            current: ArcSwap::from_pointee(rules),
            generation: AtomicU64::new(generation),
            seen: (0..workers)
                .map(|_| Seen(AtomicU64::new(generation)))
                .collect(),
            workers_running: AtomicBool::new(false),
            waiter: ArcSwapOption::const_empty(),
            publishes: AtomicU64::new(0),
            publish_ns_total: AtomicU64::new(0),
            publish_ns_last: AtomicU64::new(0),
        })
    }

    /// The snapshot in force.
    pub fn current(&self) -> Arc<Rules> {
        self.current.load_full()
    }

    /// The generation in force (workers: one relaxed load per loop iteration).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A worker reports it now runs `generation` (once per rules change: wakes the
    /// publisher; lock-free).
    #[inline]
    pub fn acknowledge(&self, worker: usize, generation: u64) {
        if let Some(seen) = self.seen.get(worker) {
            seen.0.store(generation, Ordering::Release);
        }
        if let Some(t) = self.waiter.load().as_ref() {
            t.unpark();
        }
    }

    /// Says whether workers are polling (and so will acknowledge).
    pub fn set_workers_running(&self, running: bool) {
        self.workers_running.store(running, Ordering::SeqCst);
    }

    /// Publishes `rules` with the next generation and waits, up to `wait`, until every running
    /// worker runs it ([`RulesStore::store`] then [`RulesStore::wait_for`]).
    pub fn publish(&self, rules: Rules, wait: Duration) -> Result<u64, PublishError> {
        let generation = self.store(rules);
        self.wait_for(generation, wait)
    }

    /// Stores `rules` with the next generation, for the workers to switch to; returns that
    /// generation. Callers serialize stores (the control plane holds its own lock) but may
    /// wait for the workers without it.
    pub fn store(&self, mut rules: Rules) -> u64 {
        let generation = self.generation.load(Ordering::Acquire) + 1;
        rules.generation = generation;
        self.current.store(Arc::new(rules));
        self.generation.store(generation, Ordering::Release);
        generation
    }

    /// How many publishes there were and what they took.
    pub fn publish_times(&self) -> PublishTimes {
        PublishTimes {
            publishes: self.publishes.load(Ordering::Relaxed),
            total: Duration::from_nanos(self.publish_ns_total.load(Ordering::Relaxed)),
            last: Duration::from_nanos(self.publish_ns_last.load(Ordering::Relaxed)),
        }
    }

    /// Sleeps until every running worker runs `generation` (or a later one), or `wait` has
    /// passed, and records how long that took (the publish latency the metrics report).
    pub fn wait_for(&self, generation: u64, wait: Duration) -> Result<u64, PublishError> {
        let started = Instant::now();
        let acknowledged = self.wait_for_acks(generation, wait);
        let took = started.elapsed().as_nanos() as u64;
        self.publishes.fetch_add(1, Ordering::Relaxed);
        self.publish_ns_total.fetch_add(took, Ordering::Relaxed);
        self.publish_ns_last.store(took, Ordering::Relaxed);
        acknowledged
    }

    /// Several threads may wait at once: acknowledgements wake the latest to register, the
    /// others look again every `MAX_NAP`.
    fn wait_for_acks(&self, generation: u64, wait: Duration) -> Result<u64, PublishError> {
        self.waiter.store(Some(Arc::new(std::thread::current())));
        let deadline = Instant::now() + wait;
        loop {
            if !self.workers_running.load(Ordering::SeqCst) {
                return Ok(generation);
            }
            let waiting_for: Vec<usize> = self
                .seen
                .iter()
                .enumerate()
                .filter(|(_, s)| s.0.load(Ordering::Acquire) < generation)
                .map(|(w, _)| w)
                .collect();
            if waiting_for.is_empty() {
                return Ok(generation);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PublishError::NotAcknowledged {
                    generation,
                    waiting_for,
                });
            }
            std::thread::park_timeout((deadline - now).min(MAX_NAP));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_engine::rules::PortRule;

    fn rules() -> Rules {
        Rules::passthrough(
            vec![PortRule {
                name: "a".into(),
                mac: [0; 6],
                addresses: vec![],
            }],
            vec![None],
        )
    }

    #[test]
    fn publish_waits_for_every_worker() {
        let store = RulesStore::new(rules(), 2);
        store.set_workers_running(true);
        let s = Arc::clone(&store);
        let workers = std::thread::spawn(move || {
            // Two simulated workers that poll the generation like the real loop does.
            let mut running = [1u64, 1u64];
            let deadline = Instant::now() + Duration::from_secs(5);
            while running != [2, 2] && Instant::now() < deadline {
                for (w, gen) in running.iter_mut().enumerate() {
                    let g = s.generation();
                    if g != *gen {
                        assert_eq!(s.current().generation, g);
                        *gen = g;
                        s.acknowledge(w, g);
                    }
                }
            }
            running
        });
        assert_eq!(store.publish(rules(), Duration::from_secs(5)), Ok(2));
        assert_eq!(workers.join().unwrap(), [2, 2]);
        assert_eq!(store.current().generation, 2);
    }

    #[test]
    fn publish_reports_workers_that_never_switch() {
        let store = RulesStore::new(rules(), 2);
        store.set_workers_running(true);
        store.acknowledge(0, 2);
        let err = store
            .publish(rules(), Duration::from_millis(20))
            .unwrap_err();
        assert_eq!(
            err,
            PublishError::NotAcknowledged {
                generation: 2,
                waiting_for: vec![1]
            }
        );
    }

    #[test]
    fn publish_without_running_workers_returns_at_once() {
        let store = RulesStore::new(rules(), 3);
        assert_eq!(store.publish(rules(), Duration::from_secs(5)), Ok(2));
    }
}
