//! Reads a CSV feed file into numbered records, each a checked `FeedRow` or the faults that reject it.
//!
//! The `csv` crate does the RFC 4180 tokenising on raw bytes; this module owns the header (UTF-8,
//! column matching), record and line numbering, and the column-count rule, and leaves every field check
//! to [`crate::feed::rows`].

use ::csv::{ByteRecord, ReaderBuilder, Terminator, Trim};

use crate::domain::{FeedRow, FieldNames};
use std::collections::BTreeMap;

use crate::feed::rows::{Fault, Field, FileError, RawRow, RawValue, Reason, RowRules, check_row};

/// One data record of a CSV feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecord {
    /// 1-based number of the data record (header excluded); rejects are keyed on it.
    pub row: u64,
    /// 1-based physical line on which the record starts (the header's line is 1 in a normal file).
    pub line: u64,
    /// The checked row, or every fault that rejects it.
    pub result: Result<FeedRow, Vec<Fault>>,
}

/// Reads a whole CSV feed. A refused file yields a [`FileError`] and no rows; otherwise every data
/// record is returned in file order, good or rejected, so the caller can store rejects and use the rest.
pub fn read_csv(
    data: &[u8],
    fields: &FieldNames,
    rules: &RowRules<'_>,
) -> Result<Vec<CsvRecord>, FileError> {
    read_csv_with_attributes(data, fields, &BTreeMap::new(), rules)
}

/// [`read_csv`], also reading extra columns into the person's attributes (attribute name → column
/// name). An attribute value is trimmed; an empty one is left out; one that is not UTF-8 or holds a
/// control character rejects the row with the field `attributes`.
pub fn read_csv_with_attributes(
    data: &[u8],
    fields: &FieldNames,
    attributes: &BTreeMap<String, String>,
    rules: &RowRules<'_>,
) -> Result<Vec<CsvRecord>, FileError> {
    read_records(
        data,
        |header| {
            Ok((
                map_columns(header, fields)?,
                map_attribute_columns(header, attributes)?,
                header.len(),
            ))
        },
        |(columns, attribute_columns, width), row, line, record| {
            let result = if record.len() == *width {
                check_row(&raw_row(record, columns), rules)
                    .and_then(|row| with_attributes(row, record, attribute_columns))
            } else {
                Err(vec![Fault::for_row(Reason::ColumnCount)])
            };
            CsvRecord { row, line, result }
        },
    )
}

/// One data record's value of the column [`read_column`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnValue {
    /// 1-based number of the data record (header excluded).
    pub row: u64,
    /// 1-based physical line on which the record starts.
    pub line: u64,
    /// The trimmed value, or why it is refused.
    pub value: Result<String, Reason>,
}

/// Reads one column of a CSV file, as `offboard import` reads a vendor's user export: for every data
/// record, its number, the line it starts on, and the trimmed value of `column` (matched like a feed's
/// columns), or why the value is refused: not UTF-8, blank, a control character, more than 1,024 bytes, or a
/// record too short to have the column. The file is tokenised as a feed is.
pub fn read_column(data: &[u8], column: &str) -> Result<Vec<ColumnValue>, FileError> {
    read_records(
        data,
        |header| find_column(header, column),
        |index, row, line, record| ColumnValue {
            row,
            line,
            value: cell(record, *index),
        },
    )
}

/// The trimmed value of one cell of an export, or why it is refused.
fn cell(record: &ByteRecord, index: usize) -> Result<String, Reason> {
    match record.get(index).map(std::str::from_utf8) {
        None => Err(Reason::ColumnCount),
        Some(Err(_)) => Err(Reason::InvalidUtf8),
        Some(Ok(value)) => match value.trim() {
            "" => Err(Reason::Missing),
            v if v.chars().any(char::is_control) => Err(Reason::ControlChar),
            v if v.len() > 1024 => Err(Reason::TooLong),
            v => Ok(v.to_string()),
        },
    }
}

