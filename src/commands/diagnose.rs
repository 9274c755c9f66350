//! `kmsxacct diagnose`: why is this KMS call denied — which layer, and the smallest fix — for a
//! live setup anyone made. It reads both accounts, fills in the request context itself
//! (`kms:ResourceAliases`, `kms:RequestAlias`, `kms:CallerAccount`, `aws:PrincipalArn`), and
//! weighs every layer: SCPs, permissions boundary, identity policies, key policy, grants, and
//! the facts of the key and its name.

use super::Context;
use super::explain::read_policy;
use crate::aws::{Session, Side, check_profiles};
use crate::caller::{self, CallerView};
use crate::diagnosis::{KeyName, error_layer, needed_usage, state_blocks};
use crate::error::{Error, Result};
use crate::output::colorize_diff;
use crate::owner::{self, KeyFacts};
use crate::policy::PolicyDocument;
use crate::policy::actions::{ActionResource, action_resource, is_known_kms_action};
use crate::policy::eval::{
    Blocker, Decision, Layer, Layers, NamedPolicy, Request, Verdict, decide,
};
use crate::policy::fix::{Fix, FixInput, smallest_fix};
use aws_smithy_types::Blob;
use serde::Serialize;
use std::path::PathBuf;

/// Flags of `diagnose`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiagnoseArgs {
    /// AWS profile that makes the call.
    #[arg(long, value_name = "PROFILE")]
    pub caller: String,
    /// The caller assumes this role first: the call is made by the role session, and the role's
    /// policies are the identity policies.
    #[arg(long, value_name = "ROLE_ARN")]
    pub as_role: Option<String>,
    /// The key exactly as the caller's code names it: key ARN, alias ARN, alias/NAME or key id
    /// (a short name or key id is looked up in the caller's own account and region, as AWS does).
    #[arg(long)]
    pub key: String,
    /// The KMS action, e.g. kms:Decrypt.
    #[arg(long)]
    pub action: String,
    /// AWS profile in the key's account, to read its policy, grants, aliases and state; without
    /// it, diagnose says which layers it could not see.
    #[arg(long, value_name = "PROFILE")]
    pub owner: Option<String>,
    /// A service control policy above the caller's account (JSON file); repeat for each level.
    #[arg(long = "scp", value_name = "FILE")]
    pub scps: Vec<PathBuf>,
    /// Another context key, KEY=VALUE (e.g. kms:EncryptionContext:app=billing); repeatable.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = super::explain::parse_context)]
    pub context: Vec<(String, String)>,
    /// The AccessDenied message AWS printed: the policy type it names is checked against the verdict.
    #[arg(long, value_name = "TEXT")]
    pub error: Option<String>,
    /// Also make the call for real as the caller (DescribeKey, or Encrypt of one random byte)
    /// and report what AWS said.
    #[arg(long)]
    pub probe: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    decision: &'static str,
    principal: &'a str,
    key: &'a str,
    action: &'a str,
    blocking: &'a [Blocker],
    reasons: &'a [crate::policy::eval::Reason],
    fix: &'a [Fix],
    unseen: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_check: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<String>,
}

/// Runs diagnose: exit 0 when the call is allowed, 1 when not, 2 on bad input.
pub async fn run(ctx: &Context, args: &DiagnoseArgs) -> Result<()> {
    let name = KeyName::parse(&args.key)?;
    if is_known_kms_action(&args.action) != Some(true) {
        return Err(Error::Input(format!(
            "unknown action '{}' (expected a KMS action such as kms:Decrypt)",
            args.action
        )));
    }
    let scps: Vec<(String, PolicyDocument)> = args
        .scps
        .iter()
        .map(|p| Ok((p.display().to_string(), read_policy(p)?)))
        .collect::<Result<_>>()?;
    let (caller_s, owner_s) = open(ctx, args, &name).await?;
    ctx.printer.step("reading the caller's policies and the key");
    let (view, facts, resolved) = tokio::try_join!(
        caller::read(&caller_s, args.as_role.as_deref()),
        read_key(owner_s.as_ref(), &name),
        resolve_short_name(&caller_s, &name),
    )?;
    if let Some(o) = &owner_s {
        o.account_from(facts.as_ref().map(|f| f.arn.as_str())).await?;
    }
    let read = Read {
        name: &name,
        caller: &caller_s,
        owner: owner_s.as_ref(),
        view: &view,
        facts: facts.as_ref(),
        resolved: resolved.as_ref(),
        scps: &scps,
    };
    let judged = Judged::new(args, &read)?;
    let probe = match args.probe {
        true => Some(probe(&caller_s, &view, args).await),
        false => None,
    };
    report(ctx, args, &judged, probe)
}

