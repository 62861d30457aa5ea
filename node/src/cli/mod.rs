//! Command-line front ends, one module per `docaxis` subcommand family.

pub mod actions;
pub mod bench;
pub mod demo;
pub mod dsig;
pub mod edxml;
pub mod hub;
pub mod node;
pub mod pki;
