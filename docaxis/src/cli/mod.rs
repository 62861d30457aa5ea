//! Command-line front ends, one module per `docaxis` subcommand family.

pub(crate) mod actions;
pub(crate) mod archive;
pub(crate) mod bench;
pub(crate) mod demo;
pub(crate) mod dsig;
#[cfg(test)]
mod dsig_tests;
pub(crate) mod edxml;
mod extract;
pub(crate) mod hub;
pub(crate) mod node;
pub(crate) mod pki;
pub(crate) mod server_rt;
pub(crate) mod signals;
pub(crate) mod users;
