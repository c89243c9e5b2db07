//! The SCIM response readers: any status, Date header and body give a reading or a classified error,
//! never a panic. Input: two bytes of status, then an optional `Date: ...` line, then the body.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use offboard::connectors::http::HttpResponse;
use offboard::connectors::scim::read_answers;
use reqwest::header::{DATE, HeaderMap, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let (status, rest) = match data {
        [a, b, rest @ ..] => (100 + u16::from_be_bytes([*a, *b]) % 500, rest),
        _ => (200, data),
    };
    let mut headers = HeaderMap::new();
    let mut body = rest;
    if let Some(line) = rest.strip_prefix(b"Date: ") {
        let end = line.iter().position(|b| *b == b'\n').unwrap_or(line.len());
        if let Ok(value) = HeaderValue::from_bytes(&line[..end]) {
            headers.insert(DATE, value);
        }
        body = line.get(end + 1..).unwrap_or_default();
    }
    let response = HttpResponse {
        status,
        headers,
        body: body.to_vec(),
    };
    let now = Utc
        .timestamp_opt(1_767_225_600, 0)
        .single()
        .unwrap_or_default();
    for answer in read_answers(&response, now) {
        if let Err(e) = answer {
            assert!(!e.reason.is_empty());
        }
    }
});
