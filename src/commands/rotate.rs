//! `kmsxacct rotate`: a new key behind the same alias, proven not to break the user accounts.
//!
//! The reason aliases exist: users keep naming the alias while the key behind it changes. The
//! trap: once the alias moves, the old key no longer carries it, so a role policy conditioned on
//! `kms:ResourceAliases` = the alias alone would no longer allow Decrypt on the old key, and data
//! encrypted before the rotation would become unreadable. So rotate leaves a retirement alias
//! (`alias/NAME/retired/<first 8 characters of its key id>`) on the old key, which setup's role policy also covers, and
//! proves both: by the policy engine (Decrypt on the old key, Encrypt on the new one) and live
//! (the role encrypts through the alias with the new key and decrypts data made before).

mod regions;

use super::verify::evaluation_check;
use super::wait::{self, Waited};
use super::{Context, Sides, Target, TargetArgs};
use crate::aws::Session;
use crate::error::{Error, Result};
use crate::names::{AccountId, PendingWindow, Region};
use crate::output::{Change, Check};
use crate::owner::{self, KeyJournal, KeyReads, OwnerApply};
use crate::plan::{KEY_ENABLED, KeyState, deployment_tags, is_ours, plan_rotate_key};
use crate::policy::PolicyDocument;
use crate::policy::build::{self, GrantSpec, KeyAction};
use crate::policy::eval::{NamedPolicy, Request};
use crate::record::{CheckedDeployment, Journal, RetiredKey};
use crate::user;
use crate::writes::{Write, apply_to, now};
use aws_smithy_types::Blob;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Flags of `rotate`.
#[derive(Debug, Clone, clap::Args)]
pub struct RotateArgs {
    /// Which deployment; without these flags, the record (--config) says. Rotation needs the
    /// record: it keeps the key history.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Once the proof passes, schedule the old key's deletion (data only it encrypted becomes
    /// unreadable when the window ends).
    #[arg(long)]
    pub retire_old: bool,
    /// Seconds the proof keeps retrying while AWS denies what the policies allow, or Encrypt
    /// through the alias still reaches the old key (alias changes take up to five minutes to
    /// propagate); 0 fails at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub wait: u64,
    /// Days KMS waits before deleting the old key, 7 to 30 [default: the record's].
    #[arg(long, value_name = "DAYS")]
    pub pending_window_days: Option<PendingWindow>,
    /// Move a one-Region deployment to a new multi-Region key, with a replica and the alias in
    /// each of these regions (comma-separated; the primary stays in the key's region).
    #[arg(long, value_name = "R1,R2,...", value_delimiter = ',', num_args = 1..)]
    pub multi_region: Vec<Region>,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    ok: bool,
    old_key: &'a str,
    new_key: &'a str,
    retired_alias: &'a str,
    changes: &'a [Change],
    checks: &'a [Check],
}

/// Runs rotate: resolve → read → plan → apply → prove → report.
pub async fn run(ctx: &Context, args: &RotateArgs) -> Result<()> {
    let started = Instant::now();
    let target = Target::resolve(&args.target, &ctx.config)?;
    let record = rotatable(&target)?;
    let window = args.pending_window_days.unwrap_or(record.pending_window);
    let sides = target.open(ctx).await?;
    let (mut spec, users, old) = read(ctx, &target, &sides).await?;
    // The old key's replica regions, and those of the new key.
    let old_regions = spec.replica_regions.clone();
    if !args.multi_region.is_empty() {
        spec.replica_regions = new_regions(&spec, &args.multi_region)?;
    }
    let retired_alias = build::retired_alias(&spec.alias, &old.key_id);
    let old_replicas = regions::read_old(&sides.owner, &old, &old_regions).await?;
    // Data encrypted before the rotation, to prove it stays readable.
    let sample = Sample::encrypt(&sides.owner, spec.alias.as_str()).await?;
    ctx.printer.step("creating the new key");
    let journal = Journal::start(record.raw.clone(), &ctx.config)?;
    let mut changes = Vec::new();
    let new_arn = new_key(ctx, &sides.owner, &spec, &old, &journal, window, &mut changes).await?;
    record_new_key(&journal, &spec, &old, &new_arn, &retired_alias)?;
    let key_policy = old.policy.clone().unwrap_or_else(|| build::key_policy(&spec));
    let moves = regions::Moves {
        spec: &spec,
        old_replicas: &old_replicas,
        new_arn: &new_arn,
        retired_alias: &retired_alias,
        key_policy: &key_policy,
        wait_until: Instant::now() + Duration::from_secs(args.wait.max(30)),
        printer: &ctx.printer,
    };
    moves.replicate(&sides.owner, &mut changes).await?;
    if !args.multi_region.is_empty() {
        // The role policies must cover the new regions' keys before the aliases lead there.
        regions::widen_role_policies(ctx, &sides, &users, &spec, &mut changes).await?;
    }
    move_alias(&sides.owner, &spec, &old, &new_arn, &retired_alias, &mut changes).await?;
    moves.move_aliases(&sides.owner, &mut changes).await?;
    ctx.printer.step("proving the user accounts still work, old data included");
    let deadline = started + Duration::from_secs(args.wait);
    let mut checks = Vec::new();
    let old_keys = Keys { primary: &old, replicas: &old_replicas };
    let proofs = proofs(&spec, old_keys, &new_arn, &key_policy, &retired_alias, &sample);
    for proof in &proofs {
        checks.extend(prove(ctx, &sides, &users, proof, deadline).await?);
    }
    if args.retire_old && checks.iter().all(|c| c.ok) {
        retire_old(&sides.owner, old_keys, window, &journal, &mut changes).await?;
    }
    report(ctx, args, &proofs[0], &changes, &checks)
}

