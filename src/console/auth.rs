//! Who is asking, and may they: the identity of a request (a trusted reverse proxy's header, or a
//! session cookie from a login token), the role it has, and the CSRF check of every form.
//!
//! Sessions and CSRF tokens are our own few lines on `ring`'s HMAC rather than a session crate: a
//! session is a signed cookie (name, role, expiry) with nothing stored, so several replicas accept it
//! when they share `console.session_key`; the CSRF token is a random cookie (SameSite=Strict) that every
//! form repeats, and a POST whose Origin is another site is refused before that.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use ring::hmac;
use subtle::ConstantTimeEq;

use super::ConsoleState;
use crate::config::{ConsoleAuth, ConsoleConfig, Role};

const SESSION_COOKIE: &str = "offboard_session";
const CSRF_COOKIE: &str = "offboard_csrf";

/// The person behind a request and their role.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Their name (the actor of what they do).
    pub name: String,
    /// What they may do.
    pub role: Role,
}

/// Signs and reads session cookies.
pub(crate) struct Sessions {
    key: hmac::Key,
    hours: i64,
}

impl Sessions {
    pub(crate) fn new(console: &ConsoleConfig) -> Sessions {
        let key = match &console.session_key {
            Some(secret) => hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes()),
            None => {
                let bytes: [u8; 32] = rand::random();
                hmac::Key::new(hmac::HMAC_SHA256, &bytes)
            }
        };
        Sessions {
            key,
            hours: i64::from(console.session_hours),
        }
    }

    fn issue(&self, name: &str, role: Role, now: chrono::DateTime<chrono::Utc>) -> String {
        let expires = (now + chrono::Duration::hours(self.hours)).timestamp();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{name}\u{1f}{}\u{1f}{expires}", role.as_str()));
        let tag = hex::encode(hmac::sign(&self.key, payload.as_bytes()).as_ref());
        format!("{payload}.{tag}")
    }

    fn read(&self, cookie: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Identity> {
        let (payload, tag) = cookie.split_once('.')?;
        let tag = hex::decode(tag).ok()?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).ok()?;
        let text = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()?,
        )
        .ok()?;
        let mut parts = text.split('\u{1f}');
        let (name, role, expires) = (parts.next()?, parts.next()?, parts.next()?);
        if expires.parse::<i64>().ok()? < now.timestamp() {
            return None;
        }
        let role = [Role::Viewer, Role::Operator, Role::Approver]
            .into_iter()
            .find(|r| r.as_str() == role)?;
        Some(Identity {
            name: name.to_string(),
            role,
        })
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; Secure; SameSite=Strict{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The request's CSRF token (its cookie, or a new one this response sets).
#[derive(Debug, Clone)]
pub(crate) struct CsrfToken(pub(crate) String);

/// Gives every request a CSRF token: the cookie's, or a new random one set on the response.
pub(super) async fn csrf_cookie(mut request: Request, next: Next) -> Response {
    let existing = cookie(request.headers(), CSRF_COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    let fresh = existing.is_none();
    let token = existing.unwrap_or_else(|| hex::encode(rand::random::<[u8; 32]>()));
    request.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.run(request).await;
    if fresh {
        response
            .headers_mut()
            .append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &token, None));
    }
    response
}

/// Refuses a form whose CSRF token is not the cookie's, or that comes from another site.
pub(super) fn check_form(headers: &HeaderMap, sent: &str) -> Result<(), FormRefused> {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o == host);
        if !same {
            return Err(FormRefused("This form was sent from another site."));
        }
    }
    let Some(expected) = cookie(headers, CSRF_COOKIE) else {
        return Err(FormRefused(
            "This form carries no CSRF token: reload the page and send it again.",
        ));
    };
    if expected.len() != sent.len() || !bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) {
        return Err(FormRefused(
            "This form's CSRF token is not this browser's: reload the page and send it again.",
        ));
    }
    Ok(())
}

