//! Policy documents: the typed model, and the documents kmsxacct writes.
//!
//! Everything here is pure: no AWS calls, unit-tested without a network.

pub mod build;
pub mod document;

pub use document::{Effect, OneOrMany, PolicyDocument, PolicyError, Statement};