/// The caller's session (in its profile's region), and the owner's (in the key's region).
async fn open(
    ctx: &Context,
    args: &DiagnoseArgs,
    name: &KeyName,
) -> Result<(Session, Option<Session>)> {
    let mut profiles = vec![args.caller.as_str()];
    profiles.extend(args.owner.as_deref());
    check_profiles(&profiles).await?;
    let http = crate::aws::http::client();
    let caller = Session::open(Side::User, &args.caller, None, &http, &ctx.calls).await?;
    let region = match name.place() {
        Some((_, region)) => region.parse()?,
        None => caller.region.clone(),
    };
    let owner = match &args.owner {
        Some(p) => Some(Session::open(Side::Owner, p, Some(&region), &http, &ctx.calls).await?),
        None => None,
    };
    Ok((caller, owner))
}

/// The key's facts, read in the owner's account: by ARN, or an alias name there.
async fn read_key(owner: Option<&Session>, name: &KeyName) -> Result<Option<KeyFacts>> {
    let Some(owner) = owner else { return Ok(None) };
    let key = match name {
        KeyName::KeyArn { arn, .. } => arn.clone(),
        KeyName::AliasArn { alias, .. } | KeyName::AliasName(alias) => alias.clone(),
        KeyName::KeyId(id) => id.clone(),
    };
    owner::key_facts(owner, &key).await
}

/// Where a short name (alias/NAME or key id) leads in the caller's own account: the key ARN,
/// or None. ARNs need no resolving.
async fn resolve_short_name(caller: &Session, name: &KeyName) -> Result<Option<Option<String>>> {
    match name {
        KeyName::AliasName(short) | KeyName::KeyId(short) => {
            Ok(Some(owner::alias_target(caller, short).await?))
        }
        _ => Ok(None),
    }
}

/// The verdict over every layer, and the fixes.
struct Judged {
    request: Request,
    verdict: Verdict,
    fixes: Vec<Fix>,
    error_check: Option<String>,
}

impl Judged {
    fn new(args: &DiagnoseArgs, read: &Read<'_>) -> Result<Judged> {
        let Read { name, caller: caller_s, owner: owner_s, view, facts, scps, .. } = *read;
        let partition = caller_s.partition();
        let key_account = match (name.place(), owner_s) {
            (Some((account, _)), _) => account.to_string(),
            (None, Some(o)) => o.account(),
            (None, None) => view.account.to_string(),
        };
        let region =
            name.place().map(|(_, r)| r.to_string()).unwrap_or(caller_s.region.to_string());
        let place = Place { partition: partition.as_str(), region: &region, account: &key_account };
        let request = request(args, name, view, facts, &place);
        let identity = view.policies.clone();
        let id: Vec<NamedPolicy<'_>> =
            identity.iter().map(|(n, d)| NamedPolicy { name: n, document: d }).collect();
        let scp: Vec<NamedPolicy<'_>> =
            scps.iter().map(|(n, d)| NamedPolicy { name: n, document: d }).collect();
        let boundary = view.boundary.as_ref().map(|(n, d)| NamedPolicy { name: n, document: d });
        let layers = Layers {
            key_policy: facts.map(|f| &f.policy),
            identity: &id,
            boundary,
            scps: &scp,
            grants: facts.map(|f| f.grants.as_slice()).unwrap_or_default(),
        };
        let mut verdict = decide(&request, &layers).map_err(|e| Error::Input(e.0))?;
        if !view.policies_seen {
            verdict.unseen.push(Layer::IdentityPolicy);
        }
        let facts_found = fact_blockers(args, read, &region);
        for b in facts_found {
            if verdict.decision == Decision::Allow {
                verdict.decision = Decision::ImplicitDeny;
            }
            verdict.blocking.push(b);
        }
        let input = FixInput {
            req: &request,
            caller_account: view.account.as_str(),
            caller_role: args.as_role.as_deref(),
            key_account: &key_account,
            partition: partition.as_str(),
            region: &region,
            alias: name.alias(),
            key_policy: facts.map(|f| &f.policy),
            identity: &identity,
            boundary: view.boundary.as_ref(),
            scps,
        };
        let fixes = verdict.blocking.iter().map(|b| smallest_fix(b, &input)).collect();
        let error_check = args.error.as_deref().map(|text| cross_check(text, &verdict));
        Ok(Judged { request, verdict, fixes, error_check })
    }
}

