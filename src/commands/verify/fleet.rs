//! verify for a StackSet rollout: static checks for every account, from the stack set's live
//! template and the live key policy; live round trips in a sample of the accounts, each reached
//! by role chaining from the administrator through the StackSet execution role.

use super::live::{Live, checks_as, wait_out};
use super::{VerifyArgs, drift_check, owner_checks, policy_checks, record_outcome};
use crate::admin;
use crate::commands::{Context, Sides, Target};
use crate::error::{Error, Result};
use crate::names::AccountId;
use crate::output::Check;
use crate::owner::{self, KeyReads};
use crate::plan::{StackSetState, is_ours, same_template};
use crate::policy::PolicyDocument;
use crate::policy::build::{self, GrantSpec};
use serde::Serialize;
use std::time::Instant;

/// How many accounts get a live round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// This many, chosen at random (all when there are fewer).
    Some(usize),
    /// Every account.
    All,
}

impl std::str::FromStr for Sample {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Sample, String> {
        match s {
            "all" => Ok(Sample::All),
            n => n.parse().map(Sample::Some).map_err(|_| {
                format!("invalid --sample '{n}' (expected a number of accounts, or all)")
            }),
        }
    }
}

impl Sample {
    /// Indexes of the accounts sampled out of `n`, in order: a random choice of the size asked.
    pub fn pick(self, n: usize) -> Vec<usize> {
        let k = match self {
            Sample::All => n,
            Sample::Some(k) => k.min(n),
        };
        let mut order: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let mut bytes = [0u8; 8];
            let _ = getrandom::fill(&mut bytes);
            let j = i + (u64::from_le_bytes(bytes) % (n - i) as u64) as usize;
            order.swap(i, j);
        }
        let mut picked = order[..k].to_vec();
        picked.sort_unstable();
        picked
    }
}

/// One account's outcome.
#[derive(Serialize)]
struct AccountResult {
    account: String,
    /// Whether it had a live round trip.
    sampled: bool,
    ok: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    ok: bool,
    alias_arn: &'a str,
    stack_set: &'a str,
    accounts: &'a [AccountResult],
    checks: &'a [Check],
}

/// The role policy in a stack set's template (the one every instance deploys).
fn template_role_policy(template: &str) -> Option<PolicyDocument> {
    let t: serde_json::Value = serde_json::from_str(template).ok()?;
    let doc = &t["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"];
    serde_json::from_value(doc.clone()).ok()
}

/// The stack set's own checks: it exists and is this deployment's, and its template is the one
/// setup renders.
fn stack_set_checks(
    name: &str,
    set: &Result<Option<StackSetState>>,
    spec: &GrantSpec,
) -> Vec<Check> {
    let set = match set {
        Ok(Some(s)) => s,
        Ok(None) => {
            return vec![Check::new(
                "stack-set",
                false,
                format!("stack set {name} does not exist"),
            )];
        }
        Err(e) => return vec![Check::new("stack-set", false, e.to_string())],
    };
    if !is_ours(&set.tags, spec) {
        return vec![Check::new(
            "stack-set",
            false,
            format!("stack set {name} is not this deployment's"),
        )];
    }
    let wanted = crate::export::user_template_body(spec);
    let same = same_template(&set.template, &wanted);
    let mut drift = Check::new(
        "drift-stack-set-template",
        same,
        if same {
            "as setup renders it"
        } else {
            "differs from what setup renders; `kmsxacct setup` updates it"
        },
    );
    if !same {
        // The live template pretty-printed like the rendered one, so that the diff shows content.
        let live = serde_json::from_str::<serde_json::Value>(&set.template).ok();
        let pretty = live.and_then(|v| serde_json::to_string_pretty(&v).ok()).unwrap_or_default();
        drift.diff = Some(crate::output::diff(&pretty, &wanted));
    }
    vec![Check::new("stack-set", true, format!("stack set {name} ({})", set.id)), drift]
}

