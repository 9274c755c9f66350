//! A fault-injecting HTTP proxy between kmsxacct and LocalStack, driven per test by rules that
//! match service and operation. It reads the service from the SigV4 credential scope and the
//! operation from `X-Amz-Target` (KMS, JSON) or the `Action` form field (IAM and STS, query).
//!
//! Faults: latency; throttling in each service's own wire format; 500/503; connection reset;
//! permanent service errors; and eventual consistency — `AccessDenied` on `sts:AssumeRole` and on
//! KMS calls made with assumed-role credentials for a window after a role or its policy was
//! written; and alias propagation as AWS documents it — for a window after CreateAlias or
//! UpdateAlias, KMS calls with assumed-role credentials are denied (authorization lag), and an
//! Encrypt naming a moved alias still reaches the key it pointed at before (resolution lag).

mod stacksets;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a rule does to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Wait, then forward.
    Latency(Duration),
    /// The service's throttling error (KMS `ThrottlingException`, IAM/STS `Throttling`).
    Throttle,
    /// An HTTP status with a server error body (500, 503).
    Status(u16),
    /// Close the connection without an answer.
    Reset,
    /// Forward to LocalStack, then close the connection: the call happened, its answer is lost.
    ResetAfterForward,
    /// A service error no SDK retries (KMS `KMSInvalidStateException`, IAM/STS `InvalidInput`;
    /// not `LimitExceeded*`, which AWS SDKs treat as throttling).
    Permanent,
    /// `ExpiredToken`, as AWS answers for expired credentials.
    Expired,
    /// `MalformedPolicyDocumentException` for a key policy naming a principal KMS cannot see.
    InvalidPrincipal,
    /// "Not found" (KMS `NotFoundException`, IAM `NoSuchEntity`) without asking LocalStack: a
    /// read that has not caught up yet.
    NotFound,
    /// A used-up quota: KMS `LimitExceededException`, IAM `LimitExceeded` (which AWS SDKs count
    /// as throttling).
    Quota,
    /// AccessDenied, as for a principal IAM does not show yet.
    Denied,
}

/// A rule: which requests, what fault, how many times.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `kms`, `iam`, `sts`; None: any.
    pub service: Option<&'static str>,
    /// Operation name such as `CreateKey`; None: any.
    pub operation: Option<&'static str>,
    /// What to do.
    pub fault: Fault,
    /// How many matching requests it applies to; None: all.
    pub times: Option<u32>,
}

impl Rule {
    /// A rule for one operation of one service, applied every time.
    pub fn on(service: &'static str, operation: &'static str, fault: Fault) -> Rule {
        Rule { service: Some(service), operation: Some(operation), fault, times: None }
    }

