//! Errors before and around EAL init: no DPDK object can be made before init, bad arguments
//! fail cleanly (no exit), and the error type formats as promised.

mod common;

use dpdk_bindings::eal::Eal;
use dpdk_bindings::{DpdkError, MbufRing, Mempool, Port};

#[test]
fn eal_errors_and_error_display() {
    // Before init: constructors fail with ENODEV instead of crashing.
    let e = Mempool::new_pktmbuf("p", 63, 0, 2176, -1).unwrap_err();
    assert_eq!(e.code(), -19, "{e}");
    assert!(MbufRing::new("r", 16, -1, true, true).is_err());
    assert!(Port::by_name("net_ring0").is_err());
    assert_eq!(Port::count(), 0);

    // Display format: what: strerror (code).
    let e = DpdkError::new("rte_eth_dev_configure(port 0)", -22);
    assert_eq!(
        e.to_string(),
        "rte_eth_dev_configure(port 0): Invalid argument (-22)"
    );
    let e = DpdkError::new("x", 22);
    assert_eq!(e.code(), -22);

    // Bad arguments: an error, and the process is still alive.
    let mut args = common::eal_args(&[]);
    args.push("--definitely-not-an-eal-option".into());
    let err = Eal::init(&args).unwrap_err();
    assert!(err.to_string().starts_with("rte_eal_init"), "{err}");
    assert!(Eal::init(&[]).is_err());

    // A second init in the same process is refused.
    let err = Eal::init(&common::eal_args(&[])).unwrap_err();
    assert_eq!(err.code(), -114, "{err}");
}
