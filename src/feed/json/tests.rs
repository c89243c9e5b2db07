//! The JSON feed reader, from the document to its checked records.

use std::collections::BTreeMap;

use super::pointer::array_index;
use super::*;
use crate::domain::{HrStatus, StatusValues};
use chrono::{DateTime, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 31, 12, 0, 0).unwrap()
}

fn utc(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
}

fn workday_statuses() -> StatusValues {
    StatusValues {
        terminated: vec!["Terminated".into()],
        active: vec!["Active".into()],
    }
}

/// The Workday RaaS mapping of the vendor notes.
fn workday() -> JsonFields {
    JsonFields {
        employee_id: "/Employee_ID".into(),
        email: Some("/Primary_Work_Email".into()),
        username: Some("/User_Name".into()),
        upn: None,
        display_name: Some("/Worker".into()),
        effective_date: "/Termination_Date".into(),
        status: "/Worker_Status".into(),
        attributes: BTreeMap::new(),
    }
}

fn read_at(data: &[u8], pointer: &str, fields: &JsonFields) -> Result<Vec<JsonRecord>, FileError> {
    let statuses = workday_statuses();
    let rules = RowRules {
        statuses: &statuses,
        timezone: chrono_tz::Europe::Amsterdam,
        now: now(),
    };
    read_json(data, pointer, fields, &rules)
}

fn read(data: &str) -> Result<Vec<JsonRecord>, FileError> {
    read_at(data.as_bytes(), DEFAULT_RECORDS_POINTER, &workday())
}

fn read_ok(data: &str) -> Vec<JsonRecord> {
    match read(data) {
        Ok(records) => records,
        Err(e) => panic!("expected records, got {e:?}"),
    }
}

fn code(result: Result<Vec<JsonRecord>, FileError>) -> &'static str {
    match result {
        Ok(records) => panic!("expected a file error, got {records:?}"),
        Err(e) => e.code(),
    }
}

fn faults(record: &JsonRecord) -> Vec<(Option<&str>, &'static str)> {
    match &record.result {
        Ok(row) => panic!("expected faults, got {row:?}"),
        Err(f) => f
            .iter()
            .map(|f| (f.field.as_deref(), f.reason.as_str()))
            .collect(),
    }
}

fn row(record: &JsonRecord) -> &FeedRow {
    match &record.result {
        Ok(row) => row,
        Err(f) => panic!("expected a valid row, got {f:?}"),
    }
}

/// One Workday entry: a terminated row with every mapped key plus the given extra members.
fn entry(extra: &str) -> String {
    format!(
        r#"{{"Report_Entry":[{{"Employee_ID":"21001","Worker_Status":"Terminated","Termination_Date":"2024-05-31"{extra}}}]}}"#
    )
}

#[test]
fn workday_report_entries_are_checked_numbered_and_pointed_at() {
    let doc = r#"{
      "Report_Entry": [
        {
          "Employee_ID": "21001",
          "Worker": "Jane Doe",
          "Primary_Work_Email": "Jane.Doe@Example.com",
          "User_Name": "jdoe",
          "Worker_Status": "Terminated",
          "Hire_Date": "2019-04-01",
          "Termination_Date": "2024-05-31",
          "Business_Process_Steps_group": [ { "Order": "a", "Step_Type": "Initiation" } ]
        },
        {
          "Employee_ID": "21002",
          "Worker_Status": "TERMINATED",
          "Termination_Date": "2024-05-31-07:00"
        },
        { "Employee_ID": "21003", "Worker_Status": "Active", "Termination_Date": "9999-12-31" },
        { "Employee_ID": "21004", "Worker_Status": "Terminated" }
      ]
    }"#;
    let records = read_ok(doc);
    let numbering: Vec<_> = records
        .iter()
        .map(|r| (r.row, r.index, r.pointer.as_str()))
        .collect();
    assert_eq!(
        numbering,
        [
            (1, 0, "/Report_Entry/0"),
            (2, 1, "/Report_Entry/1"),
            (3, 2, "/Report_Entry/2"),
            (4, 3, "/Report_Entry/3"),
        ]
    );

    let jane = row(&records[0]);
    assert_eq!(jane.person.employee_id, "21001");
    assert_eq!(jane.person.email.as_deref(), Some("jane.doe@example.com"));
    assert_eq!(jane.person.username.as_deref(), Some("jdoe"));
    assert_eq!(jane.person.upn, None);
    assert_eq!(jane.person.display_name.as_deref(), Some("Jane Doe"));
    // A bare date starts at midnight in the configured zone (Amsterdam is UTC+2 in summer).
    assert_eq!(
        jane.status,
        HrStatus::Terminated {
            effective_at: utc(2024, 5, 30, 22)
        }
    );
    // Workday's date with offset: the start of that day at that offset.
    assert_eq!(
        row(&records[1]).status,
        HrStatus::Terminated {
            effective_at: utc(2024, 5, 31, 7)
        }
    );
    // An Active row's sentinel date is never read.
    assert_eq!(row(&records[2]).status, HrStatus::Active);
    assert_eq!(faults(&records[3]), [(Some("effective_date"), "missing")]);
}

