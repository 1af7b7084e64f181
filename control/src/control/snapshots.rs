//! Building each published snapshot from the one in force by the edits of one change,
//! without copying every service: snapshots are double-buffered.
//!
//! After snapshot N+1 is published and every worker switched to it, nobody but the control
//! plane holds snapshot N any more. The builder keeps N (the *spare*) and the edits that
//! turned it into N+1; the next change takes the spare back (`Arc::try_unwrap`), replays
//! those edits on it (it is then N+1) and applies its own (N+2). A change therefore costs
//! what it changes (plus moving the list of services when one is added or removed), not a
//! copy of 10 000 services and 100 000 real servers, and the old snapshot is freed (or
//! recycled) by the control thread, never by a worker in its loop. When the spare is still
//! held elsewhere (a worker that did not switch in time), or after a change that replaced
//! everything, the next snapshot starts from a copy of the one in force: correct, and as
//! slow as before.

use std::sync::Arc;

use fnat_engine::rules::{Rules, Service as EngineService};

/// One edit of the engine's list of services.
#[derive(Debug, Clone)]
pub enum Edit {
    /// A service appended (its content follows in a `Set`).
    Push,
    /// The service at this position removed.
    Remove(usize),
    /// The service at this position is this one.
    Set(usize, EngineService),
}

fn placeholder() -> EngineService {
    EngineService::new(
        0,
        std::net::Ipv4Addr::UNSPECIFIED,
        fnat_engine::rules::Protocol::Tcp,
        0,
        Default::default(),
    )
}

/// Applies `edits` to `services`, cloning what `Set`s hold.
fn replay(services: &mut Vec<EngineService>, edits: &[Edit]) {
    for e in edits {
        match e {
            Edit::Push => services.push(placeholder()),
            Edit::Remove(i) => {
                if *i < services.len() {
                    services.remove(*i);
                }
            }
            Edit::Set(i, s) => {
                if let Some(slot) = services.get_mut(*i) {
                    slot.clone_from(s);
                }
            }
        }
    }
}

/// Applies `edits` to `services`, moving what `Set`s hold.
fn replay_owned(services: &mut Vec<EngineService>, edits: Vec<Edit>) {
    for e in edits {
        match e {
            Edit::Push => services.push(placeholder()),
            Edit::Remove(i) => {
                if i < services.len() {
                    services.remove(i);
                }
            }
            Edit::Set(i, s) => {
                if let Some(slot) = services.get_mut(i) {
                    *slot = s;
                }
            }
        }
    }
}

/// Everything but the services of `next` made equal to `current`'s.
fn copy_settings(next: &mut Rules, current: &Rules) {
    // Exhaustive on purpose: a new field of `Rules` must be thought about here.
    let Rules {
        generation,
        ports,
        mode,
        services: _,
        routes,
        neighbours,
        timeouts,
        session_capacity,
        lport_min,
        lport_max,
        drop_ip_options,
        expire_quiescent_template,
        standby,
        garp,
        edits: _,
    } = current;
    next.generation = *generation;
    next.ports.clone_from(ports);
    next.mode.clone_from(mode);
    next.routes.clone_from(routes);
    next.neighbours.clone_from(neighbours);
    next.timeouts = *timeouts;
    next.session_capacity = *session_capacity;
    next.lport_min = *lport_min;
    next.lport_max = *lport_max;
    next.drop_ip_options = *drop_ip_options;
    next.expire_quiescent_template = *expire_quiescent_template;
    next.standby.clone_from(standby);
    next.garp.clone_from(garp);
    // What changed is the caller's to say, for this snapshot alone.
    next.edits = None;
}

#[derive(Debug, Default)]
pub struct Builder {
    /// The snapshot published before the one in force.
    spare: Option<Arc<Rules>>,
    /// What turns `spare` into the snapshot in force; `None`: unknown (start, or a change
    /// that replaced everything).
    pending: Option<Vec<Edit>>,
    /// Snapshots built on a recycled spare, and on a copy (for tests and measurements).
    pub recycled: u64,
    pub copied: u64,
}

impl Builder {
    /// `current` (the snapshot in force) with `edits` applied, settings included.
    pub fn next(&mut self, current: &Rules, edits: &[Edit]) -> Rules {
        let spare = self.spare.take();
        let pending = self.pending.take();
        let recycled = match (spare, pending) {
            (Some(spare), Some(pending)) => Arc::try_unwrap(spare).ok().map(|mut r| {
                replay_owned(&mut r.services, pending);
                r
            }),
            _ => None,
        };
        let mut next = match recycled {
            Some(mut r) => {
                self.recycled += 1;
                copy_settings(&mut r, current);
                r
            }
            None => {
                self.copied += 1;
                current.clone()
            }
        };
        replay(&mut next.services, edits);
        next
    }

    /// `previous` (the snapshot that was in force) was replaced by one that `edits` made
    /// from it (`None`: by one built from scratch).
    pub fn published(&mut self, previous: Arc<Rules>, edits: Option<Vec<Edit>>) {
        self.spare = Some(previous);
        self.pending = edits;
    }

    /// A snapshot was built but not published: the spare may have been used up.
    pub fn reset(&mut self) {
        self.spare = None;
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_engine::rules::{PortRule, RealServer};
    use std::net::Ipv4Addr;

    fn svc(id: u32) -> EngineService {
        let mut s = placeholder();
        s.id = id;
        s.vip = Ipv4Addr::new(10, 0, 0, id as u8);
        s.reals
            .push(RealServer::new(id, Ipv4Addr::new(192, 168, 0, 1), 80, 1));
        s
    }

    #[test]
    fn a_recycled_spare_becomes_exactly_the_next_snapshot() {
        let mut base = Rules::passthrough(
            vec![PortRule {
                name: "a".into(),
                mac: [0; 6],
                addresses: vec![],
            }],
            vec![None],
        );
        base.services = (1..=4).map(svc).collect();
        let mut b = Builder::default();
        let mut current = Arc::new(base);
        let steps: Vec<Vec<Edit>> = vec![
            vec![Edit::Set(1, svc(20))],
            vec![Edit::Remove(0), Edit::Push, Edit::Set(3, svc(5))],
            vec![Edit::Set(0, svc(30)), Edit::Set(2, svc(31))],
            vec![
                Edit::Push,
                Edit::Remove(4),
                Edit::Push,
                Edit::Set(4, svc(6)),
            ],
            vec![],
        ];
        let mut expect = current.services.clone();
        for (k, edits) in steps.iter().enumerate() {
            let mut next = b.next(&current, edits);
            replay(&mut expect, edits);
            next.generation = current.generation + 1;
            assert_eq!(next.services, expect, "step {k}");
            assert_eq!(next.ports, current.ports);
            let previous = std::mem::replace(&mut current, Arc::new(next));
            b.published(previous, Some(edits.clone()));
        }
        // The first started from a copy (no spare yet); every later one recycled its spare.
        assert_eq!((b.copied, b.recycled), (1, 4));
        // A spare someone else still holds is not touched: the next one is a copy.
        let held = Arc::clone(&current);
        let mut next = b.next(&current, &[Edit::Set(0, svc(40))]);
        b.published(held, Some(vec![Edit::Set(0, svc(40))]));
        let held_again = b.spare.clone();
        next.generation += 1;
        let n = b.next(&next, &[]);
        assert_eq!(n.services, next.services);
        assert_eq!(held_again.unwrap().services, current.services);
        assert_eq!(b.copied, 2);
    }
}
