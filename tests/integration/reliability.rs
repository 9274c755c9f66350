//! Reliability, proven through the fault-injecting proxy: retries, propagation waits, partial
//! failures and re-runs, interruption, teardown safety, and the bad-input contract.

use crate::proxy::{Fault, FaultProxy, Rule};
use crate::support::{Sandbox, endpoint, stderr, stdout};
use std::time::{Duration, Instant};

fn proxy() -> FaultProxy {
    FaultProxy::start(&endpoint())
}

fn injected(p: &FaultProxy, operation: &str) -> usize {
    p.injected(operation)
}

fn assert_deployed(sb: &Sandbox) {
    sb.assert_deployed();
}

#[test]
fn throttling_server_errors_and_resets_are_retried() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    p.add(Rule::on("kms", "DescribeKey", Fault::Throttle).times(2));
    p.add(Rule::on("iam", "GetRole", Fault::Status(503)).times(2));
    p.add(Rule::on("sts", "GetCallerIdentity", Fault::Reset).times(1));
    p.add(Rule::on("kms", "CreateKey", Fault::Throttle).times(1));
    p.add(Rule::on("kms", "CreateAlias", Fault::Status(500)).times(1));
    p.add(Rule::on("iam", "CreateRole", Fault::Throttle).times(1));
    p.add(Rule::on("iam", "PutRolePolicy", Fault::Reset).times(1));
    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(p.count_service("kms") > 0 && p.count_service("iam") > 0, "calls bypassed the proxy");
    for (op, n) in [
        ("DescribeKey", 2),
        ("GetRole", 2),
        ("GetCallerIdentity", 1),
        ("CreateKey", 1),
        ("CreateAlias", 1),
        ("CreateRole", 1),
        ("PutRolePolicy", 1),
    ] {
        assert_eq!(injected(&p, op), n, "{op}: the fault was not exercised");
    }
    p.add(Rule::on("sts", "AssumeRole", Fault::Throttle).times(2));
    p.add(Rule::on("kms", "Encrypt", Fault::Status(503)).times(1));
    p.add(Rule::on("kms", "Decrypt", Fault::Reset).times(1));
    let out = sb.cmd().args(["verify", "--wait", "0"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for op in ["AssumeRole", "Encrypt", "Decrypt"] {
        assert!(injected(&p, op) > 0, "{op}: the fault was not exercised");
    }
    p.clear();
    assert_deployed(&sb);
}

#[test]
fn faults_that_outlast_the_retry_budget_fail_cleanly_before_any_change() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    p.add(Rule::on("kms", "DescribeKey", Fault::Throttle));
    let out = sb.setup(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("Throttling"), "{}", stderr(&out));
    assert_eq!(injected(&p, "DescribeKey"), 3, "attempts: the documented 3");
    assert!(sb.keys(&sb.owner.account).is_empty());
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()));
}

#[test]
fn verify_waits_for_propagation_and_passes_soon_after_access_appears() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    let window = Duration::from_secs(4);
    p.eventual_consistency(window);
    sb.setup(&[]).assert().success();
    let out = sb.cmd().arg("verify").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("waiting up to"), "{}", stderr(&out));
    assert!(injected(&p, "AssumeRole") > 0, "no denial was simulated");
    let visible = p.role_written_at().unwrap() + window;
    let first_success = p
        .seen()
        .iter()
        .filter(|s| s.operation == "AssumeRole" && !s.injected && s.status == 200)
        .map(|s| s.at)
        .min()
        .expect("AssumeRole succeeded");
    assert!(
        first_success.saturating_duration_since(visible) < Duration::from_secs(2),
        "verify noticed access {:?} after it appeared",
        first_success.saturating_duration_since(visible)
    );
}

#[test]
fn verify_stops_waiting_at_the_limit_and_says_what_was_denied() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    p.eventual_consistency(Duration::from_secs(600));
    sb.setup(&[]).assert().success();
    let start = Instant::now();
    let out =
        sb.cmd().args(["verify", "--wait", "2"]).timeout(Duration::from_secs(30)).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line =
        stdout(&out).lines().find(|l| l.contains("assume-role")).unwrap_or_default().to_string();
    assert!(
        line.starts_with("FAIL") && line.contains("AccessDenied") && line.contains("still denied"),
        "{line}"
    );
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn verify_does_not_wait_when_the_policies_themselves_deny() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    sb.setup(&[]).assert().success();
    let wrong = sb.alias_arn_role_policy();
    sb.put_role_policy(&wrong);
    p.eventual_consistency(Duration::from_secs(600));
    // AssumeRole is now denied (the window counts from setup's role writes), but the policies
    // deny too: that is no propagation delay, so verify must fail at once.
    let out = sb.cmd().arg("verify").timeout(Duration::from_secs(30)).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(injected(&p, "AssumeRole") > 0, "AssumeRole was not denied");
    assert!(!stderr(&out).contains("waiting"), "{}", stderr(&out));
}

