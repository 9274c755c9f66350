//! Planning: from what exists in each account to what setup or teardown must do. Pure code.
//!
//! Both commands read both accounts first and plan from what they saw; a conflict anywhere
//! (something kmsxacct did not create in the way) stops the command before any change is made.

use crate::names::AccountId;
use crate::policy::PolicyDocument;
use crate::policy::build::{self, GrantSpec};

mod regions;
mod stackset;
pub use regions::{RegionDrop, RegionPlan, RegionSeen, plan_regions, replica_arn};
pub use stackset::{
    StackSetChange, StackSetPlan, StackSetState, StackSetTeardown, parse_accounts, plan_stack_set,
    plan_stack_set_teardown, same_template, stack_set_name,
};

/// Tag key marking a resource as created by kmsxacct (value [`MANAGED_BY_VALUE`]).
pub const TAG_MANAGED_BY: &str = "kmsxacct:managed-by";
/// Value of [`TAG_MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "kmsxacct";
/// Tag key holding the deployment's owner account id.
pub const TAG_OWNER_ACCOUNT: &str = "kmsxacct:owner-account";
/// Tag key holding the deployment's alias.
pub const TAG_ALIAS: &str = "kmsxacct:alias";

/// Key state in which a key can be used.
pub const KEY_ENABLED: &str = "Enabled";
/// Key state after ScheduleKeyDeletion.
pub const KEY_PENDING_DELETION: &str = "PendingDeletion";
/// Key state of a multi-Region primary whose deletion waits for its replicas' (AWS).
pub const KEY_PENDING_REPLICA_DELETION: &str = "PendingReplicaDeletion";

/// The tags that mark a key or role as this deployment's: who made it, for which owner and alias.
pub fn deployment_tags(spec: &GrantSpec) -> Vec<(String, String)> {
    vec![
        (TAG_MANAGED_BY.into(), MANAGED_BY_VALUE.into()),
        (TAG_OWNER_ACCOUNT.into(), spec.owner.to_string()),
        (TAG_ALIAS.into(), spec.alias.to_string()),
    ]
}

/// The description of a key kmsxacct creates for `alias`.
pub fn key_description(alias: &str) -> String {
    format!("kmsxacct: shared with other accounts through {alias}")
}

/// Whether `tags` carry every one of this deployment's tags.
pub fn is_ours(tags: &[(String, String)], spec: &GrantSpec) -> bool {
    deployment_tags(spec).iter().all(|wanted| tags.iter().any(|t| t == wanted))
}

/// A KMS key as read from the owner account.
#[derive(Debug, Clone)]
pub struct KeyState {
    /// Key id.
    pub key_id: String,
    /// Key ARN.
    pub arn: String,
    /// KeyState (`Enabled`, `Disabled`, `PendingDeletion`, ...).
    pub state: String,
    /// When KMS deletes it, if its deletion is scheduled (RFC 3339).
    pub deletion_date: Option<String>,
    /// Its tags.
    pub tags: Vec<(String, String)>,
    /// Its key policy (read by setup).
    pub policy: Option<PolicyDocument>,
    /// Every alias pointing at it (read by teardown).
    pub aliases: Vec<String>,
    /// A multi-Region key (a primary or a replica).
    pub multi_region: bool,
}

/// The key the alias points at, and the key the record names when the alias leads to none.
#[derive(Debug, Clone, Default)]
pub struct DeploymentKeys {
    /// The key behind the alias.
    pub at_alias: Option<KeyState>,
    /// The recorded key, read only when the alias is missing.
    pub recorded: Option<KeyState>,
}

/// The user role as read from the user account.
#[derive(Debug, Clone)]
pub struct RoleState {
    /// Role ARN.
    pub arn: String,
    /// Its tags.
    pub tags: Vec<(String, String)>,
    /// Its trust policy.
    pub trust: PolicyDocument,
    /// kmsxacct's inline policy on it, if present.
    pub access_policy: Option<PolicyDocument>,
    /// Names of every inline policy (read by teardown).
    pub inline_policy_names: Vec<String>,
    /// ARNs of attached managed policies (read by teardown).
    pub attached_policy_arns: Vec<String>,
}

/// How setup gets its key.
#[derive(Debug, Clone)]
pub enum KeyPlan {
    /// Create a key with this policy.
    Create {
        /// The whole key policy of the new key.
        policy: Box<PolicyDocument>,
        /// A multi-Region primary key, for replicas in other regions.
        multi_region: bool,
    },
    /// Use this key of ours.
    Existing {
        /// Key id.
        key_id: String,
        /// Key ARN.
        arn: String,
    },
}

/// What setup does in the owner account.
#[derive(Debug, Clone)]
pub struct OwnerPlan {
    /// Where the key comes from.
    pub key: KeyPlan,
    /// Whether the alias must be created (pointing at the key).
    pub create_alias: bool,
    /// The new key policy, when an existing key's policy must change.
    pub put_policy: Option<PolicyDocument>,
    /// Keys of this deployment left by an interrupted CreateKey beyond the one reused: their
    /// deletion is scheduled so that none is orphaned.
    pub retire: Vec<String>,
}

/// What setup does in the user account.
#[derive(Debug, Clone, Default)]
pub struct UserPlan {
    /// Create the role with this trust policy.
    pub create_role: Option<PolicyDocument>,
    /// ARN of the role when it exists already.
    pub existing_arn: Option<String>,
    /// Replace the trust policy of an existing role.
    pub update_trust: Option<PolicyDocument>,
    /// Put kmsxacct's inline policy.
    pub put_policy: Option<PolicyDocument>,
}

