//! What the metrics endpoint reads from a running dataplane: the control plane's listing and
//! status (in process), each worker's last published counters, the redirect rings' and the
//! mbuf pool's occupancy, and the rules store's publish times. All of it is read on the
//! metrics thread; workers only publish as they already do.

use std::sync::Arc;

use dpdk_bindings::mempool::Mempool;
use dpdk_bindings::ring::MbufRing;
use fnat_proto::msg::Query;
use fnat_proto::stats::{Listing, Status};

use super::view::WorkerShared;
use crate::control::Querier;
use crate::metrics::{Sample, Source, WorkerSample};
use crate::rules_store::RulesStore;

pub struct DriverMetrics {
    pub control: Querier,
    pub workers: Vec<Arc<WorkerShared>>,
    pub rings: Arc<Vec<MbufRing>>,
    pub pool: Arc<Mempool>,
    pub store: Arc<RulesStore>,
    /// The exception path's links (ports with a kernel twin).
    pub kernel: Vec<Arc<super::kernel::TwinLink>>,
}

impl Source for DriverMetrics {
    fn sample(&self) -> Result<Sample, String> {
        let listing: Listing = self.control.query(Query::List { service: None })?;
        let status: Status = self.control.query(Query::Status)?;
        let sync: fnat_proto::sync::SyncStatus = self.control.query(Query::Sync)?;
        let workers = self
            .workers
            .iter()
            .enumerate()
            .map(|(w, shared)| {
                let e = shared.engine_stats();
                let ring = self.rings.get(w);
                WorkerSample {
                    received: e.received,
                    transmitted: e.transmitted,
                    redirected: e.redirected,
                    fast_path: e.fast_path,
                    sessions: e.sessions,
                    sessions_created: e.sessions_created,
                    rate_table_evictions: e.rate_table_evictions,
                    reply_key_clashes: e.reply_key_clashes,
                    templates_full: e.templates_full,
                    redirect_ring_used: ring.map_or(0, |r| r.len()),
                    redirect_ring_capacity: ring.map_or(0, |r| r.capacity()),
                    busy_cycles: shared.busy_cycles(),
                }
            })
            .collect();
        let kernel = self
            .kernel
            .iter()
            .map(|l| {
                let t = l.counters.totals();
                crate::metrics::KernelSample {
                    interface: l.name.clone(),
                    to_kernel: t.to_twin,
                    from_kernel: t.from_twin,
                    twin_tx_full: t.twin_tx_full,
                    ring_full: t.ring_full,
                    ring_used: l.to_kernel.len() + l.from_kernel.len(),
                }
            })
            .collect();
        let vrrp: fnat_proto::vrrp::VrrpListing = self.control.query(Query::Vrrp)?;
        let times = self.store.publish_times();
        let in_use = self.pool.in_use();
        Ok(Sample {
            listing,
            workers,
            kernel,
            sync,
            mbufs_in_use: in_use,
            mbufs_capacity: in_use + self.pool.available(),
            tsc_hz: dpdk_bindings::time::tsc_hz(),
            generation: status.generation,
            publishes: times.publishes,
            publish_seconds_total: times.total.as_secs_f64(),
            publish_last_seconds: times.last.as_secs_f64(),
            vrrp: vrrp.instances,
        })
    }
}
