//! Where a packet leaves: longest-prefix route, egress port MAC, next-hop MAC.
//!
//! Built from a rules snapshot (routes, plus connected routes for the ports' own prefixes;
//! explicit routes win at equal length) and read-only on the packet path.

use crate::rules::{prefix_mask, PortIndex, Rules};
use crate::verdict::DropReason;

use super::map::FixedMap;

#[derive(Debug, Clone, Copy)]
struct RouteEntry {
    net: u32,
    mask: u32,
    port: PortIndex,
    /// Gateway, or `None` for on-link destinations.
    via: Option<u32>,
    /// The gateway's static neighbour MAC (looked up once when the snapshot is built).
    via_mac: Option<[u8; 6]>,
}

/// The egress decision for one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub port: PortIndex,
    /// The egress port's MAC (Ethernet source).
    pub src_mac: [u8; 6],
    /// The next hop's MAC (Ethernet destination) when `resolved`, else zeros.
    pub dst_mac: [u8; 6],
    /// The on-link address the frame goes to: the route's gateway, or the destination.
    pub gateway: u32,
    /// True when `dst_mac` comes from a static neighbour; otherwise the neighbour table
    /// (ARP) resolves `gateway` (see `crate::neigh`).
    pub resolved: bool,
}

/// Entries of a [`HopCache`] (a power of two).
const HOP_CACHE_SLOTS: usize = 256;

/// A small direct-mapped cache of [`Egress::resolve`] results by destination, so that the
/// packet path does not walk the routes and the static neighbours for every packet. It holds
/// only what the current snapshot resolves to: [`HopCache::clear`] it whenever the `Egress` it
/// caches is replaced (a rules update). Dynamic (ARP) neighbours are not cached here: a hop
/// with `resolved == false` is still looked up in the neighbour table on every packet.
#[derive(Debug, Clone)]
pub struct HopCache {
    /// `u64::MAX`: empty; else the destination address. Fixed-size: a slot (masked to
    /// [`HOP_CACHE_SLOTS`]) needs no bounds check.
    keys: Box<[u64; HOP_CACHE_SLOTS]>,
    hops: Box<[NextHop; HOP_CACHE_SLOTS]>,
}

impl Default for HopCache {
    fn default() -> Self {
        Self::new()
    }
}

impl HopCache {
    pub fn new() -> Self {
        HopCache {
            keys: Box::new([u64::MAX; HOP_CACHE_SLOTS]),
            hops: Box::new(
                [NextHop {
                    port: 0,
                    src_mac: [0; 6],
                    dst_mac: [0; 6],
                    gateway: 0,
                    resolved: false,
                }; HOP_CACHE_SLOTS],
            ),
        }
    }

    /// Forgets everything (the `Egress` changed).
    pub fn clear(&mut self) {
        self.keys.fill(u64::MAX);
    }

    /// `egress.resolve(dst)`, from the cache when it has it. By reference: callers that only
    /// check it (session creation, the reply-ingress check) copy nothing out.
    #[inline(always)]
    pub fn resolve(&mut self, egress: &Egress, dst: u32) -> Result<&NextHop, DropReason> {
        let i = (dst.wrapping_mul(0x9E37_79B1) >> 24) as usize & (HOP_CACHE_SLOTS - 1);
        if self.keys[i] != u64::from(dst) {
            self.fill(egress, dst, i)?;
        }
        Ok(&self.hops[i])
    }

