//! The user roles of a fleet rolled out by a CloudFormation StackSet (`setup --stackset-admin`):
//! LocalStack deploys each instance's stack into its account, so the roles are read back in each
//! account; what LocalStack lacks for StackSets (DescribeStackSet, ListStackInstances,
//! UpdateStackSet, repeated operation ids) the proxy answers as AWS does.

use crate::proxy::{Fault, FaultProxy, Rule};
use crate::support::{Sandbox, endpoint, json, random_account, stderr, stdout};
use std::process::Output;

const ORG: &str = "o-a1b2c3d4e5";
const EXECUTION_ROLE: &str = "AWSCloudFormationStackSetExecutionRole";

/// An owner, a StackSet administrator (the sandbox's user profile) and `n` member accounts,
/// each with the execution role self-managed StackSets need.
struct Fleet {
    proxy: FaultProxy,
    sb: Sandbox,
    accounts: Vec<String>,
}

impl Fleet {
    fn new(n: usize) -> Fleet {
        let proxy = FaultProxy::start(&endpoint());
        proxy.emulate_stack_sets();
        let sb = Sandbox::with_users(1, &proxy.url());
        let accounts: Vec<String> = (0..n).map(|_| random_account()).collect();
        for a in &accounts {
            let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{}:root", sb.user.account)},
                "Action": "sts:AssumeRole"}]});
            let iam = sb.iam(a);
            sb.block_on(
                iam.create_role()
                    .role_name(EXECUTION_ROLE)
                    .assume_role_policy_document(trust.to_string())
                    .send(),
            )
            .expect("CreateRole (execution role)");
        }
        Fleet { proxy, sb, accounts }
    }

    fn admin(&self) -> &str {
        &self.sb.user.account
    }

    fn setup(&self, accounts: &[String], extra: &[&str]) -> Output {
        let sb = &self.sb;
        let list = accounts.join(",");
        let mut cmd = sb.cmd();
        cmd.timeout(std::time::Duration::from_secs(180));
        cmd.args(["--output", "json", "setup", "--owner", &sb.owner.name])
            .args(["--stackset-admin", &sb.user.name, "--org-id", ORG, "--alias", &sb.alias])
            .args(["--accounts", &list])
            .args(extra)
            .output()
            .unwrap()
    }

    /// The accounts with an instance, as the administrator's stack set holds them.
    fn instances(&self) -> Option<Vec<String>> {
        self.proxy.stack_set_accounts(self.admin(), &self.sb.role_name())
    }

    fn roles(&self) -> Vec<bool> {
        let role = self.sb.role_name();
        self.accounts.iter().map(|a| self.sb.role_exists(a, &role)).collect()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.sb.cmd();
        cmd.timeout(std::time::Duration::from_secs(180));
        cmd.args(args).output().unwrap()
    }
}

fn ok(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
    json(&stdout(out))
}

/// (action, resource) of each change in a JSON report.
fn changes(report: &serde_json::Value) -> Vec<(String, String)> {
    let list = report["changes"].as_array().unwrap();
    list.iter()
        .map(|c| (c["action"].as_str().unwrap().into(), c["resource"].as_str().unwrap().into()))
        .collect()
}

fn has(report: &serde_json::Value, action: &str, resource: &str) -> bool {
    changes(report).contains(&(action.into(), resource.into()))
}

