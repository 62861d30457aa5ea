//! Login sessions for the web pages: kept in the server's memory, named by a random cookie.
//!
//! Invariants:
//! - The cookie carries only a random 256-bit id; it is `HttpOnly`, `SameSite=Strict`,
//!   `Path=/`, and `Secure` whenever the pages are served over TLS.
//! - Every session has its own random CSRF token; every form carries it and every POST is
//!   refused unless it matches (compared in constant time). The login form, before any
//!   session exists, uses a double-submit token (a cookie and a field that must agree).
//! - A session ends at logout, after [`IDLE`] without a request, or [`LIFETIME`] after login.
//!   Sessions do not survive a restart of the server: operators log in again.
//! - POSTs whose `Origin` names another site are refused as well.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(3600);
/// A session ends this long after its login, however busy.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
const MAX_SESSIONS: usize = 1000;

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who logged in (shown on the pages).
    pub who: String,
    /// The account behind the session (its login name), for the owner to look up.
    pub user: String,
    /// The token every form of this session must carry.
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    /// Whether a form's token is this session's.
    pub fn csrf_ok(&self, presented: &str) -> bool {
        net::token::matches(presented, &self.csrf)
    }
}

/// The sessions of one web server.
#[derive(Debug)]
pub struct Sessions {
    cookie: String,
    secure: bool,
    live: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes from the operating system, as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // aws-lc's generator only fails if the operating system's does; a page cannot be
    // served safely then.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        panic!("the operating system's random generator failed");
    }
    hex::encode(bytes)
}

impl Sessions {
    /// Sessions named by the cookie `cookie`; `secure` when served over TLS.
    pub fn new(cookie: &str, secure: bool) -> Sessions {
        Sessions {
            cookie: cookie.to_string(),
            secure,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_cookie(&self, name: &str, value: String, max_age: Option<Duration>) -> HeaderValue {
        let mut c = Cookie::build((name.to_string(), value))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/")
            .secure(self.secure);
        if let Some(age) = max_age {
            c = c.max_age(cookie::time::Duration::seconds(age.as_secs() as i64));
        }
        HeaderValue::from_str(&c.build().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
    }

    /// Starts a session for `who`: the session and the `Set-Cookie` value to send.
    pub fn create(&self, who: &str) -> (Session, HeaderValue) {
        self.create_for(who, who)
    }

    /// Starts a session of account `user`, shown as `who`.
    pub fn create_for(&self, who: &str, user: &str) -> (Session, HeaderValue) {
        let id = random_token();
        let now = Instant::now();
        let s = Session {
            who: who.to_string(),
            user: user.to_string(),
            csrf: random_token(),
            created: now,
            last_seen: now,
        };
        let mut t = self.table();
        t.retain(|_, s| alive(s, now));
        if t.len() >= MAX_SESSIONS
            && let Some(oldest) = t
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            t.remove(&oldest);
        }
        t.insert(id.clone(), s.clone());
        (s, self.set_cookie(&self.cookie, id, Some(LIFETIME)))
    }

    /// The live session the request's cookie names, if any (and marks it used).
    pub fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let id = Self::cookie_value(headers, &self.cookie)?;
        let now = Instant::now();
        let mut t = self.table();
        match t.get_mut(&id) {
            Some(s) if alive(s, now) => {
                s.last_seen = now;
                Some(s.clone())
            }
            Some(_) => {
                t.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Ends the request's session; the `Set-Cookie` value that clears the cookie.
    pub fn end(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(id) = Self::cookie_value(headers, &self.cookie) {
            self.table().remove(&id);
        }
        self.set_cookie(&self.cookie, String::new(), Some(Duration::ZERO))
    }

    /// Ends every session of account `user` but the request's own (the person changed their
    /// own password: other browsers, perhaps a stolen session, are logged out).
    pub fn end_others(&self, user: &str, headers: &HeaderMap) {
        let keep = Self::cookie_value(headers, &self.cookie);
        self.table()
            .retain(|id, s| s.user != user || keep.as_deref() == Some(id.as_str()));
    }

    /// Ends every session of account `user` (it was disabled or its password changed).
    pub fn end_all(&self, user: &str) {
        self.table().retain(|_, s| s.user != user);
    }

    fn login_cookie(&self) -> String {
        format!("{}_login", self.cookie)
    }

    /// A token for the login form and the cookie that must come back with it.
    pub fn login_form(&self) -> (String, HeaderValue) {
        let token = random_token();
        let cookie = self.set_cookie(&self.login_cookie(), token.clone(), None);
        (token, cookie)
    }

    /// Whether the login form's token matches its cookie.
    pub fn login_form_ok(&self, headers: &HeaderMap, presented: &str) -> bool {
        Self::cookie_value(headers, &self.login_cookie())
            .is_some_and(|c| !c.is_empty() && net::token::matches(presented, &c))
    }

    /// Live sessions now.
    pub fn count(&self) -> usize {
        let now = Instant::now();
        self.table().values().filter(|s| alive(s, now)).count()
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_seen) < IDLE && now.duration_since(s.created) < LIFETIME
}

/// A form that carries nothing but its CSRF token (logout).
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// A redirect to `to` that sets (or clears) a session cookie.
pub fn redirect_setting(to: &str, cookie: HeaderValue) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut r = axum::response::Redirect::to(to).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    r
}

/// Middleware for every router serving pages: an HTTP/2 request names its host in the URI's
/// authority (`:authority`), not in a `Host` header; this copies it into `Host` so that
/// [`same_origin`] sees the same thing over HTTP/1.1 and HTTP/2.
pub async fn host_from_authority(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !req.headers().contains_key(header::HOST)
        && let Some(v) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    next.run(req).await
}

/// False when a request's `Origin` (or, without it, `Referer`) names another host than the
/// one it was sent to. Browsers send `Origin` on every POST.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match source {
        None => true,
        Some("null") => false,
        Some(s) => {
            let rest = s
                .strip_prefix("https://")
                .or_else(|| s.strip_prefix("http://"))
                .unwrap_or("");
            rest.split('/').next() == Some(host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(set: &HeaderValue) -> HeaderMap {
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        h
    }

    #[test]
    fn a_session_is_found_by_its_cookie_until_logout() {
        let s = Sessions::new("c", false);
        let (session, set) = s.create("operator");
        let text = set.to_str().unwrap();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(text.contains(attr), "{text}");
        }
        assert!(!text.contains("Secure"), "{text}");
        let h = with_cookie(&set);
        let found = s.get(&h).unwrap();
        assert_eq!(found.csrf, session.csrf);
        assert!(found.csrf_ok(&session.csrf) && !found.csrf_ok("x"));
        let cleared = s.end(&h);
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
        assert!(s.get(&h).is_none());
        assert!(
            Sessions::new("c", true)
                .create("o")
                .1
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }

    #[test]
    fn unknown_cookies_and_foreign_origins_are_refused() {
        let s = Sessions::new("c", false);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("c=deadbeef; other=1"),
        );
        assert!(s.get(&h).is_none());
        let (token, cookie) = s.login_form();
        let lh = with_cookie(&cookie);
        assert!(s.login_form_ok(&lh, &token));
        assert!(!s.login_form_ok(&lh, "nope"));
        assert!(!s.login_form_ok(&HeaderMap::new(), &token));

        let mut o = HeaderMap::new();
        o.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&o));
        o.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&o));
        o.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&o));
        o.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&o));
    }
}
