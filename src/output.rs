//! Output of every listing, the same on every command: `-o table` (the main columns), `wide` (every
//! column), `json`, `yaml`, `csv` (cells a spreadsheet would run as formulas neutralised), with
//! `--no-headers` for table, wide and csv. A listing names its columns once, as the keys of its items'
//! JSON, so a column has one name in every format. YAML is written here from the JSON value: block
//! style, every string double-quoted with JSON's escapes (which YAML reads as the same string), so
//! no value is ever taken for a number, a boolean or a date; a YAML library would add a dependency
//! for less control over exactly that.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::ValueEnum;
use serde::Serialize;
use serde_json::Value;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// A readable table of the main columns.
    #[default]
    Table,
    /// The table with every column.
    Wide,
    /// JSON, for scripts.
    Json,
    /// YAML, for people and scripts.
    Yaml,
    /// CSV with every column (cells that a spreadsheet would run as formulas are neutralised).
    Csv,
}

impl Format {
    /// Whether this is a table for people (`table` or `wide`).
    pub fn is_table(self) -> bool {
        matches!(self, Self::Table | Self::Wide)
    }
}

/// Whether tables and CSV start with their header row (`--no-headers` turns it off for the process).
static HEADERS: AtomicBool = AtomicBool::new(true);

/// Sets whether tables and CSV print their header row.
pub fn set_headers(on: bool) {
    HEADERS.store(on, Ordering::Relaxed);
}

fn headers_on() -> bool {
    HEADERS.load(Ordering::Relaxed)
}

/// A listing's column: the key in its items' JSON, and whether `-o table` shows it (`wide` and
/// `csv` show every column).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The JSON key, and the column's name in every format.
    pub key: &'static str,
    /// Shown by `-o table`.
    pub main: bool,
}

/// A column that `-o table` shows.
pub const fn main(key: &'static str) -> Column {
    Column { key, main: true }
}

/// A column that only `wide` and `csv` show.
pub const fn extra(key: &'static str) -> Column {
    Column { key, main: false }
}

/// Writes `items` in `format`: JSON or YAML as they serialise, a table or CSV of `columns` taken from
/// each item's JSON by key.
pub fn list<T: Serialize>(
    out: &mut impl Write,
    format: Format,
    columns: &[Column],
    items: &[T],
) -> anyhow::Result<()> {
    list_with(out, format, columns, items, headers_on())
}

fn list_with<T: Serialize>(
    out: &mut impl Write,
    format: Format,
    columns: &[Column],
    items: &[T],
    headers: bool,
) -> anyhow::Result<()> {
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(items)?)?,
        Format::Yaml => write_yaml(out, &serde_json::to_value(items)?)?,
        Format::Csv | Format::Table | Format::Wide => {
            let shown: Vec<&Column> = columns
                .iter()
                .filter(|c| format != Format::Table || c.main)
                .collect();
            let names: Vec<&str> = shown.iter().map(|c| c.key).collect();
            let mut rows = Vec::with_capacity(items.len());
            for item in items {
                let value = serde_json::to_value(item)?;
                rows.push(shown.iter().map(|c| cell(&value[c.key])).collect());
            }
            rows_with(out, format, &names, &rows, headers)?;
        }
    }
    Ok(())
}

/// A JSON value as a table or CSV cell: strings as they are, nothing for null, other values as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A nested value as rows of `key` (its path, `summary.drain.done`) and `value` (a scalar as a cell;
/// a list as its JSON): how a document goes out as CSV.
pub fn flatten(value: &Value) -> Vec<serde_json::Map<String, Value>> {
    fn walk(prefix: &str, value: &Value, rows: &mut Vec<serde_json::Map<String, Value>>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, rows);
                }
            }
            other => {
                let mut row = serde_json::Map::new();
                row.insert("key".into(), Value::String(prefix.to_string()));
                row.insert("value".into(), Value::String(cell(other)));
                rows.push(row);
            }
        }
    }
    let mut rows = Vec::new();
    walk("", value, &mut rows);
    rows
}

