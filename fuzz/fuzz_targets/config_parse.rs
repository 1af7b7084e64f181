//! Arbitrary text into the config parser and validator (`fnat_control::config::AppConfig::parse`).
//!
//! It must return a config or an error naming the file and a reason, never panic; a config it
//! accepts must describe itself and yield EAL arguments without panicking, and parse again to
//! the same rules (parsing is a pure function of the text).
#![no_main]

use std::path::Path;

use fnat_control::config::{describe, eal_args, AppConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/fnatd.toml");
    match AppConfig::parse(path, text) {
        Ok(cfg) => {
            let _ = describe(&cfg);
            let args = eal_args(&cfg.eal, &cfg.ports);
            assert!(!args.is_empty());
            let again = AppConfig::parse(path, text).expect("accepted once, accepted twice");
            assert_eq!(again.rules, cfg.rules, "parsing is deterministic");
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(
                shown.contains("/fuzz/fnatd.toml"),
                "error names the file: {shown}"
            );
            assert!(!e.reason.is_empty(), "error says why: {shown}");
        }
    }
});