#[test]
fn bamboohr_object_of_records_is_read_in_document_order() {
    let fields = JsonFields {
        employee_id: "/id".into(),
        email: Some("/workEmail".into()),
        username: None,
        upn: None,
        display_name: None,
        effective_date: "/terminationDate".into(),
        status: "/status".into(),
        attributes: BTreeMap::from([("action".to_string(), "/action".to_string())]),
    };
    let doc = r#"{
      "latest": "2011-06-02T19:26:23+00:00",
      "employees": {
        "5": { "id": "5", "action": "Updated", "status": "Terminated", "terminationDate": "2026-05-15" },
        "3": { "id": "3", "action": "Inserted", "status": "Active", "lastChanged": "2011-06-02T19:26:23+00:00" },
        "a/b~c": { "id": "x y", "status": "Active" },
        "4": "not a record"
      }
    }"#;
    let records = read_at(doc.as_bytes(), "/employees", &fields).unwrap();
    let numbering: Vec<_> = records
        .iter()
        .map(|r| (r.row, r.index, r.pointer.as_str()))
        .collect();
    assert_eq!(
        numbering,
        [
            (1, 0, "/employees/5"),
            (2, 1, "/employees/3"),
            (3, 2, "/employees/a~1b~0c"),
            (4, 3, "/employees/4"),
        ]
    );
    let five = row(&records[0]);
    assert_eq!(five.person.employee_id, "5");
    assert_eq!(
        five.status,
        HrStatus::Terminated {
            effective_at: utc(2026, 5, 14, 22)
        }
    );
    assert_eq!(five.person.attributes["action"], "Updated");
    assert_eq!(row(&records[1]).status, HrStatus::Active);
    assert_eq!(
        faults(&records[2]),
        [(Some("employee_id"), "invalid_value")]
    );
    assert_eq!(faults(&records[3]), [(None, "not_an_object")]);

    // An empty object of records is an empty feed.
    let empty = read_at(br#"{"employees": {}}"#, "/employees", &fields).unwrap();
    assert!(empty.is_empty());
}

