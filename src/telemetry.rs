//! Logging: logfmt text on a terminal, JSON otherwise; level from `RUST_LOG` or the config. JSON lines
//! carry their fields flat beside `timestamp`, `level`, `target` and `message`, as log shippers expect
//! (the removal a line is about, from its span, under `span`).
//! The text format is logfmt (`ts=... level=info msg="..." key=value`), written here: a visitor of a
//! few lines, stricter about quoting than a general formatter (every value with a space, `=`, a quote
//! or a control character is quoted and escaped, so a line always splits back into its pairs).

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Installs the global subscriber (once). Logs go to stderr so command output on stdout stays clean.
pub fn init(format: LogFormat, level: &str) {
    // The scheduler crate logs its own start-up at INFO; only its warnings matter to an operator.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{level},tokio_cron_scheduler=warn")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // The start-up line (version, addresses, database) is written at any level: the first thing to
    // know about a daemon, and one line.
    let filter = match "offboard::startup=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    // A line that cannot be written (stderr closed: `offboard run | head`, a log collector that went away)
    // is dropped. Reporting that failure would print to the same closed stderr, which panics the task
    // that logged: the signal handler, a worker or `main` itself.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Plain text: logfmt has no colours, and span fields are written as they are formatted.
        .with_ansi(false)
        .log_internal_errors(false);
    let _ = if json {
        // The removal an event happened in (connector, removal_id, attempt) stays under `span`.
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.event_format(Logfmt).try_init()
    };
}

/// The logfmt line of an event: `ts`, `level`, `target`, `msg`, then the event's fields in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut pairs = Pairs::default();
        event.record(&mut pairs);
        write!(
            writer,
            "ts={} level={} target={}",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            meta.level().as_str().to_ascii_lowercase(),
            quoted(meta.target()),
        )?;
        if let Some(message) = &pairs.message {
            write!(writer, " msg={}", quoted(message))?;
        }
        for (key, value) in &pairs.fields {
            write!(writer, " {key}={}", quoted(value))?;
        }
        // The fields of the spans the event happened in (the removal: connector, removal_id,
        // attempt), as the field formatter wrote them (`key=value`, strings quoted).
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) =
                    extensions.get::<tracing_subscriber::fmt::FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, " {fields}")?;
                }
            }
        }
        writeln!(writer)
    }
}

/// An event's fields, as text.
#[derive(Default)]
struct Pairs {
    message: Option<String>,
    fields: Vec<(&'static str, String)>,
}

impl Visit for Pairs {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Pairs {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.fields.push((field.name(), value));
        }
    }
}

/// A logfmt value: as it is when it needs no quoting, else in double quotes with `"`, `\` and control
/// characters escaped.
fn quoted(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if plain {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().map(|b| b.clone()).unwrap_or_default())
                .unwrap_or_default()
        }
    }

    #[test]
    fn text_lines_are_logfmt_with_every_awkward_value_quoted() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .event_format(Logfmt)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("removal", removal_id = 42);
            let _entered = span.enter();
            tracing::warn!(
                connector = "wiki",
                attempts = 3,
                error = %"HTTP 500: bad \"gateway\"\nnext line",
                "Feed poll failed."
            );
        });
        let line = buffer.text();
        assert!(line.starts_with("ts="), "{line}");
        assert!(line.contains(" level=warn "), "{line}");
        assert!(line.contains(" msg=\"Feed poll failed.\""), "{line}");
        assert!(line.contains(" connector=wiki "), "{line}");
        assert!(line.contains(" attempts=3 "), "{line}");
        assert!(
            line.contains(" error=\"HTTP 500: bad \\\"gateway\\\"\\nnext line\" "),
            "{line}"
        );
        assert!(
            line.trim_end().ends_with(" removal_id=42"),
            "the span's fields: {line}"
        );
        assert_eq!(line.lines().count(), 1, "one line per event");
    }

    #[test]
    fn json_lines_carry_their_fields_flat() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(batch_id = 7, connector = "wiki", "Batch ingested.");
        });
        let line: serde_json::Value = serde_json::from_str(buffer.text().trim()).unwrap();
        assert_eq!(line["message"], "Batch ingested.");
        assert_eq!(line["batch_id"], 7);
        assert_eq!(line["connector"], "wiki");
        assert_eq!(line["level"], "INFO");
        assert!(line.get("fields").is_none(), "flat: {line}");
    }
}
