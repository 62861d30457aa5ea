//! Integration tests of `docaxis-net`.

mod mtls;
