//! net_ring0 is a loopback: what TX sends, RX receives. 32 distinct frames must come back
//! byte-identical and in order; port info, stats, name lookup and MAC work.

mod common;

use dpdk_bindings::mempool::DEFAULT_DATA_ROOM;
use dpdk_bindings::{Burst, Mempool, Port, PortConfig};

#[test]
fn net_ring_loopback() {
    let eal = common::init(&["--vdev=net_ring0"]);
    assert_eq!(Port::count(), 1);
    let port = Port::by_name("net_ring0").expect("by_name");
    assert_eq!(Port::by_name("net_ring0,foo=bar").unwrap(), port);
    assert!(Port::by_name("net_nope9").is_err());
    assert_eq!(port.name(), "net_ring0");
    assert_eq!(Port::all(), vec![port]);
    let info = port.info().expect("info");
    eprintln!("net_ring0 info: {info:?}");
    assert_eq!(info.driver_name, "net_ring");
    assert!(info.max_rx_queues >= 1 && info.max_tx_queues >= 1);

    let pool = Mempool::new_pktmbuf("lb_pool", 1023, 32, DEFAULT_DATA_ROOM, 0).unwrap();
    let start = pool.available();

    // Too many queues is a clean error naming the port.
    let bad = PortConfig {
        rx_queues: info.max_rx_queues + 1,
        ..PortConfig::default()
    };
    let e = port.configure(&bad, &pool, -1).unwrap_err();
    assert!(e.to_string().contains("port 0"), "{e}");

    let cfg = PortConfig {
        rx_desc: 512,
        tx_desc: 512,
        rss: true,          // one queue: ignored
        rx_timestamp: true, // not advertised by net_ring: ignored
        ..PortConfig::default()
    };
    port.configure(&cfg, &pool, -1).expect("configure");
    port.start().expect("start");
    let mac = port.mac().expect("mac");
    eprintln!(
        "net_ring0 mac {mac:02x?}, promiscuous(on) -> {:?}",
        port.promiscuous(true)
    );

    let mut rxq = port.rx_queue(0).expect("claim rx 0");
    let mut txq = port.tx_queue(0).expect("claim tx 0");
    let mut tx = Burst::new();
    for i in 0..32u32 {
        let mut m = pool.alloc().unwrap();
        let f = common::frame(i);
        m.append(f.len()).unwrap().copy_from_slice(&f);
        tx.push(m).unwrap();
    }
    let sent = txq.tx_burst(&mut tx);
    assert_eq!(sent, 32);
    assert!(tx.is_empty());

    let mut rx = Burst::new();
    let mut polls = 0;
    while rx.len() < 32 && polls < 1000 {
        rxq.rx_burst(&mut rx);
        polls += 1;
    }
    assert_eq!(rx.len(), 32);
    for (i, m) in rx.iter().enumerate() {
        assert_eq!(m.data(), &common::frame(i as u32)[..], "frame {i}");
        assert_eq!(m.pkt_len(), m.data_len());
    }
    // net_ring hands over the very mbufs TX gave it and does not set the input port: it stays
    // RTE_MBUF_PORT_INVALID from allocation. Callers must know the port they polled.
    assert_eq!(rx.get(0).unwrap().port(), u16::MAX);
    {}
    assert_eq!(rxq.rx_burst(&mut rx), 0, "nothing more to receive");

    let stats = port.stats().unwrap();
    eprintln!("net_ring0 stats: {stats:?}");
    assert_eq!(stats.opackets, 32);
    assert_eq!(stats.ipackets, 32);
    // net_ring (22.11) counts packets but not bytes: ibytes/obytes stay 0.

    // Send them around again, the burst keeps any unsent tail.
    let n = txq.tx_burst(&mut rx);
    assert_eq!(n + rx.len(), 32);
    rx.clear();
    let mut back = Burst::new();
    while rxq.rx_burst(&mut back) > 0 {}
    assert_eq!(back.len(), n);
    back.clear();

    // Unconfigured queues cannot be claimed, so nothing moves on them; queue handles are
    // exclusive.
    let mut one = Burst::new();
    one.push(pool.alloc().unwrap()).unwrap();
    let e = port.tx_queue(1).unwrap_err();
    assert!(e.to_string().contains("not configured"), "{e}");
    assert_eq!(one.len(), 1);
    assert!(port.rx_queue(1).is_err());
    let e = port.rx_queue(0).unwrap_err();
    assert!(e.to_string().contains("already claimed"), "{e}");
    assert_eq!(txq.tx_burst(&mut one), 1);
    let mut got = 0;
    for _ in 0..100 {
        got += rxq.rx_burst(&mut back);
    }
    assert_eq!(got, 1);
    assert_eq!(back.get(0).unwrap().data_len(), 0);
    back.clear();
    drop(rxq);
    let rxq = port.rx_queue(0).expect("claim again after drop");
    drop((rxq, txq));

    port.stop().expect("stop");
    port.close().expect("close");
    assert_eq!(pool.in_use(), 0, "every mbuf came back to the pool");
    assert_eq!(pool.available(), start);
    drop(pool);
    eal.cleanup().expect("cleanup");
}
