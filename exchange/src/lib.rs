//! What the hub and the agency node share: the wire protocol between them, packet identity,
//! the business lifecycle rules, the reading of revoke/update/replace requests, and time.
//!
//! Architecture invariant: this crate depends on `edxml` and plain data crates only — no async
//! runtime, no HTTP, no database — so both sides apply exactly the same rules, and the rules
//! are tested as pure functions.

pub mod action;
pub mod clock;
pub mod config_file;
pub mod document_id;
pub mod lifecycle;
pub mod packet_id;
pub mod protocol;
pub mod status;

pub use action::{ActionRef, action_of, staff_summary};
pub use clock::Timestamp;
pub use packet_id::PacketId;
