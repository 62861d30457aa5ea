//! DocAxis: inter-agency electronic document exchange over edXML (QCVN 102:2016).
//!
//! One crate plays both roles, the national **hub** and an agency **node**. This library holds
//! everything; `src/main.rs` is a thin command-line front end over it.

pub mod bench;
pub mod cli;
pub mod compose;
pub mod dsig;
pub mod edxml;
pub mod hub;
pub mod net;
pub mod node;
pub mod packet_id;
pub mod pki;
pub mod protocol;
pub mod receipt;
pub mod schema;
pub mod store;
