//! The row checks, field by field and in the order the intake rules give.

use chrono::TimeZone;

use super::*;
use crate::domain::FieldNames;

fn statuses() -> StatusValues {
    StatusValues {
        terminated: vec!["Terminated".into(), "Withdrawn".into()],
        active: vec!["Active".into()],
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 31, 12, 0, 0).unwrap()
}

fn check(row: &RawRow<'_>) -> Result<FeedRow, Vec<Fault>> {
    let statuses = statuses();
    let rules = RowRules {
        statuses: &statuses,
        timezone: chrono_tz::Europe::Amsterdam,
        now: now(),
    };
    check_row(row, &rules)
}

fn s(v: &str) -> RawField<'_> {
    RawValue::Str(v).into()
}

fn b(v: &[u8]) -> RawField<'_> {
    RawValue::Bytes(v).into()
}

/// A valid terminated row to break one field at a time.
fn good() -> RawRow<'static> {
    RawRow {
        employee_id: s("E1005"),
        email: s("Ann.Smith@Example.org"),
        username: s("ASmith"),
        upn: s("ASmith@Corp.Example.org"),
        display_name: s("Ann Smith"),
        effective_date: s("2026-04-01"),
        status: s("Terminated"),
    }
}

fn faults(row: &RawRow<'_>) -> Vec<(Option<String>, &'static str)> {
    match check(row) {
        Ok(r) => panic!("expected faults, got {r:?}"),
        Err(f) => f
            .into_iter()
            .map(|f| (f.field, f.reason.as_str()))
            .collect(),
    }
}

fn only(field: &str, reason: &'static str) -> Vec<(Option<String>, &'static str)> {
    vec![(Some(field.to_string()), reason)]
}

fn with(field: Field, value: RawField<'_>) -> RawRow<'_> {
    let mut row = good();
    *row.get_mut(field) = value;
    row
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, sec: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, sec).unwrap()
}

#[test]
fn reason_codes_are_exactly_the_documented_ones() {
    let codes: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        codes,
        [
            "missing",
            "invalid_utf8",
            "wrong_type",
            "duplicate_key",
            "control_char",
            "too_long",
            "invalid_value",
            "invalid_date",
            "date_out_of_range",
            "unknown_status",
            "column_count",
            "not_an_object",
            "unknown_field"
        ]
    );
    assert_eq!(Reason::ColumnCount.to_string(), "column_count");
    assert_eq!(
        serde_json::to_value(Fault::for_row(Reason::NotAnObject)).unwrap(),
        serde_json::json!({"field": null, "reason": "not_an_object"})
    );
}

#[test]
fn file_error_codes_and_messages() {
    let cases = [
        (FileError::NoHeader, "no_header", "no header"),
        (FileError::HeaderInvalid, "header_invalid", "UTF-8"),
        (
            FileError::MissingColumn("Worker ID".into()),
            "missing_column",
            "\"Worker ID\"",
        ),
        (
            FileError::DuplicateColumn("Status".into()),
            "duplicate_column",
            "\"Status\"",
        ),
        (
            FileError::InvalidJson("EOF at line 1".into()),
            "invalid_json",
            "EOF at line 1",
        ),
        (
            FileError::PointerNotFound,
            "pointer_not_found",
            "/Report_Entry",
        ),
        (FileError::NotAnArray, "not_an_array", "not an array"),
    ];
    for (err, code, text) in cases {
        assert_eq!(err.code(), code);
        assert!(err.to_string().contains(text), "{err}");
    }
}

#[test]
fn field_names_are_canonical() {
    let names: Vec<_> = Field::ALL.iter().map(|f| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "employee_id",
            "email",
            "username",
            "upn",
            "display_name",
            "effective_date",
            "status"
        ]
    );
    let mut config = FieldNames {
        employee_id: "Worker ID".into(),
        ..FieldNames::default()
    };
    config.upn = None;
    assert_eq!(
        Field::EmployeeId.configured_name(&config),
        Some("Worker ID")
    );
    assert_eq!(Field::Upn.configured_name(&config), None);
    assert_eq!(Field::Status.configured_name(&config), Some("status"));
}

