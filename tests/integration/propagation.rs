//! Alias propagation as AWS documents it (up to five minutes): the proxy denies KMS calls made
//! as a role for a while after an alias is created or moved, and sends an Encrypt naming a moved
//! alias to the key it pointed at before. rotate's proof and verify wait both out; and a whole
//! lifecycle passes through lost answers and both lags at once.

use crate::proxy::{Fault, FaultProxy, Rule};
use crate::support::{Sandbox, endpoint, stderr, stdout};
use std::time::Duration;

const AUTHORIZATION_LAG: Duration = Duration::from_secs(2);
const RESOLUTION_LAG: Duration = Duration::from_secs(4);

fn lagging_proxy() -> FaultProxy {
    let p = FaultProxy::start(&endpoint());
    p.alias_lag(AUTHORIZATION_LAG, RESOLUTION_LAG);
    p
}

/// The line of the named check, or "" when there is none.
fn line<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines().find(|l| l.split_whitespace().nth(1) == Some(check)).unwrap_or_default()
}

#[test]
fn rotate_waits_until_encrypt_through_the_alias_reaches_the_new_key() {
    let p = lagging_proxy();
    let sb = Sandbox::via(&p.url());
    sb.setup(&[]).assert().success();
    let out = sb.cmd().arg("rotate").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("for alias propagation"), "{}", stderr(&out));
    assert!(line(&stdout(&out), "encrypt-new-key").starts_with("PASS"), "{}", stdout(&out));
    let seen = p.seen();
    assert!(seen.iter().any(|s| s.operation == "Encrypt" && s.injected), "no denial simulated");
    assert!(seen.iter().any(|s| s.operation == "Encrypt" && s.stale), "no stale Encrypt simulated");
    // Polling at most once a second: the first Encrypt that reached the new key came within
    // two seconds of the lag ending (both instants are the proxy's).
    let resolved = p.alias_written_at().unwrap() + RESOLUTION_LAG;
    let first = seen
        .iter()
        .filter(|s| s.operation == "Encrypt" && !s.injected && !s.stale && s.at >= resolved)
        .map(|s| s.at)
        .min()
        .expect("an Encrypt after the lag");
    assert!(first.duration_since(resolved) < Duration::from_secs(2), "{:?}", first - resolved);
}

#[test]
fn rotate_retires_the_old_key_only_after_the_whole_proof_passes() {
    let p = lagging_proxy();
    let sb = Sandbox::via(&p.url());
    sb.setup(&[]).assert().success();
    let (old_key, _) = sb.alias_target(&sb.owner.account, &sb.alias).unwrap();
    let out = sb.cmd().args(["rotate", "--retire-old", "--wait", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(p.count("ScheduleKeyDeletion"), 0, "the old key was retired without a proof");
    let kms = sb.kms(&sb.owner.account);
    let meta = sb.block_on(kms.describe_key().key_id(&old_key).send()).unwrap();
    assert_eq!(meta.key_metadata().unwrap().key_state().unwrap().as_str(), "Enabled");
}

#[test]
fn verify_waits_until_the_alias_resolves_to_its_new_key() {
    let p = lagging_proxy();
    let sb = Sandbox::via(&p.url());
    sb.setup(&[]).assert().success();
    // The alias moves without the proof's wait: verify meets both lags.
    assert_eq!(sb.cmd().args(["rotate", "--wait", "0"]).output().unwrap().status.code(), Some(1));
    let out = sb.cmd().arg("verify").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("waiting up to"), "{}", stderr(&out));
    assert!(line(&stdout(&out), "decrypt").starts_with("PASS"), "{}", stdout(&out));
    assert!(p.seen().iter().any(|s| s.operation == "Encrypt" && s.stale), "no stale Encrypt");
}

#[test]
fn a_whole_lifecycle_passes_through_lost_answers_and_alias_lag() {
    let p = lagging_proxy();
    let sb = Sandbox::via(&p.url());
    let lose = |ops: &[(&'static str, &'static str)]| {
        for (service, op) in ops {
            p.add(Rule::on(service, op, Fault::ResetAfterForward).times(1));
        }
    };
    lose(&[("kms", "CreateAlias"), ("iam", "CreateRole"), ("iam", "PutRolePolicy")]);
    let out = sb.setup(&[]).output().unwrap();
    assert!(out.status.success(), "setup: {}", stderr(&out));
    let out = sb.cmd().arg("verify").output().unwrap();
    assert!(out.status.success(), "verify: {}{}", stdout(&out), stderr(&out));
    lose(&[("kms", "CreateAlias"), ("kms", "UpdateAlias"), ("kms", "ScheduleKeyDeletion")]);
    let out = sb.cmd().args(["rotate", "--retire-old"]).output().unwrap();
    assert!(out.status.success(), "rotate: {}{}", stdout(&out), stderr(&out));
    let out = sb.cmd().arg("verify").output().unwrap();
    assert!(out.status.success(), "verify after rotate: {}{}", stdout(&out), stderr(&out));
    lose(&[
        ("kms", "DeleteAlias"),
        ("kms", "ScheduleKeyDeletion"),
        ("iam", "DeleteRolePolicy"),
        ("iam", "DeleteRole"),
    ]);
    let out = sb.cmd().arg("teardown").output().unwrap();
    assert!(out.status.success(), "teardown: {}", stderr(&out));
    for op in ["CreateAlias", "UpdateAlias", "CreateRole", "PutRolePolicy", "DeleteAlias"] {
        assert!(p.injected(op) >= 1, "{op}: no answer was lost");
    }
    assert_eq!(p.injected("ScheduleKeyDeletion"), 2);
    assert!(sb.alias_target(&sb.owner.account, &sb.alias).is_none(), "alias left");
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()), "role left");
    let keys = sb.deployment_keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|(_, state)| state == "PendingDeletion"), "{keys:?}");
}