/// [`read_column`] for several columns at once: per data record, the trimmed value of each of
/// `columns`, in that order (an inactivity export's account and last login).
pub fn read_columns(data: &[u8], columns: &[&str]) -> Result<Vec<ColumnValues>, FileError> {
    read_records(
        data,
        |header| {
            columns
                .iter()
                .map(|c| find_column(header, c))
                .collect::<Result<Vec<usize>, FileError>>()
        },
        |indices, row, line, record| {
            let values = indices.iter().map(|index| cell(record, *index)).collect();
            ColumnValues { row, line, values }
        },
    )
}

/// One record of [`read_columns`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnValues {
    /// 1-based number of the data record (header excluded).
    pub row: u64,
    /// 1-based physical line on which the record starts.
    pub line: u64,
    /// Each asked column's trimmed value, or why it is refused.
    pub values: Vec<Result<String, Reason>>,
}

/// Reads the header with `header`, then every data record, in file order, with `record`, given what
/// `header` made of the header, the record's number (header excluded) and the line on which it starts.
fn read_records<H, T>(
    data: &[u8],
    header: impl FnOnce(&ByteRecord) -> Result<H, FileError>,
    mut record: impl FnMut(&H, u64, u64, &ByteRecord) -> T,
) -> Result<Vec<T>, FileError> {
    let mut reader = reader(data);
    let mut lines = LineCounter::new(data);
    let mut bytes = ByteRecord::new();
    if !read_record(&mut reader, &mut bytes) {
        return Err(FileError::NoHeader);
    }
    let header = header(&bytes)?;
    let mut records = Vec::new();
    let mut row: u64 = 0;
    loop {
        let start = reader.position().byte();
        if !read_record(&mut reader, &mut bytes) {
            break;
        }
        row += 1;
        let line = lines.line_of_record_at(start);
        records.push(record(&header, row, line, &bytes));
    }
    Ok(records)
}

/// A reader of CSV records as raw bytes.
fn reader(data: &[u8]) -> ::csv::Reader<&[u8]> {
    // Headers are read as an ordinary record so their bytes can be judged here; `flexible` lets a
    // short or long record through to be rejected on its own instead of failing the whole read.
    // The CRLF terminator accepts LF, CRLF (and a lone CR) and makes csv-core skip empty lines.
    // csv-core strips one leading UTF-8 BOM itself.
    ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(b',')
        .quote(b'"')
        .quoting(true)
        .double_quote(true)
        .escape(None)
        .comment(None)
        .trim(Trim::None)
        .terminator(Terminator::CRLF)
        .from_reader(data)
}

/// Reads the next record; `false` at the end of the data.
fn read_record(reader: &mut ::csv::Reader<&[u8]>, record: &mut ByteRecord) -> bool {
    // With byte records, a flexible reader and an in-memory source, the csv crate has no error left to
    // report (no I/O, no UTF-8 decoding, no length check), so an error can only mean the end.
    reader.read_byte_record(record).unwrap_or(false)
}

/// Finds the column of every mapped field in the header; the index is `None` for an unmapped field, and
/// for an optional person field (email, username, UPN, display name) left at its default column name that
/// the header lacks: an export without a `upn` column simply has no UPNs. A column the config names
/// itself must be there (a typo in the config is an error, not a silent gap).
fn map_columns(
    header: &ByteRecord,
    fields: &FieldNames,
) -> Result<[Option<usize>; Field::ALL.len()], FileError> {
    let names = header
        .iter()
        .map(|cell| std::str::from_utf8(cell).map(str::trim))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| FileError::HeaderInvalid)?;
    let defaults = FieldNames::default();
    let mut columns = [None; Field::ALL.len()];
    for (slot, field) in columns.iter_mut().zip(Field::ALL) {
        let Some(configured) = field.configured_name(fields) else {
            continue;
        };
        let optional_by_default = matches!(
            field,
            Field::Email | Field::Username | Field::Upn | Field::DisplayName
        ) && field.configured_name(&defaults) == Some(configured);
        let wanted = configured.trim();
        let mut found = names
            .iter()
            .enumerate()
            .filter(|(_, name)| name.eq_ignore_ascii_case(wanted))
            .map(|(index, _)| index);
        *slot = match (found.next(), found.next()) {
            (Some(index), None) => Some(index),
            (None, _) if optional_by_default => None,
            (None, _) => return Err(FileError::MissingColumn(configured.to_string())),
            (Some(_), Some(_)) => return Err(FileError::DuplicateColumn(configured.to_string())),
        };
    }
    Ok(columns)
}

