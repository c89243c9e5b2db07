//! Integration tests: one binary, a temp database and real exec programs per test.
#![allow(clippy::unwrap_used, clippy::panic)] // a failing test should stop at the failing step

mod audit_chain;
mod cli;
mod feed;
mod helpers;
mod queue;
mod retry;
mod scim;