#[test]
fn good_terminated_row_is_normalised() {
    let row = check(&good()).unwrap();
    assert_eq!(row.person.employee_id, "E1005");
    assert_eq!(row.person.email.as_deref(), Some("ann.smith@example.org"));
    assert_eq!(row.person.username.as_deref(), Some("ASmith"));
    assert_eq!(row.person.upn.as_deref(), Some("ASmith@Corp.Example.org"));
    assert_eq!(row.person.display_name.as_deref(), Some("Ann Smith"));
    assert!(row.person.attributes.is_empty());
    // Amsterdam is on CEST (+02:00) on 1 April.
    assert_eq!(
        row.status,
        HrStatus::Terminated {
            effective_at: utc(2026, 3, 31, 22, 0, 0)
        }
    );
}

#[test]
fn csv_bytes_and_json_strings_give_the_same_row() {
    let row = RawRow {
        employee_id: b(b" 42 "),
        email: b(b"A@B.CO"),
        username: RawField::default(),
        upn: b(b""),
        display_name: b("Zoë".as_bytes()),
        effective_date: b(b"2026-01-01T00:00:00Z"),
        status: b(b"terminated"),
    };
    let from_bytes = check(&row).unwrap();
    let row = RawRow {
        employee_id: s(" 42 "),
        email: s("A@B.CO"),
        username: RawValue::Absent.into(),
        upn: s(""),
        display_name: s("Zoë"),
        effective_date: s("2026-01-01T00:00:00Z"),
        status: s("terminated"),
    };
    assert_eq!(check(&row).unwrap(), from_bytes);
    assert_eq!(from_bytes.person.employee_id, "42");
    assert_eq!(from_bytes.person.email.as_deref(), Some("a@b.co"));
    assert_eq!(from_bytes.person.upn, None);
    assert_eq!(from_bytes.person.username, None);
}

#[test]
fn required_fields_missing_when_absent_null_or_blank() {
    for blank in [RawField::default(), s(""), s(" \t "), b(b"  ")] {
        assert_eq!(
            faults(&with(Field::EmployeeId, blank)),
            only("employee_id", "missing")
        );
        assert_eq!(
            faults(&with(Field::Status, blank)),
            only("status", "missing")
        );
        assert_eq!(
            faults(&with(Field::EffectiveDate, blank)),
            only("effective_date", "missing")
        );
    }
}

#[test]
fn optional_fields_may_be_absent_or_blank() {
    let mut row = good();
    row.email = RawField::default();
    row.username = s("   ");
    row.upn = b(b"");
    row.display_name = s("\u{a0}");
    let row = check(&row).unwrap();
    assert_eq!(row.person.email, None);
    assert_eq!(row.person.username, None);
    assert_eq!(row.person.upn, None);
    assert_eq!(row.person.display_name, None);
}

#[test]
fn invalid_utf8_names_the_field() {
    assert_eq!(
        faults(&with(Field::DisplayName, b(b"Ann \xff Smith"))),
        only("display_name", "invalid_utf8")
    );
    assert_eq!(
        faults(&with(Field::EmployeeId, b(b"\xc3"))),
        only("employee_id", "invalid_utf8")
    );
}

#[test]
fn wrong_type_and_duplicate_key() {
    let wrong = RawField::from(RawValue::WrongType);
    assert_eq!(
        faults(&with(Field::Email, wrong)),
        only("email", "wrong_type")
    );
    assert_eq!(
        faults(&with(Field::Status, wrong)),
        only("status", "wrong_type")
    );
    // A repeated key wins over everything else, even over a value that would be fine or absent.
    for value in [RawValue::Str("E1"), RawValue::WrongType, RawValue::Absent] {
        let dup = RawField {
            value,
            duplicate_key: true,
        };
        assert_eq!(
            faults(&with(Field::EmployeeId, dup)),
            only("employee_id", "duplicate_key")
        );
    }
}

#[test]
fn trim_uses_unicode_white_space_only() {
    let spaced = with(
        Field::EmployeeId,
        s("\u{a0}\u{2003}\u{3000}\u{85}\u{2028}E9\u{202f}\u{205f}\u{1680}\t\r\n\u{b}\u{c}"),
    );
    assert_eq!(check(&spaced).unwrap().person.employee_id, "E9");
    // U+200B and U+FEFF are not whitespace: they stay and the id syntax refuses them.
    for odd in ["\u{200b}E9", "E9\u{feff}"] {
        assert_eq!(
            faults(&with(Field::EmployeeId, s(odd))),
            only("employee_id", "invalid_value")
        );
    }
    let row = check(&with(Field::Username, s("ann\u{200b}"))).unwrap();
    assert_eq!(row.person.username.as_deref(), Some("ann\u{200b}"));
    let row = check(&with(Field::DisplayName, s("\u{feff}Ann\u{a0}"))).unwrap();
    assert_eq!(row.person.display_name.as_deref(), Some("\u{feff}Ann"));
}

