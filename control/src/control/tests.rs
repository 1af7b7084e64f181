//! The control plane without EAL: a real socket, a rules store without workers, a fake
//! dataplane view.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fnat_proto::edit::Change;
use fnat_proto::model::{Protocol, Real, RuleSet, Scheduler, Service, ServiceAddr};
use fnat_proto::msg::{ErrorBody, ErrorKind, Query, Request, Response};
use fnat_proto::stats::{Applied, Counters, Listing, ViewRealStats};

use super::*;
use crate::config::AppConfig;

struct FakeView;

impl DataplaneView for FakeView {
    fn stats(&self) -> ViewStats {
        ViewStats {
            reals: vec![ViewRealStats {
                service_id: 1,
                real_id: 1,
                counters: Counters {
                    conns: 7,
                    ..Counters::default()
                },
                active_conns: 2,
                inactive_conns: 1,
                persistent_conns: 0,
            }],
            ..ViewStats::default()
        }
    }
    fn connections(&self, filter: &ConnFilter, limit: usize) -> Vec<ConnEntry> {
        let e = ConnEntry {
            worker: 0,
            protocol: Protocol::Tcp,
            client: SocketAddrV4::new(Ipv4Addr::new(1, 1, 1, 1), 4000),
            vip: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 100), 80),
            lip: SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 10), 1025),
            rs: SocketAddrV4::new(Ipv4Addr::new(198, 19, 1, 10), 80),
            state: "ESTABLISHED".into(),
            expires_in_s: 10,
            forward: fnat_proto::model::ForwardMethod::FullNat,
        };
        [e].into_iter()
            .filter(|e| filter.matches(e))
            .take(limit)
            .collect()
    }
    fn zero(&self, _service_id: Option<u32>) {}
}

struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fnat-ctl-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &Path, state: bool) -> AppConfig {
    let mut text = format!(
        "[[port]]\nname = \"a\"\ndevice = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n\n\
         [[service]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\n\
         local_addresses = [\"198.19.0.10\"]\nreal = [{{ address = \"198.19.1.10\", port = 80 }}]\n\n\
         [control]\nsocket = \"{}\"\n",
        dir.join("ctl.sock").display()
    );
    if state {
        text.push_str(&format!(
            "state_file = \"{}\"\n",
            dir.join("state.toml").display()
        ));
    }
    AppConfig::parse(&dir.join("cfg.toml"), &text).unwrap()
}

fn start_with(cfg: &AppConfig) -> (ControlHandle, Arc<RulesStore>) {
    let store = RulesStore::new(cfg.rules.clone(), 2);
    let handle = start(cfg, Arc::clone(&store), Arc::new(FakeView)).unwrap();
    (handle, store)
}