/// A key and its replicas by region.
#[derive(Clone, Copy)]
struct Keys<'a> {
    primary: &'a KeyState,
    replicas: &'a [(Region, KeyState)],
}

/// Journals the new key, the old one's retirement, and the new key's replica regions.
fn record_new_key(
    journal: &Journal<'_>,
    spec: &GrantSpec,
    old: &KeyState,
    new_arn: &str,
    retired_alias: &str,
) -> Result<()> {
    Ok(journal.update(|r| {
        r.key_arn = new_arn.to_string();
        r.key_creation_pending = false;
        r.previous_keys.push(RetiredKey {
            arn: old.arn.clone(),
            alias: retired_alias.to_string(),
            retired_at: now(),
            deletion_scheduled: None,
        });
        r.replica_regions = spec.replica_regions.iter().map(|r| r.to_string()).collect();
    })?)
}

/// What to prove in each region: the primary's first.
fn proofs<'a>(
    spec: &'a GrantSpec,
    old: Keys<'_>,
    new_arn: &str,
    key_policy: &'a PolicyDocument,
    retired_alias: &'a str,
    sample: &'a Sample,
) -> Vec<Proof<'a>> {
    spec.regions()
        .map(|region| Proof {
            spec,
            region,
            old_arn: if *region == spec.region {
                Some(old.primary.arn.clone())
            } else {
                old.replicas.iter().find(|(r, _)| r == region).map(|(_, k)| k.arn.clone())
            },
            key_policy,
            new_arn: crate::plan::replica_arn(new_arn, region),
            retired_alias,
            sample,
        })
        .collect()
}

/// Schedules the old key's deletion once the proof passed: its replicas first (AWS deletes a
/// primary only once it has none).
async fn retire_old(
    owner: &Session,
    old: Keys<'_>,
    window: PendingWindow,
    journal: &Journal<'_>,
    changes: &mut Vec<Change>,
) -> Result<()> {
    for (region, replica) in old.replicas {
        let write = Write::ScheduleKeyDeletion { key_arn: &replica.arn, days: window.days() };
        apply_to(changes, &owner.in_region(region), write).await?;
    }
    let write = Write::ScheduleKeyDeletion { key_arn: &old.primary.arn, days: window.days() };
    apply_to(changes, owner, write).await?;
    Ok(journal.update(|r| {
        if let Some(last) = r.previous_keys.last_mut() {
            last.deletion_scheduled = Some(now());
        }
    })?)
}

/// The replica regions `rotate --multi-region` asks for: each once, never the primary's, and
/// only for a deployment whose key is one-Region (setup --regions changes a multi-Region one).
fn new_regions(spec: &GrantSpec, asked: &[Region]) -> Result<Vec<Region>> {
    if spec.multi_region() {
        return Err(Error::Input(
            "--multi-region: this deployment's key is multi-Region already; add or drop regions with `kmsxacct setup --regions`".into(),
        ));
    }
    let mut regions: Vec<Region> = Vec::new();
    for r in asked {
        if *r == spec.region || regions.contains(r) {
            return Err(Error::Input(format!(
                "--multi-region names {r} {} (allowed: each replica region once, not the key's region {})",
                if *r == spec.region { "the key's own region" } else { "twice" },
                spec.region
            )));
        }
        regions.push(r.clone());
    }
    Ok(regions)
}

