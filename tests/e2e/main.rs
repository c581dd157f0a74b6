#![allow(unreachable_pub, missing_docs)]
//! End-to-end tests: each starts the real `causeway` binary on free ports
//! and talks to it as clients in production would.

mod config;
mod connectors;
mod crash;
mod dashboard;
mod errors;
mod fuzz;
mod harness;
mod layout;
mod polyglot;
mod purge;
mod restart;
mod sdk_rust;
mod shutdown;
mod tenants;
mod tls;
