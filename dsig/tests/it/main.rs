//! Integration tests of `docaxis-dsig`: one test binary, one module per area;
//! `support` is the throw-away PKI and packets they share.

mod attacks;
mod interop;
mod pki_dev_certs;
mod pki_lifecycle;
mod support;
mod trust_vectors;
