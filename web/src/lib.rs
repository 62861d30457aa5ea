//! What every DocAxis web page shares, so the hub's operator console and the nodes' clerk
//! pages look and defend themselves the same way.
//!
//! - [`assets`]: the stylesheet and icon, embedded in the binary (nothing is fetched at run
//!   time, no CDN), and the security headers every page carries;
//! - [`session`]: server-side login sessions behind an HttpOnly, SameSite=Strict cookie, each
//!   with its own CSRF token;
//! - [`limit`]: refuses logins from an address after repeated wrong secrets;
//! - [`display`]: times, ages and counts the way a Vietnamese reader expects them.
//!
//! Pages are askama templates: they escape every value they show (HTML auto-escaping is on
//! for `.html` templates), and they extend `layout.html` from this crate's `templates/`
//! (each page crate lists that folder in its `askama.toml`).

pub mod assets;
pub mod display;
pub mod limit;
pub mod session;

pub use session::{Session, Sessions};

/// What `layout.html` shows around every page: the application's name, the navigation and
/// who is logged in (with the CSRF token of the logout form).
#[derive(Debug, Clone)]
pub struct Chrome {
    /// `Trục liên thông văn bản — Bảng điều hành`, …
    pub app: String,
    /// The English line under it.
    pub app_en: String,
    /// (path, Vietnamese label, English label, is this the current page)
    pub nav: Vec<NavItem>,
    /// The logged-in user, if any (no navigation is shown without one).
    pub who: Option<String>,
    /// The session's CSRF token (for the logout form).
    pub csrf: String,
    /// Where the logout form posts.
    pub logout: String,
}

/// One navigation link.
#[derive(Debug, Clone)]
pub struct NavItem {
    pub href: String,
    pub label: String,
    pub label_en: String,
    pub current: bool,
}

impl Chrome {
    /// Chrome with `nav` (path, label, English label), `current` marked.
    pub fn new(
        app: &str,
        app_en: &str,
        nav: &[(&str, &str, &str)],
        current: &str,
        session: Option<&Session>,
        logout: &str,
    ) -> Chrome {
        Chrome {
            app: app.to_string(),
            app_en: app_en.to_string(),
            nav: nav
                .iter()
                .map(|(href, label, en)| NavItem {
                    href: (*href).to_string(),
                    label: (*label).to_string(),
                    label_en: (*en).to_string(),
                    current: *href == current,
                })
                .collect(),
            who: session.map(|s| s.who.clone()),
            csrf: session.map(|s| s.csrf.clone()).unwrap_or_default(),
            logout: logout.to_string(),
        }
    }
}
