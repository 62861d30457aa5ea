//! Integration tests of `docaxis-node`: a node against a hub in the same process.

mod exchange;
