//! # dpdk-bindings: fnat's only door to DPDK
//!
//! This crate is the one place in fnat that calls DPDK (22.11, found with pkg-config and
//! linked as shared libraries) and the one place with FFI `unsafe`. Everything else in the
//! workspace uses the safe API below.
//!
//! * `ffi` (private): bindgen output over `shim/shim.h`, which includes the DPDK
//!   headers and declares `fnat_*` wrappers. DPDK's fast path is `static inline` (RX/TX burst,
//!   mbuf alloc/free/append, ring enqueue/dequeue, `rte_lcore_id`, `rte_errno`, rdtsc) and has
//!   no symbol, so `shim/shim.c` gives each an out-of-line body, compiled with DPDK's cflags.
//! * Safe wrappers: [`eal`], [`lcore`], [`time`], [`mempool`], [`mbuf`], [`port`], [`ring`].
//!
//! ## How safety is argued
//! * Ownership mirrors DPDK's: an [`mbuf::Mbuf`] is an owned mbuf (freed on drop, never
//!   cloned or shared, so `&mut Mbuf` is exclusive access to its bytes); a [`mbuf::Burst`]
//!   owns the mbufs in slots `0..len`; RX/dequeue move ownership in, TX/enqueue move it out
//!   (the burst forgets exactly the ones DPDK accepted).
//! * Objects that free DPDK memory (mempool, ring) do so in `Drop`, once. A mempool with mbufs
//!   still out is leaked rather than freed under them; ports keep their pool alive until
//!   closed.
//! * Constructors refuse to run before `Eal::init` (errors, not crashes).
//! * Every `unsafe` block carries a `// SAFETY:` comment with its local argument.
//! * Documented caller obligations that remain: each port RX/TX queue is polled by one thread
//!   at a time when using [`Port::rx_burst`]/[`Port::tx_burst`] directly (the
//!   [`RxQueue`]/[`TxQueue`] handles enforce it instead; see [`port`]), and
//!   [`Eal::cleanup`](eal::Eal::cleanup) comes after every DPDK object is dropped.

mod error;
mod ffi;

pub mod eal;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod ring;
pub mod time;

pub use error::{strerror, DpdkError, Result};
pub use mbuf::{Burst, Mbuf, TimestampField, BURST_MAX};
pub use mempool::Mempool;
pub use port::{Port, PortConfig, PortInfo, PortStats, RxQueue, TxQueue};
pub use ring::MbufRing;