/// Runs verify for a StackSet rollout.
pub async fn run(ctx: &Context, args: &VerifyArgs, target: &Target) -> Result<()> {
    let started = Instant::now();
    let Some(record) = target.record.as_ref() else {
        return Err(Error::Input("a StackSet deployment is verified from its record".into()));
    };
    let set_record = target.stack_set().ok_or_else(|| Error::Failed("no stack set".into()))?;
    let sides = target.open(ctx).await?;
    ctx.printer.step("reading the key policy and the stack set");
    let (key, set) = tokio::join!(
        owner::read_key(&sides.owner, target.alias.as_str(), KeyReads::verify(false)),
        target.read_stack_set(&sides),
    );
    let accounts = target.fleet_accounts();
    let spec = target.spec(&sides, record.owner_account.clone(), accounts.clone());
    let alias_arn = target.alias.arn(&record.partition, &record.region, &record.owner_account);
    let mut checks = owner_checks(&key, &spec, target.recorded_key());
    let key = key.ok().flatten();
    if let Some(k) = &key {
        let wanted = crate::plan::converge_key_policy(&spec, k);
        checks.push(drift_check("drift-key-policy", k.policy.as_ref(), wanted.as_ref()));
    }
    checks.extend(stack_set_checks(&set_record.name, &set, &spec));
    let set = set.ok().flatten();
    let fleet = FleetSeen { spec: &spec, key: key.as_ref(), set: set.as_ref() };
    let statics = fleet.static_checks(&accounts);
    let sampled = args.sample.pick(accounts.len());
    // Denied although every static check passes: propagation, worth waiting for.
    let owner_ok = checks.iter().all(|c| c.ok);
    let may_wait: Vec<bool> =
        sampled.iter().map(|&i| owner_ok && statics[i].iter().all(|c| c.ok)).collect();
    ctx.printer.step(format!("calling KMS as the role in {} sampled account(s)", sampled.len()));
    let deadline = started + std::time::Duration::from_secs(args.wait);
    let alias_key = key.as_ref().map(|k| k.arn.as_str());
    let trips = live_trips(
        ctx,
        args,
        (&sides, &spec),
        (&accounts, &sampled, &may_wait),
        (&alias_arn, alias_key, deadline),
    )
    .await;
    let results = merge(&accounts, statics, (&sampled, trips), &mut checks);
    conclude(ctx, target, (&alias_arn, &set_record.name), &results, &checks, sampled.len())
}

/// Prints the checks and the JSON report, records the outcome; Err when any check failed.
fn conclude(
    ctx: &Context,
    target: &Target,
    (alias_arn, stack_set): (&str, &str),
    results: &[AccountResult],
    checks: &[Check],
    sampled: usize,
) -> Result<()> {
    let ok = checks.iter().all(|c| c.ok);
    ctx.printer.checks(checks);
    let report = Report { command: "verify", ok, alias_arn, stack_set, accounts: results, checks };
    ctx.printer.json(&report, ctx.calls.snapshot());
    record_outcome(ctx, target, checks);
    let passing = results.iter().filter(|r| r.ok).count();
    if ok {
        ctx.printer.line(format!(
            "verify: {passing} of {} account(s) pass; live round trips through {alias_arn} in {} sampled account(s)",
            results.len(),
            sampled
        ));
        Ok(())
    } else {
        let failed = checks.iter().filter(|c| !c.ok).count();
        Err(Error::Failed(format!(
            "verify: {failed} of {} checks failed; {passing} of {} account(s) pass",
            checks.len(),
            results.len()
        )))
    }
}

/// What the per-account checks work from.
struct FleetSeen<'a> {
    spec: &'a GrantSpec,
    key: Option<&'a crate::plan::KeyState>,
    set: Option<&'a StackSetState>,
}

impl FleetSeen<'_> {
    /// Each account's static checks: it holds an instance, and the policy engine allows each
    /// granted action with the live key policy and the role policy of the live template.
    fn static_checks(&self, accounts: &[AccountId]) -> Vec<Vec<Check>> {
        let role_policy = self.set.and_then(|s| template_role_policy(&s.template));
        let inline = format!("inline:{}", build::ROLE_POLICY_NAME);
        accounts
            .iter()
            .map(|account| {
                let role_arn = self.spec.role_arn(account);
                let mut mine = vec![instance_check(self.set, account)];
                let policies = match &role_policy {
                    Some(p) => Ok(vec![(inline.clone(), p.clone())]),
                    None => {
                        Err(Error::Failed("the stack set's template holds no role policy".into()))
                    }
                };
                mine.extend(policy_checks(self.key, policies, &role_arn, account, self.spec));
                mine
            })
            .collect()
    }
}

/// Each account's checks, a sampled account's live ones after its static ones, added to
/// `checks`; returns each account's outcome.
fn merge(
    accounts: &[AccountId],
    statics: Vec<Vec<Check>>,
    (sampled, trips): (&[usize], Vec<super::live::RoundTrip>),
    checks: &mut Vec<Check>,
) -> Vec<AccountResult> {
    let mut trips = trips.into_iter();
    let mut results = Vec::new();
    for (i, (account, mut mine)) in accounts.iter().zip(statics).enumerate() {
        let live = sampled.contains(&i);
        if live && let Some(trip) = trips.next() {
            mine.extend(trip.checks.into_iter().map(|c| c.in_account(account.as_str())));
        }
        let ok = mine.iter().all(|c| c.ok);
        results.push(AccountResult { account: account.to_string(), sampled: live, ok });
        checks.extend(mine);
    }
    results
}