fn ask(cfg: &AppConfig, request: &Request) -> String {
    let mut s = UnixStream::connect(&cfg.control.socket).unwrap();
    s.write_all(request.encode().as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

fn vip() -> ServiceAddr {
    ServiceAddr::tcp(Ipv4Addr::new(198, 18, 0, 100), 80)
}

#[test]
fn a_change_is_published_and_a_rejected_one_changes_nothing() {
    let dir = Tmp::new("publish");
    let cfg = config(&dir.0, false);
    let (handle, store) = start_with(&cfg);
    let add = Request::Change(Change::RealAdd {
        service: vip(),
        real: Real::new(Ipv4Addr::new(198, 19, 1, 11), 80, 5),
    });
    let applied: Applied = Response::decode(&ask(&cfg, &add)).unwrap();
    let after_add = store.current();
    assert_eq!(after_add.generation, applied.generation);
    assert_eq!(after_add.services[0].reals.len(), 2);

    // Duplicate, DR to a real server off the ports' networks, undefined mark, bad batch:
    // each refused, nothing moves.
    let route = Request::Change(Change::RealAdd {
        service: vip(),
        real: Real {
            forward: fnat_proto::model::ForwardMethod::Route,
            ..Real::new(Ipv4Addr::new(198, 19, 1, 12), 80, 1)
        },
    });
    let fwmark = Request::Change(Change::ServiceAdd {
        service: Service::new(ServiceAddr::Fwmark(5), Scheduler::Rr),
    });
    let batch = Request::Query(Query::Apply {
        changes: vec![
            Change::Flush,
            Change::ServiceDel {
                service: ServiceAddr::tcp(Ipv4Addr::new(9, 9, 9, 9), 1),
            },
        ],
    });
    for (request, kind) in [
        (&add, ErrorKind::DestinationExists),
        (&route, ErrorKind::Invalid),
        (&fwmark, ErrorKind::Invalid),
        (&batch, ErrorKind::NoSuchService),
    ] {
        let e: ErrorBody = Response::decode::<Applied>(&ask(&cfg, request)).unwrap_err();
        assert_eq!(e.kind, kind, "{e:?}");
        assert_eq!(
            *store.current(),
            *after_add,
            "a rejected change moved the rules"
        );
    }
    let e = Response::decode::<Applied>(&ask(&cfg, &fwmark)).unwrap_err();
    assert!(
        e.message.contains("firewall mark 5 is not defined"),
        "{}",
        e.message
    );
    handle.stop();
    assert!(!cfg.control.socket.exists(), "stop removes the socket");
}

#[test]
fn ids_are_stable_across_edits() {
    let dir = Tmp::new("ids");
    let cfg = config(&dir.0, false);
    let (_handle, store) = start_with(&cfg);
    let before = store.current().services[0].clone();
    let edit = Request::Change(Change::RealEdit {
        service: vip(),
        real: Real::new(Ipv4Addr::new(198, 19, 1, 10), 80, 9),
    });
    Response::decode::<Applied>(&ask(&cfg, &edit)).unwrap();
    let sched = Request::Change(Change::ServiceEdit {
        service: fnat_proto::edit::ServiceAttrs {
            addr: vip(),
            scheduler: Scheduler::Wrr,
            sched_flags: Default::default(),
            persistence: None,
            one_packet: false,
            expire_on_removal: false,
            conn_rate: None,
            proxy_protocol: Default::default(),
            toa: false,
            synproxy: false,
        },
    });
    Response::decode::<Applied>(&ask(&cfg, &sched)).unwrap();
    let after = store.current().services[0].clone();
    assert_eq!(after.id, before.id);
    assert_eq!(after.reals[0].id, before.reals[0].id);
    assert_eq!(after.reals[0].weight, 9);
}

#[test]
fn listing_maps_counters_to_addresses() {
    let dir = Tmp::new("list");
    let cfg = config(&dir.0, false);
    let (_handle, _store) = start_with(&cfg);
    let listing: Listing =
        Response::decode(&ask(&cfg, &Request::Query(Query::List { service: None }))).unwrap();
    let st = listing.service_stats(&vip()).unwrap();
    assert_eq!(st.counters.conns, 7, "a service sums its reals");
    assert_eq!(st.reals[0].addr, Some(Ipv4Addr::new(198, 19, 1, 10)));
    assert_eq!(
        (st.reals[0].active_conns, st.reals[0].inactive_conns),
        (2, 1)
    );
    let conns: Vec<ConnEntry> = Response::decode(&ask(
        &cfg,
        &Request::Query(Query::Connections {
            filter: ConnFilter {
                client: Some(Ipv4Addr::new(2, 2, 2, 2)),
                ..ConnFilter::default()
            },
            limit: None,
        }),
    ))
    .unwrap();
    assert!(conns.is_empty());
}

#[test]
fn the_state_file_is_written_and_read_back() {
    let dir = Tmp::new("state");
    let cfg = config(&dir.0, true);
    {
        let (handle, _store) = start_with(&cfg);
        let flush = Request::Change(Change::TimeoutSet {
            tcp: 100,
            tcp_fin: 0,
            udp: 0,
        });
        Response::decode::<Applied>(&ask(&cfg, &flush)).unwrap();
        let del = Request::Change(Change::ServiceDel { service: vip() });
        Response::decode::<Applied>(&ask(&cfg, &del)).unwrap();
        handle.stop();
    }
    let saved = std::fs::read_to_string(dir.0.join("state.toml")).unwrap();
    assert!(saved.contains("tcp = 100"), "{saved}");
    let (_handle, store) = start_with(&cfg);
    assert!(
        store.current().services.is_empty(),
        "the state file wins over the config"
    );
    assert_eq!(store.current().timeouts.tcp_established, 100);
}

#[test]
fn a_live_socket_is_refused_and_a_stale_one_replaced() {
    let dir = Tmp::new("sock");
    let cfg = config(&dir.0, false);
    let (handle, _store) = start_with(&cfg);
    let store = RulesStore::new(cfg.rules.clone(), 1);
    let e = start(&cfg, store, Arc::new(FakeView)).err().unwrap();
    assert!(e.contains("another fnatd"), "{e}");
    // A socket file nobody listens on: stale.
    drop(handle);
    let stale = std::os::unix::net::UnixListener::bind(&cfg.control.socket).unwrap();
    drop(stale);
    assert!(cfg.control.socket.exists());
    let (_h, _s) = start_with(&cfg);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cfg.control.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
}

#[test]
fn a_rules_file_is_applied_on_top_of_the_config() {
    let dir = Tmp::new("rulesfile");
    let mut cfg = config(&dir.0, false);
    let path = dir.0.join("rules");
    std::fs::write(
        &path,
        "-A -t 198.18.0.200:443 -s wrr\n-a -t 198.18.0.200:443 -r 198.19.1.20:443 -b -w 3\n\
         -P -t 198.18.0.200:443 -z 198.19.0.11\n",
    )
    .unwrap();
    apply_rules_file(&mut cfg, &path).unwrap();
    assert_eq!(cfg.rules.services.len(), 2);
    assert_eq!(cfg.rules.services[1].reals[0].weight, 3);
    std::fs::write(&path, "-A -t 198.18.0.100:80 -s rr\n").unwrap();
    let e = apply_rules_file(&mut cfg, &path).unwrap_err();
    assert!(e.contains("Service already exists"), "{e}");
    let _ = RuleSet::default();
}

/// A change waits for the workers without the control plane's lock: while one waits for
/// workers that do not switch, listings and other changes are answered at once, and the
/// waiting change is stored (the listing shows it). When the workers catch up with the latest
/// snapshot (which names what it changed), both changes are answered as applied.
#[test]
fn a_listing_never_waits_behind_a_slow_publish() {
    use std::time::{Duration, Instant};
    let dir = Tmp::new("slowpublish");
    let cfg = config(&dir.0, false);
    let (handle, store) = start_with(&cfg);
    // Two workers that poll but never switch.
    store.set_workers_running(true);
    let before = store.current().generation;
    let slow = {
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            let add = Request::Change(Change::RealAdd {
                service: vip(),
                real: Real::new(Ipv4Addr::new(198, 19, 1, 11), 80, 5),
            });
            let start = Instant::now();
            let reply = ask(&cfg, &add);
            (reply, start.elapsed())
        })
    };
    let t = Instant::now();
    while store.current().generation == before {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the change was not stored"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let listing: Listing =
        Response::decode(&ask(&cfg, &Request::Query(Query::List { service: None }))).unwrap();
    assert_eq!(
        listing.rules.services[0].reals.len(),
        2,
        "the stored change is listed"
    );
    let edit = Request::Change(Change::RealEdit {
        service: vip(),
        real: Real::new(Ipv4Addr::new(198, 19, 1, 10), 80, 7),
    });
    let stored_second = store.current().generation + 1;
    let second = std::thread::spawn({
        let cfg = cfg.clone();
        move || ask(&cfg, &edit)
    });
    let t = Instant::now();
    while store.current().generation != stored_second {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the second change was not stored"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "a listing and another change waited {:?} behind a publish",
        start.elapsed()
    );
    // The latest snapshot names what it changed from the one before it, and what that one
    // changed (for a worker that skipped it).
    let latest = store.current();
    let id = latest.services[0].id;
    let steps = &latest.edits.as_ref().expect("edits").steps;
    let step = |from: u64| fnat_engine::rules::EditStep {
        from,
        services: vec![id].into(),
    };
    assert_eq!(steps.last(), Some(&step(stored_second - 1)));
    assert_eq!(steps.get(steps.len() - 2), Some(&step(stored_second - 2)));
    assert!(
        !slow.is_finished(),
        "the first change did not wait for the workers"
    );
    for w in 0..2 {
        store.acknowledge(w, stored_second);
    }
    let (reply, _) = slow.join().unwrap();
    let first: Applied = Response::decode(&reply).unwrap();
    assert_eq!(first.generation, before + 1);
    let second: Applied = Response::decode(&second.join().unwrap()).unwrap();
    assert_eq!(second.generation, stored_second);
    handle.stop();
}

/// Adding and removing services, and a reload that adds and removes, hand the workers edits
/// (the ids set, generation after generation): a worker that skipped every one of them
/// applies them without comparing every service.
#[test]
fn adding_and_removing_services_are_handed_to_workers_as_edits() {
    use fnat_engine::rules::EditStep;
    let dir = Tmp::new("structedits");
    let cfg = config(&dir.0, false);
    let (handle, store) = start_with(&cfg);
    let first = store.current();
    let mut stats = fnat_engine::WorkerStats::default();
    let mut worker = fnat_engine::fnat::FullNat::new(0, 2, &first, &mut stats);
    let other = ServiceAddr::tcp(Ipv4Addr::new(198, 18, 0, 101), 80);
    let third = ServiceAddr::tcp(Ipv4Addr::new(198, 18, 0, 102), 443);
    for service in [&other, &third] {
        let add = Request::Change(Change::ServiceAdd {
            service: Service::new(*service, Scheduler::Rr),
        });
        Response::decode::<Applied>(&ask(&cfg, &add)).unwrap();
    }
    let del = Request::Change(Change::ServiceDel { service: vip() });
    Response::decode::<Applied>(&ask(&cfg, &del)).unwrap();
    let latest = store.current();
    assert_eq!(latest.generation, first.generation + 3);
    let ids: Vec<u32> = latest.services.iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 2);
    let steps = &latest.edits.as_ref().expect("edits").steps;
    let step = |from: u64, services: Vec<u32>| EditStep {
        from,
        services: services.into(),
    };
    assert_eq!(
        steps[steps.len() - 3..],
        [
            step(first.generation, vec![ids[0]]),
            step(first.generation + 1, vec![ids[1]]),
            step(first.generation + 2, vec![]),
        ]
    );
    worker.update_from(&first, &latest, &mut stats);
    assert_eq!(worker.full_compares(), 0, "the skipping worker compared");

    // Reload of the file (its one service): the other two go, the file's comes back.
    let path = dir.0.join("cfg.toml");
    let file = format!(
        "[[port]]\nname = \"a\"\ndevice = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n\n\
         [[service]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\n\
         local_addresses = [\"198.19.0.10\"]\nreal = [{{ address = \"198.19.1.10\", port = 80 }}]\n\n\
         [control]\nsocket = \"{}\"\n",
        cfg.control.socket.display()
    );
    std::fs::write(&path, file).unwrap();
    handle.reload().unwrap();
    let reloaded = store.current();
    assert_eq!(reloaded.services.len(), 1);
    let steps = &reloaded.edits.as_ref().expect("edits").steps;
    assert_eq!(
        steps.last(),
        Some(&step(latest.generation, vec![reloaded.services[0].id]))
    );
    worker.update_from(&latest, &reloaded, &mut stats);
    assert_eq!(worker.full_compares(), 0, "the reloaded worker compared");
    // A snapshot whose edits do not reach back to the worker's generation is compared (and
    // counted).
    let mut unknown = (*reloaded).clone();
    unknown.edits = None;
    unknown.generation += 1;
    worker.update_from(&reloaded, &unknown, &mut stats);
    assert_eq!(worker.full_compares(), 1);
    handle.stop();
}

