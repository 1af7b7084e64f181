//! The operator's rule set as the control plane keeps it: the model (`RuleSet`, every
//! ipvsadm attribute) plus where each service sits in it, changed in place one change at a
//! time with an undo log, so that a change costs what the service it names holds, not what
//! the whole rule set holds.
//!
//! Every check stays `fnat_proto::edit::apply`'s: a change that names one service is applied
//! to a rule set holding that service, the firewall marks and the few services `apply` reads
//! besides ([`Change::reads`]), and the service spliced back. Mark changes work on the marks;
//! `restore`, `flush` and `--set` on the whole set.

use std::collections::{HashMap, HashSet};

use fnat_proto::edit::{apply, Change};
use fnat_proto::model::{Mark, RuleSet, Service, ServiceAddr, TimeoutOverrides};
use fnat_proto::msg::{ErrorBody, ErrorKind};

/// A change to the list of services, as the engine's list must mirror it (same positions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structural {
    /// A service appended.
    Push,
    /// The service at this position removed.
    Remove(usize),
}

#[derive(Debug)]
enum Undo {
    Edited { pos: usize, before: Service },
    Pushed,
    Removed { pos: usize, service: Service },
    Whole(RuleSet),
    Timeouts(TimeoutOverrides),
    Marks(Vec<Mark>),
    Sync(fnat_proto::sync::SyncDaemons),
}

/// What a batch of changes did, and how to take it back.
#[derive(Debug, Default)]
pub struct Tx {
    undo: Vec<Undo>,
    /// Services the batch named (first-touch order, no repeats); they may be gone since.
    pub touched: Vec<ServiceAddr>,
    touched_set: HashSet<ServiceAddr>,
    /// Additions and removals, in order.
    pub structure: Vec<Structural>,
    /// The whole rule set was replaced (`restore`, `flush`, `reload`).
    pub whole: bool,
}

impl Tx {
    fn touch(&mut self, addr: ServiceAddr) {
        if self.touched_set.insert(addr) {
            self.touched.push(addr);
        }
    }
}

#[derive(Debug, Default)]
pub struct Model {
    rules: RuleSet,
    /// Position of each service in `rules.services`.
    index: HashMap<ServiceAddr, usize>,
}

fn internal(message: &str) -> ErrorBody {
    ErrorBody {
        kind: ErrorKind::Internal,
        message: message.into(),
    }
}

