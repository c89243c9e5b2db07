//! The SOAP response parser: any bytes give an envelope or a read error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use offboard::connectors::panopto::soap::{parse, read_envelope};

fuzz_target!(|data: &[u8]| {
    let _ = read_envelope(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(root) = parse(text) {
            // The accessors walk what the parser built.
            let _ = root.is_nil();
            let _ = root.child_local("Body");
        }
    }
});
