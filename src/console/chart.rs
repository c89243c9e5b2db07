//! The time-to-revoke chart, drawn on the server as SVG (no script): per week of the effective date,
//! the median, the 95th percentile and the worst time to revoke of one connector (computed by the
//! database: `Store::revoke_weeks`), with the SLA as a dashed line. Our own few lines: a plotting crate would bring fonts and a renderer for three lines.

use std::fmt::Write;

use crate::store::revoke::RevokeWeek;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;

/// One connector's chart.
#[derive(Clone)]
pub(crate) struct Chart {
    /// The connector.
    pub(crate) connector: String,
    /// The `<svg>` element, its text escaped.
    pub(crate) svg: String,
}

/// The median, 95th percentile and worst of a week (labelled by its Monday), in hours.
struct Week {
    label: String,
    median: f64,
    p95: f64,
    worst: f64,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Chart {
    /// The chart of one connector's `weeks` (from `Store::revoke_weeks`); `sla_seconds` drawn as a line.
    pub(crate) fn weekly(connector: &str, weeks: &[&RevokeWeek], sla_seconds: u64) -> Chart {
        let hours = |s: Option<i64>| s.unwrap_or(0) as f64 / 3600.0;
        let weeks: Vec<Week> = weeks
            .iter()
            .map(|w| Week {
                label: w.starts().format("%Y-%m-%d").to_string(),
                median: hours(w.median_s),
                p95: hours(w.p95_s),
                worst: hours(w.worst_s),
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

    fn week(week: i64, median: i64, p95: i64, worst: i64) -> RevokeWeek {
        RevokeWeek {
            connector: "wiki <&>".into(),
            week,
            n: 3,
            median_s: Some(median),
            p95_s: Some(p95),
            worst_s: Some(worst),
        }
    }

    #[test]
    fn one_point_per_week_per_series_and_the_sla_line() {
        let weeks = [week(2913, 3600, 7200, 7200), week(2914, 1800, 1800, 1800)];
        let refs: Vec<&RevokeWeek> = weeks.iter().collect();
        let chart = Chart::weekly("wiki <&>", &refs, 86_400);
        assert_eq!(chart.svg.matches("<circle").count(), 2 * 3);
        assert_eq!(chart.svg.matches("<polyline").count(), 3);
        assert!(chart.svg.contains("SLA 24.0 h"));
        assert_eq!(weeks[0].starts().to_string(), "2025-11-03");
        assert!(
            chart.svg.contains("2025-11-03 worst: 2.00 h"),
            "{}",
            chart.svg
        );
        assert!(chart.svg.contains("wiki &lt;&amp;&gt;") && !chart.svg.contains("wiki <&>"));
    }
}