#[test]
fn a_stackset_rollout_converges_from_five_to_six_to_four_and_teardown_leaves_nothing() {
    let f = Fleet::new(6);
    let report = ok(&f.setup(&f.accounts[..5], &[]));
    assert!(has(&report, "created", "stack-set") && has(&report, "created", "stack-instances"));
    assert_eq!(f.roles(), [true, true, true, true, true, false]);
    assert_eq!(f.instances(), Some(f.accounts[..5].to_vec()));
    // The role each instance made is the one setup renders: its policy, and the org grant.
    let policy = f.sb.role_policy(&f.accounts[0]);
    let resource = format!("arn:aws:kms:us-east-1:{}:key/*", f.sb.owner.account);
    assert_eq!(policy["Statement"][0]["Resource"], serde_json::json!(resource));
    assert_eq!(f.sb.key_policy()["Statement"][1]["Principal"], serde_json::json!({"AWS": "*"}));
    let record = std::fs::read_to_string(f.sb.record()).unwrap();
    assert!(record.contains(&format!("admin_account = \"{}\"", f.admin())), "{record}");

    let report = ok(&f.setup(&f.accounts, &[]));
    assert_eq!(changes(&report).iter().filter(|c| c.0 != "unchanged").count(), 1, "{report}");
    assert!(has(&report, "created", "stack-instances"));
    assert_eq!(f.roles(), [true; 6]);

    let report = ok(&f.setup(&f.accounts[..4], &[]));
    assert!(has(&report, "deleted", "stack-instances"), "{report}");
    assert_eq!(f.roles(), [true, true, true, true, false, false]);
    assert_eq!(f.instances(), Some(f.accounts[..4].to_vec()));
    let record = std::fs::read_to_string(f.sb.record()).unwrap();
    assert!(!record.contains(&f.accounts[4]) && record.contains(&f.accounts[3]), "{record}");

    let report = ok(&f.setup(&f.accounts[..4], &[]));
    assert_eq!(report["changed"], false, "{report}");

    let report = ok(&f.run(&["--output", "json", "teardown"]));
    assert!(has(&report, "deleted", "stack-set"), "{report}");
    assert_eq!(f.roles(), [false; 6]);
    assert_eq!(f.instances(), None);
    let keys = f.sb.deployment_keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].1, "PendingDeletion");
}

