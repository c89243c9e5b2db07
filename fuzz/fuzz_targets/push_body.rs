//! The push body decoder: any bytes give records or an error with a stable code, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use offboard::feed::push::decode_push;

fuzz_target!(|data: &[u8]| {
    let (zone, now, data) = offboard_fuzz::setup(data);
    let statuses = offboard_fuzz::statuses();
    let rules = offboard_fuzz::rules(&statuses, zone, now);
    match decode_push(data, &rules) {
        Ok(records) => {
            assert!(!records.is_empty());
            for (i, record) in records.iter().enumerate() {
                assert_eq!(record.index, i as u64);
                assert_eq!(record.row, i as u64 + 1);
            }
        }
        Err(e) => {
            assert!(!e.code().is_empty());
            assert!(!e.to_string().is_empty());
        }
    }
});
