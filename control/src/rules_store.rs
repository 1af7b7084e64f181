//! The one place a rules change is published: the control plane stores a new immutable
//! snapshot, every worker notices the generation change at its next loop iteration, switches,
//! and acknowledges; the publisher returns only when all workers run the new snapshot.
//!
//! Workers pay one relaxed atomic load per loop iteration; nothing on the packet path locks.
//! Publishers sleep until the last worker acknowledges (each acknowledgement unparks every
//! waiting publisher), rather than polling: on a core it shares with a worker, every poll
//! would preempt the very worker it waits for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
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
    /// The threads waiting for acknowledgements (`wait_for`), each woken by every one.
    /// Replaced whole when a waiter comes or goes, so that a worker only loads it.
    waiters: ArcSwap<Vec<std::thread::Thread>>,
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
            waiters: ArcSwap::from_pointee(Vec::new()),
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

    /// A worker reports it now runs `generation` (once per rules change: wakes every
    /// waiting publisher; lock-free, no allocation).
    #[inline]
    pub fn acknowledge(&self, worker: usize, generation: u64) {
        if let Some(seen) = self.seen.get(worker) {
            seen.0.store(generation, Ordering::Release);
        }
        for t in self.waiters.load().iter() {
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

    /// Several threads may wait at once: each registers before it first looks, so an
    /// acknowledgement after that look unparks it (a park token is kept if it has not
    /// parked yet); it sleeps otherwise until the deadline.
    fn wait_for_acks(&self, generation: u64, wait: Duration) -> Result<u64, PublishError> {
        let _registered = Waiting::register(&self.waiters);
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
            std::thread::park_timeout(deadline - now);
        }
    }

    /// How many threads wait for acknowledgements now.
    pub fn waiting(&self) -> usize {
        self.waiters.load().len()
    }
}

/// This thread among a store's waiters, until dropped.
struct Waiting<'a> {
    waiters: &'a ArcSwap<Vec<std::thread::Thread>>,
    id: std::thread::ThreadId,
}

impl<'a> Waiting<'a> {
    fn register(waiters: &'a ArcSwap<Vec<std::thread::Thread>>) -> Waiting<'a> {
        let me = std::thread::current();
        let id = me.id();
        waiters.rcu(|w| {
            let mut w = Vec::clone(w);
            w.push(me.clone());
            w
        });
        Waiting { waiters, id }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.waiters.rcu(|w| {
            w.iter()
                .filter(|t| t.id() != self.id)
                .cloned()
                .collect::<Vec<_>>()
        });
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

    /// Every waiting publisher is woken by the acknowledgements, not only the latest to
    /// wait: with a deadline of a minute and no polling, a waiter left unwoken would hold
    /// the test far past its bound.
    #[test]
    fn every_waiter_is_woken_by_the_acknowledgements() {
        let store = RulesStore::new(rules(), 2);
        store.set_workers_running(true);
        let first = store.store(rules());
        let second = store.store(rules());
        let waiters: Vec<_> = [first, second, first, second]
            .into_iter()
            .map(|generation| {
                let s = Arc::clone(&store);
                std::thread::spawn(move || {
                    let start = Instant::now();
                    let r = s.wait_for(generation, Duration::from_secs(60));
                    (r, start.elapsed())
                })
            })
            .collect();
        let t = Instant::now();
        while store.waiting() < 4 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "waiters never waited"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let woken = Instant::now();
        store.acknowledge(0, second);
        store.acknowledge(1, second);
        for (w, generation) in waiters.into_iter().zip([first, second, first, second]) {
            let (r, _) = w.join().unwrap();
            assert_eq!(r, Ok(generation));
        }
        assert!(
            woken.elapsed() < Duration::from_secs(10),
            "a waiter was not woken: {:?}",
            woken.elapsed()
        );
        assert_eq!(store.waiting(), 0, "waiters left their place");
    }

    /// An acknowledgement that lands between a waiter's registration and its sleep is not
    /// lost, and a waiter for a generation not yet acknowledged by every worker sleeps on
    /// (it is woken, looks, and waits again) until the last one.
    #[test]
    fn a_waiter_sleeps_until_the_last_worker_acknowledges() {
        let store = RulesStore::new(rules(), 2);
        store.set_workers_running(true);
        let generation = store.store(rules());
        let s = Arc::clone(&store);
        let waiter = std::thread::spawn(move || s.wait_for(generation, Duration::from_secs(60)));
        let t = Instant::now();
        while store.waiting() < 1 {
            assert!(t.elapsed() < Duration::from_secs(10), "never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
        store.acknowledge(0, generation);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "returned before worker 1 switched");
        let woken = Instant::now();
        store.acknowledge(1, generation);
        assert_eq!(waiter.join().unwrap(), Ok(generation));
        assert!(woken.elapsed() < Duration::from_secs(10));
    }
}
