//! `kmsxacct rotate`: a new key behind the same alias, proven not to break the user accounts.
//!
//! The reason aliases exist: users keep naming the alias while the key behind it changes. The
//! trap: once the alias moves, the old key no longer carries it, so a role policy conditioned on
//! `kms:ResourceAliases` = the alias alone would no longer allow Decrypt on the old key, and data
//! encrypted before the rotation would become unreadable. So rotate leaves a retirement alias
//! (`alias/NAME/retired/<key id>`) on the old key, which setup's role policy also covers, and
//! proves both: by the policy engine (Decrypt on the old key, Encrypt on the new one) and live
//! (the role encrypts through the alias with the new key and decrypts data made before).

use super::verify::evaluation_check;
use super::{Context, Target, TargetArgs};
use crate::error::{Error, Result};
use crate::names::PendingWindow;
use crate::output::{Change, Check};
use crate::owner::{self, KeyJournal, KeyReads};
use crate::plan::{KEY_ENABLED, KeyPlan, OwnerPlan, deployment_tags, is_ours};
use crate::policy::build::{self, KeyAction};
use crate::policy::eval::{NamedPolicy, Request};
use crate::record::RetiredKey;
use crate::user;
use crate::writes::{Write, apply_to};
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
    /// Days KMS waits before deleting the old key, 7 to 30 [default: the record's].
    #[arg(long, value_name = "DAYS")]
    pub pending_window_days: Option<PendingWindow>,
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

fn now() -> String {
    aws_smithy_types::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// Runs rotate.
pub async fn run(ctx: &Context, args: &RotateArgs) -> Result<()> {
    let target = Target::resolve(&args.target, &ctx.config)?;
    let Some(record) = target.record.clone() else {
        return Err(Error::Input(
            "rotate needs the deployment record (it keeps the key history): run it where `kmsxacct setup` wrote kmsxacct.toml, or pass --config".into(),
        ));
    };
    if record.raw.adopted {
        return Err(Error::Input(
            "this deployment adopted a key kmsxacct did not create; rotate only rotates keys kmsxacct created".into(),
        ));
    }
    let window = args.pending_window_days.unwrap_or(record.pending_window);
    let sides = target.open(ctx).await?;
    let (ids, current) = tokio::join!(
        sides.identify(ctx),
        owner::read_key(&sides.owner, target.alias.as_str(), KeyReads::SETUP)
    );
    let (owner_account, users) = ids?;
    target.check_accounts(&owner_account, &users)?;
    let spec = &target.spec(owner_account, users.clone(), sides.region());
    let Some(current) = current? else {
        return Err(Error::Conflict(format!(
            "{} does not exist in account {}; run `kmsxacct setup` first",
            spec.alias, spec.owner
        )));
    };
    if !is_ours(&current.tags, spec) || current.state != KEY_ENABLED {
        return Err(Error::Conflict(format!(
            "{} points at {} ({}), which is not an Enabled key of this deployment; rotate changed nothing",
            spec.alias, current.arn, current.state
        )));
    }
    let mut raw = record.raw.clone();
    let mut changes = Vec::new();

    // Data encrypted before the rotation, to prove it stays readable.
    let mut plaintext = [0u8; 32];
    let _ = getrandom::fill(&mut plaintext);
    let old_ciphertext = sides
        .owner
        .kms
        .encrypt()
        .key_id(spec.alias.as_str())
        .plaintext(Blob::new(plaintext.to_vec()))
        .send()
        .await
        .map_err(|e| {
            sides
                .owner
                .kms_error("kms:Encrypt (before the rotation)", e)
        })?
        .ciphertext_blob
        .ok_or_else(|| Error::Failed("Encrypt returned no ciphertext".into()))?;

    ctx.printer.step("creating the new key");
    // A new key with the same key policy, journaled like setup's.
    let old = current.clone();
    let policy = old
        .policy
        .clone()
        .unwrap_or_else(|| build::key_policy(spec));
    let save = |raw: &crate::record::Deployment| raw.save(&ctx.config).map_err(Error::from);
    let creating = || {
        let mut r = raw.clone();
        r.key_creation_pending = true;
        save(&r)
    };
    let created = |_: &str| Ok(());
    let tags = deployment_tags(spec);
    let new_arn = owner::apply_setup(
        &sides.owner,
        &OwnerPlan {
            key: KeyPlan::Create {
                policy: Box::new(policy),
            },
            create_alias: false,
            put_policy: None,
            retire: Vec::new(),
        },
        owner::OwnerApply {
            alias: spec.alias.as_str(),
            tags: &tags,
            retire_window: window,
            wait_until: Instant::now() + Duration::from_secs(30),
            printer: &ctx.printer,
        },
        KeyJournal {
            creating: &creating,
            created: &created,
        },
        &mut changes,
    )
    .await?;
    // apply_setup also reports what it left alone (the alias it does not touch here).
    changes.retain(Change::is_change);
    let retired_alias = build::retired_alias(&spec.alias, &old.key_id);
    raw.key_arn = new_arn.clone();
    raw.key_creation_pending = false;
    raw.previous_keys.push(RetiredKey {
        arn: old.arn.clone(),
        alias: retired_alias.clone(),
        retired_at: now(),
        deletion_scheduled: None,
    });
    save(&raw)?;

    // Keep the old key reachable, then move the alias.
    let retire = Write::CreateAlias {
        alias: &retired_alias,
        key_arn: &old.arn,
    };
    apply_to(&mut changes, &sides.owner, retire).await?;
    let update = Write::UpdateAlias {
        alias: spec.alias.as_str(),
        key_arn: &new_arn,
    };
    apply_to(&mut changes, &sides.owner, update).await?;

    ctx.printer
        .step("proving the user accounts still work, old data included");
    // Prove continuity for every user account.
    let retired_arn = format!(
        "arn:{}:kms:{}:{}:{}",
        spec.region.partition(),
        spec.region,
        spec.owner,
        retired_alias
    );
    let alias_arn = spec.alias.arn(&spec.region, &spec.owner);
    let mut checks = Vec::new();
    for (session, account) in sides.users.iter().zip(&users) {
        let role_arn = spec.role_arn(account);
        let docs = user::role_documents(session, spec.role.as_str()).await?;
        let named: Vec<NamedPolicy<'_>> = docs
            .policies
            .iter()
            .map(|(name, document)| NamedPolicy { name, document })
            .collect();
        let old_policy = old
            .policy
            .clone()
            .unwrap_or_else(|| build::key_policy(spec));
        let mut proof = |name: &str, action: &str, key: &str, aliases: Vec<String>, via: &str| {
            let request = Request {
                principal: role_arn.clone(),
                action: action.into(),
                key_arn: key.into(),
                key_aliases: aliases,
                request_alias: Some(via.into()),
                extra: Vec::new(),
            };
            let check = evaluation_check(
                name,
                &request,
                &old_policy,
                &named,
                &format!("the policies allow {action} on {key} through {via}"),
                &format!(
                    "{action} on {key} through {via} (run `kmsxacct setup` to update the role policy) is"
                ),
            );
            checks.push(check.in_account(account.as_str()));
        };
        if spec.actions.contains(&KeyAction::Decrypt) {
            proof(
                "policy-decrypt-old",
                "kms:Decrypt",
                &old.arn,
                vec![retired_alias.clone()],
                &retired_alias,
            );
        }
        if spec.actions.contains(&KeyAction::Encrypt) {
            proof(
                "policy-encrypt-new",
                "kms:Encrypt",
                &new_arn,
                vec![spec.alias.to_string()],
                spec.alias.as_str(),
            );
        }
        let live = live_proof(
            session,
            &role_arn,
            &alias_arn,
            &retired_arn,
            &new_arn,
            &old_ciphertext,
            &plaintext,
            &spec.actions,
        )
        .await;
        checks.extend(live.into_iter().map(|c| c.in_account(account.as_str())));
    }
    let ok = checks.iter().all(|c| c.ok);

    if args.retire_old && ok {
        let write = Write::ScheduleKeyDeletion {
            key_arn: &old.arn,
            days: window.days(),
        };
        apply_to(&mut changes, &sides.owner, write).await?;
        if let Some(last) = raw.previous_keys.last_mut() {
            last.deletion_scheduled = Some(now());
        }
        save(&raw)?;
    }

    ctx.printer.changes(&changes);
    ctx.printer.checks(&checks);
    ctx.printer.json(
        &Report {
            command: "rotate",
            ok,
            old_key: &old.arn,
            new_key: &new_arn,
            retired_alias: &retired_alias,
            changes: &changes,
            checks: &checks,
        },
        ctx.calls.snapshot(),
    );
    if ok {
        ctx.printer.line(format!(
            "rotate: {} now points at {new_arn}; {} keeps the old key readable{}",
            spec.alias,
            retired_alias,
            if args.retire_old {
                " until its deletion"
            } else {
                ""
            }
        ));
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "rotate moved the alias but the continuity proof failed ({} check(s)); the old key was kept",
            checks.iter().filter(|c| !c.ok).count()
        )))
    }
}

