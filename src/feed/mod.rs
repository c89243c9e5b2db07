//! HR feeds: fetch the configured source, read its rows, and hand them to intake.

pub mod csv;
pub mod import;
pub mod inactive;
pub mod intake;
pub mod json;
pub mod push;
pub mod rows;
mod visit;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::audit::DAEMON;
use crate::config::{Config, FeedConfig, FeedFormat, FeedSource, HttpAuth};
use crate::store::Store;
use intake::{Batch, BatchSource, BatchSummary, Record};
use rows::RowRules;

/// The largest feed document read, so a runaway export cannot exhaust memory.
pub const MAX_FEED_BYTES: usize = 512 * 1024 * 1024;

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// The feed was read and ingested.
    Ingested(BatchSummary),
    /// The server said the document has not changed since the last successful poll.
    Unchanged {
        /// The batch recording the poll.
        batch_id: i64,
    },
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

pub use crate::store::reads::FeedState;

/// A fetched document, or the server's word that it has not changed.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// 304 Not Modified: the same document as last time.
    NotModified,
    /// The document, with the validators to send next time.
    Body {
        /// Its bytes.
        bytes: Vec<u8>,
        /// ETag, if sent.
        etag: Option<String>,
        /// Last-Modified, if sent.
        last_modified: Option<String>,
    },
}

/// Reads the feed's bytes from its file or URL. For a URL, `state` adds If-None-Match /
/// If-Modified-Since and, with `cursor_param`, the incremental cursor.
pub async fn fetch(
    feed: &FeedConfig,
    http: &reqwest::Client,
    state: &FeedState,
) -> anyhow::Result<Fetched> {
    match &feed.source {
        FeedSource::File(path) => {
            let meta = tokio::fs::metadata(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?;
            if meta.len() > MAX_FEED_BYTES as u64 {
                anyhow::bail!("{} is larger than {} bytes", path.display(), MAX_FEED_BYTES);
            }
            let bytes = tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(Fetched::Body {
                bytes,
                etag: None,
                last_modified: None,
            })
        }
        FeedSource::Http { url, auth } => {
            let mut url = reqwest::Url::parse(url).context("invalid feed url")?;
            if let (
                crate::config::FeedFormat::Json {
                    cursor_param: Some(param),
                    ..
                },
                Some(since),
            ) = (&feed.format, &state.last_success_at)
            {
                url.query_pairs_mut().append_pair(param, since);
            }
            let mut request = http.get(url).timeout(feed.timeout);
            request = match auth {
                Some(HttpAuth::Bearer { token }) => request.bearer_auth(token.expose()),
                Some(HttpAuth::Basic { username, password }) => {
                    request.basic_auth(username, Some(password.expose()))
                }
                None => request,
            };
            if let Some(etag) = &state.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &state.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
            }
            let where_ = describe_source(&feed.source);
            let mut response = request
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("GET {where_} failed: {}", without_url(&e)))?;
            let status = response.status();
            if status == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(Fetched::NotModified);
            }
            if !status.is_success() {
                anyhow::bail!("GET {where_} answered HTTP {status}");
            }
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                    .map(str::to_string)
            };
            let etag = header(reqwest::header::ETAG);
            let last_modified = header(reqwest::header::LAST_MODIFIED);
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
            Ok(Fetched::Body {
                bytes: body,
                etag,
                last_modified,
            })
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
    hex::encode(Sha256::digest(bytes))
}

/// Parses a feed document (CSV or JSON, as configured) into intake records, or the file error
/// that refuses the whole document.
pub fn read_records(
    bytes: &[u8],
    feed: &FeedConfig,
    now: DateTime<Utc>,
) -> Result<Vec<Record>, rows::FileError> {
    let rules = RowRules {
        statuses: &feed.statuses,
        timezone: feed.timezone,
        now,
    };
    Ok(match &feed.format {
        FeedFormat::Csv => {
            csv::read_csv_with_attributes(bytes, &feed.columns, &feed.attributes, &rules)?
                .into_iter()
                .map(|r| Record {
                    row: r.row,
                    line: Some(r.line),
                    result: r.result,
                })
                .collect()
        }
        FeedFormat::Json {
            records, fields, ..
        } => json::read_json(bytes, records, fields, &rules)?
            .into_iter()
            .map(|r| Record {
                row: r.row,
                line: None,
                result: r.result,
            })
            .collect(),
    })
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

/// Fetches and parses the configured feed; `Ok(None)` when the server says it has not changed.
pub async fn read_feed(
    feed: &FeedConfig,
    http: &reqwest::Client,
    state: &FeedState,
    now: DateTime<Utc>,
) -> Result<Option<(ReadFeed, FeedState)>, ReadError> {
    let source_ref = describe_source(&feed.source);
    let fetched = fetch(feed, http, state).await.map_err(|e| ReadError {
        source_ref: source_ref.clone(),
        code: "fetch_failed".into(),
        message: format!("{e:#}"),
    })?;
    let Fetched::Body {
        bytes,
        etag,
        last_modified,
    } = fetched
    else {
        return Ok(None);
    };
    let records = read_records(&bytes, feed, now).map_err(|e| ReadError {
        source_ref: source_ref.clone(),
        code: e.code().into(),
        message: e.to_string(),
    })?;
    let next = FeedState {
        etag,
        last_modified,
        last_success_at: Some(crate::store::ts(now)),
    };
    Ok(Some((
        ReadFeed {
            source_ref,
            content_sha256: sha256_hex(&bytes),
            records,
        },
        next,
    )))
}

/// The saved state of a feed source.
pub async fn load_state(store: &Store, source_ref: &str) -> anyhow::Result<FeedState> {
    store.feed_state(source_ref).await
}

/// Polls the configured feed once: fetch, read, ingest. A fetch or file error records a failed
/// batch and changes nothing else; an unchanged document (304) records an `unchanged` batch.
pub async fn poll_once(
    store: &Store,
    config: &Config,
    http: &reqwest::Client,
    now: DateTime<Utc>,
) -> anyhow::Result<PollOutcome> {
    let feed = config.feed.as_ref().context("no [feed] is configured")?;
    let source_ref = describe_source(&feed.source);
    let state = load_state(store, &source_ref).await?;
    let (read, next) = match read_feed(feed, http, &state, now).await {
        Ok(Some(read)) => read,
        Ok(None) => {
            let batch_id = store
                .record_unchanged_batch(&source_ref, DAEMON, now)
                .await?;
            return Ok(PollOutcome::Unchanged { batch_id });
        }
        Err(e) => {
            let batch_id = store
                .record_failed_batch(
                    BatchSource::Feed.as_str(),
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
        store,
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
    store.save_feed_state(&source_ref, &next, now).await?;
    Ok(PollOutcome::Ingested(summary))
}
