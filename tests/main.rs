//! Integration tests: one binary, a temp database and real exec programs per test.
#![allow(clippy::unwrap_used, clippy::panic)] // a failing test should stop at the failing step

#[macro_use]
mod helpers;

mod audit_chain;
mod bad_config;
mod cli;
mod console;
mod crash;
mod echo360;
mod evidence;
mod fault_matrix;
mod feed;
mod intake_rules;
mod lossy;
mod notify;
mod openconext;
mod ops;
mod panopto;
mod push;
mod push_load;
mod quarantine;
mod queue;
mod replicas;
mod retry;
mod safety;
mod scim;
mod secrets;
mod stages;
mod storage;
mod vendor_http;