#[test]
fn setup_converges_after_any_step_fails_permanently() {
    let p = proxy();
    for (service, op) in [
        ("sts", "GetCallerIdentity"),
        ("kms", "DescribeKey"),
        ("iam", "GetRole"),
        ("kms", "CreateKey"),
        ("kms", "CreateAlias"),
        ("iam", "CreateRole"),
        ("iam", "PutRolePolicy"),
    ] {
        let sb = Sandbox::via(&p.url());
        p.add(Rule::on(service, op, Fault::Permanent));
        let out = sb.setup(&[]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{op}: {}", stderr(&out));
        assert!(stderr(&out).contains("injected permanent failure"), "{op}: {}", stderr(&out));
        p.clear();
        let out = sb.setup(&[]).output().unwrap();
        assert!(out.status.success(), "{op} re-run: {}", stderr(&out));
        assert_deployed(&sb);
    }
}

#[test]
fn a_converging_key_policy_update_that_fails_is_finished_by_the_next_run() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    sb.setup(&[]).assert().success();
    sb.put_key_policy(&sb.admin_only_key_policy());
    p.add(Rule::on("kms", "PutKeyPolicy", Fault::Permanent));
    assert_eq!(sb.setup(&[]).output().unwrap().status.code(), Some(1));
    p.clear();
    sb.setup(&[]).assert().success();
    let policy = sb.key_policy();
    let sids: Vec<&str> =
        policy["Statement"].as_array().unwrap().iter().filter_map(|s| s["Sid"].as_str()).collect();
    assert!(sids.contains(&"KmsxacctCrossAccountUse"), "{sids:?}");
    assert_deployed(&sb);
}

#[test]
fn a_create_key_whose_answer_was_lost_is_found_by_its_tags_not_duplicated() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    p.add(Rule::on("kms", "CreateKey", Fault::ResetAfterForward).times(1));
    let out = sb.setup(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(sb.deployment_keys().len(), 1, "the lost CreateKey did make a key");
    assert_eq!(p.count("CreateKey"), 1, "CreateKey must not be retried blindly");
    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("looking for it by its tags"), "{}", stderr(&out));
    assert_eq!(p.count("CreateKey"), 1, "a second key was created");
    assert_deployed(&sb);
}

#[test]
fn an_interrupted_setup_exits_130_without_panic_and_the_next_run_converges() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    p.add(Rule::on("kms", "CreateKey", Fault::Latency(Duration::from_secs(3))));
    let child = sb
        .std_cmd()
        .args(["setup", "--owner", &sb.owner.name, "--user", &sb.user.name, "--alias", &sb.alias])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.arrived("CreateKey") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // CreateKey is in flight (held by the proxy): interrupt.
    std::thread::sleep(Duration::from_millis(200));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted") && !err.contains("panicked"), "{err}");
    // The held CreateKey reaches LocalStack, as it would on a real network: a key exists that
    // the interrupted run never learnt of, and the record says one may.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sb.deployment_keys().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sb.deployment_keys().len(), 1, "the held CreateKey never reached LocalStack");
    let record = std::fs::read_to_string(sb.record()).unwrap();
    assert!(record.contains("key_creation_pending = true"), "{record}");
    p.clear();
    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_deployed(&sb);
}

#[test]
fn teardown_finishes_on_a_rerun_after_any_step_fails_once() {
    let p = proxy();
    for (service, op) in [
        ("iam", "DeleteRolePolicy"),
        ("iam", "DeleteRole"),
        ("kms", "DeleteAlias"),
        ("kms", "ScheduleKeyDeletion"),
    ] {
        let sb = Sandbox::via(&p.url());
        sb.setup(&[]).assert().success();
        p.add(Rule::on(service, op, Fault::Permanent).times(1));
        let out = sb.cmd().arg("teardown").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{op}: {}", stderr(&out));
        assert!(stderr(&out).contains("run it again"), "{op}: {}", stderr(&out));
        p.clear();
        let out = sb.cmd().arg("teardown").output().unwrap();
        assert!(out.status.success(), "{op} re-run: {}", stderr(&out));
        assert!(sb.alias_target(&sb.owner.account, &sb.alias).is_none(), "{op}: alias left");
        assert!(!sb.role_exists(&sb.user.account, &sb.role_name()), "{op}: role left");
        let keys = sb.deployment_keys();
        assert!(keys.len() == 1 && keys[0].1 == "PendingDeletion", "{op}: keys {keys:?}");
    }
}

