//! Output of every listing: an aligned table, JSON or CSV (cells a spreadsheet would run as formulas
//! neutralised). Shared by the CLI and the views (status, report, preview), which do not depend on
//! the CLI.

use std::borrow::Cow;
use std::io::Write;

use clap::ValueEnum;
use serde::Serialize;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// A readable table.
    #[default]
    Table,
    /// JSON, for scripts.
    Json,
    /// CSV (cells that a spreadsheet would run as formulas are neutralised).
    Csv,
}

/// Writes rows as a table, CSV, or the serialisable items as JSON.
pub fn emit<T: Serialize>(
    out: &mut impl Write,
    format: Format,
    headers: &[&str],
    rows: &[Vec<String>],
    items: &[T],
) -> anyhow::Result<()> {
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(items)?)?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(headers)?;
            for row in rows {
                w.write_record(row.iter().map(|c| csv_safe_cell(c).into_owned()))?;
            }
            w.flush()?;
        }
        Format::Table => write_table(out, headers, rows)?,
    }
    Ok(())
}

/// Writes an aligned text table; long cells are cut so one row stays one line.
pub fn write_table(
    out: &mut impl Write,
    headers: &[&str],
    rows: &[Vec<String>],
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
    line(
        out,
        &headers.iter().map(|h| h.to_uppercase()).collect::<Vec<_>>(),
    )?;
    for row in &cells {
        line(out, row)?;
    }
    if cells.is_empty() {
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
