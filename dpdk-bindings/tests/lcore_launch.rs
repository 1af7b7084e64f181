//! Launching closures on worker lcores: the value comes back through `wait`, the closure ran
//! on the right lcore, busy/invalid lcores are refused, panics are contained.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dpdk_bindings::{lcore, time};

#[test]
fn launch_on_worker() {
    let eal = common::init(&[]);
    assert_eq!(lcore::main_lcore(), 0);
    assert_eq!(lcore::current(), 0);
    assert_eq!(lcore::worker_lcores(), vec![1]);
    assert_eq!(lcore::count(), 2);
    assert_eq!(lcore::socket_of(1), 0);
    assert!(time::tsc_hz() > 0);
    let t0 = time::tsc();
    assert!(time::tsc() >= t0);

    // Value and lcore identity come back.
    let moved = String::from("captured");
    lcore::launch(1, move || {
        assert_eq!(moved, "captured");
        1000 + lcore::current() as i32
    })
    .expect("launch");
    assert_eq!(lcore::wait(1), 1001);

    // Not a worker: refused (and the closure is dropped, not run).
    assert!(lcore::launch(0, || 5).is_err());
    assert!(lcore::launch(7, || 5).is_err());

    // Busy: a second launch before wait fails.
    let go = Arc::new(AtomicBool::new(false));
    let g = Arc::clone(&go);
    lcore::launch(1, move || {
        while !g.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        7
    })
    .unwrap();
    let e = lcore::launch(1, || 8).unwrap_err();
    eprintln!("busy launch: {e}");
    go.store(true, Ordering::Release);
    assert_eq!(lcore::wait(1), 7);

    // A panic stays on the worker and is reported as PANICKED.
    lcore::launch(1, || panic!("deliberate test panic")).unwrap();
    assert_eq!(lcore::wait(1), lcore::PANICKED);

    // The lcore is reusable afterwards.
    lcore::launch(1, || -3).unwrap();
    assert_eq!(lcore::wait(1), -3);
    eal.cleanup().unwrap();
}
