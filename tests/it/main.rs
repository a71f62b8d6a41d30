//! Integration tests: real edge processes, real origins and real clients on 127.0.0.1.

#[allow(dead_code)] // a shared harness: not every test uses every helper
mod support;

mod access_log;
mod admin;
mod admission;
mod adversarial;
mod bans;
mod cache;
mod cli;
mod control;
mod demo;
mod deploy;
mod differential;
mod disk;
mod disk_full;
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
mod metrics;
mod origins;
mod pipelining;
mod purge;
mod purge_cli;
mod ranges;
mod reload;
mod reuse;
mod rfc9111;
mod stale;
mod tls;
mod tokens;
mod ttl;
mod upgrade;
mod vary;
