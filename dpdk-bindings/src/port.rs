//! Ethernet ports: configuration, start/stop, statistics and the RX/TX fast path.
//!
//! # Queue ownership
//! A [`Port`] is only an id (`Copy`, `Send`, `Sync`). DPDK's RX and TX functions are not
//! thread-safe per queue: **a given (port, RX queue) and a given (port, TX queue) must be
//! polled by one thread at a time.** So a port has no burst functions of its own:
//! [`Port::rx_queue`] / [`Port::tx_queue`] hand out one exclusive handle per queue
//! ([`RxQueue`], [`TxQueue`]: `Send` but not `Sync`, not `Clone`), and only those move
//! frames. The rule is then a compile-time one, and the burst path takes no lock: the claim is
//! checked once, when the handle is made (in fnat, on the main lcore before the workers start;
//! each worker then owns its handles).
//!
//! Queue ids are checked against the configured count (a burst on a queue that does not exist
//! moves nothing). Polling a port that is not started is harmless in DPDK 22.11 (its burst
//! functions are dummies until `start` and again after `stop`).

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{c_char, CStr, CString};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;

use crate::eal::ensure_up;
use crate::error::{DpdkError, Result, EINVAL};
use crate::ffi;
use crate::mbuf::Burst;
use crate::mempool::Mempool;

/// Pools referenced by configured ports' RX queues, kept alive until the port is closed.
static PORT_POOLS: Mutex<Vec<(u16, Mempool)>> = Mutex::new(Vec::new());

const MAX_PORTS: usize = ffi::RTE_MAX_ETHPORTS as usize;

/// Configured RX / TX queue counts per port (0 until configured, and after close).
#[allow(clippy::declare_interior_mutable_const)] // only used as an array initialiser
const ZERO: AtomicU16 = AtomicU16::new(0);
static RX_QUEUES: [AtomicU16; MAX_PORTS] = [ZERO; MAX_PORTS];
static TX_QUEUES: [AtomicU16; MAX_PORTS] = [ZERO; MAX_PORTS];

/// Queues currently claimed through [`Port::rx_queue`] / [`Port::tx_queue`]:
/// (port, is_tx, queue).
static CLAIMED: Mutex<Option<HashSet<(u16, bool, u16)>>> = Mutex::new(None);

/// An Ethernet device, by port id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    id: u16,
}

/// How to configure a port. `Default`: 1 RX + 1 TX queue, 1024 descriptors each, no RSS, no
/// timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// RX queues (one per worker, typically).
    pub rx_queues: u16,
    /// TX queues.
    pub tx_queues: u16,
    /// RX descriptors per queue (clamped to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (clamped to the device's limits).
    pub tx_desc: u16,
    /// Spread RX over the queues by RSS on IP/TCP/UDP (only the hash types the device
    /// supports; ignored with one RX queue).
    pub rss: bool,
    /// Request `RTE_ETH_RX_OFFLOAD_TIMESTAMP` if the device advertises it (otherwise ignored;
    /// see [`crate::mbuf::Mbuf::timestamp`] for drivers that stamp anyway).
    pub rx_timestamp: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: false,
            rx_timestamp: false,
        }
    }
}

/// What a port's driver reports about itself (`rte_eth_dev_info_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Driver name, e.g. `net_ring`, `net_pcap`.
    pub driver_name: String,
    /// Maximum RX queues.
    pub max_rx_queues: u16,
    /// Maximum TX queues.
    pub max_tx_queues: u16,
    /// `RTE_ETH_RX_OFFLOAD_*` bits supported.
    pub rx_offload_capa: u64,
    /// `RTE_ETH_TX_OFFLOAD_*` bits supported.
    pub tx_offload_capa: u64,
    /// RSS hash types supported (`RTE_ETH_RSS_*`).
    pub flow_type_rss_offloads: u64,
    /// RSS redirection table size.
    pub reta_size: u16,
    /// Largest RX frame.
    pub max_rx_pktlen: u32,
    /// Largest MTU.
    pub max_mtu: u16,
    /// Currently configured RX queues.
    pub nb_rx_queues: u16,
    /// Currently configured TX queues.
    pub nb_tx_queues: u16,
}