#[test]
fn control_chars_are_refused_inside_the_trimmed_value() {
    for (field, value) in [
        (Field::EmployeeId, "E\u{0}1"),
        (Field::Email, "a\u{7f}@b.org"),
        (Field::Username, "ann\u{85}smith"),
        (Field::Username, "ann\tsmith"),
        (Field::Upn, "a\u{9f}@b.org"),
        (Field::DisplayName, "Ann\u{b}Smith"),
        (Field::DisplayName, "Ann\u{1b}[31m"),
        (Field::EffectiveDate, "2026-04-01\u{0}x"),
        (Field::Status, "Termi\nnated"),
    ] {
        assert_eq!(
            faults(&with(field, s(value))),
            only(field.as_str(), "control_char"),
            "{value:?}"
        );
    }
    let row = check(&with(Field::DisplayName, s("\tAnn\tvan\r\nSmith\n"))).unwrap();
    assert_eq!(
        row.person.display_name.as_deref(),
        Some("Ann\tvan\r\nSmith")
    );
}

#[test]
fn byte_limits_count_utf8_bytes() {
    let id64 = "a".repeat(64);
    assert_eq!(
        check(&with(Field::EmployeeId, s(&id64)))
            .unwrap()
            .person
            .employee_id,
        id64
    );
    let id65 = "a".repeat(65);
    assert_eq!(
        faults(&with(Field::EmployeeId, s(&id65))),
        only("employee_id", "too_long")
    );
    // too_long comes before the id syntax.
    assert_eq!(
        faults(&with(Field::EmployeeId, s(&"!".repeat(65)))),
        only("employee_id", "too_long")
    );

    let email254 = format!("{}@{}.org", "a".repeat(64), "b".repeat(185));
    assert_eq!(email254.len(), 254);
    assert!(check(&with(Field::Email, s(&email254))).is_ok());
    let email255 = format!("{}@{}.org", "a".repeat(64), "b".repeat(186));
    assert_eq!(
        faults(&with(Field::Email, s(&email255))),
        only("email", "too_long")
    );

    let user256 = "ü".repeat(128);
    assert!(check(&with(Field::Username, s(&user256))).is_ok());
    let user258 = "ü".repeat(129);
    assert_eq!(
        faults(&with(Field::Username, s(&user258))),
        only("username", "too_long")
    );

    let upn257 = format!("{}@b.org", "a".repeat(251));
    assert_eq!(
        faults(&with(Field::Upn, s(&upn257))),
        only("upn", "too_long")
    );
    let upn256 = format!("{}@b.org", "a".repeat(250));
    assert!(check(&with(Field::Upn, s(&upn256))).is_ok());

    let name1024 = "é".repeat(512);
    assert!(check(&with(Field::DisplayName, s(&name1024))).is_ok());
    // 513 characters, 1025 bytes.
    let name1025 = format!("{name1024}a");
    assert_eq!(
        faults(&with(Field::DisplayName, s(&name1025))),
        only("display_name", "too_long")
    );
    // Trimmed before measuring.
    let padded = format!("   {name1024}   ");
    assert!(check(&with(Field::DisplayName, s(&padded))).is_ok());
}

#[test]
fn checks_run_in_the_documented_order_and_the_first_failure_wins() {
    // duplicate_key -> invalid_utf8 / wrong_type -> trim -> empty is absent -> control_char
    // -> too_long -> the field's own check: each value below fails two checks at once.
    let long_with_control = format!("{}\u{0}", "a".repeat(300));
    let long_bad_utf8 = [vec![0xffu8], vec![b'a'; 300]].concat();
    let long_non_email = "x".repeat(300);
    let long_non_id = "-".repeat(65);
    let cases: Vec<(Field, RawField<'_>, &str)> = vec![
        (
            Field::Email,
            RawField {
                value: RawValue::WrongType,
                duplicate_key: true,
            },
            "duplicate_key",
        ),
        (Field::Username, b(&long_bad_utf8), "invalid_utf8"),
        (Field::Email, b(b"\xff\x00"), "invalid_utf8"),
        (Field::Username, s(&long_with_control), "control_char"),
        // Too long and not an email: the length is checked first.
        (Field::Email, s(&long_non_email), "too_long"),
        // Too long and not an id: likewise.
        (Field::EmployeeId, s(&long_non_id), "too_long"),
    ];
    for (field, value, reason) in cases {
        assert_eq!(
            faults(&with(field, value)),
            only(field.as_str(), reason),
            "{field:?}"
        );
    }
    // Trimming comes before the empty check: whitespace alone is absent, even on a field with a
    // syntax of its own; a control character is not whitespace, so it is not absent.
    assert!(check(&with(Field::Email, s(" \u{a0}\t "))).is_ok());
    assert_eq!(
        faults(&with(Field::Email, s(" \u{0} "))),
        only("email", "control_char")
    );
}

