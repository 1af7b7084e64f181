//! MbufRing: exact capacity, FIFO order, partial enqueue when full, cross-thread SPSC order,
//! and freeing leftovers on drop.

mod common;

use std::sync::Arc;

use dpdk_bindings::mempool::DEFAULT_DATA_ROOM;
use dpdk_bindings::{Burst, MbufRing, Mempool};

fn id(m: &dpdk_bindings::Mbuf) -> u32 {
    u32::from_be_bytes(m.data()[..4].try_into().unwrap())
}

#[test]
fn mbuf_ring_order_and_capacity() {
    let eal = common::init(&[]);
    let pool = Mempool::new_pktmbuf("ring_pool", 4095, 32, DEFAULT_DATA_ROOM, 0).unwrap();
    let ring = MbufRing::new("t_ring", 100, 0, true, true).expect("ring");
    assert_eq!(ring.capacity(), 100);
    assert_eq!(ring.len(), 0);
    assert!(
        MbufRing::new("t_ring", 100, 0, true, true).is_err(),
        "duplicate name"
    );

    let mut next = 0u32;
    let mut fill = |b: &mut Burst| {
        while !b.is_full() {
            let mut m = pool.alloc().unwrap();
            m.append(4).unwrap().copy_from_slice(&next.to_be_bytes());
            next += 1;
            b.push(m).unwrap();
        }
    };
    let mut b = Burst::new();
    fill(&mut b);
    assert_eq!(ring.enqueue(&mut b), 64);
    assert!(b.is_empty());
    fill(&mut b); // ids 64..128
    assert_eq!(ring.enqueue(&mut b), 36, "only 36 more fit");
    assert_eq!(b.len(), 28);
    assert_eq!(
        id(b.get(0).unwrap()),
        100,
        "unsent stay in order at the front"
    );
    assert_eq!(ring.len(), 100);
    assert_eq!(ring.free_count(), 0);
    assert_eq!(ring.enqueue(&mut b), 0);
    b.clear();

    let mut out = Vec::new();
    let mut d = Burst::new();
    while ring.dequeue(&mut d) > 0 {
        out.extend(d.drain().map(|m| id(&m)));
    }
    assert_eq!(out, (0..100).collect::<Vec<_>>());
    assert_eq!(pool.in_use(), 0);

    // Leftovers are freed when the ring is dropped.
    fill(&mut b);
    ring.enqueue(&mut b);
    assert_eq!(pool.in_use(), 64);
    drop(ring);
    assert_eq!(pool.in_use(), 0);

    // Cross-thread SPSC: 20000 mbufs arrive in order.
    let ring = Arc::new(MbufRing::new("t_spsc", 256, 0, true, true).unwrap());
    const N: u32 = 20_000;
    let producer = {
        let ring = Arc::clone(&ring);
        let pool = pool.clone();
        std::thread::spawn(move || {
            let mut b = Burst::new();
            let mut i = 0u32;
            while i < N || !b.is_empty() {
                while i < N && !b.is_full() {
                    match pool.alloc() {
                        Some(mut m) => {
                            m.append(4).unwrap().copy_from_slice(&i.to_be_bytes());
                            b.push(m).unwrap();
                            i += 1;
                        }
                        None => break,
                    }
                }
                ring.enqueue(&mut b);
                std::hint::spin_loop();
            }
        })
    };
    let mut expect = 0u32;
    let mut d = Burst::new();
    while expect < N {
        ring.dequeue(&mut d);
        for m in d.drain() {
            assert_eq!(id(&m), expect);
            expect += 1;
        }
    }
    producer.join().unwrap();
    assert!(ring.is_empty());
    drop(ring);
    assert_eq!(pool.in_use(), 0);
    drop(pool);
    eal.cleanup().unwrap();
}
