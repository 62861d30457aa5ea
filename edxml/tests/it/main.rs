//! Integration tests of `docaxis-edxml`: one test binary, one module per area.

mod conformance;
mod mutation;
mod negative;
mod roundtrip;
mod schema_validation;
