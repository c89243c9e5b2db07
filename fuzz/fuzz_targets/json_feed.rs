//! The JSON feed reader: any bytes give records or a file error, never a panic; records are numbered
//! in order and point into the records array.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use offboard::feed::json::{JsonFields, read_json};

fuzz_target!(|data: &[u8]| {
    let (zone, now, data) = offboard_fuzz::setup(data);
    let statuses = offboard_fuzz::statuses();
    let rules = offboard_fuzz::rules(&statuses, zone, now);
    let fields = JsonFields {
        employee_id: "/Employee_ID".into(),
        email: Some("/Worker/Email".into()),
        username: Some("/Worker/Login~1Name".into()),
        upn: Some("/upn".into()),
        display_name: Some("/names/0".into()),
        effective_date: "/Termination_Date".into(),
        status: "/Status".into(),
        attributes: BTreeMap::from([("dept".to_string(), "/Org/Department".to_string())]),
    };
    // Workday's array and BambooHR's object of records.
    for pointer in ["/Report_Entry", "/employees"] {
        if let Ok(records) = read_json(data, pointer, &fields, &rules) {
            for (i, record) in records.iter().enumerate() {
                assert_eq!(record.index, i as u64);
                assert_eq!(record.row, i as u64 + 1);
                assert!(record.pointer.starts_with(pointer));
            }
        }
    }
});
