//! End-to-end tests: real `docaxis` processes on loopback, one test binary, one module per
//! area. Shared harness in `src/lib.rs`.

mod alerts;
mod architecture;
mod cli_packets;
mod console;
mod demo;
mod desk;
mod exchange_crash;
mod exchange_happy;
mod exchange_outages;
mod exchange_security;
mod hardening;
mod hub_crash;
mod hub_replicas;
mod hub_security;
mod legacy;
mod lifecycle_actions;
mod lifecycle_cli;
mod metrics;
mod readme;
mod records;
