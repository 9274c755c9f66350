//! A record of every AWS call a command makes: logged at debug level as it ends, and reported in
//! `--output json` under `calls` (service, operation, account, start/end offsets).
//!
//! It is an SDK interceptor, so it sees every call, retries included, without wrapping call sites.
//! It reads only names and timings: never a request body, credentials or plaintext.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde::Serialize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// One finished AWS call.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    /// `owner` or `user`.
    pub side: &'static str,
    /// Account the call acted in, once known.
    pub account: Option<String>,
    /// Service, e.g. `KMS`.
    pub service: String,
    /// Operation, e.g. `CreateKey`.
    pub operation: String,
    /// Milliseconds from the command's start to the call's start.
    pub start_ms: f64,
    /// Milliseconds from the command's start to the call's end.
    pub end_ms: f64,
    /// Whether the call succeeded.
    pub ok: bool,
}

/// The calls of one command, shared by every client it builds.
#[derive(Debug, Clone)]
pub struct CallLog {
    start: Instant,
    calls: Arc<Mutex<Vec<CallRecord>>>,
}

impl Default for CallLog {
    fn default() -> Self {
        CallLog { start: Instant::now(), calls: Arc::default() }
    }
}

impl CallLog {
    /// Every call finished so far, in the order they ended.
    pub fn snapshot(&self) -> Vec<CallRecord> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn ms(&self, at: Instant) -> f64 {
        (at.duration_since(self.start).as_secs_f64() * 1000.0 * 10.0).round() / 10.0
    }
}

/// The interceptor given to each client of one account side.
#[derive(Debug, Clone)]
pub struct CallInterceptor {
    /// Where records go.
    pub log: CallLog,
    /// `owner` or `user`.
    pub side: &'static str,
    /// The side's account id, set once `GetCallerIdentity` has answered.
    pub account: Arc<OnceLock<String>>,
}

#[derive(Debug, Clone, Copy)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

impl Intercept for CallInterceptor {
    fn name(&self) -> &'static str {
        "kmsxacct-call-log"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let end = Instant::now();
        let start = cfg.load::<Started>().map(|s| s.0).unwrap_or(end);
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_default();
        let ok = matches!(context.output_or_error(), Some(Ok(_)));
        let account = self.account.get().cloned();
        tracing::debug!(
            side = self.side,
            account = account.as_deref().unwrap_or("?"),
            service = %service,
            operation = %operation,
            duration_ms = end.duration_since(start).as_secs_f64() * 1000.0,
            ok,
            "aws call"
        );
        let record = CallRecord {
            side: self.side,
            account,
            service,
            operation,
            start_ms: self.log.ms(start),
            end_ms: self.log.ms(end),
            ok,
        };
        if let Ok(mut calls) = self.log.calls.lock() {
            calls.push(record);
        }
        Ok(())
    }
}
