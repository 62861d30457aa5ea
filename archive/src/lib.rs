//! Records: one self-verifying ASiC-E container per document, holding the exchanged bytes and
//! the hub's evidence about them, and its offline verification (issue 15).
//!
//! Records systems keep documents as legal evidence for decades, long after certificates
//! expire or are revoked and long after the hub that issued the receipts is gone. A container
//! therefore carries everything a verifier needs but the trusted CA: the signed packet, every
//! status and request about it, the hub's signed receipts (submission and each delivery),
//! each signer's certificates, the CRLs that were in force, a manifest with the SHA-256 of
//! every file and what it proves ([`manifest`]), and the records metadata of Nghị định
//! 30/2020 ([`metadata`]).
//!
//! - [`container`] — the zip in ASiC-E form, read with limits.
//! - [`manifest`] — `META-INF/evidence.xml`.
//! - [`metadata`] — `metadata.xml`.
//! - [`build()`] — a container from what a node stored.
//! - [`verify()`] — the offline check and the story it proves.
//!
//! This crate depends on no runtime, HTTP or database: a node builds containers, and
//! `docaxis archive verify` runs anywhere.

pub mod build;
pub mod container;
pub mod manifest;
pub mod metadata;
pub mod verify;
mod xml;

pub use build::{BuildError, Input, PacketIn, build};
pub use manifest::Role;
pub use metadata::Records;
pub use verify::{Report, Verdict, VerifyOptions, verify};