#[test]
fn employee_id_syntax_and_exactness() {
    for bad in [
        "'; DROP TABLE removals; --",
        "-1",
        "_a",
        ".a",
        "a b",
        "ä1",
        "a/b",
        "a@b",
    ] {
        assert_eq!(
            faults(&with(Field::EmployeeId, s(bad))),
            only("employee_id", "invalid_value"),
            "{bad}"
        );
    }
    for ok in ["a.b_c-1", "01005", "1005", "Z", "9-"] {
        assert_eq!(
            check(&with(Field::EmployeeId, s(ok)))
                .unwrap()
                .person
                .employee_id,
            ok
        );
    }
    assert_eq!(
        check(&with(Field::EmployeeId, s("Abc")))
            .unwrap()
            .person
            .employee_id,
        "Abc"
    );
}

#[test]
fn email_and_upn_syntax() {
    for bad in [
        "a@b",
        "a@@b.org",
        "a@b@c.org",
        "@b.org",
        "a b@c.org",
        "a@-b.org",
        "a@b-.org",
        "a@b..org",
        "a@b.org.",
        "a@.b.org",
        "a@b_c.org",
        "ä@b.org",
        "a@bü.org",
        "no-at-sign.org",
    ] {
        assert_eq!(
            faults(&with(Field::Email, s(bad))),
            only("email", "invalid_value"),
            "{bad}"
        );
        assert_eq!(
            faults(&with(Field::Upn, s(bad))),
            only("upn", "invalid_value"),
            "{bad}"
        );
    }
    let row = check(&with(
        Field::Email,
        s(" O'Brien+x!{}@Mail-1.Example.CO.uk "),
    ))
    .unwrap();
    assert_eq!(
        row.person.email.as_deref(),
        Some("o'brien+x!{}@mail-1.example.co.uk")
    );
    let row = check(&with(Field::Upn, s(" O'Brien@Corp.Example.ORG "))).unwrap();
    assert_eq!(row.person.upn.as_deref(), Some("O'Brien@Corp.Example.ORG"));
}

#[test]
fn username_syntax() {
    for bad in [
        "ann smith",
        "ann\u{3000}smith",
        "ann\u{a0}smith",
        "ann\u{2009}s",
    ] {
        assert_eq!(
            faults(&with(Field::Username, s(bad))),
            only("username", "invalid_value"),
            "{bad:?}"
        );
    }
    let row = check(&with(Field::Username, s("Ånn.O'Brien@X"))).unwrap();
    assert_eq!(row.person.username.as_deref(), Some("Ånn.O'Brien@X"));
}

#[test]
fn display_name_is_data_stored_verbatim() {
    for text in [
        "=HYPERLINK(\"http://evil\",\"x\")",
        "+1",
        "-2",
        "@SUM(A1)",
        "Robert'); DROP TABLE people;--",
        "<script>alert(1)</script>",
        "Ｚｏë \u{200b}",
    ] {
        let row = check(&with(Field::DisplayName, s(text))).unwrap();
        assert_eq!(row.person.display_name.as_deref(), Some(text));
    }
}

#[test]
fn status_matching() {
    for terminated in ["Terminated", "TERMINATED", " terminated\u{a0}", "withdrawn"] {
        let row = check(&with(Field::Status, s(terminated))).unwrap();
        assert!(
            matches!(row.status, HrStatus::Terminated { .. }),
            "{terminated}"
        );
    }
    for active in ["ACTIVE", "active", "\tActive "] {
        assert_eq!(
            check(&with(Field::Status, s(active))).unwrap().status,
            HrStatus::Active
        );
    }
    for unknown in [
        "ＴＥＲＭＩＮＡＴＥＤ",
        "actİve",
        "actıve",
        "Terminat",
        "Leave",
        "Terminated.",
    ] {
        assert_eq!(
            faults(&with(Field::Status, s(unknown))),
            only("status", "unknown_status"),
            "{unknown}"
        );
    }
}

