/* See shim.h. Out-of-line wrappers around DPDK static-inline functions and macros. */
#include "shim.h"

uint16_t fnat_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t fnat_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

uint64_t fnat_eth_rss_ip_tcp_udp(void)
{
	return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}

uint64_t fnat_eth_rx_offload_timestamp(void)
{
	return RTE_ETH_RX_OFFLOAD_TIMESTAMP;
}

struct rte_mbuf *fnat_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int fnat_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void fnat_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void *fnat_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

char *fnat_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

char *fnat_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *fnat_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int fnat_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

uint16_t fnat_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

void fnat_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len)
{
	m->data_len = len;
}

uint32_t fnat_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

void fnat_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len)
{
	m->pkt_len = len;
}

uint16_t fnat_pktmbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

uint16_t fnat_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

uint16_t fnat_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t fnat_mbuf_refcnt_read(const struct rte_mbuf *m)
{
	return rte_mbuf_refcnt_read(m);
}

uint16_t fnat_mbuf_port(const struct rte_mbuf *m)
{
	return m->port;
}

uint32_t fnat_mbuf_rss_hash(const struct rte_mbuf *m)
{
	return m->hash.rss;
}

uint64_t fnat_mbuf_ol_flags(const struct rte_mbuf *m)
{
	return m->ol_flags;
}

void fnat_mbuf_set_ol_flags(struct rte_mbuf *m, uint64_t flags)
{
	m->ol_flags = flags;
}

uint64_t fnat_mbuf_dynfield_u64_get(const struct rte_mbuf *m, int offset)
{
	return *RTE_MBUF_DYNFIELD(m, offset, const uint64_t *);
}

void fnat_mbuf_dynfield_u64_set(struct rte_mbuf *m, int offset, uint64_t v)
{
	*RTE_MBUF_DYNFIELD(m, offset, uint64_t *) = v;
}

unsigned int fnat_lcore_id(void)
{
	return rte_lcore_id();
}

int fnat_errno(void)
{
	return rte_errno;
}

uint64_t fnat_rdtsc(void)
{
	return rte_rdtsc();
}

uint64_t fnat_get_tsc_hz(void)
{
	return rte_get_tsc_hz();
}

unsigned int fnat_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned int n)
{
	return rte_ring_enqueue_burst(r, objs, n, NULL);
}

unsigned int fnat_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned int n)
{
	return rte_ring_dequeue_burst(r, objs, n, NULL);
}

unsigned int fnat_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

unsigned int fnat_ring_free_count(const struct rte_ring *r)
{
	return rte_ring_free_count(r);
}

unsigned int fnat_ring_get_capacity(const struct rte_ring *r)
{
	return rte_ring_get_capacity(r);
}

unsigned int fnat_mempool_avail_count(const struct rte_mempool *mp)
{
	return rte_mempool_avail_count(mp);
}

unsigned int fnat_mempool_in_use_count(const struct rte_mempool *mp)
{
	return rte_mempool_in_use_count(mp);
}