/// A form refused by [`check_form`], and why.
#[derive(Debug)]
pub(super) struct FormRefused(&'static str);

impl IntoResponse for FormRefused {
    fn into_response(self) -> Response {
        (StatusCode::FORBIDDEN, format!("403: {}\n", self.0)).into_response()
    }
}

/// Why a request has no identity: a redirect to the login page, or a refusal.
pub enum NoIdentity {
    /// No session: log in first.
    Login,
    /// Not allowed, and why.
    Refused(String),
}

impl IntoResponse for NoIdentity {
    fn into_response(self) -> Response {
        match self {
            NoIdentity::Login => Redirect::to("/login").into_response(),
            NoIdentity::Refused(why) => {
                (StatusCode::FORBIDDEN, format!("403: {why}\n")).into_response()
            }
        }
    }
}

impl FromRequestParts<ConsoleState> for Identity {
    type Rejection = NoIdentity;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        match &state.console.auth {
            ConsoleAuth::Proxy {
                header,
                trusted,
                roles,
            } => {
                let peer = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip());
                if !peer.is_some_and(|ip| trusted.contains(&ip)) {
                    return Err(NoIdentity::Refused(
                        "the console answers only through its reverse proxy".into(),
                    ));
                }
                let name = parts
                    .headers
                    .get(header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        NoIdentity::Refused(format!("the proxy named nobody ({header})"))
                    })?;
                let role = roles
                    .iter()
                    .filter(|(who, _)| who == name || who == "*")
                    .map(|(_, role)| *role)
                    .max()
                    .ok_or_else(|| {
                        NoIdentity::Refused(format!("{name} has no role in the console"))
                    })?;
                Ok(Identity {
                    name: name.to_string(),
                    role,
                })
            }
            ConsoleAuth::Tokens(_) => cookie(&parts.headers, SESSION_COOKIE)
                .and_then(|c| state.sessions.read(c, state.clock.now()))
                .ok_or(NoIdentity::Login),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    csrf: String,
    error: Option<String>,
}

fn login_form(csrf: &str, error: Option<String>) -> Response {
    let page = LoginPage {
        csrf: csrf.to_string(),
        error,
    };
    match askama::Template::render(&page) {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}")).into_response(),
    }
}

/// `GET /login`.
pub(super) async fn login_page(
    State(state): State<ConsoleState>,
    axum::Extension(csrf): axum::Extension<CsrfToken>,
) -> Response {
    if matches!(state.console.auth, ConsoleAuth::Proxy { .. }) {
        return Redirect::to("/").into_response();
    }
    login_form(&csrf.0, None)
}

#[derive(serde::Deserialize)]
pub(super) struct LoginForm {
    csrf: String,
    token: String,
}

/// `POST /login`: a token from `tokens_file` gives a session.
pub(super) async fn login(
    State(state): State<ConsoleState>,
    axum::Extension(csrf): axum::Extension<CsrfToken>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(refusal) = check_form(&headers, &form.csrf) {
        return refusal.into_response();
    }
    let ConsoleAuth::Tokens(users) = &state.console.auth else {
        return Redirect::to("/").into_response();
    };
    // Every token is compared, in constant time, whichever matches.
    let mut found = None;
    for user in users {
        let token = user.token.expose().as_bytes();
        let same =
            token.len() == form.token.len() && bool::from(token.ct_eq(form.token.as_bytes()));
        if same {
            found = Some(user);
        }
    }
    let Some(user) = found else {
        tracing::warn!("A console login with an unknown token was refused.");
        let mut response = login_form(&csrf.0, Some("That token is not valid.".into()));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    };
    tracing::info!(user = %user.name, role = user.role.as_str(), "Console login.");
    let session = state
        .sessions
        .issue(&user.name, user.role, state.clock.now());
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &session, Some(state.sessions.hours * 3600)),
    );
    response
}

#[derive(serde::Deserialize)]
pub(super) struct CsrfForm {
    pub(super) csrf: String,
}

/// `POST /logout`: ends the session.
pub(super) async fn logout(headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let Err(refusal) = check_form(&headers, &form.csrf) {
        return refusal.into_response();
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions {
            key: hmac::Key::new(hmac::HMAC_SHA256, b"test key of the console sessions"),
            hours: 12,
        }
    }

    #[test]
    fn a_session_reads_back_until_it_expires_and_a_changed_one_does_not() {
        let s = sessions();
        let now = chrono::Utc::now();
        let cookie = s.issue("alice", Role::Approver, now);
        let who = s.read(&cookie, now).unwrap();
        assert_eq!((who.name.as_str(), who.role), ("alice", Role::Approver));
        assert!(s.read(&cookie, now + chrono::Duration::hours(13)).is_none());
        let (payload, tag) = cookie.split_once('.').unwrap();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "mallory\u{1f}approver\u{1f}{}",
            now.timestamp() + 3600
        ));
        assert!(s.read(&format!("{forged}.{tag}"), now).is_none());
        assert!(s.read(&format!("{payload}.00"), now).is_none());
    }

    #[test]
    fn a_form_from_another_site_or_without_the_cookie_token_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("localhost:9465"));
        let token = "a".repeat(64);
        assert!(check_form(&headers, &token).is_err(), "no cookie");
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{CSRF_COOKIE}={token}")).unwrap(),
        );
        assert!(check_form(&headers, &token).is_ok());
        assert!(check_form(&headers, &"b".repeat(64)).is_err());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(check_form(&headers, &token).is_err());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://localhost:9465"),
        );
        assert!(check_form(&headers, &token).is_ok());
    }
}
