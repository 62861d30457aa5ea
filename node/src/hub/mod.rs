//! The national hub: verifies, stores and routes packets between agency nodes.

pub mod db;
