//! Host and service names for ipvsadm mode: listings without `-n` print them, and the
//! command line (and `-R`) accepts them, as ipvsadm does.
//!
//! Where names come from: ipvsadm asks the C library (gethostbyaddr, getservbyport,
//! gethostbyname, getservbyname), so its names follow the system's NSS configuration:
//! /etc/hosts, DNS, /etc/services, nsswitch.conf and whatever modules it lists. We ask the
//! same library through getnameinfo/getaddrinfo, which consult the same NSS sources and
//! answer the same names (getnameinfo returns gethostbyaddr's `h_name` and getservbyport's
//! `s_name`). The `dns-lookup` crate is a small, maintained safe wrapper of exactly those two
//! calls, so fnatctl needs no `unsafe` of its own. Reading /etc/hosts and /etc/services by
//! hand was the alternative: simpler for services, but it would ignore DNS, nsswitch.conf
//! and NSS modules, and print other names than ipvsadm on the same machine.
//!
//! Bounded: the C resolver can block for many seconds (DNS timeouts × attempts × servers),
//! and ipvsadm then hangs with it. Here every lookup runs on a helper thread and the CLI
//! waits at most [`LOOKUP_BUDGET`] in all; what has not answered by then is printed as a
//! number (and a name given on the command line that has not resolved is refused). Threads
//! still blocked in the resolver end with the process.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use fnat_proto::ipvsadm::args::Lookup;
use fnat_proto::ipvsadm::format::Names;
use fnat_proto::model::Protocol;

/// The longest a command waits for names, all lookups together.
pub const LOOKUP_BUDGET: Duration = Duration::from_secs(2);
/// Lookups running at once.
const THREADS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Query {
    /// Address → host name.
    Host(Ipv4Addr),
    /// Port → service name.
    Service(u16, Protocol),
    /// Host name → address.
    Addr(String),
    /// Service name → port.
    Port(String, Protocol),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Name(String),
    Addr(Ipv4Addr),
    Port(u16),
    Nothing,
}

#[derive(Default)]
struct State {
    answers: HashMap<Query, Answer>,
    queued: VecDeque<Query>,
    /// Queries asked (queued or running) and not answered yet.
    asked: std::collections::HashSet<Query>,
    threads: usize,
}

