//! The store: every SQL statement of offboard lives below this module, behind named operations
//! (claim, record an attempt, decide a held batch, read the status, ...). `sqlite` is the SQLite
//! side: the pool, pragmas, migrations, write transactions, multi-row statements and pre-assigned
//! ids; the other files are the operations, grouped by what they serve.

pub mod audit_log;
pub mod batches;
pub mod ingest;
pub mod queue;
pub mod reads;
pub mod removals;
pub mod sqlite;
pub mod transition;

pub use sqlite::*;
