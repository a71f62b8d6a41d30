//! Origin selection: weighted consistent hashing per pool ([`ring`]), node health
//! ([`health`]), and the choice of node for each attempt of a request ([`pools`]).

pub mod checker;
pub mod health;
pub mod pools;
pub mod ring;