    /// Applies to the first `n` matching requests only.
    pub fn times(mut self, n: u32) -> Rule {
        self.times = Some(n);
        self
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub service: String,
    pub operation: String,
    pub at: Instant,
    /// HTTP status answered (0 for a reset).
    pub status: u16,
    /// Whether the proxy injected the answer.
    pub injected: bool,
    /// Whether the proxy sent it on changed: an Encrypt naming a moved alias, sent to the key
    /// the alias pointed at before (resolution lag).
    pub stale: bool,
    /// The region the request was signed for.
    pub region: String,
    /// The access key id it was signed with (on LocalStack, the account for a profile's keys).
    pub access_key: String,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
    /// Operations in the order their requests arrived (before any answer).
    arrived: Vec<String>,
    /// Eventual consistency: how long after a role write access stays denied.
    consistency_window: Option<Duration>,
    role_written_at: Option<Instant>,
    /// Alias propagation: (authorization lag, resolution lag).
    alias_lag: Option<(Duration, Duration)>,
    /// When an alias was last created or moved.
    alias_written_at: Option<Instant>,
    /// Each alias's target key id, as the proxy saw it set.
    alias_targets: std::collections::HashMap<String, String>,
    /// The last alias moved: (alias, the key id it pointed at before, when).
    moved: Option<(String, String, Instant)>,
    /// Secrets that crossed the wire: session tokens, role secret keys, plaintext.
    secrets: Vec<(&'static str, String)>,
    /// Emulate real KMS's cross-account ReEncrypt (see [`FaultProxy::cross_account_reencrypt`]).
    cross_account_reencrypt: bool,
    /// What LocalStack lacks for StackSets (see [`FaultProxy::emulate_stack_sets`]).
    stack_sets: Option<stacksets::StackSets>,
}

/// The running proxy. Dropping it stops it.
pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let upstream: hyper::Uri = upstream.parse().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let st = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let client = client.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    // Each request runs to its end in a task of its own, as on a real network:
                    // a caller that goes away does not take back what it already sent.
                    let service = hyper::service::service_fn(move |req| {
                        let work = handle(req, st.clone(), client.clone(), upstream.clone());
                        async move {
                            tokio::spawn(work)
                                .await
                                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy { addr, state, _runtime: runtime }
    }

    /// The endpoint URL to put in a profile.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a rule.
    pub fn add(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    /// Removes every rule (faults stop).
    pub fn clear(&self) {
        let mut s = self.state.lock().unwrap();
        s.rules.clear();
        s.consistency_window = None;
        s.alias_lag = None;
    }

    /// Simulates alias propagation: for `authorization` after an alias is created or moved, KMS
    /// calls with assumed-role credentials are denied; for `resolution` after an alias is moved,
    /// an Encrypt naming it still reaches the key it pointed at before.
    pub fn alias_lag(&self, authorization: Duration, resolution: Duration) {
        self.state.lock().unwrap().alias_lag = Some((authorization, resolution));
    }

    /// Every secret that crossed the proxy, with its kind: `session-token` (a request header or
    /// an AssumeRole answer), `secret-key` (an AssumeRole answer), `plaintext` (a KMS request or
    /// answer, base64 as on the wire).
    pub fn secrets(&self) -> Vec<(&'static str, String)> {
        self.state.lock().unwrap().secrets.clone()
    }

    /// LocalStack 4.8.1 looks ReEncrypt's source key up in the caller's own account, so across
    /// accounts it answers NotFoundException where KMS re-encrypts. This sends ReEncrypt on as
    /// the account named by its destination key ARN, so that LocalStack finds the key.
    pub fn cross_account_reencrypt(&self) {
        self.state.lock().unwrap().cross_account_reencrypt = true;
    }

    /// Answers the StackSet calls LocalStack lacks as AWS does (see `proxy/stacksets.rs`).
    pub fn emulate_stack_sets(&self) {
        self.state.lock().unwrap().stack_sets = Some(stacksets::StackSets::default());
    }

    /// The accounts holding an instance of the administrator's stack set `name` (None: no set).
    pub fn stack_set_accounts(&self, admin: &str, name: &str) -> Option<Vec<String>> {
        let s = self.state.lock().unwrap();
        let sets = &s.stack_sets.as_ref()?.sets;
        sets.get(&(admin.to_string(), name.to_string())).map(|set| set.accounts.clone())
    }

    /// The template of the administrator's stack set `name`.
    pub fn stack_set_template(&self, admin: &str, name: &str) -> Option<String> {
        let s = self.state.lock().unwrap();
        let sets = &s.stack_sets.as_ref()?.sets;
        sets.get(&(admin.to_string(), name.to_string())).map(|set| set.template.clone())
    }

    /// When an alias was last created or moved.
    pub fn alias_written_at(&self) -> Option<Instant> {
        self.state.lock().unwrap().alias_written_at
    }

    /// Simulates eventual consistency: after a role or its policy is written, AssumeRole and KMS
    /// calls with assumed-role credentials are denied for `window`.
    pub fn eventual_consistency(&self, window: Duration) {
        self.state.lock().unwrap().consistency_window = Some(window);
    }

    /// When the last role write was seen.
    pub fn role_written_at(&self) -> Option<Instant> {
        self.state.lock().unwrap().role_written_at
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many requests of this operation were seen (answered by LocalStack or injected).
    pub fn count(&self, operation: &str) -> usize {
        self.seen().iter().filter(|s| s.operation == operation).count()
    }

    /// How many requests of this operation have arrived, answered or not.
    pub fn arrived(&self, operation: &str) -> usize {
        self.state.lock().unwrap().arrived.iter().filter(|o| *o == operation).count()
    }

    /// How many requests of this operation the proxy answered itself (or lost the answer of).
    pub fn injected(&self, operation: &str) -> usize {
        self.seen().iter().filter(|s| s.operation == operation && s.injected).count()
    }

    /// How many requests of this service were seen.
    pub fn count_service(&self, service: &str) -> usize {
        self.seen().iter().filter(|s| s.service == service).count()
    }
}

/// Service and region (from the SigV4 scope) and access key id, from the Authorization header.
fn scope(req: &Request<Incoming>) -> (String, String, String) {
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let credential =
        auth.split("Credential=").nth(1).and_then(|c| c.split(',').next()).unwrap_or_default();
    let parts: Vec<&str> = credential.split('/').collect();
    let access_key = parts.first().copied().unwrap_or_default().to_string();
    let region = parts.get(2).copied().unwrap_or_default().to_string();
    let service = parts.get(3).copied().unwrap_or_default().to_string();
    (service, access_key, region)
}

fn operation(headers: &hyper::HeaderMap, body: &[u8]) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or_default().to_string();
    }
    let body = String::from_utf8_lossy(body);
    body.split('&').find_map(|kv| kv.strip_prefix("Action=")).unwrap_or_default().to_string()
}

fn json_error(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "proxy-injected")
        .body(Full::new(Bytes::from(format!(r#"{{"__type":"{kind}","message":"{message}"}}"#))))
        .unwrap()
}

fn xml_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>proxy-injected</RequestId></ErrorResponse>"
        ))))
        .unwrap()
}

fn service_error(
    service: &str,
    status: u16,
    json_kind: &str,
    xml_code: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    if service == "kms" {
        json_error(status, json_kind, message)
    } else {
        xml_error(status, xml_code, message)
    }
}

/// Role credentials from LocalStack's STS have access key ids that do not look like an account id.
fn is_assumed_role_key(access_key: &str) -> bool {
    !(access_key.len() == 12 && access_key.chars().all(|c| c.is_ascii_digit()))
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: hyper::Uri,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (service, access_key, region) = scope(&req);
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let op = operation(&parts.headers, &body);
    let now = Instant::now();
    let token = parts.headers.get("x-amz-security-token").and_then(|v| v.to_str().ok());
    let mut found: Vec<(&'static str, String)> =
        token.map(|t| ("session-token", t.to_string())).into_iter().collect();
    found.extend(secrets_in(&body));
    state.lock().unwrap().secrets.extend(found);
    state.lock().unwrap().arrived.push(op.clone());
    let fault = {
        let mut s = state.lock().unwrap();
        let denied_by_consistency = match (s.consistency_window, s.role_written_at) {
            (Some(window), Some(written)) if now.duration_since(written) < window => {
                (service == "sts" && op == "AssumeRole")
                    || (service == "kms" && is_assumed_role_key(&access_key))
            }
            _ => false,
        };
        let denied_by_alias_lag = match (s.alias_lag, s.alias_written_at) {
            (Some((window, _)), Some(written)) if now.duration_since(written) < window => {
                service == "kms" && is_assumed_role_key(&access_key)
            }
            _ => false,
        };
        let denied_by_consistency = denied_by_consistency || denied_by_alias_lag;
        // A key policy naming a role KMS does not see yet: "invalid principals".
        let invalid_principal = match (s.consistency_window, s.role_written_at) {
            (Some(window), Some(written)) if now.duration_since(written) < window => {
                service == "kms"
                    && matches!(op.as_str(), "CreateKey" | "PutKeyPolicy")
                    && String::from_utf8_lossy(&body).contains(":role/")
            }
            _ => false,
        };
        if invalid_principal {
            Some(Some(Fault::InvalidPrincipal))
        } else if denied_by_consistency {
            Some(None)
        } else {
            let mut chosen = None;
            for rule in s.rules.iter_mut() {
                let matches = rule.service.is_none_or(|x| x == service)
                    && rule.operation.is_none_or(|x| x == op)
                    && rule.times != Some(0);
                if matches {
                    if let Some(n) = rule.times.as_mut() {
                        *n -= 1;
                    }
                    chosen = Some(Some(rule.fault.clone()));
                    break;
                }
            }
            chosen
        }
    };
    let stale_body = (service == "kms" && op == "Encrypt")
        .then(|| stale_alias_request(&state.lock().unwrap(), &body, now))
        .flatten();
    let record = |status: u16, injected: bool| {
        state.lock().unwrap().seen.push(Seen {
            service: service.clone(),
            operation: op.clone(),
            at: now,
            status,
            injected,
            stale: stale_body.is_some() && !injected,
            region: region.clone(),
            access_key: access_key.clone(),
        });
    };
    let injected = match &fault {
        Some(None) | Some(Some(Fault::Denied)) => Some(service_error(
            &service,
            if service == "kms" { 400 } else { 403 },
            "AccessDeniedException",
            "AccessDenied",
            "not authorized yet (simulated IAM propagation delay)",
        )),
        Some(Some(Fault::Throttle)) => {
            Some(service_error(&service, 400, "ThrottlingException", "Throttling", "Rate exceeded"))
        }
        Some(Some(Fault::Status(code))) => Some(service_error(
            &service,
            *code,
            "KMSInternalException",
            "ServiceFailure",
            "injected server error",
        )),
        Some(Some(Fault::Permanent)) => Some(service_error(
            &service,
            400,
            "KMSInvalidStateException",
            "InvalidInput",
            "injected permanent failure",
        )),
        Some(Some(Fault::InvalidPrincipal)) => Some(json_error(
            400,
            "MalformedPolicyDocumentException",
            "Policy contains a statement with one or more invalid principals.",
        )),
        Some(Some(Fault::NotFound)) => Some(service_error(
            &service,
            if service == "kms" { 400 } else { 404 },
            "NotFoundException",
            "NoSuchEntity",
            "injected: not found (yet)",
        )),
        Some(Some(Fault::Quota)) => Some(service_error(
            &service,
            400,
            "LimitExceededException",
            "LimitExceeded",
            "injected: too many of them in this account",
        )),
        Some(Some(Fault::Expired)) => Some(service_error(
            &service,
            400,
            "ExpiredTokenException",
            "ExpiredToken",
            "The security token included in the request is expired",
        )),
        Some(Some(Fault::Reset)) => {
            record(0, true);
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset"));
        }
        Some(Some(Fault::Latency(d))) => {
            tokio::time::sleep(*d).await;
            None
        }
        Some(Some(Fault::ResetAfterForward)) | None => None,
    };
    let form = (service == "cloudformation").then(|| stacksets::form(&body));
    let emulated = form.as_ref().and_then(|form| {
        let mut s = state.lock().unwrap();
        s.stack_sets.as_mut()?.answer(&op, form, &access_key)
    });
    if let Some(resp) = injected.or(emulated) {
        record(resp.status().as_u16(), true);
        return Ok(resp);
    }
    let (mut parts, mut body) = (parts, body);
    if service == "kms" && op == "ReEncrypt" && state.lock().unwrap().cross_account_reencrypt {
        as_key_owner(&mut parts.headers, &body, &access_key);
    }
    if let Some(stale) = stale_body.clone() {
        parts.headers.remove(hyper::header::CONTENT_LENGTH);
        body = stale;
    }
    let alias_write = (service == "kms" && matches!(op.as_str(), "CreateAlias" | "UpdateAlias"))
        .then(|| alias_and_target(&body))
        .flatten();
    let mut forward = Request::from_parts(parts, Full::new(body.clone()));
    let path = forward
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    *forward.uri_mut() =
        format!("{}{}", upstream.to_string().trim_end_matches('/'), path).parse().unwrap();
    let answer = client.request(forward).await.map_err(|e| std::io::Error::other(e.to_string()))?;
    let (parts, body) = answer.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let ok = parts.status.is_success();
    let found = secrets_in(&body);
    state.lock().unwrap().secrets.extend(found);
    if ok
        && service == "iam"
        && matches!(op.as_str(), "CreateRole" | "PutRolePolicy" | "UpdateAssumeRolePolicy")
    {
        state.lock().unwrap().role_written_at = Some(Instant::now());
    }
    if let (true, Some((alias, target))) = (ok, alias_write) {
        let mut s = state.lock().unwrap();
        let now = Instant::now();
        if let Some(before) = s.alias_targets.insert(alias.clone(), target.clone())
            && before != target
        {
            s.moved = Some((alias, before, now));
        }
        s.alias_written_at = Some(now);
    }
    if let (true, Some(form)) = (ok, &form)
        && let Some(sets) = state.lock().unwrap().stack_sets.as_mut()
    {
        sets.observe(&op, form, &body, &access_key);
    }
    if matches!(fault, Some(Some(Fault::ResetAfterForward))) {
        record(0, true);
        return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "answer lost"));
    }
    record(parts.status.as_u16(), false);
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The alias a CreateAlias or UpdateAlias body names, and its target key id.
fn alias_and_target(body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some((v["AliasName"].as_str()?.to_string(), v["TargetKeyId"].as_str()?.to_string()))
}

/// During the resolution lag, an Encrypt body naming the moved alias, rewritten to name the key
/// the alias pointed at before.
fn stale_alias_request(s: &State, body: &[u8], now: Instant) -> Option<Bytes> {
    let (_, window) = s.alias_lag?;
    let (alias, before, at) = s.moved.as_ref()?;
    if now.duration_since(*at) >= window {
        return None;
    }
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let key = v["KeyId"].as_str()?.to_string();
    let stale = if key == *alias {
        before.clone()
    } else if let Some(prefix) = key.strip_suffix(alias.as_str()).filter(|p| p.ends_with(':')) {
        format!("{prefix}key/{before}")
    } else {
        return None;
    };
    v["KeyId"] = serde_json::Value::String(stale);
    Some(Bytes::from(v.to_string()))
}

/// Secrets in a request or answer body: KMS JSON `Plaintext`, STS XML `SecretAccessKey` and
/// `SessionToken`.
fn secrets_in(body: &[u8]) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(p) = v["Plaintext"].as_str()
    {
        found.push(("plaintext", p.to_string()));
    }
    let text = String::from_utf8_lossy(body);
    for (kind, tag) in [("secret-key", "SecretAccessKey"), ("session-token", "SessionToken")] {
        let open = format!("<{tag}>");
        let value = text.split(&open).nth(1).and_then(|rest| rest.split('<').next());
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            found.push((kind, v.to_string()));
        }
    }
    found
}

/// Re-signs (in name: LocalStack checks no signature) a request as the account that owns its
/// destination key, named by the ARN in `DestinationKeyId`.
fn as_key_owner(headers: &mut hyper::HeaderMap, body: &[u8], access_key: &str) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let Some(owner) = v["DestinationKeyId"].as_str().and_then(|a| a.split(':').nth(4)) else {
        return;
    };
    let Some(auth) = headers.get("authorization").and_then(|a| a.to_str().ok()) else { return };
    let rewritten =
        auth.replacen(&format!("Credential={access_key}/"), &format!("Credential={owner}/"), 1);
    if let Ok(value) = rewritten.parse() {
        headers.insert("authorization", value);
        headers.remove("x-amz-security-token");
    }
}