/// Basic port counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the hardware because RX queues were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// `RTE_ETH_RX_OFFLOAD_TIMESTAMP`.
pub fn rx_offload_timestamp() -> u64 {
    // SAFETY: returns a constant.
    unsafe { ffi::fnat_eth_rx_offload_timestamp() }
}

impl Port {
    /// Number of usable ports.
    pub fn count() -> u16 {
        if !crate::eal::is_initialized() {
            return 0;
        }
        // SAFETY: EAL is up; the call only reads the device table.
        unsafe { ffi::rte_eth_dev_count_avail() }
    }

    /// Every valid port, ascending by id.
    pub fn all() -> Vec<Port> {
        (0..ffi::RTE_MAX_ETHPORTS as u16)
            .filter_map(|id| Port::from_id(id).ok())
            .collect()
    }

    /// The port with id `id`, if it exists.
    pub fn from_id(id: u16) -> Result<Port> {
        ensure_up("rte_eth_dev_is_valid_port")?;
        // SAFETY: EAL is up; any id may be asked about.
        if unsafe { ffi::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(DpdkError::new(format!("port {id}: no such port"), -19));
        }
        Ok(Port { id })
    }

    /// The port of device `name` (`rte_eth_dev_get_port_by_name`). A vdev's name is its devargs
    /// up to the first `,` (`net_pcap0` for `net_pcap0,rx_pcap=a.pcap`); whole devargs are
    /// accepted and cut there.
    pub fn by_name(name: &str) -> Result<Port> {
        let name = name.split(',').next().unwrap_or(name);
        let what = || format!("rte_eth_dev_get_port_by_name({name:?})");
        ensure_up(&what())?;
        let cname = CString::new(name).map_err(|_| DpdkError::new(what(), -EINVAL))?;
        let mut id = 0u16;
        // SAFETY: EAL is up; cname is a valid C string; id is a valid out-pointer.
        let ret = unsafe { ffi::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        DpdkError::check(what, ret)?;
        Ok(Port { id })
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The device name (empty if the port went away).
    pub fn name(&self) -> String {
        let mut buf = [0 as c_char; ffi::RTE_DEV_NAME_MAX_LEN as usize];
        // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes, as the function requires.
        let ret = unsafe { ffi::rte_eth_dev_get_name_by_port(self.id, buf.as_mut_ptr()) };
        if ret < 0 {
            return String::new();
        }
        // SAFETY: on success buf holds a NUL-terminated string.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    fn raw_info(&self) -> Result<ffi::rte_eth_dev_info> {
        let mut info = MaybeUninit::<ffi::rte_eth_dev_info>::zeroed();
        // SAFETY: info is writable memory of the right type (all-zero is a valid value of this
        // plain C struct); the function fills it.
        let ret = unsafe { ffi::rte_eth_dev_info_get(self.id, info.as_mut_ptr()) };
        DpdkError::check(|| format!("rte_eth_dev_info_get(port {})", self.id), ret)?;
        // SAFETY: zero-initialised and then filled by DPDK.
        Ok(unsafe { info.assume_init() })
    }

    /// Driver capabilities and limits.
    pub fn info(&self) -> Result<PortInfo> {
        let i = self.raw_info()?;
        let driver_name = if i.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name points at the driver's static NUL-terminated name.
            unsafe { CStr::from_ptr(i.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver_name,
            max_rx_queues: i.max_rx_queues,
            max_tx_queues: i.max_tx_queues,
            rx_offload_capa: i.rx_offload_capa,
            tx_offload_capa: i.tx_offload_capa,
            flow_type_rss_offloads: i.flow_type_rss_offloads,
            reta_size: i.reta_size,
            max_rx_pktlen: i.max_rx_pktlen,
            max_mtu: i.max_mtu,
            nb_rx_queues: i.nb_rx_queues,
            nb_tx_queues: i.nb_tx_queues,
        })
    }

    /// Configures the device and sets up every RX queue (mbufs from `pool`) and TX queue on
    /// NUMA `socket` (-1: the port's own socket). Descriptor counts are clamped to the
    /// device's limits. The port must be stopped. `pool` stays referenced until [`Port::close`].
    pub fn configure(&self, cfg: &PortConfig, pool: &Mempool, socket: i32) -> Result<()> {
        let id = self.id;
        let info = self.raw_info()?;
        if cfg.rx_queues == 0 || cfg.rx_queues > info.max_rx_queues {
            return Err(DpdkError::new(
                format!(
                    "rte_eth_dev_configure(port {id}): {} RX queues requested, device allows 1..={}",
                    cfg.rx_queues, info.max_rx_queues
                ),
                -EINVAL,
            ));
        }
        if cfg.tx_queues == 0 || cfg.tx_queues > info.max_tx_queues {
            return Err(DpdkError::new(
                format!(
                    "rte_eth_dev_configure(port {id}): {} TX queues requested, device allows 1..={}",
                    cfg.tx_queues, info.max_tx_queues
                ),
                -EINVAL,
            ));
        }
        // SAFETY: rte_eth_conf is a plain C struct for which all-zero means "defaults".
        let mut conf: ffi::rte_eth_conf = unsafe { std::mem::zeroed() };
        if cfg.rss && cfg.rx_queues > 1 {
            // SAFETY: returns a constant.
            let hf = unsafe { ffi::fnat_eth_rss_ip_tcp_udp() } & info.flow_type_rss_offloads;
            if hf != 0 {
                conf.rxmode.mq_mode = ffi::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
            }
        }
        let ts = rx_offload_timestamp();
        if cfg.rx_timestamp && info.rx_offload_capa & ts != 0 {
            conf.rxmode.offloads |= ts;
        }
        RX_QUEUES[id as usize].store(0, Ordering::Release);
        TX_QUEUES[id as usize].store(0, Ordering::Release);
        // SAFETY: conf is a valid, initialised configuration that DPDK copies.
        let ret = unsafe { ffi::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf) };
        DpdkError::check(|| format!("rte_eth_dev_configure(port {id})"), ret)?;

        let (mut rxd, mut txd) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: both out-pointers are valid; the port is configured.
        let ret = unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rxd, &mut txd) };
        DpdkError::check(
            || format!("rte_eth_dev_adjust_nb_rx_tx_desc(port {id})"),
            ret,
        )?;

