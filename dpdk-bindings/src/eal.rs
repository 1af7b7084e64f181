//! Environment Abstraction Layer start-up and shutdown.

use std::ffi::{c_char, c_int, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{DpdkError, Result, EALREADY, EINVAL, ENODEV};
use crate::ffi;

static EAL_UP: AtomicBool = AtomicBool::new(false);
static EAL_TRIED: AtomicBool = AtomicBool::new(false);

/// Fails with `ENODEV` unless EAL has been initialised (and not cleaned up) in this process.
/// Every constructor of a DPDK object calls this, so nothing touches DPDK before `Eal::init`.
pub(crate) fn ensure_up(what: &str) -> Result<()> {
    if EAL_UP.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err(DpdkError::new(
            format!("{what}: EAL not initialised"),
            -ENODEV,
        ))
    }
}

/// Proof that EAL is up. There is at most one per process (DPDK cannot initialise twice, not
/// even after `rte_eal_cleanup`). Not `Send`: keep it on the main lcore's thread.
#[derive(Debug)]
pub struct Eal {
    _not_send: PhantomData<*const ()>,
}

impl Eal {
    /// Initialises EAL with `args` (`args[0]` is the program name, like `argv`).
    ///
    /// Bad arguments give an error, not an exit (except `-h`/`--help`, where DPDK prints usage
    /// and exits the process itself). A second call in the same process fails with `EALREADY`.
    /// EAL pins the calling thread to the main lcore; threads spawned afterwards inherit that.
    pub fn init(args: &[String]) -> Result<Eal> {
        if args.is_empty() {
            return Err(DpdkError::new(
                "rte_eal_init: args must start with the program name",
                -EINVAL,
            ));
        }
        if EAL_TRIED.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::new(
                "rte_eal_init: already called in this process",
                -EALREADY,
            ));
        }
        let mut owned = Vec::with_capacity(args.len());
        for a in args {
            owned.push(CString::new(a.as_str()).map_err(|_| {
                DpdkError::new(
                    format!("rte_eal_init: argument {a:?} contains NUL"),
                    -EINVAL,
                )
            })?);
        }
        // EAL permutes argv and may keep pointers into it, so the strings live for the rest of
        // the process (a few bytes, once).
        let mut argv: Vec<*mut c_char> = owned.into_iter().map(CString::into_raw).collect();
        let argc = argv.len() as c_int;
        argv.push(std::ptr::null_mut());
        let argv = Box::leak(argv.into_boxed_slice());
        // SAFETY: argv is a NULL-terminated array of argc valid NUL-terminated strings, leaked
        // so it outlives EAL; EAL_TRIED ensures this runs at most once per process.
        let ret = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::from_errno("rte_eal_init"));
        }
        EAL_UP.store(true, Ordering::Release);
        Ok(Eal {
            _not_send: PhantomData,
        })
    }

    /// Shuts EAL down (`rte_eal_cleanup`). Drop every port, mempool, ring and mbuf first, and
    /// make sure no worker lcore is still running a launched function.
    pub fn cleanup(self) -> Result<()> {
        EAL_UP.store(false, Ordering::Release);
        // SAFETY: EAL was initialised (we hold the proof) and is cleaned up once (self is
        // consumed; Eal is not Clone).
        let ret = unsafe { ffi::rte_eal_cleanup() };
        DpdkError::check(|| "rte_eal_cleanup".into(), ret).map(|_| ())
    }
}

/// Whether EAL is currently initialised in this process.
pub fn is_initialized() -> bool {
    EAL_UP.load(Ordering::Acquire)
}
