//! A quota answer is final: AWS SDKs count `LimitExceededException` (KMS) and `LimitExceeded`
//! (IAM) as throttling and retry them, but a used-up quota (keys or aliases per Region, roles per
//! account) does not recover by waiting. This classifier forbids the retry, so the command fails
//! at once and names the quota (see [`super::error`]).
//!
//! It reads the error code from the raw answer, as the SDK's own code classifier does: the
//! operation's typed error is not visible to a classifier shared by every operation.

use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};

/// Forbids retrying an answer whose error code says a quota is used up.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuotaIsFinal;

impl ClassifyRetry for QuotaIsFinal {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let quota = ctx.response().is_some_and(|r| {
            let header = r.headers().get("x-amzn-errortype").unwrap_or_default();
            let body = r.body().bytes().unwrap_or_default();
            is_quota_code(&error_code(header, body))
        });
        if quota { RetryAction::RetryForbidden } else { RetryAction::NoActionIndicated }
    }

    fn name(&self) -> &'static str {
        "kmsxacct-quota-is-final"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// The codes AWS answers for a used-up quota.
pub fn is_quota_code(code: &str) -> bool {
    matches!(code, "LimitExceededException" | "LimitExceeded")
}

/// The error code of an AWS answer: the `x-amzn-ErrorType` header, the JSON body's `__type`
/// (after any `namespace#`), or the XML body's `<Code>`.
fn error_code(header: &str, body: &[u8]) -> String {
    let from_header = header.split(':').next().unwrap_or_default();
    if !from_header.is_empty() {
        return from_header.to_string();
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let kind = json.get("__type").and_then(|t| t.as_str()).unwrap_or_default();
        return kind.rsplit('#').next().unwrap_or_default().to_string();
    }
    let text = String::from_utf8_lossy(body);
    let code = text.split("<Code>").nth(1).and_then(|rest| rest.split("</Code>").next());
    code.unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_code_from_header_json_or_xml() {
        assert_eq!(error_code("LimitExceededException:http://x", b""), "LimitExceededException");
        let json = br#"{"__type":"com.amazonaws.kms#LimitExceededException","message":"m"}"#;
        assert_eq!(error_code("", json), "LimitExceededException");
        let xml = b"<ErrorResponse><Error><Code>LimitExceeded</Code></Error></ErrorResponse>";
        assert_eq!(error_code("", xml), "LimitExceeded");
        assert!(is_quota_code(&error_code("", xml)));
        assert!(!is_quota_code(&error_code("", br#"{"__type":"ThrottlingException"}"#)));
    }
}
