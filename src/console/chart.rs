//! The time-to-revoke chart, drawn on the server as SVG (no script): per week of the effective date,
//! the median, the 95th percentile and the worst time to revoke of one connector, with the SLA as a
//! dashed line. Our own few lines: a plotting crate would bring fonts and a renderer for three lines.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::Datelike;

use crate::report::ReportRow;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;

/// One connector's chart.
pub(crate) struct Chart {
    /// The connector.
    pub(crate) connector: String,
    /// The `<svg>` element, its text escaped.
    pub(crate) svg: String,
}

/// The median, 95th percentile and worst of a week, in hours.
struct Week {
    label: String,
    median: f64,
    p95: f64,
    worst: f64,
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 3600.0
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Chart {
    /// The chart of `rows` (one connector's) by ISO week of the effective date; `sla_seconds` drawn as a
    /// line. A removal not done yet counts with its age so far, so an open one shows as late.
    pub(crate) fn weekly(connector: &str, rows: &[&ReportRow], sla_seconds: u64) -> Chart {
        let mut weeks: BTreeMap<(i32, u32), Vec<i64>> = BTreeMap::new();
        for row in rows {
            let (Some(seconds), Ok(effective)) = (
                row.time_to_revoke_seconds,
                chrono::DateTime::parse_from_rfc3339(&row.effective_at),
            ) else {
                continue;
            };
            let week = effective.iso_week();
            weeks
                .entry((week.year(), week.week()))
                .or_default()
                .push(seconds.max(0));
        }
        let weeks: Vec<Week> = weeks
            .into_iter()
            .map(|((year, week), mut seconds)| {
                seconds.sort_unstable();
                Week {
                    label: format!("{year}-W{week:02}"),
                    median: percentile(&seconds, 50.0),
                    p95: percentile(&seconds, 95.0),
                    worst: percentile(&seconds, 100.0),
                }
            })
            .collect();
        let sla = sla_seconds as f64 / 3600.0;
        let top = weeks.iter().map(|w| w.worst).fold(sla, f64::max).max(1.0) * 1.1;
        let x = |i: usize| {
            if weeks.len() <= 1 {
                LEFT + (WIDTH - LEFT) / 2.0
            } else {
                LEFT + (WIDTH - LEFT - 16.0) * i as f64 / (weeks.len() - 1) as f64
            }
        };
        let y = |hours: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - hours / top);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" aria-label="time to revoke of {}">"#,
            escape(connector)
        );
        // Axes with the top value and zero.
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#8a939e"/><line x1="{LEFT}" y1="{}" x2="{WIDTH}" y2="{}" stroke="#8a939e"/><text x="4" y="{}">{:.1} h</text><text x="4" y="{}">0 h</text>"##,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM,
            TOP + 10.0,
            top,
            HEIGHT - BOTTOM
        );
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{sy:.1}" x2="{WIDTH}" y2="{sy:.1}" stroke="#a33a00" stroke-dasharray="5 4"/><text x="{}" y="{:.1}" class="sla">SLA {sla:.1} h</text>"##,
            WIDTH - 90.0,
            y(sla) - 4.0,
            sy = y(sla)
        );
        for (series, colour, value) in [
            (
                "median",
                "#0b5cad",
                (|w: &Week| w.median) as fn(&Week) -> f64,
            ),
            ("p95", "#6f42c1", |w: &Week| w.p95),
            ("worst", "#a33a00", |w: &Week| w.worst),
        ] {
            let points: Vec<String> = weeks
                .iter()
                .enumerate()
                .map(|(i, w)| format!("{:.1},{:.1}", x(i), y(value(w))))
                .collect();
            if points.len() > 1 {
                let _ = write!(
                    svg,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{series}</title></polyline>"#,
                    points.join(" ")
                );
            }
            for (i, w) in weeks.iter().enumerate() {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{} {series}: {:.2} h</title></circle>"#,
                    x(i),
                    y(value(w)),
                    escape(&w.label),
                    value(w)
                );
            }
        }
        for (i, w) in weeks.iter().enumerate() {
            if weeks.len() <= 12 || i % (weeks.len() / 12 + 1) == 0 {
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                    x(i),
                    HEIGHT - 8.0,
                    escape(&w.label)
                );
            }
        }
        // The legend, top right, each word in its series' colour.
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" class="median">median</text><text x="{}" y="{}" class="p95">p95</text><text x="{}" y="{}" class="worst">worst</text></svg>"##,
            WIDTH - 170.0,
            TOP + 10.0,
            WIDTH - 110.0,
            TOP + 10.0,
            WIDTH - 70.0,
            TOP + 10.0
        );
        Chart {
            connector: connector.to_string(),
            svg,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(effective_at: &str, seconds: i64) -> ReportRow {
        ReportRow {
            employee_id: "e".into(),
            connector: "wiki".into(),
            effective_at: effective_at.into(),
            received_at: effective_at.into(),
            source: "feed".into(),
            state: "done".into(),
            outcome: Some("removed".into()),
            removed_at: None,
            removed_at_from: None,
            time_to_revoke_seconds: Some(seconds),
            deadline: effective_at.into(),
            breach: false,
            note: None,
        }
    }

    #[test]
    fn one_point_per_week_per_series_and_the_sla_line() {
        let rows = [
            row("2026-11-02T09:00:00Z", 3600),
            row("2026-11-03T09:00:00Z", 7200),
            row("2026-11-10T09:00:00Z", 1800),
        ];
        let refs: Vec<&ReportRow> = rows.iter().collect();
        let chart = Chart::weekly("wiki <&>", &refs, 86_400);
        assert_eq!(chart.svg.matches("<circle").count(), 2 * 3);
        assert_eq!(chart.svg.matches("<polyline").count(), 3);
        assert!(chart.svg.contains("SLA 24.0 h"));
        assert!(chart.svg.contains("2026-W45 worst: 2.00 h"));
        assert!(chart.svg.contains("wiki &lt;&amp;&gt;") && !chart.svg.contains("wiki <&>"));
    }
}
