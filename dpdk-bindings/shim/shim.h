/*
 * fnat dpdk-bindings C shim: out-of-line wrappers for DPDK's static-inline
 * functions and macros, which have no symbol to link against.
 * Every function is prefixed fnat_ and does nothing but forward.
 */
#ifndef FNAT_DPDK_SHIM_H
#define FNAT_DPDK_SHIM_H

#include <stdint.h>

#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_dev.h>

/* ethdev fast path */
uint16_t fnat_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t fnat_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* RSS hash functions wanted by default (IP | TCP | UDP) and the timestamp rx offload bit */
uint64_t fnat_eth_rss_ip_tcp_udp(void);
uint64_t fnat_eth_rx_offload_timestamp(void);

/* mbuf */
struct rte_mbuf *fnat_pktmbuf_alloc(struct rte_mempool *mp);
int fnat_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n);
void fnat_pktmbuf_free(struct rte_mbuf *m);
void *fnat_pktmbuf_mtod(struct rte_mbuf *m);
char *fnat_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *fnat_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *fnat_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int fnat_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t fnat_pktmbuf_data_len(const struct rte_mbuf *m);
void fnat_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len);
uint32_t fnat_pktmbuf_pkt_len(const struct rte_mbuf *m);
void fnat_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len);
uint16_t fnat_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t fnat_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t fnat_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t fnat_mbuf_refcnt_read(const struct rte_mbuf *m);
uint16_t fnat_mbuf_port(const struct rte_mbuf *m);
uint32_t fnat_mbuf_rss_hash(const struct rte_mbuf *m);
uint64_t fnat_mbuf_ol_flags(const struct rte_mbuf *m);
void fnat_mbuf_set_ol_flags(struct rte_mbuf *m, uint64_t flags);
uint64_t fnat_mbuf_dynfield_u64_get(const struct rte_mbuf *m, int offset);
void fnat_mbuf_dynfield_u64_set(struct rte_mbuf *m, int offset, uint64_t v);

/* lcore, errno, time */
unsigned int fnat_lcore_id(void);
int fnat_errno(void);
uint64_t fnat_rdtsc(void);
uint64_t fnat_get_tsc_hz(void);

/* ring */
unsigned int fnat_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned int n);
unsigned int fnat_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned int n);
unsigned int fnat_ring_count(const struct rte_ring *r);
unsigned int fnat_ring_free_count(const struct rte_ring *r);
unsigned int fnat_ring_get_capacity(const struct rte_ring *r);

/* mempool (these are out-of-line in 22.11 but wrapped for stability) */
unsigned int fnat_mempool_avail_count(const struct rte_mempool *mp);
unsigned int fnat_mempool_in_use_count(const struct rte_mempool *mp);

#endif