/// Finds each attribute's column; like a mapped field, it must be there exactly once.
fn map_attribute_columns(
    header: &ByteRecord,
    attributes: &BTreeMap<String, String>,
) -> Result<Vec<(String, usize)>, FileError> {
    attributes
        .iter()
        .map(|(name, column)| Ok((name.clone(), find_column(header, column)?)))
        .collect()
}

/// The index of `column` in the header (trimmed, case-insensitively), which must hold it exactly once.
fn find_column(header: &ByteRecord, column: &str) -> Result<usize, FileError> {
    let wanted = column.trim();
    let mut found = header
        .iter()
        .enumerate()
        .filter(|(_, cell)| {
            std::str::from_utf8(cell).is_ok_and(|c| c.trim().eq_ignore_ascii_case(wanted))
        })
        .map(|(index, _)| index);
    match (found.next(), found.next()) {
        (Some(index), None) => Ok(index),
        (None, _) => Err(FileError::MissingColumn(column.to_string())),
        (Some(_), Some(_)) => Err(FileError::DuplicateColumn(column.to_string())),
    }
}

fn with_attributes(
    mut row: FeedRow,
    record: &ByteRecord,
    columns: &[(String, usize)],
) -> Result<FeedRow, Vec<Fault>> {
    for (name, index) in columns {
        let Some(bytes) = record.get(*index) else {
            continue;
        };
        let fault = |reason| {
            vec![Fault {
                field: Some("attributes".into()),
                reason,
            }]
        };
        let value = std::str::from_utf8(bytes)
            .map_err(|_| fault(Reason::InvalidUtf8))?
            .trim();
        if value.chars().any(char::is_control) {
            return Err(fault(Reason::ControlChar));
        }
        if !value.is_empty() {
            row.person
                .attributes
                .insert(name.clone(), value.to_string());
        }
    }
    Ok(row)
}

fn raw_row<'a>(record: &'a ByteRecord, columns: &[Option<usize>; Field::ALL.len()]) -> RawRow<'a> {
    let mut raw = RawRow::default();
    for (field, column) in Field::ALL.into_iter().zip(columns) {
        if let Some(bytes) = column.and_then(|index| record.get(index)) {
            raw.get_mut(field).value = RawValue::Bytes(bytes);
        }
    }
    raw
}