#[test]
fn bad_inputs_across_all_commands_fail_with_their_exit_code_and_change_nothing() {
    let p = proxy();
    let sb = Sandbox::via(&p.url());
    let (o, u) = (sb.owner.name.clone(), sb.user.name.clone());
    std::fs::write(sb.path().join("broken.toml"), "owner_profile = [").unwrap();
    std::fs::write(sb.path().join("not-json.json"), "{ this is not json").unwrap();
    std::fs::write(sb.path().join("not-policy.json"), r#"{"Statement": [{"Effect": "Perhaps"}]}"#)
        .unwrap();
    let long_alias = format!("alias/{}", "a".repeat(251));
    #[rustfmt::skip]
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["setup", "--owner", &o, "--user", &u, "--alias", "bad name"], 2, "'bad name'"),
        (vec!["setup", "--owner", &o, "--user", &u, "--alias", "alias/aws/managed"], 2, "alias/aws/managed"),
        (vec!["setup", "--owner", &o, "--user", &u, "--alias", &long_alias], 2, "251 characters"),
        (vec!["setup", "--owner", &o, "--user", &u, "--role", "no/slash"], 2, "'no/slash'"),
        (vec!["setup", "--owner", &o, "--user", &u, "--region", "moon-base-1x"], 2, "'moon-base-1x'"),
        (vec!["setup", "--owner", "ghost", "--user", &u], 2, "'ghost'"),
        (vec!["setup", "--owner", &o, "--user", &o], 2, "both account"),
        (vec!["setup", "--owner", &o, "--user", &u, "--pending-window-days", "3"], 2, "'3'"),
        (vec!["teardown", "--pending-window-days", "90"], 2, "'90'"),
        (vec!["verify"], 2, "no deployment record"),
        (vec!["teardown", "--config", "broken.toml"], 2, "broken.toml"),
        (vec!["explain", "--key-policy", "not-json.json", "--principal", "arn:aws:iam::222222222222:role/r",
              "--action", "kms:Encrypt", "--key", "arn:aws:kms:us-east-1:111111111111:key/k"], 2, "not-json.json"),
        (vec!["explain", "--key-policy", "not-policy.json", "--principal", "arn:aws:iam::222222222222:role/r",
              "--action", "kms:Encrypt", "--key", "arn:aws:kms:us-east-1:111111111111:key/k"], 2, "not-policy.json"),
        (vec!["lint", "not-policy.json"], 2, "not-policy.json"),
        (vec!["lint", "missing.json"], 2, "missing.json"),
        (vec!["policies", "--owner-account", "12345", "--user-account", "222222222222"], 2, "'12345'"),
        (vec!["setup", "--owner", &o, "--user", &u, "--output", "yaml"], 2, "'yaml'"),
        (vec!["rotate-everything"], 2, "'rotate-everything'"),
    ];
    for (args, code, names) in &cases {
        let out = sb.cmd().args(args).timeout(Duration::from_secs(30)).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.contains(names), "{args:?}: does not name {names:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // The explain action check (an unknown KMS action) needs valid policy files.
    let kp = sb.path().join("kp.json");
    std::fs::write(
        &kp,
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}"#,
    )
    .unwrap();
    let out = sb
        .cmd()
        .args([
            "explain",
            "--key-policy",
            kp.to_str().unwrap(),
            "--principal",
            "arn:aws:iam::222222222222:role/r",
            "--action",
            "kms:Encrpyt",
            "--key",
            "arn:aws:kms:us-east-1:111111111111:key/k",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'kms:Encrpyt'"));

    // Expired credentials: AWS answers ExpiredToken.
    p.add(Rule::on("sts", "GetCallerIdentity", Fault::Expired));
    let out = sb.setup(&[]).timeout(Duration::from_secs(30)).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ExpiredToken") && (err.contains(&o) || err.contains(&u)), "{err}");
    p.clear();

    assert!(sb.keys(&sb.owner.account).is_empty(), "a bad input created a key");
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()), "a bad input created a role");
    assert!(!sb.record().exists(), "a bad input wrote a record");
}
