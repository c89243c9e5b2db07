//! HR feeds: fetch the configured source, read its rows, and hand them to intake.

pub mod csv;
pub mod intake;
pub mod json;
pub mod push;
pub mod rows;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

use crate::audit::DAEMON;
use crate::config::{Config, FeedConfig, FeedSource, HttpAuth};
use intake::{Batch, BatchSource, BatchSummary, Record};
use rows::RowRules;

/// The largest feed document read, so a runaway export cannot exhaust memory.
pub const MAX_FEED_BYTES: usize = 512 * 1024 * 1024;

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// The feed was read and ingested.
    Ingested(BatchSummary),
    /// The feed could not be read; a failed batch was recorded and nothing changed.
    Failed {
        /// The failed batch.
        batch_id: i64,
        /// Why.
        error: String,
    },
}

/// Where a feed is, for logs and the batch record: a path, or a URL without credentials or query.
pub fn describe_source(source: &FeedSource) -> String {
    match source {
        FeedSource::File(path) => path.display().to_string(),
        FeedSource::Http { url, .. } => match reqwest::Url::parse(url) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.set_query(None);
                u.to_string()
            }
            Err(_) => "<unparsable url>".into(),
        },
    }
}

/// Reads the feed's bytes from its file or URL.
pub async fn fetch(feed: &FeedConfig, http: &reqwest::Client) -> anyhow::Result<Vec<u8>> {
    match &feed.source {
        FeedSource::File(path) => {
            let meta = tokio::fs::metadata(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?;
            if meta.len() > MAX_FEED_BYTES as u64 {
                anyhow::bail!("{} is larger than {} bytes", path.display(), MAX_FEED_BYTES);
            }
            tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))
        }
        FeedSource::Http { url, auth } => {
            let mut request = http.get(url).timeout(feed.timeout);
            request = match auth {
                Some(HttpAuth::Bearer { token }) => request.bearer_auth(token.expose()),
                Some(HttpAuth::Basic { username, password }) => {
                    request.basic_auth(username, Some(password.expose()))
                }
                None => request,
            };
            let where_ = describe_source(&feed.source);
            let mut response = request
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("GET {where_} failed: {}", without_url(&e)))?;
            let status = response.status();
            if !status.is_success() {
                anyhow::bail!("GET {where_} answered HTTP {status}");
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| anyhow::anyhow!("GET {where_} failed: {}", without_url(&e)))?
            {
                if body.len() + chunk.len() > MAX_FEED_BYTES {
                    anyhow::bail!(
                        "GET {where_}: the document is larger than {MAX_FEED_BYTES} bytes"
                    );
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        }
    }
}

/// A reqwest error's message without the URL (which may carry credentials in its query).
fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), "<feed url>");
    }
    if e.is_timeout() {
        "timed out".into()
    } else {
        msg
    }
}

/// SHA-256 of the input, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads a CSV document into intake records, or the file error that stops the whole file.
pub fn read_csv_records(
    bytes: &[u8],
    feed: &FeedConfig,
    now: DateTime<Utc>,
) -> Result<Vec<Record>, rows::FileError> {
    let rules = RowRules {
        statuses: &feed.statuses,
        timezone: feed.timezone,
        now,
    };
    Ok(csv::read_csv(bytes, &feed.columns, &rules)?
        .into_iter()
        .map(|r| Record {
            row: r.row,
            line: Some(r.line),
            result: r.result,
        })
        .collect())
}

/// A feed document read and parsed, ready for intake.
#[derive(Debug, Clone)]
pub struct ReadFeed {
    /// Where it came from (no credentials).
    pub source_ref: String,
    /// SHA-256 of the bytes.
    pub content_sha256: String,
    /// The records.
    pub records: Vec<Record>,
}

/// Why a feed could not be read: an error code for the batch record and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// Where it came from (no credentials).
    pub source_ref: String,
    /// Machine-readable code: fetch_failed, or a file error code.
    pub code: String,
    /// For people.
    pub message: String,
}

/// Fetches and parses the configured feed.
pub async fn read_feed(
    feed: &FeedConfig,
    http: &reqwest::Client,
    now: DateTime<Utc>,
) -> Result<ReadFeed, ReadError> {
    let source_ref = describe_source(&feed.source);
    let bytes = fetch(feed, http).await.map_err(|e| ReadError {
        source_ref: source_ref.clone(),
        code: "fetch_failed".into(),
        message: format!("{e:#}"),
    })?;
    let records = read_csv_records(&bytes, feed, now).map_err(|e| ReadError {
        source_ref: source_ref.clone(),
        code: e.code().into(),
        message: e.to_string(),
    })?;
    Ok(ReadFeed {
        source_ref,
        content_sha256: sha256_hex(&bytes),
        records,
    })
}

/// Polls the configured feed once: fetch, read, ingest. A fetch or file error records a failed
/// batch and changes nothing else.
pub async fn poll_once(
    pool: &SqlitePool,
    config: &Config,
    http: &reqwest::Client,
    now: DateTime<Utc>,
) -> anyhow::Result<PollOutcome> {
    let feed = config.feed.as_ref().context("no [feed] is configured")?;
    let read = match read_feed(feed, http, now).await {
        Ok(read) => read,
        Err(e) => {
            let batch_id = intake::record_failed_batch(
                pool,
                BatchSource::Feed,
                Some(&e.source_ref),
                DAEMON,
                &e.code,
                &e.message,
                now,
            )
            .await?;
            return Ok(PollOutcome::Failed {
                batch_id,
                error: e.message,
            });
        }
    };
    let summary = intake::ingest(
        pool,
        &config.connectors,
        &config.safety,
        Batch {
            source: BatchSource::Feed,
            source_ref: Some(read.source_ref),
            actor: DAEMON.to_string(),
            content_sha256: Some(read.content_sha256),
            records: read.records,
        },
        now,
    )
    .await?;
    Ok(PollOutcome::Ingested(summary))
}