        let socket = if socket >= 0 {
            socket
        } else {
            // SAFETY: plain query on a valid port id.
            unsafe { ffi::rte_eth_dev_socket_id(id) }
        };
        // SOCKET_ID_ANY (-1) deliberately becomes u32::MAX, which is how DPDK spells it here.
        let socket = socket as u32;
        // Keep the pool alive for as long as the RX queues may allocate from it.
        PORT_POOLS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, pool.clone()));
        for q in 0..cfg.rx_queues {
            // SAFETY: the port is configured with this many RX queues; a null rx_conf means the
            // driver's defaults; the pool is a pktmbuf pool kept alive by PORT_POOLS.
            let ret = unsafe {
                ffi::rte_eth_rx_queue_setup(id, q, rxd, socket, std::ptr::null(), pool.as_ptr())
            };
            DpdkError::check(
                || format!("rte_eth_rx_queue_setup(port {id}, queue {q})"),
                ret,
            )?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: as above, for TX (null tx_conf means defaults).
            let ret = unsafe { ffi::rte_eth_tx_queue_setup(id, q, txd, socket, std::ptr::null()) };
            DpdkError::check(
                || format!("rte_eth_tx_queue_setup(port {id}, queue {q})"),
                ret,
            )?;
        }
        RX_QUEUES[id as usize].store(cfg.rx_queues, Ordering::Release);
        TX_QUEUES[id as usize].store(cfg.tx_queues, Ordering::Release);
        Ok(())
    }

    /// Starts the device.
    pub fn start(&self) -> Result<()> {
        // SAFETY: plain control call on a port id; DPDK validates it.
        let ret = unsafe { ffi::rte_eth_dev_start(self.id) };
        DpdkError::check(|| format!("rte_eth_dev_start(port {})", self.id), ret).map(|_| ())
    }

    /// Stops the device. No thread may be polling its queues.
    pub fn stop(&self) -> Result<()> {
        // SAFETY: plain control call on a port id; DPDK validates it.
        let ret = unsafe { ffi::rte_eth_dev_stop(self.id) };
        DpdkError::check(|| format!("rte_eth_dev_stop(port {})", self.id), ret).map(|_| ())
    }

    /// Closes (releases) the device; stop it first. Its pools are released afterwards.
    pub fn close(&self) -> Result<()> {
        // SAFETY: plain control call on a port id; DPDK validates it.
        let ret = unsafe { ffi::rte_eth_dev_close(self.id) };
        DpdkError::check(|| format!("rte_eth_dev_close(port {})", self.id), ret)?;
        RX_QUEUES[self.id as usize].store(0, Ordering::Release);
        TX_QUEUES[self.id as usize].store(0, Ordering::Release);
        let released: Vec<Mempool> = {
            let mut pools = PORT_POOLS.lock().unwrap_or_else(|e| e.into_inner());
            let (gone, kept) = pools.drain(..).partition(|(p, _)| *p == self.id);
            *pools = kept;
            gone.into_iter().map(|(_, m)| m).collect()
        };
        drop(released);
        Ok(())
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut a = ffi::rte_ether_addr::default();
        // SAFETY: `a` is a valid out-pointer.
        let ret = unsafe { ffi::rte_eth_macaddr_get(self.id, &mut a) };
        DpdkError::check(|| format!("rte_eth_macaddr_get(port {})", self.id), ret)?;
        Ok(a.addr_bytes)
    }

    /// Sets the port's MAC address (`rte_eth_dev_default_mac_addr_set`): a kernel twin made by
    /// `net_tap` takes its port's MAC this way, so that ARP stays consistent between the two.
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<()> {
        let mut a = ffi::rte_ether_addr { addr_bytes: mac };
        // SAFETY: `a` is a valid, initialised address that DPDK only reads during the call
        // (the pointer is not kept); the port id is validated by DPDK.
        let ret = unsafe { ffi::rte_eth_dev_default_mac_addr_set(self.id, &mut a) };
        DpdkError::check(
            || format!("rte_eth_dev_default_mac_addr_set(port {})", self.id),
            ret,
        )
        .map(|_| ())
    }

    /// Turns promiscuous mode on or off.
    pub fn promiscuous(&self, on: bool) -> Result<()> {
        // SAFETY: plain control calls on a port id; DPDK validates it.
        let ret = unsafe {
            if on {
                ffi::rte_eth_promiscuous_enable(self.id)
            } else {
                ffi::rte_eth_promiscuous_disable(self.id)
            }
        };
        DpdkError::check(
            || {
                format!(
                    "rte_eth_promiscuous_{}(port {})",
                    if on { "enable" } else { "disable" },
                    self.id
                )
            },
            ret,
        )
        .map(|_| ())
    }

    /// The port's basic counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: `s` is a valid out-pointer.
        let ret = unsafe { ffi::rte_eth_stats_get(self.id, &mut s) };
        DpdkError::check(|| format!("rte_eth_stats_get(port {})", self.id), ret)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Resets the basic counters.
    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: plain control call on a port id; DPDK validates it.
        let ret = unsafe { ffi::rte_eth_stats_reset(self.id) };
        DpdkError::check(|| format!("rte_eth_stats_reset(port {})", self.id), ret).map(|_| ())
    }

    /// Receives into the free space of `burst` on RX queue `queue`; returns how many mbufs were
    /// added (0 for a queue that is not configured). Private: only [`RxQueue`], the one
    /// claimed handle of that queue, calls it.
    #[inline]
    fn rx_burst(&self, queue: u16, burst: &mut Burst) -> usize {
        let (ptr, room) = burst.spare_raw();
        if room == 0 || queue >= RX_QUEUES[self.id as usize].load(Ordering::Relaxed) {
            return 0;
        }
        // SAFETY: ptr has `room` writable slots; the driver writes `n <= room` owned mbufs
        // there. The queue exists (checked above), and the caller is its one `RxQueue`
        // (`&mut`, not `Sync`), so no other thread polls it.
        let n = unsafe { ffi::fnat_eth_rx_burst(self.id, queue, ptr, room as u16) } as usize;
        // SAFETY: the first n spare slots were just filled with mbufs that we now own.
        unsafe { burst.added(n.min(room)) };
        n
    }

    /// Transmits from the front of `burst` on TX queue `queue`; sent mbufs leave the burst
    /// (the driver owns them now), unsent ones stay in order. Returns how many were sent (0 for
    /// a queue that is not configured). Private: only [`TxQueue`] calls it.
    #[inline]
    fn tx_burst(&self, queue: u16, burst: &mut Burst) -> usize {
        let len = burst.len();
        if len == 0 || queue >= TX_QUEUES[self.id as usize].load(Ordering::Relaxed) {
            return 0;
        }
        let ptr = burst.front_raw();
        // SAFETY: ptr points at `len` owned mbufs; the driver takes ownership of the first n
        // it returns. The queue exists (checked above), and the caller is its one `TxQueue`
        // (`&mut`, not `Sync`), so no other thread uses it.
        let n = unsafe { ffi::fnat_eth_tx_burst(self.id, queue, ptr, len as u16) } as usize;
        // SAFETY: the driver now owns exactly the first n mbufs.
        unsafe { burst.consumed_front(n.min(len)) };
        n
    }
}