#[test]
fn fleet_verify_checks_every_account_and_round_trips_in_a_sample_or_all() {
    let f = Fleet::new(5);
    ok(&f.setup(&f.accounts, &[]));
    let report = ok(&f.run(&["--output", "json", "verify"]));
    let accounts = report["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 5);
    assert_eq!(accounts.iter().filter(|a| a["sampled"] == true).count(), 3, "{report}");
    let checks = report["checks"].as_array().unwrap();
    let named = |name: &str| checks.iter().filter(|c| c["name"] == name).count();
    assert_eq!(named("policy-decrypt"), 5);
    assert_eq!(named("stack-instance"), 5);
    assert_eq!(named("decrypt"), 3, "a live Decrypt in each sampled account");
    // The live check reached each sampled account through the execution role: AssumeRole twice.
    let assumed = f.proxy.seen().iter().filter(|s| s.operation == "AssumeRole").count();
    assert_eq!(assumed, 6);

    let report = ok(&f.run(&["--output", "json", "verify", "--sample", "all"]));
    let checks = report["checks"].as_array().unwrap();
    let live: Vec<&str> = checks
        .iter()
        .filter(|c| c["name"] == "encrypt")
        .map(|c| c["account"].as_str().unwrap())
        .collect();
    assert_eq!(live, f.accounts.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn fleet_verify_waits_while_aws_denies_a_role_the_policies_allow() {
    let f = Fleet::new(1);
    ok(&f.setup(&f.accounts, &[]));
    f.proxy.add(Rule::on("sts", "AssumeRole", Fault::Denied).times(2));
    ok(&f.run(&["--output", "json", "verify", "--sample", "all", "--wait", "60"]));
    // Denied twice, then the chain: the execution role, then the kmsxacct role.
    assert_eq!(f.proxy.arrived("AssumeRole"), 4);
}

#[test]
fn fleet_verify_does_not_wait_when_the_policies_deny() {
    let f = Fleet::new(1);
    ok(&f.setup(&f.accounts, &[]));
    f.sb.put_key_policy(&f.sb.admin_only_key_policy());
    f.proxy.add(Rule::on("sts", "AssumeRole", Fault::Denied));
    let out = f.run(&["--output", "json", "verify", "--sample", "all", "--wait", "300"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.proxy.arrived("AssumeRole"), 1, "tried once, not waited on");
}

#[test]
fn fleet_verify_fails_the_account_whose_instance_is_gone() {
    let f = Fleet::new(3);
    ok(&f.setup(&f.accounts, &[]));
    // An instance deleted behind kmsxacct's back, with its stack.
    let cfn = cfn_client(&f.proxy.url(), f.admin());
    f.sb.block_on(
        cfn.delete_stack_instances()
            .stack_set_name(f.sb.role_name())
            .accounts(&f.accounts[1])
            .regions("us-east-1")
            .retain_stacks(false)
            .send(),
    )
    .expect("DeleteStackInstances");
    let out = f.run(&["--output", "json", "verify", "--sample", "all"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let report = json(&stdout(&out));
    let oks: Vec<bool> =
        report["accounts"].as_array().unwrap().iter().map(|a| a["ok"] == true).collect();
    assert_eq!(oks, [true, false, true]);
}

fn cfn_client(url: &str, account: &str) -> aws_sdk_cloudformation::Client {
    use aws_sdk_cloudformation::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(Credentials::new(account, "test", None, None, "test"))
            .build(),
    )
}

#[test]
fn a_stack_set_kmsxacct_did_not_create_stops_setup_before_any_change() {
    let f = Fleet::new(1);
    let cfn = cfn_client(&f.proxy.url(), f.admin());
    f.sb.block_on(
        cfn.create_stack_set()
            .stack_set_name(f.sb.role_name())
            .template_body(r#"{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}"#)
            .send(),
    )
    .expect("CreateStackSet");
    let out = f.setup(&f.accounts, &[]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("was not created by kmsxacct"), "{}", stderr(&out));
    assert!(f.sb.deployment_keys().is_empty(), "no key was made");
    assert!(!f.sb.record().exists());
    assert_eq!(f.proxy.count("CreateStackInstances"), 0);
}

#[test]
fn a_lost_create_stack_instances_answer_is_recognised_by_its_operation_id() {
    let f = Fleet::new(2);
    f.proxy
        .add(Rule::on("cloudformation", "CreateStackInstances", Fault::ResetAfterForward).times(1));
    ok(&f.setup(&f.accounts, &[]));
    assert_eq!(f.roles(), [true, true]);
    // Sent twice with one operation id: the second answered OperationIdAlreadyExists.
    assert_eq!(f.proxy.arrived("CreateStackInstances"), 2);
    assert_eq!(f.proxy.injected("CreateStackInstances"), 2);
}

#[test]
fn a_lost_create_stack_set_answer_makes_one_stack_set_by_its_request_token() {
    let f = Fleet::new(1);
    f.proxy.add(Rule::on("cloudformation", "CreateStackSet", Fault::ResetAfterForward).times(1));
    ok(&f.setup(&f.accounts, &[]));
    // The SDK sent it again with the same token: answered with the same stack set, none made.
    assert_eq!(f.proxy.arrived("CreateStackSet"), 2);
    assert_eq!(f.proxy.injected("CreateStackSet"), 2);
    assert_eq!(f.instances(), Some(f.accounts.clone()));
    let record = std::fs::read_to_string(f.sb.record()).unwrap();
    assert!(record.contains(&format!("id = \"{}:", f.sb.role_name())), "{record}");
}

#[test]
fn changed_grant_settings_update_the_stack_set_template() {
    let f = Fleet::new(1);
    ok(&f.setup(&f.accounts, &[]));
    let report = ok(&f.setup(&f.accounts, &["--actions", "encrypt,decrypt,generate-data-key"]));
    assert!(has(&report, "updated", "stack-set"), "{report}");
    let template = f.proxy.stack_set_template(f.admin(), &f.sb.role_name()).unwrap();
    let t = json(&template);
    let actions = &t["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        [0]["Action"];
    assert_eq!(
        actions,
        &serde_json::json!(["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]),
        "{template}"
    );
}

#[test]
fn fleet_flags_are_checked_before_anything_is_read() {
    let sb = Sandbox::new();
    let base = ["setup", "--owner", &sb.owner.name, "--stackset-admin", &sb.user.name];
    let out = sb.cmd().args(base).args(["--accounts", "222222222222"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("add --org-id o-... or --org-path"), "{}", stderr(&out));
    let file = sb.path().join("accounts.txt");
    std::fs::write(&file, "222222222222\n33333\n").unwrap();
    let out =
        sb.cmd().args(base).args(["--org-id", ORG, "--accounts-file"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("line 2: '33333' is not an account id"), "{}", stderr(&out));
    let out = sb.cmd().args(base).args(["--user", &sb.user.name]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--user and --stackset-admin conflict");
    assert!(!sb.record().exists());
}

#[test]
fn status_shows_the_stack_set_and_the_accounts_holding_an_instance() {
    let f = Fleet::new(2);
    ok(&f.setup(&f.accounts, &[]));
    let report = ok(&f.run(&["--output", "json", "status"]));
    assert_eq!(
        report["stack_set"],
        serde_json::json!({"name": f.sb.role_name(), "admin_account": f.admin(), "exists": true,
            "accounts": f.accounts})
    );
}

#[test]
fn rotate_refuses_a_stackset_rollout_and_changes_nothing() {
    let f = Fleet::new(1);
    ok(&f.setup(&f.accounts, &[]));
    let before = f.sb.deployment_keys();
    let out = f.run(&["rotate"]);
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("does not yet prove a StackSet rollout"), "{}", stderr(&out));
    assert_eq!(f.sb.deployment_keys(), before);
}

/// One timed run of a command: wall time, peak RSS, and the `calls` of its JSON report.
struct Timed {
    wall_ms: f64,
    rss_kb: u64,
    report: serde_json::Value,
}

impl Fleet {
    /// Runs `binary` with `args` under /usr/bin/time; panics unless it succeeds.
    fn timed(&self, binary: &str, args: &[&str]) -> Timed {
        let rss = self.sb.path().join("rss");
        let started = std::time::Instant::now();
        let out = self
            .sb
            .command("/usr/bin/time")
            .args(["-f", "%M", "-o"])
            .arg(&rss)
            .arg(binary)
            .args(["--output", "json"])
            .args(args)
            .output()
            .unwrap();
        let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
        let report = ok(&out);
        let text = std::fs::read_to_string(&rss).unwrap();
        let rss_kb = text.trim().lines().last().unwrap().parse().unwrap();
        Timed { wall_ms, rss_kb, report }
    }
}

/// The StackSet operations' span in a report's calls: from the first call that starts one to the
/// end of the last that waits on one (CloudFormation's work, not kmsxacct's).
fn operation_span_ms(report: &serde_json::Value) -> f64 {
    let calls = report["calls"].as_array().unwrap();
    let starts = ["CreateStackInstances", "DeleteStackInstances", "UpdateStackSet"];
    let waits = ["DescribeStackSetOperation", "ListStackSetOperationResults"];
    let of = |names: &[&str], field: &str| {
        calls
            .iter()
            .filter(|c| names.contains(&c["operation"].as_str().unwrap_or_default()))
            .map(|c| c[field].as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let first = of(&starts, "start_ms").into_iter().fold(f64::MAX, f64::min);
    let mut ends = of(&starts, "end_ms");
    ends.extend(of(&waits, "end_ms"));
    let last = ends.into_iter().fold(0.0, f64::max);
    if first == f64::MAX { 0.0 } else { last - first }
}

/// One measured fleet rollout: setup's wall time, its StackSets operations' span, its AWS calls
/// and peak RSS (KB); then verify's wall time, AWS calls and peak RSS.
struct FleetRun {
    setup_ms: f64,
    span_ms: f64,
    setup_calls: usize,
    setup_rss_kb: u64,
    verify_ms: f64,
    verify_calls: usize,
    verify_rss_kb: u64,
}

/// Rolls out to `n` fresh accounts with `binary`, verifies with the default sample, tears down.
fn fleet_run(binary: &str, n: usize) -> FleetRun {
    let f = Fleet::new(n);
    let list = f.accounts.join(",");
    let setup = f.timed(
        binary,
        &["setup", "--owner", &f.sb.owner.name, "--stackset-admin", &f.sb.user.name]
            .into_iter()
            .chain(["--org-id", ORG, "--alias", &f.sb.alias, "--accounts", &list])
            .collect::<Vec<_>>(),
    );
    assert_eq!(f.roles(), vec![true; n]);
    let verify = f.timed(binary, &["verify"]);
    f.timed(binary, &["teardown"]);
    let calls = |t: &Timed| t.report["calls"].as_array().unwrap().len();
    FleetRun {
        setup_ms: setup.wall_ms,
        span_ms: operation_span_ms(&setup.report),
        setup_calls: calls(&setup),
        setup_rss_kb: setup.rss_kb,
        verify_ms: verify.wall_ms,
        verify_calls: calls(&verify),
        verify_rss_kb: verify.rss_kb,
    }
}

/// Runs of each fleet size: setup's figures are its median run's, verify's wall time the median,
/// peak RSS the largest.
const FLEET_RUNS: usize = 3;

/// Fleet figures for bench/RESULTS.md: setup for 10, 50 and 200 accounts and the default
/// sampled verify, with the release binary (`KMSXACCT_BENCH_BINARY`), written as Markdown rows
/// to `KMSXACCT_BENCH_FLEET`. Run by `scripts/bench.sh`.
#[test]
#[ignore = "a benchmark: scripts/bench.sh runs it"]
fn bench_fleet() {
    let binary = std::env::var("KMSXACCT_BENCH_BINARY").expect("KMSXACCT_BENCH_BINARY");
    let out = std::env::var("KMSXACCT_BENCH_FLEET").expect("KMSXACCT_BENCH_FLEET");
    let sizes = std::env::var("KMSXACCT_BENCH_FLEET_SIZES").unwrap_or_else(|_| "10,50,200".into());
    // A warm-up rollout to one account, not measured: LocalStack loads its CloudFormation
    // provider and resource handlers on first use.
    fleet_run(&binary, 1);
    let mut rows = String::new();
    for n in sizes.split(',').map(|n| n.parse::<usize>().unwrap()) {
        let runs: Vec<FleetRun> = (0..FLEET_RUNS).map(|_| fleet_run(&binary, n)).collect();
        let median = |f: fn(&FleetRun) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let most = |f: fn(&FleetRun) -> u64| runs.iter().map(f).max().unwrap_or(0) as f64 / 1024.0;
        // The run of the median setup, so that its parts add up.
        let mut by_setup: Vec<&FleetRun> = runs.iter().collect();
        by_setup.sort_by(|a, b| a.setup_ms.total_cmp(&b.setup_ms));
        let mid = by_setup[by_setup.len() / 2];
        let (setup, span, own) = (mid.setup_ms, mid.span_ms, mid.setup_ms - mid.span_ms);
        rows.push_str(&format!(
            "| {n} | {setup:.0} ms | {span:.0} ms | {own:.0} ms | {} | {:.1} MB | {:.0} ms | {} | {:.1} MB |\n",
            runs[0].setup_calls,
            most(|r| r.setup_rss_kb),
            median(|r| r.verify_ms),
            runs[0].verify_calls,
            most(|r| r.verify_rss_kb),
        ));
    }
    std::fs::write(out, rows).unwrap();
}

#[test]
fn a_dry_run_plans_the_stack_set_and_an_instance_per_account_and_changes_nothing() {
    let f = Fleet::new(2);
    let report = ok(&f.setup(&f.accounts, &["--dry-run"]));
    let plan = report["plan"].as_array().unwrap();
    let items: Vec<(&str, &str, &str)> = plan
        .iter()
        .filter(|p| p["side"] == "admin")
        .map(|p| {
            (
                p["action"].as_str().unwrap(),
                p["resource"].as_str().unwrap(),
                p["id"].as_str().unwrap(),
            )
        })
        .collect();
    let name = f.sb.role_name();
    let instance = |a: &str| format!("{name}/{a}");
    let (i0, i1) = (instance(&f.accounts[0]), instance(&f.accounts[1]));
    assert_eq!(
        items,
        [
            ("create", "stack-set", name.as_str()),
            ("create", "stack-instances", i0.as_str()),
            ("create", "stack-instances", i1.as_str()),
        ]
    );
    assert!(f.sb.deployment_keys().is_empty());
    assert_eq!(f.proxy.count("CreateStackSet"), 0);
    assert!(!f.sb.record().exists());
}
