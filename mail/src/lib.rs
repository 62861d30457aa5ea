//! Outgoing email, shared by the hub (operators' alerts) and the nodes (clerks' notices).
//!
//! - [`config`]: the `[mail]` section of `hub.toml` / `node.toml` (SMTP server, security, sender).
//! - [`queue`]: the mail queue, a table in the caller's own redb store. A mail is queued in the
//!   **same transaction** as the state change it reports (an alert opening, a document
//!   arriving), so the two are committed together or not at all. [`queue::MailStore`] is the
//!   queue as the sender uses it: over a redb store, or over the hub's PostgreSQL tables.
//! - [`sender`]: the background task that sends what is due over SMTP (lettre) and retries with
//!   backoff.
//!
//! Invariants:
//! - A mail leaves the queue only after the SMTP server accepted it. Delivery is therefore
//!   at-least-once: a crash between the server's acceptance and the queue's commit sends that
//!   one mail again on restart, with the same `Message-ID`, so mail clients can tell.
//! - Sending never blocks the exchange: it runs in its own task, a slow or absent server only
//!   delays mail, and each attempt has a timeout.
//! - Plain SMTP (no TLS) is refused for anything but a loopback server: credentials and
//!   document subjects never cross a network in clear.

pub mod config;
pub mod queue;
pub mod sender;

pub use config::{MailConfig, Security};
pub use queue::{Mail, QueuedMail};
pub use sender::{MailStats, Mailer};
