//! Tests of the control plane on real sockets (reqwest against `serve` on 127.0.0.1:0 with a
//! temporary database), of the SQLite store, of the OpenAPI document, and of crash safety.

mod api;
mod crash;
mod openapi;
mod store;
mod support;
