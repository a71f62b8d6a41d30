//! A throwaway PostgreSQL server: the same harness the library's control plane tests use
//! (`src/control/tests/pg_server.rs`, included here rather than copied).

#[path = "../../../src/control/tests/pg_server.rs"]
mod pg_server;

pub use pg_server::{shared, PgServer};