#[test]
fn configured_status_values_are_trimmed_too() {
    let statuses = StatusValues {
        terminated: vec![" Left ".into()],
        active: vec!["Employed".into()],
    };
    let rules = RowRules {
        statuses: &statuses,
        timezone: chrono_tz::UTC,
        now: now(),
    };
    let row = check_row(&with(Field::Status, s("LEFT")), &rules).unwrap();
    assert_eq!(
        row.status,
        HrStatus::Terminated {
            effective_at: utc(2026, 4, 1, 0, 0, 0)
        }
    );
    assert_eq!(
        check_row(&good(), &rules).unwrap_err(),
        vec![Fault::for_field(Field::Status, Reason::UnknownStatus)]
    );
}

#[test]
fn effective_date_is_not_read_unless_terminated() {
    let odd_dates = [
        s("9999-12-31"),
        s("garbage"),
        s("1900-01-01"),
        b(b"\xff"),
        RawValue::WrongType.into(),
        RawField {
            value: RawValue::Str("x"),
            duplicate_key: true,
        },
        s("2026\u{0}"),
        RawField::default(),
    ];
    for date in odd_dates {
        let mut row = with(Field::Status, s("Active"));
        row.effective_date = date;
        assert_eq!(check(&row).unwrap().status, HrStatus::Active, "{date:?}");
        // Nor when the status is unknown or missing: only the status is reported.
        row.status = s("Retired");
        assert_eq!(faults(&row), only("status", "unknown_status"));
        row.status = RawField::default();
        assert_eq!(faults(&row), only("status", "missing"));
    }
}

#[test]
fn effective_date_faults_on_terminated_rows() {
    assert_eq!(
        faults(&with(Field::EffectiveDate, s("2026-02-30"))),
        only("effective_date", "invalid_date")
    );
    assert_eq!(
        faults(&with(Field::EffectiveDate, s("9999-12-31"))),
        only("effective_date", "date_out_of_range")
    );
    assert_eq!(
        faults(&with(Field::EffectiveDate, s("1970-01-01"))),
        only("effective_date", "date_out_of_range")
    );
    assert_eq!(
        faults(&with(Field::EffectiveDate, RawValue::WrongType.into())),
        only("effective_date", "wrong_type")
    );
}

#[test]
fn date_window_bounds_are_inclusive() {
    let now = now();
    assert!(date_in_window(utc(1976, 3, 31, 12, 0, 0), now));
    assert!(!date_in_window(utc(1976, 3, 31, 11, 59, 59), now));
    assert!(date_in_window(utc(2036, 3, 31, 12, 0, 0), now));
    assert!(!date_in_window(utc(2036, 3, 31, 12, 0, 1), now));
    assert_eq!(
        faults(&with(Field::EffectiveDate, s("2036-03-31T12:00:01Z"))),
        only("effective_date", "date_out_of_range")
    );
    assert!(check(&with(Field::EffectiveDate, s("2036-03-31T12:00:00Z"))).is_ok());
    assert!(check(&with(Field::EffectiveDate, s("1976-03-31T12:00:00.999Z"))).is_ok());
}

#[test]
fn faults_follow_field_order_with_one_per_field() {
    let mut row = RawRow {
        employee_id: s("'; --"),
        email: s("not-an-email"),
        username: s("a b"),
        upn: b(b"\xfe"),
        display_name: s("a\u{0}b"),
        effective_date: s("31/12/2026"),
        status: s("terminated"),
    };
    assert_eq!(
        faults(&row),
        vec![
            (Some("employee_id".into()), "invalid_value"),
            (Some("email".into()), "invalid_value"),
            (Some("username".into()), "invalid_value"),
            (Some("upn".into()), "invalid_utf8"),
            (Some("display_name".into()), "control_char"),
            (Some("effective_date".into()), "invalid_date"),
        ]
    );
    row.status = s("gone");
    row.employee_id = RawField::default();
    assert_eq!(
        faults(&row),
        vec![
            (Some("employee_id".into()), "missing"),
            (Some("email".into()), "invalid_value"),
            (Some("username".into()), "invalid_value"),
            (Some("upn".into()), "invalid_utf8"),
            (Some("display_name".into()), "control_char"),
            (Some("status".into()), "unknown_status"),
        ]
    );
}
