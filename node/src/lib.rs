//! DocAxis: inter-agency electronic document exchange over edXML (QCVN 102:2016).
//!
//! One crate plays both roles, the national **hub** and an agency **node**. This library holds
//! everything; `src/main.rs` is a thin command-line front end over it.

pub mod net;
pub mod store;