/// Where the key is: partition, region, account.
struct Place<'a> {
    partition: &'a str,
    region: &'a str,
    account: &'a str,
}

/// The request as AWS sees it: the key ARN the name leads to (or a stand-in without the owner's
/// view), the key's aliases, the alias the request names, the context given.
fn request(
    args: &DiagnoseArgs,
    name: &KeyName,
    view: &CallerView,
    facts: Option<&KeyFacts>,
    place: &Place<'_>,
) -> Request {
    let Place { partition, region, account } = *place;
    let key_arn = match (facts, name) {
        (Some(f), _) => f.arn.clone(),
        (None, KeyName::KeyArn { arn, .. }) => arn.clone(),
        _ => format!("arn:{partition}:kms:{region}:{account}:key/unknown"),
    };
    let alias_arn = name.alias().map(|a| format!("arn:{partition}:kms:{region}:{account}:{a}"));
    let alias_action = action_resource(&args.action) == ActionResource::Alias;
    Request {
        principal: view.principal.clone(),
        action: args.action.clone(),
        key_arn,
        key_aliases: facts.map(|f| f.aliases.clone()).unwrap_or_default(),
        request_alias: name.alias().map(String::from),
        alias_arn: alias_arn.filter(|_| alias_action),
        extra: args.context.clone(),
    }
}

/// What diagnose read, and how the key was named.
#[derive(Clone, Copy)]
struct Read<'a> {
    name: &'a KeyName,
    caller: &'a Session,
    owner: Option<&'a Session>,
    view: &'a CallerView,
    facts: Option<&'a KeyFacts>,
    /// Where a short name leads in the caller's own account (None: the name is an ARN).
    resolved: Option<&'a Option<String>>,
    scps: &'a [(String, PolicyDocument)],
}

/// What blocks besides policies: the key's region, name, alias, state and usage.
fn fact_blockers(args: &DiagnoseArgs, read: &Read<'_>, region: &str) -> Vec<Blocker> {
    let Read { name, caller: caller_s, owner: owner_s, view, facts, resolved, .. } = *read;
    let mut found = Vec::new();
    if name.place().is_some() && region != caller_s.region.as_str() {
        found.push(Blocker::fact(
            Layer::Region,
            format!("the caller's region {}", caller_s.region),
            format!("the key is in {region}, but the caller's KMS calls go to {} (its profile's region)", caller_s.region),
        ));
    }
    if let Some(resolution) = resolved.cloned() {
        let owner_account = owner_s.map(|o| o.account()).filter(|a| *a != view.account.as_str());
        match (resolution, owner_account) {
            (None, _) => found.push(Blocker::fact(
                Layer::NameResolution,
                args.key.clone(),
                format!("{} is looked up in the caller's own account {} and region {}, where it names no key", args.key, view.account, caller_s.region),
            )),
            (Some(arn), Some(owner)) => found.push(Blocker::fact(
                Layer::NameResolution,
                args.key.clone(),
                format!("{} is looked up in the caller's own account {}, where it names {arn}, not a key of account {owner}", args.key, view.account),
            )),
            (Some(_), None) => {}
        }
    }
    let Some(facts) = facts else {
        if owner_s.is_some() && name.alias().is_some() && name.place().is_some() {
            let alias = name.alias().unwrap_or_default();
            found.push(Blocker::fact(
                Layer::AliasNotFound,
                alias,
                format!("{alias} does not exist in the key's account"),
            ));
        }
        return found;
    };
    if let Some(why) = state_blocks(&facts.state, facts.deletion_date.as_deref(), &args.action) {
        found.push(Blocker::fact(Layer::KeyState, facts.arn.clone(), why));
    }
    if let Some(usage) = needed_usage(&args.action).filter(|u| *u != facts.usage) {
        found.push(Blocker::fact(
            Layer::KeyUsage,
            facts.arn.clone(),
            format!("{} needs a {usage} key; this key's usage is {}", args.action, facts.usage),
        ));
    }
    found
}