/// Looks names up through the C library, on helper threads, within one time budget.
pub struct Resolver {
    deadline: Instant,
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl Resolver {
    /// A resolver whose lookups all end within `budget` from now.
    pub fn new(budget: Duration) -> Resolver {
        Resolver {
            deadline: Instant::now() + budget,
            shared: Arc::new((Mutex::new(State::default()), Condvar::new())),
        }
    }

    /// Starts looking up the names of these addresses and ports (for `protocol`), so that a
    /// listing's names resolve in parallel rather than one after the other.
    pub fn prefetch(
        &self,
        hosts: impl IntoIterator<Item = Ipv4Addr>,
        services: impl IntoIterator<Item = (u16, Protocol)>,
    ) {
        let queries = hosts.into_iter().map(Query::Host).chain(
            services
                .into_iter()
                .map(|(p, proto)| Query::Service(p, proto)),
        );
        self.ask(queries);
    }

    fn ask(&self, queries: impl Iterator<Item = Query>) {
        let (lock, _) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        for q in queries {
            if !st.answers.contains_key(&q) && st.asked.insert(q.clone()) {
                st.queued.push_back(q);
            }
        }
        // Every live helper is busy with one query (an idle one exits), so each queued
        // query gets a new helper, up to THREADS in all.
        let wanted = st.queued.len().min(THREADS - st.threads);
        for _ in 0..wanted {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("fnatctl-names".into())
                .spawn(move || work(&shared));
            if spawned.is_err() {
                break;
            }
            st.threads += 1;
        }
    }

    /// The answer to `q`, waiting for it until the deadline at most (past it, nothing new
    /// is asked).
    fn answer(&self, q: Query) -> Answer {
        if Instant::now() < self.deadline {
            self.ask(std::iter::once(q.clone()));
        }
        let (lock, ready) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(a) = st.answers.get(&q) {
                return a.clone();
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Answer::Nothing;
            }
            st = ready
                .wait_timeout(st, self.deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A helper thread: answers queued queries until none is left.
fn work(shared: &(Mutex<State>, Condvar)) {
    let (lock, ready) = shared;
    loop {
        let q = {
            let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
            match st.queued.pop_front() {
                Some(q) => q,
                None => {
                    st.threads -= 1;
                    return;
                }
            }
        };
        let a = resolve(&q);
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        st.asked.remove(&q);
        st.answers.insert(q, a);
        ready.notify_all();
    }
}

fn socktype(protocol: Protocol) -> i32 {
    match protocol {
        Protocol::Tcp => libc::SOCK_STREAM,
        Protocol::Udp => libc::SOCK_DGRAM,
    }
}

/// One lookup, in the calling thread (it may block as long as the C resolver does).
fn resolve(q: &Query) -> Answer {
    match q {
        Query::Host(addr) => match dns_lookup::lookup_addr(&IpAddr::V4(*addr)) {
            Ok(name) if !name.is_empty() => Answer::Name(name),
            _ => Answer::Nothing,
        },
        Query::Service(port, protocol) => {
            let mut flags = libc::NI_NUMERICHOST;
            if *protocol == Protocol::Udp {
                flags |= libc::NI_DGRAM;
            }
            let sock = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *port);
            match dns_lookup::getnameinfo(&sock, flags) {
                // Without a name, getnameinfo answers the number itself.
                Ok((_, service)) if !service.is_empty() && service != port.to_string() => {
                    Answer::Name(service)
                }
                _ => Answer::Nothing,
            }
        }
        Query::Addr(name) => {
            let hints = dns_lookup::AddrInfoHints {
                address: libc::AF_INET,
                socktype: libc::SOCK_STREAM,
                ..dns_lookup::AddrInfoHints::default()
            };
            let first = dns_lookup::getaddrinfo(Some(name), None, Some(hints))
                .ok()
                .and_then(|mut it| {
                    it.find_map(|a| match a.ok()?.sockaddr.ip() {
                        IpAddr::V4(v4) => Some(v4),
                        IpAddr::V6(_) => None,
                    })
                });
            first.map_or(Answer::Nothing, Answer::Addr)
        }
        Query::Port(name, protocol) => {
            let hints = dns_lookup::AddrInfoHints {
                address: libc::AF_INET,
                socktype: socktype(*protocol),
                flags: libc::AI_PASSIVE,
                ..dns_lookup::AddrInfoHints::default()
            };
            let port = dns_lookup::getaddrinfo(None, Some(name), Some(hints))
                .ok()
                .and_then(|mut it| it.find_map(|a| Some(a.ok()?.sockaddr.port())));
            port.map_or(Answer::Nothing, Answer::Port)
        }
    }
}

impl Names for Resolver {
    fn host(&self, addr: Ipv4Addr) -> Option<String> {
        match self.answer(Query::Host(addr)) {
            Answer::Name(n) => Some(n),
            _ => None,
        }
    }
    fn service(&self, port: u16, protocol: Protocol) -> Option<String> {
        match self.answer(Query::Service(port, protocol)) {
            Answer::Name(n) => Some(n),
            _ => None,
        }
    }
}

impl Lookup for Resolver {
    fn host_addr(&self, name: &str) -> Option<Ipv4Addr> {
        match self.answer(Query::Addr(name.to_string())) {
            Answer::Addr(a) => Some(a),
            _ => None,
        }
    }
    fn service_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        match self.answer(Query::Port(name.to_string(), protocol)) {
            Answer::Port(p) => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_well_known_ports_have_names() {
        // Every Debian system has these in /etc/hosts and /etc/services.
        let r = Resolver::new(LOOKUP_BUDGET);
        r.prefetch(
            [Ipv4Addr::LOCALHOST],
            [(80, Protocol::Tcp), (53, Protocol::Udp)],
        );
        assert_eq!(r.host(Ipv4Addr::LOCALHOST).as_deref(), Some("localhost"));
        assert_eq!(r.service(80, Protocol::Tcp).as_deref(), Some("http"));
        assert_eq!(r.service(53, Protocol::Udp).as_deref(), Some("domain"));
        assert_eq!(r.service(0, Protocol::Tcp), None, "no service has port 0");
        assert_eq!(r.service_port("http", Protocol::Tcp), Some(80));
        assert_eq!(r.service_port("domain", Protocol::Udp), Some(53));
        assert_eq!(r.service_port("no-such-service-here", Protocol::Tcp), None);
        assert_eq!(r.host_addr("localhost"), Some(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn nothing_is_waited_for_past_the_deadline() {
        let r = Resolver::new(Duration::ZERO);
        let start = Instant::now();
        // An exhausted budget answers at once, with numbers.
        assert_eq!(r.host(Ipv4Addr::LOCALHOST), None);
        assert_eq!(r.service(80, Protocol::Tcp), None);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
