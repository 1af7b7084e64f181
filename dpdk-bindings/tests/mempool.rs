//! Mempool and mbuf basics: counts return to the start value (no leaks), mbuf editing, Burst.

mod common;

use dpdk_bindings::mempool::{DEFAULT_DATA_ROOM, HEADROOM};
use dpdk_bindings::{Burst, Mbuf, Mempool, BURST_MAX};

#[test]
fn mempool_mbuf_and_burst() {
    let eal = common::init(&[]);
    let pool = Mempool::new_pktmbuf("t_pool", 1023, 32, DEFAULT_DATA_ROOM, 0).expect("pool");
    assert_eq!(pool.name(), "t_pool");
    let start = pool.available();
    assert_eq!(start, 1023);
    assert_eq!(pool.in_use(), 0);

    // Allocate, fill, count.
    let mut held: Vec<Mbuf> = Vec::new();
    for i in 0..100u32 {
        let mut m = pool.alloc().expect("alloc");
        assert_eq!(m.data_len(), 0);
        assert_eq!(m.nb_segs(), 1);
        assert_eq!(m.refcnt(), 1);
        assert_eq!(m.headroom(), HEADROOM as usize);
        let f = common::frame(i);
        m.append(f.len()).expect("append").copy_from_slice(&f);
        assert_eq!(m.data(), &f[..]);
        assert_eq!(m.pkt_len(), f.len());
        held.push(m);
    }
    assert_eq!(pool.in_use(), 100);
    assert_eq!(pool.available(), start - 100);
    for (i, m) in held.iter().enumerate() {
        assert_eq!(m.data(), &common::frame(i as u32)[..]);
    }
    drop(held);
    assert_eq!(pool.available(), start);
    assert_eq!(pool.in_use(), 0);

    // Editing one mbuf.
    let mut m = pool.alloc().unwrap();
    let room = m.tailroom();
    assert_eq!(room, DEFAULT_DATA_ROOM as usize - HEADROOM as usize);
    assert!(m.append(room + 1).is_none());
    m.append(10).unwrap().copy_from_slice(b"0123456789");
    m.prepend(2).unwrap().copy_from_slice(b"ab");
    assert_eq!(m.data(), b"ab0123456789");
    assert!(m.adj(3));
    assert!(m.trim(2));
    assert_eq!(m.data(), b"1234567");
    assert!(!m.adj(100));
    assert!(!m.trim(100));
    m.data_mut()[0] = b'X';
    assert_eq!(m.data(), b"X234567");
    assert!(m.set_data_len(3));
    assert_eq!((m.data(), m.pkt_len()), (&b"X23"[..], 3));
    assert!(m.set_data_len(7)); // grows back within tailroom; the old bytes are still there
    assert_eq!(m.data(), b"X234567");
    assert!(!m.set_data_len(7 + m.tailroom() + 1));
    assert!(m.prepend(HEADROOM as usize * 2).is_none());
    let raw = m.into_raw();
    assert_eq!(pool.in_use(), 1);
    // SAFETY: `raw` came from into_raw just above and nothing else owns it.
    let m = unsafe { Mbuf::from_raw(raw) };
    drop(m);
    assert_eq!(pool.in_use(), 0);

    // Exhaustion: exactly n mbufs, then None.
    let mut all = Vec::new();
    while let Some(m) = pool.alloc() {
        all.push(m);
    }
    assert_eq!(all.len(), 1023);
    assert_eq!(pool.available(), 0);
    drop(all);
    assert_eq!(pool.available(), start);

    // Burst: bulk alloc, take, pop, drain order, clear, drop.
    let mut b = Burst::new();
    assert!(!pool.alloc_bulk(&mut b, BURST_MAX + 1));
    assert!(pool.alloc_bulk(&mut b, BURST_MAX));
    assert!(b.is_full());
    for (i, m) in b.iter_mut().enumerate() {
        m.append(4)
            .unwrap()
            .copy_from_slice(&(i as u32).to_be_bytes());
    }
    let extra = pool.alloc().unwrap();
    let extra = b.push(extra).unwrap_err(); // full: handed back
    drop(extra);
    let id = |m: &Mbuf| u32::from_be_bytes(m.data()[..4].try_into().unwrap());
    let t = b.take(3).unwrap();
    assert_eq!(id(&t), 3);
    assert_eq!(b.len(), BURST_MAX - 1);
    assert_eq!(id(b.get(3).unwrap()), 4);
    let last = b.pop().unwrap();
    assert_eq!(id(&last), BURST_MAX as u32 - 1);
    let s = b.swap_remove(0).unwrap();
    assert_eq!(id(&s), 0);
    assert_eq!(id(b.get(0).unwrap()), BURST_MAX as u32 - 2);
    drop((t, last, s));
    b.as_mut_slice().sort_by_key(id);
    let ids: Vec<u32> = b.drain().take(5).map(|m| id(&m)).collect(); // rest freed by Drain's drop
    assert_eq!(ids, vec![1, 2, 4, 5, 6]);
    assert!(b.is_empty());
    assert_eq!(pool.in_use(), 0);
    assert!(pool.alloc_bulk(&mut b, 10));
    assert_eq!(pool.in_use(), 10);
    b.clear();
    assert_eq!(pool.in_use(), 0);
    assert!(pool.alloc_bulk(&mut b, 20));
    drop(b);
    assert_eq!(pool.in_use(), 0);
    assert_eq!(pool.available(), start);

    // Dropping a pool with mbufs out leaks it (name stays taken); an empty pool is freed.
    let p2 = Mempool::new_pktmbuf("t_leak", 63, 0, DEFAULT_DATA_ROOM, 0).unwrap();
    let kept = p2.alloc().unwrap();
    drop(p2);
    assert!(Mempool::new_pktmbuf("t_leak", 63, 0, DEFAULT_DATA_ROOM, 0).is_err());
    assert_eq!(kept.data_len(), 0); // still usable: the pool was not freed under it
    drop(pool);
    let again = Mempool::new_pktmbuf("t_pool", 63, 0, DEFAULT_DATA_ROOM, 0).expect("name freed");
    drop(again);

    // A duplicate name is a DPDK error with a message.
    let a = Mempool::new_pktmbuf("t_dup", 63, 0, DEFAULT_DATA_ROOM, 0).unwrap();
    let e = Mempool::new_pktmbuf("t_dup", 63, 0, DEFAULT_DATA_ROOM, 0).unwrap_err();
    assert!(e.to_string().contains("t_dup"), "{e}");
    drop(a);
    drop(kept);
    eal.cleanup().expect("cleanup");
}