#[test]
fn nested_pointers_reach_into_objects_and_arrays() {
    let fields = JsonFields {
        employee_id: "/Worker/IDs/1".into(),
        email: Some("/Worker/Contact/Email".into()),
        username: Some("/Worker/Contact/Login".into()),
        upn: Some("/a~1b/c~0d".into()),
        display_name: Some("/Worker/Name".into()),
        effective_date: "/Event/Date".into(),
        status: "/Event/Status".into(),
        attributes: BTreeMap::from([
            (
                "cost_center".to_string(),
                "/Worker/Org/0/Cost_Center".to_string(),
            ),
            (
                "missing".to_string(),
                "/Worker/Org/5/Cost_Center".to_string(),
            ),
        ]),
    };
    let doc = r#"{"Report_Entry":[{
        "Worker": {
          "IDs": ["old", "E-7"],
          "Contact": {"Email": "ann@example.org", "Login": null},
          "Name": "Ann",
          "Org": [{"Cost_Center": "CC-1"}]
        },
        "a/b": {"c~d": "ann@corp.example.org"},
        "Event": {"Status": "Terminated", "Date": "2026-04-01T09:30:00Z"}
    }]}"#;
    let records = read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, &fields).unwrap();
    let ann = row(&records[0]);
    assert_eq!(ann.person.employee_id, "E-7");
    assert_eq!(ann.person.email.as_deref(), Some("ann@example.org"));
    assert_eq!(ann.person.username, None);
    assert_eq!(ann.person.upn.as_deref(), Some("ann@corp.example.org"));
    assert_eq!(ann.person.display_name.as_deref(), Some("Ann"));
    assert_eq!(
        ann.person.attributes,
        BTreeMap::from([("cost_center".to_string(), "CC-1".to_string())])
    );
    assert_eq!(
        ann.status,
        HrStatus::Terminated {
            effective_at: Utc.with_ymd_and_hms(2026, 4, 1, 9, 30, 0).unwrap()
        }
    );

    // A missing or null intermediate means absent; a string, number or array where the pointer
    // needs an object (or an object/string where it needs an array) means wrong_type.
    let doc = r#"{"Report_Entry":[
        {"Worker": null, "Event": {"Status": "Active"}},
        {"Event": {"Status": "Active"}},
        {"Worker": "Jane Doe", "Event": {"Status": "Active"}},
        {"Worker": {"IDs": "E-7", "Contact": 5, "Name": ["Ann"]}, "Event": [], "a/b": true}
    ]}"#;
    let records = read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, &fields).unwrap();
    assert_eq!(faults(&records[0]), [(Some("employee_id"), "missing")]);
    assert_eq!(faults(&records[1]), [(Some("employee_id"), "missing")]);
    assert_eq!(
        faults(&records[2]),
        [
            (Some("employee_id"), "wrong_type"),
            (Some("email"), "wrong_type"),
            (Some("username"), "wrong_type"),
            (Some("display_name"), "wrong_type"),
            (Some("attributes"), "wrong_type"),
        ]
    );
    assert_eq!(
        faults(&records[3]),
        [
            (Some("employee_id"), "wrong_type"),
            (Some("email"), "wrong_type"),
            (Some("username"), "wrong_type"),
            (Some("upn"), "wrong_type"),
            (Some("display_name"), "wrong_type"),
            (Some("status"), "wrong_type"),
        ]
    );
}

#[test]
fn records_pointer_may_be_nested_or_the_whole_document() {
    let doc = r#"{"data": {"report": [1, {"Report_Entry": [
        {"Employee_ID": "1", "Worker_Status": "Active"}
    ]}]}}"#;
    let records = read_at(doc.as_bytes(), "/data/report/1/Report_Entry", &workday()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].pointer, "/data/report/1/Report_Entry/0");
    assert_eq!(row(&records[0]).person.employee_id, "1");

    // "" is the document itself: a bare array of records.
    let bare = br#"[{"Employee_ID": "1", "Worker_Status": "Active"}, 7]"#;
    let records = read_at(bare, "", &workday()).unwrap();
    assert_eq!(records[0].pointer, "/0");
    assert_eq!(records[1].pointer, "/1");
    assert_eq!(faults(&records[1]), [(None, "not_an_object")]);
}