impl Port {
    fn claim(&self, tx: bool, queue: u16) -> Result<()> {
        let (kind, counts) = if tx {
            ("TX", &TX_QUEUES)
        } else {
            ("RX", &RX_QUEUES)
        };
        let what = || format!("port {} {kind} queue {queue}", self.id);
        if queue >= counts[self.id as usize].load(Ordering::Acquire) {
            return Err(DpdkError::new(
                format!("{}: not configured", what()),
                -EINVAL,
            ));
        }
        let mut g = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        if !g
            .get_or_insert_with(HashSet::new)
            .insert((self.id, tx, queue))
        {
            return Err(DpdkError::new(format!("{}: already claimed", what()), -16));
        }
        Ok(())
    }

    fn unclaim(&self, tx: bool, queue: u16) {
        let mut g = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = g.as_mut() {
            set.remove(&(self.id, tx, queue));
        }
    }

    /// Claims RX queue `queue` for the calling side: at most one [`RxQueue`] exists per
    /// (port, queue) at a time (`EBUSY` otherwise). Fails for a queue that is not configured.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue> {
        self.claim(false, queue)?;
        Ok(RxQueue {
            port: *self,
            queue,
            _not_sync: PhantomData,
        })
    }

    /// Claims TX queue `queue`, like [`Port::rx_queue`].
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue> {
        self.claim(true, queue)?;
        Ok(TxQueue {
            port: *self,
            queue,
            _not_sync: PhantomData,
        })
    }
}

/// Exclusive handle on one RX queue of a port (`Send`, not `Sync`, not `Clone`); released on
/// drop.
#[derive(Debug)]
pub struct RxQueue {
    port: Port,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// The port.
    pub fn port(&self) -> Port {
        self.port
    }

    /// The queue id.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives into the free space of `burst`; returns how many mbufs were added.
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut Burst) -> usize {
        self.port.rx_burst(self.queue, burst)
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        self.port.unclaim(false, self.queue);
    }
}

/// Exclusive handle on one TX queue of a port (`Send`, not `Sync`, not `Clone`); released on
/// drop.
#[derive(Debug)]
pub struct TxQueue {
    port: Port,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    /// The port.
    pub fn port(&self) -> Port {
        self.port
    }

    /// The queue id.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Transmits from the front of `burst`; sent mbufs leave the burst (the driver owns them
    /// now), unsent ones stay in order. Returns how many were sent.
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut Burst) -> usize {
        self.port.tx_burst(self.queue, burst)
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.port.unclaim(true, self.queue);
    }
}
