//! The CSV feed reader: any bytes give rows or a file error, never a panic; rows are numbered 1..n
//! and start on non-decreasing lines (a lone CR ends a record but not a line, so two records can
//! start on one line).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use offboard::domain::FieldNames;
use offboard::feed::csv::read_csv_with_attributes;

fuzz_target!(|data: &[u8]| {
    let (zone, now, data) = offboard_fuzz::setup(data);
    let statuses = offboard_fuzz::statuses();
    let rules = offboard_fuzz::rules(&statuses, zone, now);
    let fields = FieldNames::default();
    let attributes = BTreeMap::from([("dept".to_string(), "department".to_string())]);
    if let Ok(records) = read_csv_with_attributes(data, &fields, &attributes, &rules) {
        let last_line = data.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let mut line = 1;
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.row, i as u64 + 1);
            assert!(record.line >= line, "lines never go back");
            assert!(
                record.line <= last_line,
                "a record starts on a line of the file"
            );
            line = record.line;
            if let Ok(row) = &record.result {
                assert!(!row.person.employee_id.is_empty());
            }
        }
    }
});
