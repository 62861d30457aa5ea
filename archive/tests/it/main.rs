//! Integration tests of the archive crate: real signatures from the development PKI.

mod offline;
