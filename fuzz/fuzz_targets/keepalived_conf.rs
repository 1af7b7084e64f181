//! Arbitrary text into the keepalived.conf reader (`fnat_keepalived::read_str`).
//!
//! It must never panic or hang; every problem it reports names the file and a line in it.
//! Inputs with `include` are skipped: a pattern such as `/**/*` would make a run a walk of
//! the fuzzing machine's file system (the include path has its own unit tests).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("include") {
        return;
    }
    let config = fnat_keepalived::read_str("/fuzz/keepalived.conf", text, "fuzz");
    let lines = text.split('\n').count() as u32;
    for d in &config.diagnostics {
        assert!(d.at.file.ends_with("keepalived.conf"), "{d}");
        assert!(
            d.at.line >= 1 && d.at.line <= lines,
            "{d}: line out of the file"
        );
        assert!(!d.message.is_empty());
    }
});