/// Whether the account holds an instance of the stack set.
fn instance_check(set: Option<&StackSetState>, account: &AccountId) -> Check {
    let has = set.is_some_and(|s| s.accounts.contains(account));
    let detail = if has {
        "holds an instance of the stack set"
    } else {
        "holds no instance of the stack set"
    };
    Check::new("stack-instance", has, detail).in_account(account.as_str())
}

/// The live round trip in each sampled account, as the role reached by role chaining; a trip
/// AWS denies is repeated until `--wait` runs out (a just-rolled-out role takes a while).
async fn live_trips(
    ctx: &Context,
    args: &VerifyArgs,
    (sides, spec): (&Sides, &GrantSpec),
    (accounts, sampled, may_wait): (&[AccountId], &[usize], &[bool]),
    (alias_arn, alias_key, deadline): (&str, Option<&str>, Instant),
) -> Vec<super::live::RoundTrip> {
    let Some(admin) = sides.admin.as_ref() else { return Vec::new() };
    let work = sampled
        .iter()
        .zip(may_wait)
        .map(|(&i, &may_wait)| {
            let account = &accounts[i];
            let execution =
                format!("arn:{}:iam::{account}:role/{}", spec.partition, args.execution_role);
            let role_arn = spec.role_arn(account);
            async move {
                let live = Live {
                    user: admin,
                    owner: &sides.owner,
                    role_arn: &role_arn,
                    alias_arn,
                    actions: &spec.actions,
                };
                let trip = || async {
                    let credentials = admin::chain_to_role(admin, &execution, &role_arn).await;
                    let assumed = format!("assumed {role_arn} through {execution}");
                    checks_as(live, credentials, assumed).await
                };
                let first = trip().await;
                if !may_wait {
                    return first;
                }
                wait_out(ctx, (alias_key, deadline), first, trip).await
            }
        })
        .collect();
    ctx.bounded(work).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_that_many_distinct_accounts_or_all() {
        let picked = Sample::Some(3).pick(10);
        assert_eq!(picked.len(), 3);
        assert!(picked.windows(2).all(|w| w[0] < w[1]) && picked.iter().all(|&i| i < 10));
        assert_eq!(Sample::Some(5).pick(2), vec![0, 1]);
        assert_eq!(Sample::All.pick(4), vec![0, 1, 2, 3]);
        assert_eq!(Sample::Some(0).pick(4), Vec::<usize>::new());
        assert_eq!("all".parse::<Sample>(), Ok(Sample::All));
        assert_eq!("7".parse::<Sample>(), Ok(Sample::Some(7)));
        assert!("some".parse::<Sample>().unwrap_err().contains("invalid --sample 'some'"));
    }

    #[test]
    fn every_account_can_be_sampled() {
        let mut seen = [false; 10];
        for _ in 0..200 {
            seen[Sample::Some(1).pick(10)[0]] = true;
        }
        assert_eq!(seen, [true; 10]);
    }

    fn spec() -> GrantSpec {
        GrantSpec::example(&[])
    }

    fn set(template: String) -> StackSetState {
        StackSetState {
            id: "s:1".into(),
            template,
            tags: crate::plan::deployment_tags(&spec()),
            accounts: Vec::new(),
        }
    }

    fn outcome(checks: &[Check]) -> Vec<(&str, bool)> {
        checks.iter().map(|c| (c.name.as_str(), c.ok)).collect()
    }

    #[test]
    fn the_stack_set_must_exist_be_ours_and_hold_the_template_setup_renders() {
        let rendered = serde_json::to_string(&crate::export::user_template(&spec())).unwrap();
        let checks = stack_set_checks("s", &Ok(Some(set(rendered))), &spec());
        assert_eq!(outcome(&checks), [("stack-set", true), ("drift-stack-set-template", true)]);
        assert!(checks[1].diff.is_none());
        let checks = stack_set_checks("s", &Ok(Some(set("{}".into()))), &spec());
        assert_eq!(outcome(&checks), [("stack-set", true), ("drift-stack-set-template", false)]);
        assert!(checks[1].diff.as_deref().unwrap().contains("+  \"Resources\""));
        let mut foreign = set("{}".into());
        foreign.tags.clear();
        let checks = stack_set_checks("s", &Ok(Some(foreign)), &spec());
        assert_eq!(outcome(&checks), [("stack-set", false)]);
        assert_eq!(outcome(&stack_set_checks("s", &Ok(None), &spec())), [("stack-set", false)]);
    }

    #[test]
    fn the_role_policy_comes_from_the_template_setup_renders() {
        let spec = spec();
        let template = crate::export::user_template(&spec).to_string();
        assert_eq!(template_role_policy(&template), Some(build::role_access_policy(&spec)));
        assert_eq!(template_role_policy("{}"), None);
    }
}
