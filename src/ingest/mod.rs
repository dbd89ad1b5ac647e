//! Ingest: the spool directory, noticing complete files, and the manifests beside them.

pub mod manifest;
mod nested;
pub mod spool;
pub mod watch;

pub use manifest::{Manifest, ManifestError};
pub use spool::{Claim, Claimed, Spool, Went};
