//! Origin selection: weighted consistent hashing per pool ([`ring`]), node health
//! ([`health`]), the choice of node for each attempt of a request ([`pools`]), and the retry
//! of a request that met a pooled connection the origin had closed ([`reuse`]).

pub mod checker;
pub mod health;
pub mod pools;
pub mod reuse;
pub mod ring;
