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
//! * A port's RX/TX queues are used only through their claimed handles ([`RxQueue`],
//!   [`TxQueue`]: one per queue, `Send` but not `Sync`), so one thread at a time polls a queue
//!   by construction; see [`port`].
//! * The documented caller obligation that remains: [`Eal::cleanup`](eal::Eal::cleanup) comes
//!   after every DPDK object is dropped.
//! * Beside DPDK, the process-level FFI fnatd needs lives here too, so that every other crate
//!   forbids `unsafe`: [`signals`] (SIGINT/SIGTERM/SIGHUP flags), [`cpu`] (the prefetch hint
//!   the engine is handed) and [`hugealloc`] (the allocator that advises transparent huge
//!   pages).

#![deny(clippy::undocumented_unsafe_blocks)]

mod error;
mod ffi;

pub mod cpu;
pub mod eal;
pub mod hugealloc;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod ring;
pub mod signals;
pub mod time;

pub use error::{strerror, DpdkError, Result};
pub use mbuf::{Burst, Mbuf, TimestampField, BURST_MAX};
pub use mempool::Mempool;
pub use port::{Port, PortConfig, PortInfo, PortStats, RxQueue, TxQueue};
pub use ring::MbufRing;
