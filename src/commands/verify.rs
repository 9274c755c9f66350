//! `kmsxacct verify`: prove the user role can encrypt and decrypt through the alias ARN.

use super::{Context, Target, TargetArgs, open, role_name};
use crate::aws::Session;
use crate::error::{Error, Result};
use crate::output::Check;
use crate::owner::KeyReads;
use crate::plan::{KEY_ENABLED, KeyState, is_ours};
use crate::policy::PolicyDocument;
use crate::policy::build::GRANTED_ACTIONS;
use crate::policy::build::GrantSpec;
use crate::policy::eval::{self, Decision, NamedPolicy, Request};
use crate::{owner, user};
use aws_smithy_types::Blob;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Flags of `verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Which deployment; without these flags, the record (--config) says.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Seconds to keep retrying while AWS denies what the policies allow (IAM and KMS changes
    /// take a while to propagate); 0 fails at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub wait: u64,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    ok: bool,
    alias_arn: &'a str,
    role_arn: &'a str,
    checks: &'a [Check],
}

/// Bytes of random plaintext in the round trip.
const PLAINTEXT_BYTES: usize = 32;

/// Runs verify.
pub async fn run(ctx: &Context, args: &VerifyArgs) -> Result<()> {
    let started = Instant::now();
    let target = Target::resolve(&args.target, &ctx.config)?;
    let sides = open(
        ctx,
        &target.owner_profile,
        &target.user_profile,
        target.region.as_ref(),
    )
    .await?;
    let role = role_name(target.role.as_ref(), &target.alias);
    // With a record, the role and alias ARNs are known before STS answers, so the round trip
    // starts at once; without one, they need the accounts first.
    let known = target
        .record
        .as_ref()
        .filter(|r| !r.raw.role_arn.is_empty())
        .map(|r| {
            (
                r.raw.role_arn.clone(),
                target.alias.arn(&r.region, &r.owner_account),
            )
        });
    let (role_arn, alias_arn, early_spec) = match known {
        Some((role_arn, alias_arn)) => (role_arn, alias_arn, None),
        None => {
            let spec = sides.identify(&target.alias).await?;
            (
                role.arn(&spec.region, &spec.user),
                spec.alias.arn(&spec.region, &spec.owner),
                Some(spec),
            )
        }
    };
    let reads = KeyReads::verify(target.record.is_none());
    let (spec, key, trip, role_policies) = tokio::join!(
        async {
            match early_spec {
                Some(spec) => Ok(spec),
                None => sides.identify(&target.alias).await,
            }
        },
        owner::read_key(&sides.owner, target.alias.as_str(), reads),
        round_trip(&sides.user, &role_arn, &alias_arn),
        user::role_policies(&sides.user, role.as_str()),
    );
    let spec = &spec?;
    target.check_accounts(spec)?;
    let owner_checks = owner_checks(&key, spec, target.recorded_key(spec));
    let policy_checks = policy_checks(key.ok().flatten().as_ref(), role_policies, &role_arn, spec);
    // Denied although every static check passes: propagation, not a wrong policy. Wait for it.
    let static_ok = owner_checks.iter().chain(&policy_checks).all(|c| c.ok);
    let trip = if trip.denied && static_ok && args.wait > 0 {
        let deadline = started + Duration::from_secs(args.wait);
        wait_for_propagation(ctx, &sides.user, &role_arn, &alias_arn, deadline, trip).await
    } else {
        trip
    };
    let user_checks = trip.checks;
    let checks: Vec<Check> = owner_checks
        .into_iter()
        .chain(policy_checks)
        .chain(user_checks)
        .collect();
    let ok = checks.iter().all(|c| c.ok);
    for c in &checks {
        ctx.printer.line(format!(
            "{}  {:<14} {}",
            if c.ok { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        ));
    }
    ctx.printer.json(
        &Report {
            command: "verify",
            ok,
            alias_arn: &alias_arn,
            role_arn: &role_arn,
            checks: &checks,
        },
        ctx.calls.snapshot(),
    );
    if ok {
        ctx.printer.line(format!(
            "verify: {role_arn} encrypts and decrypts through {alias_arn}"
        ));
        Ok(())
    } else {
        let failed = checks.iter().filter(|c| !c.ok).count();
        Err(Error::Failed(format!(
            "verify: {failed} of {} checks failed",
            checks.len()
        )))
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
                Check {
                    name: "alias-target",
                    ok: false,
                    detail: missing.clone(),
                },
                Check {
                    name: "key-enabled",
                    ok: false,
                    detail: missing,
                },
            ];
        }
        Err(e) => {
            let detail = e.to_string();
            return vec![
                Check {
                    name: "alias-target",
                    ok: false,
                    detail: detail.clone(),
                },
                Check {
                    name: "key-enabled",
                    ok: false,
                    detail,
                },
            ];
        }
    };
    let alias_target = match recorded_key {
        Some(rec) if rec != key.arn => Check {
            name: "alias-target",
            ok: false,
            detail: format!(
                "{} points at {}, not the recorded key {rec}",
                spec.alias, key.arn
            ),
        },
        Some(_) => Check {
            name: "alias-target",
            ok: true,
            detail: format!("{} points at the recorded key {}", spec.alias, key.arn),
        },
        None if is_ours(&key.tags, spec) => Check {
            name: "alias-target",
            ok: true,
            detail: format!(
                "{} points at {}, a key of this deployment",
                spec.alias, key.arn
            ),
        },
        None => Check {
            name: "alias-target",
            ok: false,
            detail: format!(
                "{} points at {}, which kmsxacct did not create for this deployment",
                spec.alias, key.arn
            ),
        },
    };
    let enabled = Check {
        name: "key-enabled",
        ok: key.state == KEY_ENABLED,
        detail: format!("key {} is {}", key.arn, key.state),
    };
    vec![alias_target, enabled]
}

/// Assume the role, encrypt random bytes through the alias ARN, decrypt naming the alias ARN,
/// compare. Later steps are reported as not run when an earlier one fails.
/// Evaluates each granted action through the alias with the live key policy and the role's
/// policies: LocalStack never denies, so this is what proves the policies agree.
fn policy_checks(
    key: Option<&KeyState>,
    role_policies: Result<Vec<(String, PolicyDocument)>>,
    role_arn: &str,
    spec: &GrantSpec,
) -> Vec<Check> {
    let names = ["policy-encrypt", "policy-decrypt"];
    let fail_all = |detail: String| {
        names
            .iter()
            .map(|name| Check {
                name,
                ok: false,
                detail: detail.clone(),
            })
            .collect::<Vec<_>>()
    };
    let Some(key) = key else {
        return fail_all(format!(
            "not evaluated: {} does not lead to a key",
            spec.alias
        ));
    };
    let Some(key_policy) = &key.policy else {
        return fail_all("not evaluated: the key policy was not read".into());
    };
    let role_policies = match role_policies {
        Ok(p) => p,
        Err(e) => return fail_all(format!("not evaluated: {e}")),
    };
    let named: Vec<NamedPolicy<'_>> = role_policies
        .iter()
        .map(|(name, document)| NamedPolicy { name, document })
        .collect();
    names
        .iter()
        .zip(GRANTED_ACTIONS)
        .map(|(name, action)| {
            let request = Request {
                principal: role_arn.to_string(),
                action: action.to_string(),
                key_arn: key.arn.clone(),
                key_aliases: key.aliases.clone(),
                request_alias: Some(spec.alias.to_string()),
                extra: Vec::new(),
            };
            match eval::evaluate(&request, key_policy, &named) {
                Ok(e) if e.decision == Decision::Allow => Check {
                    name,
                    ok: true,
                    detail: format!(
                        "the key policy and the role's policies allow {action} through {}",
                        spec.alias
                    ),
                },
                Ok(e) => Check {
                    name,
                    ok: false,
                    detail: format!(
                        "{action} through {} is {} by the policies: {}",
                        spec.alias,
                        e.decision
                            .as_str()
                            .replace('_', " ")
                            .replace("implicit deny", "denied")
                            .replace("explicit deny", "explicitly denied"),
                        e.reasons
                            .iter()
                            .map(|r| format!("{} {}: {}", r.policy, r.statement, r.message))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                },
                Err(e) => Check {
                    name,
                    ok: false,
                    detail: format!("not evaluated: {e}"),
                },
            }
        })
        .collect()
}

async fn round_trip(s: &Session, role_arn: &str, alias_arn: &str) -> RoundTrip {
    let mut checks = Vec::new();
    let mut denied = false;
    let not_run = |name: &'static str, after: &str| Check {
        name,
        ok: false,
        detail: format!("not run: {after} failed"),
    };
    let credentials = match user::assume_role(s, role_arn).await {
        Ok(c) => {
            checks.push(Check {
                name: "assume-role",
                ok: true,
                detail: format!("account {} assumed {role_arn}", s.account()),
            });
            c
        }
        Err(e) => {
            checks.push(Check {
                name: "assume-role",
                ok: false,
                detail: e.to_string(),
            });
            checks.push(not_run("encrypt", "assume-role"));
            checks.push(not_run("decrypt", "assume-role"));
            return RoundTrip {
                checks,
                denied: matches!(e, Error::Denied { .. }),
            };
        }
    };
    let kms = s.kms_with_credentials(credentials);
    let mut plaintext = [0u8; PLAINTEXT_BYTES];
    if let Err(e) = getrandom::fill(&mut plaintext) {
        checks.push(Check {
            name: "encrypt",
            ok: false,
            detail: format!("no randomness: {e}"),
        });
        checks.push(not_run("decrypt", "encrypt"));
        return RoundTrip { checks, denied };
    }
    let ciphertext = match kms
        .encrypt()
        .key_id(alias_arn)
        .plaintext(Blob::new(plaintext.to_vec()))
        .send()
        .await
    {
        Ok(out) => {
            checks.push(Check {
                name: "encrypt",
                ok: true,
                detail: format!(
                    "encrypted {PLAINTEXT_BYTES} random bytes through {alias_arn} with key {}",
                    out.key_id().unwrap_or("?")
                ),
            });
            out.ciphertext_blob.unwrap_or_else(|| Blob::new(Vec::new()))
        }
        Err(e) => {
            let e = s.error("kms:Encrypt (as the role)", e);
            checks.push(Check {
                name: "encrypt",
                ok: false,
                detail: e.to_string(),
            });
            checks.push(not_run("decrypt", "encrypt"));
            return RoundTrip {
                checks,
                denied: matches!(e, Error::Denied { .. }),
            };
        }
    };
    // Naming the key on Decrypt is AWS's recommendation, and needed across accounts on LocalStack.
    let decrypted = kms
        .decrypt()
        .key_id(alias_arn)
        .ciphertext_blob(ciphertext)
        .send()
        .await;
    checks.push(match decrypted {
        Ok(out) if out.plaintext().map(|p| p.as_ref()) == Some(&plaintext[..]) => Check {
            name: "decrypt",
            ok: true,
            detail: format!("decrypted through {alias_arn}; the bytes match"),
        },
        Ok(_) => Check {
            name: "decrypt",
            ok: false,
            detail: "decrypted, but the bytes differ from what was encrypted".into(),
        },
        Err(e) => {
            let e = s.error("kms:Decrypt (as the role)", e);
            denied = matches!(e, Error::Denied { .. });
            Check {
                name: "decrypt",
                ok: false,
                detail: e.to_string(),
            }
        }
    });
    RoundTrip { checks, denied }
}

/// The round trip's checks, and whether it failed because AWS denied access.
struct RoundTrip {
    checks: Vec<Check>,
    denied: bool,
}

/// Repeats the round trip while AWS denies what the policies allow: IAM and KMS changes take
/// a while to reach every endpoint. Polls at most once a second, so it ends within about a
/// second of access becoming possible; gives up at `deadline`.
async fn wait_for_propagation(
    ctx: &Context,
    s: &Session,
    role_arn: &str,
    alias_arn: &str,
    deadline: Instant,
    mut trip: RoundTrip,
) -> RoundTrip {
    let first_denial = trip
        .checks
        .iter()
        .find(|c| !c.ok)
        .map(|c| c.detail.clone())
        .unwrap_or_default();
    let waited_from = Instant::now();
    ctx.printer.note(format!(
        "waiting up to {} s for IAM/KMS propagation: the policies allow access but AWS still denies it ({first_denial})",
        deadline.saturating_duration_since(waited_from).as_secs()
    ));
    let mut delay = Duration::from_millis(250);
    while trip.denied && Instant::now() + delay < deadline {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
        trip = round_trip(s, role_arn, alias_arn).await;
    }
    let waited = waited_from.elapsed().as_secs_f64();
    if trip.denied {
        for c in trip.checks.iter_mut().filter(|c| !c.ok) {
            c.detail.push_str(&format!(
                " (still denied after waiting {waited:.0} s for propagation; if the policies were just changed, raise --wait)"
            ));
        }
    } else {
        ctx.printer.note(format!(
            "access became visible after {waited:.1} s of waiting"
        ));
    }
    trip
}