/// Whether the AccessDenied message names a layer the verdict also finds.
fn cross_check(text: &str, verdict: &Verdict) -> String {
    match error_layer(text) {
        None => "the message names no policy type; nothing to check".into(),
        Some((layer, _)) if verdict.blocking.iter().any(|b| b.layer == layer) => {
            format!("agrees: AWS names the {}, and so does the verdict", layer.name())
        }
        Some((layer, _)) => {
            let found: Vec<&str> = verdict.blocking.iter().map(|b| b.layer.name()).collect();
            format!(
                "disagrees: AWS names the {}, the verdict finds {}; the policies read may not be the ones AWS evaluated (propagation, another principal, or a layer diagnose could not see)",
                layer.name(),
                if found.is_empty() { "nothing blocking".to_string() } else { found.join(", ") }
            )
        }
    }
}

/// The call made for real as the caller: Encrypt of one random byte, or DescribeKey.
async fn probe(caller_s: &Session, view: &CallerView, args: &DiagnoseArgs) -> String {
    let kms = match &view.credentials {
        Some(c) => caller_s.kms_with_credentials(c.clone()),
        None => caller_s.kms.clone(),
    };
    let result = if args.action == "kms:Encrypt" {
        let mut byte = [0u8; 1];
        let _ = getrandom::fill(&mut byte);
        let call = kms.encrypt().key_id(&args.key).plaintext(Blob::new(byte.to_vec()));
        call.send().await.map(drop).map_err(|e| caller_s.kms_error("kms:Encrypt (probe)", e))
    } else {
        let call = kms.describe_key().key_id(&args.key);
        call.send().await.map(drop).map_err(|e| caller_s.kms_error("kms:DescribeKey (probe)", e))
    };
    match result {
        Ok(()) => "AWS allowed the call".into(),
        Err(e) => format!("AWS refused: {e}"),
    }
}

/// Prints the verdict, each blocking layer and its fix; the JSON report.
fn report(
    ctx: &Context,
    args: &DiagnoseArgs,
    judged: &Judged,
    probe: Option<String>,
) -> Result<()> {
    let v = &judged.verdict;
    let p = &ctx.printer;
    p.line(format!(
        "decision: {} ({} by {} on {})",
        v.decision.as_str(),
        args.action,
        judged.request.principal,
        args.key
    ));
    for (b, fix) in v.blocking.iter().zip(&judged.fixes) {
        p.line(format!("BLOCK {:<20} {}: {}", b.layer.name(), b.source, b.message));
        p.line(format!("  fix: {} ({})", fix.change, fix.document));
        if let Some(diff) = &fix.diff {
            let shown = if p.color() { colorize_diff(diff) } else { diff.clone() };
            for line in shown.lines() {
                p.line(format!("      {line}"));
            }
        }
    }
    // Near misses of the layers that block: the statement that almost allowed, and why not.
    let blocked = |r: &&crate::policy::eval::Reason| {
        let layer = if r.policy == "key-policy" { Layer::KeyPolicy } else { Layer::IdentityPolicy };
        r.kind == "near-miss" && v.blocking.iter().any(|b| b.layer == layer)
    };
    for r in v.reasons.iter().filter(blocked) {
        p.line(format!("  near miss: {} statement {}: {}", r.policy, r.statement, r.message));
    }
    for layer in &v.unseen {
        p.line(format!(
            "unseen: the {} could not be read; give --owner (or read access) to weigh it",
            layer.name()
        ));
    }
    if let Some(check) = &judged.error_check {
        p.line(format!("error message: {check}"));
    }
    if let Some(probe) = &probe {
        p.line(format!("probe: {probe}"));
    }
    let report = Report {
        command: "diagnose",
        decision: v.decision.as_str(),
        principal: &judged.request.principal,
        key: &args.key,
        action: &args.action,
        blocking: &v.blocking,
        reasons: &v.reasons,
        fix: &judged.fixes,
        unseen: v.unseen.iter().map(|l| l.name()).collect(),
        error_check: judged.error_check.clone(),
        probe,
    };
    p.json(&report, ctx.calls.snapshot());
    match v.decision {
        Decision::Allow => Ok(()),
        d => Err(Error::Failed(format!("{} is not allowed ({})", args.action, d.as_str()))),
    }
}