impl Model {
    pub fn new(rules: RuleSet) -> Model {
        let mut m = Model {
            rules,
            index: HashMap::new(),
        };
        m.reindex();
        m
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Position of a service in [`Model::rules`].
    pub fn position(&self, addr: &ServiceAddr) -> Option<usize> {
        self.index.get(addr).copied()
    }

    pub fn service(&self, addr: &ServiceAddr) -> Option<&Service> {
        self.position(addr).and_then(|i| self.rules.services.get(i))
    }

    fn reindex(&mut self) {
        self.index = self
            .rules
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.addr, i))
            .collect();
    }

    /// Applies `changes` all-or-nothing (as `fnat_proto::edit::apply_all`: on error the
    /// model is as it was and the message names the failing change when there are several).
    pub fn apply(&mut self, changes: &[Change]) -> Result<Tx, ErrorBody> {
        let mut tx = Tx::default();
        for (i, change) in changes.iter().enumerate() {
            if let Err(mut e) = self.apply_one(change, &mut tx) {
                self.rollback(tx);
                if changes.len() > 1 {
                    e.message = format!("change {}: {}", i + 1, e.message);
                }
                return Err(e);
            }
        }
        Ok(tx)
    }

    /// Copies of the services at `addrs` that exist (what `apply` reads of them).
    fn copies(&self, addrs: impl IntoIterator<Item = ServiceAddr>) -> Vec<Service> {
        addrs
            .into_iter()
            .filter_map(|a| self.service(&a).cloned())
            .collect()
    }

    fn apply_one(&mut self, change: &Change, tx: &mut Tx) -> Result<(), ErrorBody> {
        if let Change::MarkAdd { .. } | Change::MarkDel { .. } = change {
            let mut work = RuleSet {
                timeouts: self.rules.timeouts,
                marks: self.rules.marks.clone(),
                services: self.copies(change.reads(&self.rules.marks)),
                ..RuleSet::default()
            };
            apply(&mut work, change)?;
            let before = std::mem::replace(&mut self.rules.marks, work.marks);
            tx.undo.push(Undo::Marks(before));
            return Ok(());
        }
        let Some(addr) = change.target() else {
            let mut work = RuleSet {
                timeouts: self.rules.timeouts,
                marks: self.rules.marks.clone(),
                services: Vec::new(),
                // Flush keeps the daemons, as the kernel's -C.
                sync: self.rules.sync.clone(),
            };
            apply(&mut work, change)?;
            if let Change::TimeoutSet { .. } = change {
                let before = std::mem::replace(&mut self.rules.timeouts, work.timeouts);
                tx.undo.push(Undo::Timeouts(before));
            } else if let Change::SyncStart { .. } | Change::SyncStop { .. } = change {
                let before = std::mem::replace(&mut self.rules.sync, work.sync);
                tx.undo.push(Undo::Sync(before));
            } else {
                // Flush and Replace do not read the services they replace.
                let before = std::mem::replace(&mut self.rules, work);
                tx.undo.push(Undo::Whole(before));
                tx.whole = true;
                self.reindex();
            }
            return Ok(());
        };
        let pos = self.position(&addr);
        let read = self.copies(
            change
                .reads(&self.rules.marks)
                .into_iter()
                .filter(|a| *a != addr),
        );
        let read_count = read.len();
        let mut work = RuleSet {
            timeouts: self.rules.timeouts,
            marks: self.rules.marks.clone(),
            services: pos
                .and_then(|p| self.rules.services.get(p))
                .cloned()
                .into_iter()
                .chain(read)
                .collect(),
            ..RuleSet::default()
        };
        apply(&mut work, change)?;
        let after = work
            .services
            .iter()
            .position(|s| s.addr == addr)
            .map(|i| work.services.remove(i));
        if work.services.len() != read_count {
            return Err(internal("a change produced services it does not name"));
        }
        match (pos, after) {
            (Some(p), Some(s)) => {
                let before = std::mem::replace(&mut self.rules.services[p], s);
                tx.undo.push(Undo::Edited { pos: p, before });
            }
            (Some(p), None) => {
                let service = self.rules.services.remove(p);
                self.index.remove(&addr);
                for v in self.index.values_mut() {
                    if *v > p {
                        *v -= 1;
                    }
                }
                tx.undo.push(Undo::Removed { pos: p, service });
                tx.structure.push(Structural::Remove(p));
            }
            (None, Some(s)) => {
                self.index.insert(addr, self.rules.services.len());
                self.rules.services.push(s);
                tx.undo.push(Undo::Pushed);
                tx.structure.push(Structural::Push);
            }
            (None, None) => {}
        }
        tx.touch(addr);
        Ok(())
    }

    /// Takes a batch back (after a later step failed): the model is as before it.
    pub fn rollback(&mut self, tx: Tx) {
        for undo in tx.undo.into_iter().rev() {
            match undo {
                Undo::Edited { pos, before } => self.rules.services[pos] = before,
                Undo::Pushed => {
                    if let Some(s) = self.rules.services.pop() {
                        self.index.remove(&s.addr);
                    }
                }
                Undo::Removed { pos, service } => {
                    for v in self.index.values_mut() {
                        if *v >= pos {
                            *v += 1;
                        }
                    }
                    self.index.insert(service.addr, pos);
                    self.rules.services.insert(pos, service);
                }
                Undo::Whole(before) => {
                    self.rules = before;
                    self.reindex();
                }
                Undo::Timeouts(before) => self.rules.timeouts = before,
                Undo::Marks(before) => self.rules.marks = before,
                Undo::Sync(before) => self.rules.sync = before,
            }
        }
    }

    /// The model, for those that consume it (`--rules FILE`).
    pub fn into_rules(self) -> RuleSet {
        self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_proto::edit::apply_all;
    use fnat_proto::model::{LocalAddress, Real, Scheduler};
    use std::net::Ipv4Addr;

    fn svc(i: u8) -> ServiceAddr {
        ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, i), 80)
    }

    fn real(i: u8, weight: u32) -> Real {
        Real::new(Ipv4Addr::new(192, 168, 0, i), 80, weight)
    }

    /// Batches that succeed and fail, checked against `apply_all` on the whole rule set.
    #[test]
    fn changes_in_place_match_apply_all_and_roll_back() {
        let mut start = RuleSet::default();
        for i in 1..=4 {
            let mut s = Service::new(svc(i), Scheduler::Rr);
            s.reals = vec![real(i, 1), real(i + 10, 2)];
            start.services.push(s);
        }
        let add = |i: u8| Change::ServiceAdd {
            service: Service::new(svc(i), Scheduler::Wlc),
        };
        let del = |i: u8| Change::ServiceDel { service: svc(i) };
        let batches: Vec<Vec<Change>> = vec![
            vec![Change::RealEdit {
                service: svc(2),
                real: real(2, 7),
            }],
            vec![del(2), add(9), add(2)],
            vec![
                del(1),
                Change::RealAdd {
                    service: svc(3),
                    real: real(30, 1),
                },
                Change::LaddrAdd {
                    service: svc(4),
                    laddr: LocalAddress {
                        addr: Ipv4Addr::new(10, 1, 0, 1),
                        device: None,
                    },
                },
            ],
            // Fails at the third change: nothing of it stays.
            vec![del(3), add(8), add(4)],
            vec![Change::RealDel {
                service: svc(4),
                addr: Ipv4Addr::new(192, 168, 0, 99),
                port: 80,
            }],
            vec![
                Change::Flush,
                add(5),
                Change::TimeoutSet {
                    tcp: 10,
                    tcp_fin: 0,
                    udp: 0,
                },
            ],
            vec![add(6), Change::Flush, add(6), add(6)],
        ];
        let mut model = Model::new(start.clone());
        let mut expect = start;
        for batch in &batches {
            let want = apply_all(&mut expect, batch);
            let got = model.apply(batch);
            assert_eq!(got.as_ref().err(), want.as_ref().err(), "{batch:?}");
            assert_eq!(model.rules(), &expect, "{batch:?}");
            for (i, s) in expect.services.iter().enumerate() {
                assert_eq!(model.position(&s.addr), Some(i));
            }
            assert_eq!(model.index.len(), expect.services.len());
        }
        // A successful batch taken back (a later step, such as compiling, refused it).
        let before = model.rules().clone();
        let tx = model
            .apply(&[
                add(7),
                del(5),
                Change::TimeoutSet {
                    tcp: 0,
                    tcp_fin: 0,
                    udp: 9,
                },
            ])
            .unwrap();
        assert_eq!(tx.structure, vec![Structural::Push, Structural::Remove(0)]);
        assert_eq!(tx.touched, vec![svc(7), svc(5)]);
        model.rollback(tx);
        assert_eq!(model.rules(), &before);
        assert_eq!(model.position(&svc(5)), Some(0));
        assert_eq!(model.position(&svc(7)), None);
    }
}
