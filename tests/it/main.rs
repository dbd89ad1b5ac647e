//! Integration tests: the real binary on real media, checked with an independent decoder.
//! One test binary (the heavy libav link happens once).

mod bench;
mod bounds;
mod browser;
mod campaign;
mod catalog;
mod catalog_support;
mod cli;
mod common;
mod corpus;
mod daemon;
mod delivery;
mod delivery_daemon;
mod fixtures;
mod http;
mod pg_support;
mod presets;
mod privacy;
mod receiver;
mod several_daemons;
mod shared_store;
mod spool_support;
mod store;
mod store_support;
mod terminal;
