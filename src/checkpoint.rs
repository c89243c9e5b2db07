//! Signed checkpoints of the audit chain: the chain head (sequence number and hash) signed with Ed25519
//! and written outside the database (an append-only file, the journal), so that someone who can write
//! the database cannot rewrite, cut or back-date the evidence unnoticed: `audit verify --checkpoints`
//! checks the chain against them with the public key alone. Ed25519 is `ring`'s (already in the tree
//! through rustls); the key file format and the signed message are ours, and kept minimal so that an
//! auditor can check a checkpoint with any Ed25519 tool (docs/evidence.md).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::store::{Store, ts};

/// The first line of every signed message: what is signed, and in which version of the format.
const DOMAIN: &str = "offboard-checkpoint-v1";

/// A checkpoint: the audit chain's head at a moment, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version (1).
    pub v: u8,
    /// The sequence number of the chain's last row.
    pub seq: i64,
    /// That row's hash.
    pub head: String,
    /// When the checkpoint was made (RFC 3339 UTC).
    pub at: String,
    /// Which key signed it: the first 16 hex digits of the SHA-256 of the public key.
    pub key_id: String,
    /// The Ed25519 signature of [`Checkpoint::message`], Base64.
    pub sig: String,
}

impl Checkpoint {
    /// The bytes signed: `offboard-checkpoint-v1\n{seq}\n{head}\n{at}\n{key_id}`.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "{DOMAIN}\n{}\n{}\n{}\n{}",
            self.seq, self.head, self.at, self.key_id
        )
        .into_bytes()
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &PublicKey) -> Result<(), String> {
        if self.key_id != key.key_id {
            return Err(format!(
                "signed by key {}, not by the given public key {}",
                self.key_id, key.key_id
            ));
        }
        let sig = B64
            .decode(self.sig.as_bytes())
            .map_err(|_| "the signature is not Base64".to_string())?;
        UnparsedPublicKey::new(&ED25519, &key.bytes)
            .verify(&self.message(), &sig)
            .map_err(|_| "the signature does not match".to_string())
    }

    /// The checkpoint as one JSON line (without the newline).
    pub fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The private signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.key_id)
    }
}

impl SigningKey {
    /// Reads a key written by `offboard keygen`: the 32-byte Ed25519 seed, Base64, one line.
    pub fn from_secret(secret: &Secret) -> anyhow::Result<SigningKey> {
        let seed = B64
            .decode(secret.expose().trim().as_bytes())
            .ok()
            .filter(|s| s.len() == 32)
            .context(
                "the signing key is not a Base64 Ed25519 seed of 32 bytes (see `offboard keygen`)",
            )?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| anyhow::anyhow!("the signing key is not a valid Ed25519 seed"))?;
        let key_id = key_id(pair.public_key().as_ref());
        Ok(SigningKey { pair, key_id })
    }

    /// This key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs arbitrary bytes (an evidence record's message).
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// Signs the head `(seq, head)` as of `at`.
    pub fn sign(&self, seq: i64, head: &str, at: DateTime<Utc>) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            v: 1,
            seq,
            head: head.to_string(),
            at: ts(at),
            key_id: self.key_id.clone(),
            sig: String::new(),
        };
        checkpoint.sig = B64.encode(self.pair.sign(&checkpoint.message()).as_ref());
        checkpoint
    }
}

/// A public key, to verify checkpoints.
#[derive(Debug, Clone)]
pub struct PublicKey {
    bytes: Vec<u8>,
    /// Its id.
    pub key_id: String,
}

impl PublicKey {
    /// Reads a public key written by `offboard keygen`: 32 bytes, Base64, one line.
    pub fn read(path: &Path) -> anyhow::Result<PublicKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the public key {}", path.display()))?;
        let bytes = B64
            .decode(text.trim().as_bytes())
            .ok()
            .filter(|b| b.len() == 32)
            .with_context(|| {
                format!(
                    "{}: not a Base64 Ed25519 public key of 32 bytes (see `offboard keygen`)",
                    path.display()
                )
            })?;
        Ok(PublicKey {
            key_id: key_id(&bytes),
            bytes,
        })
    }
}

impl PublicKey {
    /// Checks an Ed25519 signature (Base64) of `message`.
    pub fn verify_bytes(&self, message: &[u8], sig_b64: &str) -> Result<(), String> {
        let sig = B64
            .decode(sig_b64.as_bytes())
            .map_err(|_| "the signature is not Base64".to_string())?;
        UnparsedPublicKey::new(&ED25519, &self.bytes)
            .verify(message, &sig)
            .map_err(|_| "the signature does not match".to_string())
    }
}

fn key_id(public: &[u8]) -> String {
    hex::encode(&Sha256::digest(public)[..8])
}

/// A new key pair: the private seed and the public key, both Base64.
pub fn keygen() -> anyhow::Result<(String, String)> {
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|_| anyhow::anyhow!("cannot make a key pair"))?;
    Ok((B64.encode(seed), B64.encode(pair.public_key().as_ref())))
}

/// Reads a checkpoint file: one JSON checkpoint per line (blank lines skipped); a bad line is an error
/// naming its number.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<Checkpoint>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the checkpoints {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not a checkpoint", path.display(), i + 1))
        })
        .collect()
}

/// Where checkpoints go besides the database, from `[checkpoints]`.
#[derive(Debug, Clone)]
pub struct Sinks {
    /// An append-only file (best on another volume, or a file the daemon may only append to).
    pub file: Option<PathBuf>,
    /// Also log each checkpoint at INFO (under systemd the journal keeps it).
    pub log: bool,
    /// An HTTP endpoint each checkpoint is POSTed to (as its JSON line), through the durable outbox.
    pub url: Option<HttpSink>,
}