/// Writes one value (JSON or YAML) for the formats that are not tables: a document a command shows
/// whole (`status`, the summary of `run --once`).
pub fn document<T: Serialize>(
    out: &mut impl Write,
    format: Format,
    value: &T,
) -> anyhow::Result<()> {
    match format {
        Format::Yaml => write_yaml(out, &serde_json::to_value(value)?)?,
        _ => writeln!(out, "{}", serde_json::to_string_pretty(value)?)?,
    }
    Ok(())
}

/// Writes precomputed rows as a table (`table` and `wide` alike) or CSV; JSON and YAML are not rows.
pub fn emit_rows(
    out: &mut impl Write,
    format: Format,
    headers: &[&str],
    rows: &[Vec<String>],
) -> anyhow::Result<()> {
    rows_with(out, format, headers, rows, headers_on())
}

fn rows_with(
    out: &mut impl Write,
    format: Format,
    headers: &[&str],
    rows: &[Vec<String>],
    with_headers: bool,
) -> anyhow::Result<()> {
    if format == Format::Csv {
        let mut w = csv::Writer::from_writer(&mut *out);
        if with_headers {
            w.write_record(headers)?;
        }
        for row in rows {
            w.write_record(row.iter().map(|c| csv_safe_cell(c).into_owned()))?;
        }
        w.flush()?;
    } else {
        table_with(out, headers, rows, with_headers)?;
    }
    Ok(())
}

/// Writes a JSON value as a YAML document (block style; strings double-quoted with JSON escapes).
pub fn write_yaml(out: &mut impl Write, value: &Value) -> std::io::Result<()> {
    let mut text = String::new();
    yaml_value(&mut text, value, 0, true);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    out.write_all(text.as_bytes())
}

fn yaml_scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        // JSON's string escapes are YAML's double-quoted escapes.
        Value::String(s) => Some(Value::String(s.clone()).to_string()),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(o) if o.is_empty() => Some("{}".into()),
        _ => None,
    }
}

