//! Integration tests: real edge processes, real origins and real clients on 127.0.0.1.

#[allow(dead_code)] // a shared harness: not every test uses every helper
mod support;

mod admin;
mod bans;
mod cache;
mod cli;
mod control;
mod demo;
mod differential;
mod disk;
mod encoded;
mod fills;
mod forwarding;
mod front;
mod geo;
mod http;
mod invalidation;
mod keys;
mod lifecycle;
mod limits;
mod origins;
mod purge;
mod purge_cli;
mod ranges;
mod rfc9111;
mod reuse;
mod stale;
mod tls;
mod tokens;
mod ttl;
mod vary;