/// As the role: Encrypt through the alias must use the new key; Decrypt of data made before the
/// rotation, naming the retirement alias ARN, must give the bytes back.
#[allow(clippy::too_many_arguments)]
async fn live_proof(
    s: &crate::aws::Session,
    role_arn: &str,
    alias_arn: &str,
    retired_arn: &str,
    new_arn: &str,
    old_ciphertext: &Blob,
    plaintext: &[u8],
    actions: &[KeyAction],
) -> Vec<Check> {
    let credentials = match user::assume_role(s, role_arn).await {
        Ok(c) => c,
        Err(e) => return vec![Check::new("assume-role", false, e.to_string())],
    };
    let kms = s.kms_with_credentials(credentials);
    let mut checks = Vec::new();
    if actions.contains(&KeyAction::Encrypt) {
        checks.push(
            match kms
                .encrypt()
                .key_id(alias_arn)
                .plaintext(Blob::new(plaintext.to_vec()))
                .send()
                .await
            {
                Ok(out) if out.key_id() == Some(new_arn) => Check::new(
                    "encrypt-new-key",
                    true,
                    format!("encrypted through {alias_arn} with the new key {new_arn}"),
                ),
                Ok(out) => Check::new(
                    "encrypt-new-key",
                    false,
                    format!(
                        "encrypted through {alias_arn} with {}, not the new key",
                        out.key_id().unwrap_or("?")
                    ),
                ),
                Err(e) => Check::new(
                    "encrypt-new-key",
                    false,
                    s.kms_error("kms:Encrypt (as the role)", e).to_string(),
                ),
            },
        );
    }
    if actions.contains(&KeyAction::Decrypt) {
        checks.push(
            match kms
                .decrypt()
                .key_id(retired_arn)
                .ciphertext_blob(old_ciphertext.clone())
                .send()
                .await
            {
                Ok(out) if out.plaintext().map(|p| p.as_ref()) == Some(plaintext) => Check::new(
                    "decrypt-old-data",
                    true,
                    format!("data encrypted before the rotation decrypts through {retired_arn}"),
                ),
                Ok(_) => Check::new("decrypt-old-data", false, "decrypted, but the bytes differ"),
                Err(e) => Check::new(
                    "decrypt-old-data",
                    false,
                    s.kms_error("kms:Decrypt of old data (as the role)", e)
                        .to_string(),
                ),
            },
        );
    }
    checks
}