/// The HTTP sink: a URL and an optional bearer token.
#[derive(Debug, Clone)]
pub struct HttpSink {
    /// Where to POST.
    pub url: String,
    /// `Authorization: Bearer`, if set.
    pub token: Option<Secret>,
    /// The client.
    pub client: reqwest::Client,
}

impl Sinks {
    /// Writes one checkpoint to every sink: the file is appended and flushed to disk.
    pub fn write(&self, checkpoint: &Checkpoint) -> anyhow::Result<()> {
        let line = checkpoint.line();
        if self.log {
            tracing::info!(checkpoint = %line, "Audit checkpoint signed.");
        }
        if let Some(path) = &self.file {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the checkpoint file {}", path.display()))?;
            writeln!(file, "{line}")
                .and_then(|()| file.sync_data())
                .with_context(|| {
                    format!("cannot append to the checkpoint file {}", path.display())
                })?;
        }
        Ok(())
    }
}

/// Signs the chain's head every `every_rows` rows or `every`, whichever comes first, and once more when
/// asked to stop; never on the path of a removal (it only reads the head).
pub struct Checkpointer {
    store: Store,
    key: SigningKey,
    sinks: Sinks,
    every_rows: i64,
    every: Duration,
    last: Option<i64>,
    leadership: crate::store::Leadership,
}

impl Checkpointer {
    /// A checkpointer for `store`.
    pub fn new(
        store: Store,
        key: SigningKey,
        sinks: Sinks,
        every_rows: u64,
        every: Duration,
    ) -> Self {
        Self {
            store,
            key,
            sinks,
            every_rows: i64::try_from(every_rows).unwrap_or(i64::MAX).max(1),
            every,
            last: None,
            leadership: crate::store::Leadership::always(),
        }
    }

    /// Signs the head now if it moved since the last checkpoint; returns the checkpoint made.
    pub async fn checkpoint(&mut self, now: DateTime<Utc>) -> anyhow::Result<Option<Checkpoint>> {
        let Some((seq, head)) = self.store.audit_head().await? else {
            return Ok(None);
        };
        if self.last == Some(seq) {
            return Ok(None);
        }
        let checkpoint = self.key.sign(seq, &head, now);
        if self.sinks.url.is_some() {
            // Into the outbox first: a sink that is down loses nothing and is caught up later.
            self.store.outbox_add(seq, &checkpoint.line(), now).await?;
        }
        self.sinks.write(&checkpoint)?;
        self.last = Some(seq);
        self.deliver().await;
        Ok(Some(checkpoint))
    }

    /// Sends the outbox's checkpoints to the HTTP sink in order, stopping at the first failure (tried
    /// again at the next turn). Returns how many were delivered.
    pub async fn deliver(&self) -> usize {
        let Some(sink) = &self.sinks.url else {
            return 0;
        };
        let unsent = match self.store.outbox_unsent().await {
            Ok(unsent) => unsent,
            Err(e) => {
                tracing::warn!(error = %e, "Reading the checkpoint outbox failed.");
                return 0;
            }
        };
        let mut delivered = 0;
        for (seq, line) in unsent {
            let mut request = sink
                .client
                .post(&sink.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .timeout(Duration::from_secs(10))
                .body(line);
            if let Some(token) = &sink.token {
                request = request.bearer_auth(token.expose());
            }
            let error = match request.send().await {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
                Err(e) => Some(crate::connectors::http::transport_reason(&e)),
            };
            if let Err(e) = self
                .store
                .outbox_record(seq, error.as_deref(), Utc::now())
                .await
            {
                tracing::warn!(error = %e, "Recording a checkpoint delivery failed.");
                break;
            }
            match error {
                None => delivered += 1,
                Some(error) => {
                    tracing::warn!(seq, error = %error, "The checkpoint sink did not take a checkpoint; trying again shortly.");
                    break;
                }
            }
        }
        delivered
    }

    /// Runs until `stop` turns true and returns itself, for [`Checkpointer::finish`] once the workers
    /// stopped. A failing sink is logged and tried again at the next turn; it never stops the daemon.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) -> Self {
        let tick = self
            .every
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(200));
        let mut since = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            if !self.leadership.leads() {
                // Another replica signs the checkpoints; this one picks up from the head if it takes over.
                self.last = None;
                continue;
            }
            let due = since.elapsed() >= self.every
                || match self.store.audit_head().await {
                    Ok(Some((seq, _))) => seq - self.last.unwrap_or(0) >= self.every_rows,
                    _ => false,
                };
            if due {
                match self.checkpoint(Utc::now()).await {
                    Ok(_) => since = tokio::time::Instant::now(),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "Signing or writing an audit checkpoint failed; trying again shortly.")
                    }
                }
            } else {
                self.deliver().await;
            }
        }
        self
    }

    /// Signs only while `leadership` says this replica leads (several replicas on one PostgreSQL
    /// database).
    pub fn with_leadership(mut self, leadership: crate::store::Leadership) -> Self {
        self.leadership = leadership;
        self
    }

    /// The last checkpoint, at shutdown (after the workers recorded their last attempts).
    pub async fn finish(mut self) {
        if !self.leadership.leads() {
            return;
        }
        if let Err(e) = self.checkpoint(Utc::now()).await {
            tracing::error!(error = %format!("{e:#}"), "The checkpoint at shutdown failed.");
        }
    }
}