/// Turns record start offsets into physical line numbers. The csv crate's own line count drifts after
/// CRLF line ends and skipped blank lines, and people use the line to find the record in an editor.
struct LineCounter<'a> {
    data: &'a [u8],
    /// Offset up to which line breaks have been counted.
    offset: usize,
    /// 1-based line number at `offset`.
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            offset: 0,
            line: 1,
        }
    }

    /// The line of the record whose reading began at byte `position`. The reader's position may sit
    /// before the previous record's line end or before blank lines it is about to skip, so the record
    /// really starts at the first byte after those. Positions only grow, so counting is linear overall.
    fn line_of_record_at(&mut self, position: u64) -> u64 {
        let from = usize::try_from(position)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let skipped = self.data[from..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        let start = from + skipped;
        if start > self.offset {
            let breaks = self.data[self.offset..start]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            self.line += breaks as u64;
            self.offset = start;
        }
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{HrStatus, StatusValues};
    use chrono::{DateTime, TimeZone, Utc};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 31, 12, 0, 0).unwrap()
    }

    fn read_with(data: &[u8], fields: &FieldNames) -> Result<Vec<CsvRecord>, FileError> {
        let statuses = StatusValues::default();
        let rules = RowRules {
            statuses: &statuses,
            timezone: chrono_tz::UTC,
            now: now(),
        };
        read_csv(data, fields, &rules)
    }

    fn read(data: &[u8]) -> Result<Vec<CsvRecord>, FileError> {
        read_with(data, &FieldNames::default())
    }

    /// Only the three required columns: enough for most numbering tests.
    fn minimal() -> FieldNames {
        FieldNames {
            email: None,
            username: None,
            upn: None,
            display_name: None,
            ..FieldNames::default()
        }
    }

    fn read_min(data: &[u8]) -> Vec<CsvRecord> {
        read_with(data, &minimal()).unwrap()
    }

    /// (row, line, employee id or the fault list as "field:reason").
    fn summary(records: &[CsvRecord]) -> Vec<(u64, u64, String)> {
        records
            .iter()
            .map(|r| {
                let what = match &r.result {
                    Ok(row) => row.person.employee_id.clone(),
                    Err(faults) => faults
                        .iter()
                        .map(|f| format!("{}:{}", f.field.as_deref().unwrap_or("-"), f.reason))
                        .collect::<Vec<_>>()
                        .join(","),
                };
                (r.row, r.line, what)
            })
            .collect()
    }

    fn ok(row: u64, line: u64, id: &str) -> (u64, u64, String) {
        (row, line, id.to_string())
    }

    const HEADER: &str = "employee_id,email,username,upn,display_name,effective_date,status";

    #[test]
    fn full_rows_are_checked_and_numbered() {
        let data = format!(
            "{HEADER}\n\
             1,Ann@Example.ORG,ann,Ann@Corp.example.org,Ann Smith,2026-04-01,Terminated\n\
             2,,,,,,active\n"
        );
        let records = read(data.as_bytes()).unwrap();
        assert_eq!(summary(&records), [ok(1, 2, "1"), ok(2, 3, "2")]);
        let Ok(first) = &records[0].result else {
            panic!("row 1 rejected")
        };
        assert_eq!(first.person.email.as_deref(), Some("ann@example.org"));
        assert_eq!(first.person.upn.as_deref(), Some("Ann@Corp.example.org"));
        assert_eq!(first.person.display_name.as_deref(), Some("Ann Smith"));
        assert_eq!(
            first.status,
            HrStatus::Terminated {
                effective_at: Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap()
            }
        );
        let Ok(second) = &records[1].result else {
            panic!("row 2 rejected")
        };
        assert_eq!(second.status, HrStatus::Active);
        assert_eq!(second.person.email, None);
    }

    #[test]
    fn bom_before_the_header_is_skipped() {
        let records = read_min(b"\xEF\xBB\xBFemployee_id,effective_date,status\n7,,active\n");
        assert_eq!(summary(&records), [ok(1, 2, "7")]);
    }

    #[test]
    fn only_one_bom_is_skipped() {
        let err = read_with(
            b"\xEF\xBB\xBF\xEF\xBB\xBFemployee_id,effective_date,status\n7,,active\n",
            &minimal(),
        )
        .unwrap_err();
        assert_eq!(err, FileError::MissingColumn("employee_id".into()));
    }

    #[test]
    fn crlf_and_mixed_line_ends_count_one_line_each() {
        let data =
            b"employee_id,effective_date,status\r\n1,,active\r\n2,,active\n3,,active\r\n4,,active";
        assert_eq!(
            summary(&read_min(data)),
            [ok(1, 2, "1"), ok(2, 3, "2"), ok(3, 4, "3"), ok(4, 5, "4")]
        );
    }

    #[test]
    fn blank_lines_are_skipped_and_still_counted_as_lines() {
        let data = b"employee_id,effective_date,status\n\n1,,active\r\n\r\n\n2,,active\n\n";
        assert_eq!(summary(&read_min(data)), [ok(1, 3, "1"), ok(2, 6, "2")]);
        let data = b"\xEF\xBB\xBF\n\r\nemployee_id,effective_date,status\n1,,active\n";
        assert_eq!(summary(&read_min(data)), [ok(1, 4, "1")]);
    }

    #[test]
    fn spaces_only_or_empty_quotes_is_a_one_field_record() {
        let data = b"employee_id,effective_date,status\n   \n\"\"\n1,,active\n";
        assert_eq!(
            summary(&read_min(data)),
            [
                (1, 2, "-:column_count".to_string()),
                (2, 3, "-:column_count".to_string()),
                ok(3, 4, "1")
            ]
        );
    }

    #[test]
    fn one_field_record_is_a_normal_row_under_a_one_column_header() {
        // Every required field mapped to the same column gives a one-column feed.
        let fields = FieldNames {
            employee_id: "x".into(),
            effective_date: "x".into(),
            status: "x".into(),
            ..minimal()
        };
        let records = read_with(b"x\n\"\"\n   \nactive\n", &fields).unwrap();
        assert_eq!(
            summary(&records),
            [
                (1, 2, "employee_id:missing,status:missing".to_string()),
                (2, 3, "employee_id:missing,status:missing".to_string()),
                ok(3, 4, "active"),
            ]
        );
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks() {
        let data = "employee_id,display_name,effective_date,status\n\
                    1,\"Smith, Ann\",,active\n\
                    2,\"Ann \"\"Nan\"\" Smith\",,active\n\
                    3,\"Ann\r\nvan\nSmith\",,active\n\
                    4,plain,,active\n";
        let fields = FieldNames {
            display_name: Some("display_name".into()),
            ..minimal()
        };
        let records = read_with(data.as_bytes(), &fields).unwrap();
        // Row 3 spans lines 4-6, so row 4 starts on line 7.
        assert_eq!(
            summary(&records),
            [ok(1, 2, "1"), ok(2, 3, "2"), ok(3, 4, "3"), ok(4, 7, "4")]
        );
        let names: Vec<_> = records
            .iter()
            .map(|r| {
                r.result
                    .as_ref()
                    .unwrap()
                    .person
                    .display_name
                    .clone()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            names,
            [
                "Smith, Ann",
                "Ann \"Nan\" Smith",
                "Ann\r\nvan\nSmith",
                "plain"
            ]
        );
    }

    #[test]
    fn unclosed_quote_runs_to_the_end_of_the_file() {
        let data = b"employee_id,effective_date,status\n1,,active\n2,\"2026-04-01,active\n3,,active\n4,,active\n";
        let records = read_min(data);
        assert_eq!(
            summary(&records),
            [ok(1, 2, "1"), (2, 3, "-:column_count".to_string())]
        );
    }

    #[test]
    fn unclosed_quote_in_the_last_column_swallows_the_rest_into_that_field() {
        let fields = FieldNames {
            display_name: Some("display_name".into()),
            ..minimal()
        };
        let data =
            b"employee_id,effective_date,status,display_name\n1,,active,\"Ann\n2,,active,Bob\n";
        let records = read_with(data, &fields).unwrap();
        assert_eq!(summary(&records), [ok(1, 2, "1")]);
        let person = &records[0].result.as_ref().unwrap().person;
        assert_eq!(person.display_name.as_deref(), Some("Ann\n2,,active,Bob"));
    }

    #[test]
    fn invalid_utf8_rejects_only_its_row_and_names_the_field() {
        let mut data = format!("{HEADER}\n1,,,,Ann,,active\n2,,,,").into_bytes();
        data.extend_from_slice(b"Bj\xF6rn,,active\n3,,,,Cy,,active\n");
        let records = read(&data).unwrap();
        assert_eq!(
            summary(&records),
            [
                ok(1, 2, "1"),
                (2, 3, "display_name:invalid_utf8".to_string()),
                ok(3, 4, "3")
            ]
        );
    }

    #[test]
    fn unmapped_columns_are_ignored_whatever_they_hold() {
        let data = b"note,employee_id,effective_date,status,extra\n\xFF\xFE,1,,active,=cmd|' /C calc'!A0\n";
        assert_eq!(summary(&read_min(data)), [ok(1, 2, "1")]);
    }

    #[test]
    fn unmapped_columns_still_count_for_the_column_count() {
        let data =
            b"note,employee_id,effective_date,status\n1,,active\nx,2,,active,y\nx,3,,active\n";
        assert_eq!(
            summary(&read_min(data)),
            [
                (1, 2, "-:column_count".to_string()),
                (2, 3, "-:column_count".to_string()),
                ok(3, 4, "3")
            ]
        );
    }

    #[test]
    fn column_count_rejects_the_whole_row_without_checking_fields() {
        let data = b"employee_id,effective_date,status\n'; DROP,not-a-date\n\xFF,x,y,z\n";
        let records = read_min(data);
        assert_eq!(
            records[0].result,
            Err(vec![Fault {
                field: None,
                reason: Reason::ColumnCount
            }])
        );
        assert_eq!(
            records[1].result,
            Err(vec![Fault::for_row(Reason::ColumnCount)])
        );
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn column_order_is_free_and_headers_match_trimmed_and_case_insensitively() {
        let fields = FieldNames {
            employee_id: "Worker ID".into(),
            effective_date: "Termination Date".into(),
            status: "Status".into(),
            ..FieldNames::default()
        };
        let data = b"  STATUS ,display_name,termination date,EMAIL,worker id\t,UserName,UPN\n\
                     Terminated,Ann,2026-04-01,a@b.org,E1,ann,ann@b.org\n";
        let records = read_with(data, &fields).unwrap();
        assert_eq!(summary(&records), [ok(1, 2, "E1")]);
        let person = &records[0].result.as_ref().unwrap().person;
        assert_eq!(person.display_name.as_deref(), Some("Ann"));
        assert_eq!(person.username.as_deref(), Some("ann"));
    }

    #[test]
    fn header_only_file_is_an_empty_feed() {
        assert_eq!(read(HEADER.as_bytes()).unwrap(), []);
        assert_eq!(read(format!("{HEADER}\r\n").as_bytes()).unwrap(), []);
        assert_eq!(
            read(format!("\u{feff}{HEADER}\n\n\n").as_bytes()).unwrap(),
            []
        );
    }

    #[test]
    fn empty_or_blank_file_has_no_header() {
        for data in [&b""[..], b"\xEF\xBB\xBF", b"\n", b"\r\n\r\n\n"] {
            let err = read(data).unwrap_err();
            assert_eq!(err, FileError::NoHeader, "{data:?}");
            assert_eq!(err.code(), "no_header");
        }
    }

    #[test]
    fn header_that_is_not_utf8_is_invalid() {
        // A UTF-16LE export with its BOM.
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in "employee_id,effective_date,status\n1,,active\n".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(
            read_with(&utf16, &minimal()).unwrap_err(),
            FileError::HeaderInvalid
        );
        // One bad byte in an unmapped header cell is enough.
        let err =
            read_with(b"employee_id,effective_date,status,N\xE4me\n", &minimal()).unwrap_err();
        assert_eq!(err.code(), "header_invalid");
    }

    #[test]
    fn missing_configured_column_is_a_file_error() {
        // An optional field left at its default column may be absent: no UPNs, no display names.
        let rows = read(b"employee_id,email,username,effective_date,status\ne1,a@example.org,a,2026-01-05,active\n")
            .unwrap();
        assert_eq!(rows.len(), 1);
        // One the config names itself must be there.
        let named = FieldNames {
            display_name: Some("Full Name".into()),
            ..FieldNames::default()
        };
        let err = read_with(
            b"employee_id,email,username,upn,effective_date,status\n",
            &named,
        )
        .unwrap_err();
        assert_eq!(err, FileError::MissingColumn("Full Name".into()));
        assert!(err.to_string().contains("\"Full Name\""), "{err}");
        // A ';'-delimited file read with ',' is one big column.
        let err = read_with(
            b"employee_id;effective_date;status\n1;;active\n",
            &minimal(),
        )
        .unwrap_err();
        assert_eq!(err, FileError::MissingColumn("employee_id".into()));
        // A column the config does not map is not required.
        assert_eq!(read_min(b"employee_id,effective_date,status\n"), []);
    }

    #[test]
    fn duplicate_configured_column_is_a_file_error() {
        let err =
            read_with(b"employee_id,effective_date,Status, STATUS \n", &minimal()).unwrap_err();
        assert_eq!(err, FileError::DuplicateColumn("status".into()));
        assert_eq!(err.code(), "duplicate_column");
        assert!(err.to_string().contains("\"status\""), "{err}");
        // A duplicated column the config does not map is ignored.
        let data = b"note,employee_id,effective_date,status,note\na,1,,active,b\n";
        assert_eq!(summary(&read_min(data)), [ok(1, 2, "1")]);
    }

    #[test]
    fn attribute_columns_are_read_trimmed_and_checked() {
        let attributes = BTreeMap::from([("dept".to_string(), "Department".to_string())]);
        let statuses = StatusValues::default();
        let rules = RowRules {
            statuses: &statuses,
            timezone: chrono_tz::UTC,
            now: now(),
        };
        let data = b"employee_id,status,effective_date,department\n1,Active,, Sales \n2,Active,,\n3,Active,,\xff\n";
        let fields = minimal();
        let records = read_csv_with_attributes(data, &fields, &attributes, &rules).unwrap();
        let row = records[0].result.as_ref().unwrap();
        assert_eq!(
            row.person.attributes.get("dept").map(String::as_str),
            Some("Sales")
        );
        assert!(
            records[1]
                .result
                .as_ref()
                .unwrap()
                .person
                .attributes
                .is_empty()
        );
        let faults = records[2].result.as_ref().unwrap_err();
        assert_eq!(faults[0].field.as_deref(), Some("attributes"));
        assert_eq!(faults[0].reason, Reason::InvalidUtf8);
        let missing = BTreeMap::from([("cc".to_string(), "Cost Center".to_string())]);
        assert_eq!(
            read_csv_with_attributes(data, &fields, &missing, &rules).unwrap_err(),
            FileError::MissingColumn("Cost Center".into())
        );
    }

    #[test]
    fn lone_cr_ends_a_record_but_not_a_line() {
        let data = b"employee_id,effective_date,status\n1,,active\r2,,active\n3,,active\n";
        assert_eq!(
            summary(&read_min(data)),
            [ok(1, 2, "1"), ok(2, 2, "2"), ok(3, 3, "3")]
        );
    }

    #[test]
    fn field_faults_keep_their_row_and_line() {
        let data =
            b"employee_id,effective_date,status\n\n\n01005,2026-02-30,Terminated\nx,,Rehired\n";
        assert_eq!(
            summary(&read_min(data)),
            [
                (1, 4, "effective_date:invalid_date".to_string()),
                (2, 5, "status:unknown_status".to_string())
            ]
        );
    }

    /// The inputs the fuzz target `csv_feed` found (tests/data/fuzz-regressions/csv_feed/), without
    /// their first byte (the target's choice of zone and instant).
    fn fuzz_regressions() -> Vec<(String, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/fuzz-regressions/csv_feed");
        let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, data.get(1..).unwrap_or_default().to_vec())
            })
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
        inputs
    }

    #[test]
    fn fuzz_regressions_read_without_panicking() {
        let fields = FieldNames::default();
        let attributes = BTreeMap::from([("dept".to_string(), "department".to_string())]);
        let statuses = StatusValues::default();
        let rules = RowRules {
            statuses: &statuses,
            timezone: chrono_tz::UTC,
            now: now(),
        };
        for (name, data) in fuzz_regressions() {
            let total_lines = 1 + data.iter().filter(|b| **b == b'\n').count() as u64;
            let result = read_csv_with_attributes(&data, &fields, &attributes, &rules);
            if let Ok(records) = &result {
                let mut last_line = 1;
                for (i, r) in records.iter().enumerate() {
                    assert_eq!(r.row, i as u64 + 1, "{name}");
                    assert!(r.line >= last_line && r.line <= total_lines, "{name}");
                    last_line = r.line;
                }
            }
            if name == "lone-cr-ends-the-header.bin" {
                // The header ends at a lone CR: the next record starts on the header's line 1. No
                // record has the header's width, so each is a column_count reject.
                let records = result.unwrap();
                let lines: Vec<u64> = records.iter().map(|r| r.line).collect();
                assert_eq!(lines, [1, 2, 3], "{name}");
                assert!(
                    records
                        .iter()
                        .all(|r| r.result == Err(vec![Fault::for_row(Reason::ColumnCount)]))
                );
            }
        }
        // The shape of that input, reduced: a lone CR after the header.
        let data = b"employee_id,effective_date,status\r1,,active\r\n2,,active\n";
        assert_eq!(summary(&read_min(data)), [ok(1, 1, "1"), ok(2, 2, "2")]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_numbers_stay_consistent() {
        let alphabet = b"a,\"\r\n \xFF\xEF\xBB\xBF1";
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let mut data = b"employee_id,effective_date,status\n".to_vec();
            let mut s = seed;
            for _ in 0..len {
                data.push(alphabet[(s % alphabet.len() as u64) as usize]);
                s = s.rotate_left(5).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            }
            let total_lines = 1 + data.iter().filter(|b| **b == b'\n').count() as u64;
            let records = read_min(&data);
            let mut last_line = 1;
            for (i, r) in records.iter().enumerate() {
                assert_eq!(r.row, i as u64 + 1);
                assert!(r.line >= last_line.max(2), "{data:?}");
                assert!(r.line <= total_lines, "{data:?}");
                last_line = r.line;
            }
        }
    }

    #[test]
    fn a_column_is_read_with_each_value_checked_and_its_row_and_line() {
        let long = "x".repeat(1025);
        let data = format!(
            "\u{feff}Name, User ID \r\nOne,u-1\r\n\r\nTwo, u-2 \nBlank,\nShort\nBell,a\u{7}b\nLong,{long}\n"
        );
        let mut bytes = data.into_bytes();
        bytes.extend_from_slice(b"Bad,\xff\n");
        let values = read_column(&bytes, "user id").unwrap();
        let got: Vec<(u64, u64, Result<&str, Reason>)> = values
            .iter()
            .map(|v| (v.row, v.line, v.value.as_deref().map_err(|r| *r)))
            .collect();
        assert_eq!(
            got,
            [
                (1, 2, Ok("u-1")),
                (2, 4, Ok("u-2")),
                (3, 5, Err(Reason::Missing)),
                (4, 6, Err(Reason::ColumnCount)),
                (5, 7, Err(Reason::ControlChar)),
                (6, 8, Err(Reason::TooLong)),
                (7, 9, Err(Reason::InvalidUtf8)),
            ]
        );
        assert_eq!(
            read_column(b"Name,Login\n", "user id"),
            Err(FileError::MissingColumn("user id".into()))
        );
        assert_eq!(read_column(b"", "user id"), Err(FileError::NoHeader));
    }
}
