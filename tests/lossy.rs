//! A proxy on 127.0.0.1 that loses answers: it forwards every request to a vendor fake or server,
//! and for the requests it is told to lose, it waits until the vendor has answered (so the vendor
//! acted) and then resets the client's connection instead of passing the answer on. This is "the
//! vendor acted but the answer was lost" for any HTTP connector, in front of any fake.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy.
pub(crate) struct LossyProxy {
    /// `http://127.0.0.1:PORT`, to use in place of the upstream's address.
    pub(crate) uri: String,
    lost: Arc<AtomicUsize>,
    forwarded: Arc<std::sync::Mutex<Vec<String>>>,
}

impl LossyProxy {
    /// Forwards to `upstream` (scheme, host and port; paths are kept). The first `times` requests
    /// whose head (request line and headers, e.g. a SOAPAction) contains every one of `marks` reach
    /// the upstream, and then their connection is reset before any byte of the answer.
    pub(crate) async fn start(upstream: &str, marks: &[&str], times: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_end_matches('/').to_string();
        let marks: Vec<String> = marks.iter().map(|m| m.to_string()).collect();
        let lost = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(std::sync::Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (lost_c, forwarded_c) = (lost.clone(), forwarded.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (client, upstream, marks) = (client.clone(), upstream.clone(), marks.clone());
                let (lost, forwarded) = (lost_c.clone(), forwarded_c.clone());
                tokio::spawn(async move {
                    serve(stream, &client, &upstream, &marks, times, &lost, &forwarded).await;
                });
            }
        });
        Self {
            uri,
            lost,
            forwarded,
        }
    }

    /// How many answers were lost so far.
    pub(crate) fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }

    /// The request lines forwarded to the upstream, in order.
    pub(crate) fn forwarded(&self) -> Vec<String> {
        self.forwarded.lock().unwrap().clone()
    }
}

/// Serves one connection, one request at a time (keep-alive until the client closes).
async fn serve(
    mut stream: TcpStream,
    client: &reqwest::Client,
    upstream: &str,
    marks: &[String],
    times: usize,
    lost: &AtomicUsize,
    forwarded: &std::sync::Mutex<Vec<String>>,
) {
    while let Some((head, body)) = read_request(&mut stream).await {
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_string();
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return;
        };
        let mut request = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{upstream}{target}"),
        );
        for line in lines.filter(|l| !l.is_empty()) {
            if let Some((name, value)) = line.split_once(':') {
                let name = name.trim();
                if !["host", "content-length", "connection", "transfer-encoding"]
                    .iter()
                    .any(|h| name.eq_ignore_ascii_case(h))
                {
                    request = request.header(name, value.trim());
                }
            }
        }
        forwarded.lock().unwrap().push(request_line.clone());
        let Ok(answer) = request.body(body).send().await else {
            return;
        };
        let status = answer.status();
        let headers = answer.headers().clone();
        let Ok(bytes) = answer.bytes().await else {
            return;
        };
        let lose = marks.iter().all(|m| head.contains(m.as_str()))
            && lost
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < times).then_some(n + 1)
                })
                .is_ok();
        if lose {
            // The vendor has acted and answered; the client never hears of it.
            let _ = stream.set_zero_linger();
            return;
        }
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        for (name, value) in &headers {
            if ["content-length", "connection", "transfer-encoding"]
                .iter()
                .any(|h| name.as_str().eq_ignore_ascii_case(h))
            {
                continue;
            }
            out.push_str(&format!(
                "{}: {}\r\n",
                name.as_str(),
                value.to_str().unwrap_or("")
            ));
        }
        out.push_str(&format!("content-length: {}\r\n\r\n", bytes.len()));
        if stream.write_all(out.as_bytes()).await.is_err()
            || stream.write_all(&bytes).await.is_err()
        {
            return;
        }
    }
}

/// Reads one request: its head (up to the blank line) and its body (by Content-Length).
async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end - 4]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some((head, data[head_end..head_end + length].to_vec()))
}
