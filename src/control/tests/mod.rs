//! Tests of the control plane on real sockets (reqwest against `serve` on 127.0.0.1:0 with a
//! temporary database, on SQLite and on a throwaway PostgreSQL), of the stores, of the
//! OpenAPI document, of crash safety and of losing the database server.

mod api;
mod crash;
mod openapi;
mod pg_outage;
mod pg_server;
mod store;
mod support;
mod watchlist;
