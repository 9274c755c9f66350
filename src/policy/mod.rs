//! Policy documents: the typed model, the documents kmsxacct writes, the evaluator that decides
//! whether a request is allowed and why, and the linter.
//!
//! Everything here is pure: no AWS calls, unit-tested without a network.

pub mod actions;
pub mod build;
pub mod condition;
pub mod document;
pub mod eval;
pub mod fix;
pub mod lint;
pub mod matching;

#[cfg(test)]
mod eval_cases;
#[cfg(test)]
mod lint_cases;

pub use document::{Effect, OneOrMany, PolicyDocument, PolicyError, Statement};