/// A sync service that records what it is told to run.
#[derive(Default)]
struct RecordingSync(Mutex<Vec<fnat_proto::sync::SyncDaemons>>);

impl SyncControl for RecordingSync {
    fn configure(&self, daemons: &fnat_proto::sync::SyncDaemons) -> Result<(), String> {
        if [&daemons.master, &daemons.backup]
            .iter()
            .any(|d| d.as_ref().is_some_and(|d| d.interface == "nowhere"))
        {
            return Err("'nowhere' is not a port with a kernel twin".into());
        }
        self.0.lock().push(daemons.clone());
        Ok(())
    }
    fn vrrp_state(&self, _instance: &str, _master: bool) {}
    fn status(&self) -> fnat_proto::sync::SyncStatus {
        fnat_proto::sync::SyncStatus::default()
    }
}

struct SyncView(Arc<RecordingSync>);

impl DataplaneView for SyncView {
    fn stats(&self) -> ViewStats {
        ViewStats::default()
    }
    fn connections(&self, _filter: &ConnFilter, _limit: usize) -> Vec<ConnEntry> {
        Vec::new()
    }
    fn zero(&self, _service_id: Option<u32>) {}
    fn sync(&self) -> Option<Arc<dyn SyncControl>> {
        Some(self.0.clone())
    }
}