/// Plans the owner side of setup. With `adopt`, an alias kmsxacct did not create is used as it
/// is: its key gets the grant statement and nothing else. `alias_key` is the key the alias points at now, `recorded_key`
/// the key a previous, unfinished setup of the same deployment recorded, and `found` the keys of
/// this deployment a scan found after a CreateKey whose answer was never recorded. A key of ours
/// is reused rather than a second one created (CreateKey is not idempotent); extra ones found
/// without an alias are retired.
pub fn plan_owner_setup(
    spec: &GrantSpec,
    alias_key: Option<&KeyState>,
    recorded_key: Option<&KeyState>,
    found: &[KeyState],
    adopt: bool,
) -> Result<OwnerPlan, String> {
    let Some(key) = alias_key else {
        let usable = |k: &&KeyState| is_ours(&k.tags, spec) && k.state == KEY_ENABLED;
        let orphans: Vec<&KeyState> =
            found.iter().filter(usable).filter(|k| k.aliases.is_empty()).collect();
        let reuse = recorded_key.filter(usable).or(orphans.first().copied());
        if let Some(k) = reuse {
            return Ok(OwnerPlan {
                key: KeyPlan::Existing { key_id: k.key_id.clone(), arn: k.arn.clone() },
                create_alias: true,
                put_policy: converge_key_policy(spec, k),
                retire: orphans.iter().filter(|o| o.arn != k.arn).map(|o| o.arn.clone()).collect(),
            });
        }
        return Ok(OwnerPlan {
            key: KeyPlan::Create {
                policy: Box::new(build::key_policy(spec)),
                multi_region: spec.multi_region(),
            },
            create_alias: true,
            put_policy: None,
            retire: Vec::new(),
        });
    };
    // An adopted key is not ours: only our statement in its policy is.
    if !adopt && !is_ours(&key.tags, spec) {
        return Err(format!(
            "{} in account {} already points at key {}, which kmsxacct did not create for this deployment (it lacks the tags {}); choose another --alias, or pass --adopt to grant access to that key",
            spec.alias,
            spec.owner,
            key.arn,
            tag_list(spec)
        ));
    }
    if key.state != KEY_ENABLED {
        return Err(format!(
            "{} points at key {} of this deployment, which is {} (not Enabled); finish `kmsxacct teardown` or cancel the key's deletion and enable it first",
            spec.alias, key.arn, key.state
        ));
    }
    if spec.multi_region() && !key.multi_region {
        return Err(format!(
            "{} points at key {}, a one-Region key, and AWS cannot make a key multi-Region; keep one region (--region), or tear this deployment down and set it up again with --regions",
            spec.alias, key.arn
        ));
    }
    Ok(OwnerPlan {
        key: KeyPlan::Existing { key_id: key.key_id.clone(), arn: key.arn.clone() },
        create_alias: false,
        put_policy: converge_key_policy(spec, key),
        retire: found
            .iter()
            .filter(|k| is_ours(&k.tags, spec) && k.state == KEY_ENABLED && k.aliases.is_empty())
            .filter(|k| k.arn != key.arn)
            .map(|k| k.arn.clone())
            .collect(),
    })
}

/// Plans rotate's new key: a key of this deployment that an earlier rotate created but never
/// recorded (found by its tags: Enabled, no alias, not the current key) is reused and any other
/// such key retired; else a new key with the current key's policy.
pub fn plan_rotate_key(spec: &GrantSpec, current: &KeyState, found: &[KeyState]) -> OwnerPlan {
    let orphans: Vec<&KeyState> = found
        .iter()
        .filter(|k| is_ours(&k.tags, spec) && k.state == KEY_ENABLED && k.aliases.is_empty())
        .filter(|k| k.arn != current.arn && k.multi_region == spec.multi_region())
        .collect();
    let key = match orphans.first() {
        Some(k) => KeyPlan::Existing { key_id: k.key_id.clone(), arn: k.arn.clone() },
        None => {
            let policy = current.policy.clone().unwrap_or_else(|| build::key_policy(spec));
            KeyPlan::Create { policy: Box::new(policy), multi_region: spec.multi_region() }
        }
    };
    OwnerPlan {
        key,
        create_alias: false,
        put_policy: None,
        retire: orphans.iter().skip(1).map(|k| k.arn.clone()).collect(),
    }
}

/// The key policy with kmsxacct's grant statement put in (every other statement kept), or None
/// when it already holds the grant (no drift).
pub fn converge_key_policy(spec: &GrantSpec, key: &KeyState) -> Option<PolicyDocument> {
    let mut policy = key.policy.clone().unwrap_or_else(|| build::key_policy(spec));
    policy.upsert_statement(build::key_policy_grant(spec)).then_some(policy)
}

/// Plans the user side of setup in `user` from the role as it is there (None: no such role).
pub fn plan_user_setup(
    spec: &GrantSpec,
    user: &AccountId,
    role: Option<&RoleState>,
) -> Result<UserPlan, String> {
    let trust = build::role_trust_policy(spec, user);
    let access = build::role_access_policy(spec);
    let Some(role) = role else {
        return Ok(UserPlan {
            create_role: Some(trust),
            put_policy: Some(access),
            ..UserPlan::default()
        });
    };
    if !is_ours(&role.tags, spec) {
        return Err(format!(
            "role {} in account {user} exists but kmsxacct did not create it for this deployment (it lacks the tags {}); choose another --role",
            spec.role,
            tag_list(spec)
        ));
    }
    Ok(UserPlan {
        create_role: None,
        existing_arn: Some(role.arn.clone()),
        update_trust: (!role.trust.same_as(&trust)).then_some(trust),
        put_policy: match &role.access_policy {
            Some(p) if p.same_as(&access) => None,
            _ => Some(access),
        },
    })
}

/// What setup found, as its planning needs it.
#[derive(Debug, Clone, Copy)]
pub struct SetupSeen<'a> {
    /// The alias's key and the recorded one.
    pub keys: &'a DeploymentKeys,
    /// Keys of this deployment found by their tags after an unrecorded CreateKey.
    pub found: &'a [KeyState],
    /// Each user account and its role as it is.
    pub users: &'a [(AccountId, Option<RoleState>)],
    /// Each user account leaving the deployment and its role as it is.
    pub leaving: &'a [(AccountId, Option<RoleState>)],
    /// Use an alias kmsxacct did not create.
    pub adopt: bool,
}

/// Everything setup does.
#[derive(Debug, Clone)]
pub struct SetupPlan {
    /// In the owner account.
    pub owner: OwnerPlan,
    /// In each user account, in order.
    pub users: Vec<UserPlan>,
    /// In each account leaving the deployment, in order.
    pub leaving: Vec<UserTeardown>,
}

/// Plans every account of setup; the conflicts of all of them when any has one, so that
/// nothing is changed anywhere.
pub fn plan_setup(spec: &GrantSpec, seen: &SetupSeen<'_>) -> Result<SetupPlan, Vec<String>> {
    let mut conflicts = Vec::new();
    let (at_alias, recorded) = (seen.keys.at_alias.as_ref(), seen.keys.recorded.as_ref());
    let owner = plan_owner_setup(spec, at_alias, recorded, seen.found, seen.adopt)
        .and_then(|o| within_size_limit(spec, &o).map(|()| o))
        .map_err(|c| conflicts.push(c))
        .ok();
    let users: Vec<UserPlan> = seen
        .users
        .iter()
        .filter_map(|(account, role)| {
            plan_user_setup(spec, account, role.as_ref()).map_err(|c| conflicts.push(c)).ok()
        })
        .collect();
    let leaving: Vec<UserTeardown> = seen
        .leaving
        .iter()
        .filter_map(|(account, role)| {
            plan_user_teardown(spec, account, role.as_ref()).map_err(|c| conflicts.push(c)).ok()
        })
        .collect();
    match owner {
        Some(owner) if conflicts.is_empty() => Ok(SetupPlan { owner, users, leaving }),
        _ => Err(conflicts),
    }
}

/// AWS's limit on a key policy document, in bytes.
pub const KEY_POLICY_LIMIT: usize = 32_768;

/// Refuses a key policy AWS would refuse for its size, naming the way out for many accounts.
fn within_size_limit(spec: &GrantSpec, plan: &OwnerPlan) -> Result<(), String> {
    let policy = match &plan.key {
        KeyPlan::Create { policy, .. } => Some(policy.as_ref()),
        KeyPlan::Existing { .. } => plan.put_policy.as_ref(),
    };
    let size = policy.map(|p| p.render().len()).unwrap_or(0);
    if size <= KEY_POLICY_LIMIT {
        return Ok(());
    }
    let hint = if spec.org.is_none() {
        format!(
            "; grant the organisation instead of listing {} accounts: --org-id o-... (or --org-path)",
            spec.users.len()
        )
    } else {
        String::new()
    };
    Err(format!(
        "the key policy would be {size} bytes, over AWS's {KEY_POLICY_LIMIT}-byte limit for a key policy{hint}"
    ))
}

