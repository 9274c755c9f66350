//! `kmsxacct verify`: prove each user role can use the key through the alias ARN, both by the
//! policies (the policy engine) and live (the granted operations, called as the role).

mod fleet;
mod live;
mod regions;

pub use fleet::Sample;

use super::{Context, Sides, Target, TargetArgs};
use crate::aws::Session;
use crate::error::{Error, Result};
use crate::names::AccountId;
use crate::output::{Check, diff};
use crate::owner::KeyReads;
use crate::plan::{self, KEY_ENABLED, KeyState, LiveRole, converge_key_policy, is_ours};
use crate::policy::PolicyDocument;
use crate::policy::build::{self, GrantSpec, KeyAction};
use crate::policy::eval::{self, Decision, NamedPolicy, Request};
use crate::record::LastVerify;
use crate::{owner, user};
use live::{Live, RoundTrip, exercise, wait_for_propagation};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Flags of `verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Which deployment; without these flags, the record (--config) says.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Seconds to keep retrying while AWS denies what the policies allow, or the alias still
    /// resolves to its previous key (IAM and alias changes take up to five minutes to
    /// propagate); 0 fails at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub wait: u64,
    /// StackSet deployments: how many user accounts get a live round trip (chosen at random), or
    /// `all`; every account gets the static checks.
    #[arg(long, value_name = "N|all", default_value = "3")]
    pub sample: Sample,
    /// StackSet deployments: the role the administrator assumes in each sampled account to reach
    /// the kmsxacct role there (self-managed StackSets need it in every target account).
    #[arg(long, value_name = "NAME", default_value = "AWSCloudFormationStackSetExecutionRole")]
    pub execution_role: String,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    ok: bool,
    alias_arn: &'a str,
    role_arns: &'a [String],
    checks: &'a [Check],
}

/// Runs verify: resolve → read (with the live round trips) → check → record → report.
pub async fn run(ctx: &Context, args: &VerifyArgs) -> Result<()> {
    let started = Instant::now();
    let target = Target::resolve(&args.target, &ctx.config)?;
    if target.stack_set().is_some() {
        return fleet::run(ctx, args, &target).await;
    }
    let sides = target.open(ctx).await?;
    let names = Names::learn(ctx, &target, &sides).await?;
    ctx.printer.step("evaluating the policies and calling KMS as each role");
    let seen = read(ctx, &target, &sides, &names).await?;
    if !target.settings_known {
        refuse_other_shape(&seen)?;
    }
    let deadline = started + Duration::from_secs(args.wait);
    let checks = check(ctx, args, &sides, &names, seen, deadline).await;
    let ok = checks.iter().all(|c| c.ok);
    report(ctx, &names, &checks);
    record_outcome(ctx, &target, &checks);
    if ok {
        ctx.printer.line(format!(
            "verify: {} role(s) use the key through {} for {}",
            names.role_arns.len(),
            names.alias_arn,
            target.settings.actions.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
        ));
        Ok(())
    } else {
        let failed = checks.iter().filter(|c| !c.ok).count();
        Err(Error::Failed(format!("verify: {failed} of {} checks failed", checks.len())))
    }
}

/// The ARNs the live checks call, known before any read: from the record, else from the
/// accounts STS names.
struct Names {
    role_arns: Vec<String>,
    alias_arn: String,
    /// The accounts, when STS was asked for them.
    ids: Option<(AccountId, Vec<AccountId>)>,
}

impl Names {
    /// With a record, the role and alias ARNs are known before STS answers, so the live checks
    /// start at once; without one, they need the accounts first.
    async fn learn(ctx: &Context, target: &Target, sides: &Sides) -> Result<Names> {
        if let Some(r) = &target.record {
            let roles: Option<Vec<String>> =
                (0..r.raw.users.len()).map(|i| target.recorded_role(i).map(String::from)).collect();
            if let Some(role_arns) = roles {
                let alias_arn = target.alias.arn(&r.partition, &r.region, &r.owner_account);
                return Ok(Names { role_arns, alias_arn, ids: None });
            }
        }
        let (owner, users) = sides.identify(ctx).await?;
        let (partition, region) = (sides.owner.partition(), sides.region());
        Ok(Names {
            role_arns: users.iter().map(|u| target.role.arn(&partition, u)).collect(),
            alias_arn: target.alias.arn(&partition, &region, &owner),
            ids: Some((owner, users)),
        })
    }
}

/// What verify read, the live round trips it made, and the spec of the accounts it learnt.
struct Seen {
    spec: GrantSpec,
    /// The user accounts, in the order of their sessions (the spec's are sorted).
    users: Vec<AccountId>,
    recorded_key: Option<String>,
    key: Result<Option<KeyState>>,
    trips: Vec<RoundTrip>,
    role_docs: Vec<Result<user::RoleDocuments>>,
    retired: Vec<(String, String, Result<Option<KeyState>>)>,
}

/// Reads the key, every role's documents and the retired keys while the live checks run.
async fn read(ctx: &Context, target: &Target, sides: &Sides, names: &Names) -> Result<Seen> {
    let actions = &target.settings.actions;
    let live_work = sides
        .users
        .iter()
        .zip(&names.role_arns)
        .map(|(u, role_arn)| exercise(u, &sides.owner, role_arn, &names.alias_arn, actions))
        .collect();
    let policy_reads =
        sides.users.iter().map(|u| user::role_documents(u, target.role.as_str())).collect();
    let reads = KeyReads::verify(target.record.is_none());
    let (key, trips, role_docs, retired) = tokio::join!(
        owner::read_key(&sides.owner, target.alias.as_str(), reads),
        ctx.bounded(live_work),
        ctx.bounded(policy_reads),
        read_retired(target, &sides.owner),
    );
    let (owner_account, users) = match &names.ids {
        Some((owner, users)) => (owner.clone(), users.clone()),
        None => {
            // With a record, the user accounts come from the roles read above (STS only for
            // a missing one), the owner account from the key.
            let arns: Vec<Option<&str>> =
                role_docs.iter().map(|d| d.as_ref().ok().and_then(|d| d.arn.as_deref())).collect();
            let users = sides.user_accounts(ctx, &arns).await?;
            let at_alias = key.as_ref().ok().and_then(Option::as_ref);
            (sides.owner_account(at_alias).await?, users)
        }
    };
    sides.check_distinct(&owner_account, &users)?;
    target.check_accounts(&owner_account, &users)?;
    Ok(Seen {
        spec: target.spec(sides, owner_account, users.clone()),
        users,
        recorded_key: target.recorded_key().map(String::from),
        key,
        trips,
        role_docs,
        retired,
    })
}

/// Without a record, verify checks the default grant shape; a deployment made with other
/// settings would read as drift. When the live documents are exactly what other settings write,
/// say so (bad input) instead.
fn refuse_other_shape(seen: &Seen) -> Result<()> {
    let Some(key_policy) = seen.key.as_ref().ok().and_then(|k| k.as_ref()?.policy.as_ref()) else {
        return Ok(());
    };
    let roles: Vec<LiveRole<'_>> = seen
        .users
        .iter()
        .zip(&seen.role_docs)
        .filter_map(|(u, d)| d.as_ref().ok().map(|d| (u, d.trust.as_ref(), d.access_policy())))
        .collect();
    let Some(shape) = plan::other_shape(&seen.spec, key_policy, &roles) else {
        return Ok(());
    };
    let actions: Vec<&str> = shape.actions.iter().map(|a| a.name()).collect();
    let mut flags = format!(
        "--grant-to {} --actions {} --condition {}",
        flag_value(shape.grant_to),
        actions.join(","),
        flag_value(shape.condition)
    );
    for t in &shape.trust {
        flags.push_str(&format!(" --trust {t}"));
    }
    Err(Error::Input(format!(
        "this deployment was set up with other settings than the defaults ({flags}), and without its record verify cannot tell them from drift: run verify where setup wrote its record, or pass --config PATH"
    )))
}

/// How a value is written on the command line.
fn flag_value(value: impl clap::ValueEnum) -> String {
    value.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
}

/// Keys an earlier rotate retired: data they encrypted must stay readable.
async fn read_retired(
    target: &Target,
    owner: &Session,
) -> Vec<(String, String, Result<Option<KeyState>>)> {
    let reads = KeyReads { tags: false, policy: true, aliases: true };
    let work = target.retired_keys().map(|r| async move {
        let key = owner::read_key(owner, &r.arn, reads).await;
        (r.alias.clone(), r.arn.clone(), key)
    });
    futures_util::future::join_all(work).await
}

/// Every check: the owner side, then each user account's drift, retired keys, policy engine and
/// live round trip (waiting out propagation when AWS denies what the policies allow).
async fn check(
    ctx: &Context,
    args: &VerifyArgs,
    sides: &Sides,
    names: &Names,
    seen: Seen,
    deadline: Instant,
) -> Vec<Check> {
    let spec = &seen.spec;
    let mut checks = owner_checks(&seen.key, spec, seen.recorded_key.as_deref());
    let key = seen.key.ok().flatten();
    let region_keys = regions::read(&sides.owner, spec).await;
    checks.extend(regions::owner_checks(&region_keys, spec, key.as_ref().map(|k| k.arn.as_str())));
    if let Some(k) = &key {
        let wanted = converge_key_policy(spec, k);
        checks.push(drift_check("drift-key-policy", k.policy.as_ref(), wanted.as_ref()));
    }
    let accounts = sides
        .users
        .iter()
        .zip(&seen.users)
        .zip(seen.trips.into_iter().zip(seen.role_docs))
        .zip(&names.role_arns);
    for (((session, account), (trip, docs)), role_arn) in accounts {
        let in_account = |c: Check| c.in_account(account.as_str());
        if spec.actions.contains(&KeyAction::Decrypt) {
            let retired = seen
                .retired
                .iter()
                .map(|(alias, arn, k)| retired_check(alias, arn, k, &docs, role_arn, spec))
                .map(in_account);
            checks.extend(retired);
        }
        checks.extend(role_drift(spec, account, &docs).into_iter().map(in_account));
        let policies = docs.as_ref().ok().map(|d| d.policies.clone());
        let policy_checks =
            policy_checks(key.as_ref(), docs.map(|d| d.policies), role_arn, account, spec);
        // Denied although every static check passes: propagation, not a wrong policy. Wait.
        let static_ok = checks.iter().chain(&policy_checks).all(|c| c.ok);
        let alias_key = key.as_ref().map(|k| k.arn.as_str());
        let trip = if trip.pending(alias_key).is_some() && static_ok && args.wait > 0 {
            let live = Live {
                user: session,
                owner: &sides.owner,
                role_arn,
                alias_arn: &names.alias_arn,
                actions: &spec.actions,
            };
            wait_for_propagation(ctx, live, alias_key, deadline, trip).await
        } else {
            trip
        };
        checks.extend(policy_checks);
        checks.extend(trip.checks.into_iter().map(in_account));
        let (owner, alias_arn) = (&sides.owner, names.alias_arn.as_str());
        let regional = regions::user_checks(
            &region_keys,
            spec,
            session,
            owner,
            account,
            role_arn,
            policies,
            alias_arn,
        );
        checks.extend(regional.await);
    }
    checks
}

/// Drift of the role's trust policy and of kmsxacct's inline policy.
fn role_drift(
    spec: &GrantSpec,
    account: &AccountId,
    docs: &Result<user::RoleDocuments>,
) -> Vec<Check> {
    let Ok(docs) = docs else {
        return Vec::new();
    };
    let trust = build::role_trust_policy(spec, account);
    let access = build::role_access_policy(spec);
    [
        ("drift-trust-policy", docs.trust.as_ref(), &trust),
        ("drift-role-policy", docs.access_policy(), &access),
    ]
    .into_iter()
    .map(|(name, live, wanted)| {
        let differs = live.is_none_or(|l| !l.same_as(wanted));
        drift_check(name, live, differs.then_some(wanted))
    })
    .collect()
}

/// Prints the checks, and the JSON report.
fn report(ctx: &Context, names: &Names, checks: &[Check]) {
    ctx.printer.checks(checks);
    ctx.printer.json(
        &Report {
            command: "verify",
            ok: checks.iter().all(|c| c.ok),
            alias_arn: &names.alias_arn,
            role_arns: &names.role_arns,
            checks,
        },
        ctx.calls.snapshot(),
    );
}

/// Remembers the outcome in the record, for `kmsxacct status`.
fn record_outcome(ctx: &Context, target: &Target, checks: &[Check]) {
    let Some(record) = &target.record else {
        return;
    };
    let mut raw = record.raw.clone();
    raw.last_verify = Some(LastVerify {
        at: crate::writes::now(),
        ok: checks.iter().all(|c| c.ok),
        failed: checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| match &c.account {
                Some(a) => format!("{} [{a}]", c.name),
                None => c.name.clone(),
            })
            .collect(),
    });
    if let Err(e) = raw.save(&ctx.config) {
        ctx.printer.note(format!("could not record this verify: {e}"));
    }
}

/// Key enabled, and the alias pointing at the recorded key (or, without a record, at a key of
/// this deployment).
fn owner_checks(
    key: &Result<Option<KeyState>>,
    spec: &GrantSpec,
    recorded_key: Option<&str>,
) -> Vec<Check> {
    let key = match key {
        Ok(Some(k)) => k,
        Ok(None) => {
            let missing = format!("{} does not exist in account {}", spec.alias, spec.owner);
            return vec![
                Check::new("alias-target", false, missing.clone()),
                Check::new("key-enabled", false, missing),
            ];
        }
        Err(e) => {
            return vec![
                Check::new("alias-target", false, e.to_string()),
                Check::new("key-enabled", false, e.to_string()),
            ];
        }
    };
    let alias_target = match recorded_key {
        Some(rec) if rec != key.arn => Check::new(
            "alias-target",
            false,
            format!("{} points at {}, not the recorded key {rec}", spec.alias, key.arn),
        ),
        Some(_) => Check::new(
            "alias-target",
            true,
            format!("{} points at the recorded key {}", spec.alias, key.arn),
        ),
        None if is_ours(&key.tags, spec) => Check::new(
            "alias-target",
            true,
            format!("{} points at {}, a key of this deployment", spec.alias, key.arn),
        ),
        None => Check::new(
            "alias-target",
            false,
            format!(
                "{} points at {}, which kmsxacct did not create for this deployment",
                spec.alias, key.arn
            ),
        ),
    };
    let enabled = Check::new(
        "key-enabled",
        key.state == KEY_ENABLED,
        format!("key {} is {}", key.arn, key.state),
    );
    vec![alias_target, enabled]
}

/// A key an earlier rotate retired: the policies must still allow Decrypt on it through its
/// retirement alias, or data it encrypted has become unreadable.
fn retired_check(
    alias: &str,
    arn: &str,
    key: &Result<Option<KeyState>>,
    docs: &Result<user::RoleDocuments>,
    role_arn: &str,
    spec: &GrantSpec,
) -> Check {
    let name = "policy-decrypt-retired";
    let (key, docs) = match (key, docs) {
        (Ok(Some(k)), Ok(d)) => (k, d),
        (Ok(None), _) => {
            return Check::new(name, false, format!("retired key {arn} no longer exists"));
        }
        (Err(e), _) | (_, Err(e)) => return Check::new(name, false, format!("not evaluated: {e}")),
    };
    let Some(policy) = &key.policy else {
        return Check::new(name, false, "not evaluated: no key policy");
    };
    let named: Vec<NamedPolicy<'_>> =
        docs.policies.iter().map(|(name, document)| NamedPolicy { name, document }).collect();
    let request = Request {
        principal: role_arn.to_string(),
        action: "kms:Decrypt".into(),
        key_arn: key.arn.clone(),
        key_aliases: key.aliases.clone(),
        request_alias: Some(alias.to_string()),
        alias_arn: None,
        extra: spec.principal_context(),
    };
    evaluation_check(
        name,
        &request,
        policy,
        &named,
        &format!("data encrypted under the retired key {arn} stays readable through {alias}"),
        &format!("Decrypt on the retired key {arn} through {alias} is"),
    )
}

/// Evaluates `request` and turns the decision into a check: `allowed` as the detail when it is
/// allowed; else `denied_subject` + "denied by the policies:" + the reasons.
pub(super) fn evaluation_check(
    name: &str,
    request: &Request,
    key_policy: &PolicyDocument,
    identity: &[NamedPolicy<'_>],
    allowed: &str,
    denied_subject: &str,
) -> Check {
    match eval::evaluate(request, key_policy, identity) {
        Ok(e) if e.decision == Decision::Allow => Check::new(name, true, allowed),
        Ok(e) => Check::new(
            name,
            false,
            format!(
                "{denied_subject} {} by the policies: {}",
                match e.decision {
                    Decision::ExplicitDeny => "explicitly denied",
                    _ => "denied",
                },
                e.reasons
                    .iter()
                    .map(|r| format!("{} {}: {}", r.policy, r.statement, r.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        Err(e) => Check::new(name, false, format!("not evaluated: {e}")),
    }
}

/// Drift: a live document kmsxacct wrote that no longer says what setup writes. `wanted` is the
/// document setup would write, or None when the live one already matches.
fn drift_check(
    name: &str,
    live: Option<&PolicyDocument>,
    wanted: Option<&PolicyDocument>,
) -> Check {
    match wanted {
        None => Check::new(name, true, "as setup writes it"),
        Some(w) => {
            let mut c = Check::new(
                name,
                false,
                match live {
                    Some(_) => "differs from what setup writes; `kmsxacct setup` converges it",
                    None => "missing; `kmsxacct setup` puts it back",
                },
            );
            c.diff = Some(diff(&live.map(PolicyDocument::render).unwrap_or_default(), &w.render()));
            c
        }
    }
}

/// Evaluates each granted action through the alias with the live key policy and the role's
/// policies: LocalStack never denies, so this is what proves the policies agree.
fn policy_checks(
    key: Option<&KeyState>,
    role_policies: Result<Vec<(String, PolicyDocument)>>,
    role_arn: &str,
    account: &AccountId,
    spec: &GrantSpec,
) -> Vec<Check> {
    let actions = spec.iam_actions();
    let name =
        |action: &str| format!("policy-{}", action.trim_start_matches("kms:").to_ascii_lowercase());
    let fail_all = |detail: String| {
        actions
            .iter()
            .map(|a| Check::new(name(a), false, detail.clone()).in_account(account.as_str()))
            .collect::<Vec<_>>()
    };
    let Some(key) = key else {
        return fail_all(format!("not evaluated: {} does not lead to a key", spec.alias));
    };
    let Some(key_policy) = &key.policy else {
        return fail_all("not evaluated: the key policy was not read".into());
    };
    let role_policies = match role_policies {
        Ok(p) => p,
        Err(e) => return fail_all(format!("not evaluated: {e}")),
    };
    let named: Vec<NamedPolicy<'_>> =
        role_policies.iter().map(|(name, document)| NamedPolicy { name, document }).collect();
    actions
        .iter()
        .map(|action| {
            let request = Request {
                principal: role_arn.to_string(),
                action: action.to_string(),
                key_arn: key.arn.clone(),
                key_aliases: key.aliases.clone(),
                request_alias: Some(spec.alias.to_string()),
                alias_arn: None,
                extra: spec.principal_context(),
            };
            let check = evaluation_check(
                &name(action),
                &request,
                key_policy,
                &named,
                &format!(
                    "the key policy and the role's policies allow {action} through {}",
                    spec.alias
                ),
                &format!("{action} through {} is", spec.alias),
            );
            check.in_account(account.as_str())
        })
        .collect()
}
