//! End-to-end tests: the real kmsxacct binary against a real LocalStack (started by
//! `scripts/test.sh`, or at `KMSXACCT_TEST_ENDPOINT`), outcomes read back with the AWS SDK.
//!
//! One test binary, so the SDK is linked once. Every test gets its own random accounts, profile
//! names and alias, so tests run in parallel on one LocalStack without seeing each other.

mod bad_input;
mod diagnose;
mod fleet;
mod lifecycle;
mod lost_answers;
mod ownership;
mod policy_engine;
mod propagation;
mod proxy;
mod reach;
mod regions;
mod reliability;
mod restore;
mod rotate;
mod stacksets;
mod support;
mod transport;
mod ux;