/// What teardown does in one user account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserTeardown {
    /// Delete kmsxacct's inline policy from the role.
    pub delete_role_policy: bool,
    /// Delete the role (ARN).
    pub delete_role: Option<String>,
}

/// What teardown does in the owner account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnerTeardown {
    /// Delete the alias.
    pub delete_alias: bool,
    /// Schedule deletion of this key (ARN).
    pub schedule_key_deletion: Option<String>,
    /// An adopted key: (key ARN, its policy without kmsxacct's statement).
    pub strip_grant: Option<(String, PolicyDocument)>,
}

/// Plans teardown of the role in `user`: only a role with this deployment's tags, and only when
/// it carries no policy kmsxacct did not put there.
pub fn plan_user_teardown(
    spec: &GrantSpec,
    user: &AccountId,
    role: Option<&RoleState>,
) -> Result<UserTeardown, String> {
    let Some(role) = role else {
        return Ok(UserTeardown::default());
    };
    if !is_ours(&role.tags, spec) {
        return Err(format!(
            "role {} in account {user} lacks this deployment's tags ({}); it was left in place",
            spec.role,
            tag_list(spec)
        ));
    }
    let foreign: Vec<String> = role
        .inline_policy_names
        .iter()
        .filter(|n| n.as_str() != build::ROLE_POLICY_NAME)
        .map(|n| format!("inline policy {n}"))
        .chain(role.attached_policy_arns.iter().map(|a| format!("attached policy {a}")))
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "role {} in account {user} carries policies kmsxacct did not put there ({}); it was left in place",
            spec.role,
            foreign.join(", ")
        ));
    }
    Ok(UserTeardown {
        delete_role_policy: role.inline_policy_names.iter().any(|n| n == build::ROLE_POLICY_NAME),
        delete_role: Some(role.arn.clone()),
    })
}

/// Plans teardown in the owner account: the alias and key only if they carry this deployment's
/// tags, and the key only if no alias kmsxacct did not create points at it. For an adopted key,
/// only kmsxacct's statement is taken out of its policy.
pub fn plan_owner_teardown(
    spec: &GrantSpec,
    alias_key: Option<&KeyState>,
    recorded_key: Option<&KeyState>,
    adopted: bool,
) -> Result<OwnerTeardown, String> {
    let mut plan = OwnerTeardown::default();
    if adopted {
        // Neither the alias nor the key is ours: take back only our statement, and only from the
        // key that was adopted.
        let recorded = recorded_key.map(|k| k.arn.as_str());
        let Some(key) = alias_key.or(recorded_key) else {
            return Ok(plan);
        };
        if recorded.is_some_and(|r| r != key.arn) {
            return Err(format!(
                "{} now points at {}, not the adopted key {}; nothing was changed",
                spec.alias,
                key.arn,
                recorded.unwrap_or_default()
            ));
        }
        if let Some(policy) = &key.policy {
            let mut stripped = policy.clone();
            if stripped.remove_statement(build::USER_GRANT_SID) {
                plan.strip_grant = Some((key.arn.clone(), stripped));
            }
        }
        return Ok(plan);
    }
    let key = match alias_key {
        Some(k) if !is_ours(&k.tags, spec) => {
            return Err(format!(
                "{} points at key {}, which lacks this deployment's tags ({}); alias and key were left in place",
                spec.alias,
                k.arn,
                tag_list(spec)
            ));
        }
        Some(k) => {
            plan.delete_alias = true;
            Some(k)
        }
        None => recorded_key.filter(|k| is_ours(&k.tags, spec)),
    };
    if let Some(k) = key.filter(|k| k.state != KEY_PENDING_DELETION) {
        let others: Vec<&str> =
            k.aliases.iter().map(String::as_str).filter(|a| *a != spec.alias.as_str()).collect();
        if !others.is_empty() {
            return Err(format!(
                "key {} also carries aliases kmsxacct did not create ({}); its deletion was not scheduled",
                k.arn,
                others.join(", ")
            ));
        }
        plan.schedule_key_deletion = Some(k.arn.clone());
    }
    Ok(plan)
}

/// Plans teardown of a key an earlier rotate retired: its retirement alias and the key, only if
/// the key carries this deployment's tags and no alias but the retirement one.
/// Returns (alias to delete, key ARN whose deletion to schedule).
pub fn plan_retired_teardown(
    spec: &GrantSpec,
    retired_alias: &str,
    key: &KeyState,
) -> Result<(Option<String>, Option<String>), String> {
    if !is_ours(&key.tags, spec) {
        return Err(format!(
            "retired key {} lacks this deployment's tags; it was left in place",
            key.arn
        ));
    }
    let others: Vec<&str> =
        key.aliases.iter().map(String::as_str).filter(|a| *a != retired_alias).collect();
    if !others.is_empty() {
        return Err(format!(
            "retired key {} carries aliases kmsxacct did not create ({}); it was left in place",
            key.arn,
            others.join(", ")
        ));
    }
    let alias = key.aliases.iter().any(|a| a == retired_alias).then(|| retired_alias.to_string());
    let schedule = (key.state != KEY_PENDING_DELETION).then(|| key.arn.clone());
    Ok((alias, schedule))
}

/// What teardown found, as its planning needs it.
#[derive(Debug, Clone, Copy)]
pub struct TeardownSeen<'a> {
    /// The alias's key and the recorded one (also when the alias points at an adopted key).
    pub keys: &'a DeploymentKeys,
    /// Keys an earlier rotate retired, each with its retirement alias.
    pub retired: &'a [(String, KeyState)],
    /// Each user account and its role as it is.
    pub users: &'a [(AccountId, Option<RoleState>)],
    /// The key was adopted: only kmsxacct's statement goes.
    pub adopted: bool,
}

/// Everything teardown does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeardownPlan {
    /// In the owner account.
    pub owner: OwnerTeardown,
    /// For each retired key: (retirement alias to delete, key whose deletion to schedule).
    pub retired: Vec<(Option<String>, Option<String>)>,
    /// In each user account, in order.
    pub users: Vec<UserTeardown>,
}

impl TeardownPlan {
    /// True when nothing of the deployment is left to remove.
    pub fn is_empty(&self) -> bool {
        self.owner == OwnerTeardown::default()
            && self.users.iter().all(|p| *p == UserTeardown::default())
            && self.retired.iter().all(|(a, k)| a.is_none() && k.is_none())
    }
}