/// `ipvsadm --start-daemon` goes into the rule set: journalled in the state file, so a
/// restarted fnatd runs the daemon again; `--stop-daemon` is journalled too; a daemon the
/// service refuses is not recorded.
#[test]
fn daemons_started_by_ipvsadm_survive_a_restart_through_the_state_file() {
    use fnat_proto::sync::{SyncDaemon, SyncRole};
    let dir = Tmp::new("syncstate");
    let cfg = config(&dir.0, true);
    let mut master = SyncDaemon::new("lan");
    master.syncid = 9;
    let running = |sync: &RecordingSync| sync.0.lock().last().cloned().unwrap_or_default();
    {
        let sync = Arc::new(RecordingSync::default());
        let store = RulesStore::new(cfg.rules.clone(), 2);
        let handle = start(&cfg, store, Arc::new(SyncView(sync.clone()))).unwrap();
        for (role, d) in [(SyncRole::Master, &master), (SyncRole::Backup, &master)] {
            let q = Request::Query(Query::SyncStart {
                role,
                daemon: d.clone(),
            });
            assert!(Response::decode::<fnat_proto::sync::SyncStatus>(&ask(&cfg, &q)).is_ok());
        }
        let bad = Request::Query(Query::SyncStart {
            role: SyncRole::Master,
            daemon: master.clone(),
        });
        assert!(ask(&cfg, &bad).contains("already running"));
        let stop = Request::Query(Query::SyncStop {
            role: SyncRole::Backup,
        });
        assert!(Response::decode::<fnat_proto::sync::SyncStatus>(&ask(&cfg, &stop)).is_ok());
        assert_eq!(running(&sync).master.as_ref(), Some(&master));
        assert!(running(&sync).backup.is_none());
        handle.stop();
    }
    let saved = std::fs::read_to_string(dir.0.join("state.toml")).unwrap();
    assert!(saved.contains("syncid = 9"), "{saved}");
    // Restarted: the state file's daemon runs again.
    let sync = Arc::new(RecordingSync::default());
    let store = RulesStore::new(cfg.rules.clone(), 2);
    let _handle = start(&cfg, store, Arc::new(SyncView(sync.clone()))).unwrap();
    assert_eq!(running(&sync).master.as_ref(), Some(&master));
    assert!(running(&sync).backup.is_none());
    // Refused by the service: not recorded, nothing changes.
    let mut nowhere = SyncDaemon::new("nowhere");
    nowhere.syncid = 1;
    let q = Request::Query(Query::SyncStart {
        role: SyncRole::Backup,
        daemon: nowhere,
    });
    let _ = ask(&cfg, &q);
    let saved = std::fs::read_to_string(dir.0.join("state.toml")).unwrap();
    let journal = std::fs::read_to_string(dir.0.join("state.toml.journal")).unwrap_or_default();
    assert!(!saved.contains("nowhere") && !journal.contains("nowhere"));
}