/// The record, which rotate needs (it keeps the key history), of a key kmsxacct created.
fn rotatable(target: &Target) -> Result<&CheckedDeployment> {
    let Some(record) = &target.record else {
        return Err(Error::Input(
            "rotate needs the deployment record (it keeps the key history): run it where `kmsxacct setup` wrote kmsxacct.toml, or pass --config".into(),
        ));
    };
    if record.raw.adopted {
        return Err(Error::Input(
            "this deployment adopted a key kmsxacct did not create; rotate only rotates keys kmsxacct created".into(),
        ));
    }
    if record.raw.stack_set.is_some() {
        return Err(Error::Input(
            "rotate does not yet prove a StackSet rollout's accounts; for now rotate the key with a --user deployment".into(),
        ));
    }
    Ok(record)
}

/// Learns the accounts and reads the key behind the alias, which must be an Enabled key of this
/// deployment.
async fn read(
    ctx: &Context,
    target: &Target,
    sides: &Sides,
) -> Result<(GrantSpec, Vec<AccountId>, KeyState)> {
    let (ids, current) = tokio::join!(
        sides.identify(ctx),
        owner::read_key(&sides.owner, target.alias.as_str(), KeyReads::SETUP)
    );
    let (owner_account, users) = ids?;
    target.check_accounts(&owner_account, &users)?;
    let spec = target.spec(sides, owner_account, users.clone());
    let Some(current) = current? else {
        return Err(Error::Conflict(format!(
            "{} does not exist in account {}; run `kmsxacct setup` first",
            spec.alias, spec.owner
        )));
    };
    if !is_ours(&current.tags, &spec) || current.state != KEY_ENABLED {
        return Err(Error::Conflict(format!(
            "{} points at {} ({}), which is not an Enabled key of this deployment; rotate changed nothing",
            spec.alias, current.arn, current.state
        )));
    }
    Ok((spec, users, current))
}

/// Random bytes and their ciphertext under the key, made by the owner before the rotation.
struct Sample {
    plaintext: [u8; 32],
    ciphertext: Blob,
}

impl Sample {
    async fn encrypt(owner: &Session, alias: &str) -> Result<Sample> {
        let mut plaintext = [0u8; 32];
        let _ = getrandom::fill(&mut plaintext);
        let ciphertext = owner
            .kms
            .encrypt()
            .key_id(alias)
            .plaintext(Blob::new(plaintext.to_vec()))
            .send()
            .await
            .map_err(|e| owner.kms_error("kms:Encrypt (before the rotation)", e))?
            .ciphertext_blob
            .ok_or_else(|| Error::Failed("Encrypt returned no ciphertext".into()))?;
        Ok(Sample { plaintext, ciphertext })
    }
}

/// A new key with the old key's policy, journaled like setup's. Returns its ARN.
async fn new_key(
    ctx: &Context,
    owner: &Session,
    spec: &GrantSpec,
    old: &KeyState,
    journal: &Journal<'_>,
    window: PendingWindow,
    changes: &mut Vec<Change>,
) -> Result<String> {
    // A rotate that stopped between CreateKey and recording its answer may have left a key:
    // find it by its tags rather than create a second one.
    let found = if journal.read(|r| r.key_creation_pending) {
        ctx.printer
            .note("a previous rotate stopped while creating the key; looking for it by its tags");
        owner::find_deployment_keys(owner, spec).await?
    } else {
        Vec::new()
    };
    let plan = plan_rotate_key(spec, old, &found);
    let tags = deployment_tags(spec);
    let opts = OwnerApply {
        alias: spec.alias.as_str(),
        tags: &tags,
        retire_window: window,
        wait_until: Instant::now() + Duration::from_secs(30),
        printer: &ctx.printer,
    };
    let creating = || Ok(journal.update(|r| r.key_creation_pending = true)?);
    let created = |_: &str| Ok(());
    let key_journal = KeyJournal { creating: &creating, created: &created };
    let mut made = Vec::new();
    let arn = owner::apply_setup(owner, &plan, opts, key_journal, &mut made).await?;
    // apply_setup also reports what it left alone (the alias it does not touch here).
    changes.extend(made.into_iter().filter(Change::is_change));
    Ok(arn)
}

/// Keeps the old key reachable through its retirement alias, then moves the alias.
async fn move_alias(
    owner: &Session,
    spec: &GrantSpec,
    old: &KeyState,
    new_arn: &str,
    retired_alias: &str,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let retire = Write::CreateAlias { alias: retired_alias, key_arn: &old.arn };
    apply_to(changes, owner, retire).await?;
    let update = Write::UpdateAlias { alias: spec.alias.as_str(), key_arn: new_arn };
    apply_to(changes, owner, update).await.map(drop)
}