/// Plans every account of teardown; the conflicts of all of them when any has one, so that
/// nothing is changed anywhere.
pub fn plan_teardown(
    spec: &GrantSpec,
    seen: &TeardownSeen<'_>,
) -> Result<TeardownPlan, Vec<String>> {
    let mut conflicts = Vec::new();
    let (at_alias, recorded) = (seen.keys.at_alias.as_ref(), seen.keys.recorded.as_ref());
    let owner = plan_owner_teardown(spec, at_alias, recorded, seen.adopted)
        .map_err(|c| conflicts.push(c))
        .unwrap_or_default();
    let retired = seen
        .retired
        .iter()
        .filter_map(|(alias, k)| {
            plan_retired_teardown(spec, alias, k).map_err(|c| conflicts.push(c)).ok()
        })
        .collect();
    let users = seen
        .users
        .iter()
        .map(|(account, role)| {
            plan_user_teardown(spec, account, role.as_ref())
                .map_err(|c| conflicts.push(c))
                .unwrap_or_default()
        })
        .collect();
    if conflicts.is_empty() { Ok(TeardownPlan { owner, retired, users }) } else { Err(conflicts) }
}

/// One key of a torn-down deployment as restore finds it.
#[derive(Debug, Clone)]
pub struct KeyLeft {
    /// The alias that should point at it (the deployment's, or a retirement alias).
    pub alias: String,
    /// The key's ARN, as recorded.
    pub arn: String,
    /// When teardown said KMS would delete it.
    pub deletion_date: String,
    /// The key as it is; None once KMS has deleted it.
    pub key: Option<KeyState>,
    /// The key the alias points at now, if the alias exists.
    pub alias_target: Option<String>,
}

/// What restore does.
#[derive(Debug, Clone, Default)]
pub struct RestorePlan {
    /// Keys whose deletion to cancel.
    pub cancel: Vec<String>,
    /// Keys to enable (a cancelled deletion leaves a key Disabled).
    pub enable: Vec<String>,
    /// Aliases to create: (alias, key ARN).
    pub aliases: Vec<(String, String)>,
    /// The deployment key's policy, when it must name the roles again.
    pub put_policy: Option<(String, PolicyDocument)>,
    /// Each user account's role.
    pub users: Vec<UserPlan>,
    /// Retired keys KMS has deleted: what cannot come back.
    pub gone: Vec<KeyLeft>,
}

/// Plans restore of a torn-down deployment: `keys` holds the deployment's key first, then its
/// retired keys. The deployment's key deleted is a conflict (nothing can be restored); a retired
/// key deleted is reported as gone; anything not ours, or an alias now on another key, is a
/// conflict.
pub fn plan_restore(
    spec: &GrantSpec,
    keys: &[KeyLeft],
    users: &[(AccountId, Option<RoleState>)],
) -> Result<RestorePlan, Vec<String>> {
    let mut plan = RestorePlan::default();
    if keys.is_empty() {
        return Err(vec![
            "the teardown scheduled no key's deletion: there is nothing to restore; run `kmsxacct setup`".into(),
        ]);
    }
    let mut conflicts = Vec::new();
    for (i, left) in keys.iter().enumerate() {
        let Some(key) = &left.key else {
            if i == 0 {
                conflicts.push(format!(
                    "key {} was deleted (its pending window ended on {}): nothing of the deployment can be restored; run `kmsxacct setup` for a new one",
                    left.arn, left.deletion_date
                ));
            } else {
                plan.gone.push(left.clone());
            }
            continue;
        };
        if let Err(c) = plan_key_restore(spec, left, key, &mut plan) {
            conflicts.push(c);
        }
        if i == 0 {
            plan.put_policy = converge_key_policy(spec, key).map(|p| (key.arn.clone(), p));
        }
    }
    for (account, role) in users {
        match plan_user_setup(spec, account, role.as_ref()) {
            Ok(p) => plan.users.push(p),
            Err(c) => conflicts.push(c),
        }
    }
    if conflicts.is_empty() { Ok(plan) } else { Err(conflicts) }
}

/// One key that still exists: cancel its deletion, enable it, point its alias back at it.
fn plan_key_restore(
    spec: &GrantSpec,
    left: &KeyLeft,
    key: &KeyState,
    plan: &mut RestorePlan,
) -> Result<(), String> {
    if !is_ours(&key.tags, spec) {
        return Err(format!("key {} lacks this deployment's tags; nothing was changed", key.arn));
    }
    match key.state.as_str() {
        KEY_PENDING_DELETION | KEY_PENDING_REPLICA_DELETION => {
            plan.cancel.push(key.arn.clone());
            plan.enable.push(key.arn.clone());
        }
        "Disabled" => plan.enable.push(key.arn.clone()),
        KEY_ENABLED => {}
        other => return Err(format!("key {} is {other}; restore cannot use it", key.arn)),
    }
    match &left.alias_target {
        None => plan.aliases.push((left.alias.clone(), key.arn.clone())),
        Some(at) if *at == key.arn => {}
        Some(at) => {
            return Err(format!(
                "{} now points at {at}, not {}; nothing was changed",
                left.alias, key.arn
            ));
        }
    }
    Ok(())
}

/// Live documents of one user account: its role's trust policy and kmsxacct's role policy.
pub type LiveRole<'a> = (&'a AccountId, Option<&'a PolicyDocument>, Option<&'a PolicyDocument>);

/// Another grant shape (whom the key policy names, actions, alias condition, trusted principals)
/// than `spec`'s that writes exactly these live documents, if one does. Without the record, a
/// deployment made with other settings would otherwise read as drift.
pub fn other_shape(
    spec: &GrantSpec,
    key_policy: &PolicyDocument,
    roles: &[LiveRole<'_>],
) -> Option<GrantSpec> {
    let mut trust: Vec<String> = roles
        .iter()
        .filter_map(|(_, t, _)| *t)
        .flat_map(|t| t.statements().flat_map(|s| s.principal_values()).collect::<Vec<_>>())
        .filter(|p| !p.ends_with(":root"))
        .collect();
    trust.sort();
    trust.dedup();
    let writes_live = |c: &GrantSpec| {
        let grant = key_policy.statement_by_sid(build::USER_GRANT_SID);
        grant.is_some_and(|g| g.same_as(&build::key_policy_grant(c)))
            && roles.iter().all(|(account, t, a)| {
                t.is_some_and(|t| t.same_as(&build::role_trust_policy(c, account)))
                    && a.is_some_and(|a| a.same_as(&build::role_access_policy(c)))
            })
    };
    let same = |c: &GrantSpec| {
        (c.grant_to, &c.actions, c.condition, &c.trust)
            == (spec.grant_to, &spec.actions, spec.condition, &spec.trust)
    };
    let mut shapes = Vec::new();
    for actions in action_sets() {
        for grant_to in [build::GrantTo::Account, build::GrantTo::Role] {
            for condition in
                [build::AliasCondition::ResourceAliases, build::AliasCondition::RequestAlias]
            {
                let (actions, trust) = (actions.clone(), trust.clone());
                shapes.push(GrantSpec { grant_to, actions, condition, trust, ..spec.clone() });
            }
        }
    }
    shapes.into_iter().find(|c| !same(c) && writes_live(c))
}

/// Every non-empty set of grantable actions, in their declared order.
fn action_sets() -> Vec<Vec<build::KeyAction>> {
    use clap::ValueEnum;
    let all = build::KeyAction::value_variants();
    (1..1u32 << all.len())
        .map(|bits| {
            all.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, a)| *a).collect()
        })
        .collect()
}

