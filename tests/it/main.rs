//! Integration tests: real edge processes, real origins and real clients on 127.0.0.1.

#[allow(dead_code)] // a shared harness: not every test uses every helper
mod support;

mod admin;
mod cache;
mod cli;
mod control;
mod demo;
mod disk;
mod fills;
mod front;
mod geo;
mod http;
mod lifecycle;
mod origins;
mod purge;
mod ranges;
mod reuse;
mod stale;
mod tls;
mod tokens;
mod ttl;
