//! Arbitrary bytes into the control plane's parsers (crate fnat-proto): one request line of
//! the socket protocol, an ipvsadm command line, and an ipvsadm rules file.
//!
//! Each must answer with a value or an error, never panic. A request it accepts must encode
//! to a line that parses back to the same request (what the daemon logs and fnatctl sends is
//! what was meant).
#![no_main]

use fnat_proto::ipvsadm::{args, rules_file};
use fnat_proto::msg::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(request) => {
            let line = request.encode();
            let again =
                parse_request(line.trim_end().as_bytes()).expect("an encoded request parses");
            assert_eq!(again, request, "encode/parse round trip");
        }
        Err(e) => assert!(!e.message.is_empty(), "errors say what is wrong"),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let argv: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        let _ = args::parse(&argv);
        let _ = rules_file::parse_rules(text);
    }
});