    #[cold]
    #[inline(never)]
    fn fill(&mut self, egress: &Egress, dst: u32, i: usize) -> Result<(), DropReason> {
        let hop = egress.resolve(dst)?;
        if let (Some(k), Some(h)) = (self.keys.get_mut(i), self.hops.get_mut(i)) {
            *k = u64::from(dst);
            *h = hop;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Egress {
    /// Longest prefix first.
    routes: Vec<RouteEntry>,
    port_macs: Vec<[u8; 6]>,
    /// Each port's addresses with their netmasks, in config order.
    port_addrs: Vec<Vec<(u32, u32)>>,
    /// (port << 32 | ip) → index in `neighbour_macs`.
    neighbours: FixedMap,
    neighbour_macs: Vec<[u8; 6]>,
}

#[inline]
fn neighbour_key(port: PortIndex, ip: u32) -> u64 {
    (u64::from(port) << 32) | u64::from(ip)
}

impl Egress {
    pub fn new(rules: &Rules) -> Self {
        let mut routes: Vec<(u8, RouteEntry)> = rules
            .routes
            .iter()
            .map(|r| {
                let mask = prefix_mask(r.prefix.prefix_len);
                (
                    r.prefix.prefix_len.min(32),
                    RouteEntry {
                        net: u32::from(r.prefix.addr) & mask,
                        mask,
                        port: r.port,
                        via: r.via.map(u32::from),
                        via_mac: None,
                    },
                )
            })
            .collect();
        for (i, p) in rules.ports.iter().enumerate() {
            for a in &p.addresses {
                if a.prefix_len < 32 {
                    let mask = prefix_mask(a.prefix_len);
                    routes.push((
                        a.prefix_len,
                        RouteEntry {
                            net: u32::from(a.addr) & mask,
                            mask,
                            port: i as PortIndex,
                            via: None,
                            via_mac: None,
                        },
                    ));
                }
            }
        }
        // Stable: explicit routes stay ahead of connected ones of the same length.
        routes.sort_by_key(|r| std::cmp::Reverse(r.0));
        let mut neighbours = FixedMap::with_capacity(rules.neighbours.len());
        let mut neighbour_macs = Vec::with_capacity(rules.neighbours.len());
        for n in &rules.neighbours {
            neighbours.insert(
                neighbour_key(n.port, u32::from(n.addr)),
                neighbour_macs.len() as u32,
            );
            neighbour_macs.push(n.mac);
        }
        for (_, r) in &mut routes {
            if let Some(gw) = r.via {
                r.via_mac = neighbours
                    .get(neighbour_key(r.port, gw))
                    .and_then(|i| neighbour_macs.get(i as usize).copied());
            }
        }
        Egress {
            routes: routes.into_iter().map(|(_, r)| r).collect(),
            port_macs: rules.ports.iter().map(|p| p.mac).collect(),
            port_addrs: rules
                .ports
                .iter()
                .map(|p| {
                    p.addresses
                        .iter()
                        .map(|a| (u32::from(a.addr), prefix_mask(a.prefix_len)))
                        .collect()
                })
                .collect(),
            neighbours,
            neighbour_macs,
        }
    }

    /// The MAC of a port, if it exists.
    #[inline]
    pub fn port_mac(&self, port: PortIndex) -> Option<[u8; 6]> {
        self.port_mac_ref(port).copied()
    }

    /// [`Egress::port_mac`] in place (what a comparison needs: nothing copied).
    #[inline]
    pub fn port_mac_ref(&self, port: PortIndex) -> Option<&[u8; 6]> {
        self.port_macs.get(port as usize)
    }

    /// Routes `dst` (longest prefix): `NoRoute` without a matching route (or with a route
    /// through a port that does not exist). The next hop's MAC is filled in from the static
    /// neighbours when there is one (`resolved`); otherwise ARP resolves `gateway`.
    #[inline]
    pub fn resolve(&self, dst: u32) -> Result<NextHop, DropReason> {
        let r = self
            .routes
            .iter()
            .find(|r| dst & r.mask == r.net)
            .ok_or(DropReason::NoRoute)?;
        let src_mac = self.port_mac(r.port).ok_or(DropReason::NoRoute)?;
        let (hop, dst_mac) = match r.via {
            Some(gw) => (gw, r.via_mac),
            None => (
                dst,
                self.neighbours
                    .get(neighbour_key(r.port, dst))
                    .and_then(|i| self.neighbour_macs.get(i as usize).copied()),
            ),
        };
        Ok(NextHop {
            port: r.port,
            src_mac,
            dst_mac: dst_mac.unwrap_or([0; 6]),
            gateway: hop,
            resolved: dst_mac.is_some(),
        })
    }

    /// The address of `hop`'s port toward it: the first of the port's addresses whose prefix
    /// holds the next hop (the source of an outer tunnel header), else the port's first.
    pub fn source_toward(&self, hop: &NextHop) -> Option<u32> {
        let addrs = self.port_addrs.get(hop.port as usize)?;
        addrs
            .iter()
            .find(|&&(a, m)| m != u32::MAX && a & m == hop.gateway & m)
            .or_else(|| addrs.first())
            .map(|&(a, _)| a)
    }

    /// True when `dst` is on a connected network of a port (no gateway in between): what a
    /// direct-routing real server must be.
    pub fn on_link(&self, dst: u32) -> bool {
        self.resolve(dst).is_ok_and(|h| h.gateway == dst)
            && self
                .port_addrs
                .iter()
                .flatten()
                .any(|&(a, m)| m != u32::MAX && a & m == dst & m)
    }

    /// The port the route to `dst` leaves by (where an owned VIP or LIP answers ARP).
    pub fn route_port(&self, dst: u32) -> Option<PortIndex> {
        self.routes
            .iter()
            .find(|r| dst & r.mask == r.net)
            .map(|r| r.port)
            .filter(|&p| self.port_mac(p).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Ipv4Cidr, Neighbour, PortRule, Route};
    use std::net::Ipv4Addr;

    fn cidr(a: [u8; 4], len: u8) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::from(a),
            prefix_len: len,
        }
    }

    #[test]
    fn longest_prefix_and_neighbours() {
        let mut rules = Rules::passthrough(
            vec![
                PortRule {
                    name: "a".into(),
                    mac: [2, 0, 0, 0, 0, 1],
                    addresses: vec![cidr([10, 0, 0, 1], 24)],
                },
                PortRule {
                    name: "b".into(),
                    mac: [2, 0, 0, 0, 0, 2],
                    addresses: vec![cidr([172, 16, 0, 1], 16)],
                },
            ],
            vec![],
        );
        rules.routes = vec![
            Route {
                prefix: cidr([0, 0, 0, 0], 0),
                port: 0,
                via: Some(Ipv4Addr::new(10, 0, 0, 254)),
            },
            Route {
                prefix: cidr([192, 168, 5, 0], 24),
                port: 1,
                via: Some(Ipv4Addr::new(172, 16, 0, 9)),
            },
        ];
        rules.neighbours = vec![
            Neighbour {
                addr: Ipv4Addr::new(10, 0, 0, 254),
                mac: [0xaa; 6],
                port: 0,
            },
            Neighbour {
                addr: Ipv4Addr::new(172, 16, 0, 9),
                mac: [0xbb; 6],
                port: 1,
            },
            Neighbour {
                addr: Ipv4Addr::new(172, 16, 3, 3),
                mac: [0xcc; 6],
                port: 1,
            },
        ];
        let e = Egress::new(&rules);
        let r = |a: [u8; 4]| e.resolve(u32::from(Ipv4Addr::from(a)));
        assert_eq!(r([8, 8, 8, 8]).unwrap().dst_mac, [0xaa; 6]);
        assert_eq!(r([8, 8, 8, 8]).unwrap().src_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(r([192, 168, 5, 7]).unwrap().dst_mac, [0xbb; 6]);
        assert_eq!(r([192, 168, 5, 7]).unwrap().port, 1);
        assert_eq!(r([172, 16, 3, 3]).unwrap().dst_mac, [0xcc; 6]); // connected
                                                                    // Not a static neighbour: left to ARP.
        let h = r([172, 16, 3, 4]).unwrap();
        assert!(!h.resolved && h.gateway == u32::from(Ipv4Addr::new(172, 16, 3, 4)));
        assert!(r([8, 8, 8, 8]).unwrap().resolved);
        assert_eq!(
            e.route_port(u32::from(Ipv4Addr::new(172, 16, 9, 9))),
            Some(1)
        );
        rules.routes.clear();
        let e = Egress::new(&rules);
        assert_eq!(
            e.resolve(u32::from(Ipv4Addr::new(8, 8, 8, 8))),
            Err(DropReason::NoRoute)
        );
    }
}
