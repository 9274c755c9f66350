//! Bad input: one line naming the bad value, exit 2, and nothing changed in either account.

use crate::support::{Profile, Sandbox, random_account, stderr};
use std::time::Duration;

/// Runs kmsxacct with `args` and checks the bad-input contract.
fn assert_bad_input(sb: &Sandbox, args: &[&str], names: &str) {
    let out = sb.cmd().args(args).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.contains(names), "{args:?}: message does not name {names:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(sb.keys(&sb.owner.account).is_empty(), "{args:?} created a key");
    assert!(!sb.role_exists(&sb.user.account, &sb.role_name()), "{args:?} created a role");
    assert!(!sb.record().exists(), "{args:?} wrote a record");
}

#[test]
fn bad_names_and_numbers_are_refused_before_any_change() {
    let sb = Sandbox::new();
    let (o, u) = (sb.owner.name.as_str(), sb.user.name.as_str());
    let long_alias = format!("alias/{}", "a".repeat(251));
    let long_role = "r".repeat(65);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--alias", "bad name"], "invalid alias 'bad name'"),
        (vec!["--alias", "alias/dots.not.allowed"], "alias/dots.not.allowed"),
        (vec!["--alias", "alias/aws/thing"], "reserved"),
        (vec!["--alias", "alias/"], "invalid alias 'alias/'"),
        (vec!["--alias", &long_alias], "251 characters"),
        (vec!["--role", "bad/role"], "invalid role name 'bad/role'"),
        (vec!["--role", &long_role], "65 characters"),
        (vec!["--pending-window-days", "6"], "invalid pending window '6'"),
        (vec!["--pending-window-days", "31"], "invalid pending window '31'"),
        (vec!["--region", "mars"], "unknown region 'mars'"),
    ];
    for (extra, names) in cases {
        let mut args = vec!["setup", "--owner", o, "--user", u];
        args.extend(extra);
        assert_bad_input(&sb, &args, names);
    }
}

#[test]
fn unknown_profiles_and_one_account_twice_are_refused() {
    let sb = Sandbox::new();
    let (o, u) = (sb.owner.name.as_str(), sb.user.name.as_str());
    assert_bad_input(
        &sb,
        &["setup", "--owner", "no-such-profile", "--user", u],
        "unknown profile 'no-such-profile'",
    );
    assert_bad_input(&sb, &["setup", "--owner", o, "--user", "nope"], "unknown profile 'nope'");
    assert_bad_input(&sb, &["setup", "--owner", o, "--user", o], "both account");
}

#[test]
fn two_profiles_in_the_same_account_are_refused() {
    let account = random_account();
    let sb = Sandbox::with_profiles(
        Profile { name: "first".into(), account: account.clone() },
        Profile { name: "second".into(), account },
        &[],
    );
    assert_bad_input(&sb, &["setup", "--owner", "first", "--user", "second"], &sb.owner.account);
}

#[test]
fn verify_and_teardown_need_a_record_or_flags() {
    let sb = Sandbox::new();
    assert_bad_input(&sb, &["verify"], "no deployment record");
    assert_bad_input(&sb, &["teardown"], "no deployment record");
    assert_bad_input(&sb, &["verify", "--config", "missing.toml"], "missing.toml");
    assert_bad_input(&sb, &["verify", "--owner", &sb.owner.name], "--user");
    assert_bad_input(&sb, &["teardown", "--pending-window-days", "40"], "'40'");
    std::fs::write(sb.path().join("broken.toml"), "owner_profile = [").unwrap();
    let out = sb.cmd().args(["teardown", "--config", "broken.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("broken.toml") && stderr(&out).contains("not valid"),
        "{}",
        stderr(&out)
    );
}

/// Profiles `owner` and `user` in fresh accounts, plus the raw profile section `extra`.
fn with_extra_profile(extra: &str) -> Sandbox {
    let profile = |name: &str| Profile { name: name.into(), account: random_account() };
    Sandbox::with_profiles(profile("owner"), profile("user"), &[extra])
}

#[test]
fn a_profile_without_credentials_is_bad_input() {
    let extra = format!(
        "[profile nocreds]\nregion = us-east-1\nendpoint_url = {}\n",
        crate::support::endpoint()
    );
    let sb = with_extra_profile(&extra);
    assert_bad_input(&sb, &["setup", "--owner", "owner", "--user", "nocreds"], "nocreds");
}

#[test]
fn an_unreachable_endpoint_fails_clearly_and_quickly() {
    // Port 9 on loopback: nothing listens there.
    let extra = "[profile dead]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:9\naws_access_key_id = 123456789012\naws_secret_access_key = x\n";
    let sb = with_extra_profile(extra);
    let out = sb
        .cmd()
        .args(["setup", "--owner", "owner", "--user", "dead"])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot reach") && err.contains("127.0.0.1:9"), "{err}");
    assert!(sb.keys(&sb.owner.account).is_empty());
}

#[test]
fn a_record_whose_profiles_now_lead_elsewhere_is_refused() {
    let sb = Sandbox::new();
    sb.setup(&[]).assert().success();
    // Point the user profile at another account behind the record's back.
    let credentials = std::fs::read_to_string(sb.path().join("aws-credentials")).unwrap();
    let moved = random_account();
    std::fs::write(
        sb.path().join("aws-credentials"),
        credentials.replace(
            &format!("aws_access_key_id = {}", sb.user.account),
            &format!("aws_access_key_id = {moved}"),
        ),
    )
    .unwrap();
    for command in ["verify", "teardown"] {
        let out = sb.cmd().arg(command).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        assert!(stderr(&out).contains(&moved), "{}", stderr(&out));
    }
    assert!(sb.alias_target(&sb.owner.account, &sb.alias).is_some(), "teardown changed something");
    assert!(sb.role_exists(&sb.user.account, &sb.role_name()));
}