#[test]
fn documents_serde_json_refuses_are_invalid_json() {
    let deep_in_unmapped_value = format!(
        r#"{{"Report_Entry":[{{"Employee_ID":"1","Worker_Status":"Active","x":{}{}}}]}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let cases: &[(&str, &[u8])] = &[
        ("not JSON", b"Employee_ID,Worker_Status\n1,Active\n"),
        ("empty", b""),
        ("only whitespace", b" \r\n\t"),
        ("only a BOM", b"\xEF\xBB\xBF"),
        ("truncated", br#"{"Report_Entry":[{"Employee_ID":"1""#),
        ("trailing data", br#"{"Report_Entry":[]} x"#),
        ("a second document", br#"{"Report_Entry":[]}{"Report_Entry":[]}"#),
        ("trailing comma", br#"{"Report_Entry":[],}"#),
        ("single quotes", br#"{'Report_Entry':[]}"#),
        (
            "invalid UTF-8 in a mapped string",
            b"{\"Report_Entry\":[{\"Employee_ID\":\"\xff\",\"Worker_Status\":\"Active\"}]}",
        ),
        (
            "invalid UTF-8 in an unmapped string",
            b"{\"Report_Entry\":[{\"Employee_ID\":\"1\",\"Worker_Status\":\"Active\",\"x\":\"\xc3\x28\"}]}",
        ),
        ("invalid UTF-8 in a key", b"{\"Report_Entry\":[{\"\xfe\":\"1\"}]}"),
        ("UTF-16 export", b"\xFF\xFE{\x00}\x00"),
        ("a second BOM", b"\xEF\xBB\xBF\xEF\xBB\xBF{\"Report_Entry\":[]}"),
        (
            "lone surrogate in a mapped string",
            br#"{"Report_Entry":[{"Employee_ID":"\ud800","Worker_Status":"Active"}]}"#,
        ),
        (
            "lone surrogate in an unmapped string",
            br#"{"Report_Entry":[{"Employee_ID":"1","Worker_Status":"Active","x":"a\ud800b"}]}"#,
        ),
        (
            "lone trailing surrogate outside the records",
            br#"{"note":"\udc00","Report_Entry":[]}"#,
        ),
        ("lone surrogate in a key", br#"{"\ud800":1,"Report_Entry":[]}"#),
        ("nesting 200 deep", deep_in_unmapped_value.as_bytes()),
        ("raw control character in a string", b"{\"Report_Entry\":[\"a\x01\"]}"),
        ("number out of range", br#"{"x":1e400,"Report_Entry":[]}"#),
    ];
    for (what, data) in cases {
        let result = read_at(data, DEFAULT_RECORDS_POINTER, &workday());
        assert!(
            matches!(result, Err(FileError::InvalidJson(_))),
            "{what}: {result:?}"
        );
        // The same verdict as a serde_json value tree, the reference.
        let tree = document_text(data)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
        assert!(tree.is_none(), "{what}: serde_json accepts it");
    }
}

#[test]
fn invalid_json_wins_over_pointer_errors_and_names_the_problem() {
    match read(r#"{"Other": []} trailing"#) {
        Err(FileError::InvalidJson(msg)) => assert!(msg.contains("trailing"), "{msg}"),
        other => panic!("{other:?}"),
    }
    match read_at(b"{\"a\":\"\xff\"}", DEFAULT_RECORDS_POINTER, &workday()) {
        Err(FileError::InvalidJson(msg)) => assert!(msg.contains("byte 6"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        code(read_at(b"[1", "not a pointer", &workday())),
        "invalid_json"
    );
    assert_eq!(
        code(read_at(b"[]", "not a pointer", &workday())),
        "pointer_not_found"
    );
}

#[test]
fn nesting_up_to_127_levels_is_accepted_and_128_refused() {
    // Two levels are the object and the Report_Entry array; the record is the third.
    let doc = |depth: usize| {
        let inner = depth - 3;
        format!(
            r#"{{"Report_Entry":[{{"Employee_ID":"1","Worker_Status":"Active","x":{}{}}}]}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        )
    };
    let records = read_ok(&doc(127));
    assert_eq!(row(&records[0]).person.employee_id, "1");
    assert_eq!(code(read(&doc(128))), "invalid_json");
    assert!(serde_json::from_str::<serde_json::Value>(&doc(127)).is_ok());
    assert!(serde_json::from_str::<serde_json::Value>(&doc(128)).is_err());
}

#[test]
fn pointer_not_found_when_the_records_are_missing_or_null() {
    for doc in [
        "{}",
        r#"{"Other": []}"#,
        r#"{"report_entry": []}"#,
        r#"[{"Employee_ID": "1", "Worker_Status": "Active"}]"#,
        "[]",
        r#"{"Report_Entry": null}"#,
        "null",
        r#""Report_Entry""#,
        "5",
    ] {
        assert_eq!(code(read(doc)), "pointer_not_found", "{doc}");
    }
    assert_eq!(
        code(read_at(br#"{"a": {"b": []}}"#, "/a/c", &workday())),
        "pointer_not_found"
    );
    assert_eq!(
        code(read_at(br#"{"a": [[]]}"#, "/a/1", &workday())),
        "pointer_not_found"
    );
    assert_eq!(
        code(read_at(br#"{"a": [[]]}"#, "/a/01", &workday())),
        "pointer_not_found"
    );
    // A Workday report read with the BambooHR pointer.
    assert_eq!(
        code(read_at(
            br#"{"Report_Entry": []}"#,
            "/employees",
            &workday()
        )),
        "pointer_not_found"
    );
}

#[test]
fn not_an_array_when_the_records_are_a_scalar() {
    for doc in [
        r#"{"Report_Entry": "x"}"#,
        r#"{"Report_Entry": 5}"#,
        r#"{"Report_Entry": -1.5}"#,
        r#"{"Report_Entry": true}"#,
    ] {
        assert_eq!(code(read(doc)), "not_an_array", "{doc}");
    }
    assert_eq!(code(read_at(b"\"x\"", "", &workday())), "not_an_array");
}

#[test]
fn an_empty_array_is_a_valid_empty_feed() {
    assert!(read_ok(r#"{"Report_Entry": []}"#).is_empty());
    assert!(read_ok(" \n{ \"Report_Entry\" : [ ] }\n").is_empty());
}

#[test]
fn a_repeated_key_on_the_path_to_the_records_refuses_the_document() {
    let doc = r#"{"Report_Entry": [], "Report_Entry": [{"Employee_ID": "1", "Worker_Status": "Active"}]}"#;
    match read(doc) {
        Err(FileError::InvalidJson(msg)) => assert!(msg.contains("Report_Entry"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // A repeated key elsewhere in the document does not matter.
    let doc = r#"{"x": 1, "x": 2, "Report_Entry": []}"#;
    assert!(read_ok(doc).is_empty());
}

#[test]
fn a_bom_before_the_document_is_skipped() {
    let mut data = b"\xEF\xBB\xBF".to_vec();
    data.extend_from_slice(entry("").as_bytes());
    let records = read_at(&data, DEFAULT_RECORDS_POINTER, &workday()).unwrap();
    assert_eq!(row(&records[0]).person.employee_id, "21001");
}

#[test]
fn a_repeated_mapped_key_rejects_the_record_naming_the_field() {
    let doc = r#"{"Report_Entry":[
        {"Employee_ID":"1","Employee_ID":"2","Worker_Status":"Active"},
        {"Employee_ID":"3","Worker_Status":"Active","Primary_Work_Email":5,"Primary_Work_Email":"a@b.org"},
        {"Employee_ID":"4","Worker_Status":"Active"}
    ]}"#;
    let records = read_ok(doc);
    assert_eq!(
        faults(&records[0]),
        [(Some("employee_id"), "duplicate_key")]
    );
    // duplicate_key comes before the type check.
    assert_eq!(faults(&records[1]), [(Some("email"), "duplicate_key")]);
    // The other records are unaffected.
    assert_eq!(row(&records[2]).person.employee_id, "4");

    // Identical values still count as a repeated key.
    let records = read_ok(&entry(r#","Worker":"A","Worker":"A""#));
    assert_eq!(
        faults(&records[0]),
        [(Some("display_name"), "duplicate_key")]
    );
}

#[test]
fn a_repeated_key_on_a_nested_pointer_is_a_duplicate_of_that_field() {
    let mut fields = workday();
    fields.email = Some("/Contact/Email".into());
    fields.username = Some("/Contact/Login".into());
    let doc = r#"{"Report_Entry":[
        {"Employee_ID":"1","Worker_Status":"Active","Contact":{"Email":"a@b.org","Email":"c@d.org"}},
        {"Employee_ID":"2","Worker_Status":"Active","Contact":{"Email":"a@b.org"},"Contact":{}},
        {"Employee_ID":"3","Worker_Status":"Active","Contact":{"Email":"a@b.org","Other":1,"Other":2}}
    ]}"#;
    let records = read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, &fields).unwrap();
    assert_eq!(faults(&records[0]), [(Some("email"), "duplicate_key")]);
    assert_eq!(
        faults(&records[1]),
        [
            (Some("email"), "duplicate_key"),
            (Some("username"), "duplicate_key"),
        ]
    );
    assert_eq!(row(&records[2]).person.email.as_deref(), Some("a@b.org"));
}

#[test]
fn a_repeated_unmapped_key_is_ignored() {
    let records = read_ok(&entry(
        r#","Hire_Date":"2019-04-01","Hire_Date":{"x":[1,2]}"#,
    ));
    assert_eq!(row(&records[0]).person.employee_id, "21001");
}

#[test]
fn non_string_values_are_wrong_type_never_converted() {
    let doc = r#"{"Report_Entry":[
        {"Employee_ID":21001,"Worker_Status":"Active"},
        {"Employee_ID":"1","Worker_Status":true},
        {"Employee_ID":"1","Worker_Status":"Active","Worker":{"name":"Ann"}},
        {"Employee_ID":"1","Worker_Status":"Active","User_Name":["ann"]},
        {"Employee_ID":"1","Worker_Status":"Active","Primary_Work_Email":1.5e3},
        {"Employee_ID":"1","Worker_Status":"Terminated","Termination_Date":20240531}
    ]}"#;
    let records = read_ok(doc);
    let got: Vec<_> = records.iter().map(faults).collect();
    assert_eq!(
        got,
        [
            vec![(Some("employee_id"), "wrong_type")],
            vec![(Some("status"), "wrong_type")],
            vec![(Some("display_name"), "wrong_type")],
            vec![(Some("username"), "wrong_type")],
            vec![(Some("email"), "wrong_type")],
            vec![(Some("effective_date"), "wrong_type")],
        ]
    );
}

#[test]
fn unmapped_keys_may_hold_anything() {
    let records = read_ok(&entry(
        r#","Hire_Date":20190401,"x":[{"y":null},true,-0.5e-3,{}],"Worker_Status ":1"#,
    ));
    assert!(records[0].result.is_ok(), "{:?}", records[0].result);
}

#[test]
fn null_and_blank_mean_absent() {
    let doc = r#"{"Report_Entry":[
        {"Employee_ID":"1","Worker_Status":"Active","Primary_Work_Email":null,"Worker":"  "},
        {"Employee_ID":null,"Worker_Status":null},
        {"Employee_ID":"2","Worker_Status":"Terminated","Termination_Date":null}
    ]}"#;
    let records = read_ok(doc);
    let first = row(&records[0]);
    assert_eq!(first.person.email, None);
    assert_eq!(first.person.display_name, None);
    assert_eq!(
        faults(&records[1]),
        [
            (Some("employee_id"), "missing"),
            (Some("status"), "missing")
        ]
    );
    assert_eq!(faults(&records[2]), [(Some("effective_date"), "missing")]);
}

#[test]
fn escaped_strings_are_decoded() {
    let records = read_ok(&entry(r#","Worker":"Ren\u00e9e \ud83d\ude00 \"R\"""#));
    assert_eq!(
        row(&records[0]).person.display_name.as_deref(),
        Some("Renée 😀 \"R\"")
    );
    // A key spelled with an escape is the same key.
    let records =
        read_ok(r#"{"Report_Entry":[{"Employee\u005fID":"7","Worker_Status":"Active"}]}"#);
    assert_eq!(row(&records[0]).person.employee_id, "7");
}

#[test]
fn elements_that_are_not_objects_are_rejected_and_still_numbered() {
    let doc = r#"{"Report_Entry":[1,"x",null,true,[{"Employee_ID":"1"}],
        {"Employee_ID":"6","Worker_Status":"Active"}]}"#;
    let records = read_ok(doc);
    assert_eq!(records.len(), 6);
    for record in &records[..5] {
        assert_eq!(faults(record), [(None, "not_an_object")], "{record:?}");
    }
    assert_eq!(records[5].row, 6);
    assert_eq!(records[5].index, 5);
    assert_eq!(records[5].pointer, "/Report_Entry/5");
    assert_eq!(row(&records[5]).person.employee_id, "6");
}

#[test]
fn attributes_are_strings_and_a_non_string_rejects_the_record() {
    let mut fields = workday();
    fields.attributes = BTreeMap::from([
        ("cost_center".to_string(), "/Cost_Center".to_string()),
        ("hire_date".to_string(), "/Hire_Date".to_string()),
        ("manager".to_string(), "/Manager/ID".to_string()),
    ]);
    let doc = r#"{"Report_Entry":[
        {"Employee_ID":"1","Worker_Status":"Active","Cost_Center":" CC 1 ","Hire_Date":null,"Manager":{"ID":"M1"}},
        {"Employee_ID":"2","Worker_Status":"Active","Cost_Center":42},
        {"Employee_ID":"3","Worker_Status":"Active","Manager":{"ID":"M1","ID":"M2"},"Cost_Center":[]},
        {"Employee_ID":"bad id","Worker_Status":"Active","Hire_Date":{"d":"2019-04-01"}}
    ]}"#;
    let records = read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, &fields).unwrap();
    assert_eq!(
        row(&records[0]).person.attributes,
        BTreeMap::from([
            ("cost_center".to_string(), " CC 1 ".to_string()),
            ("manager".to_string(), "M1".to_string()),
        ])
    );
    assert_eq!(faults(&records[1]), [(Some("attributes"), "wrong_type")]);
    assert_eq!(faults(&records[2]), [(Some("attributes"), "duplicate_key")]);
    assert_eq!(
        faults(&records[3]),
        [
            (Some("employee_id"), "invalid_value"),
            (Some("attributes"), "wrong_type"),
        ]
    );
}

#[test]
fn several_faults_are_listed_in_field_order() {
    let mut fields = workday();
    fields.upn = Some("/UPN".into());
    fields.attributes = BTreeMap::from([("x".to_string(), "/X".to_string())]);
    // Keys in the reverse of the fault order, to show the order is the rules', not the document's.
    let doc = r#"{"Report_Entry":[{
        "X": false,
        "Worker_Status": "Terminated",
        "Termination_Date": "31/05/2024",
        "Worker": "Ann\u0000",
        "UPN": "not an address",
        "User_Name": "a b",
        "Primary_Work_Email": "a@@b.org",
        "Employee_ID": "'; DROP TABLE removals; --"
    }]}"#;
    let records = read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, &fields).unwrap();
    assert_eq!(
        faults(&records[0]),
        [
            (Some("employee_id"), "invalid_value"),
            (Some("email"), "invalid_value"),
            (Some("username"), "invalid_value"),
            (Some("upn"), "invalid_value"),
            (Some("display_name"), "control_char"),
            (Some("effective_date"), "invalid_date"),
            (Some("attributes"), "wrong_type"),
        ]
    );
}

#[test]
fn pointers_parse_per_rfc_6901() {
    assert_eq!(parse_pointer("").unwrap(), Vec::<String>::new());
    assert_eq!(parse_pointer("/").unwrap(), [""]);
    assert_eq!(parse_pointer("/a~1b/c~0d/0").unwrap(), ["a/b", "c~d", "0"]);
    assert_eq!(parse_pointer("/~01").unwrap(), ["~1"]);
    assert!(parse_pointer("Employee_ID").is_err());
    assert!(parse_pointer("/a~2").is_err());
    assert!(parse_pointer("/a~").is_err());
    assert_eq!(escape_token("a/b~c"), "a~1b~0c");
    assert_eq!(escape_token("plain"), "plain");
    assert_eq!(array_index("0"), Some(0));
    assert_eq!(array_index("12"), Some(12));
    assert_eq!(array_index("01"), None);
    assert_eq!(array_index("-"), None);
    assert_eq!(array_index("+1"), None);
    assert_eq!(array_index(""), None);

    let mut fields = workday();
    assert!(fields.validate().is_ok());
    fields.attributes.insert("cc".into(), "Cost_Center".into());
    let err = fields.validate().unwrap_err();
    assert!(err.starts_with("attributes.cc:"), "{err}");
    fields.attributes.clear();
    fields.status = "Worker_Status".into();
    let err = fields.validate().unwrap_err();
    assert!(err.starts_with("status:"), "{err}");
}

#[test]
fn an_invalid_field_pointer_never_resolves() {
    let mut fields = workday();
    fields.email = Some("Primary_Work_Email".into());
    let records = read_ok_with(&entry(r#","Primary_Work_Email":"a@b.org""#), &fields);
    assert_eq!(row(&records[0]).person.email, None);
}

fn read_ok_with(doc: &str, fields: &JsonFields) -> Vec<JsonRecord> {
    read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, fields).unwrap()
}

#[test]
fn the_same_pointer_may_feed_several_fields() {
    let mut fields = workday();
    fields.upn = Some("/Primary_Work_Email".into());
    fields.attributes = BTreeMap::from([("mail".to_string(), "/Primary_Work_Email".to_string())]);
    let records = read_ok_with(
        &entry(r#","Primary_Work_Email":"Ann@Example.org""#),
        &fields,
    );
    let ann = row(&records[0]);
    assert_eq!(ann.person.email.as_deref(), Some("ann@example.org"));
    assert_eq!(ann.person.upn.as_deref(), Some("Ann@Example.org"));
    assert_eq!(ann.person.attributes["mail"], "Ann@Example.org");
}