/// What the continuity proof works with, in one region.
struct Proof<'a> {
    spec: &'a GrantSpec,
    /// The region proven: the primary's, or a replica's.
    region: &'a Region,
    /// The old key there (its replica, in a replica region); None where the old key had none.
    old_arn: Option<String>,
    /// The old key's policy, which the new key took.
    key_policy: &'a PolicyDocument,
    /// The new key there.
    new_arn: String,
    retired_alias: &'a str,
    sample: &'a Sample,
}

impl Proof<'_> {
    /// The retirement alias's ARN in the region.
    fn retired_arn(&self) -> String {
        let spec = self.spec;
        format!("arn:{}:kms:{}:{}:{}", spec.partition, self.region, spec.owner, self.retired_alias)
    }

    /// A check about this region (named `CHECK@REGION` in a replica's region).
    fn named(&self, c: Check) -> Check {
        if *self.region == self.spec.region {
            c
        } else {
            Check { name: format!("{}@{}", c.name, self.region), ..c }
        }
    }
}

/// Proves continuity in every user account: by the policy engine and live.
async fn prove(
    ctx: &Context,
    sides: &Sides,
    users: &[AccountId],
    proof: &Proof<'_>,
    deadline: Instant,
) -> Result<Vec<Check>> {
    let work = sides
        .users
        .iter()
        .zip(users)
        .map(|(session, account)| async move {
            let role_arn = proof.spec.role_arn(account);
            let docs = user::role_documents(session, proof.spec.role.as_str()).await?;
            let session = &session.in_region(proof.region);
            let mut checks = policy_proof(proof, &role_arn, &docs.policies);
            let live = live_proof(session, &role_arn, proof).await;
            // Failing live although the policies allow: propagation, which AWS documents takes
            // up to five minutes for alias changes. Wait it out.
            let live = if checks.iter().all(|c| c.ok) {
                let again = || live_proof(session, &role_arn, proof);
                let what = "alias propagation";
                let pending = |l: &LiveProof| l.pending.clone();
                let (mut live, waited) =
                    wait::until_visible(ctx, deadline, what, live, pending, again).await;
                if let Waited::GaveUp(waited) = waited {
                    for c in live.checks.iter_mut().filter(|c| !c.ok) {
                        c.detail.push_str(&format!(
                            " (still so after waiting {waited:.0} s for propagation; raise --wait)"
                        ));
                    }
                }
                live
            } else {
                live
            };
            checks.extend(live.checks);
            Ok::<_, Error>(
                checks
                    .into_iter()
                    .map(|c| proof.named(c).in_account(account.as_str()))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let per_account: Vec<Vec<Check>> =
        ctx.bounded(work).await.into_iter().collect::<Result<_>>()?;
    Ok(per_account.into_iter().flatten().collect())
}

/// By the policy engine: Decrypt on the old key through its retirement alias, Encrypt on the
/// new key through the alias.
fn policy_proof(
    proof: &Proof<'_>,
    role_arn: &str,
    policies: &[(String, PolicyDocument)],
) -> Vec<Check> {
    let spec = proof.spec;
    let named: Vec<NamedPolicy<'_>> =
        policies.iter().map(|(name, document)| NamedPolicy { name, document }).collect();
    let key_policy = proof.key_policy;
    let check = |name: &str, action: &str, key: &str, via: &str| {
        let request = Request {
            principal: role_arn.to_string(),
            action: action.into(),
            key_arn: key.into(),
            key_aliases: vec![via.to_string()],
            request_alias: Some(via.into()),
            alias_arn: None,
            extra: spec.principal_context(),
        };
        evaluation_check(
            name,
            &request,
            key_policy,
            &named,
            &format!("the policies allow {action} on {key} through {via}"),
            &format!(
                "{action} on {key} through {via} (run `kmsxacct setup` to update the role policy) is"
            ),
        )
    };
    let mut checks = Vec::new();
    if let (true, Some(old)) = (spec.actions.contains(&KeyAction::Decrypt), &proof.old_arn) {
        checks.push(check("policy-decrypt-old", "kms:Decrypt", old, proof.retired_alias));
    }
    if spec.actions.contains(&KeyAction::Encrypt) {
        let via = spec.alias.as_str();
        checks.push(check("policy-encrypt-new", "kms:Encrypt", &proof.new_arn, via));
    }
    checks
}

/// The live proof of one account, and why it may still be propagation when it failed.
struct LiveProof {
    checks: Vec<Check>,
    pending: Option<String>,
}

/// As the role: Encrypt through the alias must use the new key; Decrypt of data made before the
/// rotation, naming the retirement alias ARN, must give the bytes back.
async fn live_proof(s: &Session, role_arn: &str, proof: &Proof<'_>) -> LiveProof {
    let credentials = match user::assume_role(s, role_arn).await {
        Ok(c) => c,
        Err(e) => {
            let pending = e.is_denied().then(|| e.to_string());
            return LiveProof {
                checks: vec![Check::new("assume-role", false, e.to_string())],
                pending,
            };
        }
    };
    let kms = s.kms_with_credentials(credentials);
    let actions = &proof.spec.actions;
    let mut outcomes = Vec::new();
    if actions.contains(&KeyAction::Encrypt) {
        outcomes.push(encrypt_new_key(s, &kms, proof).await);
    }
    if actions.contains(&KeyAction::Decrypt) && proof.old_arn.is_some() {
        outcomes.push(decrypt_old_data(s, &kms, proof).await);
    }
    let pending = outcomes.iter().find_map(|(_, p)| p.clone());
    LiveProof { checks: outcomes.into_iter().map(|(c, _)| c).collect(), pending }
}

/// A check, and why it may still be propagation when it failed: AWS denied it, or the alias
/// still led to the previous key.
type Outcome = (Check, Option<String>);

/// A failed call as a check; AccessDenied may be propagation.
fn failed_call(name: &str, e: crate::error::Error) -> Outcome {
    let pending = e.is_denied().then(|| format!("AWS still denies it: {e}"));
    (Check::new(name, false, e.to_string()), pending)
}

async fn encrypt_new_key(s: &Session, kms: &aws_sdk_kms::Client, proof: &Proof<'_>) -> Outcome {
    let name = "encrypt-new-key";
    let spec = proof.spec;
    let alias_arn = spec.alias.arn(&spec.partition, proof.region, &spec.owner);
    let plaintext = Blob::new(proof.sample.plaintext.to_vec());
    match kms.encrypt().key_id(&alias_arn).plaintext(plaintext).send().await {
        Ok(out) if out.key_id() == Some(proof.new_arn.as_str()) => {
            let detail =
                format!("encrypted through {alias_arn} with the new key {}", proof.new_arn);
            (Check::new(name, true, detail), None)
        }
        Ok(out) => {
            let used = out.key_id().unwrap_or("?");
            let detail = format!("encrypted through {alias_arn} with {used}, not the new key");
            let pending = format!("Encrypt through the alias still reaches {used}");
            (Check::new(name, false, detail), Some(pending))
        }
        Err(e) => failed_call(name, s.kms_error("kms:Encrypt (as the role)", e)),
    }
}

async fn decrypt_old_data(s: &Session, kms: &aws_sdk_kms::Client, proof: &Proof<'_>) -> Outcome {
    let name = "decrypt-old-data";
    let retired_arn = proof.retired_arn();
    let sample = proof.sample;
    let result =
        kms.decrypt().key_id(&retired_arn).ciphertext_blob(sample.ciphertext.clone()).send().await;
    match result {
        Ok(out) if out.plaintext().map(|p| p.as_ref()) == Some(&sample.plaintext[..]) => {
            let detail =
                format!("data encrypted before the rotation decrypts through {retired_arn}");
            (Check::new(name, true, detail), None)
        }
        Ok(_) => (Check::new(name, false, "decrypted, but the bytes differ"), None),
        Err(e) => failed_call(name, s.kms_error("kms:Decrypt of old data (as the role)", e)),
    }
}

/// Prints the changes, the checks and the outcome.
fn report(
    ctx: &Context,
    args: &RotateArgs,
    proof: &Proof<'_>,
    changes: &[Change],
    checks: &[Check],
) -> Result<()> {
    let old_arn = proof.old_arn.as_deref().unwrap_or_default();
    let ok = checks.iter().all(|c| c.ok);
    ctx.printer.changes(changes);
    ctx.printer.checks(checks);
    ctx.printer.json(
        &Report {
            command: "rotate",
            ok,
            old_key: old_arn,
            new_key: &proof.new_arn,
            retired_alias: proof.retired_alias,
            changes,
            checks,
        },
        ctx.calls.snapshot(),
    );
    if !ok {
        return Err(Error::Failed(format!(
            "rotate moved the alias but the continuity proof failed ({} check(s)); the old key was kept",
            checks.iter().filter(|c| !c.ok).count()
        )));
    }
    ctx.printer.line(format!(
        "rotate: {} now points at {}; {} keeps the old key readable{}",
        proof.spec.alias,
        proof.new_arn,
        proof.retired_alias,
        if args.retire_old { " until its deletion" } else { "" }
    ));
    Ok(())
}
