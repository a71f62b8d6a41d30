//! Integration tests: real edge processes, real origins and real clients on 127.0.0.1.

mod support;

mod admin;
mod cache;
mod cli;
// mod demo; (enabled with the media fixtures)
mod http;
mod lifecycle;
mod ranges;
