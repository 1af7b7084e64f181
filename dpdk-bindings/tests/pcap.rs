//! net_pcap: RX replays a hand-written pcap in order with its timestamps, returns 0 at end of
//! file, and TX to a tx_pcap writes the frames back out (readable after stop/close).

mod common;

use std::path::Path;

use dpdk_bindings::mempool::DEFAULT_DATA_ROOM;
use dpdk_bindings::{Burst, Mempool, Port, PortConfig, TimestampField};

const N: u32 = 10;
const BASE_SEC: u32 = 1_700_000_000;

fn ts_of(i: u32) -> (u32, u32) {
    (BASE_SEC + i, 1000 * i + 7)
}

/// A pcap (little endian, Ethernet) of `frames`; magic a1b2c3d4 = microsecond timestamps,
/// a1b23c4d = nanosecond timestamps.
fn write_pcap(path: &Path, magic: u32, frames: &[(u32, u32, Vec<u8>)]) {
    let mut out = Vec::new();
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (sec, usec, f) in frames {
        out.extend_from_slice(&sec.to_le_bytes());
        out.extend_from_slice(&usec.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

/// (magic, records as (sec, frac, bytes)) of a little-endian pcap.
fn read_pcap(path: &Path) -> (u32, Vec<(u32, u32, Vec<u8>)>) {
    let b = std::fs::read(path).unwrap();
    assert!(b.len() >= 24, "pcap too short: {} bytes", b.len());
    let u32at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let magic = u32at(0);
    let mut recs = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let (sec, frac, incl) = (u32at(o), u32at(o + 4), u32at(o + 8) as usize);
        recs.push((sec, frac, b[o + 16..o + 16 + incl].to_vec()));
        o += 16 + incl;
    }
    assert_eq!(o, b.len(), "trailing bytes");
    (magic, recs)
}

#[test]
fn net_pcap_rx_tx() {
    let dir = std::env::temp_dir().join(format!("fnat-bindings-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rx_path = dir.join("in.pcap");
    let tx_path = dir.join("out.pcap");
    let frames: Vec<(u32, u32, Vec<u8>)> = (0..N)
        .map(|i| {
            let (s, u) = ts_of(i);
            (s, u, common::frame(i))
        })
        .collect();
    write_pcap(&rx_path, 0xa1b2_c3d4, &frames);
    // A nanosecond-precision file on a second, RX-only port.
    let ns_path = dir.join("ns.pcap");
    write_pcap(
        &ns_path,
        0xa1b2_3c4d,
        &[(BASE_SEC, 123_456_789, common::frame(99))],
    );

    let vdev = format!(
        "--vdev=net_pcap0,rx_pcap={},tx_pcap={}",
        rx_path.display(),
        tx_path.display()
    );
    let vdev_ns = format!("--vdev=net_pcap1,rx_pcap={}", ns_path.display());
    let eal = common::init(&[&vdev, &vdev_ns]);
    let port = Port::by_name(&vdev["--vdev=".len()..]).expect("by_name with devargs");
    let info = port.info().unwrap();
    eprintln!("net_pcap0 info: {info:?}");
    eprintln!(
        "timestamp field after EAL init: {:?}",
        TimestampField::lookup()
    );

    let pool = Mempool::new_pktmbuf("pcap_pool", 511, 0, DEFAULT_DATA_ROOM, 0).unwrap();
    let cfg = PortConfig {
        rx_timestamp: true,
        ..PortConfig::default()
    };
    port.configure(&cfg, &pool, -1).expect("configure");
    port.start().expect("start");
    let tsf = TimestampField::lookup().expect("net_pcap registers the timestamp dynfield by start");
    eprintln!("timestamp field after start: {tsf:?}");

    let mut rxq = port.rx_queue(0).expect("claim rx 0");
    let mut rx = Burst::new();
    let mut empty_polls = 0;
    while empty_polls < 50 {
        if rxq.rx_burst(&mut rx) == 0 {
            empty_polls += 1;
        }
    }
    assert_eq!(rx.len(), N as usize, "all records, then 0 at end of file");
    assert_eq!(rxq.rx_burst(&mut rx), 0, "still 0 at end of file");
    for (i, m) in rx.iter().enumerate() {
        let (sec, usec, f) = &frames[i];
        assert_eq!(m.data(), &f[..], "frame {i} bytes/order");
        assert_eq!(m.port(), port.id());
        let ts = m.timestamp(&tsf).expect("timestamp flag set");
        if i == 0 {
            eprintln!("record 0: pcap ts {sec}.{usec:06} -> mbuf timestamp {ts}");
        }
        assert_eq!(
            ts,
            *sec as u64 * 1_000_000 + *usec as u64,
            "net_pcap stores microseconds since the epoch"
        );
    }
    // Nanosecond pcap: what does the PMD store?
    let ns_port = Port::by_name("net_pcap1").unwrap();
    ns_port
        .configure(&PortConfig::default(), &pool, -1)
        .unwrap();
    ns_port.start().unwrap();
    let mut nsb = Burst::new();
    let mut ns_rxq = ns_port.rx_queue(0).expect("claim rx 0 of net_pcap1");
    for _ in 0..50 {
        ns_rxq.rx_burst(&mut nsb);
    }
    assert_eq!(nsb.len(), 1);
    let ns_ts = nsb.get(0).unwrap().timestamp(&tsf).unwrap();
    eprintln!("nanosecond pcap {BASE_SEC}.123456789 -> mbuf timestamp {ns_ts}");
    assert_eq!(
        ns_ts,
        BASE_SEC as u64 * 1_000_000 + 123_456,
        "ns files are truncated to us"
    );
    nsb.clear();
    ns_port.stop().unwrap();
    ns_port.close().unwrap();

    // set_timestamp round-trips.
    let mut m = rx.take(0).unwrap();
    m.set_timestamp(&tsf, 42);
    assert_eq!(m.timestamp(&tsf), Some(42));
    // Put it back at the front, then send everything to tx_pcap.
    let mut out = Burst::new();
    out.push(m).unwrap();
    for m in rx.drain() {
        out.push(m).unwrap();
    }
    let mut txq = port.tx_queue(0).expect("claim tx 0");
    let mut sent = 0;
    for _ in 0..100 {
        sent += txq.tx_burst(&mut out);
        if out.is_empty() {
            break;
        }
    }
    assert_eq!(sent, N as usize);
    let st = port.stats().unwrap();
    eprintln!("net_pcap0 stats: {st:?}");
    assert_eq!((st.ipackets, st.opackets), (N as u64, N as u64));
    port.stop().unwrap();
    port.close().unwrap();
    assert_eq!(pool.in_use(), 0);

    let (magic, recs) = read_pcap(&tx_path);
    eprintln!(
        "tx_pcap magic {magic:#x}; record 0 ts {}.{} (pcap ts of TX is {})",
        recs[0].0,
        recs[0].1,
        if recs[0].0 == frames[0].0 {
            "the mbuf's"
        } else {
            "the send time"
        }
    );
    assert_eq!(recs.len(), N as usize);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.2, frames[i].2, "tx record {i}");
    }
    drop(pool);
    eal.cleanup().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