fn tag_list(spec: &GrantSpec) -> String {
    deployment_tags(spec).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Effect, Statement};

    fn spec() -> GrantSpec {
        GrantSpec::new(
            "us-east-1".parse().unwrap(),
            "111111111111".parse().unwrap(),
            vec![user()],
            "alias/data".parse().unwrap(),
            "r".parse().unwrap(),
        )
    }

    fn user() -> AccountId {
        "222222222222".parse().unwrap()
    }

    fn key(tags: Vec<(String, String)>, state: &str) -> KeyState {
        KeyState {
            key_id: "k1".into(),
            arn: "arn:aws:kms:us-east-1:111111111111:key/k1".into(),
            state: state.into(),
            deletion_date: None,
            tags,
            policy: Some(build::key_policy(&spec())),
            aliases: vec!["alias/data".into()],
            multi_region: false,
        }
    }

    fn role(tags: Vec<(String, String)>) -> RoleState {
        RoleState {
            arn: "arn:aws:iam::222222222222:role/r".into(),
            tags,
            trust: build::role_trust_policy(&spec(), &user()),
            access_policy: Some(build::role_access_policy(&spec())),
            inline_policy_names: vec![build::ROLE_POLICY_NAME.into()],
            attached_policy_arns: vec![],
        }
    }

    #[test]
    fn fresh_setup_creates_everything() {
        let owner = plan_owner_setup(&spec(), None, None, &[], false).unwrap();
        assert!(matches!(owner.key, KeyPlan::Create { .. }) && owner.create_alias);
        let user = plan_user_setup(&spec(), &user(), None).unwrap();
        assert!(user.create_role.is_some() && user.put_policy.is_some());
    }

    #[test]
    fn converged_setup_is_a_noop() {
        let k = key(deployment_tags(&spec()), KEY_ENABLED);
        let owner = plan_owner_setup(&spec(), Some(&k), None, &[], false).unwrap();
        assert!(matches!(owner.key, KeyPlan::Existing { ref arn, .. } if *arn == k.arn));
        assert!(!owner.create_alias && owner.put_policy.is_none() && owner.retire.is_empty());
        let r = role(deployment_tags(&spec()));
        let user = plan_user_setup(&spec(), &user(), Some(&r)).unwrap();
        assert!(user.create_role.is_none() && user.update_trust.is_none());
        assert!(user.put_policy.is_none());
        assert_eq!(user.existing_arn.as_deref(), Some(r.arn.as_str()));
    }

    #[test]
    fn missing_pieces_are_put_back() {
        let mut r = role(deployment_tags(&spec()));
        r.access_policy = None;
        let plan = plan_user_setup(&spec(), &user(), Some(&r)).unwrap();
        assert!(
            plan.put_policy.is_some() && plan.create_role.is_none() && plan.update_trust.is_none()
        );

        let mut k = key(deployment_tags(&spec()), KEY_ENABLED);
        k.policy.as_mut().unwrap().remove_statement(build::USER_GRANT_SID);
        let plan = plan_owner_setup(&spec(), Some(&k), None, &[], false).unwrap();
        let put = plan.put_policy.unwrap();
        assert!(put.statement_by_sid(build::USER_GRANT_SID).is_some());
        assert!(put.statement_by_sid(build::OWNER_ADMIN_SID).is_some());
    }

    #[test]
    fn key_policy_merge_keeps_foreign_statements() {
        let mut k = key(deployment_tags(&spec()), KEY_ENABLED);
        let policy = k.policy.as_mut().unwrap();
        policy.remove_statement(build::USER_GRANT_SID);
        policy.upsert_statement(
            Statement::new(Effect::Allow)
                .sid("Auditors")
                .actions(&["kms:DescribeKey"])
                .resources(vec!["*".into()]),
        );
        let put =
            plan_owner_setup(&spec(), Some(&k), None, &[], false).unwrap().put_policy.unwrap();
        assert!(put.statement_by_sid("Auditors").is_some());
        assert_eq!(put.statements().count(), 3);
    }

    #[test]
    fn recorded_key_is_reused_not_orphaned() {
        let k = key(deployment_tags(&spec()), KEY_ENABLED);
        let plan = plan_owner_setup(&spec(), None, Some(&k), &[], false).unwrap();
        assert!(matches!(plan.key, KeyPlan::Existing { ref key_id, .. } if key_id == "k1"));
        assert!(plan.create_alias);
        // A recorded key that is being deleted, or is not ours, is not reused.
        let pending = key(deployment_tags(&spec()), KEY_PENDING_DELETION);
        assert!(matches!(
            plan_owner_setup(&spec(), None, Some(&pending), &[], false).unwrap().key,
            KeyPlan::Create { .. }
        ));
        let foreign = key(vec![], KEY_ENABLED);
        assert!(matches!(
            plan_owner_setup(&spec(), None, Some(&foreign), &[], false).unwrap().key,
            KeyPlan::Create { .. }
        ));
    }

    #[test]
    fn keys_left_by_a_lost_create_key_are_reused_and_extras_retired() {
        let mut a = key(deployment_tags(&spec()), KEY_ENABLED);
        a.aliases.clear();
        let mut b = a.clone();
        b.key_id = "k2".into();
        b.arn = "arn:aws:kms:us-east-1:111111111111:key/k2".into();
        let foreign = KeyState { tags: vec![], ..b.clone() };
        let plan =
            plan_owner_setup(&spec(), None, None, &[a.clone(), b.clone(), foreign], false).unwrap();
        assert!(matches!(plan.key, KeyPlan::Existing { ref key_id, .. } if key_id == "k1"));
        assert!(plan.create_alias);
        assert_eq!(plan.retire, vec![b.arn.clone()]);
        // A recorded key wins over what the scan found.
        let plan =
            plan_owner_setup(&spec(), None, Some(&b), &[a.clone(), b.clone()], false).unwrap();
        assert!(matches!(plan.key, KeyPlan::Existing { ref key_id, .. } if key_id == "k2"));
        assert_eq!(plan.retire, vec![a.arn]);
    }

    #[test]
    fn rotate_reuses_a_key_an_interrupted_rotate_left_and_retires_extras() {
        let current = key(deployment_tags(&spec()), KEY_ENABLED);
        let fresh = plan_rotate_key(&spec(), &current, &[]);
        assert!(matches!(fresh.key, KeyPlan::Create { .. }) && fresh.retire.is_empty());
        let mut a = current.clone();
        a.aliases.clear();
        (a.key_id, a.arn) = ("k2".into(), "arn:aws:kms:us-east-1:111111111111:key/k2".into());
        let mut b = a.clone();
        (b.key_id, b.arn) = ("k3".into(), "arn:aws:kms:us-east-1:111111111111:key/k3".into());
        let mut retired = a.clone();
        retired.aliases = vec!["alias/data/retired/k0".into()];
        retired.arn = "arn:aws:kms:us-east-1:111111111111:key/k0".into();
        let foreign = KeyState { tags: vec![], ..b.clone() };
        let disabled = KeyState { state: "Disabled".into(), ..b.clone() };
        let found = [current.clone(), retired, foreign, disabled, a.clone(), b.clone()];
        let plan = plan_rotate_key(&spec(), &current, &found);
        assert!(matches!(plan.key, KeyPlan::Existing { ref key_id, .. } if key_id == "k2"));
        assert_eq!(plan.retire, vec![b.arn]);
        assert!(!plan.create_alias && plan.put_policy.is_none());
    }

    #[test]
    fn multi_region_keys_are_never_mixed_with_one_region_keys() {
        let mut multi = spec();
        multi.replica_regions = vec!["eu-west-1".parse().unwrap()];
        // setup --regions over a one-Region key: refused; over a multi-Region key: fine.
        let one = key(deployment_tags(&multi), KEY_ENABLED);
        let e = plan_owner_setup(&multi, Some(&one), None, &[], false).unwrap_err();
        assert!(e.contains("one-Region key"), "{e}");
        let mrk = KeyState { multi_region: true, ..one.clone() };
        assert!(plan_owner_setup(&multi, Some(&mrk), None, &[], false).is_ok());
        // rotate reuses only a left-over key of the same kind, and never the current key (even
        // when the scan saw it without its alias).
        let mut current = mrk.clone();
        current.aliases.clear();
        let mut orphan = one.clone();
        orphan.aliases.clear();
        (orphan.key_id, orphan.arn) =
            ("k9".into(), "arn:aws:kms:us-east-1:111111111111:key/k9".into());
        let plan = plan_rotate_key(&multi, &mrk, &[current, orphan.clone()]);
        assert!(matches!(plan.key, KeyPlan::Create { multi_region: true, .. }), "{:?}", plan.key);
        let orphan_mrk = KeyState { multi_region: true, ..orphan };
        let plan = plan_rotate_key(&multi, &mrk, &[orphan_mrk]);
        assert!(matches!(plan.key, KeyPlan::Existing { ref key_id, .. } if key_id == "k9"));
    }

    #[test]
    fn other_shape_names_the_settings_the_live_documents_were_written_with() {
        let mut made = spec();
        made.grant_to = build::GrantTo::Role;
        made.actions = vec![build::KeyAction::Encrypt, build::KeyAction::DescribeKey];
        made.condition = build::AliasCondition::RequestAlias;
        made.trust = vec!["arn:aws:iam::222222222222:role/app".into()];
        let key_policy = build::key_policy(&made);
        let (trust, access) =
            (build::role_trust_policy(&made, &user()), build::role_access_policy(&made));
        let u = user();
        let live = [(&u, Some(&trust), Some(&access))];
        let shape = other_shape(&spec(), &key_policy, &live).expect("a shape");
        assert_eq!(shape.grant_to, made.grant_to);
        assert_eq!(shape.actions, made.actions);
        assert_eq!(shape.condition, made.condition);
        assert_eq!(shape.trust, made.trust);
        // The default shape itself, and documents no settings write (drift), name none.
        let default = (build::role_trust_policy(&spec(), &u), build::role_access_policy(&spec()));
        let live = [(&u, Some(&default.0), Some(&default.1))];
        assert!(other_shape(&spec(), &build::key_policy(&spec()), &live).is_none());
        let drifted = build::role_access_policy(&spec());
        let live = [(&u, Some(&trust), Some(&drifted))];
        assert!(other_shape(&spec(), &key_policy, &live).is_none());
    }

    #[test]
    fn restore_cancels_enables_and_points_aliases_back_or_says_what_is_gone() {
        let pending = key(deployment_tags(&spec()), KEY_PENDING_DELETION);
        let left = |k: Option<KeyState>, alias: &str, at: Option<&str>| KeyLeft {
            alias: alias.into(),
            arn: pending.arn.clone(),
            deletion_date: "2026-12-29T00:00:00Z".into(),
            key: k,
            alias_target: at.map(String::from),
        };
        let mut retired = pending.clone();
        (retired.arn, retired.state) =
            ("arn:aws:kms:us-east-1:111111111111:key/k0".into(), "Disabled".into());
        let keys = [
            left(Some(pending.clone()), "alias/data", None),
            KeyLeft {
                arn: retired.arn.clone(),
                ..left(Some(retired.clone()), "alias/data/retired/k0", None)
            },
        ];
        let users = [(user(), None)];
        let plan = plan_restore(&spec(), &keys, &users).unwrap();
        assert_eq!(plan.cancel, vec![pending.arn.clone()]);
        assert_eq!(plan.enable, vec![pending.arn.clone(), retired.arn.clone()]);
        assert_eq!(plan.aliases.len(), 2);
        assert!(plan.users[0].create_role.is_some() && plan.gone.is_empty());

        // A multi-Region primary waiting for its replicas' deletion is cancelled the same way.
        let waiting = KeyState { state: KEY_PENDING_REPLICA_DELETION.into(), ..pending.clone() };
        let plan =
            plan_restore(&spec(), &[left(Some(waiting), "alias/data", None)], &users).unwrap();
        assert_eq!((plan.cancel.len(), plan.enable.len()), (1, 1));

        assert!(plan_restore(&spec(), &[], &users).is_err(), "no key: nothing to restore");
        // The deployment's key deleted: nothing to restore. A retired key deleted: gone.
        let err = plan_restore(&spec(), &[left(None, "alias/data", None)], &users).unwrap_err();
        assert!(err[0].contains("was deleted"), "{err:?}");
        let keys = [
            left(Some(pending.clone()), "alias/data", None),
            left(None, "alias/data/retired/k0", None),
        ];
        assert_eq!(plan_restore(&spec(), &keys, &users).unwrap().gone.len(), 1);

        // An alias now on another key, or a key not ours, is a conflict.
        let moved = [left(
            Some(pending.clone()),
            "alias/data",
            Some("arn:aws:kms:us-east-1:111111111111:key/x"),
        )];
        assert!(plan_restore(&spec(), &moved, &users).is_err());
        let foreign = [left(Some(key(vec![], KEY_PENDING_DELETION)), "alias/data", None)];
        assert!(plan_restore(&spec(), &foreign, &users).is_err());
    }

    /// A key of this deployment with no alias and another id, `state`, tagged `tags`.
    #[test]
    fn a_key_policy_over_the_size_limit_is_refused_and_an_organisation_fits() {
        let users: Vec<AccountId> =
            (0..1200).map(|i| format!("{:012}", 100_000_000_000u64 + i).parse().unwrap()).collect();
        let mut many = GrantSpec::new(
            "us-east-1".parse().unwrap(),
            "111111111111".parse().unwrap(),
            users,
            "alias/data".parse().unwrap(),
            "r".parse().unwrap(),
        );
        let keys = DeploymentKeys::default();
        let seen = SetupSeen { keys: &keys, found: &[], users: &[], leaving: &[], adopt: false };
        let e = plan_setup(&many, &seen).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("over AWS's 32768-byte limit") && e[0].contains("--org-id"), "{e:?}");
        many.org = Some(crate::names::OrgScope::id("o-a1b2c3d4e5").unwrap());
        let plan = plan_setup(&many, &seen).unwrap();
        let KeyPlan::Create { policy, .. } = &plan.owner.key else { panic!("a new key") };
        assert!(policy.render().len() < 2_000);
        // Just under the limit is fine; the limit is AWS's, in bytes.
        let with = |n: u64| {
            let users = (0..n).map(|i| format!("{:012}", 100_000_000_000u64 + i).parse().unwrap());
            GrantSpec { users: users.collect(), org: None, ..many.clone() }
        };
        let size = |n: u64| build::key_policy(&with(n)).render().len();
        let largest = (1..1200u64).rev().find(|n| size(*n) <= KEY_POLICY_LIMIT).unwrap();
        assert!(plan_setup(&with(largest), &seen).is_ok());
        assert!(plan_setup(&with(largest + 1), &seen).is_err());
    }

    fn orphan(id: &str, tags: Vec<(String, String)>, state: &str) -> KeyState {
        let mut k = key(tags, state);
        k.key_id = id.into();
        k.arn = format!("arn:aws:kms:us-east-1:111111111111:key/{id}");
        k.aliases.clear();
        k
    }

    #[test]
    fn with_the_alias_in_place_only_unaliased_enabled_keys_of_ours_are_retired() {
        let current = key(deployment_tags(&spec()), KEY_ENABLED);
        let mut current_seen = current.clone();
        current_seen.aliases.clear(); // the key in use, even if the scan saw it without aliases
        let extra = orphan("k2", deployment_tags(&spec()), KEY_ENABLED);
        let found = [
            current_seen,
            extra.clone(),
            orphan("k3", vec![], KEY_ENABLED),
            orphan("k4", deployment_tags(&spec()), "Disabled"),
            orphan("k5", deployment_tags(&spec()), KEY_PENDING_DELETION),
            KeyState {
                aliases: vec!["alias/other".into()],
                ..orphan("k6", deployment_tags(&spec()), KEY_ENABLED)
            },
        ];
        let plan = plan_owner_setup(&spec(), Some(&current), None, &found, false).unwrap();
        assert_eq!(plan.retire, vec![extra.arn]);
    }

    #[test]
    fn a_role_policy_that_differs_is_put_again() {
        let mut r = role(deployment_tags(&spec()));
        let mut other = spec();
        other.actions = vec![build::KeyAction::Decrypt];
        r.access_policy = Some(build::role_access_policy(&other));
        let plan = plan_user_setup(&spec(), &user(), Some(&r)).unwrap();
        assert!(plan.put_policy.unwrap().same_as(&build::role_access_policy(&spec())));
    }

    #[test]
    fn plan_setup_plans_every_account_or_returns_every_conflict() {
        let ours = key(deployment_tags(&spec()), KEY_ENABLED);
        let keys = DeploymentKeys { at_alias: Some(ours.clone()), recorded: None };
        let users = [(user(), None)];
        let leaving_role = role(deployment_tags(&spec()));
        let leaving = [("333333333333".parse().unwrap(), Some(leaving_role.clone()))];
        let seen =
            SetupSeen { keys: &keys, found: &[], users: &users, leaving: &leaving, adopt: false };
        let plan = plan_setup(&spec(), &seen).unwrap();
        assert!(plan.users[0].create_role.is_some());
        assert_eq!(plan.leaving[0].delete_role.as_deref(), Some(leaving_role.arn.as_str()));

        let foreign_role = [(user(), Some(role(vec![])))];
        let seen = SetupSeen { users: &foreign_role, ..seen };
        let err = plan_setup(&spec(), &seen).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err[0].contains("role r"), "{err:?}");
        let foreign_key =
            DeploymentKeys { at_alias: Some(key(vec![], KEY_ENABLED)), recorded: None };
        let seen = SetupSeen { keys: &foreign_key, ..seen };
        assert_eq!(plan_setup(&spec(), &seen).unwrap_err().len(), 2);
    }

    #[test]
    fn a_retired_key_loses_its_retirement_alias_then_its_key_and_nothing_else() {
        let alias = "alias/data/retired/k1";
        let mut k = key(deployment_tags(&spec()), KEY_ENABLED);
        k.aliases = vec![alias.into()];
        assert_eq!(
            plan_retired_teardown(&spec(), alias, &k).unwrap(),
            (Some(alias.to_string()), Some(k.arn.clone()))
        );
        k.aliases.clear();
        assert_eq!(plan_retired_teardown(&spec(), alias, &k).unwrap(), (None, Some(k.arn.clone())));
        k.state = KEY_PENDING_DELETION.into();
        assert_eq!(plan_retired_teardown(&spec(), alias, &k).unwrap(), (None, None));
        k.aliases = vec![alias.into(), "alias/someone".into()];
        let err = plan_retired_teardown(&spec(), alias, &k).unwrap_err();
        assert!(err.contains("alias/someone") && !err.contains(alias), "{err}");
        let untagged = KeyState { tags: vec![], aliases: vec![alias.into()], ..k };
        assert!(plan_retired_teardown(&spec(), alias, &untagged).unwrap_err().contains("tags"));
    }

    #[test]
    fn a_teardown_plan_is_empty_only_when_nothing_at_all_is_left() {
        assert!(TeardownPlan::default().is_empty());
        let owner = OwnerTeardown { delete_alias: true, ..OwnerTeardown::default() };
        assert!(!TeardownPlan { owner, ..TeardownPlan::default() }.is_empty());
        let users = vec![
            UserTeardown::default(),
            UserTeardown { delete_role: Some("r".into()), ..UserTeardown::default() },
        ];
        assert!(!TeardownPlan { users, ..TeardownPlan::default() }.is_empty());
        let retired = vec![(None, None), (None, Some("k".into()))];
        assert!(!TeardownPlan { retired, ..TeardownPlan::default() }.is_empty());
        let retired = vec![(Some("alias/x".into()), None)];
        assert!(!TeardownPlan { retired, ..TeardownPlan::default() }.is_empty());
        let nothing = TeardownPlan {
            users: vec![UserTeardown::default()],
            retired: vec![(None, None)],
            ..TeardownPlan::default()
        };
        assert!(nothing.is_empty());
    }

    #[test]
    fn plan_teardown_plans_every_account_or_returns_every_conflict() {
        let ours = key(deployment_tags(&spec()), KEY_ENABLED);
        let keys = DeploymentKeys { at_alias: Some(ours.clone()), recorded: None };
        let mut retired_key = orphan("k0", deployment_tags(&spec()), KEY_ENABLED);
        retired_key.aliases = vec!["alias/data/retired/k0".into()];
        let retired = [("alias/data/retired/k0".to_string(), retired_key.clone())];
        let users = [(user(), Some(role(deployment_tags(&spec()))))];
        let seen = TeardownSeen { keys: &keys, retired: &retired, users: &users, adopted: false };
        let plan = plan_teardown(&spec(), &seen).unwrap();
        assert!(plan.owner.delete_alias);
        assert_eq!(plan.owner.schedule_key_deletion.as_deref(), Some(ours.arn.as_str()));
        assert_eq!(plan.retired, vec![(Some(retired[0].0.clone()), Some(retired_key.arn))]);
        assert!(plan.users[0].delete_role.is_some());
        let foreign = [(user(), Some(role(vec![])))];
        let err = plan_teardown(&spec(), &TeardownSeen { users: &foreign, ..seen }).unwrap_err();
        assert_eq!(err.len(), 1);
    }

    #[test]
    fn restore_puts_the_policy_back_on_the_deployment_key_only_and_keeps_an_alias_in_place() {
        let mut pending = key(deployment_tags(&spec()), KEY_PENDING_DELETION);
        pending.policy.as_mut().unwrap().remove_statement(build::USER_GRANT_SID);
        let mut retired = orphan("k0", deployment_tags(&spec()), KEY_PENDING_DELETION);
        retired.policy = pending.policy.clone();
        let left = |k: &KeyState, alias: &str, at: Option<&str>| KeyLeft {
            alias: alias.into(),
            arn: k.arn.clone(),
            deletion_date: "d".into(),
            key: Some(k.clone()),
            alias_target: at.map(String::from),
        };
        let keys = [
            left(&pending, "alias/data", Some(&pending.arn)),
            left(&retired, "alias/data/retired/k0", None),
        ];
        let plan = plan_restore(&spec(), &keys, &[]).unwrap();
        let (arn, policy) = plan.put_policy.unwrap();
        assert_eq!(arn, pending.arn);
        assert!(policy.statement_by_sid(build::USER_GRANT_SID).is_some());
        assert_eq!(plan.aliases, vec![("alias/data/retired/k0".to_string(), retired.arn.clone())]);
    }

    #[test]
    fn action_sets_are_every_non_empty_subset_once() {
        let sets = action_sets();
        assert_eq!(sets.len(), 63);
        assert!(sets.iter().all(|s| !s.is_empty()));
        assert_eq!(sets[0], vec![build::KeyAction::Encrypt]);
        assert_eq!(sets.iter().map(Vec::len).max(), Some(6));
    }

    #[test]
    fn conflicts_name_the_missing_tags() {
        let err = plan_user_setup(&spec(), &user(), Some(&role(vec![]))).unwrap_err();
        assert!(err.contains("kmsxacct:managed-by=kmsxacct, kmsxacct:owner-account=111111111111, kmsxacct:alias=alias/data"), "{err}");
    }

    #[test]
    fn foreign_alias_or_role_is_a_conflict() {
        let err = plan_owner_setup(&spec(), Some(&key(vec![], KEY_ENABLED)), None, &[], false)
            .unwrap_err();
        assert!(err.contains("alias/data") && err.contains("did not create"), "{err}");
        let mut other_alias = deployment_tags(&spec());
        other_alias[2].1 = "alias/other".into();
        assert!(
            plan_owner_setup(&spec(), Some(&key(other_alias, KEY_ENABLED)), None, &[], false)
                .is_err()
        );
        let err = plan_user_setup(&spec(), &user(), Some(&role(vec![]))).unwrap_err();
        assert!(err.contains("role r"), "{err}");
        let err = plan_owner_setup(
            &spec(),
            Some(&key(deployment_tags(&spec()), "Disabled")),
            None,
            &[],
            false,
        )
        .unwrap_err();
        assert!(err.contains("Disabled"), "{err}");
    }

    #[test]
    fn teardown_removes_what_is_ours() {
        let k = key(deployment_tags(&spec()), KEY_ENABLED);
        let r = role(deployment_tags(&spec()));
        let owner = plan_owner_teardown(&spec(), Some(&k), None, false).unwrap();
        assert!(owner.delete_alias);
        assert_eq!(owner.schedule_key_deletion.as_deref(), Some(k.arn.as_str()));
        let u = plan_user_teardown(&spec(), &user(), Some(&r)).unwrap();
        assert!(u.delete_role_policy);
        assert_eq!(u.delete_role.as_deref(), Some(r.arn.as_str()));
    }

    #[test]
    fn teardown_after_teardown_is_a_noop() {
        let k = key(deployment_tags(&spec()), KEY_PENDING_DELETION);
        assert_eq!(
            plan_owner_teardown(&spec(), None, Some(&k), false).unwrap(),
            OwnerTeardown::default()
        );
        assert_eq!(
            plan_owner_teardown(&spec(), None, None, false).unwrap(),
            OwnerTeardown::default()
        );
        assert_eq!(plan_user_teardown(&spec(), &user(), None).unwrap(), UserTeardown::default());
    }

    #[test]
    fn adoption_grants_then_takes_back_only_the_statement() {
        let mut foreign = key(vec![], KEY_ENABLED);
        foreign.policy = Some(PolicyDocument::new(vec![build::owner_admin_statement(&spec())]));
        assert!(plan_owner_setup(&spec(), Some(&foreign), None, &[], false).is_err());
        let plan = plan_owner_setup(&spec(), Some(&foreign), None, &[], true).unwrap();
        assert!(!plan.create_alias && plan.retire.is_empty());
        let granted = plan.put_policy.unwrap();
        assert!(granted.statement_by_sid(build::USER_GRANT_SID).is_some());
        foreign.policy = Some(granted);
        let down = plan_owner_teardown(&spec(), Some(&foreign), Some(&foreign), true).unwrap();
        assert!(!down.delete_alias && down.schedule_key_deletion.is_none());
        let (arn, stripped) = down.strip_grant.unwrap();
        assert_eq!(arn, foreign.arn);
        assert!(stripped.statement_by_sid(build::USER_GRANT_SID).is_none());
        assert!(stripped.statement_by_sid(build::OWNER_ADMIN_SID).is_some());
        let mut moved = foreign.clone();
        moved.arn = "arn:aws:kms:us-east-1:111111111111:key/other".into();
        assert!(plan_owner_teardown(&spec(), Some(&moved), Some(&foreign), true).is_err());
    }

    #[test]
    fn teardown_refuses_what_is_not_ours() {
        let err = plan_user_teardown(&spec(), &user(), Some(&role(vec![]))).unwrap_err();
        assert!(err.contains("role r"));

        let untagged_key = key(vec![], KEY_ENABLED);
        let err = plan_owner_teardown(&spec(), Some(&untagged_key), None, false).unwrap_err();
        assert!(err.contains("left in place"));

        let mut shared = key(deployment_tags(&spec()), KEY_ENABLED);
        shared.aliases.push("alias/someone-elses".into());
        let err = plan_owner_teardown(&spec(), Some(&shared), None, false).unwrap_err();
        assert!(err.contains("alias/someone-elses"));

        let mut extra = role(deployment_tags(&spec()));
        extra.attached_policy_arns.push("arn:aws:iam::aws:policy/ReadOnlyAccess".into());
        let err = plan_user_teardown(&spec(), &user(), Some(&extra)).unwrap_err();
        assert!(err.contains("ReadOnlyAccess"));
    }
}
