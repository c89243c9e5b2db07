//! offboard: takes away a leaver's access to every SaaS app on the day HR says they leave, and
//! proves when it happened.

pub mod app;
pub mod audit;
pub mod backoff;
pub mod checkpoint;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod console;
pub mod domain;
pub mod evidence;
pub mod feed;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod planner;
pub mod preview;
pub mod quarantine;
pub mod report;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod worker;