/// Appends `value` at `indent`; `top` when nothing precedes it on its line.
fn yaml_value(text: &mut String, value: &Value, indent: usize, top: bool) {
    if let Some(scalar) = yaml_scalar(value) {
        text.push_str(&scalar);
        text.push('\n');
        return;
    }
    let pad = " ".repeat(indent);
    let mut first = true;
    match value {
        Value::Array(items) => {
            for item in items {
                if !(first && top) {
                    text.push_str(&pad);
                }
                first = false;
                text.push_str("- ");
                // A mapping inside a list starts on the dash's line, its other keys two further in.
                yaml_value(text, item, indent + 2, true);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                if !(first && top) {
                    text.push_str(&pad);
                }
                first = false;
                text.push_str(&Value::String(key.clone()).to_string());
                text.push(':');
                match yaml_scalar(item) {
                    Some(scalar) => {
                        text.push(' ');
                        text.push_str(&scalar);
                        text.push('\n');
                    }
                    None => {
                        text.push('\n');
                        text.push_str(&" ".repeat(indent + 2));
                        yaml_value(text, item, indent + 2, true);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Writes an aligned text table; long cells are cut so one row stays one line.
pub fn write_table(
    out: &mut impl Write,
    headers: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    table_with(out, headers, rows, headers_on())
}

fn table_with(
    out: &mut impl Write,
    headers: &[&str],
    rows: &[Vec<String>],
    with_headers: bool,
) -> std::io::Result<()> {
    const MAX: usize = 60;
    let clean = |s: &str| -> String {
        let s: String = s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if s.chars().count() > MAX {
            let mut cut: String = s.chars().take(MAX - 1).collect();
            cut.push('…');
            cut
        } else {
            s
        }
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |out: &mut dyn Write, items: &[String]| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, item) in items.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i + 1 == items.len() {
                s.push_str(item);
            } else {
                s.push_str(item);
                s.push_str(&" ".repeat(w.saturating_sub(item.chars().count()) + 2));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    if with_headers {
        line(
            out,
            &headers.iter().map(|h| h.to_uppercase()).collect::<Vec<_>>(),
        )?;
    }
    for row in &cells {
        line(out, row)?;
    }
    if cells.is_empty() && with_headers {
        writeln!(out, "(none)")?;
    }
    Ok(())
}

/// Neutralises a cell for CSV output: a cell starting with = + - @ TAB CR gets a leading single quote,
/// so a spreadsheet opening the export shows the text instead of evaluating it as a formula.
pub fn csv_safe_cell(s: &str) -> Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Item {
        id: i64,
        employee_id: String,
        note: Option<String>,
        tags: Vec<String>,
    }

    fn items() -> Vec<Item> {
        vec![
            Item {
                id: 1,
                employee_id: "E1".into(),
                note: Some("=cmd|' /C calc'!A0".into()),
                tags: vec!["a".into()],
            },
            Item {
                id: 2,
                employee_id: "E: \"2\"\nnext".into(),
                note: None,
                tags: vec![],
            },
        ]
    }

    const COLUMNS: [Column; 4] = [
        main("id"),
        main("employee_id"),
        extra("note"),
        extra("tags"),
    ];

    fn text_with(format: Format, headers: bool) -> String {
        let mut out = Vec::new();
        list_with(&mut out, format, &COLUMNS, &items(), headers).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn text(format: Format) -> String {
        text_with(format, true)
    }

    #[test]
    fn every_format_names_the_columns_as_the_json_keys() {
        let table = text(Format::Table);
        assert!(table.starts_with("ID  EMPLOYEE_ID\n"), "{table}");
        assert!(
            !table.contains("NOTE"),
            "table shows the main columns: {table}"
        );
        let wide = text(Format::Wide);
        assert!(wide.starts_with("ID  EMPLOYEE_ID  NOTE"), "{wide}");
        let csv = text(Format::Csv);
        assert!(csv.starts_with("id,employee_id,note,tags\n"), "{csv}");
        assert!(csv.contains("'=cmd"), "formula neutralised: {csv}");
        assert!(
            csv.contains(",\"[\"\"a\"\"]\"\n"),
            "a list cell is its JSON: {csv}"
        );
        let json: Value = serde_json::from_str(&text(Format::Json)).unwrap();
        assert_eq!(json[0]["employee_id"], "E1");
        assert!(json[1]["note"].is_null());
    }

    #[test]
    fn yaml_quotes_every_string_and_reads_back_as_the_json() {
        let yaml = text(Format::Yaml);
        assert!(yaml.starts_with("- \"employee_id\": \"E1\"\n"), "{yaml}");
        assert!(yaml.contains("  \"note\": null\n"), "{yaml}");
        assert!(yaml.contains("  \"tags\": []\n"), "{yaml}");
        assert!(yaml.contains("\"E: \\\"2\\\"\\nnext\""), "{yaml}");
        // Nested mappings and lists.
        let mut out = Vec::new();
        write_yaml(
            &mut out,
            &serde_json::json!({"a": {"b": [1, {"c": "yes"}], "d": {}}, "e": "no"}),
        )
        .unwrap();
        let yaml = String::from_utf8(out).unwrap();
        assert_eq!(
            yaml,
            "\"a\":\n  \"b\":\n    - 1\n    - \"c\": \"yes\"\n  \"d\": {}\n\"e\": \"no\"\n"
        );
    }

    #[test]
    fn no_headers_drops_the_header_row_of_tables_and_csv() {
        let csv = text_with(Format::Csv, false);
        let table = text_with(Format::Table, false);
        assert!(csv.starts_with("1,E1,"), "{csv}");
        assert!(table.starts_with("1 "), "{table}");
    }

    #[test]
    fn csv_safe_cell_neutralises_formula_starts() {
        for (cell, safe) in [
            ("=1+1", "'=1+1"),
            ("+31 20 123", "'+31 20 123"),
            ("-5", "'-5"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
        ] {
            assert_eq!(csv_safe_cell(cell), safe);
            assert!(matches!(csv_safe_cell(cell), Cow::Owned(_)));
        }
        for plain in ["Ann", "", " =x", "'=x", "a=b", "\nx", "é"] {
            assert!(
                matches!(csv_safe_cell(plain), Cow::Borrowed(p) if p == plain),
                "{plain:?}"
            );
        }
    }
}
