//! Command-line front ends, one module per `docaxis` subcommand family.

pub mod pki;
